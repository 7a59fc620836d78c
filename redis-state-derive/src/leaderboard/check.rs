//! `#[derive(Leaderboard)]`: the checks that relate the attributes to each
//! other, to the fields and to the key template, each reported at the
//! attribute, literal or field at fault.

use super::ast::{FieldModel, Role};
use super::attr::{ContainerAttrs, FieldAttrs, RankMode};
use crate::internals::ast::ModelField;
use crate::internals::ast::{Container, Field};
use crate::internals::ctxt::Ctxt;
use crate::internals::template::{KeyAttr, Template};

/// What a field's role refuses: board fields come from the key; the member
/// and the score are neither data nor optional.
pub(crate) fn field(
    cx: &Ctxt,
    key: &KeyAttr<'_>,
    f: &Field<'_>,
    a: &FieldAttrs,
    role: Role,
    in_key: bool,
) {
    if in_key {
        board_field(cx, key, f, a, role);
    }
    let what = match role {
        Role::Member => "member",
        Role::Score => "score",
        _ => return,
    };
    if let (Some(_), Some(s)) = (a.member, a.score) {
        cx.error_at(s, "`score` conflicts with `member`: a field has one role");
    }
    for (name, span) in [
        ("skip", a.common.skip),
        ("rename", a.rename_span()),
        ("default", a.default_span()),
    ] {
        if let Some(span) = span {
            cx.error_at(
                span,
                format!("`{name}` conflicts with `{what}`: {name} applies to member data fields"),
            );
        }
    }
    if f.option_inner.is_some() {
        cx.error_spanned_by(
            f.ty,
            format!("the {what} field cannot be an `Option`: every entry has a {what}"),
        );
    }
}

/// A field the key template names.
fn board_field(cx: &Ctxt, key: &KeyAttr<'_>, f: &Field<'_>, a: &FieldAttrs, role: Role) {
    let rust = &f.rust_name;
    let why = match role {
        Role::Member => {
            Some("the member field cannot be part of the board key: one board holds many members")
        }
        Role::Score => {
            Some("the score field cannot be part of the board key: one board holds many scores")
        }
        _ => None,
    };
    if let Some(why) = why {
        key.error(cx, format!("the key template names `{{{rust}}}`: {why}"));
    }
    if let Some(s) = a.common.skip {
        cx.error_at(
            s,
            format!(
                "`skip` on `{rust}`, which the key template names: board fields are part of the key"
            ),
        );
    }
    if let Some(r) = &a.common.rename {
        cx.error_spanned_by(r, format!("`rename` on `{rust}`, a board field: rename names member data, and board fields are part of the key"));
    }
    if let Some((tokens, _)) = &a.common.default {
        cx.error_spanned_by(
            tokens,
            format!("`default` on `{rust}`, a board field: board fields come from the key"),
        );
    }
    if f.option_inner.is_some() {
        cx.error_spanned_by(
            f.ty,
            "a board field cannot be an `Option`: every entry goes on a board",
        );
    }
}

/// Where a field's attributes mark one role.
type SpanOf = fn(&FieldAttrs) -> Option<proc_macro2::Span>;

/// Exactly one `member` field and one `score` field.
pub(crate) fn one_member_and_score(cx: &Ctxt, container: &Container<'_>, attrs: &[FieldAttrs]) {
    let ident = container.ident;
    let roles: [(&str, &str, SpanOf); 2] = [
        ("member", "the member (the player, the user)", |a| a.member),
        ("score", "the score", |a| a.score),
    ];
    for (attr, what, span_of) in roles {
        let marked: Vec<(&Field<'_>, proc_macro2::Span)> = container
            .fields
            .iter()
            .zip(attrs)
            .filter_map(|(f, a)| span_of(a).map(|s| (f, s)))
            .collect();
        if container.named && marked.is_empty() {
            cx.error_spanned_by(
                ident,
                format!("`{ident}` has no {attr} field: mark the field that holds {what} with `#[leaderboard({attr})]`"),
            );
        }
        for (_, span) in marked.iter().skip(1) {
            cx.error_at(
                *span,
                format!(
                    "a board has one `{attr}` field, and `{}` already is",
                    marked[0].0.ident
                ),
            );
        }
    }
}

/// Placeholders name fields, each once, at most a key's worth.
pub(crate) fn placeholders(
    cx: &Ctxt,
    container: &Container<'_>,
    key: &KeyAttr<'_>,
    t: &Template,
    fields: &[FieldModel<'_>],
) {
    for p in t.parts() {
        if container.field(p).is_none() {
            let hint = fields
                .iter()
                .filter(|f| matches!(f.role, Role::Data | Role::Board))
                .map(|f| (distance(f.rust_name(), p), f.rust_name()))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, f)| format!("; did you mean `{{{f}}}`?"))
                .unwrap_or_default();
            key.error(
                cx,
                format!(
                    "the key template names `{{{p}}}`, but `{}` has no field `{p}`{hint}",
                    container.ident
                ),
            );
        }
    }
    key.check_placeholders(cx, t);
}

/// The JSON names of member data are distinct.
pub(crate) fn data_names(cx: &Ctxt, fields: &[FieldModel<'_>]) {
    let data: Vec<&FieldModel<'_>> = fields.iter().filter(|f| f.role == Role::Data).collect();
    for (i, f) in data.iter().enumerate() {
        if let Some(prev) = data[..i].iter().find(|p| p.name == f.name) {
            cx.error_at(
                f.name_span,
                format!(
                    "two member data fields are stored under the name `{}`: `{}` and `{}`; give one of them another `rename`",
                    f.name,
                    prev.rust_name(),
                    f.rust_name()
                ),
            );
        }
    }
}

/// One script updates a board and its companion keys (window boards, member
/// data, the dense set): they need one slot, so a hash tag.
pub(crate) fn hash_tag(
    cx: &Ctxt,
    key: &KeyAttr<'_>,
    t: &Template,
    attrs: &ContainerAttrs,
    fields: &[FieldModel<'_>],
    roles_known: bool,
    rank: RankMode,
) {
    if t.has_tag() {
        return;
    }
    let has_data = fields.iter().any(|f| f.role == Role::Data);
    let reason = if !attrs.windows.is_empty() {
        "time windows need"
    } else if has_data && roles_known {
        "member data needs"
    } else if rank == RankMode::Dense {
        "dense ranking needs"
    } else {
        return;
    };
    let src = &key.src;
    key.error(
        cx,
        format!(
            "{reason} a key with a Redis Cluster hash tag, so that one script can update the board and its companion keys in one slot, and the key template `{src}` has none; write `key = \"{{{{{src}}}}}\"` (one slot per board), or tag a placeholder with `hash_tag`"
        ),
    );
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("game", "gmae"), 2);
        assert_eq!(distance("region", "regoin"), 2);
        assert_eq!(distance("a", "a"), 0);
    }
}
