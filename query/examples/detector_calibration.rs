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
}
