//! Load benchmark of `modelwatch serve` on loopback: 50 concurrent keep-alive clients POST
//! a 24 h Grafana panel (`/grafana/query`: latency p50, p95 and p99 by variant, as the ML
//! System Health dashboard asks) over the demo's three days, for `MODELWATCH_LOAD_SECS`
//! seconds (default 15) each:
//!
//! - `dashboard`: the default server (answers cached per query and store generation): many
//!   people watching the same dashboard.
//! - `uncached`: the cache off and every request distinct (the panel's 24 h range moved back
//!   by a whole step, 2 minutes, per request, up to a day): every request evaluated by the
//!   engine, as for 50 different panels or a refresh after new data arrived.
//!
//! Client and server share this machine's cores. Prints a Markdown table for BENCHMARKS.md.
//!
//! Run: `cargo bench --bench serve_load`.
#![allow(missing_docs)]

use hdrhistogram::Histogram;
use modelwatch::serve::{AppState, ServeConfig, router};
use modelwatch_store::{Store, StoreConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 50;
/// Targets (queries evaluated) per request: p50, p95 and p99.
const TARGETS: u64 = 3;
/// The demo's end and the server's `now`: 2026-11-26T12:00:00Z (fixed, so every run reads
/// the same data).
const NOW: i64 = 1_795_694_400_000;

fn body(now_ms: i64) -> String {
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let target = |r: &str, stat: &str| {
        serde_json::json!({"refId": r, "datasource": {"type": "simpod-json-datasource", "uid": "modelwatch"},
            "editorMode": "builder", "target": "latency",
            "payload": {"model": "pii-confidence", "variant": "(control|canary)", "statistic": stat, "by": "variant"}})
    };
    serde_json::json!({
        "app": "dashboard", "requestId": "SQR1", "timezone": "browser", "panelId": 2,
        "range": {"from": iso(now_ms - 86_400_000), "to": iso(now_ms), "raw": {"from": "now-24h", "to": "now"}},
        "interval": "1m", "intervalMs": 60_000, "maxDataPoints": 1_000,
        "targets": [target("A", "p50"), target("B", "p95"), target("C", "p99")],
        "filters": []
    })
    .to_string()
}

/// The request for the panel ending at `now_ms`.
fn request(now_ms: i64) -> Vec<u8> {
    let body = body(now_ms);
    format!(
        "POST /grafana/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         User-Agent: Grafana/11.3.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a client sends next: the same request, or each time another one.
type Requests = Arc<dyn Fn() -> Arc<Vec<u8>> + Send + Sync>;

/// One keep-alive client: sends the request, reads the response by its Content-Length.
async fn client(
    port: u16,
    requests: Requests,
    until: Instant,
    warm_until: Instant,
) -> (Histogram<u64>, u64, u64) {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut ok, mut errors) = (0, 0);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = Vec::with_capacity(1 << 20);
    while Instant::now() < until {
        let request = requests();
        let started = Instant::now();
        stream.write_all(&request).await.unwrap();
        buf.clear();
        let (status, total) = loop {
            let mut chunk = [0u8; 65_536];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                break (status, end + 4 + len);
            }
        };
        while buf.len() < total {
            let mut chunk = [0u8; 65_536];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
        if started < warm_until {
            continue;
        }
        h.record(started.elapsed().as_micros() as u64).unwrap();
        if status == 200 { ok += 1 } else { errors += 1 }
    }
    (h, ok, errors)
}

fn scenario(name: &str, data: &std::path::Path, cache: bool, distinct: bool, secs: u64) -> String {
    let store = Arc::new(Store::open_read_only(StoreConfig::new(data)).unwrap());
    let clock = Arc::new(modelwatch::ManualClock::new(modelwatch::Timestamp::from_millis(NOW as u64)));
    let state = AppState::new(store, ServeConfig { cache_answers: cache, ..ServeConfig::default() }, clock);
    let server = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    server.spawn(async move { axum::serve(listener, router(state)).await.unwrap() });

    let requests: Requests = if distinct {
        // A step (2 min) further back per request, cycling over a day: each range its own.
        let next = AtomicU64::new(0);
        Arc::new(move || {
            Arc::new(request(NOW - (next.fetch_add(1, Ordering::Relaxed) % 720) as i64 * 120_000))
        })
    } else {
        let same = Arc::new(request(NOW));
        Arc::new(move || same.clone())
    };
    let clients = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let started = Instant::now();
    let warm_until = started + Duration::from_secs(2);
    let until = warm_until + Duration::from_secs(secs);
    let results = clients.block_on(async {
        let tasks: Vec<_> =
            (0..CLIENTS).map(|_| tokio::spawn(client(port, requests.clone(), until, warm_until))).collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut ok, mut errors) = (0, 0);
    for (hh, o, e) in results {
        h.add(hh).unwrap();
        ok += o;
        errors += e;
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
    format!(
        "| {name} | {CLIENTS} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {errors} |",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1e3,
        ok as f64 / secs as f64,
        (ok * TARGETS) as f64 / secs as f64
    )
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench binaries without.
    if !std::env::args().any(|a| a == "--bench") {
        println!("serve_load bench: run with `cargo bench --bench serve_load`");
        return;
    }
    let secs: u64 = std::env::var("MODELWATCH_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["demo", "--days", "3", "--end", &NOW.to_string(), "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    println!(
        "| scenario | clients | p50 ms | p90 ms | p99 ms | max ms | requests/s | evaluations/s | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!("{}", scenario("dashboard (answers cached)", &data, true, false, secs));
    println!("{}", scenario("uncached (cache off, every request distinct)", &data, false, true, secs));
}
