//! `#[redis(...)]` on a `RedisHash` struct and its fields, read into typed
//! slots. Nothing here relates one attribute to another: that is `check`.

use proc_macro2::{Span, TokenStream};

use crate::internals::ast::Field;
use crate::internals::attr::{
    AttrCx, Common, CommonAttrs, CommonField, CommonFieldAttrs, CommonKey, parse_lit_bool,
    parse_lit_str, parse_path, parse_value,
};
use crate::internals::ctxt::Ctxt;
use crate::internals::duration::duration_expr;

/// The attribute `RedisHash` reads.
pub(crate) const PATH: &str = "redis";

/// The struct's attributes.
pub(crate) struct ContainerAttrs {
    pub(crate) common: CommonAttrs,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) collection: Option<syn::LitStr>,
    /// `store_id = false`: the id lives in the key only.
    pub(crate) store_id: Option<bool>,
    /// `invalidates(Type = "field, field")`, as written.
    pub(crate) invalidates: Vec<(syn::Path, syn::LitStr)>,
    /// `buckets = N`, as written.
    pub(crate) buckets: Option<syn::LitInt>,
    /// `invalidates_tag(Type = "template")`, as written.
    pub(crate) invalidates_tags: Vec<(syn::Path, syn::LitStr)>,
}

/// One field's attributes.
pub(crate) struct FieldAttrs {
    pub(crate) common: CommonFieldAttrs,
    pub(crate) id: Option<Span>,
    pub(crate) json: Option<Span>,
    /// The `with` path, and the tokens of the attribute.
    pub(crate) with: Option<(TokenStream, syn::Path)>,
    pub(crate) index: Option<Span>,
    pub(crate) unique: Option<Span>,
    pub(crate) counter: Option<Span>,
    pub(crate) version: Option<Span>,
    pub(crate) expires_at: Option<Span>,
}

const FIELD_ATTRS: &[&str] = &[
    "id",
    "index",
    "unique",
    "skip",
    "json",
    "counter",
    "version",
    "expires_at",
    "rename",
    "with",
    "default",
];

const STRUCT_ATTRS: &[&str] = &[
    "key",
    "ttl",
    "namespace",
    "hash_tag",
    "collection",
    "store_id",
    "rename_all",
    "buckets",
];

impl ContainerAttrs {
    pub(crate) fn from_ast(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        use CommonKey::*;
        let acx = AttrCx::new(cx, PATH);
        let mut common = Common::new(acx, &[Key, HashTag, Namespace, RenameAll, Crate]);
        let mut ttl = acx.slot::<u64>("ttl");
        let mut collection = acx.slot::<syn::LitStr>("collection");
        let mut store_id = acx.slot::<bool>("store_id");
        let mut buckets = acx.slot::<syn::LitInt>("buckets");
        let mut invalidates = Vec::new();
        let mut invalidates_tags = Vec::new();
        acx.each(&input.attrs, |meta| {
            if common.parse(&meta)? {
                return Ok(());
            }
            let path = &meta.path;
            if path.is_ident("ttl") {
                let expr = parse_value(&meta)?;
                if let Some((ms, _)) = duration_expr(cx, "ttl", &expr, &["30m", "1h30m", "500ms"])
                {
                    ttl.set(path, ms);
                }
            } else if path.is_ident("collection") {
                collection.set(path, parse_lit_str(&meta)?);
            } else if path.is_ident("store_id") {
                store_id.set(path, parse_lit_bool(&meta)?);
            } else if path.is_ident("buckets") {
                let lit: syn::Lit = meta.value()?.parse()?;
                match lit {
                    syn::Lit::Int(n) => buckets.set(path, n),
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "`buckets` takes an integer from 1 to 16384: `#[redis(buckets = 64)]`",
                        ));
                    }
                }
            } else if path.is_ident("invalidates") {
                meta.parse_nested_meta(|inner| {
                    invalidates.push((inner.path.clone(), parse_lit_str(&inner)?));
                    Ok(())
                })?;
            } else if path.is_ident("invalidates_tag") {
                parse_invalidates_tag(cx, &meta, &mut invalidates_tags)?;
            } else {
                return Err(acx.unknown(
                    &meta,
                    " on a struct",
                    "key, hash_tag, buckets, ttl, namespace, collection, store_id, rename_all, crate, invalidates, invalidates_tag",
                    &[(FIELD_ATTRS, " (it is a field attribute: put it on a field)")],
                ));
            }
            Ok(())
        });
        ContainerAttrs {
            common: common.finish(),
            ttl_ms: ttl.get(),
            collection: collection.get(),
            store_id: store_id.get(),
            buckets: buckets.get(),
            invalidates,
            invalidates_tags,
        }
    }
}

const INVALIDATES_TAG_FORM: &str = "`invalidates_tag(ProductView = \"category:{category}\")`";

/// `invalidates_tag(Type = "template", ...)`: the cached type whose entries
/// carry the tag, and the tag. The plain `invalidates_tag = "template"` is
/// an error: a tag set lives in the namespace of the cached type that wrote
/// it, which the template alone does not tell.
fn parse_invalidates_tag(
    cx: &Ctxt,
    meta: &syn::meta::ParseNestedMeta<'_>,
    out: &mut Vec<(syn::Path, syn::LitStr)>,
) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let lit = parse_lit_str(meta)?;
        let path = &meta.path;
        cx.error_spanned_by(
            quote::quote!(#path = #lit),
            format!(
                "name the cached type whose entries carry the tag: {INVALIDATES_TAG_FORM}; its tag sets live in that type's namespace, which the tag alone does not tell"
            ),
        );
        return Ok(());
    }
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "name the cached type whose entries carry the tag, and the tag: {INVALIDATES_TAG_FORM}"
        )));
    }
    let empty = {
        let content;
        let fork = meta.input.fork();
        syn::parenthesized!(content in fork);
        content.is_empty()
    };
    if empty {
        return Err(meta.error(format!(
            "`invalidates_tag()` names no cached type: {INVALIDATES_TAG_FORM}"
        )));
    }
    meta.parse_nested_meta(|inner| {
        if !inner.input.peek(syn::Token![=]) {
            return Err(inner.error(format!(
                "write the cached type and the tag it carries: {INVALIDATES_TAG_FORM}"
            )));
        }
        out.push((inner.path.clone(), parse_lit_str(&inner)?));
        Ok(())
    })
}

impl FieldAttrs {
    pub(crate) fn from_ast(cx: &Ctxt, field: &Field<'_>) -> Self {
        let acx = AttrCx::new(cx, PATH);
        let mut common = CommonField::new(acx);
        let mut with = acx.slot::<syn::Path>("with");
        let mut flags = [
            "id",
            "json",
            "index",
            "unique",
            "counter",
            "version",
            "expires_at",
        ]
        .map(|name| (name, acx.flag(name)));
        acx.each(field.attrs, |meta| {
            if common.parse(&meta)? {
                return Ok(());
            }
            let path = &meta.path;
            if let Some((_, flag)) = flags.iter_mut().find(|(name, _)| path.is_ident(name)) {
                flag.set(path);
            } else if path.is_ident("with") {
                with.set(path, parse_path(&meta)?);
            } else {
                return Err(acx.unknown(
                    &meta,
                    " on a field",
                    "id, rename, skip, default, json, with, index, unique, counter, version, expires_at",
                    &[(STRUCT_ATTRS, " (it is a struct attribute: put it on the struct)")],
                ));
            }
            Ok(())
        });
        let [id, json, index, unique, counter, version, expires_at] =
            flags.map(|(_, flag)| flag.get());
        FieldAttrs {
            common: common.finish(),
            id,
            json,
            with: with.get_with_tokens(),
            index,
            unique,
            counter,
            version,
            expires_at,
        }
    }
}
