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

/// A random duration in `[lo, hi]`, for jittered retry delays. Jitter needs
/// no secrecy: when the OS generator fails, the clock's nanoseconds do.
pub(crate) fn between(lo: Duration, hi: Duration) -> Duration {
    if hi <= lo {
        return lo;
    }
    let span = (hi - lo).as_nanos().min(u64::MAX as u128) as u64;
    let r = getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64)
    });
    lo + Duration::from_nanos(r % (span + 1))
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
}
