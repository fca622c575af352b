//! `modelwatch demo`, `query`, `drift`, `quality` and `baseline`: the main job and the
//! terminal window on it. Every demo here ends at a fixed time with a fixed seed and every
//! range is absolute (or relative to a fixed `--now`), so the results are the same at any
//! hour; the drift checks run with the demo ending at three hours of the day.

use crate::cli::{modelwatch, stderr, stdout};

const HOUR: i64 = 3_600_000;

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
}

/// Runs the demo into `data` for `days` ending at `end`, seed 7.
fn demo(data: &str, days: &str, end: &str) -> String {
    demo_with(data, days, end, &[])
}

fn demo_with(data: &str, days: &str, end: &str, extra: &[&str]) -> String {
    let mut args = vec!["demo", "--no-loop", "--days", days, "--end", end, "--seed", "7", "--data", data];
    args.extend_from_slice(extra);
    let o = modelwatch(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn the_demo_writes_a_drift_and_query_reads_it_as_table_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let end = "2026-11-29T12:00:00Z";
    // --replace empties a directory that holds something first.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("stray"), "x").unwrap();
    let out = demo_with(d, "1", end, &["--replace"]);
    assert!(!data.join("stray").exists());
    assert!(out.contains("mean digit_ratio, phone") && out.contains("modelwatch query"), "{out}");
    assert!(out.contains("modelwatch serve --data"), "the demo points at the server too: {out}");
    // A one-day run has no matured labels after the drift: it says so, not "precision NaN".
    assert!(!out.contains("NaN") && out.contains("no labels yet"), "{out}");
    assert!(out.contains(&format!("--to {end}")), "a demo with --end points at its own window: {out}");
    // Without --replace the demo never mixes its history into existing data ...
    let again = modelwatch(&["demo", "--days", "1", "--end", end, "--data", d]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already holds data") && stderr(&again).contains("--replace"),
        "{}",
        stderr(&again)
    );
    // ... and with it, not while a trigger engine holds the directory.
    let lock = std::fs::OpenOptions::new().write(true).open(data.join("triggers/lock")).unwrap();
    lock.try_lock().unwrap();
    let held = modelwatch(&["demo", "--days", "1", "--end", end, "--data", d, "--replace"]);
    assert_eq!(held.status.code(), Some(1));
    assert!(stderr(&held).contains("trigger engine"), "{}", stderr(&held));
    drop(lock);
    let bad = modelwatch(&["demo", "--days", "0", "--data", d]);
    assert_eq!(bad.status.code(), Some(2), "--days 0: {}", stderr(&bad));
    let bad = modelwatch(&["demo", "--end", "1970-01-02T00:00:00Z", "--data", d, "--replace"]);
    assert_eq!(bad.status.code(), Some(2), "three days before 1970-01-02: {}", stderr(&bad));

    // Latency in the table is in milliseconds, with the unit in the header.
    let t = modelwatch(&[
        "query",
        "p95(latency) by (variant)",
        "--range",
        &format!("{}..{end}", iso(ms(end) - 24 * HOUR)),
        "--step",
        "6h",
        "--data",
        d,
    ]);
    assert!(t.status.success(), "{}", stderr(&t));
    let table = stdout(&t);
    assert!(table.contains("variant=canary (ms)") && table.contains("variant=control (ms)"), "{table}");
    let p95_ms: Vec<f64> = table
        .lines()
        .filter(|l| l.contains("2026-11-2"))
        .flat_map(|l| l.split('|').skip(2).filter_map(|c| c.trim().parse::<f64>().ok()).collect::<Vec<_>>())
        .collect();
    assert!(!p95_ms.is_empty() && p95_ms.iter().all(|&v| (2.0..30.0).contains(&v)), "p95 in ms: {p95_ms:?}");

    let json = |expr: &str, extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["query", expr, "--data", d, "--format", "json", "--now", end];
        args.extend_from_slice(extra);
        let o = modelwatch(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let v = json("count(latency) by (segment)", &["--since", "1d", "--step", "1d"]);
    let series = v.as_array().unwrap();
    assert_eq!(series.len(), 6, "six PII categories");
    assert_eq!(series[0]["unit"], "", "counts have no unit: {}", series[0]);
    let predictions: f64 =
        series.iter().flat_map(|s| s["points"].as_array().unwrap()).map(|p| p[1].as_f64().unwrap()).sum();
    let sv = json("sum(predictions)", &["--since", "1d", "--step", "1d"]);
    let counted: f64 = sv[0]["points"].as_array().unwrap().iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert_eq!(predictions, counted, "latency counts equal the prediction counters");
    // JSON keeps the stored unit and names it.
    let lat = json("p95(latency)", &["--from", "now-6h", "--to", "now", "--step", "6h"]);
    assert_eq!(lat[0]["unit"], "ns", "{lat}");
    let ns = lat[0]["points"][0][1].as_f64().unwrap();
    assert!((2e6..3e7).contains(&ns), "{ns} ns");
    // --from now-6h --to now is the same window as --range FROM..TO with the times written out.
    let abs =
        json("p95(latency)", &["--range", &format!("{}..{end}", iso(ms(end) - 6 * HOUR)), "--step", "6h"]);
    assert_eq!(lat, abs);

    let c = modelwatch(&[
        "query",
        r#"mean(feature{feature="digit_ratio"}) by (segment)"#,
        "--from",
        &iso(ms(end) - 24 * HOUR),
        "--to",
        end,
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
    let c = modelwatch(&[
        "query",
        "p50(latency)",
        "--since",
        "1d",
        "--now",
        end,
        "--step",
        "1d",
        "--data",
        d,
        "--format",
        "csv",
    ]);
    assert!(stdout(&c).starts_with("timestamp_ms,value_ns\n"), "{}", stdout(&c));
}

#[test]
fn a_bad_query_or_window_exits_2_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let o = modelwatch(&["query", "p95(latency{model=pii})", "--data", d]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("expected a quoted string at position 19") && err.contains("                  ^"),
        "{err}"
    );
    let o = modelwatch(&["query", "count(latency)", "--step", "5 minutes", "--data", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--step"), "{}", stderr(&o));
    let o = modelwatch(&["query", "count(latency)", "--from", "yesterday", "--data", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--from") && stderr(&o).contains("\"yesterday\""), "{}", stderr(&o));
    let o = modelwatch(&["query", "count(latency)", "--since", "1h", "--range", "1h", "--data", d]);
    assert_eq!(o.status.code(), Some(2), "--since and --range exclude each other");
    let o = modelwatch(&["query", "count(latency)", "--data", "/nonexistent/mw"]);
    assert_eq!(o.status.code(), Some(1), "a data error is 1");
    for (args, flag) in [
        (vec!["quality", "--from", "yesterday"], "--from"),
        (vec!["drift", "--reference", "7d", "--current", "now..now-1h"], "--current"),
        (vec!["drift", "--reference", "7d", "--alpha", "NaN"], "--alpha"),
        (vec!["drift", "--reference", "7d", "--psi-bins", "0"], "--psi-bins"),
        (vec!["drift", "--reference", "7d", "--wasserstein=-1"], "--wasserstein"),
        (vec!["baseline", "save", "--name", "b", "--since", "99999w"], "--since"),
        (vec!["store", "compact", "--as-of", "now-99999999d"], "--as-of"),
        (vec!["query", "count(latency)", "--to=-9223372036854775808"], "--to"),
    ] {
        let mut a = args.clone();
        a.extend(["--data", d]);
        let o = modelwatch(&a);
        assert_eq!(o.status.code(), Some(2), "{args:?} is a usage error: {}", stderr(&o));
        assert!(stderr(&o).contains(flag), "{args:?} names {flag}: {}", stderr(&o));
    }
    let o = modelwatch(&["quality", "--now", "soon", "--data", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--now") && stderr(&o).contains("soon"), "{}", stderr(&o));
}

/// The drift, quality, baseline and trigger checks on a two-day demo ending at `end`
/// (seed 7): the drift starts two thirds in, 16 h before the end. (Two days, so that the
/// CUSUM detector has a steady level from the 32 hours of ten-minute values before it.)
fn drift_checks(end: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let summary = demo(d, "2", end);
    let (end_ms, drift_ms) = (ms(end) / 60_000 * 60_000, ms(end) / 60_000 * 60_000 - 16 * HOUR);
    let at = |what: &str| format!("demo ending {end}: {what}");
    // The summary names the drifting features and the detector's alarm ...
    assert!(
        summary.contains("doc_length (wasserstein_norm") && summary.contains("CUSUM"),
        "{}\n{summary}",
        at("summary")
    );
    // ... and the triggers fire on it, with their evidence.
    assert!(
        summary.contains("retraining event pii-confidence-") && summary.contains("evidence:"),
        "{}\n{summary}",
        at("events")
    );
    let h = modelwatch(&["triggers", "history", "--data", d, "--format", "json"]);
    let history: serde_json::Value = serde_json::from_str(&stdout(&h)).unwrap();
    assert_eq!(history[0]["event"]["reasons"][0]["trigger"], "drift", "{}: {history}", at("history"));
    let st = modelwatch(&["triggers", "status", "--data", d, "--now", end]);
    assert!(st.status.success(), "{}", stderr(&st));
    for line in
        ["labels ", "degradation ", "schedule ", "drift ", "cool-down ", "unacknowledged events: none"]
    {
        assert!(stdout(&st).contains(line), "{}: {line:?} in {}", at("status"), stdout(&st));
    }

    // Before the drift against the last 7 h, in absolute times.
    let reference = format!("{}..{}", iso(end_ms - 48 * HOUR), iso(drift_ms));
    let j = modelwatch(&[
        "drift",
        "--reference",
        &reference,
        "--from",
        &iso(end_ms - 7 * HOUR),
        "--to",
        end,
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
    assert_eq!(verdict("doc_length", "wasserstein_norm"), "drift", "{}", at("doc_length"));
    assert_eq!(verdict("char_entropy", "wasserstein_norm"), "ok", "{}", at("char_entropy"));
    assert_eq!(verdict("language", "js"), "ok", "{}", at("language"));
    // The model's confidence falls for phone numbers (its regex feature stops matching
    // them); over every segment the fall is diluted below the threshold.
    let phone = modelwatch(&[
        "drift",
        "--reference",
        &reference,
        "--from",
        &iso(end_ms - 7 * HOUR),
        "--to",
        end,
        "--segment",
        "phone",
        "--data",
        d,
        "--format",
        "csv",
    ]);
    assert!(
        stdout(&phone).lines().any(|l| l.starts_with("confidence,wasserstein_norm,") && l.contains(",drift")),
        "{}: {}",
        at("confidence of phone"),
        stdout(&phone)
    );
    // Sorted by severity: every drift row before every ok row.
    let verdicts: Vec<&str> =
        v["statistics"].as_array().unwrap().iter().map(|r| r["verdict"].as_str().unwrap()).collect();
    assert!(verdicts.windows(2).all(|w| !(w[0] == "ok" && w[1] == "drift")), "{verdicts:?}");
    // The same window written relative to a fixed --now, and as --current.
    let rel = modelwatch(&[
        "drift",
        "--reference",
        &reference,
        "--current",
        "now-7h..now",
        "--now",
        end,
        "--data",
        d,
        "--format",
        "json",
    ]);
    let rel: serde_json::Value = serde_json::from_str(&stdout(&rel)).unwrap();
    assert_eq!(rel["statistics"], v["statistics"], "{}", at("--current now-7h..now"));

    // A saved baseline answers like its range.
    let s = modelwatch(&["baseline", "save", "--name", "before", "--range", &reference, "--data", d]);
    assert!(s.status.success(), "{}", stderr(&s));
    let b = modelwatch(&[
        "drift",
        "--reference",
        "before",
        "--since",
        "7h",
        "--now",
        end,
        "--data",
        d,
        "--format",
        "csv",
    ]);
    assert!(b.status.success(), "{}", stderr(&b));
    assert!(
        stdout(&b).lines().any(|l| l.starts_with("doc_length,wasserstein_norm,") && l.contains(",drift,")),
        "{}",
        stdout(&b)
    );
    let l = modelwatch(&["baseline", "list", "--data", d, "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&l)).unwrap();
    assert_eq!(listed[0]["name"], "before");
    let t = modelwatch(&["drift", "--reference", "before", "--now", end, "--data", d]);
    assert!(stdout(&t).contains("dataset drift"), "{}", stdout(&t));
    let missing = modelwatch(&["drift", "--reference", "nosuch", "--data", d]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no baseline named \"nosuch\""), "{}", stderr(&missing));

    // Quality per segment, realised and estimated side by side, over the drifted hours.
    let q = modelwatch(&[
        "quality",
        "--from",
        &iso(drift_ms),
        "--to",
        end,
        "--by",
        "segment",
        "--data",
        d,
        "--format",
        "json",
    ]);
    assert!(q.status.success(), "{}", stderr(&q));
    let v: serde_json::Value = serde_json::from_str(&stdout(&q)).unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 6, "{}", at("quality"));
    for g in groups {
        // A segment's reference holds about 150 labels over 20 calibration bins: where a thin
        // bin holds much of the window, the estimate is refused and says why.
        let estimated = g["estimated"]["n"].as_f64().is_some_and(|n| n > 0.0);
        let refused = g["estimate_refused"].as_str().is_some_and(|r| r.contains("calibration bin"));
        assert!(g["realised"]["n"].as_f64().unwrap() > 0.0 && estimated != refused, "{}: {g}", at("quality"));
        assert!(g["predictions"].as_f64().unwrap() >= g["realised"]["n"].as_f64().unwrap(), "{g}");
    }
}

#[test]
fn drift_quality_and_baselines_find_the_demos_drift_at_every_hour_of_the_day() {
    for end in ["2026-11-29T00:30:00Z", "2026-11-29T04:10:00Z", "2026-11-29T23:50:00Z"] {
        drift_checks(end);
    }
}
