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
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
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
    new.training.rows = 5_000;
    new.training.features = vec!["length".into(), "digits".into()];
    new.training.metrics.overall.insert("auc".into(), 0.875);
    reg.register(new.clone()).unwrap();
    new.training.parent = Some(1);
    reg.register(new).unwrap();
    reg.promote("pii", 1, &Action::new("auto", "first model")).unwrap();
    reg.promote("pii", 2, &Action::new("auto", "gate passed").event("pii-20261129T041000Z-1")).unwrap();
    reg
}

#[test]
fn a_tampered_artifact_is_named_when_it_is_fetched_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let reg = two_versions(dir.path());
    let stored = dir.path().join(reg.get("pii", 2).unwrap().meta.training.artifact.path);
    std::fs::write(stored.join("weights.bin"), [1u8, 2, 4]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = reg.fetch_artifact("pii", 2, out.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Tampered { version: 2, .. }), "{err:?}");
    assert!(msg.contains("\"weights.bin\"") && msg.contains("changed after registration"), "{msg}");
    assert!(!out.path().join("weights.bin").exists(), "nothing is fetched from a tampered artifact");
    let d = dir.path().to_str().unwrap();
    // `show` still shows what it can, and fails.
    let o = modelwatch(&["models", "show", "pii", "2", "--data", d, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "a tampered artifact fails `models show`: {}", stderr(&o));
    let shown: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(shown["artifact_check"].as_str().unwrap().contains("\"weights.bin\""), "{shown}");
    assert_eq!(shown["rows"].as_u64(), Some(5_000), "{shown}");
    assert!(stderr(&o).contains("\"weights.bin\""), "{}", stderr(&o));
    let o = modelwatch(&["models", "show", "pii", "2", "--data", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("changed after registration"), "{}", stdout(&o));
    reg.fetch_artifact("pii", 1, out.path()).unwrap();
    assert!(modelwatch(&["models", "show", "pii", "1", "--data", d]).status.success());
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

fn artifact() -> tempfile::TempDir {
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("model.json"), b"{\"coef\": [0.5]}").unwrap();
    art
}

#[test]
fn a_rollback_never_makes_a_rejected_version_the_control() {
    let dir = tempfile::tempdir().unwrap();
    let art = artifact();
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock())).unwrap();
    for _ in 0..4 {
        reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
    }
    let auto = Action::new("auto", "gate passed");
    for v in [1, 2, 3] {
        reg.promote("pii", v, &auto).unwrap();
    }
    // 2 is only retired, so it may be rejected; it must then never serve again.
    let e = reg.reject("pii", 2, &Action::new("cli", "leaks phone numbers")).unwrap();
    assert_eq!(e.note.as_deref(), Some("version 2 taken off the rollback stack"), "{e:?}");
    let e = reg.rollback("pii", &Action::new("cli", "regression")).unwrap();
    assert_eq!((e.version, e.previous), (Some(1), Some(3)), "the rollback skips rejected 2: {e:?}");
    assert_eq!(reg.get("pii", 2).unwrap().status, Status::Rejected);
    // With only rejected former controls left, a rollback is refused and records nothing.
    reg.promote("pii", 4, &auto).unwrap();
    reg.reject("pii", 1, &Action::new("cli", "also bad")).unwrap();
    reg.reject("pii", 3, &Action::new("cli", "also bad")).unwrap();
    let before = reg.log("pii").unwrap().len();
    let err = reg.rollback("pii", &Action::new("cli", "again")).unwrap_err().to_string();
    assert!(err.contains("no previous control"), "{err}");
    assert_eq!(reg.log("pii").unwrap().len(), before);
    let s = reg.state("pii").unwrap();
    assert_eq!((s.aliases().control, s.aliases().latest), (Some(4), Some(4)));
    assert!(s.statuses().iter().all(|(v, st)| (*v == 4) == (*st == Status::Control)), "{:?}", s.statuses());
}

#[test]
fn a_non_finite_metric_is_refused_at_registration_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let art = artifact();
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock())).unwrap();
    let mut nan = NewVersion::new("nanm", "logistic", art.path());
    nan.training.metrics.overall.insert("precision".into(), 0.9);
    nan.training.metrics.overall.insert("auc".into(), f64::NAN);
    let err = reg.register(nan).unwrap_err();
    assert!(matches!(err, RegistryError::Invalid { what: "metric", .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("\"auc\"") && msg.contains("NaN") && msg.contains("overall"), "{msg}");
    let mut inf = NewVersion::new("nanm", "logistic", art.path());
    inf.training.metrics.segments.insert("email".into(), [("recall".to_string(), f64::INFINITY)].into());
    let msg = reg.register(inf).unwrap_err().to_string();
    assert!(msg.contains("\"recall\"") && msg.contains("segment \"email\"") && msg.contains("inf"), "{msg}");
    assert!(reg.models().unwrap().is_empty(), "nothing was registered");
}

#[test]
fn one_unreadable_document_does_not_blind_a_listing_it_is_named_and_the_command_fails() {
    let dir = tempfile::tempdir().unwrap();
    let art = artifact();
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock())).unwrap();
    for model in ["aaa", "bbb", "ccc"] {
        for _ in 0..3 {
            reg.register(NewVersion::new(model, "logistic", art.path())).unwrap();
        }
        reg.promote(model, 3, &Action::new("auto", "first")).unwrap();
    }
    let d = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("registry/bbb/head.json"), b"{\"format\": 1, \"mod").unwrap();
    let o = modelwatch(&["models", "list", "--data", d, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let listed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert_eq!(names, ["aaa", "ccc"], "the readable models are listed");
    assert!(
        stderr(&o).contains("registry/bbb/head.json") && stderr(&o).contains("does not parse"),
        "{}",
        stderr(&o)
    );

    // One version's metadata unreadable: the others are listed.
    let v2 = reg.get("ccc", 2).unwrap();
    let meta = dir.path().join(&v2.meta.training.artifact.path).parent().unwrap().join("version.json");
    std::fs::write(&meta, b"").unwrap();
    let o = modelwatch(&["models", "list", "ccc", "--data", d, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let listed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let versions: Vec<u64> =
        listed.as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [1, 3]);
    assert!(stderr(&o).contains(&meta.display().to_string()), "{}", stderr(&o));

    // A lost audit entry: the rest of the log is shown, the missing file named.
    let lost = dir.path().join("registry/aaa/log/000000000002.json");
    std::fs::remove_file(&lost).unwrap();
    let o = modelwatch(&["models", "log", "aaa", "--data", d, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let log: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let seqs: Vec<u64> = log.as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 3, 4]);
    assert!(stderr(&o).contains("000000000002.json") && stderr(&o).contains("missing"), "{}", stderr(&o));
}

#[test]
fn an_edited_version_document_or_head_is_named_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let reg = two_versions(dir.path());
    let d = dir.path().to_str().unwrap();
    let v1 = reg.get("pii", 1).unwrap();
    let meta = dir.path().join(&v1.meta.training.artifact.path).parent().unwrap().join("version.json");
    let original = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, original.replace("\"rows\": 5000", "\"rows\": 9000000")).unwrap();
    let err = reg.get("pii", 1).unwrap_err();
    assert!(matches!(err, RegistryError::Tampered { version: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("\"version.json\" was changed after registration"), "{err}");
    std::fs::write(&meta, &original).unwrap();
    reg.get("pii", 1).unwrap();

    let head_path = dir.path().join("registry/pii/head.json");
    let head = std::fs::read_to_string(&head_path).unwrap();
    let mut edited: Value = serde_json::from_str(&head).unwrap();
    edited["aliases"]["control"] = 7.into();
    std::fs::write(&head_path, edited.to_string()).unwrap();
    let err = reg.state("pii").unwrap_err().to_string();
    assert!(
        err.contains("head.json") && err.contains("control alias names version 7, which is not registered"),
        "{err}"
    );
    let o = modelwatch(&["models", "promote", "pii", "1", "--reason", "x", "--data", d]);
    assert_eq!(o.status.code(), Some(1), "no change is made on a head that breaks its rules");
    assert!(stderr(&o).contains("version 7"), "{}", stderr(&o));

    let mut edited: Value = serde_json::from_str(&head).unwrap();
    edited["previous_controls"] = serde_json::json!([2, 1]);
    edited["versions"]["1"]["status"] = "rejected".into();
    std::fs::write(&head_path, edited.to_string()).unwrap();
    let err = reg.state("pii").unwrap_err().to_string();
    assert!(err.contains("rollback stack names version 1, which was rejected"), "{err}");
    let mut edited: Value = serde_json::from_str(&head).unwrap();
    edited["aliases"]["latest"] = 1.into();
    std::fs::write(&head_path, edited.to_string()).unwrap();
    let err = reg.state("pii").unwrap_err().to_string();
    assert!(err.contains("latest alias names version 1, whose status is retired"), "{err}");
    std::fs::write(&head_path, &head).unwrap();
    reg.state("pii").unwrap();
}

/// Four registries (as four processes would be) each register `each` versions at once:
/// every registration commits, numbered 1 to 4 × `each` without gaps, each logged once.
fn concurrent_registrations(each: u32, open: impl Fn() -> Registry + Send + Sync + 'static) {
    let open = Arc::new(open);
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (open, barrier) = (open.clone(), barrier.clone());
            std::thread::spawn(move || {
                let art = artifact();
                std::fs::write(art.path().join("weights.bin"), vec![7u8; 256 * 1024]).unwrap();
                let reg = open();
                barrier.wait();
                (0..each)
                    .map(|_| reg.register(NewVersion::new("pii", "logistic", art.path())))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut versions: Vec<u32> =
        results.iter().map(|r| r.as_ref().unwrap_or_else(|e| panic!("{e}")).meta.version).collect();
    versions.sort();
    assert_eq!(versions, (1..=4 * each).collect::<Vec<_>>());
    let reg = open();
    let log = reg.log("pii").unwrap();
    assert_eq!(log.len() as u32, 4 * each);
    let retried = log.iter().filter(|e| e.note.is_some()).count();
    eprintln!("concurrent registrations: {retried} of {} needed a retry", log.len());
    for v in reg.versions("pii").unwrap() {
        reg.verify_artifact("pii", v.meta.version).unwrap();
    }
}

#[test]
fn concurrent_registrations_all_commit_with_contiguous_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    concurrent_registrations(5, move || Registry::open(RegistryConfig::new(&path, clock())).unwrap());
}

#[test]
fn on_moto_concurrent_registrations_retry_their_conflicts_and_all_commit() {
    let moto = Moto::start();
    moto.create_bucket("registry-test");
    let config = s3(&moto, "registrations");
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    concurrent_registrations(3, move || {
        Registry::open(RegistryConfig { dir: dir.clone(), objects: Some(config.clone()), clock: clock() })
            .unwrap()
    });
}

#[test]
fn orphaned_version_directories_are_listed_and_removed_by_models_gc() {
    let dir = tempfile::tempdir().unwrap();
    two_versions(dir.path());
    let d = dir.path().to_str().unwrap();
    let orphan = dir.path().join("registry/pii/versions/3-00000000deadbeef");
    std::fs::create_dir_all(orphan.join("artifact")).unwrap();
    std::fs::write(orphan.join("artifact/weights.bin.tmp"), b"half").unwrap();
    // Too young by default: a registration may still be copying into it.
    let listed = json(&["models", "gc", "pii", "--data", d, "--format", "json"]);
    assert_eq!(listed, serde_json::json!([]));
    let listed = json(&["models", "gc", "pii", "--older-than", "0", "--data", d, "--format", "json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        (listed[0]["dir"].as_str(), listed[0]["deleted"].as_bool()),
        (Some("3-00000000deadbeef"), Some(false))
    );
    assert!(orphan.exists(), "listing deletes nothing");
    let o = modelwatch(&["models", "gc", "pii", "--older-than", "0", "--delete", "--data", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("3-00000000deadbeef") && stdout(&o).contains("yes"), "{}", stdout(&o));
    assert!(!orphan.exists());
    let versions = std::fs::read_dir(dir.path().join("registry/pii/versions")).unwrap().count();
    assert_eq!(versions, 2, "the registered versions are kept");
    for v in ["1", "2"] {
        let shown = json(&["models", "show", "pii", v, "--data", d, "--format", "json"]);
        assert_eq!(shown["artifact_check"], "verified");
    }
}

/// A version's keys as the store wrote and the CLI printed them before its trained fields
/// became one struct flattened into it, in that order (`docs/storage-format.md`'s), then
/// the ones [`VersionInfo`](modelwatch::store::registry::VersionInfo) adds.
const VERSION_KEYS: [&str; 16] = [
    "model",
    "version",
    "created_at_ms",
    "trainer_kind",
    "training_window",
    "rows",
    "features",
    "metrics",
    "feature_importance",
    "split",
    "artifact",
    "parent",
    "event_id",
    "status",
    "gate_report",
    "aliases",
];

#[test]
fn models_show_and_list_print_a_versions_json_keys_as_before() {
    let dir = tempfile::tempdir().unwrap();
    two_versions(dir.path());
    let d = dir.path().to_str().unwrap();
    let show = json(&["models", "show", "pii", "2", "--data", d, "--format", "json"]);
    let mut expected: Vec<&str> = VERSION_KEYS.into_iter().chain(["artifact_check"]).collect();
    expected.sort_unstable();
    assert_eq!(show.as_object().unwrap().keys().map(String::as_str).collect::<Vec<_>>(), expected);
    // `models list MODEL` prints the versions in field order, where order shows: pretty, a
    // version's own keys are the lines indented four spaces.
    let o = modelwatch(&["models", "list", "pii", "--data", d, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let keys: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("    \"")?.split_once("\":")).map(|(k, _)| k).collect();
    assert_eq!(keys, [VERSION_KEYS, VERSION_KEYS].concat(), "{text}");
}

#[test]
fn cli_nits_long_values_blank_reasons_repeated_promotions_and_stable_json_keys() {
    let dir = tempfile::tempdir().unwrap();
    two_versions(dir.path());
    let d = dir.path().to_str().unwrap();
    let long = "m".repeat(10_000);
    let o = modelwatch(&["models", "promote", &long, "1", "--reason", "x", "--data", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).len() < 500 && stderr(&o).contains("(10000 bytes)"), "{} bytes", stderr(&o).len());
    let reason = "r".repeat(100_000);
    let o = modelwatch(&["models", "rollback", "pii", "--reason", &reason, "--data", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).len() < 500 && stderr(&o).contains("(100000 bytes)"), "{} bytes", stderr(&o).len());
    for blank in ["", "   "] {
        let o = modelwatch(&["models", "rollback", "pii", "--reason", blank, "--data", d]);
        assert_eq!(o.status.code(), Some(2), "{blank:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("invalid reason"), "{}", stderr(&o));
    }
    // Promoting the control again: nothing to do, said, success, nothing recorded.
    let o = modelwatch(&["models", "promote", "pii", "2", "--reason", "again", "--data", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("already the control; nothing was recorded"), "{}", stderr(&o));
    let log = json(&["models", "log", "pii", "--data", d, "--format", "json"]);
    assert_eq!(log.as_array().unwrap().len(), 4);
    let keys: Vec<Vec<&String>> =
        log.as_array().unwrap().iter().map(|e| e.as_object().unwrap().keys().collect()).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    assert!(keys[0].iter().any(|k| *k == "output"), "{keys:?}");
    // A file error is said once (it was said twice: once as the message, once as its cause).
    std::fs::create_dir(dir.path().join("registry/pii/.lock")).unwrap_or_else(|_| {
        std::fs::remove_file(dir.path().join("registry/pii/.lock")).unwrap();
        std::fs::create_dir(dir.path().join("registry/pii/.lock")).unwrap();
    });
    let o = modelwatch(&["models", "promote", "pii", "1", "--reason", "x", "--data", d]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(".lock") && err.matches("Is a directory").count() == 1, "{err}");
}

#[test]
fn times_never_go_back_when_the_clock_does() {
    let dir = tempfile::tempdir().unwrap();
    let art = artifact();
    let clock = clock();
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock.clone())).unwrap();
    clock.set(Timestamp::from_secs(T0 + 86_400));
    reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
    clock.set(Timestamp::from_secs(T0));
    let v2 = reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
    reg.promote("pii", 2, &Action::new("cli", "go")).unwrap();
    assert_eq!(v2.meta.created_at_ms, ((T0 + 86_400) * 1000) as i64, "not before version 1's");
    let times: Vec<i64> = reg.log("pii").unwrap().iter().map(|e| e.at_ms).collect();
    assert_eq!(times, [((T0 + 86_400) * 1000) as i64; 3]);
    clock.set(Timestamp::from_secs(T0 + 90_000));
    let e = reg.rollback("pii", &Action::new("cli", "back")).unwrap_err();
    assert!(e.to_string().contains("no previous control"), "{e}");
    let e = reg.reject("pii", 1, &Action::new("cli", "later")).unwrap();
    assert_eq!(e.at_ms, ((T0 + 90_000) * 1000) as i64, "a clock ahead is followed");
}

/// An HTTP proxy in front of moto that forwards every request, one connection each, except
/// that it performs the first conditional PUT of a `head.json` (`If-Match`) and then closes
/// the connection without its reply: a reply lost on the network after the write happened.
struct LostReplyProxy {
    port: u16,
    dropped: Arc<std::sync::atomic::AtomicUsize>,
}

fn lost_reply_proxy(upstream: u16) -> LostReplyProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = dropped.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let counter = counter.clone();
            std::thread::spawn(move || forward(conn, upstream, &counter));
        }
    });
    LostReplyProxy { port, dropped }
}

fn forward(mut client: TcpStream, upstream: u16, dropped: &std::sync::atomic::AtomicUsize) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut reader = std::io::BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push(line),
        }
    }
    let header = |name: &str| {
        head.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let mut body = vec![0; header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let lose = head[0].starts_with("PUT ")
        && head[0].contains("head.json")
        && header("if-match").is_some()
        && dropped.compare_exchange(0, 1, SeqCst, SeqCst).is_ok();
    let mut request: String =
        head.iter().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).cloned().collect();
    request.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    up.write_all(request.as_bytes()).unwrap();
    up.write_all(&body).unwrap();
    let mut reply = Vec::new();
    up.read_to_end(&mut reply).unwrap();
    if lose {
        let _ = client.shutdown(std::net::Shutdown::Both);
        return;
    }
    let _ = client.write_all(&reply);
}

#[test]
fn on_s3_a_lost_reply_to_a_committed_head_write_is_recognised_as_this_writes_commit() {
    let moto = Moto::start();
    moto.create_bucket("registry-test");
    let proxy = lost_reply_proxy(moto.port);
    let mut config = s3(&moto, "lost");
    for (k, v) in &mut config.options {
        if k == "endpoint" {
            *v = format!("http://127.0.0.1:{}", proxy.port);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(RegistryConfig {
        dir: dir.path().to_path_buf(),
        objects: Some(config),
        clock: clock(),
    })
    .unwrap();
    let art = artifact();
    reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
    // Its head write (If-Match) is done, but its reply is lost; object_store's retry then
    // finds the ETag moved (412), which is this very write.
    let v2 = reg.register(NewVersion::new("pii", "logistic", art.path()));
    assert_eq!(proxy.dropped.load(std::sync::atomic::Ordering::SeqCst), 1, "the proxy lost one reply");
    let v2 = v2.unwrap_or_else(|e| panic!("the committed registration is reported as failed: {e}"));
    assert_eq!(v2.meta.version, 2);
    let versions: Vec<u32> = reg.versions("pii").unwrap().iter().map(|v| v.meta.version).collect();
    assert_eq!(versions, [1, 2], "registered once, not again as a retry");
    assert_eq!(reg.log("pii").unwrap().len(), 2);
    reg.promote("pii", 2, &Action::new("auto", "go")).unwrap();
    assert_eq!(reg.alias("pii", Alias::Control).unwrap(), Some(2));
}

const RSS_CHILD: &str = "MODELWATCH_TEST_REGISTRY_RSS_CHILD";

/// The process's peak resident memory so far, KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Not a test by itself: the child of the one below, in a fresh process so that its peak
/// memory is its own. Registers and verifies the artifact named by [`RSS_CHILD`].
#[test]
fn rss_child_registers_a_big_artifact_when_its_parent_asks() {
    let Ok(spec) = std::env::var(RSS_CHILD) else { return };
    let (data, art) = spec.split_once('|').unwrap();
    let reg = Registry::open(RegistryConfig::new(data, clock())).unwrap();
    let before = peak_rss_kib();
    reg.register(NewVersion::new("big", "logistic", art)).unwrap();
    let registered = peak_rss_kib();
    reg.verify_artifact("big", 1).unwrap();
    let fetched = tempfile::tempdir().unwrap();
    reg.fetch_artifact("big", 1, fetched.path()).unwrap();
    let read = peak_rss_kib();
    println!("peak growth KiB: register {} verify+fetch {}", registered - before, read - before);
}

#[test]
fn registering_verifying_and_fetching_a_64_mib_artifact_takes_a_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let art = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(art.path().join("weights.bin")).unwrap();
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    for _ in 0..64 {
        f.write_all(&chunk).unwrap();
    }
    drop(f);
    let spec = format!("{}|{}", dir.path().display(), art.path().display());
    let o = Command::new(std::env::current_exe().unwrap())
        .args(["registry::rss_child_registers_a_big_artifact_when_its_parent_asks", "--exact", "--nocapture"])
        .env(RSS_CHILD, spec)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    let line = out.lines().find(|l| l.starts_with("peak growth KiB")).unwrap_or_else(|| panic!("{out}"));
    let figures: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    // 64 MiB whole in memory would be 65,536 KiB at least; a streaming copy needs its buffer.
    assert!(figures.len() == 2 && figures.iter().all(|kib| *kib < 16 * 1024), "{line}");
}
