//! Keys: escaping of user values, namespaces, templates and Cluster hash slots.
//!
//! The rules for escaping, namespaces and key templates live in the
//! `redis-state-keys` crate, which the derives follow too; this module
//! re-exports its escaping and builds on it.
//!
//! # Escaping (DESIGN principle 7)
//!
//! A user value placed in a key (an id, a tenant name, a tag) is escaped so
//! that two different values never produce the same key and no value can break
//! out of its segment. The bytes `%` `:` `{` `}` `*` `?` `[` `]` `\` `#`, space
//! and ASCII control bytes are written as `%XX` (upper-case hex), as are bytes
//! that are not valid UTF-8. Everything else, including non-ASCII text, is kept
//! as is, so keys stay readable in `redis-cli`:
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
//! Because `%` itself is escaped, the mapping is injective. Because `:` and the
//! braces are escaped, a value never adds a segment or a hash tag. Because the
//! glob characters are escaped, a key prefix is also a safe `SCAN MATCH`
//! pattern. Because `#` is escaped, the segments redis-state uses for its own
//! structures (`#idx`, `#uniq`, `#exp`, ...) can never be an escaped value.

use std::fmt;
use std::sync::Arc;

pub use redis_state_keys::{
    escape, escape_bytes_into, escape_into, glob_escape, unescape, unescape_into,
};

use crate::error::{Error, Result};

/// Largest number of parts a composite id may have.
pub const MAX_ID_PARTS: usize = 8;

// ---------------------------------------------------------------------------
// Namespaces

/// A validated key prefix, for multi-tenant applications and test isolation.
///
/// A namespace `"tenant-7"` turns the key `user:42` into `tenant-7:user:42`.
/// It may contain `:` to build hierarchies (`"app:prod"`), but not braces
/// (they would change the Cluster hash tag), glob characters, `#`, `%`,
/// whitespace or control characters (Unicode ones included), and it is at
/// most 256 bytes long. The derives check `namespace = "..."` by the same
/// rule at compile time.
///
/// Cloning is cheap (the text is shared).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Namespace(Arc<str>);

impl Namespace {
    /// Validates `name` as a namespace.
    pub fn new(name: impl AsRef<str>) -> Result<Self> {
        let name = name.as_ref();
        match redis_state_keys::check_namespace(name) {
            Ok(()) => Ok(Namespace(Arc::from(name))),
            Err(e) => Err(Error::InvalidKeyPart {
                what: "namespace",
                value: crate::error::preview_bytes(name.as_bytes()),
                reason: e.reason(),
            }),
        }
    }

    /// The namespace text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Namespace").field(&&*self.0).finish()
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Namespace {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self> {
        Namespace::new(value)
    }
}

impl TryFrom<String> for Namespace {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Namespace::new(value)
    }
}

/// Operations that can run in a [`Namespace`]. Every operation of the crate
/// that touches model keys implements it (and has the same method inherent,
/// so no import is needed); [`Many`](crate::op::Many) passes it on to each
/// operation.
pub trait Namespaced: Sized {
    /// Prefixes every key the operation touches with `ns`.
    fn namespace(self, ns: &Namespace) -> Self;
}

/// Implements [`Namespaced`] through the type's inherent `namespace`:
/// `impl_namespaced!([generics] Type, ...)`.
macro_rules! impl_namespaced {
    ($([$($g:tt)*] $ty:ty),* $(,)?) => {$(
        impl<$($g)*> $crate::keys::Namespaced for $ty {
            fn namespace(self, ns: &$crate::keys::Namespace) -> Self {
                <$ty>::namespace(self, ns)
            }
        }
    )*};
}
pub(crate) use impl_namespaced;

/// For operations that keep their namespace in an `ns` field: the inherent
/// `namespace(ns)` that sets it, and [`Namespaced`]:
/// `namespaced!([generics] Type, ...)`.
macro_rules! namespaced {
    ($([$($g:tt)*] $ty:ty),* $(,)?) => {$(
        impl<$($g)*> $ty {
            /// Runs the operation in namespace `ns` (prefixes every key it touches).
            pub fn namespace(mut self, ns: &$crate::keys::Namespace) -> Self {
                self.ns = Some(ns.clone());
                self
            }
        }

        $crate::keys::impl_namespaced!([$($g)*] $ty);
    )*};
}
pub(crate) use namespaced;

// ---------------------------------------------------------------------------
// Id parts

/// The escaped parts of an id, in one buffer.
///
/// Parts are separated by `:` in [`IdBuf::joined`], which is also the form
/// redis-state stores in its indexes: since every part is escaped, the `:`
/// separators are unambiguous.
#[derive(Clone)]
pub struct IdBuf {
    buf: String,
    ends: [u32; MAX_ID_PARTS],
    len: u8,
}

impl Default for IdBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl IdBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        IdBuf {
            buf: String::new(),
            ends: [0; MAX_ID_PARTS],
            len: 0,
        }
    }

    /// Empties the buffer, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.len = 0;
    }

    fn start_part(&mut self) {
        if self.len > 0 {
            self.buf.push(':');
        }
    }

    fn end_part(&mut self) {
        let i = self.len as usize;
        if i < MAX_ID_PARTS {
            self.ends[i] = self.buf.len() as u32;
        }
        self.len = self.len.saturating_add(1);
    }

    /// Appends one part from text (escaped).
    pub fn push_str(&mut self, value: &str) {
        self.start_part();
        escape_into(&mut self.buf, value);
        self.end_part();
    }

    /// Appends one part from raw bytes (escaped).
    pub fn push_bytes(&mut self, value: &[u8]) {
        self.start_part();
        escape_bytes_into(&mut self.buf, value);
        self.end_part();
    }

    /// Appends one part that is already safe (digits, for example). Escapes
    /// anyway if it is not, so a wrong caller cannot break a key.
    pub fn push_safe(&mut self, value: &str) {
        self.push_str(value);
    }

    /// Appends an integer part.
    pub fn push_int<I: itoa::Integer>(&mut self, value: I) {
        self.start_part();
        self.buf.push_str(itoa::Buffer::new().format(value));
        self.end_part();
    }

    /// Number of parts.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when no part was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Part `i`, escaped.
    pub fn part(&self, i: usize) -> &str {
        if i >= self.len() || i >= MAX_ID_PARTS {
            return "";
        }
        let end = self.ends[i] as usize;
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] as usize + 1
        };
        &self.buf[start..end]
    }

    /// All parts joined by `:`.
    pub fn joined(&self) -> &str {
        &self.buf
    }

    /// The parts as they were given, unescaped, joined by `:`: the text of a
    /// verbatim key (`lock:resource:123`). Bytes that are not UTF-8 are
    /// replaced by U+FFFD.
    pub(crate) fn verbatim(&self) -> String {
        let mut out = String::with_capacity(self.buf.len());
        for i in 0..self.len().min(MAX_ID_PARTS) {
            if i > 0 {
                out.push(':');
            }
            let part = self.part(i);
            match unescape(part) {
                Some(raw) => out.push_str(&String::from_utf8_lossy(&raw)),
                None => out.push_str(part),
            }
        }
        out
    }

    /// Rebuilds a buffer from the joined form (as stored in indexes).
    pub fn from_joined(joined: &str) -> Self {
        let mut id = IdBuf::new();
        if joined.is_empty() {
            // One empty part: an empty id is still one id.
            id.end_part();
            return id;
        }
        id.buf.push_str(joined);
        for (i, b) in joined.bytes().enumerate() {
            if b == b':' {
                let n = id.len as usize;
                if n < MAX_ID_PARTS {
                    id.ends[n] = i as u32;
                }
                id.len = id.len.saturating_add(1);
            }
        }
        id.end_part();
        id
    }
}

impl fmt::Debug for IdBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries((0..self.len()).map(|i| self.part(i)))
            .finish()
    }
}

/// A value that can be one segment of a key (an id or an id part).
///
/// Implemented for strings, integers, `bool`, `char`, `uuid::Uuid` (feature
/// `uuid`), and by `#[derive(RedisField)]` for newtypes and unit enums.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as an id or key part",
    label = "not a key part",
    note = "ids can be strings, integers, bool, char, uuid::Uuid (feature `uuid`), or a newtype / unit enum with #[derive(RedisField)]"
)]
pub trait KeyPart {
    /// Appends this value as one escaped part.
    fn write_key_part(&self, out: &mut IdBuf);
}

impl<T: KeyPart + ?Sized> KeyPart for &T {
    fn write_key_part(&self, out: &mut IdBuf) {
        (**self).write_key_part(out)
    }
}

impl KeyPart for str {
    fn write_key_part(&self, out: &mut IdBuf) {
        out.push_str(self)
    }
}

impl KeyPart for String {
    fn write_key_part(&self, out: &mut IdBuf) {
        out.push_str(self)
    }
}

impl KeyPart for Box<str> {
    fn write_key_part(&self, out: &mut IdBuf) {
        out.push_str(self)
    }
}

impl KeyPart for Arc<str> {
    fn write_key_part(&self, out: &mut IdBuf) {
        out.push_str(self)
    }
}

impl KeyPart for [u8] {
    fn write_key_part(&self, out: &mut IdBuf) {
        out.push_bytes(self)
    }
}

impl KeyPart for Vec<u8> {
    fn write_key_part(&self, out: &mut IdBuf) {
        out.push_bytes(self)
    }
}

impl KeyPart for bool {
    fn write_key_part(&self, out: &mut IdBuf) {
        out.push_str(if *self { "true" } else { "false" })
    }
}

impl KeyPart for char {
    fn write_key_part(&self, out: &mut IdBuf) {
        out.push_str(self.encode_utf8(&mut [0; 4]))
    }
}

macro_rules! int_key_part {
    ($($t:ty),*) => {$(
        impl KeyPart for $t {
            #[inline]
            fn write_key_part(&self, out: &mut IdBuf) {
                out.push_int(*self)
            }
        }
    )*};
}
int_key_part!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

/// Hyphenated lowercase, as the field form writes it
/// (`user:550e8400-e29b-41d4-a716-446655440000`).
#[cfg(feature = "uuid")]
impl KeyPart for uuid::Uuid {
    fn write_key_part(&self, out: &mut IdBuf) {
        out.push_str(
            self.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        )
    }
}

/// A whole id: one [`KeyPart`], or a tuple of them for composite ids.
pub trait IdValue {
    /// Number of parts this id writes.
    const PARTS: usize;
    /// Appends every part, in order.
    fn write_id(&self, out: &mut IdBuf);
}

impl<T: KeyPart + ?Sized> IdValue for T {
    const PARTS: usize = 1;
    #[inline]
    fn write_id(&self, out: &mut IdBuf) {
        self.write_key_part(out)
    }
}

/// The empty scope, for models whose hash tag holds no id field.
impl IdValue for () {
    const PARTS: usize = 0;
    fn write_id(&self, _out: &mut IdBuf) {}
}

macro_rules! tuple_id {
    ($n:expr; $($name:ident . $idx:tt),+) => {
        impl<$($name: KeyPart),+> IdValue for ($($name,)+) {
            const PARTS: usize = $n;
            fn write_id(&self, out: &mut IdBuf) {
                $( self.$idx.write_key_part(out); )+
            }
        }
    };
}
tuple_id!(2; A.0, B.1);
tuple_id!(3; A.0, B.1, C.2);
tuple_id!(4; A.0, B.1, C.2, D.3);
tuple_id!(5; A.0, B.1, C.2, D.3, E.4);
tuple_id!(6; A.0, B.1, C.2, D.3, E.4, F.5);
tuple_id!(7; A.0, B.1, C.2, D.3, E.4, F.5, G.6);
tuple_id!(8; A.0, B.1, C.2, D.3, E.4, F.5, G.6, H.7);

// ---------------------------------------------------------------------------
// Templates

/// One segment of a key template, as generated by the derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg {
    /// Literal text (already unescaped from `{{` / `}}`).
    Lit(&'static str),
    /// Id part number `n`.
    Part(u8),
}

/// A key template: literal text and id parts, checked at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTemplate {
    /// The segments, in order.
    pub segs: &'static [Seg],
    /// How many leading segments form the *scope*: the part of the key up to
    /// and including its hash tag. Structures shared by several entities
    /// (indexes) live under the scope, so they share the entities' slot.
    /// `None` when the template has no hash tag.
    pub scope: Option<usize>,
    /// The namespace given in the attributes, used when the operation sets none.
    pub namespace: Option<&'static str>,
}

impl KeyTemplate {
    /// The template with no segments, scope or namespace: where the
    /// schemas' named construction starts.
    pub const EMPTY: KeyTemplate = KeyTemplate {
        segs: &[],
        scope: None,
        namespace: None,
    };
}

/// Writes the namespace prefix of a model's key: `ns:` for the namespace
/// an operation runs in, else the model's own `namespace = "..."`, else
/// nothing.
pub(crate) fn write_ns_prefix(ns: Option<&Namespace>, model_ns: Option<&str>, out: &mut String) {
    if let Some(ns) = ns {
        out.push_str(ns.as_str());
        out.push(':');
    } else if let Some(ns) = model_ns {
        out.push_str(ns);
        out.push(':');
    }
}

impl KeyTemplate {
    fn write_prefix(&self, ns: Option<&Namespace>, out: &mut String) {
        write_ns_prefix(ns, self.namespace, out);
    }

    fn write_segs(segs: &[Seg], id: &IdBuf, out: &mut String) {
        for seg in segs {
            match *seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Part(i) => out.push_str(id.part(i as usize)),
            }
        }
    }

    /// Renders the full key of the entity with `id`.
    pub fn render(&self, ns: Option<&Namespace>, id: &IdBuf) -> String {
        let mut out = String::with_capacity(32 + id.joined().len());
        self.render_into(ns, id, &mut out);
        out
    }

    /// [`render`](Self::render), appended to `out` (a buffer reused across
    /// calls).
    pub fn render_into(&self, ns: Option<&Namespace>, id: &IdBuf, out: &mut String) {
        self.write_prefix(ns, out);
        Self::write_segs(self.segs, id, out);
    }

    /// Renders the scope prefix (through the hash tag). `id` needs only the
    /// parts that appear in the scope.
    pub fn render_scope(&self, ns: Option<&Namespace>, id: &IdBuf) -> Option<String> {
        let n = self.scope?;
        let mut out = String::with_capacity(32);
        self.write_prefix(ns, &mut out);
        Self::write_segs(&self.segs[..n], id, &mut out);
        Some(out)
    }

    /// The id parts used inside the scope, in template order.
    pub fn scope_parts(&self) -> impl Iterator<Item = u8> + '_ {
        let n = self.scope.unwrap_or(0);
        self.segs[..n].iter().filter_map(|s| match s {
            Seg::Part(i) => Some(*i),
            Seg::Lit(_) => None,
        })
    }

    /// A `SCAN MATCH` pattern for every key of this template in `ns`.
    pub fn scan_pattern(&self, ns: Option<&Namespace>) -> String {
        let mut out = String::new();
        self.write_prefix(ns, &mut out);
        let mut glob = String::new();
        for seg in self.segs {
            match *seg {
                Seg::Lit(s) => glob.push_str(&glob_escape(s)),
                Seg::Part(_) => glob.push('*'),
            }
        }
        let mut pat = glob_escape(&out).into_owned();
        pat.push_str(&glob);
        pat
    }
}

// ---------------------------------------------------------------------------
// Cluster slots

/// The Redis Cluster hash slot of `key` (CRC16/XMODEM of the hash tag or of
/// the whole key, modulo 16384), as computed by `CLUSTER KEYSLOT`.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) % 16384
}

/// A key in `key`'s Cluster slot for a structure that belongs to `key`
/// (a fence counter, a lease), different for every `key`:
///
/// | `key` | result |
/// |---|---|
/// | with a hash tag: `a:{42}` | `a:{42}` + `tagged` |
/// | without one: `report` | `{report}` + `untagged` |
/// | without one, holding a `}` or empty: `a}b`, `lock:{}` | `{<n>}%` + `key` escaped + `untagged` |
///
/// In the last form `<n>` is the smallest decimal number in the slot of
/// `key` (a hash tag cannot hold a `}`, and an empty one is no tag: Redis
/// hashes `lock:{}` whole), and `key` follows it escaped like every user
/// value. The forms differ in what follows the first `}`, so two keys never
/// share a result as long as `untagged` does not start with `%`.
pub(crate) fn beside(key: &str, tagged: &str, untagged: &str) -> String {
    let bytes = key.as_bytes();
    if hash_tag(bytes).is_some() {
        return format!("{key}{tagged}");
    }
    if !key.is_empty() && !key.contains('}') {
        return format!("{{{key}}}{untagged}");
    }
    let mut out = format!("{{{}}}%", slot_tag(key_slot(bytes)));
    escape_into(&mut out, key);
    out.push_str(untagged);
    out
}

/// The smallest decimal number whose hash slot is `slot`: a hash tag that
/// puts a key in that slot. The table of all 16,384 is built on first use
/// (about 170,000 CRC16s of a few bytes).
pub(crate) fn slot_tag(slot: u16) -> u32 {
    static TAGS: std::sync::OnceLock<Box<[u32]>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; 16384].into_boxed_slice();
        let mut left = tags.len();
        let mut text = itoa::Buffer::new();
        let mut n = 0u32;
        while left > 0 && n < u32::MAX {
            let slot = usize::from(key_slot(text.format(n).as_bytes()));
            if tags[slot] == u32::MAX {
                tags[slot] = n;
                left -= 1;
            }
            n += 1;
        }
        tags
    });
    tags[usize::from(slot) % tags.len()]
}

/// The hash tag of `key` per the Redis Cluster rules: the bytes between the
/// first `{` and the first `}` after it, when that is not empty.
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = key[open + 1..].iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &key[open + 1..open + 1 + close])
}

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_a_tag() {
        for slot in 0..16384u16 {
            let tag = slot_tag(slot);
            assert_ne!(tag, u32::MAX, "slot {slot}");
            assert_eq!(key_slot(tag.to_string().as_bytes()), slot);
        }
    }

    #[test]
    fn beside_keeps_the_slot_and_tells_keys_apart() {
        let keys = [
            "a:{b}:c", "{a}", "a", "a{", "a}b", "", "}", "{}", "{}}", "lock:{}", "x:{}:y",
        ];
        let mut seen = std::collections::HashMap::new();
        for k in keys {
            let b = beside(k, ":#s", "#s");
            assert_eq!(
                key_slot(b.as_bytes()),
                key_slot(k.as_bytes()),
                "{k:?} -> {b:?}"
            );
            if let Some(prev) = seen.insert(b.clone(), k) {
                panic!("{prev:?} and {k:?} both give {b:?}");
            }
        }
        assert_eq!(beside("lock:{x}", ":#fence", "#fence"), "lock:{x}:#fence");
        assert_eq!(beside("lock:x", ":#fence", "#fence"), "{lock:x}#fence");
    }

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(hash_tag(b"foo{}{bar}"), None);
        assert_eq!(hash_tag(b"foo{{bar}}zap"), Some(&b"{bar"[..]));
        assert_eq!(hash_tag(b"foo{bar}{zap}"), Some(&b"bar"[..]));
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
    }

    /// The `crc16` crate gives what the bitwise definition gives (the
    /// checksum the hand-written table computed before).
    #[test]
    fn crc16_is_xmodem() {
        fn bitwise(data: &[u8]) -> u16 {
            let mut crc: u16 = 0;
            for &byte in data {
                crc ^= u16::from(byte) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 == 0 {
                        crc << 1
                    } else {
                        (crc << 1) ^ 0x1021
                    };
                }
            }
            crc
        }
        let mut data = Vec::new();
        for b in 0..=255u8 {
            data.push(b);
            assert_eq!(crc16(&[b]), bitwise(&[b]));
            assert_eq!(crc16(&data), bitwise(&data));
        }
    }

    #[test]
    fn namespaces_are_validated() {
        assert!(Namespace::new("tenant-7").is_ok());
        assert!(Namespace::new("app:prod").is_ok());
        for bad in [
            "",
            "a{b}",
            "a*",
            "a b",
            "a#",
            ":a",
            "a:",
            "a::b",
            "50%",
            "a\u{a0}b",
            "a\u{2028}",
        ] {
            assert!(Namespace::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn templates_render() {
        static SEGS: [Seg; 5] = [
            Seg::Lit("order:{"),
            Seg::Part(0),
            Seg::Lit("}"),
            Seg::Lit(":"),
            Seg::Part(1),
        ];
        let t = KeyTemplate {
            segs: &SEGS,
            scope: Some(3),
            namespace: None,
        };
        let mut id = IdBuf::new();
        ("acme:corp", 7u32).write_id(&mut id);
        assert_eq!(id.joined(), "acme%3Acorp:7");
        assert_eq!(t.render(None, &id), "order:{acme%3Acorp}:7");
        let ns = Namespace::new("t1").unwrap();
        assert_eq!(
            t.render_scope(Some(&ns), &id).unwrap(),
            "t1:order:{acme%3Acorp}"
        );
        assert_eq!(t.scan_pattern(None), "order:{*}:*");
        let back = IdBuf::from_joined(id.joined());
        assert_eq!(back.part(0), "acme%3Acorp");
        assert_eq!(back.part(1), "7");
    }
}
