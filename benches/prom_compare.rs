//! Side by side with Prometheus 2.42 on the same traffic, and the store's bytes per
//! prediction at three rates (issue 15). Prints Markdown tables for BENCHMARKS.md.
//!
//! **Part 1: Prometheus.** 7 days (`MODELWATCH_BENCH_DAYS`) at a 10 s interval, one model,
//! 2 variants × 4 segments, 25 to 35 predictions per interval and label set (mean 30);
//! latency lognormal (median 12 ms, σ 0.5), confidence Beta(8, 2), one numeric feature
//! `amount` ~ N(50, 10); one seeded generator, so every run sees the same values.
//!
//! - modelwatch records them through the agent with a `ManualClock` into a store, which is
//!   then maintained (compaction, 1m and 1h roll-ups) as the background thread would.
//! - Prometheus gets the same values as classic histograms: latency in seconds with 20
//!   buckets `le` = 1 ms × 1.25^k (k = 0…19, 1 ms to 69.4 ms, 3 significant digits) and
//!   confidence with 20 buckets 0.05, 0.10 … 1.00, each with `+Inf`, `_sum` and `_count`;
//!   the feature as a summary without quantiles (`_sum` and `_count` only: what a mean
//!   needs). They are written as OpenMetrics text, one sample per series at each interval's
//!   end (a scrape every 10 s, and zeros at the start), one file per 18 h window, and
//!   backfilled with `promtool tsdb create-blocks-from openmetrics --max-block-duration=24h`
//!   (promtool then writes 18 h blocks: the largest of Prometheus' block ranges under 24 h,
//!   and what its compactor keeps at the default retention). A real `prometheus` server is
//!   started on that directory (retention off, compaction up to 18 h, so it changes
//!   nothing).
//! - Bytes: ours are the latency rows only, appended from the store into a store of their
//!   own (the same hourly files, compaction and roll-ups, so file footers count); theirs
//!   are a second TSDB backfilled from the latency histogram's series only (their own
//!   index and chunks). Both are divided by label sets × intervals.
//! - Queries, through each server's HTTP API on loopback (`modelwatch serve` on the store,
//!   the release binary; Prometheus `/api/v1/query_range` and `/api/v1/query`), each run
//!   once to warm up and then `MODELWATCH_BENCH_RUNS` times (default 15; the median is
//!   printed). Our answer cache is defeated by moving `to` 1 ms later on every request (a
//!   distinct cache key, the same windows); Prometheus has no result cache. Every answer is
//!   compared with the exact one computed from the generated values. A range selector of
//!   Prometheus 2.x is closed at both ends, so `increase(...[1h])` at `t` spans the samples
//!   at `t - 1h` and `t`: exactly the 360 intervals of our window starting at `t - 1h`,
//!   without extrapolation.
//!
//! **Part 2: bytes per prediction** at 0.3, 3 and 30 predictions per interval and label set
//! (Poisson), 7 days (`MODELWATCH_BENCH_RATE_DAYS`), one model, 2 variants × 4 segments,
//! 4 numeric features; values rounded as the CSV holds them (latency to the µs, confidence
//! to 4 decimals, features to 3). The store's bytes on disk by table and resolution, and
//! the size of the same traffic as the CSV `modelwatch import` reads; the 0.3 CSV is also
//! imported with the release binary (`import`, then `store compact`) as a check of both.
//!
//! **Part 3: where the bytes are**: compressed bytes per Parquet column of the raw
//! distributions of each store above, from the files' metadata; and what the layout
//! changes format 2 did not take would save, measured by writing the same files again with
//! each file's own settings (read back from its metadata) after the change.
//!
//! Run: `cargo bench --bench prom_compare` (about 8 minutes on 2 cores, 2 GB of
//! temporary files at most; needs Debian's
//! `/usr/bin/prometheus` and `/usr/bin/promtool`: `apt-get install prometheus`). A short
//! run: `MODELWATCH_BENCH_DAYS=1 MODELWATCH_BENCH_RATE_DAYS=1 MODELWATCH_BENCH_RUNS=5`;
//! `MODELWATCH_BENCH_ONLY=prom` or `=rates` runs one part; `MODELWATCH_BENCH_DIR=DIR` (empty
//! or new) keeps the stores, the TSDBs and the CSV files there.
#![allow(missing_docs)]

use modelwatch::agent::{Feature, ManualClock, Timestamp};
use modelwatch::demo::Rng;
use modelwatch::{Agent, Prediction};
use modelwatch_store::{Durability, ReadRequest, Resolution, Store, StoreConfig, Table};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const VARIANTS: [&str; 2] = ["control", "canary"];
const SEGMENTS: [&str; 4] = ["email", "phone", "ssn", "credit_card"];
const SETS: usize = VARIANTS.len() * SEGMENTS.len();
/// 2025-11-20T00:00:00Z: day 20,412 since the epoch, a multiple of 7 days. `/api/v1/query`
/// starts its windows at `from` rounded down to a multiple of the step, so the week is one
/// window of a 7-day step only from such a day.
const START_S: i64 = 1_763_596_800;
const STEP_S: i64 = 10;
const HOUR_INTERVALS: usize = 360;
/// promtool's block window for `--max-block-duration=24h`.
const BLOCK_S: i64 = 18 * 3_600;

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The seeded values both sides get.
struct Draw(Rng);

impl Draw {
    fn latency_ns(&mut self) -> u64 {
        ((12e6 * (0.5 * self.0.normal()).exp()).round() as u64).max(1)
    }

    /// Marsaglia and Tsang's gamma variate (shape ≥ 1).
    fn gamma(&mut self, shape: f64) -> f64 {
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.0.normal();
            let v = (1.0 + c * x).powi(3);
            if v > 0.0 && self.0.u().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    fn confidence(&mut self) -> f64 {
        let (a, b) = (self.gamma(8.0), self.gamma(2.0));
        a / (a + b)
    }

    fn poisson(&mut self, mean: f64) -> usize {
        let (limit, mut p, mut k) = ((-mean).exp(), 1.0, 0);
        loop {
            p *= self.0.u();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

fn store_config(dir: &Path) -> StoreConfig {
    // No fsync (bytes on disk do not depend on it) and no grace for replaced files, so the
    // directory holds exactly the store once maintained twice.
    StoreConfig {
        durability: Durability::None,
        background: false,
        delete_grace: Duration::ZERO,
        ..StoreConfig::new(dir)
    }
}

fn agents(store: &Arc<Store>, clock: &Arc<ManualClock>, features: &[&str]) -> Vec<Agent> {
    VARIANTS
        .iter()
        .map(|v| {
            Agent::builder("pii")
                .version("1.0.0")
                .variant(v)
                .segments(SEGMENTS)
                .features(features.iter().map(|f| Feature::numeric(*f)))
                .interval(Duration::from_secs(STEP_S as u64))
                .clock(clock.clone())
                .background_flush(false)
                .build(store.clone())
                .unwrap()
        })
        .collect()
}

/// Compaction and roll-ups of everything, as of the first day (nothing expires), twice: the
/// second pass deletes the files the first replaced.
fn maintain(store: &Store) {
    store.flush().unwrap();
    store.maintain(START_S * 1000).unwrap();
    store.maintain(START_S * 1000).unwrap();
}

fn bytes_rows(store: &Store, table: Option<Table>, res: Option<Resolution>) -> (u64, u64) {
    store
        .manifest()
        .files
        .iter()
        .filter(|f| table.is_none_or(|t| f.table == t) && res.is_none_or(|r| f.resolution == r))
        .fold((0, 0), |(b, r), f| (b + f.bytes, r + f.rows))
}

/// Bytes of the files under `dir`, without replaced files waiting for their grace period.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name() != ".replaced")
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

// ---------------------------------------------------------------- part 3: columns

/// Compressed bytes per column path over the given files, and what the files hold besides
/// (footers, page indexes, magic).
fn column_bytes(store: &Store, table: Table, res: Resolution) -> (BTreeMap<String, u64>, u64, u64) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let (mut cols, mut other, mut rows) = (BTreeMap::new(), 0, 0);
    for f in store.manifest().files.iter().filter(|f| f.table == table && f.resolution == res) {
        let file = std::fs::File::open(store.dir().join(&f.path)).unwrap();
        let len = file.metadata().unwrap().len();
        let reader = SerializedFileReader::new(file).unwrap();
        let mut in_columns = 0;
        for rg in reader.metadata().row_groups() {
            rows += rg.num_rows() as u64;
            for c in rg.columns() {
                *cols.entry(c.column_path().string()).or_insert(0) += c.compressed_size() as u64;
                in_columns += c.compressed_size() as u64;
            }
        }
        other += len - in_columns;
    }
    (cols, other, rows)
}

fn print_columns(title: &str, store: &Store) {
    let (cols, other, rows) = column_bytes(store, Table::Distributions, Resolution::Raw);
    let total: u64 = cols.values().sum::<u64>() + other;
    let mut sorted: Vec<(String, u64)> = cols.into_iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.1));
    println!("\n{title}: raw distributions, {rows} rows, {}", mb(total));
    println!("\n| column | bytes | per row | share |");
    println!("|---|---:|---:|---:|");
    let line = |name: &str, b: u64| {
        println!(
            "| `{name}` | {b} | {:.2} | {:.1} % |",
            b as f64 / rows.max(1) as f64,
            100.0 * b as f64 / total.max(1) as f64
        )
    };
    let mut rest = 0;
    for (i, (name, b)) in sorted.iter().enumerate() {
        if i < 12 { line(name, *b) } else { rest += b }
    }
    line("(the other columns)", rest);
    line("(footers, page indexes)", other);
}

/// The writer settings a file was written with, read back from its metadata per column:
/// dictionary or not, the encoding, statistics (page, chunk or none), the codec, the row
/// group size. ZSTD's level is not recorded in a file: the store's (3) is assumed.
fn mirrored_properties(
    meta: &parquet::file::metadata::ParquetMetaData,
) -> parquet::file::properties::WriterProperties {
    use parquet::basic::{Compression, Encoding, ZstdLevel};
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    let rg = meta.row_group(0);
    let mut b = WriterProperties::builder()
        .set_max_row_group_row_count(Some(
            meta.row_groups().iter().map(|g| g.num_rows() as usize).max().unwrap_or(1),
        ))
        .set_offset_index_disabled(rg.columns().iter().all(|c| c.offset_index_offset().is_none()));
    for c in rg.columns() {
        let path = c.column_path().clone();
        let dictionary = c.dictionary_page_offset().is_some();
        let encoding = c
            .encodings()
            .find(|e| !matches!(e, Encoding::RLE | Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY))
            .unwrap_or(Encoding::PLAIN);
        let statistics = if c.column_index_offset().is_some() {
            EnabledStatistics::Page
        } else if c.statistics().is_some() {
            EnabledStatistics::Chunk
        } else {
            EnabledStatistics::None
        };
        let codec = match c.compression() {
            Compression::ZSTD(_) => Compression::ZSTD(ZstdLevel::try_new(3).unwrap()),
            other => other,
        };
        b = b
            .set_column_dictionary_enabled(path.clone(), dictionary)
            .set_column_statistics_enabled(path.clone(), statistics)
            .set_column_compression(path.clone(), codec);
        if !dictionary {
            b = b.set_column_encoding(path, encoding);
        }
    }
    b.build()
}

/// A schema change to measure, applied to a distributions batch (format 2 already leaves
/// out the bucket bounds, stores key deltas and no quantiles; these are the changes measured
/// and not taken, `docs/decisions/0009-storage-format-2.md`).
#[derive(Clone, Copy, PartialEq)]
enum Change {
    /// `min`, `max`, `mean`, `m2` null where `count` is 1 (all equal `sum`).
    NullSingles,
    /// Without the rows of one value (a roll-up layout that leaves them to the raw rows).
    SkipSingles,
}

fn changed(b: &arrow_array::RecordBatch, changes: &[Change]) -> arrow_array::RecordBatch {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, UInt64Type};
    use arrow_array::{Array, ArrayRef, Float64Array};
    use arrow_schema::Field;
    let count = b.column_by_name("count").unwrap().as_primitive::<UInt64Type>().clone();
    let (mut fields, mut cols): (Vec<Arc<Field>>, Vec<ArrayRef>) = (Vec::new(), Vec::new());
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        let name = f.name().as_str();
        if changes.contains(&Change::NullSingles) && ["mean", "min", "max", "m2"].contains(&name) {
            let a = c.as_primitive::<Float64Type>();
            let v: Float64Array =
                (0..a.len()).map(|i| (count.value(i) != 1 && a.is_valid(i)).then(|| a.value(i))).collect();
            fields.push(Arc::new(f.as_ref().clone().with_nullable(true)));
            cols.push(Arc::new(v));
            continue;
        }
        fields.push(f.clone());
        cols.push(c.clone());
    }
    arrow_array::RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), cols).unwrap()
}

/// The runs of rows of `b` whose `count` is not 1, as slices (no filter kernel needed).
fn without_singles(b: &arrow_array::RecordBatch) -> Vec<arrow_array::RecordBatch> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt64Type;
    let count = b.column_by_name("count").unwrap().as_primitive::<UInt64Type>();
    let (mut out, mut run) = (Vec::new(), None);
    for i in 0..=b.num_rows() {
        match (run, i < b.num_rows() && count.value(i) != 1) {
            (None, true) => run = Some(i),
            (Some(from), false) => {
                out.push(b.slice(from, i - from));
                run = None;
            }
            _ => {}
        }
    }
    out
}

/// The distributions of `store` at one resolution written again, file by file with each file's own
/// settings (read back from it), after `changes`: bytes in all.
fn rewritten_bytes(store: &Store, resolution: Resolution, changes: &[Change]) -> u64 {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut total = 0;
    for f in store
        .manifest()
        .files
        .iter()
        .filter(|f| f.table == Table::Distributions && f.resolution == resolution)
    {
        let bytes = bytes::Bytes::from(std::fs::read(store.dir().join(&f.path)).unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let props = mirrored_properties(reader.metadata());
        let mut batches: Vec<_> =
            reader.with_batch_size(1 << 30).build().unwrap().map(|b| changed(&b.unwrap(), changes)).collect();
        let schema = batches[0].schema();
        if changes.contains(&Change::SkipSingles) && resolution != Resolution::Raw {
            batches = batches.iter().flat_map(without_singles).collect();
        }
        let mut out = Vec::new();
        // As the store writes them: without the `ARROW:schema` footer entry.
        let options = parquet::arrow::arrow_writer::ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true);
        let mut w = ArrowWriter::try_new_with_options(&mut out, schema, options).unwrap();
        batches.iter().for_each(|b| w.write(b).unwrap());
        w.close().unwrap();
        total += out.len() as u64;
    }
    total
}

/// What schema changes would save on the distributions of `store`, per `unit`, at each
/// resolution.
fn print_schema_changes(store: &Store, unit: &str, units: f64, cases: &[(&str, &[Change])]) {
    println!("\n| distribution rows, bytes per {unit} | raw | 1m | 1h |");
    println!("|---|---:|---:|---:|");
    let per = |b: u64| format!("{:.1}", b as f64 / units);
    let stored = Resolution::ALL.map(|r| per(bytes_rows(store, Some(Table::Distributions), Some(r)).0));
    println!("| as stored | {} |", stored.join(" | "));
    for (name, changes) in cases {
        let b = Resolution::ALL.map(|r| per(rewritten_bytes(store, r, changes)));
        println!("| {name} | {} |", b.join(" | "));
    }
}

// ---------------------------------------------------------------- HTTP

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One GET on a fresh connection (`Connection: close`), the body de-chunked.
fn get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or(std::io::ErrorKind::InvalidData)?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let (mut out, mut rest) = (Vec::new(), &body[..]);
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 4 + size..];
        }
        body = out;
    }
    Ok((status, body))
}

fn wait_for(port: u16, path: &str, what: &str) {
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        if matches!(get(port, path), Ok((200, _))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not answer {path} within 120 s");
}

fn get_json(port: u16, path: &str) -> (serde_json::Value, Duration) {
    let t = Instant::now();
    let (status, body) = get(port, path).unwrap();
    let took = t.elapsed();
    assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    (serde_json::from_slice(&body).unwrap(), took)
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

/// Points by the value of one label (`""` for an answer without it), time in ms.
type Answer = BTreeMap<String, Vec<(i64, f64)>>;

fn ours_answer(v: &serde_json::Value, label: &str) -> Answer {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let key = s["tags"][label].as_str().unwrap_or("").to_string();
            let points = s["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            (key, points)
        })
        .collect()
}

/// Prometheus' matrix or vector, each point moved back by `shift_ms` (the start of the
/// window it ends).
fn prom_answer(v: &serde_json::Value, label: &str, shift_ms: i64) -> Answer {
    assert_eq!(v["status"], "success", "{v}");
    let point = |p: &serde_json::Value| {
        let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64 - shift_ms;
        (t, p[1].as_str().unwrap().parse::<f64>().unwrap())
    };
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let key = s["metric"][label].as_str().unwrap_or("").to_string();
            let points = match s.get("values") {
                Some(values) => values.as_array().unwrap().iter().map(point).collect(),
                None => vec![point(&s["value"])],
            };
            (key, points)
        })
        .collect()
}

/// Largest and mean relative error of an answer against the exact values (by label value and
/// window start), and how many points were compared; a missing point is an error of 1.
fn errors(answer: &Answer, exact: &Answer) -> (f64, f64, usize) {
    let (mut max, mut sum, mut n) = (0f64, 0f64, 0);
    for (key, points) in exact {
        let got: BTreeMap<i64, f64> =
            answer.get(key).map(|p| p.iter().copied().collect()).unwrap_or_default();
        for &(t, want) in points {
            let e = got.get(&t).map_or(1.0, |v| ((v - want) / want).abs());
            max = max.max(e);
            sum += e;
            n += 1;
        }
    }
    (max, sum / n.max(1) as f64, n)
}

// ---------------------------------------------------------------- part 1: Prometheus

/// A label set's cumulative Prometheus state.
#[derive(Default)]
struct Cumulative {
    latency: [u64; 21],
    latency_sum: f64,
    confidence: [u64; 21],
    confidence_sum: f64,
    count: u64,
    amount_sum: f64,
}

fn three_digits(x: f64) -> f64 {
    format!("{x:.2e}").parse().unwrap()
}

struct OpenMetrics {
    latency_bounds: Vec<f64>,
    confidence_bounds: Vec<f64>,
    /// Per label set: the latency lines' prefixes, then the other families'.
    latency_prefixes: Vec<Vec<String>>,
    other_prefixes: Vec<Vec<String>>,
}

impl OpenMetrics {
    fn new() -> Self {
        let latency_bounds: Vec<f64> = (0..20).map(|k| three_digits(0.001 * 1.25f64.powi(k))).collect();
        let confidence_bounds: Vec<f64> = (1..=20).map(|k| k as f64 / 20.0).collect();
        let (mut latency_prefixes, mut other_prefixes) = (Vec::new(), Vec::new());
        for v in VARIANTS {
            for s in SEGMENTS {
                let labels = format!("model=\"pii\",variant=\"{v}\",segment=\"{s}\"");
                let histogram = |name: &str, bounds: &[f64]| -> Vec<String> {
                    let les = bounds.iter().map(|b| format!("{b}")).chain(std::iter::once("+Inf".into()));
                    let mut p: Vec<String> =
                        les.map(|le| format!("{name}_bucket{{{labels},le=\"{le}\"}} ")).collect();
                    p.push(format!("{name}_sum{{{labels}}} "));
                    p.push(format!("{name}_count{{{labels}}} "));
                    p
                };
                latency_prefixes.push(histogram("model_latency_seconds", &latency_bounds));
                let mut other = histogram("model_confidence", &confidence_bounds);
                other.push(format!("model_feature_amount_sum{{{labels}}} "));
                other.push(format!("model_feature_amount_count{{{labels}}} "));
                other_prefixes.push(other);
            }
        }
        OpenMetrics { latency_bounds, confidence_bounds, latency_prefixes, other_prefixes }
    }

    fn header(w: &mut impl Write, latency_only: bool) -> std::io::Result<()> {
        writeln!(w, "# TYPE model_latency_seconds histogram")?;
        if !latency_only {
            writeln!(w, "# TYPE model_confidence histogram")?;
            writeln!(w, "# TYPE model_feature_amount summary")?;
        }
        Ok(())
    }

    /// One scrape of every series at `ts` (s), into the full file and the latency-only one.
    fn scrape(
        &self,
        c: &[Cumulative],
        ts: i64,
        all: &mut impl Write,
        lat: &mut impl Write,
    ) -> std::io::Result<()> {
        for (set, c) in c.iter().enumerate() {
            let values = |buckets: &[u64; 21], sum: f64| -> Vec<String> {
                let mut cum = 0;
                let mut v: Vec<String> = buckets
                    .iter()
                    .map(|n| {
                        cum += n;
                        cum.to_string()
                    })
                    .collect();
                v.push(format!("{sum}"));
                v.push(c.count.to_string());
                v
            };
            for (p, v) in self.latency_prefixes[set].iter().zip(values(&c.latency, c.latency_sum)) {
                writeln!(all, "{p}{v} {ts}")?;
                writeln!(lat, "{p}{v} {ts}")?;
            }
            let mut other = values(&c.confidence, c.confidence_sum);
            other.push(format!("{}", c.amount_sum));
            other.push(c.count.to_string());
            for (p, v) in self.other_prefixes[set].iter().zip(other) {
                writeln!(all, "{p}{v} {ts}")?;
            }
        }
        Ok(())
    }

    fn observe(&self, c: &mut Cumulative, latency_ns: u64, confidence: f64, amount: f64) {
        let secs = latency_ns as f64 / 1e9;
        let bucket = |bounds: &[f64], x: f64| bounds.iter().position(|&b| x <= b).unwrap_or(bounds.len());
        c.latency[bucket(&self.latency_bounds, secs)] += 1;
        c.latency_sum += secs;
        c.confidence[bucket(&self.confidence_bounds, confidence)] += 1;
        c.confidence_sum += confidence;
        c.count += 1;
        c.amount_sum += amount;
    }
}

/// Backfills one OpenMetrics file into a directory of its own (promtool runs beside the
/// generator; the file is deleted once its blocks exist).
fn promtool(file: PathBuf, out: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let o = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h"])
            .arg(&file)
            .arg(&out)
            .output()
            .expect("promtool (Debian's prometheus package) must be installed");
        assert!(o.status.success(), "promtool on {}: {}", file.display(), String::from_utf8_lossy(&o.stderr));
        std::fs::remove_file(&file).unwrap();
    })
}

/// Moves the blocks of every per-window directory into one TSDB directory.
fn gather_blocks(parts: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    for part in std::fs::read_dir(parts).unwrap().flatten() {
        for block in std::fs::read_dir(part.path()).unwrap().flatten() {
            if block.path().join("meta.json").exists() {
                std::fs::rename(block.path(), into.join(block.file_name())).unwrap();
            }
        }
    }
}

/// The generated latencies, per variant, in interval order, with each interval's offset:
/// the exact answers come from them.
struct Truth {
    latency: [Vec<u32>; 2],
    offsets: [Vec<usize>; 2],
    /// Per minute: the feature's sum and count over every label set.
    amount: Vec<(f64, u64)>,
}

impl Truth {
    fn p95(&self, variants: &[usize], from: usize, to: usize) -> f64 {
        let mut v: Vec<u32> = variants
            .iter()
            .flat_map(|&a| &self.latency[a][self.offsets[a][from]..self.offsets[a][to]])
            .copied()
            .collect();
        let rank = ((0.95 * v.len() as f64).ceil() as usize).max(1);
        *v.select_nth_unstable(rank - 1).1 as f64
    }

    /// p95 by variant in windows of `step` intervals from interval `from`, keyed by window
    /// start in ms.
    fn p95_by_variant(&self, from: usize, to: usize, step: usize) -> Answer {
        VARIANTS
            .iter()
            .enumerate()
            .map(|(a, v)| {
                let points = (from..to)
                    .step_by(step)
                    .map(|w| (interval_ms(w), self.p95(&[a], w, (w + step).min(to))))
                    .collect();
                (v.to_string(), points)
            })
            .collect()
    }
}

fn interval_ms(i: usize) -> i64 {
    (START_S + i as i64 * STEP_S) * 1000
}

fn prom_compare(days: usize, runs: usize, work: &Path) {
    let intervals = days * 8_640;
    let end_s = START_S + intervals as i64 * STEP_S;
    let data = work.join("modelwatch");
    let store = Arc::new(Store::open(store_config(&data)).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(START_S as u64)));
    let ags = agents(&store, &clock, &["amount"]);
    let om = OpenMetrics::new();
    let mut cum: Vec<Cumulative> = (0..SETS).map(|_| Cumulative::default()).collect();
    let mut draw = Draw(Rng::seeded(15));
    let mut truth = Truth {
        latency: [Vec::new(), Vec::new()],
        offsets: [vec![0], vec![0]],
        amount: vec![(0.0, 0); intervals.div_ceil(6)],
    };
    let (parts_all, parts_lat) = (work.join("om-all"), work.join("om-latency"));
    std::fs::create_dir_all(&parts_all).unwrap();
    std::fs::create_dir_all(&parts_lat).unwrap();
    let mut backfills = Vec::new();
    let mut window: Option<(i64, std::io::BufWriter<std::fs::File>, std::io::BufWriter<std::fs::File>)> =
        None;
    let (mut om_bytes, mut predictions) = (0u64, 0u64);
    let started = Instant::now();
    let mut record_time = Duration::ZERO;
    // Scrape k is at the end of interval k - 1 (scrape 0: zeros at the start).
    for k in 0..=intervals {
        let ts = START_S + k as i64 * STEP_S;
        let w = ts.div_euclid(BLOCK_S);
        if window.as_ref().is_none_or(|(cur, _, _)| *cur != w) {
            if let Some((cur, mut a, mut l)) = window.take() {
                for f in [&mut a, &mut l] {
                    writeln!(f, "# EOF").unwrap();
                    f.flush().unwrap();
                }
                om_bytes += a.get_ref().metadata().unwrap().len();
                let name = format!("{cur}.txt");
                backfills.push(promtool(parts_all.join(&name), parts_all.join(cur.to_string())));
                backfills.push(promtool(parts_lat.join(&name), parts_lat.join(cur.to_string())));
            }
            let open = |dir: &Path| {
                let mut f = std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::fs::File::create(dir.join(format!("{w}.txt"))).unwrap(),
                );
                OpenMetrics::header(&mut f, dir == parts_lat).unwrap();
                f
            };
            window = Some((w, open(&parts_all), open(&parts_lat)));
        }
        let (_, a, l) = window.as_mut().unwrap();
        om.scrape(&cum, ts, a, l).unwrap();
        if k == intervals {
            break;
        }
        // Interval k's traffic, recorded by the agents at its start.
        clock.set(Timestamp::from_secs(ts as u64));
        let t = Instant::now();
        for (a, agent) in ags.iter().enumerate() {
            agent.flush_due().unwrap();
            let h = agent.handle();
            for (s, seg) in SEGMENTS.iter().enumerate() {
                for _ in 0..25 + draw.0.below(11) {
                    let (lat, conf, amount) =
                        (draw.latency_ns(), draw.confidence(), 50.0 + 10.0 * draw.0.normal());
                    h.record(&Prediction::new(*seg, Duration::from_nanos(lat), conf).features(&[amount]));
                    om.observe(&mut cum[a * SEGMENTS.len() + s], lat, conf, amount);
                    truth.latency[a].push(lat.min(u32::MAX as u64) as u32);
                    let m = &mut truth.amount[k / 6];
                    *m = (m.0 + amount, m.1 + 1);
                    predictions += 1;
                }
            }
            truth.offsets[a].push(truth.latency[a].len());
        }
        record_time += t.elapsed();
    }
    let (cur, mut a, mut l) = window.take().unwrap();
    for f in [&mut a, &mut l] {
        writeln!(f, "# EOF").unwrap();
        f.flush().unwrap();
    }
    om_bytes += a.get_ref().metadata().unwrap().len();
    drop((a, l));
    let name = format!("{cur}.txt");
    backfills.push(promtool(parts_all.join(&name), parts_all.join(cur.to_string())));
    backfills.push(promtool(parts_lat.join(&name), parts_lat.join(cur.to_string())));
    clock.set(Timestamp::from_secs(end_s as u64));
    for agent in ags {
        agent.shutdown().unwrap();
    }
    let generated = started.elapsed();
    let t = Instant::now();
    maintain(&store);
    let maintain_time = t.elapsed();
    let t = Instant::now();
    for b in backfills {
        b.join().unwrap();
    }
    let promtool_wait = t.elapsed();
    let (prom_all, prom_lat) = (work.join("prometheus"), work.join("prometheus-latency"));
    gather_blocks(&parts_all, &prom_all);
    gather_blocks(&parts_lat, &prom_lat);

    // Ours, latency only: the raw latency rows appended, hour by hour, into a store of their
    // own, then maintained like the first.
    let lat_dir = work.join("modelwatch-latency");
    let lat_store = Store::open(store_config(&lat_dir)).unwrap();
    for h in 0..intervals.div_ceil(HOUR_INTERVALS) {
        let from = interval_ms(h * HOUR_INTERVALS);
        let req = ReadRequest::new(Table::Distributions, from, from + 3_600_000, Resolution::Raw)
            .tag("metric", "latency_ns");
        lat_store.append(store.read(&req).unwrap()).unwrap();
    }
    maintain(&lat_store);
    let label_intervals = (SETS * intervals) as f64;
    let (lat_raw, lat_raw_rows) = bytes_rows(&lat_store, None, Some(Resolution::Raw));
    let (lat_1m, _) = bytes_rows(&lat_store, None, Some(Resolution::Minute));
    let (lat_1h, _) = bytes_rows(&lat_store, None, Some(Resolution::Hour));
    assert_eq!(lat_raw_rows as usize, SETS * intervals, "one raw latency row per label set and interval");
    let (prom_lat_bytes, prom_all_bytes) = (dir_bytes(&prom_lat), dir_bytes(&prom_all));
    let ours_all = bytes_rows(&store, None, None).0;
    drop(lat_store);

    // Servers.
    let store_dir = store.dir().to_path_buf();
    drop(store);
    let our_port = free_port();
    let _ours = Server(
        Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["serve", "--data"])
            .arg(&store_dir)
            .args(["--listen", &format!("127.0.0.1:{our_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom_port = free_port();
    let config = work.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 10s\nscrape_configs: []\n").unwrap();
    let _prom = Server(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", prom_all.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .args(["--storage.tsdb.retention.time=100y", "--storage.tsdb.max-block-duration=18h"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's package) must be installed"),
    );
    wait_for(our_port, "/healthz", "modelwatch serve");
    wait_for(prom_port, "/-/ready", "prometheus");

    let end_ms = end_s * 1000;
    let (h_step, m5) = (HOUR_INTERVALS, 30);
    let last_day = intervals.saturating_sub(8_640);
    let all = [0, 1];
    let exact_week: Answer = [(String::new(), vec![(START_S * 1000, truth.p95(&all, 0, intervals))])].into();
    let exact_mean: Answer = [(
        String::new(),
        truth.amount.iter().enumerate().map(|(m, (s, n))| (interval_ms(m * 6), s / *n as f64)).collect(),
    )]
    .into();
    // One window holding every day: the shortest step of whole days from `days` up that
    // START is a multiple of (7 for a week).
    let whole = (days..).find(|d| (START_S / 86_400) % *d as i64 == 0).unwrap();
    let (week, whole) = (format!("{days}d"), format!("{whole}d"));
    struct Case {
        name: String,
        ours: String,
        prom: String,
        label: &'static str,
        shift_ms: i64,
        exact: Answer,
    }
    let lat_q = |range: &str, by: &str| {
        format!("histogram_quantile(0.95, sum by ({by}) (increase(model_latency_seconds_bucket[{range}])))")
    };
    let ours_q = |q: &str, from: i64, step: &str| {
        format!("/api/v1/query?query={}&from={from}&step={step}&to=", encode(q))
    };
    let prom_range = |q: &str, from_s: i64, step_s: i64| {
        format!("/api/v1/query_range?query={}&start={}&end={end_s}&step={step_s}", encode(q), from_s + step_s)
    };
    let cases = [
        Case {
            name: format!("p95 latency by variant, {days} days at 1 h"),
            ours: ours_q("p95(latency) by (variant)", START_S * 1000, "1h"),
            prom: prom_range(&lat_q("1h", "variant, le"), START_S, 3_600),
            label: "variant",
            shift_ms: 3_600_000,
            exact: truth.p95_by_variant(0, intervals, h_step),
        },
        Case {
            name: "p95 latency by variant, last 24 h at 5 min".into(),
            ours: ours_q("p95(latency) by (variant)", end_ms - 86_400_000, "5m"),
            prom: prom_range(&lat_q("5m", "variant, le"), end_s - 86_400, 300),
            label: "variant",
            shift_ms: 300_000,
            exact: truth.p95_by_variant(last_day, intervals, m5),
        },
        Case {
            name: format!("p95 latency over the {days} days, one value"),
            ours: ours_q("p95(latency)", START_S * 1000, &whole),
            prom: format!("/api/v1/query?query={}&time={end_s}", encode(&lat_q(&week, "le"))),
            label: "",
            shift_ms: days as i64 * 86_400_000,
            exact: exact_week,
        },
        Case {
            name: format!("mean of feature `amount`, {days} days at 1 min"),
            ours: ours_q(r#"mean(feature{feature="amount"})"#, START_S * 1000, "1m"),
            prom: prom_range(
                "sum(increase(model_feature_amount_sum[1m])) / sum(increase(model_feature_amount_count[1m]))",
                START_S,
                60,
            ),
            label: "",
            shift_ms: 60_000,
            exact: exact_mean,
        },
    ];
    let mut rows = Vec::new();
    let mut jitter = 0;
    for c in &cases {
        // Latency answers are in ns on our side, seconds on theirs.
        let scale = if c.name.starts_with("p95") { 1e9 } else { 1.0 };
        let scaled = |mut a: Answer| {
            a.values_mut().for_each(|p| p.iter_mut().for_each(|x| x.1 *= scale));
            a
        };
        let mut ours_t = Vec::new();
        let mut ours_first = None;
        for run in 0..=runs {
            jitter += 1;
            let (v, took) = get_json(our_port, &format!("{}{}", c.ours, end_ms + jitter));
            if run == 0 {
                ours_first = Some(ours_answer(&v, c.label));
            } else {
                ours_t.push(took);
            }
        }
        let mut prom_t = Vec::new();
        let mut prom_first = None;
        for run in 0..=runs {
            let (v, took) = get_json(prom_port, &c.prom);
            if run == 0 {
                prom_first = Some(scaled(prom_answer(&v, c.label, c.shift_ms)));
            } else {
                prom_t.push(took);
            }
        }
        let (ours, theirs) = (ours_first.unwrap(), prom_first.unwrap());
        let exact = c.exact.clone();
        let (oe, te) = (errors(&ours, &exact), errors(&theirs, &exact));
        let (om_, pm) = (median(ours_t), median(prom_t));
        rows.push(format!(
            "| {} | {} | **{:.1} ms** | {:.1} ms | **{:.1}×** | {:.3} % / {:.3} % | {:.2} % / {:.2} % |",
            c.name,
            oe.2,
            om_.as_secs_f64() * 1e3,
            pm.as_secs_f64() * 1e3,
            pm.as_secs_f64() / om_.as_secs_f64(),
            oe.1 * 100.0,
            oe.0 * 100.0,
            te.1 * 100.0,
            te.0 * 100.0,
        ));
    }

    println!("## Part 1: modelwatch against Prometheus 2.42, the same traffic");
    println!(
        "\n{days} days, {} label sets, {predictions} predictions ({:.1} per interval and label set); \
         generated and recorded in {:.1} s (the agents' part {:.1} s), maintenance {:.1} s, \
         promtool finished {:.1} s after the generator; OpenMetrics text {}.",
        SETS,
        predictions as f64 / label_intervals,
        generated.as_secs_f64(),
        record_time.as_secs_f64(),
        maintain_time.as_secs_f64(),
        promtool_wait.as_secs_f64(),
        mb(om_bytes),
    );
    println!("\n| latency histogram, bytes on disk | bytes | per label set per interval |");
    println!("|---|---:|---:|");
    let per = |b: u64| b as f64 / label_intervals;
    println!(
        "| **modelwatch raw rows** (exact, HDR 2 digits) | {} | **{:.1} B** |",
        mb(lat_raw),
        per(lat_raw)
    );
    println!("| modelwatch 1-minute roll-ups | {} | {:.1} B |", mb(lat_1m), per(lat_1m));
    println!("| modelwatch 1-hour roll-ups | {} | {:.2} B |", mb(lat_1h), per(lat_1h));
    println!(
        "| **Prometheus classic histogram** (20 buckets, `_sum`, `_count`; 10 s) | {} | **{:.1} B** |",
        mb(prom_lat_bytes),
        per(prom_lat_bytes)
    );
    println!(
        "| whole stores: modelwatch (every table and resolution) / Prometheus (3 families) | {} / {} | {:.1} B / {:.1} B |",
        mb(ours_all),
        mb(prom_all_bytes),
        per(ours_all),
        per(prom_all_bytes)
    );
    println!(
        "\n| query (warm, HTTP, median of {runs}) | points | modelwatch | Prometheus | Prometheus ÷ modelwatch | \
         error vs exact, mean / max: modelwatch | Prometheus |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    rows.iter().for_each(|r| println!("{r}"));
    println!("\nQueries as sent:\n");
    for c in &cases {
        println!("- modelwatch `{}`\n  Prometheus `{}`", c.ours.replace("&to=", "&to=END"), c.prom);
    }
    println!("\n## Part 3: where the bytes are\n");
    let lat_store = Store::open_read_only(StoreConfig::new(&lat_dir)).unwrap();
    print_columns("Latency rows of part 1", &lat_store);
    print_schema_changes(
        &lat_store,
        "label set and interval (latency)",
        label_intervals,
        &[("written again with the settings read back from the files (a check)", &[])],
    );
}

// ---------------------------------------------------------------- part 2: bytes per prediction

fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A writer that counts the bytes it passes on.
struct Counting(Box<dyn Write>, u64);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

struct RateFigures {
    rate: f64,
    predictions: u64,
    raw_d: u64,
    raw_s: u64,
    minute: u64,
    hour: u64,
    other: u64,
    total: u64,
    csv: u64,
}

fn rate_run(rate: f64, days: usize, work: &Path) -> (RateFigures, Store) {
    const FEATURES: [&str; 4] = ["f0", "f1", "f2", "f3"];
    let intervals = days * 8_640;
    let dir = work.join(format!("rate-{rate}"));
    let store = Arc::new(Store::open(store_config(&dir)).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(START_S as u64)));
    let ags = agents(&store, &clock, &FEATURES);
    let mut draw = Draw(Rng::seeded(30));
    // Only the 0.3 CSV is imported below; the others are counted, not kept (1.4 GB).
    let file: Box<dyn Write> = if rate < 1.0 {
        Box::new(std::fs::File::create(work.join(format!("rate-{rate}.csv"))).unwrap())
    } else {
        Box::new(std::io::sink())
    };
    let mut csv = std::io::BufWriter::new(Counting(file, 0));
    writeln!(csv, "timestamp,model,version,variant,segment,latency_ms,confidence,f.f0,f.f1,f.f2,f.f3")
        .unwrap();
    let mut predictions = 0;
    for k in 0..intervals {
        let ts_ms = interval_ms(k);
        clock.set(Timestamp::from_millis(ts_ms as u64));
        for (a, agent) in ags.iter().enumerate() {
            agent.flush_due().unwrap();
            let h = agent.handle();
            for seg in SEGMENTS {
                for _ in 0..draw.poisson(rate) {
                    // Rounded as the CSV writes them, so both hold the same values.
                    let lat_us = draw.latency_ns().div_ceil(1000);
                    let conf = (draw.confidence() * 1e4).round() / 1e4;
                    let x: Vec<f64> = (0..4)
                        .map(|f| {
                            let f = f as f64 + 1.0;
                            ((10.0 * f + 2.0 * f * draw.0.normal()) * 1e3).round() / 1e3
                        })
                        .collect();
                    h.record(&Prediction::new(seg, Duration::from_micros(lat_us), conf).features(&x));
                    let at = ts_ms + draw.0.below(10_000) as i64;
                    writeln!(
                        csv,
                        "{},pii,1.0.0,{},{seg},{}.{:03},{conf},{},{},{},{}",
                        rfc3339_ms(at),
                        VARIANTS[a],
                        lat_us / 1000,
                        lat_us % 1000,
                        x[0],
                        x[1],
                        x[2],
                        x[3]
                    )
                    .unwrap();
                    predictions += 1;
                }
            }
        }
    }
    clock.set(Timestamp::from_millis(interval_ms(intervals) as u64));
    for agent in ags {
        agent.shutdown().unwrap();
    }
    csv.flush().unwrap();
    let csv_bytes = csv.get_ref().1;
    drop(csv);
    maintain(&store);
    let b = |t, r| bytes_rows(&store, t, r).0;
    let raw_d = b(Some(Table::Distributions), Some(Resolution::Raw));
    let raw_s = b(Some(Table::Scalars), Some(Resolution::Raw));
    let minute = b(None, Some(Resolution::Minute));
    let hour = b(None, Some(Resolution::Hour));
    let total = dir_bytes(&dir);
    let other = total - raw_d - raw_s - minute - hour;
    let store = Arc::into_inner(store).unwrap();
    (RateFigures { rate, predictions, raw_d, raw_s, minute, hour, other, total, csv: csv_bytes }, store)
}

fn rates(days: usize, work: &Path) {
    println!("\n## Part 2: bytes per prediction ({days} days, 2 variants × 4 segments, 4 features)\n");
    println!(
        "| predictions per interval and label set | predictions | raw distributions | raw scalars | \
         1m roll-ups | 1h roll-ups | other (events, manifest, WAL) | **store total** | CSV for `import` | store ÷ CSV |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut stores, mut rates_predictions) = (Vec::new(), Vec::new());
    for rate in [0.3, 3.0, 30.0] {
        let (f, store) = rate_run(rate, days, work);
        rates_predictions.push(f.predictions);
        let p = |b: u64| format!("{:.1} B", b as f64 / f.predictions as f64);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | **{}** ({}) | {} ({}) | {:.2} |",
            f.rate,
            f.predictions,
            p(f.raw_d),
            p(f.raw_s),
            p(f.minute),
            p(f.hour),
            p(f.other),
            p(f.total),
            mb(f.total),
            p(f.csv),
            mb(f.csv),
            f.total as f64 / f.csv as f64
        );
        stores.push((rate, store));
    }
    // The CSV through the CLI, as a user would load it: every row accepted, and the store it
    // makes is about the agent's (its import events and instance tag aside).
    let (csv, data) = (work.join("rate-0.3.csv"), work.join("import-0.3"));
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_modelwatch")).args(args).output().unwrap();
        assert!(o.status.success(), "modelwatch {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let end = format!("{}", interval_ms(days * 8_640));
    let t = Instant::now();
    let imported = run(&["import", csv.to_str().unwrap(), "--data", data.to_str().unwrap(), "--now", &end]);
    run(&["store", "compact", "--data", data.to_str().unwrap(), "--as-of", &format!("{}", START_S * 1000)]);
    println!(
        "\nThe 0.3 CSV through `modelwatch import` and `modelwatch store compact` ({:.0} s): {:.1} B per prediction \
         ({}); {}",
        t.elapsed().as_secs_f64(),
        dir_bytes(&data) as f64 / rates_predictions[0] as f64,
        mb(dir_bytes(&data)),
        imported.lines().next().unwrap_or("").replace(work.to_str().unwrap(), "…")
    );
    for (rate, store) in &stores {
        print_columns(&format!("Store at {rate} predictions per interval"), store);
    }
    use Change::*;
    let (rate, store) = &stores[0];
    let predictions = rates_predictions[0] as f64;
    println!("\nSchema changes at {rate} predictions per interval:");
    print_schema_changes(
        store,
        "prediction",
        predictions,
        &[
            ("written again with the settings read back from the files (a check)", &[]),
            ("`min`, `max`, `mean`, `m2` null in one-value rows", &[NullSingles]),
            ("… and no roll-up rows of one value (the raw row answers)", &[NullSingles, SkipSingles]),
        ],
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without
    // it, and a week of traffic and a Prometheus backfill are no smoke test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("prom_compare bench: run with `cargo bench --bench prom_compare`");
        return;
    }
    let days: usize = env_num("MODELWATCH_BENCH_DAYS", 7);
    let rate_days: usize = env_num("MODELWATCH_BENCH_RATE_DAYS", 7);
    let runs: usize = env_num("MODELWATCH_BENCH_RUNS", 15);
    let only = std::env::var("MODELWATCH_BENCH_ONLY").unwrap_or_default();
    // The stores, TSDBs and CSV files stay in `MODELWATCH_BENCH_DIR` when it is given.
    let temp = tempfile::tempdir().unwrap();
    let work = std::env::var_os("MODELWATCH_BENCH_DIR").map_or(temp.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&work).unwrap();
    let started = Instant::now();
    if only.is_empty() || only == "prom" {
        prom_compare(days, runs.max(1), &work);
    }
    if only.is_empty() || only == "rates" {
        rates(rate_days, &work);
    }
    println!("\n(whole run {:.0} s)", started.elapsed().as_secs_f64());
}
