//! The tie-break by time: the score and the achievement time share the 53
//! bits of a double, so `max_score` (times `10^decimals`) takes the bits it
//! needs and the time gets the rest; settings that leave the time less than
//! a year are refused with the numbers and a coarser resolution that fits.

use quote::ToTokens;

use super::attr::{TieAttrs, TieWinner};
use crate::internals::ctxt::Ctxt;

/// The shortest time a tie-break must be able to encode.
const MIN_HORIZON_MS: u128 = 365 * 86_400_000;
/// 2025-01-01T00:00:00Z, the default `tie_epoch`.
const DEFAULT_EPOCH_MS: i64 = 1_735_689_600_000;
/// The default `tie_resolution`: one second.
const DEFAULT_RESOLUTION_MS: u64 = 1000;

/// The runtime's `TieBreak`, worked out.
pub(crate) struct TieModel {
    pub(crate) winner: TieWinner,
    pub(crate) max_scaled: u64,
    pub(crate) decimals: u8,
    pub(crate) resolution_ms: u64,
    pub(crate) epoch_ms: i64,
    pub(crate) time_bits: u8,
}

/// The tie-break the attributes describe, or `None` (after reporting what
/// is wrong, if anything).
pub(crate) fn tie_break(cx: &Ctxt, a: &TieAttrs, score_ty: Option<&syn::Type>) -> Option<TieModel> {
    let Some((tie_tokens, winner)) = &a.tie_break else {
        without_tie_break(cx, a);
        return None;
    };
    let score_prim = score_ty.and_then(primitive);
    if let Some((_, span)) = a.decimals
        && score_prim.as_deref().is_some_and(is_int_name)
    {
        cx.error_at(
            span,
            "`decimals` applies to float scores; an integer score has none",
        );
    }
    let decimals = a.decimals.map_or(0, |(d, _)| d);
    // Errors about the range go to `max_score`, or to `tie_break` without one.
    let at_max = |msg: String| match &a.max_score {
        Some(lit) => cx.error_spanned_by(lit, msg),
        None => cx.error_spanned_by(tie_tokens, msg),
    };
    let max_scaled = match &a.max_score {
        Some(lit) => scaled_max(cx, lit, decimals)?,
        None => match score_ty.and_then(default_max) {
            Some(m) => u128::from(m),
            None => {
                needs_max_score(cx, tie_tokens, score_ty, score_prim.as_deref());
                return None;
            }
        },
    };
    let resolution_ms = a.resolution.map_or(DEFAULT_RESOLUTION_MS, |(ms, _)| ms);
    let time_bits = time_bits(max_scaled, resolution_ms).map_err(at_max).ok()?;
    Some(TieModel {
        winner: *winner,
        max_scaled: max_scaled as u64,
        decimals,
        resolution_ms,
        epoch_ms: a.epoch.map_or(DEFAULT_EPOCH_MS, |(ms, _)| ms),
        time_bits,
    })
}

/// Without `tie_break`, its settings are mistakes.
fn without_tie_break(cx: &Ctxt, a: &TieAttrs) {
    if let Some(lit) = &a.max_score {
        cx.error_spanned_by(lit, "`max_score` only applies with `tie_break`: without one, any score a double holds exactly is accepted");
    }
    for (name, span) in [
        ("decimals", a.decimals.map(|(_, s)| s)),
        ("tie_resolution", a.resolution.map(|(_, s)| s)),
        ("tie_epoch", a.epoch.map(|(_, s)| s)),
    ] {
        if let Some(span) = span {
            cx.error_at(span, format!("`{name}` only applies with `tie_break`"));
        }
    }
}

/// `max_score` times `10^decimals`, from an integer or float literal.
fn scaled_max(cx: &Ctxt, lit: &syn::Lit, decimals: u8) -> Option<u128> {
    let scale = 10u128.pow(u32::from(decimals));
    match lit {
        syn::Lit::Int(i) => match i.base10_parse::<u128>() {
            Ok(v) => v.checked_mul(scale),
            Err(e) => {
                cx.error_spanned_by(i, format!("malformed max_score: {e}"));
                None
            }
        },
        syn::Lit::Float(f) => {
            match f.base10_parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => {
                    let s = (v * scale as f64).round();
                    if (s / scale as f64 - v).abs() > f64::EPSILON * v.abs() {
                        cx.error_spanned_by(
                        f,
                        format!("max_score has more decimal places than `decimals = {decimals}` keeps"),
                    );
                    }
                    (s < 1.8e19).then_some(s as u128)
                }
                _ => {
                    cx.error_spanned_by(f, "max_score must be a positive number");
                    None
                }
            }
        }
        _ => None,
    }
}

fn needs_max_score(
    cx: &Ctxt,
    tie_tokens: &proc_macro2::TokenStream,
    score_ty: Option<&syn::Type>,
    score_prim: Option<&str>,
) {
    let ty = score_ty
        .map(|t| t.to_token_stream().to_string())
        .unwrap_or_default();
    let float_hint = if matches!(score_prim, Some("f32" | "f64")) {
        ", and `decimals = N` to keep N decimal places"
    } else {
        ""
    };
    cx.error_spanned_by(
        tie_tokens,
        format!(
            "`tie_break` on a `{ty}` score needs `max_score`: the score and the achievement time share the 53 bits of a double, so say how large a score can get (e.g. `max_score = 1_000_000` leaves 33 bits: 272 years of seconds){float_hint}"
        ),
    );
}

/// The bits the time gets beside a scaled score of at most `max_scaled`,
/// or the message saying why the settings do not fit.
fn time_bits(max_scaled: u128, resolution_ms: u64) -> Result<u8, String> {
    if max_scaled == 0 {
        return Err("max_score must be above zero".to_owned());
    }
    if max_scaled >= 1u128 << 52 {
        return Err("max_score (times 10^decimals) must be below 2^52, so that some of the 53 bits of a double are left for the achievement time".to_owned());
    }
    let score_bits = 128 - max_scaled.leading_zeros();
    let time_bits = 53 - score_bits;
    let horizon = u128::from(resolution_ms) << time_bits;
    if horizon >= MIN_HORIZON_MS {
        return Ok(time_bits as u8);
    }
    let better = [1_000u64, 10_000, 60_000, 600_000, 3_600_000, 86_400_000]
        .into_iter()
        .find(|r| u128::from(*r) << time_bits >= MIN_HORIZON_MS)
        .map(|r| {
            format!(
                "; tie_resolution = \"{}\" would cover {}",
                resolution_name(r),
                human_ms(u128::from(r) << time_bits)
            )
        })
        .unwrap_or_default();
    Err(format!(
        "tie_break: a max_score of {max_scaled} (scaled) takes {score_bits} of the 53 bits of a double, leaving {time_bits} bits for the achievement time, which at a tie_resolution of {resolution_ms} ms covers only {} after tie_epoch, less than the year a board must last; lower max_score or coarsen tie_resolution{better}",
        human_ms(horizon)
    ))
}

fn resolution_name(ms: u64) -> &'static str {
    match ms {
        1_000 => "1s",
        10_000 => "10s",
        60_000 => "1m",
        600_000 => "10m",
        3_600_000 => "1h",
        _ => "1d",
    }
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
    Some(match primitive(ty)?.as_str() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_horizons() {
        // 1_000_000 takes 20 bits: 33 left, 272 years of seconds.
        assert_eq!(time_bits(1_000_000, 1000), Ok(33));
        assert!(time_bits(0, 1000).is_err());
        assert!(time_bits(1 << 52, 1000).is_err());
        let err = time_bits(1 << 40, 1000).unwrap_err();
        assert!(
            err.contains("tie_resolution = \"1d\" would cover 11.2 years"),
            "{err}"
        );
        assert_eq!(
            DEFAULT_EPOCH_MS,
            super::super::attr::parse_date_ms("2025-01-01").unwrap_or(0)
        );
    }
}
