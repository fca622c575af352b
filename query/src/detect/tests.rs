use super::*;

/// A deterministic normal sequence (xorshift + Box–Muller).
fn noise(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed | 1;
    let mut u = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        ((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    move || (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()
}

fn series(values: &[f64]) -> Vec<Point> {
    values.iter().enumerate().map(|(i, &v)| Point::sample(i as i64 * 60_000, v)).collect()
}

fn all(ert: f64) -> [Box<dyn Detector + Send + Sync>; 3] {
    [DetectorKind::Cusum, DetectorKind::PageHinkley, DetectorKind::Adwin].map(|k| k.with_ert(ert).unwrap())
}

/// Samples per 1-minute interval over a day: 10 at 3 am to 100 at 3 pm.
fn daily_count(minute: usize) -> f64 {
    let phase = std::f64::consts::TAU * ((minute % 1_440) as f64 - 900.0) / 1_440.0;
    (55.0 + 45.0 * phase.cos()).round()
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
