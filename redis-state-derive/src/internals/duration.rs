//! Durations in attributes: `"30m"`, `"1h30m"`, `"500ms"`, `"2d"`, or an
//! integer number of seconds.

use proc_macro2::Span;

use super::ctxt::Ctxt;

/// A duration attribute written as a string (`"30m"`), zero refused: the
/// milliseconds, or `None` after an error at the literal. `write` ends the
/// message of a malformed one: ``malformed <name>: <why>; write e.g. <write>``.
pub(crate) fn duration_lit(cx: &Ctxt, name: &str, lit: &syn::LitStr, write: &str) -> Option<u64> {
    match parse_duration_ms(&lit.value()) {
        Ok(0) => {
            cx.error_spanned_by(lit, format!("{name} must be longer than zero"));
            None
        }
        Ok(ms) => Some(ms),
        Err(e) => {
            cx.error_spanned_by(lit, format!("malformed {name}: {e}; write e.g. {write}"));
            None
        }
    }
}

/// A duration attribute written as a string (`"30m"`) or an integer number
/// of seconds, zero refused: the milliseconds and the literal's span, or
/// `None` after an error at the value. `examples` are strings the messages
/// suggest, the first one alone where the value is not a literal.
pub(crate) fn duration_expr(
    cx: &Ctxt,
    name: &str,
    expr: &syn::Expr,
    examples: &[&str],
) -> Option<(u64, Span)> {
    let quoted: Vec<String> = examples.iter().map(|e| format!("\"{e}\"")).collect();
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => {
            let write = format!("{} or a number of seconds", quoted.join(", "));
            duration_lit(cx, name, s, &write).map(|ms| (ms, s.span()))
        }
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => match i.base10_parse::<u64>() {
            Ok(0) => {
                cx.error_spanned_by(i, format!("{name} must be longer than zero"));
                None
            }
            Ok(secs) => match secs.checked_mul(1000) {
                Some(ms) => Some((ms, i.span())),
                None => {
                    cx.error_spanned_by(i, format!("{name} too large"));
                    None
                }
            },
            Err(e) => {
                cx.error_spanned_by(i, format!("malformed {name}: {e}"));
                None
            }
        },
        other => {
            let like = quoted.first().map_or("\"30s\"", String::as_str);
            cx.error_spanned_by(
                other,
                format!("malformed {name}: write a string like {like} or a number of seconds"),
            );
            None
        }
    }
}

/// Parses a duration into milliseconds.
pub(crate) fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".to_owned());
    }
    if s.contains(char::is_whitespace) {
        return Err("spaces are not allowed".to_owned());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()
            .and_then(|secs| secs.checked_mul(1000))
            .ok_or_else(|| "duration too large".to_owned());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "duration too large".to_owned())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => {
                return Err(format!(
                    "missing unit after `{n}` (use ms, s, m, h, d or w)"
                ));
            }
            other => return Err(format!("unknown unit `{other}` (use ms, s, m, h, d or w)")),
        };
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "duration too large".to_owned())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30m"), Ok(1_800_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("60"), Ok(60_000));
        assert!(parse_duration_ms("30 minutes").is_err());
        assert!(parse_duration_ms("m").is_err());
        assert!(parse_duration_ms("10").is_ok());
        assert!(parse_duration_ms("5x").is_err());
    }
}
