//! Reads as Arrow columns: a file's distribution or scalar rows decoded once into typed
//! columns (dictionary keys for the tags, offsets into flat `key`/`count` arrays for the
//! buckets) that the query engine filters and merges without building a struct per row.
//!
//! The engine decides a series once per combination of dictionary keys, not per row, and
//! reads a row's buckets as a slice of two flat arrays. Files are decoded with the columns
//! the engine reads only (not the buckets' `lower`/`upper` nor the `p50`…`p99` summaries,
//! which are there for other readers), into one batch per file, so one dictionary serves
//! the whole file.

use crate::rows::{DistributionRow, Resolution, Rows, ScalarKind, ScalarRow, Scheme, SeriesKey};
use crate::table::{DecodeError, Table};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, TimestampMillisecondType, UInt64Type};
use arrow_array::{Array, Float64Array, RecordBatch};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter};
use std::collections::HashMap;
use std::sync::Arc;

/// The eight series tags, in the order of [`Common::tags`] (and of [`SeriesKey`]'s columns).
pub const TAG_COLUMNS: [&str; 8] =
    ["model", "version", "variant", "instance", "segment", "metric", "feature", "tags"];

/// Where a label's value is read from: a fixed tag column (by its index in
/// [`TAG_COLUMNS`]), or the free tags (`k=v,...` in the `tags` column).
pub fn tag_column(label: &str) -> Option<usize> {
    match label {
        "__name__" => Some(5),
        "tags" => None,
        l => TAG_COLUMNS[..7].iter().position(|c| *c == l),
    }
}

/// The value of free tag `name` in a `tags` value (`k=v,k2=v2`), as [`SeriesKey::tag`]
/// reads it.
pub fn free_tag<'a>(tags: &'a str, name: &str) -> Option<&'a str> {
    tags.split(',').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|kv| kv.1)
}

/// One dictionary-encoded tag column: a key per row into a dictionary of values (a value
/// can appear under two keys; compare values, not keys, across keys).
#[derive(Clone, Debug)]
pub struct TagColumn {
    keys: ScalarBuffer<i32>,
    values: Arc<[Arc<str>]>,
}

impl TagColumn {
    /// The dictionary key of each row.
    pub fn keys(&self) -> &[i32] {
        &self.keys
    }

    /// The dictionary.
    pub fn values(&self) -> &[Arc<str>] {
        &self.values
    }

    /// Row `i`'s value.
    pub fn get(&self, i: usize) -> &Arc<str> {
        &self.values[self.keys[i] as usize]
    }

    fn bytes(&self) -> usize {
        self.keys.len() * 4 + self.values.iter().map(|v| v.len() + 16).sum::<usize>()
    }
}

/// What every part has: times, series tags and the rows' resolution.
#[derive(Clone, Debug)]
pub struct Common {
    /// Interval starts, ms.
    pub start: ScalarBuffer<i64>,
    /// Interval ends, ms.
    pub end: ScalarBuffer<i64>,
    /// The series tags, in [`TAG_COLUMNS`] order.
    pub tags: [TagColumn; 8],
    resolution: Resolution,
    /// Per row where rows of several resolutions are mixed (acknowledged rows not yet
    /// published); `None`: every row has `resolution`.
    resolutions: Option<Vec<Resolution>>,
    /// The runs of rows of one metric key, `(key, first row, end)`: files sort by metric
    /// first, so a query of one metric skips the other metrics' rows whole.
    metric_runs: Vec<(i32, u32, u32)>,
}

/// The runs of equal keys.
fn runs(keys: &[i32]) -> Vec<(i32, u32, u32)> {
    let mut out: Vec<(i32, u32, u32)> = Vec::new();
    for (i, &k) in keys.iter().enumerate() {
        match out.last_mut() {
            Some(last) if last.0 == k => last.2 = i as u32 + 1,
            _ => out.push((k, i as u32, i as u32 + 1)),
        }
    }
    out
}

impl Common {
    /// Rows in the part.
    pub fn len(&self) -> usize {
        self.start.len()
    }

    /// Whether the part has no rows.
    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
    }

    /// The ranges of rows whose metric is `metric`, in row order.
    pub fn rows_of_metric<'a>(
        &'a self,
        metric: &'a str,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
        let values = self.tags[5].values();
        self.metric_runs
            .iter()
            .filter(move |r| values.get(r.0 as usize).is_some_and(|v| &**v == metric))
            .map(|r| r.1 as usize..r.2 as usize)
    }

    /// Row `i`'s resolution.
    pub fn resolution(&self, i: usize) -> Resolution {
        self.resolutions.as_ref().map_or(self.resolution, |r| r[i])
    }

    /// Row `i`'s series, with its own copies of the tag handles.
    pub fn series(&self, i: usize) -> SeriesKey {
        let t = |c: usize| self.tags[c].get(i).clone();
        SeriesKey {
            model: t(0),
            version: t(1),
            variant: t(2),
            instance: t(3),
            segment: t(4),
            metric: t(5),
            feature: t(6),
            tags: t(7),
        }
    }

    fn bytes(&self) -> usize {
        self.start.len() * 16
            + self.tags.iter().map(TagColumn::bytes).sum::<usize>()
            + self.resolutions.as_ref().map_or(0, Vec::len)
            + self.metric_runs.len() * 12
    }
}

/// Distribution rows as columns.
#[derive(Clone, Debug)]
pub struct DistributionColumns {
    /// Times, tags, resolution.
    pub common: Common,
    scheme_keys: ScalarBuffer<i32>,
    schemes: Vec<Scheme>,
    /// Values in the buckets.
    pub count: ScalarBuffer<u64>,
    /// Missing values.
    pub missing: ScalarBuffer<u64>,
    /// Invalid values.
    pub invalid: ScalarBuffer<u64>,
    sum: Float64Array,
    min: Float64Array,
    max: Float64Array,
    mean: Float64Array,
    m2: Float64Array,
    offsets: OffsetBuffer<i32>,
    /// Every row's bucket keys, one after the other ([`Self::buckets`] slices them).
    pub bucket_keys: ScalarBuffer<i64>,
    /// Every row's bucket counts, aligned with `bucket_keys`.
    pub bucket_counts: ScalarBuffer<u64>,
}

fn opt(a: &Float64Array, i: usize) -> Option<f64> {
    if a.is_null(i) { None } else { Some(a.value(i)) }
}

impl DistributionColumns {
    /// Row `i`'s scheme.
    pub fn scheme(&self, i: usize) -> Scheme {
        self.schemes[self.scheme_keys[i] as usize]
    }

    /// Row `i`'s buckets: the range of [`Self::bucket_keys`] and [`Self::bucket_counts`].
    pub fn buckets(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i] as usize..self.offsets[i + 1] as usize
    }

    /// Row `i`'s exact sum, when known.
    pub fn sum(&self, i: usize) -> Option<f64> {
        opt(&self.sum, i)
    }

    /// Row `i`'s exact minimum, when known.
    pub fn min(&self, i: usize) -> Option<f64> {
        opt(&self.min, i)
    }

    /// Row `i`'s exact maximum, when known.
    pub fn max(&self, i: usize) -> Option<f64> {
        opt(&self.max, i)
    }

    /// Row `i`'s exact mean, when known.
    pub fn mean(&self, i: usize) -> Option<f64> {
        opt(&self.mean, i)
    }

    /// Row `i`'s sum of squared deviations, when known.
    pub fn m2(&self, i: usize) -> Option<f64> {
        opt(&self.m2, i)
    }

    /// Row `i` as a [`DistributionRow`] without its buckets (and with `series`), to merge
    /// moments with [`DistributionRow::merge`] exactly as rows merge.
    pub fn row_without_buckets(&self, i: usize, series: SeriesKey) -> DistributionRow {
        DistributionRow {
            start_ms: self.common.start[i],
            end_ms: self.common.end[i],
            resolution: self.common.resolution(i),
            series,
            scheme: self.scheme(i),
            count: self.count[i],
            missing: self.missing[i],
            invalid: self.invalid[i],
            sum: self.sum(i),
            min: self.min(i),
            max: self.max(i),
            mean: self.mean(i),
            m2: self.m2(i),
            buckets: Vec::new(),
        }
    }

    /// Fills `row` with row `i`'s moments (not its series nor its buckets): the per-row
    /// form of [`Self::row_without_buckets`], allocating nothing.
    pub fn moments_into(&self, i: usize, row: &mut DistributionRow) {
        row.start_ms = self.common.start[i];
        row.end_ms = self.common.end[i];
        row.resolution = self.common.resolution(i);
        row.scheme = self.scheme(i);
        row.count = self.count[i];
        row.missing = self.missing[i];
        row.invalid = self.invalid[i];
        row.sum = self.sum(i);
        row.min = self.min(i);
        row.max = self.max(i);
        row.mean = self.mean(i);
        row.m2 = self.m2(i);
    }

    fn bytes(&self) -> usize {
        self.common.bytes() + self.common.len() * (4 + 24 + 5 * 8 + 4) + self.bucket_keys.len() * 16
    }
}

/// Scalar rows as columns.
#[derive(Clone, Debug)]
pub struct ScalarColumns {
    /// Times, tags, resolution.
    pub common: Common,
    kind_keys: ScalarBuffer<i32>,
    kinds: Vec<ScalarKind>,
    /// The values.
    pub value: ScalarBuffer<f64>,
}

impl ScalarColumns {
    /// Row `i`'s kind.
    pub fn kind(&self, i: usize) -> ScalarKind {
        self.kinds[self.kind_keys[i] as usize]
    }

    fn bytes(&self) -> usize {
        self.common.bytes() + self.common.len() * 12
    }
}

/// The rows of one part of a read (a file, or the acknowledged rows not yet published) as
/// columns. Events have no columnar form: the engine does not read them.
// Always behind an `Arc` (shared with the cache): the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Columns {
    /// Distribution rows.
    Distributions(DistributionColumns),
    /// Scalar rows.
    Scalars(ScalarColumns),
}

impl Columns {
    /// Approximate memory held, for the read cache's budget.
    pub fn bytes(&self) -> usize {
        match self {
            Columns::Distributions(d) => d.bytes(),
            Columns::Scalars(s) => s.bytes(),
        }
    }

    /// The times, tags and resolutions.
    pub fn common(&self) -> &Common {
        match self {
            Columns::Distributions(d) => &d.common,
            Columns::Scalars(s) => &s.common,
        }
    }

    /// Distribution or scalar rows as columns (events: `None`).
    pub fn from_rows(table: Table, rows: &Rows) -> Option<Columns> {
        match table {
            Table::Distributions => Some(Columns::Distributions(distributions_of(&rows.distributions))),
            Table::Scalars => Some(Columns::Scalars(scalars_of(&rows.scalars))),
            Table::Events => None,
        }
    }
}

/// Interns strings into a dictionary.
#[derive(Default)]
struct Interner {
    index: HashMap<Arc<str>, i32>,
    values: Vec<Arc<str>>,
}

impl Interner {
    fn key(&mut self, v: &Arc<str>) -> i32 {
        if let Some(&k) = self.index.get(v) {
            return k;
        }
        let k = self.values.len() as i32;
        self.values.push(v.clone());
        self.index.insert(v.clone(), k);
        k
    }
}

fn common_of<'a>(n: usize, rows: impl Iterator<Item = (i64, i64, Resolution, &'a SeriesKey)>) -> Common {
    let (mut start, mut end, mut res) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut dicts: [Interner; 8] = Default::default();
    let mut keys: [Vec<i32>; 8] = std::array::from_fn(|_| Vec::with_capacity(n));
    for (s, e, r, k) in rows {
        start.push(s);
        end.push(e);
        res.push(r);
        let vals =
            [&k.model, &k.version, &k.variant, &k.instance, &k.segment, &k.metric, &k.feature, &k.tags];
        for ((d, ks), v) in dicts.iter_mut().zip(keys.iter_mut()).zip(vals) {
            ks.push(d.key(v));
        }
    }
    let mut keys = keys.into_iter();
    let tags = dicts.map(|d| TagColumn {
        keys: ScalarBuffer::from(keys.next().unwrap_or_default()),
        values: d.values.into(),
    });
    let first = res.first().copied().unwrap_or(Resolution::Raw);
    let uniform = res.iter().all(|r| *r == first);
    let metric_runs = runs(tags[5].keys());
    Common {
        start: start.into(),
        end: end.into(),
        tags,
        resolution: first,
        resolutions: (!uniform).then_some(res),
        metric_runs,
    }
}

fn distributions_of(rows: &[DistributionRow]) -> DistributionColumns {
    let common = common_of(rows.len(), rows.iter().map(|r| (r.start_ms, r.end_ms, r.resolution, &r.series)));
    let mut schemes: Vec<Scheme> = Vec::new();
    let scheme_keys: Vec<i32> = rows
        .iter()
        .map(|r| match schemes.iter().position(|s| *s == r.scheme) {
            Some(k) => k as i32,
            None => {
                schemes.push(r.scheme);
                schemes.len() as i32 - 1
            }
        })
        .collect();
    let floats = |f: fn(&DistributionRow) -> Option<f64>| rows.iter().map(f).collect::<Float64Array>();
    let buckets = rows.iter().flat_map(|r| &r.buckets);
    DistributionColumns {
        common,
        scheme_keys: scheme_keys.into(),
        schemes,
        count: rows.iter().map(|r| r.count).collect(),
        missing: rows.iter().map(|r| r.missing).collect(),
        invalid: rows.iter().map(|r| r.invalid).collect(),
        sum: floats(|r| r.sum),
        min: floats(|r| r.min),
        max: floats(|r| r.max),
        mean: floats(|r| r.mean),
        m2: floats(|r| r.m2),
        offsets: OffsetBuffer::from_lengths(rows.iter().map(|r| r.buckets.len())),
        bucket_keys: buckets.clone().map(|b| b.0).collect(),
        bucket_counts: buckets.map(|b| b.1).collect(),
    }
}

fn scalars_of(rows: &[ScalarRow]) -> ScalarColumns {
    let common = common_of(rows.len(), rows.iter().map(|r| (r.start_ms, r.end_ms, r.resolution, &r.series)));
    let kinds = vec![ScalarKind::Counter, ScalarKind::Gauge];
    ScalarColumns {
        common,
        kind_keys: rows.iter().map(|r| i32::from(r.kind == ScalarKind::Gauge)).collect(),
        kinds,
        value: rows.iter().map(|r| r.value).collect(),
    }
}

fn bad(column: &str, problem: impl Into<String>) -> DecodeError {
    DecodeError { column: column.into(), problem: problem.into() }
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::ArrayRef, DecodeError> {
    b.column_by_name(name).ok_or_else(|| bad(name, "missing"))
}

/// A dictionary column; null keys read as the empty string, as the row decoder reads them.
fn tag_of(b: &RecordBatch, name: &str) -> Result<TagColumn, DecodeError> {
    let a = col(b, name)?;
    let d = a
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| bad(name, format!("expected dictionary of strings, found {}", a.data_type())))?;
    let strings = d.values().as_string_opt::<i32>().ok_or_else(|| bad(name, "expected string values"))?;
    let mut values: Vec<Arc<str>> = (0..strings.len()).map(|i| Arc::from(strings.value(i))).collect();
    let n = values.len() as i32;
    let in_range = d.keys().values().iter().all(|&k| (0..n).contains(&k));
    let keys = if d.keys().null_count() == 0 && in_range {
        d.keys().values().clone()
    } else {
        values.push("".into());
        d.keys().iter().map(|k| k.filter(|k| (0..n).contains(k)).unwrap_or(n)).collect()
    };
    Ok(TagColumn { keys, values: values.into() })
}

fn times_of(b: &RecordBatch, name: &str) -> Result<ScalarBuffer<i64>, DecodeError> {
    let a = col(b, name)?;
    let t = a
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| bad(name, format!("expected timestamp(ms), found {}", a.data_type())))?;
    Ok(t.values().clone())
}

fn u64s_of(b: &RecordBatch, name: &str) -> Result<ScalarBuffer<u64>, DecodeError> {
    let a = col(b, name)?;
    let t = a
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| bad(name, format!("expected uint64, found {}", a.data_type())))?;
    Ok(t.values().clone())
}

fn f64s_of(b: &RecordBatch, name: &str) -> Result<Float64Array, DecodeError> {
    let a = col(b, name)?;
    let t = a
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| bad(name, format!("expected float64, found {}", a.data_type())))?;
    Ok(t.clone())
}

fn common_from(b: &RecordBatch, resolution: Resolution) -> Result<Common, DecodeError> {
    let mut tags = Vec::with_capacity(8);
    for name in TAG_COLUMNS {
        tags.push(tag_of(b, name)?);
    }
    let tags: [TagColumn; 8] = tags.try_into().map_err(|_| bad("tags", "eight tag columns"))?;
    let metric_runs = runs(tags[5].keys());
    Ok(Common {
        start: times_of(b, "start")?,
        end: times_of(b, "end")?,
        tags,
        resolution,
        resolutions: None,
        metric_runs,
    })
}

fn distributions_from(b: &RecordBatch, resolution: Resolution) -> Result<DistributionColumns, DecodeError> {
    let scheme = tag_of(b, "scheme")?;
    let schemes = scheme
        .values
        .iter()
        .map(|s| Scheme::parse(s).ok_or_else(|| bad("scheme", format!("unknown scheme {s:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let scheme_of = |i: usize| schemes[scheme.keys[i] as usize];
    let lists = crate::table::bucket_lists(b, scheme_of)?;
    let (count, sum) = (u64s_of(b, "count")?, f64s_of(b, "sum")?);
    let mut mean = f64s_of(b, "mean")?;
    // Format 2 leaves a latency row's mean out: it is the sum over the count.
    let is_latency = |i: usize| scheme_of(i) == Scheme::LatencyHdr;
    if lists.derived_means && (0..mean.len()).any(|i| mean.is_null(i) && is_latency(i)) {
        mean = (0..mean.len())
            .map(|i| match opt(&mean, i) {
                None if is_latency(i) => DistributionRow::latency_mean(opt(&sum, i), count[i]),
                m => m,
            })
            .collect();
    }
    Ok(DistributionColumns {
        common: common_from(b, resolution)?,
        scheme_keys: scheme.keys,
        schemes,
        count,
        missing: u64s_of(b, "missing")?,
        invalid: u64s_of(b, "invalid")?,
        sum,
        min: f64s_of(b, "min")?,
        max: f64s_of(b, "max")?,
        mean,
        m2: f64s_of(b, "m2")?,
        offsets: lists.offsets,
        bucket_keys: lists.keys,
        bucket_counts: lists.counts,
    })
}

fn scalars_from(b: &RecordBatch, resolution: Resolution) -> Result<ScalarColumns, DecodeError> {
    let kind = tag_of(b, "kind")?;
    let kinds = kind
        .values
        .iter()
        .map(|k| if &**k == "gauge" { ScalarKind::Gauge } else { ScalarKind::Counter })
        .collect();
    let value = f64s_of(b, "value")?;
    // A null value reads as 0, as the row decoder reads it.
    let value = if value.null_count() == 0 {
        value.values().clone()
    } else {
        value.iter().map(|v| v.unwrap_or(0.0)).collect()
    };
    Ok(ScalarColumns { common: common_from(b, resolution)?, kind_keys: kind.keys, kinds, value })
}

/// Decodes a Parquet file of `table` as columns: the row groups that can hold rows in
/// `[from_ms, to_ms)` with the equality `tags` (by their statistics; rows outside can
/// remain), the columns the engine reads, in one batch where the reader allows. Events
/// have no columns (`None`). With `narrow`, only the rows starting in `[from_ms, to_ms)`
/// are decoded: the `start` column is read first and the others only for those rows (a
/// few seconds at a window's edge out of an hour's file).
pub fn columns_from_parquet(
    bytes: bytes::Bytes,
    table: Table,
    resolution: Resolution,
    (from_ms, to_ms): (i64, i64),
    tags: &[(String, String)],
    narrow: bool,
) -> Result<Option<Columns>, DecodeError> {
    let parquet = |e: parquet::errors::ParquetError| bad("file", e.to_string());
    if table == Table::Events {
        return Ok(None);
    }
    let builder = crate::table::reader(bytes).map_err(parquet)?;
    let groups = crate::table::row_groups(builder.metadata(), builder.schema(), from_ms, to_ms, tags);
    let rows: usize = groups
        .iter()
        .map(|&g| usize::try_from(builder.metadata().row_group(g).num_rows()).unwrap_or(0))
        .sum();
    // Format 1's bucket bounds and quantile summaries are for other readers.
    let skipped = |path: &[String]| match path {
        [root, ..] if ["p50", "p90", "p95", "p99"].contains(&root.as_str()) => true,
        [root, .., last] if root == "buckets" => last == "lower" || last == "upper",
        _ => false,
    };
    let schema = builder.parquet_schema();
    let leaves: Vec<usize> =
        (0..schema.num_columns()).filter(|&i| !skipped(schema.column(i).path().parts())).collect();
    let mask = ProjectionMask::leaves(schema, leaves);
    let start = (0..schema.num_columns()).filter(|&i| schema.column(i).path().parts() == ["start"]);
    let start_mask = ProjectionMask::leaves(schema, start);
    let mut builder = builder.with_row_groups(groups).with_projection(mask).with_batch_size(rows.max(1));
    if narrow {
        let inside = move |b: RecordBatch| {
            let t = b.column(0).as_primitive_opt::<TimestampMillisecondType>().ok_or_else(|| {
                arrow_schema::ArrowError::SchemaError("start is not a timestamp(ms)".into())
            })?;
            Ok(t.values()
                .iter()
                .map(|&t| Some(t >= from_ms && t < to_ms))
                .collect::<arrow_array::BooleanArray>())
        };
        let filter = RowFilter::new(vec![Box::new(ArrowPredicateFn::new(start_mask, inside))]);
        builder = builder.with_row_filter(filter);
    }
    let reader = builder.build().map_err(parquet)?;
    let mut parts = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad("file", e.to_string()))?;
        parts.push(match table {
            Table::Distributions => Columns::Distributions(distributions_from(&batch, resolution)?),
            _ => Columns::Scalars(scalars_from(&batch, resolution)?),
        });
    }
    Ok(match parts.len() {
        1 => parts.pop(),
        _ => Columns::concat(table, parts),
    })
}

impl Columns {
    /// Parts of one table as one part (the dictionaries merged).
    fn concat(table: Table, parts: Vec<Columns>) -> Option<Columns> {
        // Rare (a file the reader returns in several batches): through rows is simplest.
        let mut rows = Rows::default();
        parts.iter().for_each(|p| p.append_rows(&mut rows));
        Columns::from_rows(table, &rows)
    }

    /// Appends this part's rows to `rows`, as the row decoder would have read them.
    pub fn append_rows(&self, rows: &mut Rows) {
        match self {
            Columns::Distributions(d) => rows.distributions.extend((0..d.common.len()).map(|i| {
                let mut r = d.row_without_buckets(i, d.common.series(i));
                r.buckets = d.buckets(i).map(|j| (d.bucket_keys[j], d.bucket_counts[j])).collect();
                r
            })),
            Columns::Scalars(s) => rows.scalars.extend((0..s.common.len()).map(|i| ScalarRow {
                start_ms: s.common.start[i],
                end_ms: s.common.end[i],
                resolution: s.common.resolution(i),
                series: s.common.series(i),
                kind: s.kind(i),
                value: s.value[i],
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{read_parquet, rows_from, to_parquet};

    fn key(metric: &str, segment: &str, tags: &str) -> SeriesKey {
        SeriesKey {
            metric: metric.into(),
            segment: segment.into(),
            tags: tags.into(),
            ..SeriesKey::default()
        }
    }

    /// What the columns of a file say row by row is what its rows say.
    #[test]
    fn a_file_read_as_columns_holds_its_rows() {
        let mut rows = Rows::default();
        for i in 0..5_000i64 {
            let seg = ["a", "b", ""][(i % 3) as usize];
            let mut d = DistributionRow::empty(
                i * 1_000,
                i * 1_000 + 1_000,
                Resolution::Raw,
                key("feature", seg, "k=v"),
                Scheme::Sketch,
            );
            d.count = (i % 7) as u64;
            d.missing = (i % 2) as u64;
            d.sum = (i % 5 != 0).then_some(i as f64 * 0.5);
            d.mean = d.sum.map(|s| s / 3.0);
            d.m2 = (i % 4 == 0).then_some(1.25);
            d.buckets = (0..(i % 4)).map(|k| (k * 3 - 2, (k + 1) as u64)).collect();
            rows.distributions.push(d);
            let kind = if i % 2 == 0 { ScalarKind::Counter } else { ScalarKind::Gauge };
            rows.scalars.push(ScalarRow {
                start_ms: i * 1_000,
                end_ms: i * 1_000 + 1_000,
                resolution: Resolution::Raw,
                series: key("predictions", seg, ""),
                kind,
                value: i as f64,
            });
        }
        for table in [Table::Distributions, Table::Scalars] {
            let bytes: bytes::Bytes = to_parquet(table, &mut rows).unwrap().into();
            let want = rows_from(
                table,
                Resolution::Minute,
                &read_parquet(bytes.clone(), i64::MIN, i64::MAX, &[]).unwrap(),
            )
            .unwrap();
            let all = (i64::MIN, i64::MAX);
            let cols = columns_from_parquet(bytes.clone(), table, Resolution::Minute, all, &[], false)
                .unwrap()
                .unwrap();
            assert_eq!(cols.common().len(), 5_000);
            // Narrowed to a span: exactly the rows starting in it, in file order.
            let span = (1_234_000, 1_500_000);
            let narrow =
                columns_from_parquet(bytes, table, Resolution::Minute, span, &[], true).unwrap().unwrap();
            let inside: Vec<i64> =
                cols.common().start.iter().copied().filter(|t| (span.0..span.1).contains(t)).collect();
            assert_eq!(&narrow.common().start[..], &inside[..]);
            assert!(!inside.is_empty());
            match cols {
                Columns::Distributions(d) => {
                    for (i, r) in want.distributions.iter().enumerate() {
                        let mut got = d.row_without_buckets(i, d.common.series(i));
                        got.buckets = d.buckets(i).map(|j| (d.bucket_keys[j], d.bucket_counts[j])).collect();
                        assert_eq!(&got, r, "row {i}");
                    }
                }
                Columns::Scalars(s) => {
                    for (i, r) in want.scalars.iter().enumerate() {
                        assert_eq!(
                            (
                                s.common.start[i],
                                s.common.end[i],
                                s.common.resolution(i),
                                s.common.series(i),
                                s.kind(i),
                                s.value[i]
                            ),
                            (r.start_ms, r.end_ms, r.resolution, r.series.clone(), r.kind, r.value),
                            "row {i}"
                        );
                    }
                }
            }
        }
        // Rows not yet published convert the same way, mixed resolutions kept per row.
        rows.distributions[3].resolution = Resolution::Hour;
        let Some(Columns::Distributions(d)) = Columns::from_rows(Table::Distributions, &rows) else {
            panic!()
        };
        assert_eq!((d.common.resolution(2), d.common.resolution(3)), (Resolution::Raw, Resolution::Hour));
        assert_eq!(d.common.series(4), rows.distributions[4].series);
        assert!(Columns::from_rows(Table::Events, &rows).is_none());
    }
}
