//! Exactness under concurrency: several waves of recording threads write known values while
//! another thread flushes as fast as it can; the snapshots must add up to exactly what was
//! recorded, value for value.

use modelwatch::agent::layout::new_latency_histogram;
use modelwatch::agent::{ConfidenceHistogram, Histogram, OTHER_SEGMENT};
use modelwatch::{
    Agent, Feature, FeatureStats, ManualClock, MemorySink, MetricValue, NumericSummary, Prediction, Timestamp,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const THREADS: usize = 4;
const WAVES: usize = 3;
const PER_THREAD: u64 = 40_000;
const SEGMENTS: [&str; 3] = ["email", "phone", "iban"]; // iban is not declared: goes to `other`

#[derive(Default)]
struct Expected {
    predictions: HashMap<String, u64>,
    feedback_positive: HashMap<String, u64>,
    feedback_negative: HashMap<String, u64>,
    errors: HashMap<String, u64>,
    latency: HashMap<String, Vec<u64>>,
    confidence: HashMap<String, ConfidenceHistogram>,
    x: Vec<f64>,
    missing: u64,
    counter: f64,
    logged: Vec<f64>,
}

fn segment_name(i: u64) -> &'static str {
    SEGMENTS[(i % 3) as usize]
}

fn stored_segment(i: u64) -> String {
    let s = segment_name(i);
    if s == "iban" { OTHER_SEGMENT.to_string() } else { s.to_string() }
}

#[test]
fn counts_add_up_exactly_across_threads_waves_and_flushes() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(10_000)));
    let sink = MemorySink::new();
    let agent = Arc::new(
        Agent::builder("stress")
            .segments(["email", "phone"])
            .features([Feature::numeric("x"), Feature::numeric("thread"), Feature::numeric("sparse")])
            .interval(Duration::from_secs(1))
            .clock(clock.clone())
            .background_flush(false)
            .build(sink.clone())
            .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (agent, clock, done) = (agent.clone(), clock.clone(), done.clone());
        std::thread::spawn(move || {
            let mut flushes = 0u64;
            while !done.load(Ordering::Acquire) {
                if flushes.is_multiple_of(3) {
                    agent.flush_now().unwrap();
                } else {
                    clock.advance(Duration::from_secs(1));
                    agent.flush_due().unwrap();
                }
                flushes += 1;
            }
            flushes
        })
    };

    let mut expected = Expected::default();
    for wave in 0..WAVES {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let h = agent.handle();
                std::thread::spawn(move || {
                    let mut e = Expected::default();
                    let counter = h.counter("stored_examples", &[("source", "feedback")]);
                    for i in 0..PER_THREAD {
                        let seg = segment_name(i);
                        let key = stored_segment(i);
                        let latency = (i % 5_000 + 1) * 1_000;
                        let confidence = (i % 1_001) as f64 / 1_000.0;
                        let x = (i % 100) as f64 - 20.5;
                        let sparse = if i % 10 == 0 { f64::NAN } else { 1.0 };
                        h.record(
                            &Prediction::new(seg, Duration::from_nanos(latency), confidence).features(&[
                                x,
                                (wave * THREADS + t) as f64,
                                sparse,
                            ]),
                        );
                        *e.predictions.entry(key.clone()).or_default() += 1;
                        e.latency.entry(key.clone()).or_default().push(latency);
                        e.confidence.entry(key.clone()).or_default().record(confidence);
                        e.x.push(x);
                        e.missing += u64::from(sparse.is_nan());
                        if i % 7 == 0 {
                            h.feedback(seg, confidence, i % 2 == 0);
                            let m =
                                if i % 2 == 0 { &mut e.feedback_positive } else { &mut e.feedback_negative };
                            *m.entry(key.clone()).or_default() += 1;
                        }
                        if i % 13 == 0 {
                            h.error(seg, h.error_kind("timeout"));
                            *e.errors.entry(key.clone()).or_default() += 1;
                        }
                        counter.record(1.0);
                        e.counter += 1.0;
                        let v = (i % 10) as f64;
                        h.log_metric("batch_size", v, &[("model", "stress")]);
                        e.logged.push(v);
                    }
                    e
                })
            })
            .collect();
        for t in threads {
            let e = t.join().unwrap();
            for (k, v) in e.predictions {
                *expected.predictions.entry(k).or_default() += v;
            }
            for (k, v) in e.feedback_positive {
                *expected.feedback_positive.entry(k).or_default() += v;
            }
            for (k, v) in e.feedback_negative {
                *expected.feedback_negative.entry(k).or_default() += v;
            }
            for (k, v) in e.errors {
                *expected.errors.entry(k).or_default() += v;
            }
            for (k, v) in e.latency {
                expected.latency.entry(k).or_default().extend(v);
            }
            for (k, v) in e.confidence {
                expected.confidence.entry(k).or_default().merge(&v);
            }
            expected.x.extend(e.x);
            expected.missing += e.missing;
            expected.counter += e.counter;
            expected.logged.extend(e.logged);
        }
    }
    done.store(true, Ordering::Release);
    let flushes = flusher.join().unwrap();
    agent.flush_now().unwrap();
    assert!(agent.stats().shards <= THREADS + 1, "shards are reused across waves: {}", agent.stats().shards);

    let snapshots = sink.take();
    assert!(snapshots.len() > 10, "only {} snapshots over {flushes} flushes", snapshots.len());
    for (i, s) in snapshots.iter().enumerate() {
        assert_eq!(s.seq, i as u64, "sequence numbers have no gaps");
        assert!(s.start <= s.end);
    }

    // Merge everything the sink received.
    let mut predictions: HashMap<String, u64> = HashMap::new();
    let mut positive: HashMap<String, u64> = HashMap::new();
    let mut negative: HashMap<String, u64> = HashMap::new();
    let mut errors: HashMap<String, u64> = HashMap::new();
    let mut latency: HashMap<String, Histogram<u64>> = HashMap::new();
    let mut latency_sum: HashMap<String, u64> = HashMap::new();
    let mut confidence: HashMap<String, ConfidenceHistogram> = HashMap::new();
    let mut x = NumericSummary::default();
    let mut sparse = NumericSummary::default();
    let mut counter = 0.0;
    let mut logged = NumericSummary::default();
    for s in &snapshots {
        for g in &s.segments {
            let k = g.segment.to_string();
            *predictions.entry(k.clone()).or_default() += g.predictions;
            *positive.entry(k.clone()).or_default() += g.feedback_positive.count();
            *negative.entry(k.clone()).or_default() += g.feedback_negative.count();
            *errors.entry(k.clone()).or_default() += g.error_count();
            latency.entry(k.clone()).or_insert_with(new_latency_histogram).add(&g.latency).unwrap();
            *latency_sum.entry(k.clone()).or_default() += g.latency_sum_nanos;
            confidence.entry(k).or_default().merge(&g.confidence);
        }
        for f in &s.features {
            match (&*f.feature, &f.stats) {
                ("x", FeatureStats::Numeric(n)) => x.merge(n),
                ("sparse", FeatureStats::Numeric(n)) => sparse.merge(n),
                _ => {}
            }
        }
        for m in &s.metrics {
            match (&*m.name, &m.value) {
                ("stored_examples", MetricValue::Counter(c)) => counter += c,
                ("batch_size", MetricValue::Distribution(d)) => logged.merge(d),
                other => panic!("unexpected metric {other:?}"),
            }
        }
        assert_eq!(s.overflow.dropped, 0);
    }

    let total = (THREADS * WAVES) as u64 * PER_THREAD;
    assert_eq!(predictions.values().sum::<u64>(), total);
    assert_eq!(predictions, expected.predictions);
    assert_eq!(positive, expected.feedback_positive);
    assert_eq!(negative, expected.feedback_negative);
    assert_eq!(errors, expected.errors);
    for (k, values) in &expected.latency {
        let mut direct = new_latency_histogram();
        for &v in values {
            direct.record(v).unwrap();
        }
        let got = &latency[k];
        assert_eq!(got.len(), direct.len(), "latency count in {k}");
        for v in direct.iter_recorded() {
            assert_eq!(
                got.count_at(v.value_iterated_to()),
                v.count_at_value(),
                "latency bucket {} in {k}",
                v.value_iterated_to()
            );
        }
        assert_eq!(latency_sum[k], values.iter().sum::<u64>(), "exact latency sum in {k}");
        assert_eq!(confidence[k], expected.confidence[k], "confidence bins in {k}");
    }
    let oracle = NumericSummary::of(&expected.x);
    assert_eq!(x.count, oracle.count);
    assert_eq!(x.sketch, oracle.sketch, "the merged sketch equals the sketch of all values");
    assert_eq!((x.min, x.max), (oracle.min, oracle.max));
    assert!((x.mean - oracle.mean).abs() < 1e-9, "mean {} vs {}", x.mean, oracle.mean);
    let (v, ov) = (x.variance().unwrap(), oracle.variance().unwrap());
    // Counts, sums and the mean telescope exactly over flushes. M2 does not quite: a value
    // in flight at a flush can put its sum in one interval and its count in the next, which
    // skews those intervals' M2 by about that value's squared deviation (documented on
    // `NumericSummary::m2`); with back-to-back flushes that is a few parts per million.
    assert!((v - ov).abs() < 1e-4 * ov, "variance {v} vs {ov}");
    assert_eq!(sparse.missing, expected.missing);
    assert_eq!(sparse.count + sparse.missing, total);
    assert_eq!(counter, expected.counter);
    let logged_oracle = NumericSummary::of(&expected.logged);
    assert_eq!(logged.count, logged_oracle.count);
    assert_eq!(logged.sketch, logged_oracle.sketch);
}
