//! `modelwatch serve` as the real binary, over real sockets, under the requests an attacker
//! (or a badly built dashboard) sends: thousands of targets, thousands of regex filters,
//! work past the time limit. Each test asserts that the server refuses or bounds the
//! request and that `/healthz` keeps answering while it is in flight.

use crate::serve::{NOW, fixture, grafana_query, target};
use crate::support::{Killed, free_port, http};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The server process, killed when the test ends.
struct Server {
    child: Killed,
    port: u16,
}

impl Server {
    fn start(data: &std::path::Path, flags: &[&str]) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["serve", "--data", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
            .args(["--now", &NOW.to_string()])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child: Killed(child), port };
        let started = Instant::now();
        while server.request("GET", "/readyz", "").map(|r| r.0).ok() != Some(200) {
            assert!(started.elapsed() < Duration::from_secs(30), "the server did not get ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// One HTTP/1.0 request: status and body.
    fn request(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        http(self.port, method, path, "", body)
    }

    fn query(&self, body: &str) -> (u16, Value) {
        let (status, text) = self.request("POST", "/grafana/query", body).unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {}", &text[..text.len().min(300)])),
        )
    }

    /// Resident memory, bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    /// Polls `/healthz` until `done`, returning the slowest answer.
    fn slowest_health_while(&self, done: impl Fn() -> bool) -> Duration {
        let mut slowest = Duration::ZERO;
        while !done() {
            let t = Instant::now();
            let (status, _) = self.request("GET", "/healthz", "").unwrap();
            assert_eq!(status, 200);
            slowest = slowest.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        slowest
    }
}

/// Runs `requests` at once on their own threads while `/healthz` is polled; returns every
/// answer and the slowest health check.
fn while_polling(server: &Server, bodies: Vec<String>) -> (Vec<(u16, Value)>, Duration) {
    std::thread::scope(|s| {
        let handles: Vec<_> = bodies.into_iter().map(|b| s.spawn(move || server.query(&b))).collect();
        let slowest = server.slowest_health_while(|| handles.iter().all(|h| h.is_finished()));
        (handles.into_iter().map(|h| h.join().unwrap()).collect(), slowest)
    })
}

#[test]
fn requests_of_1500_targets_or_too_many_points_together_are_refused_and_leave_no_memory_behind() {
    let f = fixture();
    let server = Server::start(f.dir.path(), &["--max-points", "50000"]);
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    let before = server.rss();
    // 1,500 distinct targets (an 88 KB body): refused whole, before any is evaluated.
    let many: Vec<String> = (0..3)
        .map(|r| {
            let targets: Vec<Value> = (0..1_500)
                .map(|i| {
                    target(
                        &format!("T{i}"),
                        &format!("p{:02}(latency{{segment=\"s{r}-{i}\"}})", 1 + i % 99),
                        json!({}),
                    )
                })
                .collect();
            grafana_query(from, to, 60_000, 1_000, Value::Array(targets), json!({}))
        })
        .collect();
    // 100 targets (the most allowed) of 10 s windows by variant and segment: each alone fits
    // (1,440 points), together they are 144,000.
    let dense: Vec<String> = (0..3)
        .map(|r| {
            let targets: Vec<Value> = (0..100)
                .map(|i| {
                    target(
                        &format!("D{i}"),
                        &format!("p{:02}(latency) by (variant, segment)", 1 + (i + r) % 99),
                        json!({}),
                    )
                })
                .collect();
            grafana_query(from, to, 1_000, 100_000, Value::Array(targets), json!({}))
        })
        .collect();
    let (answers, slowest) = while_polling(&server, many.into_iter().chain(dense).collect());
    for (i, (status, v)) in answers.iter().enumerate() {
        assert_eq!(*status, 422, "request {i}: {}", short(v));
        let m = v["message"].as_str().unwrap();
        // The dense requests are refused either by the estimate before evaluation ("need more
        // than its limits") or, when the estimate fits, by the points summed as the targets
        // return ("return N points together, at most 50000"): which one depends on what the
        // server's series cache holds when the request arrives (seen in CI); both refuse the
        // request whole by its summed points.
        let ok = if i < 3 {
            m.contains("1500 targets, at most 100")
        } else {
            m.contains("targets together need more than its limits")
                || (m.contains("points together") && m.contains("at most 50000"))
        };
        assert!(ok, "request {i}: {m}");
    }
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?} while the requests ran");
    let growth = server.rss().saturating_sub(before);
    assert!(growth <= 150 << 20, "the server grew by {} MB", growth >> 20);
}

/// `n` regex filters that all keep `email`, each a different pattern to compile; `heavy`
/// ones take tens of milliseconds each (Unicode classes compile large), still within the
/// size limit.
fn regex_filters(n: usize, heavy: bool) -> Vec<Value> {
    let class = if heavy { "\\w{1,3}" } else { "[a-z]{1,8}" };
    (0..n)
        .map(|i| json!({ "key": "segment", "operator": "=~", "value": format!("(e|x{i}){class}(mail|phone){{0,3}}.*") }))
        .collect()
}

#[test]
fn ten_thousand_regex_filters_are_refused_and_a_hundred_compile_off_the_async_workers() {
    let f = fixture();
    let server = Server::start(f.dir.path(), &[]);
    let body = |filters: Vec<Value>| {
        grafana_query(
            f.t0,
            f.t0 + 3_600_000,
            60_000,
            1_000,
            json!([target("A", "p95(latency) by (segment)", json!({}))]),
            json!({ "filters": filters }),
        )
    };
    let (many, hundred) = (body(regex_filters(10_000, false)), body(regex_filters(100, true)));
    assert!(many.len() < 1 << 20, "{} bytes: within the body limit", many.len());
    let (answers, slowest) = while_polling(&server, vec![many.clone(), many.clone(), many.clone(), many]);
    for (status, v) in &answers {
        assert_eq!(*status, 422, "{}", short(v));
        assert!(v["message"].as_str().unwrap().contains("10000 ad hoc filters, at most 100"), "{}", short(v));
    }
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?} while 10,000 filters were refused");
    // A hundred (the most allowed) compile and apply on blocking threads.
    let (answers, slowest) = while_polling(&server, vec![hundred; 4]);
    for (status, v) in &answers {
        // Answered (every filter keeps `email`), or refused at the time limit, as JSON.
        assert!(*status == 200 || *status == 503, "{status}: {}", short(v));
        if *status == 200 {
            assert_eq!(v.as_array().unwrap().len(), 1, "{}", short(v));
            assert_eq!(v[0]["name"], "segment=email");
        }
    }
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?} while the filters compiled");
    // A pattern that would compile to megabytes is refused, not compiled.
    let (status, v) =
        server.query(&body(vec![json!({ "key": "segment", "operator": "=~", "value": "\\w{200}" })]));
    assert_eq!(status, 400, "{}", short(&v));
    assert!(v["message"].as_str().unwrap().contains("size limit"), "{}", short(&v));
}

#[test]
fn timed_out_requests_hold_their_slots_until_their_work_stops() {
    let f = fixture();
    // One evaluation at a time, half a second each.
    let server = Server::start(f.dir.path(), &["--max-concurrent", "1", "--timeout", "500ms"]);
    let filters = regex_filters(100, true);
    let bodies: Vec<String> = (0..6)
        .map(|r| {
            grafana_query(
                f.t0,
                f.t0 + 3_600_000 + r * 60_000,
                10_000,
                1_000,
                json!([target("A", "p95(latency) by (segment)", json!({}))]),
                json!({ "filters": filters }),
            )
        })
        .collect();
    let (answers, slowest) = while_polling(&server, bodies);
    assert!(
        answers.iter().any(|(s, _)| *s == 503),
        "at least one request ran past 500 ms (or waited past it)"
    );
    for (status, v) in &answers {
        assert!(*status == 200 || *status == 503, "{status}: {}", short(v));
        if *status == 503 {
            assert!(v["message"].as_str().unwrap().contains("ran past the server's 0.5 s limit"), "{v}");
        }
    }
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?}");
    // However many timed out, never more than one evaluation ran at once, and none is left.
    let started = Instant::now();
    loop {
        let (_, text) = server.request("GET", "/api/v1/status/runtime", "").unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["evaluations_peak"], 1, "{v}");
        if v["evaluations_running"] == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "work still running: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The start of an answer, for a failure message.
fn short(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}
