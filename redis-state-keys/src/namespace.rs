//! Namespaces: validated key prefixes, for multi-tenant applications and
//! test isolation.
//!
//! A namespace `"tenant-7"` turns the key `user:42` into `tenant-7:user:42`.
//! It may contain `:` to build hierarchies (`"app:prod"`), but not braces
//! (they would change the Cluster hash tag), glob characters, `#`, `%`,
//! whitespace or control characters (Unicode ones included), and it is at
//! most [`MAX_NAMESPACE_LEN`] bytes long.

use std::fmt;

/// The longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 256;

/// Why a text is not a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NamespaceError {
    /// The text is empty.
    Empty,
    /// The text is longer than [`MAX_NAMESPACE_LEN`] bytes.
    TooLong,
    /// The text starts or ends with `:` or contains `::`.
    EmptySegment,
    /// The text holds a character no namespace may hold.
    Forbidden(char),
}

impl NamespaceError {
    /// The rule that was broken, as a sentence about namespaces.
    pub fn reason(&self) -> &'static str {
        match self {
            NamespaceError::Empty => "a namespace must not be empty",
            NamespaceError::TooLong => "a namespace is at most 256 bytes",
            NamespaceError::EmptySegment => {
                "a namespace must not start or end with `:` or contain `::`"
            }
            NamespaceError::Forbidden(_) => {
                "a namespace must not contain braces, glob characters, `#`, `%`, whitespace or control characters"
            }
        }
    }
}

impl fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespaceError::Forbidden(c) if c.is_whitespace() || c.is_control() => {
                write!(f, "{} (found U+{:04X})", self.reason(), u32::from(*c))
            }
            NamespaceError::Forbidden(c) => write!(f, "{} (found `{c}`)", self.reason()),
            _ => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for NamespaceError {}

/// Checks `name` against the namespace rules (see the [module docs](self)).
pub fn check_namespace(name: &str) -> Result<(), NamespaceError> {
    if name.is_empty() {
        return Err(NamespaceError::Empty);
    }
    if name.len() > MAX_NAMESPACE_LEN {
        return Err(NamespaceError::TooLong);
    }
    if name.starts_with(':') || name.ends_with(':') || name.contains("::") {
        return Err(NamespaceError::EmptySegment);
    }
    match name
        .chars()
        .find(|&c| matches!(c, '{' | '}') || crate::forbidden_in_literal(c))
    {
        Some(c) => Err(NamespaceError::Forbidden(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_validated() {
        for good in ["tenant-7", "app:prod", "ünï", "a.b_c"] {
            assert_eq!(check_namespace(good), Ok(()), "{good:?}");
        }
        for (bad, err) in [
            ("", NamespaceError::Empty),
            (":a", NamespaceError::EmptySegment),
            ("a:", NamespaceError::EmptySegment),
            ("a::b", NamespaceError::EmptySegment),
            ("a{b}", NamespaceError::Forbidden('{')),
            ("a*", NamespaceError::Forbidden('*')),
            ("a b", NamespaceError::Forbidden(' ')),
            ("a#", NamespaceError::Forbidden('#')),
            ("50%", NamespaceError::Forbidden('%')),
            ("a\u{a0}b", NamespaceError::Forbidden('\u{a0}')),
            ("a\u{2028}", NamespaceError::Forbidden('\u{2028}')),
            ("a\u{85}", NamespaceError::Forbidden('\u{85}')),
        ] {
            assert_eq!(check_namespace(bad), Err(err), "{bad:?}");
        }
        assert_eq!(check_namespace(&"a".repeat(256)), Ok(()));
        assert_eq!(
            check_namespace(&"a".repeat(257)),
            Err(NamespaceError::TooLong)
        );
    }

    #[test]
    fn messages_name_the_character() {
        assert_eq!(
            NamespaceError::Forbidden('\u{a0}').to_string(),
            "a namespace must not contain braces, glob characters, `#`, `%`, whitespace or control characters (found U+00A0)"
        );
        assert!(
            NamespaceError::Forbidden('{')
                .to_string()
                .ends_with("(found `{`)")
        );
    }
}
