//! Memory of the agent for the quickstart configuration (6 segments + `other`, 4 numeric
//! features) with 8 recording threads: address space per shard and resident memory measured
//! from /proc/self/status before and after.
//!
//! Run: `cargo run --release --example footprint`

use modelwatch::agent::NullSink;
use modelwatch::{Agent, Feature, Prediction};
use std::time::Duration;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const THREADS: usize = 8;
    let before = rss_kib();
    let agent = Agent::builder("pii-confidence")
        .segments(["email", "phone", "ssn", "credit_card", "name", "address"])
        .features(["token_length", "digit_ratio", "context_score", "has_at_sign"].map(Feature::numeric))
        .background_flush(false)
        .build(NullSink)?;
    let h = agent.handle();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let h = h.clone();
            s.spawn(move || {
                let segs = ["email", "phone", "ssn", "credit_card", "name", "address"].map(|n| h.segment(n));
                for i in 0..100_000u64 {
                    let x = [
                        5.0 + (i % 20) as f64,
                        (i % 100) as f64 / 100.0,
                        (i % 7) as f64 / 7.0,
                        (i % 2) as f64,
                    ];
                    let p = Prediction::new(
                        segs[(i as usize + t) % 6],
                        Duration::from_micros(200 + i % 900),
                        0.8,
                    )
                    .features(&x);
                    h.record(&p);
                    if i % 10 == 0 {
                        h.feedback(segs[i as usize % 6], 0.8, i % 20 == 0);
                    }
                }
            });
        }
    });
    let recorded = rss_kib();
    agent.flush_now()?;
    let flushed = rss_kib();
    let stats = agent.stats();
    println!("threads: {THREADS}, shards: {}", stats.shards);
    println!(
        "address space per shard: {:.1} KiB ({:.1} KiB per segment)",
        stats.shard_bytes as f64 / 1024.0,
        stats.shard_bytes as f64 / 1024.0 / 7.0
    );
    println!(
        "resident after recording: +{} KiB ({} KiB per thread)",
        recorded - before,
        (recorded - before) / THREADS as u64
    );
    println!("resident after the first flush (flusher mirrors): +{} KiB", flushed - before);
    Ok(())
}
