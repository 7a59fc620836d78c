//! The key rules of [redis-state](https://docs.rs/redis-state), in one place.
//!
//! Both the runtime crate and the derive crate follow these rules, so what
//! the derive accepts at compile time is exactly what the runtime accepts at
//! run time:
//!
//! * [`escape`](mod@escape): how a user value (an id, a tenant, a tag value) becomes one
//!   key segment, injectively, and back ([`unescape`]).
//! * [`namespace`](mod@namespace): which prefixes are valid namespaces.
//! * [`template`](mod@template): how a key template (`"order:{{{customer}}}:{id}"`) is
//!   read, and the rule that every placeholder is a whole key segment.
//!
//! A key is `<namespace>:<template rendered with escaped values>`. The
//! characters the escaping replaces are the ones that carry structure in a
//! key (`:` separates segments, braces delimit the Cluster hash tag, `#`
//! starts redis-state's own companion segments, `%` starts an escape) or in a
//! `SCAN` pattern (`* ? [ ] \`), plus space and control bytes. Literal key
//! text (template literals, namespaces) may not hold them either, except
//! the separators and braces each form uses on purpose; see
//! [`forbidden_in_literal`].
//!
//! ```
//! use redis_state_keys::{escape, template::Template};
//!
//! assert_eq!(escape("acme:corp"), "acme%3Acorp");
//! let t = Template::parse("order:{{{customer}}}:{id}").unwrap();
//! assert_eq!(t.parts().collect::<Vec<_>>(), ["customer", "id"]);
//! assert!(Template::parse("order:{customer}-{id}").is_err());
//! ```

pub mod escape;
pub mod namespace;
pub mod template;

pub use escape::{
    escape, escape_bytes_into, escape_into, glob_escape, needs_escape, unescape, unescape_into,
};
pub use namespace::{MAX_NAMESPACE_LEN, NamespaceError, check_namespace};

/// True for a character that literal key text (a template's literal text or
/// a namespace) may not contain: every ASCII character the escaping
/// replaces, except the structural `:`, `{` and `}` (each form decides
/// where those may stand), and every other Unicode whitespace or control
/// character. Values are escaped instead and may hold any of these; literal
/// text is written by the developer, and an invisible character in it is a
/// mistake that would give keys no one can type.
pub fn forbidden_in_literal(c: char) -> bool {
    match u8::try_from(c) {
        Ok(b) if b.is_ascii() => needs_escape(b) && !matches!(b, b':' | b'{' | b'}'),
        _ => c.is_whitespace() || c.is_control(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_rule_follows_the_escaping_for_ascii() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            let structural = matches!(c, ':' | '{' | '}');
            assert_eq!(
                forbidden_in_literal(c),
                needs_escape(b) && !structural,
                "{c:?}"
            );
        }
    }

    #[test]
    fn literal_rule_refuses_unicode_whitespace_and_controls() {
        for c in [
            '\u{a0}', '\u{85}', '\u{2028}', '\u{3000}', '\u{9f}', '\u{feff}',
        ] {
            // U+FEFF is not whitespace in Unicode's sense: readable text
            // stays allowed unless it is whitespace or a control.
            assert_eq!(
                forbidden_in_literal(c),
                c.is_whitespace() || c.is_control(),
                "{c:?}"
            );
        }
        assert!(forbidden_in_literal('\u{a0}'));
        assert!(forbidden_in_literal('\u{85}'));
        assert!(!forbidden_in_literal('ü'));
        assert!(!forbidden_in_literal('-'));
    }
}
