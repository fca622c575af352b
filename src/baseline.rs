//! Named baselines: a reference window's profile (per-feature distributions, category
//! counts, confidence) saved under `<data>/baselines/<name>.json`, so drift can be measured
//! against a model version's training data or a known-good week after the raw rows are gone.
//!
//! A reference given as a range wholly in the past (`now-8d..now-1d`, resolved to fixed
//! instants) is a profile too: it is cached under `<data>/cache/profiles/`, keyed by its
//! bounds, its filters and the store files it was read from ([`Store::range_sources`]), and
//! read back instead of the store while none of those files changed. A late label, a
//! compaction, a roll-up or retention changes the files and so misses the cache; a range
//! with acknowledged rows not yet published is read from the store and not cached. The
//! newest [`PROFILE_CACHE_ENTRIES`] entries are kept.

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

/// Cached profiles kept in `<data>/cache/profiles/` (the least recently written go first).
pub const PROFILE_CACHE_ENTRIES: usize = 32;

/// Bumped when what a profile holds or how it is computed changes: older entries then miss.
const PROFILE_CACHE_FORMAT: u32 = 1;

/// What a cached profile was computed from: equal keys, equal profiles.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct ProfileKey {
    format: u32,
    version: String,
    from_ms: i64,
    to_ms: i64,
    /// The filters, as `label op "value"`.
    filters: Vec<String>,
    /// The store files the range's rows come from (paths change whenever contents do).
    files: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct CachedProfile {
    key: ProfileKey,
    profile: Profile,
}

/// How [`range_profile`] came by a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileSource {
    /// Read from the profile cache.
    Cached,
    /// Read from the store, then cached.
    Computed,
    /// Read from the store and not cached: the range reaches past `now` or holds rows not
    /// yet published (or the cache could not be written).
    Uncached,
}

fn profile_cache_dir(data: &Path) -> PathBuf {
    data.join("cache").join("profiles")
}

/// The profile of `[from_ms, to_ms)` for `matchers`, from the profile cache when the range
/// is wholly in the past at `now_ms` and the store files it reads are those it was cached
/// from; else read from the store (and cached when the range is closed). The cache is best
/// effort: an unreadable entry is a miss, a failed write leaves the profile uncached.
pub fn range_profile(
    store: &Store,
    data: &Path,
    matchers: &[Matcher],
    (from_ms, to_ms): (i64, i64),
    now_ms: i64,
) -> Result<(Profile, ProfileSource), BaselineError> {
    let compute = || modelwatch_query::drift::profile(store, matchers, from_ms, to_ms);
    let (files, unpublished) = store.range_sources(from_ms, to_ms);
    if to_ms > now_ms || unpublished {
        return Ok((compute()?, ProfileSource::Uncached));
    }
    let key = ProfileKey {
        format: PROFILE_CACHE_FORMAT,
        version: env!("CARGO_PKG_VERSION").to_string(),
        from_ms,
        to_ms,
        filters: matchers.iter().map(|m| format!("{}{}{:?}", m.label, op_str(&m.op), m.value)).collect(),
        files,
    };
    let name = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (key.from_ms, key.to_ms, &key.filters, &key.files).hash(&mut h);
        format!("{:016x}.json", h.finish())
    };
    let path = profile_cache_dir(data).join(name);
    // The whole key is in the entry: a hash collision is a miss, never a wrong profile.
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && let Some(()) = floats_from_bits(&mut v)
        && let Ok(c) = serde_json::from_value::<CachedProfile>(v)
        && c.key == key
    {
        return Ok((c.profile, ProfileSource::Cached));
    }
    let profile = compute()?;
    #[derive(Serialize)]
    struct Entry<'a> {
        key: &'a ProfileKey,
        profile: &'a Profile,
    }
    let written = serde_json::to_value(Entry { key: &key, profile: &profile })
        .ok()
        .and_then(|mut v| {
            floats_to_bits(&mut v);
            let bytes = serde_json::to_vec(&v).ok()?;
            std::fs::create_dir_all(profile_cache_dir(data)).ok()?;
            modelwatch_store::publish(&modelwatch_store::RealFs, &path, &bytes).ok()
        })
        .is_some();
    prune_profile_cache(data);
    Ok((profile, if written { ProfileSource::Computed } else { ProfileSource::Uncached }))
}

/// Every float of a cached profile as `{"f64": "<its bits in hex>"}`: JSON text parsed
/// back can land one unit in the last place off (serde_json's default float parsing), and a
/// cached profile must give exactly the figures its range gives.
fn floats_to_bits(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            let bits = n.as_f64().unwrap_or_default().to_bits();
            *v = serde_json::json!({ "f64": format!("{bits:016x}") });
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(floats_to_bits),
        serde_json::Value::Object(o) => o.values_mut().for_each(floats_to_bits),
        _ => {}
    }
}

/// Undoes [`floats_to_bits`] (a profile holds no other object of one string under `f64`:
/// its maps hold numbers).
fn floats_from_bits(v: &mut serde_json::Value) -> Option<()> {
    match v {
        serde_json::Value::Object(o) if o.len() == 1 && o.get("f64").is_some_and(|b| b.is_string()) => {
            let bits = u64::from_str_radix(o.get("f64")?.as_str()?, 16).ok()?;
            *v = serde_json::Value::Number(serde_json::Number::from_f64(f64::from_bits(bits))?);
        }
        serde_json::Value::Array(a) => a.iter_mut().try_for_each(floats_from_bits)?,
        serde_json::Value::Object(o) => o.values_mut().try_for_each(floats_from_bits)?,
        _ => {}
    }
    Some(())
}

fn op_str(op: &modelwatch_query::Op) -> &'static str {
    match op {
        modelwatch_query::Op::Eq => "=",
        modelwatch_query::Op::Ne => "!=",
        modelwatch_query::Op::Re => "=~",
        modelwatch_query::Op::NotRe => "!~",
    }
}

/// Keeps the newest [`PROFILE_CACHE_ENTRIES`] cached profiles.
fn prune_profile_cache(data: &Path) {
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(profile_cache_dir(data))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if entries.len() <= PROFILE_CACHE_ENTRIES {
        return;
    }
    entries.sort();
    for (_, p) in &entries[..entries.len() - PROFILE_CACHE_ENTRIES] {
        let _ = std::fs::remove_file(p);
    }
}

/// The reference profile a spec names: a saved baseline, or a range (`FROM..TO`, or `7d`
/// for the last seven days), read through the query engine (or the profile cache, see
/// [`range_profile`]). Returns it with a description.
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
        let (p, _) = range_profile(store, data, matchers, (from, to), now_ms)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_store::{DistributionRow, Durability, Resolution, Rows, Scheme, SeriesKey, StoreConfig};

    const T0: i64 = 1_764_115_200_000;
    const HOUR: i64 = 3_600_000;

    /// One interval of feature `f` holding `n` values of `v`.
    fn rows(t: i64, n: u64, v: f64) -> Rows {
        let series = SeriesKey {
            model: "m".into(),
            metric: "feature".into(),
            feature: "f".into(),
            ..SeriesKey::default()
        };
        let mut d = DistributionRow::empty(t, t + 60_000, Resolution::Raw, series, Scheme::Sketch);
        d.count = n;
        d.sum = Some(v * n as f64);
        d.mean = Some(v);
        d.m2 = Some(0.0);
        d.min = Some(v);
        d.max = Some(v);
        d.buckets = vec![((v * 8.0) as i64, n)];
        Rows { distributions: vec![d], ..Rows::default() }
    }

    fn count(p: &Profile) -> u64 {
        p.numeric["f"].count
    }

    /// A cached reference profile is reused while the store files of its range stay the
    /// same, and read again when a late row, a compaction or a roll-up changes them.
    #[test]
    fn a_cached_reference_profile_is_reused_until_its_store_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            StoreConfig { background: false, durability: Durability::None, ..StoreConfig::new(dir.path()) };
        let store = Store::open(config).unwrap();
        // Values whose sums and means have long decimals: a cached profile must hold them
        // to the last bit.
        for m in 0..(48 * 60) {
            store.append(rows(T0 + m * 60_000, 2, 0.1 + (m % 7) as f64 / 3.0)).unwrap();
        }
        store.flush().unwrap();
        let (range, now) = ((T0, T0 + 24 * HOUR), T0 + 48 * HOUR);
        let profile = |s: &Store| range_profile(s, dir.path(), &[], range, now).unwrap();

        let (first, source) = profile(&store);
        assert_eq!((count(&first), source), (2 * 24 * 60, ProfileSource::Computed));
        assert_eq!(std::fs::read_dir(profile_cache_dir(dir.path())).unwrap().count(), 1);
        let (again, source) = profile(&store);
        assert_eq!((&again, source), (&first, ProfileSource::Cached));
        let bits = |p: &Profile| {
            let d = &p.numeric["f"];
            [d.sum, d.mean, d.m2, d.min, d.max].map(|x| x.map(f64::to_bits))
        };
        assert_eq!(bits(&again), bits(&first), "to the last bit");

        // A late row for the range, acknowledged but not published: read, not cached.
        store.append(rows(T0 + 3 * HOUR, 5, 2.0)).unwrap();
        let (late, source) = profile(&store);
        assert_eq!((count(&late), source), (2 * 24 * 60 + 5, ProfileSource::Uncached));
        // Published: a new file in the range, so the cached profile is stale and read again.
        store.flush().unwrap();
        let (published, source) = profile(&store);
        assert_eq!((&published, source), (&late, ProfileSource::Computed));
        assert_eq!(profile(&store), (late.clone(), ProfileSource::Cached));

        // Compaction and roll-ups replace the files: read again (the same distribution, now
        // from the hourly roll-ups), then cached.
        store.maintain(now).unwrap();
        let (rolled, source) = profile(&store);
        assert_eq!((count(&rolled), source), (count(&late), ProfileSource::Computed));
        assert_eq!(profile(&store).1, ProfileSource::Cached);

        // A range reaching past now, or another filter, is not that entry.
        let open = range_profile(&store, dir.path(), &[], (T0, now + 1), now).unwrap();
        assert_eq!(open.1, ProfileSource::Uncached);
        let filtered = [modelwatch_query::drift::eq("model", "m")];
        let other = range_profile(&store, dir.path(), &filtered, range, now).unwrap();
        assert_eq!((count(&other.0), other.1), (count(&late), ProfileSource::Computed));
    }

    /// Floats survive the profile cache to the last bit; through plain JSON text some do
    /// not (serde_json's default float parsing), which made a cached reference's statistics
    /// differ in their last digits from the range's.
    #[test]
    fn cached_floats_keep_every_bit() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let values: Vec<f64> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                f64::from_bits(x)
            })
            .filter(|v| v.is_finite())
            .collect();
        let mut v = serde_json::json!({ "values": values, "n": 3 });
        let plain: Vec<f64> = serde_json::from_str::<serde_json::Value>(&v.to_string()).unwrap()["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_f64().unwrap())
            .collect();
        let off = plain.iter().zip(&values).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert!(off > 0, "plain JSON text kept every float here");
        floats_to_bits(&mut v);
        let mut back: serde_json::Value = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
        floats_from_bits(&mut back).unwrap();
        let got: Vec<u64> =
            back["values"].as_array().unwrap().iter().map(|n| n.as_f64().unwrap().to_bits()).collect();
        assert_eq!(got, values.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        assert_eq!(back["n"], 3, "integers stay integers");
    }
}
