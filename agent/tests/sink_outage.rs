//! A sink that fails, blocks or recovers: merging pending snapshots loses no count, the
//! byte bound drops (and counts) only what does not fit, and collection keeps its intervals
//! whatever the sink does.

use modelwatch_agent::*;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

mod merge {
    use super::*;

    /// One recording call, as the property test generates them.
    #[derive(Clone, Debug)]
    enum Op {
        Predict { segment: usize, micros: u64, confidence: f64, positive: bool, x: f64, lang: f64 },
        Feedback { segment: usize, confidence: f64, label: bool },
        Error { segment: usize, kind: usize },
        Count { tag: usize, by: u8 },
        Gauge(u8),
        Observe(f64),
    }

    const SEGMENTS: [&str; 3] = ["email", "phone", "ssn"];
    const KINDS: [&str; 3] = ["timeout", "internal", "segfault"];

    fn op() -> impl Strategy<Value = Op> {
        let confidence = prop_oneof![4 => 0.0f64..=1.0, 1 => Just(f64::NAN), 1 => Just(1.5)];
        let x = prop_oneof![6 => -1e6f64..1e6, 1 => Just(f64::NAN), 1 => Just(f64::INFINITY)];
        let lang = prop_oneof![(0u8..4).prop_map(f64::from), Just(f64::NAN)];
        prop_oneof![
            6 => (0..3usize, 0u64..2_000_000, confidence.clone(), any::<bool>(), x, lang).prop_map(
                |(segment, micros, confidence, positive, x, lang)| Op::Predict {
                    segment,
                    micros,
                    confidence,
                    positive,
                    x,
                    lang
                }
            ),
            1 => (0..3usize, confidence, any::<bool>())
                .prop_map(|(segment, confidence, label)| Op::Feedback { segment, confidence, label }),
            1 => (0..3usize, 0..3usize).prop_map(|(segment, kind)| Op::Error { segment, kind }),
            1 => (0..2usize, 1u8..10).prop_map(|(tag, by)| Op::Count { tag, by }),
            1 => any::<u8>().prop_map(Op::Gauge),
            1 => (-50.0f64..50.0).prop_map(Op::Observe),
        ]
    }

    fn agent(sink: &MemorySink, clock: &Arc<ManualClock>) -> Agent {
        Agent::builder("m")
            .segments(["email", "phone"])
            .features([Feature::numeric("x"), Feature::categorical("lang", ["en", "de"])])
            .clock(clock.clone())
            .interval(Duration::from_secs(10))
            .background_flush(false)
            .build(sink.clone())
            .unwrap()
    }

    fn apply(h: &Handle, op: &Op) {
        match *op {
            Op::Predict { segment, micros, confidence, positive, x, lang } => h.record(
                &Prediction::new(SEGMENTS[segment], Duration::from_micros(micros), confidence)
                    .predicted(positive)
                    .features(&[x, lang]),
            ),
            Op::Feedback { segment, confidence, label } => h.feedback(SEGMENTS[segment], confidence, label),
            Op::Error { segment, kind } => h.error(SEGMENTS[segment], h.error_kind(KINDS[kind])),
            Op::Count { tag, by } => h.counter("stored", &[("tag", ["a", "b"][tag])]).record(f64::from(by)),
            Op::Gauge(v) => h.gauge("depth", &[]).record(f64::from(v)),
            Op::Observe(v) => h.log_metric("loss", v, &[]),
        }
    }

    /// The parts of a snapshot that merging must keep, in an order-independent form.
    /// Floating-point moments are compared apart, within rounding.
    fn canonical(s: &Snapshot) -> String {
        let mut segments: Vec<String> = s
            .segments
            .iter()
            .map(|g| {
                let latency: Vec<(u64, u64)> =
                    g.latency.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
                let mut errors = g.errors.clone();
                errors.sort();
                format!(
                    "{} p={} pos={} lat={latency:?} sum={} conf={:?} fb+={:?} fb-={:?} err={errors:?} inv={:?}",
                    g.segment,
                    g.predictions,
                    g.predicted_positive,
                    g.latency_sum_nanos,
                    g.confidence.bins(),
                    g.feedback_positive.bins(),
                    g.feedback_negative.bins(),
                    g.invalid,
                )
            })
            .collect();
        segments.sort();
        let mut features: Vec<String> = s
            .features
            .iter()
            .map(|f| match &f.stats {
                FeatureStats::Numeric(n) => format!(
                    "{}/{} n={} miss={} inv={} min={:?} max={:?} sketch={:?}",
                    f.segment,
                    f.feature,
                    n.count,
                    n.missing,
                    n.invalid,
                    n.min,
                    n.max,
                    n.sketch.buckets()
                ),
                FeatureStats::Categorical(c) => {
                    let mut counts = c.counts.clone();
                    counts.sort();
                    format!("{}/{} {counts:?} miss={}", f.segment, f.feature, c.missing)
                }
            })
            .collect();
        features.sort();
        let mut metrics: Vec<String> = s
            .metrics
            .iter()
            .map(|m| {
                let v = match &m.value {
                    MetricValue::Distribution(d) => {
                        format!(
                            "n={} min={:?} max={:?} sketch={:?}",
                            d.count,
                            d.min,
                            d.max,
                            d.sketch.buckets()
                        )
                    }
                    v => format!("{v:?}"),
                };
                format!("{}{:?} {v}", m.name, m.tags)
            })
            .collect();
        metrics.sort();
        format!("{segments:#?}\n{features:#?}\n{metrics:#?}\n{:?}", s.overflow)
    }

    /// `(count, mean, m2)` of every numeric summary, by series.
    fn moments(s: &Snapshot) -> Vec<(String, u64, f64, f64)> {
        let mut out: Vec<_> = s
            .features
            .iter()
            .filter_map(|f| match &f.stats {
                FeatureStats::Numeric(n) => Some((format!("{}/{}", f.segment, f.feature), n)),
                _ => None,
            })
            .chain(s.metrics.iter().filter_map(|m| match &m.value {
                MetricValue::Distribution(d) => Some((m.name.to_string(), d)),
                _ => None,
            }))
            .map(|(k, n)| (k, n.count, n.mean, n.m2))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Recording A, flushing, recording B, flushing and merging the two snapshots gives
        /// what recording A and B into one snapshot gives.
        #[test]
        fn merging_two_intervals_equals_recording_both_in_one(
            a in proptest::collection::vec(op(), 0..40),
            b in proptest::collection::vec(op(), 0..40),
        ) {
            let t0 = Timestamp::from_secs(1_764_115_200);
            let (split_sink, clock) = (MemorySink::new(), Arc::new(ManualClock::new(t0)));
            let split = agent(&split_sink, &clock);
            let h = split.handle();
            a.iter().for_each(|op| apply(&h, op));
            clock.advance(Duration::from_secs(10));
            split.flush_due().unwrap();
            b.iter().for_each(|op| apply(&h, op));
            clock.advance(Duration::from_secs(10));
            split.flush_due().unwrap();

            let (one_sink, one_clock) = (MemorySink::new(), Arc::new(ManualClock::new(t0)));
            let one = agent(&one_sink, &one_clock);
            let h = one.handle();
            a.iter().chain(&b).for_each(|op| apply(&h, op));
            one.flush_now().unwrap();

            let parts = split_sink.take();
            let Some(mut merged) = parts.first().map(|s| (**s).clone()) else {
                prop_assert!(one_sink.take().is_empty());
                return Ok(());
            };
            for later in &parts[1..] {
                merged.merge(later);
            }
            let direct = one_sink.take();
            prop_assert_eq!(direct.len(), 1);
            let direct = &direct[0];
            prop_assert_eq!(merged.seq, parts[0].seq);
            prop_assert_eq!(merged.start, parts[0].start);
            prop_assert_eq!(merged.end, parts[parts.len() - 1].end);
            prop_assert_eq!(canonical(&merged), canonical(direct));
            let (m, d) = (moments(&merged), moments(direct));
            prop_assert_eq!(m.len(), d.len());
            for (m, d) in m.iter().zip(&d) {
                prop_assert_eq!((&m.0, m.1), (&d.0, d.1));
                prop_assert!(close(m.2, d.2) && close(m.3, d.3), "{:?} vs {:?}", m, d);
            }
        }
    }

    #[test]
    fn gauges_and_model_state_keep_the_later_value_and_overflow_counts_add() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
        let sink = MemorySink::new();
        let agent = agent(&sink, &clock);
        let h = agent.handle();
        h.gauge("depth", &[]).record(3.0);
        h.model_loaded();
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
        h.gauge("depth", &[]).record(5.0);
        h.model_loaded();
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
        let s = sink.take();
        let (mut first, mut second) = ((*s[0]).clone(), (*s[1]).clone());
        first.overflow.metric_series = 2;
        second.overflow.metric_series = 3;
        second.overflow.snapshots_dropped = 4;
        first.merge(&second);
        assert_eq!(first.metrics.len(), 1);
        assert_eq!(first.metrics[0].value, MetricValue::Gauge(5.0));
        assert_eq!(first.model_state, second.model_state);
        assert_eq!(first.model_state.loaded, 2);
        assert_eq!((first.overflow.metric_series, first.overflow.snapshots_dropped), (5, 4));
        assert_eq!((first.start, first.end), (Timestamp::from_secs(1_000), Timestamp::from_secs(1_020)));
    }

    #[test]
    fn a_merged_snapshot_takes_about_the_bytes_of_one() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
        let sink = MemorySink::new();
        let agent = agent(&sink, &clock);
        let h = agent.handle();
        for i in 0..20 {
            h.record(
                &Prediction::new("email", Duration::from_micros(100 + i), 0.5).features(&[i as f64, 0.0]),
            );
            clock.advance(Duration::from_secs(10));
            agent.flush_due().unwrap();
        }
        let s = sink.take();
        let one = s[0].approx_bytes();
        // Two confidence histograms of 1,000 bins and one latency histogram at least.
        assert!(one > 3 * 1_000 * 8, "{one}");
        let mut merged = (*s[0]).clone();
        s[1..].iter().for_each(|later| merged.merge(later));
        assert_eq!(merged.predictions(), 20);
        assert!(merged.approx_bytes() < 2 * one, "{} vs {one}", merged.approx_bytes());
    }
}

mod outage {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const T0: u64 = 1_764_115_200; // 2025-11-26T00:00:00Z
    const INTERVAL: Duration = Duration::from_secs(10);

    /// A sink that fails while `down` is set, or for its first `fail_first` writes.
    #[derive(Default)]
    struct FlakySink {
        down: AtomicBool,
        fail_first: u64,
        writes: AtomicU64,
        inner: MemorySink,
    }

    impl FlakySink {
        fn down() -> Arc<Self> {
            Arc::new(FlakySink { down: true.into(), ..Default::default() })
        }
    }

    impl Sink for FlakySink {
        fn write(&self, s: &Arc<Snapshot>) -> Result<(), SinkError> {
            let n = self.writes.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) || n < self.fail_first {
                return Err(SinkError {
                    sink: "flaky".into(),
                    seq: s.seq,
                    message: "connection refused".into(),
                });
            }
            self.inner.write(s)
        }
    }

    fn builder(clock: &Arc<ManualClock>) -> AgentBuilder {
        Agent::builder("m")
            .segments(["email", "phone"])
            .features([Feature::numeric("x")])
            .interval(INTERVAL)
            .clock(clock.clone())
            .background_flush(false)
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Timestamp::from_secs(T0)))
    }

    /// Sums over snapshots: predictions, latencies, feature values and their sum, the
    /// `stored` counter.
    #[derive(Debug, Default, PartialEq)]
    struct Totals {
        predictions: u64,
        latencies: u64,
        values: u64,
        value_sum: f64,
        stored: f64,
    }

    fn totals(snapshots: &[Arc<Snapshot>]) -> Totals {
        let mut t = Totals::default();
        for s in snapshots {
            for g in &s.segments {
                t.predictions += g.predictions;
                t.latencies += g.latency.len();
            }
            for f in &s.features {
                if let FeatureStats::Numeric(n) = &f.stats {
                    t.values += n.count;
                    t.value_sum += n.mean * n.count as f64;
                }
            }
            for m in &s.metrics {
                if let (true, MetricValue::Counter(v)) = (&*m.name == "stored", &m.value) {
                    t.stored += v;
                }
            }
        }
        t.value_sum = t.value_sum.round();
        t
    }

    /// Waits for `what` to hold: a liveness check with a generous deadline, for the
    /// background threads; the time taken is never asserted.
    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "gave up waiting: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_sink_down_for_100_intervals_then_back_gets_every_count_merged() {
        let (clock, sink) = (clock(), FlakySink::down());
        let agent = builder(&clock).build(sink.clone()).unwrap();
        let h = agent.handle();
        let stored = h.counter("stored", &[]);
        let mut recorded = Totals::default();
        for i in 0..100u64 {
            for j in 0..=i % 7 {
                let x = (i * 10 + j) as f64;
                let segment = if j % 2 == 0 { "email" } else { "phone" };
                h.record(&Prediction::new(segment, Duration::from_micros(100 + i), 0.5).features(&[x]));
                stored.record(2.0);
                recorded.predictions += 1;
                recorded.latencies += 1;
                recorded.values += 1;
                recorded.value_sum += x;
                recorded.stored += 2.0;
            }
            clock.advance(INTERVAL);
            let e = agent.flush_due().unwrap_err();
            assert!(e.to_string().contains("connection refused"), "{e}");
        }
        let stats = agent.stats();
        assert_eq!(stats.snapshots, 100);
        assert!(stats.pending < 10, "waiting snapshots are merged: {stats:?}");
        assert!(stats.pending_bytes > 0);
        assert_eq!(stats.dropped_snapshots, 0);

        sink.down.store(false, Ordering::SeqCst);
        agent.flush_now().unwrap();
        let got = sink.inner.take();
        assert!(!got.is_empty() && got.len() < 10, "{} snapshots for 100 intervals", got.len());
        assert_eq!(totals(&got), recorded);
        assert!(got.iter().all(|s| s.overflow == OverflowCounts::default()), "no drop counted");
        assert_eq!((got[0].seq, got[0].start), (0, Timestamp::from_secs(T0)));
        assert_eq!(got[got.len() - 1].end, Timestamp::from_secs(T0 + 1_000));
        for w in got.windows(2) {
            assert!(w[0].seq < w[1].seq, "delivered in order, each once");
            assert_eq!(w[0].end, w[1].start, "merged snapshots tile the outage");
        }
        let stats = agent.stats();
        assert_eq!((stats.pending, stats.pending_bytes, stats.dropped_snapshots), (0, 0, 0));
        agent.shutdown().unwrap();
    }

    #[test]
    fn past_the_byte_bound_the_oldest_are_dropped_and_counted() {
        let (clock, sink) = (clock(), FlakySink::down());
        let agent = builder(&clock).max_pending_bytes(1).build(sink.clone()).unwrap();
        let h = agent.handle();
        for i in 1..=10 {
            for _ in 0..i {
                h.record(&Prediction::new("email", Duration::from_micros(100), 0.5).features(&[1.0]));
            }
            clock.advance(INTERVAL);
            assert!(agent.flush_due().is_err());
        }
        let stats = agent.stats();
        assert_eq!((stats.snapshots, stats.pending, stats.dropped_snapshots), (10, 1, 9), "the newest stays");

        sink.down.store(false, Ordering::SeqCst);
        agent.flush_now().unwrap();
        let got = sink.inner.take();
        assert_eq!(got.len(), 1);
        let s = &got[0];
        assert_eq!((s.seq, s.start, s.predictions()), (9, Timestamp::from_secs(T0 + 90), 10));
        assert_eq!(s.overflow.snapshots_dropped, 9);
        assert_eq!(s.overflow.predictions_dropped, (1..=9).sum::<u64>());
        assert_eq!(s.predictions() + s.overflow.predictions_dropped, (1..=10).sum::<u64>(), "recorded");

        h.record(&Prediction::new("email", Duration::from_micros(100), 0.5));
        agent.flush_now().unwrap();
        let later = sink.inner.take();
        assert_eq!(later[0].overflow, OverflowCounts::default(), "a drop is counted once");
        assert_eq!(agent.stats().dropped_snapshots, 9);
    }

    #[test]
    fn a_bound_that_holds_the_merged_backlog_drops_nothing() {
        let (clock, sink) = (clock(), FlakySink::down());
        let probe = MemorySink::new();
        let one = builder(&clock).build(probe.clone()).unwrap();
        one.handle().record(&Prediction::new("email", Duration::from_micros(100), 0.5).features(&[1.0]));
        one.flush_now().unwrap();
        let bytes = probe.take()[0].approx_bytes();

        // Room for about three snapshots: merging keeps the backlog at one or two.
        let agent = builder(&clock).max_pending_bytes(3 * bytes).build(sink.clone()).unwrap();
        let h = agent.handle();
        for i in 0..50 {
            h.record(&Prediction::new("email", Duration::from_micros(100 + i), 0.5).features(&[i as f64]));
            clock.advance(INTERVAL);
            assert!(agent.flush_due().is_err());
            assert!(agent.stats().pending_bytes <= 3 * bytes, "{:?}", agent.stats());
        }
        sink.down.store(false, Ordering::SeqCst);
        agent.flush_now().unwrap();
        let got = sink.inner.take();
        assert_eq!(got.iter().map(|s| s.predictions()).sum::<u64>(), 50);
        assert_eq!(agent.stats().dropped_snapshots, 0);
    }

    #[test]
    fn shutdown_with_the_sink_still_down_says_what_stayed_undelivered() {
        let (clock, sink) = (clock(), FlakySink::down());
        let agent = builder(&clock).build(sink.clone()).unwrap();
        let h = agent.handle();
        for _ in 0..3 {
            h.record_latency("email", Duration::from_millis(1));
            clock.advance(INTERVAL);
            assert!(agent.flush_due().is_err());
        }
        h.record_latency("email", Duration::from_millis(1));
        let e = agent.shutdown().unwrap_err();
        assert!(e.to_string().contains("connection refused; 4 snapshot(s) stayed undelivered"), "{e}");
        assert_eq!(sink.inner.take().len(), 0);
    }

    #[test]
    fn shutdown_says_how_many_snapshots_a_merged_backlog_held() {
        let (clock, sink) = (clock(), FlakySink::down());
        let agent = builder(&clock).build(sink.clone()).unwrap();
        for _ in 0..20 {
            agent.handle().record_latency("email", Duration::from_millis(1));
            clock.advance(INTERVAL);
            assert!(agent.flush_due().is_err());
        }
        let e = agent.shutdown().unwrap_err();
        assert!(e.to_string().contains("; 20 snapshot(s), merged into 4, stayed undelivered"), "{e}");
    }

    #[test]
    fn the_delivery_thread_retries_a_failing_sink_without_new_snapshots() {
        let clock = clock();
        let sink = Arc::new(FlakySink { fail_first: 3, ..Default::default() });
        let agent = builder(&clock).background_flush(true).build(sink.clone()).unwrap();
        agent.handle().record_latency("email", Duration::from_millis(1));
        clock.advance(INTERVAL);
        wait_until("the retry after three failures", || !sink.inner.snapshots().is_empty());
        assert_eq!(sink.writes.load(Ordering::SeqCst), 4);
        assert_eq!(sink.inner.snapshots()[0].predictions(), 0);
        assert_eq!(sink.inner.snapshots()[0].segments[0].latency.len(), 1);
        agent.shutdown().unwrap();
    }

    /// Blocks its first write until the test opens the gate (or a failsafe timeout passes).
    struct GatedSink {
        entered: crossbeam_channel::Sender<()>,
        gate: crossbeam_channel::Receiver<()>,
        first: AtomicBool,
        gave_up: AtomicBool,
        inner: MemorySink,
    }

    impl Sink for GatedSink {
        fn write(&self, s: &Arc<Snapshot>) -> Result<(), SinkError> {
            if self.first.swap(false, Ordering::SeqCst) {
                let _ = self.entered.send(());
                if self.gate.recv_timeout(Duration::from_secs(20)).is_err() {
                    self.gave_up.store(true, Ordering::SeqCst);
                }
            }
            self.inner.write(s)
        }
    }

    #[test]
    fn a_blocked_sink_does_not_stretch_the_intervals_collected_meanwhile() {
        let clock = clock();
        let (entered, entered_rx) = crossbeam_channel::bounded(1);
        let (open, gate) = crossbeam_channel::bounded(1);
        let sink = Arc::new(GatedSink {
            entered,
            gate,
            first: true.into(),
            gave_up: false.into(),
            inner: MemorySink::new(),
        });
        let agent = builder(&clock).background_flush(true).build(sink.clone()).unwrap();
        let h = agent.handle();
        h.record(&Prediction::new("email", Duration::from_micros(100), 0.5));
        clock.advance(INTERVAL);
        entered_rx.recv_timeout(Duration::from_secs(30)).expect("the first snapshot reaches the sink");
        for k in 1..=3 {
            h.record(&Prediction::new("email", Duration::from_micros(100), 0.5));
            clock.advance(INTERVAL);
            wait_until("collection while the sink blocks", || agent.stats().snapshots == k + 1);
        }
        assert_eq!(agent.stats().pending, 4, "one being written, three waiting");
        open.send(()).unwrap();
        agent.shutdown().unwrap();
        assert!(!sink.gave_up.load(Ordering::SeqCst), "collection waited for the blocked sink");
        let got = sink.inner.take();
        assert_eq!(got.len(), 4);
        for (i, s) in got.iter().enumerate() {
            let start = Timestamp::from_secs(T0 + 10 * i as u64);
            assert_eq!(
                (s.seq, s.start, s.end, s.predictions()),
                (i as u64, start, start.saturating_add(INTERVAL), 1)
            );
        }
    }

    /// Fails every third write.
    #[derive(Default)]
    struct EveryThirdFails {
        writes: AtomicU64,
        healed: AtomicBool,
        inner: MemorySink,
    }

    impl Sink for EveryThirdFails {
        fn write(&self, s: &Arc<Snapshot>) -> Result<(), SinkError> {
            if self.writes.fetch_add(1, Ordering::SeqCst) % 3 == 2 && !self.healed.load(Ordering::SeqCst) {
                return Err(SinkError { sink: "third".into(), seq: s.seq, message: "busy".into() });
            }
            self.inner.write(s)
        }
    }

    #[test]
    fn the_delivery_thread_and_flush_now_racing_deliver_each_snapshot_once_in_order() {
        let clock = clock();
        let sink = Arc::new(EveryThirdFails::default());
        let agent = builder(&clock).background_flush(true).build(sink.clone()).unwrap();
        let h = agent.handle();
        for i in 0..300 {
            h.record(&Prediction::new("email", Duration::from_micros(100), 0.5));
            if i % 3 == 0 {
                clock.advance(INTERVAL);
            }
            if i % 2 == 0 {
                let _ = agent.flush_now();
            }
        }
        sink.healed.store(true, Ordering::SeqCst);
        agent.shutdown().unwrap();
        let got = sink.inner.take();
        assert_eq!(got.iter().map(|s| s.predictions()).sum::<u64>(), 300);
        for w in got.windows(2) {
            assert!(w[0].seq < w[1].seq, "seq {} then {}", w[0].seq, w[1].seq);
            assert!(
                w[0].end <= w[1].start,
                "{:?} overlaps {:?}",
                (w[0].start, w[0].end),
                (w[1].start, w[1].end)
            );
        }
    }
}
