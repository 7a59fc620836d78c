//! `#[derive(Leaderboard)]`: parse the attributes into a checked model.

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;

pub(crate) use crate::internals::attr::DefaultKind;
use crate::internals::attr::{
    Attr, Flag, check_namespace, default_crate, parse_default, parse_each, parse_lit_str,
    parse_path, parse_value, unknown,
};
use crate::internals::case::{RenameRule, to_snake};
use crate::internals::ctxt::Ctxt;
use crate::internals::derive::{MAX_ID_PARTS, named_fields, rust_name};
use crate::internals::duration::duration_lit;
use crate::internals::template::{KeyAttr, Template};
use crate::internals::ty::option_inner;
/// The shortest time a tie-break must be able to encode.
const MIN_HORIZON_MS: u128 = 365 * 86_400_000;
/// 2025-01-01T00:00:00Z, the default `tie_epoch`.
const DEFAULT_EPOCH_MS: i64 = 1_735_689_600_000;

pub(crate) struct Model<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) generics: &'a syn::Generics,
    pub(crate) krate: syn::Path,
    pub(crate) template: Template,
    pub(crate) namespace: Option<String>,
    pub(crate) order: &'static str,
    pub(crate) update: &'static str,
    pub(crate) rank: &'static str,
    pub(crate) tie: Option<TieModel>,
    pub(crate) windows: Vec<(&'static str, u64)>,
    pub(crate) cap: Option<u64>,
    pub(crate) fields: Vec<FieldModel<'a>>,
}

pub(crate) struct TieModel {
    pub(crate) winner: &'static str,
    pub(crate) max_scaled: u64,
    pub(crate) decimals: u8,
    pub(crate) resolution_ms: u64,
    pub(crate) epoch_ms: i64,
    pub(crate) time_bits: u8,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    /// Named in the key template.
    Board,
    Member,
    Score,
    /// Member data.
    Data,
    /// Not stored.
    Skip,
}

pub(crate) struct FieldModel<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) ty: &'a syn::Type,
    pub(crate) option_inner: Option<&'a syn::Type>,
    /// The JSON key of a data field.
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) default: DefaultKind,
    pub(crate) name_span: Span,
}

impl FieldModel<'_> {
    pub(crate) fn rust_name(&self) -> String {
        rust_name(self.ident)
    }
}

/// What the user wrote on one field.
struct FieldAttrs<'a> {
    field: &'a syn::Field,
    member: Option<Span>,
    score: Option<Span>,
    skip: Option<Span>,
    rename: Option<syn::LitStr>,
    default: Option<(proc_macro2::TokenStream, DefaultKind)>,
}

fn one_of(
    cx: &Ctxt,
    lit: &syn::LitStr,
    what: &str,
    options: &[(&str, &'static str)],
) -> Option<&'static str> {
    let v = lit.value();
    match options.iter().find(|(name, _)| *name == v) {
        Some((_, code)) => Some(code),
        None => {
            let list: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            cx.error_spanned_by(
                lit,
                format!(
                    "unknown {what} \"{v}\"; expected one of {}",
                    list.join(", ")
                ),
            );
            None
        }
    }
}

fn duration_of(cx: &Ctxt, lit: &syn::LitStr, what: &str) -> Option<u64> {
    duration_lit(cx, what, lit, "\"1s\", \"30m\", \"7d\" or \"2w\"")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD` into ms since the Unix epoch (UTC midnight).
fn parse_date_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[0..4].parse().ok()?;
    let m: i64 = s[5..7].parse().ok()?;
    let d: i64 = s[8..10].parse().ok()?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000)
}

fn human_ms(ms: u128) -> String {
    const DAY: u128 = 86_400_000;
    if ms >= 365 * DAY {
        format!("{:.1} years", ms as f64 / (365.25 * DAY as f64))
    } else if ms >= DAY {
        format!("{:.1} days", ms as f64 / DAY as f64)
    } else if ms >= 3_600_000 {
        format!("{:.1} hours", ms as f64 / 3_600_000.0)
    } else {
        format!("{:.1} seconds", ms as f64 / 1000.0)
    }
}

/// The magnitude of a score type's extreme values, for types narrow enough
/// that a tie-break can take it as `max_score`.
fn default_max(ty: &syn::Type) -> Option<u64> {
    let syn::Type::Path(tp) = ty else { return None };
    let id = tp.path.get_ident()?.to_string();
    Some(match id.as_str() {
        "u8" => 255,
        "i8" => 128,
        "u16" => 65_535,
        "i16" => 32_768,
        _ => return None,
    })
}

fn primitive(ty: &syn::Type) -> Option<String> {
    let syn::Type::Path(tp) = ty else { return None };
    Some(tp.path.get_ident()?.to_string())
}

fn is_int_name(n: &str) -> bool {
    matches!(
        n,
        "u8" | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
    )
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[allow(clippy::too_many_lines)]
pub(crate) fn parse<'a>(cx: &Ctxt, input: &'a syn::DeriveInput) -> Option<Model<'a>> {
    let named = named_fields(
        cx,
        input,
        "Leaderboard",
        "it reads a struct with named fields as one entry of a board",
    );

    // -- container attributes ---------------------------------------------
    let mut key = Attr::<syn::LitStr>::none_in(cx, "leaderboard", "key");
    let mut hash_tag = Attr::<syn::LitStr>::none_in(cx, "leaderboard", "hash_tag");
    let mut namespace = Attr::<syn::LitStr>::none_in(cx, "leaderboard", "namespace");
    let mut order = Attr::<&'static str>::none_in(cx, "leaderboard", "order");
    let mut update = Attr::<&'static str>::none_in(cx, "leaderboard", "update");
    let mut rank = Attr::<&'static str>::none_in(cx, "leaderboard", "rank");
    let mut tie_break = Attr::<&'static str>::none_in(cx, "leaderboard", "tie_break");
    let mut max_score = Attr::<syn::Lit>::none_in(cx, "leaderboard", "max_score");
    let mut decimals = Attr::<(u8, Span)>::none_in(cx, "leaderboard", "decimals");
    let mut resolution = Attr::<(u64, Span)>::none_in(cx, "leaderboard", "tie_resolution");
    let mut epoch = Attr::<(i64, Span)>::none_in(cx, "leaderboard", "tie_epoch");
    let mut windows: Vec<(&'static str, u64, Span)> = Vec::new();
    let mut windows_attr: Option<Span> = None;
    let mut cap = Attr::<u64>::none_in(cx, "leaderboard", "cap");
    let mut rename_all = Attr::<RenameRule>::none_in(cx, "leaderboard", "rename_all");
    let mut krate = Attr::<syn::Path>::none_in(cx, "leaderboard", "crate");

    parse_each(cx, &input.attrs, "leaderboard", |meta| {
        let path = meta.path.clone();
        if path.is_ident("key") {
            key.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("hash_tag") {
            hash_tag.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("namespace") {
            namespace.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("order") {
            let lit = parse_lit_str(&meta)?;
            if let Some(v) = one_of(
                cx,
                &lit,
                "order",
                &[("high_first", "HighFirst"), ("low_first", "LowFirst")],
            ) {
                order.set(&path, v);
            }
        } else if path.is_ident("update") {
            let lit = parse_lit_str(&meta)?;
            if let Some(v) = one_of(
                cx,
                &lit,
                "update policy",
                &[
                    ("replace", "Replace"),
                    ("keep_best", "KeepBest"),
                    ("add", "Add"),
                ],
            ) {
                update.set(&path, v);
            }
        } else if path.is_ident("rank") {
            let lit = parse_lit_str(&meta)?;
            if let Some(v) = one_of(
                cx,
                &lit,
                "rank mode",
                &[
                    ("ordinal", "Ordinal"),
                    ("competition", "Competition"),
                    ("dense", "Dense"),
                ],
            ) {
                rank.set(&path, v);
            }
        } else if path.is_ident("tie_break") {
            let lit = parse_lit_str(&meta)?;
            if let Some(v) = one_of(
                cx,
                &lit,
                "tie_break",
                &[("earlier", "Earlier"), ("later", "Later")],
            ) {
                tie_break.set(&path, v);
            }
        } else if path.is_ident("max_score") {
            match parse_value(&meta)? {
                syn::Expr::Lit(syn::ExprLit {
                    lit: lit @ (syn::Lit::Int(_) | syn::Lit::Float(_)),
                    ..
                }) => {
                    max_score.set(&path, lit);
                }
                other => cx.error_spanned_by(
                    other,
                    "max_score must be a number literal, like `max_score = 1_000_000`",
                ),
            }
        } else if path.is_ident("decimals") {
            match parse_value(&meta)? {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(i),
                    ..
                }) => match i.base10_parse::<u8>() {
                    Ok(d) if d <= 15 => decimals.set(&path, (d, i.span())),
                    _ => cx.error_spanned_by(&i, "decimals must be between 0 and 15"),
                },
                other => cx.error_spanned_by(
                    other,
                    "decimals must be an integer literal, like `decimals = 2`",
                ),
            }
        } else if path.is_ident("tie_resolution") {
            let lit = parse_lit_str(&meta)?;
            if let Some(ms) = duration_of(cx, &lit, "tie_resolution") {
                resolution.set(&path, (ms, lit.span()));
            }
        } else if path.is_ident("tie_epoch") {
            let lit = parse_lit_str(&meta)?;
            match parse_date_ms(&lit.value()) {
                Some(ms) => epoch.set(&path, (ms, lit.span())),
                None => cx.error_spanned_by(
                    &lit,
                    "malformed tie_epoch: write a UTC date, like \"2025-01-01\"",
                ),
            }
        } else if path.is_ident("windows") {
            if windows_attr.is_some() {
                cx.error_spanned_by(&path, "duplicate leaderboard attribute `windows`");
            }
            windows_attr = Some(path.span());
            meta.parse_nested_meta(|w| {
                let wpath = w.path.clone();
                let (name, default) = if wpath.is_ident("daily") {
                    ("Daily", 86_400_000)
                } else if wpath.is_ident("weekly") {
                    ("Weekly", 7 * 86_400_000)
                } else if wpath.is_ident("monthly") {
                    ("Monthly", 31 * 86_400_000)
                } else {
                    let n = wpath.to_token_stream().to_string().replace(' ', "");
                    return Err(w.error(format!(
                        "unknown window `{n}`; expected daily, weekly or monthly"
                    )));
                };
                let keep = if w.input.peek(syn::Token![=]) {
                    let lit = parse_lit_str(&w)?;
                    duration_of(cx, &lit, "window retention")
                } else {
                    Some(default)
                };
                if windows.iter().any(|(n, _, _)| *n == name) {
                    cx.error_spanned_by(&wpath, "this window is declared twice");
                } else if let Some(ms) = keep {
                    windows.push((name, ms, wpath.span()));
                }
                Ok(())
            })?;
        } else if path.is_ident("cap") {
            match parse_value(&meta)? {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(i),
                    ..
                }) => match i.base10_parse::<u64>() {
                    Ok(0) => cx.error_spanned_by(
                        &i,
                        "cap must be at least 1: a board that keeps no member holds nothing",
                    ),
                    Ok(n) if n > (1 << 53) => cx.error_spanned_by(&i, "cap is too large"),
                    Ok(n) => cap.set(&path, n),
                    Err(e) => cx.error_spanned_by(&i, format!("malformed cap: {e}")),
                },
                other => {
                    cx.error_spanned_by(other, "cap must be an integer literal, like `cap = 1000`")
                }
            }
        } else if path.is_ident("rename_all") {
            if let Some(rule) = RenameRule::from_lit(cx, &parse_lit_str(&meta)?) {
                rename_all.set(&path, rule);
            }
        } else if path.is_ident("crate") {
            krate.set(&path, parse_path(&meta)?);
        } else {
            return Err(unknown(
                &meta,
                "leaderboard",
                " on a struct",
                "key, hash_tag, namespace, order, update, rank, tie_break, max_score, decimals, tie_resolution, tie_epoch, windows, cap, rename_all, crate",
                &[
                    (
                        &["member", "score", "skip", "rename", "default"],
                        " (it is a field attribute: put it on a field)",
                    ),
                    (
                        &["ttl"],
                        " (windows have their own retention: `windows(daily = \"7d\")`)",
                    ),
                ],
            ));
        }
        Ok(())
    });

    let rename_all = rename_all.get();
    let krate = krate.get().unwrap_or_else(default_crate);

    // -- fields -------------------------------------------------------------
    let mut attrs = Vec::new();
    if let Some(named) = named {
        for f in &named.named {
            attrs.push(parse_field(cx, f));
        }
    }

    // -- key template ----------------------------------------------------------
    let key = KeyAttr::new(key.get(), &input.ident, || {
        format!("{{{{{}}}}}", to_snake(&input.ident.to_string()))
    });
    let template_src = key.src.as_str();
    let template_err_at = |msg: String| key.error(cx, msg);
    let template = key.parse(cx, hash_tag.get());
    let parts: Vec<String> = template
        .as_ref()
        .map(|t| t.parts().map(str::to_owned).collect())
        .unwrap_or_default();

    // -- roles ------------------------------------------------------------------
    let field_names: Vec<String> = attrs
        .iter()
        .filter_map(|a| a.field.ident.as_ref())
        .map(rust_name)
        .collect();
    let mut fields: Vec<FieldModel<'a>> = Vec::new();
    for a in &attrs {
        let Some(ident) = a.field.ident.as_ref() else {
            continue;
        };
        let rust = rust_name(ident);
        let in_key = parts.contains(&rust);
        let role = if a.member.is_some() {
            Role::Member
        } else if a.score.is_some() {
            Role::Score
        } else if in_key {
            Role::Board
        } else if a.skip.is_some() {
            Role::Skip
        } else {
            Role::Data
        };
        if in_key {
            let why = match role {
                Role::Member => Some(
                    "the member field cannot be part of the board key: one board holds many members",
                ),
                Role::Score => Some(
                    "the score field cannot be part of the board key: one board holds many scores",
                ),
                _ => None,
            };
            if let Some(why) = why {
                template_err_at(format!("the key template names `{{{rust}}}`: {why}"));
            }
            if let Some(s) = a.skip {
                cx.error_at(s, format!("`skip` on `{rust}`, which the key template names: board fields are part of the key"));
            }
            if let Some(r) = &a.rename {
                cx.error_spanned_by(r, format!("`rename` on `{rust}`, a board field: rename names member data, and board fields are part of the key"));
            }
            if let Some((tokens, _)) = &a.default {
                cx.error_spanned_by(
                    tokens,
                    format!("`default` on `{rust}`, a board field: board fields come from the key"),
                );
            }
            if option_inner(&a.field.ty).is_some() {
                cx.error_spanned_by(
                    &a.field.ty,
                    "a board field cannot be an `Option`: every entry goes on a board",
                );
            }
        }
        if matches!(role, Role::Member | Role::Score) {
            let what = if role == Role::Member {
                "member"
            } else {
                "score"
            };
            if let (Some(_), Some(s)) = (a.member, a.score) {
                cx.error_at(s, "`score` conflicts with `member`: a field has one role");
            }
            for (name, span) in [
                ("skip", a.skip),
                ("rename", a.rename.as_ref().map(syn::LitStr::span)),
                ("default", a.default.as_ref().map(|(t, _)| t.span())),
            ] {
                if let Some(span) = span {
                    cx.error_at(
                        span,
                        format!(
                            "`{name}` conflicts with `{what}`: {name} applies to member data fields"
                        ),
                    );
                }
            }
            if option_inner(&a.field.ty).is_some() {
                cx.error_spanned_by(
                    &a.field.ty,
                    format!("the {what} field cannot be an `Option`: every entry has a {what}"),
                );
            }
        }
        let name_span = a.rename.as_ref().map_or(ident.span(), syn::LitStr::span);
        let name = match &a.rename {
            Some(lit) => {
                let v = lit.value();
                if v.is_empty() {
                    cx.error_spanned_by(lit, "a member data name cannot be empty");
                }
                v
            }
            None => RenameRule::field_name(rename_all, &rust),
        };
        fields.push(FieldModel {
            ident,
            ty: &a.field.ty,
            option_inner: option_inner(&a.field.ty),
            name,
            role,
            default: a
                .default
                .as_ref()
                .map_or(DefaultKind::None, |(_, d)| d.clone()),
            name_span,
        });
    }

    // Exactly one member and one score.
    for (role, attr, what) in [
        (Role::Member, "member", "the member (the player, the user)"),
        (Role::Score, "score", "the score"),
    ] {
        let marked: Vec<&FieldAttrs<'_>> = attrs
            .iter()
            .filter(|a| {
                if role == Role::Member {
                    a.member.is_some()
                } else {
                    a.score.is_some()
                }
            })
            .collect();
        if named.is_some() && marked.is_empty() {
            cx.error_spanned_by(
                &input.ident,
                format!("`{}` has no {attr} field: mark the field that holds {what} with `#[leaderboard({attr})]`", input.ident),
            );
        }
        for extra in marked.iter().skip(1) {
            let span = if role == Role::Member {
                extra.member
            } else {
                extra.score
            };
            if let Some(span) = span {
                cx.error_at(
                    span,
                    format!(
                        "a board has one `{attr}` field, and `{}` already is",
                        marked[0]
                            .field
                            .ident
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    ),
                );
            }
        }
    }

    // Placeholders name fields.
    for (i, p) in parts.iter().enumerate() {
        if !field_names.contains(p) {
            let hint = field_names
                .iter()
                .filter(|f| {
                    fields
                        .iter()
                        .any(|m| m.rust_name() == **f && matches!(m.role, Role::Data | Role::Board))
                })
                .map(|f| (distance(f, p), f))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, f)| format!("; did you mean `{{{f}}}`?"))
                .unwrap_or_default();
            template_err_at(format!(
                "the key template names `{{{p}}}`, but `{}` has no field `{p}`{hint}",
                input.ident
            ));
        }
        if parts[..i].contains(p) {
            template_err_at(format!("the key template names `{{{p}}}` more than once"));
        }
    }
    // Which fields are data is unclear while the member, the score or a
    // placeholder is wrong: checks that depend on it wait for a fix.
    let roles_known = attrs.iter().any(|a| a.member.is_some())
        && attrs.iter().any(|a| a.score.is_some())
        && parts.iter().all(|p| field_names.contains(p));
    if parts.len() > MAX_ID_PARTS {
        template_err_at(format!("a board key may have at most {MAX_ID_PARTS} parts"));
    }

    // JSON names of member data are distinct.
    let data: Vec<&FieldModel<'_>> = fields.iter().filter(|f| f.role == Role::Data).collect();
    for (i, f) in data.iter().enumerate() {
        if let Some(prev) = data[..i].iter().find(|p| p.name == f.name) {
            cx.error_at(
                f.name_span,
                format!(
                    "two member data fields are stored under the name `{}`: `{}` and `{}`; give one of them another `rename`",
                    f.name,
                    prev.rust_name(),
                    f.rust_name()
                ),
            );
        }
    }

    let rank = rank.get().unwrap_or("Ordinal");

    // -- one hash slot per family ------------------------------------------
    if let Some(t) = &template
        && !t.has_tag()
    {
        let reason = if !windows.is_empty() {
            Some("time windows need")
        } else if !data.is_empty() && roles_known {
            Some("member data needs")
        } else if rank == "Dense" {
            Some("dense ranking needs")
        } else {
            None
        };
        if let Some(reason) = reason {
            template_err_at(format!(
                "{reason} a key with a Redis Cluster hash tag, so that one script can update the board and its companion keys in one slot, and the key template `{template_src}` has none; write `key = \"{{{{{template_src}}}}}\"` (one slot per board), or tag a placeholder with `hash_tag`"
            ));
        }
    }

    // -- tie-break --------------------------------------------------------------
    let score_ty = fields.iter().find(|f| f.role == Role::Score).map(|f| f.ty);
    let score_prim = score_ty.and_then(primitive);
    let tie_attr = tie_break.get_with_tokens();
    let max_score = max_score.get();
    let decimals = decimals.get();
    let resolution = resolution.get();
    let epoch = epoch.get();
    let tie = match tie_attr {
        None => {
            if let Some(lit) = &max_score {
                cx.error_spanned_by(lit, "`max_score` only applies with `tie_break`: without one, any score a double holds exactly is accepted");
            }
            for (name, span) in [
                ("decimals", decimals.map(|(_, s)| s)),
                ("tie_resolution", resolution.map(|(_, s)| s)),
                ("tie_epoch", epoch.map(|(_, s)| s)),
            ] {
                if let Some(span) = span {
                    cx.error_at(span, format!("`{name}` only applies with `tie_break`"));
                }
            }
            None
        }
        Some((tie_tokens, winner)) => {
            let is_float = matches!(score_prim.as_deref(), Some("f32" | "f64"));
            if let Some((_, span)) = decimals
                && score_prim.as_deref().is_some_and(is_int_name)
            {
                cx.error_at(
                    span,
                    "`decimals` applies to float scores; an integer score has none",
                );
            }
            let dec = decimals.map_or(0, |(d, _)| d);
            let scale = 10u128.pow(u32::from(dec));
            let max_scaled: Option<u128> = match &max_score {
                Some(syn::Lit::Int(i)) => match i.base10_parse::<u128>() {
                    Ok(v) => v.checked_mul(scale),
                    Err(e) => {
                        cx.error_spanned_by(i, format!("malformed max_score: {e}"));
                        None
                    }
                },
                Some(syn::Lit::Float(f)) => match f.base10_parse::<f64>() {
                    Ok(v) if v > 0.0 && v.is_finite() => {
                        let s = (v * scale as f64).round();
                        if (s / scale as f64 - v).abs() > f64::EPSILON * v.abs() {
                            cx.error_spanned_by(f, format!("max_score has more decimal places than `decimals = {dec}` keeps"));
                        }
                        (s < 1.8e19).then_some(s as u128)
                    }
                    _ => {
                        cx.error_spanned_by(f, "max_score must be a positive number");
                        None
                    }
                },
                Some(_) => None,
                None => match score_ty.and_then(default_max) {
                    Some(m) => Some(u128::from(m)),
                    None => {
                        let ty = score_ty
                            .map(|t| t.to_token_stream().to_string())
                            .unwrap_or_default();
                        let float_hint = if is_float {
                            ", and `decimals = N` to keep N decimal places"
                        } else {
                            ""
                        };
                        cx.error_spanned_by(
                            &tie_tokens,
                            format!(
                                "`tie_break` on a `{ty}` score needs `max_score`: the score and the achievement time share the 53 bits of a double, so say how large a score can get (e.g. `max_score = 1_000_000` leaves 33 bits: 272 years of seconds){float_hint}"
                            ),
                        );
                        None
                    }
                },
            };
            let res_ms = resolution.map_or(1000, |(ms, _)| ms);
            let epoch_ms = epoch.map_or(DEFAULT_EPOCH_MS, |(ms, _)| ms);
            let at_max: Box<dyn Fn(String)> = match &max_score {
                Some(lit) => Box::new(move |m| cx.error_spanned_by(lit, m)),
                None => Box::new(|m| cx.error_spanned_by(&tie_tokens, m)),
            };
            match max_scaled {
                Some(0) => {
                    at_max("max_score must be above zero".to_owned());
                    None
                }
                Some(m) if m >= (1u128 << 52) => {
                    at_max("max_score (times 10^decimals) must be below 2^52, so that some of the 53 bits of a double are left for the achievement time".to_owned());
                    None
                }
                Some(m) => {
                    let sb = 128 - m.leading_zeros();
                    let tb = 53 - sb;
                    let horizon = u128::from(res_ms) << tb;
                    if horizon < MIN_HORIZON_MS {
                        let better = [1_000u64, 10_000, 60_000, 600_000, 3_600_000, 86_400_000]
                            .into_iter()
                            .find(|r| u128::from(*r) << tb >= MIN_HORIZON_MS)
                            .map(|r| {
                                format!(
                                    "; tie_resolution = \"{}\" would cover {}",
                                    match r {
                                        1_000 => "1s",
                                        10_000 => "10s",
                                        60_000 => "1m",
                                        600_000 => "10m",
                                        3_600_000 => "1h",
                                        _ => "1d",
                                    },
                                    human_ms(u128::from(r) << tb)
                                )
                            })
                            .unwrap_or_default();
                        at_max(format!(
                            "tie_break: a max_score of {m} (scaled) takes {sb} of the 53 bits of a double, leaving {tb} bits for the achievement time, which at a tie_resolution of {res_ms} ms covers only {} after tie_epoch, less than the year a board must last; lower max_score or coarsen tie_resolution{better}",
                            human_ms(horizon)
                        ));
                        None
                    } else {
                        Some(TieModel {
                            winner,
                            max_scaled: m as u64,
                            decimals: dec,
                            resolution_ms: res_ms,
                            epoch_ms,
                            time_bits: tb as u8,
                        })
                    }
                }
                None => None,
            }
        }
    };

    let namespace = namespace.get().and_then(|ns| check_namespace(cx, &ns));

    if named.is_none() || cx.has_errors() {
        return None;
    }
    Some(Model {
        ident: &input.ident,
        generics: &input.generics,
        krate,
        template: template?,
        namespace,
        order: order.get().unwrap_or("HighFirst"),
        update: update.get().unwrap_or("Replace"),
        rank,
        tie,
        windows: windows.into_iter().map(|(n, ms, _)| (n, ms)).collect(),
        cap: cap.get(),
        fields,
    })
}

fn parse_field<'a>(cx: &Ctxt, f: &'a syn::Field) -> FieldAttrs<'a> {
    let mut member = Flag::none_in(cx, "leaderboard", "member");
    let mut score = Flag::none_in(cx, "leaderboard", "score");
    let mut skip = Flag::none_in(cx, "leaderboard", "skip");
    let mut rename = Attr::<syn::LitStr>::none_in(cx, "leaderboard", "rename");
    let mut default = Attr::<DefaultKind>::none_in(cx, "leaderboard", "default");
    parse_each(cx, &f.attrs, "leaderboard", |meta| {
        let path = meta.path.clone();
        let span = path.span();
        if path.is_ident("member") {
            member.set(&path, span);
        } else if path.is_ident("score") {
            score.set(&path, span);
        } else if path.is_ident("skip") {
            skip.set(&path, span);
        } else if path.is_ident("rename") {
            rename.set(&path, parse_lit_str(&meta)?);
        } else if path.is_ident("default") {
            default.set(&path, parse_default(&meta)?);
        } else {
            return Err(unknown(
                &meta,
                "leaderboard",
                " on a field",
                "member, score, rename, skip, default",
                &[
                    (
                        &[
                            "key",
                            "order",
                            "update",
                            "rank",
                            "tie_break",
                            "windows",
                            "cap",
                            "max_score",
                        ],
                        " (it is a struct attribute: put it on the struct)",
                    ),
                    (
                        &["id", "board"],
                        " (board fields are the ones the key template names)",
                    ),
                ],
            ));
        }
        Ok(())
    });
    FieldAttrs {
        field: f,
        member: member.get(),
        score: score.get(),
        skip: skip.get(),
        rename: rename.get(),
        default: default.get_with_tokens(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date_ms("1970-01-01"), Some(0));
        assert_eq!(parse_date_ms("2025-01-01"), Some(DEFAULT_EPOCH_MS));
        assert_eq!(parse_date_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_date_ms("2023-02-29"), None);
        assert_eq!(parse_date_ms("2025-13-01"), None);
        assert_eq!(parse_date_ms("2025-1-01"), None);
    }

    #[test]
    fn distances() {
        assert_eq!(distance("game", "gmae"), 2);
        assert_eq!(distance("region", "regoin"), 2);
        assert_eq!(distance("a", "a"), 0);
    }
}
