use super::*;

// The seeded streams the detector examples use: one generator for both.
#[path = "../../examples/support/sim.rs"]
mod sim;

use sim::{daily_count, noise};

fn series(values: &[f64]) -> Vec<Point> {
    values.iter().enumerate().map(|(i, &v)| Point::sample(i as i64 * 60_000, v)).collect()
}

fn all(ert: f64) -> [Box<dyn Detector + Send + Sync>; 3] {
    [DetectorKind::Cusum, DetectorKind::PageHinkley, DetectorKind::Adwin].map(|k| k.with_ert(ert).unwrap())
}

#[test]
fn a_one_sigma_drop_in_mean_confidence_is_found_within_a_bounded_delay() {
    // Mean confidence per minute: 0.82 ± 0.01, then 0.81 (1 σ down) from minute 1,000.
    let mut z = noise(7);
    let values: Vec<f64> = (0..2_000).map(|i| if i < 1_000 { 0.82 } else { 0.81 } + 0.01 * z()).collect();
    for d in all(DEFAULT_ERT) {
        let alarms = d.run(&series(&values));
        let name = d.name();
        let first = alarms.first().unwrap_or_else(|| panic!("{name} found nothing"));
        assert!(first.index >= 1_000, "{name}: false alarm at {}", first.index);
        assert_eq!(first.direction, Direction::Down, "{name}");
        let delay = first.index - 1_000;
        assert!(delay <= 60, "{name}: delay {delay} intervals");
    }
}

#[test]
fn a_one_standard_error_rise_is_found_whatever_the_counts() {
    // Interval means of 10 to 100 samples (σ = 0.1 per sample), up by one standard error of
    // each interval's mean from minute 3,000 (a busy afternoon).
    let mut z = noise(11);
    let points: Vec<Point> = (0..4_000)
        .map(|i| {
            let n = daily_count(i);
            let shift = if i >= 3_000 { 1.0 } else { 0.0 };
            Point::new(i as i64 * 60_000, 0.82 + 0.1 / n.sqrt() * (z() + shift), n)
        })
        .collect();
    for d in all(DEFAULT_ERT) {
        let name = d.name();
        let first = d.run(&points).into_iter().find(|a| a.index >= 3_000);
        let first = first.unwrap_or_else(|| panic!("{name} found nothing"));
        assert_eq!(first.direction, Direction::Up, "{name}");
        assert!(first.index - 3_000 <= 80, "{name}: delay {} intervals", first.index - 3_000);
    }
}

#[test]
fn false_alarms_follow_the_ert_when_counts_vary_tenfold_over_a_day() {
    // No change, 1-minute intervals whose counts follow a daily cycle from 10 to 100: the
    // false alarms per million intervals must be within 2x of 1/ERT (100 for ERT 10,000).
    // The full million: about 4 s for the three detectors in a debug build.
    let len = 1_000_000;
    let mut z = noise(2026);
    let points: Vec<Point> = (0..len)
        .map(|i| {
            let n = daily_count(i);
            Point::new(i as i64 * 60_000, 0.82 + 0.1 / n.sqrt() * z(), n)
        })
        .collect();
    let mut report = Vec::new();
    for d in all(DEFAULT_ERT) {
        let per_million = d.run(&points).len() as f64 * 1e6 / len as f64;
        report.push((d.name(), per_million));
    }
    println!("false alarms per million intervals: {report:?}");
    for (name, per_million) in &report {
        assert!(
            (50.0..=200.0).contains(per_million),
            "{name}: {per_million} false alarms per million ({report:?})"
        );
    }
}

#[test]
fn the_threshold_follows_the_ert() {
    // Montgomery's table: two-sided CUSUM, k = 0.5, h = 4 has an in-control ARL of 168.
    assert!((decision_interval(0.5, 168.0) - 4.0).abs() < 0.05, "{}", decision_interval(0.5, 168.0));
    let (a, b) = (Cusum::with_ert(1_000.0).unwrap(), Cusum::with_ert(100_000.0).unwrap());
    assert!(a.h < Cusum::default().h && Cusum::default().h < b.h);
    assert!((Cusum::default().h - 8.05).abs() < 0.01, "{}", Cusum::default().h);
    let (a, b) = (Adwin::with_ert(1_000.0).unwrap(), Adwin::with_ert(100_000.0).unwrap());
    assert!(a.delta > b.delta);
}

#[test]
fn bad_parameters_are_refused_with_what_was_wrong() {
    for ert in [f64::NAN, f64::INFINITY, -1.0, 10.0] {
        for kind in [DetectorKind::Cusum, DetectorKind::PageHinkley, DetectorKind::Adwin] {
            let e = kind.with_ert(ert).err().unwrap_or_else(|| panic!("{kind} took ERT {ert}"));
            assert!(matches!(e, DetectError::Ert(_)), "{e}");
            assert!(e.to_string().contains("ERT") && e.to_string().contains(&ert.to_string()), "{e}");
        }
    }
    let e = Cusum::new(0.0, 1e4).unwrap_err();
    assert!(e.to_string().contains("parameter k") && e.to_string().contains("got 0"), "{e}");
    assert!(Adwin::with_delta(1.5).unwrap_err().to_string().contains("delta"));
    assert_eq!("adwin".parse::<DetectorKind>(), Ok(DetectorKind::Adwin));
    let e = "ewma".parse::<DetectorKind>().unwrap_err();
    assert!(e.to_string().contains("\"ewma\"") && e.to_string().contains("page_hinkley"), "{e}");
}

#[test]
fn empty_and_unusable_intervals_are_skipped() {
    let mut z = noise(3);
    let mut points: Vec<Point> = (0..500).map(|i| Point::new(i * 60_000, 0.5 + 0.01 * z(), 20.0)).collect();
    let clean: Vec<Vec<Alarm>> = all(DEFAULT_ERT).iter().map(|d| d.run(&points)).collect();
    for (i, bad) in [(0.0, 0.0), (f64::NAN, 5.0), (0.7, f64::NAN), (f64::INFINITY, 3.0), (0.9, -2.0)]
        .into_iter()
        .enumerate()
    {
        points.insert(40 + 37 * i, Point::new(0, bad.0, bad.1));
    }
    for (d, clean) in all(DEFAULT_ERT).iter().zip(clean) {
        assert_eq!(d.run(&points).len(), clean.len(), "{}", d.name());
        assert!(d.run(&[]).is_empty() && d.run(&points[..3]).is_empty());
    }
    // A constant series raises nothing.
    let flat: Vec<Point> = (0..2_000).map(|i| Point::new(i * 60_000, 0.8, 10.0)).collect();
    for d in all(DEFAULT_ERT) {
        assert!(d.run(&flat).is_empty(), "{}", d.name());
    }
}

#[test]
fn counts_are_matched_to_values_by_time() {
    let values = [(0, 0.8), (600_000, 0.7), (1_200_000, 0.9)];
    let counts = [(1_200_000, 5.0), (0, 40.0)];
    assert_eq!(weighted(&values, &counts), [Point::new(0, 0.8, 40.0), Point::new(1_200_000, 0.9, 5.0)]);
    assert_eq!(samples(&values[..1]), [Point::sample(0, 0.8)]);
}

#[test]
fn a_series_that_never_varies_raises_nothing_whatever_its_value_and_counts() {
    // 0.1 and 0.3 are not exact in binary: sub-window means differ in their last bit.
    let series = [
        (0..5_000).map(|i| Point::sample(i, 0.1)).collect::<Vec<_>>(),
        (0..5_000).map(|i| Point::new(i, 0.3, (3 + 4 * (i % 25)) as f64)).collect(),
        (0..5_000).map(|i| Point::new(i, 0.7, 1e12)).collect(),
    ];
    for s in &series {
        for d in all(DEFAULT_ERT) {
            assert!(d.run(s).is_empty(), "{} on {:?}: {:?}", d.name(), s[0], d.run(s).first());
        }
    }
}

#[test]
fn the_alarms_do_not_depend_on_the_unit() {
    // The same series in units 2^600 and 2^-1000 times larger (values near 1e180 and 1e-301):
    // the same alarms at the same places, none lost to overflow or underflow.
    let mut z = noise(5);
    let base: Vec<Point> = (0..20_000)
        .map(|i| {
            let n = daily_count(i);
            let shift = if i >= 15_000 { 1.0 } else { 0.0 };
            Point::new(i as i64 * 60_000, 0.82 + 0.1 / n.sqrt() * (z() + shift), n)
        })
        .collect();
    for d in all(DEFAULT_ERT) {
        let alarms = |unit: f64| -> Vec<(usize, Direction)> {
            let scaled: Vec<Point> = base.iter().map(|p| Point { value: p.value * unit, ..*p }).collect();
            d.run(&scaled).iter().map(|a| (a.index, a.direction)).collect()
        };
        let at_one = alarms(1.0);
        assert!(at_one.iter().any(|a| a.0 >= 15_000), "{}: the shift is not found: {at_one:?}", d.name());
        assert_eq!(alarms(2f64.powi(600)), at_one, "{}", d.name());
        assert_eq!(alarms(2f64.powi(-1000)), at_one, "{}", d.name());
    }
}

#[test]
fn one_gross_outlier_in_the_first_intervals_does_not_blind_the_detectors() {
    // 0.82 ± 0.01 with a 10 σ step at 2,000, and one absurd value at 5 (1e160 overflows the
    // squared deviations; 1e150 does not, and would inflate the self-started spread).
    for outlier in [1e160, 1e150] {
        let mut z = noise(9);
        let mut points: Vec<Point> = (0..3_000)
            .map(|i| Point::new(i, 0.82 + 0.01 * z() + if i >= 2_000 { 0.1 } else { 0.0 }, 10.0))
            .collect();
        points[5].value = outlier;
        for d in all(DEFAULT_ERT) {
            let alarms = d.run(&points);
            let found = alarms.iter().find(|a| a.index >= 2_000).map(|a| a.index - 2_000);
            assert!(found.is_some_and(|delay| delay <= 20), "{} after {outlier}: {alarms:?}", d.name());
        }
    }
}

#[test]
fn gauges_are_one_figure_per_interval_and_a_grouped_query_is_refused() {
    use crate::parse::parse;
    use crate::testing::{Recorder, T0};
    use modelwatch_agent::{Agent, Prediction};
    use std::time::Duration;
    let rec = Recorder::new(Agent::builder("pii").segments(["phone", "email"]), Duration::from_secs(60));
    let h = rec.handle();
    let (gpu, delta) = (h.gauge("gpu_util", &[]), h.gauge("temp_delta", &[]));
    for m in 0..5i64 {
        gpu.record(0.5);
        delta.record(-2.0);
        for _ in 0..3 + m {
            h.record(&Prediction::new("phone", Duration::from_millis(2), 0.7));
        }
        rec.advance_to(T0 + (m + 1) * 60_000);
    }
    let (_dir, store) = rec.finish();
    let range = Range { from_ms: T0, to_ms: T0 + 300_000, step_ms: 60_000 };
    let points = |q: &str| query_points(&store, &parse(q).unwrap(), range, Limits::default());
    // A gauge's level, negative or not, is one figure per interval (its "count" would be the
    // sum of its values).
    let d = points("mean(temp_delta)").unwrap();
    assert_eq!(d.len(), 5);
    assert!(d.iter().all(|p| p.value == -2.0 && p.n == 1.0), "{d:?}");
    // A distribution's mean is weighed by its count.
    let c = points("mean(confidence)").unwrap();
    assert_eq!(c.iter().map(|p| p.n).collect::<Vec<_>>(), [3.0, 4.0, 5.0, 6.0, 7.0]);
    let e = points("mean(confidence) by (segment)").unwrap_err();
    assert!(matches!(e, QueryError::Unsupported(_)) && e.to_string().contains("grouped by (segment)"), "{e}");
}

#[test]
fn parameters_past_what_the_thresholds_can_compute_are_refused() {
    for k in [0.0, 6.0, 1e-300, 700.0, f64::NAN] {
        let e = Cusum::new(k, 1e4).unwrap_err();
        assert!(e.to_string().contains("parameter k") && e.to_string().contains("at most 5"), "{e}");
        assert!(PageHinkley::new(k, 1e4).is_err());
    }
    for ert in [1e9 + 1.0, 1e300, f64::MAX] {
        assert!(matches!(Cusum::with_ert(ert), Err(DetectError::Ert(_))), "{ert}");
    }
    assert!(Cusum::with_ert(MAX_ERT).unwrap().h.is_finite());
}
