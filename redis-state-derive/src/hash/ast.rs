//! `#[derive(RedisHash)]`: parse the attributes into a checked model.

use proc_macro2::Span;
use syn::spanned::Spanned;

pub(crate) use crate::internals::attr::DefaultKind;
use crate::internals::attr::{
    Attr, Flag, check_namespace, default_crate, parse_default, parse_each, parse_lit_str,
    parse_path, parse_value, unknown,
};
use crate::internals::case::{RenameRule, to_snake};
use crate::internals::ctxt::Ctxt;
use crate::internals::derive::{MAX_ID_PARTS, named_fields};
use crate::internals::duration::duration_expr;
use crate::internals::template::{self, KeyAttr, Template};
use crate::internals::ty::option_inner;

pub(crate) struct Model<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) vis: &'a syn::Visibility,
    pub(crate) generics: &'a syn::Generics,
    pub(crate) krate: syn::Path,
    pub(crate) template: Template,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) namespace: Option<String>,
    pub(crate) collection: String,
    pub(crate) fields: Vec<FieldModel<'a>>,
    /// `invalidates(Type = "field, field")`: cached types whose entry with
    /// the id made of these fields depends on the entity.
    pub(crate) invalidates: Vec<(syn::Path, Vec<String>, Span)>,
    /// `invalidates_tag(Type = "template")`: tags over the entity's fields,
    /// carried by entries of the cached type `Type` (whose namespace holds
    /// the tag set).
    pub(crate) invalidates_tags: Vec<(syn::Path, Template)>,
}

#[derive(Clone)]
pub(crate) enum CodecKind {
    Plain,
    Json,
    With(syn::Path),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Id,
    Data,
    Counter,
    Version,
    ExpiresAt,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    None,
    Index,
    Unique,
}

pub(crate) struct FieldModel<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) ty: &'a syn::Type,
    /// `T` of `Option<T>`.
    pub(crate) option_inner: Option<&'a syn::Type>,
    /// The hash field name.
    pub(crate) name: String,
    pub(crate) skip: bool,
    pub(crate) codec: CodecKind,
    pub(crate) codec_span: Span,
    pub(crate) role: Role,
    /// The `id` / `counter` / `version` / `expires_at` attribute.
    pub(crate) role_span: Span,
    pub(crate) index: IndexKind,
    /// The `index` / `unique` attribute.
    pub(crate) index_span: Span,
    /// The `rename` literal, else the field name.
    pub(crate) name_span: Span,
    pub(crate) default: DefaultKind,
}

impl FieldModel<'_> {
    /// The Rust name without `r#`.
    pub(crate) fn rust_name(&self) -> String {
        crate::internals::derive::rust_name(self.ident)
    }

    /// The type a value of this field has when it is present (`T` for
    /// `Option<T>`).
    pub(crate) fn value_ty(&self) -> &syn::Type {
        self.option_inner.unwrap_or(self.ty)
    }
}

pub(crate) fn parse<'a>(cx: &Ctxt, input: &'a syn::DeriveInput) -> Option<Model<'a>> {
    let named = named_fields(
        cx,
        input,
        "RedisHash",
        "it maps a struct with named fields onto a Redis hash",
    );

    // -- container attributes ---------------------------------------------
    let mut key = Attr::<syn::LitStr>::none(cx, "key");
    let mut hash_tag = Attr::<syn::LitStr>::none(cx, "hash_tag");
    let mut ttl = Attr::<(u64, Span)>::none(cx, "ttl");
    let mut namespace = Attr::<syn::LitStr>::none(cx, "namespace");
    let mut collection = Attr::<syn::LitStr>::none(cx, "collection");
    let mut rename_all = Attr::<RenameRule>::none(cx, "rename_all");
    let mut krate = Attr::<syn::Path>::none(cx, "crate");
    let mut invalidates: Vec<(syn::Path, syn::LitStr)> = Vec::new();
    let mut invalidates_tags: Vec<(syn::Path, syn::LitStr)> = Vec::new();

    parse_each(cx, &input.attrs, "redis", |meta| {
        let path = meta.path.clone();
        if path.is_ident("key") {
            key.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("hash_tag") {
            hash_tag.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("ttl") {
            let expr = parse_value(&meta)?;
            if let Some(v) = duration_expr(cx, "ttl", &expr, &["30m", "1h30m", "500ms"]) {
                ttl.set(&path, v);
            }
        } else if path.is_ident("namespace") {
            namespace.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("collection") {
            collection.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("rename_all") {
            if let Some(rule) = RenameRule::from_lit(cx, &parse_lit_str(&meta)?) {
                rename_all.set(&path, rule);
            }
        } else if path.is_ident("crate") {
            krate.set(&path, parse_path(&meta)?);
        } else if path.is_ident("invalidates") {
            meta.parse_nested_meta(|inner| {
                let ty = inner.path.clone();
                let fields = parse_lit_str(&inner)?;
                invalidates.push((ty, fields));
                Ok(())
            })?;
        } else if path.is_ident("invalidates_tag") {
            parse_invalidates_tag(cx, &meta, &mut invalidates_tags)?;
        } else {
            return Err(unknown(
                &meta,
                "redis",
                " on a struct",
                "key, hash_tag, ttl, namespace, collection, rename_all, crate, invalidates, invalidates_tag",
                &[(
                    &[
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
                    ],
                    " (it is a field attribute: put it on a field)",
                )],
            ));
        }
        Ok(())
    });

    let rename_all = rename_all.get();
    let krate = krate.get().unwrap_or_else(default_crate);

    // -- fields -------------------------------------------------------------
    let mut fields = Vec::new();
    if let Some(named) = named {
        for f in &named.named {
            if let Some(fm) = parse_field(cx, f, rename_all) {
                fields.push(fm);
            }
        }
    }

    let namespace = namespace.get().and_then(|ns| check_namespace(cx, &ns));

    let collection = match collection.get() {
        Some(c) => {
            let v = c.value();
            if v.is_empty()
                || !v
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
            {
                cx.error_spanned_by(
                    &c,
                    "invalid collection: use ASCII letters, digits, `_`, `-` and `.`",
                );
            }
            v
        }
        None => to_snake(&input.ident.to_string()),
    };

    check_fields(cx, input, &fields);

    let id_fields: Vec<&FieldModel<'_>> = fields.iter().filter(|f| f.role == Role::Id).collect();

    // -- key template -------------------------------------------------------
    let key = KeyAttr::new(key.get(), &input.ident, || {
        let mut s = to_snake(&input.ident.to_string());
        for f in &id_fields {
            s.push_str(&format!(":{{{}}}", f.rust_name()));
        }
        s
    });
    let template = key.parse(cx, hash_tag.get());
    if let Some(t) = &template {
        check_template(cx, input, t, &key, &fields, &collection);
    }

    let invalidates = check_invalidates(cx, input, &fields, invalidates);
    let invalidates_tags = invalidates_tags
        .into_iter()
        .filter_map(|(ty, lit)| {
            let t = template::parse_tag(cx, &lit)?;
            for p in t.parts() {
                check_dependency_field(cx, input, &fields, &lit, p, "the tag");
            }
            Some((ty, t))
        })
        .collect();

    if named.is_none() || cx.has_errors() {
        return None;
    }
    Some(Model {
        ident: &input.ident,
        vis: &input.vis,
        generics: &input.generics,
        krate,
        template: template?,
        ttl_ms: ttl.get().map(|(ms, _)| ms),
        namespace,
        collection,
        fields,
        invalidates,
        invalidates_tags,
    })
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

/// A field an invalidation names must exist and be stored (a delete reads
/// the entity back to find the entries).
fn check_dependency_field(
    cx: &Ctxt,
    input: &syn::DeriveInput,
    fields: &[FieldModel<'_>],
    lit: &syn::LitStr,
    name: &str,
    what: &str,
) -> bool {
    match fields.iter().find(|f| f.rust_name() == name) {
        Some(f) if f.skip => {
            cx.error_spanned_by(
                lit,
                format!("{what} names `{name}`, which is `skip`ped: a delete reads the entity back, and a skipped field is not stored"),
            );
            false
        }
        Some(_) => true,
        None => {
            let names: Vec<String> = fields
                .iter()
                .map(|f| format!("`{}`", f.rust_name()))
                .collect();
            cx.error_spanned_by(
                lit,
                format!(
                    "{what} names `{name}`, but `{}` has no such field; its fields are {}",
                    input.ident,
                    names.join(", ")
                ),
            );
            false
        }
    }
}

fn check_invalidates(
    cx: &Ctxt,
    input: &syn::DeriveInput,
    fields: &[FieldModel<'_>],
    raw: Vec<(syn::Path, syn::LitStr)>,
) -> Vec<(syn::Path, Vec<String>, Span)> {
    let mut out = Vec::new();
    for (ty, lit) in raw {
        let names: Vec<String> = lit
            .value()
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect();
        if names.iter().any(String::is_empty) {
            cx.error_spanned_by(
                &lit,
                "list the fields that make the cached entry's id, separated by commas: `invalidates(ProductView = \"id\")`",
            );
            continue;
        }
        if names.len() > MAX_ID_PARTS {
            cx.error_spanned_by(&lit, format!("an id has at most {MAX_ID_PARTS} parts"));
            continue;
        }
        let mut ok = true;
        for n in &names {
            ok &= check_dependency_field(cx, input, fields, &lit, n, "`invalidates`");
        }
        if ok {
            out.push((ty, names, lit.span()));
        }
    }
    out
}

fn check_template(
    cx: &Ctxt,
    input: &syn::DeriveInput,
    t: &Template,
    key: &KeyAttr<'_>,
    fields: &[FieldModel<'_>],
    collection: &str,
) {
    let template_src = key.src.as_str();
    let template_err_at = |msg: String| key.error(cx, msg);
    let parts: Vec<&str> = t.parts().collect();
    let id_fields: Vec<&FieldModel<'_>> = fields.iter().filter(|f| f.role == Role::Id).collect();
    let missing_ids: Vec<String> = id_fields
        .iter()
        .map(|f| f.rust_name())
        .filter(|n| !parts.contains(&n.as_str()))
        .collect();
    let mut unknown = false;
    for (i, p) in parts.iter().enumerate() {
        match fields.iter().find(|f| f.rust_name() == *p) {
            None => {
                unknown = true;
                let hint = match missing_ids.as_slice() {
                    [] => String::new(),
                    [one] => format!("; did you mean `{{{one}}}`?"),
                    many => format!(
                        "; the id fields missing from the key are {}",
                        many.iter()
                            .map(|n| format!("`{{{n}}}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                template_err_at(format!(
                    "the key template names `{{{p}}}`, but `{}` has no field `{p}`{hint}",
                    input.ident
                ));
            }
            Some(f) if f.role != Role::Id => template_err_at(format!(
                "the key template names `{{{p}}}`, which is not an id field; mark it `#[redis(id)]` or remove it from the key"
            )),
            Some(_) => {}
        }
        if parts[..i].contains(p) {
            template_err_at(format!("the key template names `{{{p}}}` more than once"));
        }
    }
    // A misspelt placeholder already names the id it misses: one error.
    if !unknown {
        for f in id_fields
            .iter()
            .filter(|f| missing_ids.contains(&f.rust_name()))
        {
            cx.error_spanned_by(
                f.ident,
                format!(
                    "id field `{}` does not appear in the key template `{template_src}`; add `{{{}}}` to it",
                    f.rust_name(),
                    f.rust_name()
                ),
            );
        }
    }
    if parts.len() > MAX_ID_PARTS {
        template_err_at(format!("a key may have at most {MAX_ID_PARTS} id parts"));
    }
    if !t.has_tag()
        && let Some(f) = fields.iter().find(|f| f.index != IndexKind::None)
    {
        let attr = if f.index == IndexKind::Unique {
            "unique"
        } else {
            "index"
        };
        let key = suggest_tagged_key(template_src, collection);
        let scoped = match parts.as_slice() {
            [first, _, ..] => {
                format!(", or `#[redis(hash_tag = \"{first}\")]` for one index per `{first}`")
            }
            _ => String::new(),
        };
        cx.error_at(
            f.index_span,
            format!(
                "`#[redis({attr})]` needs a key with a Redis Cluster hash tag, so that entities and their index share a slot, and the key template `{template_src}` has none; write `#[redis(key = \"{key}\")]`{scoped}"
            ),
        );
    }
}

/// The user's template with its leading literal (or the collection name)
/// wrapped in a hash tag: `user:{id}` -> `{{user}}:{id}`.
fn suggest_tagged_key(template_src: &str, collection: &str) -> String {
    let lead = template_src.split('{').next().unwrap_or("");
    let lead = lead.split(':').next().unwrap_or("");
    if lead.is_empty() {
        format!("{{{{{collection}}}}}:{template_src}")
    } else {
        format!("{{{{{lead}}}}}{}", &template_src[lead.len()..])
    }
}

fn parse_field<'a>(
    cx: &Ctxt,
    f: &'a syn::Field,
    rename_all: Option<RenameRule>,
) -> Option<FieldModel<'a>> {
    let ident = f.ident.as_ref()?;
    let mut id = Flag::none(cx, "id");
    let mut rename = Attr::<syn::LitStr>::none(cx, "rename");
    let mut skip = Flag::none(cx, "skip");
    let mut default = Attr::<DefaultKind>::none(cx, "default");
    let mut json = Flag::none(cx, "json");
    let mut with = Attr::<syn::Path>::none(cx, "with");
    let mut index = Flag::none(cx, "index");
    let mut unique = Flag::none(cx, "unique");
    let mut counter = Flag::none(cx, "counter");
    let mut version = Flag::none(cx, "version");
    let mut expires_at = Flag::none(cx, "expires_at");

    parse_each(cx, &f.attrs, "redis", |meta| {
        let path = meta.path.clone();
        let span = path.span();
        if path.is_ident("id") {
            id.set(&path, span);
        } else if path.is_ident("rename") {
            rename.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("skip") {
            skip.set(&path, span);
        } else if path.is_ident("default") {
            default.set(&path, parse_default(&meta)?);
        } else if path.is_ident("json") {
            json.set(&path, span);
        } else if path.is_ident("with") {
            with.set(&path, parse_path(&meta)?);
        } else if path.is_ident("index") {
            index.set(&path, span);
        } else if path.is_ident("unique") {
            unique.set(&path, span);
        } else if path.is_ident("counter") {
            counter.set(&path, span);
        } else if path.is_ident("version") {
            version.set(&path, span);
        } else if path.is_ident("expires_at") {
            expires_at.set(&path, span);
        } else {
            return Err(unknown(
                &meta,
                "redis",
                " on a field",
                "id, rename, skip, default, json, with, index, unique, counter, version, expires_at",
                &[(
                    &[
                        "key",
                        "ttl",
                        "namespace",
                        "hash_tag",
                        "collection",
                        "rename_all",
                    ],
                    " (it is a struct attribute: put it on the struct)",
                )],
            ));
        }
        Ok(())
    });

    let option = option_inner(&f.ty);
    let id = id.get();
    let skip = skip.get();
    let json = json.get();
    let with = with.get_with_tokens();
    let index = index.get();
    let unique = unique.get();
    let counter = counter.get();
    let version = version.get();
    let expires_at = expires_at.get();
    let default = default.get_with_tokens();
    let rename = rename.get();

    // Conflicts, each reported at the attribute that conflicts.
    let roles: Vec<(&str, Span)> = [
        ("id", id),
        ("counter", counter),
        ("version", version),
        ("expires_at", expires_at),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    if roles.len() > 1 {
        cx.error_at(
            roles[1].1,
            format!(
                "`{}` conflicts with `{}`: a field has one role",
                roles[1].0, roles[0].0
            ),
        );
    }
    if let Some(s) = skip {
        for (name, other) in [
            ("id", id),
            ("json", json),
            ("index", index),
            ("unique", unique),
            ("counter", counter),
            ("version", version),
            ("expires_at", expires_at),
        ] {
            if other.is_some() {
                cx.error_at(
                    s,
                    format!("`skip` conflicts with `{name}`: a skipped field is not stored"),
                );
            }
        }
        if with.is_some() || rename.is_some() {
            cx.error_at(
                s,
                "`skip` conflicts with `with` / `rename`: a skipped field is not stored",
            );
        }
    }
    if let (Some(j), Some((w, _))) = (json, &with) {
        cx.error_spanned_by(w, "`with` conflicts with `json`: choose one codec");
        let _ = j;
    }
    if let (Some(_), Some(u)) = (index, unique) {
        cx.error_at(
            u,
            "`unique` conflicts with `index`: a unique field is already indexed",
        );
    }
    for (name, flag) in [("index", index), ("unique", unique)] {
        let Some(s) = flag else { continue };
        if json.is_some() {
            cx.error_at(
                s,
                format!("`{name}` on a json field: indexes match exact stored strings, and JSON text is not a stable key; index a plain field instead"),
            );
        }
        if id.is_some() {
            cx.error_at(
                s,
                format!("`{name}` on an id field: ids are already the key"),
            );
        }
        if counter.is_some() || version.is_some() {
            cx.error_at(
                s,
                format!("`{name}` on a counter or version field: they change without index upkeep"),
            );
        }
    }
    if let Some(s) = id {
        if option.is_some() {
            cx.error_spanned_by(
                &f.ty,
                "an id field cannot be an `Option`: every entity needs its id",
            );
        }
        if json.is_some() || with.is_some() {
            cx.error_at(
                s,
                "an id field is a key part: it cannot use `json` or `with`",
            );
        }
        if let Some((tokens, _)) = &default {
            cx.error_spanned_by(
                tokens,
                "`default` on an id field: an entity without its id cannot be loaded",
            );
        }
    }
    for (name, flag) in [("counter", counter), ("version", version)] {
        let Some(s) = flag else { continue };
        if option.is_some() {
            cx.error_spanned_by(
                &f.ty,
                format!("a {name} field cannot be an `Option`: use the number type itself"),
            );
        }
        if json.is_some() || with.is_some() {
            cx.error_at(
                s,
                format!("a {name} field is stored as a plain number: no `json` or `with`"),
            );
        }
    }

    let name_span = rename.as_ref().map_or(ident.span(), syn::LitStr::span);
    let name = match rename {
        Some(lit) => {
            let v = lit.value();
            if v.is_empty() {
                cx.error_spanned_by(&lit, "a field name cannot be empty");
            }
            v
        }
        None => RenameRule::field_name(rename_all, &crate::internals::derive::rust_name(ident)),
    };

    let (codec, codec_span) = match (json, with) {
        (_, Some((tokens, path))) => (CodecKind::With(path), tokens.span()),
        (Some(s), None) => (CodecKind::Json, s),
        (None, None) => (CodecKind::Plain, f.ty.span()),
    };
    let role_span = id
        .or(counter)
        .or(version)
        .or(expires_at)
        .unwrap_or_else(Span::call_site);
    let index_span = unique.or(index).unwrap_or_else(Span::call_site);
    let role = if id.is_some() {
        Role::Id
    } else if counter.is_some() {
        Role::Counter
    } else if version.is_some() {
        Role::Version
    } else if expires_at.is_some() {
        Role::ExpiresAt
    } else {
        Role::Data
    };
    let index = if unique.is_some() {
        IndexKind::Unique
    } else if index.is_some() {
        IndexKind::Index
    } else {
        IndexKind::None
    };
    Some(FieldModel {
        ident,
        ty: &f.ty,
        option_inner: option,
        name,
        skip: skip.is_some(),
        codec,
        codec_span,
        role,
        role_span,
        index,
        index_span,
        name_span,
        default: default.map_or(DefaultKind::None, |(_, d)| d),
    })
}

fn check_fields(cx: &Ctxt, input: &syn::DeriveInput, fields: &[FieldModel<'_>]) {
    let named = matches!(
        &input.data,
        syn::Data::Struct(syn::DataStruct {
            fields: syn::Fields::Named(_),
            ..
        })
    );
    if named && !fields.iter().any(|f| f.role == Role::Id) {
        cx.error_spanned_by(
            &input.ident,
            format!(
                "`{}` has no id: mark the field (or fields) that identify an entity with `#[redis(id)]`",
                input.ident
            ),
        );
    }
    for (role, name) in [(Role::Version, "version"), (Role::ExpiresAt, "expires_at")] {
        let marked: Vec<_> = fields.iter().filter(|f| f.role == role).collect();
        for extra in marked.iter().skip(1) {
            cx.error_at(
                extra.role_span,
                format!(
                    "a model has at most one `{name}` field, and `{}` already is `#[redis({name})]`",
                    marked[0].rust_name()
                ),
            );
        }
    }
    for (i, f) in fields.iter().enumerate() {
        if f.skip {
            continue;
        }
        if let Some(prev) = fields[..i].iter().find(|p| !p.skip && p.name == f.name) {
            cx.error_at(
                f.name_span,
                format!(
                    "two fields are stored under the hash field name `{}`: `{}` and `{}`; give one of them another `rename`",
                    f.name,
                    prev.rust_name(),
                    f.rust_name()
                ),
            );
        }
    }
}
