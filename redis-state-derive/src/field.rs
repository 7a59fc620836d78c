//! `#[derive(RedisField)]`: newtypes and unit enums as plain hash fields and
//! key parts.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::internals::attr::{Attr, default_crate, parse_each, parse_lit_str, parse_path};
use crate::internals::case::RenameRule;
use crate::internals::ctxt::Ctxt;
use crate::internals::expand::{const_block, user_preds};

pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let mut rename_all = Attr::<RenameRule>::none(&cx, "rename_all");
    let mut krate = Attr::<syn::Path>::none(&cx, "crate");
    parse_each(&cx, &input.attrs, "redis", |meta| {
        let path = meta.path.clone();
        if path.is_ident("rename_all") {
            if let Some(r) = RenameRule::from_lit(&cx, &parse_lit_str(&meta)?) {
                rename_all.set(&path, r);
            }
        } else if path.is_ident("crate") {
            krate.set(&path, parse_path(&meta)?);
        } else {
            return Err(meta.error(format!(
                "unknown redis attribute `{}` for RedisField; expected `rename_all` or `crate`",
                path.to_token_stream().to_string().replace(' ', "")
            )));
        }
        Ok(())
    });
    let krate = krate.get().unwrap_or_else(default_crate);
    let rename_all = rename_all.get_with_tokens();

    let out = match &input.data {
        syn::Data::Struct(s) if s.fields.len() == 1 => {
            if let Some((tokens, _)) = &rename_all {
                cx.error_spanned_by(
                    tokens,
                    "`rename_all` renames enum variants; a newtype is stored as its inner value",
                );
            }
            for attr in s.fields.iter().flat_map(|f| &f.attrs) {
                if attr.path().is_ident("redis") {
                    cx.error_spanned_by(
                        attr,
                        "RedisField takes no field attributes: a newtype is stored as its inner value",
                    );
                }
            }
            newtype(input, &s.fields, &krate)
        }
        syn::Data::Enum(e) => unit_enum(&cx, input, e, rename_all.map(|(_, r)| r), &krate),
        _ => {
            cx.error_spanned_by(
                &input.ident,
                "RedisField can be derived for a newtype (a struct with one field) or an enum whose variants have no fields",
            );
            TokenStream::new()
        }
    };
    match cx.check() {
        Ok(()) => out,
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(fallback(input, &krate));
            out
        }
    }
}

/// Stand-in impls emitted beside compile errors, so that models using the
/// type as a field or id do not add "not implemented" errors of their own.
fn fallback(input: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::FieldValue for #ident #ty_g #where_c {
            const EXPECTED: &'static str = "";
            fn encode(&self, _: &mut #p::Vec<u8>) -> #p::Result<(), #p::String> {
                ::core::unimplemented!()
            }
            fn decode(_: &[u8]) -> #p::Result<Self, #p::FieldError> {
                ::core::unimplemented!()
            }
        }

        #[automatically_derived]
        impl #impl_g #p::KeyPart for #ident #ty_g #where_c {
            fn write_key_part(&self, _: &mut #p::IdBuf) {
                ::core::unimplemented!()
            }
        }
    })
}

fn newtype(input: &syn::DeriveInput, fields: &syn::Fields, krate: &syn::Path) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let Some(field) = fields.iter().next() else {
        return TokenStream::new();
    };
    let inner = &field.ty;
    let access = match &field.ident {
        Some(name) => quote!(#name),
        None => quote!(0),
    };
    let build = match &field.ident {
        Some(name) => quote!(|v| #ident { #name: v }),
        None => quote!(#ident),
    };
    let (impl_g, ty_g, _) = input.generics.split_for_impl();
    let user_preds = user_preds(&input.generics);
    // `for<'__r>` keeps rustc from rejecting the bound when it names no
    // generic parameter: the newtype of an `f64` is a field value but simply
    // not a key part. A generic newtype gets the bounds it needs.
    // Spanned at the inner type, where rustc's "required for `Newtype` to
    // implement `KeyPart`" note then points.
    let value_where =
        quote_spanned!(inner.span()=> where #(#user_preds,)* for<'__r> #inner: #p::FieldValue);
    let key_where =
        quote_spanned!(inner.span()=> where #(#user_preds,)* for<'__r> #inner: #p::KeyPart);
    // A newtype over a type with no plain form is a mistake: say so once,
    // at the inner type. (Generic newtypes are checked where they are used.)
    let assert = input.generics.params.is_empty().then(|| {
        let check = quote_spanned!(inner.span()=> #p::assert_field_value::<#inner>(););
        quote! {
            #[automatically_derived]
            impl #ident {
                #[doc(hidden)]
                #[allow(dead_code)]
                fn __redis_state_assert_field() {
                    #check
                }
            }
        }
    });
    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::FieldValue for #ident #ty_g #value_where {
            const EXPECTED: &'static str = <#inner as #p::FieldValue>::EXPECTED;
            #[inline]
            fn encode(&self, out: &mut #p::Vec<u8>) -> #p::Result<(), #p::String> {
                #p::FieldValue::encode(&self.#access, out)
            }
            #[inline]
            fn decode(raw: &[u8]) -> #p::Result<Self, #p::FieldError> {
                <#inner as #p::FieldValue>::decode(raw).map(#build)
            }
        }

        #[automatically_derived]
        impl #impl_g #p::KeyPart for #ident #ty_g #key_where {
            #[inline]
            fn write_key_part(&self, out: &mut #p::IdBuf) {
                #p::KeyPart::write_key_part(&self.#access, out)
            }
        }

        #assert
    })
}

fn unit_enum(
    cx: &Ctxt,
    input: &syn::DeriveInput,
    e: &syn::DataEnum,
    rename_all: Option<RenameRule>,
    krate: &syn::Path,
) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(&input.generics, "RedisField enums cannot be generic");
    }
    let mut names = Vec::new();
    let mut idents = Vec::new();
    for v in &e.variants {
        if !matches!(v.fields, syn::Fields::Unit) {
            cx.error_spanned_by(
                &v.fields,
                "RedisField stores an enum as its variant name, so variants cannot have fields; store a data-carrying enum as JSON with `#[redis(json)]` on the field that holds it",
            );
            continue;
        }
        let mut rename = Attr::<syn::LitStr>::none(cx, "rename");
        parse_each(cx, &v.attrs, "redis", |meta| {
            if meta.path.is_ident("rename") {
                rename.set(meta.path.clone(), parse_lit_str(&meta)?);
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown redis attribute `{}` on a variant; expected `rename`",
                    meta.path.to_token_stream().to_string().replace(' ', "")
                )))
            }
        });
        let rename = rename.get();
        let rename_span = rename.as_ref().map(syn::LitStr::span);
        let name = match rename {
            Some(l) => l.value(),
            None => match rename_all {
                Some(rule) => rule.apply_to_variant(&v.ident.to_string()),
                None => v.ident.to_string(),
            },
        };
        if let Some(i) = names.iter().position(|n| *n == name) {
            let at = rename_span.unwrap_or_else(|| v.ident.span());
            cx.error_at(
                at,
                format!(
                    "two variants are stored as `{name}`: `{}` and `{}`; give one of them another `rename`",
                    idents[i], v.ident
                ),
            );
        }
        names.push(name);
        idents.push(&v.ident);
    }
    if e.variants.is_empty() {
        cx.error_spanned_by(ident, "RedisField enums need at least one variant");
    }
    let expected = format!("one of {}", names.join(", "));
    let bytes: Vec<syn::LitByteStr> = names
        .iter()
        .map(|n| syn::LitByteStr::new(n.as_bytes(), proc_macro2::Span::call_site()))
        .collect();
    const_block(quote! {
        #[automatically_derived]
        impl #p::FieldValue for #ident {
            const EXPECTED: &'static str = #expected;
            #[inline]
            fn encode(&self, out: &mut #p::Vec<u8>) -> #p::Result<(), #p::String> {
                out.extend_from_slice(match self { #( #ident::#idents => #bytes, )* });
                #p::Ok(())
            }
            fn decode(raw: &[u8]) -> #p::Result<Self, #p::FieldError> {
                match raw {
                    #( #bytes => #p::Ok(#ident::#idents), )*
                    _ => #p::Err(#p::FieldError::new()),
                }
            }
        }

        #[automatically_derived]
        impl #p::KeyPart for #ident {
            #[inline]
            fn write_key_part(&self, out: &mut #p::IdBuf) {
                out.push_str(match self { #( #ident::#idents => #names, )* })
            }
        }
    })
}
