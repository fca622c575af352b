//! Model quality from stored feedback against scikit-learn (tests/quality/reference.py in
//! the test virtualenv), and the label-free estimate against the realised value.

use crate::support::Rng;
use modelwatch_agent::{Agent, ManualClock, Prediction, Timestamp};
use modelwatch_query::drift::eq;
use modelwatch_query::quality::{QualityOptions, quality};
use modelwatch_store::{Store, StoreConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_764_115_200_000;
const DAY: i64 = 86_400_000;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A labelled prediction: score, label, segment, day.
type Labelled = (f64, bool, &'static str, i64);

/// A store in a temporary directory and an agent recording into it on a manual clock at
/// [`T0`]: two segments, 10-minute intervals.
fn recorder() -> (tempfile::TempDir, Arc<Store>, Arc<ManualClock>, Agent) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
    let agent = Agent::builder("pii")
        .segments(["email", "phone"])
        .interval(Duration::from_secs(600))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    (dir, store, clock, agent)
}

/// Writes `days` of predictions: day `d` draws the score's logit from N(`centre(d)`, 1.5) and
/// the label from Bernoulli(`truth(score, d)`); `feedback(d)` of them get their label back.
fn store_with(
    days: i64,
    centre: impl Fn(i64) -> f64,
    truth: impl Fn(f64, i64) -> f64,
    feedback: impl Fn(i64) -> f64,
) -> (tempfile::TempDir, Arc<Store>, Vec<Labelled>) {
    let (dir, store, clock, agent) = recorder();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut labelled = Vec::new();
    let per_day = 20_000i64;
    for d in 0..days {
        for i in 0..per_day {
            clock.set(Timestamp::from_millis((T0 + d * DAY + i * DAY / per_day) as u64));
            agent.flush_due().unwrap();
            let seg = if rng.u() < 0.4 { "phone" } else { "email" };
            let score = sigmoid(centre(d) + 1.5 * rng.normal());
            let label = rng.u() < truth(score, d);
            agent.handle().record(&Prediction::new(seg, Duration::from_millis(1), score));
            if rng.u() < feedback(d) {
                agent.handle().feedback(seg, score, label);
                labelled.push((score, label, seg, d));
            }
        }
    }
    clock.set(Timestamp::from_millis((T0 + days * DAY) as u64));
    agent.shutdown().unwrap();
    store.flush().unwrap();
    (dir, store, labelled)
}

/// scikit-learn's figures (tests/quality/reference.py) for `(score, label, segment)` rows.
fn scikit_learn(dir: &std::path::Path, rows: &[(f64, bool, &str)], threshold: f64) -> Value {
    let python = std::env::var("MODELWATCH_PYTHON").expect("MODELWATCH_PYTHON (scripts/test sets it)");
    let input = json!({
        "scores": rows.iter().map(|l| l.0).collect::<Vec<_>>(),
        "labels": rows.iter().map(|l| u8::from(l.1)).collect::<Vec<_>>(),
        "segments": rows.iter().map(|l| l.2).collect::<Vec<_>>(),
        "threshold": threshold,
    });
    let path = dir.join("labels.json");
    std::fs::write(&path, input.to_string()).unwrap();
    let out = std::process::Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/quality/reference.py"))
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Our counts and figures equal scikit-learn's.
fn assert_counts_as_scikit_learn(name: &str, q: &modelwatch_query::quality::Quality, want: &Value) {
    assert_eq!(q.n as u64, want["n"].as_u64().unwrap(), "{name}: labels");
    for (what, ours) in [("tp", q.tp), ("fp", q.fp), ("fn", q.fn_), ("tn", q.tn)] {
        assert_eq!(ours, want[what].as_f64().unwrap(), "{name} {what}");
    }
    let f = |v: &Value| v.as_f64().unwrap();
    assert!((q.f1 - f(&want["f1"])).abs() < 1e-9, "{name} f1: ours {}, scikit-learn {}", q.f1, want["f1"]);
    if q.precision.is_finite() {
        assert!((q.precision - f(&want["precision"])).abs() < 1e-9, "{name} precision");
    }
    assert!((q.recall - f(&want["recall"])).abs() < 1e-9, "{name} recall");
}

#[test]
fn realised_quality_matches_scikit_learn_per_segment_and_overall() {
    let (dir, store, labelled) = store_with(1, |_| 0.3, |s, _| s, |_| 0.3);
    let rows: Vec<(f64, bool, &str)> = labelled.iter().map(|l| (l.0, l.1, l.2)).collect();
    let sk = scikit_learn(dir.path(), &rows, 0.5);

    let by_segment =
        quality(&store, &[], &["segment".into()], T0, T0 + DAY, &QualityOptions::default()).unwrap();
    let overall = quality(&store, &[], &[], T0, T0 + DAY, &QualityOptions::default()).unwrap();
    assert_eq!(by_segment.len(), 2);
    for row in by_segment.iter().chain(&overall) {
        let name = row.tags.get("segment").map_or("all", String::as_str);
        let want = &sk[name];
        let q = &row.realised;
        assert_counts_as_scikit_learn(name, q, want);
        // Counts at a threshold on a bin edge are exact; so is AUC on the binned scores.
        for (what, ours, theirs) in [
            ("precision", q.precision, &want["precision"]),
            ("recall", q.recall, &want["recall"]),
            ("f1", q.f1, &want["f1"]),
            ("auc", q.auc, &want["auc_binned"]),
        ] {
            let theirs = theirs.as_f64().unwrap();
            assert!((ours - theirs).abs() < 1e-9, "{name} {what}: ours {ours}, scikit-learn {theirs}");
        }
        // Against the raw scores, AUC differs only by ties inside a 0.001-wide bin.
        assert!((q.auc - want["auc_raw"].as_f64().unwrap()).abs() < 1e-3, "{name} raw auc");
        let (lo, hi) = q.precision_ci.unwrap();
        assert!(lo < q.precision && q.precision < hi && hi - lo < 0.05, "{name}: {lo}..{hi}");
    }
    // A filter works like a group.
    let phone =
        quality(&store, &[eq("segment", "phone")], &[], T0, T0 + DAY, &QualityOptions::default()).unwrap();
    assert_eq!(phone[0].realised, by_segment.iter().find(|r| r.tags["segment"] == "phone").unwrap().realised);
}

#[test]
fn the_label_free_estimate_tracks_the_realised_quality_under_covariate_shift() {
    // Day 0 is the labelled reference; on day 1 the scores move down (fewer positives) but
    // P(label | score) stays: the estimate uses only day 1's confidence distribution.
    let (_dir, store, _) = store_with(2, |d| if d == 0 { 0.5 } else { -0.7 }, |s, _| s, |_| 1.0);
    let rows = quality(
        &store,
        &[],
        &[],
        T0 + DAY,
        T0 + 2 * DAY,
        &QualityOptions { reference: Some((T0, T0 + DAY)), ..QualityOptions::default() },
    )
    .unwrap();
    let (real, est) = (&rows[0].realised, rows[0].estimated.as_ref().unwrap());
    let reference =
        quality(&store, &[], &[], T0, T0 + DAY, &QualityOptions::default()).unwrap()[0].realised.clone();
    assert!(
        (reference.recall - real.recall).abs() > 0.05,
        "the shift changes recall: {} -> {}",
        reference.recall,
        real.recall
    );
    for (what, e, r) in [
        ("precision", est.precision, real.precision),
        ("recall", est.recall, real.recall),
        ("auc", est.auc, real.auc),
    ] {
        assert!((e - r).abs() < 0.02, "{what}: estimated {e}, realised {r}");
    }
}

#[test]
fn under_concept_drift_the_estimate_misses_as_documented() {
    // On day 1 a score of s now means a label rate of s² (concept drift): the calibration
    // fitted on day 0 no longer holds and the estimate overstates precision.
    let (_dir, store, _) = store_with(2, |_| 0.5, |s, d| if d == 0 { s } else { s * s }, |_| 1.0);
    let rows = quality(
        &store,
        &[],
        &[],
        T0 + DAY,
        T0 + 2 * DAY,
        &QualityOptions { reference: Some((T0, T0 + DAY)), ..QualityOptions::default() },
    )
    .unwrap();
    let (real, est) = (&rows[0].realised, rows[0].estimated.as_ref().unwrap());
    assert!(
        est.precision - real.precision > 0.05,
        "estimated {} vs realised {}",
        est.precision,
        real.precision
    );
}

/// Day 0: 6,000 predictions, 60 % of them labelled. Positive labels come back at once,
/// negative ones exactly two days later (after day 0 was rolled up). Asked on day 3, day 0's
/// quality is that of day 0's predictions — scikit-learn's on the same rows — with its
/// coverage and label delay; asked on day 1 with `min_label_age` 2 d, no cohort has matured;
/// and day 2, when the negatives arrived, holds none of them.
#[test]
fn quality_is_that_of_the_predictions_made_in_the_window_whatever_the_labels_delay() {
    use modelwatch_query::quality::report;
    let (dir, store, clock, agent) = recorder();
    let h = agent.handle();
    let at = |ms: i64| Timestamp::from_millis(ms as u64);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut labelled: Vec<(i64, f64, bool, &str)> = Vec::new();
    let mut predictions = [0u64; 2];
    for i in 0..6_000i64 {
        let t = T0 + i * DAY / 6_000;
        clock.set(at(t));
        agent.flush_due().unwrap();
        let k = usize::from(rng.u() < 0.4);
        let seg = ["email", "phone"][k];
        let score = sigmoid(0.3 + 1.5 * rng.normal());
        let label = rng.u() < score;
        h.record(&Prediction::new(seg, Duration::from_millis(1), score));
        predictions[k] += 1;
        if rng.u() < 0.6 {
            labelled.push((t, score, label, seg));
            if label {
                h.feedback_for(at(t), seg, score, true);
            }
        }
    }
    clock.set(at(T0 + DAY));
    agent.flush_due().unwrap();
    store.flush().unwrap();
    store.maintain(T0 + DAY).unwrap();
    let opts = QualityOptions { min_label_age_ms: 2 * DAY, ..QualityOptions::default() };
    let by = ["segment".to_string()];
    let early = report(&store, &[], &by, (T0, T0 + DAY), T0 + DAY, &opts).unwrap_err().to_string();
    assert!(early.contains("old enough") && early.contains("2d"), "{early}");
    let biased = &quality(&store, &[], &[], T0, T0 + DAY, &QualityOptions::default()).unwrap()[0].realised;
    assert_eq!(biased.fp, 0.0, "on day 1 only the positives' labels are in");

    for &(t, score, label, seg) in &labelled {
        if !label {
            clock.set(at(t + 2 * DAY));
            agent.flush_due().unwrap();
            h.feedback_for(at(t), seg, score, false);
        }
    }
    clock.set(at(T0 + 3 * DAY));
    agent.shutdown().unwrap();

    let rows: Vec<(f64, bool, &str)> = labelled.iter().map(|l| (l.1, l.2, l.3)).collect();
    let sk = scikit_learn(dir.path(), &rows, 0.5);
    let negatives = labelled.iter().filter(|l| !l.2).count() as f64;
    let check = |store: &Store, when: &str| {
        let doc = report(store, &[], &by, (T0, T0 + DAY), T0 + 3 * DAY, &opts).unwrap();
        assert_eq!(doc.window, [T0, T0 + DAY], "{when}: day 0 has matured on day 3");
        let overall = report(store, &[], &[], (T0, T0 + DAY), T0 + 3 * DAY, &opts).unwrap();
        assert_eq!(doc.groups.len(), 2);
        for row in doc.groups.iter().chain(&overall.groups) {
            let name = row.tags.get("segment").map_or("all", String::as_str);
            assert_counts_as_scikit_learn(&format!("{when}, {name}"), &row.realised, &sk[name]);
            let made = match name {
                "email" => predictions[0],
                "phone" => predictions[1],
                _ => predictions[0] + predictions[1],
            } as f64;
            assert_eq!(row.predictions, made, "{when} {name}: predictions");
            assert_eq!(row.coverage, row.realised.n / made, "{when} {name}: coverage");
        }
        let delay = overall.groups[0].label_delay.as_ref().expect("label delay");
        assert_eq!(delay.labels, labelled.len() as f64, "{when}: every label has its delay");
        assert_eq!(delay.max_s, 2.0 * 86_400.0, "{when}: the negatives came two days late");
        // p90 is among the negatives when they are more than 10 % of the labels.
        assert!(negatives / labelled.len() as f64 > 0.1);
        assert!((delay.p90_s / 172_800.0 - 1.0).abs() < 0.02, "{when}: p90 {}", delay.p90_s);
        // The labels that arrived on day 2 belong to day 0's predictions, not to day 2.
        let day2 = quality(store, &[], &[], T0 + 2 * DAY, T0 + 3 * DAY, &QualityOptions::default()).unwrap();
        assert!(day2.iter().all(|r| r.realised.n == 0.0), "{when}: {day2:?}");
    };
    check(&store, "acknowledged, day 0 rolled up before the negatives came");
    store.flush().unwrap();
    store.maintain(T0 + 3 * DAY).unwrap();
    check(&store, "rolled up again");
}

/// A model that stops predicting positives has no precision (0 by scikit-learn's rule): the
/// degradation trigger on precision fires on it, with the positives it missed as evidence.
#[test]
fn a_model_that_stops_predicting_positives_fires_the_precision_trigger() {
    use modelwatch::triggers::{DegradationTrigger, Evidence, TriggerConfig, TriggerEngine};
    let centre = |d: i64| if d == 1 { -8.0 } else { 0.5 };
    let truth = |s: f64, d: i64| if d == 1 { 0.5 } else { s };
    let (dir, store, _) = store_with(2, centre, truth, |_| 0.3);
    let config = TriggerConfig {
        labels: modelwatch::triggers::LabelsTrigger { enabled: false, ..Default::default() },
        degradation: DegradationTrigger { by_segment: false, ..Default::default() },
        schedule: modelwatch::triggers::ScheduleTrigger { enabled: false, ..Default::default() },
        drift: modelwatch::triggers::DriftTrigger { enabled: false, ..Default::default() },
        ..TriggerConfig::default()
    };
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis((T0 + 3 * DAY) as u64)));
    let mut engine = TriggerEngine::open(config, store.clone(), dir.path(), clock, Vec::new()).unwrap();
    let event = engine.evaluate().unwrap().event.expect("no positive prediction at all fires");
    let Evidence::Degradation(ev) = &event.reasons[0].evidence else { panic!("{:?}", event.reasons) };
    let counts = ev.counts_current.unwrap();
    assert_eq!((ev.current, counts[0], counts[1]), (0.0, 0.0, 0.0), "{ev:?}");
    assert_eq!(ev.labels_current, counts[2], "measured over the positives it missed: {ev:?}");
}

/// Day 0 at a precision near 0.8; on day 1 every positive prediction is wrong. The CLI's
/// JSON says precision 0, F1 0 (scikit-learn's convention) and the counts behind them, and
/// the degradation trigger fires on the collapse, comparing matured cohorts.
#[test]
fn a_collapse_to_precision_zero_is_a_figure_and_fires_the_degradation_trigger() {
    use modelwatch::triggers::{DegradationTrigger, Evidence, TriggerConfig, TriggerEngine};
    let truth = |s: f64, d: i64| if d == 1 && s >= 0.5 { 0.0 } else { s };
    let (dir, store, labelled) = store_with(2, |_| 0.5, truth, |_| 0.3);
    let day1: Vec<(f64, bool, &str)> =
        labelled.iter().filter(|l| l.3 == 1).map(|l| (l.0, l.1, l.2)).collect();
    let sk = scikit_learn(dir.path(), &day1, 0.5);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["quality", "--data"])
        .arg(dir.path())
        .args(["--from", &(T0 + DAY).to_string(), "--to", &(T0 + 2 * DAY).to_string()])
        .args(["--now", &(T0 + 3 * DAY).to_string(), "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &doc["groups"][0]["realised"];
    assert_eq!((r["precision"].as_f64(), r["f1"].as_f64()), (Some(0.0), Some(0.0)), "{r}");
    for k in ["tp", "fp", "fn", "tn"] {
        assert_eq!(r[k].as_f64(), sk["all"][k].as_f64(), "{k}: {r}");
    }
    assert!(r["fp"].as_f64().unwrap() > 100.0, "{r}");
    assert_eq!(sk["all"]["f1"].as_f64(), Some(0.0));

    let config = TriggerConfig {
        cooldown: "1h".into(),
        labels: modelwatch::triggers::LabelsTrigger { enabled: false, ..Default::default() },
        degradation: DegradationTrigger { by_segment: false, ..Default::default() },
        schedule: modelwatch::triggers::ScheduleTrigger { enabled: false, ..Default::default() },
        drift: modelwatch::triggers::DriftTrigger { enabled: false, ..Default::default() },
        ..TriggerConfig::default()
    };
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis((T0 + 3 * DAY) as u64)));
    let mut engine = TriggerEngine::open(config, store.clone(), dir.path(), clock, Vec::new()).unwrap();
    let event = engine.evaluate().unwrap().event.expect("a collapse to precision 0 fires");
    let Evidence::Degradation(ev) = &event.reasons[0].evidence else { panic!("{:?}", event.reasons) };
    assert_eq!((ev.current, ev.current_window), (0.0, (T0 + DAY, T0 + 2 * DAY)), "{ev:?}");
    assert_eq!(ev.counts_current.map(|c| c[0]), Some(0.0), "no true positive: {ev:?}");
    assert_eq!(ev.min_label_age, "1d");
    assert!(event.reasons[0].summary.contains("labels at least 1d old"), "{}", event.reasons[0].summary);
}
