//! Typed slots for attribute values that report duplicates, the value
//! parsers every derive uses, and lenient readers for fallback impls.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

use super::ctxt::Ctxt;

/// One attribute value, set at most once.
pub(crate) struct Attr<'c, T> {
    cx: &'c Ctxt,
    /// The attribute's path (`redis`, `leaderboard`), for messages.
    ns: &'static str,
    name: &'static str,
    tokens: TokenStream,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    pub(crate) fn none(cx: &'c Ctxt, name: &'static str) -> Self {
        Self::none_in(cx, "redis", name)
    }

    /// A slot of attribute `#[ns(...)]`.
    pub(crate) fn none_in(cx: &'c Ctxt, ns: &'static str, name: &'static str) -> Self {
        Attr {
            cx,
            ns,
            name,
            tokens: TokenStream::new(),
            value: None,
        }
    }

    /// Sets the value; a second set is an error at `obj`.
    pub(crate) fn set<A: ToTokens>(&mut self, obj: A, value: T) {
        let tokens = obj.into_token_stream();
        if self.value.is_some() {
            self.cx.error_spanned_by(
                tokens,
                format!("duplicate {} attribute `{}`", self.ns, self.name),
            );
        } else {
            self.tokens = tokens;
            self.value = Some(value);
        }
    }

    pub(crate) fn get(self) -> Option<T> {
        self.value
    }

    pub(crate) fn get_with_tokens(self) -> Option<(TokenStream, T)> {
        match self.value {
            Some(v) => Some((self.tokens, v)),
            None => None,
        }
    }
}

/// A flag attribute (`index`, `skip`, ...): its span if present.
pub(crate) struct Flag<'c> {
    inner: Attr<'c, Span>,
}

impl<'c> Flag<'c> {
    pub(crate) fn none(cx: &'c Ctxt, name: &'static str) -> Self {
        Flag {
            inner: Attr::none(cx, name),
        }
    }

    /// A flag of attribute `#[ns(...)]`.
    pub(crate) fn none_in(cx: &'c Ctxt, ns: &'static str, name: &'static str) -> Self {
        Flag {
            inner: Attr::none_in(cx, ns, name),
        }
    }

    pub(crate) fn set<A: ToTokens>(&mut self, obj: A, span: Span) {
        self.inner.set(obj, span);
    }

    pub(crate) fn get(self) -> Option<Span> {
        self.inner.get()
    }
}

/// Parses `= <expr>` after an attribute key, looking through the invisible
/// groups a `macro_rules!` fragment (`$lit:literal`, `$e:expr`) arrives in.
pub(crate) fn parse_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<syn::Expr> {
    let mut expr: syn::Expr = meta.value()?.parse()?;
    while let syn::Expr::Group(g) = expr {
        expr = *g.expr;
    }
    Ok(expr)
}

/// Parses `= "string"` after an attribute key.
pub(crate) fn parse_lit_str(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<syn::LitStr> {
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
pub(crate) fn parse_path(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    match parse_value(meta)? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => s.parse(),
        syn::Expr::Path(p) => Ok(p.path),
        other => Err(syn::Error::new_spanned(other, "expected a path")),
    }
}

/// Parses every entry of every `#[ns(...)]` attribute in `attrs` with `f`;
/// an error ends the walk of its attribute and is collected into `cx`, so
/// that the other attributes are still checked.
pub(crate) fn parse_each(
    cx: &Ctxt,
    attrs: &[syn::Attribute],
    ns: &str,
    mut f: impl FnMut(syn::meta::ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(ns)) {
        if let Err(e) = attr.parse_nested_meta(&mut f) {
            cx.syn_error(e);
        }
    }
}

/// `::redis_state`, the crate path without `crate = "..."`.
pub(crate) fn default_crate() -> syn::Path {
    syn::parse_quote!(::redis_state)
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
pub(crate) fn parse_default(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<DefaultKind> {
    if meta.input.peek(syn::Token![=]) {
        Ok(DefaultKind::Path(parse_path(meta)?))
    } else {
        Ok(DefaultKind::Default)
    }
}

/// The error for an unknown key in `#[ns(...)]`:
/// ``unknown <ns> attribute `name`<on><hint>; expected one of: <expected>``,
/// where the hint is the one of `hints` whose names hold the key (e.g. a
/// field attribute written on the struct).
pub(crate) fn unknown(
    meta: &syn::meta::ParseNestedMeta<'_>,
    ns: &str,
    on: &str,
    expected: &str,
    hints: &[(&[&str], &str)],
) -> syn::Error {
    let name = meta.path.to_token_stream().to_string().replace(' ', "");
    let hint = hints
        .iter()
        .find(|(names, _)| names.contains(&name.as_str()))
        .map_or("", |(_, hint)| *hint);
    meta.error(format!(
        "unknown {ns} attribute `{name}`{on}{hint}; expected one of: {expected}"
    ))
}

/// Checks a `namespace = "..."` value: what the runtime's `Namespace`
/// accepts. Reports at the literal and returns `None` when it is invalid.
pub(crate) fn check_namespace(cx: &Ctxt, ns: &syn::LitStr) -> Option<String> {
    let v = ns.value();
    let bad = v.is_empty()
        || v.len() > 256
        || v.starts_with(':')
        || v.ends_with(':')
        || v.contains("::")
        || v.chars().any(|c| {
            matches!(c, '{' | '}' | '#' | '%' | '*' | '?' | '[' | ']' | '\\')
                || c.is_whitespace()
                || c.is_control()
        });
    if bad {
        cx.error_spanned_by(
            ns,
            "invalid namespace: it must be non-empty, at most 256 bytes, not start or end with `:`, and contain no braces, `#`, `%`, glob characters or whitespace",
        );
        None
    } else {
        Some(v)
    }
}

// ---------------------------------------------------------------------------
// Lenient reading, for fallback impls: after an error, the derive still
// emits an impl with the types the user meant, read without reporting
// anything (the real parse reported it).

/// Calls `f` on every entry of every `#[ns(...)]` attribute in `attrs`,
/// skipping whatever `f` leaves unread (`= value` or `(...)`). An entry that
/// does not parse ends the walk of its attribute, silently.
pub(crate) fn lenient(
    attrs: &[syn::Attribute],
    ns: &str,
    mut f: impl FnMut(&syn::meta::ParseNestedMeta<'_>),
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(ns)) {
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
pub(crate) fn crate_path(input: &syn::DeriveInput, ns: &str) -> syn::Path {
    let mut krate = default_crate();
    lenient(&input.attrs, ns, |meta| {
        if meta.path.is_ident("crate")
            && let Ok(p) = parse_path(meta)
        {
            krate = p;
        }
    });
    krate
}

/// Whether `#[ns(..., name, ...)]` is among `attrs`, read leniently.
pub(crate) fn has_flag(attrs: &[syn::Attribute], ns: &str, name: &str) -> bool {
    let mut hit = false;
    lenient(attrs, ns, |meta| hit |= meta.path.is_ident(name));
    hit
}
