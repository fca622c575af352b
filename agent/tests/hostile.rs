//! The harsh user's inputs, from the review of the agent's rewrite: counters fed values near
//! f64's range, merges of extreme summaries, duplicate tags after the registry froze, more
//! live series than a thread's cache held, a sink that never recovers, a million-series
//! capacity, NUL in a model name, and the races that held (two flushers, an exited thread's
//! gauge, a dropped agent, shared-shard allocation races).

mod common;

use common::metric;
use modelwatch_agent::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn manual(features: Vec<Feature>) -> (Agent, MemorySink) {
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .features(features)
        .clock(ManualClock::new(Timestamp::from_secs(1_000)))
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    (agent, sink)
}

fn numeric(s: &Snapshot) -> NumericSummary {
    s.features
        .iter()
        .find_map(|f| match &f.stats {
            FeatureStats::Numeric(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_counter_overflowing_one_interval_does_not_poison_the_next() {
    let (agent, sink) = manual(vec![]);
    let c = agent.handle().counter("bytes", &[]);
    c.record(1e308);
    c.record(1e308); // both finite: accepted
    agent.flush_now().unwrap();
    c.record(1.0);
    agent.flush_now().unwrap();
    c.record(1.0);
    agent.flush_now().unwrap();
    let v = metric(&sink.take(), "bytes");
    println!("counter values: {v:?}");
    for x in &v[1..] {
        assert_eq!(*x, MetricValue::Counter(1.0), "later intervals poisoned: {v:?}");
    }
}

#[test]
fn a_counter_past_2_pow_53_still_counts_increments_of_one() {
    let (agent, sink) = manual(vec![]);
    let c = agent.handle().counter("ns", &[]);
    c.record(1e16);
    agent.flush_now().unwrap();
    for _ in 0..3 {
        c.record(1.0);
    }
    agent.flush_now().unwrap();
    let v = metric(&sink.take(), "ns");
    println!("counter values: {v:?}");
    assert_eq!(v[1], MetricValue::Counter(3.0));
}

#[test]
fn merging_1e200s_into_an_empty_summary_keeps_m2_finite() {
    let mut acc = NumericSummary::default();
    acc.merge(&NumericSummary::of(&[1e200, 1e200]));
    println!("merged: mean {} m2 {}", acc.mean, acc.m2);
    assert_eq!(acc.m2, 0.0);
}

#[test]
fn merging_1e308s_into_an_empty_summary_keeps_the_mean() {
    let mut acc = NumericSummary::default();
    acc.merge(&NumericSummary::of(&[1e308, 1e308]));
    println!("merged: mean {} m2 {}", acc.mean, acc.m2);
    assert_eq!(acc.mean, 1e308);
}

#[test]
fn a_shard_that_saw_only_missing_values_does_not_make_m2_nan() {
    let (agent, sink) = manual(vec![Feature::numeric("x")]);
    let h = agent.handle();
    // Main thread's shard is created first: it sees only a missing value.
    h.record(&Prediction::new("other", Duration::from_micros(1), 0.5).features(&[f64::NAN]));
    let h2 = agent.handle();
    std::thread::spawn(move || {
        for _ in 0..2 {
            h2.record(&Prediction::new("other", Duration::from_micros(1), 0.5).features(&[1e200]));
        }
    })
    .join()
    .unwrap();
    agent.flush_now().unwrap();
    let s = sink.take().pop().unwrap();
    let n = numeric(&s);
    println!("count {} missing {} mean {} m2 {}", n.count, n.missing, n.mean, n.m2);
    assert_eq!(n.m2, 0.0);
}

#[test]
fn sketch_counts_saturate_instead_of_panicking() {
    let r = std::panic::catch_unwind(|| {
        let mut s = NumericSummary::of(&[0.0]);
        s.sketch = Sketch::from_buckets([(0, u64::MAX)]);
        s.merge(&NumericSummary::of(&[0.0]));
    });
    assert!(r.is_ok(), "merge panicked");
}

#[test]
fn duplicate_tags_find_their_series_after_the_registry_froze() {
    let sink = MemorySink::new();
    let agent = Agent::builder("m").max_series(1).background_flush(false).build(sink.clone()).unwrap();
    let h = agent.handle();
    h.log_metric("s", 1.0, &[("a", "1"), ("a", "1")]); // registers s{a=1}; registry frozen
    let h2 = agent.handle();
    std::thread::spawn(move || h2.log_metric("s", 2.0, &[("a", "1"), ("a", "1")])).join().unwrap();
    agent.flush_now().unwrap();
    let s = sink.take().pop().unwrap();
    println!("overflow: {:?}", s.overflow);
    assert_eq!(s.overflow.metric_series, 0, "same series, other thread, went to __overflow__");
}

#[test]
fn seventy_thousand_live_series_neither_lock_nor_allocate_after_warm_up() {
    let agent = Agent::builder("m").max_series(100_000).background_flush(false).build(NullSink).unwrap();
    let h = agent.handle();
    let names: Vec<String> = (0..70_000).map(|i| format!("s{i}")).collect();
    let round = |h: &Handle| {
        for n in &names {
            h.log_metric(n, 1.0, &[]);
        }
    };
    round(&h);
    round(&h);
    let info = allocation_counter::measure(|| round(&h));
    println!("third round over 70,000 live series: {info:?}");
    assert_eq!(info.count_total, 0);
}

struct Failing;
impl Sink for Failing {
    fn write(&self, _: &Arc<Snapshot>) -> Result<(), SinkError> {
        Err(SinkError { sink: "failing".into(), seq: 0, message: "down".into() })
    }
}

#[test]
fn a_sink_that_never_recovers_holds_no_more_than_the_budget() {
    let budget = 4 << 20;
    let segments: Vec<String> = (0..7).map(|i| format!("s{i}")).collect();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
    let mut held = 0;
    let info = allocation_counter::measure(|| {
        let agent = Agent::builder("m")
            .segments(&segments)
            .memory_budget(budget)
            .clock(clock.clone())
            .background_flush(false)
            .build(Failing)
            .unwrap();
        let h = agent.handle();
        for i in 0..1_024u64 {
            for s in &segments {
                h.record_latency(s.as_str(), Duration::from_nanos(1 + i));
            }
            let _ = agent.flush_now();
        }
        held = agent.stats().pending;
        std::mem::forget(agent); // keep the queue to measure it
    });
    println!("pending {held}, bytes live {} MiB, budget {} MiB", info.bytes_current >> 20, budget >> 20);
    assert!(info.bytes_current as usize <= budget, "bytes live {}", info.bytes_current);
}

#[test]
fn an_idle_flush_allocates_little_whatever_the_series_capacity() {
    let agent = Agent::builder("m")
        .max_series(1_000_000)
        .memory_budget(1 << 30)
        .background_flush(false)
        .build(NullSink)
        .unwrap();
    agent.handle().counter("c", &[]).record(1.0);
    agent.flush_now().unwrap();
    let info = allocation_counter::measure(|| agent.flush_now().unwrap()); // nothing changed
    println!("an idle flush: peak {} MiB, {} allocations", info.bytes_max >> 20, info.count_total);
    assert!(info.bytes_max < 1 << 20);
}

#[test]
fn a_gauge_set_only_on_an_exited_thread_is_reported_once() {
    let (agent, sink) = manual(vec![]);
    let h = agent.handle();
    std::thread::spawn(move || h.gauge("g", &[]).record(5.0)).join().unwrap();
    agent.flush_now().unwrap();
    agent.handle().counter("tick", &[]).record(1.0);
    agent.flush_now().unwrap();
    let all = sink.take();
    assert_eq!(metric(&all, "g"), vec![MetricValue::Gauge(5.0)]);
    assert_eq!(agent.stats().shards, 1);
}

#[test]
fn two_threads_flushing_at_once_keep_every_interval_exact() {
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .segments(["a", "b"])
        .features([Feature::numeric("x")])
        .clock(ManualClock::new(Timestamp::from_secs(1_000)))
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    let agent = Arc::new(agent);
    let stop = Arc::new(AtomicBool::new(false));
    let rec: Vec<_> = (0..2)
        .map(|t| {
            let (h, stop) = (agent.handle(), stop.clone());
            std::thread::spawn(move || {
                let seg = if t == 0 { "a" } else { "b" };
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) || k < 50_000 {
                    k += 1;
                    h.record(&Prediction::new(seg, Duration::from_micros(1), 0.5).features(&[k as f64]));
                }
                k
            })
        })
        .collect();
    let flushers: Vec<_> = (0..2)
        .map(|_| {
            let a = agent.clone();
            std::thread::spawn(move || {
                for _ in 0..300 {
                    a.flush_now().unwrap();
                }
            })
        })
        .collect();
    flushers.into_iter().for_each(|f| f.join().unwrap());
    stop.store(true, Ordering::Relaxed);
    let totals: Vec<u64> = rec.into_iter().map(|t| t.join().unwrap()).collect();
    agent.flush_now().unwrap();
    let total: u64 = totals.iter().sum();
    let snaps = sink.take();
    let mut seen = 0;
    for s in &snaps {
        for f in &s.features {
            if let FeatureStats::Numeric(n) = &f.stats {
                if n.count == 0 {
                    continue;
                }
                let (a, b) = (n.min.unwrap(), n.max.unwrap());
                assert_eq!(b - a + 1.0, n.count as f64, "a run with a hole: {n:?}");
                let nf = n.count as f64;
                assert!((n.mean - (a + b) / 2.0).abs() <= 1e-9 * b);
                let m2 = nf * (nf * nf - 1.0) / 12.0;
                assert!((n.m2 - m2).abs() <= 1e-9 * m2.max(1.0));
                seen += n.count;
            }
        }
    }
    assert_eq!(seen, total);
}

#[test]
fn a_thread_records_into_a_new_agent_after_the_old_one_dropped() {
    let (a1, _s1) = manual(vec![Feature::numeric("x")]);
    let h1 = a1.handle();
    let (tx, rx) = std::sync::mpsc::channel::<Handle>();
    let t = std::thread::spawn(move || {
        h1.record(&Prediction::new("other", Duration::from_micros(1), 0.5).features(&[1.0]));
        drop(h1);
        let h2 = rx.recv().unwrap();
        for _ in 0..10 {
            h2.record(&Prediction::new("other", Duration::from_micros(1), 0.5).features(&[2.0]));
        }
    });
    drop(a1);
    let (a2, s2) = manual(vec![Feature::numeric("x")]);
    tx.send(a2.handle()).unwrap();
    t.join().unwrap();
    a2.flush_now().unwrap();
    assert_eq!(s2.take().iter().map(|s| s.predictions()).sum::<u64>(), 10);
}

#[test]
fn a_shard_reserves_what_it_allocates() {
    let series = 200_000;
    let probe = Agent::builder("m")
        .max_series(series)
        .memory_budget(1 << 30)
        .background_flush(false)
        .build(NullSink)
        .unwrap();
    let sb = probe.stats().shard_bytes;
    drop(probe);
    // Shards' share = 2 shards + 2 bytes: the shared shard (reserved at build) is the only one.
    let budget = 4 * sb + 4;
    let mut reserved = 0;
    let info = allocation_counter::measure(|| {
        let agent = Agent::builder("m")
            .max_series(series)
            .memory_budget(budget)
            .background_flush(false)
            .build(NullSink)
            .unwrap();
        agent.handle().counter("c", &[]).record(1.0);
        agent.flush_now().unwrap();
        reserved = agent.stats().memory_reserved;
        assert_eq!(agent.stats().shards, 1);
        std::mem::forget(agent);
    });
    println!(
        "shard_bytes {sb}, reserved {reserved}, live {} (+{:.0}%)",
        info.bytes_current,
        100.0 * (info.bytes_current as f64 / reserved as f64 - 1.0)
    );
    assert!(info.bytes_current as usize <= reserved);
}

#[test]
fn nan_on_a_diverted_counter_is_counted_invalid() {
    let sink = MemorySink::new();
    let agent = Agent::builder("m").max_series(1).background_flush(false).build(sink.clone()).unwrap();
    let h = agent.handle();
    h.log_metric("d", 1.0, &[]); // fills the registry
    h.counter("d", &[]).record(f64::NAN); // kind conflict
    h.counter("x", &[]).record(f64::INFINITY); // past the limit
    agent.flush_now().unwrap();
    let s = sink.take().pop().unwrap();
    let o = s.metrics.iter().find(|m| &*m.name == OVERFLOW_SERIES).map(|m| m.value.clone());
    println!("overflow {:?}\n__overflow__ {o:?}", s.overflow);
    assert_eq!(s.overflow.metric_invalid, 2);
}

#[test]
fn a_nul_in_the_model_name_is_no_panic() {
    let r = std::panic::catch_unwind(|| Agent::builder("a\0b").build(NullSink).map(|_| ()));
    println!("{:?}", r.as_ref().map(|r| r.as_ref().map_err(|e| e.to_string())));
    assert!(r.is_ok(), "build panicked");
}

#[test]
fn shared_shard_allocation_races_leak_no_budget() {
    let probe = Agent::builder("m")
        .features([Feature::numeric("x")])
        .background_flush(false)
        .build(NullSink)
        .unwrap();
    let budget = 2 * (probe.stats().shard_bytes + 100_000); // shared shard only, room for regions
    for _ in 0..200 {
        let agent = Agent::builder("m")
            .features([Feature::numeric("x")])
            .memory_budget(budget)
            .background_flush(false)
            .build(NullSink)
            .unwrap();
        let idle = agent.stats().memory_reserved;
        let go = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (h, go) = (agent.handle(), &go);
                s.spawn(move || {
                    go.wait();
                    for k in -24..40 {
                        for sign in [1.0, -1.0] {
                            let x = sign * 2f64.powi(k) * 1.5;
                            h.record(&Prediction::new("other", Duration::from_micros(1), 0.5).features(&[x]));
                            h.log_metric("d", x, &[]);
                        }
                    }
                });
            }
        });
        let st = agent.stats();
        assert_eq!(st.shards, 1);
        // The 8 sketch regions of 512 cells that ±1.5 × 2^k for k in -24..40 fall in, with
        // their mirror (shards' share), and the distribution's whole block of 4,115 cells,
        // with its mirror (metrics' share).
        let extra = st.memory_reserved - idle;
        assert_eq!(extra, 8 * 8192 + 4115 * 16, "{extra}");
    }
}

#[test]
fn a_large_refused_reservation_does_not_refuse_a_small_one() {
    // The metrics' quarter holds one distribution's cells (65,840 bytes) and a little more:
    // the second distribution is refused, a counter's 240 bytes are not.
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .max_series(3)
        .memory_budget(280_000)
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    let h = agent.handle();
    h.log_metric("d1", 1.0, &[]);
    h.log_metric("d2", 1.0, &[]);
    h.counter("c", &[]).record(5.0);
    agent.flush_now().unwrap();
    let s = sink.take().pop().unwrap();
    assert_eq!(metric(std::slice::from_ref(&s), "c"), vec![MetricValue::Counter(5.0)], "{:?}", s.overflow);
    assert_eq!(s.overflow.metric_over_budget, 1, "d2 only");
}
