//! `#[derive(Cached)]`: `attr` reads `#[cache(...)]`, `ast` normalises it
//! into the model (durations in milliseconds, the key and tags over fields)
//! with the checks of `check`, `expand` generates the schema and the key
//! and tag writers.

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
