//! Quickstart: a simulated PII scorer records predictions from four threads through the
//! modelwatch hook; every one-second interval is printed, per segment, and stored durably in
//! `./modelwatch-data` (look at it with `modelwatch store inspect`).
//!
//! Run: `cargo run --release --example quickstart` (about 4 seconds).

use modelwatch::agent::{FeatureSnapshot, OTHER_SEGMENT};
use modelwatch::demo::Rng;
use modelwatch::{Agent, Feature, FeatureStats, Prediction, Sink, SinkError, Snapshot, Timer};
use modelwatch_store::{Store, StoreConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEGMENTS: [&str; 6] = ["email", "phone", "ssn", "credit_card", "name", "address"];
const FEATURES: [&str; 4] = ["token_length", "digit_ratio", "context_score", "has_at_sign"];

/// Prints each snapshot, then hands it to the store (whose acknowledgement is the result).
struct PrintAndStore(Store);

impl Sink for PrintAndStore {
    fn close(&self) -> Result<(), SinkError> {
        self.0.close()
    }

    fn write(&self, s: &Arc<Snapshot>) -> Result<(), SinkError> {
        let secs = s.end.saturating_duration_since(s.start).as_secs_f64();
        println!(
            "\ninterval #{}  {:.1}s  model {} v{} ({})  {} predictions",
            s.seq,
            secs,
            s.model.name,
            s.model.version,
            s.model.variant,
            s.predictions()
        );
        println!(
            "  {:<12} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>6}",
            "segment", "count", "p50 µs", "p95 µs", "p99 µs", "conf μ", "conf≥0.5", "fdbk", "errors"
        );
        for g in &s.segments {
            let q = |p: f64| g.latency.value_at_quantile(p) as f64 / 1e3;
            println!(
                "  {:<12} {:>7} {:>8.0} {:>8.0} {:>8.0} {:>8.3} {:>9} {:>6} {:>6}",
                g.segment,
                g.predictions,
                q(0.5),
                q(0.95),
                q(0.99),
                g.confidence.mean().unwrap_or(f64::NAN),
                g.confidence.count_at_or_above(0.5),
                g.feedback(),
                g.error_count()
            );
        }
        println!("  confidence distribution (all segments):");
        let mut deciles = [0u64; 10];
        for g in &s.segments {
            for (i, &c) in g.confidence.bins().iter().enumerate() {
                deciles[i * 10 / g.confidence.bins().len()] += c;
            }
        }
        let top = deciles.iter().copied().max().unwrap_or(1).max(1);
        for (d, &c) in deciles.iter().enumerate() {
            let bar = "#".repeat((c * 40 / top) as usize);
            println!("    [{:.1}, {:.1}) {:>6} {bar}", d as f64 / 10.0, (d + 1) as f64 / 10.0, c);
        }
        println!("  features (mean / missing) in segment email:");
        for f in s.features.iter().filter(|f| &*f.segment == "email") {
            print_feature(f);
        }
        self.0.write(s)
    }
}

fn print_feature(f: &FeatureSnapshot) {
    match &f.stats {
        FeatureStats::Numeric(n) => println!(
            "    {:<14} mean {:>8.3}  std {:>7.3}  p90 {:>8.3}  missing {}",
            f.feature,
            n.mean,
            n.std_dev().unwrap_or(0.0),
            n.quantile(0.9).unwrap_or(f64::NAN),
            n.missing
        ),
        FeatureStats::Categorical(c) => {
            println!("    {:<14} {:?}  missing {}", f.feature, c.counts, c.missing)
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let agent = Agent::builder("pii-confidence")
        .version("1.4.0")
        .segments(SEGMENTS)
        .features(FEATURES.map(Feature::numeric))
        .interval(Duration::from_secs(1))
        .build(PrintAndStore(Store::open(StoreConfig::new("./modelwatch-data"))?))?;
    let handle = agent.handle();
    handle.model_loaded();
    println!("recording from 4 scorer threads for 3 seconds; one table per 1 s interval");

    let deadline = Instant::now() + Duration::from_secs(3);
    let scorers: Vec<_> = (0..4u64)
        .map(|t| {
            let h = handle.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                let segments: Vec<_> = SEGMENTS.iter().map(|s| h.segment(s)).collect();
                let timeout = h.error_kind("timeout");
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let timer = Timer::start();
                    let seg = (rng.u() * 6.0) as usize % 6;
                    let features = [
                        5.0 + rng.u() * 20.0,
                        rng.u() * if seg == 1 || seg == 2 { 1.0 } else { 0.2 },
                        if rng.u() < 0.05 { f64::NAN } else { rng.u() },
                        f64::from(u8::from(seg == 0)),
                    ];
                    // "Scoring": a little work so latencies are real.
                    let mut acc = 0.0;
                    for i in 0..(200 + (rng.u() * 800.0) as usize) {
                        acc += (i as f64 * features[0]).sin();
                    }
                    let confidence = (0.55 + 0.4 * features[2].max(0.0) + acc.abs().fract() * 0.05).min(1.0);
                    if rng.u() < 0.001 {
                        h.error(segments[seg], timeout);
                        continue;
                    }
                    h.record(&Prediction::new(segments[seg], timer, confidence).features(&features));
                    if rng.u() < 0.1 {
                        h.feedback(segments[seg], confidence, rng.u() < confidence);
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let recorded: u64 = scorers.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    agent.shutdown()?; // flushes the last partial interval
    println!("\nrecorded {recorded} predictions; unknown segments would show as '{OTHER_SEGMENT}'");
    println!("stored in ./modelwatch-data: try `cargo run --release -- store inspect`");
    Ok(())
}
