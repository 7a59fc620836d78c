//! Key and tag templates as attributes: the rules are
//! `redis_state_keys::template`'s; this module reports their errors at the
//! literal the user wrote, and runs the placeholder checks every derive
//! shares.

use redis_state_keys::template::TagError;
pub(crate) use redis_state_keys::template::{Segment, Template};

use super::ctxt::Ctxt;

/// Most parts a key may have (the runtime's `MAX_ID_PARTS`).
pub(crate) const MAX_ID_PARTS: usize = 8;

/// A derive's key template: `key = "..."` as written, or the derive's
/// default; errors about it go to the literal, or to the type's name when
/// the template is the default.
pub(crate) struct KeyAttr<'a> {
    /// The template's source text.
    pub(crate) src: String,
    lit: Option<syn::LitStr>,
    ident: &'a syn::Ident,
}

impl<'a> KeyAttr<'a> {
    /// `lit` from `key = "..."`, else `default()`.
    pub(crate) fn new(
        lit: Option<syn::LitStr>,
        ident: &'a syn::Ident,
        default: impl FnOnce() -> String,
    ) -> Self {
        let src = lit.as_ref().map_or_else(default, syn::LitStr::value);
        KeyAttr { src, lit, ident }
    }

    /// True when the template is the default (no `key`).
    pub(crate) fn is_default(&self) -> bool {
        self.lit.is_none()
    }

    /// Reports `msg` at the template.
    pub(crate) fn error(&self, cx: &Ctxt, msg: String) {
        match &self.lit {
            Some(lit) => cx.error_spanned_by(lit, msg),
            None => cx.error_spanned_by(self.ident, msg),
        }
    }

    /// Parses the template and applies `hash_tag = "name"`; errors are
    /// reported, at the template or at the `hash_tag` literal.
    pub(crate) fn parse(&self, cx: &Ctxt, hash_tag: Option<&syn::LitStr>) -> Option<Template> {
        let mut template = match Template::parse(&self.src) {
            Ok(t) => t,
            Err(e) => {
                self.error(cx, format!("malformed key template: {e}"));
                // Placeholders that are not whole segments: the rest of the
                // template is still checked, so every error shows at once.
                Template::parse_lenient(&self.src).ok()?
            }
        };
        if let Some(tag) = hash_tag {
            let name = tag.value();
            match template.tag_placeholder(&name) {
                Ok(()) => {}
                Err(TagError::AlreadyTagged) => cx.error_spanned_by(
                    tag,
                    "the key template already has a hash tag; remove `hash_tag` or the braces",
                ),
                Err(_) => cx.error_spanned_by(tag, not_a_placeholder(&template, &name)),
            }
        }
        Some(template)
    }

    /// Reports what every derive refuses about placeholders: one named
    /// twice, and more than a key can have.
    pub(crate) fn check_placeholders(&self, cx: &Ctxt, template: &Template) {
        let parts: Vec<&str> = template.parts().collect();
        for (i, p) in parts.iter().enumerate() {
            if parts[..i].contains(p) {
                self.error(
                    cx,
                    format!("the key template names `{{{p}}}` more than once"),
                );
            }
        }
        if parts.len() > MAX_ID_PARTS {
            self.error(
                cx,
                format!(
                    "the key template has {} placeholders; a key has at most {MAX_ID_PARTS} parts",
                    parts.len()
                ),
            );
        }
    }
}

fn not_a_placeholder(template: &Template, name: &str) -> String {
    let parts: Vec<String> = template.parts().map(|p| format!("`{p}`")).collect();
    let known = if parts.is_empty() {
        "it has none".to_owned()
    } else {
        format!("its placeholders are {}", parts.join(", "))
    };
    format!("hash_tag names `{name}`, which is not a placeholder of the key template; {known}")
}

/// Parses a tag template (`tag = "..."`, `invalidates_tag = "..."`): a name
/// over fields, without a hash tag. Errors are reported at the literal.
pub(crate) fn parse_tag(cx: &Ctxt, lit: &syn::LitStr) -> Option<Template> {
    let t = match Template::parse(&lit.value()) {
        Ok(t) => t,
        Err(e) => {
            cx.error_spanned_by(lit, format!("malformed tag template: {e}"));
            return None;
        }
    };
    if t.has_tag() {
        cx.error_spanned_by(
            lit,
            "a tag is a name, not a key: it cannot hold a hash tag `{{...}}`",
        );
        return None;
    }
    Some(t)
}
