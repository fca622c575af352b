//! Import benchmark: `modelwatch import` (the release binary, as a child process) on
//! generated prediction logs of 20 features (18 numeric, 2 categorical), 1 model, 2
//! variants, 4 segments, 100 predictions per simulated second, as CSV and as Parquet, at
//! 1 M and 10 M rows; plus the shape of the log of issue 11 (192,000 rows over 8 days: few
//! rows per interval). Reports rows/s, MB/s, the child's peak resident memory (its
//! `ru_maxrss`, through `/usr/bin/time`) and store appends (WAL records, one fsync each),
//! as a Markdown table for BENCHMARKS.md.
//!
//! Run: `cargo bench --bench import` (about 4 minutes and 3 GB of temporary files;
//! `MODELWATCH_BENCH_IMPORT_ROWS=1000000` for one size, `MODELWATCH_BENCH_IMPORT_DIR=DIR` to
//! keep the generated files in `DIR`, to run another binary on them). A plain harness: each
//! figure is one long run of a process, there is no peer to compare with in the same run.
//! Under `cargo test --all-targets` it imports 2,000 rows of each format as a smoke test.
#![allow(missing_docs)]

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use modelwatch::demo::Rng;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

const T0_MS: i64 = 1_764_115_200_000; // 2025-11-26T00:00:00Z
const SEGMENTS: [&str; 4] = ["email", "phone", "ssn", "credit_card"];
const NUMERIC: usize = 18;
const LANGS: [&str; 5] = ["en", "de", "fr", "es", "it"];
const TIERS: [&str; 3] = ["free", "pro", "enterprise"];

/// How generated rows spread over time.
#[derive(Clone, Copy)]
struct Shape {
    rows: u64,
    /// Milliseconds between consecutive rows.
    step_ms: f64,
}

/// One generated row's values.
struct Row {
    ts: i64,
    variant: &'static str,
    segment: &'static str,
    latency_ms: f64,
    confidence: f64,
    label: &'static str,
    error: &'static str,
    numeric: [f64; NUMERIC],
    lang: &'static str,
    tier: &'static str,
}

fn row(rng: &mut Rng, shape: Shape, i: u64) -> Row {
    let mut numeric = [0.0; NUMERIC];
    for (f, x) in numeric.iter_mut().enumerate() {
        *x = ((rng.normal() * (1.0 + f as f64) + 10.0 * f as f64) * 1000.0).round() / 1000.0;
    }
    let r = rng.u();
    Row {
        ts: T0_MS + (i as f64 * shape.step_ms) as i64,
        variant: if rng.u() < 0.1 { "canary" } else { "control" },
        segment: SEGMENTS[rng.below(SEGMENTS.len())],
        latency_ms: ((2.0 + rng.u() * 8.0) * 1000.0).round() / 1000.0,
        confidence: (rng.u() * 1000.0).round() / 1000.0,
        label: if r < 0.025 {
            "1"
        } else if r < 0.05 {
            "0"
        } else {
            ""
        },
        error: if rng.u() < 0.005 { "timeout" } else { "" },
        numeric,
        lang: LANGS[rng.below(LANGS.len())],
        tier: TIERS[rng.below(TIERS.len())],
    }
}

fn header() -> String {
    let mut h = String::from("timestamp,model,version,variant,segment,latency_ms,confidence,label,error");
    for f in 0..NUMERIC {
        h.push_str(&format!(",f.x{f:02}"));
    }
    h.push_str(",f.lang,f.tier");
    h
}

fn write_csv(path: &Path, shape: Shape) {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    writeln!(w, "{}", header()).unwrap();
    let mut rng = Rng::seeded(11);
    for i in 0..shape.rows {
        let r = row(&mut rng, shape, i);
        write!(
            w,
            "{},pii,1.4.0,{},{},{},{},{},{}",
            r.ts, r.variant, r.segment, r.latency_ms, r.confidence, r.label, r.error
        )
        .unwrap();
        for x in r.numeric {
            write!(w, ",{x}").unwrap();
        }
        writeln!(w, ",{},{}", r.lang, r.tier).unwrap();
    }
    w.flush().unwrap();
}

fn write_parquet(path: &Path, shape: Shape) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let mut writer: Option<parquet::arrow::ArrowWriter<std::fs::File>> = None;
    let mut rng = Rng::seeded(11);
    let chunk = 65_536u64;
    let mut start = 0;
    while start < shape.rows {
        let rows: Vec<Row> =
            (start..(start + chunk).min(shape.rows)).map(|i| row(&mut rng, shape, i)).collect();
        start += rows.len() as u64;
        let text = |f: fn(&Row) -> &'static str| {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef
        };
        let mut columns: Vec<(String, ArrayRef)> = vec![
            (
                "timestamp".into(),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.ts))
                        .with_timezone("UTC"),
                ),
            ),
            ("model".into(), text(|_| "pii")),
            ("version".into(), text(|_| "1.4.0")),
            ("variant".into(), text(|r| r.variant)),
            ("segment".into(), text(|r| r.segment)),
            (
                "latency_ms".into(),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.latency_ms))),
            ),
            (
                "confidence".into(),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.confidence))),
            ),
            ("label".into(), text(|r| r.label)),
            ("error".into(), text(|r| r.error)),
        ];
        for f in 0..NUMERIC {
            columns.push((
                format!("f.x{f:02}"),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.numeric[f]))),
            ));
        }
        columns.push(("f.lang".into(), text(|r| r.lang)));
        columns.push(("f.tier".into(), text(|r| r.tier)));
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let w = writer.get_or_insert_with(|| {
            parquet::arrow::ArrowWriter::try_new(
                std::fs::File::create(path).unwrap(),
                batch.schema(),
                Some(props.clone()),
            )
            .unwrap()
        });
        w.write(&batch).unwrap();
    }
    writer.unwrap().close().unwrap();
}

/// What one import measured.
struct Measured {
    seconds: f64,
    peak_rss_kib: Option<u64>,
    imported: u64,
    appends: u64,
    snapshots: u64,
}

/// Runs `modelwatch import` as a child, under `/usr/bin/time` when it is there for the
/// child's peak resident memory (`ru_maxrss` from `wait4`).
fn import(file: &Path, data: &Path) -> Measured {
    let bin = env!("CARGO_BIN_EXE_modelwatch");
    let rss_file = data.with_extension("rss");
    let gnu_time = Path::new("/usr/bin/time").exists();
    let mut cmd = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("import").arg(file).arg("--data").arg(data).arg("--format").arg("json");
    let t = Instant::now();
    let out = cmd.output().unwrap();
    let seconds = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let peak_rss_kib = std::fs::read_to_string(&rss_file).ok().and_then(|s| s.trim().parse().ok());
    Measured {
        seconds,
        peak_rss_kib,
        imported: v["imported_rows"].as_u64().unwrap(),
        appends: v["store_appends"].as_u64().unwrap(),
        snapshots: v["snapshots"].as_u64().unwrap(),
    }
}

fn file_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let temp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("MODELWATCH_BENCH_IMPORT_DIR").map(PathBuf::from);
    let dir = keep.as_deref().unwrap_or(temp.path());
    if !bench {
        // `cargo test --all-targets` runs this without --bench: a small import of each format.
        let shape = Shape { rows: 2_000, step_ms: 10.0 };
        for (name, write) in [("smoke.csv", write_csv as fn(&Path, Shape)), ("smoke.parquet", write_parquet)]
        {
            let file = file_in(dir, name);
            write(&file, shape);
            let m = import(&file, &dir.join(format!("data-{name}")));
            assert_eq!(m.imported, shape.rows, "{name}");
        }
        println!("import bench: smoke test passed; run with `cargo bench --bench import`");
        return;
    }
    let sizes: Vec<u64> = std::env::var("MODELWATCH_BENCH_IMPORT_ROWS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000_000, 10_000_000]);
    let mut cases: Vec<(String, Shape)> =
        sizes.iter().map(|&n| (format!("{n} rows, 100 rows/s"), Shape { rows: n, step_ms: 10.0 })).collect();
    // Issue 11's log: 192,000 rows over 8 days, about 2.8 rows per 10 s interval.
    cases.push((
        "192000 rows over 8 days".into(),
        Shape { rows: 192_000, step_ms: 8.0 * 86_400_000.0 / 192_000.0 },
    ));

    println!("| input | file | import | rows/s | MB/s | peak RSS | store appends (fsyncs) | snapshots |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (label, shape) in cases {
        for (ext, write) in [("csv", write_csv as fn(&Path, Shape)), ("parquet", write_parquet)] {
            let file = file_in(dir, &format!("log-{}.{ext}", shape.rows));
            let t = Instant::now();
            write(&file, shape);
            let generated = t.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(&file).unwrap().len();
            let data = dir.join(format!("data-{}-{ext}", shape.rows));
            let m = import(&file, &data);
            println!(
                "| {label}, {ext} | {:.0} MB | {:.1} s | {:.0} | {:.1} | {} | {} | {} |",
                bytes as f64 / 1e6,
                m.seconds,
                m.imported as f64 / m.seconds,
                bytes as f64 / 1e6 / m.seconds,
                m.peak_rss_kib.map_or("-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
                m.appends,
                m.snapshots,
            );
            eprintln!("  ({label}, {ext}: generated in {generated:.1} s, {} rows imported)", m.imported);
            std::fs::remove_dir_all(&data).unwrap();
            if keep.is_none() {
                std::fs::remove_file(&file).unwrap();
            }
        }
    }
}
