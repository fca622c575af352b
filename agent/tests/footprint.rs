//! Process memory of the agent at the default budget: 64 recording threads × 7 segments
//! (6 + `other`) × 32 numeric features whose values spread over six decades add at most
//! 64 MiB of resident memory and 256 MiB of address space, after recording and after a
//! flush (default builder settings, a `NullSink`).
//!
//! A test binary of its own with a single test: it reads the whole process's
//! /proc/self/status, which other tests running beside it would disturb. Linux only:
//! elsewhere it fails, saying so. `examples/footprint.rs` measures the same configuration
//! with more predictions per thread, in release.
//!
//! The baseline is read after the 64 threads are started and each has made a small heap
//! allocation, so that their stacks and glibc's per-thread malloc arenas, which any scorer
//! thread has, are not billed to the agent; the threads stay alive until the last reading.

use modelwatch_agent::{Agent, Feature, Handle, NullSink, Prediction};
use std::hint::black_box;
use std::sync::{Barrier, OnceLock};
use std::time::Duration;

const THREADS: usize = 64;
const FEATURES: usize = 32;
const SEGMENTS: [&str; 6] = ["email", "phone", "ssn", "credit_card", "name", "address"];
/// 300 per segment and thread: enough to touch every page a long-running scorer would.
const PREDICTIONS: u64 = 2_100;
const RESIDENT_BUDGET_KIB: i64 = 64 * 1024;
const ADDRESS_SPACE_BUDGET_KIB: i64 = 256 * 1024;

/// splitmix64's finaliser: a cheap deterministic generator.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) from a seed.
fn unit(seed: u64) -> f64 {
    (mix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// Feature `j` of prediction `i` on thread `t`: log-uniform over [1e-2, 1e4), a different
/// sequence per feature.
fn six_decades(t: u64, i: u64, j: u64) -> f64 {
    10f64.powf(-2.0 + 6.0 * unit((t << 48) ^ (j << 40) ^ i))
}

/// VmRSS and VmSize of this process, KiB.
#[derive(Clone, Copy, Debug)]
struct Mem {
    rss: i64,
    size: i64,
}

impl Mem {
    fn now() -> Result<Mem, String> {
        let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
            format!("cannot read /proc/self/status ({e}): this test measures process memory through Linux's /proc and runs on Linux only")
        })?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| format!("no {name} line in /proc/self/status"))
        };
        Ok(Mem { rss: field("VmRSS:")?, size: field("VmSize:")? })
    }
}

/// One thread's predictions: segments in turn (with `other`), latencies of 0.2 to 3.2 ms,
/// uniform confidences, feedback for one prediction in ten.
fn record(h: &Handle, t: u64) {
    let segs: Vec<_> = SEGMENTS.iter().chain(&["other"]).map(|n| h.segment(n)).collect();
    let mut x = [0.0; FEATURES];
    for i in 0..PREDICTIONS {
        x.iter_mut().enumerate().for_each(|(j, v)| *v = six_decades(t, i, j as u64));
        let seg = segs[((i + t) % 7) as usize];
        let latency = Duration::from_secs_f64(200e-6 * 16f64.powf(unit(!i ^ (t << 32))));
        let confidence = unit(i ^ (t << 32) ^ (1 << 63));
        h.record(&Prediction::new(seg, latency, confidence).features(&x));
        if i % 10 == 0 {
            h.feedback(seg, confidence, i % 20 == 0);
        }
    }
}

#[test]
fn sixty_four_threads_by_seven_segments_by_32_features_stay_within_the_default_budget() {
    let barrier = || Barrier::new(THREADS + 1);
    let (ready, start, recorded, exit) = (barrier(), barrier(), barrier(), barrier());
    let handle = OnceLock::<Handle>::new();
    // Nothing between the barriers may panic: the threads would wait forever.
    let (base, agent, after_recording, flushed, after_flush) = std::thread::scope(|s| {
        for t in 0..THREADS {
            let (ready, start, recorded, exit, handle) = (&ready, &start, &recorded, &exit, &handle);
            s.spawn(move || {
                let arena = black_box(vec![t as u8; 64]);
                ready.wait();
                start.wait();
                if let Some(h) = handle.get() {
                    record(h, t as u64);
                }
                recorded.wait();
                exit.wait();
                drop(arena);
            });
        }
        ready.wait();
        let base = Mem::now();
        let agent = Agent::builder("pii-confidence")
            .segments(SEGMENTS)
            .features((0..FEATURES).map(|j| Feature::numeric(format!("f{j}"))))
            .build(NullSink);
        if let Ok(a) = &agent {
            let _ = handle.set(a.handle());
        }
        start.wait();
        recorded.wait();
        let after_recording = Mem::now();
        let flushed = agent.as_ref().ok().map(Agent::flush_now);
        let after_flush = Mem::now();
        exit.wait();
        (base, agent, after_recording, flushed, after_flush)
    });
    let base = base.unwrap_or_else(|e| panic!("{e}"));
    let agent = agent.expect("the default configuration builds");
    flushed.expect("an agent was built").expect("a NullSink never fails");
    let stats = agent.stats();
    let mut over = Vec::new();
    for (when, m) in [("after recording", after_recording), ("after the first flush", after_flush)] {
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        let (rss, size) = (m.rss - base.rss, m.size - base.size);
        eprintln!("{when}: resident +{} KiB, address space +{} KiB; {stats:?}", rss, size);
        if rss > RESIDENT_BUDGET_KIB {
            over.push(format!("{when}: resident memory grew by {:.1} MiB, over 64 MiB", rss as f64 / 1024.0));
        }
        if size > ADDRESS_SPACE_BUDGET_KIB {
            over.push(format!("{when}: address space grew by {:.1} MiB, over 256 MiB", size as f64 / 1024.0));
        }
    }
    assert!(
        over.is_empty(),
        "{THREADS} threads × 7 segments × {FEATURES} features, {PREDICTIONS} predictions per thread ({stats:?}):\n{}",
        over.join("\n")
    );
}
