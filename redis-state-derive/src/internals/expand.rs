//! Pieces of generated code every derive emits the same way.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use super::attr::parse_path;
use super::template::{Segment, Template};

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
    let segs = t.segments().iter().map(|s| match s {
        Segment::Part(_) => {
            let i = n;
            n += 1;
            quote!(#p::Seg::Part(#i))
        }
        Segment::Lit(l) => quote!(#p::Seg::Lit(#l)),
        _ => quote!(),
    });
    let scope = option(p, t.scope());
    let namespace = option(p, namespace);
    quote! {
        #p::KeyTemplate {
            segs: &[#(#segs),*],
            scope: #scope,
            namespace: #namespace,
        }
    }
}

/// A value built by a chain of named setters, as the runtime's schema
/// types take it: `Start.with_ttl_ms(600_000u64).with_version(2u32)`, so
/// that `cargo expand` names every value.
pub(crate) struct Chain {
    tokens: TokenStream,
}

impl Chain {
    /// Starts from `start` (`p::CacheSchema::of("Product")`).
    pub(crate) fn new(start: TokenStream) -> Self {
        Chain { tokens: start }
    }

    /// Appends `.with_<name>(value)`.
    pub(crate) fn with(mut self, name: &str, value: impl ToTokens) -> Self {
        let method = quote::format_ident!("with_{}", name);
        self.tokens = {
            let start = &self.tokens;
            quote!(#start.#method(#value))
        };
        self
    }

    /// Appends `.with_<name>(value)` when there is a value.
    pub(crate) fn with_some(self, name: &str, value: Option<impl ToTokens>) -> Self {
        match value {
            Some(v) => self.with(name, v),
            None => self,
        }
    }

    /// Appends `.with_<name>(true)` when `flag` is set.
    pub(crate) fn with_flag(self, name: &str, flag: bool) -> Self {
        if flag { self.with(name, true) } else { self }
    }
}

impl ToTokens for Chain {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.tokens.to_tokens(tokens);
    }
}

/// An integer literal with its suffix and `_` between groups of three
/// digits (`600_000u64`), so that durations read at a glance.
pub(crate) fn int_lit(value: impl Into<u128>, suffix: &str) -> syn::LitInt {
    let digits = value.into().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + suffix.len());
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('_');
        }
        grouped.push(c);
    }
    grouped.push_str(suffix);
    syn::LitInt::new(&grouped, proc_macro2::Span::call_site())
}

/// [`int_lit`] for a signed value: `-` and the literal when negative.
pub(crate) fn signed_lit(value: i64, suffix: &str) -> TokenStream {
    let lit = int_lit(value.unsigned_abs(), suffix);
    if value < 0 {
        quote!(-#lit)
    } else {
        quote!(#lit)
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
