//! Labels for earlier predictions (`feedback_for`): each goes to its prediction's interval
//! with its delay, whatever interval it arrives in; too late, future and overflowing labels
//! are counted, and the counts add up to the calls.

use modelwatch_agent::*;
use std::sync::Arc;
use std::time::Duration;

const T0: u64 = 1_764_115_200; // seconds, 2025-11-26T00:00:00Z

fn agent(clock: &Arc<ManualClock>, b: AgentBuilder) -> (Agent, MemorySink) {
    let sink = MemorySink::new();
    let agent = b
        .segments(["email", "phone"])
        .interval(Duration::from_secs(10))
        .clock(clock.clone())
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    (agent, sink)
}

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs(T0 + s)
}

#[test]
fn a_label_goes_to_its_predictions_interval_with_its_delay() {
    let clock = Arc::new(ManualClock::new(secs(0)));
    let (agent, sink) = agent(&clock, Agent::builder("m"));
    let h = agent.handle();
    clock.set(secs(3_600));
    agent.flush_due().unwrap(); // nothing recorded yet: no snapshot, the interval moves on
    h.feedback_for(secs(5), "email", 0.91, true);
    h.feedback_for(secs(7), "email", 0.91, false);
    h.feedback_for(secs(15), "phone", 0.2, false);
    h.feedback_for(secs(3_600), "email", 0.5, true); // in the open interval, delay 0
    clock.set(secs(3_610));
    agent.flush_due().unwrap();
    let snaps = sink.take();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    assert_eq!((s.start, s.end), (secs(3_600), secs(3_610)), "arrived in this interval");
    let at: Vec<(Timestamp, &str, u64)> =
        s.cohorts.iter().map(|c| (c.start, &*c.segment, c.count())).collect();
    assert_eq!(at, [(secs(0), "email", 2), (secs(10), "phone", 1), (secs(3_600), "email", 1)]);
    let first = &s.cohorts[0];
    assert_eq!(first.end, secs(10));
    assert_eq!((first.positive.as_slice(), first.negative.as_slice()), (&[(910, 1)][..], &[(910, 1)][..]));
    assert_eq!((first.delay.count, first.delay.min, first.delay.max), (2, Some(3_593.0), Some(3_595.0)));
    assert_eq!(s.cohorts[2].delay.max, Some(0.0));
    assert!(s.segments.iter().all(|g| g.feedback() == 0), "nothing at arrival's interval cells");
}

#[test]
fn too_late_future_and_invalid_labels_are_counted_not_recorded() {
    let clock = Arc::new(ManualClock::new(secs(40 * 86_400)));
    let (agent, sink) = agent(&clock, Agent::builder("m").max_label_delay(Duration::from_secs(86_400)));
    let h = agent.handle();
    h.feedback_for(secs(39 * 86_400 - 1), "email", 0.9, true); // a day and a second late
    h.feedback_for(secs(39 * 86_400), "email", 0.9, true); // exactly a day: kept
    h.feedback_for(secs(41 * 86_400), "email", 0.9, true); // in the future: at now
    h.feedback_for(secs(40 * 86_400), "email", f64::NAN, true);
    h.feedback_for(secs(40 * 86_400), "email", 1.5, false);
    clock.set(secs(40 * 86_400 + 10));
    agent.flush_due().unwrap();
    let s = &sink.take()[0];
    assert_eq!((s.overflow.labels_too_late, s.overflow.labels_future), (1, 1));
    let at: Vec<(Timestamp, u64)> = s.cohorts.iter().map(|c| (c.start, c.count())).collect();
    assert_eq!(at, [(secs(39 * 86_400), 1), (secs(40 * 86_400), 1)]);
    let invalid: u64 = s.segments.iter().map(|g| g.invalid.feedback_confidence).sum();
    assert_eq!(invalid, 2, "NaN and 1.5 are invalid feedback, as with `feedback`");
}

#[test]
fn a_full_label_queue_counts_what_it_drops_and_the_counts_add_up() {
    let clock = Arc::new(ManualClock::new(secs(100)));
    let (agent, sink) = agent(&clock, Agent::builder("m").max_pending_labels(4));
    let h = agent.handle();
    for i in 0..10 {
        h.feedback_for(secs(i), "email", 0.1 * i as f64, i % 2 == 0);
    }
    clock.set(secs(110));
    agent.flush_due().unwrap();
    let s = &sink.take()[0];
    let kept: u64 = s.cohorts.iter().map(|c| c.count()).sum();
    assert_eq!((kept, s.overflow.labels_dropped), (4, 6));
}

/// Labels racing flushes from four threads: every one is in exactly one snapshot.
#[test]
fn labels_from_many_threads_racing_flushes_all_arrive_once() {
    let clock = Arc::new(ManualClock::new(secs(1_000)));
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .segments(["email"])
        .interval(Duration::from_millis(1))
        .clock(clock.clone())
        .max_pending_labels(1 << 20)
        .build(sink.clone())
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let h = agent.handle();
            s.spawn(move || {
                for i in 0..20_000u64 {
                    h.feedback_for(secs(i % 997), "email", ((i + t) % 100) as f64 / 100.0, i % 3 == 0);
                }
            });
        }
        for i in 0..200 {
            clock.set(Timestamp::from_nanos(secs(1_000).as_nanos() + i * 1_000_000));
            std::thread::yield_now();
        }
    });
    clock.set(secs(2_000));
    agent.shutdown().unwrap();
    let snaps = sink.take();
    let labels: u64 = snaps.iter().flat_map(|s| &s.cohorts).map(|c| c.count()).sum();
    let dropped: u64 = snaps.iter().map(|s| s.overflow.labels_dropped).sum();
    assert_eq!(labels + dropped, 80_000);
    assert_eq!(dropped, 0, "a queue of 2^20 never fills");
    let positives: u64 = snaps.iter().flat_map(|s| &s.cohorts).flat_map(|c| &c.positive).map(|b| b.1).sum();
    assert_eq!(positives, 4 * (20_000 / 3 + 1));
}

#[test]
fn merged_snapshots_merge_their_cohorts() {
    let clock = Arc::new(ManualClock::new(secs(100)));
    let (agent, sink) = agent(&clock, Agent::builder("m"));
    let h = agent.handle();
    for k in 0..2 {
        h.feedback_for(secs(1), "email", 0.5, true);
        h.feedback_for(secs(1), "email", 0.7, k == 0);
        clock.set(secs(110 + 10 * k));
        agent.flush_due().unwrap();
    }
    let snaps = sink.take();
    let mut merged = (*snaps[0]).clone();
    merged.merge(&snaps[1]);
    assert_eq!(merged.cohorts.len(), 1);
    let c = &merged.cohorts[0];
    assert_eq!((c.positive.as_slice(), c.negative.as_slice()), (&[(500, 2), (700, 1)][..], &[(700, 1)][..]));
    assert_eq!(c.delay.count, 4);
}

/// A thread flooding `feedback_for` into a small queue never delays a snapshot: after each
/// interval the background flusher collects it (the flood used to keep it draining).
#[test]
fn a_flood_of_labels_does_not_hold_up_the_flusher() {
    let clock = Arc::new(ManualClock::new(secs(1_000)));
    let sink = MemorySink::new();
    let agent = Agent::builder("m")
        .segments(["email"])
        .interval(Duration::from_secs(10))
        .clock(clock.clone())
        .max_pending_labels(1_024)
        .build(sink.clone())
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut late = None;
    std::thread::scope(|s| {
        let h = agent.handle();
        let stop = &stop;
        s.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                h.feedback_for(secs(500), "email", 0.5, true);
            }
        });
        let mut seen = 0;
        'intervals: for k in 0..20u64 {
            agent.handle().record(&Prediction::new("email", Duration::from_millis(1), 0.5));
            clock.set(secs(1_010 + 10 * k));
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while sink.snapshots().len() == seen {
                if std::time::Instant::now() > deadline {
                    late = Some(k);
                    break 'intervals;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen = sink.snapshots().len();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(late, None, "an interval was not collected within 20 s under the flood");
    let snaps = sink.snapshots();
    assert!(
        snaps
            .iter()
            .take(20)
            .all(|s| s.predictions() == 1
                && s.end.saturating_duration_since(s.start) == Duration::from_secs(10))
    );
}
