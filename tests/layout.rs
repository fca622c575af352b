//! The house's layering, checked on the source tree: the HTTP server is a leaf of the root
//! package (nothing depends on it but the verb that starts it), and libraries take their
//! time from a `Clock`. A change that breaks either fails here, naming the file and line.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether a line names the server: a path through `crate::` or `modelwatch::` to `serve`,
/// also inside a `use crate::{..., serve::...}` group.
fn names_the_server(line: &str) -> bool {
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    let grouped = (compact.starts_with("usecrate::{") || compact.starts_with("usemodelwatch::{"))
        && (compact.contains("{serve") || compact.contains(",serve"));
    compact.contains("crate::serve") || compact.contains("modelwatch::serve") || grouped
}

/// Lines of the files under `dirs` (relative to the repository) that `hit` finds, outside
/// the files and folders in `allowed`. A multi-line `use` statement counts as one line.
fn offending(dirs: &[&str], hit: impl Fn(&str) -> bool, allowed: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in dirs {
        rust_files(&root.join(d), &mut files);
    }
    let mut found = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        if allowed.iter().any(|a| rel == *a || (a.ends_with('/') && rel.starts_with(a))) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let mut statement = String::new();
        for (i, line) in text.lines().enumerate() {
            // Join a `use` that spans lines, so its group is seen whole.
            if !statement.is_empty() || line.trim_start().starts_with("use ") {
                statement.push_str(line);
                if !line.contains(';') {
                    continue;
                }
            }
            let seen = if statement.is_empty() { line } else { statement.as_str() };
            if hit(seen) {
                found.push(format!("{rel}:{}: {}", i + 1, seen.trim()));
            }
            statement.clear();
        }
    }
    found
}

#[test]
fn nothing_but_the_serve_verb_depends_on_the_http_server() {
    // The server's own tests and load bench drive it; everything else stays off it.
    let allowed = [
        "src/serve/",
        "src/commands/serve.rs",
        "tests/serve.rs",
        "tests/prometheus.rs",
        "tests/hostile.rs",
        "benches/serve_load.rs",
    ];
    let dirs = ["src", "tests", "benches", "examples"];
    let mut found = offending(&dirs, names_the_server, &allowed);
    // This file names the paths it looks for.
    found.retain(|l| !l.starts_with("tests/layout.rs"));
    assert!(
        found.is_empty(),
        "outside src/serve/, only the serve verb may use the server:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_server_check_sees_every_way_of_naming_it() {
    for line in [
        "use crate::serve::AppState;",
        "use modelwatch::serve::{router, AppState};",
        "use crate::{baseline, serve::ApiError};",
        "use crate::{ serve, time };",
        "let s = modelwatch :: serve :: router(state);",
    ] {
        assert!(names_the_server(line), "{line}");
    }
    for line in ["use crate::time;", "// the server is served by serve.rs", "use crate::{observe, time};"] {
        assert!(!names_the_server(line), "{line}");
    }
}

#[test]
fn the_wall_clock_is_read_only_by_the_system_clock_and_the_binary() {
    // clippy.toml forbids these in every crate (tests included); this catches a stray
    // `#[allow]` too.
    let dirs = [
        "src",
        "agent/src",
        "store/src",
        "query/src",
        "tests",
        "benches",
        "examples",
        "agent/tests",
        "store/tests",
        "query/tests",
    ];
    let allowed = ["agent/src/clock.rs", "src/main.rs", "tests/layout.rs"];
    let wall = |l: &str| {
        ["SystemTime::now", "Utc::now", "Local::now", "SystemClock.now"].iter().any(|n| l.contains(n))
    };
    let found = offending(&dirs, wall, &allowed);
    assert!(found.is_empty(), "read the time from an injected Clock:\n{}", found.join("\n"));
}
