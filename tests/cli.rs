//! The `modelwatch` binary's contract: help, version, exit codes and messages.

use std::process::{Command, Output};

pub fn modelwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelwatch")).args(args).output().expect("run modelwatch")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `modelwatch ARGS --data DIR --now NOW`: a verb on a store as of a fixed time.
pub fn modelwatch_at(dir: &std::path::Path, now: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--data", dir.to_str().unwrap(), "--now", now]);
    modelwatch(&all)
}

/// Everything a run said, for an assertion's message.
pub fn text(o: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", o.status, stdout(o), stderr(o))
}

#[test]
fn version_and_help_succeed() {
    let v = modelwatch(&["--version"]);
    assert!(v.status.success());
    assert_eq!(stdout(&v).trim(), format!("modelwatch {}", env!("CARGO_PKG_VERSION")));
    let h = modelwatch(&["--help"]);
    assert!(h.status.success());
    for cmd in ["import", "store"] {
        assert!(stdout(&h).contains(cmd), "help lists {cmd}");
    }
}

#[test]
fn an_unknown_command_exits_2_and_names_it() {
    let o = modelwatch(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("frobnicate"));
}

#[test]
fn a_missing_data_directory_is_a_data_error_that_names_it() {
    let o = modelwatch(&["store", "inspect", "--data", "/nonexistent/mw"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/mw"), "{}", stderr(&o));
}
