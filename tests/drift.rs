//! Drift statistics from the store against scipy and numpy (tests/drift/reference.py, run
//! in the test virtualenv): on the raw samples, with tolerances the sketch's binning
//! explains, and on exactly the Rust side's binned inputs, where the formulas must agree to
//! rounding.

use crate::support::Rng;
use modelwatch_agent::{Agent, Feature, ManualClock, Prediction, Timestamp};
use modelwatch_query::drift::{self, DriftConfig, Verdict};
use modelwatch_store::{Store, StoreConfig};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_764_115_200_000;

const NUMERIC: [&str; 5] = ["same", "shift", "scale", "skew", "counts"];

/// One row of feature values for the reference (`current = false`) or current window.
fn sample(rng: &mut Rng, current: bool) -> ([f64; 5], &'static str) {
    let c = if current { 1.0 } else { 0.0 };
    let v = [
        50.0 + 10.0 * rng.normal(),
        50.0 + 3.0 * c + 10.0 * rng.normal(),
        50.0 + (10.0 + 4.0 * c) * rng.normal(),
        10.0 * (0.1 * c + 0.5 * rng.normal()).exp(),
        1.0 + (rng.u() * (40.0 - 10.0 * c)).floor(),
    ];
    let u = rng.u();
    let lang = if current {
        if u < 0.5 {
            "en"
        } else if u < 0.8 {
            "de"
        } else {
            "fr"
        }
    } else if u < 0.6 {
        "en"
    } else if u < 0.9 {
        "de"
    } else {
        "fr"
    };
    (v, lang)
}

#[test]
fn drift_statistics_match_scipy_on_the_same_data() {
    let python = std::env::var("MODELWATCH_PYTHON")
        .expect("MODELWATCH_PYTHON (a Python with numpy and scipy; scripts/test sets it)");
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
    let agent = Agent::builder("pii")
        .segments(["email"])
        .features(
            NUMERIC
                .iter()
                .map(|n| Feature::numeric(*n))
                .chain([Feature::categorical("lang", ["en", "de", "fr"])]),
        )
        .interval(Duration::from_secs(60))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut raw: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut langs: [BTreeMap<String, u64>; 2] = Default::default();
    // Reference: 20,000 predictions over the first hour; current: 10,000 over the second.
    for (window, n) in [(0usize, 20_000u64), (1, 10_000)] {
        for i in 0..n {
            let t = T0 + window as i64 * 3_600_000 + (i * 3_600_000 / n) as i64;
            clock.set(Timestamp::from_millis(t as u64));
            agent.flush_due().unwrap();
            let (v, lang) = sample(&mut rng, window == 1);
            // Every feature has a position; the categorical one comes by name.
            let all = [v[0], v[1], v[2], v[3], v[4], f64::NAN];
            agent.handle().record(
                &Prediction::new("email", Duration::from_millis(2), 0.5)
                    .features(&all)
                    .categories(&[Some(lang)]),
            );
            for (k, name) in NUMERIC.iter().enumerate() {
                let e = raw.entry(name).or_default();
                if window == 0 { e.0.push(v[k]) } else { e.1.push(v[k]) }
            }
            *langs[window].entry(lang.to_string()).or_default() += 1;
        }
    }
    clock.set(Timestamp::from_millis((T0 + 7_200_000) as u64));
    agent.shutdown().unwrap();
    store.flush().unwrap();

    let reference = drift::profile(&store, &[], T0, T0 + 3_600_000).unwrap();
    let current = drift::profile(&store, &[], T0 + 3_600_000, T0 + 7_200_000).unwrap();
    let cfg = DriftConfig::default();
    let report = drift::compare(&reference, &current, &cfg);

    let stat = |feature: &str, s: &str| -> drift::StatRow {
        report
            .features
            .iter()
            .find(|f| f.feature == feature)
            .and_then(|f| f.stats.iter().find(|r| r.statistic == s))
            .unwrap_or_else(|| panic!("{feature} {s}"))
            .clone()
    };
    // The exact inputs of each formula, for the tight check.
    let mut formula = serde_json::Map::new();
    for name in NUMERIC {
        let (r, c) = (&reference.numeric[name], &current.numeric[name]);
        let (p, q) = drift::binned_shares(r, c, cfg.psi_bins);
        let (rp, cp) = (drift::points(r), drift::points(c));
        let mut values: Vec<f64> = rp.iter().chain(&cp).map(|p| p.0).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let weights = |pts: &[(f64, f64)]| -> Vec<f64> {
            values.iter().map(|v| pts.iter().find(|p| p.0 == *v).map_or(0.0, |p| p.1)).collect()
        };
        formula.insert(
            name.to_string(),
            json!({"p": p, "q": q, "d": stat(name, "ks").value, "n": r.count, "m": c.count,
                   "values": values, "r_weights": weights(&rp), "c_weights": weights(&cp)}),
        );
    }
    let lang = stat("lang", "chi2");
    let input = json!({
        "numeric": raw.iter().map(|(k, v)| (k.to_string(), json!([v.0, v.1]))).collect::<serde_json::Map<_, _>>(),
        "categorical": {"lang": [langs[0], langs[1]]},
        "formula": formula,
        "chi2": {"lang": {"x": lang.value, "df": 2}},
    });
    let path = dir.path().join("samples.json");
    std::fs::write(&path, input.to_string()).unwrap();
    let out = std::process::Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/drift/reference.py"))
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py: Value = serde_json::from_slice(&out.stdout).unwrap();

    let close = |what: &str, got: f64, want: f64, abs: f64, rel: f64| {
        assert!(
            (got - want).abs() <= abs + rel * want.abs(),
            "{what}: ours {got}, reference {want} (tolerance {abs} + {rel} relative)"
        );
    };
    for name in NUMERIC {
        let f = &py["formula"][name];
        // Same inputs, same formulas: agreement to rounding.
        close(
            &format!("{name} psi (formula)"),
            stat(name, "psi").value,
            f["psi"].as_f64().unwrap(),
            1e-12,
            1e-9,
        );
        close(
            &format!("{name} js (formula)"),
            stat(name, "js").value,
            f["js"].as_f64().unwrap(),
            1e-12,
            1e-9,
        );
        close(
            &format!("{name} hellinger (formula)"),
            stat(name, "hellinger").value,
            f["hellinger"].as_f64().unwrap(),
            1e-12,
            1e-9,
        );
        close(
            &format!("{name} ks p (formula)"),
            stat(name, "ks").p_value.unwrap(),
            f["ks_p"].as_f64().unwrap(),
            1e-12,
            1e-9,
        );
        let std_ref = stat(name, "std").reference;
        close(
            &format!("{name} wasserstein (formula)"),
            stat(name, "wasserstein_norm").value * std_ref,
            f["wasserstein"].as_f64().unwrap(),
            1e-12,
            1e-9,
        );

        // Against the raw samples: the sketch's buckets are at most 1.5 % wide.
        let s = &py["numeric"][name];
        let v = |k: &str| s[k].as_f64().unwrap();
        // D: at most the mass of one bucket on either side (a few per mille here).
        close(&format!("{name} ks"), stat(name, "ks").value, v("ks"), 0.01, 0.0);
        // Normed W1: each value moves by at most half a bucket (0.75 % of it).
        close(
            &format!("{name} wasserstein_norm"),
            stat(name, "wasserstein_norm").value,
            v("wasserstein_norm"),
            0.01,
            0.02,
        );
        // Bin statistics: the quantile cut points move within a bucket, shifting a few
        // values between neighbouring bins.
        close(&format!("{name} psi"), stat(name, "psi").value, v("psi"), 0.01, 0.1);
        close(&format!("{name} js"), stat(name, "js").value, v("js"), 0.01, 0.1);
        close(&format!("{name} hellinger"), stat(name, "hellinger").value, v("hellinger"), 0.01, 0.1);
        // Mean and standard deviation are exact moments; the median is a bucket's value.
        let m = stat(name, "mean");
        close(&format!("{name} mean ref"), m.reference, s["mean"][0].as_f64().unwrap(), 1e-9, 1e-9);
        close(&format!("{name} mean cur"), m.current, s["mean"][1].as_f64().unwrap(), 1e-9, 1e-9);
        let sd = stat(name, "std");
        close(&format!("{name} std ref"), sd.reference, s["std"][0].as_f64().unwrap(), 1e-9, 1e-7);
        close(&format!("{name} std cur"), sd.current, s["std"][1].as_f64().unwrap(), 1e-9, 1e-7);
        let md = stat(name, "median");
        close(&format!("{name} median"), md.reference, s["median"][0].as_f64().unwrap(), 0.0, 0.016);
        // p-values: the same verdict at 5 %, and close where they are not tiny.
        let (ours, theirs) = (stat(name, "ks").p_value.unwrap(), v("ks_p"));
        assert_eq!(ours < 0.05, theirs < 0.05, "{name}: KS p {ours} vs scipy {theirs}");
    }
    // Categorical counts are exact: chi-squared agrees to rounding.
    let c = &py["categorical"]["lang"];
    close("lang chi2", lang.value, c["chi2"].as_f64().unwrap(), 1e-9, 1e-9);
    close("lang chi2 p", lang.p_value.unwrap(), c["chi2_p"].as_f64().unwrap(), 1e-12, 1e-6);
    close("lang chi2 p (formula)", lang.p_value.unwrap(), py["chi2"]["lang"].as_f64().unwrap(), 1e-12, 1e-9);
    close("lang js", stat("lang", "js").value, c["js"].as_f64().unwrap(), 1e-12, 1e-9);
    close("lang psi", stat("lang", "psi").value, c["psi"].as_f64().unwrap(), 1e-12, 1e-9);
    close("lang hellinger", stat("lang", "hellinger").value, c["hellinger"].as_f64().unwrap(), 1e-12, 1e-9);

    // The verdicts: the unshifted feature stays, the shifted ones drift.
    let verdict = |n: &str| report.features.iter().find(|f| f.feature == n).unwrap().verdict;
    assert_eq!(verdict("same"), Verdict::Ok);
    for n in ["shift", "scale", "counts", "lang"] {
        assert_eq!(verdict(n), Verdict::Drift, "{n}");
    }
    assert!(report.rows_by_severity()[0].verdict == Verdict::Drift);
}

#[test]
fn data_quality_flags_missing_values_out_of_range_values_unseen_categories_and_schema_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
    let agent = Agent::builder("pii")
        .segments(["email"])
        .features([
            Feature::numeric("len"),
            Feature::numeric("ratio"),
            Feature::categorical("lang", ["en", "de"]),
        ])
        .interval(Duration::from_secs(60))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    let h = agent.handle();
    let p = |len: f64, ratio: f64, lang: &'static str| {
        // The vector holds every feature; the categorical one comes by name.
        h.record(
            &Prediction::new("email", Duration::from_millis(1), 0.5)
                .features(&[len, ratio, f64::NAN])
                .categories(&[Some(lang)]),
        );
    };
    // Reference hour: len in [10, 109], ratio in [0, 1), languages en and de, nothing missing.
    for i in 0..1_000 {
        p(10.0 + (i % 100) as f64, (i % 10) as f64 / 10.0, if i % 3 == 0 { "de" } else { "en" });
    }
    clock.set(Timestamp::from_millis((T0 + 3_600_000) as u64));
    agent.flush_due().unwrap();
    // Current hour: 10 % of len missing, 5 % of len far above the range, a language outside
    // the vocabulary (counted as `other`), and two vectors of the wrong length.
    for i in 0..1_000 {
        let len = if i % 10 == 0 {
            f64::NAN
        } else if i % 20 == 1 {
            5_000.0
        } else {
            10.0 + (i % 100) as f64
        };
        p(len, (i % 10) as f64 / 10.0, if i % 50 == 0 { "fr" } else { "en" });
    }
    h.record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[1.0]));
    h.record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[1.0, 2.0, 3.0, 4.0]));
    clock.set(Timestamp::from_millis((T0 + 7_200_000) as u64));
    agent.shutdown().unwrap();

    let reference = drift::profile(&store, &[], T0, T0 + 3_600_000).unwrap();
    let current = drift::profile(&store, &[], T0 + 3_600_000, T0 + 7_200_000).unwrap();
    let checks = drift::data_quality(&reference, &current, &Default::default());
    let get = |feature: &str, check: &str| {
        checks
            .iter()
            .find(|c| c.feature == feature && c.check == check)
            .unwrap_or_else(|| panic!("{feature} {check}"))
            .clone()
    };
    let missing = get("len", "missing_rate");
    // (The two wrong-length vectors still count their first value.)
    assert!(
        (missing.value - 100.0 / 1_002.0).abs() < 1e-9 && missing.verdict == Verdict::Warning,
        "{missing:?}"
    );
    assert_eq!(get("ratio", "missing_rate").verdict, Verdict::Ok);
    let out = get("len", "out_of_range");
    // 50 values at 5,000 and the wrong-length vectors' 1.0, below the reference's 10.
    assert!((out.value - 52.0 / 902.0).abs() < 1e-9 && out.verdict == Verdict::Warning, "{out:?}");
    assert_eq!(get("ratio", "out_of_range").verdict, Verdict::Ok, "values on the bounds are inside");
    let unseen = get("lang", "unseen_categories");
    // 20 of about 1,000 (the too-long vector's third value, 3.0, is no category code).
    assert!(
        unseen.verdict == Verdict::Warning && unseen.detail == "other" && (unseen.value - 0.02).abs() < 2e-3,
        "{unseen:?}"
    );
    let schema = get("", "schema_errors");
    assert_eq!((schema.value, schema.verdict), (2.0, Verdict::Warning));
    // And nothing warns when the current window looks like the reference.
    let same = drift::data_quality(&reference, &reference, &Default::default());
    assert!(same.iter().all(|c| c.verdict == Verdict::Ok), "{same:?}");
}
