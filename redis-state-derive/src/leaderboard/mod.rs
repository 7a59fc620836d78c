//! `#[derive(Leaderboard)]`: `attr` reads `#[leaderboard(...)]`, `ast`
//! normalises it into the model (each field's role, the choices as enums)
//! with the checks of `check` and the tie-break arithmetic of `tie`,
//! `expand` generates the schema and the field code.

mod ast;
mod attr;
mod check;
mod expand;
mod tie;

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
