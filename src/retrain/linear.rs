//! The linear model: a logistic link over a weighted sum, scored natively in Rust whichever
//! trainer fitted it (ours in process, or a user's scikit-learn script writing its
//! coefficients).

use super::{Model, TrainError};
use std::path::Path;

/// A logistic-regression model: `p = 1 / (1 + exp(-(intercept + Σ coef_i · x_i)))`.
///
/// Its `model.json` is
/// `{"kind": "linear", "features": [names], "coef": [numbers], "intercept": number,
/// "impute": [numbers]}` (`impute` optional); the numbers finite, one per feature.
///
/// Scoring never panics: a NaN or infinite value is taken as missing and replaced by the
/// feature's `impute` value (the training mean for models our trainer fits; 0 where the
/// file gives none), so a model scores rows with gaps the way it was trained; a vector of
/// the wrong length has no meaningful score and scores NaN (as does a sum that overflows
/// to both infinities, which finite inputs of a sane model never reach).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinearModel {
    /// Always `linear`: names the format, so other model formats can be told apart later.
    pub kind: String,
    /// The feature names, in the order of `coef`.
    pub features: Vec<String>,
    /// One coefficient per feature.
    #[serde(deserialize_with = "exact::many")]
    pub coef: Vec<f64>,
    /// The intercept.
    #[serde(deserialize_with = "exact::one")]
    pub intercept: f64,
    /// What a missing value of each feature is replaced with (empty: 0 for every feature).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "exact::many")]
    pub impute: Vec<f64>,
}

impl LinearModel {
    /// The `kind` of a linear `model.json`.
    pub const KIND: &'static str = "linear";

    /// A model, checked as [`load`](LinearModel::load) checks a file.
    pub fn new(
        features: Vec<String>,
        coef: Vec<f64>,
        intercept: f64,
        impute: Vec<f64>,
    ) -> Result<LinearModel, String> {
        let m = LinearModel { kind: Self::KIND.into(), features, coef, intercept, impute };
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        if self.kind != Self::KIND {
            return Err(format!("kind is {:?}; only {:?} models are scored natively", self.kind, Self::KIND));
        }
        if self.coef.len() != self.features.len() {
            return Err(format!("{} coefficients for {} features", self.coef.len(), self.features.len()));
        }
        if !self.impute.is_empty() && self.impute.len() != self.features.len() {
            return Err(format!("{} impute values for {} features", self.impute.len(), self.features.len()));
        }
        if let Some(f) = self.features.iter().find(|f| f.is_empty() || f.chars().any(char::is_control)) {
            return Err(format!("feature name {f:?} is empty or has a control character"));
        }
        for (what, values) in [("coef", &self.coef), ("impute", &self.impute)] {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(format!("{what}[{i}] is not a finite number"));
            }
        }
        if !self.intercept.is_finite() {
            return Err("intercept is not a finite number".into());
        }
        Ok(())
    }

    /// Reads and checks a linear `model.json`; errors name the file.
    pub fn load(path: &Path) -> Result<LinearModel, TrainError> {
        let m: LinearModel = super::read_json(path, "model")?;
        m.check().map_err(|what| TrainError::Malformed { path: path.to_path_buf(), what })?;
        Ok(m)
    }

    /// The weighted sum before the link, with missing values imputed.
    pub fn decision(&self, features: &[f64]) -> f64 {
        if features.len() != self.coef.len() {
            return f64::NAN;
        }
        let mut z = self.intercept;
        for (i, (&x, &w)) in features.iter().zip(&self.coef).enumerate() {
            let x = if x.is_finite() { x } else { self.impute.get(i).copied().unwrap_or(0.0) };
            z += w * x;
        }
        z
    }
}

/// Numbers read from their JSON text by the standard library's parser, which rounds
/// correctly: a model read back has every bit of the one written (by us through ryu, or by
/// Python's `repr`). Needs a text deserialiser (`serde_json::from_slice`/`from_str`), as
/// [`LinearModel::load`] uses; not a `serde_json::Value`.
mod exact {
    use serde::Deserialize;
    use serde_json::value::RawValue;

    fn parse<E: serde::de::Error>(raw: &RawValue) -> Result<f64, E> {
        let text = raw.get().trim();
        // A JSON string or literal would parse here only if it spelled a number, which
        // `parse` does not accept with quotes; `inf`/`NaN` are not JSON, so never arrive.
        text.parse::<f64>().map_err(|_| E::custom(format!("{text} is not a number")))
    }

    pub(super) fn one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        parse(&<Box<RawValue>>::deserialize(d)?)
    }

    pub(super) fn many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Box<RawValue>>::deserialize(d)?.iter().map(|r| parse(r)).collect()
    }
}

/// The logistic function, without overflow at either end.
pub(super) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl Model for LinearModel {
    fn features(&self) -> &[String] {
        &self.features
    }

    fn score(&self, features: &[f64]) -> f64 {
        sigmoid(self.decision(features))
    }

    fn as_linear(&self) -> Option<&LinearModel> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> LinearModel {
        LinearModel::new(vec!["a".into(), "b".into()], vec![2.0, -1.0], 0.5, vec![1.0, 3.0]).unwrap()
    }

    #[test]
    fn scores_the_logistic_of_the_weighted_sum() {
        let z: f64 = 0.5 + 2.0 * 0.25 - 1.0 * 4.0;
        assert!((model().score(&[0.25, 4.0]) - 1.0 / (1.0 + (-z).exp())).abs() < 1e-15);
    }

    #[test]
    fn missing_and_infinite_values_take_the_impute_value() {
        let m = model();
        let imputed = m.score(&[1.0, 3.0]);
        assert_eq!(m.score(&[f64::NAN, 3.0]), imputed);
        assert_eq!(m.score(&[1.0, f64::INFINITY]), imputed);
        assert_eq!(m.score(&[f64::NEG_INFINITY, f64::NAN]), imputed);
    }

    #[test]
    fn a_vector_of_the_wrong_length_scores_nan() {
        assert!(model().score(&[1.0]).is_nan());
        assert!(model().score(&[1.0, 2.0, 3.0]).is_nan());
    }

    #[test]
    fn extreme_sums_score_zero_or_one_not_nan() {
        let m = LinearModel::new(vec!["a".into()], vec![1.0], 0.0, vec![]).unwrap();
        assert_eq!(m.score(&[1e308]), 1.0);
        assert_eq!(m.score(&[-1e308]), 0.0);
    }

    #[test]
    fn a_model_read_back_has_every_bit_of_the_one_written() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || loop {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if v.is_finite() {
                return v;
            }
        };
        let n = 5000;
        let coef: Vec<f64> = (0..n).map(|_| next()).collect();
        let impute: Vec<f64> = (0..n).map(|_| next()).collect();
        let m = LinearModel::new((0..n).map(|i| format!("f{i}")).collect(), coef, next(), impute).unwrap();
        let back: LinearModel = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.coef), bits(&m.coef));
        assert_eq!(bits(&back.impute), bits(&m.impute));
        assert_eq!(back.intercept.to_bits(), m.intercept.to_bits());
    }

    #[test]
    fn numbers_in_any_json_spelling_are_read_and_strings_are_not() {
        let text = r#"{"kind":"linear","features":["a","b"],"coef":[1E+2,-0.5e-1],"intercept":-3}"#;
        let m: LinearModel = serde_json::from_str(text).unwrap();
        assert_eq!((m.coef, m.intercept), (vec![100.0, -0.05], -3.0));
        let e = serde_json::from_str::<LinearModel>(&text.replace("-3}", "\"-3\"}")).unwrap_err();
        assert!(e.to_string().contains("\"-3\" is not a number"), "{e}");
    }

    #[test]
    fn refuses_mismatched_or_non_finite_parameters() {
        let f = || vec!["a".to_string(), "b".to_string()];
        assert!(
            LinearModel::new(f(), vec![1.0], 0.0, vec![])
                .unwrap_err()
                .contains("1 coefficients for 2 features")
        );
        assert!(LinearModel::new(f(), vec![1.0, f64::NAN], 0.0, vec![]).unwrap_err().contains("coef[1]"));
        assert!(LinearModel::new(f(), vec![1.0, 1.0], 0.0, vec![0.0]).unwrap_err().contains("impute"));
        assert!(
            LinearModel::new(f(), vec![1.0, 1.0], f64::INFINITY, vec![]).unwrap_err().contains("intercept")
        );
    }
}
