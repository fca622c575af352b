//! Demo scenarios as data: the traffic, segments, variants, features and the drift injected,
//! and what the demo's summary looks at. A new scenario is one value added to [`ALL`].

use super::Rng;

/// A simulated scorer.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name (`modelwatch demo --scenario NAME`).
    pub name: &'static str,
    /// In one line.
    pub about: &'static str,
    /// The model's name in the store.
    pub model: &'static str,
    /// Segments (e.g. PII categories), equally likely.
    pub segments: &'static [Segment],
    /// Variants and their share of the traffic.
    pub variants: &'static [Variant],
    /// Numeric features, in schema order.
    pub numeric: &'static [Numeric],
    /// How documents that are not what their segment looks for (label false) differ:
    /// (feature, segment or every segment, their values). The model learns the difference
    /// from labelled examples; every other feature is drawn alike for both labels.
    pub negatives: &'static [(&'static str, Option<&'static str>, Gen)],
    /// Categorical features, after the numeric ones in the schema.
    pub categorical: &'static [Categorical],
    /// Predictions per minute.
    pub traffic: Traffic,
    /// Share of requests that fail, and the error kind they record.
    pub errors: (f64, &'static str),
    /// Share of predictions users label (with the document's true label).
    pub feedback: f64,
    /// Mean delay, minutes, before a user's label comes back (exponentially distributed):
    /// `(confirmations, rejections)`. Labels still due at the end of the run never arrive.
    pub label_delay_min: (f64, f64),
    /// Confidence from which a prediction is positive.
    pub threshold: f64,
    /// The drift injected.
    pub drift: DriftEvent,
    /// What the summary compares before and after the drift: (title, query).
    pub summary: &'static [(&'static str, &'static str)],
    /// The query the CUSUM detector (and the demo's drift trigger) watches.
    pub watch: &'static str,
}

/// A segment: its name, its latency (ms, median) and how often its candidates are real.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Its name.
    pub name: &'static str,
    /// Median latency, ms (lognormal with σ = `Traffic::latency_sigma`).
    pub latency_ms: f64,
    /// The share of its candidates that really are what it looks for: the probability of a
    /// true label. The world does not change at the drift; only how documents look.
    pub positives: f64,
}

/// A model variant.
#[derive(Clone, Debug)]
pub struct Variant {
    /// `control`, `canary`, ...
    pub name: &'static str,
    /// Its model version.
    pub version: &'static str,
    /// Its share of the traffic.
    pub share: f64,
    /// Its latency relative to the segment's.
    pub latency_factor: f64,
}

/// How many predictions arrive per minute: a daily cycle around a mean, with noise.
#[derive(Clone, Debug)]
pub struct Traffic {
    /// Mean predictions per minute.
    pub per_minute: f64,
    /// Amplitude of the daily cycle.
    pub daily_amplitude: f64,
    /// The busiest hour (UTC).
    pub peak_hour: f64,
    /// Minute-to-minute noise (sd).
    pub noise: f64,
    /// σ of log latency.
    pub latency_sigma: f64,
}

/// A numeric feature: a generator, per-segment overrides, and a missing rate.
#[derive(Clone, Debug)]
pub struct Numeric {
    /// Its name.
    pub name: &'static str,
    /// The values in every segment without an override.
    pub values: Gen,
    /// Overrides by segment name.
    pub by_segment: &'static [(&'static str, Gen)],
    /// Share of values missing (NaN: an upstream extractor timed out).
    pub missing: f64,
}

/// A categorical feature: categories and their weights.
#[derive(Clone, Debug)]
pub struct Categorical {
    /// Its name.
    pub name: &'static str,
    /// (category, weight).
    pub categories: &'static [(&'static str, f64)],
}

/// How a value is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gen {
    /// Always this value.
    Constant(f64),
    /// Normal, clamped to `[min, max]`, rounded to a whole number when `round`.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        sd: f64,
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
        /// Whole numbers.
        round: bool,
    },
    /// Uniform in [0, 1).
    Uniform,
    /// 1 with probability `p`, else 0.
    Bernoulli(f64),
}

/// The drift injected part-way through the run.
#[derive(Clone, Debug)]
pub struct DriftEvent {
    /// Where it starts, as a share of the run (2/3: two thirds in).
    pub at: f64,
    /// What changes, in words (the event's message in the store).
    pub note: &'static str,
    /// Features whose generator changes: (feature, segment or every segment, new values).
    pub features: &'static [(&'static str, Option<&'static str>, Gen)],
}

const fn normal(mean: f64, sd: f64, min: f64, max: f64) -> Gen {
    Gen::Normal { mean, sd, min, max, round: false }
}

const fn ratio(mean: f64, sd: f64) -> Gen {
    normal(mean, sd, 0.0, 1.0)
}

const fn count(mean: f64, sd: f64, min: f64) -> Gen {
    Gen::Normal { mean, sd, min, max: f64::INFINITY, round: true }
}

impl Gen {
    /// One value.
    pub fn draw(&self, rng: &mut Rng) -> f64 {
        match *self {
            Gen::Constant(v) => v,
            Gen::Normal { mean, sd, min, max, round } => {
                let v = (mean + sd * rng.normal()).clamp(min, max);
                if round { v.round() } else { v }
            }
            Gen::Uniform => rng.u(),
            Gen::Bernoulli(p) => f64::from(u8::from(rng.u() < p)),
        }
    }
}

/// The PII-detection scorer of the planning document: six PII categories, 14 numeric and
/// 2 categorical features, a 10 % canary 15 % slower, 5 % of predictions labelled (a
/// confirmation about 30 min later, a rejection about 6 h later), and two
/// thirds in a new phone-number format (fewer digits, and the regex stops matching, so the
/// model trained before it misses real phone numbers) and documents twice as long.
pub const PII: Scenario = Scenario {
    name: "pii",
    about: "a PII-detection scorer with a 10 % canary; phone numbers change format two thirds in",
    model: "pii-confidence",
    segments: &[
        Segment { name: "email", latency_ms: 3.5, positives: 0.86 },
        Segment { name: "phone", latency_ms: 4.0, positives: 0.82 },
        Segment { name: "ssn", latency_ms: 3.0, positives: 0.90 },
        Segment { name: "credit_card", latency_ms: 5.0, positives: 0.88 },
        Segment { name: "name", latency_ms: 4.5, positives: 0.70 },
        Segment { name: "address", latency_ms: 6.0, positives: 0.74 },
    ],
    variants: &[
        Variant { name: "control", version: "1.4.0", share: 0.9, latency_factor: 1.0 },
        Variant { name: "canary", version: "1.5.0-rc1", share: 0.1, latency_factor: 1.15 },
    ],
    numeric: &[
        Numeric {
            name: "token_length",
            values: count(18.0, 3.0, 1.0),
            by_segment: &[
                ("phone", count(12.0, 3.0, 1.0)),
                ("ssn", count(11.0, 3.0, 1.0)),
                ("credit_card", count(16.0, 3.0, 1.0)),
                ("name", count(9.0, 3.0, 1.0)),
                ("address", count(28.0, 3.0, 1.0)),
            ],
            missing: 0.0,
        },
        Numeric {
            name: "digit_ratio",
            values: ratio(0.05, 0.08),
            by_segment: &[
                ("phone", ratio(0.75, 0.08)),
                ("ssn", ratio(0.8, 0.08)),
                ("credit_card", ratio(0.8, 0.08)),
            ],
            missing: 0.0,
        },
        Numeric {
            name: "alpha_ratio",
            values: ratio(0.95, 0.08),
            by_segment: &[
                ("phone", ratio(0.25, 0.08)),
                ("ssn", ratio(0.2, 0.08)),
                ("credit_card", ratio(0.2, 0.08)),
            ],
            missing: 0.0,
        },
        Numeric { name: "upper_ratio", values: ratio(0.1, 0.05), by_segment: &[], missing: 0.0 },
        Numeric { name: "punct_ratio", values: ratio(0.05, 0.02), by_segment: &[], missing: 0.0 },
        Numeric {
            name: "has_at_sign",
            values: Gen::Constant(0.0),
            by_segment: &[("email", Gen::Bernoulli(0.97))],
            missing: 0.0,
        },
        Numeric {
            name: "dash_count",
            values: Gen::Constant(0.0),
            by_segment: &[("phone", count(2.0, 1.0, 0.0)), ("ssn", count(2.0, 1.0, 0.0))],
            missing: 0.0,
        },
        Numeric { name: "context_score", values: ratio(0.7, 0.15), by_segment: &[], missing: 0.02 },
        Numeric { name: "regex_match", values: Gen::Bernoulli(0.85), by_segment: &[], missing: 0.0 },
        Numeric {
            name: "checksum_valid",
            values: Gen::Constant(0.0),
            by_segment: &[("credit_card", Gen::Bernoulli(0.9))],
            missing: 0.0,
        },
        Numeric {
            name: "char_entropy",
            values: normal(3.2, 0.4, 0.0, f64::INFINITY),
            by_segment: &[],
            missing: 0.0,
        },
        Numeric { name: "position_in_doc", values: Gen::Uniform, by_segment: &[], missing: 0.0 },
        Numeric { name: "doc_length", values: count(1200.0, 360.0, 50.0), by_segment: &[], missing: 0.0 },
        Numeric { name: "prev_token_is_label", values: Gen::Bernoulli(0.3), by_segment: &[], missing: 0.0 },
    ],
    // A candidate that is not PII (a date that looks like a phone number, a name that is a
    // product): the regex matches less, the context says less, a card number fails its
    // checksum, and the token before it is rarely a label.
    negatives: &[
        ("regex_match", None, Gen::Bernoulli(0.1)),
        ("context_score", None, ratio(0.5, 0.15)),
        ("checksum_valid", Some("credit_card"), Gen::Bernoulli(0.1)),
        ("prev_token_is_label", None, Gen::Bernoulli(0.1)),
    ],
    categorical: &[
        Categorical { name: "language", categories: &[("en", 1.0), ("de", 1.0), ("fr", 1.0), ("es", 1.0)] },
        Categorical { name: "script", categories: &[("latin", 0.9), ("cyrillic", 0.1), ("cjk", 0.0)] },
    ],
    traffic: Traffic {
        per_minute: 12.0,
        daily_amplitude: 10.0,
        peak_hour: 14.0,
        noise: 2.0,
        latency_sigma: 0.35,
    },
    errors: (0.002, "timeout"),
    feedback: 0.05,
    // Users confirm a detection within the hour; a rejection goes through a review queue.
    label_delay_min: (30.0, 360.0),
    threshold: 0.5,
    drift: DriftEvent {
        at: 2.0 / 3.0,
        note: "the demo injects a drift: new phone number format, longer documents",
        features: &[
            ("digit_ratio", Some("phone"), ratio(0.45, 0.08)),
            ("alpha_ratio", Some("phone"), ratio(0.55, 0.08)),
            ("doc_length", None, count(2400.0, 720.0, 50.0)),
            // The regex does not know the new format: real phone numbers stop matching it.
            ("regex_match", Some("phone"), Gen::Bernoulli(0.1)),
        ],
    },
    summary: &[
        ("p95 latency, ms (control)", r#"p95(latency{variant="control"})"#),
        ("p95 latency, ms (canary)", r#"p95(latency{variant="canary"})"#),
        ("mean confidence, phone", r#"mean(confidence{segment="phone"})"#),
        ("mean confidence, email", r#"mean(confidence{segment="email"})"#),
        ("mean digit_ratio, phone", r#"mean(feature{feature="digit_ratio", segment="phone"})"#),
        ("mean doc_length, all", r#"mean(feature{feature="doc_length"})"#),
    ],
    watch: r#"mean(confidence{segment="phone"})"#,
};

/// Every scenario, the default first.
pub const ALL: &[Scenario] = &[PII];

/// The scenario of a name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.name == name)
}

impl Scenario {
    /// The generator of a numeric feature in a segment, before or after the drift, for a
    /// document with the given true label: the drift's values first, then the negatives',
    /// then the segment's, then the feature's.
    pub fn generator(&self, feature: usize, segment: &str, drifted: bool, label: bool) -> Gen {
        let f = &self.numeric[feature];
        let applies = |name: &str, seg: &Option<&str>| name == f.name && seg.is_none_or(|s| s == segment);
        let drift = drifted
            .then(|| self.drift.features.iter().find(|(name, seg, _)| applies(name, seg)).map(|d| d.2))
            .flatten();
        let negative =
            (!label).then(|| self.negatives.iter().find(|(name, seg, _)| applies(name, seg)).map(|n| n.2));
        drift
            .or(negative.flatten())
            .or_else(|| f.by_segment.iter().find(|(s, _)| *s == segment).map(|o| o.1))
            .unwrap_or(f.values)
    }

    /// Draws a document's numeric features into `x` (NaN where a value is missing).
    pub fn draw_features(&self, segment: &str, drifted: bool, label: bool, rng: &mut Rng, x: &mut [f64]) {
        for (i, f) in self.numeric.iter().enumerate() {
            let value = self.generator(i, segment, drifted, label).draw(rng);
            x[i] = if f.missing > 0.0 && rng.u() < f.missing { f64::NAN } else { value };
        }
    }

    /// `n` labelled documents from before the drift, predicted evenly over `[from_ms, to_ms)`
    /// and labelled an hour later: the history the demo's first model is trained on. The
    /// features are the agent's schema (numeric, then each categorical feature's category
    /// index); the confidence given is NaN (no model scored them).
    pub fn history(
        &self,
        n: usize,
        from_ms: i64,
        to_ms: i64,
        seed: u64,
    ) -> modelwatch_store::examples::ExampleSet {
        use modelwatch_store::examples::{Example, ExampleSet};
        let mut rng = Rng::seeded(seed);
        // The agent's schema: the numeric features, then the categorical ones by index.
        let names = self.numeric.iter().map(|f| f.name).chain(self.categorical.iter().map(|c| c.name));
        let mut set = ExampleSet::new(names.map(str::to_string).collect());
        let step = (to_ms - from_ms).max(1) as f64 / n.max(1) as f64;
        for i in 0..n {
            let seg = rng.below(self.segments.len());
            let label = rng.u() < self.segments[seg].positives;
            let mut x = vec![0.0; self.numeric.len() + self.categorical.len()];
            self.draw_features(self.segments[seg].name, false, label, &mut rng, &mut x);
            for (j, c) in self.categorical.iter().enumerate() {
                x[self.numeric.len() + j] =
                    super::simulate::pick(&mut rng, c.categories.iter().map(|c| c.1)) as f64;
            }
            let predicted_ms = from_ms + (i as f64 * step) as i64;
            set.rows.push(Example {
                prediction_id: format!("history-{i}"),
                predicted_ms,
                label_ms: predicted_ms + 3_600_000,
                segment: self.segments[seg].name.to_string(),
                features: x,
                confidence: f64::NAN,
                label,
            });
        }
        set
    }

    /// Checks that every name the scenario refers to exists.
    pub fn validate(&self) -> Result<(), String> {
        let seg = |s: &str| self.segments.iter().any(|x| x.name == s);
        let feature = |f: &str| self.numeric.iter().any(|x| x.name == f);
        for f in self.numeric {
            if let Some((s, _)) = f.by_segment.iter().find(|(s, _)| !seg(s)) {
                return Err(format!("scenario {}: feature {} names unknown segment {s}", self.name, f.name));
            }
        }
        for (f, s, _) in self.drift.features {
            if !feature(f) || s.is_some_and(|s| !seg(s)) {
                return Err(format!(
                    "scenario {}: the drift names unknown feature {f} or segment {s:?}",
                    self.name
                ));
            }
        }
        for (f, s, _) in self.negatives {
            if !feature(f) || s.is_some_and(|s| !seg(s)) {
                return Err(format!(
                    "scenario {}: the negatives name unknown feature {f} or segment {s:?}",
                    self.name
                ));
            }
        }
        let share: f64 = self.variants.iter().map(|v| v.share).sum();
        if (share - 1.0).abs() > 1e-9 {
            return Err(format!("scenario {}: variant shares add up to {share}, not 1", self.name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_names_only_what_it_defines() {
        for s in ALL {
            s.validate().unwrap();
        }
        assert_eq!(find("pii").map(|s| s.model), Some("pii-confidence"));
        assert!(find("nope").is_none());
    }

    #[test]
    fn the_drift_changes_only_what_it_names() {
        let phone_digits = PII.numeric.iter().position(|f| f.name == "digit_ratio").unwrap();
        assert_eq!(PII.generator(phone_digits, "phone", false, true), ratio(0.75, 0.08));
        assert_eq!(PII.generator(phone_digits, "phone", true, true), ratio(0.45, 0.08));
        assert_eq!(PII.generator(phone_digits, "email", true, false), ratio(0.05, 0.08));
        let doc = PII.numeric.iter().position(|f| f.name == "doc_length").unwrap();
        assert_eq!(PII.generator(doc, "ssn", true, false), count(2400.0, 720.0, 50.0));
        // The regex tells real from not before the drift, and not for phones after it.
        let regex = PII.numeric.iter().position(|f| f.name == "regex_match").unwrap();
        assert_eq!(PII.generator(regex, "phone", false, true), Gen::Bernoulli(0.85));
        assert_eq!(PII.generator(regex, "phone", false, false), Gen::Bernoulli(0.1));
        assert_eq!(PII.generator(regex, "phone", true, true), Gen::Bernoulli(0.1));
        assert_eq!(PII.generator(regex, "email", true, true), Gen::Bernoulli(0.85));
    }
}
