//! Reading attributes into typed slots: the attribute a derive reads and
//! names in its messages ([`AttrCx`]), slots that report duplicates, the
//! value parsers every derive uses, the attributes several derives share
//! ([`Common`], [`CommonField`]), and lenient readers for fallback impls.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;

use super::case::RenameRule;
use super::ctxt::Ctxt;

/// The attribute a derive reads (`redis` for `#[redis(...)]`, `cache`,
/// `leaderboard`), with the collector its errors go to. Every message about
/// an attribute names this path, so a mistake in `#[cache(...)]` is called a
/// `cache` attribute.
#[derive(Clone, Copy)]
pub(crate) struct AttrCx<'c> {
    pub(crate) cx: &'c Ctxt,
    pub(crate) path: &'static str,
}

impl<'c> AttrCx<'c> {
    pub(crate) fn new(cx: &'c Ctxt, path: &'static str) -> Self {
        AttrCx { cx, path }
    }

    /// An empty slot for the value of `name`.
    pub(crate) fn slot<T>(self, name: &'static str) -> Attr<'c, T> {
        Attr {
            acx: self,
            name,
            tokens: TokenStream::new(),
            value: None,
        }
    }

    /// An empty slot for the flag `name`.
    pub(crate) fn flag(self, name: &'static str) -> Flag<'c> {
        Flag {
            inner: self.slot(name),
        }
    }

    /// Parses every entry of every `#[path(...)]` attribute in `attrs` with
    /// `f`; an error ends the walk of its attribute and is collected, so
    /// that the other attributes are still checked.
    pub(crate) fn each(
        self,
        attrs: &[syn::Attribute],
        mut f: impl FnMut(ParseNestedMeta<'_>) -> syn::Result<()>,
    ) {
        for attr in attrs.iter().filter(|a| a.path().is_ident(self.path)) {
            if let Err(e) = attr.parse_nested_meta(&mut f) {
                self.cx.syn_error(e);
            }
        }
    }

    /// The error for an unknown key:
    /// ``unknown <path> attribute `name`<on><hint>; expected one of: <expected>``,
    /// where the hint is the one of `hints` whose names hold the key (e.g. a
    /// field attribute written on the struct).
    pub(crate) fn unknown(
        self,
        meta: &ParseNestedMeta<'_>,
        on: &str,
        expected: &str,
        hints: &[(&[&str], &str)],
    ) -> syn::Error {
        let name = path_text(&meta.path);
        let hint = hints
            .iter()
            .find(|(names, _)| names.contains(&name.as_str()))
            .map_or("", |(_, hint)| *hint);
        meta.error(format!(
            "unknown {} attribute `{name}`{on}{hint}; expected one of: {expected}",
            self.path
        ))
    }
}

/// `a::b` as written, without the spaces `to_string` adds.
pub(crate) fn path_text(path: &syn::Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// One attribute value, set at most once.
pub(crate) struct Attr<'c, T> {
    acx: AttrCx<'c>,
    name: &'static str,
    tokens: TokenStream,
    value: Option<T>,
}

impl<T> Attr<'_, T> {
    /// Sets the value; a second set is an error at `obj`, naming the
    /// attribute: ``duplicate cache attribute `ttl` ``.
    pub(crate) fn set<A: ToTokens>(&mut self, obj: A, value: T) {
        let tokens = obj.into_token_stream();
        if self.value.is_some() {
            self.acx.cx.error_spanned_by(
                tokens,
                format!("duplicate {} attribute `{}`", self.acx.path, self.name),
            );
        } else {
            self.tokens = tokens;
            self.value = Some(value);
        }
    }

    pub(crate) fn get(self) -> Option<T> {
        self.value
    }

    /// The value and the tokens it was set at (for errors about it later).
    pub(crate) fn get_with_tokens(self) -> Option<(TokenStream, T)> {
        let tokens = self.tokens;
        self.value.map(|v| (tokens, v))
    }
}

/// A flag attribute (`index`, `skip`, ...): its span if present.
pub(crate) struct Flag<'c> {
    inner: Attr<'c, Span>,
}

impl Flag<'_> {
    /// Sets the flag at `path`.
    pub(crate) fn set(&mut self, path: &syn::Path) {
        self.inner.set(path, syn::spanned::Spanned::span(path));
    }

    pub(crate) fn get(self) -> Option<Span> {
        self.inner.get()
    }
}

// ---------------------------------------------------------------------------
// Values

/// Parses `= <expr>` after an attribute key, looking through the invisible
/// groups a `macro_rules!` fragment (`$lit:literal`, `$e:expr`) arrives in.
pub(crate) fn parse_value(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Expr> {
    let mut expr: syn::Expr = meta.value()?.parse()?;
    while let syn::Expr::Group(g) = expr {
        expr = *g.expr;
    }
    Ok(expr)
}

/// Parses `= true` or `= false` after an attribute key.
pub(crate) fn parse_lit_bool(meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
    match parse_value(meta)? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(b),
            ..
        }) => Ok(b.value),
        other => Err(syn::Error::new_spanned(other, "expected `true` or `false`")),
    }
}

/// Parses `= "string"` after an attribute key.
pub(crate) fn parse_lit_str(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::LitStr> {
    match parse_value(meta)? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Ok(s),
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "expected a string literal: `{} = \"...\"`",
                meta.path.to_token_stream()
            ),
        )),
    }
}

/// Parses `= path` or `= "path"` (for `with`, `crate`, `default`).
pub(crate) fn parse_path(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    match parse_value(meta)? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => s.parse(),
        syn::Expr::Path(p) => Ok(p.path),
        other => Err(syn::Error::new_spanned(other, "expected a path")),
    }
}

/// Parses `= Type` or `= "Type"`.
pub(crate) fn parse_type(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Type> {
    match parse_value(meta)? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => s.parse(),
        other => syn::parse2(other.to_token_stream()),
    }
}

/// Parses `= <integer literal>`: the literal, or `None` after an error at
/// the value saying ``<name> must be an integer literal, like `<example>` ``.
pub(crate) fn parse_int_lit(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    what: &str,
) -> syn::Result<Option<syn::LitInt>> {
    Ok(match parse_value(meta)? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => Some(i),
        other => {
            cx.error_spanned_by(other, what);
            None
        }
    })
}

/// `default` (the type's `Default`) or `default = path` (a function) on a
/// field.
#[derive(Clone)]
pub(crate) enum DefaultKind {
    None,
    Default,
    Path(syn::Path),
}

/// Parses a field's `default` or `default = path`.
pub(crate) fn parse_default(meta: &ParseNestedMeta<'_>) -> syn::Result<DefaultKind> {
    if meta.input.peek(syn::Token![=]) {
        Ok(DefaultKind::Path(parse_path(meta)?))
    } else {
        Ok(DefaultKind::Default)
    }
}

/// `::redis_state`, the crate path without `crate = "..."`.
pub(crate) fn default_crate() -> syn::Path {
    syn::parse_quote!(::redis_state)
}

// ---------------------------------------------------------------------------
// Attributes several derives share

/// A container attribute several derives read the same way.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommonKey {
    Key,
    HashTag,
    Namespace,
    RenameAll,
    Crate,
}

impl CommonKey {
    fn of(path: &syn::Path) -> Option<Self> {
        [
            ("key", CommonKey::Key),
            ("hash_tag", CommonKey::HashTag),
            ("namespace", CommonKey::Namespace),
            ("rename_all", CommonKey::RenameAll),
            ("crate", CommonKey::Crate),
        ]
        .into_iter()
        .find(|(name, _)| path.is_ident(name))
        .map(|(_, key)| key)
    }
}

/// The slots of the shared container attributes a derive accepts.
pub(crate) struct Common<'c> {
    acx: AttrCx<'c>,
    accepts: &'static [CommonKey],
    key: Attr<'c, syn::LitStr>,
    hash_tag: Attr<'c, syn::LitStr>,
    namespace: Attr<'c, syn::LitStr>,
    rename_all: Attr<'c, RenameRule>,
    krate: Attr<'c, syn::Path>,
}

/// The shared container attributes, read.
pub(crate) struct CommonAttrs {
    pub(crate) key: Option<syn::LitStr>,
    pub(crate) hash_tag: Option<syn::LitStr>,
    /// The namespace literal, for [`check_namespace`].
    pub(crate) namespace: Option<syn::LitStr>,
    pub(crate) rename_all: Option<RenameRule>,
    pub(crate) krate: syn::Path,
}

impl<'c> Common<'c> {
    pub(crate) fn new(acx: AttrCx<'c>, accepts: &'static [CommonKey]) -> Self {
        Common {
            acx,
            accepts,
            key: acx.slot("key"),
            hash_tag: acx.slot("hash_tag"),
            namespace: acx.slot("namespace"),
            rename_all: acx.slot("rename_all"),
            krate: acx.slot("crate"),
        }
    }

    /// Reads `meta` if it is one of the accepted shared attributes: `true`
    /// when it was.
    pub(crate) fn parse(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
        let Some(key) = CommonKey::of(&meta.path).filter(|k| self.accepts.contains(k)) else {
            return Ok(false);
        };
        let path = &meta.path;
        match key {
            CommonKey::Key => self.key.set(path, parse_lit_str(meta)?),
            CommonKey::HashTag => self.hash_tag.set(path, parse_lit_str(meta)?),
            CommonKey::Namespace => self.namespace.set(path, parse_lit_str(meta)?),
            CommonKey::RenameAll => {
                if let Some(rule) = RenameRule::from_lit(self.acx.cx, &parse_lit_str(meta)?) {
                    self.rename_all.set(path, rule);
                }
            }
            CommonKey::Crate => self.krate.set(path, parse_path(meta)?),
        }
        Ok(true)
    }

    /// The values read.
    pub(crate) fn finish(self) -> CommonAttrs {
        CommonAttrs {
            key: self.key.get(),
            hash_tag: self.hash_tag.get(),
            namespace: self.namespace.get(),
            rename_all: self.rename_all.get(),
            krate: self.krate.get().unwrap_or_else(default_crate),
        }
    }
}

/// Checks a `namespace = "..."` value against the namespace rules the
/// runtime's `Namespace` follows; reports the rule it breaks at the literal.
pub(crate) fn check_namespace(cx: &Ctxt, lit: Option<&syn::LitStr>) -> Option<String> {
    let lit = lit?;
    let value = lit.value();
    match redis_state_keys::check_namespace(&value) {
        Ok(()) => Some(value),
        Err(e) => {
            cx.error_spanned_by(lit, format!("invalid namespace: {e}"));
            None
        }
    }
}

/// The slots of the field attributes `rename`, `skip` and `default`.
pub(crate) struct CommonField<'c> {
    rename: Attr<'c, syn::LitStr>,
    skip: Flag<'c>,
    default: Attr<'c, DefaultKind>,
}

/// `rename`, `skip` and `default` of one field, read.
pub(crate) struct CommonFieldAttrs {
    pub(crate) rename: Option<syn::LitStr>,
    pub(crate) skip: Option<Span>,
    /// The kind, and the tokens of the attribute for errors about it.
    pub(crate) default: Option<(TokenStream, DefaultKind)>,
}

impl<'c> CommonField<'c> {
    pub(crate) fn new(acx: AttrCx<'c>) -> Self {
        CommonField {
            rename: acx.slot("rename"),
            skip: acx.flag("skip"),
            default: acx.slot("default"),
        }
    }

    /// Reads `meta` if it is `rename`, `skip` or `default`: `true` when it
    /// was.
    pub(crate) fn parse(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
        let path = &meta.path;
        if path.is_ident("rename") {
            self.rename.set(path, parse_lit_str(meta)?);
        } else if path.is_ident("skip") {
            self.skip.set(path);
        } else if path.is_ident("default") {
            self.default.set(path, parse_default(meta)?);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    pub(crate) fn finish(self) -> CommonFieldAttrs {
        CommonFieldAttrs {
            rename: self.rename.get(),
            skip: self.skip.get(),
            default: self.default.get_with_tokens(),
        }
    }
}

impl CommonFieldAttrs {
    /// The default without the tokens it was written at.
    pub(crate) fn default_kind(&self) -> DefaultKind {
        self.default
            .as_ref()
            .map_or(DefaultKind::None, |(_, d)| d.clone())
    }
}

// ---------------------------------------------------------------------------
// Lenient reading, for fallback impls: after an error, the derive still
// emits an impl with the types the user meant, read without reporting
// anything (the real parse reported it).

/// Calls `f` on every entry of every `#[path(...)]` attribute in `attrs`,
/// skipping whatever `f` leaves unread (`= value` or `(...)`). An entry that
/// does not parse ends the walk of its attribute, silently.
pub(crate) fn lenient(
    attrs: &[syn::Attribute],
    path: &str,
    mut f: impl FnMut(&ParseNestedMeta<'_>),
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(path)) {
        let _ = attr.parse_nested_meta(|meta| {
            f(&meta);
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _: proc_macro2::Group = meta.input.parse()?;
            }
            Ok(())
        });
    }
}

/// The `crate = "..."` override, read leniently; `::redis_state` without.
pub(crate) fn crate_path(input: &syn::DeriveInput, path: &str) -> syn::Path {
    let mut krate = default_crate();
    lenient(&input.attrs, path, |meta| {
        if meta.path.is_ident("crate")
            && let Ok(p) = parse_path(meta)
        {
            krate = p;
        }
    });
    krate
}

/// Whether `#[path(..., name, ...)]` is among `attrs`, read leniently.
pub(crate) fn has_flag(attrs: &[syn::Attribute], path: &str, name: &str) -> bool {
    let mut hit = false;
    lenient(attrs, path, |meta| hit |= meta.path.is_ident(name));
    hit
}

/// The string value of `key = "..."` among `attrs`, read leniently.
pub(crate) fn lenient_str(attrs: &[syn::Attribute], path: &str, key: &str) -> Option<syn::LitStr> {
    let mut found = None;
    lenient(attrs, path, |meta| {
        if meta.path.is_ident(key) {
            found = parse_lit_str(meta).ok();
        }
    });
    found
}

/// `buckets = N` of the bucketed layout (hash models and cached types
/// alike): a number of buckets from 1 to 16384, else an error at it.
pub(crate) fn bucket_count(cx: &Ctxt, lit: &syn::LitInt) -> Option<u16> {
    match lit.base10_parse::<u32>() {
        Ok(n) if (1..=16384).contains(&n) => Some(n as u16),
        _ => {
            cx.error_spanned_by(
                lit,
                format!(
                    "`buckets = {lit}`: the number of buckets is from 1 to 16384 (the slots of a Redis Cluster)"
                ),
            );
            None
        }
    }
}
