//! `#[derive(Leaderboard)]`.

mod ast;
mod expand;

use proc_macro2::TokenStream;

pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    crate::internals::derive::run(
        input,
        "leaderboard",
        ast::parse,
        expand::expand,
        expand::fallback,
    )
}
