//! `modelwatch serve` under hostile connections, against the real binary over real sockets:
//! slow request heads, too many connections from one address, idle keep-alive connections,
//! requests hyper or axum reject before any handler; and what a server started after the
//! writer went quiet exports and discovers.
//!
//! Clients connect from several loopback addresses (127.0.0.0/8 is all loopback on Linux)
//! so that the per-address cap sees several clients.

use crate::support::{Killed, free_port};
use modelwatch_agent::{Agent, Clock, Feature, ManualClock, Prediction, Timestamp};
use modelwatch_store::{Store, StoreConfig};
use serde_json::Value;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The server's `now` in these tests: 2025-11-26T06:00:00Z, whatever the hour they run at.
const NOW: i64 = 1_764_136_800_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// A scorer writing the store on a manual clock: model `pii`, variant `control`, segments
/// `email`, `phone` and `late`, one numeric feature `len`, 10 s intervals.
struct Scorer {
    store: Arc<Store>,
    clock: Arc<ManualClock>,
    agent: Agent,
}

impl Scorer {
    fn new(dir: &Path, from: i64) -> Scorer {
        let store =
            Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir) }).unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(from as u64)));
        let agent = Agent::builder("pii")
            .version("7")
            .variant("control")
            .instance("host-1")
            .segments(["email", "phone", "late"])
            .features([Feature::numeric("len")])
            .clock(clock.clone())
            .background_flush(false)
            .build(store.clone())
            .unwrap();
        agent.handle().model_loaded();
        Scorer { store, clock, agent }
    }

    /// Two predictions per interval in each of `segments` (features 3 and 5) until `to`.
    fn record_until(&self, to: i64, segments: &[&str]) {
        let h = self.agent.handle();
        while (self.clock.now().as_millis() as i64) < to {
            for s in segments {
                for len in [3.0, 5.0] {
                    h.record(&Prediction::new(*s, Duration::from_millis(4), 0.8).features(&[len]));
                }
            }
            self.clock.advance(Duration::from_secs(10));
            self.agent.flush_due().unwrap();
        }
    }

    /// Publishes what was recorded as Parquet files.
    fn publish(&self) {
        self.store.flush().unwrap();
    }
}

/// `modelwatch serve` on a free port; killed when dropped.
struct Server {
    _child: Killed,
    port: u16,
}

/// Starts the server over `data` at `now_ms`, with `flags`, and waits for `/healthz`.
async fn serve(data: &Path, now_ms: i64, flags: &[&str]) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .args(["--refresh", "200ms", "--now", &now_ms.to_string()])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { _child: Killed(child), port };
    let started = Instant::now();
    loop {
        if let Ok(mut s) = connect_from(1, port).await
            && let Ok(r) = exchange(&mut s, &get("/healthz")).await
            && r.status == 200
        {
            return server;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "modelwatch serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A connection to the server from `127.0.0.<host>`.
async fn connect_from(host: u8, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0)))?;
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: modelwatch\r\n\r\n").into_bytes()
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `message` of a JSON error answer, checked to be one.
    fn message(&self) -> String {
        assert_eq!(
            self.headers.get("content-type").map(String::as_str),
            Some("application/json"),
            "{self:?}"
        );
        let m = self.json()["message"].as_str().unwrap_or_else(|| panic!("no message: {self:?}")).to_string();
        assert!(!m.is_empty(), "{self:?}");
        m
    }
}

/// Sends `request` and reads one response (by its `content-length`, or to the close),
/// within 10 s.
async fn exchange(s: &mut TcpStream, request: &[u8]) -> std::io::Result<Response> {
    s.write_all(request).await?;
    tokio::time::timeout(Duration::from_secs(10), read_response(s))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response in 10 s"))?
}

async fn read_response(s: &mut TcpStream) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a response"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end..].to_vec();
    match headers.get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        Some(len) => {
            while body.len() < len {
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            s.read_to_end(&mut body).await?;
        }
    }
    Ok(Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Whether the server has closed `s` (end of stream or reset) within `within`; what it sent
/// before closing is skipped.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// 300 connections send part of a request head and hold it, spread over ten addresses so
/// that the per-address cap is not what stops them, and 20 more send a whole head and part
/// of its body. While they are open a new client is answered, `/healthz` within 1 s, and
/// the store refresh goes on (a segment written now is discovered); once the header-read
/// timeout has passed, the server has closed the slow heads, and answered the slow bodies
/// 408 in JSON.
#[test]
fn slow_request_heads_neither_starve_clients_nor_the_refresh_and_are_cut_off() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let scorer = Scorer::new(dir.path(), NOW - HOUR);
        scorer.record_until(NOW - 5 * MINUTE, &["email", "phone"]);
        scorer.publish();
        let server = serve(dir.path(), NOW, &["--header-read-timeout", "15s"]).await;

        let mut slow = Vec::new();
        for i in 0..300u16 {
            let mut s = connect_from(10 + (i % 10) as u8, server.port).await.unwrap();
            s.write_all(b"GET /api/v1/labels/segment/values HTTP/1.1\r\nHost: slow\r\n").await.unwrap();
            slow.push(s);
        }
        let mut slow_bodies = Vec::new();
        for _ in 0..20 {
            let mut s = connect_from(20, server.port).await.unwrap();
            let head = "POST /grafana/query HTTP/1.1\r\nHost: slow\r\nContent-Length: 100\r\n\r\n";
            s.write_all(format!("{head}{{\"range\":").as_bytes()).await.unwrap();
            slow_bodies.push(s);
        }

        for _ in 0..5 {
            let started = Instant::now();
            let r =
                exchange(&mut connect_from(2, server.port).await.unwrap(), &get("/healthz")).await.unwrap();
            let took = started.elapsed();
            assert_eq!(r.status, 200);
            assert!(took < Duration::from_secs(1), "/healthz took {took:?} with 300 slow connections open");
        }
        let values = "/api/v1/labels/segment/values?from=now-2h";
        let mut client = connect_from(2, server.port).await.unwrap();
        let r = exchange(&mut client, &get(values)).await.unwrap();
        assert_eq!((r.status, r.json()), (200, serde_json::json!(["email", "phone"])));
        // The refresher follows the writer meanwhile.
        scorer.record_until(NOW - 4 * MINUTE, &["late"]);
        scorer.publish();
        let started = Instant::now();
        loop {
            let r = exchange(&mut client, &get(values)).await.unwrap();
            if r.json().as_array().unwrap().iter().any(|v| v == "late") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the store refresh stopped: {:?}", r.json());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // All of that happened while every slow connection was held open.
        let mut byte = [0u8; 1];
        for (i, s) in slow.iter().chain(&slow_bodies).enumerate() {
            let open = matches!(s.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            assert!(open, "slow connection {i} was closed before the checks ended");
        }

        for (i, s) in slow.iter_mut().enumerate() {
            assert!(
                closed_by_server(s, Duration::from_secs(60)).await,
                "slow connection {i} still open a minute after its 15 s to send a head"
            );
        }
        for s in &mut slow_bodies {
            let r = tokio::time::timeout(Duration::from_secs(60), read_response(s))
                .await
                .expect("a slow body unanswered a minute after its 15 s")
                .unwrap();
            assert_eq!(r.status, 408, "{r:?}");
            assert!(r.message().contains("did not arrive within 15000 ms"), "{r:?}");
        }
        drop(scorer);
    });
}

/// With at most 6 connections, 4 per address: a fifth from one address is answered 429 and
/// closed while a client from another address, and the four held connections, are served;
/// a seventh connection in all is answered 503.
#[test]
fn connections_past_the_caps_are_refused_with_json_and_the_rest_are_served() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let scorer = Scorer::new(dir.path(), NOW - 10 * MINUTE);
        scorer.record_until(NOW - 5 * MINUTE, &["email"]);
        scorer.publish();
        let flags = ["--max-connections", "6", "--max-connections-per-address", "4"];
        let server = serve(dir.path(), NOW, &[&flags[..], &["--header-read-timeout", "60s"]].concat()).await;

        let mut held = Vec::new();
        for _ in 0..4 {
            let mut s = connect_from(3, server.port).await.unwrap();
            // Answered, so admitted; kept alive.
            assert_eq!(exchange(&mut s, &get("/healthz")).await.unwrap().status, 200);
            held.push(s);
        }
        let mut fifth = connect_from(3, server.port).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), read_response(&mut fifth))
            .await
            .expect("a fifth connection from one address was neither answered nor closed")
            .expect("a fifth connection from one address was closed without an answer");
        assert_eq!(r.status, 429, "{r:?}");
        let m = r.message();
        assert!(m.contains("127.0.0.3 holds 4 connections"), "{m}");
        assert!(closed_by_server(&mut fifth, Duration::from_secs(10)).await);

        // Within the caps: a client from another address, and the held connections.
        let close = b"GET /healthz HTTP/1.1\r\nHost: modelwatch\r\nConnection: close\r\n\r\n";
        let mut other = connect_from(4, server.port).await.unwrap();
        assert_eq!(exchange(&mut other, close).await.unwrap().status, 200);
        assert!(closed_by_server(&mut other, Duration::from_secs(10)).await);
        for s in &mut held {
            assert_eq!(
                exchange(s, &get("/api/v1/labels/segment/values?from=now-1h")).await.unwrap().status,
                200
            );
        }

        // Six in all: two more from a third address (retried while the fourth address's
        // connection is being let go), then a seventh is refused whoever asks.
        for _ in 0..2 {
            let started = Instant::now();
            let s = loop {
                let mut s = connect_from(5, server.port).await.unwrap();
                if exchange(&mut s, &get("/healthz")).await.is_ok_and(|r| r.status == 200) {
                    break s;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "a connection within the caps is refused"
                );
            };
            held.push(s);
        }
        let mut seventh = connect_from(6, server.port).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), read_response(&mut seventh))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.message().contains("holds 6 connections"), "{r:?}");
        assert!(r.headers.contains_key("retry-after"), "{r:?}");
    });
}

/// A kept-alive connection left idle is closed after `--idle-timeout` (1 s here), long
/// before the header-read timeout (30 s) would end it.
#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let scorer = Scorer::new(dir.path(), NOW - 10 * MINUTE);
        scorer.record_until(NOW - 5 * MINUTE, &["email"]);
        scorer.publish();
        let server = serve(dir.path(), NOW, &["--idle-timeout", "1s", "--header-read-timeout", "30s"]).await;
        let mut s = connect_from(7, server.port).await.unwrap();
        for _ in 0..2 {
            let r = exchange(&mut s, &get("/healthz")).await.unwrap();
            assert_eq!(r.status, 200);
            assert_ne!(r.headers.get("connection").map(String::as_str), Some("close"), "{r:?}");
        }
        assert!(
            closed_by_server(&mut s, Duration::from_secs(15)).await,
            "an idle kept-alive connection is still open 15 s after its 1 s idle timeout"
        );
    });
}

/// Every 4xx the server can answer before a handler runs is JSON with a message naming the
/// problem: a target too long (414), a head too large or with too many fields (431), a
/// request that does not parse (bytes outside ASCII in the path, a broken request line), a
/// path segment that is not UTF-8 once decoded, a body declared past the limit (413, at
/// once), a method the route does not take (405) and a CORS preflight.
#[test]
fn every_rejection_before_a_handler_is_json_naming_the_problem() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let scorer = Scorer::new(dir.path(), NOW - 10 * MINUTE);
        scorer.record_until(NOW - 5 * MINUTE, &["email"]);
        scorer.publish();
        let server = serve(dir.path(), NOW, &[]).await;
        let port = server.port;
        let ask = |request: Vec<u8>| async move {
            let mut s = connect_from(8, port).await.unwrap();
            exchange(&mut s, &request).await.unwrap()
        };

        let long = format!("/api/v1/query?query=count(latency)&match={}", "a".repeat(20_000));
        let r = ask(get(&long)).await;
        assert_eq!(r.status, 414, "{r:?}");
        assert!(r.message().contains("more than the 8192"), "{r:?}");

        let big = format!("GET /healthz HTTP/1.1\r\nHost: m\r\nX-Big: {}\r\n\r\n", "b".repeat(100_000));
        let r = ask(big.into_bytes()).await;
        assert_eq!(r.status, 431, "{r:?}");
        assert!(r.message().contains("larger than the 65536 bytes"), "{r:?}");
        let many: String = (0..200).map(|i| format!("X-Field-{i}: x\r\n")).collect();
        let r = ask(format!("GET /healthz HTTP/1.1\r\nHost: m\r\n{many}\r\n").into_bytes()).await;
        assert_eq!(r.status, 431, "{r:?}");
        assert!(r.message().contains("100 header fields"), "{r:?}");

        let r = ask(b"GET /api/v1/labels/s\xffgment/values HTTP/1.1\r\nHost: m\r\n\r\n".to_vec()).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(r.message().contains("percent-encode"), "{r:?}");
        let r = ask(b"GET /a b c HTTP/1.1\r\nHost: m\r\n\r\n".to_vec()).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(r.message().contains("does not parse as HTTP/1.1"), "{r:?}");
        let r = ask(get("/api/v1/labels/%FF%FEsegment/values")).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(r.message().contains("UTF-8"), "{r:?}");

        let r = ask(b"POST /grafana/query HTTP/1.1\r\nHost: m\r\nContent-Length: 5000000\r\n\r\n{".to_vec()).await;
        assert_eq!(r.status, 413, "{r:?}");
        assert!(r.message().contains("5000000 bytes") && r.message().contains("1048576"), "{r:?}");

        let r = ask(b"DELETE /api/v1/query HTTP/1.1\r\nHost: m\r\n\r\n".to_vec()).await;
        assert_eq!(r.status, 405, "{r:?}");
        assert!(r.message().contains("DELETE /api/v1/query: this endpoint takes GET"), "{r:?}");
        assert!(r.headers.get("allow").is_some_and(|a| a.contains("GET")), "{r:?}");
        let preflight = b"OPTIONS /grafana/query HTTP/1.1\r\nHost: m\r\nOrigin: http://grafana.example\r\n\
                          Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n";
        let r = ask(preflight.to_vec()).await;
        assert_eq!(r.status, 405, "{r:?}");
        assert!(r.message().contains("no cross-origin (CORS) preflight"), "{r:?}");
        assert!(r.message().contains("/grafana/query takes POST"), "{r:?}");

        let r = ask(get("/no/such/route")).await;
        assert_eq!(r.status, 404, "{r:?}");
        r.message();
    });
}

/// A server started ten minutes after the writer's last interval still exports the last
/// gauges (model loaded, a feature's mean) and, per model and variant, the time of that
/// interval to alert on; its counters start from nothing.
#[test]
fn metrics_of_a_server_started_after_the_writer_went_idle_show_the_last_gauges() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let scorer = Scorer::new(dir.path(), NOW - 30 * MINUTE);
        let last_end = NOW - 10 * MINUTE;
        scorer.record_until(last_end, &["email", "phone"]);
        scorer.publish();
        drop(scorer);
        let server = serve(dir.path(), NOW, &[]).await;
        let mut s = connect_from(9, server.port).await.unwrap();
        let r = exchange(&mut s, &get("/metrics")).await.unwrap();
        assert_eq!(r.status, 200);
        let text = r.body;
        let value = |series: &str| -> Option<f64> {
            text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        };
        let labels = r#"model="pii",replica="host-1",segment="",variant="control",version="7""#;
        assert_eq!(value(&format!("modelwatch_model_loaded{{{labels}}}")), Some(1.0), "{text}");
        let feature = r#"{feature="len",model="pii",segment="email",variant="control",version="7"}"#;
        assert_eq!(value(&format!("modelwatch_feature_mean{feature}")), Some(4.0), "{text}");
        assert_eq!(
            value(r#"modelwatch_last_interval_timestamp_seconds{model="pii",variant="control"}"#),
            Some(last_end as f64 / 1e3),
            "{text}"
        );
        assert!(text.contains("# TYPE modelwatch_last_interval_timestamp_seconds gauge"), "{text}");
        // Counters count what arrives from five minutes before the start: nothing here.
        assert!(!text.contains("modelwatch_predictions_total"), "{text}");
    });
}

/// Roll-ups made twenty minutes into an hour cover that hour; a segment whose only rows
/// are raw rows written after them, ten minutes later, is listed by every discovery route:
/// REST label values, Grafana's tag values and its variables.
#[test]
fn discovery_lists_a_label_value_found_only_in_raw_rows_after_the_last_roll_up() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let scorer = Scorer::new(dir.path(), NOW - 2 * HOUR);
        let rolled_up_at = NOW - 40 * MINUTE;
        scorer.record_until(rolled_up_at, &["email"]);
        scorer.publish();
        scorer.store.maintain(rolled_up_at).unwrap();
        scorer.record_until(NOW - 30 * MINUTE, &["email"]);
        scorer.record_until(NOW - 20 * MINUTE, &["email", "late"]);
        scorer.publish();
        drop(scorer);
        let server = serve(dir.path(), NOW, &[]).await;
        let mut s = connect_from(11, server.port).await.unwrap();

        let r = exchange(&mut s, &get("/api/v1/labels/segment/values?from=now-3h")).await.unwrap();
        assert_eq!((r.status, r.json()), (200, serde_json::json!(["email", "late"])));
        let post = |path: &str, body: &str| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        };
        let r = exchange(&mut s, &post("/grafana/tag-values", r#"{"key":"segment"}"#)).await.unwrap();
        assert_eq!((r.status, r.json()), (200, serde_json::json!([{ "text": "email" }, { "text": "late" }])));
        let r = exchange(&mut s, &post("/grafana/variable", r#"{"payload":{"target":"segments"}}"#)).await.unwrap();
        let values = r.json();
        let values: Vec<&str> = values.as_array().unwrap().iter().filter_map(|v| v["__value"].as_str()).collect();
        assert_eq!(values, ["email", "late"]);
    });
}
