//! `#[derive(RedisHash)]`: generate the schema, the field codecs and typed
//! field handles. Everything else is generic runtime code.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::{Codec, DefaultKind, FieldModel, IndexKind, Model, Role};
use super::attr::PATH;
use crate::internals::ast::ModelField;
use crate::internals::attr::has_flag;
use crate::internals::expand::{
    Bounds, Chain, const_block, fallback_uses, int_lit, key_template, tuple,
};

pub(crate) fn expand(m: &Model<'_>) -> TokenStream {
    let x = Expander::new(m);
    let p = &x.p;
    let ident = m.ident;
    let (impl_g, ty_g, where_c) = m.generics.split_for_impl();
    let id_ty = tuple(&x.id_fields().iter().map(|f| f.ty()).collect::<Vec<_>>());
    let schema = x.schema();
    let write_id = x.id_fields().into_iter().map(|f| {
        let fi = f.ident();
        quote!(#p::KeyPart::write_key_part(&self.#fi, __out);)
    });
    let encode = x.encode();
    let decode = x.decode();
    let expires_at_fn = x.expires_at_fn();
    let version_fn = x.version_fn();
    let invalidations = x.invalidations();
    let trait_where = x.trait_bounds().where_clause(m.generics);
    let helpers = x.helpers();
    let helper_where = helpers.preds.where_clause(m.generics);
    let (consts, methods) = (&helpers.consts, &helpers.methods);
    let assert_fn = x.assert_fn();
    // The assertions must not sit under the helpers' where-clause (they
    // would hold by assumption); with none, one inherent impl does.
    let (assert_in_helpers, assert_impl) = if helpers.preds.preds.is_empty() {
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

            const SCHEMA: &'static #p::HashSchema = &#schema;

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
            #(#methods)*
            #assert_in_helpers
        }

        #assert_impl
    })
}

/// The model and what every part of the expansion needs from it.
struct Expander<'m, 'a> {
    m: &'m Model<'a>,
    /// The runtime's `__private` path.
    p: TokenStream,
    /// The stored fields, in `HMGET` order: positions in the schema.
    stored: Vec<&'m FieldModel<'a>>,
}

/// The typed field handles and helper functions of the inherent impl.
struct Helpers {
    consts: Vec<TokenStream>,
    methods: Vec<TokenStream>,
    preds: Bounds,
}

impl<'m, 'a> Expander<'m, 'a> {
    fn new(m: &'m Model<'a>) -> Self {
        let krate = &m.krate;
        Expander {
            m,
            p: quote!(#krate::__private),
            stored: m.fields.iter().filter(|f| !f.skip).collect(),
        }
    }

    fn field(&self, name: &str) -> Option<&'m FieldModel<'a>> {
        self.m.fields.iter().find(|f| f.rust_name() == name)
    }

    /// The id fields, in key template order.
    fn id_fields(&self) -> Vec<&'m FieldModel<'a>> {
        self.m
            .template
            .parts()
            .filter_map(|p| self.field(p))
            .collect()
    }

    /// `p::Plain`, `p::Json` or the `with` path.
    fn codec(&self, f: &FieldModel<'_>) -> TokenStream {
        let p = &self.p;
        match &f.codec {
            Codec::Plain => quote!(#p::Plain),
            Codec::Json => quote!(#p::Json),
            Codec::With(path) => quote!(#path),
        }
    }

    /// What encoding a value of the field needs: `T: FieldValue` reads
    /// better than the equivalent `Plain: Codec<T>`.
    fn codec_bound(&self, f: &FieldModel<'_>) -> TokenStream {
        let p = &self.p;
        let vt = f.value_ty();
        match &f.codec {
            Codec::Plain => quote!(#vt: #p::FieldValue),
            _ => {
                let codec = self.codec(f);
                quote!(#codec: #p::Codec<#vt>)
            }
        }
    }

    /// `p::Req<Codec>` or `p::Opt<Codec>`.
    fn slot(&self, f: &FieldModel<'_>) -> TokenStream {
        let p = &self.p;
        let codec = self.codec(f);
        if f.is_option() {
            quote!(#p::Opt<#codec>)
        } else {
            quote!(#p::Req<#codec>)
        }
    }

    /// `HashSchema::of("User").with_collection("user")...`.
    fn schema(&self) -> Chain {
        let (p, m) = (&self.p, self.m);
        let model_name = m.ident.to_string();
        let fields = self.stored.iter().map(|f| self.field_schema(f));
        let indexes = self
            .stored
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f.index {
                IndexKind::None => None,
                IndexKind::Index => Some(quote!(#p::IndexSchema::index(#i))),
                IndexKind::Unique => Some(quote!(#p::IndexSchema::unique(#i))),
            });
        let position = |role| self.stored.iter().position(|f| f.role == role);
        Chain::new(quote!(#p::HashSchema::of(#model_name)))
            .with("collection", &m.collection)
            .with("key", key_template(p, &m.template, m.namespace.as_deref()))
            .with_some("ttl_ms", m.ttl_ms.map(|ms| int_lit(ms, "u64")))
            .with("fields", quote!(&[#(#fields),*]))
            .with("indexes", quote!(&[#(#indexes),*]))
            .with_some("version", position(Role::Version))
            .with_some("expires_at", position(Role::ExpiresAt))
            .with_some("store_id", (!m.store_id).then_some(false))
            .with_some(
                "buckets",
                (m.buckets > 0).then(|| int_lit(u64::from(m.buckets), "u16")),
            )
    }

    /// `FieldSchema::of("email").with_expected(..).with_kind(..)`.
    fn field_schema(&self, f: &FieldModel<'_>) -> Chain {
        let p = &self.p;
        let name = &f.name;
        let ty = f.ty();
        let slot = self.slot(f);
        let kind = match f.role {
            Role::Id => quote!(#p::FieldKind::Id),
            Role::Data => quote!(#p::FieldKind::Data),
            Role::Counter => quote!(#p::FieldKind::Counter),
            Role::Version => quote!(#p::FieldKind::Version),
            Role::ExpiresAt => quote!(#p::FieldKind::ExpiresAt),
        };
        let rust = f.rust_name();
        // The part of the id this field is, where it is not the first.
        let id_part = self
            .id_fields()
            .iter()
            .position(|id| id.ident() == f.ident())
            .filter(|&i| i > 0)
            .map(|i| int_lit(i as u64, "u8"));
        Chain::new(quote!(#p::FieldSchema::of(#name)))
            .with_some("rust_name", (rust != name).then_some(rust))
            .with("expected", quote!(<#slot as #p::Slot<#ty>>::EXPECTED))
            .with_flag("optional", f.is_option())
            .with_flag("has_default", !matches!(f.default, DefaultKind::None))
            .with("kind", kind)
            .with_some("id_part", id_part)
    }

    fn encode(&self) -> Vec<TokenStream> {
        self.stored
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (fi, ty, slot) = (f.ident(), f.ty(), self.slot(f));
                quote!(__out.put::<#ty, #slot>(#i, &self.#fi)?;)
            })
            .collect()
    }

    /// The struct literal's fields: stored ones read at their position,
    /// skipped ones from their default.
    fn decode(&self) -> Vec<TokenStream> {
        self.m
            .fields
            .iter()
            .map(|f| {
                let (fi, ty) = (f.ident(), f.ty());
                if f.skip {
                    return match &f.default {
                        DefaultKind::Path(path) => quote!(#fi: #path(),),
                        _ => quote_spanned!(ty.span()=> #fi: ::core::default::Default::default(),),
                    };
                }
                let i = self
                    .stored
                    .iter()
                    .position(|s| s.rust_name() == f.rust_name())
                    .unwrap_or(0);
                let slot = self.slot(f);
                match &f.default {
                    DefaultKind::None => quote!(#fi: __r.get::<#ty, #slot>(#i)?,),
                    DefaultKind::Default => quote_spanned!(ty.span()=>
                        #fi: __r.get_or::<#ty, #slot>(#i, ::core::default::Default::default)?,
                    ),
                    DefaultKind::Path(path) => quote!(#fi: __r.get_or::<#ty, #slot>(#i, #path)?,),
                }
            })
            .collect()
    }

    fn expires_at_fn(&self) -> Option<TokenStream> {
        let p = &self.p;
        let f = self.stored.iter().find(|f| f.role == Role::ExpiresAt)?;
        let fi = f.ident();
        Some(quote! {
            fn expires_at_ms(&self) -> #p::Option<i64> {
                #p::ExpiresAtValue::expires_at_ms(&self.#fi)
            }
        })
    }

    fn version_fn(&self) -> Option<TokenStream> {
        let p = &self.p;
        let f = self.stored.iter().find(|f| f.role == Role::Version)?;
        let fi = f.ident();
        Some(quote! {
            fn version(&self) -> u64 {
                #p::VersionValue::to_version(self.#fi)
            }
        })
    }

    /// What the trait impl's bodies need, as `for<'__r> Ty: Trait`
    /// where-clauses (see `Bounds`): an unmet requirement is reported once,
    /// by the assertions, at the field type, instead of once per use in
    /// SCHEMA, encode, decode, and the helpers.
    fn trait_bounds(&self) -> Bounds {
        let p = &self.p;
        let mut preds = Bounds::default();
        for f in &self.stored {
            let ty = f.ty();
            preds.push(self.codec_bound(f));
            match f.role {
                Role::Id => preds.push(quote!(#ty: #p::KeyPart)),
                Role::Version => preds.push(quote!(#ty: #p::VersionValue)),
                Role::ExpiresAt => preds.push(quote!(#ty: #p::ExpiresAtValue)),
                Role::Counter | Role::Data => {}
            }
        }
        preds
    }

    /// Compile-time checks, spanned at the faulty type.
    fn assert_fn(&self) -> TokenStream {
        let p = &self.p;
        let asserts = self.stored.iter().map(|f| {
            let (vt, ty) = (f.value_ty(), f.ty());
            let codec_check = match &f.codec {
                Codec::Plain => quote_spanned!(vt.span()=> #p::assert_field_value::<#vt>();),
                Codec::Json => {
                    // rustc points at the codec argument: give all of it the
                    // span of the `json` attribute.
                    let json = respan(quote!(#p::Json), f.codec_span);
                    quote_spanned!(f.codec_span=> #p::assert_codec::<#vt, #json>();)
                }
                Codec::With(path) => {
                    quote_spanned!(f.codec_span=> #p::assert_codec::<#vt, #path>();)
                }
            };
            let role_check = match f.role {
                Role::Id => quote_spanned!(ty.span()=> #p::assert_key_part::<#ty>();),
                Role::Counter => quote_spanned!(ty.span()=> #p::assert_counter::<#ty>();),
                Role::Version => quote_spanned!(ty.span()=> #p::assert_version::<#ty>();),
                Role::ExpiresAt => quote_spanned!(ty.span()=> #p::assert_expires_at::<#ty>();),
                Role::Data => quote!(),
            };
            quote!(#codec_check #role_check)
        });
        quote! {
            #[doc(hidden)]
            fn __redis_state_assert_fields() {
                #(#asserts)*
            }
        }
    }

    /// A typed handle per stored field (but ids and the version), and the
    /// `find_by_*` / `increment_*` helpers of indexed and counter fields.
    fn helpers(&self) -> Helpers {
        let p = &self.p;
        let mut h = Helpers {
            consts: Vec::new(),
            methods: Vec::new(),
            preds: Bounds::default(),
        };
        for (i, f) in self.stored.iter().enumerate() {
            let Some((const_name, handle)) = self.handle(i, f) else {
                continue;
            };
            h.consts.push(handle);
            if f.index != IndexKind::None {
                h.preds.push(self.codec_bound(f));
                h.methods.push(self.find_helper(i, f));
            }
            if f.role == Role::Counter {
                let ty = f.ty();
                h.preds.push(quote!(#ty: #p::CounterValue));
                h.methods.push(self.increment_helper(f, &const_name));
            }
        }
        if !h.methods.is_empty() {
            h.preds
                .preds
                .insert(0, quote!(for<'__r> Self: #p::RedisHash));
        }
        h
    }

    /// The handle constant of stored field `i` and its name; none for ids
    /// and the version.
    fn handle(&self, i: usize, f: &FieldModel<'_>) -> Option<(syn::Ident, TokenStream)> {
        let p = &self.p;
        let handle = match (f.role, f.index) {
            (Role::Id | Role::Version, _) => return None,
            (Role::Counter, _) => quote!(#p::CounterField),
            (Role::ExpiresAt, _) => quote!(#p::ExpiryField),
            (_, IndexKind::Index) => quote!(#p::IndexField),
            (_, IndexKind::Unique) => quote!(#p::UniqueField),
            (_, IndexKind::None) => quote!(#p::Field),
        };
        // `SCHEMA` is the trait's constant: a field named `schema` gets
        // `SCHEMA_FIELD` so that `Model::SCHEMA` keeps meaning the schema.
        let upper = match f.rust_name().to_uppercase() {
            name if name == "SCHEMA" => "SCHEMA_FIELD".to_owned(),
            name => name,
        };
        let const_name = format_ident!("{}", upper, span = f.ident().span());
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
        let (vis, ty, slot) = (self.m.vis, f.ty(), self.slot(f));
        let tokens = quote! {
            #[doc = #doc]
            #vis const #const_name: #handle<Self, #ty, #slot> = #handle::new(#i);
        };
        Some((const_name, tokens))
    }

    /// `find_by_<field>`: the scope fields (the hash tag's placeholders),
    /// then the value looked up.
    fn find_helper(&self, i: usize, f: &FieldModel<'_>) -> TokenStream {
        let (p, vis) = (&self.p, self.m.vis);
        let scope: Vec<&FieldModel<'_>> = self
            .m
            .template
            .scope_parts()
            .filter_map(|n| self.field(n))
            .collect();
        let scope_params = scope.iter().map(|f| {
            let (fi, ty) = (f.ident(), f.ty());
            quote!(#fi: &#ty,)
        });
        let scope_value = match scope.as_slice() {
            [] => quote!(&()),
            [one] => {
                let fi = one.ident();
                quote!(#fi)
            }
            many => {
                let fis = many.iter().map(|f| f.ident());
                quote!(&(#(#fis,)*))
            }
        };
        // The looked-up value's parameter, unless a scope field has that name.
        let value = if scope.iter().any(|f| f.ident() == "value") {
            format_ident!("value_")
        } else {
            format_ident!("value")
        };
        let (vt, codec) = (f.value_ty(), self.codec(f));
        // A plain `String` is looked up by `&str`: its stored form is the
        // UTF-8 bytes, so no owned `String` is needed.
        let (lookup_ty, lookup_encode) = if matches!(f.codec, Codec::Plain) && is_string(vt) {
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
        let fname = f.rust_name();
        let method = format_ident!("find_by_{}", fname);
        let (what, op, trait_fn) = match f.index {
            IndexKind::Unique => ("entity whose unique", quote!(FindUnique), "find_unique"),
            _ => ("entities whose", quote!(FindBy), "find_by"),
        };
        let doc = format!(
            " Finds the {what} `{fname}` equals `{value}`. Two round trips: see [`RedisHash::{trait_fn}`]({}::RedisHash::{trait_fn}).",
            self.krate_doc()
        );
        quote! {
            #[doc = #doc]
            #vis fn #method(#(#scope_params)* #value: &#lookup_ty) -> #p::#op<Self> {
                #p::#op::__new(#scope_value, #i, |__out| { #lookup_encode })
            }
        }
    }

    /// `increment_<field>`: the counter's shortcut to `RedisHash::increment`.
    fn increment_helper(&self, f: &FieldModel<'_>, const_name: &syn::Ident) -> TokenStream {
        let (p, vis, ty) = (&self.p, self.m.vis, f.ty());
        let fname = f.rust_name();
        let method = format_ident!("increment_{}", fname);
        let doc = format!(
            " Adds `by` to the `{fname}` counter of the entity with `id` and returns the new value. One round trip: see [`RedisHash::increment`]({}::RedisHash::increment).",
            self.krate_doc()
        );
        quote! {
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
        }
    }

    /// The crate path as doc links write it (`redis_state`).
    fn krate_doc(&self) -> String {
        let krate = &self.m.krate;
        let text = quote!(#krate).to_string().replace(' ', "");
        text.trim_start_matches("::").to_owned()
    }

    /// `INVALIDATES_CACHE` and `cache_invalidations` for the `invalidates`
    /// attributes; nothing when there are none.
    fn invalidations(&self) -> TokenStream {
        let (p, m) = (&self.p, self.m);
        if m.invalidates.is_empty() && m.invalidates_tags.is_empty() {
            return quote!();
        }
        let keys = m.invalidates.iter().map(|inv| {
            // Spanned at the field list, where a type mismatch is the user's.
            let span = inv.span;
            let idents: Vec<syn::Ident> = inv
                .fields
                .iter()
                .filter_map(|n| self.field(n))
                .map(|f| syn::Ident::new(&f.ident().to_string(), span))
                .collect();
            let ty = &inv.ty;
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
        let tags = m.invalidates_tags.iter().map(|tag| {
            let template = key_template(p, &tag.template, None);
            let writes = tag.template.parts().filter_map(|n| self.field(n)).map(|f| {
                let fi = f.ident();
                quote!(#p::KeyPart::write_key_part(&self.#fi, &mut __b);)
            });
            // Spanned at the type, where a type that is not `Cached` is the
            // user's mistake.
            let ty = &tag.ty;
            let push = quote_spanned! {ty.span()=>
                __out.tag::<#ty>(&__T, &__b);
            };
            quote! {
                {
                    const __T: #p::KeyTemplate = #template;
                    let mut __b = #p::IdBuf::new();
                    #(#writes)*
                    #push
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

/// A stand-in impl emitted beside compile errors, so that the user sees the
/// real error and not dozens of follow-on "trait not implemented" errors.
pub(crate) fn fallback(input: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let (impl_g, ty_g, _) = input.generics.split_for_impl();
    let uses = fallback_uses(input, PATH, &["with", "default"]);
    // The id the user meant (the fields marked `id`, read leniently), so that
    // `Model::load(&id)` elsewhere does not add a type mismatch of its own.
    let ids: Vec<&syn::Type> = match &input.data {
        syn::Data::Struct(data) => data
            .fields
            .iter()
            .filter(|f| has_flag(&f.attrs, PATH, "id"))
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
    if tp.qself.is_some() || !tp.path.segments.iter().all(|s| s.arguments.is_empty()) {
        return false;
    }
    let names: Vec<String> = tp
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    matches!(
        names
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["String"] | ["std", "string", "String"] | ["alloc", "string", "String"]
    )
}
