//! Escaping of user values placed in keys (DESIGN principle 7).
//!
//! A user value placed in a key (an id, a tenant name, a tag) is escaped so
//! that two different values never produce the same key and no value can
//! break out of its segment. The bytes `%` `:` `{` `}` `*` `?` `[` `]` `\`
//! `#`, space and ASCII control bytes are written as `%XX` (upper-case hex),
//! as are bytes that are not valid UTF-8. Everything else, including
//! non-ASCII text, is kept as is, so keys stay readable in `redis-cli`:
//!
//! | value          | segment              |
//! |----------------|----------------------|
//! | `42`           | `42`                 |
//! | `alice`        | `alice`              |
//! | `a:b`          | `a%3Ab`              |
//! | `{x}`          | `%7Bx%7D`            |
//! | `50%`          | `50%25`              |
//! | `ünïcödé`      | `ünïcödé`            |
//!
//! Because `%` itself is escaped, the mapping is injective. Because `:` and
//! the braces are escaped, a value never adds a segment or a hash tag.
//! Because the glob characters are escaped, a key prefix is also a safe
//! `SCAN MATCH` pattern. Because `#` is escaped, the segments redis-state
//! uses for its own structures (`#idx`, `#uniq`, `#exp`, ...) can never be
//! an escaped value.
//!
//! The `%XX` form is written by the `percent-encoding` crate over the ASCII
//! runs of a value. That crate escapes every non-ASCII byte, which would
//! make non-ASCII ids unreadable and change the keys already written for
//! them, so non-ASCII text is copied around it. Decoding stays here: the
//! crate's decoder also accepts lower-case hex and a lone `%`, so it cannot
//! tell an escaped segment from text that no escaping produced.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_encode};

/// The printable ASCII bytes a value is escaped for; with the ASCII control
/// bytes (0x00–0x1F and 0x7F) they are every byte [`needs_escape`] accepts
/// below 0x80.
pub const ESCAPED_PRINTABLE: &[u8] = b"%:{}*?[]\\# ";

/// The glob characters of `SCAN MATCH` / `KEYS` patterns.
pub const GLOB: &[u8] = b"*?[]\\";

/// The escaped bytes as `percent-encoding` reads them.
const KEY_SET: &AsciiSet = &key_set();

const fn key_set() -> AsciiSet {
    let mut set = CONTROLS.add(ESCAPED_PRINTABLE[0]);
    let mut i = 1;
    while i < ESCAPED_PRINTABLE.len() {
        set = set.add(ESCAPED_PRINTABLE[i]);
        i += 1;
    }
    set
}

/// The same bytes as a lookup table, for the checks that only ask.
static NEEDS_ESCAPE: [bool; 128] = needs_escape_table();

const fn needs_escape_table() -> [bool; 128] {
    let mut table = [false; 128];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[0x7f] = true;
    let mut i = 0;
    while i < ESCAPED_PRINTABLE.len() {
        table[ESCAPED_PRINTABLE[i] as usize] = true;
        i += 1;
    }
    table
}

/// True for an ASCII byte a value is escaped for (see the
/// [module docs](self)). Bytes of non-ASCII text are kept, so this is false
/// for every byte from 0x80 on; invalid UTF-8 is escaped by the functions
/// that see it.
#[inline]
pub fn needs_escape(b: u8) -> bool {
    b.is_ascii() && NEEDS_ESCAPE[usize::from(b)]
}

/// Appends `value` to `out`, escaped as described in the [module docs](self).
pub fn escape_into(out: &mut String, value: &str) {
    // Fast path: nothing to escape (the common case for ids).
    if !value.bytes().any(needs_escape) {
        out.push_str(value);
        return;
    }
    push_text(out, value);
}

/// Appends raw bytes to `out`, escaped; bytes that are not valid UTF-8 are
/// escaped too.
pub fn escape_bytes_into(out: &mut String, value: &[u8]) {
    if let Ok(text) = std::str::from_utf8(value) {
        escape_into(out, text);
        return;
    }
    for chunk in value.utf8_chunks() {
        push_text(out, chunk.valid());
        // Every byte of an invalid sequence is 0x80 or above, which
        // `percent_encode` always escapes.
        out.extend(percent_encode(chunk.invalid(), KEY_SET));
    }
}

/// Appends valid text: its ASCII runs through `percent_encode`, its
/// non-ASCII runs as they are.
fn push_text(out: &mut String, mut text: &str) {
    while !text.is_empty() {
        let ascii = text
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(text.len());
        out.extend(percent_encode(&text.as_bytes()[..ascii], KEY_SET));
        text = &text[ascii..];
        let other = text
            .bytes()
            .position(|b| b.is_ascii())
            .unwrap_or(text.len());
        out.push_str(&text[..other]);
        text = &text[other..];
    }
}

/// Returns `value` escaped for use as one key segment.
pub fn escape(value: &str) -> Cow<'_, str> {
    if value.bytes().any(needs_escape) {
        let mut out = String::with_capacity(value.len() + 8);
        escape_into(&mut out, value);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(value)
    }
}

/// Reverses [`escape_bytes_into`]. Returns `None` if `segment` is not the
/// output of the escaping (a stray `%`, bad or lower-case hex, an unescaped
/// special byte).
pub fn unescape(segment: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(segment.len());
    unescape_into(segment, &mut out)?;
    Some(out)
}

/// [`unescape`], appended to `out` (a buffer reused across calls); `None`
/// as for [`unescape`], with `out` then holding part of the segment.
pub fn unescape_into(segment: &str, out: &mut Vec<u8>) -> Option<()> {
    let bytes = segment.as_bytes();
    out.reserve(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = hex_val(*bytes.get(i + 1)?)?;
            let lo = hex_val(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else if needs_escape(b) {
            return None;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Escapes the glob characters `*` `?` `[` `]` `\` of `literal` so that it
/// matches only itself in a `SCAN MATCH` / `KEYS` pattern.
pub fn glob_escape(literal: &str) -> Cow<'_, str> {
    if !literal.bytes().any(|b| GLOB.contains(&b)) {
        return Cow::Borrowed(literal);
    }
    let mut out = String::with_capacity(literal.len() + 8);
    for c in literal.chars() {
        if c.is_ascii() && GLOB.contains(&(c as u8)) {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_and_the_table_agree() {
        for b in 0u8..0x80 {
            let encoded: String = percent_encode(&[b], KEY_SET).collect();
            assert_eq!(encoded.len() == 3, needs_escape(b), "{b:#04x}");
        }
        for b in 0x80..=0xffu8 {
            assert!(!needs_escape(b));
        }
    }

    #[test]
    fn escaping_is_injective_on_tricky_values() {
        let values = [
            "", ":", "%", "%25", "%3A", "a:b", "a%3Ab", "{x}", "*", "?", "[", "]", "\\", "#", " ",
            "\n", "\0", "ü", "#idx",
        ];
        let mut seen = std::collections::HashMap::new();
        for v in values {
            let e = escape(v).into_owned();
            assert!(
                !e.contains([':', '{', '}', '*', '?', '[', ']', '\\', '#', ' ']),
                "{e}"
            );
            if let Some(prev) = seen.insert(e.clone(), v) {
                panic!("{prev:?} and {v:?} both escape to {e:?}");
            }
            assert_eq!(unescape(&e).as_deref(), Some(v.as_bytes()));
        }
    }

    #[test]
    fn invalid_utf8_is_escaped() {
        let mut s = String::new();
        escape_bytes_into(&mut s, b"a\xffb");
        assert_eq!(s, "a%FFb");
        assert_eq!(unescape(&s).as_deref(), Some(&b"a\xffb"[..]));
    }

    #[test]
    fn foreign_segments_are_refused() {
        for bad in ["%", "%4", "%4g", "%3a", "a:b", "a b", "#x"] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
    }

    #[test]
    fn globs_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("ü:x"), "ü:x");
    }
}
