//! Labelled examples as the store keeps them: what an append carries through the WAL, and
//! what a slot's manifest lists of the published files.
//!
//! Examples are a sibling dataset, not a fourth [`Table`](crate::Table): their columns differ
//! per model (one per feature), they are never rolled up (a training set wants every row),
//! and their retention is the training data's, not the metrics'. So they ride the tables'
//! acknowledged path (WAL record, buffer, publication, the manifest's covered sequence
//! number, replay) but are listed apart in the manifest, where compaction, roll-ups and
//! retention, which work on table files, do not touch them.

use super::{ExampleSet, ExamplesError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Labelled examples of one model, as one append carries them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelExamples {
    /// The model's name.
    pub model: Arc<str>,
    /// Its examples, with its feature names.
    pub set: ExampleSet,
}

/// One published examples file: one model, one UTC day of prediction times, one feature
/// list (the wide layout's columns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleFile {
    /// The model's name.
    pub model: String,
    /// The UTC date (`YYYY-MM-DD`) of its examples' prediction times, the partition.
    pub date: String,
    /// Path relative to the store root.
    pub path: String,
    /// Examples in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Earliest prediction time, ms.
    pub min_ms: i64,
    /// Latest prediction time, ms.
    pub max_ms: i64,
    /// Latest label time, ms (what "labelled since" reads prune by).
    pub max_label_ms: i64,
}

/// Checks that `model` can name a model's examples: not empty, no control character.
pub fn check_model_name(model: &str) -> Result<(), ExamplesError> {
    if model.is_empty() || model.chars().any(char::is_control) {
        return Err(ExamplesError::Model(model.to_string()));
    }
    Ok(())
}

/// The model's directory name, `model=<name>`, with every byte outside `[A-Za-z0-9._-]`
/// percent-encoded: a model may be called `fraud/v2` or `..` without leaving its directory.
pub(crate) fn model_dir(model: &str) -> String {
    let mut out = String::from("model=");
    for b in model.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'-')
            || (b == b'.' && model != "." && model != "..")
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_name_never_leaves_its_directory() {
        assert_eq!(model_dir("pii"), "model=pii");
        assert_eq!(model_dir("fraud/v2"), "model=fraud%2Fv2");
        assert_eq!(model_dir(".."), "model=%2E%2E");
        assert!(check_model_name("").is_err());
        assert!(check_model_name("a\nb").is_err());
    }
}
