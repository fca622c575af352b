//! Rows ↔ Arrow record batches ↔ Parquet bytes, for the three tables.
//!
//! Column by column the layout is documented in `docs/storage-format.md`; the exact
//! summary columns (count, sum, min, max, the moments) sit beside the lossless `buckets`
//! list, so DuckDB, pyarrow or Spark users need none of our code for counts, sums and
//! means, and the documented bucket math (an SQL macro in the docs) for quantiles.
//!
//! Format 2 (`docs/decisions/0009-storage-format-2.md`) stores nothing another column
//! already says: a bucket is `(key_delta, count)`, the key's difference to the previous
//! key of its list (bounds follow from key and scheme); there are no per-row quantile
//! columns; a latency row's `mean` is null (it is `sum / count`). Files of format 1 (with
//! `key`, `lower`, `upper`, `p50`...`p99`) read as before: the decoders tell the two apart
//! by the bucket struct's fields.

use crate::rows::{DistributionRow, EventRow, Resolution, Rows, ScalarKind, ScalarRow, Scheme, SeriesKey};
use arrow_array::builder::{
    Float64Builder, StringDictionaryBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType, UInt64Type};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray, UInt64Array,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use std::sync::{Arc, LazyLock};

/// The store's on-disk format version, in every file's footer metadata (the files of
/// format 1 read as before; see the module's documentation).
pub const FORMAT_VERSION: &str = "2";

/// [`FORMAT_VERSION`] as a number, as manifests list it per file.
pub const FORMAT: u32 = 2;

/// A table of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Table {
    /// Distributions (latency, confidence, features, distribution metrics).
    Distributions,
    /// Counters and gauges.
    Scalars,
    /// Events.
    Events,
}

impl Table {
    /// All tables.
    pub const ALL: [Table; 3] = [Table::Distributions, Table::Scalars, Table::Events];

    /// The directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Distributions => "distributions",
            Table::Scalars => "scalars",
            Table::Events => "events",
        }
    }

    /// The Arrow schema of the table.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Distributions => DISTRIBUTIONS.clone(),
            Table::Scalars => SCALARS.clone(),
            Table::Events => EVENTS.clone(),
        }
    }
}

fn ts(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false)
}

fn dict(name: &str) -> Field {
    Field::new(name, DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), false)
}

fn series_fields() -> Vec<Field> {
    ["model", "version", "variant", "instance", "segment", "metric", "feature", "tags"].map(dict).to_vec()
}

fn bucket_fields() -> Fields {
    Fields::from(vec![
        Field::new("key_delta", DataType::Int64, false),
        Field::new("count", DataType::UInt64, false),
    ])
}

fn bucket_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(bucket_fields()), false))
}

static DISTRIBUTIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = vec![ts("start"), ts("end")];
    f.extend(series_fields());
    f.push(dict("scheme"));
    for c in ["count", "missing", "invalid"] {
        f.push(Field::new(c, DataType::UInt64, false));
    }
    for c in ["sum", "min", "max", "mean", "m2"] {
        f.push(Field::new(c, DataType::Float64, true));
    }
    f.push(Field::new("buckets", DataType::List(bucket_item()), false));
    Arc::new(Schema::new(f))
});

static SCALARS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = vec![ts("start"), ts("end")];
    f.extend(series_fields());
    f.push(dict("kind"));
    f.push(Field::new("value", DataType::Float64, false));
    Arc::new(Schema::new(f))
});

static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        ts("time"),
        dict("model"),
        dict("version"),
        dict("variant"),
        dict("kind"),
        Field::new("message", DataType::Utf8, false),
    ]))
});

type Dict = StringDictionaryBuilder<Int32Type>;

struct SeriesColumns {
    cols: [Dict; 8],
}

impl SeriesColumns {
    fn new() -> Self {
        SeriesColumns { cols: std::array::from_fn(|_| Dict::new()) }
    }

    fn push(&mut self, k: &SeriesKey) {
        let vals =
            [&k.model, &k.version, &k.variant, &k.instance, &k.segment, &k.metric, &k.feature, &k.tags];
        for (c, v) in self.cols.iter_mut().zip(vals) {
            c.append_value(&**v);
        }
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        self.cols.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef).collect()
    }
}

fn timestamps(values: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = TimestampMillisecondBuilder::new().with_timezone("UTC");
    values.for_each(|v| b.append_value(v));
    Arc::new(b.finish())
}

fn dict_of<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut b = Dict::new();
    values.for_each(|v| b.append_value(v));
    Arc::new(b.finish())
}

/// Distribution rows as a record batch (in the given order).
pub fn distributions_batch(rows: &[DistributionRow]) -> RecordBatch {
    let mut series = SeriesColumns::new();
    let (mut count, mut missing, mut invalid) =
        (UInt64Builder::new(), UInt64Builder::new(), UInt64Builder::new());
    let mut floats: [Float64Builder; 5] = std::array::from_fn(|_| Float64Builder::new());
    let (mut deltas, mut counts, mut lengths) = (vec![], vec![], vec![]);
    for r in rows {
        series.push(&r.series);
        count.append_value(r.count);
        missing.append_value(r.missing);
        invalid.append_value(r.invalid);
        // A latency row's mean is its sum over its count (what the decoder puts back).
        let mean = if r.scheme == Scheme::LatencyHdr { None } else { r.mean };
        for (b, v) in floats.iter_mut().zip([r.sum, r.min, r.max, mean, r.m2]) {
            b.append_option(v);
        }
        lengths.push(r.buckets.len());
        // Keys of a list increase, mostly by one or a few buckets: small deltas that repeat
        // compress to a third of the keys' bytes (BENCHMARKS.md, "Bytes per prediction").
        let mut previous = 0i64;
        for &(k, c) in &r.buckets {
            deltas.push(k.wrapping_sub(previous));
            previous = k;
            counts.push(c);
        }
    }
    let structs = StructArray::new(
        bucket_fields(),
        vec![Arc::new(Int64Array::from(deltas)), Arc::new(UInt64Array::from(counts))],
        None,
    );
    let buckets =
        ListArray::new(bucket_item(), OffsetBuffer::<i32>::from_lengths(lengths), Arc::new(structs), None);
    let mut cols: Vec<ArrayRef> =
        vec![timestamps(rows.iter().map(|r| r.start_ms)), timestamps(rows.iter().map(|r| r.end_ms))];
    cols.extend(series.finish());
    cols.push(dict_of(rows.iter().map(|r| r.scheme.as_str())));
    cols.push(Arc::new(count.finish()));
    cols.push(Arc::new(missing.finish()));
    cols.push(Arc::new(invalid.finish()));
    cols.extend(floats.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    cols.push(Arc::new(buckets));
    RecordBatch::try_new(DISTRIBUTIONS.clone(), cols).expect("columns match the distributions schema")
}

/// Scalar rows as a record batch.
pub fn scalars_batch(rows: &[ScalarRow]) -> RecordBatch {
    let mut series = SeriesColumns::new();
    rows.iter().for_each(|r| series.push(&r.series));
    let mut cols: Vec<ArrayRef> =
        vec![timestamps(rows.iter().map(|r| r.start_ms)), timestamps(rows.iter().map(|r| r.end_ms))];
    cols.extend(series.finish());
    cols.push(dict_of(rows.iter().map(|r| r.kind.as_str())));
    cols.push(Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.value))));
    RecordBatch::try_new(SCALARS.clone(), cols).expect("columns match the scalars schema")
}

/// Event rows as a record batch.
pub fn events_batch(rows: &[EventRow]) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        timestamps(rows.iter().map(|r| r.time_ms)),
        dict_of(rows.iter().map(|r| &*r.model)),
        dict_of(rows.iter().map(|r| &*r.version)),
        dict_of(rows.iter().map(|r| &*r.variant)),
        dict_of(rows.iter().map(|r| &*r.kind)),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.message.as_str()))),
    ];
    RecordBatch::try_new(EVENTS.clone(), cols).expect("columns match the events schema")
}

/// A failure to decode a batch that does not have the table's layout.
#[derive(Debug, thiserror::Error)]
#[error("column {column}: {problem}")]
pub struct DecodeError {
    /// The column.
    pub column: String,
    /// What is wrong.
    pub problem: String,
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, DecodeError> {
    b.column_by_name(name).ok_or_else(|| DecodeError { column: name.into(), problem: "missing".into() })
}

fn strings(b: &RecordBatch, name: &str) -> Result<Vec<Arc<str>>, DecodeError> {
    let a = col(b, name)?;
    let bad = || DecodeError {
        column: name.into(),
        problem: format!("expected dictionary of strings, found {}", a.data_type()),
    };
    let d = a.as_dictionary_opt::<Int32Type>().ok_or_else(bad)?;
    let values = d.values().as_string_opt::<i32>().ok_or_else(bad)?;
    let interned: Vec<Arc<str>> = (0..values.len()).map(|i| Arc::from(values.value(i))).collect();
    Ok(d.keys()
        .iter()
        .map(|k| k.and_then(|k| interned.get(k as usize).cloned()).unwrap_or_else(|| "".into()))
        .collect())
}

fn times(b: &RecordBatch, name: &str) -> Result<Vec<i64>, DecodeError> {
    let a = col(b, name)?;
    let t = a.as_primitive_opt::<TimestampMillisecondType>().ok_or_else(|| DecodeError {
        column: name.into(),
        problem: format!("expected timestamp(ms), found {}", a.data_type()),
    })?;
    Ok(t.values().to_vec())
}

fn u64s(b: &RecordBatch, name: &str) -> Result<Vec<u64>, DecodeError> {
    let a = col(b, name)?;
    let t = a.as_primitive_opt::<UInt64Type>().ok_or_else(|| DecodeError {
        column: name.into(),
        problem: format!("expected uint64, found {}", a.data_type()),
    })?;
    Ok(t.values().to_vec())
}

fn f64s(b: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>, DecodeError> {
    let a = col(b, name)?;
    let t = a.as_primitive_opt::<Float64Type>().ok_or_else(|| DecodeError {
        column: name.into(),
        problem: format!("expected float64, found {}", a.data_type()),
    })?;
    Ok(t.iter().collect())
}

fn series_of(b: &RecordBatch) -> Result<Vec<SeriesKey>, DecodeError> {
    let cols: Vec<Vec<Arc<str>>> =
        ["model", "version", "variant", "instance", "segment", "metric", "feature", "tags"]
            .iter()
            .map(|n| strings(b, n))
            .collect::<Result<_, _>>()?;
    Ok((0..b.num_rows())
        .map(|i| SeriesKey {
            model: cols[0][i].clone(),
            version: cols[1][i].clone(),
            variant: cols[2][i].clone(),
            instance: cols[3][i].clone(),
            segment: cols[4][i].clone(),
            metric: cols[5][i].clone(),
            feature: cols[6][i].clone(),
            tags: cols[7][i].clone(),
        })
        .collect())
}

/// Decodes a distributions batch back into rows (lossless). The resolution is not a column:
/// it is the file's partition (`resolution=...` in its path).
pub fn distributions_from(
    b: &RecordBatch,
    resolution: Resolution,
) -> Result<Vec<DistributionRow>, DecodeError> {
    let (start, end, series) = (times(b, "start")?, times(b, "end")?, series_of(b)?);
    let schemes: Vec<Scheme> = strings(b, "scheme")?
        .iter()
        .map(|s| {
            Scheme::parse(s).ok_or_else(|| DecodeError {
                column: "scheme".into(),
                problem: format!("unknown scheme {s:?}"),
            })
        })
        .collect::<Result<_, _>>()?;
    let (count, missing, invalid) = (u64s(b, "count")?, u64s(b, "missing")?, u64s(b, "invalid")?);
    let (sum, min, max, m2) = (f64s(b, "sum")?, f64s(b, "min")?, f64s(b, "max")?, f64s(b, "m2")?);
    let lists = bucket_lists(b, |i| schemes[i])?;
    let mut mean = f64s(b, "mean")?;
    if lists.derived_means {
        for (i, m) in mean.iter_mut().enumerate() {
            if m.is_none() && schemes[i] == Scheme::LatencyHdr {
                *m = DistributionRow::latency_mean(sum[i], count[i]);
            }
        }
    }
    let (keys, counts, offsets) = (&lists.keys, &lists.counts, &lists.offsets);
    Ok((0..b.num_rows())
        .map(|i| {
            let (lo, hi) = (offsets[i] as usize, offsets[i + 1] as usize);
            DistributionRow {
                start_ms: start[i],
                end_ms: end[i],
                resolution,
                series: series[i].clone(),
                scheme: schemes[i],
                count: count[i],
                missing: missing[i],
                invalid: invalid[i],
                sum: sum[i],
                min: min[i],
                max: max[i],
                mean: mean[i],
                m2: m2[i],
                buckets: (lo..hi).map(|j| (keys[j], counts[j])).collect(),
            }
        })
        .collect())
}

/// The bucket lists of a distributions batch of either format, with absolute keys.
pub(crate) struct BucketLists {
    /// Every row's keys, one list after the other.
    pub keys: ScalarBuffer<i64>,
    /// The counts, aligned with `keys`.
    pub counts: ScalarBuffer<u64>,
    /// Where each row's list starts and ends.
    pub offsets: OffsetBuffer<i32>,
    /// Whether the batch is of format 2, whose null latency means are `sum / count`.
    pub derived_means: bool,
}

/// Reads `buckets` as format 2 (`key_delta`, summed along each list) or format 1 (`key`).
/// Every list's keys must increase within its row's scheme ([`Scheme::keys`]): the engine's
/// merges rely on both, and a file that breaks them is named, not read.
pub(crate) fn bucket_lists(
    b: &RecordBatch,
    scheme_of: impl Fn(usize) -> Scheme,
) -> Result<BucketLists, DecodeError> {
    let bad = |column: &str, problem: &str| DecodeError { column: column.into(), problem: problem.into() };
    let list = col(b, "buckets")?.as_list_opt::<i32>().ok_or_else(|| bad("buckets", "expected a list"))?;
    let items = list.values().as_struct_opt().ok_or_else(|| bad("buckets", "expected structs"))?;
    let int64 = |name: &str| items.column_by_name(name).map(|k| k.as_primitive_opt::<Int64Type>());
    let counts = items
        .column_by_name("count")
        .and_then(|k| k.as_primitive_opt::<UInt64Type>())
        .ok_or_else(|| bad("buckets.count", "expected uint64"))?;
    let offsets = list.offsets().clone();
    let (keys, derived_means) = match (int64("key_delta"), int64("key")) {
        (Some(Some(deltas)), _) => {
            let deltas = deltas.values();
            let mut keys = Vec::with_capacity(deltas.len());
            for w in offsets.windows(2) {
                let mut previous = 0i64;
                for &d in &deltas[w[0] as usize..w[1] as usize] {
                    // The writer's wrapping difference, undone (a wrapped key is then refused
                    // below as out of its scheme's range).
                    previous = previous.wrapping_add(d);
                    keys.push(previous);
                }
            }
            (ScalarBuffer::from(keys), true)
        }
        (Some(None), _) => return Err(bad("buckets.key_delta", "expected int64")),
        (None, Some(Some(keys))) => (keys.values().clone(), false),
        (None, Some(None)) => return Err(bad("buckets.key", "expected int64")),
        (None, None) => return Err(bad("buckets.key_delta", "missing (and no format-1 `key`)")),
    };
    let field = if derived_means { "buckets.key_delta" } else { "buckets.key" };
    for (row, w) in offsets.windows(2).enumerate() {
        let list = &keys[w[0] as usize..w[1] as usize];
        let range = scheme_of(row).keys();
        let increasing = list.windows(2).all(|k| k[0] < k[1]);
        let inside =
            list.first().is_none_or(|k| range.contains(k)) && list.last().is_none_or(|k| range.contains(k));
        if !increasing || !inside {
            let problem = format!(
                "row {row}: keys must increase within {}..={} (scheme {}), found {:?}",
                range.start(),
                range.end(),
                scheme_of(row).as_str(),
                &list[..list.len().min(8)]
            );
            return Err(DecodeError { column: field.into(), problem });
        }
    }
    Ok(BucketLists { keys, counts: counts.values().clone(), offsets, derived_means })
}

/// Decodes a scalars batch back into rows (resolution as for distributions).
pub fn scalars_from(b: &RecordBatch, resolution: Resolution) -> Result<Vec<ScalarRow>, DecodeError> {
    let (start, end, series) = (times(b, "start")?, times(b, "end")?, series_of(b)?);
    let kinds = strings(b, "kind")?;
    let values = f64s(b, "value")?;
    Ok((0..b.num_rows())
        .map(|i| ScalarRow {
            start_ms: start[i],
            end_ms: end[i],
            resolution,
            series: series[i].clone(),
            kind: if &*kinds[i] == "gauge" { ScalarKind::Gauge } else { ScalarKind::Counter },
            value: values[i].unwrap_or(0.0),
        })
        .collect())
}

/// Decodes an events batch back into rows.
pub fn events_from(b: &RecordBatch) -> Result<Vec<EventRow>, DecodeError> {
    let time = times(b, "time")?;
    let (model, version, variant, kind) =
        (strings(b, "model")?, strings(b, "version")?, strings(b, "variant")?, strings(b, "kind")?);
    let msg = col(b, "message")?
        .as_string_opt::<i32>()
        .ok_or_else(|| DecodeError { column: "message".into(), problem: "expected utf8".into() })?;
    Ok((0..b.num_rows())
        .map(|i| EventRow {
            time_ms: time[i],
            model: model[i].clone(),
            version: version[i].clone(),
            variant: variant[i].clone(),
            kind: kind[i].clone(),
            message: msg.value(i).to_string(),
        })
        .collect())
}

/// Decodes any table's batches (of one resolution) into [`Rows`].
pub fn rows_from(table: Table, resolution: Resolution, batches: &[RecordBatch]) -> Result<Rows, DecodeError> {
    let mut rows = Rows::default();
    for b in batches {
        match table {
            Table::Distributions => rows.distributions.extend(distributions_from(b, resolution)?),
            Table::Scalars => rows.scalars.extend(scalars_from(b, resolution)?),
            Table::Events => rows.events.extend(events_from(b)?),
        }
    }
    Ok(rows)
}

/// The order of rows in a file: by metric first (every query names one, so the row groups
/// it needs are contiguous and the others are skipped by their statistics), then feature,
/// the remaining tags, and time.
fn layout_key(s: &crate::rows::SeriesKey, start_ms: i64) -> impl Ord + '_ {
    (
        (&*s.metric, &*s.feature, &*s.model, &*s.variant, &*s.version),
        (&*s.segment, &*s.instance, &*s.tags, start_ms),
    )
}

/// Encodes one table's rows of `rows` as a Parquet file (see [`writer_properties`]), rows
/// sorted by metric, feature, the other tags, then time.
pub fn to_parquet(table: Table, rows: &mut Rows) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let batch = match table {
        Table::Distributions => {
            rows.distributions
                .sort_by(|a, b| layout_key(&a.series, a.start_ms).cmp(&layout_key(&b.series, b.start_ms)));
            distributions_batch(&rows.distributions)
        }
        Table::Scalars => {
            rows.scalars
                .sort_by(|a, b| layout_key(&a.series, a.start_ms).cmp(&layout_key(&b.series, b.start_ms)));
            scalars_batch(&rows.scalars)
        }
        Table::Events => {
            rows.events.sort_by_key(|e| e.time_ms);
            events_batch(&rows.events)
        }
    };
    let mut out = Vec::new();
    // No `ARROW:schema` in the footer (2 KB a file, 5 % of an hour's raw latency rows): the
    // readers supply the table's schema ([`reader`]), and other tools map the Parquet types.
    let options =
        ArrowWriterOptions::new().with_properties(writer_properties(table)?).with_skip_arrow_metadata(true);
    let mut w = ArrowWriter::try_new_with_options(&mut out, batch.schema(), options)?;
    w.write(&batch)?;
    w.close()?;
    Ok(out)
}

/// How a table's columns are written. Only encodings the common Parquet readers know
/// (PLAIN, RLE_DICTIONARY, DELTA_BINARY_PACKED: DuckDB, pyarrow, Spark from 3.3); the Arrow
/// schema is the same whatever the settings, and files written with
/// other settings read alike. Measured on a week of traffic (`benches/prom_compare.rs`,
/// BENCHMARKS.md "Bytes per prediction"):
///
/// - ZSTD level 3, row groups of 4,096 rows (few distinct tag values each, so their
///   statistics skip most of a file; larger ones compressed no better overall, and levels 6
///   and 9 saved 4 to 5 % for 1.5 to 2 times the encoding time).
/// - Dictionaries for the tags, the scheme and kind, the bucket lists (a few hundred distinct
///   keys and bounds) and the quantiles (bucket representatives): all repeat.
/// - `start`, `end` and `time` as deltas (rows of a series follow each other by one
///   interval): 2.5 bytes a row down to 1.6 in sparse scalars.
/// - The exact moments (`sum`, `min`, `max`, `mean`, `m2`) plain: they rarely repeat, so a
///   dictionary only adds its index to every value (3.8 to 4.4 bytes a value down to 2.8
///   to 3.2 where one value makes a row).
/// - Statistics only on the columns reads prune by: `start` (`time`) and the tags, per
///   column chunk (row group), which is what [`row_groups`] reads. No page index: a row
///   group's chunk is one page, so it would repeat the chunk's statistics (0.2 bytes a
///   row). Min and max of a bucket list or a moment prune nothing.
fn writer_properties(table: Table) -> Result<WriterProperties, parquet::errors::ParquetError> {
    use parquet::basic::Encoding;
    use parquet::schema::types::ColumnPath;
    let column = |name: &str| ColumnPath::from(name);
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(4 * 1024))
        .set_statistics_enabled(EnabledStatistics::None)
        .set_offset_index_disabled(true)
        .set_key_value_metadata(Some(vec![
            parquet::file::metadata::KeyValue::new(
                "modelwatch.format_version".into(),
                FORMAT_VERSION.to_string(),
            ),
            parquet::file::metadata::KeyValue::new("modelwatch.table".into(), table.as_str().to_string()),
        ]));
    let schema = table.schema();
    for field in schema.fields() {
        let name = field.name().as_str();
        match field.data_type() {
            DataType::Timestamp(..) => {
                let pruned_by =
                    if name == "end" { EnabledStatistics::None } else { EnabledStatistics::Chunk };
                b = b
                    .set_column_statistics_enabled(column(name), pruned_by)
                    .set_column_dictionary_enabled(column(name), false)
                    .set_column_encoding(column(name), Encoding::DELTA_BINARY_PACKED);
            }
            DataType::Dictionary(..) => {
                b = b.set_column_statistics_enabled(column(name), EnabledStatistics::Chunk);
            }
            _ if ["sum", "min", "max", "mean", "m2"].contains(&name) => {
                b = b
                    .set_column_dictionary_enabled(column(name), false)
                    .set_column_encoding(column(name), Encoding::PLAIN);
            }
            _ => {}
        }
    }
    Ok(b.build())
}

/// Row groups of a file that can hold rows starting in `[from_ms, to_ms)` with the equality
/// `tags`: those whose `start` (or `time`) range does not miss the window (with a day of
/// slack below `from_ms` for long rows) and whose statistics do not rule out a tag (rows are
/// sorted by series, so a row group spans few distinct tag values).
pub(crate) fn row_groups(
    meta: &parquet::file::metadata::ParquetMetaData,
    schema: &arrow_schema::Schema,
    from_ms: i64,
    to_ms: i64,
    tags: &[(String, String)],
) -> Vec<usize> {
    use parquet::file::statistics::Statistics;
    let time_col = if schema.column_with_name("start").is_some() { "start" } else { "time" };
    let time_idx = schema.index_of(time_col).ok();
    let tag_idx: Vec<(usize, &str)> =
        tags.iter().filter_map(|(k, v)| schema.index_of(k).ok().map(|i| (i, v.as_str()))).collect();
    (0..meta.num_row_groups())
        .filter(|&g| {
            let rg = meta.row_group(g);
            let time_ok = match time_idx.and_then(|i| rg.column(i).statistics()) {
                Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                    (Some(&lo), Some(&hi)) => lo < to_ms && hi >= from_ms.saturating_sub(86_400_000),
                    _ => true,
                },
                _ => true,
            };
            time_ok
                && tag_idx.iter().all(|&(i, v)| match rg.column(i).statistics() {
                    Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
                        (Some(lo), Some(hi)) => lo.data() <= v.as_bytes() && v.as_bytes() <= hi.data(),
                        _ => true,
                    },
                    _ => true,
                })
        })
        .collect()
}

/// A reader of a store file. Files written since format 2 carry no Arrow schema: the
/// table's (from `modelwatch.table` in the footer) is supplied, so tags read as the
/// dictionaries they were written as and times keep their `UTC`; older files read with the
/// schema they carry. A file with neither reads as Parquet's types map (and the decoders
/// then name the column whose type is not the table's).
pub(crate) fn reader(
    bytes: bytes::Bytes,
) -> Result<ParquetRecordBatchReaderBuilder<bytes::Bytes>, parquet::errors::ParquetError> {
    let meta = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())?;
    let kv = meta.metadata().file_metadata().key_value_metadata();
    let value =
        |key: &str| kv.and_then(|kv| kv.iter().find(|e| e.key == key)).and_then(|e| e.value.as_deref());
    let table = Table::ALL.into_iter().find(|t| value("modelwatch.table") == Some(t.as_str()));
    Ok(match table {
        Some(t) if value("ARROW:schema").is_none() => {
            let options = ArrowReaderOptions::new().with_schema(t.schema());
            let meta = ArrowReaderMetadata::try_new(meta.metadata().clone(), options)?;
            ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta)
        }
        _ => ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta),
    })
}

/// Reads a Parquet file's batches, skipping the row groups [`row_groups`] rules out.
pub fn read_parquet(
    bytes: bytes::Bytes,
    from_ms: i64,
    to_ms: i64,
    tags: &[(String, String)],
) -> Result<Vec<RecordBatch>, parquet::errors::ParquetError> {
    let builder = reader(bytes)?;
    let groups = row_groups(builder.metadata(), builder.schema(), from_ms, to_ms, tags);
    builder.with_row_groups(groups).build()?.collect::<Result<Vec<_>, _>>().map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::basic::Encoding;
    use parquet::file::metadata::ColumnChunkMetaData;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn row(metric: &str, segment: &str, i: i64) -> DistributionRow {
        let series = SeriesKey {
            model: "pii".into(),
            version: "1.0.0".into(),
            variant: "control".into(),
            instance: "w0".into(),
            segment: segment.into(),
            metric: metric.into(),
            feature: "".into(),
            tags: "".into(),
        };
        let k = 1_400 + i % 97;
        let values = [1e6 + 7.0 * i as f64, 1.3e6 + 11.0 * i as f64, 2.9e6 + 13.0 * i as f64];
        let sum: f64 = values.iter().sum();
        let mean = sum / 3.0;
        DistributionRow {
            start_ms: 1_764_115_200_000 + i * 10_000,
            end_ms: 1_764_115_210_000 + i * 10_000,
            resolution: Resolution::Raw,
            series,
            scheme: Scheme::LatencyHdr,
            count: 3,
            missing: 0,
            invalid: 0,
            sum: Some(sum),
            min: Some(values[0]),
            max: Some(values[2]),
            mean: Some(mean),
            m2: Some(values.iter().map(|v| (v - mean) * (v - mean)).sum()),
            buckets: vec![(k, 1), (k + 40, 1), (k + 200, 1)],
        }
    }

    #[test]
    fn times_are_deltas_moments_plain_and_chunk_statistics_only_on_the_columns_reads_prune_by() {
        // Two metrics of 5,000 rows each: three row groups of 4,096 rows, one of them mixed.
        let mut rows = Rows::default();
        for (metric, segment) in [("latency_ns", "email"), ("confidence", "phone")] {
            rows.distributions.extend((0..5_000).map(|i| row(metric, segment, i)));
        }
        let bytes = bytes::Bytes::from(to_parquet(Table::Distributions, &mut rows).unwrap());
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.num_row_groups(), 3);
        let chunk = |name: &str| -> ColumnChunkMetaData {
            meta.row_group(0).columns().iter().find(|c| c.column_path().string() == name).unwrap().clone()
        };
        let has = |c: &ColumnChunkMetaData, e: Encoding| c.encodings().any(|x| x == e);
        for name in ["start", "end"] {
            let c = chunk(name);
            assert!(
                has(&c, Encoding::DELTA_BINARY_PACKED),
                "{name}: {:?}",
                c.encodings().collect::<Vec<_>>()
            );
            assert!(c.dictionary_page_offset().is_none(), "{name} has a dictionary");
            // Row groups are pruned by `start`'s chunk statistics; `end` prunes nothing.
            assert_eq!(c.statistics().is_some(), name == "start", "{name}'s statistics");
        }
        // No page index and no Arrow schema anywhere (the readers supply the schema).
        for c in meta.row_groups().iter().flat_map(|g| g.columns()) {
            assert!(c.column_index_offset().is_none() && c.offset_index_offset().is_none(), "{c:?}");
        }
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        assert!(!kv.iter().any(|e| e.key == "ARROW:schema"), "{kv:?}");
        for name in ["sum", "min", "max", "mean", "m2"] {
            let c = chunk(name);
            assert!(c.dictionary_page_offset().is_none() && has(&c, Encoding::PLAIN), "{name}");
            assert!(c.statistics().is_none(), "{name} has statistics");
        }
        for name in ["buckets.list.item.key_delta", "buckets.list.item.count"] {
            let c = chunk(name);
            assert!(c.dictionary_page_offset().is_some(), "{name} lost its dictionary");
            assert!(c.statistics().is_none(), "{name} has statistics");
        }
        let names: Vec<String> =
            meta.row_group(0).columns().iter().map(|c| c.column_path().string()).collect();
        for gone in
            ["buckets.list.item.key", "buckets.list.item.lower", "buckets.list.item.upper", "p50", "p95"]
        {
            assert!(!names.iter().any(|n| n == gone), "format 2 has no {gone}: {names:?}");
        }
        for name in ["metric", "segment", "variant", "scheme"] {
            let c = chunk(name);
            assert!(c.dictionary_page_offset().is_some() && c.statistics().is_some(), "{name}");
        }

        // The rows come back as written, and a metric's filter still skips the row group
        // that holds only the other metric.
        let all = read_parquet(bytes.clone(), i64::MIN, i64::MAX, &[]).unwrap();
        assert_eq!(rows_from(Table::Distributions, Resolution::Raw, &all).unwrap(), rows);
        let filter = [("metric".to_string(), "latency_ns".to_string())];
        let some = read_parquet(bytes, i64::MIN, i64::MAX, &filter).unwrap();
        assert_eq!(some.iter().map(RecordBatch::num_rows).sum::<usize>(), 10_000 - 4_096);
    }

    fn odd(scheme: Scheme, metric: &str, i: i64) -> DistributionRow {
        let mut r = row(metric, "email", i);
        r.scheme = scheme;
        r
    }

    /// Rows of every scheme with the values production brings: moments a sketch keeps that
    /// are not `sum / count`, none at all (confidence), an empty row, NaN and infinite
    /// moments, negative keys and keys at the ends of their schemes' ranges.
    fn odd_rows() -> Vec<DistributionRow> {
        let mut rows = vec![];
        let mut sketch = odd(Scheme::Sketch, "feature", 1);
        (sketch.sum, sketch.mean, sketch.m2) = (Some(0.30000000000000004), Some(0.1), Some(f64::INFINITY));
        sketch.buckets = vec![(-2049, 1), (-17, 4), (0, 2), (2049, 1)];
        rows.push(sketch);
        let mut extreme = odd(Scheme::Sketch, "feature", 2);
        (extreme.sum, extreme.min, extreme.max, extreme.mean) =
            (Some(f64::NAN), Some(-1e300), Some(1e300), None);
        extreme.buckets = vec![(-2049, 1), (-1, 1), (2049, 3)];
        rows.push(extreme);
        let mut confidence = odd(Scheme::Confidence, "confidence", 3);
        (confidence.sum, confidence.min, confidence.max, confidence.mean, confidence.m2) =
            (None, None, None, None, None);
        confidence.buckets = vec![(0, 1), (999, 2)];
        let mut widest = odd(Scheme::LatencyHdr, "latency_ns", 6);
        widest.buckets = vec![(0, 1), (*Scheme::LatencyHdr.keys().end(), 2)];
        rows.push(widest);
        rows.push(confidence);
        let mut empty = DistributionRow::empty(
            5,
            6,
            Resolution::Raw,
            row("latency_ns", "phone", 4).series,
            Scheme::LatencyHdr,
        );
        empty.missing = 3;
        rows.push(empty);
        let mut one = odd(Scheme::LatencyHdr, "latency_ns", 5);
        (one.count, one.sum, one.min, one.max, one.m2) =
            (1, Some(123_456.0), Some(123_456.0), Some(123_456.0), None);
        one.mean = DistributionRow::latency_mean(one.sum, one.count);
        one.buckets = vec![(1_000, 1)];
        rows.push(one);
        rows.extend((0..300).map(|i| row("latency_ns", "phone", i)));
        rows
    }

    /// A whole distributions file through the columnar decoder.
    fn all_columns(bytes: bytes::Bytes) -> Result<Option<crate::columns::Columns>, DecodeError> {
        let all = (i64::MIN, i64::MAX);
        crate::columns::columns_from_parquet(bytes, Table::Distributions, Resolution::Raw, all, &[], false)
    }

    fn debug(rows: &[DistributionRow]) -> Vec<String> {
        // Debug prints every f64 exactly (NaN included, which == would not match).
        rows.iter().map(|r| format!("{r:?}")).collect()
    }

    #[test]
    fn format_2_round_trips_every_scheme_losslessly_through_both_decoders() {
        let mut rows = Rows { distributions: odd_rows(), ..Default::default() };
        let bytes = bytes::Bytes::from(to_parquet(Table::Distributions, &mut rows).unwrap());
        let meta = SerializedFileReader::new(bytes.clone()).unwrap().metadata().file_metadata().clone();
        let version =
            meta.key_value_metadata().unwrap().iter().find(|kv| kv.key == "modelwatch.format_version");
        assert_eq!(version.and_then(|kv| kv.value.as_deref()), Some("2"));
        let batches = read_parquet(bytes.clone(), i64::MIN, i64::MAX, &[]).unwrap();
        let decoded = rows_from(Table::Distributions, Resolution::Raw, &batches).unwrap().distributions;
        assert_eq!(debug(&decoded), debug(&rows.distributions));
        // The latency rows' means were not stored, and came back.
        let mean = batches[0].column_by_name("mean").unwrap();
        assert_eq!(mean.null_count(), 300 + 3 + 1 + 1, "latency means (and the confidence row's) are null");
        assert!(
            decoded
                .iter()
                .filter(|r| r.scheme == Scheme::LatencyHdr && r.count > 0)
                .all(|r| r.mean.is_some())
        );

        let cols = all_columns(bytes).unwrap();
        let mut from_columns = Rows::default();
        cols.expect("distribution columns").append_rows(&mut from_columns);
        assert_eq!(debug(&from_columns.distributions), debug(&rows.distributions));
    }

    #[test]
    fn bucket_lists_that_do_not_increase_within_their_scheme_are_refused_by_name() {
        let mut cases: Vec<(&str, Vec<(i64, u64)>)> = vec![
            ("a key past the scheme's range", vec![(5, 1), (1_000_000_000_000_000, 1)]),
            ("a negative latency key", vec![(-3, 1), (7, 1)]),
            ("a repeated key", vec![(7, 1), (7, 2)]),
            ("keys out of order", vec![(9, 1), (7, 2)]),
        ];
        // Deltas whose running sum wraps round i64 back into the range.
        cases.push(("a wrapped sum", vec![(5, 1), (i64::MAX, 1), (i64::MIN + 6, 1)]));
        for (what, buckets) in cases {
            let mut r = row("latency_ns", "email", 1);
            r.buckets = buckets;
            let bytes =
                to_parquet(Table::Distributions, &mut Rows { distributions: vec![r], ..Default::default() });
            let bytes = bytes::Bytes::from(bytes.unwrap());
            let batches = read_parquet(bytes.clone(), i64::MIN, i64::MAX, &[]).unwrap();
            let e = rows_from(Table::Distributions, Resolution::Raw, &batches).unwrap_err();
            assert_eq!(e.column, "buckets.key_delta", "{what}: {e}");
            assert!(e.problem.contains("keys must increase within 0..="), "{what}: {e}");
            let e = all_columns(bytes).unwrap_err();
            assert_eq!(e.column, "buckets.key_delta", "{what}: {e}");
        }
    }
}
