//! Drift report benchmark: 100 numeric features, a 7-day reference against a 1-day current
//! window, read from the store (hourly roll-ups), against Evidently's data-drift report over
//! the same raw rows in the same run.
//!
//! Data: one model, 100 features (10 of them shifted by half a standard deviation on the
//! last day), 6 predictions a minute for 8 days (60,480 reference rows, 8,640 current),
//! 10-minute intervals, rolled up by the store's maintenance.
//!
//! Run: `cargo bench --bench drift` (about 2 minutes). Evidently runs in the virtualenv at
//! `MODELWATCH_BENCH_PYTHON` (default `~/.cache/modelwatch-bench-venv/bin/python`, made
//! with `pip install evidently==0.7.23 pandas==2.3.3 pyarrow`).
#![allow(missing_docs)]

use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use modelwatch::agent::{Feature, ManualClock, Timestamp};
use modelwatch::demo::Rng;
use modelwatch::{Agent, Prediction};
use modelwatch_query::drift::{self, DriftConfig, Verdict};
use modelwatch_store::{Store, StoreConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FEATURES: usize = 100;
const SHIFTED: usize = 10;
const DAY: i64 = 86_400_000;
const START: i64 = 1_764_115_200_000; // 2025-11-26T00:00:00Z

fn write_parquet(path: &std::path::Path, rows: &[Vec<f64>]) {
    let columns: Vec<(String, ArrayRef)> = (0..FEATURES)
        .map(|k| {
            (
                format!("f{k:03}"),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r[k]))) as ArrayRef,
            )
        })
        .collect();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("drift bench: run with `cargo bench --bench drift`");
        return;
    }
    let python = std::env::var("MODELWATCH_BENCH_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/modelwatch-bench-venv/bin/python", std::env::var("HOME").unwrap_or_default())
    });
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
    eprintln!(
        "wrote {} rows and rolled them up in {:.1} s",
        reference.len() + current.len(),
        started.elapsed().as_secs_f64()
    );
    write_parquet(&dir.path().join("reference.parquet"), &reference);
    write_parquet(&dir.path().join("current.parquet"), &current);

    let report = |store: &Store| {
        let r = drift::profile(store, &[], START, START + 7 * DAY).unwrap();
        let c = drift::profile(store, &[], START + 7 * DAY, START + 8 * DAY).unwrap();
        drift::compare(&r, &c, &DriftConfig::default())
    };
    // Cold: a fresh read-only open, nothing decoded yet.
    let fresh = Store::open_read_only(StoreConfig::new(&data)).unwrap();
    let t = Instant::now();
    let first = report(&fresh);
    let cold = t.elapsed();
    let mut warm: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(report(&fresh));
            t.elapsed()
        })
        .collect();
    warm.sort();
    let ours_drifted = first.features.iter().filter(|f| f.verdict == Verdict::Drift).count();
    let numeric = first.features.iter().filter(|f| f.feature != "confidence").count();

    let out = std::process::Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/drift_evidently.py"))
        .arg(dir.path().join("reference.parquet"))
        .arg(dir.path().join("current.parquet"))
        .arg("3")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}); see the header of benches/drift.rs"));
    assert!(out.status.success(), "Evidently failed: {}", String::from_utf8_lossy(&out.stderr));
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ev_s = ev["seconds"].as_f64().unwrap();
    let warm_ms = warm[warm.len() / 2].as_secs_f64() * 1e3;
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| features compared | {numeric} numeric (+ confidence) |");
    println!("| reference / current rows | {} / {} |", reference.len(), current.len());
    println!(
        "| modelwatch drift report, cold (fresh open, files decoded) | {:.1} ms |",
        cold.as_secs_f64() * 1e3
    );
    println!("| modelwatch drift report, warm (median of 20) | {warm_ms:.1} ms |");
    println!("| Evidently DataDriftPreset over the raw rows (median of 3) | {:.0} ms |", ev_s * 1e3);
    println!(
        "| ratio Evidently / modelwatch (warm; cold) | {:.0}x; {:.0}x |",
        ev_s * 1e3 / warm_ms,
        ev_s / cold.as_secs_f64()
    );
    println!(
        "| drifting features found: modelwatch / Evidently (10 shifted) | {ours_drifted} / {} |",
        ev["drifted"]
    );
}
