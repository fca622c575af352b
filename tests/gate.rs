//! The validation gate end to end: its AUC criterion's error rates on simulated hold-outs
//! (the sweep), and whole gate reports that name the feature or segment that moved.
//!
//! The sweep runs 100 challengers per setting in CI (1,000 at the margin); `MODELWATCH_GATE_SWEEP=2000 cargo test
//! --test tests -- gate::` runs the full count (the rates are then printed with their
//! binomial intervals; see BENCHMARKS.md, "Gate error rates").

use modelwatch::demo::Rng;
use modelwatch::query::stats::normal_quantile;
use modelwatch::retrain::gate::{self, GateConfig, Verdict};

/// One simulated hold-out of `n` rows with 30 % positives, scored by a control of AUC
/// `auc` and a challenger of AUC `auc + gain`: the binormal model (scores `μ·y + ε`, unit
/// variance per class, AUC = Φ(μ/√2)), the two models' noises correlated `rho`, as two
/// versions of one model trained on much the same data are.
fn holdout(rng: &mut Rng, n: usize, auc: f64, gain: f64, rho: f64) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    let mu = |a: f64| std::f64::consts::SQRT_2 * normal_quantile(a);
    let (mc, mh) = (mu(auc), mu(auc + gain));
    let labels: Vec<bool> = (0..n).map(|i| i % 10 < 3).collect();
    let (mut c, mut h) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for &y in &labels {
        let (z1, z2) = (rng.normal(), rng.normal());
        let y = f64::from(u8::from(y));
        c.push(mc * y + z1);
        h.push(mh * y + rho * z1 + (1.0 - rho * rho).sqrt() * z2);
    }
    (c, h, labels)
}

/// How many of `trials` challengers of true gain `gain` pass the AUC criterion.
fn passes(trials: usize, gain: f64, rho: f64, seed: u64) -> usize {
    let config = GateConfig::default();
    let mut rng = Rng::seeded(seed);
    (0..trials)
        .filter(|_| {
            let (c, h, y) = holdout(&mut rng, 5_000, 0.80, gain, rho);
            gate::auc_gain(&config, &c, &h, &y).verdict == Verdict::Pass
        })
        .count()
}

fn trials() -> usize {
    std::env::var("MODELWATCH_GATE_SWEEP").ok().and_then(|v| v.parse().ok()).unwrap_or(100)
}

/// Wilson 95 % interval of k in n, for the printed rates.
fn rate(k: usize, n: usize) -> String {
    let (lo, hi) = modelwatch::query::stats::wilson(k as f64, n as f64);
    format!(
        "{k} of {n} ({:.1} %, 95 % interval {:.1}-{:.1} %)",
        100.0 * k as f64 / n as f64,
        100.0 * lo,
        100.0 * hi
    )
}

#[test]
fn no_challenger_without_a_gain_passes() {
    let n = trials();
    let k = passes(n, 0.0, 0.8, 1);
    eprintln!("true gain 0: {}", rate(k, n));
    assert_eq!(k, 0);
}

/// At exactly the required gain a one-sided 95 % bound passes 5 % of challengers by
/// construction, so "at most 5 of 100" holds only in expectation: with 100 draws a
/// calibrated gate shows 6 or more about 38 % of the time (this seed drew 6; 4,000 drew
/// 5.0 %, interval 4.3-5.7 %). The test therefore asserts the rate itself, on 1,000
/// challengers: it must not be significantly above 5 % (the Wilson interval's lower end at
/// most 5 %), which a gate passing 7.5 % or more fails with high probability.
#[test]
fn at_exactly_the_required_gain_no_more_than_one_in_twenty_passes() {
    let n = trials().max(1_000);
    let k = passes(n, 0.02, 0.8, 2);
    eprintln!("true gain +0.02: {}", rate(k, n));
    let (lo, _) = modelwatch::query::stats::wilson(k as f64, n as f64);
    assert!(lo <= 0.05, "{}", rate(k, n));
}

#[test]
fn a_clear_gain_passes_nineteen_times_in_twenty() {
    let n = trials();
    let k = passes(n, 0.05, 0.8, 3);
    eprintln!("true gain +0.05: {}", rate(k, n));
    assert!(k * 100 >= n * 95, "{}", rate(k, n));
}

/// A hold-out of 6,000 rows in two segments (`phone` flagged by the feature `is_phone`),
/// labels from a logistic model that uses `a`, `b` and `c` alike.
fn world() -> modelwatch::store::examples::ExampleSet {
    use modelwatch::store::examples::{Example, ExampleSet};
    let mut rng = Rng::seeded(17);
    let mut set = ExampleSet::new(["a", "b", "c", "is_phone"].map(String::from).to_vec());
    for i in 0..6_000 {
        let phone = i % 2 == 1;
        let x = [rng.normal(), rng.normal(), rng.normal(), f64::from(u8::from(phone))];
        let z = -0.8 + x[0] + x[1] + x[2];
        set.rows.push(Example {
            prediction_id: format!("p{i}"),
            predicted_ms: i,
            label_ms: i,
            segment: if phone { "phone" } else { "email" }.into(),
            features: x.to_vec(),
            confidence: 0.5,
            label: rng.u() < 1.0 / (1.0 + (-z).exp()),
        });
    }
    set
}

/// Judges `challenger`'s coefficients against `control`'s on `world()`, importance and all.
fn judge(control: [f64; 4], challenger: [f64; 4]) -> gate::GateReport {
    use modelwatch::retrain::LinearModel;
    use modelwatch::retrain::gate::{Case, FixedLatency, Side};
    use modelwatch::retrain::importance::{ImportanceConfig, importance};
    let holdout = world();
    let model = |w: [f64; 4]| LinearModel::new(holdout.features.clone(), w.to_vec(), -0.8, vec![]).unwrap();
    let (c, h) = (model(control), model(challenger));
    let (ci, hi) = (
        importance(&c, &holdout, &ImportanceConfig::default()),
        importance(&h, &holdout, &ImportanceConfig::default()),
    );
    let ms = std::time::Duration::from_millis(2);
    gate::judge(
        &GateConfig::default(),
        Case { model: "pii", event_id: None, now_ms: 0 },
        &holdout,
        &Side { version: 2, model: &h, importance: &hi },
        Some(&Side { version: 1, model: &c, importance: &ci }),
        &FixedLatency { control: ms, challenger: ms },
    )
}

#[test]
fn a_challenger_whose_importance_concentrates_on_one_feature_is_rejected_naming_it() {
    // The control ignores c; the challenger leans on a alone, doubling its weight.
    let r = judge([0.4, 1.0, 1.0, 0.0], [3.0, 0.3, 0.3, 0.0]);
    let shift = r.criteria.iter().find(|c| c.name == "importance_shift").unwrap();
    assert_eq!(shift.verdict, Verdict::Fail, "{shift:?}");
    let named: Vec<&str> = shift.findings.iter().filter(|f| f.fails).map(|f| f.subject.as_str()).collect();
    assert!(named.contains(&"feature a"), "{named:?}");
    assert!(!r.passed);
    assert!(
        r.reasons().iter().any(|x| x.starts_with("importance_shift") && x.contains("feature a")),
        "{:?}",
        r.reasons()
    );
}

#[test]
fn a_challenger_whose_precision_falls_in_one_segment_is_rejected_naming_it() {
    // The same model, except that it calls many more phone numbers positive.
    let r = judge([1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.5]);
    let seg = r.criteria.iter().find(|c| c.name == "segment_quality").unwrap();
    assert_eq!(seg.verdict, Verdict::Fail, "{seg:?}");
    let named: Vec<&str> = seg.findings.iter().filter(|f| f.fails).map(|f| f.subject.as_str()).collect();
    assert_eq!(named, ["segment phone precision"], "{:?}", seg.findings);
    assert!(!r.passed);
}

#[test]
fn the_same_model_passes_every_criterion_but_the_gain() {
    let r = judge([1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]);
    let verdicts: Vec<(&str, Verdict)> = r.criteria.iter().map(|c| (c.name.as_str(), c.verdict)).collect();
    assert_eq!(
        verdicts,
        [
            ("auc_gain", Verdict::Fail),
            ("latency", Verdict::Pass),
            ("importance_shift", Verdict::Pass),
            ("segment_quality", Verdict::Pass)
        ]
    );
}

#[test]
fn a_first_version_passes_without_a_control_only_where_its_auc_is_defined() {
    use modelwatch::retrain::LinearModel;
    use modelwatch::retrain::gate::{Case, FixedLatency, Side};
    use modelwatch::retrain::importance::{ImportanceConfig, importance};
    let mut holdout = world();
    let m = LinearModel::new(holdout.features.clone(), vec![1.0, 1.0, 1.0, 0.0], -0.8, vec![]).unwrap();
    let ms = std::time::Duration::from_millis(2);
    let run = |h: &modelwatch::store::examples::ExampleSet| {
        let imp = importance(&m, h, &ImportanceConfig::default());
        gate::judge(
            &GateConfig::default(),
            Case { model: "pii", event_id: None, now_ms: 0 },
            h,
            &Side { version: 1, model: &m, importance: &imp },
            None,
            &FixedLatency { control: ms, challenger: ms },
        )
    };
    let r = run(&holdout);
    assert!(r.passed, "{:?}", r.criteria);
    assert!(r.criteria[0].summary.contains("first version"), "{}", r.criteria[0].summary);
    assert!(r.criteria[1..].iter().all(|c| c.verdict == Verdict::NotApplicable));
    holdout.rows.retain(|e| e.label);
    let r = run(&holdout);
    assert!(!r.passed);
    assert!(r.reasons()[0].contains("undefined on the hold-out"), "{:?}", r.reasons());
}
