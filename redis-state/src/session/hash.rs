//! Sessions as hashes, with per-field reads and writes.

use std::fmt;

use redis::Value;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserializer, Serialize};

use super::{
    Config, CreateSession, GetSession, Session, SessionId, Types, create_op, decode_error,
    format_created_at, now_micros, parse_created_at, store_settings, take_error,
};
use crate::error::{Error, Result};
use crate::keys::KeyPart;
use crate::op::{Operation, Plan, Replies, Step};

crate::script! {
    /// Creates a hash session unless the key exists; `true` when created.
    pub(crate) struct HashCreate {
        name: "redis_state.session.hash_create",
        keys: [session],
        args: [idle_ms: u64, ..fields],
        returns: bool,
        lua: include_str!("lua/hash_create.lua"),
    }
}

crate::script! {
    /// `HGETALL` plus `PEXPIRE` when the session exists.
    pub(crate) struct HashGet {
        name: "redis_state.session.hash_get",
        keys: [session],
        args: [idle_ms: u64],
        returns: Value,
        lua: include_str!("lua/hash_get.lua"),
    }
}

crate::script! {
    /// `HGET` of one field plus `PEXPIRE`, when the session exists.
    pub(crate) struct HashGetField {
        name: "redis_state.session.hash_get_field",
        keys: [session],
        args: [idle_ms: u64, field: &str],
        returns: Value,
        lua: include_str!("lua/hash_get_field.lua"),
    }
}

crate::script! {
    /// Sets and removes fields of an existing session, slides its expiry.
    pub(crate) struct HashWrite {
        name: "redis_state.session.hash_write",
        keys: [session],
        args: [idle_ms: u64, mode: &str, n: usize, ..fields],
        returns: bool,
        lua: include_str!("lua/hash_write.lua"),
    }
}

const RESERVED: [&str; 2] = ["user_id", "created_at"];

/// A session store that keeps each session as a hash at `session:<id>`:
/// `user_id`, `created_at` (Python's `isoformat()` of UTC time), and one
/// field per top-level field of `T`, strings as plain text, other values as
/// JSON (`42`, `true`, `["a","b"]`), `None` as an absent field. `T` must
/// serialize as a struct or map, and may not use the names `user_id` and
/// `created_at`.
///
/// Beyond what [`JsonSessions`](super::JsonSessions) offers, single fields
/// can be read ([`get_field`](HashSessions::get_field)) and written
/// ([`set_field`](HashSessions::set_field)) without touching the others, so
/// concurrent writers of different fields do not overwrite each other.
pub struct HashSessions<T, U = u64> {
    cfg: Config,
    _t: Types<T, U>,
}

store_settings!(HashSessions);

impl<T, U> HashSessions<T, U>
where
    T: Serialize + DeserializeOwned,
    U: Serialize + DeserializeOwned + KeyPart,
{
    /// Creates a session for `user_id` holding `data`, with a new random
    /// id. One round trip: one `EVALSHA` writing the hash (`HSET`,
    /// `PEXPIRE`) and, unless the store keeps [no
    /// index](HashSessions::user_index), one adding it to the user's index.
    pub fn create(&self, user_id: U, data: T) -> CreateHash<T, U> {
        let session = self.cfg.new_id().map(|id| Session {
            id,
            user_id,
            created_at: now_micros(),
            data,
        });
        CreateHash(CreateSession::new(
            &self.cfg,
            session,
            |session, key| {
                let mut fields = encode_fields(&session.data)?;
                fields.push(("user_id".to_owned(), plain(&session.user_id, "user_id")?));
                fields.push((
                    "created_at".to_owned(),
                    format_created_at(session.created_at).into_bytes(),
                ));
                let mut call = HashCreate::new(key, self.cfg.idle_ms());
                for (f, v) in &fields {
                    call = call.fields(f.as_str()).fields(v.as_slice());
                }
                Ok(Box::new(move |plan: &mut Plan| call.prepare(plan)))
            },
            |written| match written? {
                Value::Int(1) => Ok(true),
                Value::Int(0) => Ok(false),
                other => Err(Error::unexpected("the session create script", &other)),
            },
        ))
    }

    /// Reads session `id` and slides its expiry; `None` when there is no
    /// such session (or it is past its maximum lifetime: it is then deleted
    /// in a second round trip). One `EVALSHA` (`HGETALL`, `PEXPIRE`), one
    /// round trip. A field that does not decode is an [`Error::Decode`]
    /// naming the key and the field.
    pub fn get(&self, id: &str) -> GetHash<T, U> {
        GetHash(GetSession::new(&self.cfg, id))
    }

    /// Replaces the data of an existing session with `session.data` (fields
    /// `T` no longer has, or has as `None`, are removed; `user_id` and
    /// `created_at` stay) and slides the expiry; `false` when the session no
    /// longer exists. One `EVALSHA`, one round trip, atomic.
    pub fn update(&self, session: &Session<T, U>) -> SetField {
        let call = encode_fields(&session.data).map(|fields| {
            let mut call = HashWrite::new(
                self.cfg.key(session.id.as_str()).unwrap_or_default(),
                self.cfg.idle_ms(),
                "replace",
                fields.len(),
            );
            for (f, v) in &fields {
                call = call.fields(f.as_str()).fields(v.as_slice());
            }
            call
        });
        SetField::new(self.cfg.key(session.id.as_str()).map(|_| call))
    }

    /// Reads one field of session `id` and slides the session's expiry;
    /// `None` when the session or the field is absent. One `EVALSHA`
    /// (`PEXPIRE`, `HGET`), one round trip. `user_id` and `created_at` read
    /// as strings.
    pub fn get_field<V: DeserializeOwned>(&self, id: &str, field: &str) -> GetField<V> {
        GetField {
            call: self
                .cfg
                .key(id)
                .map(|key| HashGetField::new(&key, self.cfg.idle_ms(), field)),
            key: self.cfg.key(id).unwrap_or_default(),
            field: field.to_owned(),
            _v: std::marker::PhantomData,
        }
    }

    /// Sets one field of an existing session (a `None` value removes it)
    /// and slides its expiry; `false` when there is no session (none is
    /// created). One `EVALSHA` (`HSET` or `HDEL`, `PEXPIRE`), one round
    /// trip. `user_id` and `created_at` cannot be set.
    pub fn set_field<V: Serialize + ?Sized>(&self, id: &str, field: &str, value: &V) -> SetField {
        let call = if RESERVED.contains(&field) {
            Err(Error::InvalidConfig {
                what: "session field",
                reason: format!("`{field}` is kept by the store and cannot be set"),
            })
        } else {
            encode_value(value, field).map(|encoded| {
                let key = self.cfg.key(id).unwrap_or_default();
                match encoded {
                    Some(v) => HashWrite::new(key, self.cfg.idle_ms(), "patch", 1)
                        .fields(field)
                        .fields(v),
                    None => HashWrite::new(key, self.cfg.idle_ms(), "patch", 0).fields(field),
                }
            })
        };
        SetField::new(self.cfg.key(id).map(|_| call))
    }
}

// ---------------------------------------------------------------------------
// Field encoding: strings plain, other values JSON, None absent

fn encode_value<V: Serialize + ?Sized>(value: &V, field: &str) -> Result<Option<Vec<u8>>> {
    let v = serde_json::to_value(value).map_err(|e| Error::Encode {
        model: "session",
        field: "data",
        message: format!("field `{field}`: {e}"),
    })?;
    Ok(match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.into_bytes()),
        other => Some(other.to_string().into_bytes()),
    })
}

fn plain<V: Serialize>(value: &V, field: &str) -> Result<Vec<u8>> {
    encode_value(value, field)?.ok_or_else(|| Error::Encode {
        model: "session",
        field: "user_id",
        message: "the user id must not be null".to_owned(),
    })
}

fn encode_fields<T: Serialize>(data: &T) -> Result<Vec<(String, Vec<u8>)>> {
    let v = serde_json::to_value(data).map_err(|e| Error::Encode {
        model: "session",
        field: "data",
        message: e.to_string(),
    })?;
    let serde_json::Value::Object(map) = v else {
        return Err(Error::Encode {
            model: "session",
            field: "data",
            message: "hash sessions need data that serializes as a struct or map".to_owned(),
        });
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        if RESERVED.contains(&name.as_str()) {
            return Err(Error::Encode {
                model: "session",
                field: "data",
                message: format!("the field name `{name}` is kept by the store"),
            });
        }
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => out.push((name, s.into_bytes())),
            other => out.push((name, other.to_string().into_bytes())),
        }
    }
    Ok(out)
}

/// A hash field's text as a serde deserializer: strings (and chars,
/// identifiers, bytes) are the text itself; everything else parses the text
/// as JSON.
struct FieldText<'a>(&'a str);

macro_rules! forward_to_json {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, Self::Error> {
            let mut de = serde_json::Deserializer::from_str(self.0);
            let v = de.$method(visitor)?;
            de.end()?;
            Ok(v)
        }
    )*};
}

impl<'de> Deserializer<'de> for FieldText<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        if is_json(self.0) {
            let mut de = serde_json::Deserializer::from_str(self.0);
            de.deserialize_any(visitor)
        } else {
            visitor.visit_borrowed_str(self.0)
        }
    }

    fn deserialize_str<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_string<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_char<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_identifier<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_bytes<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_borrowed_bytes(self.0.as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_borrowed_bytes(self.0.as_bytes())
    }

    fn deserialize_option<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        // a present field is Some; absent fields are None
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        if is_json(self.0) {
            let mut de = serde_json::Deserializer::from_str(self.0);
            de.deserialize_enum(name, variants, visitor)
        } else {
            // a unit variant, written as its plain name
            let de: de::value::StrDeserializer<'_, serde_json::Error> = self.0.into_deserializer();
            de.deserialize_enum(name, variants, visitor)
        }
    }

    forward_to_json! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_unit deserialize_seq
        deserialize_map deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let mut de = serde_json::Deserializer::from_str(self.0);
        de.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let mut de = serde_json::Deserializer::from_str(self.0);
        de.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let mut de = serde_json::Deserializer::from_str(self.0);
        de.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let mut de = serde_json::Deserializer::from_str(self.0);
        de.deserialize_struct(name, fields, visitor)
    }
}

fn is_json(text: &str) -> bool {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de::IgnoredAny::deserialize(&mut de).is_ok() && de.end().is_ok()
}

/// The data fields of a hash session as a serde map; remembers which field
/// failed to decode.
struct FieldsDeserializer<'a> {
    fields: &'a [(String, String)],
    failed: &'a std::cell::Cell<Option<usize>>,
}

struct FieldsAccess<'a> {
    fields: &'a [(String, String)],
    next: usize,
    failed: &'a std::cell::Cell<Option<usize>>,
}

impl<'de> de::MapAccess<'de> for FieldsAccess<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, Self::Error> {
        match self.fields.get(self.next) {
            Some((name, _)) => seed.deserialize(FieldText(name)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let i = self.next;
        self.next += 1;
        let (_, value) = self
            .fields
            .get(i)
            .ok_or_else(|| de::Error::custom("a value without a field"))?;
        seed.deserialize(FieldText(value)).inspect_err(|_| {
            self.failed.set(Some(i));
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.next)
    }
}

impl<'de> Deserializer<'de> for FieldsDeserializer<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_map(FieldsAccess {
            fields: self.fields,
            next: 0,
            failed: self.failed,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for FieldText<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// Reads the fields of one session hash (an `HGETALL` reply).
fn decode_hash<T: DeserializeOwned, U: DeserializeOwned>(
    key: &str,
    id: &str,
    v: &Value,
) -> Result<Option<Session<T, U>>> {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = match v {
        Value::Array(items) if items.is_empty() => return Ok(None),
        Value::Map(items) if items.is_empty() => return Ok(None),
        other => redis::FromRedisValue::from_redis_value_ref(other)
            .map_err(|_| Error::unexpected("HGETALL", other))?,
    };
    let mut user_id = None;
    let mut created_at = None;
    let mut data = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = String::from_utf8(name)
            .map_err(|e| decode_error(key, None, "UTF-8 field names", e.as_bytes(), "not UTF-8"))?;
        let text = String::from_utf8(value)
            .map_err(|e| decode_error(key, Some(&name), "UTF-8 text", e.as_bytes(), "not UTF-8"))?;
        match name.as_str() {
            "user_id" => user_id = Some(text),
            "created_at" => created_at = Some(text),
            _ => data.push((name, text)),
        }
    }
    let user_id = user_id.ok_or_else(|| {
        Error::from(crate::error::DecodeError::new(
            key,
            Some("user_id"),
            "a user id",
            None,
        ))
    })?;
    let user_id: U = de::Deserialize::deserialize(FieldText(&user_id))
        .map_err(|e| decode_error(key, Some("user_id"), "a user id", user_id.as_bytes(), e))?;
    let created_raw = created_at.unwrap_or_default();
    let created_at = parse_created_at(&created_raw).ok_or_else(|| {
        decode_error(
            key,
            Some("created_at"),
            "an ISO 8601 time",
            created_raw.as_bytes(),
            "neither naive ISO 8601 (Python's isoformat) nor RFC 3339",
        )
    })?;
    let failed = std::cell::Cell::new(None);
    let data: T = de::Deserialize::deserialize(FieldsDeserializer {
        fields: &data,
        failed: &failed,
    })
    .map_err(|e| field_error(key, &data, failed.get(), e))?;
    Ok(Some(Session {
        id: SessionId::from(id),
        user_id,
        created_at,
        data,
    }))
}

/// Names the field a serde error is about: the one that failed to decode,
/// or the one serde reports missing.
fn field_error(
    key: &str,
    fields: &[(String, String)],
    failed: Option<usize>,
    e: serde_json::Error,
) -> Error {
    const EXPECTED: &str = "a value of the session data type";
    let msg = e.to_string();
    if let Some((name, value)) = failed.and_then(|i| fields.get(i)) {
        return decode_error(key, Some(name), EXPECTED, value.as_bytes(), msg);
    }
    let missing = msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    crate::error::DecodeError::new(key, missing, EXPECTED, None)
        .with_detail(msg.clone())
        .into()
}

// ---------------------------------------------------------------------------
// Operations

/// See [`HashSessions::create`]. The output is the new session.
#[must_use = "an operation does nothing until it is run"]
pub struct CreateHash<T, U>(CreateSession<T, U>);

create_op!(CreateHash);

/// See [`HashSessions::get`].
#[must_use = "an operation does nothing until it is run"]
pub struct GetHash<T, U>(GetSession<T, U>);

impl<T, U> fmt::Debug for GetHash<T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_debug("GetHash", f)
    }
}

impl<T: DeserializeOwned, U: DeserializeOwned> Operation for GetHash<T, U> {
    type Output = Option<Session<T, U>>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.0.prepare(plan, |plan, key, idle_ms| {
            HashGet::new(key, idle_ms).prepare(plan)
        })
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        self.0
            .complete(replies, |key, id, reply| decode_hash(key, &id, &reply))
    }
}

/// See [`HashSessions::get_field`].
#[must_use = "an operation does nothing until it is run"]
pub struct GetField<V> {
    call: Option<HashGetField>,
    key: String,
    field: String,
    _v: std::marker::PhantomData<fn() -> V>,
}

impl<V> fmt::Debug for GetField<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetField")
            .field("key", &self.key)
            .field("field", &self.field)
            .finish()
    }
}

impl<V: DeserializeOwned> Operation for GetField<V> {
    type Output = Option<V>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &mut self.call {
            Some(call) => call.prepare(plan),
            None => Ok(()),
        }
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Option<V>>> {
        if self.call.is_none() {
            return Ok(Step::Done(None));
        }
        let v = replies.next_value()?;
        let raw: Option<Vec<u8>> = match &v {
            Value::Array(items) => match &items[..] {
                [Value::Int(0)] => None,
                [Value::Int(1), Value::Nil] => None,
                [Value::Int(1), Value::BulkString(b)] => Some(b.clone()),
                _ => return Err(Error::unexpected("the session field script", &v)),
            },
            _ => return Err(Error::unexpected("the session field script", &v)),
        };
        let Some(raw) = raw else {
            return Ok(Step::Done(None));
        };
        let text = std::str::from_utf8(&raw)
            .map_err(|e| decode_error(&self.key, Some(&self.field), "UTF-8 text", &raw, e))?;
        V::deserialize(FieldText(text))
            .map(|v| Step::Done(Some(v)))
            .map_err(|e| {
                decode_error(
                    &self.key,
                    Some(&self.field),
                    std::any::type_name::<V>(),
                    &raw,
                    e,
                )
            })
    }
}

/// See [`HashSessions::set_field`] and [`HashSessions::update`]. The output
/// says whether the session existed (and was written).
#[must_use = "an operation does nothing until it is run"]
pub struct SetField {
    call: Option<Result<HashWrite>>,
}

impl fmt::Debug for SetField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetField").finish_non_exhaustive()
    }
}

impl SetField {
    fn new(call: Option<Result<HashWrite>>) -> Self {
        SetField { call }
    }
}

impl Operation for SetField {
    type Output = bool;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        match &mut self.call {
            None => Ok(()),
            Some(Ok(call)) => call.prepare(plan),
            Some(Err(e)) => Err(take_error(e)),
        }
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        match &mut self.call {
            None => Ok(Step::Done(false)),
            Some(Ok(call)) => call.complete(replies),
            Some(Err(_)) => Ok(Step::Done(false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Theme {
        Dark,
        Light,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Data {
        name: String,
        digits: String,
        visits: u32,
        ratio: f64,
        admin: bool,
        theme: Theme,
        tags: Vec<String>,
        note: Option<String>,
    }

    #[test]
    fn fields_round_trip_as_plain_text() {
        let d = Data {
            name: "Zoë".into(),
            digits: "0042".into(),
            visits: 7,
            ratio: 0.5,
            admin: true,
            theme: Theme::Dark,
            tags: vec!["a".into()],
            note: None,
        };
        let fields: Vec<(String, String)> = encode_fields(&d)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect();
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("name"), Some("Zoë"));
        assert_eq!(get("digits"), Some("0042"));
        assert_eq!(get("visits"), Some("7"));
        assert_eq!(get("admin"), Some("true"));
        assert_eq!(get("theme"), Some("Dark"));
        assert_eq!(get("tags"), Some(r#"["a"]"#));
        assert_eq!(get("note"), None);
        let back: Data = de::Deserialize::deserialize(FieldsDeserializer {
            fields: &fields,
            failed: &std::cell::Cell::new(None),
        })
        .unwrap();
        assert_eq!(back, d);
    }
}
