//! `#[derive(Cached)]`: the checks that relate the attributes to each other
//! and to the fields, each reported at the attribute or literal at fault.

use super::ast::{Tag, Times};
use super::attr::{ContainerAttrs, Jitter};
use crate::internals::ast::{Container, Field};
use crate::internals::ctxt::Ctxt;
use crate::internals::template::{self, KeyAttr, Template};

/// A ttl is required; the jitter and the negative ttl stay within it.
pub(crate) fn times(cx: &Ctxt, container: &Container<'_>, attrs: &ContainerAttrs) -> Times {
    let ttl = attrs.ttl;
    if ttl.is_none() && !attrs.ttl_given {
        cx.error_spanned_by(
            container.ident,
            "a cached type needs a time to live: add `#[cache(ttl = \"10m\")]`",
        );
    }
    let ttl_ms = ttl.map_or(0, |(ms, _)| ms);
    let jitter_ms = match &attrs.jitter {
        None => 0,
        Some((Jitter::Percent(p), _)) => ttl_ms.saturating_mul(*p) / 100,
        Some((Jitter::Ms(ms), lit)) => {
            if ttl.is_some() && *ms > ttl_ms {
                cx.error_spanned_by(
                    lit,
                    format!("jitter ({ms} ms) is longer than the ttl ({ttl_ms} ms): entries would live more than twice as long as asked; use a smaller jitter or a percentage like \"10%\""),
                );
            }
            *ms
        }
    };
    if let (Some((neg, span)), Some(_)) = (attrs.negative, ttl)
        && neg > ttl_ms
    {
        cx.error_at(
            span,
            format!("negative_ttl ({neg} ms) is longer than the ttl ({ttl_ms} ms): \"not found\" would be remembered longer than values; shorten it"),
        );
    }
    Times {
        ttl_ms,
        jitter_ms,
        stale_ms: attrs.stale_ms.unwrap_or(0),
        negative_ttl_ms: attrs.negative.map(|(ms, _)| ms),
    }
}

/// `format = "plain"` stores the JSON alone: nothing that needs the
/// envelope's header goes with it.
pub(crate) fn format(cx: &Ctxt, attrs: &ContainerAttrs) -> bool {
    let Some(span) = attrs.plain else {
        return false;
    };
    let needs_header = [
        (
            attrs.stale_ms.is_some(),
            "stale",
            "the time an entry stops being fresh",
        ),
        (
            attrs.negative.is_some(),
            "negative_ttl",
            "the not-found marker",
        ),
        (attrs.version.is_some(), "version", "the format version"),
        (
            attrs.beta.is_some(),
            "beta",
            "the loader's time that XFetch needs",
        ),
    ];
    for (given, name, what) in needs_header {
        if given {
            cx.error_at(
                span,
                format!("`{name}` needs {what}, which only the envelope stores, and `format = \"plain\"` stores the JSON alone: drop `{name}` or the plain format"),
            );
        }
    }
    true
}

/// The key has placeholders, each once; without an explicit id they name
/// fields, which are returned in template order.
pub(crate) fn key<'a>(
    cx: &Ctxt,
    container: &Container<'a>,
    key: &KeyAttr<'_>,
    t: &Template,
    explicit_id: bool,
) -> Vec<Field<'a>> {
    if t.parts().next().is_none() {
        key.error(cx, "the key template needs at least one placeholder: entries of different ids would share one key".to_owned());
    }
    key.check_placeholders(cx, t);
    if explicit_id {
        return Vec::new();
    }
    let mut fields = Vec::new();
    for p in t.parts() {
        match container.field(p) {
            Some(f) => fields.push(f.clone()),
            None if key.is_default() => cx.error_spanned_by(
                container.ident,
                format!(
                    "the default key `{}` names a field `id`, and {}; give a key template over fields (`#[cache(key = \"product:{{sku}}\")]`) or an explicit id type (`#[cache(id = u64)]`)",
                    key.src,
                    container.field_list()
                ),
            ),
            None => key.error(
                cx,
                format!(
                    "the key template names `{{{p}}}`, but {}; name fields, or give an explicit id type with `id = Type`",
                    container.field_list()
                ),
            ),
        }
    }
    fields
}

/// Each tag once, each a tag template over fields.
pub(crate) fn tags<'a>(cx: &Ctxt, container: &Container<'a>, lits: &[syn::LitStr]) -> Vec<Tag<'a>> {
    let mut tags = Vec::new();
    for (i, lit) in lits.iter().enumerate() {
        if lits[..i].iter().any(|t| t.value() == lit.value()) {
            cx.error_spanned_by(lit, "duplicate tag");
            continue;
        }
        let Some(t) = template::parse_tag(cx, lit) else {
            continue;
        };
        let mut fields = Vec::new();
        for p in t.parts() {
            match container.field(p) {
                Some(f) => fields.push(f.clone()),
                None => cx.error_spanned_by(
                    lit,
                    format!("the tag names `{{{p}}}`, but {}", container.field_list()),
                ),
            }
        }
        tags.push(Tag {
            template: t,
            fields,
        });
    }
    tags
}

/// `buckets = N`: the bucketed layout, opt-in for cached types (entries
/// keep the layout their key gives unless asked): 1 to 16384, on a key
/// without a hash tag. 0 when not given.
pub(crate) fn buckets(
    cx: &Ctxt,
    t: &Template,
    key: &KeyAttr<'_>,
    lit: Option<&syn::LitInt>,
) -> u16 {
    let Some(lit) = lit else {
        return 0;
    };
    let Some(n) = crate::internals::attr::bucket_count(cx, lit) else {
        return 0;
    };
    if t.has_tag() {
        cx.error_spanned_by(
            lit,
            format!(
                "`buckets` conflicts with the hash tag of the key `{}`: a hash tag puts every entry of a tag in one slot, buckets put each entry in the slot of its bucket; remove one of them",
                key.src
            ),
        );
        return 0;
    }
    n
}
