//! Feature management end to end: the correlation stored with each version against pandas
//! and scipy (in `MODELWATCH_PYTHON`), and `modelwatch features report` on a store and
//! registry of three versions trained by the real trainer through `train_and_register`.
//!
//! The three versions learn from seeded data with six features:
//!
//! | feature | what it is | what the report must say |
//! |---|---|---|
//! | `signal` | carries the label (coefficient 2) | nothing |
//! | `other` | carries it too (1.5) | nothing |
//! | `dup` | `signal` plus a little noise (r ≈ 0.98), no effect of its own | candidate: correlated with the more important `signal` |
//! | `noise` | pure noise | candidate: below the share; and it drifts in the period |
//! | `seasonal` | carries the label in versions 1 and 3 (1.2), not in version 2 | no candidate: unimportant once |
//! | `local` | zero outside segment `phone` (5 % of rows), carries the label strongly there | kept: the gate's segment check would flag its removal |
//!
//! The pruning threshold in these tests is a share of 3 % (`--min-share 0.03`): noise a
//! fitted model weights a little has a share of about 10⁻⁴ here, not below the seed's
//! 0.001 %, which names only features the model ignores (see `features::pruning`).

use crate::cli::text;
use crate::support::Rng;
use modelwatch::ManualClock;
use modelwatch::agent::Timestamp;
use modelwatch::features::correlation::{Method, correlation, matrix};
use modelwatch::retrain::{LogisticTrainer, ModelLoader, Registration, TrainingData, train_and_register};
use modelwatch::store::examples::{Example, ExampleSet};
use modelwatch::store::registry::{Action, NewVersion, Registry, RegistryConfig};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

/// 2026-11-29T00:00:00Z: the reports' `--now`, whatever the hour.
const NOW_MS: i64 = 1_795_910_400_000;
const NOW: &str = "2026-11-29T00:00:00Z";
const DAY: i64 = 86_400_000;
const FEATURES: [&str; 6] = ["signal", "other", "dup", "noise", "seasonal", "local"];
const MIN_SHARE: &str = "0.06";

fn python() -> String {
    // A missing tool fails the test: a skipped comparison would pass for the wrong reason.
    std::env::var("MODELWATCH_PYTHON")
        .expect("MODELWATCH_PYTHON (a Python with numpy, scipy and pandas 2.3; scripts/test sets it)")
}

fn modelwatch(dir: &Path, args: &[&str]) -> Output {
    crate::cli::modelwatch_at(dir, NOW, args)
}

fn report_json(dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["features", "report", "--format", "json", "--min-share", MIN_SHARE];
    args.extend_from_slice(extra);
    let o = modelwatch(dir, &args);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// `rows` examples predicted evenly over `[from, from + 10 days)`: version `v`'s data
/// (`seasonal` carries the label except in version 2). `noise_shift` moves `noise`.
fn examples(seed: u64, v: u32, from: i64, rows: usize, noise_shift: f64) -> Vec<Example> {
    let mut rng = Rng::seeded(seed);
    (0..rows)
        .map(|i| {
            let phone = rng.u() < 0.05;
            let signal = rng.normal();
            let other = rng.normal();
            let dup = signal + 0.2 * rng.normal();
            let noise = rng.normal() + noise_shift;
            let seasonal = rng.normal();
            let local = if phone { rng.normal() } else { 0.0 };
            let s = if v == 2 { 0.0 } else { 1.2 };
            let z = -0.5 + 2.0 * signal + 1.5 * other + s * seasonal + 4.0 * local;
            let t = from + i as i64 * (10 * DAY / rows as i64);
            Example {
                prediction_id: format!("v{v}-{i}"),
                predicted_ms: t,
                label_ms: t + 60_000,
                segment: if phone { "phone" } else { "email" }.into(),
                features: vec![signal, other, dup, noise, seasonal, local],
                confidence: 0.5,
                label: rng.u() < 1.0 / (1.0 + (-z).exp()),
            }
        })
        .collect()
}

fn set(rows: Vec<Example>) -> ExampleSet {
    ExampleSet { features: FEATURES.map(String::from).to_vec(), rows }
}

fn registry_at(dir: &Path, ms: i64) -> Registry {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(ms as u64)));
    Registry::open(RegistryConfig::new(dir, clock)).unwrap()
}

/// The predictions of `rows` as a CSV for `modelwatch import` (their features, so the
/// store holds the distributions drift compares).
fn write_predictions(path: &Path, rows: &[Example]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let features: Vec<String> = FEATURES.iter().map(|f| format!("f.{f}")).collect();
    writeln!(f, "timestamp,model,version,variant,segment,latency_ms,confidence,{}", features.join(","))
        .unwrap();
    for e in rows {
        let values: Vec<String> = e.features.iter().map(|v| v.to_string()).collect();
        writeln!(f, "{},pii,1,control,{},2.0,0.5,{}", e.predicted_ms, e.segment, values.join(",")).unwrap();
    }
}

/// Three versions of `pii`, trained 60, 40 and 20 days before NOW on 10 days each
/// (registered at the end of those days, each promoted), and the store holding those
/// days' predictions and the last 10 days', in which `noise` moved by one σ.
fn three_versions(dir: &Path) {
    let mut predictions = Vec::new();
    for v in 1..=3u32 {
        let from = NOW_MS - (80 - 20 * i64::from(v)) * DAY;
        let mut rows = examples(u64::from(v) * 101, v, from, 8_000, 0.0);
        let holdout = rows.split_off(5_000);
        predictions.extend(rows.iter().cloned());
        let data = TrainingData::new(set(rows), set(holdout)).unwrap();
        let reg = registry_at(dir, from + 10 * DAY);
        let info = train_and_register(
            &reg,
            &LogisticTrainer::default(),
            &ModelLoader::new(),
            &data,
            &Registration::new("pii", &format!("version {v}")),
        )
        .unwrap();
        assert_eq!(info.meta.version, v);
        reg.promote("pii", v, &Action::new("cli", "test")).unwrap();
    }
    predictions.extend(examples(7, 3, NOW_MS - 10 * DAY, 3_000, 1.0));
    let csv = dir.join("predictions.csv");
    write_predictions(&csv, &predictions);
    let o = modelwatch(dir, &["import", csv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

fn share(doc: &Value, feature: &str, version: u64) -> f64 {
    let f = doc["importance"].as_array().unwrap().iter().find(|f| f["feature"] == feature).unwrap();
    let v = f["by_version"].as_array().unwrap().iter().find(|v| v["version"] == version).unwrap();
    v["share"].as_f64().unwrap()
}

fn named<'a>(list: &'a Value, feature: &str) -> Option<&'a Value> {
    list.as_array().unwrap().iter().find(|c| c["feature"] == feature)
}

/// The contract's keys (`features-json.md`), at every level the HTML report reads.
fn assert_contract_keys(doc: &Value) {
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let sorted = |k: &[&str]| {
        let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(doc),
        sorted(&[
            "model",
            "from",
            "to",
            "version",
            "settings",
            "versions",
            "features",
            "importance",
            "correlation",
            "candidates",
            "kept",
            "drift_reference",
            "drift"
        ])
    );
    assert_eq!(keys(&doc["settings"]), sorted(&["min_share", "max_correlation", "versions"]));
    assert_eq!(
        keys(&doc["versions"][0]),
        sorted(&["version", "created_at", "status", "aliases", "rows", "evidence"])
    );
    assert_eq!(keys(&doc["importance"][0]), sorted(&["feature", "by_version"]));
    assert_eq!(keys(&doc["importance"][0]["by_version"][0]), sorted(&["version", "mean", "std", "share"]));
    if !doc["correlation"].is_null() {
        assert_eq!(
            keys(&doc["correlation"]),
            sorted(&["version", "rows", "training_rows", "sample_seed", "features", "pearson", "spearman"])
        );
    }
    for c in doc["candidates"].as_array().unwrap() {
        assert_eq!(keys(c), sorted(&["feature", "reasons", "evidence"]));
        for e in c["evidence"].as_array().unwrap() {
            assert_eq!(keys(e), sorted(&["version", "share", "correlated_with", "correlation"]));
        }
    }
    for k in doc["kept"].as_array().unwrap() {
        assert_eq!(keys(k), sorted(&["feature", "reason"]));
    }
    assert_eq!(keys(&doc["drift_reference"]), sorted(&["from", "to", "description"]));
    assert_eq!(
        keys(&doc["drift"][0]),
        sorted(&["feature", "statistic", "value", "threshold", "drifted", "verdict", "reason", "windows"])
    );
    assert_eq!(keys(&doc["drift"][0]["windows"][0]), sorted(&["start", "value"]));
}

/// The store and registry of [`three_versions`], made once for the tests that only read it.
fn shared() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        three_versions(dir.path());
        dir
    })
    .path()
}

/// A copy of the shared store and registry, for a test that changes it.
fn copy_of_shared() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(shared(), dir.path());
    dir
}

#[test]
fn the_noise_and_the_near_duplicate_are_candidates_the_segment_feature_is_kept() {
    let dir = shared();
    let doc = report_json(dir, &[]);
    assert_contract_keys(&doc);
    assert_eq!((doc["model"].as_str(), doc["version"].as_u64()), (Some("pii"), Some(3)), "the control");
    assert_eq!(
        (doc["from"].as_str(), doc["to"].as_str()),
        (Some("2026-08-31T00:00:00Z"), Some(NOW)),
        "90 days"
    );
    let listed: Vec<u64> =
        doc["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(listed, [1, 2, 3]);
    assert_eq!(doc["versions"][2]["aliases"], serde_json::json!(["control", "latest"]));
    assert_eq!(doc["versions"][0]["rows"], 5_000);
    assert_eq!(doc["features"], serde_json::json!(FEATURES));
    let min_share: f64 = MIN_SHARE.parse().unwrap();
    for v in 1..=3 {
        let total: f64 = FEATURES.iter().map(|f| share(&doc, f, v)).sum();
        assert!((total - 1.0).abs() < 1e-9, "version {v}'s shares add up to {total}");
    }

    let candidates: Vec<&str> =
        doc["candidates"].as_array().unwrap().iter().map(|c| c["feature"].as_str().unwrap()).collect();
    assert_eq!(candidates, ["dup", "noise"], "{:#}", doc["candidates"]);
    let noise = named(&doc["candidates"], "noise").unwrap();
    assert_eq!(
        noise["reasons"],
        serde_json::json!(["importance share below 6 % in each of the last 3 versions"])
    );
    let evidence = noise["evidence"].as_array().unwrap();
    assert_eq!(evidence.iter().map(|e| e["version"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    for e in evidence {
        let v = e["version"].as_u64().unwrap();
        assert_eq!(e["share"].as_f64(), Some(share(&doc, "noise", v)), "the evidence is the trend's figure");
        assert!(e["share"].as_f64().unwrap() < min_share && e["correlated_with"].is_null());
    }
    // The near-duplicate: correlated with the more important `signal` in every version, at
    // the figure stored with each version.
    let dup = named(&doc["candidates"], "dup").unwrap();
    let reasons: Vec<&str> = dup["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(
        reasons.contains(
            &"|correlation| ≥ 0.95 with a more important feature (signal) in each of the last 3 versions"
        ),
        "{reasons:?}"
    );
    for e in dup["evidence"].as_array().unwrap() {
        let v = e["version"].as_u64().unwrap();
        assert_eq!(e["correlated_with"], "signal");
        let r = e["correlation"].as_f64().unwrap();
        assert!(r >= 0.95 && share(&doc, "signal", v) > share(&doc, "dup", v), "version {v}: {e}");
        let stored = registry_at(dir, NOW_MS).get("pii", v as u32).unwrap().meta.training.correlation;
        let pearson = stored["pearson"][1].as_f64().unwrap(); // (signal, dup): the second pair
        let spearman = stored["spearman"][1].as_f64().unwrap();
        assert_eq!(r, if pearson.abs() >= spearman.abs() { pearson } else { spearman });
    }
    // `seasonal` was unimportant in version 2 only: not a candidate.
    assert!(share(&doc, "seasonal", 2) < min_share);
    assert!(share(&doc, "seasonal", 1) > min_share && share(&doc, "seasonal", 3) > min_share);
    assert!(named(&doc["candidates"], "seasonal").is_none() && named(&doc["kept"], "seasonal").is_none());
    // `local` is unimportant overall in each version, but segment `phone` leans on it.
    assert!((1..=3).all(|v| share(&doc, "local", v) < min_share));
    let kept = named(&doc["kept"], "local").unwrap_or_else(|| panic!("{:#}", doc["kept"]));
    let why = kept["reason"].as_str().unwrap();
    assert!(why.contains("importance share below 6 %") && why.contains("segment phone"), "{why}");
    assert!(why.contains("max_segment_drop 0.05"), "{why}");
    assert_eq!(doc["kept"].as_array().unwrap().len(), 1);

    // The matrix is version 3's, square, symmetric, with a unit diagonal.
    let c = &doc["correlation"];
    assert_eq!(
        (c["version"].as_u64(), c["rows"].as_u64(), c["sample_seed"].as_u64()),
        (Some(3), Some(5_000), None)
    );
    for m in ["pearson", "spearman"] {
        let m = c[m].as_array().unwrap();
        assert_eq!(m.len(), 6);
        for (i, row) in m.iter().enumerate() {
            assert_eq!(row[i], 1.0);
            assert!(row.as_array().unwrap().iter().enumerate().all(|(j, r)| *r == m[j][i]), "symmetric");
        }
        assert!(m[0][2].as_f64().unwrap() > 0.95, "signal and dup");
    }

    // Drift against version 3's training window: `noise` moved by one σ in the last 10
    // days, nothing else did; one point per weekly window of the period.
    assert_eq!(doc["drift_reference"]["description"], "the training window of version 3");
    let drifted: Vec<&str> = doc["drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["drifted"] == true)
        .map(|d| d["feature"].as_str().unwrap())
        .collect();
    assert_eq!(drifted, ["noise"]);
    let noise = named(&doc["drift"], "noise").unwrap();
    assert_eq!(
        (noise["statistic"].as_str(), noise["threshold"].as_f64()),
        (Some("wasserstein_norm"), Some(0.1))
    );
    let windows = noise["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 14, "90 days in weeks, the first clipped to the period");
    assert_eq!(windows[0]["start"], "2026-08-31T00:00:00Z");
    assert_eq!(windows[1]["start"], "2026-09-03T00:00:00Z");
    let last = windows.last().unwrap()["value"].as_f64().unwrap();
    assert!(last > 0.5, "the last week is all shifted: {last}");
    // A week without predictions has no point, said as null.
    assert!(windows.iter().any(|w| w["value"].is_null()));

    // The table says the same.
    let o = modelwatch(dir, &["features", "report", "--min-share", MIN_SHARE]);
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.starts_with("model pii, version 3 (control, latest); 2026-08-31T00:00:00Z .. 2026-11-29T00:00:00Z"),
        "{t}"
    );
    let section =
        |name: &str| t.split(name).nth(1).unwrap_or_else(|| panic!("no {name:?} in\n{t}")).to_string();
    let candidates = section("pruning candidates");
    let candidates = candidates.split("kept (").next().unwrap();
    assert!(candidates.contains("| dup ") && candidates.contains("| noise "), "{t}");
    assert!(candidates.contains("r +0.98") && candidates.contains("with signal"), "{t}");
    assert!(!candidates.contains("local") && !candidates.contains("seasonal"), "{t}");
    assert!(section("kept (the gate's bias check would flag their removal)").contains("| local "), "{t}");
    assert!(section("correlation on its 5000 training rows").contains("| signal    dup "), "{t}");
    let drift = section("drift over the period against the training window of version 3");
    let noise_row = drift.lines().find(|l| l.starts_with("| noise ")).unwrap();
    assert!(noise_row.contains("drift"), "{noise_row}");

    // At the seed's 0.001 %, the fitted noise's small share is no longer below it.
    let strict = modelwatch(dir, &["features", "report", "--format", "json"]);
    let strict: Value = serde_json::from_slice(&strict.stdout).unwrap();
    assert_eq!(strict["settings"]["min_share"], 0.00001);
    assert!(named(&strict["candidates"], "noise").is_none(), "{:#}", strict["candidates"]);
    assert!(named(&strict["candidates"], "dup").is_some(), "correlation does not depend on the share");
}

#[test]
fn the_html_review_draws_the_json_report_in_chromium() {
    let out = tempfile::tempdir().unwrap();
    let page = out.path().join("review.html");
    let o = modelwatch(
        shared(),
        &[
            "features",
            "report",
            "--min-share",
            MIN_SHARE,
            "--format",
            "html",
            "--output",
            page.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", crate::cli::text(&o));
    let doc = report_json(shared(), &[]);
    crate::report::check_features_page(&doc, &page);
    let candidates = doc["candidates"].as_array().unwrap();
    assert!(!candidates.is_empty(), "the shared registry has candidates to show");
}

/// Every file under `dir` but the profile cache (`cache/`), by path: what a report may not
/// change.
fn files_but_the_cache(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    fn walk(root: &Path, at: &Path, out: &mut std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(at).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new("cache") {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Temporary files (`*.tmp`) anywhere under `dir`.
fn temporaries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            found.extend(temporaries(&e.path()));
        } else if e.file_name().to_string_lossy().ends_with(".tmp") {
            found.push(e.path());
        }
    }
    found
}

/// `features report --format html --output F` and `report --output F` SIGKILLed at moments
/// spread over a whole run (one in each sixth of 1.1 times it, the profile cache emptied
/// before every other run so kills land in its writes too): the store and registry are
/// byte for byte as before, the page is the previous complete one or absent (never part of
/// one), and the next run writes the same page as an unkilled run and leaves no temporary
/// file: neither its own, nor the cache's, nor one a run killed between writing its
/// temporary page and renaming it left (made here under the killed run's name, since a
/// timed kill rarely lands in that instant); one of a live process is left to it.
#[test]
fn killed_reports_change_nothing_and_the_next_run_cleans_up() {
    let dir = copy_of_shared();
    let out = tempfile::tempdir().unwrap();
    let before = files_but_the_cache(dir.path());
    let mut rng = Rng::seeded(19);
    let mut killed = 0;
    for (name, verb) in [
        ("review.html", &["features", "report", "--min-share", MIN_SHARE, "--format", "html"][..]),
        ("health.html", &["report"][..]),
    ] {
        let page = out.path().join(name);
        let mut args = verb.to_vec();
        args.extend([
            "--output",
            page.to_str().unwrap(),
            "--data",
            dir.path().to_str().unwrap(),
            "--now",
            NOW,
        ]);
        let run = || {
            let o = crate::cli::modelwatch(&args);
            assert!(o.status.success(), "{name}: {}", text(&o));
            std::fs::read(&page).unwrap()
        };
        let start = std::time::Instant::now();
        let whole_page = run();
        let whole = start.elapsed();
        for i in 0..6 {
            let at = format!("{name}, kill {i}");
            if i % 2 == 0 {
                let _ = std::fs::remove_dir_all(dir.path().join("cache"));
            }
            let previous = i % 3 != 0;
            if !previous {
                std::fs::remove_file(&page).unwrap();
            }
            let mut child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(whole.mul_f64(1.1 * (f64::from(i) + rng.u()) / 6.0));
            let _ = child.kill(); // SIGKILL
            let status = child.wait().unwrap();
            killed += usize::from(status.code().is_none());
            assert!(files_but_the_cache(dir.path()) == before, "{at}: the store or registry changed");
            match std::fs::read(&page) {
                Ok(bytes) => assert!(bytes == whole_page, "{at}: a page that is not the whole one"),
                Err(_) => assert!(!previous, "{at}: the previous page is gone"),
            }
            // What a kill between the temporary page's write and its rename leaves.
            let left = out.path().join(format!(".{name}.{}.tmp", child.id()));
            std::fs::write(&left, &whole_page[..whole_page.len() / 3]).unwrap();
            assert!(run() == whole_page, "{at}: the next run wrote another page");
            let stray: Vec<_> = [temporaries(out.path()), temporaries(dir.path())].concat();
            assert!(stray.is_empty(), "{at}: temporary files left: {stray:?}");
        }
        let live = out.path().join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&live, b"<!DOCTYPE html>").unwrap();
        run();
        assert!(live.exists(), "{name}: the temporary page of a live process was removed");
        std::fs::remove_file(&live).unwrap();
    }
    assert!(killed >= 4, "only {killed} of the 12 runs were killed before they ended");
    assert!(files_but_the_cache(dir.path()) == before);
}

#[test]
fn versions_are_chosen_and_evidence_stops_at_the_period_and_the_refused() {
    let dir = copy_of_shared();
    // Version 2 asked for: its features and matrix; the versions before the period's end
    // (all three) still give evidence.
    let doc = report_json(dir.path(), &["--version", "v2"]);
    assert_eq!((doc["version"].as_u64(), doc["correlation"]["version"].as_u64()), (Some(2), Some(2)));
    assert!(named(&doc["candidates"], "noise").is_some());
    // A review of the quarter before version 3: the evidence is versions 1 and 2 only,
    // too few for three in a row.
    let before = NOW_MS - 15 * DAY;
    let to = modelwatch::time::rfc3339(before);
    let doc = report_json(dir.path(), &["--version", "2", "--to", &to]);
    assert_eq!(doc["candidates"], serde_json::json!([]), "{:#}", doc["candidates"]);
    assert_eq!(doc["to"], to.as_str());
    let doc = report_json(dir.path(), &["--version", "2", "--to", &to, "--versions", "2"]);
    let evidence = &named(&doc["candidates"], "noise").unwrap()["evidence"];
    assert_eq!(evidence.as_array().unwrap().len(), 2);
    // Without --version, a past period is reviewed on the control of its end: version 2
    // at the 15 days before now, version 1 at 35 (version 3 came later; its training window
    // is no reference for a quarter before it).
    assert_eq!(report_json(dir.path(), &["--to", &to])["version"], 2);
    let earlier = modelwatch::time::rfc3339(NOW_MS - 35 * DAY);
    assert_eq!(report_json(dir.path(), &["--to", &earlier])["version"], 1);
    assert_eq!(report_json(dir.path(), &[])["version"], 3);
    // A version the gate refused is no evidence: version 2 rejected, the noise stands on
    // versions 1 and 3 only, and a rule over three versions finds none.
    let reg = registry_at(dir.path(), NOW_MS);
    reg.set_gate_report("pii", 2, serde_json::json!({ "passed": false }), &Action::new("cli", "refused"))
        .unwrap();
    let doc = report_json(dir.path(), &[]);
    assert_eq!(doc["candidates"], serde_json::json!([]), "{:#}", doc["candidates"]);
    let evidence: Vec<&Value> = doc["versions"].as_array().unwrap().iter().map(|v| &v["evidence"]).collect();
    assert_eq!(evidence, [true, false, true]);
    let o = modelwatch(dir.path(), &["features", "report", "--min-share", MIN_SHARE]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("versions: 1 retired, 2 retired (refused: no evidence), 3 control"), "{}", text(&o));
    assert!(t.contains("2 of the versions shown have importance and count"), "{t}");
    let doc = report_json(dir.path(), &["--versions", "2"]);
    let evidence = &named(&doc["candidates"], "noise").unwrap()["evidence"];
    let used: Vec<u64> =
        evidence.as_array().unwrap().iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert_eq!(used, [1, 3]);
}

/// `features report ARGS` in `d`, expected to fail: its exit code and stderr.
fn refused(d: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["features", "report"];
    all.extend_from_slice(args);
    let o = modelwatch(d, &all);
    assert!(o.stdout.is_empty(), "{}", text(&o));
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn bad_input_is_named() {
    let empty = tempfile::tempdir().unwrap();
    let (code, err) = refused(&empty.path().join("absent"), &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no such data directory"), "{err}");
    let (code, err) = refused(empty.path(), &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no model is registered"), "{err}");

    let copy = copy_of_shared();
    let d = copy.path();
    let run = |args: &[&str]| refused(d, args);
    let (code, err) = run(&["--model", "nope"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no model \"nope\"") && err.contains("registered: pii"), "{err}");
    for (version, says) in
        [("9", "no such version"), ("v0", "numbered from 1"), ("three", "not a version number")]
    {
        let (code, err) = run(&["--version", version]);
        assert_eq!(code, Some(2), "{version}: {err}");
        assert!(err.contains(&format!("--version {version:?}")) && err.contains(says), "{err}");
        assert!(err.contains("has versions 1, 2, 3"), "{err}");
    }
    let (code, err) = run(&["--version", "challenger"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no version is the challenger"), "{err}");
    for (flag, value) in [("--since", "3 fortnights"), ("--from", "yesterday"), ("--since", "99999w")] {
        let (code, err) = run(&[flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{err}");
    }
    for (flag, value) in [("--min-share", "1.5"), ("--max-correlation", "0"), ("--versions", "0")] {
        let (code, err) = run(&[flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {err}");
        assert!(err.contains(&flag[2..].replace('-', "_")), "{err}");
    }

    // A second model: one must be chosen.
    let mut rows = examples(3, 1, NOW_MS - 5 * DAY, 400, 0.0);
    let holdout = rows.split_off(300);
    let reg = registry_at(d, NOW_MS - DAY);
    let data = TrainingData::new(set(rows), set(holdout)).unwrap();
    train_and_register(
        &reg,
        &LogisticTrainer::default(),
        &ModelLoader::new(),
        &data,
        &Registration::new("ner", "x"),
    )
    .unwrap();
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("several models; choose one with --model: ner, pii"), "{err}");
    // Its only version is neither control nor latest-aliased by a promotion: the latest.
    let o = modelwatch(d, &["features", "report", "--model", "ner", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert!(doc["drift_reference"]["description"].as_str().unwrap().contains("holds none of its features"));
}

/// A registry written before versions stored a correlation (registered as the code then
/// did: importance, no `correlation` key) still reports: the correlation is `null`, the
/// table says so, and the candidates stand on importance alone.
#[test]
fn a_registry_from_before_correlations_still_reports() {
    let old = tempfile::tempdir().unwrap();
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("model.json"), b"{}").unwrap();
    let now = registry_at(shared(), NOW_MS);
    for v in 1..=3 {
        let info = now.get("pii", v).unwrap();
        let t = info.meta.training;
        let mut new = NewVersion::new("pii", &t.trainer_kind, art.path());
        new.training.features = t.features;
        new.training.rows = t.rows;
        new.training.training_window = t.training_window;
        new.training.feature_importance = t.feature_importance;
        let reg = registry_at(old.path(), info.meta.created_at_ms);
        reg.register(new).unwrap();
        reg.promote("pii", v, &Action::new("cli", "test")).unwrap();
    }
    let written =
        std::fs::read_dir(old.path().join("registry/pii/versions")).unwrap().next().unwrap().unwrap();
    let json = std::fs::read_to_string(written.path().join("version.json")).unwrap();
    assert!(!json.contains("correlation"), "written as before: {json}");

    let doc = report_json(old.path(), &[]);
    assert!(doc["correlation"].is_null());
    let candidates: Vec<&str> =
        doc["candidates"].as_array().unwrap().iter().map(|c| c["feature"].as_str().unwrap()).collect();
    assert_eq!(candidates, ["dup", "noise"], "the share rule alone: {:#}", doc["candidates"]);
    let dup = named(&doc["candidates"], "dup").unwrap();
    assert_eq!(dup["reasons"].as_array().unwrap().len(), 1, "no correlation to judge by: {dup}");
    assert!(dup["evidence"].as_array().unwrap().iter().all(|e| e["correlation"].is_null()));
    let o = modelwatch(old.path(), &["features", "report", "--min-share", MIN_SHARE]);
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("correlation: none stored with version 3 (registered before correlations were computed)"),
        "{t}"
    );
    // No store data under this registry: drift has nothing to compare, and says why.
    assert!(
        t.contains("the training window of version 3: the store holds none of its features there"),
        "{t}"
    );
}

/// pandas' and scipy's figures for the columns in `csv`, at test time: pandas'
/// `DataFrame.corr` (both methods) on the columns as they are and with column `huge`
/// divided by 1e300 (pandas overflows on its squares), and scipy's `pearsonr` and
/// `spearmanr` pair by pair on the rows where both are finite.
const REFERENCE: &str = r#"
import json, sys, warnings
import numpy as np, pandas as pd, scipy.stats as st
names = open(sys.argv[1]).readline().strip().split(",")
rows = [[float(v) for v in l.strip().split(",")] for l in open(sys.argv[1]).readlines()[1:]]
df = pd.DataFrame(rows, columns=names)
scaled = df.copy()
if "huge" in scaled: scaled["huge"] = scaled["huge"] / 1e300
def clean(m): return [[None if not np.isfinite(v) else float(v) for v in r] for r in np.asarray(m)]
out = {"pandas_version": pd.__version__}
for method in ("pearson", "spearman"):
    out["pandas_" + method] = clean(df.corr(method=method))
    out["pandas_scaled_" + method] = clean(scaled.corr(method=method))
    m = np.full((len(names), len(names)), np.nan)
    for i in range(len(names)):
        for j in range(len(names)):
            x, y = df.iloc[:, i].to_numpy(), df.iloc[:, j].to_numpy()
            ok = np.isfinite(x) & np.isfinite(y)
            x, y = x[ok], y[ok]
            if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]): continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m[i, j] = (st.pearsonr if method == "pearson" else st.spearmanr)(x, y).statistic
    out["scipy_" + method] = clean(m)
print(json.dumps(out))
"#;

/// The hostile columns: ties, NaN rows, infinities, a constant column, values of 1e300,
/// a column with one finite value and a pair with no common row; and a random block with
/// missing values scattered (the matrix product and the pairwise paths both).
fn hostile(seed: u64, n: usize) -> Vec<(&'static str, Vec<f64>)> {
    let mut rng = Rng::seeded(seed);
    let base: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let mut col =
        |f: &mut dyn FnMut(usize, &mut Rng) -> f64| (0..n).map(|i| f(i, &mut rng)).collect::<Vec<f64>>();
    let ties = col(&mut |i, _| (base[i] * 2.0).round());
    let nan_rows = col(&mut |i, r| if i % 7 == 3 { f64::NAN } else { base[i] + 0.5 * r.normal() });
    let inf = col(&mut |i, r| match i % 11 {
        2 => f64::INFINITY,
        5 => f64::NEG_INFINITY,
        _ => -base[i] + r.normal(),
    });
    let constant = vec![0.1; n];
    let huge = col(&mut |i, r| if i % 13 == 1 { f64::NAN } else { (base[i] + 0.3 * r.normal()) * 1e300 });
    let few_levels = col(&mut |i, _| (i % 3) as f64);
    let lonely = col(&mut |i, _| if i == 4 { 2.0 } else { f64::NAN });
    let first_half = col(&mut |i, r| if i < n / 2 { r.normal() } else { f64::NAN });
    let second_half = col(&mut |i, r| if i >= n / 2 { r.normal() } else { f64::NAN });
    let complete = col(&mut |i, r| base[i] * 0.8 + r.normal());
    let sparse = col(&mut |i, r| if r.u() < 0.2 { f64::NAN } else { base[i] + r.normal() + (i % 4) as f64 });
    vec![
        ("ties", ties),
        ("nan_rows", nan_rows),
        ("inf", inf),
        ("constant", constant),
        ("huge", huge),
        ("few_levels", few_levels),
        ("lonely", lonely),
        ("first_half", first_half),
        ("second_half", second_half),
        ("complete", complete),
        ("sparse", sparse),
    ]
}

fn reference(columns: &[(&str, Vec<f64>)]) -> Value {
    let v = python_on(REFERENCE, columns);
    assert_eq!(v["pandas_version"], "2.3.3", "the pinned pandas (scripts/test installs it)");
    v
}

/// What `script` prints (JSON) given a CSV of `columns` as its first argument.
fn python_on(script: &str, columns: &[(&str, Vec<f64>)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("columns.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(f, "{}", columns.iter().map(|c| c.0).collect::<Vec<_>>().join(",")).unwrap();
    for r in 0..columns[0].1.len() {
        // Rust's shortest round-trip text ("NaN", "inf", "1e300"), which Python's float reads.
        let row: Vec<String> = columns.iter().map(|c| c.1[r].to_string()).collect();
        writeln!(f, "{}", row.join(",")).unwrap();
    }
    drop(f);
    let python = python();
    let o = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&csv)
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    assert!(o.status.success(), "{python}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn assert_close(ours: &[Vec<Option<f64>>], theirs: &Value, tol: f64, what: &str, names: &[&str]) {
    for (i, row) in ours.iter().enumerate() {
        for (j, r) in row.iter().enumerate() {
            let t = theirs[i][j].as_f64();
            let ok = match (r, t) {
                (Some(a), Some(b)) => (a - b).abs() <= tol,
                (None, None) => true,
                _ => false,
            };
            assert!(ok, "{what} ({}, {}): ours {r:?}, theirs {t:?}", names[i], names[j]);
        }
    }
}

/// Our full-precision square matrix of `columns` by `method`.
fn square(columns: &[Vec<f64>], method: Method) -> Vec<Vec<Option<f64>>> {
    let (tri, spread) = matrix(columns, method);
    let d = columns.len();
    let at = |i: usize, j: usize| i * (2 * d - i - 1) / 2 + (j - i - 1);
    (0..d)
        .map(|i| {
            (0..d)
                .map(|j| if i == j { spread[i].then_some(1.0) } else { tri[at(i.min(j), i.max(j))] })
                .collect()
        })
        .collect()
}

#[test]
fn correlation_matches_pandas_and_scipy_on_hostile_columns() {
    for (seed, n) in [(1, 60), (2, 400)] {
        let columns = hostile(seed, n);
        let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
        let theirs = reference(&columns);
        let values: Vec<Vec<f64>> = columns.iter().map(|c| c.1.clone()).collect();
        let examples = ExampleSet {
            features: names.iter().map(|s| s.to_string()).collect(),
            rows: (0..n)
                .map(|r| Example {
                    prediction_id: String::new(),
                    predicted_ms: 0,
                    label_ms: 0,
                    segment: "s".into(),
                    features: values.iter().map(|c| c[r]).collect(),
                    confidence: 0.5,
                    label: false,
                })
                .collect(),
        };
        let stored = correlation(&examples);
        assert_eq!((stored.rows, stored.sample_seed), (n as u64, None));
        for (method, key) in [(Method::Pearson, "pearson"), (Method::Spearman, "spearman")] {
            let ours = square(&values, method);
            // pandas on the columns with `huge` scaled down, scipy pair by pair: to rounding.
            assert_close(&ours, &theirs[format!("pandas_scaled_{key}")], 1e-12, key, &names);
            assert_close(&ours, &theirs[format!("scipy_{key}")], 1e-12, key, &names);
            // What is stored is that to six decimals.
            assert_close(
                &stored.matrix(method),
                &theirs[format!("pandas_scaled_{key}")],
                5.000_001e-7,
                key,
                &names,
            );
            // The undefined, named: the constant column (even with itself), the column of one
            // value, the halves that share no row.
            let at = |a: &str, b: &str| {
                ours[names.iter().position(|x| *x == a).unwrap()][names.iter().position(|x| *x == b).unwrap()]
            };
            assert_eq!((at("constant", "constant"), at("constant", "ties")), (None, None));
            assert_eq!((at("lonely", "lonely"), at("lonely", "complete")), (None, None));
            assert_eq!(at("first_half", "second_half"), None);
            assert!(at("huge", "ties").unwrap() > 0.8, "1e300 correlates as 1 does");
        }
        // pandas itself overflows on the 1e300 column (it answers NaN on its diagonal): the
        // reason the comparison above scales that column first.
        let huge = names.iter().position(|x| *x == "huge").unwrap();
        assert!(theirs["pandas_pearson"][huge][huge].is_null(), "{}", theirs["pandas_pearson"][huge]);
    }
}

/// The exact Pearson r of the very values in the CSV (rational arithmetic on each f64,
/// pairwise over the rows where both are finite), and pandas' `DataFrame.corr` on columns
/// moved and scaled exactly (a column whose values are all within a factor of two of its
/// first minus that value, which is exact; then times a power of two): the same values'
/// correlation where pandas' own sums neither overflow nor lose the spread. pandas on the
/// columns as they are is printed too, for the record: on 1e9 + 1e-6·noise it is off in
/// the second decimal, on -1e300 + … it answers 0.
const TINY_SPREAD: &str = r#"
import json, math, sys
from fractions import Fraction
import numpy as np, pandas as pd
names = open(sys.argv[1]).readline().strip().split(",")
rows = [[float(v) for v in l.strip().split(",")] for l in open(sys.argv[1]).readlines()[1:]]
df = pd.DataFrame(rows, columns=names)
def exact(x, y):
    ok = np.isfinite(x) & np.isfinite(y)
    xs, ys = [Fraction(float(v)) for v in x[ok]], [Fraction(float(v)) for v in y[ok]]
    if len(xs) < 2: return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((a - mx) * (b - my) for a, b in zip(xs, ys))
    sxx, syy = sum((a - mx) ** 2 for a in xs), sum((b - my) ** 2 for b in ys)
    if sxx == 0 or syy == 0: return None
    return math.copysign(math.sqrt(float(sxy * sxy / (sxx * syy))), 1 if sxy >= 0 else -1)
moved = df.copy()
for c in names:
    x = df[c].to_numpy(); f = x[np.isfinite(x)]
    if len(f) and np.all(f / f[0] >= 0.5) and np.all(f / f[0] <= 2): x = x - f[0]
    top = np.nanmax(np.abs(x))
    if top > 0: x = np.ldexp(x, -math.frexp(top)[1])
    moved[c] = x
def clean(m): return [[None if not np.isfinite(v) else float(v) for v in r] for r in np.asarray(m)]
print(json.dumps({
    "exact_pearson": [[exact(df[a].to_numpy(), df[b].to_numpy()) if a != b else None for b in names] for a in names],
    "pandas_moved_pearson": clean(moved.corr("pearson")),
    "pandas_spearman": clean(df.corr("spearman")),
    "pandas_raw_pearson": clean(df.corr("pearson")),
}))
"#;

/// Columns whose spread is tiny next to their size, against ordinary ones: 1e9 +
/// 1e-6·noise (about eight steps of a double there), -1e300 + 1e284·noise (about one),
/// 1e-300·noise, 1e9 with a single value one step above, and 1e9 + 1e-6·noise with missing
/// values (the pairwise path). Our Pearson equals the exact figure of the same doubles and
/// pandas' on exactly moved columns to 1e-12; Spearman equals pandas' (ranks do not see the
/// size); no pair is undefined, none outside [-1, 1], and the correlation with the noise
/// survives. Centred in one pass (the mean's rounding error as large as the spread), the
/// -1e300 column correlated 0.01 with its noise where the exact figure is 0.91.
#[test]
fn a_tiny_spread_next_to_its_size_keeps_its_correlation() {
    let n = 400;
    let mut rng = Rng::seeded(19);
    let noise: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let other: Vec<f64> = noise.iter().map(|z| z + 0.5 * rng.normal()).collect();
    let unrelated: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let columns: Vec<(&str, Vec<f64>)> = vec![
        ("big", noise.iter().map(|z| 1e9 + 1e-6 * z).collect()),
        ("huge_negative", other.iter().map(|z| -1e300 + 1e284 * z).collect()),
        ("tiny", noise.iter().map(|z| 1e-300 * z).collect()),
        ("one_step", (0..n).map(|i| if i == 3 { 1e9 + 1.2e-7 } else { 1e9 }).collect()),
        (
            "big_missing",
            other
                .iter()
                .enumerate()
                .map(|(i, z)| if i % 9 == 4 { f64::NAN } else { 1e9 + 1e-6 * z })
                .collect(),
        ),
        ("noise", noise.clone()),
        ("other", other.clone()),
        ("unrelated", unrelated),
    ];
    assert_eq!(columns[3].1[3].to_bits(), 1e9f64.to_bits() + 1, "one step of a double above 1e9");
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let values: Vec<Vec<f64>> = columns.iter().map(|c| c.1.clone()).collect();
    let theirs = python_on(TINY_SPREAD, &columns);
    let pearson = square(&values, Method::Pearson);
    let spearman = square(&values, Method::Spearman);
    for (i, row) in pearson.iter().enumerate() {
        for (j, r) in row.iter().enumerate() {
            let at = format!("({}, {})", names[i], names[j]);
            let r = r.unwrap_or_else(|| panic!("{at}: no correlation"));
            assert!((-1.0..=1.0).contains(&r), "{at}: {r}");
            if i == j {
                continue;
            }
            let exact = theirs["exact_pearson"][i][j].as_f64().unwrap();
            assert!((r - exact).abs() <= 1e-12, "{at}: ours {r}, exact {exact}");
            let moved = theirs["pandas_moved_pearson"][i][j].as_f64().unwrap();
            assert!((r - moved).abs() <= 1e-12, "{at}: ours {r}, pandas on the moved columns {moved}");
        }
    }
    assert_close(&spearman, &theirs["pandas_spearman"], 1e-12, "spearman", &names);
    let at = |m: &[Vec<Option<f64>>], a: &str, b: &str| {
        m[names.iter().position(|x| *x == a).unwrap()][names.iter().position(|x| *x == b).unwrap()].unwrap()
    };
    // The noise the sizes carry still shows (its own correlation is 1 and about 0.9).
    assert!(at(&pearson, "big", "noise") > 0.999, "{}", at(&pearson, "big", "noise"));
    assert!(at(&pearson, "tiny", "noise") > 0.999_999);
    assert!(at(&pearson, "huge_negative", "other") > 0.85, "{}", at(&pearson, "huge_negative", "other"));
    assert!(at(&spearman, "big", "noise") > 0.99);
    eprintln!(
        "pandas on the columns as they are: r(big, noise) {}, r(huge_negative, other) {}",
        theirs["pandas_raw_pearson"][0][5], theirs["pandas_raw_pearson"][1][6]
    );
}

/// 1,000 features: correlated on a seeded sample of the rows, recorded with the matrix.
#[test]
fn a_thousand_features_are_correlated_on_a_recorded_sample() {
    let mut rng = Rng::seeded(9);
    let d = 1_000;
    let names: Vec<String> = (0..d).map(|i| format!("f{i}")).collect();
    let rows: Vec<Example> = (0..5_000)
        .map(|_| {
            let common = rng.normal();
            let mut features: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            features[1] = features[0] * 3.0 + 0.01 * common;
            if rng.u() < 0.01 {
                features[2] = f64::NAN;
            }
            Example {
                prediction_id: String::new(),
                predicted_ms: 0,
                label_ms: 0,
                segment: "s".into(),
                features,
                confidence: 0.5,
                label: false,
            }
        })
        .collect();
    let c = correlation(&ExampleSet { features: names, rows });
    // One column with missing values: 999 of the pairs cost more.
    let rows = modelwatch::features::correlation::sample_size(5_000, d, 1);
    assert!(rows < 4_000, "{rows}");
    assert_eq!((c.rows, c.training_rows, c.sample_seed.is_some()), (rows as u64, 5_000, true));
    assert_eq!(c.pearson.len(), d * (d - 1) / 2);
    assert!(c.get(Method::Pearson, 0, 1).unwrap() > 0.9999);
    assert!(c.get(Method::Spearman, 1, 2).unwrap().abs() < 0.1);
    let bytes = serde_json::to_vec(&c).unwrap().len();
    assert!(bytes < 12 << 20, "stored record: {bytes} bytes");
}

/// A reader that stops reading (`modelwatch models log pii | head -1`): the verb ends quietly
/// with success, as `cat` does, where `println!` panicked on the closed pipe (exit 101 and a
/// panic message on stderr).
#[test]
fn a_closed_pipe_ends_a_verb_quietly() {
    let d = shared().to_str().unwrap();
    for args in [
        vec!["models", "log", "pii"],
        vec!["models", "list"],
        vec!["models", "show", "pii", "1"],
        vec!["triggers", "history"],
        vec!["features", "report"],
        vec!["query", "count(predictions)", "--since", "30d", "--step", "1h"],
    ] {
        let mut all = args.clone();
        all.extend(["--data", d, "--now", NOW]);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(&all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The read end closes before the verb writes a byte: its first write meets the closed pipe.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && !err.contains("panicked"),
            "modelwatch {}: {:?}\n{err}",
            args.join(" "),
            o.status
        );
    }
}
