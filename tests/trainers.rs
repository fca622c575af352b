//! Trainers against the real thing: scikit-learn's `LogisticRegression` in the test venv
//! (`MODELWATCH_PYTHON`, set by scripts/test) run as an external command through
//! `scripts/train_logistic.py`, the in-process trainer compared with it, and the command
//! trainer's failures (non-zero exit, timeout, no or malformed artifact) with their text.

use crate::support::Rng;
use modelwatch::retrain::{
    ClosureTrainer, CommandTrainer, LogisticTrainer, Model, ModelLoader, TrainError, Trainer, TrainingData,
    load_model,
};
use modelwatch::store::examples::{Example, ExampleSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn python() -> String {
    // A missing tool fails the test: a skipped comparison would pass for the wrong reason.
    std::env::var("MODELWATCH_PYTHON")
        .expect("MODELWATCH_PYTHON (a Python with scikit-learn and pyarrow; scripts/test sets it)")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/train_logistic.py")
}

const FEATURES: usize = 8;

/// Seeded labelled examples: 8 features of different scales, labels drawn from a logistic
/// model, about 1 % of two features missing (NaN); the newest quarter is the hold-out.
fn simulated(seed: u64, rows: usize) -> TrainingData {
    let mut rng = Rng::seeded(seed);
    let names: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    let truth: Vec<f64> = (0..FEATURES).map(|_| rng.normal()).collect();
    let scale: Vec<f64> = (0..FEATURES).map(|i| 0.5 + i as f64 * 0.4).collect();
    let mut all = Vec::with_capacity(rows);
    for i in 0..rows {
        let x: Vec<f64> = scale.iter().map(|s| s * rng.normal()).collect();
        let z: f64 = -0.3 + x.iter().zip(&truth).zip(&scale).map(|((x, w), s)| x * w / s).sum::<f64>();
        let label = rng.u() < 1.0 / (1.0 + (-z).exp());
        let mut features = x;
        for f in [1, 5] {
            if rng.u() < 0.01 {
                features[f] = f64::NAN;
            }
        }
        all.push(Example {
            prediction_id: format!("p{i}"),
            predicted_ms: 1_700_000_000_000 + i as i64 * 1000,
            label_ms: 1_700_000_000_000 + i as i64 * 1000 + 60_000,
            segment: ["email", "phone"][i % 2].into(),
            features,
            confidence: 0.5,
            label,
        });
    }
    let holdout = all.split_off(rows * 3 / 4);
    TrainingData::new(
        ExampleSet { features: names.clone(), rows: all },
        ExampleSet { features: names, rows: holdout },
    )
    .unwrap()
}

fn sklearn(c: f64, timeout: Duration) -> CommandTrainer {
    CommandTrainer::new([python().into(), script().into_os_string()], timeout)
        .env("MODELWATCH_C", c.to_string())
}

#[test]
fn the_command_trainers_model_scores_as_scikit_learns_predict_proba() {
    let data = simulated(16, 2000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v1");
    let trained = sklearn(0.5, Duration::from_secs(300)).train(&data, &out).unwrap();
    assert_eq!(trained.kind, "command");
    assert_eq!(trained.files, ["holdout_proba.json", "metadata.json", "model.json"]);
    assert_eq!(trained.metadata["trainer"], "scikit-learn LogisticRegression");
    assert_eq!(trained.metadata["train_rows"], 1500);
    assert!(trained.output.stdout.contains("fitted 1500 rows, 8 features, C=0.5"), "{:?}", trained.output);

    let sk: Vec<f64> =
        serde_json::from_slice(&std::fs::read(out.join("holdout_proba.json")).unwrap()).unwrap();
    let model = load_model(&trained.kind, &trained.artifact_dir).unwrap();
    assert_eq!(model.features(), data.features());
    assert_eq!(sk.len(), data.holdout.len());
    let (mut imputed, mut worst) = (0, 0.0f64);
    for (e, &p) in data.holdout.rows.iter().zip(&sk) {
        imputed += usize::from(e.features.iter().any(|v| v.is_nan()));
        let ours = model.score(&e.features);
        worst = worst.max((ours - p).abs() / p);
        // Both are expit of the same dot product; only the summation order differs.
        assert!(
            (ours - p).abs() <= 1e-9 * p.abs().max(1e-300),
            "{}: ours {ours}, scikit-learn {p}",
            e.prediction_id
        );
    }
    eprintln!("largest relative difference from predict_proba: {worst:e}");
    // The comparison covers rows with missing values and a real spread of scores.
    assert!(imputed > 0);
    let (lo, hi) = sk.iter().fold((1.0f64, 0.0f64), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    assert!(lo < 0.05 && hi > 0.95, "{lo} {hi}");
}

#[test]
fn the_in_process_trainer_finds_scikit_learns_coefficients() {
    // Both minimise the same strictly convex objective (α = 1/C), so they differ only by
    // where each solver stopped. Ours stops when Σ logloss + ‖w‖²/2C no longer changes in
    // floating point (about 1e-6 of gradient norm here, from a loss near 700); the penalty
    // makes the objective at least 1/C-curved, so our coefficients are within about C times
    // the gradient norm of the optimum: with the norm asserted below 1e-5, within 5e-6.
    // scikit-learn runs at tol 1e-10, much closer. Hence 1e-5 (measured: about 1.3e-7).
    const TOLERANCE: f64 = 1e-5;
    let data = simulated(17, 2000);
    let dir = tempfile::tempdir().unwrap();
    let ours =
        LogisticTrainer { c: 0.5, ..Default::default() }.train(&data, &dir.path().join("ours")).unwrap();
    let theirs = sklearn(0.5, Duration::from_secs(300)).train(&data, &dir.path().join("theirs")).unwrap();
    assert_eq!(ours.kind, "logistic");
    assert_eq!(ours.files, ["metadata.json", "model.json"]);
    let read = |t: &modelwatch::retrain::Trained| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(t.artifact_dir.join("model.json")).unwrap()).unwrap()
    };
    let (a, b) = (read(&ours), read(&theirs));
    let nums = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let params = |m: &serde_json::Value| -> Vec<f64> {
        let mut p = nums(&m["coef"]);
        p.push(m["intercept"].as_f64().unwrap());
        p
    };
    let (pa, pb) = (params(&a), params(&b));
    assert_eq!(pa.len(), FEATURES + 1);
    let worst = pa.iter().zip(&pb).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    eprintln!("largest coefficient difference from scikit-learn: {worst:e}");
    assert!(worst <= TOLERANCE, "ours {a}\nscikit-learn {b}");
    // The same training means impute missing values (the summation order differs).
    for (x, y) in nums(&a["impute"]).iter().zip(nums(&b["impute"])) {
        assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} {y}");
    }
    // The version loads back through its kind and scores as the trainer's model.
    let model = load_model("logistic", &ours.artifact_dir).unwrap();
    let fitted = LogisticTrainer { c: 0.5, ..Default::default() }.fit(&data).unwrap();
    let row = &data.holdout.rows[0].features;
    assert_eq!(model.score(row), fitted.score(row));
    assert_eq!(ours.metadata["holdout"]["rows"], 500);
    let gradient = ours.metadata["gradient_norm"].as_f64().unwrap();
    eprintln!("gradient norm where linfa stopped: {gradient:e}");
    assert!(gradient < 1e-5, "{}", ours.metadata);
}

fn python_c(code: &str, timeout: Duration) -> CommandTrainer {
    CommandTrainer::new([python(), "-c".into(), code.into()], timeout)
}

#[test]
fn a_command_that_exits_non_zero_fails_with_its_status_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let code = "import sys; print('reading', sys.argv[1]); print('ValueError: no column f3', file=sys.stderr); sys.exit(3)";
    let e =
        python_c(code, Duration::from_secs(120)).train(&simulated(1, 40), &dir.path().join("v")).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("exited with status 3; its stderr ends with:\nValueError: no column f3"), "{text}");
    let TrainError::Exit { output, .. } = e else { panic!("{e:?}") };
    assert!(output.stdout.starts_with("reading /") && output.stdout.contains("train.parquet"), "{output:?}");
}

/// Whether a process is gone: absent, or a zombie nobody has reaped yet.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_command_past_its_timeout_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v");
    // It starts a grandchild (in its group) and says so before hanging.
    let code = "import subprocess, sys, time\n\
                child = subprocess.Popen(['sleep', '600'])\n\
                open(sys.argv[3] + '/child.pid', 'w').write(str(child.pid))\n\
                print('started', child.pid, file=sys.stderr, flush=True)\n\
                time.sleep(600)\n";
    // 10 s: time enough for Python to start and write the pid on a loaded machine.
    let e = python_c(code, Duration::from_secs(10)).train(&simulated(2, 40), &out).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("ran past its 10s timeout and was killed with its process group"), "{text}");
    assert!(text.contains("its stderr ends with:\nstarted "), "{text}");
    let pid: u32 = std::fs::read_to_string(out.join("child.pid")).unwrap().parse().unwrap();
    // Liveness bound: SIGKILL to the group takes effect at once; 10 s is generous.
    let mut waited = 0;
    while !gone(pid) && waited < 1000 {
        std::thread::sleep(Duration::from_millis(10));
        waited += 1;
    }
    assert!(gone(pid), "the grandchild {pid} outlived the timeout");
}

#[test]
fn a_chatty_command_keeps_the_last_64_kib_of_each_stream() {
    // 1 MiB on each stream: far past a pipe's 64 KiB, so an unread pipe would block it.
    let code = "import sys\n\
                for i in range(16384):\n    print(f'out {i:08d} ' + 'x' * 49)\n    print(f'err {i:08d} ' + 'y' * 49, file=sys.stderr)\n\
                sys.exit(1)\n";
    let dir = tempfile::tempdir().unwrap();
    let e =
        python_c(code, Duration::from_secs(120)).train(&simulated(7, 40), &dir.path().join("v")).unwrap_err();
    let TrainError::Exit { output, status, .. } = e else { panic!("{e:?}") };
    assert_eq!(status, "exited with status 1");
    for (stream, last, first) in [
        (&output.stdout, "out 00016383 ", "out 00000000 "),
        (&output.stderr, "err 00016383 ", "err 00000000 "),
    ] {
        let kept = stream.strip_prefix("[earlier output dropped]\n").expect("the cut is marked");
        assert_eq!(kept.len(), CommandTrainer::OUTPUT_LIMIT);
        assert!(kept.trim_end().rsplit('\n').next().unwrap().starts_with(last), "the end is kept");
        assert!(!kept.contains(first), "the start is dropped");
    }
}

#[test]
fn a_command_that_writes_no_model_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v");
    let e = python_c("print('done')", Duration::from_secs(120)).train(&simulated(3, 40), &out).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: missing: the trainer wrote no model", out.join("model.json").display())
    );
}

#[test]
fn malformed_artifacts_fail_naming_the_file_and_the_fault() {
    let data = simulated(4, 40);
    let features = serde_json::to_string(data.features()).unwrap();
    let model =
        format!(r#"{{"kind":"linear","features":{features},"coef":[1,2,3,4,5,6,7,8],"intercept":0}}"#);
    let cases = [
        // A model without its metadata.
        (model.clone(), None, "metadata.json: missing: the trainer wrote no metadata".to_string()),
        // Metadata that is not JSON.
        (model.clone(), Some("{\"auc\": 0.9"), "metadata.json: not a valid metadata JSON: EOF while parsing".into()),
        // Metadata that is not an object.
        (model.clone(), Some("[1]"), "metadata.json: the metadata must be a JSON object".into()),
        // A model for other features.
        (
            model.replace("\"f7\"", "\"g7\""),
            Some("{}"),
            "model.json: its features [\"f0\", \"f1\", \"f2\", \"f3\", \"f4\", \"f5\", \"f6\", \"g7\"] are not the training data's"
                .into(),
        ),
        // A model with a coefficient missing.
        (model.replace(",8]", "]"), Some("{}"), "model.json: 7 coefficients for 8 features".into()),
        // A model that is not JSON.
        ("{\"kind\": \"linear\",".into(), Some("{}"), "model.json: not a valid model JSON".into()),
    ];
    for (i, (model, metadata, want)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("v");
        let mut code = format!("import sys\nopen(sys.argv[3] + '/model.json', 'w').write({model:?})\n");
        if let Some(m) = metadata {
            code += &format!("open(sys.argv[3] + '/metadata.json', 'w').write({m:?})\n");
        }
        let e = python_c(&code, Duration::from_secs(120)).train(&data, &out).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with(&format!("{}/", out.display())) && text.contains(&want), "case {i}: {text}");
    }
}

/// A closure trainer's model: positive above a cut on one feature.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cut {
    features: Vec<String>,
    feature: usize,
    at: f64,
}

impl Model for Cut {
    fn features(&self) -> &[String] {
        &self.features
    }
    fn score(&self, x: &[f64]) -> f64 {
        match x.get(self.feature) {
            Some(v) if *v > self.at => 0.9,
            _ => 0.1,
        }
    }
}

#[test]
fn a_closure_trainers_model_loads_back_through_its_registered_kind() {
    let data = simulated(5, 400);
    let trainer = ClosureTrainer::new("cut", |d: &TrainingData| {
        let mean = d.train.rows.iter().map(|e| e.features[3]).sum::<f64>() / d.train.len() as f64;
        Ok(Cut { features: d.features().to_vec(), feature: 3, at: mean })
    })
    .unwrap()
    .with_metadata(|m: &Cut| serde_json::json!({ "at": m.at }));
    let dir = tempfile::tempdir().unwrap();
    let trained = trainer.train(&data, dir.path()).unwrap();
    assert_eq!(trained.kind, "closure:cut");
    assert_eq!(trained.metadata["holdout"]["rows"], 100);
    assert!(trained.metadata["model"]["at"].is_f64());

    // Without its loader registered, the kind is unknown, and the error says which are.
    let e = load_model("closure:cut", dir.path()).err().unwrap();
    assert_eq!(
        e.to_string(),
        "no model loader for the trainer kind \"closure:cut\" (known: command, logistic)"
    );
    let mut loader = ModelLoader::new();
    loader.register_closure::<Cut>("cut");
    let model = loader.load(&trained.kind, dir.path()).unwrap();
    let at = trained.metadata["model"]["at"].as_f64().unwrap();
    assert_eq!(model.score(&[0.0, 0.0, 0.0, at + 1.0, 0.0, 0.0, 0.0, 0.0]), 0.9);
    assert_eq!(model.score(&[0.0, 0.0, 0.0, at - 1.0, 0.0, 0.0, 0.0, 0.0]), 0.1);
}

#[test]
fn a_trainer_refuses_an_output_directory_with_files_in_it() {
    // A command that wrote nothing would otherwise pass on a previous run's model.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.json"), "{}").unwrap();
    let e = python_c("pass", Duration::from_secs(120)).train(&simulated(6, 40), dir.path()).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: the output directory is not empty", dir.path().display()));
    let e = LogisticTrainer::default().train(&simulated(6, 40), dir.path()).unwrap_err();
    assert!(matches!(e, TrainError::OutDirNotEmpty(_)), "{e}");
}

fn registry(dir: &Path) -> modelwatch::store::registry::Registry {
    use modelwatch::store::registry::{Registry, RegistryConfig};
    let clock =
        std::sync::Arc::new(modelwatch::ManualClock::new(modelwatch::Timestamp::from_secs(1_764_115_200)));
    Registry::open(RegistryConfig::new(dir, clock)).unwrap()
}

#[test]
fn a_failing_trainer_registers_nothing_and_says_why() {
    use modelwatch::retrain::{Registration, train_and_register};
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let data = simulated(3, 200);
    let r = Registration::new("pii", "test");
    let exits = python_c("import sys; print('boom', file=sys.stderr); sys.exit(2)", Duration::from_secs(120));
    let e = train_and_register(&reg, &exits, &ModelLoader::new(), &data, &r).unwrap_err().to_string();
    assert!(
        e.contains("exited with status 2") && e.contains("boom") && e.contains("nothing was registered"),
        "{e}"
    );
    let silent = python_c("print('wrote nothing')", Duration::from_secs(120));
    let e = train_and_register(&reg, &silent, &ModelLoader::new(), &data, &r).unwrap_err().to_string();
    assert!(e.contains("model.json: missing") && e.contains("nothing was registered"), "{e}");
    // A model its kind cannot load is not registered either.
    let code = "import sys, json, os; d = sys.argv[3]; \
                json.dump({'kind': 'linear'}, open(os.path.join(d, 'model.json'), 'w')); \
                json.dump({}, open(os.path.join(d, 'metadata.json'), 'w'))";
    let e =
        train_and_register(&reg, &python_c(code, Duration::from_secs(120)), &ModelLoader::new(), &data, &r)
            .unwrap_err()
            .to_string();
    assert!(e.contains("model.json") && e.contains("nothing was registered"), "{e}");
    // Nor is a model without a hold-out set to judge it on.
    let mut no_holdout = data.clone();
    no_holdout.holdout.rows.clear();
    let e = train_and_register(&reg, &LogisticTrainer::default(), &ModelLoader::new(), &no_holdout, &r)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no hold-out examples") && e.contains("nothing was registered"), "{e}");
    // Python writes NaN into JSON unless told not to; the error says so.
    let code = "import sys, json, os; d = sys.argv[3]; \
                json.dump({'kind': 'linear', 'features': ['f0'], 'coef': [float('nan')], 'intercept': 0}, open(os.path.join(d, 'model.json'), 'w')); \
                json.dump({}, open(os.path.join(d, 'metadata.json'), 'w'))";
    let e =
        train_and_register(&reg, &python_c(code, Duration::from_secs(120)), &ModelLoader::new(), &data, &r)
            .unwrap_err()
            .to_string();
    assert!(e.contains("NaN or Infinity"), "{e}");
    assert_eq!(reg.models().unwrap(), Vec::<String>::new(), "no model was registered");
}

/// A subprocess a training program forgot (in its process group) is killed when the
/// program exits, so it cannot change the artifact after it is checked.
#[test]
fn what_a_training_command_leaves_running_in_its_group_is_killed_when_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let code = format!(
        "import subprocess, sys; p = subprocess.Popen(['sleep', '77']); open({:?}, 'w').write(str(p.pid)); sys.exit(4)",
        pid_file.to_str().unwrap()
    );
    let e = python_c(&code, Duration::from_secs(120))
        .train(&simulated(2, 40), &dir.path().join("v"))
        .unwrap_err();
    assert!(e.to_string().contains("exited with status 4"), "{e}");
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // The kill is sent before train returns; the kernel may take a moment to reap it.
    let gone_soon = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        gone(pid)
    });
    assert!(gone_soon, "the forgotten subprocess {pid} outlived its training command");
}

/// The hold-out figures the registry records, against scikit-learn's metrics on the same
/// scores: `roc_auc_score`, `precision_score`, `recall_score`, `f1_score` (predictions at
/// score ≥ 0.5) and `log_loss`, overall and per segment.
#[test]
fn a_registered_version_loads_back_scoring_alike_with_scikit_learns_hold_out_figures() {
    use modelwatch::retrain::{Registration, load_alias, load_version, train_and_register};
    use modelwatch::store::registry::{Action, Alias};
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let data = simulated(21, 3000);
    let mut r = Registration::new("pii", "first model");
    r.split = serde_json::json!({"kind": "time", "holdout": 0.25});
    let v = train_and_register(&reg, &LogisticTrainer::default(), &ModelLoader::new(), &data, &r).unwrap();
    assert_eq!(
        (v.meta.version, v.meta.training.rows, v.meta.training.trainer_kind.as_str()),
        (1, 2250, "logistic")
    );
    assert_eq!(v.meta.training.training_window.from_ms, 1_700_000_000_000);
    assert_eq!(v.meta.training.training_window.to_ms, 1_700_000_000_000 + 2249 * 1000 + 1);
    assert_eq!(v.meta.training.split["holdout"], 0.25);
    reg.promote("pii", 1, &Action::new("test", "first")).unwrap();
    let (info, model) =
        load_alias(&reg, &ModelLoader::new(), "pii", Alias::Latest, &dir.path().join("load")).unwrap();
    assert_eq!(info.meta.version, 1);
    let (_, again) = load_version(&reg, &ModelLoader::new(), "pii", 1, &dir.path().join("again")).unwrap();
    let scores: Vec<f64> = data.holdout.rows.iter().map(|e| model.score(&e.features)).collect();
    for (e, s) in data.holdout.rows.iter().zip(&scores) {
        assert_eq!(again.score(&e.features).to_bits(), s.to_bits());
    }

    // scikit-learn's figures on the same scores and labels.
    let rows: Vec<serde_json::Value> = data
        .holdout
        .rows
        .iter()
        .zip(&scores)
        .map(|(e, s)| serde_json::json!([e.segment, e.label, s]))
        .collect();
    let input = dir.path().join("scores.json");
    std::fs::write(&input, serde_json::to_vec(&rows).unwrap()).unwrap();
    let code = r#"
import json, sys
from sklearn.metrics import roc_auc_score, precision_score, recall_score, f1_score, log_loss
rows = json.load(open(sys.argv[1]))
def figures(rs):
    y = [int(r[1]) for r in rs]; s = [r[2] for r in rs]; p = [int(v >= 0.5) for v in s]
    return {"auc": roc_auc_score(y, s), "precision": precision_score(y, p), "recall": recall_score(y, p),
            "f1": f1_score(y, p), "log_loss": log_loss(y, s, labels=[0, 1]), "rows": len(rs), "positives": sum(y)}
out = {"overall": figures(rows)}
for seg in sorted({r[0] for r in rows}):
    out[seg] = figures([r for r in rows if r[0] == seg])
print(json.dumps(out))
"#;
    let o = std::process::Command::new(python()).args(["-c", code]).arg(&input).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sk: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let check = |ours: &std::collections::BTreeMap<String, f64>, theirs: &serde_json::Value, what: &str| {
        for k in ["auc", "precision", "recall", "f1", "log_loss", "rows", "positives"] {
            let (a, b) = (ours[k], theirs[k].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{what} {k}: ours {a} vs scikit-learn {b}");
        }
    };
    check(&info.meta.training.metrics.overall, &sk["overall"], "overall");
    assert_eq!(info.meta.training.metrics.segments.len(), 2);
    for (seg, m) in &info.meta.training.metrics.segments {
        check(m, &sk[seg], seg);
    }
    assert!(
        info.meta.training.metrics.overall["auc"] > 0.7,
        "the model learned something: {:?}",
        info.meta.training.metrics
    );
}
