//! The detectors' mean detection delay at ERT 10,000, and ADWIN beside river's:
//!
//! ```text
//! MODELWATCH_PYTHON=~/.cache/modelwatch-venv/bin/python \
//!     cargo run --release -p modelwatch-query --example detector_delays
//! ```
//!
//! Intervals of 1 minute whose counts follow a daily cycle from 10 to 100 samples; 2,000
//! intervals without change, then each interval's mean moves by 0.3 or 1 of its own standard
//! error (σ/√n) for up to 20,000 intervals. The delay is the intervals from the change to
//! the first alarm at or after it, over 200 seeded runs; runs with an alarm before the change
//! are counted. Then river's `drift.ADWIN()` and ours with river's parameters
//! (`Adwin::with_delta(0.002)`) on five streams of a million samples, N(0, 1) then N(0.3, 1)
//! from the 500,000th (river through `MODELWATCH_PYTHON` and tests/detect/river_adwin.py).

#[path = "support/sim.rs"]
mod sim;

use modelwatch_query::detect::{Adwin, Detector, DetectorKind, Point};

const BEFORE: usize = 2_000;
const AFTER: usize = 20_000;
const RUNS: u64 = 200;

fn main() {
    println!(
        "detector       shift   mean delay   median   (intervals; runs with an alarm before the change)"
    );
    for kind in [DetectorKind::Cusum, DetectorKind::PageHinkley, DetectorKind::Adwin] {
        let d = kind.with_ert(10_000.0).unwrap();
        for shift in [0.3, 1.0] {
            let (mut delays, mut early, mut missed) = (Vec::new(), 0, 0);
            for seed in 0..RUNS {
                let mut z = sim::noise(seed * 1_000 + 17);
                let points: Vec<Point> = (0..BEFORE + AFTER)
                    .map(|i| {
                        let n = sim::daily_count(i);
                        let x = z() + if i >= BEFORE { shift } else { 0.0 };
                        Point::new(i as i64 * 60_000, 0.82 + 0.1 / n.sqrt() * x, n)
                    })
                    .collect();
                let alarms = d.run(&points);
                early += usize::from(alarms.first().is_some_and(|a| a.index < BEFORE));
                match alarms.iter().find(|a| a.index >= BEFORE) {
                    Some(a) => delays.push((a.index - BEFORE) as f64),
                    None => missed += 1,
                }
            }
            delays.sort_by(f64::total_cmp);
            let mean = delays.iter().sum::<f64>() / delays.len().max(1) as f64;
            let median = delays.get(delays.len() / 2).copied().unwrap_or(f64::NAN);
            println!(
                "{:<14} {shift:>4}σ {mean:>12.1} {median:>8.0}   ({early} of {RUNS} early, {missed} missed)",
                kind.to_string()
            );
        }
    }
    river_comparison();
}

fn river_comparison() {
    let Ok(python) = std::env::var("MODELWATCH_PYTHON") else {
        println!("river: set MODELWATCH_PYTHON to a Python with river to compare");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/detect/river_adwin.py");
    let dir = std::env::temp_dir().join(format!("detector_delays-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for seed in 0..5u64 {
        let mut z = sim::noise(seed * 7_919 + 20_071);
        let values: Vec<f64> = (0..1_000_000).map(|i| z() + if i >= 500_000 { 0.3 } else { 0.0 }).collect();
        let path = dir.join("stream.f64");
        std::fs::write(&path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        let out = std::process::Command::new(&python).arg(script).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let alarms: Vec<usize> = text
            .split("\"alarms\": [")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .map(|s| s.split(',').filter_map(|a| a.trim().parse().ok()).collect())
            .unwrap_or_default();
        let points: Vec<Point> =
            values.iter().enumerate().map(|(i, &v)| Point::sample(i as i64, v)).collect();
        let mine: Vec<usize> =
            Adwin::with_delta(0.002).unwrap().run(&points).iter().map(|a| a.index).collect();
        let first = |a: &[usize]| a.iter().find(|&&i| i >= 500_000).map(|i| i - 500_000);
        let early = |a: &[usize]| a.iter().filter(|&&i| i < 500_000).count();
        println!(
            "0.3 shift in a million samples, seed {seed}: ours delay {:?} ({} early), river {:?} ({} early)",
            first(&mine),
            early(&mine),
            first(&alarms),
            early(&alarms)
        );
        ours.extend(first(&mine));
        theirs.extend(first(&alarms));
    }
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    println!("ADWIN mean delay, samples: ours {:.0}, river {:.0}", mean(&ours), mean(&theirs));
    std::fs::remove_dir_all(&dir).ok();
}
