//! Drift report benchmark, two cases, each against Evidently's data-drift report over the
//! same raw rows in the same run:
//!
//! 1. **100 features, 7 days against 1**: one model, 100 numeric features (10 of them
//!    shifted by half a standard deviation on the last day), 6 predictions a minute for 8
//!    days (60,480 reference rows, 8,640 current), 10-minute intervals, through the agent
//!    into the store, rolled up by its maintenance.
//! 2. **1 M rows × 20 features**, stored as a user would: a CSV log (1 model, 2 variants, 4
//!    segments, 18 numeric and 2 categorical features, 100 predictions a second; 5 numeric
//!    features shifted by half a standard deviation in the current window) through
//!    `modelwatch import`, then `modelwatch store compact`. Reference: the first 2 hours
//!    (720,000 rows); current: the remaining 46 min 40 s (280,000 rows).
//!
//! Ours, per case: the report (`drift::profile` of both windows and `drift::compare`)
//! in-process on a freshly opened store (cold: files decoded) and warm (median of 20); and
//! `modelwatch drift` as a fresh CLI process (median of 5), without and with the reference's
//! profile in the on-disk profile cache. Files are in the OS page cache for all of these.
//!
//! Run: `cargo bench --bench drift` (about 5 minutes). Evidently runs in the virtualenv at
//! `MODELWATCH_BENCH_PYTHON` (default `~/.cache/modelwatch-bench-venv/bin/python`, made
//! with `pip install evidently==0.7.23 pandas==2.3.3 pyarrow`); median of 3 runs for the
//! first case, one run for the second (`MODELWATCH_BENCH_EVIDENTLY_RUNS` for more).
//! `MODELWATCH_BENCH_DRIFT_CASES=1` (or `2`) runs one case; `MODELWATCH_BENCH_DRIFT_DIR=DIR`
//! keeps the second case's CSV, Parquet files and store in `DIR` (to profile them).
#![allow(missing_docs)]

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use modelwatch::agent::{Feature, ManualClock, Timestamp};
use modelwatch::demo::Rng;
use modelwatch::{Agent, Prediction};
use modelwatch_query::drift::{self, DriftConfig, Verdict};
use modelwatch_store::{Store, StoreConfig};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FEATURES: usize = 100;
const SHIFTED: usize = 10;
const DAY: i64 = 86_400_000;
const START: i64 = 1_764_115_200_000; // 2025-11-26T00:00:00Z

fn write_parquet(path: &Path, rows: &[Vec<f64>]) {
    let columns: Vec<(String, ArrayRef)> = (0..FEATURES)
        .map(|k| {
            (
                format!("f{k:03}"),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r[k]))) as ArrayRef,
            )
        })
        .collect();
    write_batch(path, columns);
}

fn write_batch(path: &Path, columns: Vec<(String, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Evidently's report over the two Parquet files: (median seconds, drifting columns).
fn evidently(python: &str, dir: &Path, runs: usize) -> (f64, serde_json::Value) {
    let out = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/drift_evidently.py"))
        .arg(dir.join("reference.parquet"))
        .arg(dir.join("current.parquet"))
        .arg(runs.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}); see the header of benches/drift.rs"));
    assert!(out.status.success(), "Evidently failed: {}", String::from_utf8_lossy(&out.stderr));
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (ev["seconds"].as_f64().unwrap(), ev["drifted"].clone())
}

/// Ours in-process: (cold, warm median of 20, drifting features, features compared).
fn in_process(data: &Path, reference: (i64, i64), current: (i64, i64)) -> (Duration, Duration, usize, usize) {
    let report = |store: &Store| {
        let r = drift::profile(store, &[], reference.0, reference.1).unwrap();
        let c = drift::profile(store, &[], current.0, current.1).unwrap();
        drift::compare(&r, &c, &DriftConfig::default())
    };
    // Cold: a fresh read-only open, nothing decoded yet.
    let fresh = Store::open_read_only(StoreConfig::new(data)).unwrap();
    let t = Instant::now();
    let first = report(&fresh);
    let cold = t.elapsed();
    let warm = median(
        (0..20)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(report(&fresh));
                t.elapsed()
            })
            .collect(),
    );
    let drifted = first.features.iter().filter(|f| f.verdict == Verdict::Drift).count();
    (cold, warm, drifted, first.features.len())
}

/// `modelwatch drift` as a fresh process, median of 5: (without the reference's profile
/// cached, with it, drifting features as the CLI reports them).
fn cli(data: &Path, reference: (i64, i64), current: (i64, i64)) -> (Duration, Duration, u64) {
    let run = || {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .arg("drift")
            .arg("--data")
            .arg(data)
            .args(["--reference", &format!("{}..{}", reference.0, reference.1)])
            .args(["--current", &format!("{}..{}", current.0, current.1)])
            .args(["--format", "json"])
            .output()
            .unwrap();
        let took = t.elapsed();
        assert!(out.status.success(), "modelwatch drift: {}", String::from_utf8_lossy(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (took, doc["drifting_features"].as_u64().unwrap_or(0))
    };
    let cache = data.join("cache");
    let uncached = median(
        (0..5)
            .map(|_| {
                let _ = std::fs::remove_dir_all(&cache);
                run().0
            })
            .collect(),
    );
    let (_, drifted) = run(); // fills the profile cache
    let cached = median((0..5).map(|_| run().0).collect());
    (uncached, cached, drifted)
}

#[allow(clippy::too_many_arguments)]
fn print_case(
    name: &str,
    rows: (usize, usize),
    ours: (Duration, Duration, usize, usize),
    cli: (Duration, Duration, u64),
    ev: (f64, serde_json::Value),
    runs: usize,
    shifted: usize,
) {
    let (cold, warm, drifted, features) = ours;
    let ev_ms = ev.0 * 1e3;
    println!("\n### {name}\n");
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| features compared (with confidence) | {features} |");
    println!("| reference / current rows | {} / {} |", rows.0, rows.1);
    println!("| modelwatch report in-process, cold (fresh open, files decoded) | {:.1} ms |", ms(cold));
    println!("| modelwatch report in-process, warm (median of 20) | {:.1} ms |", ms(warm));
    println!("| `modelwatch drift` CLI process, reference not cached (median of 5) | {:.1} ms |", ms(cli.0));
    println!(
        "| `modelwatch drift` CLI process, reference profile cached (median of 5) | {:.1} ms |",
        ms(cli.1)
    );
    println!("| Evidently DataDriftPreset over the raw rows (median of {runs}) | {ev_ms:.0} ms |");
    println!(
        "| ratio Evidently / modelwatch (warm; CLI uncached; CLI cached) | {:.0}x; {:.0}x; {:.0}x |",
        ev_ms / ms(warm),
        ev_ms / ms(cli.0),
        ev_ms / ms(cli.1)
    );
    println!(
        "| drifting features: modelwatch (in-process / CLI) / Evidently ({shifted} shifted) | {drifted} / {} / {} |",
        cli.2, ev.1
    );
}

/// Case 1: 100 features through the agent, 7 days against 1.
fn hundred_features(python: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(&data) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(START as u64)));
    let agent = Agent::builder("bench")
        .segments(["all"])
        .features((0..FEATURES).map(|k| Feature::numeric(format!("f{k:03}"))))
        .interval(Duration::from_secs(600))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut reference, mut current) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for minute in 0..8 * 1440i64 {
        let last_day = minute >= 7 * 1440;
        for i in 0..6 {
            clock.set(Timestamp::from_millis((START + minute * 60_000 + i * 10_000) as u64));
            agent.flush_due().unwrap();
            let row: Vec<f64> = (0..FEATURES)
                .map(|k| {
                    let sd = 1.0 + k as f64 / 50.0;
                    let shift = if last_day && k < SHIFTED { 0.5 * sd } else { 0.0 };
                    10.0 + k as f64 + shift + sd * rng.normal()
                })
                .collect();
            agent.handle().record(&Prediction::new("all", Duration::from_millis(1), 0.5).features(&row));
            if last_day { current.push(row) } else { reference.push(row) }
        }
    }
    clock.set(Timestamp::from_millis((START + 8 * DAY) as u64));
    agent.shutdown().unwrap();
    store.flush().unwrap();
    store.maintain(START + 8 * DAY).unwrap();
    drop(store);
    eprintln!(
        "case 1: wrote {} rows and rolled them up in {:.1} s",
        reference.len() + current.len(),
        started.elapsed().as_secs_f64()
    );
    write_parquet(&dir.path().join("reference.parquet"), &reference);
    write_parquet(&dir.path().join("current.parquet"), &current);
    let (r, c) = ((START, START + 7 * DAY), (START + 7 * DAY, START + 8 * DAY));
    let ours = in_process(&data, r, c);
    let cli = cli(&data, r, c);
    let runs = evidently_runs(3);
    let ev = evidently(python, dir.path(), runs);
    print_case(
        "100 features, 7-day reference against 1-day current",
        (reference.len(), current.len()),
        ours,
        cli,
        ev,
        runs,
        SHIFTED,
    );
}

const BIG_ROWS: u64 = 1_000_000;
const BIG_STEP_MS: i64 = 10; // 100 rows a second
const BIG_SPLIT: i64 = START + 2 * 3_600_000;
const BIG_NUMERIC: usize = 18;
const BIG_SHIFTED: usize = 5;
const SEGMENTS: [&str; 4] = ["email", "phone", "ssn", "credit_card"];
const LANGS: [&str; 5] = ["en", "de", "fr", "es", "it"];
const TIERS: [&str; 3] = ["free", "pro", "enterprise"];

/// Case 2: 1 M rows × 20 features, imported from CSV and compacted, as a user would.
fn million_rows(python: &str) {
    let temp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("MODELWATCH_BENCH_DRIFT_DIR").map(std::path::PathBuf::from);
    let dir = keep.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir).unwrap();
    let csv = dir.join("log.csv");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&csv).unwrap());
    let mut header =
        String::from("timestamp,model,version,variant,segment,latency_ms,confidence,label,error");
    for f in 0..BIG_NUMERIC {
        header.push_str(&format!(",f.x{f:02}"));
    }
    header.push_str(",f.lang,f.tier");
    writeln!(w, "{header}").unwrap();
    let mut rng = Rng::seeded(11);
    // The features as Evidently reads them, per side.
    let mut numeric: [Vec<Vec<f64>>; 2] = std::array::from_fn(|_| vec![Vec::new(); BIG_NUMERIC]);
    let mut cats: [[Vec<&str>; 2]; 2] = Default::default();
    for i in 0..BIG_ROWS as i64 {
        let ts = START + i * BIG_STEP_MS;
        let side = usize::from(ts >= BIG_SPLIT);
        let r = rng.u();
        let label = if r < 0.025 {
            "1"
        } else if r < 0.05 {
            "0"
        } else {
            ""
        };
        write!(
            w,
            "{ts},pii,1.4.0,{},{},{:.3},{:.3},{label},{}",
            if rng.u() < 0.1 { "canary" } else { "control" },
            SEGMENTS[rng.below(SEGMENTS.len())],
            2.0 + rng.u() * 8.0,
            rng.u(),
            if rng.u() < 0.005 { "timeout" } else { "" },
        )
        .unwrap();
        for (f, col) in numeric[side].iter_mut().enumerate() {
            let sd = 1.0 + f as f64;
            let shift = if side == 1 && f < BIG_SHIFTED { 0.5 * sd } else { 0.0 };
            let x = ((rng.normal() * sd + 10.0 * f as f64 + shift) * 1000.0).round() / 1000.0;
            write!(w, ",{x}").unwrap();
            col.push(x);
        }
        let (lang, tier) = (LANGS[rng.below(LANGS.len())], TIERS[rng.below(TIERS.len())]);
        writeln!(w, ",{lang},{tier}").unwrap();
        cats[side][0].push(lang);
        cats[side][1].push(tier);
    }
    w.flush().unwrap();
    drop(w);
    for (side, name) in ["reference.parquet", "current.parquet"].iter().enumerate() {
        let mut columns: Vec<(String, ArrayRef)> = numeric[side]
            .iter()
            .enumerate()
            .map(|(f, v)| (format!("x{f:02}"), Arc::new(Float64Array::from(v.clone())) as ArrayRef))
            .collect();
        for (k, n) in ["lang", "tier"].iter().enumerate() {
            columns.push((n.to_string(), Arc::new(StringArray::from(cats[side][k].clone())) as ArrayRef));
        }
        write_batch(&dir.join(name), columns);
    }
    let rows = (numeric[0][0].len(), numeric[1][0].len());
    drop((numeric, cats));

    let data = dir.join("data");
    let bin = env!("CARGO_BIN_EXE_modelwatch");
    let t = Instant::now();
    let out = Command::new(bin).arg("import").arg(&csv).arg("--data").arg(&data).output().unwrap();
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    let import = t.elapsed();
    let end = START + BIG_ROWS as i64 * BIG_STEP_MS;
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["store", "compact", "--data"])
        .arg(&data)
        .args(["--as-of", &(end + 3_600_000).to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "compact: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!(
        "case 2: imported {BIG_ROWS} rows in {:.1} s, compacted in {:.1} s",
        import.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    let (r, c) = ((START, BIG_SPLIT), (BIG_SPLIT, end));
    let ours = in_process(&data, r, c);
    let cli = cli(&data, r, c);
    let runs = evidently_runs(1);
    let ev = evidently(python, dir, runs);
    print_case(
        "1 M rows × 20 features (18 numeric, 2 categorical), imported from CSV and compacted",
        rows,
        ours,
        cli,
        ev,
        runs,
        BIG_SHIFTED,
    );
}

fn evidently_runs(default: usize) -> usize {
    std::env::var("MODELWATCH_BENCH_EVIDENTLY_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("drift bench: run with `cargo bench --bench drift`");
        return;
    }
    let python = std::env::var("MODELWATCH_BENCH_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/modelwatch-bench-venv/bin/python", std::env::var("HOME").unwrap_or_default())
    });
    let cases = std::env::var("MODELWATCH_BENCH_DRIFT_CASES").unwrap_or_else(|_| "1,2".into());
    if cases.contains('1') {
        hundred_features(&python);
    }
    if cases.contains('2') {
        million_rows(&python);
    }
}
