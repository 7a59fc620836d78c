//! The guide in `docs/` is generated from the runnable programs in
//! `examples/`: this test regenerates it and fails when the committed files
//! drifted. Bless with `DOCS_BLESS=1 cargo test --test docs`.

use std::path::Path;

/// Chapter file, then the examples it is made of, in order.
const CHAPTERS: &[(&str, &[&str])] = &[
    ("01-tour.md", &["tour"]),
    ("02-hash-models.md", &["hash_sync", "hash_async"]),
    (
        "03-caching.md",
        &[
            "cache_aside",
            "cache_write_through",
            "cache_write_behind",
            "cache_invalidation",
            "cache_local",
        ],
    ),
    (
        "04-leaderboards.md",
        &["leaderboard_game", "leaderboard_async"],
    ),
    ("05-typed-scripts.md", &["typed_scripts"]),
    ("06-locks.md", &["locks"]),
    ("07-redlock.md", &["redlock"]),
    ("08-rate-limiting.md", &["rate_limiting"]),
    ("09-sessions.md", &["sessions"]),
    ("10-transactions.md", &["transactions"]),
    ("11-values.md", &["values"]),
    ("12-sharing.md", &["sharing"]),
    ("13-pubsub.md", &["pubsub"]),
    ("14-streams.md", &["streams"]),
    ("15-queues.md", &["queues"]),
    ("16-collections.md", &["collections"]),
    ("17-topologies.md", &["topologies"]),
    ("18-connections.md", &["connections"]),
    ("19-operations.md", &["operations"]),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One example as markdown: its `//!` header as prose, the rest as code
/// (without `ANCHOR` markers).
fn render_example(name: &str) -> String {
    let path = root().join("examples").join(format!("{name}.rs"));
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut prose = String::new();
    let mut code = String::new();
    let mut in_header = true;
    for line in src.lines() {
        if in_header {
            if let Some(text) = line.strip_prefix("//!") {
                prose.push_str(text.strip_prefix(' ').unwrap_or(text));
                prose.push('\n');
                continue;
            }
            in_header = false;
            if line.trim().is_empty() {
                continue;
            }
        }
        let t = line.trim_start();
        if t.starts_with("// ANCHOR:") || t.starts_with("// ANCHOR_END:") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    format!(
        "{}\n\n{}\n```rust\n{}```\n\n*Source: [`examples/{name}.rs`](../examples/{name}.rs).*\n",
        prose.trim_end(),
        render_needs(&src),
        code
    )
}

/// The version requirement the workspace manifest gives `name` (in
/// `[workspace.dependencies]`), so that the guide names what the project
/// builds with.
fn workspace_version(name: &str) -> String {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.starts_with(&format!("{name} = ")))
        .unwrap_or_else(|| panic!("{name} is not in [workspace.dependencies]"));
    let rest = line.split_once(" = ").unwrap().1;
    let rest = rest.split_once("version = ").map_or(rest, |(_, v)| v);
    rest.split('"').nth(1).unwrap().to_owned()
}

/// What a program needs in its own `Cargo.toml`, read from what it uses:
/// the `redis-state` features and the other crates (with the features of
/// them it uses).
fn render_needs(src: &str) -> String {
    let uses = |s: &str| src.contains(s);
    let mut features = Vec::new();
    if uses("redis_state::testing") {
        features.push("test-support");
    }
    if uses("uuid::") {
        features.push("uuid");
    }
    for (feature, path) in [
        ("deadpool", "deadpool_redis::"),
        ("bb8", "bb8_redis::"),
        ("r2d2", "r2d2::"),
    ] {
        if uses(path) {
            features.push(feature);
        }
    }
    if uses(".tls_root_cert(") {
        features.push("tls");
    }
    let version = env!("CARGO_PKG_VERSION");
    let minor = &version[..version.rfind('.').unwrap()];
    let mut lines = vec![if features.is_empty() {
        format!("redis-state = \"{minor}\"")
    } else {
        let list: Vec<String> = features.iter().map(|f| format!("\"{f}\"")).collect();
        format!(
            "redis-state = {{ version = \"{minor}\", features = [{}] }}",
            list.join(", ")
        )
    }];
    let mut tokio = Vec::new();
    let main_attr = uses("#[tokio::main]") || uses("#[tokio::main(");
    let current_thread = uses("flavor = \"current_thread\"");
    if uses("tokio::runtime::Runtime::new")
        || uses("new_multi_thread")
        || (main_attr && !current_thread)
    {
        tokio.push("rt-multi-thread");
    } else if uses("new_current_thread")
        || current_thread
        || uses("tokio::spawn")
        || uses("tokio::task::")
    {
        tokio.push("rt");
    }
    if main_attr || uses("tokio::join!") || uses("tokio::select!") || uses("tokio::try_join!") {
        tokio.push("macros");
    }
    if uses("tokio::time::") {
        tokio.push("time");
    }
    if uses("tokio::sync::") {
        tokio.push("sync");
    }
    if uses("tokio::") {
        let list: Vec<String> = tokio.iter().map(|f| format!("\"{f}\"")).collect();
        lines.push(format!(
            "tokio = {{ version = \"{}\", features = [{}] }}",
            workspace_version("tokio"),
            list.join(", ")
        ));
    }
    if uses("serde::") {
        lines.push(format!(
            "serde = {{ version = \"{}\", features = [\"derive\"] }}",
            workspace_version("serde")
        ));
    }
    for (krate, path) in [
        ("serde_json", "serde_json::"),
        ("chrono", "chrono::"),
        ("futures-util", "futures_util::"),
        ("deadpool-redis", "deadpool_redis::"),
        ("bb8-redis", "bb8_redis::"),
        ("r2d2", "r2d2::"),
    ] {
        if uses(path) {
            lines.push(format!("{krate} = \"{}\"", workspace_version(krate)));
        }
    }
    // `redis::` on its own, not as `redis_state::redis::`.
    let direct_redis = src.match_indices("redis::").any(|(at, _)| {
        let before = &src[..at];
        !before.ends_with("redis_state::")
            && !before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
    });
    if direct_redis {
        lines.push(format!(
            "redis = \"{}\" # or write `redis_state::redis::` instead",
            workspace_version("redis")
        ));
    }
    let mut out = String::from(
        "To build this program in a crate of your own, `Cargo.toml` needs:\n\n```toml\n[dependencies]\n",
    );
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str("```\n");
    if features.contains(&"test-support") {
        out.push_str(
            "\n`test-support` is what lets the program start its own `redis-server` \
             (`redis_state::testing`); a program of yours that connects to a server \
             it is given does not need it.\n",
        );
    }
    out
}

fn render_chapter(examples: &[&str]) -> String {
    let mut out = String::from(
        "<!-- Generated from examples/ by tests/docs.rs. Edit the examples, then run\n     DOCS_BLESS=1 cargo test --test docs -->\n\n",
    );
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str("\n---\n\n");
        }
        out.push_str(&render_example(ex));
    }
    out
}

fn render_index() -> String {
    let mut out = String::from(
        "<!-- Generated by tests/docs.rs. -->\n\n# redis-state guide\n\nEach chapter is a runnable program from `examples/`, shown whole.\n\n",
    );
    for (file, examples) in CHAPTERS {
        let title = render_chapter(examples)
            .lines()
            .find_map(|l| l.strip_prefix("# ").map(str::to_owned))
            .unwrap_or_else(|| (*file).to_owned());
        let runs: Vec<String> = examples
            .iter()
            .map(|e| format!("`cargo run --example {e}`"))
            .collect();
        out.push_str(&format!("- [{title}]({file}): {}\n", runs.join(", ")));
    }
    out.push_str("\nDesign decisions and their reasons: [design.md](design.md).\n");
    out
}

#[test]
fn guide_matches_examples() {
    let bless = std::env::var_os("DOCS_BLESS").is_some();
    let mut files: Vec<(String, String)> = CHAPTERS
        .iter()
        .map(|(file, examples)| ((*file).to_owned(), render_chapter(examples)))
        .collect();
    files.push(("README.md".to_owned(), render_index()));
    let mut drifted = Vec::new();
    for (file, want) in files {
        let path = root().join("docs").join(&file);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if bless {
                std::fs::write(&path, want).unwrap();
            } else {
                drifted.push(file);
            }
        }
    }
    assert!(
        drifted.is_empty(),
        "docs/ drifted from examples/ in {drifted:?}; run `DOCS_BLESS=1 cargo test --test docs`"
    );
}

/// The repository's README begins with the crate's README (the page on
/// crates.io and docs.rs), so the two never tell a new user different
/// things. Bless with `DOCS_BLESS=1` as for the guide.
#[test]
fn root_readme_begins_with_the_crate_readme() {
    let marker = "\n<!-- Everything above is a copy of redis-state/README.md";
    let krate = std::fs::read_to_string(root().join("redis-state/README.md")).unwrap();
    let path = root().join("README.md");
    let have = std::fs::read_to_string(&path).unwrap();
    let at = have
        .find(marker)
        .expect("README.md keeps the marker comment that ends its copy of redis-state/README.md");
    if have[..at] != krate {
        if std::env::var_os("DOCS_BLESS").is_some() {
            std::fs::write(&path, format!("{krate}{}", &have[at..])).unwrap();
        } else {
            panic!(
                "README.md's first part drifted from redis-state/README.md; run `DOCS_BLESS=1 cargo test --test docs`"
            );
        }
    }
}

#[test]
fn every_example_is_in_the_guide() {
    let mut listed: Vec<&str> = CHAPTERS
        .iter()
        .flat_map(|(_, e)| e.iter().copied())
        .collect();
    listed.sort();
    let mut found: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    found.sort();
    assert_eq!(
        listed, found,
        "add new examples to CHAPTERS in tests/docs.rs"
    );
}
