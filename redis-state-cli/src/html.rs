//! `stats --html FILE`: one self-contained page (inline SVG, no scripts)
//! with charts of memory per model and of each model's TTL spread.

use std::fmt::Write as _;

use redis_state::monitor::stats::{ModelStats, TTL_BUCKETS_SECS};

use crate::output::bytes;

/// The TTL chart's colours: no TTL, then each bucket.
const COLORS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
];
/// Memory bars.
const MEMORY: &str = "#3b5ba5";
/// Key count bars.
const KEYS: &str = "#8c564b";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars: one per (label, value), scaled to the largest.
fn bars(title: &str, rows: &[(String, u64, String)], color: &str) -> String {
    let width = 760.0;
    let label_w = 200.0;
    let bar_h = 26.0;
    let height = 40.0 + bar_h * rows.len().max(1) as f64;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>{}</figcaption><svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(title)
    );
    for (i, (label, value, text)) in rows.iter().enumerate() {
        let y = 20.0 + bar_h * i as f64;
        let w = ((width - label_w - 120.0) * (*value as f64) / max).max(if *value > 0 {
            2.0
        } else {
            0.0
        });
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" font-size="13">{}</text><rect class="bar" x="{label_w}" y="{}" width="{w:.1}" height="{}" fill="{color}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            label_w - 8.0,
            y + bar_h * 0.6,
            esc(label),
            y + 3.0,
            bar_h - 6.0,
            label_w + w + 6.0,
            y + bar_h * 0.6,
            esc(text)
        );
    }
    s.push_str("</svg></figure>");
    s
}

fn bucket_label(i: usize) -> &'static str {
    match i {
        0 => "< 1 minute",
        1 => "< 1 hour",
        2 => "< 1 day",
        3 => "< 1 week",
        _ => "longer",
    }
}

/// One stacked bar per model: keys without TTL, then each TTL bucket.
fn ttl_chart(stats: &[ModelStats]) -> String {
    let width = 760.0;
    let label_w = 200.0;
    let bar_h = 26.0;
    let height = 70.0 + bar_h * stats.len().max(1) as f64;
    let span = width - label_w - 20.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>TTL distribution (share of each model's keys)</figcaption><svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">"#
    );
    for (i, m) in stats.iter().enumerate() {
        let y = 10.0 + bar_h * i as f64;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" font-size="13">{}</text>"#,
            label_w - 8.0,
            y + bar_h * 0.6,
            esc(&m.name)
        );
        let parts: Vec<u64> = std::iter::once(m.ttl.persistent)
            .chain(m.ttl.buckets.iter().copied())
            .collect();
        let total: u64 = parts.iter().sum();
        if total == 0 {
            continue;
        }
        let mut x = label_w;
        for (j, n) in parts.iter().enumerate() {
            let w = span * (*n as f64) / (total as f64);
            if w > 0.0 {
                let _ = write!(
                    s,
                    r#"<rect class="bar" x="{x:.1}" y="{}" width="{w:.1}" height="{}" fill="{}"><title>{n}</title></rect>"#,
                    y + 3.0,
                    bar_h - 6.0,
                    COLORS[j % COLORS.len()]
                );
            }
            x += w;
        }
    }
    // Legend.
    let ly = height - 30.0;
    let mut x = label_w;
    let labels = std::iter::once("no TTL").chain((0..=TTL_BUCKETS_SECS.len()).map(bucket_label));
    for (j, l) in labels.enumerate() {
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{ly}" width="12" height="12" fill="{}"/><text x="{}" y="{}" font-size="12">{l}</text>"#,
            COLORS[j % COLORS.len()],
            x + 16.0,
            ly + 11.0
        );
        x += 92.0;
    }
    s.push_str("</svg></figure>");
    s
}

/// The whole page.
pub(crate) fn page(stats: &[ModelStats], server: &str) -> String {
    let mut s = String::from(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>redis-state stats</title><style>
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}figure{margin:18px 0}figcaption{font-weight:bold;margin-bottom:6px}
</style></head><body>"#,
    );
    let _ = write!(s, "<h1>redis-state statistics</h1><p>{}</p>", esc(server));
    s.push_str("<table><tr><th>model</th><th>keys</th><th>memory (est.)</th><th>sampled</th><th>index entries</th><th>orphans</th></tr>");
    for m in stats {
        let entries: u64 = m.indexes.iter().map(|i| i.entries).sum();
        let orphans: u64 = m.indexes.iter().map(|i| i.orphans).sum();
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{entries}</td><td>{orphans}</td></tr>",
            esc(&m.name),
            m.keys,
            if m.truncated { "+" } else { "" },
            bytes(m.memory.estimated_bytes),
            m.memory.sampled
        );
    }
    s.push_str("</table>");
    let mem: Vec<(String, u64, String)> = stats
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                m.memory.estimated_bytes,
                bytes(m.memory.estimated_bytes),
            )
        })
        .collect();
    s.push_str(&bars("Memory per model (estimated)", &mem, MEMORY));
    let keys: Vec<(String, u64, String)> = stats
        .iter()
        .map(|m| (m.name.clone(), m.keys, m.keys.to_string()))
        .collect();
    s.push_str(&bars("Keys per model", &keys, KEYS));
    s.push_str(&ttl_chart(stats));
    s.push_str("</body></html>\n");
    s
}
