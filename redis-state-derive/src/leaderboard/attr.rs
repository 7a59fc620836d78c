//! `#[leaderboard(...)]` on a `Leaderboard` struct and its fields, read
//! into typed slots; the word choices are enums. Nothing here relates one
//! attribute to another: that is `check` and `tie`.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;

use crate::internals::ast::Field;
use crate::internals::attr::{
    Attr, AttrCx, Common, CommonAttrs, CommonField, CommonFieldAttrs, CommonKey, Flag,
    parse_int_lit, parse_lit_str, parse_value, path_text,
};
use crate::internals::choice::choice;
use crate::internals::ctxt::Ctxt;
use crate::internals::duration::duration_lit;

/// The attribute `Leaderboard` reads.
pub(crate) const PATH: &str = "leaderboard";

choice!(
    /// `order = "..."`: which end of the board ranks first.
    Order, "order", { HighFirst = "high_first", LowFirst = "low_first" }
);
choice!(
    /// `update = "..."`: what a submit does to an existing score.
    UpdatePolicy, "update policy", { Replace = "replace", KeepBest = "keep_best", Add = "add" }
);
choice!(
    /// `rank = "..."`: how equal scores are ranked.
    RankMode, "rank mode", { Ordinal = "ordinal", Competition = "competition", Dense = "dense" }
);
choice!(
    /// `tie_break = "..."`: who wins a tie.
    TieWinner, "tie_break", { Earlier = "earlier", Later = "later" }
);
choice!(
    /// A key of `windows(...)`.
    Window, "window", { Daily = "daily", Weekly = "weekly", Monthly = "monthly" }
);

impl Window {
    /// How long a board of the window is kept after its period ends, when
    /// the attribute does not say: one period.
    fn default_keep_ms(self) -> u64 {
        match self {
            Window::Daily => 86_400_000,
            Window::Weekly => 7 * 86_400_000,
            Window::Monthly => 31 * 86_400_000,
        }
    }
}

/// The struct's attributes.
pub(crate) struct ContainerAttrs {
    pub(crate) common: CommonAttrs,
    pub(crate) order: Option<Order>,
    pub(crate) update: Option<UpdatePolicy>,
    pub(crate) rank: Option<RankMode>,
    pub(crate) tie: TieAttrs,
    /// Each window with how long its boards are kept, in milliseconds.
    pub(crate) windows: Vec<(Window, u64)>,
    pub(crate) cap: Option<u64>,
}

/// The attributes of the tie-break, each with where it was written.
pub(crate) struct TieAttrs {
    pub(crate) tie_break: Option<(TokenStream, TieWinner)>,
    pub(crate) max_score: Option<syn::Lit>,
    pub(crate) decimals: Option<(u8, Span)>,
    pub(crate) resolution: Option<(u64, Span)>,
    pub(crate) epoch: Option<(i64, Span)>,
}

/// One field's attributes.
pub(crate) struct FieldAttrs {
    pub(crate) common: CommonFieldAttrs,
    pub(crate) member: Option<Span>,
    pub(crate) score: Option<Span>,
}

/// The slots of the walk over `#[leaderboard(...)]` on the struct.
struct Slots<'c> {
    acx: AttrCx<'c>,
    common: Common<'c>,
    order: Attr<'c, Order>,
    update: Attr<'c, UpdatePolicy>,
    rank: Attr<'c, RankMode>,
    tie_break: Attr<'c, TieWinner>,
    max_score: Attr<'c, syn::Lit>,
    decimals: Attr<'c, (u8, Span)>,
    resolution: Attr<'c, (u64, Span)>,
    epoch: Attr<'c, (i64, Span)>,
    windows: Vec<(Window, u64)>,
    windows_seen: bool,
    cap: Attr<'c, u64>,
}

impl ContainerAttrs {
    pub(crate) fn from_ast(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        use CommonKey::*;
        let acx = AttrCx::new(cx, PATH);
        let mut s = Slots {
            acx,
            common: Common::new(acx, &[Key, HashTag, Namespace, RenameAll, Crate]),
            order: acx.slot("order"),
            update: acx.slot("update"),
            rank: acx.slot("rank"),
            tie_break: acx.slot("tie_break"),
            max_score: acx.slot("max_score"),
            decimals: acx.slot("decimals"),
            resolution: acx.slot("tie_resolution"),
            epoch: acx.slot("tie_epoch"),
            windows: Vec::new(),
            windows_seen: false,
            cap: acx.slot("cap"),
        };
        acx.each(&input.attrs, |meta| s.parse(&meta));
        ContainerAttrs {
            common: s.common.finish(),
            order: s.order.get(),
            update: s.update.get(),
            rank: s.rank.get(),
            tie: TieAttrs {
                tie_break: s.tie_break.get_with_tokens(),
                max_score: s.max_score.get(),
                decimals: s.decimals.get(),
                resolution: s.resolution.get(),
                epoch: s.epoch.get(),
            },
            windows: s.windows,
            cap: s.cap.get(),
        }
    }
}

impl Slots<'_> {
    fn parse(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if self.common.parse(meta)? {
            return Ok(());
        }
        let cx = self.acx.cx;
        let path = &meta.path;
        if path.is_ident("order") {
            if let Some(v) = Order::from_lit(cx, &parse_lit_str(meta)?) {
                self.order.set(path, v);
            }
        } else if path.is_ident("update") {
            if let Some(v) = UpdatePolicy::from_lit(cx, &parse_lit_str(meta)?) {
                self.update.set(path, v);
            }
        } else if path.is_ident("rank") {
            if let Some(v) = RankMode::from_lit(cx, &parse_lit_str(meta)?) {
                self.rank.set(path, v);
            }
        } else if path.is_ident("tie_break") {
            if let Some(v) = TieWinner::from_lit(cx, &parse_lit_str(meta)?) {
                self.tie_break.set(path, v);
            }
        } else if path.is_ident("windows") {
            self.parse_windows(meta)?;
        } else if !self.parse_number(meta)? {
            return Err(unknown(self.acx, meta));
        }
        Ok(())
    }

    /// The numeric and time attributes: `max_score`, `decimals`,
    /// `tie_resolution`, `tie_epoch`, `cap`. `false` for any other key.
    fn parse_number(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
        let cx = self.acx.cx;
        let path = &meta.path;
        if path.is_ident("max_score") {
            match parse_value(meta)? {
                syn::Expr::Lit(syn::ExprLit {
                    lit: lit @ (syn::Lit::Int(_) | syn::Lit::Float(_)),
                    ..
                }) => self.max_score.set(path, lit),
                other => cx.error_spanned_by(
                    other,
                    "max_score must be a number literal, like `max_score = 1_000_000`",
                ),
            }
        } else if path.is_ident("decimals") {
            let what = "decimals must be an integer literal, like `decimals = 2`";
            if let Some(i) = parse_int_lit(cx, meta, what)? {
                match i.base10_parse::<u8>() {
                    Ok(d) if d <= 15 => self.decimals.set(path, (d, i.span())),
                    _ => cx.error_spanned_by(&i, "decimals must be between 0 and 15"),
                }
            }
        } else if path.is_ident("tie_resolution") {
            let lit = parse_lit_str(meta)?;
            if let Some(ms) = duration_of(cx, &lit, "tie_resolution") {
                self.resolution.set(path, (ms, lit.span()));
            }
        } else if path.is_ident("tie_epoch") {
            let lit = parse_lit_str(meta)?;
            match parse_date_ms(&lit.value()) {
                Some(ms) => self.epoch.set(path, (ms, lit.span())),
                None => cx.error_spanned_by(
                    &lit,
                    "malformed tie_epoch: write a UTC date, like \"2025-01-01\"",
                ),
            }
        } else if path.is_ident("cap") {
            let what = "cap must be an integer literal, like `cap = 1000`";
            if let Some(n) = parse_int_lit(cx, meta, what)?.and_then(|i| cap(cx, &i)) {
                self.cap.set(path, n);
            }
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// `windows(daily = "7d", weekly)`: each window once, with its
    /// retention or one period.
    fn parse_windows(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let cx = self.acx.cx;
        if self.windows_seen {
            let msg = format!("duplicate {} attribute `windows`", self.acx.path);
            cx.error_spanned_by(&meta.path, msg);
        }
        self.windows_seen = true;
        let windows = &mut self.windows;
        meta.parse_nested_meta(|w| {
            let Some(window) = w
                .path
                .get_ident()
                .and_then(|i| Window::from_name(&i.to_string()))
            else {
                return Err(w.error(format!(
                    "unknown window `{}`; expected daily, weekly or monthly",
                    path_text(&w.path)
                )));
            };
            let keep = if w.input.peek(syn::Token![=]) {
                duration_of(cx, &parse_lit_str(&w)?, "window retention")
            } else {
                Some(window.default_keep_ms())
            };
            if windows.iter().any(|(n, _)| *n == window) {
                cx.error_spanned_by(&w.path, "this window is declared twice");
            } else if let Some(ms) = keep {
                windows.push((window, ms));
            }
            Ok(())
        })
    }
}

fn unknown(acx: AttrCx<'_>, meta: &ParseNestedMeta<'_>) -> syn::Error {
    acx.unknown(
        meta,
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
    )
}

/// At least 1 and at most 2^53.
fn cap(cx: &Ctxt, i: &syn::LitInt) -> Option<u64> {
    match i.base10_parse::<u64>() {
        Ok(0) => cx.error_spanned_by(
            i,
            "cap must be at least 1: a board that keeps no member holds nothing",
        ),
        Ok(n) if n > (1 << 53) => cx.error_spanned_by(i, "cap is too large"),
        Ok(n) => return Some(n),
        Err(e) => cx.error_spanned_by(i, format!("malformed cap: {e}")),
    }
    None
}

fn duration_of(cx: &Ctxt, lit: &syn::LitStr, what: &str) -> Option<u64> {
    duration_lit(cx, what, lit, "\"1s\", \"30m\", \"7d\" or \"2w\"")
}

/// Parses `YYYY-MM-DD` into ms since the Unix epoch (UTC midnight).
pub(crate) fn parse_date_ms(s: &str) -> Option<i64> {
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

impl FieldAttrs {
    pub(crate) fn from_ast(cx: &Ctxt, field: &Field<'_>) -> Self {
        let acx = AttrCx::new(cx, PATH);
        let mut common = CommonField::new(acx);
        let mut member: Flag<'_> = acx.flag("member");
        let mut score = acx.flag("score");
        acx.each(field.attrs, |meta| {
            if common.parse(&meta)? {
                return Ok(());
            }
            if meta.path.is_ident("member") {
                member.set(&meta.path);
            } else if meta.path.is_ident("score") {
                score.set(&meta.path);
            } else {
                return Err(acx.unknown(
                    &meta,
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
            common: common.finish(),
            member: member.get(),
            score: score.get(),
        }
    }

    /// The span of `rename` / `default`, for conflicts.
    pub(crate) fn rename_span(&self) -> Option<Span> {
        self.common.rename.as_ref().map(syn::LitStr::span)
    }

    pub(crate) fn default_span(&self) -> Option<Span> {
        self.common.default.as_ref().map(|(t, _)| t.span())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date_ms("1970-01-01"), Some(0));
        assert_eq!(parse_date_ms("2025-01-01"), Some(1_735_689_600_000));
        assert_eq!(parse_date_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_date_ms("2023-02-29"), None);
        assert_eq!(parse_date_ms("2025-13-01"), None);
        assert_eq!(parse_date_ms("2025-1-01"), None);
    }
}
