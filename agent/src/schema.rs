//! What the agent is told about the model: its identity, features, segments and error kinds.

use std::sync::Arc;

/// The model a recording belongs to. Every series carries these as tags.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelIdentity {
    /// Model name, e.g. `pii-confidence`.
    pub name: Arc<str>,
    /// Model version, e.g. `2026-11-20.1`.
    pub version: Arc<str>,
    /// Deployment variant, e.g. `control`, `challenger`, `canary`.
    pub variant: Arc<str>,
    /// The process or replica that recorded it, so replicas writing one store stay apart.
    pub instance: Arc<str>,
}

/// How a feature's values are summarised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    /// Real values: count, missing, min, max, mean, variance and a relative-error sketch.
    Numeric,
    /// Codes into a fixed vocabulary: a count per category, plus `other` for codes or
    /// strings outside it.
    Categorical {
        /// The vocabulary; code `i` means `categories[i]`.
        categories: Vec<Arc<str>>,
    },
}

/// One feature of the model's input vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    /// Feature name, unique within the schema.
    pub name: Arc<str>,
    /// Numeric or categorical.
    pub kind: FeatureKind,
}

impl Feature {
    /// A numeric feature.
    pub fn numeric(name: impl Into<Arc<str>>) -> Self {
        Feature { name: name.into(), kind: FeatureKind::Numeric }
    }

    /// A categorical feature with its vocabulary (in code order).
    pub fn categorical<S: Into<Arc<str>>>(
        name: impl Into<Arc<str>>,
        categories: impl IntoIterator<Item = S>,
    ) -> Self {
        Feature {
            name: name.into(),
            kind: FeatureKind::Categorical { categories: categories.into_iter().map(Into::into).collect() },
        }
    }
}

/// Name of the segment that receives predictions for a segment the agent was not told of.
pub const OTHER_SEGMENT: &str = "other";
/// Name of the error kind, and of the category, for values outside the declared ones.
pub const OTHER: &str = "other";

/// A segment resolved once, for the fastest hook calls (no name lookup per call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentId(pub(crate) u16);

/// An error kind resolved once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorKindId(pub(crate) u16);

/// Index of `name` in `names`, or of the trailing `other` entry.
pub(crate) fn resolve(names: &[Arc<str>], name: &str) -> usize {
    names.iter().position(|n| &**n == name).unwrap_or(names.len().saturating_sub(1))
}
