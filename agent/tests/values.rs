//! The numbers a snapshot holds stay exact whatever the scorer feeds the agent: NaN and
//! infinite metric values, a sentinel or an outlier beside small-spread values, values
//! recorded while a flush runs, many threads on exclusive or shared shards.

mod common;

use common::metric;
use modelwatch_agent::*;
use proptest::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn agent_with(features: Vec<Feature>, budget: usize) -> (Agent, MemorySink) {
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .segments(["a", "b", "c", "d"])
        .features(features)
        .clock(ManualClock::new(Timestamp::from_secs(1_000)))
        .background_flush(false)
        .memory_budget(budget)
        .build(sink.clone())
        .unwrap();
    (agent, sink)
}

fn numeric(s: &Snapshot, seg: &str) -> Option<NumericSummary> {
    s.features.iter().find(|f| &*f.segment == seg).and_then(|f| match &f.stats {
        FeatureStats::Numeric(n) => Some(n.clone()),
        _ => None,
    })
}

#[test]
fn a_nan_or_infinite_counter_increment_is_counted_and_never_applied() {
    let (agent, sink) = agent_with(vec![], DEFAULT_MEMORY_BUDGET);
    let h = agent.handle();
    let requests = h.counter("requests", &[]);
    let depth = h.gauge("queue_depth", &[]);
    requests.record(f64::NAN);
    for _ in 0..10 {
        requests.record(1.0);
    }
    requests.record(f64::INFINITY);
    depth.record(7.0);
    depth.record(f64::NEG_INFINITY);
    agent.flush_now().unwrap();
    requests.record(2.5);
    agent.flush_now().unwrap();
    let snapshots = sink.take();
    let counts: Vec<_> = metric(&snapshots, "requests");
    assert_eq!(counts, vec![MetricValue::Counter(10.0), MetricValue::Counter(2.5)]);
    assert_eq!(metric(&snapshots, "queue_depth"), vec![MetricValue::Gauge(7.0)]);
    assert_eq!(snapshots[0].overflow.metric_invalid, 3);
    assert_eq!(snapshots[1].overflow.metric_invalid, 0);
}

/// The oracle: two-pass moments.
fn exact(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (mean, values.iter().map(|x| (x - mean) * (x - mean)).sum())
}

/// Values with a mean of 50 and a population variance of exactly 100 (±10 alternating),
/// then shuffled deterministically by a stride.
fn spread(n: usize, centre: f64) -> Vec<f64> {
    (0..n).map(|i| centre + if (i * 7919) % 2 == 0 { 10.0 } else { -10.0 }).collect()
}

#[test]
fn a_sentinel_first_does_not_cost_the_next_interval_its_variance() {
    let (agent, sink) = agent_with(vec![Feature::numeric("x")], DEFAULT_MEMORY_BUDGET);
    let h = agent.handle();
    h.record(&Prediction::new("a", Duration::from_micros(1), 0.5).features(&[1e10]));
    agent.flush_now().unwrap();
    let values = spread(10_000, 50.0);
    for &x in &values {
        h.record(&Prediction::new("a", Duration::from_micros(1), 0.5).features(&[x]));
    }
    agent.flush_now().unwrap();
    let snapshots = sink.take();
    let n = numeric(&snapshots[1], "a").unwrap();
    let (mean, m2) = exact(&values);
    assert_eq!(n.count, 10_000);
    assert!((n.mean - mean).abs() <= 1e-9 * mean.abs(), "mean {} vs {mean}", n.mean);
    let var = n.variance().unwrap();
    let want = m2 / 9_999.0;
    assert!(((var - want) / want).abs() <= 1e-9, "variance {var} vs {want}");
}

#[test]
fn an_outlier_first_in_its_interval_leaves_the_moments_exact() {
    let (agent, sink) = agent_with(vec![Feature::numeric("x")], DEFAULT_MEMORY_BUDGET);
    let h = agent.handle();
    // A latitude-like feature: 52.52 ± 0.05, after one bogus 1e10 in the same interval.
    let mut values = vec![1e10];
    values.extend((0..20_000).map(|i| 52.52 + 0.05 * (((i * 37) % 101) as f64 / 50.0 - 1.0)));
    for &x in &values {
        h.record(&Prediction::new("a", Duration::from_micros(1), 0.5).features(&[x]));
    }
    agent.flush_now().unwrap();
    let n = numeric(&one(&sink), "a").unwrap();
    let (mean, m2) = exact(&values);
    // The tolerance, 1e-9 relative; the worst case is an outlier first, as here
    // (measured: 3.5e-10 for the mean, 6.2e-10 for m2).
    assert!(((n.mean - mean) / mean).abs() <= 1e-9, "mean {} vs {mean}", n.mean);
    assert!(((n.m2 - m2) / m2).abs() <= 1e-9, "m2 {} vs {m2}", n.m2);
    assert_eq!((n.min, n.max), (Some(values[1..].iter().copied().fold(f64::MAX, f64::min)), Some(1e10)));
}

#[test]
fn squared_deviations_past_f64_give_infinite_m2_not_zero() {
    let (agent, sink) = agent_with(vec![Feature::numeric("x")], DEFAULT_MEMORY_BUDGET);
    let h = agent.handle();
    for x in [1.0, 1e300, -1e300, 1.0] {
        h.record(&Prediction::new("a", Duration::from_micros(1), 0.5).features(&[x]));
    }
    agent.flush_now().unwrap();
    let n = numeric(&one(&sink), "a").unwrap();
    assert_eq!(n.count, 4);
    assert_eq!(n.m2, f64::INFINITY);
    assert_eq!((n.min, n.max), (Some(-1e300), Some(1e300)));
}

fn one(sink: &MemorySink) -> Arc<Snapshot> {
    let mut s = sink.take();
    assert_eq!(s.len(), 1, "expected exactly one snapshot");
    s.pop().unwrap()
}

/// Moments of the integers `a..=b`.
fn run_of(a: u64, b: u64) -> (u64, f64, f64) {
    let n = b - a + 1;
    let mean = (a + b) as f64 / 2.0;
    let nf = n as f64;
    (n, mean, nf * (nf * nf - 1.0) / 12.0)
}

/// Each thread records 1, 2, 3, ... into its own segment while the main thread flushes
/// over and over. A thread's values go to intervals in recording order, so every interval
/// must hold one unbroken run `a..=b` of them: its count, mean, m2, min and max are then
/// known exactly. A value whose moments straddled two intervals, or an extreme left over
/// from the interval before, breaks the run.
fn racing_flushes_keep_every_interval_exact(budget: usize) {
    const THREADS: usize = 4;
    let (agent, sink) = agent_with(vec![Feature::numeric("x")], budget);
    let stop = Arc::new(AtomicBool::new(false));
    let segments = ["a", "b", "c", "d"];
    // Every recorder has started before the flushes do, so they race on a loaded machine too.
    let started = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (h, stop, started) = (agent.handle(), stop.clone(), started.clone());
            std::thread::spawn(move || {
                let seg = h.segment(segments[t]);
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) || k < 20_000 {
                    k += 1;
                    h.record(&Prediction::new(seg, Duration::from_micros(1), 0.5).features(&[k as f64]));
                    h.log_metric("k", k as f64, &[("thread", segments[t])]);
                    if k == 1 {
                        started.wait();
                    }
                }
                k
            })
        })
        .collect();
    started.wait();
    let mut flushes = 0;
    while flushes < 200 {
        agent.flush_now().unwrap();
        flushes += 1;
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let totals: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    agent.flush_now().unwrap();
    let snapshots = sink.take();
    for (t, seg) in segments.iter().enumerate() {
        let mut next = 1u64;
        let runs = snapshots.iter().filter_map(|s| numeric(s, seg)).chain(
            snapshots
                .iter()
                .flat_map(|s| s.metrics.iter())
                .filter(|m| &*m.name == "k" && m.tags.first().is_some_and(|t| &*t.1 == *seg))
                .filter_map(|m| match &m.value {
                    MetricValue::Distribution(d) => Some(d.clone()),
                    _ => None,
                }),
        );
        // Feature summaries first, then the metric's: each one restarts the run at 1.
        let mut seen = 0;
        for n in runs {
            if n.count == 0 {
                continue;
            }
            let a = n.min.unwrap() as u64;
            if a == 1 {
                next = 1;
            }
            let (count, mean, m2) = run_of(next, next + n.count - 1);
            assert_eq!(a, next, "thread {t}: an interval starts at {a}, expected {next}");
            assert_eq!(n.max.unwrap() as u64, next + n.count - 1, "thread {t}: max of the run from {next}");
            assert_eq!(n.count, count);
            assert!((n.mean - mean).abs() <= 1e-9 * mean, "thread {t}: mean {} vs {mean}", n.mean);
            assert!((n.m2 - m2).abs() <= 1e-9 * m2.max(1.0), "thread {t}: m2 {} vs {m2}", n.m2);
            next += n.count;
            seen += n.count;
        }
        assert_eq!(seen, 2 * totals[t], "thread {t}: every value once, as a feature and as a metric");
    }
    assert!(snapshots.len() > 2, "the flushes raced the recording");
}

#[test]
fn racing_flushes_keep_every_interval_exact_on_exclusive_shards() {
    racing_flushes_keep_every_interval_exact(DEFAULT_MEMORY_BUDGET);
}

#[test]
fn racing_flushes_keep_every_interval_exact_on_the_shared_shard() {
    // Room for the shared shard only: every thread writes it with read-modify-writes.
    let probe = Agent::builder("m")
        .segments(["a", "b", "c", "d"])
        .features([Feature::numeric("x")])
        .background_flush(false)
        .build(NullSink)
        .unwrap();
    let shard = probe.stats().shard_bytes;
    racing_flushes_keep_every_interval_exact(2 * shard + 1);
}

#[test]
fn many_threads_past_the_budget_share_a_shard_and_lose_nothing() {
    const THREADS: usize = 16;
    const EACH: u64 = 5_000;
    let probe = Agent::builder("m")
        .features([Feature::numeric("x")])
        .background_flush(false)
        .build(NullSink)
        .unwrap();
    // An exclusive shard for one thread (exclusive shards take half the shards' share); the
    // rest share one.
    let budget = 2 * 4 * probe.stats().shard_bytes + 1;
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .features([Feature::numeric("x")])
        .background_flush(false)
        .memory_budget(budget)
        .build(sink.clone())
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let h = agent.handle();
            s.spawn(move || {
                for i in 0..EACH {
                    let x = (t as u64 * EACH + i) as f64;
                    h.record(&Prediction::new("other", Duration::from_nanos(100 + i), 0.5).features(&[x]));
                    h.counter("calls", &[]).record(1.0);
                }
            });
        }
        for _ in 0..20 {
            agent.flush_now().unwrap();
        }
    });
    assert!(agent.stats().memory_reserved <= budget / 2 + budget / 4, "{:?}", agent.stats());
    agent.flush_now().unwrap();
    let snapshots = sink.take();
    let mut merged = NumericSummary::default();
    let (mut predictions, mut latencies, mut calls) = (0, 0, 0.0);
    for s in &snapshots {
        predictions += s.predictions();
        latencies += s.segments.iter().map(|g| g.latency.len()).sum::<u64>();
        if let Some(n) = numeric(s, "other") {
            merged.merge(&n);
        }
        for v in metric(std::slice::from_ref(s), "calls") {
            if let MetricValue::Counter(c) = v {
                calls += c;
            }
        }
    }
    let n = THREADS as u64 * EACH;
    assert_eq!((predictions, latencies, merged.count, calls), (n, n, n, n as f64));
    let all: Vec<f64> = (0..n).map(|x| x as f64).collect();
    let (mean, m2) = exact(&all);
    assert!((merged.mean - mean).abs() <= 1e-9 * mean);
    assert!(((merged.m2 - m2) / m2).abs() <= 1e-9);
    assert_eq!((merged.min, merged.max), (Some(0.0), Some((n - 1) as f64)));
    assert_eq!(merged.sketch.count(), n);
}

#[test]
fn shards_of_exited_threads_are_freed_after_their_last_flush() {
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .features([Feature::numeric("x")])
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    let idle = agent.stats().memory_reserved;
    for round in 0..3 {
        // `join` (not a scope) waits for the thread to exit, thread-local destructors and
        // so the release of its shard included.
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let h = agent.handle();
                std::thread::spawn(move || {
                    h.record(&Prediction::new("other", Duration::from_micros(1), 0.5).features(&[t as f64]));
                    h.distribution("d", &[]).record(t as f64);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(agent.stats().shards >= 1, "round {round}");
        agent.flush_now().unwrap();
        let stats = agent.stats();
        assert_eq!(stats.shards, 0, "round {round}: {stats:?}");
        assert_eq!(stats.memory_reserved, idle, "round {round}: every byte returned");
    }
    let snapshots = sink.take();
    assert_eq!(snapshots.iter().map(|s| s.predictions()).sum::<u64>(), 24);
}

#[test]
fn a_tiny_metric_budget_drops_values_only_with_a_count() {
    // Room for one shard; a quarter for metric cells: a few distributions' cells (about
    // 5 KiB each with a sketch chunk and their mirror), not fifty.
    let probe = Agent::builder("m").background_flush(false).build(NullSink).unwrap();
    let budget = 2 * probe.stats().shard_bytes + 1;
    let sink = MemorySink::new();
    let agent =
        Agent::builder("m").background_flush(false).memory_budget(budget).build(sink.clone()).unwrap();
    let h = agent.handle();
    let logged = 50;
    for i in 0..logged {
        h.log_metric(&format!("d{i}"), 1.0, &[]);
    }
    agent.flush_now().unwrap();
    let s = one(&sink);
    let delivered: u64 = s
        .metrics
        .iter()
        .map(|m| match &m.value {
            MetricValue::Distribution(d) => d.count,
            _ => 0,
        })
        .sum();
    assert!(delivered > 0 && s.overflow.metric_over_budget > 0, "{delivered} delivered");
    assert_eq!(delivered + s.overflow.metric_over_budget, logged);
    assert!(agent.stats().memory_reserved <= budget);
}

#[test]
fn a_budget_too_small_for_one_shard_is_refused_with_the_sizes() {
    let err = Agent::builder("m")
        .segments(["a"; 1])
        .features((0..32).map(|i| Feature::numeric(format!("f{i}"))))
        .memory_budget(64 << 10)
        .build(NullSink)
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(matches!(err, BuildError::Budget { .. }), "{text}");
    assert!(text.contains("memory_budget") && text.contains("bytes"), "{text}");
}

#[test]
fn kind_conflicts_and_overflow_series_are_counted_exactly_across_threads() {
    let sink = MemorySink::new();
    let agent = Agent::builder("m").max_series(2).background_flush(false).build(sink.clone()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let h = agent.handle();
            s.spawn(move || {
                for i in 0..1_000 {
                    h.log_metric("a", 1.0, &[]);
                    h.counter("a", &[]).record(1.0); // kind conflict: "a" is a distribution
                    h.log_metric("b", 1.0, &[("t", "x")]);
                    h.log_metric(&format!("c{}", (i + t) % 7), 1.0, &[]); // past the limit
                }
            });
        }
    });
    agent.flush_now().unwrap();
    let s = one(&sink);
    assert_eq!(s.overflow.kind_conflicts, 4_000);
    assert_eq!(s.overflow.metric_series, 4_000);
    let overflow = s.metrics.iter().find(|m| &*m.name == OVERFLOW_SERIES).unwrap();
    assert!(matches!(&overflow.value, MetricValue::Distribution(d) if d.count == 8_000));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No builder input panics: it builds, or it says what is wrong.
    #[test]
    fn no_builder_input_panics(
        segments in proptest::collection::vec("[a-z]{0,3}", 0..6),
        features in proptest::collection::vec(("[a-z]{0,3}", any::<bool>()), 0..6),
        max_series in prop_oneof![Just(0usize), Just(1), 0usize..5_000, Just(usize::MAX), Just(usize::MAX / 2)],
        budget in prop_oneof![Just(0usize), Just(1), 0usize..(1 << 30), Just(usize::MAX)],
        interval_ms in prop_oneof![Just(0u64), 1u64..100_000, Just(u64::MAX)],
    ) {
        let features: Vec<Feature> = features
            .into_iter()
            .map(|(n, numeric)| if numeric { Feature::numeric(n) } else { Feature::categorical(n, ["x", "y"]) })
            .collect();
        let built = Agent::builder("m")
            .segments(&segments)
            .features(features)
            .max_series(max_series)
            .memory_budget(budget)
            .interval(Duration::from_millis(interval_ms))
            .clock(ManualClock::new(Timestamp::from_secs(1)))
            .background_flush(false)
            .build(NullSink);
        match built {
            Ok(agent) => {
                let h = agent.handle();
                h.record(&Prediction::new("x", Duration::from_micros(1), 0.5).features(&[1.0, f64::NAN, 1e300]));
                h.log_metric("m", 1.0, &[]);
                agent.flush_now().unwrap();
                prop_assert!(agent.stats().memory_reserved <= budget);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// No summary, however built, panics in its readers or its merge.
    #[test]
    fn no_summary_panics(
        count in any::<u64>(),
        min in proptest::option::of(any::<f64>()),
        max in proptest::option::of(any::<f64>()),
        mean in any::<f64>(),
        m2 in any::<f64>(),
        values in proptest::collection::vec(any::<f64>(), 0..20),
        q in any::<f64>(),
    ) {
        let mut s = NumericSummary { count, min, max, mean, m2, ..NumericSummary::of(&values) };
        let _ = (s.quantile(q), s.variance(), s.std_dev());
        let other = NumericSummary::of(&values);
        s.merge(&other);
        let _ = s.quantile(q);
    }
}

#[test]
fn values_whose_sketch_region_finds_no_memory_are_counted_and_keep_their_moments() {
    let probe = Agent::builder("m")
        .features([Feature::numeric("x")])
        .background_flush(false)
        .build(NullSink)
        .unwrap();
    // The shared shard's own bytes only: no room for any sketch region.
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .features([Feature::numeric("x")])
        .background_flush(false)
        .memory_budget(2 * probe.stats().shard_bytes + 1)
        .build(sink.clone())
        .unwrap();
    let h = agent.handle();
    for i in 0..1_000 {
        h.record(&Prediction::new("other", Duration::from_micros(1), 0.5).features(&[i as f64]));
    }
    agent.flush_now().unwrap();
    let s = one(&sink);
    let n = numeric(&s, "other").unwrap();
    assert_eq!((n.count, n.min, n.max), (1_000, Some(0.0), Some(999.0)));
    assert_eq!(n.mean, 499.5);
    assert_eq!(n.sketch.count(), 0);
    assert_eq!(s.overflow.sketch_over_budget, 1_000);
}
