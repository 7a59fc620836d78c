//! Typed slots for attribute values that report duplicates.

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
