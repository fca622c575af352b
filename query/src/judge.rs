//! The canary judge: does a challenger that gets a share of the traffic (about 10 %) do
//! no worse than the control? Pure statistics over per-variant figures that the caller
//! reads from the store; it reads nothing itself, so the same [`Evidence`] always gives
//! the same [`Verdict`].
//!
//! # Guardrails
//!
//! Each guardrail is a **non-inferiority** test with a stated margin, on a scale where a
//! larger value is worse for the challenger ("degradation"):
//!
//! - `latency_p95_ratio`: per matched window with at least `min_requests` on both arms and
//!   plausible p95s on both, `d = ln(p95_challenger / p95_control)`; the mean of `d`
//!   estimates the log p95 ratio (windows pair the arms in time, so the daily cycle
//!   cancels). Its variance is the windows' spread over their number, the spread floored at
//!   `latency_sd_floor` so that identical windows never give a zero variance. Reported on
//!   the ratio scale (estimate and bounds exponentiated, margin 1.10).
//! - `error_rate`: challenger error rate − control error rate over all requests so far, each
//!   rate Agresti–Caffo adjusted ((errors + 1) / (requests + 2)), so zero errors on both
//!   sides still has a variance; each arm's variance is the larger of the binomial one and
//!   the windows' (errors that come in bursts are not independent requests).
//! - `precision`: control − challenger realised precision tp / (tp + fp) over matured label
//!   cohorts (adjusted the same way) once both arms have `min_labels` labelled positive
//!   predictions; before that the label-free estimate, marked `estimated`, with the
//!   binomial variance of `predicted_positive` draws; with neither it is inconclusive.
//!   Recall, tp / (tp + fn), is reported beside it as evidence only.
//!
//! # Valid when checked every interval
//!
//! Each guardrail keeps an always-valid confidence sequence: the normal-mixture mSPRT
//! (Johari, Pekelis and Walsh, "Always valid inference"; Howard et al. 2021) with the
//! plug-in variance `V` of the estimate and a N(0, τ²) mixture has the half-width
//! `√( V(V + τ²)/τ² · (2 ln(1/α) + ln((V + τ²)/V)) )` ([`mixture_half_width`]); the chance
//! that the sequence ever misses the true degradation, however often it is looked at, is at
//! most α. τ is the margin (times `mixture_scale`): the half-width relative to a fixed
//! sample interval is smallest where `τ²/V` solves `r = 2 ln(1/α) + ln(1 + r)` (r ≈ 8 at
//! α = 0.05), and there the half-width is about the margin, which is when a decision is
//! due; the measured alternatives are in `docs/decisions/0010-canary.md`.
//!
//! A guardrail **passes** when the upper bound of the degradation is below the margin, and
//! **fails** when the lower bound is above it; otherwise it is inconclusive. A passing
//! guardrail can therefore be wrong (the challenger truly worse than the margin) with
//! chance at most α, as can a failing one.
//!
//! # Decision
//!
//! Any failed guardrail: [`Decision::Rollback`]. All three passed (the precision on
//! realised labels unless `decide_on_estimate`) and at least `min_windows` windows:
//! [`Decision::Promote`]. At `max_duration_ms` without a promotion: rollback,
//! "inconclusive at max_duration". Otherwise [`Decision::Inconclusive`], keep watching.
//! Too little data is never a pass. Odd inputs (non-finite, negative or absurd p95s, more
//! errors than requests, negative counts) never panic: what they touch does not count, and
//! the guardrail's note says so. A config that [`JudgeConfig::validate`] refuses rolls back.

use serde::{Deserialize, Serialize};

/// One arm's figures over one matched window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmWindow {
    /// Requests the arm served in the window.
    pub requests: u64,
    /// Of those, requests that failed (more than `requests` counts as `requests`).
    pub errors: u64,
    /// The window's p95 latency in ms; none when the arm served nothing.
    pub latency_p95_ms: Option<f64>,
}

/// The two arms over the same window of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchedWindow {
    /// Window start, ms since the epoch.
    pub start_ms: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end_ms: i64,
    /// The control model's figures.
    pub control: ArmWindow,
    /// The challenger's figures.
    pub challenger: ArmWindow,
}

/// One arm's quality, cumulative over the canary, matured label cohorts only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmQuality {
    /// Labelled positive predictions that were right (realised, from labels).
    pub tp: f64,
    /// Labelled positive predictions that were wrong.
    pub fp: f64,
    /// Labelled negative predictions that were wrong (for recall, evidence only).
    pub fn_: f64,
    /// Positive predictions made (labelled or not): the sample behind the estimate.
    pub predicted_positive: f64,
    /// The label-free precision estimate (from calibrated confidence), if there is one.
    pub estimated_precision: Option<f64>,
}

/// What the judge sees: the matched windows so far and the cumulative quality.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Every window since the canary started, in any order.
    pub windows: Vec<MatchedWindow>,
    /// The control's quality.
    pub control: ArmQuality,
    /// The challenger's quality.
    pub challenger: ArmQuality,
    /// PSI between the arms' confidence distributions: evidence only, never a verdict.
    pub confidence_drift: Option<f64>,
    /// Time since the canary started, ms.
    pub elapsed_ms: i64,
}

/// The judge's settings; [`JudgeConfig::default`] has the values of issue 18.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// Error rate of each guardrail's confidence sequence, over all looks (0.05).
    pub alpha: f64,
    /// Largest acceptable challenger/control p95 latency ratio (1.10).
    pub latency_ratio_margin: f64,
    /// Largest acceptable rise of the error rate, as a fraction (0.005 = 0.5 points).
    pub error_margin: f64,
    /// Largest acceptable fall of precision, as a fraction (0.02).
    pub precision_margin: f64,
    /// Windows needed before a promotion, and counted windows before latency concludes (10).
    pub min_windows: usize,
    /// Requests per arm for a window's latency to count (100).
    pub min_requests: u64,
    /// Labelled positive predictions per arm before realised precision is used (200).
    pub min_labels: u64,
    /// Longest canary; inconclusive then is rolled back (24 h).
    pub max_duration_ms: i64,
    /// Floor of the per-window spread of the log p95 ratio (0.02, about 2 %).
    pub latency_sd_floor: f64,
    /// Largest plausible p95 in ms (3,600,000, an hour); a larger one does not count.
    pub max_latency_ms: f64,
    /// τ of the mixture as a multiple of each guardrail's margin (1).
    pub mixture_scale: f64,
    /// Whether a label-free precision estimate may decide, pass or fail (false: it is shown,
    /// marked `estimated`, and a decision waits for realised labels; it measures the arms'
    /// calibration, not their precision).
    pub decide_on_estimate: bool,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            alpha: 0.05,
            latency_ratio_margin: 1.10,
            error_margin: 0.005,
            precision_margin: 0.02,
            min_windows: 10,
            min_requests: 100,
            min_labels: 200,
            max_duration_ms: 24 * 3_600_000,
            latency_sd_floor: 0.02,
            max_latency_ms: 3_600_000.0,
            mixture_scale: 1.0,
            decide_on_estimate: false,
        }
    }
}

/// The smallest p95 that counts, in ms (a nanosecond); below it a window is taken as broken.
const MIN_LATENCY_MS: f64 = 1e-6;

impl JudgeConfig {
    /// Checks every field; the error names the first bad one and what it must be.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |field: &str, value: f64, want: &str| {
            Err(format!("judge config: {field} is {value}, must be {want}"))
        };
        let open = |v: f64, lo: f64, hi: f64| v.is_finite() && v > lo && v < hi;
        if !open(self.alpha, 0.0, 1.0) {
            return bad("alpha", self.alpha, "in (0, 1)");
        }
        // Up to 10: a margin past it lets any regression through without a word.
        if !(self.latency_ratio_margin.is_finite()
            && self.latency_ratio_margin > 1.0
            && self.latency_ratio_margin <= 10.0)
        {
            return bad("latency_ratio_margin", self.latency_ratio_margin, "above 1 and at most 10");
        }
        if !open(self.error_margin, 0.0, 1.0) {
            return bad("error_margin", self.error_margin, "in (0, 1)");
        }
        if !open(self.precision_margin, 0.0, 1.0) {
            return bad("precision_margin", self.precision_margin, "in (0, 1)");
        }
        if self.min_windows < 2 {
            return bad("min_windows", self.min_windows as f64, "at least 2");
        }
        if self.min_labels < 1 {
            return bad("min_labels", self.min_labels as f64, "at least 1");
        }
        if self.max_duration_ms <= 0 {
            return bad("max_duration_ms", self.max_duration_ms as f64, "positive");
        }
        if !open(self.latency_sd_floor, 0.0, f64::MAX) {
            return bad("latency_sd_floor", self.latency_sd_floor, "finite and positive");
        }
        if !open(self.max_latency_ms, MIN_LATENCY_MS, f64::MAX) {
            return bad("max_latency_ms", self.max_latency_ms, "finite and above 1e-6");
        }
        if !open(self.mixture_scale, 0.0, f64::MAX) {
            return bad("mixture_scale", self.mixture_scale, "finite and positive");
        }
        Ok(())
    }
}

/// What to do with the canary now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Every guardrail shown within its margin: the challenger becomes the control.
    Promote,
    /// A guardrail broken, or nothing concluded by `max_duration_ms`.
    Rollback,
    /// Keep watching.
    Inconclusive,
}

/// One guardrail's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailStatus {
    /// The upper bound of the degradation is below the margin.
    Pass,
    /// The lower bound of the degradation is above the margin.
    Fail,
    /// Neither, or too little data.
    Inconclusive,
}

/// One guardrail's test: estimate and always-valid bounds of the degradation, on the
/// guardrail's scale (a ratio for latency, a difference of fractions otherwise).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardrailResult {
    /// `latency_p95_ratio`, `error_rate` or `precision`.
    pub name: String,
    /// The degradation's estimate; none without data.
    pub estimate: Option<f64>,
    /// Lower bound of the confidence sequence.
    pub lower: Option<f64>,
    /// Upper bound of the confidence sequence.
    pub upper: Option<f64>,
    /// The margin on the same scale.
    pub margin: f64,
    /// Pass, fail or inconclusive.
    pub status: GuardrailStatus,
    /// The challenger's sample behind it: counted windows, requests, labels or predictions.
    pub samples: u64,
    /// Whether this is the label-free precision estimate.
    pub estimated: bool,
    /// What a person needs to read the figures: what did not count, what is awaited.
    pub note: String,
}

/// The judge's answer, with its evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Promote, roll back, or keep watching.
    pub decision: Decision,
    /// One line a person reads.
    pub reason: String,
    /// Latency, errors and precision, in that order.
    pub guardrails: Vec<GuardrailResult>,
    /// Matched windows seen.
    pub windows: usize,
    /// Time since the canary started, ms.
    pub elapsed_ms: i64,
    /// PSI between the arms' confidence, as given: evidence only.
    pub confidence_drift: Option<f64>,
    /// The control's realised recall, tp / (tp + fn): evidence only.
    pub recall_control: Option<f64>,
    /// The challenger's realised recall: evidence only.
    pub recall_challenger: Option<f64>,
}

/// The half-width of the normal-mixture confidence sequence for an estimate of variance
/// `variance` with mixture scale `tau` at level `alpha`. Infinite for a non-positive or
/// non-finite variance, so no bound is ever drawn from nothing.
pub fn mixture_half_width(variance: f64, tau: f64, alpha: f64) -> f64 {
    if !(variance.is_finite() && variance > 0.0 && tau > 0.0) {
        return f64::INFINITY;
    }
    let t2 = tau * tau;
    let width2 =
        variance * (variance + t2) / t2 * (2.0 * (1.0 / alpha).ln() + ((variance + t2) / variance).ln());
    width2.sqrt()
}

/// A guardrail from its estimate and variance: bounds, then the status against the margin.
fn bounded(name: &str, estimate: f64, variance: f64, margin: f64, cfg: &JudgeConfig) -> GuardrailResult {
    let half = mixture_half_width(variance, margin * cfg.mixture_scale, cfg.alpha);
    let (lower, upper) = (estimate - half, estimate + half);
    let status = if upper < margin {
        GuardrailStatus::Pass
    } else if lower > margin {
        GuardrailStatus::Fail
    } else {
        GuardrailStatus::Inconclusive
    };
    GuardrailResult {
        name: name.to_string(),
        estimate: Some(estimate),
        lower: lower.is_finite().then_some(lower),
        upper: upper.is_finite().then_some(upper),
        margin,
        status,
        samples: 0,
        estimated: false,
        note: String::new(),
    }
}

/// A guardrail with nothing to test yet.
fn no_test(name: &str, margin: f64, note: String) -> GuardrailResult {
    GuardrailResult {
        name: name.to_string(),
        estimate: None,
        lower: None,
        upper: None,
        margin,
        status: GuardrailStatus::Inconclusive,
        samples: 0,
        estimated: false,
        note,
    }
}

/// A count as a finite non-negative number (anything else counts as 0).
fn count(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}

/// The latency guardrail: the mean log p95 ratio over the windows that count.
fn latency(cfg: &JudgeConfig, windows: &[MatchedWindow]) -> GuardrailResult {
    const NAME: &str = "latency_p95_ratio";
    let plausible = |p: Option<f64>| p.filter(|p| (MIN_LATENCY_MS..=cfg.max_latency_ms).contains(p));
    let (mut logs, mut thin, mut odd) = (Vec::with_capacity(windows.len()), 0, 0);
    for w in windows {
        if w.control.requests < cfg.min_requests || w.challenger.requests < cfg.min_requests {
            thin += 1;
            continue;
        }
        match (plausible(w.control.latency_p95_ms), plausible(w.challenger.latency_p95_ms)) {
            (Some(c), Some(x)) => logs.push(x.ln() - c.ln()),
            _ => odd += 1,
        }
    }
    let mut note = format!("{} of {} windows count", logs.len(), windows.len());
    if thin > 0 {
        note += &format!("; {thin} under {} requests an arm", cfg.min_requests);
    }
    if odd > 0 {
        note += &format!(
            "; {odd} without a plausible p95 on both arms (missing, NaN, ±inf, ≤ 0 or over {} ms)",
            cfg.max_latency_ms
        );
    }
    let margin = cfg.latency_ratio_margin;
    let n = logs.len() as f64;
    if logs.len() < 2 {
        return GuardrailResult { samples: logs.len() as u64, ..no_test(NAME, margin, note) };
    }
    let mean = logs.iter().sum::<f64>() / n;
    let spread = logs.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / (n - 1.0);
    let variance = spread.max(cfg.latency_sd_floor * cfg.latency_sd_floor) / n;
    let mut g = bounded(NAME, mean, variance, margin.ln(), cfg);
    // On the ratio scale: exp is monotone, so the status is the same.
    g.estimate = g.estimate.map(f64::exp);
    g.lower = g.lower.map(f64::exp);
    g.upper = g.upper.map(f64::exp);
    g.margin = margin;
    g.samples = logs.len() as u64;
    if logs.len() < cfg.min_windows {
        g.status = GuardrailStatus::Inconclusive;
        note += &format!("; {} needed to conclude", cfg.min_windows);
    }
    g.note = note;
    g
}

/// The error guardrail: the difference of the Agresti–Caffo adjusted error rates. Each
/// arm's variance is the larger of the binomial one and the between-window one (the
/// cluster-robust variance of a ratio estimate, windows as clusters): errors that come in
/// bursts, a failing replica for a few minutes, are not independent requests.
fn errors(cfg: &JudgeConfig, windows: &[MatchedWindow]) -> GuardrailResult {
    let (mut n, mut x, mut clamped) = ([0.0f64; 2], [0.0f64; 2], 0);
    let arms = |w: &MatchedWindow| {
        [w.control, w.challenger].map(|a| (a.requests as f64, a.errors.min(a.requests) as f64))
    };
    for w in windows {
        for (i, (requests, errors)) in arms(w).into_iter().enumerate() {
            n[i] += requests;
            x[i] += errors;
        }
        clamped += usize::from(w.control.errors > w.control.requests);
        clamped += usize::from(w.challenger.errors > w.challenger.requests);
    }
    // An arm without a request yet has no error rate: nothing to test (the Agresti–Caffo
    // 1/2 of an empty arm would give an interval of ±100 points, and a rollback at
    // max_duration should say the arm never served).
    for (i, arm) in ["control", "challenger"].iter().enumerate() {
        if n[i] <= 0.0 {
            let mut g = no_test("error_rate", cfg.error_margin, format!("no request on the {arm} yet"));
            g.samples = n[1] as u64;
            return g;
        }
    }
    let t = windows.len() as f64;
    let between = |i: usize| {
        if t < 2.0 || n[i] <= 0.0 {
            return 0.0;
        }
        let rate = x[i] / n[i];
        let squares: f64 = windows.iter().map(|w| arms(w)[i]).map(|(nt, xt)| (xt - rate * nt).powi(2)).sum();
        squares / (n[i] * n[i]) * t / (t - 1.0)
    };
    let p = [(x[0] + 1.0) / (n[0] + 2.0), (x[1] + 1.0) / (n[1] + 2.0)];
    let binomial = [p[0] * (1.0 - p[0]) / (n[0] + 2.0), p[1] * (1.0 - p[1]) / (n[1] + 2.0)];
    let spread = [between(0), between(1)];
    let variance = binomial[0].max(spread[0]) + binomial[1].max(spread[1]);
    let mut g = bounded("error_rate", p[1] - p[0], variance, cfg.error_margin, cfg);
    g.samples = n[1] as u64;
    g.note = format!(
        "control {} of {} requests failed, challenger {} of {}",
        x[0] as u64, n[0] as u64, x[1] as u64, n[1] as u64
    );
    if spread[0] > binomial[0] || spread[1] > binomial[1] {
        g.note +=
            "; errors vary between windows more than independent requests would (variance from the windows)";
    }
    if clamped > 0 {
        g.note += &format!("; {clamped} arm-windows had more errors than requests (counted as all failed)");
    }
    g
}

/// The precision guardrail: realised when both arms have `min_labels`, else the estimate.
fn precision(cfg: &JudgeConfig, control: &ArmQuality, challenger: &ArmQuality) -> GuardrailResult {
    const NAME: &str = "precision";
    let margin = cfg.precision_margin;
    let labels = |q: &ArmQuality| count(q.tp) + count(q.fp);
    let (lc, lx) = (labels(control), labels(challenger));
    let adjusted = |k: f64, n: f64| (k + 1.0) / (n + 2.0);
    let variance = |p: f64, n: f64| p * (1.0 - p) / (n + 2.0);
    let min_labels = cfg.min_labels as f64;
    if lc >= min_labels && lx >= min_labels {
        let (pc, px) = (adjusted(count(control.tp), lc), adjusted(count(challenger.tp), lx));
        let mut g = bounded(NAME, pc - px, variance(pc, lc) + variance(px, lx), margin, cfg);
        g.samples = lx as u64;
        g.note = format!("realised on {lc} control and {lx} challenger labelled positives");
        return g;
    }
    let waiting = format!("{lc} control and {lx} challenger labelled positives of {} each", cfg.min_labels);
    let estimate = |q: &ArmQuality| {
        let n = count(q.predicted_positive);
        q.estimated_precision.filter(|e| (0.0..=1.0).contains(e) && n > 0.0).map(|e| (adjusted(e * n, n), n))
    };
    let (Some((ec, nc)), Some((ex, nx))) = (estimate(control), estimate(challenger)) else {
        return no_test(NAME, margin, format!("{waiting}, and no label-free estimate on both arms"));
    };
    let mut g = bounded(NAME, ec - ex, variance(ec, nc) + variance(ex, nx), margin, cfg);
    g.samples = nx as u64;
    g.estimated = true;
    g.note = format!("label-free estimate while {waiting}");
    // The estimate is the arms' mean confidence over their predicted positives: their
    // calibration, not their precision. A better model that is less sure of itself would
    // fail on it, so by default it is shown and decides nothing.
    if g.status != GuardrailStatus::Inconclusive && !cfg.decide_on_estimate {
        let said = if g.status == GuardrailStatus::Pass { "within" } else { "beyond" };
        g.status = GuardrailStatus::Inconclusive;
        g.note += &format!("; the estimate is {said} the margin, a decision waits for realised labels");
    }
    g
}

/// Realised recall, tp / (tp + fn); none without labelled positives.
fn recall(q: &ArmQuality) -> Option<f64> {
    let (tp, all) = (count(q.tp), count(q.tp) + count(q.fn_));
    (all > 0.0).then(|| tp / all)
}

/// A guardrail's figures in a few words, for the verdict's reason.
fn brief(g: &GuardrailResult) -> String {
    match (g.estimate, g.lower, g.upper) {
        (Some(e), Some(l), Some(u)) => format!("{} {e:.4} [{l:.4}, {u:.4}] vs margin {}", g.name, g.margin),
        _ => format!("{} ({})", g.name, g.note),
    }
}

/// Decides the canary from `evidence`: see the module docs for the rules.
pub fn judge(config: &JudgeConfig, evidence: &Evidence) -> Verdict {
    let recall_control = recall(&evidence.control);
    let recall_challenger = recall(&evidence.challenger);
    let verdict = |decision, reason, guardrails| Verdict {
        decision,
        reason,
        guardrails,
        windows: evidence.windows.len(),
        elapsed_ms: evidence.elapsed_ms,
        confidence_drift: evidence.confidence_drift,
        recall_control,
        recall_challenger,
    };
    if let Err(e) = config.validate() {
        return verdict(Decision::Rollback, format!("rollback: cannot judge, {e}"), Vec::new());
    }
    let guardrails = vec![
        latency(config, &evidence.windows),
        errors(config, &evidence.windows),
        precision(config, &evidence.control, &evidence.challenger),
    ];
    let of = |s: GuardrailStatus| guardrails.iter().filter(|g| g.status == s).map(brief).collect::<Vec<_>>();
    let (failed, open) = (of(GuardrailStatus::Fail), of(GuardrailStatus::Inconclusive));
    let enough = evidence.windows.len() >= config.min_windows;
    let (decision, reason) = if !failed.is_empty() {
        (Decision::Rollback, format!("rollback: beyond the margin: {}", failed.join("; ")))
    } else if open.is_empty() && enough {
        let names = guardrails.iter().map(brief).collect::<Vec<_>>().join("; ");
        (
            Decision::Promote,
            format!("promote: within every margin after {} windows: {names}", evidence.windows.len()),
        )
    } else {
        let mut waiting = open;
        if !enough {
            waiting.push(format!("{} of {} windows", evidence.windows.len(), config.min_windows));
        }
        if evidence.elapsed_ms >= config.max_duration_ms {
            (Decision::Rollback, format!("rollback: inconclusive at max_duration: {}", waiting.join("; ")))
        } else {
            (Decision::Inconclusive, format!("keep watching: {}", waiting.join("; ")))
        }
    };
    verdict(decision, reason, guardrails)
}

#[cfg(test)]
mod tests;
