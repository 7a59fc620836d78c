//! `export` and `import`: a hash model's entities as JSON lines, one object
//! per entity: `{"key": "...", "ttl_ms": 1234 | null, "fields": {...}}`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use indicatif::ProgressBar;
use redis_state::driver::Io;
use redis_state::monitor::stats::{ModelSpec, scan_each};
use redis_state::op::{Operation, Plan, Replies, Step, command, many};
use redis_state::script::Script;
use redis_state::{Error, batch};
use serde::{Deserialize, Serialize};

use crate::{Con, with_io};

/// One exported entity.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Line {
    key: String,
    ttl_ms: Option<i64>,
    fields: BTreeMap<String, String>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn export_with<I: Io>(
    io: &mut I,
    pattern: &str,
    (count, max): (usize, u64),
    out: &mut dyn Write,
    bar: &ProgressBar,
) -> redis_state::Result<u64> {
    let mut n = 0u64;
    scan_each(
        io,
        pattern,
        count,
        async |io: &mut I, _node, keys: Vec<String>| {
            let keys: Vec<String> = keys.into_iter().filter(|k| !k.contains('#')).collect();
            let (hashes, ttls) = io
                .run(batch((
                    many(
                        keys.iter()
                            .map(|k| command::<BTreeMap<Vec<u8>, Vec<u8>>>("HGETALL", k).settled()),
                    ),
                    many(keys.iter().map(|k| command::<i64>("PTTL", k))),
                )))
                .await?;
            for ((key, fields), ttl) in keys.iter().zip(hashes).zip(ttls) {
                // Another type under the pattern, or gone since the scan.
                let Ok(fields) = fields else { continue };
                if fields.is_empty() || n >= max {
                    continue;
                }
                let line = Line {
                    key: key.clone(),
                    ttl_ms: (ttl >= 0).then_some(ttl),
                    fields: fields.iter().map(|(k, v)| (lossy(k), lossy(v))).collect(),
                };
                serde_json::to_writer(&mut *out, &line).map_err(Error::user)?;
                out.write_all(b"\n").map_err(Error::user)?;
                n += 1;
            }
            bar.set_message(format!("{n} entities"));
            bar.tick();
            Ok(n < max)
        },
    )
    .await?;
    out.flush().map_err(Error::user)?;
    Ok(n)
}

/// Writes every entity of `spec` (keys holding `#` are the library's own
/// companions and are skipped).
pub(crate) fn export(
    con: &mut Con,
    spec: &ModelSpec,
    path: Option<&Path>,
    scan: &(usize, u64),
    bar: &ProgressBar,
) -> Result<u64, String> {
    let mut out: Box<dyn Write> = match path {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let pattern = spec.shape.pattern();
    with_io!(con, |io| export_with(io, &pattern, *scan, &mut *out, bar)).map_err(|e| e.to_string())
}

/// Replaces a hash in one step: `DEL`, `HSET` of every field, `PEXPIRE`
/// when the line has a TTL. ARGV: ttl ms (0: none), then field, value, ...
static IMPORT: Script = Script::new(
    "redis_state_cli.import",
    r#"
redis.call('DEL', KEYS[1])
local i = 2
while i < #ARGV do
  local last = math.min(i + 199, #ARGV)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, last))
  i = last + 1
end
local ttl = tonumber(ARGV[1])
if ttl and ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"#,
);

struct Put(Option<Line>);

impl Operation for Put {
    type Output = ();
    fn prepare(&mut self, plan: &mut Plan) -> redis_state::Result<()> {
        if let Some(line) = self.0.take() {
            let cmd = plan.script(&IMPORT, &[&line.key])?;
            cmd.arg(line.ttl_ms.unwrap_or(0).max(0));
            for (f, v) in &line.fields {
                cmd.arg(f).arg(v);
            }
        }
        Ok(())
    }
    fn complete(&mut self, replies: &mut Replies) -> redis_state::Result<Step<()>> {
        replies.next::<i64>("an import").map(|_| Step::Done(()))
    }
}

/// Reads JSON lines and writes each entity; returns how many.
pub(crate) fn import(
    con: &mut Con,
    path: Option<&Path>,
    rename: Option<(String, String)>,
    batch_size: usize,
    bar: &ProgressBar,
) -> Result<u64, String> {
    let input: Box<dyn BufRead> = match path {
        Some(p) => {
            let file = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            if let Ok(meta) = file.metadata() {
                crate::bytes_bar(bar, meta.len());
            }
            Box::new(BufReader::new(file))
        }
        None => Box::new(BufReader::new(std::io::stdin().lock())),
    };
    let mut pending = Vec::with_capacity(batch_size);
    let mut n = 0u64;
    let mut flush = |pending: &mut Vec<Line>, n: &mut u64| -> Result<(), String> {
        if pending.is_empty() {
            return Ok(());
        }
        let k = pending.len() as u64;
        con.run(many(pending.drain(..).map(|l| Put(Some(l)))))
            .map_err(|e| e.to_string())?;
        *n += k;
        bar.set_message(format!("{n} entities"));
        bar.tick();
        Ok(())
    };
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let mut entity: Line =
            serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if let Some((old, new)) = &rename
            && let Some(rest) = entity.key.strip_prefix(old.as_str())
        {
            entity.key = format!("{new}{rest}");
        }
        if entity.fields.is_empty() {
            return Err(format!("line {}: `{}` has no fields", i + 1, entity.key));
        }
        pending.push(entity);
        if pending.len() >= batch_size {
            flush(&mut pending, &mut n)?;
        }
    }
    flush(&mut pending, &mut n)?;
    Ok(n)
}
