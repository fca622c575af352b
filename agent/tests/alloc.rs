//! After warm-up, no recording call allocates: predictions, latencies, feedback (for now and
//! for an earlier prediction), errors,
//! the local recorder, counters, gauges, distributions, and the diverted paths (a series
//! past the limit, a series logged under another kind, a NaN counter increment), on two
//! threads at once. `allocation_counter` replaces the global allocator in this crate's test
//! binaries and counts the calling thread's allocations.

use modelwatch_agent::*;
use std::time::Duration;

fn calls(h: &Handle, names: &[String], rounds: usize, past: Timestamp) {
    let email = h.segment("email");
    let timeout = h.error_kind("timeout");
    let local = h.local();
    let counter = h.counter("requests", &[("route", "/score")]);
    let gauge = h.gauge("queue_depth", &[]);
    let features = [1.5, f64::NAN, 3.0, 1e300, -2.0];
    for i in 0..rounds {
        let x = i as f64;
        h.record(
            &Prediction::new(email, Duration::from_micros(100 + i as u64), 0.7)
                .features(&features)
                .predicted(true),
        );
        h.record(&Prediction::new("phone", Duration::from_micros(90), 1.5).features(&[x, x, 0.0, x]));
        h.record(
            &Prediction::new("unknown", Latency::from_secs_f64(f64::NAN), 0.1)
                .features(&[x, x, 1.0, x, x])
                .categories(&[Some("de")]),
        );
        local.record(&Prediction::new(email, Duration::from_micros(3), 0.2).features(&features));
        local.record_latency(email, Duration::from_nanos(i as u64));
        h.record_latency("phone", Duration::from_secs(3_600));
        h.feedback(email, 0.9, i % 2 == 0);
        h.feedback(email, f64::NAN, true);
        h.feedback_for(past, "phone", 0.8, true);
        local.feedback_for(past, email, 0.3, false);
        h.error(email, timeout);
        counter.record(1.0);
        counter.record(f64::NAN);
        gauge.record(x);
        h.log_metric("latency_budget", x, &[("tier", "gold")]);
        h.log_metric("requests", 1.0, &[("route", "/score")]); // a counter logged as a distribution
        h.log_metric(&names[i % names.len()], x, &[("k", "v")]); // past the limit
    }
}

#[test]
fn recording_calls_do_not_allocate_after_warm_up() {
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .segments(["email", "phone"])
        .features([
            Feature::numeric("a"),
            Feature::numeric("b"),
            Feature::categorical("country", ["de", "fr"]),
            Feature::numeric("c"),
            Feature::numeric("d"),
        ])
        .max_series(3)
        .clock(ManualClock::new(Timestamp::from_secs(1_764_115_200)))
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    let names: Vec<String> = (0..64).map(|i| format!("runaway_{i}")).collect();
    let past = Timestamp::from_secs(1_764_115_200 - 3_600);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (h, names) = (agent.handle(), &names);
            s.spawn(move || {
                // Warm-up: the shard, the series and their cells (sketch regions are paid for
                // from the budget, not allocated).
                calls(&h, names, 2_000, past);
                let info = allocation_counter::measure(|| calls(&h, names, 2_000, past));
                assert_eq!(info.count_total, 0, "recording allocated: {info:?}");
            });
        }
        // Flushes racing the recording do not make it allocate either.
        for _ in 0..50 {
            agent.flush_now().unwrap();
        }
    });
    agent.flush_now().unwrap();
    let snapshots = sink.take();
    assert_eq!(snapshots.iter().map(|s| s.predictions()).sum::<u64>(), 2 * 4 * 4_000);
    let overflow: u64 = snapshots.iter().map(|s| s.overflow.metric_series).sum();
    let conflicts: u64 = snapshots.iter().map(|s| s.overflow.kind_conflicts).sum();
    let invalid: u64 = snapshots.iter().map(|s| s.overflow.metric_invalid).sum();
    assert_eq!((overflow, conflicts, invalid), (2 * 4_000, 2 * 4_000, 2 * 4_000));
    let cohort_labels: u64 = snapshots.iter().flat_map(|s| &s.cohorts).map(|c| c.count()).sum();
    let lost: u64 = snapshots.iter().map(|s| s.overflow.labels_dropped).sum();
    assert_eq!((cohort_labels, lost), (2 * 2 * 4_000, 0), "every label for an earlier prediction arrived");
}
