//! The hold-out split: which examples a model is trained on and which it is judged on.
//!
//! The default is by time: the newest fraction of examples by prediction time is the
//! hold-out, so a model is judged on data later than any it learned from, as it will be in
//! production. Stratified by segment, the newest fraction within each segment is held out,
//! so a small segment keeps its share in both parts. The only randomness is the order of
//! examples predicted in the same millisecond, which decides which of them fall on either
//! side of a cut: it is drawn from the seed, so one seed gives one split.
//!
//! The split returns a [`SplitRecord`] (serialisable) that the registry stores with the
//! version trained on it: the spec and seed, the cut time(s), the row counts and a checksum
//! of the row IDs of each part, enough to tell later whether a split of the same examples
//! is the same split.

use super::{Example, ExampleSet, ExamplesError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the hold-out is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitStrategy {
    /// The newest fraction of all examples by prediction time.
    Time,
    /// The newest fraction of each segment's examples by prediction time.
    StratifiedBySegment,
}

/// What split to make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// The share of examples held out, in `[0, 1]`; a part's count is rounded to the
    /// nearest whole example (per segment when stratified).
    pub holdout_fraction: f64,
    /// How the hold-out is chosen.
    pub strategy: SplitStrategy,
    /// Orders examples predicted in the same millisecond.
    pub seed: u64,
}

impl SplitSpec {
    /// The default split: the newest `fraction` by prediction time, seed 0.
    pub fn time(fraction: f64) -> Self {
        SplitSpec { holdout_fraction: fraction, strategy: SplitStrategy::Time, seed: 0 }
    }

    /// The newest `fraction` of each segment, seed 0.
    pub fn stratified(fraction: f64) -> Self {
        SplitSpec { holdout_fraction: fraction, strategy: SplitStrategy::StratifiedBySegment, seed: 0 }
    }

    /// With this seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// What a split did, to store with the model version trained on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitRecord {
    /// The spec, seed included.
    pub spec: SplitSpec,
    /// The earliest prediction time in the hold-out, ms (`None` when it is empty); for a
    /// time split every training example is at or before it.
    pub cut_ms: Option<i64>,
    /// Per segment: the earliest prediction time in its hold-out, ms (stratified splits
    /// only; segments with an empty hold-out are absent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segment_cuts: BTreeMap<String, i64>,
    /// Examples in the training part.
    pub train_rows: u64,
    /// Examples in the hold-out.
    pub holdout_rows: u64,
    /// Per segment: (training, hold-out) examples.
    pub segment_rows: BTreeMap<String, (u64, u64)>,
    /// FNV-1a (64 bit, hex) over the training part's (prediction ID, prediction time) in
    /// read order.
    pub train_checksum: String,
    /// The same over the hold-out.
    pub holdout_checksum: String,
}

/// The two parts and their record.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// What the model learns from, in read order.
    pub train: ExampleSet,
    /// What it is judged on, in read order.
    pub holdout: ExampleSet,
    /// What the split did.
    pub record: SplitRecord,
}

impl ExampleSet {
    /// Splits the set into a training part and a hold-out per `spec` (see the module
    /// documentation). The parts come back in read order (prediction time, then ID).
    pub fn split(&self, spec: &SplitSpec) -> Result<Split, ExamplesError> {
        let f = spec.holdout_fraction;
        if !(0.0..=1.0).contains(&f) {
            return Err(ExamplesError::Split(format!("hold-out fraction {f} is not in [0, 1]")));
        }
        self.validate()?;
        // Time order, ties in an order drawn from the seed.
        let mut order: Vec<(i64, u64, &Example)> =
            self.rows.iter().map(|e| (e.predicted_ms, tie_key(spec.seed, e), e)).collect();
        order.sort_by(|a, b| (a.0, a.1, &a.2.prediction_id).cmp(&(b.0, b.1, &b.2.prediction_id)));
        let held = |n: usize| ((n as f64) * f).round() as usize;
        let mut holdout_flags = vec![false; order.len()];
        let mut segment_cuts = BTreeMap::new();
        match spec.strategy {
            SplitStrategy::Time => {
                let n = order.len();
                for flag in &mut holdout_flags[n - held(n)..] {
                    *flag = true;
                }
            }
            SplitStrategy::StratifiedBySegment => {
                let mut by_segment: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                for (i, (_, _, e)) in order.iter().enumerate() {
                    by_segment.entry(e.segment.as_str()).or_default().push(i);
                }
                for (segment, idx) in by_segment {
                    let cut = idx.len() - held(idx.len());
                    for &i in &idx[cut..] {
                        holdout_flags[i] = true;
                    }
                    if let Some(&first) = idx.get(cut) {
                        segment_cuts.insert(segment.to_string(), order[first].0);
                    }
                }
            }
        }
        let mut train = ExampleSet::new(self.features.clone());
        let mut holdout = ExampleSet::new(self.features.clone());
        let mut segment_rows: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut cut_ms: Option<i64> = None;
        for ((t, _, e), hold) in order.iter().zip(holdout_flags) {
            let counts = segment_rows.entry(e.segment.clone()).or_default();
            if hold {
                counts.1 += 1;
                cut_ms = Some(cut_ms.map_or(*t, |c| c.min(*t)));
                holdout.rows.push((*e).clone());
            } else {
                counts.0 += 1;
                train.rows.push((*e).clone());
            }
        }
        // Read order, so that equal parts are equal sets whatever the seed did to ties.
        train.sort();
        holdout.sort();
        let record = SplitRecord {
            spec: spec.clone(),
            cut_ms,
            segment_cuts,
            train_rows: train.len() as u64,
            holdout_rows: holdout.len() as u64,
            segment_rows,
            train_checksum: checksum(&train),
            holdout_checksum: checksum(&holdout),
        };
        Ok(Split { train, holdout, record })
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// A seeded, well-mixed key per example: the order of examples predicted in one millisecond.
fn tie_key(seed: u64, e: &Example) -> u64 {
    let h = fnv(fnv(FNV_OFFSET, &seed.to_le_bytes()), e.prediction_id.as_bytes());
    let mut z = fnv(h, &e.label_ms.to_le_bytes());
    // SplitMix64's finaliser: FNV's low bits alone mix poorly.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a over each example's ID, a separator and its prediction time: an ID may be empty
/// or repeated, the pair rarely is.
fn checksum(set: &ExampleSet) -> String {
    let mut h = FNV_OFFSET;
    for e in &set.rows {
        h = fnv(h, e.prediction_id.as_bytes());
        h = fnv(h, &[0xff]);
        h = fnv(h, &e.predicted_ms.to_le_bytes());
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 examples, 3 per millisecond (ties), two segments of very different sizes.
    fn set() -> ExampleSet {
        let mut s = ExampleSet::new(vec!["x".into()]);
        for i in 0..300i64 {
            s.rows.push(Example {
                prediction_id: format!("p{i}"),
                predicted_ms: 1_000 + i / 3,
                label_ms: 5_000,
                segment: if i % 10 == 0 { "rare".into() } else { "common".into() },
                features: vec![i as f64],
                confidence: 0.5,
                label: i % 2 == 0,
            });
        }
        s
    }

    #[test]
    fn the_same_seed_gives_the_same_record_and_another_seed_may_break_ties_otherwise() {
        let s = set();
        let a = s.split(&SplitSpec::time(0.25).seed(7)).unwrap();
        let b = s.split(&SplitSpec::time(0.25).seed(7)).unwrap();
        assert_eq!(a.record, b.record);
        assert_eq!(a.train, b.train);
        // Shuffled input, same seed: same split.
        let mut shuffled = s.clone();
        shuffled.rows.reverse();
        assert_eq!(shuffled.split(&SplitSpec::time(0.25).seed(7)).unwrap().record, a.record);
        // 75 held out of 300: the cut falls inside a millisecond (225 = 3 × 75), so some
        // seed orders those ties differently.
        let s2 = {
            let mut s2 = s.clone();
            s2.rows.truncate(299);
            s2
        };
        let records: std::collections::HashSet<String> = (0..20)
            .map(|seed| s2.split(&SplitSpec::time(0.25).seed(seed)).unwrap().record.holdout_checksum)
            .collect();
        assert!(records.len() > 1, "the seed never decided a tie");
    }

    #[test]
    fn a_time_split_holds_out_the_newest_examples() {
        let split = set().split(&SplitSpec::time(0.2)).unwrap();
        assert_eq!((split.record.train_rows, split.record.holdout_rows), (240, 60));
        let newest_train = split.train.rows.iter().map(|e| e.predicted_ms).max().unwrap();
        let oldest_held = split.holdout.rows.iter().map(|e| e.predicted_ms).min().unwrap();
        assert!(oldest_held >= newest_train, "{oldest_held} < {newest_train}");
        assert_eq!(split.record.cut_ms, Some(oldest_held));
        assert_ne!(split.record.train_checksum, split.record.holdout_checksum);
    }

    #[test]
    fn a_stratified_split_keeps_each_segments_share() {
        let split = set().split(&SplitSpec::stratified(0.2)).unwrap();
        assert_eq!(split.record.segment_rows["rare"], (24, 6));
        assert_eq!(split.record.segment_rows["common"], (216, 54));
        // Within each segment, the hold-out is the newest.
        for seg in ["rare", "common"] {
            let newest = split.train.rows.iter().filter(|e| e.segment == seg).map(|e| e.predicted_ms).max();
            let cut = split.record.segment_cuts[seg];
            assert!(newest.unwrap() <= cut);
        }
    }

    #[test]
    fn one_row_empty_and_bad_fractions() {
        let mut one = set();
        one.rows.truncate(1);
        let s = one.split(&SplitSpec::time(0.2)).unwrap();
        assert_eq!((s.record.train_rows, s.record.holdout_rows, s.record.cut_ms), (1, 0, None));
        let empty = ExampleSet::new(vec!["x".into()]);
        let s = empty.split(&SplitSpec::stratified(0.5)).unwrap();
        assert_eq!((s.record.train_rows, s.record.holdout_rows), (0, 0));
        for bad in [f64::NAN, -0.1, 1.5] {
            let e = set().split(&SplitSpec::time(bad)).unwrap_err().to_string();
            assert!(e.contains("hold-out fraction"), "{e}");
        }
    }
}
