//! `#[derive(Channel)]`: the model the expansion reads, normalised from the
//! attributes: the name template and the fields it names, in order.

use super::attr::{ContainerAttrs, Format};
use super::check;
use crate::internals::ast::{Container, Field};
use crate::internals::ctxt::Ctxt;
use crate::internals::template::{KeyAttr, Template};

pub(crate) struct Model<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) generics: &'a syn::Generics,
    pub(crate) krate: syn::Path,
    pub(crate) template: Template,
    /// The fields the name's placeholders name, in template order.
    pub(crate) parts: Vec<Field<'a>>,
    /// `Self { .. }` or, for a unit struct, `Self`.
    pub(crate) unit: bool,
    pub(crate) message: syn::Type,
    pub(crate) format: Format,
    pub(crate) sharded: bool,
}

/// Reads, normalises and checks the input; `None` after an error.
pub(crate) fn parse<'a>(cx: &Ctxt, input: &'a syn::DeriveInput) -> Option<Model<'a>> {
    let before = cx.has_errors();
    let unit = check::shape(cx, input);
    // A wrong shape is the one error: its fields are no parts to check.
    let shaped = cx.has_errors() == before;
    let container = Container::read(input);
    let attrs = ContainerAttrs::from_ast(cx, input);
    if attrs.name.is_none() {
        cx.error_spanned_by(
            &input.ident,
            "a channel needs a name template: add `#[channel(name = \"user:{id}:events\")]`",
        );
    }
    if attrs.message.is_none() {
        cx.error_spanned_by(
            &input.ident,
            "a channel needs a message type: add `#[channel(message = MyEvent)]` (or `message = String, format = \"plain\"`)",
        );
    }
    let key = KeyAttr::new(attrs.name.clone(), &input.ident, String::new);
    let mut template = None;
    let mut parts = Vec::new();
    if attrs.name.is_some() && shaped {
        template = key.parse(cx, None);
        if let Some(t) = &template {
            parts = check::placeholders(cx, &container, &key, t);
        }
    }
    if cx.has_errors() {
        return None;
    }
    Some(Model {
        ident: &input.ident,
        generics: &input.generics,
        krate: attrs.common.krate,
        template: template?,
        parts,
        unit,
        message: attrs.message?,
        format: attrs.format.unwrap_or(Format::Json),
        sharded: attrs.sharded,
    })
}
