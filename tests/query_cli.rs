//! `modelwatch demo` and `modelwatch query`: the main job and the terminal window on it.

use crate::cli::{modelwatch, stderr, stdout};

#[test]
fn the_demo_writes_a_drift_and_query_reads_it_as_table_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let o = modelwatch(&["demo", "--days", "1", "--data", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("mean digit_ratio, phone") && out.contains("modelwatch query"), "{out}");
    assert!(out.contains("modelwatch serve --data"), "the demo points at the server too: {out}");

    let t = modelwatch(&["query", "p95(latency) by (variant)", "--since", "1d", "--step", "6h", "--data", d]);
    assert!(t.status.success(), "{}", stderr(&t));
    assert!(
        stdout(&t).contains("variant=canary") && stdout(&t).contains("variant=control"),
        "{}",
        stdout(&t)
    );

    let j = modelwatch(&[
        "query",
        "count(latency) by (segment)",
        "--since",
        "1d",
        "--step",
        "1d",
        "--data",
        d,
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&j)).unwrap();
    let series = v.as_array().unwrap();
    assert_eq!(series.len(), 6, "six PII categories");
    let predictions: f64 =
        series.iter().flat_map(|s| s["points"].as_array().unwrap()).map(|p| p[1].as_f64().unwrap()).sum();
    let scalar = modelwatch(&[
        "query",
        "sum(predictions)",
        "--since",
        "1d",
        "--step",
        "1d",
        "--data",
        d,
        "--format",
        "json",
    ]);
    let sv: serde_json::Value = serde_json::from_str(&stdout(&scalar)).unwrap();
    let counted: f64 = sv[0]["points"].as_array().unwrap().iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert_eq!(predictions, counted, "latency counts equal the prediction counters");

    let c = modelwatch(&[
        "query",
        r#"mean(feature{feature="digit_ratio"}) by (segment)"#,
        "--since",
        "1d",
        "--step",
        "1h",
        "--data",
        d,
        "--format",
        "csv",
    ]);
    let csv = stdout(&c);
    assert!(csv.starts_with("timestamp_ms,segment,value\n"), "{csv}");
    assert!(csv.lines().count() > 20);
}

#[test]
fn a_bad_query_exits_2_and_points_into_the_expression() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let d = dir.path().join("data");
    let o = modelwatch(&["query", "p95(latency{model=pii})", "--data", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("expected a quoted string at position 19") && err.contains("                  ^"),
        "{err}"
    );
    let o = modelwatch(&["query", "count(latency)", "--step", "5 minutes", "--data", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--step"), "{}", stderr(&o));
    let o = modelwatch(&["query", "count(latency)", "--data", "/nonexistent/mw"]);
    assert_eq!(o.status.code(), Some(1), "a data error is 1");
}
