//! The outbox and the sinks' hard cases, on a manual clock (`--now` for the CLI): a webhook
//! down for five minutes gets the event once when it is back, and `triggers history` shows
//! the retries; a failing command is retried, one that always fails is dead-lettered by
//! the attempt or the time budget; event IDs stay unique; a large event reaches a command
//! whole, a command that does not read is timed out and its whole process group killed; a
//! schedule fires although another trigger fails; a webhook signature carries its time and
//! a redirect is a failed attempt.

use super::{HOUR, T0, only, world};
use modelwatch::triggers::{
    CommandSink, EventSink, Evidence, ManualEvidence, Reason, RetrainEvent, TriggerError, WebhookSink,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request a [`Receiver`] took.
#[derive(Clone, Debug)]
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// A local HTTP server that records every request and answers each with `response`.
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, response: String) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Acquire) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                if let Some(r) = read_request(&mut s) {
                    // Recorded before the answer, so a client that has its answer sees it.
                    seen.lock().unwrap().push(r);
                }
                let _ = s.write_all(response.as_bytes());
            }
        });
        Receiver { port, requests, stop, thread: Some(thread) }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_request(s: &mut std::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let r = Request { head, body: Vec::new() };
        let len: usize = r.header("content-length").map_or(0, |v| v.parse().unwrap());
        if buf.len() >= end + 4 + len {
            return Some(Request { body: buf[end + 4..end + 4 + len].to_vec(), ..r });
        }
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// A port nobody listens on (for now).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `modelwatch --now <now> triggers <args> --config <config> --data <data>`.
fn triggers(now_ms: i64, args: &[&str], config: &Path, data: &Path) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["--now", &now_ms.to_string(), "triggers"])
        .args(args)
        .args(["--config", config.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .env("MODELWATCH_TEST_WEBHOOK_KEY", "k3y")
        .output()
        .unwrap();
    assert!(
        out.status.success() || out.status.code() == Some(3),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

const QUIET: &str = "[triggers]\ncooldown = \"1h\"\n[triggers.labels]\nenabled = false\n\
    [triggers.degradation]\nenabled = false\n[triggers.schedule]\nenabled = false\n[triggers.drift]\nenabled = false\n";

/// The history's deliveries of the only event, as JSON.
fn deliveries(config: &Path, data: &Path) -> Vec<Value> {
    let out = triggers(T0, &["history", "--format", "json"], config, data);
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    history[0]["deliveries"].as_array().unwrap().clone()
}

#[test]
fn a_webhook_down_for_five_minutes_gets_the_event_once_when_back_and_history_shows_the_retries() {
    let w = world();
    let port = closed_port();
    let config = w.dir.path().join("t.toml");
    std::fs::write(
        &config,
        format!(
            "{QUIET}[[triggers.sinks]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             secret_env = \"MODELWATCH_TEST_WEBHOOK_KEY\"\n"
        ),
    )
    .unwrap();
    let data = w.data();
    let fired = triggers(T0, &["fire", "--reason", "webhook test", "--format", "json"], &config, &data);
    let event: RetrainEvent = serde_json::from_slice(&fired.stdout).unwrap();
    // Backoff 30 s, 1 m, 2 m: attempts at 0 s, 60 s and 150 s fail; at 200 s none is due.
    for t in [60, 150, 200] {
        triggers(T0 + t * 1000, &["check"], &config, &data);
    }
    let pending = text(&triggers(T0 + 200_000, &["history"], &config, &data));
    let line = pending.lines().find(|l| l.contains("webhook http")).unwrap();
    assert!(
        line.contains("pending, 3 attempts, next attempt 2025-11-26T00:04:30Z; last error: "),
        "{pending}"
    );
    assert!(line.to_lowercase().contains("connection refused"), "{pending}");
    let server = Receiver::start(port, OK.into());
    triggers(T0 + 300_000, &["check"], &config, &data);
    triggers(T0 + 600_000, &["check"], &config, &data);
    let got = server.requests();
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(got[0].header("x-modelwatch-event").as_deref(), Some(event.id.as_str()));
    assert_eq!(serde_json::from_slice::<RetrainEvent>(&got[0].body).unwrap(), event);
    let t = (T0 + 300_000) / 1000;
    assert_eq!(got[0].header("x-modelwatch-signature").unwrap(), signature(b"k3y", t, &got[0].body));
    let done = text(&triggers(T0 + 600_000, &["history"], &config, &data));
    let line = done.lines().find(|l| l.contains("webhook http")).unwrap();
    assert!(line.contains(": delivered 2025-11-26T00:05:00Z (HTTP 200), 4 attempts; last error: "), "{done}");
    let d = &deliveries(&config, &data)[0];
    assert_eq!((d["state"].as_str(), d["attempts"].as_u64()), (Some("delivered"), Some(4)), "{d}");
    assert!(d["next_attempt_ms"].is_null() && d["last_error"].as_str().unwrap().contains("refused"), "{d}");
}

#[test]
fn a_failing_command_is_retried_and_one_that_always_fails_is_dead_lettered_by_count_or_time() {
    let w = world();
    let config = w.dir.path().join("t.toml");
    let counter = w.dir.path().join("counter");
    std::fs::write(
        &config,
        format!(
            "{QUIET}[triggers.delivery]\nmax_attempts = 4\nbackoff = \"30s\"\n\
             [[triggers.sinks]]\ntype = \"command\"\n\
             command = [\"sh\", \"-c\", \"n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; [ $n -ge 3 ]\"]\n\
             [[triggers.sinks]]\ntype = \"command\"\ncommand = [\"false\"]\n\
             [[triggers.sinks]]\ntype = \"command\"\ncommand = [\"/bin/sh\", \"-c\", \"exit 7\"]\n\
             max_attempts = 100\ngive_up_after = \"2m\"\n",
            counter.display()
        ),
    )
    .unwrap();
    let data = w.data();
    triggers(T0, &["fire", "--reason", "x"], &config, &data);
    // Attempts: 0 s, 30 s, 90 s (the counter's third: it succeeds), 210 s (the fourth and
    // last of `false`); `exit 7` ran out of time at 120 s. The check that gives up on them
    // says so and exits 1, for cron to mail.
    for t in [30, 90, 210, 450] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["--now", &(T0 + t * 1000).to_string(), "triggers", "check", "--config"])
            .arg(&config)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let gave_up = stderr.matches("gave up delivering").count();
        assert_eq!(
            (out.status.code(), gave_up),
            if t == 210 { (Some(1), 2) } else { (Some(0), 0) },
            "{t} s: {stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3", "three attempts, no more");
    let d = deliveries(&config, &data);
    let field = |i: usize, k: &str| d[i][k].clone();
    assert_eq!((field(0, "state"), field(0, "attempts")), ("delivered".into(), 3.into()), "{d:?}");
    assert_eq!((field(1, "state"), field(1, "attempts")), ("dead_lettered".into(), 4.into()), "{d:?}");
    assert_eq!(field(1, "last_error"), "exit 1");
    assert_eq!((field(2, "state"), field(2, "attempts")), ("dead_lettered".into(), 3.into()), "{d:?}");
    assert_eq!(field(2, "last_error"), "exit 7; no attempt left within 2m of the event");
    let history = text(&triggers(T0 + 450_000, &["history"], &config, &data));
    assert!(
        history.contains("command false #")
            && history.contains(
                ": DEAD-LETTERED after 4 attempts, the last 2025-11-26T00:03:30Z; last error: exit 1"
            ),
        "{history}"
    );
    let status = text(&triggers(T0 + 450_000, &["status"], &config, &data));
    assert!(status.contains("deliveries: 0 pending, 2 dead-lettered"), "{status}");
}

#[test]
fn two_forced_fires_in_one_second_get_two_ids_and_the_sequence_survives_a_restart() {
    let w = world();
    let config = only(false, false, false, false);
    let mut e = w.engine(config.clone(), Vec::new());
    let a = e.fire("one", true).unwrap();
    let b = e.fire("two", true).unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!((a.id.as_str(), b.id.as_str()), ("all-20251126T000000Z-1", "all-20251126T000000Z-2"));
    // The cool-down still holds an unforced fire back, without using a number.
    assert!(matches!(e.fire("three", false), Err(TriggerError::CoolingDown { .. })));
    drop(e);
    let mut e = w.engine(config, Vec::new());
    assert_eq!(e.fire("four", true).unwrap().id, "all-20251126T000000Z-3");
    assert_eq!(e.state().next_seq, 4);
}

fn big_event(bytes: usize) -> RetrainEvent {
    RetrainEvent {
        id: "pii-20251126T000000Z-1".into(),
        model: "pii".into(),
        fired_at_ms: T0,
        reasons: vec![Reason {
            summary: "é".repeat(bytes / 2),
            evidence: Evidence::Manual(ManualEvidence { reason: "big".into(), forced: false }),
        }],
    }
}

#[test]
fn a_large_event_reaches_a_command_intact_on_stdin_and_in_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let script = "cat > stdin.json; cp \"$MODELWATCH_EVENT_FILE\" file.json; \
                  printf %s \"${MODELWATCH_EVENT_JSON-unset}\" > env.json; echo \"$MODELWATCH_EVENT_FILE\" > path";
    let sink = CommandSink {
        command: vec!["sh".into(), "-c".into(), format!("cd {} && {script}", dir.path().display())],
        timeout: Duration::from_secs(20),
    };
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let event = big_event(300 << 10);
    let json = serde_json::to_vec(&event).unwrap();
    assert!(json.len() > 300 << 10);
    assert_eq!(sink.deliver(&event, T0), Ok("exit 0".into()));
    assert!(read("stdin.json") == json, "stdin: {} of {} bytes", read("stdin.json").len(), json.len());
    assert!(read("file.json") == json, "file: {} of {} bytes", read("file.json").len(), json.len());
    assert_eq!(read("env.json"), b"unset", "too large for the environment");
    let path = String::from_utf8(read("path")).unwrap();
    assert!(!Path::new(path.trim()).exists(), "the event file is removed when the command ends");
    // A small event is in the environment too.
    let small = big_event(10);
    assert_eq!(sink.deliver(&small, T0), Ok("exit 0".into()));
    assert_eq!(read("env.json"), serde_json::to_vec(&small).unwrap());
}

#[test]
fn a_command_that_does_not_read_is_timed_out_and_its_whole_process_group_killed() {
    let dir = tempfile::tempdir().unwrap();
    let sink =
        CommandSink { command: vec!["sleep".into(), "30".into()], timeout: Duration::from_millis(300) };
    let started = std::time::Instant::now();
    let e = sink.deliver(&big_event(300 << 10), T0).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "blocked for {:?}", started.elapsed());
    assert!(e.contains("killed (its process group) after the 300ms timeout"), "{e}");
    // A grandchild started in the background goes with it.
    let pidfile = dir.path().join("pid");
    let sink = CommandSink {
        command: vec![
            "sh".into(),
            "-c".into(),
            format!("sleep 1000 & echo $! > {}; wait", pidfile.display()),
        ],
        timeout: Duration::from_millis(500),
    };
    assert!(sink.deliver(&big_event(10), T0).unwrap_err().contains("killed"));
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    // Dead, or a zombie waiting for a PID 1 that reaps slowly (or never, in a container).
    let alive = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'))
    };
    let waited = std::time::Instant::now();
    while alive() && waited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = alive();
    if survived {
        let _ = std::process::Command::new("kill").arg(&pid).status();
    }
    assert!(!survived, "the grandchild {pid} survived the timeout");
}

#[test]
fn a_schedule_due_while_another_trigger_fails_still_fires() {
    let w = world();
    let mut config = only(false, false, true, true);
    // A detector query over the limits: it fails at every evaluation.
    config.drift.detector = "mean(confidence)".into();
    config.drift.detector_step = "1ms".into();
    let mut e = w.engine(config, Vec::new());
    let mut fired = Vec::new();
    for step in 1..=8 * 144 {
        w.clock.set(modelwatch_agent::Timestamp::from_millis((T0 + step * 600_000) as u64));
        let out = e.evaluate().unwrap();
        assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
        assert_eq!(out.failures[0].source, "drift");
        assert!(out.failures[0].error.contains("too large"), "{}", out.failures[0]);
        fired.extend(out.event);
    }
    // Monday 2025-12-01 03:00 UTC, at the first evaluation at or after it.
    let monday = T0 + 5 * 24 * HOUR + 3 * HOUR;
    let [event] = &fired[..] else { panic!("{fired:?}") };
    assert_eq!((event.fired_at_ms, event.triggers()), (monday, "schedule".to_string()));
    let Evidence::Schedule(s) = &event.reasons[0].evidence else { panic!("{event:?}") };
    assert_eq!(s.due_ms, monday);
    assert_eq!(e.state().history.len(), 1);
}

/// HMAC-SHA256 from its definition (RFC 2104) over ring's SHA-256, to check the sink's
/// signature without the code that made it.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use ring::digest::{SHA256, digest};
    let mut k = if key.len() > 64 { digest(&SHA256, key).as_ref().to_vec() } else { key.to_vec() };
    k.resize(64, 0);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(message.iter().copied()).collect();
    let inner = digest(&SHA256, &inner);
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner.as_ref().iter().copied()).collect();
    digest(&SHA256, &outer).as_ref().to_vec()
}

/// The expected `t=…,v1=…` header.
fn signature(key: &[u8], t: i64, body: &[u8]) -> String {
    let signed = [format!("{t}.").as_bytes(), body].concat();
    let hex: String = hmac_sha256(key, &signed).iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

#[test]
fn a_webhook_signature_carries_its_time_and_a_redirect_is_a_failed_attempt() {
    // RFC 4231, test case 2: the reference HMAC is right.
    let tag: String =
        hmac_sha256(b"Jefe", b"what do ya want for nothing?").iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(tag, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    let target = Receiver::start(0, OK.into());
    let redirect = Receiver::start(
        0,
        format!(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/elsewhere\r\ncontent-length: 0\r\n\
             connection: close\r\n\r\n",
            target.port
        ),
    );
    let sink = WebhookSink {
        url: format!("http://127.0.0.1:{}/hook", redirect.port),
        secret: Some(b"k3y".to_vec()),
        timeout: Duration::from_secs(5),
    };
    let at = T0 + 61_999;
    let e = sink.deliver(&big_event(10), at).unwrap_err();
    assert!(e.contains("302") && e.contains(&format!("127.0.0.1:{}/elsewhere", target.port)), "{e}");
    assert!(target.requests().is_empty(), "the redirect was followed");
    let [got] = &redirect.requests()[..] else { panic!("one request") };
    let header = got.header("x-modelwatch-signature").unwrap();
    assert_eq!(header, signature(b"k3y", at / 1000, &got.body));
    assert!(header.starts_with(&format!("t={},v1=", T0 / 1000 + 61)), "{header}");
}

/// Sinks are known by their whole command line: reordering them, or removing one, never
/// sends one's pending delivery to another; a removed sink's delivery is dead-lettered when
/// its time is up, and an event fired by a verb run without the configuration is delivered
/// by the next run that has it.
#[test]
fn deliveries_follow_their_sink_through_reordering_and_removal_and_a_fire_without_config() {
    let w = world();
    let (retrain, notify) = (w.dir.path().join("retrain"), w.dir.path().join("notify"));
    let sink =
        |cmd: &str| format!("[[triggers.sinks]]\ntype = \"command\"\ncommand = [\"sh\", \"-c\", {cmd:?}]\n");
    let failing = sink(&format!("echo x >> {}; exit 1", retrain.display()));
    let fixed = sink(&format!("echo x >> {}", retrain.display()));
    let notifying = sink(&format!("echo x >> {}", notify.display()));
    let a = w.dir.path().join("a.toml");
    let b = w.dir.path().join("b.toml");
    std::fs::write(&a, format!("{QUIET}{failing}{notifying}")).unwrap();
    std::fs::write(&b, format!("{QUIET}{notifying}{failing}")).unwrap();
    let data = w.data();
    triggers(T0, &["fire", "--reason", "x"], &a, &data);
    // Reordered: the retrain command's pending delivery stays with it.
    triggers(T0 + 60_000, &["check"], &b, &data);
    let lines = |p: &Path| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
    assert_eq!((lines(&retrain), lines(&notify)), (2, 1), "retried the retrain, notified once");
    // The retrain command edited: the old one's delivery has no sink; dead-lettered once
    // its 24 h are up, never sent to the new command.
    let c = w.dir.path().join("c.toml");
    std::fs::write(&c, format!("{QUIET}{notifying}{fixed}")).unwrap();
    triggers(T0 + 3_600_000, &["check"], &c, &data);
    assert_eq!(lines(&retrain), 2, "the edited command is another sink");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["--now", &(T0 + 25 * 3_600_000).to_string(), "triggers", "check", "--config"])
        .arg(&c)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "giving up is an error for cron: {stderr}");
    assert!(stderr.contains("gave up delivering") && stderr.contains("no longer configured"), "{stderr}");
    let d = deliveries(&c, &data);
    let old =
        d.iter().find(|d| d["state"] == "dead_lettered").expect("the old sink's delivery dead-lettered");
    assert!(old["last_error"].as_str().unwrap().contains("no longer configured"), "{old}");

    // A fire without the configuration plans nothing; the next run with it delivers.
    let w2 = world();
    let data2 = w2.data();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["--now", &T0.to_string(), "triggers", "fire", "--reason", "y", "--force", "--data"])
        .arg(&data2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = lines(&notify);
    let only_notify = w2.dir.path().join("n.toml");
    std::fs::write(&only_notify, format!("{QUIET}{notifying}")).unwrap();
    triggers(T0 + 60_000, &["check"], &only_notify, &data2);
    assert_eq!(lines(&notify), before + 1, "delivered by the first run that has the sink");
}

/// A retraining command killed with its runner (kill -9 of `modelwatch` mid-attempt) counts
/// as an attempt: the next run does not start it again at once but after the backoff, and
/// history says the attempt was cut short.
#[test]
fn an_attempt_cut_short_by_kill_9_counts_and_waits_its_backoff() {
    let w = world();
    let (log, done) = (w.dir.path().join("log"), w.dir.path().join("done"));
    let config = w.dir.path().join("t.toml");
    std::fs::write(
        &config,
        format!(
            "{QUIET}[[triggers.sinks]]\ntype = \"command\"\ntimeout = \"60s\"\n\
             command = [\"sh\", \"-c\", \"echo $$ >> {}; [ -e {} ] || sleep 30\"]\n",
            log.display(),
            done.display()
        ),
    )
    .unwrap();
    let data = w.data();
    let mut fire = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["--now", &T0.to_string(), "triggers", "fire", "--reason", "x", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&log).map_or(true, |t| t.is_empty()) {
        assert!(std::time::Instant::now() < deadline, "the command never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    fire.kill().unwrap(); // SIGKILL
    fire.wait().unwrap();
    let first = std::fs::read_to_string(&log).unwrap();
    // The command lives on in its own process group; it is stopped here (its `sleep` ends
    // by itself).
    let pid: u32 = first.trim().parse().expect("the command's pid");
    let _ = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status();
    std::fs::write(&done, "").unwrap();
    triggers(T0 + 1_000, &["check"], &config, &data);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1, "not started again at once");
    let d = deliveries(&config, &data);
    assert_eq!((d[0]["state"].as_str(), d[0]["attempts"].as_u64()), (Some("pending"), Some(1)), "{d:?}");
    assert!(d[0]["last_error"].as_str().unwrap().contains("cut short"), "{d:?}");
    triggers(T0 + 31_000, &["check"], &config, &data);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2, "retried after the backoff");
    let d = deliveries(&config, &data);
    assert_eq!((d[0]["state"].as_str(), d[0]["attempts"].as_u64()), (Some("delivered"), Some(2)), "{d:?}");
}
