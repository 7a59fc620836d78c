//! `#[derive(RedisHash)]`: the checks that relate attributes to each other,
//! to the fields and to the key template. Each error is reported at the
//! attribute, literal or field at fault.

use proc_macro2::Span;

use super::ast::{FieldModel, IndexKind, Invalidates, InvalidatesTag, Role};
use super::attr::FieldAttrs;
use crate::internals::ast::ModelField;
use crate::internals::ast::{Container, Field};
use crate::internals::ctxt::Ctxt;
use crate::internals::template::{self, KeyAttr, MAX_ID_PARTS, Template};

/// Attributes of one field that cannot go together, each reported at the
/// attribute that conflicts.
pub(crate) fn field_attrs(cx: &Ctxt, f: &Field<'_>, a: &FieldAttrs) {
    let roles: Vec<(&str, Span)> = [
        ("id", a.id),
        ("counter", a.counter),
        ("version", a.version),
        ("expires_at", a.expires_at),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    if let [(first, _), (second, span), ..] = roles.as_slice() {
        cx.error_at(
            *span,
            format!("`{second}` conflicts with `{first}`: a field has one role"),
        );
    }
    skip_conflicts(cx, a);
    if let (Some(_), Some((w, _))) = (a.json, &a.with) {
        cx.error_spanned_by(w, "`with` conflicts with `json`: choose one codec");
    }
    index_conflicts(cx, a);
    role_conflicts(cx, f, a);
}

fn skip_conflicts(cx: &Ctxt, a: &FieldAttrs) {
    let Some(s) = a.common.skip else { return };
    for (name, other) in [
        ("id", a.id),
        ("json", a.json),
        ("index", a.index),
        ("unique", a.unique),
        ("counter", a.counter),
        ("version", a.version),
        ("expires_at", a.expires_at),
    ] {
        if other.is_some() {
            cx.error_at(
                s,
                format!("`skip` conflicts with `{name}`: a skipped field is not stored"),
            );
        }
    }
    if a.with.is_some() || a.common.rename.is_some() {
        cx.error_at(
            s,
            "`skip` conflicts with `with` / `rename`: a skipped field is not stored",
        );
    }
}

fn index_conflicts(cx: &Ctxt, a: &FieldAttrs) {
    if let (Some(_), Some(u)) = (a.index, a.unique) {
        cx.error_at(
            u,
            "`unique` conflicts with `index`: a unique field is already indexed",
        );
    }
    for (name, flag) in [("index", a.index), ("unique", a.unique)] {
        let Some(s) = flag else { continue };
        if a.json.is_some() {
            cx.error_at(
                s,
                format!("`{name}` on a json field: indexes match exact stored strings, and JSON text is not a stable key; index a plain field instead"),
            );
        }
        if a.id.is_some() {
            cx.error_at(
                s,
                format!("`{name}` on an id field: ids are already the key"),
            );
        }
        if a.counter.is_some() || a.version.is_some() {
            cx.error_at(
                s,
                format!("`{name}` on a counter or version field: they change without index upkeep"),
            );
        }
    }
}

/// What the `id`, `counter` and `version` roles refuse.
fn role_conflicts(cx: &Ctxt, f: &Field<'_>, a: &FieldAttrs) {
    if let Some(s) = a.id {
        if f.option_inner.is_some() {
            cx.error_spanned_by(
                f.ty,
                "an id field cannot be an `Option`: every entity needs its id",
            );
        }
        if a.json.is_some() || a.with.is_some() {
            cx.error_at(
                s,
                "an id field is a key part: it cannot use `json` or `with`",
            );
        }
        if let Some((tokens, _)) = &a.common.default {
            cx.error_spanned_by(
                tokens,
                "`default` on an id field: an entity without its id cannot be loaded",
            );
        }
    }
    for (name, flag) in [("counter", a.counter), ("version", a.version)] {
        let Some(s) = flag else { continue };
        if f.option_inner.is_some() {
            cx.error_spanned_by(
                f.ty,
                format!("a {name} field cannot be an `Option`: use the number type itself"),
            );
        }
        if a.json.is_some() || a.with.is_some() {
            cx.error_at(
                s,
                format!("a {name} field is stored as a plain number: no `json` or `with`"),
            );
        }
    }
}

/// Across fields: an id exists, at most one `version` and one `expires_at`,
/// and no two stored fields share a hash field name.
pub(crate) fn fields(cx: &Ctxt, container: &Container<'_>, fields: &[FieldModel<'_>]) {
    let ident = container.ident;
    if container.named && !fields.iter().any(|f| f.role == Role::Id) {
        cx.error_spanned_by(
            ident,
            format!(
                "`{ident}` has no id: mark the field (or fields) that identify an entity with `#[redis(id)]`"
            ),
        );
    }
    for (role, name) in [(Role::Version, "version"), (Role::ExpiresAt, "expires_at")] {
        let marked: Vec<_> = fields.iter().filter(|f| f.role == role).collect();
        for extra in marked.iter().skip(1) {
            cx.error_at(
                extra.role_span,
                format!(
                    "a model has at most one `{name}` field, and `{}` already is `#[redis({name})]`",
                    marked[0].rust_name()
                ),
            );
        }
    }
    for (i, f) in fields.iter().enumerate() {
        if f.skip {
            continue;
        }
        if let Some(prev) = fields[..i].iter().find(|p| !p.skip && p.name == f.name) {
            cx.error_at(
                f.name_span,
                format!(
                    "two fields are stored under the hash field name `{}`: `{}` and `{}`; give one of them another `rename`",
                    f.name,
                    prev.rust_name(),
                    f.rust_name()
                ),
            );
        }
    }
}

/// The key template names exactly the id fields, each once. (An indexed
/// model whose key has no hash tag takes the bucketed layout: see `buckets`.)
pub(crate) fn template(
    cx: &Ctxt,
    container: &Container<'_>,
    t: &Template,
    key: &KeyAttr<'_>,
    fields: &[FieldModel<'_>],
) {
    let parts: Vec<&str> = t.parts().collect();
    let missing_ids: Vec<&str> = fields
        .iter()
        .filter(|f| f.role == Role::Id)
        .map(|f| f.rust_name())
        .filter(|n| !parts.contains(n))
        .collect();
    let mut unknown = false;
    for p in &parts {
        match fields.iter().find(|f| f.rust_name() == *p) {
            None => {
                unknown = true;
                key.error(cx, unknown_placeholder(container, p, &missing_ids));
            }
            Some(f) if f.role != Role::Id => key.error(cx, format!(
                "the key template names `{{{p}}}`, which is not an id field; mark it `#[redis(id)]` or remove it from the key"
            )),
            Some(_) => {}
        }
    }
    // A misspelt placeholder already names the id it misses: one error.
    if !unknown {
        for f in fields
            .iter()
            .filter(|f| missing_ids.contains(&f.rust_name()))
        {
            let name = f.rust_name();
            cx.error_spanned_by(
                f.ident(),
                format!(
                    "id field `{name}` does not appear in the key template `{}`; add `{{{name}}}` to it",
                    key.src
                ),
            );
        }
    }
    key.check_placeholders(cx, t);
}

fn unknown_placeholder(container: &Container<'_>, p: &str, missing_ids: &[&str]) -> String {
    let hint = match missing_ids {
        [] => String::new(),
        [one] => format!("; did you mean `{{{one}}}`?"),
        many => format!(
            "; the id fields missing from the key are {}",
            many.iter()
                .map(|n| format!("`{{{n}}}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "the key template names `{{{p}}}`, but `{}` has no field `{p}`{hint}",
        container.ident
    )
}

/// The number of buckets when the model has no `buckets` attribute and
/// an `index` on a key without a hash tag.
pub(crate) const DEFAULT_BUCKETS: u16 = 64;

/// `buckets = N`: the bucketed layout, for indexed models whose key has no
/// hash tag (the default there); 0 for the layout the key gives alone.
pub(crate) fn buckets(
    cx: &Ctxt,
    t: &Template,
    key: &KeyAttr<'_>,
    fields: &[FieldModel<'_>],
    lit: Option<&syn::LitInt>,
) -> u16 {
    let indexed = fields.iter().any(|f| f.index != IndexKind::None);
    let Some(lit) = lit else {
        return if indexed && !t.has_tag() {
            DEFAULT_BUCKETS
        } else {
            0
        };
    };
    let Some(n) = crate::internals::attr::bucket_count(cx, lit) else {
        return 0;
    };
    if t.has_tag() {
        cx.error_spanned_by(
            lit,
            format!(
                "`buckets` conflicts with the hash tag of the key `{}`: a hash tag puts every entity of a tag in one slot, buckets put each entity in the slot of its bucket; remove one of them",
                key.src
            ),
        );
        return 0;
    }
    if !indexed {
        cx.error_spanned_by(
            lit,
            "`buckets` on a model without an `index` field: its keys already spread over every slot; buckets partition indexes",
        );
        return 0;
    }
    n
}

/// `invalidates(Type = "a, b")`: the fields exist, are stored, and are at
/// most an id's worth.
pub(crate) fn invalidates(
    cx: &Ctxt,
    container: &Container<'_>,
    fields: &[FieldModel<'_>],
    raw: &[(syn::Path, syn::LitStr)],
) -> Vec<Invalidates> {
    let mut out = Vec::new();
    for (ty, lit) in raw {
        let names: Vec<String> = lit
            .value()
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect();
        if names.iter().any(String::is_empty) {
            cx.error_spanned_by(
                lit,
                "list the fields that make the cached entry's id, separated by commas: `invalidates(ProductView = \"id\")`",
            );
            continue;
        }
        if names.len() > MAX_ID_PARTS {
            cx.error_spanned_by(lit, format!("an id has at most {MAX_ID_PARTS} parts"));
            continue;
        }
        let mut ok = true;
        for n in &names {
            ok &= dependency_field(cx, container, fields, lit, n, "`invalidates`");
        }
        if ok {
            out.push(Invalidates {
                ty: ty.clone(),
                fields: names,
                span: lit.span(),
            });
        }
    }
    out
}

/// `invalidates_tag(Type = "template")`: a tag template over stored fields.
pub(crate) fn invalidates_tags(
    cx: &Ctxt,
    container: &Container<'_>,
    fields: &[FieldModel<'_>],
    raw: &[(syn::Path, syn::LitStr)],
) -> Vec<InvalidatesTag> {
    raw.iter()
        .filter_map(|(ty, lit)| {
            let t = template::parse_tag(cx, lit)?;
            for p in t.parts() {
                dependency_field(cx, container, fields, lit, p, "the tag");
            }
            Some(InvalidatesTag {
                ty: ty.clone(),
                template: t,
            })
        })
        .collect()
}

/// A field an invalidation names must exist and be stored (a delete reads
/// the entity back to find the entries).
fn dependency_field(
    cx: &Ctxt,
    container: &Container<'_>,
    fields: &[FieldModel<'_>],
    lit: &syn::LitStr,
    name: &str,
    what: &str,
) -> bool {
    match fields.iter().find(|f| f.rust_name() == name) {
        Some(f) if f.skip => {
            cx.error_spanned_by(
                lit,
                format!("{what} names `{name}`, which is `skip`ped: a delete reads the entity back, and a skipped field is not stored"),
            );
            false
        }
        Some(_) => true,
        None => {
            let names: Vec<String> = fields
                .iter()
                .map(|f| format!("`{}`", f.rust_name()))
                .collect();
            cx.error_spanned_by(
                lit,
                format!(
                    "{what} names `{name}`, but `{}` has no such field; its fields are {}",
                    container.ident,
                    names.join(", ")
                ),
            );
            false
        }
    }
}
