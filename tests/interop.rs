//! Interop: pyarrow and DuckDB read every table without our code, and DuckDB's SQL over the
//! Hive partitions agrees with our read API. Needs `MODELWATCH_PYTHON`, a Python with
//! pyarrow and duckdb (`scripts/test` makes the virtualenv); fails without it.

use modelwatch::agent::{Feature, ManualClock, Timestamp};
use modelwatch::{Agent, Prediction};
use modelwatch_store::{EventRow, ReadRequest, Resolution, Rows, Store, StoreConfig, Table};
use std::sync::Arc;
use std::time::Duration;

fn python() -> String {
    std::env::var("MODELWATCH_PYTHON").expect(
        "MODELWATCH_PYTHON must name a Python with pyarrow and duckdb; run the tests through scripts/test, which installs them",
    )
}

#[test]
fn pyarrow_and_duckdb_read_every_table_and_agree_with_the_read_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Arc::new(
        // No background retention as of the real date over the fixed-date data.
        Store::open(StoreConfig { buffer_rows: 500, maintenance_every: None, ..StoreConfig::new(&data) })
            .unwrap(),
    );
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200 - 3_600)));
    let agent = Agent::builder("pii")
        .segments(["email", "phone"])
        .features([Feature::numeric("len"), Feature::categorical("lang", ["en", "de"])])
        .interval(Duration::from_secs(60))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    let h = agent.handle();
    // Two hours across midnight: two date partitions.
    for i in 0..120u64 {
        for j in 0..(3 + i % 5) {
            let seg = if j % 2 == 0 { "email" } else { "phone" };
            h.record(
                &Prediction::new(seg, Duration::from_micros(200 + i * 7 + j), 0.6)
                    .features(&[(i + j) as f64, (j % 2) as f64]),
            );
        }
        h.feedback("email", 0.8, i % 3 == 0);
        clock.advance(Duration::from_secs(60));
        agent.flush_due().unwrap();
    }
    agent.shutdown().unwrap();
    store
        .append(Rows {
            events: vec![EventRow {
                time_ms: 1_764_115_200_000,
                model: "pii".into(),
                version: "unversioned".into(),
                variant: "control".into(),
                kind: "model_loaded".into(),
                message: "interop test".into(),
            }],
            ..Default::default()
        })
        .unwrap();
    store.flush().unwrap();
    store.maintain(1_764_115_200_000).unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/read_tables.py");
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/storage-format.md");
    let o =
        std::process::Command::new(python()).args([script, data.to_str().unwrap(), docs]).output().unwrap();
    assert!(o.status.success(), "python failed: {}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    let all = |t| store.read(&ReadRequest::new(t, 0, i64::MAX, Resolution::Raw)).unwrap();
    let rows_at = |t| -> usize {
        Resolution::ALL.iter().map(|&r| store.read(&ReadRequest::new(t, 0, i64::MAX, r)).unwrap().len()).sum()
    };
    assert_eq!(
        v["pyarrow"]["distributions"]["rows"].as_u64().unwrap() as usize,
        rows_at(Table::Distributions)
    );
    assert_eq!(v["pyarrow"]["scalars"]["rows"].as_u64().unwrap() as usize, rows_at(Table::Scalars));
    assert_eq!(v["pyarrow"]["events"]["rows"], 1);
    let predictions: f64 = all(Table::Scalars)
        .scalars
        .iter()
        .filter(|r| &*r.series.metric == "predictions")
        .map(|r| r.value)
        .sum();
    assert_eq!(v["duckdb"]["predictions_raw"].as_f64().unwrap(), predictions);
    let email: f64 = store
        .read(
            &ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw)
                .tag("metric", "predictions")
                .tag("segment", "email"),
        )
        .unwrap()
        .scalars
        .iter()
        .map(|r| r.value)
        .sum();
    assert_eq!(v["duckdb"]["predictions_by_segment"]["email"].as_f64().unwrap(), email);
    let latency: u64 = all(Table::Distributions)
        .distributions
        .iter()
        .filter(|r| &*r.series.metric == "latency_ns")
        .map(|r| r.count)
        .sum();
    assert_eq!(v["duckdb"]["latency_count_raw"].as_f64().unwrap() as u64, latency);
    assert_eq!(v["duckdb"]["bucket_mismatches"], 0);

    // The documented SQL gives modelwatch's own answers: the p95 from the buckets of every
    // row added key by key (format 2 stores key deltas and no quantile columns), and means
    // from sums and counts (format 2 stores no latency mean).
    let latency: Vec<_> = all(Table::Distributions)
        .distributions
        .into_iter()
        .filter(|r| &*r.series.metric == "latency_ns")
        .collect();
    let variants: std::collections::BTreeSet<String> =
        latency.iter().map(|r| r.series.variant.to_string()).collect();
    assert!(!variants.is_empty());
    for variant in &variants {
        let rows: Vec<_> = latency.iter().filter(|r| &*r.series.variant == variant).collect();
        let merged = modelwatch_store::DistributionRow::merge_all(&rows).unwrap();
        let ours = merged.quantile(0.95).unwrap() / 1e6;
        assert_eq!(
            v["duckdb"]["p95_ms_by_variant"][variant].as_f64(),
            Some(ours),
            "{variant}: {}",
            v["duckdb"]
        );
    }
    let hours = v["duckdb"]["mean_ms_by_variant_hour"].as_array().unwrap();
    assert_eq!(hours.len(), 2 * variants.len(), "two hours across midnight");
    for h in hours {
        let (variant, hour) = (h[0].as_str().unwrap(), h[1].as_i64().unwrap());
        let rows: Vec<_> = latency
            .iter()
            .filter(|r| &*r.series.variant == variant && (hour..hour + 3_600_000).contains(&r.start_ms))
            .collect();
        let merged = modelwatch_store::DistributionRow::merge_all(&rows).unwrap();
        let ours = merged.mean.unwrap() / 1e6;
        let theirs = h[2].as_f64().unwrap();
        assert!(
            (theirs - ours).abs() <= 1e-12 * ours,
            "{variant} {hour}: DuckDB {theirs}, modelwatch {ours}"
        );
    }
    assert_eq!(v["duckdb"]["dates"], serde_json::json!(["2025-11-25", "2025-11-26"]));
    assert_eq!(v["duckdb"]["events"], 1);
}
