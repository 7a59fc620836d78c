//! Sessions as one JSON document, in the conventional layout.

use std::fmt;
use std::io;

use redis::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    Config, CreateSession, GetSession, Session, SessionId, Types, create_op, decode_error,
    format_created_at, now_micros, parse_created_at, store_settings, take_error,
};
use crate::error::{Error, Result};
use crate::keys::KeyPart;
use crate::op::{Operation, Plan, Replies, Step};

/// A session store that keeps each session as one JSON string at
/// `session:<id>`:
///
/// ```json
/// {"user_id": 42, "created_at": "2024-05-01T12:00:00.123456", "data": {"cart": [1, 2]}}
/// ```
///
/// This is what the Python `SessionManager` pattern (`json.dumps` of
/// `user_id`, `created_at` from `datetime.utcnow().isoformat()`, `data`)
/// writes, byte for byte: the same key order, `", "` and `": "` separators,
/// non-ASCII text as `\uXXXX`, floats as Python prints them. Sessions written
/// by either side read on the other. (`NaN` and infinities, which Python
/// writes as non-standard JSON, are written as `null`.)
///
/// `T` is your data (any serde type); `U` the user id (any serde type that
/// can be a key part: integers, strings).
pub struct JsonSessions<T, U = u64> {
    cfg: Config,
    _t: Types<T, U>,
}

store_settings!(JsonSessions);

impl<T, U> JsonSessions<T, U>
where
    T: Serialize + DeserializeOwned,
    U: Serialize + DeserializeOwned + KeyPart,
{
    /// Creates a session for `user_id` holding `data`, with a new random
    /// id. One round trip: `SET NX PX` of the document and, unless the
    /// store keeps [no index](JsonSessions::user_index), one `EVALSHA`
    /// adding it to the user's index (`ZADD`, `ZREMRANGEBYSCORE`,
    /// `PEXPIRE`).
    pub fn create(&self, user_id: U, data: T) -> CreateJson<T, U> {
        let created = self.cfg.new_id().map(|id| Session {
            id,
            user_id,
            created_at: now_micros(),
            data,
        });
        CreateJson::new(&self.cfg, created)
    }

    /// Reads session `id` and slides its expiry; `None` when there is no
    /// such session (or it is past its maximum lifetime: it is then deleted
    /// in a second round trip). One `GETEX PX`, one round trip. Data that
    /// is not a session document is a [`Error::Decode`] naming the key.
    pub fn get(&self, id: &str) -> GetJson<T, U> {
        GetJson(GetSession::new(&self.cfg, id))
    }

    /// Replaces the stored session with `session` (its data, normally) and
    /// slides the expiry; `false` when the session no longer exists (it is
    /// not recreated). One `SET XX PX`, one round trip. Concurrent updates
    /// of one session: the last one wins; keep fields that change
    /// independently in [`HashSessions`](super::HashSessions).
    pub fn update(&self, session: &Session<T, U>) -> UpdateJson {
        UpdateJson {
            key: self.cfg.key(session.id.as_str()),
            doc: encode_document(&session.user_id, session.created_at, &session.data),
            idle_ms: self.cfg.idle_ms(),
        }
    }
}

/// The document, serialized in Python's `json.dumps` format.
fn encode_document<T: Serialize, U: Serialize>(
    user_id: &U,
    created_at: chrono::DateTime<chrono::Utc>,
    data: &T,
) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Doc<'a, T, U> {
        user_id: &'a U,
        created_at: String,
        data: &'a T,
    }
    let doc = Doc {
        user_id,
        created_at: format_created_at(created_at),
        data,
    };
    to_python_json(&doc).map_err(|e| Error::Encode {
        model: "session",
        field: "data",
        message: e.to_string(),
    })
}

const EXPECTED: &str = "a session document {\"user_id\", \"created_at\", \"data\"}";

fn decode_document<T: DeserializeOwned, U: DeserializeOwned>(
    key: &str,
    id: String,
    raw: &[u8],
) -> Result<Session<T, U>> {
    #[derive(Deserialize)]
    struct Doc<T, U> {
        user_id: U,
        created_at: String,
        data: T,
    }
    let doc: Doc<T, U> =
        serde_json::from_slice(raw).map_err(|e| decode_error(key, None, EXPECTED, raw, e))?;
    let created_at = parse_created_at(&doc.created_at).ok_or_else(|| {
        decode_error(
            key,
            Some("created_at"),
            "an ISO 8601 time",
            doc.created_at.as_bytes(),
            "neither naive ISO 8601 (Python's isoformat) nor RFC 3339",
        )
    })?;
    Ok(Session {
        id: SessionId::from(id),
        user_id: doc.user_id,
        created_at,
        data: doc.data,
    })
}

// ---------------------------------------------------------------------------
// Operations

/// See [`JsonSessions::create`]. The output is the new session.
#[must_use = "an operation does nothing until it is run"]
pub struct CreateJson<T, U>(CreateSession<T, U>);

create_op!(CreateJson);

impl<T: Serialize, U: Serialize + KeyPart> CreateJson<T, U> {
    fn new(cfg: &Config, session: Result<Session<T, U>>) -> Self {
        let idle = cfg.idle_ms();
        CreateJson(CreateSession::new(
            cfg,
            session,
            |s, key| {
                let doc = encode_document(&s.user_id, s.created_at, &s.data)?;
                let key = key.to_owned();
                Ok(Box::new(move |plan: &mut Plan| {
                    plan.cmd("SET", &key).arg(doc).arg("PX").arg(idle).arg("NX");
                    Ok(())
                }))
            },
            |written| match written? {
                Value::Okay => Ok(true),
                Value::Nil => Ok(false),
                other => Err(Error::unexpected("SET", &other)),
            },
        ))
    }
}

/// See [`JsonSessions::get`].
#[must_use = "an operation does nothing until it is run"]
pub struct GetJson<T, U>(GetSession<T, U>);

impl<T, U> fmt::Debug for GetJson<T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_debug("GetJson", f)
    }
}

impl<T: DeserializeOwned, U: DeserializeOwned> Operation for GetJson<T, U> {
    type Output = Option<Session<T, U>>;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        self.0.prepare(plan, |plan, key, idle_ms| {
            plan.cmd("GETEX", key).arg("PX").arg(idle_ms);
            Ok(())
        })
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<Self::Output>> {
        self.0.complete(replies, |key, id, reply| match reply {
            Value::Nil => Ok(None),
            Value::BulkString(raw) => decode_document(key, id, &raw).map(Some),
            other => Err(Error::unexpected("GETEX", &other)),
        })
    }
}

/// See [`JsonSessions::update`]. The output says whether the session
/// existed (and was updated).
#[must_use = "an operation does nothing until it is run"]
pub struct UpdateJson {
    key: Option<String>,
    doc: Result<Vec<u8>>,
    idle_ms: u64,
}

impl fmt::Debug for UpdateJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateJson")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Operation for UpdateJson {
    type Output = bool;

    fn prepare(&mut self, plan: &mut Plan) -> Result<()> {
        let doc = match &mut self.doc {
            Ok(doc) => doc,
            Err(e) => return Err(take_error(e)),
        };
        if let Some(key) = &self.key {
            plan.cmd("SET", key)
                .arg(&doc[..])
                .arg("PX")
                .arg(self.idle_ms)
                .arg("XX");
        }
        Ok(())
    }

    fn complete(&mut self, replies: &mut Replies) -> Result<Step<bool>> {
        if self.key.is_none() {
            return Ok(Step::Done(false));
        }
        match replies.next_value()? {
            Value::Okay => Ok(Step::Done(true)),
            Value::Nil => Ok(Step::Done(false)),
            other => Err(Error::unexpected("SET", &other)),
        }
    }
}

// ---------------------------------------------------------------------------
// Python's json.dumps format

/// Serializes `value` exactly as Python's `json.dumps(value)` with default
/// arguments would: `", "` and `": "` separators, every non-ASCII character
/// (and DEL) as a `\uXXXX` escape, floats in Python's `repr` form.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return w.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                w.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        write_python_float(w, value)
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        // Python has only doubles; an f32 is written as the double it is.
        write_python_float(w, f64::from(value))
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip (as `ryu`
/// finds them), fixed notation for exponents -4 ..= 15, otherwise
/// `d.ddde+XX`.
fn write_python_float<W: ?Sized + io::Write>(w: &mut W, value: f64) -> io::Result<()> {
    if !value.is_finite() {
        // serde_json writes null before it gets here; never NaN in JSON.
        return w.write_all(b"null");
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(value);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // value = 0.DIGITS × 10^point
    let mut digits: String = format!("{int_part}{frac_part}");
    let mut point = int_part.len() as i32 + exp;
    let leading = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..leading);
    point -= leading as i32;
    let trimmed = digits.trim_end_matches('0').len();
    digits.truncate(trimmed);
    if negative {
        w.write_all(b"-")?;
    }
    if digits.is_empty() {
        return w.write_all(b"0.0");
    }
    let exp10 = point - 1;
    if (-4..16).contains(&exp10) {
        if point <= 0 {
            write!(w, "0.{}{digits}", "0".repeat((-point) as usize))
        } else if digits.len() as i32 <= point {
            write!(
                w,
                "{digits}{}.0",
                "0".repeat((point - digits.len() as i32) as usize)
            )
        } else {
            let (a, b) = digits.split_at(point as usize);
            write!(w, "{a}.{b}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let sign = if exp10 < 0 { '-' } else { '+' };
        if rest.is_empty() {
            write!(w, "{first}e{sign}{:02}", exp10.abs())
        } else {
            write!(w, "{first}.{rest}e{sign}{:02}", exp10.abs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(v: f64) -> String {
        let mut out = Vec::new();
        write_python_float(&mut out, v).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Expected strings are Python 3's `repr(float)`.
    #[test]
    fn floats_as_python_prints_them() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456789.0, "123456789.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (std::f64::consts::PI, "3.141592653589793"),
            (100.0, "100.0"),
            (0.30000000000000004, "0.30000000000000004"),
        ];
        for (v, want) in cases {
            assert_eq!(py(*v), *want, "{v:e}");
        }
    }

    /// Expected bytes are what Python 3's `json.dumps` prints for the same
    /// value.
    #[test]
    fn documents_as_json_dumps_writes_them() {
        let v = serde_json::json!({
            "user_id": 42,
            "created_at": "2024-05-01T12:00:00.123456",
            "data": {"name": "Zoë 🦀", "tags": ["a", "b"], "n": 1.0, "ok": true, "none": null, "ctl": "\u{7f}\n\t\u{1}\"\\/"}
        });
        let out = String::from_utf8(to_python_json(&v).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"created_at": "2024-05-01T12:00:00.123456", "data": {"ctl": "\u007f\n\t\u0001\"\\/", "n": 1.0, "name": "Zo\u00eb \ud83e\udd80", "none": null, "ok": true, "tags": ["a", "b"]}, "user_id": 42}"#
        );
        // serde_json writes non-finite floats as null (Python would write
        // the non-standard NaN).
        assert_eq!(to_python_json(&f64::NAN).unwrap(), b"null");
    }
}
