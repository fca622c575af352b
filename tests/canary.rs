//! The canary controller through a real store and registry on a manual clock: both arms
//! recorded by agents tagged with their versions, judged every window, promoted or rolled
//! back in the registry with the evidence in the audit log and the events table; and the
//! demo's three rounds.

use modelwatch::canary::{Canary, CanaryConfig, Step};
use modelwatch::query::judge::{Decision, JudgeConfig};
use modelwatch::{Agent, Clock, ManualClock, Prediction, Timestamp};
use modelwatch_store::registry::{Action, Alias, NewVersion, Op, Registry, RegistryConfig, Status};
use modelwatch_store::{Store, StoreConfig};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use super::support::Rng;

/// Every row of the store's events table.
fn events(store: &Store) -> Vec<modelwatch_store::EventRow> {
    let req = modelwatch_store::ReadRequest::new(
        modelwatch_store::Table::Events,
        0,
        i64::MAX / 2,
        modelwatch_store::Resolution::Raw,
    );
    store.read(&req).unwrap().events
}

const T0: u64 = 1_764_115_200_000; // 2025-11-26T00:00:00Z
const MIN: i64 = 60_000;

/// A registry with control 1 and challenger 2 (artifacts are a file each: the controller
/// never loads them).
fn registry(dir: &std::path::Path, clock: Arc<ManualClock>) -> Registry {
    let reg = Registry::open(RegistryConfig::new(dir, clock.clone())).unwrap();
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("model.json"), b"{}").unwrap();
    let auto = Action::new("auto", "test");
    reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
    reg.promote("pii", 1, &auto).unwrap();
    let mut v2 = NewVersion::new("pii", "logistic", art.path());
    v2.training.event_id = Some("pii-20251126T000000Z-1".into());
    reg.register(v2).unwrap();
    clock.advance(Duration::from_secs(30));
    reg.set_challenger("pii", 2, &Action::new("auto", "passed the gate")).unwrap();
    reg
}

/// Plays a canary: 1,000 requests a minute, 10 % to the challenger, whose latency is
/// `slow` times the control's and whose errors are `errors` (control: 0.5 %); labels for
/// 30 % of predictions arrive 10 minutes later, precision 0.9 on both arms. Checks every
/// 5 minutes until a decision or 12 h; returns the step and the minutes it took.
fn play(seed: u64, slow: f64, errors: f64) -> (tempfile::TempDir, Step, i64) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let reg = registry(dir.path(), clock.clone());
    let store =
        Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
    let agent = |variant: &str, version: &str| {
        Agent::builder("pii")
            .version(version)
            .variant(variant)
            .segments(["email"])
            .interval(Duration::from_secs(60))
            .clock(clock.clone())
            .background_flush(false)
            .build(store.clone())
            .unwrap()
    };
    let agents = [agent("control", "1"), agent("challenger", "2")];
    let handles: Vec<_> = agents.iter().map(|a| a.handle()).collect();
    let kind = handles[0].error_kind("timeout");
    let judge = JudgeConfig { max_duration_ms: 12 * 60 * MIN, ..JudgeConfig::default() };
    let config = CanaryConfig { judge, window_ms: 5 * MIN, maturity_ms: 20 * MIN, threshold: 0.5 };
    // The controller's store is another writer slot of the same directory, as in `serve`
    // beside a scorer: it sees the scorer's data only by refreshing.
    let own = Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap();
    let canary = Canary::new(&own, &reg, clock.clone(), config).unwrap();
    let mut rng = Rng::seeded(seed);
    let start = clock.now().as_millis() as i64;
    let mut labels: Vec<(i64, usize, i64, f64, bool)> = Vec::new();
    for minute in 1..=12 * 60 + 10 {
        let now = start + (minute - 1) * MIN;
        labels.retain(|&(due, arm, at, conf, label)| {
            if due > now {
                return true;
            }
            let seg = handles[arm].segment("email");
            handles[arm].feedback_for(Timestamp::from_millis(at as u64), seg, conf, label);
            false
        });
        for k in 0..1_000 {
            let t = now + k * MIN / 1_000;
            clock.set(Timestamp::from_millis(t as u64));
            let arm = usize::from(rng.u() < 0.10);
            let seg = handles[arm].segment("email");
            if rng.u() < if arm == 1 { errors } else { 0.005 } {
                handles[arm].error(seg, kind);
                continue;
            }
            let ms = 20.0 * if arm == 1 { slow } else { 1.0 } * (0.4 * rng.normal()).exp();
            // Half the predictions positive; 90 % of those right.
            let positive = rng.u() < 0.5;
            let conf = if positive { 0.5 + 0.5 * rng.u() } else { 0.5 * rng.u() };
            let label = if positive { rng.u() < 0.9 } else { rng.u() < 0.1 };
            handles[arm].record(&Prediction::new(seg, Duration::from_secs_f64(ms / 1e3), conf));
            if rng.u() < 0.3 {
                labels.push((t + 10 * MIN, arm, t, conf, label));
            }
        }
        clock.set(Timestamp::from_millis((now + MIN) as u64));
        for a in &agents {
            a.flush_due().unwrap();
        }
        if minute % 5 == 0 {
            let step = canary.check("pii").unwrap();
            if !matches!(step, Step::Watching { .. }) {
                for a in agents {
                    a.shutdown().unwrap();
                }
                drop(canary);
                drop(own);
                return (dir, step, minute);
            }
        }
    }
    panic!("seed {seed}: the canary never ended, not even at max_duration");
}

#[test]
fn an_equal_challenger_is_promoted_with_its_evidence_in_the_log_and_the_events_table() {
    let (dir, step, minutes) = play(1, 1.0, 0.005);
    let Step::Promoted { control: 1, challenger: 2, verdict, .. } = &step else {
        panic!("not promoted: {step:?}");
    };
    assert_eq!(verdict.decision, Decision::Promote);
    assert!(minutes < 12 * 60, "promoted only at max_duration: {minutes} min");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 + 13 * 3_600_000)));
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock)).unwrap();
    let aliases = reg.state("pii").unwrap().aliases().clone();
    assert_eq!(
        (aliases.get(Alias::Control), aliases.get(Alias::Latest), aliases.get(Alias::Challenger)),
        (Some(2), Some(2), None)
    );
    assert_eq!(reg.state("pii").unwrap().previous_controls(), &[1], "the old control stays for rollback");
    let last = reg.log("pii").unwrap().pop().unwrap();
    assert_eq!(
        (last.op, last.actor.as_str(), last.event_id.as_deref()),
        (Op::Promote, "canary", Some("pii-20251126T000000Z-1"))
    );
    assert!(last.reason.contains("canary passed"), "{}", last.reason);
    // The annotation, with every guardrail's figures, through the real binary's query path.
    let log = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["models", "log", "pii", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&log.stdout).contains("canary passed"));
    let store = Store::open_read_only(StoreConfig::new(dir.path())).unwrap();
    let rows = events(&store);
    let row = rows.iter().find(|e| &*e.kind == "canary_promoted").expect("a canary_promoted event");
    assert_eq!(&*row.version, "2");
    for g in ["latency_p95_ratio", "error_rate", "precision"] {
        assert!(row.message.contains(g), "the annotation names guardrail {g}: {}", row.message);
    }
}

#[test]
fn a_challenger_forty_percent_slower_live_is_rolled_back_and_never_serves_again() {
    let (dir, step, minutes) = play(2, 1.4, 0.005);
    let Step::RolledBack { control: 1, challenger: 2, verdict, .. } = &step else {
        panic!("not rolled back: {step:?}");
    };
    assert!(verdict.reason.contains("latency"), "the reason names the broken guardrail: {}", verdict.reason);
    assert!(minutes < 4 * 60, "a 40 % regression at 100 requests a minute took {minutes} min");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 + 13 * 3_600_000)));
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock)).unwrap();
    let state = reg.state("pii").unwrap();
    assert_eq!(
        (state.aliases().get(Alias::Control), state.aliases().get(Alias::Challenger)),
        (Some(1), None)
    );
    assert!(state.statuses().contains(&(2, Status::Rejected)), "{:?}", state.statuses());
    let store = Store::open_read_only(StoreConfig::new(dir.path())).unwrap();
    assert!(events(&store).iter().any(|e| &*e.kind == "canary_rolled_back"));
}

#[test]
fn errors_two_points_above_the_control_are_rolled_back() {
    let (_dir, step, _) = play(3, 1.0, 0.025);
    let Step::RolledBack { verdict, .. } = &step else { panic!("not rolled back: {step:?}") };
    assert!(verdict.reason.contains("error"), "{}", verdict.reason);
}

#[test]
fn no_challenger_no_control_and_a_canary_without_traffic_are_said_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let store = Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap();
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock.clone())).unwrap();
    let canary = Canary::new(&store, &reg, clock.clone(), CanaryConfig::default()).unwrap();
    assert!(canary.check("pii").is_err(), "an unknown model is an error, not a silent idle");
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("model.json"), b"{}").unwrap();
    reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
    assert!(matches!(canary.check("pii").unwrap(), Step::Idle));
    reg.set_challenger("pii", 1, &Action::new("auto", "t")).unwrap();
    assert!(matches!(canary.check("pii").unwrap(), Step::NoControl { challenger: 1 }));
    drop(canary);
    let other = tempfile::tempdir().unwrap();
    let reg = registry(other.path(), clock.clone());
    let canary = Canary::new(&store, &reg, clock.clone(), CanaryConfig::default()).unwrap();
    // Moving the alias away and back does not restart the canary: its max_duration counts
    // from the first time version 2 became the challenger.
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("model.json"), b"{}").unwrap();
    reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
    clock.advance(Duration::from_secs(3_600));
    reg.set_challenger("pii", 3, &Action::new("cli", "another")).unwrap();
    clock.advance(Duration::from_secs(3_600));
    reg.set_challenger("pii", 2, &Action::new("cli", "back")).unwrap();
    // No traffic at all for a day: never a promotion; rolled back at max_duration (24 h
    // from the first move, 2 h ago).
    for hour in 2..30 {
        clock.advance(Duration::from_secs(3_600));
        match canary.check("pii").unwrap() {
            Step::Watching { verdict, .. } => {
                assert_eq!(verdict.decision, Decision::Inconclusive, "hour {hour}")
            }
            Step::RolledBack { verdict, .. } => {
                assert_eq!(
                    hour, 23,
                    "rolled back at hour {hour}, not at 24 h from the first move: {}",
                    verdict.reason
                );
                return;
            }
            other => panic!("hour {hour}: {other:?}"),
        }
    }
    panic!("an empty canary was never rolled back");
}

#[test]
fn a_bad_configuration_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let store = Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap();
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock.clone())).unwrap();
    for (c, name) in [
        (CanaryConfig { window_ms: 0, ..CanaryConfig::default() }, "window_ms"),
        (CanaryConfig { threshold: f64::NAN, ..CanaryConfig::default() }, "threshold"),
        (
            CanaryConfig {
                judge: JudgeConfig { alpha: 1.5, ..JudgeConfig::default() },
                ..CanaryConfig::default()
            },
            "alpha",
        ),
        (
            CanaryConfig {
                judge: JudgeConfig { latency_ratio_margin: 1e300, ..JudgeConfig::default() },
                ..CanaryConfig::default()
            },
            "latency_ratio_margin",
        ),
        (CanaryConfig { window_ms: 2 * 86_400_000, ..CanaryConfig::default() }, "min_windows"),
    ] {
        let e = Canary::new(&store, &reg, clock.clone(), c).err().expect("refused").to_string();
        assert!(e.contains(name), "{e}");
    }
}

#[test]
fn the_demo_closes_the_loop_promoted_rejected_at_the_gate_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args([
            "demo",
            "--days",
            "2",
            "--end",
            "2026-11-29T04:10:00Z",
            "--seed",
            "7",
            "--format",
            "json",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rounds = doc["loop"]["rounds"].as_array().expect("the loop's rounds");
    let ended: Vec<&str> = rounds.iter().map(|r| r["ended"].as_str().unwrap()).collect();
    assert_eq!(ended, ["promoted", "rejected at the gate", "rolled back"], "{:#}", doc["loop"]);
    // The promoted version restores what the drift broke: the recall of phone numbers
    // (the new format the old regex feature misses), for at most 0.05 of precision in any
    // segment (phone numbers pay about 0.03: the README says so).
    let (before, after) =
        (doc["loop"]["versions"][0].as_u64().unwrap(), doc["loop"]["versions"][1].as_u64().unwrap());
    assert!(after > before, "the control moved: {before} -> {after}");
    for p in doc["loop"]["precision"].as_array().unwrap() {
        let f = |k: &str| p[k].as_f64().unwrap();
        assert!(f("after") > f("before") - 0.05, "precision fell in {p}");
        if p["segment"] == "phone" {
            assert!(f("recall_after") > f("recall_before") + 0.05, "phone recall not restored: {p}");
        }
    }
    // The registry and the triggers say the same, with reasons.
    let log = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["models", "log", "pii-confidence", "--format", "json", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let log: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
    let by_canary: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "canary")
        .map(|e| e["op"].as_str().unwrap())
        .collect();
    assert_eq!(by_canary, ["promote", "reject"], "{log:#}");
    let history = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["triggers", "history", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(history.contains("promote version") && history.contains("by canary: canary passed"), "{history}");
}

/// The registry set up for the command-line checks: control 1, challenger 2 since `T0`, no
/// traffic, so a check after 24 h rolls it back.
fn decided_canary() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    drop(registry(dir.path(), clock));
    drop(Store::open(StoreConfig::new(dir.path())).unwrap());
    dir
}

fn canary_rows(
    dir: &std::path::Path,
) -> (Vec<modelwatch_store::registry::AuditEntry>, Vec<modelwatch_store::EventRow>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0)));
    let reg = Registry::open(RegistryConfig::new(dir, clock)).unwrap();
    let log = reg.log("pii").unwrap().into_iter().filter(|e| e.actor == "canary").collect();
    let store = Store::open_read_only(StoreConfig::new(dir)).unwrap();
    (log, events(&store).into_iter().filter(|e| e.kind.starts_with("canary_")).collect())
}

#[test]
fn two_checks_at_once_decide_once_and_neither_fails() {
    let dir = decided_canary();
    let now = "2025-11-27T01:00:00Z"; // 25 h after the challenger moved
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["canary", "check", "pii", "--now", now, "--data"])
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (log, events) = canary_rows(dir.path());
    assert_eq!(log.len(), 1, "one decision: {log:?}");
    assert_eq!((log[0].op, log[0].version), (Op::Reject, Some(2)));
    assert_eq!(events.len(), 1, "one annotation: {events:?}");
    assert_eq!(events[0].time_ms, log[0].at_ms);
}

#[test]
fn a_decision_whose_annotation_was_lost_is_annotated_by_the_next_check_once() {
    let dir = decided_canary();
    // What a check killed between its registry change and its annotation leaves behind.
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 + 25 * 3_600_000)));
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock.clone())).unwrap();
    let entry = reg
        .reject("pii", 2, &Action::new("canary", "canary rolled back: inconclusive at max_duration"))
        .unwrap();
    assert!(canary_rows(dir.path()).1.is_empty());
    // A check in progress annotates within moments; a later check a minute on fills the gap.
    clock.advance(Duration::from_secs(120));
    let store = Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap();
    let canary = Canary::new(&store, &reg, clock.clone(), CanaryConfig::default()).unwrap();
    assert!(matches!(canary.check("pii").unwrap(), Step::Idle));
    assert!(matches!(canary.check("pii").unwrap(), Step::Idle));
    drop(canary);
    drop(store);
    let (_, events) = canary_rows(dir.path());
    assert_eq!(events.len(), 1, "written once: {events:?}");
    assert_eq!(
        (events[0].time_ms, &*events[0].kind, &*events[0].version),
        (entry.at_ms, "canary_rolled_back", "2")
    );
    assert!(events[0].message.contains("inconclusive at max_duration"), "{}", events[0].message);
}

#[test]
fn a_check_long_after_max_duration_reads_no_more_than_max_duration_and_rolls_back() {
    let dir = decided_canary();
    // One-second windows over a day: 86,400 windows, within the limits; a check 30 days
    // later would span 2.6 million windows if it read up to now.
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 + 30 * 86_400_000)));
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock.clone())).unwrap();
    let store = Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap();
    let judge = JudgeConfig { max_duration_ms: 86_400_000, ..JudgeConfig::default() };
    let config = CanaryConfig { judge, window_ms: 1_000, ..CanaryConfig::default() };
    let canary = Canary::new(&store, &reg, clock.clone(), config).unwrap();
    match canary.check("pii").unwrap() {
        Step::RolledBack { verdict, .. } => {
            assert!(verdict.reason.contains("max_duration"), "{}", verdict.reason)
        }
        other => panic!("{other:?}"),
    }
    // A window so small that max_duration spans more than the limit is refused up front.
    let judge = JudgeConfig { max_duration_ms: 30 * 86_400_000, ..JudgeConfig::default() };
    let e = Canary::new(
        &store,
        &reg,
        clock.clone(),
        CanaryConfig { judge, window_ms: 1_000, ..CanaryConfig::default() },
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(e.contains("window"), "{e}");
}
