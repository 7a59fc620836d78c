//! `#[cache(...)]` on a `Cached` type, read into typed slots. Nothing here
//! relates one attribute to another: that is `check`.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;

use crate::internals::attr::{
    Attr, AttrCx, Common, CommonAttrs, CommonKey, parse_lit_str, parse_type, parse_value,
};
use crate::internals::ctxt::Ctxt;
use crate::internals::duration::{duration_expr, parse_duration_ms};

/// The attribute `Cached` reads.
pub(crate) const PATH: &str = "cache";

/// Examples of durations in the messages about one.
const DURATION_EXAMPLES: &[&str] = &["30s", "10m", "1h30m", "500ms"];

/// `jitter = "30s"` or `jitter = "10%"` (of the ttl).
pub(crate) enum Jitter {
    Ms(u64),
    Percent(u64),
}

/// The type's attributes.
pub(crate) struct ContainerAttrs {
    pub(crate) common: CommonAttrs,
    /// `id = Type`, and the tokens of the attribute.
    pub(crate) id: Option<(TokenStream, syn::Type)>,
    /// The milliseconds and where they were written.
    pub(crate) ttl: Option<(u64, Span)>,
    /// `ttl` was written, even if malformed (reported once, as malformed).
    pub(crate) ttl_given: bool,
    pub(crate) jitter: Option<(Jitter, syn::LitStr)>,
    pub(crate) stale_ms: Option<u64>,
    pub(crate) negative: Option<(u64, Span)>,
    pub(crate) version: Option<u32>,
    pub(crate) beta: Option<f64>,
    pub(crate) tags: Vec<syn::LitStr>,
    /// `format = "plain"`: where it was written; `None` for the envelope.
    pub(crate) plain: Option<Span>,
    /// `buckets = N`, as written.
    pub(crate) buckets: Option<syn::LitInt>,
}

/// The slots of the walk over `#[cache(...)]`.
struct Slots<'c> {
    common: Common<'c>,
    id: Attr<'c, syn::Type>,
    ttl: Attr<'c, (u64, Span)>,
    ttl_given: bool,
    jitter: Attr<'c, (Jitter, syn::LitStr)>,
    stale: Attr<'c, (u64, Span)>,
    negative: Attr<'c, (u64, Span)>,
    version: Attr<'c, u32>,
    beta: Attr<'c, f64>,
    tags: Vec<syn::LitStr>,
    /// `true` for `"plain"`, `false` for `"envelope"`.
    format: Attr<'c, (bool, Span)>,
    buckets: Attr<'c, syn::LitInt>,
}

impl ContainerAttrs {
    pub(crate) fn from_ast(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        use CommonKey::*;
        let acx = AttrCx::new(cx, PATH);
        let mut s = Slots {
            common: Common::new(acx, &[Key, Namespace, Crate]),
            id: acx.slot("id"),
            ttl: acx.slot("ttl"),
            ttl_given: false,
            jitter: acx.slot("jitter"),
            stale: acx.slot("stale"),
            negative: acx.slot("negative_ttl"),
            version: acx.slot("version"),
            beta: acx.slot("beta"),
            tags: Vec::new(),
            format: acx.slot("format"),
            buckets: acx.slot("buckets"),
        };
        acx.each(&input.attrs, |meta| s.parse(acx, &meta));
        ContainerAttrs {
            common: s.common.finish(),
            id: s.id.get_with_tokens(),
            ttl: s.ttl.get(),
            ttl_given: s.ttl_given,
            jitter: s.jitter.get(),
            stale_ms: s.stale.get().map(|(ms, _)| ms),
            negative: s.negative.get(),
            version: s.version.get(),
            beta: s.beta.get(),
            tags: s.tags,
            plain: s
                .format
                .get()
                .and_then(|(plain, span)| plain.then_some(span)),
            buckets: s.buckets.get(),
        }
    }
}

impl Slots<'_> {
    fn parse(&mut self, acx: AttrCx<'_>, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if self.common.parse(meta)? {
            return Ok(());
        }
        let cx = acx.cx;
        let path = &meta.path;
        let duration = |name| -> syn::Result<_> {
            Ok(duration_expr(
                cx,
                name,
                &parse_value(meta)?,
                DURATION_EXAMPLES,
            ))
        };
        if path.is_ident("id") {
            self.id.set(path, parse_type(meta)?);
        } else if path.is_ident("ttl") {
            self.ttl_given = true;
            if let Some(v) = duration("ttl")? {
                self.ttl.set(path, v);
            }
        } else if path.is_ident("stale") {
            if let Some(v) = duration("stale")? {
                self.stale.set(path, v);
            }
        } else if path.is_ident("negative_ttl") {
            if let Some(v) = duration("negative_ttl")? {
                self.negative.set(path, v);
            }
        } else if path.is_ident("jitter") {
            let lit = parse_lit_str(meta)?;
            if let Some(j) = jitter(cx, &lit) {
                self.jitter.set(path, (j, lit));
            }
        } else if path.is_ident("version") {
            if let Some(v) = version(cx, parse_value(meta)?) {
                self.version.set(path, v);
            }
        } else if path.is_ident("beta") {
            if let Some(v) = beta(cx, meta)? {
                self.beta.set(path, v);
            }
        } else if path.is_ident("tag") {
            self.tags.push(parse_lit_str(meta)?);
        } else if path.is_ident("buckets") {
            let lit: syn::Lit = meta.value()?.parse()?;
            match lit {
                syn::Lit::Int(n) => self.buckets.set(path, n),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "`buckets` takes an integer from 1 to 16384: `#[cache(buckets = 64)]`",
                    ));
                }
            }
        } else if path.is_ident("format") {
            let lit = parse_lit_str(meta)?;
            match lit.value().as_str() {
                "plain" => self.format.set(path, (true, lit.span())),
                "envelope" => self.format.set(path, (false, lit.span())),
                _ => cx.error_spanned_by(
                    &lit,
                    "unknown format: write `\"envelope\"` (the default: a header with XFetch's timing and the negative-cache marker, then the JSON) or `\"plain\"` (the JSON alone, as other clients store it)",
                ),
            }
        } else {
            return Err(unknown(acx, meta));
        }
        Ok(())
    }
}

fn unknown(acx: AttrCx<'_>, meta: &ParseNestedMeta<'_>) -> syn::Error {
    acx.unknown(
        meta,
        "",
        "key, id, ttl, jitter, stale, negative_ttl, tag, version, beta, format, buckets, namespace, crate",
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
    )
}

/// A duration (`"30s"`) or a percentage of the ttl from 1% to 100%.
fn jitter(cx: &Ctxt, lit: &syn::LitStr) -> Option<Jitter> {
    let text = lit.value();
    if let Some(pct) = text.strip_suffix('%') {
        return match pct.parse::<u64>() {
            Ok(p) if (1..=100).contains(&p) => Some(Jitter::Percent(p)),
            _ => {
                cx.error_spanned_by(
                    lit,
                    "malformed jitter: a percentage of the ttl is a whole number from 1% to 100%",
                );
                None
            }
        };
    }
    match parse_duration_ms(&text) {
        Ok(0) => {
            cx.error_spanned_by(lit, "jitter must be longer than zero");
            None
        }
        Ok(ms) => Some(Jitter::Ms(ms)),
        Err(e) => {
            cx.error_spanned_by(
                lit,
                format!("malformed jitter: {e}; write a duration like \"30s\" or a percentage of the ttl like \"10%\""),
            );
            None
        }
    }
}

/// A whole number from 0 to `u32::MAX`.
fn version(cx: &Ctxt, value: syn::Expr) -> Option<u32> {
    match value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => match i.base10_parse::<u32>() {
            Ok(v) => Some(v),
            Err(_) => {
                cx.error_spanned_by(&i, "version is a whole number from 0 to 4294967295");
                None
            }
        },
        other => {
            cx.error_spanned_by(other, "version is a whole number: `version = 2`");
            None
        }
    }
}

/// A finite number of at least 0.
fn beta(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<f64>> {
    let parsed = match parse_value(meta)? {
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
                &meta.path,
                "beta must be at least 0 (0 turns early refresh off)",
            );
            return Ok(None);
        }
        other => Err(syn::Error::new_spanned(
            other,
            "beta is a number: `beta = 1.5`",
        )),
    };
    Ok(match parsed {
        Ok((v, _)) if v.is_finite() && v >= 0.0 => Some(v),
        Ok((_, span)) => {
            cx.error_at(
                span,
                "beta must be a finite number of at least 0 (0 turns early refresh off)",
            );
            None
        }
        Err(e) => {
            cx.syn_error(e);
            None
        }
    })
}
