//! Model check of the shard/flush protocol with loom: every interleaving (up to the
//! preemption bound) of recording threads and a concurrent flush must deliver each
//! recorded value exactly once.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p modelwatch-agent --test loom --release`
//! (`scripts/test` does, with its own target directory).
#![cfg(loom)]

use loom::thread;
use modelwatch_agent::*;
use std::sync::Arc;
use std::time::Duration;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.max_branches = 1_000_000;
    b.check(f);
}

fn agent(sink: &MemorySink) -> Agent {
    Agent::builder("m")
        .segments(["a"])
        .error_kinds(["e"])
        .features([Feature::numeric("x")])
        .max_series(1)
        .clock(Arc::new(ManualClock::new(Timestamp::from_secs(1))))
        .background_flush(false)
        .build(sink.clone())
        .unwrap()
}

fn totals(sink: &MemorySink) -> (u64, u64, u64, f64, u64) {
    let (mut predictions, mut latencies, mut feature_count, mut feature_sum, mut feedback) =
        (0, 0, 0, 0.0, 0);
    for s in sink.snapshots() {
        for g in &s.segments {
            predictions += g.predictions;
            latencies += g.latency.len();
            feedback += g.feedback();
        }
        for f in &s.features {
            if let FeatureStats::Numeric(n) = &f.stats {
                feature_count += n.count;
                feature_sum += n.mean * n.count as f64;
            }
        }
    }
    (predictions, latencies, feature_count, feature_sum, feedback)
}

#[test]
fn a_flush_racing_a_recorder_loses_and_repeats_nothing() {
    model(|| {
        let sink = MemorySink::new();
        let agent = agent(&sink);
        let h = agent.handle();
        let t = thread::spawn(move || {
            h.record(&Prediction::new("a", Duration::from_nanos(5), 0.5).features(&[1.0]));
            h.record(&Prediction::new("a", Duration::from_nanos(7), 0.25).features(&[3.0]));
        });
        agent.flush_now().unwrap();
        t.join().unwrap();
        agent.flush_now().unwrap();
        let (p, l, n, sum, _) = totals(&sink);
        assert_eq!((p, l, n), (2, 2, 2));
        assert_eq!(sum, 4.0);
        // Min and max travel by flush epoch, not by count: over the run they are exact.
        let mut merged = NumericSummary::default();
        for s in sink.snapshots() {
            for f in &s.features {
                if let FeatureStats::Numeric(n) = &f.stats {
                    merged.merge(n);
                }
            }
        }
        assert_eq!((merged.min, merged.max), (Some(1.0), Some(3.0)));
    });
}

#[test]
fn two_recorders_and_a_flush() {
    model(|| {
        let sink = MemorySink::new();
        let agent = agent(&sink);
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let h = agent.handle();
                thread::spawn(move || {
                    h.record(&Prediction::new("a", Duration::from_nanos(3), 0.5).features(&[i as f64]));
                    h.feedback("a", 0.9, i == 0);
                })
            })
            .collect();
        agent.flush_now().unwrap();
        for t in threads {
            t.join().unwrap();
        }
        agent.flush_now().unwrap();
        let (p, l, n, sum, fb) = totals(&sink);
        assert_eq!((p, l, n, fb), (2, 2, 2, 2));
        assert_eq!(sum, 1.0);
    });
}

#[test]
fn a_released_shard_is_taken_over_without_loss() {
    model(|| {
        let sink = MemorySink::new();
        let agent = agent(&sink);
        let h1 = agent.handle();
        let h2 = agent.handle();
        let first = thread::spawn(move || {
            h1.record(&Prediction::new("a", Duration::from_nanos(3), 0.5).features(&[2.0]));
        });
        let second = thread::spawn(move || {
            h2.record(&Prediction::new("a", Duration::from_nanos(3), 0.5).features(&[4.0]));
        });
        agent.flush_now().unwrap();
        first.join().unwrap();
        second.join().unwrap();
        // A third thread reuses one of the released shards.
        let h3 = agent.handle();
        thread::spawn(move || {
            h3.record(&Prediction::new("a", Duration::from_nanos(3), 0.5).features(&[6.0]))
        })
        .join()
        .unwrap();
        agent.flush_now().unwrap();
        let (p, _, n, sum, _) = totals(&sink);
        assert_eq!((p, n), (3, 3));
        assert_eq!(sum, 12.0);
        assert!(agent.stats().shards <= 2);
    });
}
