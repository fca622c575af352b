//! Process memory the agent adds, at the default budget (default builder settings, a
//! `NullSink`), in two cases:
//!
//! - `scale`: 64 recording threads × 7 segments (6 + `other`) × 32 numeric features whose
//!   values spread over six decades (log-uniform over [1e-2, 1e4), a different sequence per
//!   feature), 20,000 predictions per thread. Goal: resident memory ≤ 64 MiB and address
//!   space ≤ 256 MiB (`agent/tests/footprint.rs` asserts the same on a smaller run).
//! - `quickstart`: 8 threads × 7 segments × 4 numeric features of small range, 100,000
//!   predictions per thread (the figures BENCHMARKS.md quoted before the scale case).
//!
//! How: each case runs in a child process of its own, so that it inherits no freed memory
//! from the other. The recording threads start first and each makes a small heap
//! allocation; only then is the baseline read from /proc/self/status, so that their stacks
//! and glibc's per-thread malloc arenas, which any scorer thread has, are not billed to the
//! agent. Then the agent is built, every thread records (and sends feedback for one
//! prediction in ten), and VmRSS (resident) and VmSize (address space) are read again
//! after recording and after the first flush, while the threads are still alive.
//!
//! Run: `cargo run --release --example footprint` (both cases), or `-- scale` /
//! `-- quickstart` for one. Linux only (/proc).

use modelwatch::agent::NullSink;
use modelwatch::{Agent, Feature, Handle, Prediction};
use std::hint::black_box;
use std::process::{Command, ExitCode};
use std::sync::{Barrier, OnceLock};
use std::time::Duration;

const SEGMENTS: [&str; 6] = ["email", "phone", "ssn", "credit_card", "name", "address"];
const MIB: f64 = 1024.0;

/// One configuration to measure.
struct Case {
    threads: usize,
    features: Vec<Feature>,
    predictions: u64,
    /// Writes feature values of prediction `i` of thread `t` into the slice.
    values: fn(u64, u64, &mut [f64]),
}

fn scale() -> Case {
    Case {
        threads: 64,
        features: (0..32).map(|j| Feature::numeric(format!("f{j}"))).collect(),
        predictions: 20_000,
        values: |t, i, out| out.iter_mut().enumerate().for_each(|(j, v)| *v = six_decades(t, i, j as u64)),
    }
}

fn quickstart() -> Case {
    Case {
        threads: 8,
        features: ["token_length", "digit_ratio", "context_score", "has_at_sign"]
            .map(Feature::numeric)
            .into(),
        predictions: 100_000,
        values: |_, i, out| {
            out.copy_from_slice(&[
                5.0 + (i % 20) as f64,
                (i % 100) as f64 / 100.0,
                (i % 7) as f64 / 7.0,
                (i % 2) as f64,
            ])
        },
    }
}

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

/// Feature `j` of prediction `i` on thread `t`: log-uniform over [1e-2, 1e4).
fn six_decades(t: u64, i: u64, j: u64) -> f64 {
    10f64.powf(-2.0 + 6.0 * unit((t << 48) ^ (j << 40) ^ i))
}

/// VmRSS and VmSize of this process, KiB.
#[derive(Clone, Copy)]
struct Mem {
    rss: u64,
    size: u64,
}

impl Mem {
    fn now() -> Result<Mem, String> {
        let status = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| format!("cannot read /proc/self/status ({e}); this example runs on Linux only"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| format!("no {name} line in /proc/self/status"))
        };
        Ok(Mem { rss: field("VmRSS:")?, size: field("VmSize:")? })
    }

    fn since(self, base: Mem) -> String {
        let d = |a: u64, b: u64| (a as f64 - b as f64) / MIB;
        format!(
            "resident +{:.1} MiB, address space +{:.1} MiB",
            d(self.rss, base.rss),
            d(self.size, base.size)
        )
    }
}

/// One thread's predictions: segments in turn (with `other`), latencies of 0.2 to 3.2 ms,
/// uniform confidences, feedback for one prediction in ten.
fn record(h: &Handle, t: u64, case: &Case) {
    let segs: Vec<_> = SEGMENTS.iter().chain(&["other"]).map(|n| h.segment(n)).collect();
    let mut x = vec![0.0; case.features.len()];
    for i in 0..case.predictions {
        (case.values)(t, i, &mut x);
        let seg = segs[((i + t) % 7) as usize];
        let latency = Duration::from_secs_f64(200e-6 * 16f64.powf(unit(!i ^ (t << 32))));
        let confidence = unit(i ^ (t << 32) ^ (1 << 63));
        h.record(&Prediction::new(seg, latency, confidence).features(&x));
        if i % 10 == 0 {
            h.feedback(seg, confidence, i % 20 == 0);
        }
    }
}

fn measure(case: &Case) -> Result<(), String> {
    let n = case.threads;
    let (ready, start, recorded, exit) =
        (Barrier::new(n + 1), Barrier::new(n + 1), Barrier::new(n + 1), Barrier::new(n + 1));
    let handle = OnceLock::<Handle>::new();
    // Nothing between the barriers may return early: the threads would wait forever.
    let (base, agent, after_recording, flushed, after_flush) = std::thread::scope(|s| {
        for t in 0..n {
            let (ready, start, recorded, exit, handle) = (&ready, &start, &recorded, &exit, &handle);
            s.spawn(move || {
                let arena = black_box(vec![t as u8; 64]);
                ready.wait();
                start.wait();
                if let Some(h) = handle.get() {
                    record(h, t as u64, case);
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
            .features(case.features.clone())
            .build(NullSink)
            .map_err(|e| format!("agent: {e}"));
        if let Ok(a) = &agent {
            let _ = handle.set(a.handle());
        }
        start.wait();
        recorded.wait();
        let after_recording = Mem::now();
        let flushed = match &agent {
            Ok(a) => a.flush_now().map_err(|e| format!("flush: {e}")),
            Err(e) => Err(e.clone()),
        };
        let after_flush = Mem::now();
        exit.wait();
        (base, agent, after_recording, flushed, after_flush)
    });
    let agent = agent?;
    flushed?;
    let base = base?;
    println!(
        "{} threads × 7 segments × {} numeric features, {} predictions per thread",
        n,
        case.features.len(),
        case.predictions
    );
    println!("  after recording:       {}", after_recording?.since(base));
    println!("  after the first flush: {}", after_flush?.since(base));
    println!("  {:?}", agent.stats());
    Ok(())
}

fn main() -> ExitCode {
    let case = std::env::args().nth(1);
    let result = match case.as_deref() {
        Some("scale") => measure(&scale()),
        Some("quickstart") => measure(&quickstart()),
        Some(other) => Err(format!("unknown case {other:?}: expected `scale` or `quickstart`")),
        // Each case in a fresh process, so that neither inherits the other's freed memory.
        None => ["scale", "quickstart"].into_iter().try_for_each(|c| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let status = Command::new(exe).arg(c).status().map_err(|e| e.to_string())?;
            if status.success() { Ok(()) } else { Err(format!("case {c} failed: {status}")) }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("footprint: {e}");
            ExitCode::FAILURE
        }
    }
}
