//! The `modelwatch` binary's contract: version, help and exit codes.

use std::process::Command;

fn modelwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_modelwatch")).args(args).output().expect("run modelwatch")
}

#[test]
fn version_and_help_succeed() {
    let v = modelwatch(&["--version"]);
    assert!(v.status.success());
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("modelwatch {}", env!("CARGO_PKG_VERSION"))
    );
    let h = modelwatch(&["--help"]);
    assert!(h.status.success());
    assert!(String::from_utf8_lossy(&h.stdout).contains("quickstart"));
}

#[test]
fn an_unknown_command_exits_2_and_names_it() {
    let o = modelwatch(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"frobnicate\""));
}
