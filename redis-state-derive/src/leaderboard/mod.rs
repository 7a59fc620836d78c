//! `#[derive(Leaderboard)]`.

mod ast;
mod expand;

use proc_macro2::TokenStream;

use crate::internals::ctxt::Ctxt;

pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let model = ast::parse(&cx, input);
    match (cx.check(), model) {
        (Ok(()), Some(model)) => expand::expand(&model),
        (Err(errors), _) => {
            let krate = crate_path(input);
            let mut out = errors.to_compile_error();
            out.extend(expand::fallback(input, &krate));
            out
        }
        (Ok(()), None) => expand::fallback(input, &crate_path(input)),
    }
}

/// The `crate = "..."` override, read leniently for the fallback impl.
fn crate_path(input: &syn::DeriveInput) -> syn::Path {
    let mut krate: syn::Path = syn::parse_quote!(::redis_state);
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("leaderboard"))
    {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                if let Ok(p) = crate::internals::attr::parse_path(&meta) {
                    krate = p;
                }
            } else if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|inner| {
                    if inner.input.peek(syn::Token![=]) {
                        let _: syn::Expr = inner.value()?.parse()?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        });
    }
    krate
}
