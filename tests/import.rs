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
