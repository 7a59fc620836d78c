//! `#[derive(RedisField)]`: newtypes and unit enums as plain hash fields and
//! key parts. `parse` reads `#[redis(...)]` and the shape into the model,
//! `expand` writes the `FieldValue` and `KeyPart` impls.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::internals::attr::{AttrCx, Common, CommonKey, parse_lit_str, path_text};
use crate::internals::case::RenameRule;
use crate::internals::ctxt::Ctxt;
use crate::internals::expand::{const_block, user_preds};

/// The attribute `RedisField` reads.
const PATH: &str = "redis";

pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    crate::internals::derive::run(input, PATH, parse, expand, fallback)
}

struct Model<'a> {
    input: &'a syn::DeriveInput,
    krate: syn::Path,
    shape: Shape<'a>,
}

enum Shape<'a> {
    /// A struct with one field, stored as that field.
    Newtype(&'a syn::Field),
    /// A unit enum, stored as the variant's name.
    Enum(Vec<Variant<'a>>),
}

struct Variant<'a> {
    ident: &'a syn::Ident,
    /// The stored name.
    name: String,
}

fn parse<'a>(cx: &Ctxt, input: &'a syn::DeriveInput) -> Option<Model<'a>> {
    let acx = AttrCx::new(cx, PATH);
    let mut common = Common::new(acx, &[CommonKey::RenameAll, CommonKey::Crate]);
    let mut rename_all_tokens = None;
    acx.each(&input.attrs, |meta| {
        if meta.path.is_ident("rename_all") {
            rename_all_tokens.get_or_insert_with(|| meta.path.clone());
        }
        if common.parse(&meta)? {
            return Ok(());
        }
        Err(meta.error(format!(
            "unknown {PATH} attribute `{}` for RedisField; expected `rename_all` or `crate`",
            path_text(&meta.path)
        )))
    });
    let common = common.finish();
    let shape = match &input.data {
        syn::Data::Struct(s) if s.fields.len() == 1 => {
            if let Some(path) = &rename_all_tokens
                && common.rename_all.is_some()
            {
                cx.error_spanned_by(
                    path,
                    "`rename_all` renames enum variants; a newtype is stored as its inner value",
                );
            }
            newtype(cx, &s.fields)
        }
        syn::Data::Enum(e) => unit_enum(cx, input, e, common.rename_all),
        _ => {
            cx.error_spanned_by(
                &input.ident,
                "RedisField can be derived for a newtype (a struct with one field) or an enum whose variants have no fields",
            );
            None
        }
    };
    Some(Model {
        input,
        krate: common.krate,
        shape: shape?,
    })
}

fn newtype<'a>(cx: &Ctxt, fields: &'a syn::Fields) -> Option<Shape<'a>> {
    let field = fields.iter().next()?;
    for attr in &field.attrs {
        if attr.path().is_ident(PATH) {
            cx.error_spanned_by(
                attr,
                "RedisField takes no field attributes: a newtype is stored as its inner value",
            );
        }
    }
    Some(Shape::Newtype(field))
}

fn unit_enum<'a>(
    cx: &Ctxt,
    input: &'a syn::DeriveInput,
    e: &'a syn::DataEnum,
    rename_all: Option<RenameRule>,
) -> Option<Shape<'a>> {
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(&input.generics, "RedisField enums cannot be generic");
    }
    let acx = AttrCx::new(cx, PATH);
    let mut variants: Vec<Variant<'a>> = Vec::new();
    for v in &e.variants {
        if !matches!(v.fields, syn::Fields::Unit) {
            cx.error_spanned_by(
                &v.fields,
                "RedisField stores an enum as its variant name, so variants cannot have fields; store a data-carrying enum as JSON with `#[redis(json)]` on the field that holds it",
            );
            continue;
        }
        let mut rename = acx.slot::<syn::LitStr>("rename");
        acx.each(&v.attrs, |meta| {
            if meta.path.is_ident("rename") {
                rename.set(&meta.path, parse_lit_str(&meta)?);
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown {PATH} attribute `{}` on a variant; expected `rename`",
                    path_text(&meta.path)
                )))
            }
        });
        let rename = rename.get();
        let name = match (&rename, rename_all) {
            (Some(l), _) => l.value(),
            (None, Some(rule)) => rule.apply_to_variant(&v.ident.to_string()),
            (None, None) => v.ident.to_string(),
        };
        if let Some(prev) = variants.iter().find(|p| p.name == name) {
            let at = rename
                .as_ref()
                .map_or_else(|| v.ident.span(), syn::LitStr::span);
            cx.error_at(
                at,
                format!(
                    "two variants are stored as `{name}`: `{}` and `{}`; give one of them another `rename`",
                    prev.ident, v.ident
                ),
            );
        }
        variants.push(Variant {
            ident: &v.ident,
            name,
        });
    }
    if e.variants.is_empty() {
        cx.error_spanned_by(&input.ident, "RedisField enums need at least one variant");
    }
    Some(Shape::Enum(variants))
}

fn expand(m: &Model<'_>) -> TokenStream {
    match &m.shape {
        Shape::Newtype(field) => expand_newtype(m, field),
        Shape::Enum(variants) => expand_enum(m, variants),
    }
}

fn expand_newtype(m: &Model<'_>, field: &syn::Field) -> TokenStream {
    let input = m.input;
    let ident = &input.ident;
    let krate = &m.krate;
    let p = quote!(#krate::__private);
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

fn expand_enum(m: &Model<'_>, variants: &[Variant<'_>]) -> TokenStream {
    let ident = &m.input.ident;
    let krate = &m.krate;
    let p = quote!(#krate::__private);
    let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
    let idents = variants.iter().map(|v| v.ident);
    let idents2 = idents.clone();
    let idents3 = idents.clone();
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
                    #( #bytes => #p::Ok(#ident::#idents2), )*
                    _ => #p::Err(#p::FieldError::new()),
                }
            }
        }

        #[automatically_derived]
        impl #p::KeyPart for #ident {
            #[inline]
            fn write_key_part(&self, out: &mut #p::IdBuf) {
                out.push_str(match self { #( #ident::#idents3 => #names, )* })
            }
        }
    })
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
