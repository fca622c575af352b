//! Named baselines: a reference window's profile (per-feature distributions, category
//! counts, confidence) saved under `<data>/baselines/<name>.json`, so drift can be measured
//! against a model version's training data or a known-good week after the raw rows are gone.

use crate::time::rfc3339;
use modelwatch_query::Matcher;
use modelwatch_query::drift::{DriftConfig, DriftDocument, Profile, QualityThresholds};
use modelwatch_store::Store;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A saved baseline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    /// Its name.
    pub name: String,
    /// The window it was read from (ms).
    pub from_ms: i64,
    /// See `from_ms`.
    pub to_ms: i64,
    /// The filters it was read with (`model=pii`, ...).
    pub filters: Vec<String>,
    /// The distributions.
    pub profile: Profile,
}

/// Why a baseline could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// No baseline of that name.
    #[error("no baseline named {name:?} in {dir} (save one with `modelwatch baseline save`)")]
    Missing {
        /// The name.
        name: String,
        /// Where it was looked for.
        dir: String,
    },
    /// A name that is not a plain file name.
    #[error("baseline name {0:?}: use letters, digits, '.', '-' and '_'")]
    BadName(String),
    /// A reference range that does not parse.
    #[error("reference {spec:?}: {source}")]
    Range {
        /// What was given.
        spec: String,
        /// Why it is not a range.
        source: crate::time::TimeError,
    },
    /// The current window holds no feature or confidence data.
    #[error("no feature or confidence data between {from} and {to}")]
    NoData {
        /// Its start, RFC 3339.
        from: String,
        /// Its end.
        to: String,
    },
    /// Reading the reference window failed.
    #[error(transparent)]
    Query(#[from] modelwatch_query::QueryError),
    /// Reading or writing failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

fn dir(data: &Path) -> PathBuf {
    data.join("baselines")
}

fn path(data: &Path, name: &str) -> Result<PathBuf, BaselineError> {
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        || name.starts_with('.')
    {
        return Err(BaselineError::BadName(name.to_string()));
    }
    Ok(dir(data).join(format!("{name}.json")))
}

/// Saves a baseline (atomically: a temporary file renamed over the old one).
pub fn save(data: &Path, b: &Baseline) -> Result<PathBuf, BaselineError> {
    let p = path(data, &b.name)?;
    let io = |e: std::io::Error| BaselineError::Io { path: p.display().to_string(), message: e.to_string() };
    std::fs::create_dir_all(dir(data)).map_err(io)?;
    let bytes = serde_json::to_vec(b)
        .map_err(|e| BaselineError::Io { path: p.display().to_string(), message: e.to_string() })?;
    modelwatch_store::publish(&modelwatch_store::RealFs, &p, &bytes).map_err(io)?;
    Ok(p)
}

/// Loads a baseline by name.
pub fn load(data: &Path, name: &str) -> Result<Baseline, BaselineError> {
    let p = path(data, name)?;
    let bytes = std::fs::read(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            BaselineError::Missing { name: name.into(), dir: dir(data).display().to_string() }
        }
        _ => BaselineError::Io { path: p.display().to_string(), message: e.to_string() },
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| BaselineError::Io { path: p.display().to_string(), message: format!("unreadable: {e}") })
}

/// The saved baselines' names.
pub fn list(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir(data))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The reference profile a spec names: a saved baseline, or a range (`FROM..TO`, or `7d`
/// for the last seven days), read through the query engine. Returns it with a description.
pub fn reference(
    store: &Store,
    data: &Path,
    spec: &str,
    matchers: &[Matcher],
    now_ms: i64,
) -> Result<(Profile, String), BaselineError> {
    if crate::time::is_range(spec) {
        let (from, to) = crate::time::parse_range(spec, now_ms)
            .map_err(|source| BaselineError::Range { spec: spec.to_string(), source })?;
        let p = modelwatch_query::drift::profile(store, matchers, from, to)?;
        return Ok((p, format!("{} .. {}", rfc3339(from), rfc3339(to))));
    }
    let b = load(data, spec)?;
    let desc = format!("baseline {} ({} .. {})", b.name, rfc3339(b.from_ms), rfc3339(b.to_ms));
    Ok((b.profile, desc))
}

/// Drift of the current window `[from_ms, to_ms)` against the reference `spec` names (a
/// saved baseline or a range, see [`reference()`]), as the one document the CLI and the HTTP
/// API both print. `filters` describes `matchers` for the reader.
#[allow(clippy::too_many_arguments)]
pub fn drift_document(
    store: &Store,
    data: &Path,
    spec: &str,
    matchers: &[Matcher],
    filters: Vec<String>,
    (from_ms, to_ms): (i64, i64),
    now_ms: i64,
    cfg: &DriftConfig,
) -> Result<DriftDocument, BaselineError> {
    let (reference, described) = reference(store, data, spec, matchers, now_ms)?;
    let current = modelwatch_query::drift::profile(store, matchers, from_ms, to_ms)?;
    if current.numeric.is_empty() && current.categorical.is_empty() {
        return Err(BaselineError::NoData { from: rfc3339(from_ms), to: rfc3339(to_ms) });
    }
    let report = modelwatch_query::drift::compare(&reference, &current, cfg);
    let checks = modelwatch_query::drift::data_quality(&reference, &current, &QualityThresholds::default());
    Ok(DriftDocument::new(described, from_ms, to_ms, filters, &report, checks, cfg))
}
