//! `#[derive(RedisHash)]`: `attr` reads `#[redis(...)]`, `ast` normalises
//! it into the model, `check` relates attributes, fields and the key
//! template, `expand` generates the schema and the field code.

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;

pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    crate::internals::derive::run(
        input,
        attr::PATH,
        ast::parse,
        expand::expand,
        expand::fallback,
    )
}
