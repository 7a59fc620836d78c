//! `#[derive(Cached)]`: generate the schema and the key and tag writers;
//! the strategies are generic runtime code.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::Model;
use super::attr::PATH;
use crate::internals::ast::{Container, Field};
use crate::internals::attr::{lenient_str, parse_type};
use crate::internals::case::to_snake;
use crate::internals::expand::{Bounds, Chain, const_block, int_lit, key_template, tuple};
use crate::internals::template::Template;

pub(crate) fn expand(m: &Model<'_>) -> TokenStream {
    let krate = &m.krate;
    let p = quote!(#krate::__private);
    let ident = m.ident;
    let (impl_g, ty_g, where_c) = m.generics.split_for_impl();
    let trait_where = bounds(m, &p).where_clause(m.generics);
    let id_ty = match &m.id {
        Some(ty) => quote!(#ty),
        None => tuple(&m.key_fields.iter().map(|f| f.ty).collect::<Vec<_>>()),
    };
    let schema = schema(m, &p);
    let tag_blocks = m.tags.iter().map(|tag| {
        let template = key_template(&p, &tag.template, None);
        let writes = tag.fields.iter().map(|f| {
            let fi = f.ident;
            quote!(#p::KeyPart::write_key_part(&self.#fi, &mut __b);)
        });
        quote! {
            {
                const __T: #p::KeyTemplate = #template;
                let mut __b = #p::IdBuf::new();
                #(#writes)*
                __out.push(&__T, &__b);
            }
        }
    });
    let keyed = m.id.is_none().then(|| {
        let writes = m.key_fields.iter().map(|f| {
            let fi = f.ident;
            quote!(#p::KeyPart::write_key_part(&self.#fi, __out);)
        });
        quote! {
            #[automatically_derived]
            impl #impl_g #p::CachedKeyed for #ident #ty_g #trait_where {
                #[inline]
                fn write_id(&self, __out: &mut #p::IdBuf) {
                    #(#writes)*
                }
            }
        }
    });
    let id_check = id_check(m, &p);
    let asserts = asserts(m, &p);

    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::Cached for #ident #ty_g #trait_where {
            type Id = #id_ty;

            const SCHEMA: &'static #p::CacheSchema = &#schema;

            #[inline]
            fn write_tags(&self, __out: &mut #p::Tags) {
                #(#tag_blocks)*
            }
        }

        #keyed

        #id_check

        #[automatically_derived]
        impl #impl_g #ident #ty_g #where_c {
            #[doc(hidden)]
            #[allow(dead_code)]
            fn __redis_state_assert_cached() {
                #(#asserts)*
            }
        }
    })
}

/// `CacheSchema::of("Product").with_name("product")...`.
fn schema(m: &Model<'_>, p: &TokenStream) -> Chain {
    let model_name = m.ident.to_string();
    let t = &m.times;
    Chain::new(quote!(#p::CacheSchema::of(#model_name)))
        .with("name", to_snake(&model_name))
        .with("key", key_template(p, &m.template, m.namespace.as_deref()))
        .with("ttl_ms", int_lit(t.ttl_ms, "u64"))
        .with("jitter_ms", int_lit(t.jitter_ms, "u64"))
        .with("stale_ms", int_lit(t.stale_ms, "u64"))
        .with_some(
            "negative_ttl_ms",
            t.negative_ttl_ms.map(|ms| int_lit(ms, "u64")),
        )
        .with("version", int_lit(m.version, "u32"))
        .with("beta", m.beta)
        .with_some("format", m.plain.then(|| quote!(#p::EntryFormat::Plain)))
        .with_some(
            "buckets",
            (m.buckets > 0).then(|| int_lit(u64::from(m.buckets), "u16")),
        )
}

/// What the impls need, as `for<'__r> Ty: Trait` (see `Bounds`): the value
/// is a serde type, every field a key or tag names is a key part, an
/// explicit id is an id. The assertions report an unmet one once, at the
/// type at fault.
fn bounds(m: &Model<'_>, p: &TokenStream) -> Bounds {
    let mut preds = Bounds::default();
    preds.push(quote!(Self: #p::SerdeValue));
    for f in key_and_tag_fields(m) {
        let ty = f.ty;
        preds.push(quote!(#ty: #p::KeyPart));
    }
    if let Some(ty) = &m.id {
        preds.push(quote!(#ty: #p::IdValue));
    }
    preds
}

/// The fields a key or tag names, each once.
fn key_and_tag_fields<'m, 'a>(m: &'m Model<'a>) -> Vec<&'m Field<'a>> {
    let mut fields: Vec<&Field<'_>> = Vec::new();
    for f in m
        .key_fields
        .iter()
        .chain(m.tags.iter().flat_map(|t| &t.fields))
    {
        if !fields.iter().any(|a| a.ident == f.ident) {
            fields.push(f);
        }
    }
    fields
}

/// Every field a key or tag names is a key part, said at its type; a type
/// without generics is a serde type, said at its name.
fn asserts(m: &Model<'_>, p: &TokenStream) -> Vec<TokenStream> {
    let mut asserts: Vec<TokenStream> = key_and_tag_fields(m)
        .into_iter()
        .map(|f| {
            let ty = f.ty;
            quote_spanned!(ty.span()=> #p::assert_key_part::<#ty>();)
        })
        .collect();
    if m.generics.params.is_empty() {
        let ident = m.ident;
        asserts.push(quote_spanned!(ident.span()=> #p::assert_cached_serde::<#ident>();));
    }
    asserts
}

/// An explicit id has as many parts as the key has placeholders.
fn id_check(m: &Model<'_>, p: &TokenStream) -> Option<TokenStream> {
    let ty = m.id.as_ref()?;
    let n = m.template.parts().count();
    let msg = format!(
        "the explicit id type must have as many parts as the key template has placeholders ({n})"
    );
    Some(quote_spanned! {ty.span()=>
        const _: () = ::core::assert!(<#ty as #p::IdValue>::PARTS == #n, #msg);
    })
}

/// A stand-in impl beside the errors, so uses of the type report nothing
/// more.
pub(crate) fn fallback(input: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let id = fallback_id(input).unwrap_or_else(|| quote!(#p::String));
    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::Cached for #ident #ty_g #where_c {
            type Id = #id;
            const SCHEMA: &'static #p::CacheSchema = &#p::FALLBACK_CACHE_SCHEMA;
        }
        #[automatically_derived]
        impl #impl_g #p::CachedKeyed for #ident #ty_g #where_c {
            fn write_id(&self, _: &mut #p::IdBuf) {}
        }
    })
}

/// The id type the attributes mean, read leniently, so that uses of the type
/// next to an attribute error type-check as they will once it is fixed.
fn fallback_id(input: &syn::DeriveInput) -> Option<TokenStream> {
    let mut id = None;
    crate::internals::attr::lenient(&input.attrs, PATH, |meta| {
        if meta.path.is_ident("id") {
            id = parse_type(meta).ok();
        }
    });
    if let Some(ty) = id {
        return Some(quote!(#ty));
    }
    let container = Container::read(input);
    if !container.named {
        return None;
    }
    let src =
        lenient_str(&input.attrs, PATH, "key").map_or_else(|| "_:{id}".to_owned(), |l| l.value());
    let t = Template::parse_lenient(&src).ok()?;
    let tys: Vec<&syn::Type> = t
        .parts()
        .map(|p| container.fields.iter().find(|f| f.ident == p).map(|f| f.ty))
        .collect::<Option<_>>()?;
    (!tys.is_empty()).then(|| tuple(&tys))
}
