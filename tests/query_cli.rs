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

#[test]
fn drift_quality_and_baselines_find_the_demos_drift_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let o = modelwatch(&["demo", "--days", "2", "--data", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The demo's summary names the drifting features and the detector's alarm.
    let summary = stdout(&o);
    assert!(summary.contains("doc_length (wasserstein_norm") && summary.contains("CUSUM"), "{summary}");
    // And the triggers fire on it, with their evidence.
    assert!(
        summary.contains("retraining event pii-confidence-") && summary.contains("evidence:"),
        "{summary}"
    );
    let h = modelwatch(&["triggers", "history", "--data", d, "--format", "json"]);
    let history: serde_json::Value = serde_json::from_str(&stdout(&h)).unwrap();
    assert_eq!(history[0]["event"]["reasons"][0]["trigger"], "drift", "{history}");
    let st = modelwatch(&["triggers", "status", "--data", d]);
    assert!(st.status.success(), "{}", stderr(&st));
    for line in
        ["labels ", "degradation ", "schedule ", "drift ", "cool-down ", "unacknowledged events: none"]
    {
        assert!(stdout(&st).contains(line), "{line:?} in {}", stdout(&st));
    }

    // One simulated day: the drift starts 8 h before the end.
    let j = modelwatch(&[
        "drift",
        "--reference",
        "now-25h..now-9h",
        "--current",
        "7h",
        "--data",
        d,
        "--format",
        "json",
    ]);
    assert!(j.status.success(), "{}", stderr(&j));
    let v: serde_json::Value = serde_json::from_str(&stdout(&j)).unwrap();
    let verdict = |feature: &str, statistic: &str| -> String {
        v["statistics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["feature"] == feature && r["statistic"] == statistic)
            .unwrap_or_else(|| panic!("{feature} {statistic}"))["verdict"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(verdict("doc_length", "wasserstein_norm"), "drift");
    assert_eq!(verdict("confidence", "wasserstein_norm"), "drift");
    assert_eq!(verdict("char_entropy", "wasserstein_norm"), "ok");
    assert_eq!(verdict("language", "js"), "ok");
    // Sorted by severity: every drift row before every ok row.
    let verdicts: Vec<&str> =
        v["statistics"].as_array().unwrap().iter().map(|r| r["verdict"].as_str().unwrap()).collect();
    assert!(verdicts.windows(2).all(|w| !(w[0] == "ok" && w[1] == "drift")), "{verdicts:?}");

    // A saved baseline answers like its range.
    let s = modelwatch(&["baseline", "save", "--name", "before", "--range", "now-49h..now-17h", "--data", d]);
    assert!(s.status.success(), "{}", stderr(&s));
    let b =
        modelwatch(&["drift", "--reference", "before", "--current", "7h", "--data", d, "--format", "csv"]);
    assert!(b.status.success(), "{}", stderr(&b));
    assert!(
        stdout(&b).lines().any(|l| l.starts_with("doc_length,wasserstein_norm,") && l.contains(",drift,")),
        "{}",
        stdout(&b)
    );
    let t = modelwatch(&["drift", "--reference", "before", "--data", d]);
    assert!(stdout(&t).contains("dataset drift"), "{}", stdout(&t));
    let missing = modelwatch(&["drift", "--reference", "nosuch", "--data", d]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no baseline named \"nosuch\""), "{}", stderr(&missing));

    // Quality per segment: realised and estimated side by side.
    let q = modelwatch(&["quality", "--since", "1d", "--by", "segment", "--data", d, "--format", "json"]);
    assert!(q.status.success(), "{}", stderr(&q));
    let v: serde_json::Value = serde_json::from_str(&stdout(&q)).unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 6);
    for g in groups {
        assert!(
            g["realised"]["n"].as_f64().unwrap() > 0.0 && g["estimated"]["n"].as_f64().unwrap() > 0.0,
            "{g}"
        );
    }
}
