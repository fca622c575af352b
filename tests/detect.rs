//! Our ADWIN against river's `drift.ADWIN` (tests/detect/river_adwin.py) on the same bytes:
//! a million samples, N(0, 1) then N(0.3, 1) from the 500,000th. Needs `MODELWATCH_PYTHON`,
//! a Python with river (scripts/test installs it).

use crate::support::Rng;
use modelwatch_query::detect::{Adwin, Detector, Point};
use serde_json::Value;

const LEN: usize = 1_000_000;
const SHIFT_AT: usize = 500_000;

/// The stream, seeded.
fn stream(seed: u64) -> Vec<f64> {
    let mut rng = Rng::seeded(seed);
    (0..LEN).map(|i| rng.normal() + if i >= SHIFT_AT { 0.3 } else { 0.0 }).collect()
}

/// river's alarm indices on `values`.
fn river(dir: &std::path::Path, values: &[f64]) -> Vec<usize> {
    let python = std::env::var("MODELWATCH_PYTHON")
        .expect("MODELWATCH_PYTHON (a Python with river; scripts/test sets it)");
    let path = dir.join("stream.f64");
    std::fs::write(&path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let out = std::process::Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/detect/river_adwin.py"))
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "river_adwin.py (is river installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["alarms"].as_array().unwrap().iter().map(|a| a.as_u64().unwrap() as usize).collect()
}

#[test]
fn adwin_finds_a_small_shift_in_a_million_samples_as_fast_as_river() {
    let dir = tempfile::tempdir().unwrap();
    let values = stream(20_071);
    let theirs = river(dir.path(), &values);
    let points: Vec<Point> = values.iter().enumerate().map(|(i, &v)| Point::sample(i as i64, v)).collect();
    let ours: Vec<usize> = Adwin::with_delta(0.002).unwrap().run(&points).iter().map(|a| a.index).collect();
    let first_after = |alarms: &[usize]| alarms.iter().find(|&&i| i >= SHIFT_AT).map(|i| i - SHIFT_AT);
    assert!(
        ours.iter().all(|&i| i >= SHIFT_AT),
        "false alarms before the shift: ours {ours:?}, river {theirs:?}"
    );
    let delay = first_after(&ours).unwrap_or_else(|| panic!("ours found nothing; river {theirs:?}"));
    let river_delay = first_after(&theirs).unwrap_or_else(|| panic!("river found nothing; ours {ours:?}"));
    assert!(
        delay <= 2 * river_delay && river_delay <= 2 * delay,
        "delay: ours {delay} samples, river {river_delay} (ours {ours:?}, river {theirs:?})"
    );
}
