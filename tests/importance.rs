//! Feature importance (issue 17) against scikit-learn and against what it must mean:
//! permutation importance on scikit-learn's own permutations and on ours
//! (`tests/importance/golden.json`, made by `scripts/golden_importance.py`), against a
//! naive re-computation through `retrain::{auc, figures}`, on constructed models whose
//! importance is known, on degenerate sets; exact linear SHAP against its closed form.

use crate::support::Rng;
use modelwatch::retrain::importance::{
    ImportanceConfig, ImportanceMetric, ImportanceTable, importance, linear_shap, linear_shap_values,
    permutation_importance, permutation_importance_with, permutations,
};
use modelwatch::retrain::{LinearModel, Model, auc, figures};
use modelwatch::store::examples::{Example, ExampleSet};
use std::path::Path;

const METRICS: [(ImportanceMetric, &str); 3] = [
    (ImportanceMetric::Auc, "roc_auc"),
    (ImportanceMetric::NegLogLoss, "neg_log_loss"),
    (ImportanceMetric::Accuracy, "accuracy"),
];

#[derive(serde::Deserialize)]
struct Golden {
    seed: u64,
    repeats: usize,
    features: Vec<String>,
    coef: Vec<String>,
    intercept: String,
    segments: Vec<String>,
    labels: Vec<bool>,
    rows: Vec<Vec<String>>,
    permutations: Vec<Vec<usize>>,
    results: std::collections::BTreeMap<String, SkResult>,
}

#[derive(serde::Deserialize)]
struct SkResult {
    baseline: String,
    importances_mean: Vec<String>,
    importances_std: Vec<String>,
}

/// The golden's floats are Python reprs in strings: the standard library parses them to
/// the bit (serde_json's own parser may be an ULP off).
fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|e| panic!("{s:?} in the golden: {e}"))
}

fn example(segment: &str, features: Vec<f64>, label: bool) -> Example {
    Example {
        prediction_id: String::new(),
        predicted_ms: 0,
        label_ms: 0,
        segment: segment.into(),
        features,
        confidence: f64::NAN,
        label,
    }
}

fn golden() -> (Golden, LinearModel, ExampleSet) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/importance/golden.json");
    let g: Golden = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let model = LinearModel::new(
        g.features.clone(),
        g.coef.iter().map(|c| num(c)).collect(),
        num(&g.intercept),
        vec![],
    )
    .unwrap();
    let mut set = ExampleSet::new(g.features.clone());
    for ((row, seg), &y) in g.rows.iter().zip(&g.segments).zip(&g.labels) {
        set.rows.push(example(seg, row.iter().map(|v| num(v)).collect(), y));
    }
    (g, model, set)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn matches_scikit_learn_on_its_own_permutations() {
    let (g, model, set) = golden();
    for (metric, name) in METRICS {
        let sk = &g.results[name];
        let t = permutation_importance_with(&model, &set, metric, 0.5, &g.permutations).unwrap();
        // 1e-12: the same rows, model and permutations, so only the order of floating
        // summation differs (BLAS dot products and numpy's pairwise sums against our
        // sequential ones; the ROC curve's trapezoids against the rank sum): a few ULPs of
        // 2,000-term sums of figures near 1, far below 1e-12.
        let tol = 1e-12;
        let baseline = t.baseline.unwrap();
        assert!(close(baseline, num(&sk.baseline), tol), "{name}: baseline {baseline} vs {}", sk.baseline);
        for (j, f) in t.features.iter().enumerate() {
            assert_eq!(f.feature, g.features[j]);
            let (mean, std) = (num(&sk.importances_mean[j]), num(&sk.importances_std[j]));
            assert!(
                close(f.mean, mean, tol),
                "{name} {}: mean {} vs scikit-learn's {mean}",
                f.feature,
                f.mean
            );
            assert!(close(f.std, std, tol), "{name} {}: std {} vs scikit-learn's {std}", f.feature, f.std);
        }
    }
}

#[test]
fn matches_scikit_learn_within_sampling_error_on_our_permutations() {
    let (g, model, set) = golden();
    for (metric, name) in METRICS {
        let sk = &g.results[name];
        let config = ImportanceConfig { repeats: g.repeats, metric, seed: g.seed, threshold: 0.5 };
        let ours = permutation_importance(&model, &set, &config).overall;
        for (j, f) in ours.features.iter().enumerate() {
            let (mean, std) = (num(&sk.importances_mean[j]), num(&sk.importances_std[j]));
            // Two means of 5 independent permutations each: the difference has the standard
            // error sqrt(σ²/5 + σ²/5), σ estimated by each side's std; 4 of them (plus 1e-9
            // for the feature the model ignores, 0 on both sides) leaves room for the
            // estimates' own error. The data and seeds are fixed, so this never flickers.
            let tol = 4.0 * (f.std * f.std / 5.0 + std * std / 5.0).sqrt() + 1e-9;
            assert!(
                close(f.mean, mean, tol),
                "{name} {}: our mean {} ± {} vs scikit-learn's {mean} ± {std} (tolerance {tol})",
                f.feature,
                f.mean,
                f.std
            );
        }
        // And the figures are not all zero: the comparison measured something.
        assert!(ours.features[0].mean > 0.05, "{name}: {:?}", ours.features[0]);
    }
}

#[test]
fn the_golden_is_what_scikit_learn_gives_now() {
    // A missing tool fails the test: a skipped comparison would pass for the wrong reason.
    let python = std::env::var("MODELWATCH_PYTHON")
        .expect("MODELWATCH_PYTHON (a Python with numpy and scikit-learn; scripts/test sets it)");
    let out = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/golden_importance.py"))
        .arg("--check")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "golden_importance.py --check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Permutation importance the slow obvious way: a permuted copy of every row, scored, and
/// the metric from `retrain::{auc, figures}`.
fn naive(
    model: &dyn Model,
    set: &ExampleSet,
    metric: ImportanceMetric,
    perms: &[Vec<usize>],
) -> ImportanceTable {
    let metric_of = |rows: &[Vec<f64>]| -> Option<f64> {
        let scored: Vec<(f64, bool)> =
            rows.iter().zip(&set.rows).map(|(x, e)| (model.score(x), e.label)).collect();
        match metric {
            ImportanceMetric::Auc => auc(&scored),
            ImportanceMetric::NegLogLoss => figures(&scored, 0.5).get("log_loss").map(|l| -l),
            ImportanceMetric::Accuracy => (!scored.is_empty()).then(|| {
                scored.iter().filter(|&&(s, y)| (s >= 0.5) == y).count() as f64 / scored.len() as f64
            }),
        }
    };
    let rows: Vec<Vec<f64>> = set.rows.iter().map(|e| e.features.clone()).collect();
    let Some(baseline) = metric_of(&rows) else {
        return ImportanceTable { rows: rows.len(), baseline: None, features: vec![] };
    };
    let features = (0..set.features.len())
        .map(|j| {
            let falls: Vec<f64> = perms
                .iter()
                .map(|p| {
                    let mut permuted = rows.clone();
                    for (i, r) in permuted.iter_mut().enumerate() {
                        r[j] = rows[p[i]][j];
                    }
                    baseline - metric_of(&permuted).unwrap()
                })
                .collect();
            let k = falls.len() as f64;
            let mean = falls.iter().sum::<f64>() / k;
            let std = (falls.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / k).sqrt();
            modelwatch::retrain::importance::FeatureScore { feature: set.features[j].clone(), mean, std }
        })
        .collect();
    ImportanceTable { rows: rows.len(), baseline: Some(baseline), features }
}

/// Seeded rows: `d` normal features, labels from a logistic of the first three, a tenth of
/// the values of feature 1 NaN or infinite, two segments.
fn simulated(seed: u64, n: usize, d: usize) -> (LinearModel, ExampleSet) {
    let mut rng = Rng::seeded(seed);
    let names: Vec<String> = (0..d).map(|i| format!("f{i}")).collect();
    let mut set = ExampleSet::new(names.clone());
    for _ in 0..n {
        let mut x: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let z = -0.8 + 1.5 * x[0] - 1.0 * x[1] + 0.5 * x[2];
        let y = rng.u() < 1.0 / (1.0 + (-z).exp());
        if rng.u() < 0.1 {
            x[1] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][rng.below(3)];
        }
        let seg = if rng.u() < 0.4 { "a" } else { "b" };
        set.rows.push(example(seg, x, y));
    }
    let coef: Vec<f64> =
        (0..d).map(|i| [1.4, -0.9, 0.6].get(i).copied().unwrap_or(0.05 * i as f64)).collect();
    let impute = (0..d).map(|i| 0.1 * i as f64).collect();
    (LinearModel::new(names, coef, -0.7, impute).unwrap(), set)
}

/// A linear model hidden behind the trait: permutation importance takes the general path
/// (every permuted row scored afresh), not the linear shortcut.
struct Opaque(LinearModel);

impl Model for Opaque {
    fn features(&self) -> &[String] {
        self.0.features()
    }

    fn score(&self, x: &[f64]) -> f64 {
        self.0.score(x)
    }
}

#[test]
fn the_threaded_core_agrees_with_the_naive_computation() {
    // 20,000 rows × 6 features × 5 repeats: large enough for the threaded path.
    let (model, set) = simulated(3, 20_000, 6);
    let perms = permutations(set.rows.len(), 5, 9);
    for (metric, name) in METRICS {
        let slow = naive(&model, &set, metric, &perms);
        // Any model: the same formulas in the same order, so the same bits; a non-zero
        // figure shows the comparison is not of two empty tables.
        let general = permutation_importance_with(&Opaque(model.clone()), &set, metric, 0.5, &perms).unwrap();
        assert_eq!(general, slow, "{name}");
        assert!(general.features[0].mean > 0.01, "{name}: {:?}", general.features[0]);
        // A linear model's shortcut moves the decision by coef · change instead of summing
        // it afresh: the last bit of a score may differ, not the figures beyond 1e-12.
        let linear = permutation_importance_with(&model, &set, metric, 0.5, &perms).unwrap();
        assert_eq!(linear.baseline, slow.baseline, "{name}");
        for (f, g) in linear.features.iter().zip(&slow.features) {
            assert!(close(f.mean, g.mean, 1e-12) && close(f.std, g.std, 1e-12), "{name}: {f:?} vs {g:?}");
        }
    }
    // A step model's scores tie in two runs: ties count half, as `retrain::auc` counts them.
    let (_, _, set) = golden();
    let perms = permutations(set.rows.len(), 5, 9);
    for (metric, name) in METRICS {
        let fast = permutation_importance_with(&Step, &set, metric, 0.5, &perms).unwrap();
        assert_eq!(fast, naive(&Step, &set, metric, &perms), "{name}");
        assert!(fast.features[3].mean > 0.01, "{name}: {:?}", fast.features[3]);
    }
}

#[test]
fn the_seeded_figures_are_the_core_on_the_seeded_permutations() {
    let (model, set) = simulated(4, 3_000, 4);
    let config = ImportanceConfig { seed: 11, ..ImportanceConfig::default() };
    let ours = permutation_importance(&model, &set, &config);
    let core =
        permutation_importance_with(&model, &set, config.metric, 0.5, &permutations(3_000, 5, 11)).unwrap();
    assert_eq!(ours.overall, core);
    assert_eq!((ours.metric, ours.repeats, ours.seed), (ImportanceMetric::Auc, 5, 11));
}

#[test]
fn a_feature_the_model_ignores_has_importance_exactly_zero() {
    let (_, model, set) = golden();
    assert_eq!(model.coef[5], 0.0, "x5 is the ignored feature");
    let opaque = Opaque(model.clone());
    // The linear shortcut, the general path on the same model, and a step of x3 alone.
    let cases: [(&dyn Model, &[usize], usize); 3] =
        [(&model, &[5], 0), (&opaque, &[5], 0), (&Step, &[0, 1, 2, 4, 5], 3)];
    for (model, ignored, used) in cases {
        for (metric, name) in METRICS {
            let config = ImportanceConfig { metric, seed: 5, ..ImportanceConfig::default() };
            let r = permutation_importance(model, &set, &config);
            for table in std::iter::once(&r.overall).chain(r.segments.values()) {
                for &j in ignored {
                    let f = &table.features[j];
                    assert_eq!((f.mean, f.std), (0.0, 0.0), "{name}: {f:?}");
                }
                assert!(table.features[used].mean > 0.0, "{name}: {:?}", table.features[used]);
            }
        }
    }
}

/// A model of feature 3 alone, and not a linear one: a step, so its scores tie.
struct Step;

impl Model for Step {
    fn features(&self) -> &[String] {
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        NAMES.get_or_init(|| (0..6).map(|i| format!("x{i}")).collect())
    }

    fn score(&self, x: &[f64]) -> f64 {
        if x.get(3).is_some_and(|&v| v > 0.0) { 0.8 } else { 0.2 }
    }
}

#[test]
fn a_model_of_one_feature_puts_the_whole_share_on_it() {
    let (_, linear, set) = golden();
    let mut coef = vec![0.0; 6];
    coef[2] = 1.5;
    let only_x2 = LinearModel::new(linear.features.clone(), coef, 0.3, vec![]).unwrap();
    let cases: [(&dyn Model, &str); 2] = [(&only_x2, "x2"), (&Step, "x3")];
    for (model, feature) in cases {
        for (metric, name) in METRICS {
            let config = ImportanceConfig { metric, seed: 8, ..ImportanceConfig::default() };
            let shares = permutation_importance(model, &set, &config).overall.shares();
            assert_eq!(shares.len(), 6);
            for (f, share) in &shares {
                let want = if f == feature { 1.0 } else { 0.0 };
                assert_eq!(*share, want, "{name}: {f} has share {share}: {shares:?}");
            }
        }
    }
    // Through `importance`: a model that is not linear has no SHAP figures.
    assert!(importance(&Step, &set, &ImportanceConfig::default()).shap.is_none());
    assert!(importance(&only_x2, &set, &ImportanceConfig::default()).shap.is_some());
}

#[test]
fn segment_tables_are_measured_on_the_segment_rows_only() {
    // Segment a's labels follow u, segment b's follow v; the model uses both everywhere.
    let mut rng = Rng::seeded(21);
    let mut set = ExampleSet::new(vec!["u".into(), "v".into()]);
    for i in 0..4_000 {
        let (u, v) = (rng.normal(), rng.normal());
        let seg = if i % 2 == 0 { "a" } else { "b" };
        let z = 2.0 * if seg == "a" { u } else { v };
        let y = rng.u() < 1.0 / (1.0 + (-z).exp());
        set.rows.push(example(seg, vec![u, v], y));
    }
    let model = LinearModel::new(vec!["u".into(), "v".into()], vec![2.0, 2.0], 0.0, vec![]).unwrap();
    for (metric, name) in METRICS {
        let config = ImportanceConfig { metric, seed: 2, ..ImportanceConfig::default() };
        let r = permutation_importance(&model, &set, &config);
        let (a, b) = (&r.segments["a"], &r.segments["b"]);
        assert_eq!((a.rows, b.rows, r.overall.rows), (2_000, 2_000, 4_000));
        let mean = |t: &ImportanceTable, j: usize| t.features[j].mean;
        // Measured on its own rows, a segment sees only the feature its labels follow; the
        // other one's shuffle moves scores as much but explains nothing there.
        assert!(mean(a, 0) > 0.05 && mean(b, 1) > 0.05, "{name}: a {a:?} b {b:?}");
        assert!(mean(a, 1).abs() < 0.2 * mean(a, 0), "{name}: a {a:?}");
        assert!(mean(b, 0).abs() < 0.2 * mean(b, 1), "{name}: b {b:?}");
        // Overall, both matter.
        assert!(mean(&r.overall, 0) > 0.02 && mean(&r.overall, 1) > 0.02, "{name}: {:?}", r.overall);
    }
}

/// A model that scores NaN on half the rows and infinity on some.
struct Wild;

impl Model for Wild {
    fn features(&self) -> &[String] {
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        NAMES.get_or_init(|| vec!["a".into(), "b".into()])
    }

    fn score(&self, x: &[f64]) -> f64 {
        match x {
            [a, _] if a.is_nan() => f64::NAN,
            [a, b] if *b > 1.0 => f64::INFINITY * a.signum(),
            [a, b] => a + b,
            _ => f64::NAN,
        }
    }
}

#[test]
fn nan_infinity_and_degenerate_sets_give_figures_or_none_never_a_panic() {
    let names = vec!["a".to_string(), "b".to_string()];
    let linear = LinearModel::new(names.clone(), vec![1.0, -1.0], 0.0, vec![0.5, 0.0]).unwrap();
    let odd = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1.0, 2.0, -3.0, 1e300];
    let mut wild = ExampleSet::new(names.clone());
    for i in 0..81 {
        wild.rows.push(example(["s", "t"][i % 2], vec![odd[i % 9], odd[(i / 9) % 9]], i % 3 == 0));
    }
    let one_class = ExampleSet {
        rows: wild
            .rows
            .iter()
            .cloned()
            .map(|mut e| {
                e.label = true;
                e
            })
            .collect(),
        ..wild.clone()
    };
    let one_row = ExampleSet { rows: wild.rows[..1].to_vec(), ..wild.clone() };
    let empty = ExampleSet::new(names.clone());
    let models: [&dyn Model; 2] = [&linear, &Wild];
    for model in models {
        for (metric, name) in METRICS {
            let config = ImportanceConfig { metric, ..ImportanceConfig::default() };
            let r = permutation_importance(model, &wild, &config);
            assert!(r.overall.baseline.is_some_and(f64::is_finite), "{name}: {:?}", r.overall);
            assert!(
                r.overall.features.iter().all(|f| f.mean.is_finite() && f.std.is_finite()),
                "{name}: {r:?}"
            );
            assert_eq!(r.segments.len(), 2);
            // NaN, infinite and signed-zero scores rank as `retrain::auc` ranks them (NaN
            // lowest, −0 tied with +0), and cost what `figures` charges.
            let perms = permutations(wild.rows.len(), 5, 3);
            let fast = permutation_importance_with(model, &wild, metric, 0.5, &perms).unwrap();
            assert_eq!(fast, naive(model, &wild, metric, &perms), "{name}");
            let e = permutation_importance(model, &empty, &config);
            assert_eq!(
                (e.overall.rows, e.overall.baseline, e.overall.features.len()),
                (0, None, 0),
                "{name}"
            );
            assert!(e.segments.is_empty());
            let one = permutation_importance(model, &one_row, &config);
            if metric == ImportanceMetric::Auc {
                assert_eq!((one.overall.baseline, one.overall.features.len()), (None, 0), "{name}");
            } else {
                // One row has one permutation: nothing moves.
                assert!(
                    one.overall.features.iter().all(|f| (f.mean, f.std) == (0.0, 0.0)),
                    "{name}: {one:?}"
                );
            }
        }
        let r = permutation_importance(model, &one_class, &ImportanceConfig::default());
        assert_eq!((r.overall.baseline, r.overall.features.len()), (None, 0));
        assert!(r.segments.values().all(|t| t.baseline.is_none() && t.features.is_empty()));
    }
    // The figures serialise: no NaN where JSON has none.
    let r = importance(&linear, &wild, &ImportanceConfig::default());
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("null"), "{json}");
    assert!(linear_shap_values(&linear, &empty).is_none());
    assert_eq!(linear_shap(&linear, &empty), Default::default());
    // Permutations that are not the set's rows are refused with what is wrong.
    let n = wild.rows.len();
    let e = permutation_importance_with(&linear, &wild, ImportanceMetric::Auc, 0.5, &[]).unwrap_err();
    assert!(e.contains("no permutations"), "{e}");
    let e =
        permutation_importance_with(&linear, &wild, ImportanceMetric::Auc, 0.5, &[vec![0; n]]).unwrap_err();
    assert!(e.contains("permutation 0") && e.contains("index 0 is repeated"), "{e}");
    let e =
        permutation_importance_with(&linear, &wild, ImportanceMetric::Auc, 0.5, &[(0..n).collect(), vec![1]])
            .unwrap_err();
    assert!(e.contains("permutation 1 has 1 indices for the set's 81 rows"), "{e}");
}

#[test]
fn the_same_seed_gives_the_same_figures_and_another_seed_other_permutations() {
    let (model, set) = simulated(6, 2_000, 4);
    let run = |seed| permutation_importance(&model, &set, &ImportanceConfig { seed, ..Default::default() });
    assert_eq!(run(1), run(1));
    let (one, two) = (run(1), run(2));
    assert_ne!(one.overall.features, two.overall.features);
    assert_ne!(one.segments["a"].features, two.segments["a"].features);
    assert_eq!(permutations(2_000, 5, 1), permutations(2_000, 5, 1));
    let (p, q) = (permutations(2_000, 5, 1), permutations(2_000, 5, 2));
    for k in 0..5 {
        assert_ne!(p[k], q[k]);
        for perm in [&p[k], &q[k]] {
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            assert!(sorted.iter().copied().eq(0..2_000), "a permutation of the rows");
        }
    }
    // The repeats of one seed are different permutations, not one repeated.
    assert_ne!(p[0], p[1]);
}

#[test]
fn linear_shap_is_the_closed_form_and_adds_up_to_each_decision() {
    let (model, set) = simulated(7, 3_000, 5);
    assert!(set.rows.iter().any(|e| !e.features[1].is_finite()), "some values are missing");
    // The closed form, computed here: impute, the mean of each column, coef · (x − mean).
    let d = model.coef.len();
    let n = set.rows.len() as f64;
    let imputed: Vec<Vec<f64>> = set
        .rows
        .iter()
        .map(|e| {
            e.features
                .iter()
                .enumerate()
                .map(|(j, &x)| if x.is_finite() { x } else { model.impute[j] })
                .collect()
        })
        .collect();
    let mean: Vec<f64> = (0..d).map(|j| imputed.iter().map(|x| x[j]).sum::<f64>() / n).collect();
    let phi: Vec<Vec<f64>> =
        imputed.iter().map(|x| (0..d).map(|j| model.coef[j] * (x[j] - mean[j])).collect()).collect();

    let shap = linear_shap_values(&model, &set).unwrap();
    let expected_decision = set.rows.iter().map(|e| model.decision(&e.features)).sum::<f64>() / n;
    // E[decision] over the set: the same sum in another order.
    assert!(close(shap.expected, expected_decision, 1e-12), "{} vs {expected_decision}", shap.expected);
    for ((ours, theirs), e) in shap.values.iter().zip(&phi).zip(&set.rows) {
        for (a, b) in ours.iter().zip(theirs) {
            assert!(close(*a, *b, 1e-12), "{a} vs {b}");
        }
        // Efficiency: the values add up from the expected decision to the row's decision.
        let total = shap.expected + ours.iter().sum::<f64>();
        assert!(
            close(total, model.decision(&e.features), 1e-12),
            "{total} vs {}",
            model.decision(&e.features)
        );
    }

    let summary = linear_shap(&model, &set);
    let mean_abs =
        |rows: &[usize], j: usize| rows.iter().map(|&i| phi[i][j].abs()).sum::<f64>() / rows.len() as f64;
    let all: Vec<usize> = (0..set.rows.len()).collect();
    for (j, f) in model.features.iter().enumerate() {
        assert!(close(summary.overall[f], mean_abs(&all, j), 1e-12), "{f}");
        for seg in ["a", "b"] {
            // The segment's rows, against the whole set's means.
            let rows: Vec<usize> = all.iter().copied().filter(|&i| set.rows[i].segment == seg).collect();
            assert!(close(summary.segments[seg][f], mean_abs(&rows, j), 1e-12), "{seg} {f}");
        }
    }
    assert_eq!(summary.segments.len(), 2);
    assert!(summary.overall["f0"] > summary.overall["f3"], "{summary:?}");
}
