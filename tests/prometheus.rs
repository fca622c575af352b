//! `GET /metrics` scraped by a real Prometheus server (Debian's `prometheus`, installed by
//! scripts/test), checked through Prometheus' own HTTP API while a scorer keeps writing.

use crate::support::{Killed, free_port, http};
use modelwatch_agent::{Agent, ManualClock, Prediction, Timestamp};
use modelwatch_store::{Store, StoreConfig};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token `modelwatch serve` wants and Prometheus sends.
const TOKEN: &str = "scrape-s3cret";

fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    get_with(port, path, "")
}

/// `get` with extra header lines (each ending in CRLF).
fn get_with(port: u16, path: &str, headers: &str) -> std::io::Result<(u16, String)> {
    http(port, "GET", path, headers, "")
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of a PromQL query with one result (`None` while it has none).
fn promql(port: u16, q: &str) -> Option<f64> {
    let (status, body) = get(port, &format!("/api/v1/query?query={}", encode(q))).ok()?;
    assert_eq!(status, 200, "{q}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let result = v["data"]["result"].as_array()?;
    result.first().and_then(|r| r["value"][1].as_str()).and_then(|s| s.parse().ok())
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<String>) {
    let started = Instant::now();
    loop {
        let last = f();
        match last {
            None => return,
            Some(state) if started.elapsed() > timeout => panic!("timed out waiting for {what}: {state}"),
            Some(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn wait_value(port: u16, q: &str, expected: f64) {
    wait_for(&format!("{q} == {expected}"), Duration::from_secs(60), || match promql(port, q) {
        Some(v) if (v - expected).abs() < 1e-9 => None,
        other => Some(format!("Prometheus answers {other:?}")),
    });
}

#[test]
fn a_real_prometheus_scrapes_cumulative_counters_histograms_and_gauges() {
    let prometheus = std::env::var("MODELWATCH_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // A scorer writing 10 s intervals that ended a few minutes before the server's `now`
    // (fixed: a real Prometheus stamps its samples with its own clock, our values do not
    // depend on it).
    let writer = Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(&data) }).unwrap());
    let now = crate::serve::NOW as u64;
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis((now - 180_000) / 10_000 * 10_000)));
    let agent = Agent::builder("pii")
        .version("7")
        .variant("control")
        .segments(["email", "phone"])
        .clock(clock.clone())
        .background_flush(false)
        .build(writer.clone())
        .unwrap();
    agent.handle().model_loaded();
    // Latencies well inside Prometheus' buckets: 1.5 ms (le 0.0025), 3 ms (le 0.005), 20 ms
    // (le 0.025); confidences 0.35 (le 0.4) and 0.95 (le 1).
    let batch = |emails: u64, phones: u64| {
        let h = agent.handle();
        for i in 0..emails {
            let ms = if i % 2 == 0 { 1.5 } else { 3.0 };
            h.record(&Prediction::new("email", Duration::from_secs_f64(ms / 1e3), 0.95));
        }
        for _ in 0..phones {
            h.record(&Prediction::new("phone", Duration::from_millis(20), 0.35));
        }
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    };
    batch(40, 10);
    writer.flush().unwrap(); // the first batch in Parquet, the second will be in the WAL only

    let port = free_port();
    let serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["serve", "--data", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
            .args(["--refresh", "200ms", "--now", &crate::serve::NOW.to_string()])
            // As the README's scrape job: the server wants a token, Prometheus sends it.
            .env("MODELWATCH_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("modelwatch serve", Duration::from_secs(30), || match get(port, "/readyz") {
        Ok((200, _)) => None,
        other => Some(format!("{other:?}")),
    });
    assert_eq!(get(port, "/metrics").unwrap().0, 401);
    let (_, exposition) = get_with(port, "/metrics", &format!("authorization: bearer {TOKEN}\r\n")).unwrap();
    assert!(exposition.contains("# TYPE modelwatch_prediction_latency_seconds histogram"), "{exposition}");

    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    let token = dir.path().join("modelwatch.token");
    std::fs::write(&token, TOKEN).unwrap();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: modelwatch\n    \
             static_configs: [{{ targets: ['127.0.0.1:{port}'] }}]\n    \
             authorization: {{ type: Bearer, credentials_file: {} }}\n",
            token.display()
        ),
    )
    .unwrap();
    let prom = Command::new(&prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {prometheus:?} ({e}); scripts/test installs it (apt-get install prometheus)")
        });
    let _prom = Killed(prom);
    wait_for("Prometheus to be ready", Duration::from_secs(60), || match get(prom_port, "/-/ready") {
        Ok((200, _)) => None,
        other => Some(format!("{other:?}")),
    });

    wait_value(prom_port, "sum(modelwatch_predictions_total)", 50.0);
    wait_value(
        prom_port,
        r#"modelwatch_predictions_total{segment="email",model="pii",version="7",variant="control"}"#,
        40.0,
    );
    wait_value(prom_port, "sum(modelwatch_prediction_latency_seconds_count)", 50.0);
    wait_value(prom_port, r#"sum(modelwatch_prediction_latency_seconds_bucket{le="0.0025"})"#, 20.0);
    wait_value(prom_port, r#"sum(modelwatch_prediction_latency_seconds_bucket{le="0.005"})"#, 40.0);
    wait_value(prom_port, r#"sum(modelwatch_prediction_latency_seconds_bucket{le="0.025"})"#, 50.0);
    wait_value(prom_port, r#"sum(modelwatch_prediction_latency_seconds_bucket{le="+Inf"})"#, 50.0);
    wait_value(prom_port, r#"sum(modelwatch_prediction_confidence_bucket{le="0.4"})"#, 10.0);
    wait_value(prom_port, r#"modelwatch_model_loaded{model="pii"}"#, 1.0);
    let sum = promql(prom_port, "sum(modelwatch_prediction_latency_seconds_sum)").unwrap();
    assert!(
        (sum - (20.0 * 0.0015 + 20.0 * 0.003 + 10.0 * 0.02)).abs() < 1e-9,
        "exact latency sum, got {sum}"
    );
    // Confidence keeps bins, not a sum: within half a bin (0.0005) of each of the 50.
    let sum = promql(prom_port, "sum(modelwatch_prediction_confidence_sum)").unwrap();
    assert!((sum - (40.0 * 0.95 + 10.0 * 0.35)).abs() <= 50.0 * 0.0005 + 1e-9, "confidence sum, got {sum}");

    // The scorer goes on: counters keep adding up the new intervals.
    batch(6, 4);
    batch(0, 5);
    wait_value(prom_port, "sum(modelwatch_predictions_total)", 65.0);
    wait_value(prom_port, r#"modelwatch_predictions_total{segment="phone"}"#, 19.0);
    wait_value(prom_port, r#"sum(modelwatch_prediction_latency_seconds_bucket{le="0.025"})"#, 65.0);
    drop(serve);
    drop(agent);
}
