//! `#[derive(Cached)]`: parse → check → expand, reusing the shared
//! internals (error collector, attribute slots, durations, key templates).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::internals::attr::{
    Attr, check_namespace, default_crate, lenient, parse_each, parse_lit_str, parse_path,
    parse_value, unknown,
};
use crate::internals::case::to_snake;
use crate::internals::ctxt::Ctxt;
use crate::internals::derive::{MAX_ID_PARTS, rust_name};
use crate::internals::duration::{duration_expr, parse_duration_ms};
use crate::internals::expand::{Bounds, const_block, key_template, option, tuple};
use crate::internals::template::{self, KeyAttr, Template};

struct Model<'a> {
    ident: &'a syn::Ident,
    generics: &'a syn::Generics,
    krate: syn::Path,
    template: Template,
    /// The explicit id type, or `None` when the key is made of fields.
    id: Option<syn::Type>,
    /// The fields the key names, in template order (field mode).
    key_fields: Vec<&'a syn::Field>,
    ttl_ms: u64,
    jitter_ms: u64,
    stale_ms: u64,
    negative_ttl_ms: Option<u64>,
    version: u32,
    beta: f64,
    namespace: Option<String>,
    tags: Vec<(Template, Vec<&'a syn::Field>)>,
}

pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    crate::internals::derive::run(input, "cache", parse, expand, fallback)
}

/// Examples of durations in the messages about one.
const DURATION_EXAMPLES: &[&str] = &["30s", "10m", "1h30m", "500ms"];

enum Jitter {
    Ms(u64),
    Percent(u64),
}

fn parse<'a>(cx: &Ctxt, input: &'a syn::DeriveInput) -> Option<Model<'a>> {
    let mut key = Attr::<syn::LitStr>::none(cx, "key");
    let mut id = Attr::<syn::Type>::none(cx, "id");
    let mut ttl = Attr::<(u64, Span)>::none(cx, "ttl");
    let mut jitter = Attr::<(Jitter, syn::LitStr)>::none(cx, "jitter");
    let mut stale = Attr::<(u64, Span)>::none(cx, "stale");
    let mut negative = Attr::<(u64, Span)>::none(cx, "negative_ttl");
    let mut version = Attr::<u32>::none(cx, "version");
    let mut beta = Attr::<f64>::none(cx, "beta");
    let mut namespace = Attr::<syn::LitStr>::none(cx, "namespace");
    let mut krate = Attr::<syn::Path>::none(cx, "crate");
    let mut tags: Vec<syn::LitStr> = Vec::new();
    // A ttl that was given but malformed is reported once, as malformed.
    let mut ttl_given = false;

    parse_each(cx, &input.attrs, "cache", |meta| {
        let path = meta.path.clone();
        if path.is_ident("key") {
            key.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("id") {
            let ty: syn::Type = match parse_value(&meta)? {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => s.parse()?,
                other => syn::parse2(other.to_token_stream())?,
            };
            id.set(&path, ty);
        } else if path.is_ident("ttl") {
            ttl_given = true;
            if let Some(v) = duration_expr(cx, "ttl", &parse_value(&meta)?, DURATION_EXAMPLES) {
                ttl.set(&path, v);
            }
        } else if path.is_ident("stale") {
            if let Some(v) = duration_expr(cx, "stale", &parse_value(&meta)?, DURATION_EXAMPLES) {
                stale.set(&path, v);
            }
        } else if path.is_ident("negative_ttl") {
            if let Some(v) =
                duration_expr(cx, "negative_ttl", &parse_value(&meta)?, DURATION_EXAMPLES)
            {
                negative.set(&path, v);
            }
        } else if path.is_ident("jitter") {
            let s = parse_lit_str(&meta)?;
            let text = s.value();
            if let Some(pct) = text.strip_suffix('%') {
                match pct.parse::<u64>() {
                    Ok(p) if (1..=100).contains(&p) => jitter.set(&path, (Jitter::Percent(p), s)),
                    _ => cx.error_spanned_by(
                        &s,
                        "malformed jitter: a percentage of the ttl is a whole number from 1% to 100%",
                    ),
                }
            } else {
                match parse_duration_ms(&text) {
                    Ok(0) => cx.error_spanned_by(&s, "jitter must be longer than zero"),
                    Ok(ms) => jitter.set(&path, (Jitter::Ms(ms), s)),
                    Err(e) => cx.error_spanned_by(
                        &s,
                        format!("malformed jitter: {e}; write a duration like \"30s\" or a percentage of the ttl like \"10%\""),
                    ),
                }
            }
        } else if path.is_ident("version") {
            match parse_value(&meta)? {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(i),
                    ..
                }) => match i.base10_parse::<u32>() {
                    Ok(v) => version.set(&path, v),
                    Err(_) => {
                        cx.error_spanned_by(&i, "version is a whole number from 0 to 4294967295")
                    }
                },
                other => cx.error_spanned_by(other, "version is a whole number: `version = 2`"),
            }
        } else if path.is_ident("beta") {
            let parsed = match parse_value(&meta)? {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Float(f),
                    ..
                }) => f.base10_parse::<f64>().map(|v| (v, f.span())),
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(i),
                    ..
                }) => i.base10_parse::<f64>().map(|v| (v, i.span())),
                syn::Expr::Unary(syn::ExprUnary {
                    op: syn::UnOp::Neg(_),
                    ..
                }) => {
                    cx.error_spanned_by(
                        meta.path.clone(),
                        "beta must be at least 0 (0 turns early refresh off)",
                    );
                    return Ok(());
                }
                other => Err(syn::Error::new_spanned(
                    other,
                    "beta is a number: `beta = 1.5`",
                )),
            };
            match parsed {
                Ok((v, _)) if v.is_finite() && v >= 0.0 => beta.set(&path, v),
                Ok((_, span)) => cx.error_at(
                    span,
                    "beta must be a finite number of at least 0 (0 turns early refresh off)",
                ),
                Err(e) => cx.syn_error(e),
            }
        } else if path.is_ident("tag") {
            tags.push(parse_lit_str(&meta)?);
        } else if path.is_ident("namespace") {
            namespace.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("crate") {
            krate.set(&path, parse_path(&meta)?);
        } else {
            return Err(unknown(
                &meta,
                "cache",
                "",
                "key, id, ttl, jitter, stale, negative_ttl, tag, version, beta, namespace, crate",
                &[
                    (&["tags"], " (write one `tag = \"...\"` per tag)"),
                    (
                        &["expire", "expiry", "ttl_ms"],
                        " (the time to live is `ttl`)",
                    ),
                    (
                        &["stale_ttl", "stale_while_revalidate"],
                        " (the stale window is `stale`)",
                    ),
                ],
            ));
        }
        Ok(())
    });
    let krate = krate.get().unwrap_or_else(default_crate);

    // Named fields, for key and tag placeholders.
    let fields: Vec<&syn::Field> = match &input.data {
        syn::Data::Struct(syn::DataStruct {
            fields: syn::Fields::Named(named),
            ..
        }) => named.named.iter().collect(),
        _ => Vec::new(),
    };
    let field_named = |name: &str| {
        fields
            .iter()
            .copied()
            .find(|f| f.ident.as_ref().is_some_and(|i| rust_name(i) == name))
    };
    let field_list = || {
        let names: Vec<String> = fields
            .iter()
            .filter_map(|f| f.ident.as_ref().map(|i| format!("`{i}`")))
            .collect();
        if names.is_empty() {
            format!("`{}` has no named fields", input.ident)
        } else {
            format!("its fields are {}", names.join(", "))
        }
    };

    // -- ttl and friends ---------------------------------------------------
    let ttl = ttl.get();
    if ttl.is_none() && !ttl_given {
        cx.error_spanned_by(
            &input.ident,
            "a cached type needs a time to live: add `#[cache(ttl = \"10m\")]`",
        );
    }
    let ttl_ms = ttl.map_or(0, |(ms, _)| ms);
    let jitter_ms = match jitter.get() {
        None => 0,
        Some((Jitter::Percent(p), _)) => ttl_ms.saturating_mul(p) / 100,
        Some((Jitter::Ms(ms), lit)) => {
            if ttl.is_some() && ms > ttl_ms {
                cx.error_spanned_by(
                    &lit,
                    format!("jitter ({ms} ms) is longer than the ttl ({ttl_ms} ms): entries would live more than twice as long as asked; use a smaller jitter or a percentage like \"10%\""),
                );
            }
            ms
        }
    };
    let stale_ms = stale.get().map_or(0, |(ms, _)| ms);
    let negative = negative.get();
    if let (Some((neg, span)), Some(_)) = (negative, ttl)
        && neg > ttl_ms
    {
        cx.error_at(
            span,
            format!("negative_ttl ({neg} ms) is longer than the ttl ({ttl_ms} ms): \"not found\" would be remembered longer than values; shorten it"),
        );
    }

    // -- key template ----------------------------------------------------------
    let explicit_id = id.get_with_tokens();
    let key = KeyAttr::new(key.get(), &input.ident, || {
        format!("{}:{{id}}", to_snake(&input.ident.to_string()))
    });
    let template_src = key.src.as_str();
    let key_err = |msg: String| key.error(cx, msg);
    let template = key.parse(cx, None);
    let mut key_fields = Vec::new();
    if let Some(t) = &template {
        let parts: Vec<&str> = t.parts().collect();
        if parts.is_empty() {
            key_err("the key template needs at least one placeholder: entries of different ids would share one key".to_owned());
        }
        if parts.len() > MAX_ID_PARTS {
            key_err(format!(
                "a key may have at most {MAX_ID_PARTS} placeholders"
            ));
        }
        for (i, p) in parts.iter().enumerate() {
            if parts[..i].contains(p) {
                key_err(format!("the key template names `{{{p}}}` more than once"));
            }
        }
        if explicit_id.is_none() {
            for p in &parts {
                match field_named(p) {
                    Some(f) => key_fields.push(f),
                    None if key.is_default() => cx.error_spanned_by(
                        &input.ident,
                        format!(
                            "the default key `{template_src}` names a field `id`, and {}; give a key template over fields (`#[cache(key = \"product:{{sku}}\")]`) or an explicit id type (`#[cache(id = u64)]`)",
                            field_list()
                        ),
                    ),
                    None => key_err(format!(
                        "the key template names `{{{p}}}`, but {}; name fields, or give an explicit id type with `id = Type`",
                        field_list()
                    )),
                }
            }
        }
    }

    // -- tags ------------------------------------------------------------------
    let mut parsed_tags = Vec::new();
    for (i, lit) in tags.iter().enumerate() {
        if tags[..i].iter().any(|t| t.value() == lit.value()) {
            cx.error_spanned_by(lit, "duplicate tag");
            continue;
        }
        let Some(t) = template::parse_tag(cx, lit) else {
            continue;
        };
        let mut tag_fields = Vec::new();
        for p in t.parts() {
            match field_named(p) {
                Some(f) => tag_fields.push(f),
                None => cx.error_spanned_by(
                    lit,
                    format!("the tag names `{{{p}}}`, but {}", field_list()),
                ),
            }
        }
        parsed_tags.push((t, tag_fields));
    }

    let namespace = namespace.get().and_then(|ns| check_namespace(cx, &ns));

    if cx.has_errors() {
        return None;
    }
    Some(Model {
        ident: &input.ident,
        generics: &input.generics,
        krate,
        template: template?,
        id: explicit_id.map(|(_, ty)| ty),
        key_fields,
        ttl_ms,
        jitter_ms,
        stale_ms,
        negative_ttl_ms: negative.map(|(ms, _)| ms),
        version: version.get().unwrap_or(1),
        beta: beta.get().unwrap_or(1.0),
        namespace,
        tags: parsed_tags,
    })
}

fn expand(m: &Model<'_>) -> TokenStream {
    let krate = &m.krate;
    let p = quote!(#krate::__private);
    let ident = m.ident;
    let (impl_g, ty_g, where_c) = m.generics.split_for_impl();
    // A generic type is cacheable for the arguments that make it a serde
    // type; a plain type gets no extra bound.
    // Each impl states what its body needs as `for<'__r> Ty: Trait` (see
    // `Bounds`); the assertion below reports an unmet one once, at the field
    // type.
    let mut preds = Bounds::default();
    if !m.generics.params.is_empty() {
        preds.push_plain(quote!(Self: #p::SerdeValue));
    }
    for f in m
        .key_fields
        .iter()
        .chain(m.tags.iter().flat_map(|(_, fs)| fs.iter()))
    {
        let ty = &f.ty;
        preds.push(quote!(#ty: #p::KeyPart));
    }
    if let Some(ty) = &m.id {
        preds.push(quote!(#ty: #p::IdValue));
    }
    let trait_where = preds.where_clause(m.generics);
    let model_name = ident.to_string();
    let name = to_snake(&model_name);
    let schema_key = key_template(&p, &m.template, m.namespace.as_deref());
    let (ttl, jitter, stale, version, beta) =
        (m.ttl_ms, m.jitter_ms, m.stale_ms, m.version, m.beta);
    let negative = option(&p, m.negative_ttl_ms);

    let id_ty = match &m.id {
        Some(ty) => quote!(#ty),
        None => tuple(&m.key_fields.iter().map(|f| &f.ty).collect::<Vec<_>>()),
    };

    let tag_blocks = m.tags.iter().map(|(t, fields)| {
        let template = key_template(&p, t, None);
        let writes = fields.iter().map(|f| {
            let fi = &f.ident;
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

    let keyed = if m.id.is_none() {
        let trait_where = &trait_where;
        let writes = m.key_fields.iter().map(|f| {
            let fi = &f.ident;
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
    } else {
        quote!()
    };

    // Every field a key or tag names must be a key part; say so at its type.
    let mut asserted: Vec<&syn::Field> = Vec::new();
    for f in m
        .key_fields
        .iter()
        .chain(m.tags.iter().flat_map(|(_, fs)| fs.iter()))
    {
        if !asserted.iter().any(|a| a.ident == f.ident) {
            asserted.push(f);
        }
    }
    let asserts = asserted.iter().map(|f| {
        let ty = &f.ty;
        quote_spanned!(ty.span()=> #p::assert_key_part::<#ty>();)
    });
    let id_check = m.id.as_ref().map(|ty| {
        let n = m.template.parts().count();
        let msg = format!(
            "the explicit id type must have as many parts as the key template has placeholders ({n})"
        );
        quote_spanned! {ty.span()=>
            const _: () = ::core::assert!(<#ty as #p::IdValue>::PARTS == #n, #msg);
        }
    });

    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::Cached for #ident #ty_g #trait_where {
            type Id = #id_ty;

            const SCHEMA: &'static #p::CacheSchema = &#p::CacheSchema::new(
                #model_name,
                #name,
                #schema_key,
                #ttl,
                #jitter,
                #stale,
                #negative,
                #version,
                #beta,
            );

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

/// A stand-in impl beside the errors, so uses of the type report nothing
/// more.
fn fallback(input: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
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
    let mut key = None;
    let mut id = None;
    lenient(&input.attrs, "cache", |meta| {
        if meta.path.is_ident("key") {
            key = parse_lit_str(meta).ok().map(|l| l.value());
        } else if meta.path.is_ident("id") {
            id = match parse_value(meta) {
                Ok(syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                })) => s.parse::<syn::Type>().ok(),
                Ok(other) => syn::parse2::<syn::Type>(other.to_token_stream()).ok(),
                Err(_) => None,
            };
        }
    });
    if let Some(ty) = id {
        return Some(quote!(#ty));
    }
    let syn::Data::Struct(syn::DataStruct {
        fields: syn::Fields::Named(named),
        ..
    }) = &input.data
    else {
        return None;
    };
    let src = key.unwrap_or_else(|| "_:{id}".to_owned());
    let t = template::parse_lenient(&src).ok()?;
    let tys: Vec<&syn::Type> = t
        .parts()
        .map(|p| {
            named
                .named
                .iter()
                .find(|f| f.ident.as_ref().is_some_and(|i| i == p))
                .map(|f| &f.ty)
        })
        .collect::<Option<_>>()?;
    (!tys.is_empty()).then(|| tuple(&tys))
}
