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

/// Lines of the files under `dirs` (relative to the repository) that contain `needle`,
/// outside the files and folders in `allowed`.
fn offending(dirs: &[&str], needle: &str, allowed: &[&str]) -> Vec<String> {
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
        for (i, line) in text.lines().enumerate() {
            if line.contains(needle) {
                found.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
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
        "benches/serve_load.rs",
    ];
    let dirs = ["src", "tests", "benches", "examples"];
    let mut found = offending(&dirs, "crate::serve", &allowed);
    found.extend(offending(&dirs, "modelwatch::serve", &allowed));
    // This file names the paths it looks for.
    found.retain(|l| !l.starts_with("tests/layout.rs"));
    assert!(
        found.is_empty(),
        "outside src/serve/, only the serve verb may use the server:\n{}",
        found.join("\n")
    );
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
    let mut found = offending(&dirs, "SystemTime::now", &allowed);
    found.extend(offending(&dirs, "Utc::now", &allowed));
    found.extend(offending(&dirs, "SystemClock.now", &allowed));
    assert!(found.is_empty(), "read the time from an injected Clock:\n{}", found.join("\n"));
}
