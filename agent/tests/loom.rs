//! Model check of the shard/flush protocol with loom: every interleaving (up to the
//! preemption bound) of recording threads and a concurrent flush must deliver each
//! recorded value exactly once, and each interval's moments and extremes must belong to the
//! values it counts. Covered: exclusive and shared shards, a shard handed over during a
//! flush, the local recorder, counters, gauges and distributions.
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
    agent_with_budget(sink, DEFAULT_MEMORY_BUDGET)
}

fn agent_with_budget(sink: &MemorySink, budget: usize) -> Agent {
    Agent::builder("m")
        .segments(["a"])
        .error_kinds(["e"])
        .features([Feature::numeric("x")])
        .max_series(3)
        .memory_budget(budget)
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

/// The feature summaries of each snapshot, in order.
fn intervals(sink: &MemorySink) -> Vec<NumericSummary> {
    sink.snapshots()
        .iter()
        .filter_map(|s| {
            s.features.iter().find_map(|f| match &f.stats {
                FeatureStats::Numeric(n) if n.count > 0 => Some(n.clone()),
                _ => None,
            })
        })
        .collect()
}

#[test]
fn each_interval_holds_whole_values_with_their_own_extremes() {
    // One thread records 1 then 2 while a flush runs: the intervals must split the two
    // values as a run, each interval's count, mean, min and max belonging to the same
    // values (no value's count in one interval and its moments or extremes in another).
    model(|| {
        let sink = MemorySink::new();
        let agent = agent(&sink);
        let h = agent.handle();
        let t = thread::spawn(move || {
            h.record(&Prediction::new("a", Duration::from_nanos(5), 0.5).features(&[1.0]));
            h.record(&Prediction::new("a", Duration::from_nanos(5), 0.5).features(&[2.0]));
        });
        agent.flush_now().unwrap();
        t.join().unwrap();
        agent.flush_now().unwrap();
        let runs: Vec<(u64, f64, Option<f64>, Option<f64>)> =
            intervals(&sink).iter().map(|n| (n.count, n.mean, n.min, n.max)).collect();
        let whole = vec![(2, 1.5, Some(1.0), Some(2.0))];
        let split = vec![(1, 1.0, Some(1.0), Some(1.0)), (1, 2.0, Some(2.0), Some(2.0))];
        assert!(runs == whole || runs == split, "{runs:?}");
    });
}

#[test]
fn a_shard_handed_over_while_a_flush_runs_loses_and_repeats_nothing() {
    // The first thread exits (its shard is released) and the second claims it, both while
    // the flusher runs: no join before the second thread starts.
    model(|| {
        let sink = MemorySink::new();
        let agent = agent(&sink);
        let (h1, h2) = (agent.handle(), agent.handle());
        let first = thread::spawn(move || {
            h1.record(&Prediction::new("a", Duration::from_nanos(3), 0.5).features(&[2.0]));
        });
        let second = thread::spawn(move || {
            h2.record(&Prediction::new("a", Duration::from_nanos(3), 0.5).features(&[4.0]));
        });
        agent.flush_now().unwrap();
        first.join().unwrap();
        second.join().unwrap();
        agent.flush_now().unwrap();
        let (p, l, n, sum, _) = totals(&sink);
        assert_eq!((p, l, n), (2, 2, 2));
        assert_eq!(sum, 6.0);
    });
}

#[test]
fn metrics_and_gauges_racing_a_flush_are_exact() {
    model(|| {
        let sink = MemorySink::new();
        let agent = agent(&sink);
        let h = agent.handle();
        let t = thread::spawn(move || {
            h.counter("c", &[]).record(1.0);
            h.counter("c", &[]).record(f64::NAN);
            h.log_metric("d", 3.0, &[]);
        });
        let g = agent.handle().gauge("g", &[]);
        g.record(7.0);
        agent.flush_now().unwrap();
        t.join().unwrap();
        agent.flush_now().unwrap();
        let (mut counter, mut dist, mut gauge, mut invalid) = (0.0, 0, None, 0);
        for s in sink.snapshots() {
            invalid += s.overflow.metric_invalid;
            for m in &s.metrics {
                match (&*m.name, &m.value) {
                    ("c", MetricValue::Counter(v)) => counter += v,
                    ("d", MetricValue::Distribution(d)) => {
                        assert_eq!((d.count, d.mean, d.min, d.max), (1, 3.0, Some(3.0), Some(3.0)));
                        dist += d.count;
                    }
                    ("g", MetricValue::Gauge(v)) => gauge = Some(*v),
                    other => panic!("unexpected metric {other:?}"),
                }
            }
        }
        assert_eq!((counter, dist, gauge, invalid), (1.0, 1, Some(7.0), 1));
    });
}

#[test]
fn a_local_recorder_racing_a_flush_loses_nothing() {
    model(|| {
        let sink = MemorySink::new();
        let agent = agent(&sink);
        let h = agent.handle();
        let t = thread::spawn(move || {
            let local = h.local();
            local.record(&Prediction::new("a", Duration::from_nanos(5), 0.5).features(&[1.0]));
            local.feedback("a", 0.5, true);
        });
        agent.flush_now().unwrap();
        t.join().unwrap();
        agent.flush_now().unwrap();
        let (p, l, n, sum, fb) = totals(&sink);
        assert_eq!((p, l, n, fb), (1, 1, 1, 1));
        assert_eq!(sum, 1.0);
    });
}

#[test]
fn two_recorders_on_the_shared_shard_and_a_flush() {
    // A budget with room for the shared shard only: both threads write it with
    // read-modify-writes, racing each other and the flush.
    model(move || {
        let sink = MemorySink::new();
        let shard = agent(&sink).stats().shard_bytes;
        let agent = agent_with_budget(&sink, 2 * shard + 1);
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let h = agent.handle();
                thread::spawn(move || {
                    h.record(&Prediction::new("a", Duration::from_nanos(3), 0.5).features(&[1.0 + i as f64]));
                })
            })
            .collect();
        agent.flush_now().unwrap();
        for t in threads {
            t.join().unwrap();
        }
        agent.flush_now().unwrap();
        let (p, l, n, sum, _) = totals(&sink);
        assert_eq!((p, l, n), (2, 2, 2));
        assert_eq!(sum, 3.0);
        let mut merged = NumericSummary::default();
        for n in intervals(&sink) {
            assert!(n.min <= n.max && n.count <= 2);
            merged.merge(&n);
        }
        assert_eq!((merged.min, merged.max), (Some(1.0), Some(2.0)));
    });
}
