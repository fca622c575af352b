//! Permutation importance benchmark (issue 17's speed goal: 32 features × 5 repeats on
//! 100,000 hold-out rows in at most 1 s), against scikit-learn's
//! `sklearn.inspection.permutation_importance` on the same data and the same model in the
//! same run.
//!
//! The data: 100,000 seeded rows, 32 normal features (8 of them carrying the signal, the
//! rest with small coefficients), labels drawn from a logistic model (about 30 %
//! positives), two segments. The model: a [`LinearModel`] with fixed coefficients; for
//! scikit-learn a `LogisticRegression` with the same `coef_` and `intercept_` set (not
//! fitted), the data handed over as `.npy` files the bench writes.
//!
//! Ours (median of 5 runs, after one warm-up): the overall table alone
//! (`permutation_importance_with` on the seeded permutations: what scikit-learn computes),
//! `permutation_importance` (overall and per segment) and `importance` (that and linear
//! SHAP), on every core `std::thread::available_parallelism` gives. scikit-learn: one run
//! each with `n_jobs=1` and `n_jobs=2`, `scoring="roc_auc"`, timed inside Python (the
//! import and the data loading are not counted).
//!
//! Run: `cargo bench --bench importance` (about a minute); scikit-learn runs in
//! `MODELWATCH_PYTHON` (the test venv, with numpy and scikit-learn).
//!
//! `cargo bench --bench importance -- correlation` measures instead the other figure
//! stored with every version: the Pearson and Spearman matrices of 20,000 training rows
//! × 16, 100 and 1,000 features (a quarter of the columns with 1 % missing values; and
//! 1,000 without any), every
//! row and as registered (the row sample of `features::correlation`), beside pandas'
//! `DataFrame.corr` on as many rows (both methods, one run, in `MODELWATCH_PYTHON`, which
//! needs pandas); and the stored record's size.
#![allow(missing_docs)]

use modelwatch::demo::Rng;
use modelwatch::features::correlation::{Method, correlation, matrix, sample_size};
use modelwatch::retrain::LinearModel;
use modelwatch::retrain::importance::{
    ImportanceConfig, ImportanceMetric, importance, permutation_importance, permutation_importance_with,
    permutations,
};
use modelwatch::store::examples::{Example, ExampleSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ROWS: usize = 100_000;
const FEATURES: usize = 32;
const REPEATS: usize = 5;
const SEED: u64 = 17;
const RUNS: usize = 5;

/// scikit-learn's side: the same model and data, timed around `permutation_importance` only.
const SKLEARN: &str = r#"
import json, sys, time
import numpy as np
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
d = sys.argv[1]
X = np.load(d + "/X.npy"); y = np.load(d + "/y.npy")
spec = json.load(open(d + "/model.json"))
m = LogisticRegression()
m.coef_ = np.array([[float(c) for c in spec["coef"]]]); m.intercept_ = np.array([float(spec["intercept"])])
m.classes_ = np.array([0, 1]); m.n_features_in_ = X.shape[1]
out = {}
for jobs in (1, 2):
    t = time.perf_counter()
    r = permutation_importance(m, X, y, scoring="roc_auc", n_repeats=5, random_state=17, n_jobs=jobs)
    out[f"n_jobs={jobs}"] = time.perf_counter() - t
    out["means"] = [float(v) for v in r.importances_mean]
print(json.dumps(out))
"#;

fn data() -> (LinearModel, ExampleSet) {
    let mut rng = Rng::seeded(SEED);
    let names: Vec<String> = (0..FEATURES).map(|i| format!("f{i:02}")).collect();
    let coef: Vec<f64> =
        (0..FEATURES).map(|i| if i < 8 { 1.2 - 0.25 * i as f64 } else { 0.02 * (i % 5) as f64 }).collect();
    let intercept = -1.2;
    let mut set = ExampleSet::new(names.clone());
    for i in 0..ROWS {
        let x: Vec<f64> = (0..FEATURES).map(|_| rng.normal()).collect();
        let z = intercept + x.iter().zip(&coef).map(|(x, w)| x * w).sum::<f64>();
        let label = rng.u() < 1.0 / (1.0 + (-z).exp());
        set.rows.push(Example {
            prediction_id: String::new(),
            predicted_ms: 0,
            label_ms: 0,
            segment: if i % 3 == 0 { "a" } else { "b" }.into(),
            features: x,
            confidence: f64::NAN,
            label,
        });
    }
    (LinearModel::new(names, coef, intercept, vec![]).unwrap(), set)
}

/// A C-order `.npy` file (format 1.0) of little-endian values.
fn write_npy(path: &Path, descr: &str, shape: &str, bytes: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.write_all(bytes).unwrap();
}

/// The CPU time of this process so far, every thread (user and system; Linux), in seconds:
/// on a machine shared with other builds it says what the work costs where the wall clock
/// says only what it got.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (in parentheses, which may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The median wall time of `RUNS` runs after a warm-up, and the mean CPU time of a run.
fn median(mut f: impl FnMut()) -> (Duration, f64) {
    f();
    let cpu = cpu_seconds();
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    let cpu = (cpu_seconds() - cpu) / RUNS as f64;
    times.sort();
    (times[RUNS / 2], cpu)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("importance bench: run with `cargo bench --bench importance`");
        return;
    }
    let python = std::env::var("MODELWATCH_PYTHON").expect(
        "MODELWATCH_PYTHON (a Python with numpy and scikit-learn; /tmp/env.sh or scripts/test sets it)",
    );
    if std::env::args().any(|a| a == "correlation") {
        return correlation_bench(&python);
    }
    let (model, set) = data();
    let positives = set.rows.iter().filter(|e| e.label).count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{ROWS} rows × {FEATURES} features × {REPEATS} repeats, AUC; {:.1} % positives; {cores} cores; load average {}",
        100.0 * positives as f64 / ROWS as f64,
        load()
    );

    let perms = permutations(ROWS, REPEATS, SEED);
    let mut overall = None;
    let t_overall = median(|| {
        overall =
            Some(permutation_importance_with(&model, &set, ImportanceMetric::Auc, 0.5, &perms).unwrap());
    });
    let config = ImportanceConfig { seed: SEED, ..ImportanceConfig::default() };
    let t_segments = median(|| {
        std::hint::black_box(permutation_importance(&model, &set, &config));
    });
    let t_report = median(|| {
        std::hint::black_box(importance(&model, &set, &config));
    });

    let dir = tempfile::tempdir().unwrap();
    let x: Vec<u8> = set.rows.iter().flat_map(|e| e.features.iter().flat_map(|v| v.to_le_bytes())).collect();
    write_npy(&dir.path().join("X.npy"), "<f8", &format!("({ROWS}, {FEATURES})"), &x);
    let y: Vec<u8> = set.rows.iter().map(|e| u8::from(e.label)).collect();
    write_npy(&dir.path().join("y.npy"), "|u1", &format!("({ROWS},)"), &y);
    // Python reprs of the coefficients (ryu's shortest round-trip text: the same floats).
    let spec = serde_json::json!({
        "coef": model.coef.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "intercept": model.intercept.to_string(),
    });
    std::fs::write(dir.path().join("model.json"), spec.to_string()).unwrap();
    let out = Command::new(&python)
        .arg("-c")
        .arg(SKLEARN)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(out.status.success(), "scikit-learn: {}", String::from_utf8_lossy(&out.stderr));
    let sk: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (sk1, sk2) = (sk["n_jobs=1"].as_f64().unwrap(), sk["n_jobs=2"].as_f64().unwrap());

    // The two measure the same thing: the means agree within the permutations' noise.
    let overall = overall.unwrap();
    let worst = overall
        .features
        .iter()
        .zip(sk["means"].as_array().unwrap())
        .map(|(f, s)| (f.mean - s.as_f64().unwrap()).abs())
        .fold(0.0, f64::max);
    println!("largest |ours − scikit-learn| of a feature's mean importance: {worst:.2e}");
    assert!(worst < 0.005, "the figures differ: {worst}");

    println!("load average after the runs: {}", load());
    println!("| what | wall (median of {RUNS}) | CPU per run | scikit-learn n_jobs=1 ÷ it | n_jobs=2 ÷ it |");
    println!("|---|---:|---:|---:|---:|");
    for (what, (t, cpu)) in [
        ("ours, overall table (scikit-learn's computation)", t_overall),
        ("ours, overall and per segment", t_segments),
        ("ours, that and linear SHAP (`importance`)", t_report),
    ] {
        let t = t.as_secs_f64();
        println!("| {what} | {t:.3} s | {cpu:.2} s | {:.1}× | {:.1}× |", sk1 / t, sk2 / t);
    }
    println!("| scikit-learn, n_jobs=1 (one run) | {sk1:.3} s | | | |");
    println!("| scikit-learn, n_jobs=2 (one run) | {sk2:.3} s | | | |");
}

/// pandas' side: both methods on the same matrix, timed around `corr` only.
const PANDAS: &str = r#"
import json, sys, time
import numpy as np, pandas as pd
df = pd.DataFrame(np.load(sys.argv[1])).iloc[: int(sys.argv[2])]
out = {}
for method in ("pearson", "spearman"):
    t = time.perf_counter(); df.corr(method=method); out[method] = time.perf_counter() - t
print(json.dumps(out))
"#;

/// 20,000 seeded rows of `d` features: each a mix of four shared factors and its own
/// noise (so pairs correlate at every strength); with `missing`, every fourth column
/// missing 1 % of its values.
fn correlated(d: usize, missing: bool) -> ExampleSet {
    const N: usize = 20_000;
    let mut rng = Rng::seeded(SEED);
    let weights: Vec<[f64; 4]> =
        (0..d).map(|_| [rng.normal(), rng.normal(), rng.normal(), rng.normal()]).collect();
    let mut set = ExampleSet::new((0..d).map(|i| format!("f{i:04}")).collect());
    for _ in 0..N {
        let factors = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
        let features = (0..d)
            .map(|j| {
                if missing && j % 4 == 0 && rng.u() < 0.01 {
                    return f64::NAN;
                }
                weights[j].iter().zip(factors).map(|(w, f)| w * f).sum::<f64>() + rng.normal()
            })
            .collect();
        set.rows.push(Example {
            prediction_id: String::new(),
            predicted_ms: 0,
            label_ms: 0,
            segment: "a".into(),
            features,
            confidence: f64::NAN,
            label: false,
        });
    }
    set
}

fn correlation_bench(python: &str) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("correlation, 20,000 rows; {cores} cores; load average {}", load());
    println!(
        "| features | every row, both methods | as registered (rows) | CPU per run | pandas pearson + spearman, the same rows | stored JSON |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (d, missing) in [(16, true), (100, true), (1_000, true), (1_000, false)] {
        let set = correlated(d, missing);
        let columns: Vec<Vec<f64>> =
            (0..d).map(|j| set.rows.iter().map(|e| e.features[j]).collect()).collect();
        let both = || {
            std::hint::black_box(matrix(&columns, Method::Pearson));
            std::hint::black_box(matrix(&columns, Method::Spearman));
        };
        // Every row of 1,000 features is the cost the sample avoids: timed once.
        let every = if d >= 1_000 {
            let t = Instant::now();
            both();
            t.elapsed()
        } else {
            median(both).0
        };
        let mut stored = None;
        let (registered, cpu) = median(|| stored = Some(correlation(&set)));
        let json = serde_json::to_vec(&stored.unwrap()).unwrap().len();
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<u8> =
            set.rows.iter().flat_map(|e| e.features.iter().flat_map(|v| v.to_le_bytes())).collect();
        let npy = dir.path().join("X.npy");
        write_npy(&npy, "<f8", &format!("({}, {d})", set.rows.len()), &x);
        let rows = sample_size(set.rows.len(), d, if missing { d.div_ceil(4) } else { 0 });
        let out = Command::new(python)
            .arg("-c")
            .arg(PANDAS)
            .arg(&npy)
            .arg(rows.to_string())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        assert!(out.status.success(), "pandas: {}", String::from_utf8_lossy(&out.stderr));
        let pd: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let pandas = pd["pearson"].as_f64().unwrap() + pd["spearman"].as_f64().unwrap();
        println!(
            "| {d}{} | {:.3} s | {:.3} s ({}) | {cpu:.2} s | {pandas:.2} s | {:.1} KiB |",
            if missing { "" } else { ", none missing" },
            every.as_secs_f64(),
            registered.as_secs_f64(),
            rows,
            json as f64 / 1024.0
        );
    }
    println!("load average after the runs: {}", load());
}
