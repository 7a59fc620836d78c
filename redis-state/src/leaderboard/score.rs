//! Scores: the Rust types a score field may have, and how a score (with its
//! tie-break) becomes the double a sorted set stores.

use std::fmt;

use crate::codec::FieldValue;

/// 2^53: every integer of at most this magnitude is exactly a double.
pub(crate) const EXACT: f64 = 9_007_199_254_740_992.0;

/// 2^53 - 1, the largest integer score. 2^53 is a double too, but so is the
/// rounding of 2^53 + 1: a stored 2^53 cannot be told from a rounded value,
/// and a sum that reaches it was not computed exactly. Below it, an integer
/// sum is exact, or rounds to a value beyond it (rounding is monotonic), so
/// a bound check on the double result is exact.
pub(crate) const MAX_INT: f64 = EXACT - 1.0;

/// A type a `#[leaderboard(score)]` field may have: every integer and float
/// type of the standard library.
///
/// A sorted set stores a score as a double. Integers of magnitude above
/// 2^53 - 1 cannot be told from a rounded double, so such a score is refused
/// with [`Error::ScoreNotEncodable`](crate::Error::ScoreNotEncodable) rather
/// than stored rounded (and such a stored value does not decode); `NaN` is
/// refused too.
#[diagnostic::on_unimplemented(
    message = "a `#[leaderboard(score)]` field must have an integer or float type, not `{Self}`",
    label = "not an integer or float type",
    note = "scores are sorted-set scores (doubles): use i8..i128, u8..u128, isize, usize, f32 or f64"
)]
pub trait ScoreValue:
    Copy + PartialOrd + fmt::Debug + fmt::Display + Send + Sync + 'static
{
    /// The type's name, for error messages (`"u32"`).
    const EXPECTED: &'static str;
    /// True for `f32` / `f64`.
    const FLOAT: bool;
    /// The smallest finite value, as a double (integers: not below
    /// -(2^53 - 1); `f64`: minus infinity, no bound).
    const MIN: f64;
    /// The largest finite value, as a double (integers: not above
    /// 2^53 - 1; `f64`: infinity, no bound).
    const MAX: f64;
    /// What `increment` adds: `i64` for integer scores, the float type for
    /// float scores.
    type Delta: Copy + fmt::Debug + fmt::Display + Send + Sync + 'static;

    /// The value as a double, or `None` when there is none or it is not
    /// exact (an integer of magnitude above 2^53 - 1, `NaN`). `-0.0` becomes
    /// `0.0`.
    fn to_exact(self) -> Option<f64>;
    /// The nearest double (for range bounds, where rounding is harmless).
    fn to_lossy(self) -> f64;
    /// The value of this type equal to `v`, or `None` when there is none (a
    /// fraction for an integer type, a value out of range).
    fn from_exact(v: f64) -> Option<Self>;
    /// The delta as a double, or `None` when no double equals it.
    fn delta_exact(d: Self::Delta) -> Option<f64>;
}

macro_rules! int_score {
    ($($t:ty),*) => {$(
        impl ScoreValue for $t {
            const EXPECTED: &'static str = stringify!($t);
            const FLOAT: bool = false;
            const MIN: f64 = if (<$t>::MIN as f64) < -MAX_INT { -MAX_INT } else { <$t>::MIN as f64 };
            const MAX: f64 = if (<$t>::MAX as f64) > MAX_INT { MAX_INT } else { <$t>::MAX as f64 };
            type Delta = i64;

            #[inline]
            #[allow(clippy::cast_lossless, clippy::unnecessary_cast)]
            fn to_exact(self) -> Option<f64> {
                // `as` rounds: a value that does not come back is not exact.
                let f = self as f64;
                let range = <Self as ScoreValue>::MIN..=<Self as ScoreValue>::MAX;
                (range.contains(&f) && f as $t == self).then_some(f)
            }
            #[inline]
            #[allow(clippy::cast_lossless, clippy::unnecessary_cast)]
            fn to_lossy(self) -> f64 {
                self as f64
            }
            #[inline]
            #[allow(clippy::cast_lossless, clippy::unnecessary_cast)]
            fn from_exact(v: f64) -> Option<Self> {
                let range = <Self as ScoreValue>::MIN..=<Self as ScoreValue>::MAX;
                (v.fract() == 0.0 && range.contains(&v)).then(|| v as $t)
            }
            #[inline]
            fn delta_exact(d: i64) -> Option<f64> {
                let f = d as f64;
                (f.abs() <= MAX_INT && f as i64 == d).then_some(f)
            }
        }
    )*};
}
int_score!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

impl ScoreValue for f64 {
    const EXPECTED: &'static str = "f64";
    const FLOAT: bool = true;
    const MIN: f64 = f64::NEG_INFINITY;
    const MAX: f64 = f64::INFINITY;
    type Delta = f64;

    #[inline]
    fn to_exact(self) -> Option<f64> {
        (!self.is_nan()).then_some(self + 0.0)
    }
    #[inline]
    fn to_lossy(self) -> f64 {
        self
    }
    #[inline]
    fn from_exact(v: f64) -> Option<Self> {
        (!v.is_nan()).then_some(v)
    }
    #[inline]
    fn delta_exact(d: f64) -> Option<f64> {
        (!d.is_nan()).then_some(d)
    }
}

impl ScoreValue for f32 {
    const EXPECTED: &'static str = "f32";
    const FLOAT: bool = true;
    // Finite bounds: a sum past them is a double no f32 equals (infinities
    // are f32 values, and pass).
    const MIN: f64 = f32::MIN as f64;
    const MAX: f64 = f32::MAX as f64;
    type Delta = f32;

    #[inline]
    fn to_exact(self) -> Option<f64> {
        (!self.is_nan()).then_some(f64::from(self) + 0.0)
    }
    #[inline]
    fn to_lossy(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    #[allow(clippy::cast_possible_truncation)]
    fn from_exact(v: f64) -> Option<Self> {
        // The nearest f32: a score written as an f32 reads back exactly; a
        // finite double beyond the f32 range does not fit.
        let f = v as f32;
        (!v.is_nan() && (f.is_finite() || v.is_infinite())).then_some(f)
    }
    #[inline]
    fn delta_exact(d: f32) -> Option<f64> {
        (!d.is_nan()).then_some(f64::from(d))
    }
}

/// A type a `#[leaderboard(member)]` field may have: anything with a plain
/// string form ([`FieldValue`]: strings, integers, `Vec<u8>`, `char`, and
/// `#[derive(RedisField)]` newtypes and unit enums). The plain form is the
/// sorted-set member, so `redis-cli` shows `ada` or `42`.
#[diagnostic::on_unimplemented(
    message = "a `#[leaderboard(member)]` field must have a plain string form, and `{Self}` has none",
    label = "not usable as a sorted-set member",
    note = "members can be strings, integers, Vec<u8>, char, or a newtype / unit enum with #[derive(RedisField)]"
)]
pub trait MemberValue: FieldValue + Clone + Send + Sync + 'static {}

impl<T: FieldValue + Clone + Send + Sync + 'static> MemberValue for T {}

/// Something that encodes as a member of a board whose member type is `M`:
/// `M` itself, and `str` / `[u8]` for `String` / `Vec<u8>` members, so that
/// `board.rank("ada")` works.
pub trait MemberRef<M> {
    /// Appends the plain form.
    fn encode_member(&self, out: &mut Vec<u8>) -> Result<(), String>;
}

impl<T: FieldValue> MemberRef<T> for T {
    fn encode_member(&self, out: &mut Vec<u8>) -> Result<(), String> {
        self.encode(out)
    }
}

impl MemberRef<String> for str {
    fn encode_member(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(self.as_bytes());
        Ok(())
    }
}

impl MemberRef<String> for &str {
    fn encode_member(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(self.as_bytes());
        Ok(())
    }
}

impl MemberRef<Vec<u8>> for [u8] {
    fn encode_member(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(self);
        Ok(())
    }
}

/// Who wins a tie on a board with a tie-break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TieWinner {
    /// Of two equal scores, the one achieved first ranks higher.
    Earlier,
    /// Of two equal scores, the one achieved last ranks higher.
    Later,
}

/// How a board breaks ties by time, generated from the `tie_break`,
/// `max_score`, `decimals`, `tie_resolution` and `tie_epoch` attributes.
///
/// A stored score is `S * 2^time_bits + tie`: `S` is the score times
/// `10^decimals` (an integer of magnitude at most `max_scaled`), `tie` the
/// time of the achievement in units of `resolution_ms` since `epoch_ms`
/// (reversed when the earlier achiever must sort first). Both parts share the
/// 53 bits of a double's mantissa, which is the precision limit: `time_bits`
/// is what `max_scaled` leaves, and times past
/// [`TieBreak::horizon_ms`] cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TieBreak {
    /// Who wins a tie.
    pub winner: TieWinner,
    /// The largest `|score| * 10^decimals`.
    pub max_scaled: u64,
    /// Decimal places kept of a float score (0 for integer scores).
    pub decimals: u8,
    /// The time unit of the tie-break, in milliseconds.
    pub resolution_ms: u64,
    /// The first instant the tie-break can encode (ms since the Unix epoch).
    pub epoch_ms: i64,
    /// Bits of the stored score that hold the time.
    pub time_bits: u8,
}

/// Named construction, as the derive writes it:
/// `TieBreak::of(TieWinner::Earlier).with_max_scaled(1_000_000)...`. Unset
/// values are zero; the derive sets every one.
impl TieBreak {
    /// A tie-break that `winner` wins.
    #[doc(hidden)]
    pub const fn of(winner: TieWinner) -> Self {
        TieBreak {
            winner,
            max_scaled: 0,
            decimals: 0,
            resolution_ms: 0,
            epoch_ms: 0,
            time_bits: 0,
        }
    }
}

crate::setters::const_setters!(TieBreak {
    with_max_scaled(max_scaled: u64);
    with_decimals(decimals: u8);
    with_resolution_ms(resolution_ms: u64);
    with_epoch_ms(epoch_ms: i64);
    with_time_bits(time_bits: u8);
});

impl TieBreak {
    /// The positional form, from before the named one (`of` and the
    /// `with_*` setters) that the derive writes.
    #[doc(hidden)]
    pub const fn new(
        winner: TieWinner,
        max_scaled: u64,
        decimals: u8,
        resolution_ms: u64,
        epoch_ms: i64,
        time_bits: u8,
    ) -> Self {
        TieBreak {
            winner,
            max_scaled,
            decimals,
            resolution_ms,
            epoch_ms,
            time_bits,
        }
    }

    /// `2^time_bits`: the factor between a real (scaled) score and the stored one.
    pub fn factor(&self) -> f64 {
        (1u64 << self.time_bits) as f64
    }

    /// `10^decimals`.
    pub fn scale(&self) -> f64 {
        10f64.powi(i32::from(self.decimals))
    }

    /// The first instant (ms since the Unix epoch) the tie-break can no
    /// longer encode.
    pub fn horizon_ms(&self) -> i64 {
        let span = (self.resolution_ms as i128) << self.time_bits;
        (self.epoch_ms as i128 + span).min(i64::MAX as i128) as i64
    }

    /// The largest real score: `max_scaled / 10^decimals`.
    pub fn max_score(&self) -> f64 {
        self.max_scaled as f64 / self.scale()
    }

    /// Splits a stored score into the real score and the achievement time
    /// (ms since the Unix epoch, rounded down to the resolution).
    pub fn decode(&self, stored: f64, reversed: bool) -> (f64, i64) {
        let factor = self.factor();
        let s = (stored / factor).floor();
        let tie = stored - s * factor;
        let t = if reversed { factor - 1.0 - tie } else { tie };
        let at = self.epoch_ms as f64 + t * self.resolution_ms as f64;
        (s / self.scale(), at as i64)
    }

    /// The scaled score of `v`, or why it cannot be encoded.
    pub(crate) fn scaled(&self, v: f64) -> Result<f64, String> {
        let scale = self.scale();
        let s = (v * scale).round();
        if !v.is_finite() {
            return Err("a board with a tie-break stores finite scores only".to_owned());
        }
        if s / scale != v {
            return Err(if self.decimals == 0 {
                "a board with a tie-break stores whole scores only (set `decimals` to keep fractions)"
                    .to_owned()
            } else {
                format!(
                    "it has more than {} decimal places, which is all the tie-break keeps",
                    self.decimals
                )
            });
        }
        if s.abs() > self.max_scaled as f64 {
            return Err(format!(
                "its magnitude is above max_score = {}, the largest score the tie-break leaves room for",
                self.max_score()
            ));
        }
        Ok(s + 0.0)
    }

    /// The time index of `at_ms` (in resolution units since the epoch).
    pub(crate) fn time_index(&self, at_ms: i64) -> Result<f64, String> {
        if at_ms < self.epoch_ms {
            return Err(format!(
                "the achievement time {} is before tie_epoch {}, the first instant the tie-break encodes",
                fmt_ms(at_ms),
                fmt_ms(self.epoch_ms)
            ));
        }
        if at_ms >= self.horizon_ms() {
            return Err(format!(
                "the achievement time {} is past the tie-break horizon {} ({} bits of {} ms after tie_epoch)",
                fmt_ms(at_ms),
                fmt_ms(self.horizon_ms()),
                self.time_bits,
                self.resolution_ms
            ));
        }
        Ok(((at_ms - self.epoch_ms) as u64 / self.resolution_ms) as f64)
    }
}

fn fmt_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => format!("{ms} ms"),
    }
}

/// Appends the exact text of a double, as Redis and Lua parse it.
pub(crate) fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.fract() == 0.0 && v.abs() <= EXACT {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else if v > 0.0 {
        out.extend_from_slice(b"+inf");
    } else {
        out.extend_from_slice(b"-inf");
    }
}

/// The exact text of a double.
pub(crate) fn f64_text(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_f64(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tb(max: u64, decimals: u8, res: u64) -> TieBreak {
        let bits = 64 - max.leading_zeros();
        TieBreak::new(
            TieWinner::Earlier,
            max,
            decimals,
            res,
            1_735_689_600_000,
            (53 - bits) as u8,
        )
    }

    #[test]
    fn integer_scores() {
        assert_eq!(7u8.to_exact(), Some(7.0));
        assert_eq!(u64::MAX.to_exact(), None);
        assert_eq!((1u64 << 53).to_exact(), None);
        assert_eq!(((1u64 << 53) + 1).to_exact(), None);
        assert_eq!(((1u64 << 53) - 1).to_exact(), Some(EXACT - 1.0));
        assert_eq!((1i64 - (1 << 53)).to_exact(), Some(1.0 - EXACT));
        assert_eq!((-(1i64 << 53)).to_exact(), None);
        assert_eq!(u64::from_exact(EXACT - 1.0), Some((1 << 53) - 1));
        assert_eq!(u64::from_exact(EXACT), None);
        assert_eq!(u64::delta_exact((1 << 53) - 1), Some(EXACT - 1.0));
        assert_eq!(u64::delta_exact(1 << 53), None);
        assert_eq!(i64::MIN.to_exact(), None);
        assert_eq!(u8::from_exact(255.0), Some(255));
        assert_eq!(u8::from_exact(256.0), None);
        assert_eq!(u8::from_exact(1.5), None);
        assert_eq!(i128::from_exact(-5.0), Some(-5));
        assert_eq!(f64::NAN.to_exact(), None);
        assert!((-0.0f64).to_exact().unwrap().is_sign_positive());
        assert_eq!(f32::from_exact(1e300), None);
        assert_eq!(f32::from_exact(f64::from(0.1f32)), Some(0.1f32));
    }

    #[test]
    fn tie_break_encoding() {
        let t = tb(1_000_000, 0, 1000);
        assert_eq!(t.time_bits, 33);
        assert_eq!(t.scaled(1_000_000.0), Ok(1_000_000.0));
        assert!(t.scaled(1_000_001.0).is_err());
        assert!(t.scaled(-1_000_001.0).is_err());
        assert!(t.scaled(1.5).is_err());
        let idx = t.time_index(t.epoch_ms + 5_500).unwrap();
        assert_eq!(idx, 5.0);
        assert!(t.time_index(t.epoch_ms - 1).is_err());
        assert!(t.time_index(t.horizon_ms()).is_err());
        assert!(t.time_index(t.horizon_ms() - 1).is_ok());
        // The largest stored value is exactly a double.
        let top = 1_000_000.0 * t.factor() + (t.factor() - 1.0);
        assert!(top < EXACT);
        let (real, at) = t.decode(top, true);
        assert_eq!(real, 1_000_000.0);
        assert_eq!(at, t.epoch_ms);
        let d = tb(100_000, 2, 1);
        assert_eq!(d.scaled(999.99), Ok(99_999.0));
        assert!(d.scaled(0.001).is_err());
        assert!(d.scaled(1000.01).is_err());
    }

    #[test]
    fn exact_text() {
        assert_eq!(f64_text(42.0), "42");
        assert_eq!(f64_text(-7.0), "-7");
        assert_eq!(f64_text(0.1), "0.1");
        assert_eq!(f64_text(EXACT), "9007199254740992");
        assert_eq!(f64_text(1e300), "1e300");
        assert_eq!(f64_text(f64::INFINITY), "+inf");
        assert_eq!(f64_text(f64::NEG_INFINITY), "-inf");
    }
}
