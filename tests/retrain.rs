//! The retraining manager through `modelwatch retrain`, as a user runs it: a store with
//! labelled examples and a control in the registry, a retraining event from
//! `modelwatch triggers fire`, then the run, its gate report and its outcome; runs again,
//! at once, and killed with SIGKILL at random moments.

use crate::cli::text;
use crate::support::Rng;
use modelwatch::ManualClock;
use modelwatch::agent::Timestamp;
use modelwatch::retrain::{LinearModel, RunRecord, Step};
use modelwatch::store::examples::{Example, ExampleSet};
use modelwatch::store::registry::{Action, NewVersion, Op, Registry, RegistryConfig, Status};
use modelwatch::store::{Store, StoreConfig};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 2026-11-29T00:00:00Z: every run is "now" this, whatever the hour.
pub(crate) const NOW_MS: i64 = 1_795_910_400_000;
pub(crate) const NOW: &str = "2026-11-29T00:00:00Z";
const TRUTH: [f64; 4] = [1.2, -1.0, 0.8, 0.0];

pub(crate) fn modelwatch(dir: &Path, args: &[&str]) -> Output {
    crate::cli::modelwatch_at(dir, NOW, args)
}

pub(crate) fn registry(dir: &Path) -> Registry {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(NOW_MS as u64)));
    Registry::open(RegistryConfig::new(dir, clock)).unwrap()
}

/// `rows` labelled examples of `pii` over the 10 days before NOW (labels from a logistic
/// model of 4 features, two segments), and a control: a linear model with `control`'s
/// coefficients, promoted.
pub(crate) fn setup(dir: &Path, rows: usize, control: [f64; 4]) {
    let mut rng = Rng::seeded(42);
    let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let mut set = ExampleSet::new(names.clone());
    for i in 0..rows {
        let x: Vec<f64> = (0..4).map(|_| rng.normal()).collect();
        let z: f64 = -0.8 + x.iter().zip(TRUTH).map(|(x, w)| x * w).sum::<f64>();
        let t = NOW_MS - 10 * 86_400_000 + (i as i64) * (10 * 86_400_000 / rows as i64);
        set.rows.push(Example {
            prediction_id: format!("p{i}"),
            predicted_ms: t,
            label_ms: t + 60_000,
            segment: ["email", "phone"][i % 2].into(),
            features: x,
            confidence: 0.5,
            label: rng.u() < 1.0 / (1.0 + (-z).exp()),
        });
    }
    // Labels arriving after the event are not the run's: one that would change everything.
    let mut late = set.rows[rows - 1].clone();
    late.prediction_id = "late".into();
    late.label_ms = NOW_MS + 1;
    set.rows.push(late);
    let store = Store::open(StoreConfig::new(dir)).unwrap();
    store.append_examples("pii", set).unwrap();
    store.flush().unwrap();
    drop(store);
    let artifact = tempfile::tempdir().unwrap();
    let m = LinearModel::new(names, control.to_vec(), -0.8, vec![]).unwrap();
    std::fs::write(artifact.path().join("model.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::write(artifact.path().join("metadata.json"), b"{}").unwrap();
    let reg = registry(dir);
    let v = reg.register(NewVersion::new("pii", "logistic", artifact.path())).unwrap();
    reg.promote("pii", v.meta.version, &Action::new("test", "the control")).unwrap();
}

pub(crate) fn config(dir: &Path, extra: &str) -> String {
    let path = dir.join("modelwatch.toml");
    std::fs::write(&path, format!("[triggers]\nmodel = \"pii\"\n[retrain]\nmin_examples = 100\n{extra}"))
        .unwrap();
    path.to_str().unwrap().to_string()
}

fn fire(dir: &Path, cfg: &str) -> String {
    let o = modelwatch(
        dir,
        &["triggers", "fire", "--reason", "test", "--force", "--config", cfg, "--format", "json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"].as_str().unwrap().to_string()
}

fn retrain(dir: &Path, cfg: &str, event: &str) -> Output {
    modelwatch(
        dir,
        &["retrain", "--event", event, "--config", cfg, "--simulated-latency", "2,2", "--format", "json"],
    )
}

/// What the registry and the trigger state hold for `event`: the versions registered for
/// it, its outcome entries (challenger or reject), its gate report entries, and the
/// acknowledgement's outcome.
pub(crate) fn recorded(dir: &Path, event: &str) -> (Vec<u32>, usize, usize, Option<String>) {
    let reg = registry(dir);
    let versions: Vec<u32> = reg
        .versions("pii")
        .unwrap()
        .iter()
        .filter(|v| v.meta.training.event_id.as_deref() == Some(event))
        .map(|v| v.meta.version)
        .collect();
    let log = reg.log("pii").unwrap();
    let mine =
        |op: &[Op]| log.iter().filter(|e| e.event_id.as_deref() == Some(event) && op.contains(&e.op)).count();
    let state = modelwatch::triggers::read_state(dir).unwrap();
    let rec = state.history.iter().find(|r| r.event.id == event).unwrap();
    let acked = rec.acked_at_ms.map(|_| rec.outcome.clone().unwrap_or_default());
    (versions, mine(&[Op::Challenger, Op::Reject]), mine(&[Op::GateReport]), acked)
}

#[test]
fn a_better_challenger_is_registered_as_the_challenger_with_its_gate_report() {
    let dir = tempfile::tempdir().unwrap();
    // The control misses feature c: the retrained model gains far more than 0.02 AUC. The
    // importance shift is allowed here (the control put nothing on c), as a user would
    // who expects the new feature to matter.
    setup(dir.path(), 6_000, [1.2, -1.0, 0.0, 0.0]);
    let cfg = config(dir.path(), "[gate]\nmax_importance_shift = 0.5\n");
    let id = fire(dir.path(), &cfg);
    let o = retrain(dir.path(), &cfg, &id);
    assert!(o.status.success(), "{}", text(&o));
    let rec: RunRecord = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec.step, Step::Acknowledged);
    let report = rec.report.as_ref().unwrap();
    assert!(report.passed, "{report:?}");
    assert_eq!(report.criteria.len(), 4);
    let auc = &report.criteria[0];
    assert!(auc.figures["lower_bound"].as_f64().unwrap() >= 0.02, "{auc:?}");
    let version = rec.version.unwrap();
    let reg = registry(dir.path());
    assert_eq!(reg.alias("pii", modelwatch::store::registry::Alias::Challenger).unwrap(), Some(version));
    let info = reg.get("pii", version).unwrap();
    assert_eq!(info.meta.training.event_id.as_deref(), Some(id.as_str()));
    assert_eq!(info.gate_report.as_ref().unwrap()["passed"], true);
    // Importance stored with the version: permutation (every feature) and exact SHAP.
    let imp = &info.meta.training.feature_importance;
    assert_eq!(imp["permutation"]["overall"]["features"].as_array().unwrap().len(), 4, "{imp}");
    assert!(imp["shap"]["overall"]["c"].as_f64().unwrap() > 0.0, "{imp}");
    // The late label was left out: the hold-out and training rows add up to the 6,000.
    assert_eq!(
        info.meta.training.split["train_rows"].as_u64().unwrap()
            + info.meta.training.split["holdout_rows"].as_u64().unwrap(),
        6_000
    );
    let (versions, outcomes, reports, acked) = recorded(dir.path(), &id);
    assert_eq!((versions, outcomes, reports), (vec![version], 1, 1));
    assert!(acked.unwrap().starts_with(&format!("challenger: version {version}")));
    // The table a person reads names every criterion.
    let o = modelwatch(dir.path(), &["retrain", "--event", &id, "--config", &cfg]);
    let out = String::from_utf8_lossy(&o.stdout);
    for c in ["auc_gain", "latency", "importance_shift", "segment_quality", "PASSED", "outcome: challenger"] {
        assert!(out.contains(c), "{c} missing from:\n{out}");
    }
    // `models show` reads the report and the importance as a person would.
    let o = modelwatch(dir.path(), &["models", "show", "pii", &version.to_string()]);
    let out = String::from_utf8_lossy(&o.stdout);
    for c in [
        "gate auc_gain",
        "gate segment_quality",
        "passed against control version 1",
        "importance (permutation, auc, 5 repeats)",
        "importance (SHAP",
    ] {
        assert!(out.contains(c), "{c} missing from:\n{out}");
    }
    assert!(!out.contains("positives=") || !out.contains(".0000 "), "counts print as counts:\n{out}");
}

#[test]
fn a_challenger_no_better_than_the_control_is_rejected_with_the_reason_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 4_000, TRUTH);
    let cfg = config(dir.path(), "");
    let id = fire(dir.path(), &cfg);
    let first = retrain(dir.path(), &cfg, &id);
    assert!(first.status.success(), "{}", text(&first));
    let rec: RunRecord = serde_json::from_slice(&first.stdout).unwrap();
    let version = rec.version.unwrap();
    let report = rec.report.as_ref().unwrap();
    assert!(!report.passed);
    assert!(report.reasons().iter().any(|r| r.starts_with("auc_gain:")), "{:?}", report.reasons());
    assert_eq!(registry(dir.path()).get("pii", version).unwrap().status, Status::Rejected);
    let log_len = registry(dir.path()).log("pii").unwrap().len();
    let again = retrain(dir.path(), &cfg, &id);
    assert!(again.status.success(), "{}", text(&again));
    let rec2: RunRecord = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(rec2, rec, "a finished run is returned as it was");
    assert_eq!(registry(dir.path()).log("pii").unwrap().len(), log_len);
    let (versions, outcomes, reports, acked) = recorded(dir.path(), &id);
    assert_eq!((versions, outcomes, reports), (vec![version], 1, 1));
    assert!(acked.unwrap().starts_with(&format!("rejected: version {version}: auc_gain")));
}

#[test]
fn too_few_examples_end_in_a_failed_outcome_that_is_acknowledged_and_registers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 150, TRUTH);
    // The default retrain.min_examples, 200.
    let cfg = dir.path().join("modelwatch.toml");
    std::fs::write(&cfg, "[triggers]\nmodel = \"pii\"\n").unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let id = fire(dir.path(), &cfg);
    let o = retrain(dir.path(), &cfg, &id);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let rec: RunRecord = serde_json::from_slice(&o.stdout).unwrap();
    let failed = serde_json::to_string(&rec.outcome).unwrap();
    assert!(failed.contains("150 labelled examples") && failed.contains("min_examples = 200"), "{failed}");
    let (versions, outcomes, _, acked) = recorded(dir.path(), &id);
    assert_eq!((versions.len(), outcomes), (0, 0));
    assert!(acked.unwrap().starts_with("failed: 150 labelled examples"));
    let o = modelwatch(dir.path(), &["retrain", "--event", "pii-nope", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such event"), "{}", text(&o));
}

#[test]
fn two_runs_of_one_event_at_once_record_one_outcome() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 4_000, TRUTH);
    let cfg = config(dir.path(), "");
    let id = fire(dir.path(), &cfg);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["retrain", "--event", &id, "--config", &cfg, "--simulated-latency", "2,2"])
            .args(["--data", dir.path().to_str().unwrap(), "--now", NOW])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    // Whichever came second waited for nothing: it either found the run over, or was told
    // another holds the data directory.
    for o in [&a, &b] {
        assert!(
            o.status.success()
                || String::from_utf8_lossy(&o.stderr).contains("running elsewhere")
                || String::from_utf8_lossy(&o.stderr).contains("another retraining run"),
            "{}",
            text(o)
        );
    }
    assert!(a.status.success() || b.status.success(), "{}\n{}", text(&a), text(&b));
    let (versions, outcomes, reports, acked) = recorded(dir.path(), &id);
    assert_eq!((versions.len(), outcomes, reports), (1, 1, 1));
    assert!(acked.is_some());
}

/// The issue's crash test: 20 events, each run killed with SIGKILL at a random moment of
/// a whole run's time (one in each twentieth of it), then run to its end: each leads to exactly one version and one
/// outcome, recorded once, and is acknowledged. The kills must have landed at different
/// steps (at least three of: no journal yet and the journal's steps), or the test proves
/// nothing.
#[test]
fn runs_killed_at_random_moments_each_lead_to_exactly_one_outcome_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 4_000, TRUTH);
    let cfg = config(dir.path(), "");
    // How long a whole run takes here (the median of three): the kills are spread over
    // it, one in each twentieth of 1.1 times it at a random point (stratified, so they
    // reach from before the journal exists to past the end whatever the draw).
    let mut runs: Vec<std::time::Duration> = (0..3)
        .map(|_| {
            let warm = fire(dir.path(), &cfg);
            let start = Instant::now();
            assert!(retrain(dir.path(), &cfg, &warm).status.success());
            start.elapsed()
        })
        .collect();
    runs.sort();
    let whole = runs[1];
    let mut rng = Rng::seeded(2026);
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..20 {
        let id = fire(dir.path(), &cfg);
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["retrain", "--event", &id, "--config", &cfg, "--simulated-latency", "2,2"])
            .args(["--data", dir.path().to_str().unwrap(), "--now", NOW])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(1.1 * (i as f64 + rng.u()) / 20.0));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let journal = dir.path().join("retrain/runs").join(format!("{id}.json"));
        let step = std::fs::read(&journal)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok())
            .map_or("none".to_string(), |r| format!("{:?}", r.step));
        *seen.entry(step).or_default() += 1;
        let o = retrain(dir.path(), &cfg, &id);
        assert!(o.status.success(), "{}", text(&o));
        let (versions, outcomes, reports, acked) = recorded(dir.path(), &id);
        assert_eq!((versions.len(), outcomes, reports), (1, 1, 1), "event {id}");
        assert!(acked.is_some(), "event {id} not acknowledged");
    }
    eprintln!("journal steps seen after the kills: {seen:?} (a whole run: {whole:?})");
    assert!(seen.len() >= 3, "the kills all landed at the same steps: {seen:?}");
    // Nothing is left half-written: the registry reads whole.
    let o = modelwatch(dir.path(), &["models", "list", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// `serve --triggers CFG --retrain`: an event left unacknowledged while no server ran is
/// retrained when it starts, and one fired over HTTP is retrained on the manager's thread
/// while the server answers; each is acknowledged with its outcome.
#[test]
fn serve_with_retrain_runs_the_events_the_triggers_fire_and_those_left_from_before() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 4_000, TRUTH);
    let cfg = config(dir.path(), "");
    let before = fire(dir.path(), &cfg);
    // Fired and acknowledged by hand before the server starts: its channel delivery is
    // still due, and must not be retrained.
    let taken = fire(dir.path(), &cfg);
    let o = modelwatch(dir.path(), &["triggers", "ack", &taken, "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let port = crate::support::free_port();
    let _server = crate::support::Killed(
        Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["serve", "--data", dir.path().to_str().unwrap(), "--now", NOW])
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--triggers",
                &cfg,
                "--retrain",
                "--check-every",
                "1h",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let acked = |id: &str| {
        modelwatch::triggers::read_state(dir.path())
            .ok()
            .and_then(|s| s.history.iter().find(|r| r.event.id == id).and_then(|r| r.outcome.clone()))
    };
    let wait = |id: &str| {
        let start = Instant::now();
        loop {
            if let Some(o) = acked(id) {
                return o;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(180), "{id} was not retrained");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    assert!(wait(&before).starts_with("rejected: version 2"), "{:?}", acked(&before));
    let (status, body) = crate::support::http(
        port,
        "POST",
        "/api/v1/triggers/fire",
        "",
        r#"{"reason": "new labels from the audit", "force": true}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
    // The server answers while the manager trains.
    let (status, _) = crate::support::http(port, "GET", "/healthz", "", "").unwrap();
    assert_eq!(status, 200);
    assert!(wait(&id).starts_with("rejected: version 3"), "{:?}", acked(&id));
    for e in [&before, &id] {
        let (versions, outcomes, reports, _) = recorded(dir.path(), e);
        assert_eq!((versions.len(), outcomes, reports), (1, 1, 1), "event {e}");
    }
    let (versions, outcomes, _, acked) = recorded(dir.path(), &taken);
    assert_eq!((versions.len(), outcomes), (0, 0), "an event acknowledged by hand was retrained");
    assert_eq!(acked.as_deref(), Some(""), "its acknowledgement is the hand's, without an outcome");
}

/// Examples labelled before the event but written after its training began (an agent's
/// late flush, a late import of older rows) must not reach the hold-out the version is
/// judged on: it would differ from the one its figures were taken on, and could overlap
/// what it was trained on. The run keeps its hold-out from training to judging.
#[test]
fn a_run_is_judged_on_the_hold_out_it_was_trained_with_whatever_arrives_meanwhile() {
    use modelwatch::retrain::gate::{FixedLatency, GateConfig};
    use modelwatch::retrain::{
        Acknowledge, LogisticTrainer, ModelLoader, RetrainConfig, RetrainManager, TrainError, Trained,
        Trainer, TrainingData,
    };
    use modelwatch::triggers::RetrainEvent;

    /// Trains as the logistic trainer does, and meanwhile appends newer labelled examples.
    struct Appending(Arc<Store>, ExampleSet);
    impl Trainer for Appending {
        fn kind(&self) -> String {
            LogisticTrainer::default().kind()
        }
        fn train(&self, data: &TrainingData, out: &Path) -> Result<Trained, TrainError> {
            self.0.append_examples("pii", self.1.clone()).unwrap();
            LogisticTrainer::default().train(data, out)
        }
    }
    struct Acks(Vec<String>);
    impl Acknowledge for Acks {
        fn acknowledge(&mut self, id: &str, outcome: &str) -> Result<(), String> {
            self.0.push(format!("{id}: {outcome}"));
            Ok(())
        }
    }

    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 2_000, TRUTH);
    let store = Arc::new(Store::open(StoreConfig::new(dir.path())).unwrap());
    let mut late = ExampleSet::new(["a", "b", "c", "d"].map(String::from).to_vec());
    for i in 0..500 {
        late.rows.push(Example {
            prediction_id: format!("late{i}"),
            predicted_ms: NOW_MS - 1_000 + i,
            label_ms: NOW_MS - 500,
            segment: "email".into(),
            features: vec![0.0; 4],
            confidence: 0.5,
            label: i % 2 == 0,
        });
    }
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(NOW_MS as u64)));
    let config = RetrainConfig { model: "pii".into(), min_examples: 100, ..RetrainConfig::default() };
    let probe =
        Box::new(FixedLatency { control: Duration::from_millis(2), challenger: Duration::from_millis(2) });
    let manager = RetrainManager::new(
        config,
        GateConfig::default(),
        store.clone(),
        registry(dir.path()),
        dir.path(),
        clock,
        probe,
    )
    .unwrap()
    .with_trainer(Box::new(Appending(store.clone(), late)), ModelLoader::new());
    let event =
        RetrainEvent { id: "pii-test-1".into(), model: "pii".into(), fired_at_ms: NOW_MS, reasons: vec![] };
    let mut acks = Acks(Vec::new());
    let rec = manager.run(&event, &mut acks).unwrap();
    let info = registry(dir.path()).get("pii", rec.version.unwrap()).unwrap();
    let held = info.meta.training.split["holdout_rows"].as_u64().unwrap() as usize;
    assert_eq!(held, 400, "a fifth of the 2,000 examples the event saw");
    assert_eq!(rec.report.unwrap().holdout_rows, held, "judged on the hold-out it was trained with");
    assert_eq!(acks.0.len(), 1);
    // Nothing is left behind once the run is over.
    let runs: Vec<_> =
        std::fs::read_dir(dir.path().join("retrain/runs")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(runs, [std::ffi::OsString::from("pii-test-1.json")]);
}

/// Promotes, in place of `setup`'s control, a linear model over `names` with `weights`
/// (the feature list the control was trained on, which need not be the data's).
fn promote_control(dir: &Path, names: &[&str], weights: &[f64]) {
    let artifact = tempfile::tempdir().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let m = LinearModel::new(names, weights.to_vec(), -0.8, vec![]).unwrap();
    std::fs::write(artifact.path().join("model.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::write(artifact.path().join("metadata.json"), b"{}").unwrap();
    let reg = registry(dir);
    let v = reg.register(NewVersion::new("pii", "logistic", artifact.path())).unwrap();
    reg.promote("pii", v.meta.version, &Action::new("test", "a control of other features")).unwrap();
}

/// The control is the true model, trained when the features came in another order (and,
/// in the second case, before feature d existed, whose true weight is 0): scored by name
/// it is as good as any retrained model, so the challenger is rejected on `auc_gain`.
/// Scored by position, the control's columns are misaligned (or the wrong length, which
/// scores NaN) and the challenger passes against a control that only looks bad.
#[test]
fn a_control_trained_on_another_feature_list_is_scored_by_feature_name() {
    for (names, weights) in [
        (vec!["d", "c", "b", "a"], vec![TRUTH[3], TRUTH[2], TRUTH[1], TRUTH[0]]),
        (vec!["a", "b", "c"], vec![TRUTH[0], TRUTH[1], TRUTH[2]]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path(), 4_000, [0.0; 4]);
        promote_control(dir.path(), &names, &weights);
        let cfg = config(dir.path(), "");
        let id = fire(dir.path(), &cfg);
        let o = retrain(dir.path(), &cfg, &id);
        assert!(o.status.success(), "{}", text(&o));
        let rec: RunRecord = serde_json::from_slice(&o.stdout).unwrap();
        let report = rec.report.as_ref().unwrap();
        let auc = &report.criteria[0];
        assert!(
            auc.figures["control_auc"].as_f64().unwrap() > 0.75,
            "control over {names:?} scored as if it knew nothing: {auc:?}"
        );
        assert!(!report.passed, "control over {names:?}: {:?}", report.reasons());
        assert!(report.reasons().iter().any(|r| r.starts_with("auc_gain:")), "{:?}", report.reasons());
    }
}

/// An operator promotes the version a run registered (`models promote`) before the run
/// records its verdict: the run must not try to make the control the challenger (the
/// registry refuses, and every rerun failed the same way, the event never acknowledged);
/// it ends, acknowledged, saying the version was settled by hand, and leaves it control.
/// (The version registered for the event is found by its event ID, as after a crash, so
/// the promotion lands deterministically between the run's train and record steps.)
#[test]
fn a_version_promoted_by_hand_during_its_run_ends_the_run_acknowledged_and_stays_control() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 4_000, TRUTH);
    let cfg = config(dir.path(), "");
    let id = fire(dir.path(), &cfg);
    let artifact = tempfile::tempdir().unwrap();
    let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let m = LinearModel::new(names, TRUTH.to_vec(), -0.8, vec![]).unwrap();
    std::fs::write(artifact.path().join("model.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::write(artifact.path().join("metadata.json"), b"{}").unwrap();
    let mut new = NewVersion::new("pii", "logistic", artifact.path());
    new.training.event_id = Some(id.clone());
    let reg = registry(dir.path());
    let v = reg.register(new).unwrap().meta.version;
    let o = modelwatch(dir.path(), &["models", "promote", "pii", &v.to_string(), "--reason", "by hand"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = retrain(dir.path(), &cfg, &id);
    assert!(o.status.success(), "{}", text(&o));
    let rec: RunRecord = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((rec.step, rec.version), (Step::Acknowledged, Some(v)));
    assert_eq!(registry(dir.path()).get("pii", v).unwrap().status, Status::Control);
    let (versions, outcomes, _, acked) = recorded(dir.path(), &id);
    assert_eq!((versions, outcomes), (vec![v], 0));
    let acked = acked.expect("the event is acknowledged");
    assert!(acked.contains(&format!("version {v}")) && acked.contains("control"), "{acked}");
}

/// Records what it is told to acknowledge.
#[derive(Default)]
struct Acks(Vec<String>);

impl modelwatch::retrain::Acknowledge for Acks {
    fn acknowledge(&mut self, event_id: &str, _outcome: &str) -> Result<(), String> {
        self.0.push(event_id.to_string());
        Ok(())
    }
}

/// Embedded, an event ID is whatever the caller passes: `x/y` and `x_y` (which a
/// file-name-safe spelling alone maps to one journal: the second run found the first's
/// finished journal, returned it and acknowledged nothing), `..`, and 10 KB (a file name
/// too long for the file system: the run stopped on an I/O error every time). Each gets a
/// run and an acknowledgement of its own.
#[test]
fn hostile_event_ids_each_get_a_journal_and_an_acknowledgement_of_their_own() {
    use modelwatch::retrain::gate::{FixedLatency, GateConfig};
    use modelwatch::retrain::{Outcome, RetrainConfig, RetrainManager};
    use modelwatch::triggers::RetrainEvent;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(NOW_MS as u64)));
    let store = Arc::new(Store::open(StoreConfig::new(dir.path())).unwrap());
    let probe = Box::new(FixedLatency { control: Default::default(), challenger: Default::default() });
    let manager = RetrainManager::new(
        RetrainConfig { model: "pii".into(), ..RetrainConfig::default() },
        GateConfig::default(),
        store,
        registry(dir.path()),
        dir.path(),
        clock,
        probe,
    )
    .unwrap();
    let long = "z".repeat(10_000);
    let mut acks = Acks::default();
    for id in ["x/y", "x_y", "..", long.as_str()] {
        let event = RetrainEvent { id: id.into(), model: "pii".into(), fired_at_ms: NOW_MS, reasons: vec![] };
        let rec = manager.run(&event, &mut acks).unwrap_or_else(|e| panic!("event {:.40}: {e}", id));
        assert_eq!(rec.event_id, id);
        // No examples at all: each run fails to train, and says so.
        assert!(matches!(rec.outcome, Some(Outcome::Failed { .. })), "{:?}", rec.outcome);
        let path = manager.journal_path(id);
        assert!(path.starts_with(dir.path().join("retrain/runs")), "{}", path.display());
    }
    assert_eq!(acks.0, ["x/y", "x_y", "..", long.as_str()]);
}

/// A control whose artifact was changed after registration fails the same way on every
/// retry: the run ends, acknowledged with that reason, instead of stopping to be retried
/// forever (the serve worker every 5 minutes); the challenger stays a candidate.
#[test]
fn a_tampered_control_ends_the_run_acknowledged_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 2_000, TRUTH);
    let cfg = config(dir.path(), "");
    let versions = dir.path().join("registry/pii/versions");
    let v1 = std::fs::read_dir(&versions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("1-"));
    let model = v1.unwrap().join("artifact/model.json");
    let json = std::fs::read_to_string(&model).unwrap();
    std::fs::write(&model, json.replace("-0.8", "-0.7")).unwrap();
    let id = fire(dir.path(), &cfg);
    let o = retrain(dir.path(), &cfg, &id);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let (versions, outcomes, _, acked) = recorded(dir.path(), &id);
    let acked = acked.unwrap_or_else(|| panic!("not acknowledged: {}", text(&o)));
    assert!(
        acked.starts_with("failed: control version 1 cannot be judged") && acked.contains("model.json"),
        "{acked}"
    );
    assert_eq!((versions.len(), outcomes), (1, 0));
    assert_eq!(registry(dir.path()).get("pii", versions[0]).unwrap().status, Status::Candidate);
}

/// A run holds the trigger engine only to find its event and to acknowledge it: during a
/// long training (here a command that takes 3 s and fails), `triggers fire` works.
#[test]
fn a_long_run_leaves_the_trigger_engine_free_while_it_trains() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 1_000, TRUTH);
    let cfg = config(
        dir.path(),
        "trainer = \"command\"\ncommand = [\"sh\", \"-c\", \"sleep 3; echo no model >&2; exit 3\"]\n",
    );
    let id = fire(dir.path(), &cfg);
    let child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["retrain", "--event", &id, "--config", &cfg, "--simulated-latency", "2,2"])
        .args(["--data", dir.path().to_str().unwrap(), "--now", NOW])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let journal = dir.path().join("retrain/runs").join(format!("{id}.json"));
    let start = Instant::now();
    while !journal.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = fire(dir.path(), &cfg);
    assert_ne!(second, id);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let (_, _, _, acked) = recorded(dir.path(), &id);
    let acked = acked.unwrap();
    assert!(acked.starts_with("failed:") && acked.contains("no model"), "{acked}");
}

/// An event acknowledged by hand (`triggers ack`) has been taken: `retrain --event` says so
/// and registers nothing. A `retrain --force` that finds another run holding the lock
/// fires no event (one would be left behind for nobody to run).
#[test]
fn an_acknowledged_event_is_not_retrained_and_a_force_that_cannot_run_fires_nothing() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 1_000, TRUTH);
    let cfg = config(dir.path(), "");
    let id = fire(dir.path(), &cfg);
    let o = modelwatch(dir.path(), &["triggers", "ack", &id, "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let o = retrain(dir.path(), &cfg, &id);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("without a retraining run here"), "{}", text(&o));
    assert_eq!(recorded(dir.path(), &id).0.len(), 0);

    std::fs::create_dir_all(dir.path().join("retrain/runs")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join("retrain/lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let events = || modelwatch::triggers::read_state(dir.path()).unwrap().history.len();
    let before = events();
    let o = modelwatch(dir.path(), &["retrain", "--force", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another retraining run holds"), "{}", text(&o));
    assert_eq!(events(), before, "a forced event was fired that nobody runs");
    drop(lock);
    let o = modelwatch(dir.path(), &["retrain", "--force", "--config", &cfg, "--simulated-latency", "1,1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(events(), before + 1);
}

/// `demo --replace` deletes a data directory only when no retraining run holds it: a run
/// holds only its own lock while it trains, and deleting under it left a version trained
/// on vanished data and a journal that could never finish (the final review).
#[test]
fn demo_replace_refuses_a_directory_a_retraining_run_holds() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 200, TRUTH);
    std::fs::create_dir_all(dir.path().join("retrain/runs")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join("retrain/lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let o = modelwatch(dir.path(), &["demo", "--no-loop", "--replace", "--days", "1"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("a retraining run holds it; not deleting"),
        "{}",
        text(&o)
    );
    assert!(dir.path().join("registry").exists(), "nothing was deleted");
}
