//! The model registry against the real binary and a real S3 server (moto): aliases and the
//! audit log survive `kill -9` at random moments, concurrent promotions on a bucket give
//! one winner and one clear conflict, a tampered artifact is named, bad names are refused,
//! and `modelwatch models list|show|log` answer as tables and JSON.

use crate::cli::{modelwatch, stderr, stdout};
use crate::fleet::Moto;
use modelwatch::store::ObjectStoreConfig;
use modelwatch::store::registry::{
    Action, Alias, NewVersion, Registry, RegistryConfig, RegistryError, Status,
};
use modelwatch::{ManualClock, Timestamp};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

const T0: u64 = 1_764_115_200;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_secs(T0)))
}

fn json(args: &[&str]) -> Value {
    let o = modelwatch(args);
    assert!(o.status.success(), "modelwatch {args:?}: {}{}", stdout(&o), stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&o)))
}

/// The changes the log records, as the crash loop prints them.
fn changes(log: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for e in log.as_array().unwrap() {
        let v = e["version"].as_u64().unwrap();
        match e["op"].as_str().unwrap() {
            "register" => out.push(format!("registered {v}")),
            "promote" => out.push(format!("promoted {v}")),
            "rollback" => out.push(format!("rolled-back {v}")),
            op => panic!("the crash loop does not {op}"),
        }
    }
    out
}

/// Every JSON document the registry holds parses (a torn write would not): heads, audit
/// entries and version metadata. Temporary files are the only other files besides artifacts.
fn assert_no_torn_document(dir: &Path, at: &str) {
    let mut dirs = vec![dir.join("registry")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap();
            let in_artifact = path.components().any(|c| c.as_os_str() == "artifact");
            if name.ends_with(".json") && !name.starts_with('.') && !in_artifact {
                let bytes = std::fs::read(&path).unwrap();
                serde_json::from_slice::<Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{at}: {} is torn: {e}", path.display()));
            }
        }
    }
}

#[test]
fn aliases_and_the_audit_log_survive_sigkill_at_random_moments_during_20_promotions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    // The log as verified after the previous kill: each run may only append to it.
    let mut verified: Vec<String> = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    // At least 20 kills, and on until 20 promotions survived.
    while kills < 20 || verified.iter().filter(|a| a.starts_with("promoted")).count() < 20 {
        assert!(kills < 400, "the crash loop makes no progress: {verified:?}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["crash-registry", "--data", d, "--model", "crash"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let (out, lines) = (child.stdout.take().unwrap(), lines.clone());
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(5 + rng % 80));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        kills += 1;
        if status.code().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("the crash loop stopped by itself ({status}): {err}");
        }
        let acked: Vec<String> = lines.lock().unwrap().drain(..).collect();
        let at = format!("kill {kills}");
        if !data.join("registry/crash/head.json").exists() {
            assert!(acked.is_empty() && verified.is_empty(), "{at}: acknowledged {acked:?} but no head");
            continue;
        }

        // The log parses, is numbered without gaps, keeps everything verified before, and
        // holds this run's acknowledged changes in order after it, with at most the one
        // change committed but not yet printed when the kill came.
        let log = json(&["models", "log", "crash", "--data", d, "--format", "json"]);
        let seqs: Vec<u64> = log.as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{at}");
        let logged = changes(&log);
        assert!(
            logged.len() >= verified.len() && logged[..verified.len()] == verified[..],
            "{at}: history rewritten"
        );
        let new = &logged[verified.len()..];
        assert!(new.len() >= acked.len() && new.len() <= acked.len() + 1, "{at}: {new:?} vs acked {acked:?}");
        assert_eq!(new[..acked.len()], acked[..], "{at}");
        verified = logged;
        // No entry file beyond the head's count: an entry is written only once its change
        // committed (the newest one's file may still be missing).
        let files: Vec<u64> = std::fs::read_dir(data.join("registry/crash/log"))
            .map(|rd| rd.map(|e| e.unwrap().file_name().into_string().unwrap()).collect::<Vec<_>>())
            .unwrap_or_default()
            .iter()
            .filter(|n| !n.starts_with('.'))
            .map(|n| n.trim_end_matches(".json").parse().unwrap())
            .collect();
        let n = seqs.len() as u64;
        assert!(
            files.iter().all(|f| *f <= n) && files.len() as u64 >= n - 1,
            "{at}: log files {files:?}, {n} entries"
        );

        // Replaying the log gives exactly the aliases and statuses the registry shows.
        let (mut control, mut statuses) = (None, std::collections::BTreeMap::new());
        for e in log.as_array().unwrap() {
            let v = e["version"].as_u64().unwrap();
            match e["op"].as_str().unwrap() {
                "register" => {
                    statuses.insert(v, "candidate");
                }
                _ => {
                    if let Some(old) = control {
                        statuses.insert(old, "retired");
                    }
                    statuses.insert(v, "control");
                    control = Some(v);
                }
            }
        }
        let models = json(&["models", "list", "--data", d, "--format", "json"]);
        let m = &models[0];
        assert_eq!((m["control"].as_u64(), m["latest"].as_u64()), (control, control), "{at}: {m}");
        assert_eq!(m["audit_entries"].as_u64(), Some(seqs.len() as u64), "{at}");
        let versions = json(&["models", "list", "crash", "--data", d, "--format", "json"]);
        let shown: std::collections::BTreeMap<u64, &str> = versions
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["version"].as_u64().unwrap(), v["status"].as_str().unwrap()))
            .collect();
        assert_eq!(shown, statuses, "{at}");
        if control.is_some() {
            let c = json(&["models", "show", "crash", "control", "--data", d, "--format", "json"]);
            assert_eq!(c["artifact_check"], "verified", "{at}: {c}");
        }
        assert_no_torn_document(&data, &at);
    }
    eprintln!("registry crash loop: {kills} kills, {} audit entries", verified.len());
}

fn s3(moto: &Moto, prefix: &str) -> ObjectStoreConfig {
    let options = [
        ("endpoint", format!("http://127.0.0.1:{}", moto.port)),
        ("allow_http", "true".into()),
        ("access_key_id", "test".into()),
        ("secret_access_key", "test".into()),
        ("region", "us-east-1".into()),
    ];
    ObjectStoreConfig {
        url: format!("s3://registry-test/{prefix}"),
        options: options.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

/// Two registries (as two processes would be) read the same state, then promote different
/// versions at once from two threads: exactly one wins, the other gets a conflict naming
/// the alias and the model, and the loser wrote nothing.
fn two_concurrent_promotions(open: impl Fn() -> Registry) {
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("model.json"), b"{}").unwrap();
    let reg = open();
    for _ in 0..3 {
        reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
    }
    reg.promote("pii", 1, &Action::new("auto", "first")).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let results: Vec<_> = [2u32, 3]
        .into_iter()
        .map(|v| {
            let (reg, barrier) = (open(), barrier.clone());
            std::thread::spawn(move || {
                let seen = reg.state("pii").unwrap();
                barrier.wait();
                (v, reg.promote_from(&seen, v, &Action::new("auto", &format!("promote {v}"))))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let winners: Vec<u32> = results.iter().filter(|(_, r)| r.is_ok()).map(|(v, _)| *v).collect();
    assert_eq!(winners.len(), 1, "exactly one promotion wins: {results:?}");
    let (_, loser) = results.iter().find(|(_, r)| r.is_err()).unwrap();
    let err = loser.as_ref().unwrap_err();
    assert!(matches!(err, RegistryError::Conflict { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("control alias") && msg.contains("\"pii\""), "{msg}");
    let state = reg.state("pii").unwrap();
    assert_eq!(state.aliases().control, Some(winners[0]));
    assert_eq!(state.aliases().latest, Some(winners[0]));
    let log = reg.log("pii").unwrap();
    assert_eq!(log.len(), 5, "three registrations and two promotions: {log:?}");
    assert_eq!(log[4].version, Some(winners[0]));
    let statuses = state.statuses();
    assert_eq!(statuses.iter().filter(|(_, s)| *s == Status::Control).count(), 1, "{statuses:?}");
}

#[test]
fn on_moto_two_concurrent_promotions_give_one_winner_and_one_clear_conflict() {
    let moto = Moto::start();
    moto.create_bucket("registry-test");
    let config = s3(&moto, "race");
    two_concurrent_promotions(|| {
        let dir = tempfile::tempdir().unwrap();
        Registry::open(RegistryConfig {
            dir: dir.path().to_path_buf(),
            objects: Some(config.clone()),
            clock: clock(),
        })
        .unwrap()
    });
    // The CLI reads the same bucket: the objects really are there.
    let env = moto.env();
    let o = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["models", "log", "pii", "--objects", "s3://registry-test/race", "--format", "json"])
        .envs(env)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let log: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(log.as_array().unwrap().len(), 5, "{log}");
}

#[test]
fn locally_two_concurrent_promotions_give_one_winner_and_one_clear_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    two_concurrent_promotions(|| Registry::open(RegistryConfig::new(&path, clock())).unwrap());
}

/// A registry with two versions of `pii`, version 2 the control.
fn two_versions(data: &Path) -> Registry {
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("weights.bin"), [1u8, 2, 3]).unwrap();
    let reg = Registry::open(RegistryConfig::new(data, clock())).unwrap();
    let mut new = NewVersion::new("pii", "logistic", art.path());
    new.rows = 5_000;
    new.features = vec!["length".into(), "digits".into()];
    new.metrics.overall.insert("auc".into(), 0.875);
    reg.register(new.clone()).unwrap();
    reg.register(NewVersion { parent: Some(1), ..new }).unwrap();
    reg.promote("pii", 1, &Action::new("auto", "first model")).unwrap();
    reg.promote("pii", 2, &Action::new("auto", "gate passed").event("pii-20261129T041000Z-1")).unwrap();
    reg
}

#[test]
fn a_tampered_artifact_is_named_when_it_is_fetched_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let reg = two_versions(dir.path());
    let stored = dir.path().join(reg.get("pii", 2).unwrap().meta.artifact.path);
    std::fs::write(stored.join("weights.bin"), [1u8, 2, 4]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = reg.fetch_artifact("pii", 2, out.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Tampered { version: 2, .. }), "{err:?}");
    assert!(msg.contains("\"weights.bin\"") && msg.contains("changed after registration"), "{msg}");
    assert!(!out.path().join("weights.bin").exists(), "nothing is fetched from a tampered artifact");
    let d = dir.path().to_str().unwrap();
    let shown = json(&["models", "show", "pii", "2", "--data", d, "--format", "json"]);
    assert!(shown["artifact_check"].as_str().unwrap().contains("\"weights.bin\""), "{shown}");
    reg.fetch_artifact("pii", 1, out.path()).unwrap();
}

#[test]
fn invalid_names_and_versions_are_refused_with_a_usage_error_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    two_versions(dir.path());
    let d = dir.path().to_str().unwrap();
    for (args, expect) in [
        (vec!["models", "promote", "../pii", "1", "--reason", "x"], "invalid model name \"../pii\""),
        (vec!["models", "promote", "a/b", "1", "--reason", "x"], "path separator"),
        (vec!["models", "log", "pii\u{1b}[2J"], "control character"),
        (vec!["models", "promote", "pii", "v0", "--reason", "x"], "invalid version \"v0\""),
        (vec!["models", "show", "pii", "two"], "invalid version \"two\""),
        (vec!["models", "promote", "pii", "1", "--reason", "x", "--actor", "a\u{7}"], "invalid actor"),
    ] {
        let mut args = args;
        args.extend(["--data", d]);
        let o = modelwatch(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{args:?}: {}", stderr(&o));
    }
    let o = modelwatch(&["models", "promote", "pii", "7", "--reason", "x", "--data", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("model \"pii\" has no version 7"), "{}", stderr(&o));
    let log = json(&["models", "log", "pii", "--data", d, "--format", "json"]);
    assert_eq!(log.as_array().unwrap().len(), 4, "a refused command records nothing");
}

#[test]
fn models_list_show_promote_rollback_and_log_as_tables_and_json() {
    let dir = tempfile::tempdir().unwrap();
    two_versions(dir.path());
    let d = dir.path().to_str().unwrap();

    let list = json(&["models", "list", "--data", d, "--format", "json"]);
    assert_eq!(list[0]["model"], "pii");
    assert_eq!((list[0]["control"].as_u64(), list[0]["latest"].as_u64()), (Some(2), Some(2)));
    let table = stdout(&modelwatch(&["models", "list", "--data", d]));
    let row = table.lines().find(|l| l.contains("pii")).unwrap_or_else(|| panic!("{table}"));
    assert_eq!(
        row.split_whitespace().filter(|c| *c != "|").collect::<Vec<_>>(),
        ["pii", "2", "-", "2", "2", "4"]
    );

    let versions = stdout(&modelwatch(&["models", "list", "pii", "--data", d]));
    assert!(versions.lines().any(|l| l.contains("retired") && l.contains("0.8750")), "{versions}");
    assert!(versions.lines().any(|l| l.contains("control,latest")), "{versions}");

    let show = json(&["models", "show", "pii", "--data", d, "--format", "json"]);
    assert_eq!((show["version"].as_u64(), show["status"].as_str()), (Some(2), Some("control")));
    assert_eq!((show["parent"].as_u64(), show["rows"].as_u64()), (Some(1), Some(5_000)));
    assert_eq!(show["artifact_check"], "verified");
    let text = stdout(&modelwatch(&["models", "show", "pii", "v1", "--data", d]));
    assert!(
        text.contains("retired") && text.contains("length, digits") && text.contains("verified"),
        "{text}"
    );

    // By hand, recorded like an automatic change: actor `cli`, the reason, the event.
    let o = modelwatch(&["models", "rollback", "pii", "--reason", "precision fell", "--data", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("rollback") && stdout(&o).contains("precision fell"), "{}", stdout(&o));
    let o = modelwatch(&["models", "rollback", "pii", "--reason", "again", "--data", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no previous control"), "{}", stderr(&o));
    let e = json(&[
        "models", "promote", "pii", "v2", "--reason", "fixed", "--event", "evt-9", "--data", d, "--format",
        "json",
    ]);
    assert_eq!((e[0]["op"].as_str(), e[0]["previous"].as_u64()), (Some("promote"), Some(1)));

    let log = json(&["models", "log", "pii", "--data", d, "--format", "json"]);
    let rows: Vec<(&str, u64, &str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["op"].as_str().unwrap(),
                e["version"].as_u64().unwrap(),
                e["actor"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("register", 1, "auto", "registered"),
            ("register", 2, "auto", "registered"),
            ("promote", 1, "auto", "first model"),
            ("promote", 2, "auto", "gate passed"),
            ("rollback", 1, "cli", "precision fell"),
            ("promote", 2, "cli", "fixed"),
        ]
    );
    assert_eq!(log[3]["event_id"], "pii-20261129T041000Z-1");
    assert_eq!(log[5]["event_id"], "evt-9");
    let table = stdout(&modelwatch(&["models", "log", "pii", "--data", d]));
    assert!(
        table.lines().any(|l| l.contains("rollback") && l.contains("cli") && l.contains("precision fell")),
        "{table}"
    );
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock())).unwrap();
    assert_eq!(reg.alias("pii", Alias::Latest).unwrap(), Some(2));
}
