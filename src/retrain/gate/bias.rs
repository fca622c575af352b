//! "No major feature bias shifts", both halves: where the model's attention goes (each
//! feature's share of the total permutation importance) and whom it serves (each
//! segment's precision and recall).

use super::{Criterion, Finding, GateConfig, Scored, Verdict};
use crate::demo::Rng;
use crate::retrain::importance::ImportanceReport;
use std::collections::{BTreeMap, BTreeSet};

/// The `importance_shift` criterion: no feature's share of the total permutation
/// importance (overall, on the same hold-out) moves by more than `max_importance_shift`.
/// Each feature that moved is named with both shares.
pub fn importance_shift(
    config: &GateConfig,
    control: &ImportanceReport,
    challenger: &ImportanceReport,
) -> Criterion {
    let name = "importance_shift".to_string();
    let (c, h) = (&control.permutation.overall, &challenger.permutation.overall);
    if c.baseline.is_none() || h.baseline.is_none() {
        return Criterion {
            name,
            verdict: Verdict::Fail,
            summary: format!(
                "the permutation importance is undefined on the hold-out set (its {:?} needs both classes)",
                control.permutation.metric
            ),
            figures: serde_json::Value::Null,
            findings: Vec::new(),
        };
    }
    let (cs, hs) = (c.shares(), h.shares());
    let features: BTreeSet<&String> = cs.keys().chain(hs.keys()).collect();
    let mut findings = Vec::new();
    let mut shares = serde_json::Map::new();
    let mut largest = (0.0_f64, String::new());
    for f in features {
        let (a, b) = (cs.get(f).copied().unwrap_or(0.0), hs.get(f).copied().unwrap_or(0.0));
        let moved = b - a;
        shares.insert(f.clone(), serde_json::json!({ "control": a, "challenger": b, "moved": moved }));
        if moved.abs() > largest.0.abs() || largest.1.is_empty() {
            largest = (moved, f.clone());
        }
        if moved.abs() > config.max_importance_shift {
            findings.push(Finding {
                subject: format!("feature {f}"),
                what: format!(
                    "share of importance {a:.3} -> {b:.3} ({moved:+.3}, more than {:.2})",
                    config.max_importance_shift
                ),
                fails: true,
            });
        }
    }
    let verdict = if findings.is_empty() { Verdict::Pass } else { Verdict::Fail };
    Criterion {
        name,
        verdict,
        summary: format!(
            "{} of {} features moved more than {:.2} in share of importance (largest: {} {:+.3})",
            findings.len(),
            shares.len(),
            config.max_importance_shift,
            if largest.1.is_empty() { "-" } else { largest.1.as_str() },
            largest.0
        ),
        figures: serde_json::json!({ "max_shift": config.max_importance_shift, "metric": control.permutation.metric, "shares": shares }),
        findings,
    }
}

/// Precision and recall of the predictions `score >= threshold` on the rows `idx`
/// (`None` where undefined).
fn pr(scores: &[f64], labels: &[bool], idx: impl Iterator<Item = usize>, threshold: f64) -> [Option<f64>; 2] {
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    for i in idx {
        let p = scores[i] >= threshold;
        tp += u32::from(p && labels[i]);
        fp += u32::from(p && !labels[i]);
        fn_ += u32::from(!p && labels[i]);
    }
    let ratio = |a: u32, b: u32| (a + b > 0).then(|| f64::from(a) / f64::from(a + b));
    [ratio(tp, fp), ratio(tp, fn_)]
}

/// A seed for one segment's bootstrap from the gate's seed and the segment's name: the
/// same segment resamples the same rows whichever other segments there are.
fn segment_seed(seed: u64, segment: &str) -> u64 {
    segment
        .bytes()
        .fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The `segment_quality` criterion: in each segment with at least `min_segment_rows`
/// hold-out rows, the fall of precision and of recall (control − challenger) is
/// bootstrapped `bootstrap` times over the segment's rows, both models on each resample
/// (paired); the criterion fails where the fall, or the upper bound of its one-sided
/// `confidence` interval (percentile), exceeds `max_segment_drop`. A figure undefined for
/// either model (precision without positive predictions, recall without positives) is
/// not judged and named.
pub fn segment_quality(config: &GateConfig, scored: &Scored) -> Criterion {
    let mut by_segment: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in scored.segments.iter().enumerate() {
        by_segment.entry(s.as_str()).or_default().push(i);
    }
    let t = config.threshold;
    let mut findings = Vec::new();
    let mut figures = serde_json::Map::new();
    let mut judged = 0usize;
    for (segment, idx) in &by_segment {
        if idx.len() < config.min_segment_rows {
            findings.push(Finding {
                subject: format!("segment {segment}"),
                what: format!(
                    "not judged: {} hold-out rows, fewer than {}",
                    idx.len(),
                    config.min_segment_rows
                ),
                fails: false,
            });
            figures.insert(segment.to_string(), serde_json::json!({ "rows": idx.len(), "judged": false }));
            continue;
        }
        judged += 1;
        let ctrl = pr(&scored.control, &scored.labels, idx.iter().copied(), t);
        let chal = pr(&scored.challenger, &scored.labels, idx.iter().copied(), t);
        let mut rng = Rng::seeded(segment_seed(config.seed, segment));
        let mut falls: [Vec<f64>; 2] =
            [Vec::with_capacity(config.bootstrap), Vec::with_capacity(config.bootstrap)];
        let mut sample = vec![0usize; idx.len()];
        for _ in 0..config.bootstrap {
            for s in sample.iter_mut() {
                *s = idx[rng.below(idx.len())];
            }
            let a = pr(&scored.control, &scored.labels, sample.iter().copied(), t);
            let b = pr(&scored.challenger, &scored.labels, sample.iter().copied(), t);
            for k in 0..2 {
                if let (Some(x), Some(y)) = (a[k], b[k]) {
                    falls[k].push(x - y);
                }
            }
        }
        let mut seg = serde_json::Map::new();
        seg.insert("rows".into(), idx.len().into());
        for (k, metric) in ["precision", "recall"].into_iter().enumerate() {
            let subject = format!("segment {segment} {metric}");
            let (Some(a), Some(b)) = (ctrl[k], chal[k]) else {
                findings.push(Finding {
                    subject,
                    what: format!(
                        "not judged: {metric} is undefined for the {}",
                        if ctrl[k].is_none() { "control" } else { "challenger" }
                    ),
                    fails: false,
                });
                continue;
            };
            let fall = a - b;
            let f = &mut falls[k];
            // Most resamples must define the figure, or the interval describes few of them.
            let upper = (f.len() * 2 >= config.bootstrap).then(|| {
                f.sort_unstable_by(f64::total_cmp);
                let rank = ((config.confidence * f.len() as f64).ceil() as usize).clamp(1, f.len());
                f[rank - 1]
            });
            seg.insert(
                metric.into(),
                serde_json::json!({ "control": a, "challenger": b, "fall": fall, "upper_bound": upper }),
            );
            let max = config.max_segment_drop;
            let pct = config.percent();
            if fall > max {
                findings.push(Finding {
                    subject,
                    what: format!("{metric} {a:.3} -> {b:.3}: fell by {fall:.3}, more than {max:.2}"),
                    fails: true,
                });
            } else if let Some(u) = upper.filter(|u| *u > max) {
                findings.push(Finding {
                    subject,
                    what: format!("{metric} {a:.3} -> {b:.3}: the fall {fall:+.3} could be as large as {u:.3} ({pct} % bound), more than {max:.2}"),
                    fails: true,
                });
            } else if upper.is_none() {
                findings.push(Finding {
                    subject,
                    what: format!("not judged: {metric} is undefined in most resamples"),
                    fails: false,
                });
            }
        }
        figures.insert(segment.to_string(), seg.into());
    }
    let failing: BTreeSet<&str> = findings.iter().filter(|f| f.fails).map(|f| f.subject.as_str()).collect();
    let verdict = if failing.is_empty() { Verdict::Pass } else { Verdict::Fail };
    Criterion {
        name: "segment_quality".into(),
        verdict,
        summary: format!(
            "{} of {judged} judged segments' precision or recall may have fallen more than {:.2} ({} segments not judged)",
            failing.len(),
            config.max_segment_drop,
            by_segment.len() - judged
        ),
        figures: serde_json::json!({ "max_drop": config.max_segment_drop, "min_rows": config.min_segment_rows, "bootstrap": config.bootstrap, "segments": figures }),
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrain::importance::{FeatureScore, ImportanceTable, PermutationImportance};

    fn report(means: &[(&str, f64)]) -> ImportanceReport {
        ImportanceReport {
            permutation: PermutationImportance {
                overall: ImportanceTable {
                    rows: 100,
                    baseline: Some(0.8),
                    features: means
                        .iter()
                        .map(|(f, m)| FeatureScore { feature: f.to_string(), mean: *m, std: 0.0 })
                        .collect(),
                },
                ..PermutationImportance::default()
            },
            shap: None,
        }
    }

    #[test]
    fn importance_concentrating_on_one_feature_is_named() {
        let c = GateConfig::default();
        let control = report(&[("a", 0.1), ("b", 0.1), ("c", 0.1), ("d", 0.1)]);
        let similar = report(&[("a", 0.12), ("b", 0.1), ("c", 0.09), ("d", -0.01)]);
        assert_eq!(importance_shift(&c, &control, &similar).verdict, Verdict::Fail, "d went from 0.25 to 0");
        let similar = report(&[("a", 0.12), ("b", 0.1), ("c", 0.09), ("d", 0.1)]);
        assert_eq!(importance_shift(&c, &control, &similar).verdict, Verdict::Pass);
        let focused = report(&[("a", 0.4), ("b", 0.01), ("c", 0.01), ("d", 0.01)]);
        let r = importance_shift(&c, &control, &focused);
        assert_eq!(r.verdict, Verdict::Fail);
        let named: Vec<&str> = r.findings.iter().map(|f| f.subject.as_str()).collect();
        assert!(named.contains(&"feature a"), "{named:?}");
        assert!(r.findings[0].what.contains("0.250 -> 0.930"), "{:?}", r.findings);
        let mut undefined = control.clone();
        undefined.permutation.overall.baseline = None;
        assert_eq!(importance_shift(&c, &undefined, &focused).verdict, Verdict::Fail);
    }

    /// Scores for two segments of `n` rows each: the control predicts the label right in
    /// `right` of the rows; the challenger the same, except in segment `b`, where it calls
    /// `flip` of the negatives positive.
    fn scored(n: usize, flip: f64) -> Scored {
        let mut s = Scored { control: vec![], challenger: vec![], labels: vec![], segments: vec![] };
        let mut rng = Rng::seeded(5);
        for seg in ["a", "b"] {
            for i in 0..n {
                let y = i % 10 < 3;
                let right = rng.u() < 0.9;
                let c = if right == y { 0.8 } else { 0.2 };
                let h = if seg == "b" && !y && rng.u() < flip { 0.8 } else { c };
                s.control.push(c);
                s.challenger.push(h);
                s.labels.push(y);
                s.segments.push(seg.into());
            }
        }
        s
    }

    #[test]
    fn a_precision_fall_in_one_segment_is_named_and_none_passes() {
        let c = GateConfig::default();
        let same = segment_quality(&c, &scored(2_000, 0.0));
        assert_eq!(same.verdict, Verdict::Pass, "{same:?}");
        let fell = segment_quality(&c, &scored(2_000, 0.3));
        assert_eq!(fell.verdict, Verdict::Fail);
        let failing: Vec<&str> =
            fell.findings.iter().filter(|f| f.fails).map(|f| f.subject.as_str()).collect();
        assert_eq!(failing, ["segment b precision"], "{:?}", fell.findings);
    }

    #[test]
    fn a_small_segment_is_not_judged_and_a_noisy_one_must_show_it_did_not_fall() {
        let c = GateConfig::default();
        let small = segment_quality(&c, &scored(50, 0.9));
        assert_eq!(small.verdict, Verdict::Pass);
        assert!(
            small.findings.iter().all(|f| !f.fails && f.what.contains("not judged")),
            "{:?}",
            small.findings
        );
        // 150 rows of one segment, 45 positives: the control calls every positive and 15
        // negatives positive (precision 0.75); the challenger 3 negatives more (0.714). The
        // fall, 0.036, is under 0.05; a resample with twice as many of those 3 rows falls
        // further, so the bound is over it: the challenger has not shown it did not fall.
        let mut noisy = Scored { control: vec![], challenger: vec![], labels: vec![], segments: vec![] };
        let mut negatives = 0;
        for i in 0..150 {
            let y = i % 10 < 3;
            negatives += usize::from(!y);
            let c = y || negatives <= 15;
            let h = c || (!y && negatives <= 18);
            noisy.control.push(if c { 0.9 } else { 0.1 });
            noisy.challenger.push(if h { 0.9 } else { 0.1 });
            noisy.labels.push(y);
            noisy.segments.push("b".into());
        }
        let noisy = segment_quality(&c, &noisy);
        let b = &noisy.figures["segments"]["b"]["precision"];
        let (fall, upper) = (b["fall"].as_f64().unwrap(), b["upper_bound"].as_f64().unwrap());
        assert!(fall > 0.0 && fall < 0.05 && upper > 0.05, "{b}");
        assert_eq!(noisy.verdict, Verdict::Fail);
        assert!(
            noisy.findings.iter().any(|f| f.fails && f.what.contains("could be as large as")),
            "{:?}",
            noisy.findings
        );
        // The same seed, the same verdict and figures.
        assert_eq!(segment_quality(&c, &scored(150, 0.06)), segment_quality(&c, &scored(150, 0.06)));
    }
}
