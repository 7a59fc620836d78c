//! `redis-state stats --html`: the page is written, opened in headless
//! Chromium (Debian's `chromium`, installed by `scripts/ensure-chromium`),
//! and the screenshot is checked for its charts: bars of the memory and key
//! colours, and of several TTL buckets.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "tests report by panicking and printing"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use redis_state::prelude::*;
use redis_state::testing::{shared_server, unique_prefix};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "{{huser}}:{id}")]
struct HUser {
    #[redis(id)]
    id: u64,
    name: String,
}

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "headless Chromium is missing: run ./scripts/ensure-chromium (apt-get install chromium)"
    );
}

fn screenshot(page: &Path, png: &Path) {
    let profile = page.with_extension("profile");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=900,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pixels of each colour in the screenshot.
fn count_colors(png: &Path, colors: &[[u8; 3]]) -> Vec<usize> {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png).expect("the screenshot opens"),
    ));
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("the screenshot decodes");
    let channels = info.color_type.samples();
    let mut counts = vec![0; colors.len()];
    for px in buf[..info.buffer_size()].chunks(channels) {
        for (i, c) in colors.iter().enumerate() {
            if px.len() >= 3 && px[..3] == c[..] {
                counts[i] += 1;
            }
        }
    }
    counts
}

#[test]
fn the_html_page_shows_its_charts() {
    let ns = Namespace::new(unique_prefix("cli-html")).unwrap();
    let mut con = shared_server().connection().unwrap();
    for id in 1..=40 {
        let u = HUser {
            id,
            name: format!("u{id}"),
        };
        u.save().namespace(&ns).run(&mut con).unwrap();
        if id % 2 == 0 {
            // Half of them expire within the hour.
            let _: i64 = redis_state::op::command("EXPIRE", format!("{ns}:{{huser}}:{id}"))
                .arg(1800)
                .run(&mut con)
                .unwrap();
        }
    }
    let dir = std::env::temp_dir().join(unique_prefix("cli-html"));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("stats.html");
    let out = Command::new(env!("CARGO_BIN_EXE_redis-state"))
        .arg("--url")
        .arg(shared_server().url())
        .args([
            "stats",
            "-n",
            ns.as_str(),
            "--hash",
            "{{huser}}:{id}",
            "--html",
        ])
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("<svg") && html.contains("{{huser}}:{id}"),
        "{html}"
    );
    assert!(!html.contains("<script"), "no scripts");

    let png = dir.join("stats.png");
    screenshot(&page, &png);
    // Memory bars, key bars, and the TTL chart's "no TTL" and "< 1 hour"
    // shares (half of the keys each), in the page's colours.
    let counts = count_colors(
        &png,
        &[
            [0x3b, 0x5b, 0xa5],
            [0x8c, 0x56, 0x4b],
            [0x4e, 0x79, 0xa7],
            [0x59, 0xa1, 0x4f],
        ],
    );
    let [memory, keys, persistent, hour] = counts[..] else {
        unreachable!()
    };
    assert!(memory > 2000, "memory bars drawn: {memory} pixels");
    assert!(keys > 2000, "key bars drawn: {keys} pixels");
    assert!(persistent > 1000, "TTL chart, no TTL: {persistent} pixels");
    assert!(hour > 1000, "TTL chart, under an hour: {hour} pixels");
    std::fs::remove_dir_all(&dir).ok();
}
