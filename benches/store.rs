//! Store benchmark on a realistic dataset: 1 model, 2 variants, 4 segments, 16 features, a
//! 10 s interval, 7 simulated days (`MODELWATCH_BENCH_DAYS` to change), written through the
//! agent into the store. Prints a Markdown table for BENCHMARKS.md.
//!
//! Run: `cargo bench --bench store` (several minutes; a plain harness: there is no peer to
//! compare with in the same run, and each figure is one long measurement).
#![allow(missing_docs)]

use modelwatch::agent::{Feature, ManualClock, Timestamp};
use modelwatch::{Agent, Prediction};
use modelwatch_store::{Durability, ReadRequest, Resolution, Store, StoreConfig, Table};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEGMENTS: [&str; 4] = ["email", "phone", "ssn", "credit_card"];
const START: u64 = 1_764_115_200; // 2025-11-26T00:00:00Z

fn agents(store: &Arc<Store>, clock: &Arc<ManualClock>) -> Vec<Agent> {
    ["control", "canary"]
        .iter()
        .map(|v| {
            Agent::builder("pii")
                .variant(v)
                .segments(SEGMENTS)
                .features((0..16).map(|i| Feature::numeric(format!("f{i:02}"))))
                .interval(Duration::from_secs(10))
                .clock(clock.clone())
                .background_flush(false)
                .build(store.clone())
                .unwrap()
        })
        .collect()
}

/// Records one interval's traffic (8 predictions per segment and variant, feedback on some).
fn traffic(agents: &[Agent], interval: u64) {
    for (a, agent) in agents.iter().enumerate() {
        let h = agent.handle();
        for (s, seg) in SEGMENTS.iter().enumerate() {
            for k in 0..8u64 {
                let i = interval * 64 + k * 8 + s as u64 + a as u64;
                let x: Vec<f64> =
                    (0..16).map(|f| ((i * 31 + f * 7) % 1000) as f64 / 10.0 + f as f64).collect();
                let latency = Duration::from_micros(300 + (i * 2_654_435_761) % 5_000);
                h.record(&Prediction::new(*seg, latency, ((i * 37) % 1000) as f64 / 1000.0).features(&x));
                if k == 0 {
                    h.feedback(*seg, 0.7, i.is_multiple_of(2));
                }
            }
        }
    }
}

fn bytes_rows(store: &Store, table: Table, res: Resolution) -> (u64, u64) {
    store
        .manifest()
        .files
        .iter()
        .filter(|f| f.table == table && f.resolution == res)
        .fold((0, 0), |(b, r), f| (b + f.bytes, r + f.rows))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without
    // it, and a 7-day load is no smoke test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("store bench: run with `cargo bench --bench store`");
        return;
    }
    let days: u64 = std::env::var("MODELWATCH_BENCH_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(7);
    let intervals = days * 8_640;
    let dir = tempfile::tempdir().unwrap();

    // 1. Acknowledged writes with fsync, on the first simulated hour.
    let sync_intervals = 360;
    let store = Arc::new(Store::open(StoreConfig::new(dir.path())).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(START)));
    let ags = agents(&store, &clock);
    let mut write_time = Duration::ZERO;
    let rows_before =
        |s: &Store| s.manifest().files.iter().map(|f| f.rows).sum::<u64>() + s.buffered_rows() as u64;
    for i in 0..sync_intervals {
        traffic(&ags, i);
        clock.advance(Duration::from_secs(10));
        let t = Instant::now();
        for a in &ags {
            a.flush_due().unwrap();
        }
        write_time += t.elapsed();
    }
    store.flush().unwrap();
    let synced_rows = rows_before(&store);
    let sync_rate = synced_rows as f64 / write_time.as_secs_f64();
    let (longest_sync_ack, _) = store.longest_acknowledgement();
    drop(ags);
    drop(store);

    // 2. The rest of the days, group commit every second to keep the run short.
    let store = Arc::new(
        Store::open(StoreConfig {
            durability: Durability::Interval(Duration::from_secs(1)),
            ..StoreConfig::new(dir.path())
        })
        .unwrap(),
    );
    let ags = agents(&store, &clock);
    let t = Instant::now();
    for i in sync_intervals..intervals {
        traffic(&ags, i);
        clock.advance(Duration::from_secs(10));
        for a in &ags {
            a.flush_due().unwrap();
        }
    }
    drop(ags);
    store.flush().unwrap();
    let bulk_time = t.elapsed();
    let (longest_bulk_ack, longest_hold) = store.longest_acknowledgement();
    let bulk_rows = rows_before(&store) - synced_rows;

    let (draw_b, draw_r) = bytes_rows(&store, Table::Distributions, Resolution::Raw);
    let (sraw_b, sraw_r) = bytes_rows(&store, Table::Scalars, Resolution::Raw);
    let t = Instant::now();
    let report = store.maintain((START * 1000) as i64).unwrap();
    let maintain_time = t.elapsed();
    let (d1m_b, d1m_r) = bytes_rows(&store, Table::Distributions, Resolution::Minute);
    let (d1h_b, d1h_r) = bytes_rows(&store, Table::Distributions, Resolution::Hour);
    let (s1m_b, s1m_r) = bytes_rows(&store, Table::Scalars, Resolution::Minute);
    let (s1h_b, s1h_r) = bytes_rows(&store, Table::Scalars, Resolution::Hour);

    let end_ms = ((START + intervals * 10) * 1000) as i64;
    let mut reads = Vec::new();
    for res in Resolution::ALL {
        let req = ReadRequest::new(Table::Distributions, (START * 1000) as i64, end_ms, res)
            .tag("metric", "latency_ns")
            .tag("segment", "email")
            .tag("variant", "control");
        let t = Instant::now();
        let rows = store.read(&req).unwrap().distributions.len();
        reads.push((res, rows, t.elapsed()));
    }
    let hour_from = (START * 1000) as i64 + (intervals as i64 * 10_000 / 2) / 3_600_000 * 3_600_000;
    let t = Instant::now();
    let hour_rows = store
        .read(&ReadRequest::new(Table::Distributions, hour_from, hour_from + 3_600_000, Resolution::Raw))
        .unwrap()
        .len()
        + store
            .read(&ReadRequest::new(Table::Scalars, hour_from, hour_from + 3_600_000, Resolution::Raw))
            .unwrap()
            .len();
    let hour_time = t.elapsed();

    println!("| figure | value |");
    println!("|---|---:|");
    println!("| simulated days / snapshots | {days} / {} |", intervals * 2);
    println!(
        "| write, `sync` (fsync per acknowledgement), first hour | {sync_rate:.0} rows/s ({synced_rows} rows in {:.2} s) |",
        write_time.as_secs_f64()
    );
    println!(
        "| longest acknowledgement under `sync` (WAL append + fsync) | {:.1} ms |",
        longest_sync_ack.as_secs_f64() * 1e3
    );
    println!(
        "| longest acknowledgement under group commit, publishing in the background | {:.1} ms |",
        longest_bulk_ack.as_secs_f64() * 1e3
    );
    println!(
        "| write, group commit every 1 s, remaining days | {:.0} rows/s ({bulk_rows} rows in {:.1} s) |",
        bulk_rows as f64 / bulk_time.as_secs_f64(),
        bulk_time.as_secs_f64()
    );
    println!(
        "| distributions, raw: bytes per row | {:.1} ({draw_r} rows, {:.1} MB) |",
        draw_b as f64 / draw_r as f64,
        draw_b as f64 / 1e6
    );
    println!(
        "| distributions, 1m: bytes per row | {:.1} ({d1m_r} rows, {:.1} MB) |",
        d1m_b as f64 / d1m_r.max(1) as f64,
        d1m_b as f64 / 1e6
    );
    println!(
        "| distributions, 1h: bytes per row | {:.1} ({d1h_r} rows, {:.1} MB) |",
        d1h_b as f64 / d1h_r.max(1) as f64,
        d1h_b as f64 / 1e6
    );
    println!(
        "| scalars, raw: bytes per row | {:.1} ({sraw_r} rows, {:.2} MB) |",
        sraw_b as f64 / sraw_r as f64,
        sraw_b as f64 / 1e6
    );
    println!("| scalars, 1m: bytes per row | {:.1} ({s1m_r} rows) |", s1m_b as f64 / s1m_r.max(1) as f64);
    println!("| scalars, 1h: bytes per row | {:.1} ({s1h_r} rows) |", s1h_b as f64 / s1h_r.max(1) as f64);
    println!(
        "| maintenance (compaction + roll-ups of {days} days) | {:.1} s ({} files compacted, {} roll-up rows) |",
        maintain_time.as_secs_f64(),
        report.compacted_files,
        report.rolled_up_rows
    );
    println!(
        "| longest hold of the store lock by publication or maintenance | {:.1} ms |",
        store.longest_acknowledgement().1.max(longest_hold).as_secs_f64() * 1e3
    );
    for (res, rows, t) in reads {
        println!(
            "| read one series (latency, email, control) over {days} days at {} | {:.1} ms ({rows} rows) |",
            res.as_str(),
            t.as_secs_f64() * 1e3
        );
    }
    println!(
        "| read every series for one hour (raw) | {:.1} ms ({hour_rows} rows) |",
        hour_time.as_secs_f64() * 1e3
    );
}
