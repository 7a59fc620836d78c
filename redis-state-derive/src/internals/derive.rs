//! What every derive does around its own parse and expansion: the error
//! collector and the fallback impl beside errors.

use proc_macro2::TokenStream;

use super::attr::crate_path;
use super::ctxt::Ctxt;

/// Runs a derive: `parse` reads and checks the input into a model,
/// reporting into a collector; without errors the model is expanded, with
/// errors they are emitted beside `fallback`, a stand-in impl (for the crate
/// path given by `crate = "..."` in `#[path(...)]`) so that uses of the type
/// add no follow-on errors.
pub(crate) fn run<'a, M>(
    input: &'a syn::DeriveInput,
    path: &str,
    parse: impl FnOnce(&Ctxt, &'a syn::DeriveInput) -> Option<M>,
    expand: impl FnOnce(&M) -> TokenStream,
    fallback: impl FnOnce(&syn::DeriveInput, &syn::Path) -> TokenStream,
) -> TokenStream {
    let cx = Ctxt::new();
    let model = parse(&cx, input);
    match (cx.check(), model) {
        (Ok(()), Some(model)) => expand(&model),
        (Err(errors), _) => {
            let mut out = errors.to_compile_error();
            out.extend(fallback(input, &crate_path(input, path)));
            out
        }
        // Unreachable in practice: parse returns None only after an error.
        (Ok(()), None) => fallback(input, &crate_path(input, path)),
    }
}
