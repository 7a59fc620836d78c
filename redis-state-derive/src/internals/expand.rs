//! Pieces of generated code every derive emits the same way.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use super::attr::parse_path;
use super::template::{TSeg, Template};

/// The block every expansion sits in: `const _: () = { ... };`, so that its
/// items name nothing in the user's scope, with the lints that generated
/// code should not trigger allowed.
pub(crate) fn const_block(body: TokenStream) -> TokenStream {
    quote! {
        #[allow(non_upper_case_globals, dead_code, clippy::all, clippy::pedantic)]
        const _: () = {
            #body
        };
    }
}

/// `p::Some(v)` or `p::None`, `p` being the runtime's `__private` path.
pub(crate) fn option<T: ToTokens>(p: &TokenStream, v: Option<T>) -> TokenStream {
    match v {
        Some(v) => quote!(#p::Some(#v)),
        None => quote!(#p::None),
    }
}

/// The runtime's `KeyTemplate` constant for `t`: its segments (placeholders
/// numbered in order), its hash-tag scope and the model's namespace.
pub(crate) fn key_template(p: &TokenStream, t: &Template, namespace: Option<&str>) -> TokenStream {
    let mut n = 0u8;
    let segs = t.segs.iter().map(|s| match s {
        TSeg::Lit(l) => quote!(#p::Seg::Lit(#l)),
        TSeg::Part(_) => {
            let i = n;
            n += 1;
            quote!(#p::Seg::Part(#i))
        }
    });
    let scope = option(p, t.scope);
    let namespace = option(p, namespace);
    quote! {
        #p::KeyTemplate {
            segs: &[#(#segs),*],
            scope: #scope,
            namespace: #namespace,
        }
    }
}

/// `T` for one item, the tuple `(A, B, ...)` for several (`()` for none):
/// the type of an id made of key parts, or the expression building it.
pub(crate) fn tuple<T: ToTokens>(items: &[T]) -> TokenStream {
    match items {
        [one] => quote!(#one),
        many => quote!((#(#many,)*)),
    }
}

/// Where-clause predicates a generated impl adds to the user's, each once.
///
/// `push` writes them `for<'__r> Ty: Trait`: the binder keeps rustc from
/// checking a bound that names no generic parameter at the impl (a
/// "trivial bound"), so an unmet one makes the impl not apply instead of
/// failing inside it; the derive's assertions then report it once, at the
/// field type.
#[derive(Default)]
pub(crate) struct Bounds {
    pub(crate) preds: Vec<TokenStream>,
}

impl Bounds {
    /// Adds `for<'__r> pred`, unless it is there already.
    pub(crate) fn push(&mut self, pred: TokenStream) {
        self.push_plain(quote!(for<'__r> #pred));
    }

    /// Adds `pred` as it is, unless it is there already.
    pub(crate) fn push_plain(&mut self, pred: TokenStream) {
        let text = pred.to_string();
        if !self.preds.iter().any(|p| p.to_string() == text) {
            self.preds.push(pred);
        }
    }

    /// `where <the user's predicates>, <these>,`, or nothing when both are
    /// empty.
    pub(crate) fn where_clause(&self, generics: &syn::Generics) -> TokenStream {
        let user = user_preds(generics);
        let extra = &self.preds;
        if user.is_empty() && extra.is_empty() {
            quote!()
        } else {
            quote!(where #(#user,)* #(#extra,)*)
        }
    }
}

/// The predicates of the type's own where-clause.
pub(crate) fn user_preds(generics: &syn::Generics) -> Vec<&syn::WherePredicate> {
    generics
        .where_clause
        .as_ref()
        .map(|w| w.predicates.iter().collect())
        .unwrap_or_default()
}

/// For a fallback impl: names what the field attributes `keys` (`with`,
/// `default`) of `#[ns(...)]` name, read leniently, so that the imports and
/// functions only the real expansion would use do not add "unused"
/// warnings beside the real error.
pub(crate) fn fallback_uses(input: &syn::DeriveInput, ns: &str, keys: &[&str]) -> TokenStream {
    let syn::Data::Struct(data) = &input.data else {
        return TokenStream::new();
    };
    let mut uses = Vec::new();
    for f in &data.fields {
        super::attr::lenient(&f.attrs, ns, |meta| {
            let is_with = meta.path.is_ident("with");
            let is_default = meta.path.is_ident("default");
            if !keys.iter().any(|k| meta.path.is_ident(k))
                || !(is_with || is_default)
                || !meta.input.peek(syn::Token![=])
            {
                return;
            }
            let Ok(path) = parse_path(meta) else { return };
            let ty = &f.ty;
            uses.push(if is_with {
                quote!(let _: ::core::marker::PhantomData<#path>;)
            } else {
                quote!(let _: fn() -> #ty = #path;)
            });
        });
    }
    if uses.is_empty() {
        return TokenStream::new();
    }
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let ident = &input.ident;
    quote! {
        impl #impl_g #ident #ty_g #where_c {
            #[allow(dead_code)]
            fn __redis_state_uses() {
                #(#uses)*
            }
        }
    }
}
