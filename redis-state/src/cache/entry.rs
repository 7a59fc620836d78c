//! How a cache entry is stored: one string, a one-line header and the JSON
//! of the value.
//!
//! ```text
//! rsc1 v3 d12 x1732190000000 v
//! {"id":42,"name":"Ada","category":"books"}
//! ```
//!
//! `v3` is the format version of the type (`#[cache(version = 3)]`), `d12`
//! the milliseconds the loader took (XFetch's delta), `x…` the instant (ms
//! since the epoch) the entry stops being fresh, and the last word `v` for a
//! value or `n` for a remembered "not found" (no JSON follows). Anything
//! else under a cache key (another version, bytes another program wrote,
//! truncated data) reads as a miss and is logged; it is never an error.

use std::time::{SystemTime, UNIX_EPOCH};

const MAGIC: &[u8] = b"rsc1 ";

/// The milliseconds since the Unix epoch, by this machine's clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The parsed header and the payload of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) version: u32,
    pub(crate) delta_ms: u64,
    pub(crate) fresh_until_ms: i64,
    pub(crate) negative: bool,
    pub(crate) payload: &'a [u8],
}

/// Writes an entry.
pub(crate) fn encode(
    version: u32,
    delta_ms: u64,
    fresh_until_ms: i64,
    payload: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + payload.map_or(0, <[u8]>::len));
    out.extend_from_slice(MAGIC);
    out.push(b'v');
    out.extend_from_slice(itoa::Buffer::new().format(version).as_bytes());
    out.extend_from_slice(b" d");
    out.extend_from_slice(itoa::Buffer::new().format(delta_ms).as_bytes());
    out.extend_from_slice(b" x");
    out.extend_from_slice(itoa::Buffer::new().format(fresh_until_ms).as_bytes());
    match payload {
        Some(p) => {
            out.extend_from_slice(b" v\n");
            out.extend_from_slice(p);
        }
        None => out.extend_from_slice(b" n\n"),
    }
    out
}

/// Parses an entry; the error says what is wrong, for the log.
pub(crate) fn parse(raw: &[u8]) -> Result<Envelope<'_>, &'static str> {
    let rest = raw
        .strip_prefix(MAGIC)
        .ok_or("not a redis-state cache entry (no `rsc1` header)")?;
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(&rest[..nl]).map_err(|_| "header is not UTF-8")?;
    let payload = &rest[nl + 1..];
    let mut words = header.split(' ');
    let mut field = |tag: char| -> Result<&str, &'static str> {
        words
            .next()
            .and_then(|w| w.strip_prefix(tag))
            .ok_or("malformed header")
    };
    let version = field('v')?.parse().map_err(|_| "malformed version")?;
    let delta_ms = field('d')?.parse().map_err(|_| "malformed delta")?;
    let fresh_until_ms = field('x')?.parse().map_err(|_| "malformed expiry")?;
    let negative = match words.next() {
        Some("v") => false,
        Some("n") => true,
        _ => return Err("malformed kind"),
    };
    if words.next().is_some() {
        return Err("malformed header");
    }
    if negative && !payload.is_empty() {
        return Err("a not-found entry with a payload");
    }
    Ok(Envelope {
        version,
        delta_ms,
        fresh_until_ms,
        negative,
        payload,
    })
}

/// XFetch (Vattani, Chierichetti, Lowenstein: "Optimal Probabilistic Cache
/// Stampede Prevention", VLDB 2015): recompute early when
/// `now − delta · beta · ln(rand()) ≥ expiry`, with `rand()` uniform in
/// (0, 1]. The expected number of early recomputations is small and they
/// happen closer to the expiry the cheaper the value is to compute.
pub(crate) fn xfetch(
    now_ms: i64,
    delta_ms: u64,
    beta: f64,
    fresh_until_ms: i64,
    rand: f64,
) -> bool {
    if beta <= 0.0 || delta_ms == 0 {
        return now_ms >= fresh_until_ms;
    }
    let r = rand.clamp(f64::MIN_POSITIVE, 1.0);
    let gap = -(delta_ms as f64) * beta * r.ln();
    now_ms as f64 + gap >= fresh_until_ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let raw = encode(3, 12, 1_732_190_000_000, Some(br#"{"a":1}"#));
        assert_eq!(raw, b"rsc1 v3 d12 x1732190000000 v\n{\"a\":1}".to_vec());
        let e = parse(&raw).unwrap();
        assert_eq!(e.version, 3);
        assert_eq!(e.delta_ms, 12);
        assert_eq!(e.fresh_until_ms, 1_732_190_000_000);
        assert!(!e.negative);
        assert_eq!(e.payload, br#"{"a":1}"#);
        let neg = encode(1, 0, 5, None);
        assert!(parse(&neg).unwrap().negative);
    }

    #[test]
    fn foreign_bytes_are_refused() {
        for bad in [
            &b""[..],
            b"{\"a\":1}",
            b"rsc1 ",
            b"rsc1 v1 d2 x3",
            b"rsc1 v1 d2 x3 q\n",
            b"rsc1 vX d2 x3 v\n{}",
            b"rsc1 v1 d2 x3 n\n{}",
            b"rsc1 v1 d2 x3 v extra\n{}",
            b"rsc1 v1 d\xff x3 v\n{}",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn xfetch_follows_the_paper() {
        // rand() = 1 gives ln 1 = 0: refresh only at expiry.
        assert!(!xfetch(999, 100, 1.0, 1000, 1.0));
        assert!(xfetch(1000, 100, 1.0, 1000, 1.0));
        // rand() = e^-1: the gap is delta * beta.
        let r = (-1.0f64).exp();
        assert!(xfetch(900, 100, 1.0, 1000, r));
        assert!(!xfetch(890, 100, 1.0, 1000, r));
        assert!(xfetch(800, 100, 2.0, 1000, r));
        // beta 0 turns early refresh off.
        assert!(!xfetch(999, 100, 0.0, 1000, 1e-9));
    }
}
