//! `#[derive(Channel)]`: generate the schema, the name writer and the name
//! parser; publishing and subscribing are generic runtime code.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::Model;
use super::attr::{Format, PATH};
use crate::internals::attr::parse_type;
use crate::internals::expand::{const_block, key_template};

pub(crate) fn expand(m: &Model<'_>) -> TokenStream {
    let krate = &m.krate;
    let p = quote!(#krate::__private);
    let ident = m.ident;
    let model_name = ident.to_string();
    let (impl_g, ty_g, where_c) = m.generics.split_for_impl();
    let message = &m.message;
    let codec = match m.format {
        Format::Json => quote!(#p::Json),
        Format::Plain => quote!(#p::Plain),
    };
    let template = key_template(&p, &m.template, None);
    let sharded = m.sharded;
    let writes = m.parts.iter().map(|f| {
        let fi = f.ident;
        quote!(#p::KeyPart::write_key_part(&self.#fi, __out);)
    });
    let build = if m.unit {
        quote!(Self)
    } else {
        let inits = m.parts.iter().enumerate().map(|(i, f)| {
            let fi = f.ident;
            let ty = f.ty;
            let name = &f.rust_name;
            quote!(#fi: #p::parse_part::<#ty>(__parts, #i, #name)?)
        });
        quote!(Self { #(#inits),* })
    };
    let mut asserts: Vec<TokenStream> = m
        .parts
        .iter()
        .map(|f| {
            let ty = f.ty;
            quote_spanned!(ty.span()=> #p::assert_channel_part::<#ty>();)
        })
        .collect();
    asserts.push(match m.format {
        Format::Json => quote_spanned!(message.span()=> #p::assert_data::<#message>();),
        Format::Plain => quote_spanned!(message.span()=> #p::assert_field_value::<#message>();),
    });

    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::Channel for #ident #ty_g #where_c {
            type Message = #message;
            type Codec = #codec;
            const SCHEMA: &'static #p::ChannelSchema =
                &#p::ChannelSchema::new(#model_name, #template, #sharded);

            #[inline]
            fn write_parts(&self, __out: &mut #p::IdBuf) {
                #(#writes)*
            }

            fn from_parts(
                __parts: &[#p::Vec<u8>],
            ) -> #p::Result<Self, #p::PartError> {
                #p::Ok(#build)
            }
        }

        #[automatically_derived]
        impl #impl_g #ident #ty_g #where_c {
            #[doc(hidden)]
            #[allow(dead_code)]
            fn __redis_state_assert_channel() {
                #(#asserts)*
            }
        }
    })
}

/// A stand-in impl beside the errors, so uses of the type report nothing
/// more.
pub(crate) fn fallback(input: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let mut message = None;
    crate::internals::attr::lenient(&input.attrs, PATH, |meta| {
        if meta.path.is_ident("message") {
            message = parse_type(meta).ok();
        }
    });
    let message = message.map_or_else(|| quote!(()), |t| quote!(#t));
    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::Channel for #ident #ty_g #where_c {
            type Message = #message;
            type Codec = #p::FallbackCodec;
            const SCHEMA: &'static #p::ChannelSchema = &#p::FALLBACK_CHANNEL;
            fn write_parts(&self, _: &mut #p::IdBuf) {}
            fn from_parts(_: &[#p::Vec<u8>]) -> #p::Result<Self, #p::PartError> {
                #p::Err(#p::PartError::fallback())
            }
        }
    })
}
