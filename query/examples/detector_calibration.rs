//! Measures the in-control run length of the detectors (the calibration behind
//! `Adwin::with_ert` and the check of the CUSUM and Page–Hinkley thresholds):
//!
//! ```text
//! cargo run --release -p modelwatch-query --example detector_calibration
//! ```
//!
//! Each figure is the number of intervals per alarm over a long stream without change (the
//! detector restarting after each alarm), once with one sample per interval and once with
//! counts following a daily cycle from 10 to 100. The ADWIN rows give `ln δ` against
//! `ln ERT`; their least-squares line is `CALIBRATION` in `query/src/detect/adwin.rs`.

#[path = "support/sim.rs"]
mod sim;

use modelwatch_query::detect::{Adwin, Cusum, Detector, PageHinkley, Point};

/// Intervals per alarm over `alarms_wanted` alarms' worth of stream.
fn run_length(d: &dyn Detector, ert_guess: f64, weighted: bool, seed: u64) -> f64 {
    let len = (ert_guess * 400.0).clamp(2e6, 1e7) as usize;
    let mut z = sim::noise(seed);
    let points: Vec<Point> = (0..len)
        .map(|i| {
            let n = if weighted { sim::daily_count(i) } else { 1.0 };
            Point::new(i as i64, 0.82 + 0.1 / n.sqrt() * z(), n)
        })
        .collect();
    len as f64 / d.run(&points).len().max(1) as f64
}

fn main() {
    println!("detector      setting            one sample   daily counts   (intervals per false alarm)");
    for ert in [1e3, 1e4, 1e5] {
        let c = Cusum::with_ert(ert).unwrap();
        let p = PageHinkley::with_ert(ert).unwrap();
        for (name, d, setting) in [
            ("cusum", &c as &dyn Detector, format!("ERT {ert:.0}, h {:.3}", c.h)),
            ("page_hinkley", &p, format!("ERT {ert:.0}, λ {:.3}", p.lambda)),
        ] {
            let (a, b) = (run_length(d, ert, false, 1), run_length(d, ert, true, 2));
            println!("{name:<13} {setting:<22} {a:>9.0} {b:>14.0}");
        }
    }
    let mut fit = Vec::new();
    for delta in [3e-2, 1e-2, 3e-3, 1e-3, 3e-4] {
        let d = Adwin { delta, ..Adwin::with_ert(1e4).unwrap() };
        let guess = 30.0 / delta;
        let (a, b) = (run_length(&d, guess, false, 3), run_length(&d, guess, true, 4));
        println!("adwin         δ {delta:<20} {a:>9.0} {b:>14.0}");
        fit.push((((a * b).sqrt()).ln(), delta.ln()));
    }
    let n = fit.len() as f64;
    let (mx, my) = (fit.iter().map(|p| p.0).sum::<f64>() / n, fit.iter().map(|p| p.1).sum::<f64>() / n);
    let slope = fit.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
        / fit.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
    println!(
        "adwin fit: ln δ = {:.3} + {slope:.3} ln ERT (the geometric mean of both columns)",
        my - slope * mx
    );
    broken_assumptions();
}

/// False alarms per million intervals at ERT 10,000 (100 expected) where the assumptions
/// break: 50 samples per interval with a daily swing of half a standard error in the level,
/// AR(1) interval means (φ = 0.3), and an error rate of 20 Bernoulli(0.02) per interval.
fn broken_assumptions() {
    let len = 2_000_000;
    let se = 0.1 / 50f64.sqrt();
    let mut z = sim::noise(11);
    let seasonal: Vec<Point> = (0..len)
        .map(|i| {
            let swing = 0.5 * (std::f64::consts::TAU * (i % 1_440) as f64 / 1_440.0).sin();
            Point::new(i as i64, 0.82 + se * (z() + swing), 50.0)
        })
        .collect();
    let mut z = sim::noise(12);
    let mut last = 0.0;
    let ar: Vec<Point> = (0..len)
        .map(|i| {
            // Unit variance: the innovation's is 1 − φ².
            last = 0.3 * last + (1.0 - 0.09f64).sqrt() * z();
            Point::new(i as i64, 0.82 + se * last, 50.0)
        })
        .collect();
    let mut z = sim::noise(13);
    let mut uniform = move || 0.5 * (1.0 + libm_erf(z() / std::f64::consts::SQRT_2));
    let errors: Vec<Point> = (0..len)
        .map(|i| {
            let k = (0..20).filter(|_| uniform() < 0.02).count();
            Point::new(i as i64, k as f64 / 20.0, 20.0)
        })
        .collect();
    println!(
        "\nfalse alarms per million intervals at ERT 10,000 (100 expected) where the assumptions break:"
    );
    println!("series                               cusum   page_hinkley   adwin");
    for (name, points) in [
        ("daily swing of 0.5 standard error", &seasonal),
        ("AR(1) interval means, φ 0.3", &ar),
        ("error rate, 20 Bernoulli(0.02)", &errors),
    ] {
        let per_million = |d: &dyn Detector| d.run(points).len() as f64 * 1e6 / len as f64;
        println!(
            "{name:<36} {:>5.0} {:>14.0} {:>7.0}",
            per_million(&Cusum::with_ert(1e4).unwrap()),
            per_million(&PageHinkley::with_ert(1e4).unwrap()),
            per_million(&Adwin::with_ert(1e4).unwrap())
        );
    }
}

/// erf by Abramowitz–Stegun 7.1.26 (error below 1.5e-7): a uniform from a normal draw is
/// all the Bernoulli stream needs.
fn libm_erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (1.0 - poly * (-x * x).exp()).copysign(x)
}
