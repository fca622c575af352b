//! `modelwatch import`: CSV and Parquet prediction logs through the agent into the store.

use crate::cli::{modelwatch, stderr, stdout};
use modelwatch_store::{ReadRequest, Resolution, Store, StoreConfig, Table};
use std::fmt::Write;

fn csv_log() -> (String, usize) {
    let mut s = String::from(
        "timestamp,model,version,variant,segment,latency_ms,confidence,label,error,f.len,f.lang\n",
    );
    let t0 = 1_764_115_200_000u64;
    let mut good = 0;
    for i in 0..600u64 {
        let ts = if i % 2 == 0 {
            (t0 + i * 500).to_string()
        } else {
            format!("2025-11-26T00:{:02}:{:02}.{:03}Z", i * 500 / 60_000, i * 500 / 1000 % 60, i * 500 % 1000)
        };
        let seg = ["email", "phone", "ssn"][(i % 3) as usize];
        let label = if i % 4 == 0 {
            "1"
        } else if i % 4 == 1 {
            "0"
        } else {
            ""
        };
        let err = if i % 50 == 0 { "timeout" } else { "" };
        let len = if i % 10 == 0 { String::new() } else { (i % 40).to_string() };
        writeln!(
            s,
            "{ts},pii,1.0,control,{seg},{:.3},{:.3},{label},{err},{len},{}",
            1.0 + (i % 17) as f64,
            (i % 100) as f64 / 100.0,
            ["en", "de"][(i % 2) as usize]
        )
        .unwrap();
        good += 1;
    }
    s.push_str("yesterday,pii,1.0,control,email,1,0.5,,,3,en\n");
    s.push_str("1764115500000,pii,1.0,control,email,fast,0.5,,,3,en\n");
    (s, good)
}

fn total(store: &Store, table: Table, metric: &str) -> f64 {
    let r = store.read(&ReadRequest::new(table, 0, i64::MAX, Resolution::Raw).tag("metric", metric)).unwrap();
    r.scalars.iter().map(|s| s.value).sum::<f64>()
        + r.distributions.iter().map(|d| d.count as f64).sum::<f64>()
}

#[test]
fn a_csv_log_is_imported_with_its_own_timestamps_and_bad_rows_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, good) = csv_log();
    let file = dir.path().join("log.csv");
    std::fs::write(&file, csv).unwrap();
    let data = dir.path().join("data");
    let o = modelwatch(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("imported {good} rows")), "{}", stdout(&o));
    assert!(stdout(&o).contains("rejected 2"), "{}", stdout(&o));
    assert!(stderr(&o).contains("line 602: timestamp \"yesterday\""), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 603: latency_ms \"fast\""), "{}", stderr(&o));

    // No background retention as of the real date over the fixed-date data.
    let store = Store::open(StoreConfig { maintenance_every: None, ..StoreConfig::new(&data) }).unwrap();
    let errors = 600 / 50;
    assert_eq!(total(&store, Table::Scalars, "predictions"), (good - errors) as f64);
    assert_eq!(total(&store, Table::Scalars, "errors"), errors as f64);
    assert_eq!(
        total(&store, Table::Scalars, "feedback"),
        300.0 - 6.0,
        "labels on error rows are not feedback"
    );
    let rows = store
        .read(&ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", "predictions"))
        .unwrap();
    let first = rows.scalars.iter().map(|r| r.start_ms).min().unwrap();
    let last = rows.scalars.iter().map(|r| r.start_ms).max().unwrap();
    assert_eq!(first, 1_764_115_200_000, "intervals follow the rows' timestamps");
    assert_eq!(last, 1_764_115_200_000 + 290_000);
    let lang = store
        .read(
            &ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw)
                .tag("metric", "feature_category")
                .tag("category", "de"),
        )
        .unwrap();
    assert_eq!(lang.scalars.iter().map(|r| r.value).sum::<f64>(), 300.0, "categorical from strings");
}

#[test]
fn strict_mode_stops_at_the_first_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = csv_log();
    let file = dir.path().join("log.csv");
    std::fs::write(&file, csv).unwrap();
    let o = modelwatch(&[
        "import",
        file.to_str().unwrap(),
        "--data",
        dir.path().join("d").to_str().unwrap(),
        "--strict",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 602"), "{}", stderr(&o));
}

#[test]
fn a_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.csv");
    std::fs::write(&file, "timestamp,model,segment\n1,m,s\n").unwrap();
    let o = modelwatch(&["import", file.to_str().unwrap(), "--data", dir.path().join("d").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("missing required column(s): version, variant, latency_ms, confidence"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_parquet_log_is_imported() {
    use arrow_array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let n = 100;
    let t0 = 1_764_115_200_000i64;
    let batch = RecordBatch::try_from_iter(vec![
        (
            "timestamp",
            Arc::new(
                TimestampMillisecondArray::from_iter_values((0..n).map(|i| t0 + i * 1000))
                    .with_timezone("UTC"),
            ) as _,
        ),
        ("model", Arc::new(StringArray::from_iter_values((0..n).map(|_| "pii"))) as _),
        ("version", Arc::new(StringArray::from_iter_values((0..n).map(|_| "2"))) as _),
        ("variant", Arc::new(StringArray::from_iter_values((0..n).map(|_| "canary"))) as _),
        (
            "segment",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| if i % 2 == 0 { "email" } else { "phone" }),
            )) as _,
        ),
        ("latency_ms", Arc::new(Float64Array::from_iter_values((0..n).map(|i| 1.0 + i as f64))) as _),
        ("confidence", Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64 / 100.0))) as _),
        ("f.x", Arc::new(Float64Array::from_iter((0..n).map(|i| (i % 5 != 0).then_some(i as f64)))) as _),
    ])
    .unwrap();
    let file = dir.path().join("log.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), batch.schema(), None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let data = dir.path().join("data");
    let o = modelwatch(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = Store::open(StoreConfig { maintenance_every: None, ..StoreConfig::new(&data) }).unwrap();
    assert_eq!(total(&store, Table::Scalars, "predictions"), 100.0);
    let x = store
        .read(&ReadRequest::new(Table::Distributions, 0, i64::MAX, Resolution::Raw).tag("feature", "x"))
        .unwrap();
    assert_eq!(x.distributions.iter().map(|d| d.count).sum::<u64>(), 80);
    assert_eq!(x.distributions.iter().map(|d| d.missing).sum::<u64>(), 20);
    assert!(x.distributions.iter().all(|d| &*d.series.variant == "canary"));
}

// Streaming, idempotent imports (issue 11).

/// A CSV log of `rows` rows, `features` numeric features written at full precision (as
/// pandas writes them), one row in 50 an error, at 100 rows per simulated second. Returns
/// the number of error rows.
fn big_csv(path: &std::path::Path, rows: u64, features: usize) -> u64 {
    use std::io::Write as _;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut head = String::from("timestamp,model,version,variant,segment,latency_ms,confidence,label,error");
    for f in 0..features {
        write!(head, ",f.x{f}").unwrap();
    }
    writeln!(w, "{head}").unwrap();
    let mut rng = crate::support::Rng::seeded(7);
    let mut errors = 0;
    for i in 0..rows {
        let err = if i % 50 == 7 {
            errors += 1;
            "timeout"
        } else {
            ""
        };
        write!(
            w,
            "{},pii,1,{},{},{:.3},{:.3},{},{err}",
            1_764_115_200_000 + i * 10,
            if i % 10 == 0 { "canary" } else { "control" },
            ["email", "phone", "ssn"][(i % 3) as usize],
            1.0 + rng.u() * 9.0,
            rng.u(),
            ["", "1", "0", ""][(i % 4) as usize],
        )
        .unwrap();
        for f in 0..features {
            write!(w, ",{}", rng.normal() + f as f64).unwrap();
        }
        writeln!(w).unwrap();
    }
    w.flush().unwrap();
    errors
}

fn read_store(data: &std::path::Path) -> Store {
    Store::open(StoreConfig { maintenance_every: None, ..StoreConfig::new(data) }).unwrap()
}

#[test]
fn importing_the_same_file_twice_counts_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, good) = csv_log();
    let file = dir.path().join("log.csv");
    std::fs::write(&file, &csv).unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let first = modelwatch(&["import", file.to_str().unwrap(), "--data", d]);
    assert!(first.status.success(), "{}", stderr(&first));
    // The same bytes under another name are the same input.
    let copy = dir.path().join("copy of log.csv");
    std::fs::write(&copy, &csv).unwrap();
    for f in [&file, &copy] {
        let again = modelwatch(&["import", f.to_str().unwrap(), "--data", d]);
        assert!(again.status.success(), "{}", stderr(&again));
        assert!(stdout(&again).contains(&format!("already imported: {good} rows on ")), "{}", stdout(&again));
    }
    let store = read_store(&data);
    let errors = 600 / 50;
    assert_eq!(total(&store, Table::Scalars, "predictions"), (good - errors) as f64);
    assert_eq!(total(&store, Table::Scalars, "errors"), errors as f64);
}

#[test]
fn two_imports_of_the_same_file_at_once_count_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.csv");
    let errors = big_csv(&file, 60_000, 2);
    let data = dir.path().join("data");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["import", file.to_str().unwrap(), "--data", data.to_str().unwrap()])
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success() && b.status.success(), "{}{}", stderr(&a), stderr(&b));
    let said = format!("{}{}", stdout(&a), stdout(&b));
    assert!(
        said.contains("already imported: 60000 rows"),
        "the second one waits, then finds it done: {said}"
    );
    let store = read_store(&data);
    assert_eq!(
        total(&store, Table::Scalars, "predictions") + total(&store, Table::Scalars, "errors"),
        60_000.0
    );
    assert_eq!(total(&store, Table::Scalars, "errors"), errors as f64);
}

#[test]
fn a_parquet_file_imported_twice_counts_once_and_says_so_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.parquet");
    let batch = arrow_array::RecordBatch::try_from_iter(vec![
        (
            "timestamp",
            std::sync::Arc::new(arrow_array::Int64Array::from_iter_values(
                (0..50).map(|i| 1_764_115_200_000 + i * 1000),
            )) as _,
        ),
        (
            "model",
            std::sync::Arc::new(arrow_array::StringArray::from_iter_values((0..50).map(|_| "pii"))) as _,
        ),
        (
            "version",
            std::sync::Arc::new(arrow_array::StringArray::from_iter_values((0..50).map(|_| "1"))) as _,
        ),
        (
            "variant",
            std::sync::Arc::new(arrow_array::StringArray::from_iter_values((0..50).map(|_| "control"))) as _,
        ),
        (
            "segment",
            std::sync::Arc::new(arrow_array::StringArray::from_iter_values((0..50).map(|_| "email"))) as _,
        ),
        ("latency_ms", std::sync::Arc::new(arrow_array::Int32Array::from_iter_values(0..50)) as _),
        (
            "confidence",
            std::sync::Arc::new(arrow_array::Float32Array::from_iter_values((0..50).map(|i| i as f32 / 50.0)))
                as _,
        ),
    ])
    .unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), batch.schema(), None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let data = dir.path().join("data");
    let run = || {
        modelwatch(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap(), "--format", "json"])
    };
    let first: serde_json::Value = serde_json::from_str(&stdout(&run())).unwrap();
    assert_eq!(first["imported_rows"], 50);
    let second: serde_json::Value = serde_json::from_str(&stdout(&run())).unwrap();
    assert_eq!(second["already_imported"], true, "{second}");
    assert_eq!(total(&read_store(&data), Table::Scalars, "predictions"), 50.0);
}

#[test]
fn unknown_columns_are_named_and_strict_refuses_them_importing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.csv");
    std::fs::write(
        &file,
        "timestamp,model,version,variant,segment,latency_ms,confidence,label_ts,f.name,f_nme\n\
         1764115200000,pii,1,control,email,3,0.5,1764115300000,4,5\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let strict =
        modelwatch(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap(), "--strict"]);
    assert_eq!(strict.status.code(), Some(2), "{}", stderr(&strict));
    assert!(
        stderr(&strict).contains("2 unknown columns: label_ts, f_nme (known: timestamp,"),
        "{}",
        stderr(&strict)
    );
    assert!(!data.exists(), "--strict refuses before the store is touched");

    let o = modelwatch(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("ignoring 2 unknown columns: label_ts, f_nme"), "{}", stderr(&o));
    assert!(stdout(&o).contains("imported 1 rows"), "{}", stdout(&o));
}

/// Runs the binary with `args`, sampling its peak resident memory (VmHWM) until it exits.
fn run_with_peak_rss(args: &[&str]) -> (std::process::ExitStatus, String, u64) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(args)
        .stdout(out.reopen().unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status_code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        // VmHWM is the high-water mark: only growth in the last few milliseconds can be missed.
        if let Ok(s) = std::fs::read_to_string(&status)
            && let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(status_code.success());
    (status_code, std::fs::read_to_string(out.path()).unwrap(), peak_kib * 1024)
}

#[test]
fn a_large_file_imports_in_memory_that_does_not_grow_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (tiny, large) = (dir.path().join("tiny.csv"), dir.path().join("large.csv"));
    big_csv(&tiny, 10, 20);
    big_csv(&large, 300_000, 20);
    let size = std::fs::metadata(&large).unwrap().len();
    let import = |file: &std::path::Path, data: &str| {
        let data = dir.path().join(data);
        run_with_peak_rss(&[
            "import",
            file.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--format",
            "json",
        ])
    };
    let (_, _, base) = import(&tiny, "tiny");
    let (_, out, peak) = import(&large, "large");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["imported_rows"], 300_000);
    eprintln!("peak RSS {peak} B, {base} B for a 10-row file; the file {size} B; {v}");
    // Holding 300,000 rows of 29 cells as strings would take several times the file; the
    // stream holds two batches and the store's unpublished rows, whatever the file's size
    // (benches/import.rs measures 1 M and 10 M rows).
    assert!(peak - base < size, "peak RSS grew by {} B (from {base} B) for a {size} B file", peak - base);
    // One store append (WAL record, fsync) per batch, where the agent's sink wrote one per
    // snapshot.
    let (appends, snapshots) = (v["store_appends"].as_u64().unwrap(), v["snapshots"].as_u64().unwrap());
    assert!(
        appends <= 300_000 / 4_096 + 1 && appends * 10 < snapshots,
        "{appends} appends, {snapshots} snapshots"
    );
}

/// The total bytes of the WAL segments and Parquet files under `data`: grows as batches
/// are acknowledged.
fn stored_bytes(data: &std::path::Path) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(p) else { return 0 };
        entries
            .map_while(Result::ok)
            .map(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk(&path)
                } else if path.extension().is_some_and(|x| x == "wal" || x == "parquet") {
                    e.metadata().map_or(0, |m| m.len())
                } else {
                    0
                }
            })
            .sum()
    }
    walk(data)
}

#[test]
fn an_import_killed_with_sigkill_resumes_and_counts_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.csv");
    let rows = 300_000;
    let errors = big_csv(&file, rows, 4);
    let data = dir.path().join("data");
    let args = ["import", file.to_str().unwrap(), "--data", data.to_str().unwrap(), "--batch-rows", "2000"];
    let mut kills = 0;
    for _ in 0..3 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let before = stored_bytes(&data);
        // Kill once a batch or more has been acknowledged since the start.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
                break;
            }
            if stored_bytes(&data) > before + 100_000 {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        child.wait().unwrap();
    }
    assert!(kills >= 1, "the import finished before it could be killed: use a larger file");
    let o = modelwatch(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("resumed: the first "), "{}", stdout(&o));
    let store = read_store(&data);
    assert_eq!(total(&store, Table::Scalars, "predictions"), (rows - errors) as f64, "after {kills} kills");
    assert_eq!(total(&store, Table::Scalars, "errors"), errors as f64);
    assert!(store.verify().is_empty());
    let again = modelwatch(&args);
    assert!(stdout(&again).contains(&format!("already imported: {rows} rows")), "{}", stdout(&again));
}

/// Predictions per interval start, and the count of a feature's values, in a store.
fn per_interval(data: &std::path::Path) -> (std::collections::BTreeMap<i64, f64>, u64) {
    let store = read_store(data);
    let rows = store
        .read(&ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", "predictions"))
        .unwrap();
    let mut by_start = std::collections::BTreeMap::new();
    for r in rows.scalars {
        *by_start.entry(r.start_ms).or_insert(0.0) += r.value;
    }
    let x = store
        .read(&ReadRequest::new(Table::Distributions, 0, i64::MAX, Resolution::Raw).tag("feature", "x1"))
        .unwrap();
    (by_start, x.distributions.iter().map(|d| d.count).sum())
}

#[test]
fn batches_of_unsorted_rows_count_each_row_in_its_own_interval() {
    let dir = tempfile::tempdir().unwrap();
    let sorted = dir.path().join("sorted.csv");
    big_csv(&sorted, 3_000, 2);
    let text = std::fs::read_to_string(&sorted).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    // A deterministic shuffle: rows go back and forth in time across batches.
    let mut rng = crate::support::Rng::seeded(3);
    for i in (1..lines.len()).rev() {
        lines.swap(i, rng.below(i + 1));
    }
    let shuffled = dir.path().join("shuffled.csv");
    std::fs::write(&shuffled, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
    let run = |file: &std::path::Path, data: &str, batch: &str| {
        let data = dir.path().join(data);
        let o = modelwatch(&[
            "import",
            file.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--batch-rows",
            batch,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        per_interval(&data)
    };
    let whole = run(&sorted, "whole", "100000");
    assert_eq!(whole.0.values().sum::<f64>(), 3_000.0 - 60.0, "errors are not predictions");
    assert_eq!(run(&sorted, "batched", "100"), whole, "sorted input in batches of 100");
    assert_eq!(run(&shuffled, "shuffled", "250"), whole, "shuffled input in batches of 250");
}

/// `label_time`: a label that arrived after its prediction is stored with its prediction's
/// interval (its delay in `label_delay_seconds`), counted as feedback when it arrived; one
/// before its prediction, in the future, past `--max-label-delay` or without a label is
/// rejected by field with its line.
#[test]
fn label_time_puts_a_label_at_its_prediction_and_bad_ones_are_rejected_by_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_764_115_200_000i64;
    let day = 86_400_000i64;
    let mut csv =
        String::from("timestamp,model,version,variant,segment,latency_ms,confidence,label,label_time\n");
    // Lines 2..=101: predictions at t0 + i s, negatives labelled two days later, positives at once.
    for i in 0..100i64 {
        let (label, at) =
            if i % 2 == 0 { ("0", (t0 + 2 * day + i * 1_000).to_string()) } else { ("1", String::new()) };
        writeln!(csv, "{},pii,1,control,email,2,0.8,{label},{at}", t0 + i * 1_000).unwrap();
    }
    csv.push_str(&format!("{},pii,1,control,email,2,0.8,1,{}\n", t0, t0 - 1)); // line 102
    csv.push_str(&format!("{},pii,1,control,email,2,0.8,1,{}\n", t0, t0 + 400 * day)); // line 103
    csv.push_str(&format!("{},pii,1,control,email,2,0.8,1,{}\n", t0, t0 + 31 * day)); // line 104
    csv.push_str(&format!("{},pii,1,control,email,2,0.8,,{}\n", t0, t0 + day)); // line 105
    let file = dir.path().join("labels.csv");
    std::fs::write(&file, csv).unwrap();
    let data = dir.path().join("data");
    let now = (t0 + 40 * day).to_string();
    let o = modelwatch(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap(), "--now", &now]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("imported 100 rows") && stdout(&o).contains("rejected 4"), "{}", stdout(&o));
    for want in [
        "line 102: label_time 2025-11-25T23:59:59Z is before the prediction's timestamp 2025-11-26T00:00:00Z",
        "line 103: label_time 2026-12-31T00:00:00",
        "is in the future",
        "line 104: label_time 2025-12-27T00:00:00",
        "more than 30 days after",
        "line 105: label_time",
        "without a label",
    ] {
        assert!(stderr(&o).contains(want), "{want}: {}", stderr(&o));
    }
    let store = Store::open(StoreConfig { maintenance_every: None, ..StoreConfig::new(&data) }).unwrap();
    let read = |metric: &str| {
        store
            .read(&ReadRequest::new(Table::Distributions, 0, i64::MAX, Resolution::Raw).tag("metric", metric))
            .unwrap()
    };
    let negative = read("confidence_negative").distributions;
    assert_eq!(negative.iter().map(|d| d.count).sum::<u64>(), 50);
    assert!(
        negative.iter().all(|d| d.start_ms >= t0 && d.end_ms <= t0 + 110_000),
        "at the predictions: {negative:?}"
    );
    let delay = read("label_delay_seconds").distributions;
    assert_eq!(delay.iter().map(|d| d.count).sum::<u64>(), 50, "the delayed labels carry their delay");
    assert!(delay.iter().all(|d| d.min == Some(172_800.0) && d.max == Some(172_800.0)), "{delay:?}");
    let feedback = store
        .read(&ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", "feedback"))
        .unwrap()
        .scalars;
    let late: f64 = feedback.iter().filter(|r| r.start_ms >= t0 + 2 * day).map(|r| r.value).sum();
    let early: f64 = feedback.iter().filter(|r| r.start_ms < t0 + day).map(|r| r.value).sum();
    assert_eq!((early, late), (50.0, 50.0), "feedback counts each label when it arrived");
}
