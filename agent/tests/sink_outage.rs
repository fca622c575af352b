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
