//! Attributes that choose one of a few words (`rank = "dense"`): each is an
//! enum, read from its literal with the list of words in the error, and
//! named in generated code by the runtime's variant of the same name.

use super::ctxt::Ctxt;

/// Declares a choice: `choice!(Doc Name, "what", { Variant = "word", ... })`
/// gives `enum Name` with `from_lit` (an unknown word is reported at the
/// literal: ``unknown <what> "x"; expected one of "a", "b"``), `from_name`
/// and `variant`, the runtime's variant as an identifier.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub(crate) enum $name {
            $($variant),+
        }

        impl $name {
            const WORDS: &'static [(&'static str, $name)] = &[$(($word, $name::$variant)),+];

            /// The choice `lit` names; an unknown word is reported at it.
            #[allow(dead_code)]
            pub(crate) fn from_lit(cx: &$crate::internals::ctxt::Ctxt, lit: &syn::LitStr) -> Option<Self> {
                $crate::internals::choice::read(cx, lit, $what, Self::WORDS)
            }

            /// The choice `word` names.
            #[allow(dead_code)]
            pub(crate) fn from_name(word: &str) -> Option<Self> {
                Self::WORDS.iter().find(|(w, _)| *w == word).map(|(_, c)| *c)
            }

            /// The runtime's variant of the same name, as an identifier.
            pub(crate) fn variant(self) -> syn::Ident {
                let name = match self {
                    $($name::$variant => stringify!($variant)),+
                };
                syn::Ident::new(name, proc_macro2::Span::call_site())
            }
        }
    };
}
pub(crate) use choice;

/// The choice among `words` that `lit` names; an unknown word is reported at
/// the literal with the list.
pub(crate) fn read<T: Copy>(
    cx: &Ctxt,
    lit: &syn::LitStr,
    what: &str,
    words: &[(&str, T)],
) -> Option<T> {
    let v = lit.value();
    if let Some((_, choice)) = words.iter().find(|(word, _)| *word == v) {
        return Some(*choice);
    }
    let list: Vec<String> = words.iter().map(|(w, _)| format!("\"{w}\"")).collect();
    cx.error_spanned_by(
        lit,
        format!(
            "unknown {what} \"{v}\"; expected one of {}",
            list.join(", ")
        ),
    );
    None
}
