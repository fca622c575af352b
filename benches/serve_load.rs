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
//! Run: `cargo bench --bench serve_load` (`MODELWATCH_LOAD_ONLY=uncached`, `=dashboard` or
//! `=engine` for one part; `MODELWATCH_LOAD_SERVER=path/to/modelwatch` runs the uncached
//! scenario against that binary's `serve --cache-size 0` instead, to compare two builds
//! with the same clients).
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

/// A `modelwatch serve` process of another build (`MODELWATCH_LOAD_SERVER`, e.g. `main`'s
/// binary for a before-and-after pair), with its caches off (`--cache-size 0`), killed
/// when dropped.
struct External(std::process::Child);

impl Drop for External {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn external(binary: &str, data: &std::path::Path) -> (External, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(binary)
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .args(["--now", &NOW.to_string(), "--cache-size", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = External(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "{binary} serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

fn scenario(name: &str, data: &std::path::Path, cache: bool, distinct: bool, secs: u64) -> String {
    // Named threads: `perf report --sort comm` then tells the server's CPU from the clients'.
    let server =
        tokio::runtime::Builder::new_multi_thread().thread_name("serve").enable_all().build().unwrap();
    let mut _process = None;
    let port = match std::env::var("MODELWATCH_LOAD_SERVER") {
        Ok(binary) if !cache => {
            let (p, port) = external(&binary, data);
            _process = Some(p);
            port
        }
        _ => {
            let store = Arc::new(Store::open_read_only(StoreConfig::new(data)).unwrap());
            let clock =
                Arc::new(modelwatch::ManualClock::new(modelwatch::Timestamp::from_millis(NOW as u64)));
            let config = ServeConfig { cache_answers: cache, ..ServeConfig::default() };
            let state = AppState::new(store, config, clock);
            let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
            let port = listener.local_addr().unwrap().port();
            server.spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
            port
        }
    };

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
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load-client")
        .enable_all()
        .build()
        .unwrap();
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

/// The engine alone, on this thread: the uncached scenario's 720 distinct panels (p50,
/// p95, p99 of latency by variant over 24 h at a 2 min step), each evaluated as three runs
/// and as one shared evaluation ([`modelwatch::query::run_each`]). Prints the time per panel.
fn in_process(data: &std::path::Path) {
    use modelwatch::query::{Func, Limits, Range, parse, run, run_each};
    let store = Store::open_read_only(StoreConfig::new(data)).unwrap();
    let q = parse(r#"latency{model="pii-confidence",variant=~"(control|canary)"} by (variant)"#).unwrap();
    let funcs = [Func::Quantile(0.5), Func::Quantile(0.95), Func::Quantile(0.99)];
    let range = |k: i64| {
        let to = NOW - k * 120_000;
        Range { from_ms: to - 86_400_000, to_ms: to, step_ms: 120_000 }
    };
    // Warm: every file decoded once.
    for k in 0..720 {
        run_each(&store, &q, &funcs, range(k), Limits::default()).unwrap();
    }
    let started = Instant::now();
    for k in 0..720 {
        for f in &funcs {
            let q = modelwatch::query::Query { func: f.clone(), ..q.clone() };
            std::hint::black_box(run(&store, &q, range(k), Limits::default()).unwrap());
        }
    }
    let separate = started.elapsed().as_secs_f64() * 1e3 / 720.0;
    let started = Instant::now();
    for k in 0..720 {
        std::hint::black_box(run_each(&store, &q, &funcs, range(k), Limits::default()).unwrap());
    }
    let shared = started.elapsed().as_secs_f64() * 1e3 / 720.0;
    println!(
        "in-process, one thread, per panel of 3 targets: {separate:.3} ms as 3 runs, {shared:.3} ms shared"
    );
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
        .args([
            "demo",
            "--no-loop",
            "--days",
            "3",
            "--end",
            &NOW.to_string(),
            "--data",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    println!(
        "| scenario | clients | p50 ms | p90 ms | p99 ms | max ms | requests/s | evaluations/s | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // `MODELWATCH_LOAD_ONLY=uncached` (or `dashboard`) runs one scenario, e.g. under perf.
    let only = std::env::var("MODELWATCH_LOAD_ONLY").unwrap_or_default();
    if only.is_empty() || only == "engine" {
        in_process(&data);
    }
    if only.is_empty() || only == "dashboard" {
        println!("{}", scenario("dashboard (answers cached)", &data, true, false, secs));
    }
    if only.is_empty() || only == "uncached" {
        println!("{}", scenario("uncached (cache off, every request distinct)", &data, false, true, secs));
    }
}
