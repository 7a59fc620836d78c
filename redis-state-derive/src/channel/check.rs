//! `#[derive(Channel)]`: the checks that relate the name template to the
//! fields, each reported at the literal or field at fault.

use crate::internals::ast::{Container, Field};
use crate::internals::ctxt::Ctxt;
use crate::internals::template::{KeyAttr, Template};

/// A struct with named fields or a unit struct; `true` for a unit struct.
pub(crate) fn shape(cx: &Ctxt, input: &syn::DeriveInput) -> bool {
    match &input.data {
        syn::Data::Struct(s) => match &s.fields {
            syn::Fields::Named(_) => false,
            syn::Fields::Unit => true,
            syn::Fields::Unnamed(_) => {
                cx.error_spanned_by(
                    &input.ident,
                    "Channel cannot be derived for a tuple struct: a channel's fields are the named parts of its name template (`user:{id}:events` with a field `id`)",
                );
                false
            }
        },
        _ => {
            cx.error_spanned_by(
                &input.ident,
                "Channel can be derived for a struct only: its fields are the named parts of its name template",
            );
            false
        }
    }
}

/// Every placeholder names a field, once; every field is a placeholder (a
/// pattern subscription rebuilds the whole struct from the name). Returns
/// the fields in template order.
pub(crate) fn placeholders<'a>(
    cx: &Ctxt,
    container: &Container<'a>,
    key: &KeyAttr<'_>,
    t: &Template,
) -> Vec<Field<'a>> {
    key.check_placeholders(cx, t);
    let mut fields = Vec::new();
    for p in t.parts() {
        match container.field(p) {
            Some(f) => fields.push(f.clone()),
            None => key.error(
                cx,
                format!(
                    "the name template names `{{{p}}}`, which is not a field; {}",
                    container.field_list()
                ),
            ),
        }
    }
    for f in &container.fields {
        if !t.parts().any(|p| p == f.rust_name) {
            cx.error_spanned_by(
                f.ident,
                format!(
                    "field `{}` is not in the channel's name template `{}`: every field of a channel is a part of its name, so that a pattern subscription can rebuild it; add `{{{}}}` to the name or remove the field",
                    f.rust_name, key.src, f.rust_name
                ),
            );
        }
    }
    fields
}
