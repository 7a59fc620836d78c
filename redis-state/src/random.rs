//! Randomness from the operating system, for values others must not guess
//! (lock tokens, session ids), and jitter for retry delays.

use std::time::Duration;

use crate::error::{Error, Result};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `bytes` random bytes from the OS generator, as lower-case hex.
pub(crate) fn hex_token(bytes: usize) -> Result<String> {
    let mut raw = [0u8; 64];
    let raw = &mut raw[..bytes.min(64)];
    getrandom::fill(raw).map_err(|e| Error::Entropy(e.to_string()))?;
    let mut out = String::with_capacity(raw.len() * 2);
    for b in raw.iter() {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    Ok(out)
}

/// A random (version 4) UUID as text, `8-4-4-4-12` lower-case hex digits,
/// from 16 bytes of the OS generator with the version and variant bits set.
pub(crate) fn uuid4() -> Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| Error::Entropy(e.to_string()))?;
    raw[6] = (raw[6] & 0x0f) | 0x40;
    raw[8] = (raw[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    Ok(out)
}

/// A random duration in `[lo, hi]`, for jittered retry delays. Jitter needs
/// no secrecy: when the OS generator fails, the clock's nanoseconds do. Any
/// pair of durations works (`Duration::MAX` included): a span wider than
/// 2^64 ns (584 years) is drawn from its first 2^64 ns.
pub(crate) fn between(lo: Duration, hi: Duration) -> Duration {
    if hi <= lo {
        return lo;
    }
    let span = (hi - lo).as_nanos().min(u128::from(u64::MAX)) as u64;
    let r = getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
    });
    let offset = match span.checked_add(1) {
        Some(n) => r % n,
        None => r, // the span is every u64
    };
    lo.saturating_add(Duration::from_nanos(offset))
}

/// The largest TTL a command gets, in milliseconds: 2^53 - 1 (about 285,000
/// years). Redis refuses a TTL whose sum with the current time overflows a
/// 64-bit integer (`i64::MAX` does), and scripts read numbers as doubles,
/// exact up to 2^53.
pub(crate) const MAX_MILLIS: u64 = (1 << 53) - 1;

/// Milliseconds for a command argument: at least 1 (0 means "no TTL" or is
/// refused by Redis), at most [`MAX_MILLIS`].
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u128::from(MAX_MILLIS)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hex_and_distinct() {
        let a = hex_token(16).unwrap();
        let b = hex_token(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn uuid4_text() {
        let a = uuid4().unwrap();
        assert_eq!(a.len(), 36);
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{a}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{a}"
        );
        assert!(
            a.bytes()
                .all(|c| c == b'-' || matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        );
        assert_ne!(a, uuid4().unwrap());
    }

    #[test]
    fn between_stays_in_range() {
        for _ in 0..1000 {
            let d = between(Duration::from_millis(2), Duration::from_millis(5));
            assert!(d >= Duration::from_millis(2) && d <= Duration::from_millis(5));
        }
        assert_eq!(
            between(Duration::from_millis(5), Duration::from_millis(1)),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn between_takes_any_durations() {
        let ends = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(1),
            Duration::from_secs(u64::MAX),
            Duration::MAX - Duration::from_nanos(1),
            Duration::MAX,
        ];
        for lo in ends {
            for hi in ends {
                let d = between(lo, hi);
                assert!(d >= lo && (d <= hi || hi < lo), "{lo:?}..{hi:?} gave {d:?}");
            }
        }
    }
}
