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
