//! Reading reply values: the helpers the collections and the leaderboards
//! share.

use redis::Value;

use crate::error::{Error, Result};

/// The bytes of a bulk or simple string reply.
pub(crate) fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A number: a RESP3 double, an integer, or a string that parses as one.
pub(crate) fn num_of(v: &Value) -> Option<f64> {
    match v {
        Value::Double(d) => Some(*d),
        Value::Int(i) => Some(*i as f64),
        other => std::str::from_utf8(bytes_of(other)?).ok()?.parse().ok(),
    }
}

/// Member/score pairs of a `WITHSCORES` read (the items of its array):
/// flat in RESP2, nested in RESP3.
pub(crate) fn score_pairs(items: Vec<Value>, context: &'static str) -> Result<Vec<(Value, Value)>> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(first) = it.next() {
        match first {
            Value::Array(pair) if pair.len() == 2 => {
                let mut p = pair.into_iter();
                if let (Some(m), Some(s)) = (p.next(), p.next()) {
                    out.push((m, s));
                }
            }
            m => {
                let s = it.next().ok_or_else(|| Error::UnexpectedReply {
                    context,
                    found: "an odd number of items".to_owned(),
                })?;
                out.push((m, s));
            }
        }
    }
    Ok(out)
}
