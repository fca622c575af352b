//! Pruning candidates: features a model could lose, each with its reason and the evidence
//! of every version it rests on (the seed's criteria: "importance score < 0.001 %, high
//! correlation with another feature").
//!
//! A feature is a candidate when, in **each** of the last `versions` (default 3) versions
//! that have the evidence (among those the caller gives: the report's, those before it,
//! and those registered before the period's end):
//!
//! - its share of the total permutation importance (overall, on the hold-out set:
//!   `ImportanceTable::shares`) is below `min_share` (default 0.00001, i.e. 0.001 %); the
//!   evidence is every version with a defined importance table that has the feature; or
//! - it correlates with a **more important** feature (a larger share in that version) at
//!   |r| ≥ `max_correlation` (default 0.95), by Pearson or Spearman, whichever is larger;
//!   the evidence is every such version that also has a correlation matrix (versions
//!   registered before correlations were stored have none).
//!
//! Fewer versions with the evidence than `versions`, or one version where the condition
//! fails, and the feature is no candidate: unimportant once is noise, not a trend.
//! Versions the gate refused are no evidence (nor are those rejected without a gate report
//! that passed): what a refused model attends to (the demo's is trained on shuffled
//! labels) says nothing of the features. A version rolled back by the canary passed the
//! gate, and counts.
//!
//! A feature that would be a candidate is **kept** (listed with why) when the validation
//! gate's bias check would flag the version that drops it, judged with the gate's own
//! thresholds ([`GateConfig`], defaults unless given) in any of the evidence versions:
//!
//! - `importance_shift`: its overall share is above `max_importance_shift` (0.10), so
//!   dropping it moves that share by more than the gate allows (a near-duplicate carrying
//!   a real share, say);
//! - `segment_quality`: in a segment with at least `min_segment_rows` (100) hold-out rows,
//!   shuffling it costs more than `max_segment_drop` (0.05) of the importance metric there:
//!   the segment leans on it, and losing it would cost that segment's quality what the
//!   gate's segment check forbids, however little it matters overall.
//!
//! At the default `min_share`, a feature the model ignores (a mean fall of 0 or below:
//! share 0) is a candidate; pure noise that a fitted model weights a little scatters
//! around a share of about 10⁻⁴, and needs a `min_share` of 0.1 % or more to be named.

use super::correlation::{Correlation, Method};
use crate::retrain::gate::GateConfig;
use crate::retrain::importance::ImportanceReport;
use modelwatch_store::registry::{Status, VersionInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The thresholds of the pruning rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PruningSettings {
    /// Below this share of the total importance a feature is unimportant (0.00001).
    pub min_share: f64,
    /// From this |correlation| with a more important feature a feature is redundant (0.95).
    pub max_correlation: f64,
    /// The versions (with the evidence) in each of which the condition must hold (3).
    pub versions: usize,
}

impl Default for PruningSettings {
    fn default() -> Self {
        PruningSettings { min_share: 0.00001, max_correlation: 0.95, versions: 3 }
    }
}

impl PruningSettings {
    /// Checks each value; the error names it.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.min_share) {
            return Err(format!("min_share must be in [0, 1]; got {}", self.min_share));
        }
        if !(self.max_correlation > 0.0 && self.max_correlation <= 1.0) {
            return Err(format!("max_correlation must be in (0, 1]; got {}", self.max_correlation));
        }
        if !(1..=100).contains(&self.versions) {
            return Err(format!("versions must be between 1 and 100; got {}", self.versions));
        }
        Ok(())
    }
}

/// What one version says of a feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The version.
    pub version: u32,
    /// The feature's share of the total permutation importance there.
    pub share: Option<f64>,
    /// The more important feature it correlates with most there, at or past the
    /// threshold (`null` when none or no matrix).
    pub correlated_with: Option<String>,
    /// That correlation (the larger of Pearson's and Spearman's in magnitude, signed).
    pub correlation: Option<f64>,
}

/// A feature the model could lose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The feature.
    pub feature: String,
    /// Why, one sentence per rule it meets.
    pub reasons: Vec<String>,
    /// Each version the reasons rest on, oldest first.
    pub evidence: Vec<Evidence>,
}

/// A feature that meets a pruning rule but stays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// The feature.
    pub feature: String,
    /// The rule it meets and why it stays.
    pub reason: String,
}

/// The candidates and the kept, in the features' order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pruning {
    /// Features to consider dropping.
    pub candidates: Vec<Candidate>,
    /// Features that meet a rule but whose removal the gate would flag.
    pub kept: Vec<Kept>,
    /// How many versions had importance to judge by (for "not enough evidence yet").
    pub versions_with_importance: usize,
}

/// One version as the rules read it.
#[derive(Clone, Debug, Default)]
pub struct VersionEvidence {
    /// Its number.
    pub version: u32,
    /// Overall shares of importance (empty when it has no defined importance table).
    pub shares: BTreeMap<String, f64>,
    /// Per segment: hold-out rows and each feature's mean fall of the metric.
    pub segments: BTreeMap<String, (usize, BTreeMap<String, f64>)>,
    /// Its correlation matrix, if one was stored and computed.
    pub correlation: Option<Correlation>,
}

impl VersionEvidence {
    /// What a registered version stores: its permutation importance and correlation.
    pub fn of(v: &VersionInfo) -> VersionEvidence {
        let t = &v.meta.training;
        let report = serde_json::from_value::<ImportanceReport>(t.feature_importance.clone()).ok();
        let permutation = report.as_ref().map(|r| &r.permutation);
        let shares = permutation
            .filter(|p| p.overall.baseline.is_some())
            .map(|p| p.overall.shares())
            .unwrap_or_default();
        let segments = permutation
            .map(|p| {
                p.segments
                    .iter()
                    .filter(|(_, t)| t.baseline.is_some())
                    .map(|(s, t)| {
                        (
                            s.clone(),
                            (t.rows, t.features.iter().map(|f| (f.feature.clone(), f.mean)).collect()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let correlation =
            serde_json::from_value::<Correlation>(t.correlation.clone()).ok().filter(|c| c.skipped.is_none());
        VersionEvidence { version: v.meta.version, shares, segments, correlation }
    }

    /// The more important feature `feature` correlates with most, at or past `threshold`.
    fn correlated(&self, feature: &str, threshold: f64) -> Option<(String, f64)> {
        let c = self.correlation.as_ref()?;
        let own = *self.shares.get(feature)?;
        let i = c.features.iter().position(|f| f == feature)?;
        let mut best: Option<(String, f64)> = None;
        for (j, other) in c.features.iter().enumerate() {
            let Some(&share) = self.shares.get(other) else { continue };
            if j == i || share <= own {
                continue;
            }
            let r = [Method::Pearson, Method::Spearman]
                .into_iter()
                .filter_map(|m| c.get(m, i, j))
                .max_by(|a, b| a.abs().total_cmp(&b.abs()));
            if let Some(r) = r.filter(|r| r.abs() >= threshold)
                && best.as_ref().is_none_or(|(_, b)| r.abs() > b.abs())
            {
                best = Some((other.clone(), r));
            }
        }
        best
    }
}

/// Percent, as the reasons say it: `0.001 %`.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    let text = format!("{p:.6}");
    format!("{} %", text.trim_end_matches('0').trim_end_matches('.'))
}

/// Whether a version's importance and correlation are evidence: not refused by the gate,
/// nor rejected without a gate report that passed.
pub fn is_evidence(v: &VersionInfo) -> bool {
    let passed = v.gate_report.as_ref().and_then(|g| g.get("passed")).and_then(|p| p.as_bool());
    passed != Some(false) && (v.status != Status::Rejected || passed == Some(true))
}

/// The candidates and the kept among `features` (the report version's), from `versions`
/// (those of the model the review may draw on; the refused are passed over).
pub fn pruning(
    features: &[String],
    versions: &[&VersionInfo],
    settings: &PruningSettings,
    gate: &GateConfig,
) -> Pruning {
    let mut versions: Vec<&VersionInfo> = versions.iter().copied().filter(|v| is_evidence(v)).collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.meta.version));
    let evidence: Vec<VersionEvidence> = versions.iter().map(|v| VersionEvidence::of(v)).collect();
    let n = settings.versions;
    let mut out = Pruning {
        versions_with_importance: evidence.iter().filter(|e| !e.shares.is_empty()).count(),
        ..Pruning::default()
    };
    for f in features {
        // Newest first: the last `n` with the evidence.
        let with_importance: Vec<&VersionEvidence> =
            evidence.iter().filter(|e| e.shares.contains_key(f)).take(n).collect();
        let with_correlation: Vec<&VersionEvidence> = evidence
            .iter()
            .filter(|e| {
                e.shares.contains_key(f) && e.correlation.as_ref().is_some_and(|c| c.features.contains(f))
            })
            .take(n)
            .collect();
        let low =
            with_importance.len() == n && with_importance.iter().all(|e| e.shares[f] < settings.min_share);
        let correlated: Option<Vec<(u32, String, f64)>> = (with_correlation.len() == n)
            .then(|| {
                with_correlation
                    .iter()
                    .map(|e| e.correlated(f, settings.max_correlation).map(|(g, r)| (e.version, g, r)))
                    .collect()
            })
            .flatten();
        if !low && correlated.is_none() {
            continue;
        }
        let mut reasons = Vec::new();
        if low {
            reasons.push(format!(
                "importance share below {} in each of the last {n} versions",
                percent(settings.min_share)
            ));
        }
        if let Some(c) = &correlated {
            // Each partner once, in the order the versions first name them.
            let mut partners: Vec<&str> = Vec::new();
            for (_, g, _) in c {
                if !partners.contains(&g.as_str()) {
                    partners.push(g.as_str());
                }
            }
            reasons.push(format!(
                "|correlation| ≥ {} with a more important feature ({}) in each of the last {n} versions",
                settings.max_correlation,
                partners.join(", ")
            ));
        }
        let mut used: Vec<&VersionEvidence> = with_importance.clone();
        if correlated.is_some() {
            used.extend(with_correlation.iter().copied());
        }
        used.sort_by_key(|e| e.version);
        used.dedup_by_key(|e| e.version);
        if let Some(reason) = flagged_by_gate(f, &used, gate) {
            out.kept
                .push(Kept { feature: f.clone(), reason: format!("{}; kept: {reason}", reasons.join("; ")) });
            continue;
        }
        let evidence = used
            .iter()
            .map(|e| {
                let pair = correlated.as_ref().and_then(|c| c.iter().find(|(v, _, _)| *v == e.version));
                Evidence {
                    version: e.version,
                    share: e.shares.get(f).copied(),
                    correlated_with: pair.map(|p| p.1.clone()),
                    correlation: pair.map(|p| p.2),
                }
            })
            .collect();
        out.candidates.push(Candidate { feature: f.clone(), reasons, evidence });
    }
    out
}

/// Why the gate's bias check would flag a version without `feature`, from the versions
/// the candidacy rests on; `None` when it would not.
fn flagged_by_gate(feature: &str, used: &[&VersionEvidence], gate: &GateConfig) -> Option<String> {
    for e in used.iter().rev() {
        if let Some(&share) = e.shares.get(feature).filter(|s| **s > gate.max_importance_shift) {
            return Some(format!(
                "its share of importance is {share:.3} in version {}: dropping it moves that share by more than the gate's max_importance_shift {}",
                e.version, gate.max_importance_shift
            ));
        }
    }
    for e in used.iter().rev() {
        let worst = e
            .segments
            .iter()
            .filter(|(_, (rows, _))| *rows >= gate.min_segment_rows)
            .filter_map(|(s, (_, falls))| Some((s, *falls.get(feature)?)))
            .filter(|(_, fall)| *fall > gate.max_segment_drop)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((segment, fall)) = worst {
            return Some(format!(
                "important within segment {segment}: shuffling it there costs {fall:.3} of the importance metric in version {}, more than the gate's max_segment_drop {} (its segment check would flag the version without it)",
                e.version, gate.max_segment_drop
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_as_the_seed_wrote_them() {
        assert_eq!(percent(0.00001), "0.001 %");
        assert_eq!(percent(0.01), "1 %");
        assert_eq!(percent(0.0), "0 %");
    }

    #[test]
    fn versions_the_gate_refused_are_no_evidence() {
        let golden: VersionInfo =
            serde_json::from_str(include_str!("../../store/src/registry/testdata/version-info.json"))
                .unwrap();
        let with = |status: Status, passed: Option<bool>| VersionInfo {
            status,
            gate_report: passed.map(|p| serde_json::json!({ "passed": p })),
            ..golden.clone()
        };
        assert!(is_evidence(&with(Status::Control, None)), "a first version has no gate report");
        assert!(is_evidence(&with(Status::Retired, Some(true))));
        assert!(is_evidence(&with(Status::Rejected, Some(true))), "rolled back by the canary");
        assert!(!is_evidence(&with(Status::Rejected, Some(false))), "refused by the gate");
        assert!(!is_evidence(&with(Status::Rejected, None)), "rejected by hand");
        assert!(!is_evidence(&with(Status::Candidate, Some(false))));
    }

    #[test]
    fn settings_out_of_range_are_named() {
        assert!(PruningSettings::default().validate().is_ok());
        let bad = PruningSettings { min_share: 2.0, ..PruningSettings::default() };
        assert!(bad.validate().unwrap_err().contains("min_share"));
        let bad = PruningSettings { max_correlation: f64::NAN, ..PruningSettings::default() };
        assert!(bad.validate().unwrap_err().contains("max_correlation"));
        let bad = PruningSettings { versions: 0, ..PruningSettings::default() };
        assert!(bad.validate().unwrap_err().contains("versions"));
    }
}
