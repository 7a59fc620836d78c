//! Keys already written must not change: the escaping written with
//! `percent-encoding` gives, byte for byte, what the hand-written escaping
//! it replaced gave. That escaping is kept below, frozen, as the reference;
//! the values are hostile ids (separators, braces, globs, `%` sequences,
//! controls, Unicode whitespace, invalid UTF-8), every one- and two-byte
//! value, and random bytes and text.

use proptest::prelude::*;
use redis_state_keys::{escape, escape_bytes_into, escape_into, unescape};

/// The escaping as it was before it moved here (frozen; do not edit).
mod reference {
    fn needs_escape(b: u8) -> bool {
        matches!(
            b,
            b'%' | b':' | b'{' | b'}' | b'*' | b'?' | b'[' | b']' | b'\\' | b'#' | b' ' | 0x7f
        ) || b < 0x20
    }

    const HEX: &[u8; 16] = b"0123456789ABCDEF";

    fn push_escaped_byte(out: &mut String, b: u8) {
        out.push('%');
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }

    pub(crate) fn escape_bytes_into(out: &mut String, value: &[u8]) {
        if let Ok(s) = std::str::from_utf8(value)
            && !value.iter().any(|&b| needs_escape(b))
        {
            out.push_str(s);
            return;
        }
        for chunk in value.utf8_chunks() {
            let valid = chunk.valid();
            let mut start = 0;
            for (i, b) in valid.bytes().enumerate() {
                if needs_escape(b) {
                    out.push_str(&valid[start..i]);
                    push_escaped_byte(out, b);
                    start = i + 1;
                }
            }
            out.push_str(&valid[start..]);
            for &b in chunk.invalid() {
                push_escaped_byte(out, b);
            }
        }
    }
}

fn old(value: &[u8]) -> String {
    let mut out = String::new();
    reference::escape_bytes_into(&mut out, value);
    out
}

fn new(value: &[u8]) -> String {
    let mut out = String::new();
    escape_bytes_into(&mut out, value);
    out
}

fn hostile() -> Vec<Vec<u8>> {
    let text = [
        "",
        ":",
        "::",
        "*",
        "?",
        "[",
        "]",
        "[a-z]",
        "\\",
        "{",
        "}",
        "{}",
        "{a}",
        "}{",
        " ",
        "  ",
        "\n",
        "\r\n",
        "\t",
        "\0",
        "%",
        "%25",
        "%3A",
        "a:b",
        "a%3Ab",
        "#",
        "#idx",
        "#uniq:x",
        "user:1",
        "{user}:1",
        "ünïcödé",
        "日本語",
        "emoji 🎉",
        "\u{a0}",
        "\u{85}",
        "\u{2028}",
        "\u{feff}x",
        "a\u{7f}b",
        "\u{1b}[31m",
        "x%",
        "%%",
        "%zz",
        "-",
        "a-b",
        "a_b",
        "a.b",
    ];
    let mut values: Vec<Vec<u8>> = text.iter().map(|s| s.as_bytes().to_vec()).collect();
    values.extend([
        b"\xff".to_vec(),
        b"a\xffb".to_vec(),
        b"\xc3".to_vec(),
        b"\xc3(".to_vec(),
        b"\xe2\x82".to_vec(),
        b"\xf0\x9f\x8e".to_vec(),
        b"ok\xed\xa0\x80".to_vec(),
        vec![0x80, b':', 0xbf],
    ]);
    values
}

#[test]
fn hostile_ids_keep_their_keys() {
    for v in hostile() {
        assert_eq!(new(&v), old(&v), "{v:?}");
        assert_eq!(unescape(&new(&v)), Some(v.clone()), "{v:?}");
        if let Ok(s) = std::str::from_utf8(&v) {
            let mut out = String::new();
            escape_into(&mut out, s);
            assert_eq!(out, old(&v), "{s:?}");
            assert_eq!(escape(s), old(&v), "{s:?}");
        }
    }
}

/// The keys of a few hostile ids, written out: a change that moved both
/// implementations would still be caught here.
#[test]
fn known_keys() {
    for (value, key) in [
        (&b"a:b"[..], "a%3Ab"),
        (b"{x}", "%7Bx%7D"),
        (b"50%", "50%25"),
        ("ünïcödé".as_bytes(), "ünïcödé"),
        (b"#idx", "%23idx"),
        (b"[a-z]*?\\", "%5Ba-z%5D%2A%3F%5C"),
        (b"a b\n\x7f", "a%20b%0A%7F"),
        (b"a\xffb", "a%FFb"),
        ("\u{a0}".as_bytes(), "\u{a0}"),
    ] {
        assert_eq!(new(value), key, "{value:?}");
    }
}

#[test]
fn every_one_and_two_byte_value_keeps_its_key() {
    for a in 0..=255u8 {
        assert_eq!(new(&[a]), old(&[a]));
        for b in 0..=255u8 {
            assert_eq!(new(&[a, b]), old(&[a, b]), "{a:#04x} {b:#04x}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_keep_their_keys(v in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(new(&v), old(&v));
    }

    #[test]
    fn random_text_keeps_its_key(s in any::<String>()) {
        prop_assert_eq!(new(s.as_bytes()), old(s.as_bytes()));
    }
}
