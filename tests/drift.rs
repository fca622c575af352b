//! Drift statistics from the store against scipy and numpy (tests/drift/reference.py, run
//! in the test virtualenv): on the raw samples, with tolerances the sketch's binning
//! explains, and on exactly the Rust side's binned inputs, where the formulas must agree to
//! rounding.

use crate::support::Rng;
use modelwatch_agent::{Agent, Feature, ManualClock, Prediction, Timestamp};
use modelwatch_query::drift::{self, Correction, DriftConfig, Verdict};
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

/// An agent with numeric features `names` and a categorical `lang`, recording into a fresh
/// store on a manual clock at one-minute intervals.
fn recorder(names: &[&str]) -> (tempfile::TempDir, Arc<Store>, Arc<ManualClock>, modelwatch_agent::Agent) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
    let agent = Agent::builder("geo")
        .segments(["s"])
        .features(
            names.iter().map(|n| Feature::numeric(*n)).chain([Feature::categorical("lang", ["en", "de"])]),
        )
        .interval(Duration::from_secs(60))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    (dir, store, clock, agent)
}

const HOUR: i64 = 3_600_000;

#[test]
fn a_small_spread_feature_shifted_by_five_sigma_drifts_and_its_unshifted_copy_does_not() {
    // A latitude, 52.52 ± 0.05: the sketch's buckets there are 1 wide (20 σ), so
    // every binned statistic reads (nearly) nothing. Likewise epoch seconds, ± 1 day.
    let (_dir, store, clock, agent) = recorder(&["lat", "lat_copy", "epoch", "epoch_copy"]);
    let mut rng = Rng::seeded(52);
    for window in 0..2i64 {
        for i in 0..20_000i64 {
            clock.set(Timestamp::from_millis((T0 + window * HOUR + i * HOUR / 20_000) as u64));
            agent.flush_due().unwrap();
            let shifted = window as f64;
            let v = [
                52.52 + 0.05 * (rng.normal() + 5.0 * shifted),
                52.52 + 0.05 * rng.normal(),
                1.7e9 + 86_400.0 * (rng.normal() + shifted),
                1.7e9 + 86_400.0 * rng.normal(),
                f64::NAN,
            ];
            agent.handle().record(
                &Prediction::new("s", Duration::from_millis(2), 0.5).features(&v).categories(&[Some("en")]),
            );
        }
    }
    clock.set(Timestamp::from_millis((T0 + 2 * HOUR) as u64));
    agent.shutdown().unwrap();
    let reference = drift::profile(&store, &[], T0, T0 + HOUR).unwrap();
    let current = drift::profile(&store, &[], T0 + HOUR, T0 + 2 * HOUR).unwrap();
    let report = drift::compare(&reference, &current, &DriftConfig::default());
    let get = |n: &str| report.features.iter().find(|f| f.feature == n).unwrap_or_else(|| panic!("{n}"));
    for (shifted, copy, sigmas) in [("lat", "lat_copy", 5.0), ("epoch", "epoch_copy", 1.0)] {
        let (s, c) = (get(shifted), get(copy));
        assert_eq!(s.verdict, Verdict::Drift, "{s:?}");
        assert_eq!(c.verdict, Verdict::Ok, "{c:?}");
        // Marked, in addition to the verdict, never instead of it.
        assert!(s.low_resolution && c.low_resolution, "{s:?}\n{c:?}");
        assert!(
            s.bucket_width.unwrap() > 0.5 * s.stats.iter().find(|r| r.statistic == "std").unwrap().reference
        );
        // The effect is the exact |Δmean| / σ: 5 (or 1) σ, within sampling error.
        let w = s.stats[0].value;
        assert!((w - sigmas).abs() < 0.05 * sigmas, "{shifted}: normed Wasserstein {w}");
    }
}

/// A window's row as the agent writes it: the sketch's buckets, the count and the exact
/// mean and M2.
fn sketch_row(values: &[f64]) -> modelwatch_store::DistributionRow {
    use modelwatch_store::{DistributionRow, Resolution, Scheme};
    let mut s = modelwatch_agent::Sketch::new();
    for &x in values {
        s.record(x);
    }
    let mut r = DistributionRow::empty(0, 1, Resolution::Raw, Default::default(), Scheme::Sketch);
    r.buckets = s.buckets().iter().map(|&(k, c)| (k as i64, c)).collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    r.count = values.len() as u64;
    r.mean = Some(mean);
    r.m2 = Some(values.iter().map(|x| (x - mean).powi(2)).sum());
    r.min = values.iter().copied().reduce(f64::min);
    r.max = values.iter().copied().reduce(f64::max);
    r
}

/// Twenty features of the shapes production brings, each as (value from a standard normal
/// draw and a uniform, σ): normal at several scales, a latitude, epoch seconds, log-normal,
/// uniform, small integers, tiny values, exponential.
fn feature_value(f: usize, rng: &mut Rng) -> (f64, f64) {
    match f {
        0 => (rng.normal(), 1.0),
        1 => (100.0 + 15.0 * rng.normal(), 15.0),
        2 => (52.52 + 0.05 * rng.normal(), 0.05),
        3 => (1.7e9 + 86_400.0 * rng.normal(), 86_400.0),
        4 => (rng.normal().exp(), ((1f64).exp() * ((1f64).exp() - 1.0)).sqrt()),
        5 => (rng.u(), (1.0f64 / 12.0).sqrt()),
        6 => ((rng.u() * 5.0).floor(), 2f64.sqrt()),
        7 => (1e-6 + 1e-7 * rng.normal(), 1e-7),
        8 => (-rng.u().ln(), 1.0),
        f => (f as f64 + (1.0 + f as f64) * rng.normal(), 1.0 + f as f64),
    }
}

/// Over `pairs` pairs of windows of `n` rows of the twenty features (`shift` σ added to
/// features 1 and 2 of the current window), how often each feature is called drift.
fn drift_rates(n: usize, pairs: usize, shift: f64, seed: u64) -> [f64; 20] {
    let mut rng = Rng::seeded(seed);
    let cfg = DriftConfig::default();
    let mut hits = [0usize; 20];
    for _ in 0..pairs {
        for (f, hit) in hits.iter_mut().enumerate() {
            let mut side = |moved: bool| -> Vec<f64> {
                (0..n)
                    .map(|_| {
                        let (x, sd) = feature_value(f, &mut rng);
                        if moved && (f == 1 || f == 2) { x + shift * sd } else { x }
                    })
                    .collect()
            };
            let (r, c) = (side(false), side(true));
            if drift::numeric_drift("x", &sketch_row(&r), &sketch_row(&c), &cfg).verdict == Verdict::Drift {
                *hit += 1;
            }
        }
    }
    hits.map(|h| h as f64 / pairs as f64)
}

#[test]
fn with_no_drift_each_feature_is_called_drifting_at_most_five_percent_of_the_time_and_a_one_sigma_shift_is_found()
 {
    // 200 seeded pairs of windows of 100 rows x 20 features. Without the sample-size test
    // the effect size alone called all twenty drifting.
    let calm = drift_rates(100, 200, 0.0, 1);
    let pooled = calm.iter().sum::<f64>() / 20.0;
    println!("100 rows, no drift: false-alarm rate per feature {pooled:.4} (by feature {calm:?})");
    assert!(pooled <= 0.05, "false-alarm rate {pooled} per feature at 100 rows: {calm:?}");
    // Each feature alone stays near its level too (200 pairs: 5 % ± 3 %).
    assert!(calm.iter().all(|&r| r <= 0.08), "{calm:?}");
    let moved = drift_rates(100, 200, 1.0, 2);
    println!("100 rows, 1 σ shift: found in {:.3} (normal, σ 15) and {:.3} (latitude)", moved[1], moved[2]);
    assert!(
        moved[1] >= 0.8 && moved[2] >= 0.8,
        "a 1 σ shift found in {} and {} of windows",
        moved[1],
        moved[2]
    );
    // At the floor of 30 rows the false-alarm bound still holds; the power is reported.
    let calm30 = drift_rates(30, 200, 0.0, 3);
    let pooled30 = calm30.iter().sum::<f64>() / 20.0;
    let moved30 = drift_rates(30, 200, 1.0, 4);
    println!(
        "30 rows: false-alarm rate per feature {pooled30:.4}; a 1 σ shift found in {:.3} (normal) and {:.3} (latitude)",
        moved30[1], moved30[2]
    );
    assert!(pooled30 <= 0.05, "false-alarm rate {pooled30} per feature at 30 rows: {calm30:?}");
}

#[test]
fn below_thirty_values_a_side_the_verdict_is_insufficient_data() {
    let cfg = DriftConfig::default();
    let r: Vec<f64> = (0..100).map(|i| i as f64).collect();
    let c: Vec<f64> = (0..29).map(|i| 1_000.0 + i as f64).collect();
    let f = drift::numeric_drift("x", &sketch_row(&r), &sketch_row(&c), &cfg);
    assert_eq!(f.verdict, Verdict::InsufficientData);
    // The statistics are still shown, none of them as a verdict; the reason names the counts.
    assert!(f.stats[0].value > 1.0, "{f:?}");
    let rows = f.stats.iter().filter(|r| r.threshold.is_some());
    assert!(
        rows.clone().count() == 5 && rows.clone().all(|r| r.verdict == Verdict::InsufficientData),
        "{f:?}"
    );
    // Corrected across features, they stay so.
    let cfg_fdr = DriftConfig { correction: Correction::Fdr, ..cfg.clone() };
    let again = drift::report(vec![f.clone()], &cfg_fdr);
    assert!(
        again.features[0]
            .stats
            .iter()
            .filter(|r| r.threshold.is_some())
            .all(|r| r.verdict == Verdict::InsufficientData)
    );
    assert_eq!(f.reason.as_deref(), Some("only 29 values in the current window (30 needed a side)"));
    // Not counted in the share of drifting features.
    let report = drift::report(vec![f], &cfg);
    assert!(!report.dataset_drift && report.drifting_share == 0.0, "{report:?}");
}

#[test]
fn features_missing_on_a_side_or_everywhere_are_reported_with_the_reason_and_new_categories_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
    // Version 1 knows `old`; version 2 (the current hour) drops it for `new`. `empty` is
    // never given a value, `lang` loses every value in the current hour, and `script` sees
    // a category the reference never did.
    for (hour, version, numeric) in [(0i64, "1", "old"), (1, "2", "new")] {
        let agent = Agent::builder("geo")
            .version(version)
            .segments(["s"])
            .features([
                Feature::numeric("kept"),
                Feature::numeric(numeric),
                Feature::numeric("empty"),
                Feature::categorical("lang", ["en", "de"]),
                Feature::categorical("script", ["latin", "cyrillic"]),
            ])
            .interval(Duration::from_secs(60))
            .clock(clock.clone())
            .background_flush(false)
            .build(store.clone())
            .unwrap();
        for i in 0..1_000i64 {
            clock.set(Timestamp::from_millis((T0 + hour * HOUR + i * 3_600) as u64));
            agent.flush_due().unwrap();
            let lang = if hour == 0 { Some(if i % 2 == 0 { "en" } else { "de" }) } else { None };
            let script = if hour == 1 && i % 20 == 0 { "cyrillic" } else { "latin" };
            agent.handle().record(
                &Prediction::new("s", Duration::from_millis(2), 0.5)
                    .features(&[(i % 10) as f64, (i % 7) as f64, f64::NAN, f64::NAN, f64::NAN])
                    .categories(&[lang, Some(script)]),
            );
        }
        clock.set(Timestamp::from_millis((T0 + (hour + 1) * HOUR) as u64));
        agent.shutdown().unwrap();
    }
    let reference = drift::profile(&store, &[], T0, T0 + HOUR).unwrap();
    let current = drift::profile(&store, &[], T0 + HOUR, T0 + 2 * HOUR).unwrap();
    let report = drift::compare(&reference, &current, &DriftConfig::default());
    let get = |n: &str| {
        report.features.iter().find(|f| f.feature == n).unwrap_or_else(|| panic!("{n}: {report:?}"))
    };
    let why = |n: &str| (get(n).verdict, get(n).reason.clone().unwrap_or_default());
    assert_eq!(why("old"), (Verdict::InsufficientData, "not in the current window".into()));
    assert_eq!(why("new"), (Verdict::InsufficientData, "not in the reference".into()));
    assert_eq!(
        why("empty"),
        (
            Verdict::InsufficientData,
            "all 1000 values missing or invalid in the reference; all 1000 values missing or invalid in the current window"
                .into()
        )
    );
    assert_eq!(
        why("lang"),
        (Verdict::InsufficientData, "all 1000 values missing or invalid in the current window".into())
    );
    assert_eq!((get("lang").reference_count, get("lang").current_count), (1_000, 0));
    assert_eq!(get("kept").verdict, Verdict::Ok);
    let script = get("script");
    assert_eq!(script.new_categories.len(), 1, "{script:?}");
    let new = &script.new_categories[0];
    assert_eq!((new.category.as_str(), new.count, new.share), ("cyrillic", 50.0, 0.05));
    // The share of drifting features counts the judged ones only: kept, script, confidence.
    let judged = report.features.iter().filter(|f| f.verdict != Verdict::InsufficientData).count();
    assert_eq!(judged, 3, "{report:?}");
}

#[test]
fn rounding_underflow_and_overflow_never_decide_a_verdict() {
    let cfg = DriftConfig::default();
    let judge = |r: &[f64], c: &[f64]| drift::numeric_drift("x", &sketch_row(r), &sketch_row(c), &cfg);
    // A constant reference against a window that differs in the last bit: no effect.
    let next = f64::from_bits(0.1f64.to_bits() + 1);
    let c: Vec<f64> = (0..1_000).map(|i| if i % 2 == 0 { 0.1 } else { next }).collect();
    let f = judge(&[0.1; 1_000], &c);
    assert!(f.verdict == Verdict::Ok && f.stats[0].value < 1e-3, "{f:?}");
    // A real change from a constant reference drifts, and says why the effect is so large.
    let f = judge(&[7.0; 1_000], &[7.0001; 1_000]);
    assert_eq!(f.verdict, Verdict::Drift);
    assert!(f.stats[0].value.is_finite(), "{f:?}");
    assert_eq!(f.reason.as_deref(), Some("the reference is constant at 7; the current mean is 7.0001"));
    // Subnormals whose squares vanish: one distribution both sides is no drift.
    let mut rng = Rng::seeded(310);
    let mut sub = || (0..1_000).map(|_| 1e-310 + 4e-310 * rng.u()).collect::<Vec<f64>>();
    let (a, b) = (sub(), sub());
    let f = judge(&a, &b);
    assert_eq!(f.verdict, Verdict::Ok, "{f:?}");
    // Moments that overflow: no verdict rather than a confident "ok" for a 10 σ shift.
    let mut rng = Rng::seeded(300);
    let mut huge = |mean: f64| (0..1_000).map(|_| mean + 1e298 * rng.normal()).collect::<Vec<f64>>();
    let (a, b) = (huge(1e300), huge(1.1e300));
    let f = judge(&a, &b);
    assert_eq!(f.verdict, Verdict::InsufficientData, "{f:?}");
    assert!(f.reason.as_deref().unwrap_or_default().contains("overflow"), "{f:?}");
}

#[test]
fn a_tripled_spread_of_a_low_resolution_feature_is_a_warning_with_the_exact_sigmas() {
    // 52.52 ± 0.05 against ± 0.15: the buckets (1 wide) barely see it; the exact σ does.
    let cfg = DriftConfig::default();
    let mut rng = Rng::seeded(3);
    let mut lat = |sd: f64| (0..1_000).map(|_| 52.52 + sd * rng.normal()).collect::<Vec<f64>>();
    let (r, wide, same) = (lat(0.05), lat(0.15), lat(0.05));
    let f = drift::numeric_drift("lat", &sketch_row(&r), &sketch_row(&wide), &cfg);
    assert!(f.low_resolution, "{f:?}");
    assert_eq!(f.verdict, Verdict::Warning, "{f:?}");
    let why = f.reason.clone().unwrap_or_default();
    assert!(why.starts_with("the spread changed: σ 0.0497 → 0.154 (×3.0953, F-test p = "), "{why}");
    let f = drift::numeric_drift("lat", &sketch_row(&r), &sketch_row(&same), &cfg);
    assert_eq!((f.verdict, f.reason.as_deref()), (Verdict::Ok, None), "{f:?}");
}

#[test]
fn features_without_a_verdict_do_not_change_the_corrected_verdicts_of_the_others() {
    // 40 features of 100 rows, ten shifted by 0.35 σ; then the same with 30 more features of
    // 10 rows shifted by 3 σ (tiny p-values, but too few rows to judge).
    let mut rng = Rng::seeded(40);
    let mut window =
        |n: usize, shift: f64| sketch_row(&(0..n).map(|_| rng.normal() + shift).collect::<Vec<f64>>());
    let judged: Vec<_> =
        (0..40).map(|i| (window(100, 0.0), window(100, if i < 10 { 0.35 } else { 0.0 }))).collect();
    let unjudged: Vec<_> = (0..30).map(|_| (window(10, 0.0), window(10, 3.0))).collect();
    for correction in [Correction::Bonferroni, Correction::Fdr] {
        let cfg = DriftConfig { correction, ..DriftConfig::default() };
        let features = |pairs: &[(_, _)], prefix: &str| -> Vec<_> {
            pairs
                .iter()
                .enumerate()
                .map(|(i, (r, c))| drift::numeric_drift(&format!("{prefix}{i:02}"), r, c, &cfg))
                .collect()
        };
        let alone = drift::report(features(&judged, "a"), &cfg);
        let mut all = features(&judged, "a");
        all.extend(features(&unjudged, "b"));
        let with = drift::report(all, &cfg);
        let verdicts = |r: &drift::DriftReport| -> Vec<(String, Verdict, Option<f64>)> {
            r.features
                .iter()
                .filter(|f| f.feature.starts_with('a'))
                .map(|f| (f.feature.clone(), f.verdict, f.p_value))
                .collect()
        };
        assert_eq!(verdicts(&alone), verdicts(&with), "{correction:?}");
        assert!(
            with.features
                .iter()
                .filter(|f| f.feature.starts_with('b'))
                .all(|f| f.verdict == Verdict::InsufficientData)
        );
    }
}

#[test]
fn the_cli_lists_every_feature_and_why_in_each_format() {
    use crate::cli::{modelwatch, stderr, stdout};
    // 200 rows in the reference hour, 20 in the current one; `gone` has no value after the
    // first hour, `lat` is a latitude that moves by 5 σ, `lang` meets a new category.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("p.csv");
    let mut rng = Rng::seeded(9);
    let mut text =
        String::from("timestamp,model,version,variant,segment,latency_ms,confidence,f.lat,f.gone,f.lang\n");
    for (hour, n) in [(0i64, 200i64), (1, 20)] {
        for i in 0..n {
            let t = T0 + hour * HOUR + i * HOUR / n;
            let lat = 52.52 + 0.05 * (rng.normal() + 5.0 * hour as f64);
            let gone = if hour == 0 { format!("{}", rng.u()) } else { String::new() };
            let lang = if hour == 1 && i == 0 { "tlh" } else { "en" };
            text += &format!("{t},geo,1,control,s,5,0.8,{lat},{gone},{lang}\n");
        }
    }
    std::fs::write(&csv, text).unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let i = modelwatch(&["import", csv.to_str().unwrap(), "--data", d]);
    assert!(i.status.success(), "{}", stderr(&i));
    let (reference, current) =
        ("2025-11-26T00:00:00Z..2025-11-26T01:00:00Z", "2025-11-26T01:00:00Z..2025-11-26T02:00:00Z");
    let run = |format: &str, min_rows: &str| {
        let o = modelwatch(&[
            "drift",
            "--data",
            d,
            "--reference",
            reference,
            "--current",
            current,
            "--format",
            format,
            "--min-rows",
            min_rows,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let csv = run("csv", "30");
    let header = "feature,statistic,value,p_value,threshold,verdict,reference,current,note";
    assert_eq!(csv.lines().next(), Some(header), "{csv}");
    let verdict_row = |name: &str| {
        csv.lines()
            .find(|l| l.starts_with(&format!("{name},verdict,")))
            .unwrap_or_else(|| panic!("{name}: {csv}"))
    };
    assert!(
        verdict_row("gone")
            .ends_with(",insufficient_data,200,0,all 20 values missing or invalid in the current window"),
        "{csv}"
    );
    // (A note with a comma is quoted.)
    let lat = verdict_row("lat");
    assert!(lat.contains(r#",insufficient_data,200,20,"only 20 values in the current window (30 needed a side); low resolution: buckets 1.0000 wide"#), "{csv}");
    // With a lower floor the latitude is judged; JSON and the table say the same.
    let json: Value = serde_json::from_str(&run("json", "10")).unwrap();
    let verdicts = json["feature_verdicts"].as_array().unwrap();
    let get =
        |n: &str| verdicts.iter().find(|f| f["feature"] == n).unwrap_or_else(|| panic!("{n}: {json:#}"));
    assert_eq!(
        (get("lat")["verdict"].as_str(), get("lat")["low_resolution"].as_bool()),
        (Some("drift"), Some(true))
    );
    assert_eq!(get("lang")["new_categories"], json!([{"category": "tlh", "count": 1.0, "share": 0.05}]));
    assert_eq!((json["features"].as_u64(), json["insufficient_features"].as_u64()), (Some(3), Some(1)));
    let table = run("table", "10");
    let line = |n: &str| {
        table.lines().find(|l| l.starts_with(&format!("| {n} "))).unwrap_or_else(|| panic!("{n}: {table}"))
    };
    assert!(
        line("gone").contains("insufficient data") && line("gone").contains("all 20 values missing"),
        "{table}"
    );
    assert!(line("lang").contains("new: tlh (5.0 %)"), "{table}");
    assert!(table.contains("2 of 3 judged (67 %); 1 with insufficient data"), "{table}");
}
