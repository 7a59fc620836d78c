//! `#[derive(RedisHash)]`: generate the schema, the field codecs and typed
//! field handles. Everything else is generic runtime code.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::{CodecKind, DefaultKind, FieldModel, IndexKind, Model, Role};
use crate::internals::attr::has_flag;
use crate::internals::expand::{Bounds, const_block, fallback_uses, key_template, option, tuple};

pub(crate) fn expand(m: &Model<'_>) -> TokenStream {
    let krate = &m.krate;
    let p = quote!(#krate::__private);
    let ident = m.ident;
    let vis = m.vis;
    let (impl_g, ty_g, where_c) = m.generics.split_for_impl();
    let model_name = ident.to_string();
    let collection = &m.collection;

    let stored: Vec<&FieldModel<'_>> = m.fields.iter().filter(|f| !f.skip).collect();
    let pos_of = |name: &str| stored.iter().position(|f| f.rust_name() == name);

    // -- key template ---------------------------------------------------------
    let parts: Vec<&str> = m.template.parts().collect();
    let id_fields: Vec<&FieldModel<'_>> = parts
        .iter()
        .filter_map(|p| m.fields.iter().find(|f| f.rust_name() == *p))
        .collect();
    let key_template = key_template(&p, &m.template, m.namespace.as_deref());
    let ttl = option(&p, m.ttl_ms);
    let id_ty = tuple(&id_fields.iter().map(|f| f.ty).collect::<Vec<_>>());
    let write_id = id_fields.iter().map(|f| {
        let fi = f.ident;
        quote!(#p::KeyPart::write_key_part(&self.#fi, __out);)
    });

    // -- fields -------------------------------------------------------------
    let codec_of = |f: &FieldModel<'_>| -> TokenStream {
        match &f.codec {
            CodecKind::Plain => quote!(#p::Plain),
            CodecKind::Json => quote!(#p::Json),
            CodecKind::With(path) => quote!(#path),
        }
    };
    // What encoding a value of the field needs: `T: FieldValue` reads
    // better than the equivalent `Plain: Codec<T>`.
    let codec_bound = |f: &FieldModel<'_>| -> TokenStream {
        let vt = f.value_ty();
        match &f.codec {
            CodecKind::Plain => quote!(#vt: #p::FieldValue),
            _ => {
                let codec = codec_of(f);
                quote!(#codec: #p::Codec<#vt>)
            }
        }
    };
    let slot_of = |f: &FieldModel<'_>| -> TokenStream {
        let codec = codec_of(f);
        if f.option_inner.is_some() {
            quote!(#p::Opt<#codec>)
        } else {
            quote!(#p::Req<#codec>)
        }
    };

    let field_schemas = stored.iter().map(|f| {
        let name = &f.name;
        let rust = f.rust_name();
        let ty = f.ty;
        let slot = slot_of(f);
        let optional = f.option_inner.is_some();
        let has_default = !matches!(f.default, DefaultKind::None);
        let kind = match f.role {
            Role::Id => quote!(#p::FieldKind::Id),
            Role::Data => quote!(#p::FieldKind::Data),
            Role::Counter => quote!(#p::FieldKind::Counter),
            Role::Version => quote!(#p::FieldKind::Version),
            Role::ExpiresAt => quote!(#p::FieldKind::ExpiresAt),
        };
        quote! {
            #p::FieldSchema::new(#name, #rust, <#slot as #p::Slot<#ty>>::EXPECTED, #optional, #has_default, #kind)
        }
    });
    let indexes = stored
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f.index {
            IndexKind::None => None,
            IndexKind::Index => Some(quote!(#p::IndexSchema::new(#i, false))),
            IndexKind::Unique => Some(quote!(#p::IndexSchema::new(#i, true))),
        });
    let version_pos = stored.iter().position(|f| f.role == Role::Version);
    let expires_pos = stored.iter().position(|f| f.role == Role::ExpiresAt);
    let version_pos_tokens = option(&p, version_pos);
    let expires_pos_tokens = option(&p, expires_pos);

    let encode = stored.iter().enumerate().map(|(i, f)| {
        let fi = f.ident;
        let ty = f.ty;
        let slot = slot_of(f);
        quote!(__out.put::<#ty, #slot>(#i, &self.#fi)?;)
    });

    let decode = m.fields.iter().map(|f| {
        let fi = f.ident;
        let ty = f.ty;
        if f.skip {
            return match &f.default {
                DefaultKind::Path(path) => quote!(#fi: #path(),),
                _ => quote_spanned!(f.ty_span()=> #fi: ::core::default::Default::default(),),
            };
        }
        let i = pos_of(&f.rust_name()).unwrap_or(0);
        let slot = slot_of(f);
        match &f.default {
            DefaultKind::None => quote!(#fi: __r.get::<#ty, #slot>(#i)?,),
            DefaultKind::Default => quote_spanned!(f.ty_span()=>
                #fi: __r.get_or::<#ty, #slot>(#i, ::core::default::Default::default)?,
            ),
            DefaultKind::Path(path) => quote!(#fi: __r.get_or::<#ty, #slot>(#i, #path)?,),
        }
    });

    let expires_at_fn = stored.iter().find(|f| f.role == Role::ExpiresAt).map(|f| {
        let fi = f.ident;
        quote! {
            fn expires_at_ms(&self) -> #p::Option<i64> {
                #p::ExpiresAtValue::expires_at_ms(&self.#fi)
            }
        }
    });
    let version_fn = stored.iter().find(|f| f.role == Role::Version).map(|f| {
        let fi = f.ident;
        quote! {
            fn version(&self) -> u64 {
                #p::VersionValue::to_version(self.#fi)
            }
        }
    });

    // -- trait requirements ----------------------------------------------------
    // Each generated impl states what its bodies need as `for<'__r> Ty: Trait`
    // where-clauses (see `Bounds`): an unmet requirement is reported once, by
    // the assertion below, at the field type, instead of once per use in
    // SCHEMA, encode, decode, and the helpers.
    let mut trait_preds = Bounds::default();
    for f in &stored {
        let ty = f.ty;
        trait_preds.push(codec_bound(f));
        match f.role {
            Role::Id => trait_preds.push(quote!(#ty: #p::KeyPart)),
            Role::Version => trait_preds.push(quote!(#ty: #p::VersionValue)),
            Role::ExpiresAt => trait_preds.push(quote!(#ty: #p::ExpiresAtValue)),
            Role::Counter | Role::Data => {}
        }
    }

    // -- compile-time checks, spanned at the faulty type --------------------
    let asserts = stored.iter().map(|f| {
        let vt = f.value_ty();
        let ty = f.ty;
        let codec_check = match &f.codec {
            CodecKind::Plain => {
                quote_spanned!(f.ty_span_value()=> #p::assert_field_value::<#vt>();)
            }
            CodecKind::Json => {
                // rustc points at the codec argument: give all of it the
                // span of the `json` attribute.
                let json = respan(quote!(#p::Json), f.codec_span);
                quote_spanned!(f.codec_span=> #p::assert_codec::<#vt, #json>();)
            }
            CodecKind::With(path) => {
                quote_spanned!(f.codec_span=> #p::assert_codec::<#vt, #path>();)
            }
        };
        let role_check = match f.role {
            Role::Id => quote_spanned!(f.ty_span()=> #p::assert_key_part::<#ty>();),
            Role::Counter => quote_spanned!(f.ty_span()=> #p::assert_counter::<#ty>();),
            Role::Version => quote_spanned!(f.ty_span()=> #p::assert_version::<#ty>();),
            Role::ExpiresAt => quote_spanned!(f.ty_span()=> #p::assert_expires_at::<#ty>();),
            Role::Data => quote!(),
        };
        quote!(#codec_check #role_check)
    });

    // -- typed field handles and helpers --------------------------------------
    let scope_names = m.template.scope_parts();
    let scope_fields: Vec<&FieldModel<'_>> = scope_names
        .iter()
        .filter_map(|n| m.fields.iter().find(|f| f.rust_name() == *n))
        .collect();
    let scope_params = scope_fields.iter().map(|f| {
        let fi = f.ident;
        let ty = f.ty;
        quote!(#fi: &#ty,)
    });
    let scope_params: Vec<TokenStream> = scope_params.collect();
    // The looked-up value's parameter, unless a scope field has that name.
    let value = if scope_fields.iter().any(|f| f.ident == "value") {
        format_ident!("value_")
    } else {
        format_ident!("value")
    };
    let krate_doc = quote!(#krate).to_string().replace(' ', "");
    let krate_doc = krate_doc.trim_start_matches("::");
    let scope_value = match scope_fields.as_slice() {
        [] => quote!(&()),
        [one] => {
            let fi = one.ident;
            quote!(#fi)
        }
        many => {
            let fis = many.iter().map(|f| f.ident);
            quote!(&(#(#fis,)*))
        }
    };

    let mut consts = Vec::new();
    let mut helpers = Vec::new();
    let mut helper_preds = Bounds::default();
    for (i, f) in stored.iter().enumerate() {
        let ty = f.ty;
        let slot = slot_of(f);
        // `SCHEMA` is the trait's constant: a field named `schema` gets
        // `SCHEMA_FIELD` so that `Model::SCHEMA` keeps meaning the schema.
        let upper = match f.rust_name().to_uppercase() {
            name if name == "SCHEMA" => "SCHEMA_FIELD".to_owned(),
            name => name,
        };
        let const_name = format_ident!("{}", upper, span = f.ident.span());
        let doc = format!(
            " The `{}` field (hash field `{}`), for `update().set(..)`{}.",
            f.rust_name(),
            f.name,
            match (f.index, f.role) {
                (IndexKind::Index, _) => " and `find_by`",
                (IndexKind::Unique, _) => " and `find_unique`",
                (_, Role::Counter) => " and `increment`",
                _ => "",
            }
        );
        let handle = match (f.role, f.index) {
            (Role::Id | Role::Version, _) => continue,
            (Role::Counter, _) => quote!(#p::CounterField),
            (Role::ExpiresAt, _) => quote!(#p::ExpiryField),
            (_, IndexKind::Index) => quote!(#p::IndexField),
            (_, IndexKind::Unique) => quote!(#p::UniqueField),
            (_, IndexKind::None) => quote!(#p::Field),
        };
        consts.push(quote! {
            #[doc = #doc]
            #vis const #const_name: #handle<Self, #ty, #slot> = #handle::new(#i);
        });

        let vt = f.value_ty();
        let codec = codec_of(f);
        let fname = f.rust_name();
        // A plain `String` is looked up by `&str`: its stored form is the
        // UTF-8 bytes, so no owned `String` is needed.
        let plain_string = matches!(f.codec, CodecKind::Plain) && is_string(vt);
        let (lookup_ty, lookup_encode) = if plain_string {
            (
                quote!(str),
                quote!(__out.extend_from_slice(#value.as_bytes()); #p::Ok(true)),
            )
        } else {
            (
                quote!(#vt),
                quote!(<#codec as #p::Codec<#vt>>::encode(#value, __out).map(|()| true)),
            )
        };
        if f.index != IndexKind::None {
            helper_preds.push(codec_bound(f));
        }
        match f.index {
            IndexKind::Index => {
                let method = format_ident!("find_by_{}", fname);
                let doc = format!(
                    " Finds the entities whose `{fname}` equals `{value}`. Two round trips: see [`RedisHash::find_by`]({krate_doc}::RedisHash::find_by)."
                );
                helpers.push(quote! {
                    #[doc = #doc]
                    #vis fn #method(#(#scope_params)* #value: &#lookup_ty) -> #p::FindBy<Self> {
                        #p::FindBy::__new(#scope_value, #i, |__out| { #lookup_encode })
                    }
                });
            }
            IndexKind::Unique => {
                let method = format_ident!("find_by_{}", fname);
                let doc = format!(
                    " Finds the entity whose unique `{fname}` equals `{value}`. Two round trips: see [`RedisHash::find_unique`]({krate_doc}::RedisHash::find_unique)."
                );
                helpers.push(quote! {
                    #[doc = #doc]
                    #vis fn #method(#(#scope_params)* #value: &#lookup_ty) -> #p::FindUnique<Self> {
                        #p::FindUnique::__new(#scope_value, #i, |__out| { #lookup_encode })
                    }
                });
            }
            IndexKind::None => {}
        }
        if f.role == Role::Counter {
            helper_preds.push(quote!(#ty: #p::CounterValue));
            let method = format_ident!("increment_{}", fname);
            let doc = format!(
                " Adds `by` to the `{fname}` counter of the entity with `id` and returns the new value. One round trip: see [`RedisHash::increment`]({krate_doc}::RedisHash::increment)."
            );
            helpers.push(quote! {
                #[doc = #doc]
                #vis fn #method<__Q: #p::IdValue + ?Sized>(
                    id: &__Q,
                    by: <#ty as #p::CounterValue>::Delta,
                ) -> #p::Increment<Self, #ty>
                where
                    <Self as #p::RedisHash>::Id: ::core::borrow::Borrow<__Q>,
                {
                    <Self as #p::RedisHash>::increment(id, Self::#const_name, by)
                }
            });
        }
    }

    let invalidations = expand_invalidations(m, &p);
    let trait_where = trait_preds.where_clause(m.generics);
    if !helpers.is_empty() {
        helper_preds
            .preds
            .insert(0, quote!(for<'__r> Self: #p::RedisHash));
    }
    let helper_where = helper_preds.where_clause(m.generics);
    let assert_fn = quote! {
        #[doc(hidden)]
        fn __redis_state_assert_fields() {
            #(#asserts)*
        }
    };
    // The assertions must not sit under the helpers' where-clause (they
    // would hold by assumption); with none, one inherent impl does.
    let (assert_in_helpers, assert_impl) = if helper_preds.preds.is_empty() {
        (assert_fn, quote!())
    } else {
        let assert_impl = quote! {
            #[automatically_derived]
            impl #impl_g #ident #ty_g #where_c {
                #assert_fn
            }
        };
        (quote!(), assert_impl)
    };

    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::RedisHash for #ident #ty_g #trait_where {
            type Id = #id_ty;

            const SCHEMA: &'static #p::HashSchema = &#p::HashSchema::new(
                #model_name,
                #collection,
                #key_template,
                #ttl,
                &[#(#field_schemas),*],
                &[#(#indexes),*],
                #version_pos_tokens,
                #expires_pos_tokens,
            );

            #[inline]
            fn write_id(&self, __out: &mut #p::IdBuf) {
                #(#write_id)*
            }

            #[inline]
            fn encode(&self, __out: &mut #p::FieldWriter) -> #p::Result<()> {
                #(#encode)*
                #p::Ok(())
            }

            #[inline]
            fn decode(__r: &#p::FieldReader<'_>) -> #p::Result<Self> {
                #p::Ok(Self { #(#decode)* })
            }

            #expires_at_fn
            #version_fn
            #invalidations
        }

        #[automatically_derived]
        impl #impl_g #ident #ty_g #helper_where {
            #(#consts)*
            #(#helpers)*
            #assert_in_helpers
        }

        #assert_impl
    })
}

/// `INVALIDATES_CACHE` and `cache_invalidations` for the `invalidates`
/// attributes; nothing when there are none.
fn expand_invalidations(m: &Model<'_>, p: &TokenStream) -> TokenStream {
    if m.invalidates.is_empty() && m.invalidates_tags.is_empty() {
        return quote!();
    }
    let field = |name: &str| m.fields.iter().find(|f| f.rust_name() == name);
    let keys = m.invalidates.iter().map(|(ty, names, span)| {
        // Spanned at the field list, where a type mismatch is the user's.
        let idents: Vec<syn::Ident> = names
            .iter()
            .filter_map(|n| field(n))
            .map(|f| syn::Ident::new(&f.ident.to_string(), *span))
            .collect();
        let span = *span;
        match idents.as_slice() {
            [one] => quote_spanned! {span=>
                __out.key::<#ty, _>(&self.#one);
            },
            many => {
                let n = many.len();
                let msg = format!("`invalidates` names {n} fields, but the id of the cached type has another number of parts");
                quote_spanned! {span=>
                    {
                        const _: () = ::core::assert!(<<#ty as #p::Cached>::Id as #p::IdValue>::PARTS == #n, #msg);
                        __out.key_parts::<#ty, _>(&(#(&self.#many,)*));
                    }
                }
            }
        }
    });
    let tags = m.invalidates_tags.iter().map(|(ty, t)| {
        let template = key_template(p, t, None);
        let writes = t.parts().filter_map(&field).map(|f| {
            let fi = f.ident;
            quote!(#p::KeyPart::write_key_part(&self.#fi, &mut __b);)
        });
        // Spanned at the type, where a type that is not `Cached` is the
        // user's mistake.
        let tag = quote_spanned! {ty.span()=>
            __out.tag::<#ty>(&__T, &__b);
        };
        quote! {
            {
                const __T: #p::KeyTemplate = #template;
                let mut __b = #p::IdBuf::new();
                #(#writes)*
                #tag
            }
        }
    });
    quote! {
        const INVALIDATES_CACHE: bool = true;

        fn cache_invalidations(&self, __out: &mut #p::CacheInvalidations) {
            #(#keys)*
            #(#tags)*
        }
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = group.into();
            }
            tt.set_span(span);
            tt
        })
        .collect()
}

impl FieldModel<'_> {
    fn ty_span(&self) -> Span {
        syn::spanned::Spanned::span(self.ty)
    }

    fn ty_span_value(&self) -> Span {
        syn::spanned::Spanned::span(self.value_ty())
    }
}

/// A stand-in impl emitted beside compile errors, so that the user sees the
/// real error and not dozens of follow-on "trait not implemented" errors.
pub(crate) fn fallback(input: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let (impl_g, ty_g, _) = input.generics.split_for_impl();
    let uses = fallback_uses(input, "redis", &["with", "default"]);
    // The id the user meant (the fields marked `id`, read leniently), so that
    // `Model::load(&id)` elsewhere does not add a type mismatch of its own.
    let ids: Vec<&syn::Type> = match &input.data {
        syn::Data::Struct(data) => data
            .fields
            .iter()
            .filter(|f| has_flag(&f.attrs, "redis", "id"))
            .map(|f| &f.ty)
            .collect(),
        _ => Vec::new(),
    };
    let id_ty = tuple(&ids);
    let mut preds = Bounds::default();
    preds.push(quote!(#id_ty: #p::IdValue));
    let where_c = preds.where_clause(&input.generics);
    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::RedisHash for #ident #ty_g #where_c {
            type Id = #id_ty;
            const SCHEMA: &'static #p::HashSchema = &#p::FALLBACK_SCHEMA;
            fn write_id(&self, _: &mut #p::IdBuf) {}
            fn encode(&self, _: &mut #p::FieldWriter) -> #p::Result<()> {
                ::core::unimplemented!()
            }
            fn decode(_: &#p::FieldReader<'_>) -> #p::Result<Self> {
                ::core::unimplemented!()
            }
        }
        #uses
    })
}

/// `String` or `std::string::String`.
fn is_string(ty: &syn::Type) -> bool {
    let syn::Type::Path(tp) = ty else {
        return false;
    };
    if tp.qself.is_some() {
        return false;
    }
    let names: Vec<String> = tp
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let no_args = tp.path.segments.iter().all(|s| s.arguments.is_empty());
    no_args
        && matches!(
            names
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
            ["String"] | ["std", "string", "String"] | ["alloc", "string", "String"]
        )
}
