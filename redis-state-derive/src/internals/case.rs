//! `rename_all` rules.

use super::ctxt::Ctxt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RenameRule {
    Snake,
    Camel,
    Pascal,
    Kebab,
    ScreamingSnake,
    Lower,
    Upper,
}

pub(crate) const RULES: &[(&str, RenameRule)] = &[
    ("snake_case", RenameRule::Snake),
    ("camelCase", RenameRule::Camel),
    ("PascalCase", RenameRule::Pascal),
    ("kebab-case", RenameRule::Kebab),
    ("SCREAMING_SNAKE_CASE", RenameRule::ScreamingSnake),
    ("lowercase", RenameRule::Lower),
    ("UPPERCASE", RenameRule::Upper),
];

impl RenameRule {
    pub(crate) fn from_str(s: &str) -> Option<Self> {
        RULES.iter().find(|(name, _)| *name == s).map(|(_, r)| *r)
    }

    /// The rule a `rename_all = "..."` literal names; an unknown one is
    /// reported at the literal, with the list of rules.
    pub(crate) fn from_lit(cx: &Ctxt, lit: &syn::LitStr) -> Option<Self> {
        let rule = Self::from_str(&lit.value());
        if rule.is_none() {
            cx.error_spanned_by(
                lit,
                format!(
                    "unknown rename_all rule; expected one of {}",
                    RULES
                        .iter()
                        .map(|(n, _)| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        rule
    }

    /// The stored name of a field without `rename`: its Rust name under
    /// the `rename_all` rule, if any.
    pub(crate) fn field_name(rule: Option<Self>, rust: &str) -> String {
        match rule {
            Some(rule) => rule.apply_to_field(rust),
            None => rust.to_owned(),
        }
    }

    /// Applies the rule to a snake_case field name.
    pub(crate) fn apply_to_field(self, field: &str) -> String {
        let words = || field.split('_').filter(|w| !w.is_empty());
        match self {
            RenameRule::Snake => field.to_owned(),
            RenameRule::Lower => field.replace('_', ""),
            RenameRule::Upper => field.replace('_', "").to_ascii_uppercase(),
            RenameRule::ScreamingSnake => field.to_ascii_uppercase(),
            RenameRule::Kebab => field.replace('_', "-"),
            RenameRule::Pascal => words().map(capitalize).collect(),
            RenameRule::Camel => {
                let mut out = String::new();
                for (i, w) in words().enumerate() {
                    if i == 0 {
                        out.push_str(w);
                    } else {
                        out.push_str(&capitalize(w));
                    }
                }
                out
            }
        }
    }

    /// Applies the rule to a PascalCase variant name.
    pub(crate) fn apply_to_variant(self, variant: &str) -> String {
        match self {
            RenameRule::Pascal => variant.to_owned(),
            RenameRule::Lower => variant.to_ascii_lowercase(),
            RenameRule::Upper => variant.to_ascii_uppercase(),
            RenameRule::Camel => {
                let mut chars = variant.chars();
                match chars.next() {
                    Some(first) => first.to_lowercase().chain(chars).collect(),
                    None => String::new(),
                }
            }
            rule => rule.apply_to_field(&to_snake(variant)),
        }
    }
}

fn capitalize(w: &str) -> String {
    let mut chars = w.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `UserProfile` -> `user_profile`.
pub(crate) fn to_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.char_indices() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(RenameRule::Camel.apply_to_field("created_at"), "createdAt");
        assert_eq!(RenameRule::Pascal.apply_to_field("created_at"), "CreatedAt");
        assert_eq!(RenameRule::Kebab.apply_to_field("created_at"), "created-at");
        assert_eq!(
            RenameRule::Snake.apply_to_variant("InProgress"),
            "in_progress"
        );
        assert_eq!(
            RenameRule::ScreamingSnake.apply_to_variant("InProgress"),
            "IN_PROGRESS"
        );
        assert_eq!(to_snake("UserProfile"), "user_profile");
    }
}
