//! What every derive does around its own parse and expansion: the error
//! collector, the fallback impl beside errors, the struct shape.

use proc_macro2::TokenStream;

use super::attr::crate_path;
use super::ctxt::Ctxt;

/// Most parts a key may have (the runtime's `MAX_ID_PARTS`).
pub(crate) const MAX_ID_PARTS: usize = 8;

/// Runs a derive: `parse` checks the input into a model, reporting into a
/// collector; without errors the model is expanded, with errors they are
/// emitted beside `fallback`, a stand-in impl (for the crate path given by
/// `crate = "..."` in `#[ns(...)]`) so that uses of the type add no
/// follow-on errors.
pub(crate) fn run<'a, M>(
    input: &'a syn::DeriveInput,
    ns: &str,
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
            out.extend(fallback(input, &crate_path(input, ns)));
            out
        }
        // Unreachable in practice: parse returns None only after an error.
        (Ok(()), None) => fallback(input, &crate_path(input, ns)),
    }
}

/// The named fields of a struct; any other shape is reported at the type's
/// name: ``<derive> cannot be derived for a tuple struct: <purpose>``.
pub(crate) fn named_fields<'a>(
    cx: &Ctxt,
    input: &'a syn::DeriveInput,
    derive: &str,
    purpose: &str,
) -> Option<&'a syn::FieldsNamed> {
    let what = match &input.data {
        syn::Data::Struct(s) => match &s.fields {
            syn::Fields::Named(named) => return Some(named),
            syn::Fields::Unnamed(_) => "a tuple struct",
            syn::Fields::Unit => "a unit struct",
        },
        syn::Data::Enum(_) => "an enum",
        syn::Data::Union(_) => "a union",
    };
    cx.error_spanned_by(
        &input.ident,
        format!("{derive} cannot be derived for {what}: {purpose}"),
    );
    None
}

/// A field's name as written in templates and messages (without `r#`).
pub(crate) fn rust_name(ident: &syn::Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}
