//! The engine against what was recorded: counts, rates and quantiles of merged histograms.

use modelwatch_agent::layout::new_latency_histogram;
use modelwatch_agent::{Agent, Feature, ManualClock, Prediction, Timestamp};
use modelwatch_query::{Limits, QueryError, Range, parse, run};
use modelwatch_store::{Store, StoreConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_764_115_200_000;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    /// Latencies recorded per (variant, segment, minute).
    latencies: HashMap<(String, String, i64), Vec<u64>>,
}

/// Two variants (two "instances" too), three segments, 2 hours of 10 s intervals.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
    let mut latencies: HashMap<(String, String, i64), Vec<u64>> = HashMap::new();
    let agents: Vec<(String, Agent)> = ["control", "canary"]
        .iter()
        .map(|v| {
            let a = Agent::builder("pii")
                .variant(v)
                .instance(&format!("host-{v}"))
                .segments(["email", "phone", "ssn"])
                .features([Feature::numeric("len")])
                .clock(clock.clone())
                .background_flush(false)
                .build(store.clone())
                .unwrap();
            (v.to_string(), a)
        })
        .collect();
    for i in 0..720i64 {
        let t = T0 + i * 10_000;
        for (v, a) in &agents {
            for (k, seg) in ["email", "phone", "ssn"].iter().enumerate() {
                for j in 0..(1 + (i as usize + k) % 4) {
                    let lat = 100_000 + ((i as u64 * 7919 + j as u64 * 104_729 + k as u64 * 31) % 2_000_000);
                    a.handle()
                        .record(&Prediction::new(*seg, Duration::from_nanos(lat), 0.5).features(&[j as f64]));
                    latencies.entry((v.clone(), seg.to_string(), t - t % 60_000)).or_default().push(lat);
                }
            }
        }
        clock.set(Timestamp::from_millis((t + 10_000) as u64));
        for (_, a) in &agents {
            a.flush_due().unwrap();
        }
    }
    drop(agents);
    store.flush().unwrap();
    Fixture { _dir: dir, store, latencies }
}

fn q(f: &Fixture, text: &str, from: i64, to: i64, step: i64) -> Vec<modelwatch_query::Series> {
    run(&f.store, &parse(text).unwrap(), Range { from_ms: from, to_ms: to, step_ms: step }, Limits::default())
        .unwrap()
}

#[test]
fn quantiles_are_those_of_the_merged_histograms_and_counts_are_exact() {
    let f = fixture();
    for step in [60_000i64, 600_000] {
        let series = q(&f, r#"p95(latency{model="pii"}) by (segment)"#, T0, T0 + 7_200_000, step);
        let counts = q(&f, r#"count(latency{model="pii"}) by (segment)"#, T0, T0 + 7_200_000, step);
        assert_eq!(series.len(), 3);
        for (s, c) in series.iter().zip(&counts) {
            let seg = &s.tags["segment"];
            for (&(w, p95), &(_, n)) in s.points.iter().zip(&c.points) {
                let mut h = new_latency_histogram();
                let mut expected = 0;
                for ((_, sg, minute), v) in &f.latencies {
                    if sg == seg && *minute >= w && *minute < w + step {
                        v.iter().for_each(|&x| h.record(x).unwrap());
                        expected += v.len();
                    }
                }
                assert_eq!(n as usize, expected, "count of {seg} at {w} (step {step})");
                assert_eq!(p95, (h.value_at_quantile(0.95)) as f64, "p95 of {seg} at {w} (step {step})");
            }
        }
    }
}

#[test]
fn rates_grouping_and_filters() {
    let f = fixture();
    let total: usize = f.latencies.values().map(Vec::len).sum();
    let all = q(&f, "count(latency)", T0, T0 + 7_200_000, 7_200_000);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].points[0].1 as usize, total, "merged across variants and instances");
    let rate = q(&f, "rate(predictions) by (variant)", T0, T0 + 7_200_000, 3_600_000);
    assert_eq!(rate.len(), 2);
    let canary: f64 = rate
        .iter()
        .find(|s| s.tags["variant"] == "canary")
        .unwrap()
        .points
        .iter()
        .map(|p| p.1 * 3600.0)
        .sum();
    let expected: usize = f.latencies.iter().filter(|(k, _)| k.0 == "canary").map(|(_, v)| v.len()).sum();
    assert!((canary - expected as f64).abs() < 1e-6);
    let not_ssn = q(&f, r#"count(latency{segment!="ssn"}) by (segment)"#, T0, T0 + 7_200_000, 7_200_000);
    assert_eq!(not_ssn.iter().map(|s| s.tags["segment"].as_str()).collect::<Vec<_>>(), ["email", "phone"]);
    let re = q(&f, r#"count(latency{segment=~"e.*|s.*"}) by (segment)"#, T0, T0 + 7_200_000, 7_200_000);
    assert_eq!(re.iter().map(|s| s.tags["segment"].as_str()).collect::<Vec<_>>(), ["email", "ssn"]);
    let nre = q(&f, r#"count(latency{variant!~"can.*"}) by (instance)"#, T0, T0 + 7_200_000, 7_200_000);
    assert_eq!(nre.len(), 1);
    assert_eq!(nre[0].tags["instance"], "host-control");
    let mean = q(&f, r#"mean(feature{feature="len"})"#, T0, T0 + 7_200_000, 7_200_000);
    assert!(mean[0].points[0].1 > 0.0 && mean[0].points[0].1 < 3.0);
    let b = q(&f, r#"buckets(confidence{segment="email"})"#, T0, T0 + 600_000, 600_000);
    assert_eq!(b[0].buckets[0].iter().map(|x| x.count).sum::<u64>() as f64, b[0].points[0].1);
}

#[test]
fn roll_ups_answer_like_raw_rows() {
    let f = fixture();
    let raw_p99 = q(&f, "p99(latency) by (variant)", T0, T0 + 7_200_000, 3_600_000);
    f.store.maintain(T0).unwrap();
    let rolled = q(&f, "p99(latency) by (variant)", T0, T0 + 7_200_000, 3_600_000);
    assert_eq!(raw_p99, rolled, "the 1h roll-ups give the same answer as the raw rows");
    let counts = q(&f, "count(latency)", T0, T0 + 7_200_000, 60_000);
    assert_eq!(counts[0].points.len(), 120);
}

#[test]
fn quantiles_of_counters_are_refused_with_a_clear_error() {
    let f = fixture();
    let e = run(
        &f.store,
        &parse("p95(predictions)").unwrap(),
        Range { from_ms: T0, to_ms: T0 + 60_000, step_ms: 60_000 },
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, QueryError::NotADistribution { .. }), "{e}");
    assert!(e.to_string().contains("predictions is a counter"), "{e}");
    let e = run(
        &f.store,
        &parse("count(latency)").unwrap(),
        Range { from_ms: T0, to_ms: T0 + 86_400_000 * 30, step_ms: 1 },
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, QueryError::TooLarge(_)), "{e}");
}

/// A late row for an hour already rolled up (a label for last week's predictions) counts
/// at once in the roll-up's windows, and once after the next maintenance.
#[test]
fn a_late_row_in_a_rolled_up_hour_counts_once_before_and_after_maintenance() {
    let f = fixture();
    f.store.maintain(T0 + 3 * 3_600_000).unwrap();
    let before = q(&f, "count(latency)", T0, T0 + 7_200_000, 3_600_000)[0].points.clone();
    // One more prediction at T0 + 30 min, recorded by an agent whose clock is there.
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis((T0 + 1_800_000) as u64)));
    let late = Agent::builder("pii")
        .variant("control")
        .instance("host-late")
        .segments(["email"])
        .clock(clock.clone())
        .background_flush(false)
        .build(f.store.clone())
        .unwrap();
    late.handle().record(&Prediction::new("email", Duration::from_millis(1), 0.5));
    late.shutdown().unwrap();
    let want = [(T0, before[0].1 + 1.0), (T0 + 3_600_000, before[1].1)];
    let pending = q(&f, "count(latency)", T0, T0 + 7_200_000, 3_600_000)[0].points.clone();
    assert_eq!(pending, want, "acknowledged, not yet published: the late row is counted, once");
    f.store.flush().unwrap();
    assert_eq!(q(&f, "count(latency)", T0, T0 + 7_200_000, 3_600_000)[0].points, want, "published");
    f.store.maintain(T0 + 3 * 3_600_000).unwrap();
    assert_eq!(q(&f, "count(latency)", T0, T0 + 7_200_000, 3_600_000)[0].points, want, "rolled up");
    let by_minute = q(&f, "count(latency)", T0 + 1_800_000, T0 + 1_860_000, 60_000)[0].points.clone();
    assert_eq!(by_minute[0].1, before_minute(&f) + 1.0);
}

fn before_minute(f: &Fixture) -> f64 {
    f.latencies.iter().filter(|(k, _)| k.2 == T0 + 1_800_000).map(|(_, v)| v.len()).sum::<usize>() as f64
}

#[test]
fn a_query_past_its_callers_deadline_stops_with_cancelled_and_runs_whole_before_it() {
    let f = fixture();
    let (text, range) =
        ("p95(latency) by (variant)", Range { from_ms: T0, to_ms: T0 + 7_200_000, step_ms: 10_000 });
    let past = std::time::Instant::now() - Duration::from_millis(1);
    let cancelled = modelwatch_query::cancel::within(past, || {
        run(&f.store, &parse(text).unwrap(), range, Limits::default())
    });
    assert!(matches!(cancelled, Err(QueryError::Cancelled)), "{cancelled:?}");
    // The same query with time left answers in full, and the deadline ended with the call.
    let later = std::time::Instant::now() + Duration::from_secs(600);
    let answered = modelwatch_query::cancel::within(later, || {
        run(&f.store, &parse(text).unwrap(), range, Limits::default())
    })
    .unwrap();
    assert_eq!(answered.len(), 2);
    assert_eq!(answered, q(&f, text, range.from_ms, range.to_ms, range.step_ms));
}
