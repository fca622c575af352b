//! Behaviour of the agent seen from outside: what a recording turns into in a snapshot.

use modelwatch_agent::layout::LATENCY_MAX;
use modelwatch_agent::*;
use std::sync::Arc;
use std::time::Duration;

fn manual_agent(features: Vec<Feature>) -> (Agent, MemorySink, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
    let sink = MemorySink::new();
    let agent = Agent::builder("pii")
        .version("3")
        .variant("canary")
        .segments(["email", "phone"])
        .features(features)
        .interval(Duration::from_secs(10))
        .clock(clock.clone())
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    (agent, sink, clock)
}

fn one(sink: &MemorySink) -> Arc<Snapshot> {
    let mut s = sink.take();
    assert_eq!(s.len(), 1, "expected exactly one snapshot");
    s.pop().unwrap()
}

fn segment<'a>(s: &'a Snapshot, name: &str) -> &'a SegmentSnapshot {
    s.segments.iter().find(|g| &*g.segment == name).unwrap_or_else(|| panic!("no segment {name}"))
}

fn numeric<'a>(s: &'a Snapshot, seg: &str, feature: &str) -> &'a NumericSummary {
    let f = s
        .features
        .iter()
        .find(|f| &*f.segment == seg && &*f.feature == feature)
        .unwrap_or_else(|| panic!("no feature {feature} in {seg}"));
    match &f.stats {
        FeatureStats::Numeric(n) => n,
        other => panic!("not numeric: {other:?}"),
    }
}

#[test]
fn a_prediction_lands_in_its_segment_with_latency_confidence_and_features() {
    let (agent, sink, _) = manual_agent(vec![Feature::numeric("len"), Feature::numeric("ratio")]);
    let h = agent.handle();
    let values = [3.0, 7.5, -2.0, 1e6, 0.0];
    for (i, &v) in values.iter().enumerate() {
        let lat = Duration::from_micros(100 * (i as u64 + 1));
        h.record(&Prediction::new("email", lat, 0.2 * i as f64).features(&[v, 0.5]).predicted(i % 2 == 0));
    }
    agent.flush_now().unwrap();
    let s = one(&sink);
    assert_eq!(&*s.model.variant, "canary");
    let email = segment(&s, "email");
    assert_eq!(email.predictions, 5);
    assert_eq!(email.predicted_positive, 3);
    assert_eq!(email.latency.len(), 5);
    assert_eq!(email.latency_sum_nanos, 1_500_000);
    let p50 = email.latency.value_at_quantile(0.5);
    assert!((297_000..=303_000).contains(&p50), "p50 {p50}");
    assert_eq!(email.confidence.count(), 5);
    assert_eq!(email.confidence.count_at_or_above(0.5), 2);
    assert!(s.segments.iter().all(|g| &*g.segment != "phone"), "unchanged segments are left out");

    let oracle = NumericSummary::of(&values);
    let got = numeric(&s, "email", "len");
    assert_eq!(got.count, 5);
    assert_eq!(got.min, Some(-2.0));
    assert_eq!(got.max, Some(1e6));
    assert!((got.mean - oracle.mean).abs() < 1e-9 * oracle.mean.abs());
    assert!((got.variance().unwrap() - oracle.variance().unwrap()).abs() < 1e-9 * oracle.variance().unwrap());
    assert_eq!(got.sketch, oracle.sketch);
}

#[test]
fn snapshots_hold_interval_deltas_not_running_totals() {
    let (agent, sink, clock) = manual_agent(vec![]);
    let h = agent.handle();
    for _ in 0..3 {
        h.record(&Prediction::new("phone", Duration::from_millis(1), 0.9));
    }
    clock.advance(Duration::from_secs(10));
    agent.flush_due().unwrap();
    h.record(&Prediction::new("phone", Duration::from_millis(1), 0.9));
    clock.advance(Duration::from_secs(10));
    agent.flush_due().unwrap();
    let s = sink.take();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].predictions(), 3);
    assert_eq!(s[1].predictions(), 1);
    assert_eq!((s[0].seq, s[1].seq), (0, 1));
    assert_eq!(s[0].start, Timestamp::from_secs(1_000));
    assert_eq!(s[0].end, Timestamp::from_secs(1_010));
    assert_eq!(s[1].start, Timestamp::from_secs(1_010));
    assert_eq!(s[1].end, Timestamp::from_secs(1_020));
}

#[test]
fn interval_boundaries_follow_the_clock_and_skip_idle_intervals() {
    let (agent, sink, clock) = manual_agent(vec![]);
    let h = agent.handle();
    clock.set(Timestamp::from_secs(1_004));
    agent.flush_due().unwrap();
    assert!(sink.take().is_empty(), "no boundary passed, nothing flushed");
    h.record_latency("email", Duration::from_millis(2));
    clock.set(Timestamp::from_secs(1_095));
    agent.flush_due().unwrap();
    h.record_latency("email", Duration::from_millis(2));
    clock.set(Timestamp::from_secs(1_101));
    agent.flush_due().unwrap();
    let s = sink.take();
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].start, s[0].end), (Timestamp::from_secs(1_000), Timestamp::from_secs(1_010)));
    assert_eq!((s[1].start, s[1].end), (Timestamp::from_secs(1_090), Timestamp::from_secs(1_100)));
}

#[test]
fn partial_flush_then_boundary_covers_the_rest_of_the_interval() {
    let (agent, sink, clock) = manual_agent(vec![]);
    let h = agent.handle();
    h.record_latency("email", Duration::from_millis(2));
    clock.set(Timestamp::from_secs(1_003));
    agent.flush_now().unwrap();
    h.record_latency("email", Duration::from_millis(2));
    clock.set(Timestamp::from_secs(1_010));
    agent.flush_due().unwrap();
    let s = sink.take();
    assert_eq!((s[0].start, s[0].end), (Timestamp::from_secs(1_000), Timestamp::from_secs(1_003)));
    assert_eq!((s[1].start, s[1].end), (Timestamp::from_secs(1_003), Timestamp::from_secs(1_010)));
}

#[test]
fn odd_inputs_are_counted_never_recorded_as_values() {
    let (agent, sink, _) = manual_agent(vec![Feature::numeric("a"), Feature::numeric("b")]);
    let h = agent.handle();
    h.record(&Prediction::new("email", Latency::from_secs_f64(f64::NAN), 0.5).features(&[1.0, 2.0]));
    h.record(&Prediction::new("email", Latency::from_secs_f64(-1.0), 1.5).features(&[1.0]));
    h.record(&Prediction::new("email", Duration::from_secs(3_600), f64::NAN).features(&[1.0, 2.0, 3.0]));
    h.record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[f64::INFINITY, f64::NAN]));
    h.feedback("email", -0.1, true);
    agent.flush_now().unwrap();
    let s = one(&sink);
    let e = segment(&s, "email");
    assert_eq!(e.predictions, 4);
    assert_eq!(e.invalid.latency, 2);
    assert_eq!(e.invalid.latency_clamped, 1);
    assert_eq!(e.latency.len(), 2, "the clamped one is kept at the maximum");
    assert_eq!(e.latency.max(), e.latency.highest_equivalent(LATENCY_MAX));
    assert_eq!(e.invalid.confidence, 2);
    assert_eq!(e.invalid.schema, 2);
    assert_eq!(e.invalid.feedback_confidence, 1);
    assert_eq!(e.feedback(), 0);
    let a = numeric(&s, "email", "a");
    assert_eq!((a.count, a.missing, a.invalid), (3, 0, 1));
    let b = numeric(&s, "email", "b");
    assert_eq!((b.count, b.missing), (2, 2), "a short vector's absent positions count as missing");
}

#[test]
fn unknown_segments_go_to_other() {
    let (agent, sink, _) = manual_agent(vec![]);
    let h = agent.handle();
    h.record(&Prediction::new("ssn", Duration::from_millis(1), 0.4));
    h.record(&Prediction::new(h.segment("iban"), Duration::from_millis(1), 0.4));
    agent.flush_now().unwrap();
    let s = one(&sink);
    assert_eq!(segment(&s, OTHER_SEGMENT).predictions, 2);
}

#[test]
fn feedback_splits_confidence_by_true_label() {
    let (agent, sink, _) = manual_agent(vec![]);
    let h = agent.handle();
    let phone = h.segment("phone");
    for (c, label) in [(0.9, true), (0.8, true), (0.3, false), (0.6, false), (0.95, true)] {
        h.feedback(phone, c, label);
    }
    agent.flush_now().unwrap();
    let s = one(&sink);
    let p = segment(&s, "phone");
    assert_eq!(p.feedback_positive.count(), 3);
    assert_eq!(p.feedback_negative.count(), 2);
    assert_eq!(p.feedback_negative.count_at_or_above(0.5), 1);
    assert_eq!(p.predictions, 0);
}

#[test]
fn errors_are_counted_by_kind() {
    let (agent, sink, _) = manual_agent(vec![]);
    let h = agent.handle();
    let timeout = h.error_kind("timeout");
    h.error("email", timeout);
    h.error("email", timeout);
    h.error("email", h.error_kind("segfault"));
    agent.flush_now().unwrap();
    let s = one(&sink);
    let e = segment(&s, "email");
    assert_eq!(e.errors, vec![(Arc::from("timeout"), 2), (Arc::from(OTHER), 1)]);
}

#[test]
fn categorical_features_count_by_code_and_by_string() {
    let (agent, sink, _) =
        manual_agent(vec![Feature::categorical("lang", ["en", "de", "fr"]), Feature::numeric("x")]);
    let h = agent.handle();
    h.record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[0.0, 1.0]));
    h.record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[1.0, 1.0]));
    h.record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[7.0, 1.0]));
    h.record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[f64::NAN, 1.0]));
    h.record(
        &Prediction::new("email", Duration::from_millis(1), 0.5)
            .features(&[f64::NAN, 1.0])
            .categories(&[Some("fr")]),
    );
    h.record(
        &Prediction::new("email", Duration::from_millis(1), 0.5)
            .features(&[f64::NAN, 1.0])
            .categories(&[Some("xx")]),
    );
    agent.flush_now().unwrap();
    let s = one(&sink);
    let f = s.features.iter().find(|f| &*f.feature == "lang").unwrap();
    let FeatureStats::Categorical(c) = &f.stats else { panic!("not categorical") };
    let mut counts = c.counts.clone();
    counts.sort();
    let expect: Vec<(Arc<str>, u64)> =
        vec![("de".into(), 1), ("en".into(), 1), ("fr".into(), 1), ("other".into(), 2)];
    assert_eq!(counts, expect);
    assert_eq!(c.missing, 1);
}

#[test]
fn generic_metrics_by_kind() {
    let (agent, sink, _) = manual_agent(vec![]);
    let h = agent.handle();
    for v in [1.0, 2.0, 3.0, 4.0] {
        h.log_metric("train_loss", v, &[("stage", "fit")]);
    }
    let c = h.counter("examples_stored", &[("category", "email")]);
    c.record(2.0);
    c.record(3.0);
    h.gauge("queue_depth", &[]).record(7.0);
    h.gauge("queue_depth", &[]).record(5.0);
    agent.flush_now().unwrap();
    let s = one(&sink);
    let get = |n: &str| s.metrics.iter().find(|m| &*m.name == n).unwrap().value.clone();
    match get("train_loss") {
        MetricValue::Distribution(d) => {
            assert_eq!(d.count, 4);
            assert!((d.mean - 2.5).abs() < 1e-12);
            assert_eq!((d.min, d.max), (Some(1.0), Some(4.0)));
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(get("examples_stored"), MetricValue::Counter(5.0));
    assert_eq!(get("queue_depth"), MetricValue::Gauge(5.0));
    let tags = &s.metrics.iter().find(|m| &*m.name == "examples_stored").unwrap().tags;
    assert_eq!(&*tags[0].0, "category");
}

#[test]
fn series_past_the_limit_go_to_the_overflow_series_and_are_counted() {
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .clock(fixed_clock())
        .max_series(3)
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    let h = agent.handle();
    for i in 0..10 {
        let id = i.to_string();
        h.log_metric("per_user", i as f64, &[("user", id.as_str())]);
    }
    h.counter("per_user", &[("user", "0")]).record(1.0); // kind conflict
    agent.flush_now().unwrap();
    let s = one(&sink);
    assert_eq!(s.metrics.iter().filter(|m| &*m.name == "per_user").count(), 3);
    let overflow = s.metrics.iter().find(|m| &*m.name == OVERFLOW_SERIES).unwrap();
    let MetricValue::Distribution(d) = &overflow.value else { panic!() };
    assert_eq!(d.count, 8);
    assert_eq!(s.overflow.metric_series, 7);
    assert_eq!(s.overflow.kind_conflicts, 1);
}

#[test]
fn model_load_state_is_reported() {
    let (agent, sink, clock) = manual_agent(vec![]);
    let h = agent.handle();
    h.model_loaded();
    h.model_loaded();
    h.model_unloaded();
    h.record_latency("email", Duration::from_millis(1));
    clock.advance(Duration::from_secs(4));
    agent.flush_now().unwrap();
    let s = one(&sink);
    assert_eq!(s.model_state.loaded, 1);
    assert_eq!(s.model_state.loaded_at, Some(Timestamp::from_secs(1_000)));
}

#[test]
fn a_finished_threads_values_are_flushed_and_its_shard_reused() {
    let (agent, sink, _) = manual_agent(vec![Feature::numeric("x")]);
    let h = agent.handle();
    for round in 0..4 {
        let h = h.clone();
        std::thread::spawn(move || {
            for i in 0..100 {
                h.record(&Prediction::new("email", Duration::from_micros(i), 0.5).features(&[round as f64]));
            }
        })
        .join()
        .unwrap();
    }
    assert_eq!(agent.stats().shards, 1, "sequential threads share one shard");
    agent.flush_now().unwrap();
    let s = one(&sink);
    assert_eq!(s.predictions(), 400);
    assert_eq!(numeric(&s, "email", "x").count, 400);
    assert!((numeric(&s, "email", "x").mean - 1.5).abs() < 1e-12);
}

#[test]
fn min_and_max_are_per_interval() {
    let (agent, sink, _) = manual_agent(vec![Feature::numeric("x")]);
    let h = agent.handle();
    for batch in [[1.0, 9.0], [4.0, 5.0], [2.0, 3.0]] {
        for x in batch {
            h.record(&Prediction::new("email", Duration::from_micros(1), 0.5).features(&[x]));
        }
        agent.flush_now().unwrap();
    }
    let s = sink.take();
    let ranges: Vec<_> =
        s.iter().map(|s| (numeric(s, "email", "x").min, numeric(s, "email", "x").max)).collect();
    assert_eq!(ranges, vec![(Some(1.0), Some(9.0)), (Some(4.0), Some(5.0)), (Some(2.0), Some(3.0))]);
}

struct FailingSink {
    fail: std::sync::atomic::AtomicBool,
    inner: MemorySink,
}

impl Sink for FailingSink {
    fn write(&self, s: &Arc<Snapshot>) -> Result<(), SinkError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SinkError { sink: "failing".into(), seq: s.seq, message: "disk full".into() });
        }
        self.inner.write(s)
    }
}

#[test]
fn a_failing_sink_gets_the_snapshots_again_in_order() {
    let inner = MemorySink::new();
    let sink = Arc::new(FailingSink { fail: true.into(), inner: inner.clone() });
    let agent = Agent::builder("m").clock(fixed_clock()).background_flush(false).build(sink.clone()).unwrap();
    let h = agent.handle();
    h.record_latency("x", Duration::from_millis(1));
    let err = agent.flush_now().unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    h.record_latency("x", Duration::from_millis(1));
    assert!(agent.flush_now().is_err());
    assert_eq!(agent.stats().pending, 2);
    sink.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    agent.flush_now().unwrap();
    let got = inner.take();
    assert_eq!(got.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(agent.stats().pending, 0);
}

#[test]
fn shutdown_flushes_the_last_partial_interval() {
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .clock(fixed_clock())
        .interval(Duration::from_secs(3_600))
        .build(sink.clone())
        .unwrap();
    agent.handle().record_latency("x", Duration::from_millis(1));
    agent.shutdown().unwrap();
    assert_eq!(sink.take().len(), 1);
}

#[test]
fn the_background_flusher_follows_a_manual_clock() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .interval(Duration::from_secs(1))
        .clock(clock.clone())
        .build(sink.clone())
        .unwrap();
    agent.handle().record_latency("x", Duration::from_millis(1));
    clock.advance(Duration::from_secs(1));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.snapshots().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sink.snapshots().len(), 1);
    drop(agent);
}

#[test]
fn builder_rejects_bad_configuration_with_a_clear_message() {
    let e = Agent::builder("m")
        .clock(fixed_clock())
        .features([Feature::numeric("a"), Feature::numeric("a")])
        .build(NullSink)
        .err()
        .unwrap();
    assert_eq!(e.to_string(), "feature \"a\" is declared twice; feature names must be unique");
    let e = Agent::builder("m").clock(fixed_clock()).interval(Duration::ZERO).build(NullSink).err().unwrap();
    assert_eq!(e, BuildError::ZeroInterval);
    let e = Agent::builder("m").clock(fixed_clock()).segments(["a", "a"]).build(NullSink).err().unwrap();
    assert!(e.to_string().contains("segment \"a\""));
}

#[test]
fn a_local_recorder_shares_the_threads_shard_with_the_handle() {
    let (agent, sink, _) = manual_agent(vec![Feature::numeric("x")]);
    let h = agent.handle();
    let local = h.local();
    let email = h.segment("email");
    h.record(&Prediction::new(email, Duration::from_micros(5), 0.5).features(&[1.0]));
    local.record(&Prediction::new(email, Duration::from_micros(5), 0.5).features(&[3.0]));
    local.record_latency(email, Duration::from_micros(9));
    local.feedback(email, 0.7, false);
    local.error(email, h.error_kind("timeout"));
    assert_eq!(agent.stats().shards, 1);
    drop(local);
    agent.flush_now().unwrap();
    let s = one(&sink);
    let e = segment(&s, "email");
    assert_eq!((e.predictions, e.latency.len(), e.feedback(), e.error_count()), (2, 3, 1, 1));
    assert_eq!(numeric(&s, "email", "x").mean, 2.0);
}

#[test]
fn merging_summaries_keeps_exact_extremes_when_one_side_has_none() {
    let mut a = NumericSummary { count: 2, mean: 1.0, ..Default::default() };
    a.merge(&NumericSummary::of(&[4.0, -3.0]));
    assert_eq!((a.min, a.max), (Some(-3.0), Some(4.0)));
    let mut b = NumericSummary::of(&[2.0]);
    b.merge(&NumericSummary { count: 1, mean: 5.0, ..Default::default() });
    assert_eq!((b.count, b.min, b.max), (2, Some(2.0), Some(2.0)));
    assert_eq!(b.mean, 3.5);
}

/// A clock stopped at 2025-11-26T00:00:00Z: no test here depends on the hour it runs at.
fn fixed_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200)))
}
