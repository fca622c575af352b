//! The in-process trainer: L2-regularised logistic regression fitted by linfa (L-BFGS),
//! with scikit-learn's `LogisticRegression` objective so the two agree.
//!
//! scikit-learn minimises `C · Σ_i logloss_i + ½‖w‖²` (the intercept unpenalised);
//! linfa-logistic minimises `Σ_i logloss_i + (α/2)‖w‖²` (the intercept unpenalised too).
//! Dividing the first by `C` gives the second with `α = 1/C`: the same minimiser.

use super::linear::LinearModel;
use super::{METADATA_FILE, MODEL_FILE, Model, TrainError, Trained, Trainer, TrainingData};
use linfa::traits::Fit;
use std::path::Path;

/// Logistic regression in process, scikit-learn's default objective: L2 penalty with
/// inverse strength `c` on the coefficients, the intercept unpenalised.
///
/// Missing (NaN) and infinite feature values are replaced by the feature's mean over the
/// training rows where it is finite (0 where it never is); the means go into the model
/// (its `impute`), so scoring treats a missing value the same way. A constant column gets a
/// coefficient of 0 (the penalty picks it among the fits the intercept makes equal).
/// Features are not scaled, as scikit-learn does not scale them.
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticTrainer {
    /// scikit-learn's `C`, the inverse of the regularisation strength: finite and positive
    /// (linfa's `alpha` is `1/c`).
    pub c: f64,
    /// The most L-BFGS iterations.
    pub max_iterations: u64,
    /// The solver stops when the gradient's norm of the summed loss falls below this, or
    /// earlier when the loss stops changing in floating point (the metadata's
    /// `gradient_norm` says where it ended).
    pub gradient_tolerance: f64,
}

impl Default for LogisticTrainer {
    /// `c = 1` (scikit-learn's default), 1,000 iterations, gradient tolerance 1e-8.
    fn default() -> Self {
        LogisticTrainer { c: 1.0, max_iterations: 1000, gradient_tolerance: 1e-8 }
    }
}

impl LogisticTrainer {
    /// The kind of this trainer's models.
    pub const KIND: &'static str = "logistic";

    /// Fits the model without writing anything.
    pub fn fit(&self, data: &TrainingData) -> Result<LinearModel, TrainError> {
        data.check()?;
        if !(self.c.is_finite() && self.c > 0.0) {
            return Err(TrainError::Settings(format!("C must be a finite positive number, not {}", self.c)));
        }
        if !(self.gradient_tolerance.is_finite() && self.gradient_tolerance > 0.0) {
            return Err(TrainError::Settings(format!(
                "the gradient tolerance must be a finite positive number, not {}",
                self.gradient_tolerance
            )));
        }
        let rows = &data.train.rows;
        let positives = rows.iter().filter(|e| e.label).count();
        if positives == 0 || positives == rows.len() {
            let class = if positives == 0 { "negative" } else { "positive" };
            return Err(TrainError::Data(format!(
                "all {} training examples are {class}: logistic regression needs both classes",
                rows.len()
            )));
        }
        let width = data.features().len();
        let mut sums = vec![(0.0, 0usize); width];
        for e in rows {
            for (s, &x) in sums.iter_mut().zip(&e.features) {
                if x.is_finite() {
                    s.0 += x;
                    s.1 += 1;
                }
            }
        }
        let impute: Vec<f64> =
            sums.iter().map(|&(sum, n)| if n == 0 { 0.0 } else { sum / n as f64 }).collect();
        let mut x = ndarray::Array2::<f64>::zeros((rows.len(), width));
        for (mut row, e) in x.rows_mut().into_iter().zip(rows) {
            for ((cell, &v), &m) in row.iter_mut().zip(&e.features).zip(&impute) {
                *cell = if v.is_finite() { v } else { m };
            }
        }
        let y: ndarray::Array1<bool> = rows.iter().map(|e| e.label).collect();
        let fitted = linfa_logistic::LogisticRegression::default()
            .alpha(1.0 / self.c)
            .with_intercept(true)
            .max_iterations(self.max_iterations)
            .gradient_tolerance(self.gradient_tolerance)
            .fit(&linfa::DatasetBase::new(x, y))
            .map_err(|e| TrainError::Fit { kind: Self::KIND.into(), what: e.to_string() })?;
        // linfa's positive class is the more frequent one (the first seen on a tie), not
        // `true`: where it is `false`, P(true) = 1 - σ(z) = σ(-z), so the signs flip.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        let coef: Vec<f64> = fitted.params().iter().map(|w| sign * w).collect();
        let intercept = sign * fitted.intercept();
        LinearModel::new(data.features().to_vec(), coef, intercept, impute).map_err(|what| TrainError::Fit {
            kind: Self::KIND.into(),
            what: format!("the fit diverged: {what}"),
        })
    }
}

impl LogisticTrainer {
    /// The norm of the objective's gradient at the model (`gradient_norm` in the metadata),
    /// recomputed here because linfa does not say why it stopped: on the tolerance, on the
    /// iteration limit, or (most often, with a tight tolerance) because the summed loss no
    /// longer changes in floating point. The coefficients are within about `c` times this
    /// of the optimum (the penalty makes the objective at least `1/c`-curved).
    fn gradient_norm(&self, model: &LinearModel, data: &TrainingData) -> f64 {
        let alpha = 1.0 / self.c;
        let mut grad: Vec<f64> = model.coef.iter().map(|w| alpha * w).collect();
        let mut grad_b = 0.0;
        for e in &data.train.rows {
            let r = model.score(&e.features) - if e.label { 1.0 } else { 0.0 };
            grad_b += r;
            for ((g, &x), &m) in grad.iter_mut().zip(&e.features).zip(&model.impute) {
                *g += r * if x.is_finite() { x } else { m };
            }
        }
        (grad.iter().map(|g| g * g).sum::<f64>() + grad_b * grad_b).sqrt()
    }
}

impl Trainer for LogisticTrainer {
    fn kind(&self) -> String {
        Self::KIND.into()
    }

    fn train(&self, data: &TrainingData, out_dir: &Path) -> Result<Trained, TrainError> {
        let model = self.fit(data)?;
        let gradient = self.gradient_norm(&model, data);
        // A finite but enormous value (1e300) overflows the loss: linfa then returns its
        // starting point (all zeros, scoring 0.5 everywhere) as if it had converged, and the
        // gradient there is not finite. scikit-learn only warns; a model that learned
        // nothing must not reach the registry.
        if !gradient.is_finite() {
            return Err(TrainError::Fit {
                kind: Self::KIND.into(),
                what: "the fit did not converge: the loss overflows at the solution (a feature value too large to \
                       use, e.g. 1e300? scale or clip the features)"
                    .into(),
            });
        }
        super::prepare_out_dir(out_dir)?;
        let named = |values: &[f64]| -> serde_json::Map<String, serde_json::Value> {
            model.features.iter().cloned().zip(values.iter().map(|&v| serde_json::json!(v))).collect()
        };
        let metadata = serde_json::json!({
            "trainer": Self::KIND,
            "solver": "linfa-logistic L-BFGS",
            "C": self.c,
            "alpha": 1.0 / self.c,
            "max_iterations": self.max_iterations,
            "gradient_tolerance": self.gradient_tolerance,
            "coef": named(&model.coef),
            "intercept": model.intercept,
            "impute": named(&model.impute),
            "gradient_norm": gradient,
            "train_rows": data.train.len(),
            "train_positives": data.train.rows.iter().filter(|e| e.label).count(),
            "holdout": super::holdout_summary(&model as &dyn Model, &data.holdout),
        });
        super::write_json(&out_dir.join(MODEL_FILE), &model)?;
        super::write_json(&out_dir.join(METADATA_FILE), &metadata)?;
        Ok(Trained {
            kind: Self::KIND.into(),
            artifact_dir: out_dir.to_path_buf(),
            files: super::list_files(out_dir)?,
            metadata,
            output: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_store::examples::{Example, ExampleSet};

    fn set(rows: &[(Vec<f64>, bool)]) -> ExampleSet {
        let width = rows.first().map_or(0, |r| r.0.len());
        let mut s = ExampleSet::new((0..width).map(|i| format!("f{i}")).collect());
        for (i, (x, y)) in rows.iter().enumerate() {
            s.rows.push(Example {
                prediction_id: format!("p{i}"),
                predicted_ms: i as i64,
                label_ms: i as i64,
                segment: "s".into(),
                features: x.clone(),
                confidence: 0.5,
                label: *y,
            });
        }
        s
    }

    fn data(rows: &[(Vec<f64>, bool)]) -> TrainingData {
        let train = set(rows);
        let holdout = ExampleSet::new(train.features.clone());
        TrainingData { train, holdout }
    }

    #[test]
    fn a_fit_the_loss_overflows_at_is_an_error_not_a_model_of_zeros() {
        // One finite but enormous value: linfa returns its zero start as if converged.
        let rows: Vec<(Vec<f64>, bool)> =
            (0..100).map(|i| (vec![i as f64 / 10.0, if i == 3 { 1e300 } else { 1.0 }], i % 3 == 0)).collect();
        let dir = tempfile::tempdir().unwrap();
        let e =
            LogisticTrainer::default().train(&data(&rows), &dir.path().join("m")).unwrap_err().to_string();
        assert!(e.contains("did not converge") && e.contains("1e300"), "{e}");
    }

    #[test]
    fn matches_the_closed_case_scikit_learn_gives() {
        // sklearn.linear_model.LogisticRegression(C=1, tol=1e-12).fit([[0],[1],[2],[3],[4],[5]],
        // [0,0,1,0,1,1]): coef 0.76705372, intercept -1.91763431. The classes tie, so linfa's
        // positive class is the first seen (false): this is the sign flip's case.
        let m = LogisticTrainer::default()
            .fit(&data(
                &[0, 0, 1, 0, 1, 1]
                    .iter()
                    .enumerate()
                    .map(|(x, &y)| (vec![x as f64], y == 1))
                    .collect::<Vec<_>>(),
            ))
            .unwrap();
        assert!((m.coef[0] - 0.76705372).abs() < 1e-7, "{m:?}");
        assert!((m.intercept + 1.91763431).abs() < 1e-7, "{m:?}");
    }

    #[test]
    fn one_class_and_no_rows_are_clear_errors() {
        let e = LogisticTrainer::default().fit(&data(&[(vec![0.0], true), (vec![1.0], true)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "training data: all 2 training examples are positive: logistic regression needs both classes"
        );
        let e = LogisticTrainer::default().fit(&data(&[])).unwrap_err();
        assert_eq!(e.to_string(), "training data: no training examples");
    }

    #[test]
    fn nan_is_imputed_with_the_training_mean_and_a_constant_column_gets_zero() {
        let rows: Vec<(Vec<f64>, bool)> = (0..40)
            .map(|i| {
                let x = (i % 10) as f64;
                let v = if i % 7 == 0 { f64::NAN } else { x };
                (vec![v, 3.0], (i * 7919) % 10 < (i % 10))
            })
            .collect();
        let m = LogisticTrainer::default().fit(&data(&rows)).unwrap();
        let finite: Vec<f64> = rows.iter().map(|r| r.0[0]).filter(|v| v.is_finite()).collect();
        let mean = finite.iter().sum::<f64>() / finite.len() as f64;
        assert_eq!(m.impute, vec![mean, 3.0]);
        assert!(m.coef[1].abs() < 1e-6, "{m:?}");
        assert!(m.coef.iter().chain([&m.intercept]).all(|v| v.is_finite()));
    }

    #[test]
    fn c_must_be_finite_and_positive() {
        let d = data(&[(vec![0.0], true), (vec![1.0], false)]);
        for c in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            let e = LogisticTrainer { c, ..Default::default() }.fit(&d).unwrap_err();
            assert!(e.to_string().starts_with("trainer settings: C must be a finite positive number"), "{e}");
        }
    }
}
