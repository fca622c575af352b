//! Maintenance under late writes: labels and backfills arrive hours or days after their
//! predictions, so merging late rows into roll-ups is a steady load. Two stores get the same
//! traffic (1 model, 4 segments, 8 numeric features, a 10 s interval, `MODELWATCH_BENCH_DAYS`
//! simulated days, default 7) and are maintained once per simulated day:
//!
//! - on time: every snapshot is appended in its own day;
//! - late: 5 % of each day's snapshots (every 20th interval) are held back and appended 1, 2
//!   or 3 days later.
//!
//! Prints the maintenance time per day for both, their ratio, and checks that both stores end
//! with the same hourly counts. Run: `cargo bench --bench late_writes`.
#![allow(missing_docs)]

use modelwatch::agent::{Feature, ManualClock, MemorySink, Timestamp};
use modelwatch::{Agent, Prediction};
use modelwatch_store::{ReadRequest, Resolution, Rows, Store, StoreConfig, Table};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEGMENTS: [&str; 4] = ["email", "phone", "ssn", "credit_card"];
const START: u64 = 1_764_115_200; // 2025-11-26T00:00:00Z
const PER_DAY: u64 = 8_640;

/// Every interval's rows, in order, recorded once through the agent.
fn snapshots(days: u64) -> Vec<Rows> {
    let sink = MemorySink::new();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(START)));
    let agent = Agent::builder("pii")
        .segments(SEGMENTS)
        .features((0..8).map(|i| Feature::numeric(format!("f{i}"))))
        .interval(Duration::from_secs(10))
        .clock(clock.clone())
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    let h = agent.handle();
    for i in 0..days * PER_DAY {
        for (s, seg) in SEGMENTS.iter().enumerate() {
            for k in 0..4u64 {
                let n = i * 16 + k * 4 + s as u64;
                let x: Vec<f64> = (0..8).map(|f| ((n * 31 + f * 7) % 1000) as f64 / 10.0).collect();
                let latency = Duration::from_micros(300 + (n * 2_654_435_761) % 5_000);
                h.record(&Prediction::new(*seg, latency, ((n * 37) % 1000) as f64 / 1000.0).features(&x));
            }
        }
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    }
    drop(agent);
    sink.snapshots().iter().map(|s| Rows::from_snapshot(s)).collect()
}

fn store(dir: &std::path::Path) -> Store {
    Store::open(StoreConfig { background: false, buffer_rows: 200_000, ..StoreConfig::new(dir) }).unwrap()
}

/// Appends each day's rows (`late`: holding 5 % back for 1–3 days) and maintains once per
/// day; returns the maintenance time per day.
fn run(store: &Store, all: &[Rows], days: u64, late: bool) -> Vec<Duration> {
    let mut held: Vec<(u64, Rows)> = Vec::new();
    let mut times = Vec::new();
    for day in 0..days + 3 {
        let lo = (day * PER_DAY) as usize;
        let hi = (((day + 1) * PER_DAY) as usize).min(all.len());
        for (i, rows) in all.iter().enumerate().take(hi).skip(lo) {
            if late && i % 20 == 0 {
                held.push((day + 1 + (i as u64 / 20) % 3, rows.clone()));
            } else {
                store.append(rows.clone()).unwrap();
            }
        }
        let (due, rest): (Vec<_>, Vec<_>) = held.into_iter().partition(|(d, _)| *d == day);
        held = rest;
        for (_, rows) in due {
            store.append(rows).unwrap();
        }
        store.flush().unwrap();
        // Maintained at the end of the simulated day; nothing expires within the run.
        let now = ((START + (day + 1) * 86_400) * 1000) as i64;
        let t = Instant::now();
        store.maintain(now).unwrap();
        times.push(t.elapsed());
    }
    times
}

fn hourly_predictions(store: &Store) -> Vec<(i64, u64)> {
    let req =
        ReadRequest::new(Table::Distributions, 0, i64::MAX, Resolution::Hour).tag("metric", "latency_ns");
    let mut by_hour = std::collections::BTreeMap::new();
    for r in store.read(&req).unwrap().distributions {
        *by_hour.entry(r.start_ms).or_insert(0) += r.count;
    }
    by_hour.into_iter().collect()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("late_writes bench: run with `cargo bench --bench late_writes`");
        return;
    }
    let days: u64 = std::env::var("MODELWATCH_BENCH_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(7);
    let all = snapshots(days);
    let rows: usize = all.iter().map(Rows::len).sum();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (on_time, late) = (store(a.path()), store(b.path()));
    let t_on = run(&on_time, &all, days, false);
    let t_late = run(&late, &all, days, true);
    assert_eq!(hourly_predictions(&on_time), hourly_predictions(&late), "late rows change no hourly count");
    let sum = |t: &[Duration]| t.iter().sum::<Duration>().as_secs_f64();
    let max = |t: &[Duration]| t.iter().max().copied().unwrap_or_default().as_secs_f64();
    println!("| figure | on time | 5 % up to 3 days late | ratio |");
    println!("|---|---:|---:|---:|");
    println!("| simulated days / raw rows | {days} / {rows} | same | |");
    println!(
        "| maintenance, all passes | {:.1} s | {:.1} s | {:.2}× |",
        sum(&t_on),
        sum(&t_late),
        sum(&t_late) / sum(&t_on)
    );
    println!(
        "| maintenance, mean per simulated day | {:.0} ms | {:.0} ms | |",
        sum(&t_on) * 1e3 / t_on.len() as f64,
        sum(&t_late) * 1e3 / t_late.len() as f64
    );
    println!("| maintenance, slowest pass | {:.0} ms | {:.0} ms | |", max(&t_on) * 1e3, max(&t_late) * 1e3);
}
