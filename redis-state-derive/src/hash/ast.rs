//! `#[derive(RedisHash)]`: the model the expansion reads, normalised from
//! the attributes (roles, codecs and indexes as enums, stored names
//! resolved, the key template parsed).

use proc_macro2::Span;
use syn::spanned::Spanned;

use super::attr::{ContainerAttrs, FieldAttrs};
use super::check;
use crate::internals::ast::{Container, Field, ModelField};
pub(crate) use crate::internals::attr::DefaultKind;
use crate::internals::attr::check_namespace;
use crate::internals::case::to_snake;
use crate::internals::ctxt::Ctxt;
use crate::internals::template::{KeyAttr, Template};

pub(crate) struct Model<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) vis: &'a syn::Visibility,
    pub(crate) generics: &'a syn::Generics,
    pub(crate) krate: syn::Path,
    pub(crate) template: Template,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) namespace: Option<String>,
    pub(crate) collection: String,
    /// Saves write the id fields into the hash (`store_id = false`: no).
    pub(crate) store_id: bool,
    /// The bucketed layout's number of buckets (0: not bucketed).
    pub(crate) buckets: u16,
    pub(crate) fields: Vec<FieldModel<'a>>,
    /// `invalidates(Type = "field, field")`.
    pub(crate) invalidates: Vec<Invalidates>,
    /// `invalidates_tag(Type = "template")`.
    pub(crate) invalidates_tags: Vec<InvalidatesTag>,
}

/// Cached entries of `ty` whose id is made of `fields` depend on the entity.
pub(crate) struct Invalidates {
    pub(crate) ty: syn::Path,
    pub(crate) fields: Vec<String>,
    /// The field list's literal, where a mismatch of the id is reported.
    pub(crate) span: Span,
}

/// A tag over the entity's fields, carried by entries of the cached type
/// `ty` (whose namespace holds the tag set).
pub(crate) struct InvalidatesTag {
    pub(crate) ty: syn::Path,
    pub(crate) template: Template,
}

/// How a field's value is written.
#[derive(Clone)]
pub(crate) enum Codec {
    /// Its `FieldValue` form.
    Plain,
    /// `#[redis(json)]`.
    Json,
    /// `#[redis(with = path)]`.
    With(syn::Path),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Id,
    Data,
    Counter,
    Version,
    ExpiresAt,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    None,
    Index,
    Unique,
}

pub(crate) struct FieldModel<'a> {
    pub(crate) field: Field<'a>,
    /// The hash field name.
    pub(crate) name: String,
    /// The `rename` literal, else the field name.
    pub(crate) name_span: Span,
    pub(crate) skip: bool,
    pub(crate) codec: Codec,
    pub(crate) codec_span: Span,
    pub(crate) role: Role,
    /// The `id` / `counter` / `version` / `expires_at` attribute.
    pub(crate) role_span: Span,
    pub(crate) index: IndexKind,
    pub(crate) default: DefaultKind,
}

impl<'a> FieldModel<'a> {
    fn new(cx: &Ctxt, field: Field<'a>, a: &FieldAttrs, attrs: &ContainerAttrs) -> Self {
        let (name, name_span) = field.stored_name(
            cx,
            a.common.rename.as_ref(),
            attrs.common.rename_all,
            "field",
        );
        let (codec, codec_span) = match (a.json, &a.with) {
            (_, Some((tokens, path))) => (Codec::With(path.clone()), tokens.span()),
            (Some(s), None) => (Codec::Json, s),
            (None, None) => (Codec::Plain, field.ty.span()),
        };
        let (role, role_span) = [
            (Role::Id, a.id),
            (Role::Counter, a.counter),
            (Role::Version, a.version),
            (Role::ExpiresAt, a.expires_at),
        ]
        .into_iter()
        .find_map(|(role, span)| span.map(|s| (role, s)))
        .unwrap_or((Role::Data, Span::call_site()));
        let index = match (a.unique, a.index) {
            (Some(_), _) => IndexKind::Unique,
            (None, Some(_)) => IndexKind::Index,
            (None, None) => IndexKind::None,
        };
        FieldModel {
            field,
            name,
            name_span,
            skip: a.common.skip.is_some(),
            codec,
            codec_span,
            role,
            role_span,
            index,
            default: a.common.default_kind(),
        }
    }
}

impl<'a> ModelField<'a> for FieldModel<'a> {
    fn field(&self) -> &Field<'a> {
        &self.field
    }
}

/// Reads, normalises and checks the input; `None` after an error.
pub(crate) fn parse<'a>(cx: &Ctxt, input: &'a syn::DeriveInput) -> Option<Model<'a>> {
    let container = Container::named_struct(
        cx,
        input,
        "RedisHash",
        "it maps a struct with named fields onto a Redis hash",
    );
    let attrs = ContainerAttrs::from_ast(cx, input);
    let mut fields = Vec::new();
    for field in &container.fields {
        let a = FieldAttrs::from_ast(cx, field);
        check::field_attrs(cx, field, &a);
        fields.push(FieldModel::new(cx, field.clone(), &a, &attrs));
    }
    let namespace = check_namespace(cx, attrs.common.namespace.as_ref());
    let collection = collection(cx, input, attrs.collection.as_ref());
    check::fields(cx, &container, &fields);

    let key = KeyAttr::new(attrs.common.key.clone(), &input.ident, || {
        default_key(input, &fields)
    });
    let template = key.parse(cx, attrs.common.hash_tag.as_ref());
    let mut buckets = 0;
    if let Some(t) = &template {
        check::template(cx, &container, t, &key, &fields);
        buckets = check::buckets(cx, t, &key, &fields, attrs.buckets.as_ref());
    }
    let invalidates = check::invalidates(cx, &container, &fields, &attrs.invalidates);
    let invalidates_tags =
        check::invalidates_tags(cx, &container, &fields, &attrs.invalidates_tags);

    if !container.named || cx.has_errors() {
        return None;
    }
    Some(Model {
        ident: &input.ident,
        vis: &input.vis,
        generics: &input.generics,
        krate: attrs.common.krate,
        template: template?,
        ttl_ms: attrs.ttl_ms,
        namespace,
        collection,
        store_id: attrs.store_id.unwrap_or(true),
        buckets,
        fields,
        invalidates,
        invalidates_tags,
    })
}

/// `collection = "..."` (ASCII letters, digits, `_`, `-`, `.`), else the
/// snake_case type name.
fn collection(cx: &Ctxt, input: &syn::DeriveInput, lit: Option<&syn::LitStr>) -> String {
    let Some(lit) = lit else {
        return to_snake(&input.ident.to_string());
    };
    let v = lit.value();
    let valid = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        cx.error_spanned_by(
            lit,
            "invalid collection: use ASCII letters, digits, `_`, `-` and `.`",
        );
    }
    v
}

/// `user_profile:{id}` for `UserProfile` with id field `id`.
fn default_key(input: &syn::DeriveInput, fields: &[FieldModel<'_>]) -> String {
    let mut s = to_snake(&input.ident.to_string());
    for f in fields.iter().filter(|f| f.role == Role::Id) {
        s.push_str(&format!(":{{{}}}", f.rust_name()));
    }
    s
}
