//! Labelled examples: what a model is trained and judged on (the seed's
//! `TrainingDataStorage`).
//!
//! An [`Example`] is one prediction that got its label: the feature vector the model saw,
//! the segment, the confidence it gave, when and under which ID it predicted, and the label
//! with its arrival time. An [`ExampleSet`] is examples of one model with its feature names,
//! in one order.
//!
//! A set is exchanged as one Parquet file in a wide layout that DuckDB, pyarrow and pandas
//! read directly: the fixed columns `prediction_id`, `predicted_at`, `label_time` (UTC
//! timestamps in ms), `segment`, `confidence`, `label`, then one `Float64` column per
//! feature, named as the feature (a feature may not take a fixed column's name). The
//! feature names are also in the footer (`modelwatch.features`, a JSON list), which keeps
//! their order even where a reader reorders columns. A trainer's external command gets its
//! training and hold-out sets in this layout (see `docs/storage-format.md`).
//!
//! The store keeps a model's examples under each writer slot, one file per model, UTC day of
//! prediction time and feature list: `writers/<id>/examples/model=<name>/date=YYYY-MM-DD/`,
//! listed in the slot's manifest apart from the tables' files. They are appended through the
//! WAL like every other row ([`crate::Store::append_examples`], or the examples of an
//! agent's snapshot) and read merged across slots ([`crate::Store::examples`],
//! [`crate::Store::examples_labelled_after`]); [`ExampleSet::split`] makes the hold-out.

use arrow_array::builder::{BooleanBuilder, Float64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;

/// One labelled prediction.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    /// The prediction's ID, as the scorer gave it (may be empty).
    pub prediction_id: String,
    /// When the prediction was made, ms since the epoch.
    pub predicted_ms: i64,
    /// When its label arrived, ms since the epoch.
    pub label_ms: i64,
    /// The segment.
    pub segment: String,
    /// The feature values, in the order of the set's feature names.
    pub features: Vec<f64>,
    /// The confidence the model gave (the probability of the positive class).
    pub confidence: f64,
    /// The label.
    pub label: bool,
}

/// Labelled examples of one model, with its feature names.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExampleSet {
    /// The feature names; every example has one value per name, in this order.
    pub features: Vec<String>,
    /// The examples.
    pub rows: Vec<Example>,
}

/// Why a set could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExamplesError {
    /// An example has a different number of feature values than the set has names.
    #[error("example {index} ({id:?}) has {got} feature values, the set has {want} features")]
    Width {
        /// The example's index in the set.
        index: usize,
        /// Its prediction ID.
        id: String,
        /// How many values it has.
        got: usize,
        /// How many names the set has.
        want: usize,
    },
    /// A feature name no examples file can hold as a column: empty, repeated, with a
    /// control character, a fixed column's name (in any case: DuckDB matches names without
    /// case) or a partition key's (`model`, `date`).
    #[error("feature name {0:?} {1}")]
    FeatureName(String, &'static str),
    /// A model name that cannot name a model's examples (empty, or with a control
    /// character).
    #[error("model name {0:?} is empty or has a control character")]
    Model(String),
    /// A split that cannot be made (a hold-out fraction outside `[0, 1]`).
    #[error("cannot split examples: {0}")]
    Split(String),
    /// The file's columns are not the wide layout.
    #[error("{path}: not a labelled-examples file: {what}")]
    Layout {
        /// The file.
        path: String,
        /// What was wrong.
        what: String,
    },
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Parquet or Arrow failed.
    #[error("{path}: {source}")]
    Parquet {
        /// The file.
        path: String,
        /// The cause.
        source: parquet::errors::ParquetError,
    },
}

mod split;
mod stored;

pub use split::{Split, SplitRecord, SplitSpec, SplitStrategy};
pub(crate) use stored::model_dir;
pub use stored::{ExampleFile, ModelExamples, check_model_name};

const FIXED: [&str; 6] = ["prediction_id", "predicted_at", "label_time", "segment", "confidence", "label"];

impl ExampleSet {
    /// An empty set with these features.
    pub fn new(features: Vec<String>) -> Self {
        ExampleSet { features, rows: Vec::new() }
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Checks feature names and every example's width.
    pub fn validate(&self) -> Result<(), ExamplesError> {
        let mut seen = std::collections::HashSet::new();
        for f in &self.features {
            let lower = f.to_lowercase();
            let why = if f.is_empty() {
                Some("is empty")
            } else if f.chars().any(char::is_control) {
                Some("has a control character")
            } else if FIXED.contains(&lower.as_str()) {
                Some("is (in some case) the name of a fixed column of the examples layout")
            } else if ["model", "date"].contains(&lower.as_str()) {
                Some("is (in some case) a partition key of the examples dataset (model=, date=)")
            } else if !seen.insert(lower) {
                Some("is repeated (names are compared without case)")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(ExamplesError::FeatureName(f.clone(), why));
            }
        }
        for (index, e) in self.rows.iter().enumerate() {
            if e.features.len() != self.features.len() {
                return Err(ExamplesError::Width {
                    index,
                    id: e.prediction_id.clone(),
                    got: e.features.len(),
                    want: self.features.len(),
                });
            }
        }
        Ok(())
    }

    /// The Arrow schema of the wide layout for these features, with the feature names in
    /// its metadata too (`modelwatch.features`): pyarrow shows a file's Arrow schema
    /// metadata, not the Parquet footer's key-value list.
    pub fn schema(&self) -> Arc<Schema> {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let mut fields = vec![
            Field::new("prediction_id", DataType::Utf8, false),
            Field::new("predicted_at", ts.clone(), false),
            Field::new("label_time", ts, false),
            Field::new("segment", DataType::Utf8, false),
            Field::new("confidence", DataType::Float64, false),
            Field::new("label", DataType::Boolean, false),
        ];
        fields.extend(self.features.iter().map(|f| Field::new(f.as_str(), DataType::Float64, false)));
        let names = serde_json::to_string(&self.features).expect("a list of strings serialises");
        let metadata: std::collections::HashMap<String, String> =
            [("modelwatch.features".to_string(), names)].into();
        Arc::new(Schema::new_with_metadata(fields, metadata))
    }

    /// The set as one Arrow batch in the wide layout.
    pub fn to_batch(&self) -> Result<RecordBatch, ExamplesError> {
        self.validate()?;
        let n = self.rows.len();
        let mut id = StringBuilder::with_capacity(n, n * 8);
        let mut predicted = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut labelled = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut segment = StringBuilder::with_capacity(n, n * 8);
        let mut confidence = Float64Builder::with_capacity(n);
        let mut label = BooleanBuilder::with_capacity(n);
        for e in &self.rows {
            id.append_value(&e.prediction_id);
            predicted.append_value(e.predicted_ms);
            labelled.append_value(e.label_ms);
            segment.append_value(&e.segment);
            confidence.append_value(e.confidence);
            label.append_value(e.label);
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(predicted.finish()),
            Arc::new(labelled.finish()),
            Arc::new(segment.finish()),
            Arc::new(confidence.finish()),
            Arc::new(label.finish()),
        ];
        for j in 0..self.features.len() {
            columns.push(Arc::new(Float64Array::from_iter_values(self.rows.iter().map(|e| e.features[j]))));
        }
        RecordBatch::try_new(self.schema(), columns).map_err(|e| ExamplesError::Parquet {
            path: String::new(),
            source: parquet::errors::ParquetError::ArrowError(e.to_string()),
        })
    }

    /// The set as Parquet bytes (ZSTD; the feature names in the footer).
    pub fn to_parquet(&self) -> Result<Vec<u8>, ExamplesError> {
        let batch = self.to_batch()?;
        let parquet = |source| ExamplesError::Parquet { path: String::new(), source };
        let names = serde_json::to_string(&self.features).expect("a list of strings serialises");
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(parquet)?))
            .set_key_value_metadata(Some(vec![
                KeyValue::new("modelwatch.table".into(), "examples".to_string()),
                KeyValue::new("modelwatch.features".into(), names),
            ]))
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).map_err(parquet)?;
        w.write(&batch).map_err(parquet)?;
        w.close().map_err(parquet)?;
        Ok(out)
    }

    /// Writes the set to `path` as one Parquet file.
    pub fn write_parquet(&self, path: &Path) -> Result<(), ExamplesError> {
        let bytes = self.to_parquet()?;
        std::fs::write(path, bytes)
            .map_err(|source| ExamplesError::Io { path: path.display().to_string(), source })
    }

    /// Reads a set from Parquet bytes in the wide layout; `path` names it in errors.
    pub fn from_parquet(bytes: Vec<u8>, path: &str) -> Result<ExampleSet, ExamplesError> {
        let parquet = |source| ExamplesError::Parquet { path: path.to_string(), source };
        let layout = |what: String| ExamplesError::Layout { path: path.to_string(), what };
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).map_err(parquet)?;
        let schema = builder.schema().clone();
        let footer: Option<Vec<String>> = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == "modelwatch.features"))
            .and_then(|k| k.value.as_deref())
            .and_then(|v| serde_json::from_str(v).ok());
        let features = match footer {
            Some(f) => f,
            None => schema
                .fields()
                .iter()
                .map(|f| f.name().to_string())
                .filter(|n| !FIXED.contains(&n.as_str()))
                .collect(),
        };
        for name in FIXED {
            if schema.index_of(name).is_err() {
                return Err(layout(format!("no column {name:?}")));
            }
        }
        let mut set = ExampleSet::new(features);
        for batch in builder.build().map_err(parquet)? {
            let batch =
                batch.map_err(|e| parquet(parquet::errors::ParquetError::ArrowError(e.to_string())))?;
            let column = |name: &str| -> Result<ArrayRef, ExamplesError> {
                let c = batch.column_by_name(name).ok_or_else(|| layout(format!("no column {name:?}")))?;
                if c.null_count() > 0 {
                    return Err(layout(format!("column {name:?} has nulls")));
                }
                Ok(c.clone())
            };
            fn typed<'a, T: 'static>(
                c: &'a ArrayRef,
                name: &str,
                path: &str,
            ) -> Result<&'a T, ExamplesError> {
                c.as_any().downcast_ref::<T>().ok_or_else(|| ExamplesError::Layout {
                    path: path.to_string(),
                    what: format!("column {name:?} has type {}", c.data_type()),
                })
            }
            let (id, pred, lab, seg, conf, label) = (
                column("prediction_id")?,
                column("predicted_at")?,
                column("label_time")?,
                column("segment")?,
                column("confidence")?,
                column("label")?,
            );
            let id = typed::<StringArray>(&id, "prediction_id", path)?;
            let pred = typed::<TimestampMillisecondArray>(&pred, "predicted_at", path)?;
            let lab = typed::<TimestampMillisecondArray>(&lab, "label_time", path)?;
            let seg = typed::<StringArray>(&seg, "segment", path)?;
            let conf = typed::<Float64Array>(&conf, "confidence", path)?;
            let label = typed::<BooleanArray>(&label, "label", path)?;
            let feature_columns = set.features.iter().map(|f| column(f)).collect::<Result<Vec<_>, _>>()?;
            let feature_values = feature_columns
                .iter()
                .zip(&set.features)
                .map(|(c, f)| typed::<Float64Array>(c, f, path))
                .collect::<Result<Vec<_>, _>>()?;
            for i in 0..batch.num_rows() {
                set.rows.push(Example {
                    prediction_id: id.value(i).to_string(),
                    predicted_ms: pred.value(i),
                    label_ms: lab.value(i),
                    segment: seg.value(i).to_string(),
                    features: feature_values.iter().map(|c| c.value(i)).collect(),
                    confidence: conf.value(i),
                    label: label.value(i),
                });
            }
        }
        Ok(set)
    }

    /// Sorts the examples into the order reads return: prediction time, then prediction ID
    /// (then label time, so that equal keys still have one order).
    pub fn sort(&mut self) {
        self.rows.sort_by(|a, b| {
            (a.predicted_ms, &a.prediction_id, a.label_ms).cmp(&(
                b.predicted_ms,
                &b.prediction_id,
                b.label_ms,
            ))
        });
    }

    /// Moves `other`'s examples into this set. Where the feature lists differ (a model
    /// that gained or lost a feature), this set's list is extended by `other`'s new names
    /// in their order, and a value an example lacks is NaN, the layout's "missing".
    pub fn absorb(&mut self, other: ExampleSet) {
        if other.features == self.features {
            self.rows.extend(other.rows);
            return;
        }
        if self.rows.is_empty() && self.features.is_empty() {
            *self = other;
            return;
        }
        for f in &other.features {
            if !self.features.contains(f) {
                self.features.push(f.clone());
            }
        }
        let width = self.features.len();
        for e in &mut self.rows {
            e.features.resize(width, f64::NAN);
        }
        let at: Vec<usize> = other
            .features
            .iter()
            .map(|f| self.features.iter().position(|g| g == f).expect("every name was added above"))
            .collect();
        for mut e in other.rows {
            let mut values = vec![f64::NAN; width];
            for (v, &j) in e.features.iter().zip(&at) {
                values[j] = *v;
            }
            e.features = values;
            self.rows.push(e);
        }
    }

    /// Reads a set from a Parquet file in the wide layout.
    pub fn read_parquet(path: &Path) -> Result<ExampleSet, ExamplesError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ExamplesError::Io { path: name.clone(), source })?;
        ExampleSet::from_parquet(bytes, &name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ExampleSet {
        let mut s = ExampleSet::new(vec!["len".into(), "digits".into()]);
        for i in 0..100 {
            s.rows.push(Example {
                prediction_id: format!("p{i}"),
                predicted_ms: 1_700_000_000_000 + i,
                label_ms: 1_700_000_360_000 + i,
                segment: if i % 3 == 0 { "email".into() } else { "phone".into() },
                features: vec![i as f64, f64::NAN],
                confidence: 0.5,
                label: i % 2 == 0,
            });
        }
        s
    }

    #[test]
    fn a_set_round_trips_through_parquet_with_its_feature_order_and_nan() {
        let s = set();
        let back = ExampleSet::from_parquet(s.to_parquet().unwrap(), "x").unwrap();
        assert_eq!(back.features, s.features);
        assert_eq!(back.rows.len(), 100);
        assert_eq!(back.rows[7].prediction_id, "p7");
        assert_eq!(back.rows[7].features[0], 7.0);
        assert!(back.rows[7].features[1].is_nan());
        assert_eq!(back.rows[9].label_ms, 1_700_000_360_009);
    }

    #[test]
    fn a_ragged_example_or_a_repeated_feature_name_is_refused_by_name() {
        let mut s = set();
        s.rows[4].features.pop();
        let e = s.to_parquet().unwrap_err().to_string();
        assert!(e.contains("example 4") && e.contains("\"p4\"") && e.contains("1 feature values"), "{e}");
        for bad in ["len", "label", "", "Label", "date", "MODEL", "LEN"] {
            let mut s = set();
            s.features[1] = bad.into();
            let e = s.to_parquet().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn a_file_of_another_table_is_not_read_as_examples() {
        let e = ExampleSet::from_parquet(b"not parquet".to_vec(), "bad.parquet").unwrap_err().to_string();
        assert!(e.contains("bad.parquet"), "{e}");
    }
}
