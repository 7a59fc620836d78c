//! `#[derive(Cached)]`: the model the expansion reads, normalised from the
//! attributes: durations in milliseconds, the key and the tags over fields.

use super::attr::ContainerAttrs;
use super::check;
use crate::internals::ast::{Container, Field};
use crate::internals::attr::check_namespace;
use crate::internals::case::to_snake;
use crate::internals::ctxt::Ctxt;
use crate::internals::template::{KeyAttr, Template};

pub(crate) struct Model<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) generics: &'a syn::Generics,
    pub(crate) krate: syn::Path,
    pub(crate) template: Template,
    /// The explicit id type, or `None` when the key is made of fields.
    pub(crate) id: Option<syn::Type>,
    /// The fields the key names, in template order (without `id`).
    pub(crate) key_fields: Vec<Field<'a>>,
    pub(crate) times: Times,
    pub(crate) version: u32,
    pub(crate) beta: f64,
    /// `format = "plain"`: the JSON alone.
    pub(crate) plain: bool,
    pub(crate) namespace: Option<String>,
    pub(crate) tags: Vec<Tag<'a>>,
    /// The bucketed layout's number of buckets (0: not bucketed).
    pub(crate) buckets: u16,
}

/// The entry's times, in milliseconds.
pub(crate) struct Times {
    pub(crate) ttl_ms: u64,
    pub(crate) jitter_ms: u64,
    pub(crate) stale_ms: u64,
    pub(crate) negative_ttl_ms: Option<u64>,
}

/// `tag = "category:{category}"`: the template and the fields it names.
pub(crate) struct Tag<'a> {
    pub(crate) template: Template,
    pub(crate) fields: Vec<Field<'a>>,
}

/// Reads, normalises and checks the input; `None` after an error.
pub(crate) fn parse<'a>(cx: &Ctxt, input: &'a syn::DeriveInput) -> Option<Model<'a>> {
    // Any type can be cached; named fields serve key and tag placeholders.
    let container = Container::read(input);
    let attrs = ContainerAttrs::from_ast(cx, input);
    let times = check::times(cx, &container, &attrs);
    let plain = check::format(cx, &attrs);

    let key = KeyAttr::new(attrs.common.key.clone(), &input.ident, || {
        format!("{}:{{id}}", to_snake(&input.ident.to_string()))
    });
    let template = key.parse(cx, None);
    let mut key_fields = Vec::new();
    let mut buckets = 0;
    if let Some(t) = &template {
        key_fields = check::key(cx, &container, &key, t, attrs.id.is_some());
        buckets = check::buckets(cx, t, &key, attrs.buckets.as_ref());
    }
    let tags = check::tags(cx, &container, &attrs.tags);
    let namespace = check_namespace(cx, attrs.common.namespace.as_ref());

    if cx.has_errors() {
        return None;
    }
    Some(Model {
        ident: &input.ident,
        generics: &input.generics,
        krate: attrs.common.krate,
        template: template?,
        id: attrs.id.map(|(_, ty)| ty),
        key_fields,
        times,
        version: attrs.version.unwrap_or(1),
        beta: attrs.beta.unwrap_or(1.0),
        plain,
        namespace,
        tags,
        buckets,
    })
}
