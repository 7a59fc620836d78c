//! Member data: the struct's other fields, as one JSON object per member in a
//! hash beside the board (called by generated code).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{DecodeError, Error, Result, preview_bytes};

/// Writes the member data of one entry as a JSON object.
#[derive(Debug)]
pub struct DataWriter {
    model: &'static str,
    buf: Vec<u8>,
    first: bool,
}

impl DataWriter {
    /// A writer appending to `buf` (which it hands back with
    /// [`DataWriter::finish`]), so that many entries share one buffer.
    pub(crate) fn new_in(model: &'static str, mut buf: Vec<u8>) -> Self {
        buf.push(b'{');
        DataWriter {
            model,
            buf,
            first: true,
        }
    }

    /// Writes field `name` (the JSON key) of Rust field `rust_name`.
    pub fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        rust_name: &'static str,
        value: &T,
    ) -> Result<()> {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        let model = self.model;
        let fail = |e: serde_json::Error| Error::Encode {
            model,
            field: rust_name,
            message: e.to_string(),
        };
        serde_json::to_writer(&mut self.buf, name).map_err(fail)?;
        self.buf.push(b':');
        serde_json::to_writer(&mut self.buf, value).map_err(fail)
    }

    /// Writes an `Option` field: `None` leaves the key out.
    pub fn opt_field<T: Serialize>(
        &mut self,
        name: &'static str,
        rust_name: &'static str,
        value: &Option<T>,
    ) -> Result<()> {
        match value {
            Some(v) => self.field(name, rust_name, v),
            None => Ok(()),
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }
}

/// Reads the member data of one entry (generated code calls it). The key and
/// member it names in errors are borrowed, and only formatted on an error.
#[derive(Debug)]
pub struct DataReader<'a> {
    map: Map<String, Value>,
    key: &'a str,
    member: &'a [u8],
}

fn member_error(key: &str, member: &[u8], raw: &[u8], detail: impl std::fmt::Display) -> Error {
    DecodeError::new(
        key,
        Some(&preview_bytes(member)),
        "member data (a JSON object)",
        Some(raw),
    )
    .with_detail(detail)
    .into()
}

impl<'a> DataReader<'a> {
    /// Parses a stored JSON object; `key` and `member` name it in errors.
    pub(crate) fn parse(raw: &[u8], key: &'a str, member: &'a [u8]) -> Result<Self> {
        match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(map)) => Ok(DataReader { map, key, member }),
            Ok(_) => Err(member_error(key, member, raw, "not a JSON object")),
            Err(e) => Err(member_error(key, member, raw, e)),
        }
    }

    fn error(&self, name: &str, found: Option<&Value>, detail: Option<String>) -> Error {
        let found = found.map(|v| v.to_string());
        let mut e = DecodeError::new(
            self.key,
            Some(&format!("{}.{name}", preview_bytes(self.member))),
            "member data field",
            found.as_deref().map(str::as_bytes),
        );
        e.detail = detail;
        e.into()
    }

    /// Field `name`; absent is an error.
    pub fn get<T: DeserializeOwned>(&mut self, name: &str) -> Result<T> {
        match self.map.get(name) {
            // Deserializing from a reference keeps the value for the error.
            Some(v) => {
                T::deserialize(v).map_err(|e| self.error(name, Some(v), Some(e.to_string())))
            }
            None => Err(self.error(name, None, None)),
        }
    }

    /// Field `name`, or `default()` when it is absent (or `null`).
    pub fn get_or<T: DeserializeOwned>(
        &mut self,
        name: &str,
        default: impl FnOnce() -> T,
    ) -> Result<T> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(default()),
            Some(_) => self.get(name),
        }
    }
}
