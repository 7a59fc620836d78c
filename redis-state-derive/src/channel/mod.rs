//! `#[derive(Channel)]`: `attr` reads `#[channel(...)]`, `ast` normalises
//! it into the model (the name template over the fields, the message type
//! and format) with the checks of `check`, `expand` generates the schema,
//! the name writer and the parser of names back into the type.

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
