//! Retraining handed to an orchestrator through the webhook sink, for real: the worked
//! example of `docs/decisions/0012-scheduler.md`, `examples/orchestrators/dagster_retrain.py`,
//! runs under a real Dagster (`MODELWATCH_DAGSTER_PYTHON`, a Python with the pinned
//! `dagster`; `scripts/test` installs it), and a real `modelwatch triggers fire` delivers a
//! signed event to it. The receiver must check the signature, answer, run
//! `modelwatch retrain` in a Dagster job so that the registry gets the version and the event
//! its acknowledgement — and refuse, running nothing, a changed body, a stale or future
//! timestamp, a wrong key or no signature at all.

use crate::cli::text;
use crate::retrain::{NOW, NOW_MS, config, modelwatch, recorded, registry, setup};
use crate::support::{Killed, http};
use modelwatch::store::registry::Alias;
use modelwatch::triggers::{DeliveryState, RetrainEvent, WebhookSink, read_state};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "orchestrator-test-key";
const KEY_ENV: &str = "MW_ORCHESTRATOR_KEY";
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/orchestrators/dagster_retrain.py");

/// The receiver, started on a free port with its clock at NOW; its URL, and its stderr's
/// file (Dagster's log) for failure messages.
fn receiver(dir: &Path, cfg: &str) -> (Killed, String, std::path::PathBuf) {
    let python = std::env::var("MODELWATCH_DAGSTER_PYTHON").expect(
        "MODELWATCH_DAGSTER_PYTHON must name a Python with dagster (examples/orchestrators/requirements.txt); \
         run the tests through scripts/test",
    );
    let home = dir.join("dagster-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("dagster.yaml"), "telemetry:\n  enabled: false\n").unwrap();
    let log = dir.join("receiver.log");
    let mut child = Killed(
        Command::new(python)
            .arg(EXAMPLE)
            .args(["--listen", "127.0.0.1:0", "--secret-env", KEY_ENV, "--now", NOW])
            .args(["--modelwatch", env!("CARGO_BIN_EXE_modelwatch"), "--data", dir.to_str().unwrap()])
            .args([
                "--config",
                cfg,
                &format!("--retrain-arg=--now={NOW}"),
                "--retrain-arg=--simulated-latency=2,2",
            ])
            .env(KEY_ENV, KEY)
            .env("DAGSTER_HOME", &home)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the receiver"),
    );
    // Its first line names the port; a thread reads it so that a hung start fails in time.
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_default();
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| {
        panic!("the receiver did not start: {line:?}\n{}", std::fs::read_to_string(&log).unwrap_or_default())
    });
    (child, url.to_string(), log)
}

fn port(url: &str) -> u16 {
    url.split(':').nth(2).and_then(|p| p.split('/').next()).unwrap().parse().unwrap()
}

/// POSTs `body` to the hook with the event header and a signature header, if any.
fn deliver(url: &str, id: &str, signature: Option<&str>, body: &str) -> (u16, String) {
    let mut headers = format!("X-Modelwatch-Event: {id}\r\n");
    if let Some(s) = signature {
        headers.push_str(&format!("X-Modelwatch-Signature: {s}\r\n"));
    }
    http(port(url), "POST", "/hooks/retrain", &headers, body).unwrap()
}

/// The receiver's view of an event's run once it has ended (`succeeded` or `failed`).
fn finished_run(url: &str, id: &str, log: &Path) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (status, body) = http(port(url), "GET", &format!("/runs/{id}"), "", "").unwrap();
        assert_eq!(status, 200, "{body}");
        let run: serde_json::Value = serde_json::from_str(&body).unwrap();
        if run["state"] == "succeeded" || run["state"] == "failed" {
            return run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "run of {id} still {run} after 120 s\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dagster_job_behind_the_signed_webhook_retrains_and_acknowledges_and_forgeries_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // The control misses feature c: the retrained model passes the gate (tests/retrain.rs).
    setup(data, 6_000, [1.2, -1.0, 0.0, 0.0]);
    let plain = config(data, "[gate]\nmax_importance_shift = 0.5\n");
    let (_receiver, url, log) = receiver(data, &plain);
    let signed_cfg = data.join("signed.toml");
    std::fs::write(
        &signed_cfg,
        std::fs::read_to_string(&plain).unwrap()
            + &format!(
                "[[triggers.sinks]]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"{KEY_ENV}\"\n"
            ),
    )
    .unwrap();

    // A real trigger engine fires and delivers the signed event.
    let fire = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["triggers", "fire", "--reason", "handed to dagster", "--force", "--format", "json"])
        .args(["--config", signed_cfg.to_str().unwrap(), "--data", data.to_str().unwrap(), "--now", NOW])
        .env(KEY_ENV, KEY)
        .output()
        .unwrap();
    assert!(fire.status.success(), "{}", text(&fire));
    let event: RetrainEvent = serde_json::from_slice(&fire.stdout).unwrap();
    let state = read_state(data).unwrap();
    let d = &state.history.iter().find(|r| r.event.id == event.id).unwrap().deliveries[0];
    assert_eq!(
        (d.state, d.detail.as_deref(), d.attempts),
        (DeliveryState::Delivered, Some("HTTP 202"), 1),
        "the receiver took it at the first attempt: {d:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let run = finished_run(&url, &event.id, &log);
    assert_eq!(run["state"], "succeeded", "{run}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(run["dagster_run_id"].as_str().is_some_and(|r| r.len() == 36), "{run}");
    assert_eq!(run["outcome"]["outcome"], "challenger", "{run}");
    let version = run["version"].as_u64().unwrap() as u32;
    // What `modelwatch retrain` did, read from the registry and the trigger state.
    let (versions, outcomes, reports, acked) = recorded(data, &event.id);
    assert_eq!((versions, outcomes, reports), (vec![version], 1, 1));
    assert!(
        acked.as_deref().is_some_and(|o| o.starts_with(&format!("challenger: version {version}"))),
        "{acked:?}"
    );
    assert_eq!(registry(data).alias("pii", Alias::Challenger).unwrap(), Some(version));

    // A second event, fired without the sink: forged deliveries of it must run nothing.
    let o = modelwatch(
        data,
        &["triggers", "fire", "--reason", "second", "--force", "--config", &plain, "--format", "json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let second: RetrainEvent = serde_json::from_slice(&o.stdout).unwrap();
    let body = serde_json::to_string(&second).unwrap();
    let now_s = NOW_MS / 1000;
    let sign = |key: &[u8], t: i64, body: &str| WebhookSink::signature(key, t, body.as_bytes());
    let tampered = body.replacen("\"second\"", "\"secand\"", 1);
    assert_ne!(tampered, body);
    let forgeries = [
        ("a changed body", Some(sign(KEY.as_bytes(), now_s, &body)), tampered.as_str(), "signature mismatch"),
        ("a stale timestamp", Some(sign(KEY.as_bytes(), now_s - 301, &body)), body.as_str(), "301 s ago"),
        (
            "a future timestamp",
            Some(sign(KEY.as_bytes(), now_s + 301, &body)),
            body.as_str(),
            "301 s in the future",
        ),
        ("another key", Some(sign(b"not the key", now_s, &body)), body.as_str(), "signature mismatch"),
        ("no signature", None, body.as_str(), "no X-Modelwatch-Signature"),
        ("a header without v1", Some(format!("t={now_s}")), body.as_str(), "malformed"),
    ];
    for (what, signature, body, why) in &forgeries {
        let (status, answer) = deliver(&url, &second.id, signature.as_deref(), body);
        assert_eq!(status, 401, "{what}: {answer}");
        assert!(answer.contains(why), "{what}: {answer}");
    }
    // Signed, but not what the sink sends: not an event, or not the event its header names.
    let not_json = "{\"id\": ";
    let (status, answer) = deliver(&url, &second.id, Some(&sign(KEY.as_bytes(), now_s, not_json)), not_json);
    assert!(status == 400 && answer.contains("not a modelwatch event"), "{status} {answer}");
    let (status, answer) = deliver(&url, &event.id, Some(&sign(KEY.as_bytes(), now_s, &body)), &body);
    assert!(status == 400 && answer.contains("does not match"), "{status} {answer}");
    let (status, _) = http(port(&url), "GET", &format!("/runs/{}", second.id), "", "").unwrap();
    assert_eq!(status, 404, "a refused request queues nothing");
    assert_eq!(recorded(data, &second.id), (vec![], 0, 0, None), "nothing retrained, nothing acknowledged");

    // The same event signed correctly, within the window, is taken; sent again, it is
    // recognised and not run twice. So the refusals above were the signature's doing.
    let ok = sign(KEY.as_bytes(), now_s - 299, &body);
    assert_eq!(deliver(&url, &second.id, Some(&ok), &body).0, 202);
    let run = finished_run(&url, &second.id, &log);
    assert_eq!(run["state"], "succeeded", "{run}");
    let (status, answer) = deliver(&url, &second.id, Some(&ok), &body);
    assert!(status == 200 && answer.contains("duplicate"), "{status} {answer}");
    let (versions, _, _, acked) = recorded(data, &second.id);
    assert_eq!(versions.len(), 1, "one run for two deliveries");
    assert!(acked.is_some());
}
