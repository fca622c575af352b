//! Model quality from stored feedback against scikit-learn (tests/quality/reference.py in
//! the test virtualenv), and the label-free estimate against the realised value.

use crate::support::Rng;
use modelwatch_agent::{Agent, ManualClock, Prediction, Timestamp};
use modelwatch_query::drift::eq;
use modelwatch_query::quality::quality;
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

/// Writes `days` of predictions: day `d` draws the score's logit from N(`centre(d)`, 1.5) and
/// the label from Bernoulli(`truth(score, d)`); `feedback(d)` of them get their label back.
fn store_with(
    days: i64,
    centre: impl Fn(i64) -> f64,
    truth: impl Fn(f64, i64) -> f64,
    feedback: impl Fn(i64) -> f64,
) -> (tempfile::TempDir, Arc<Store>, Vec<Labelled>) {
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

#[test]
fn realised_quality_matches_scikit_learn_per_segment_and_overall() {
    let python = std::env::var("MODELWATCH_PYTHON").expect("MODELWATCH_PYTHON (scripts/test sets it)");
    let (dir, store, labelled) = store_with(1, |_| 0.3, |s, _| s, |_| 0.3);
    let input = json!({
        "scores": labelled.iter().map(|l| l.0).collect::<Vec<_>>(),
        "labels": labelled.iter().map(|l| u8::from(l.1)).collect::<Vec<_>>(),
        "segments": labelled.iter().map(|l| l.2).collect::<Vec<_>>(),
        "threshold": 0.5,
    });
    let path = dir.path().join("labels.json");
    std::fs::write(&path, input.to_string()).unwrap();
    let out = std::process::Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/quality/reference.py"))
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sk: Value = serde_json::from_slice(&out.stdout).unwrap();

    let by_segment = quality(&store, &[], &["segment".into()], T0, T0 + DAY, None, 0.5).unwrap();
    let overall = quality(&store, &[], &[], T0, T0 + DAY, None, 0.5).unwrap();
    assert_eq!(by_segment.len(), 2);
    for row in by_segment.iter().chain(&overall) {
        let name = row.tags.get("segment").map_or("all", String::as_str);
        let want = &sk[name];
        let q = &row.realised;
        assert_eq!(q.n as u64, want["n"].as_u64().unwrap(), "{name}: labels");
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
    let phone = quality(&store, &[eq("segment", "phone")], &[], T0, T0 + DAY, None, 0.5).unwrap();
    assert_eq!(phone[0].realised, by_segment.iter().find(|r| r.tags["segment"] == "phone").unwrap().realised);
}

#[test]
fn the_label_free_estimate_tracks_the_realised_quality_under_covariate_shift() {
    // Day 0 is the labelled reference; on day 1 the scores move down (fewer positives) but
    // P(label | score) stays: the estimate uses only day 1's confidence distribution.
    let (_dir, store, _) = store_with(2, |d| if d == 0 { 0.5 } else { -0.7 }, |s, _| s, |_| 1.0);
    let rows = quality(&store, &[], &[], T0 + DAY, T0 + 2 * DAY, Some((T0, T0 + DAY)), 0.5).unwrap();
    let (real, est) = (&rows[0].realised, rows[0].estimated.as_ref().unwrap());
    let reference = quality(&store, &[], &[], T0, T0 + DAY, None, 0.5).unwrap()[0].realised.clone();
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
    let rows = quality(&store, &[], &[], T0 + DAY, T0 + 2 * DAY, Some((T0, T0 + DAY)), 0.5).unwrap();
    let (real, est) = (&rows[0].realised, rows[0].estimated.as_ref().unwrap());
    assert!(
        est.precision - real.precision > 0.05,
        "estimated {} vs realised {}",
        est.precision,
        real.precision
    );
}
