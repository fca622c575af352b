//! Retraining triggers with a manual clock: each fires exactly when it should and not
//! before, noise does not fire the degradation trigger, the schedule follows cron over a
//! simulated month, the cool-down suppresses, a restart is safe; and the sinks: a channel,
//! a webhook that fails its first attempts (HMAC checked), a command (exit status, timeout).
//! The outbox (retries, dead letters, history) and the sinks' hard cases: [`delivery`].

mod delivery;

use crate::support::Rng;
use modelwatch::triggers::{
    ChannelSink, CommandSink, DegradationTrigger, DeliveryState, DriftEvidence, DriftTrigger, EventSink,
    Evidence, LabelsFigures, LabelsTrigger, RetrainEvent, ScheduleTrigger, TriggerConfig, TriggerEngine,
    TriggerError, WebhookSink,
};
use modelwatch_agent::{Agent, ManualClock, Prediction, Timestamp};
use modelwatch_store::{Store, StoreConfig};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_764_115_200_000; // 2025-11-26T00:00:00Z, a Wednesday
const HOUR: i64 = 3_600_000;

struct World {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    clock: Arc<ManualClock>,
    agent: Agent,
    rng: Rng,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path().join("data")) }).unwrap(),
    );
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
    let agent = Agent::builder("pii")
        .segments(["email", "phone"])
        .interval(Duration::from_secs(60))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    World { dir, store, clock, agent, rng: Rng(0x9E37_79B9_7F4A_7C15) }
}

impl World {
    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// `n` labelled predictions spread over the next `ms`; a prediction is positive at 0.9
    /// confidence, negative at 0.2, and its label is right with probability `precision`
    /// for positives (negatives are always right).
    fn traffic(&mut self, n: u64, ms: i64, precision: f64) {
        let start = self.clock.now_ms();
        for i in 0..n {
            self.clock.set(Timestamp::from_millis((start + i as i64 * ms / n as i64) as u64));
            self.agent.flush_due().unwrap();
            let positive = self.rng.u() < 0.5;
            let conf = if positive { 0.9 } else { 0.2 };
            let label = if positive { self.rng.u() < precision } else { false };
            let h = self.agent.handle();
            h.record(&Prediction::new("email", Duration::from_millis(1), conf));
            h.feedback("email", conf, label);
        }
        self.clock.set(Timestamp::from_millis((start + ms) as u64));
        self.agent.flush_due().unwrap();
    }

    fn engine(&self, config: TriggerConfig, sinks: Vec<Box<dyn EventSink>>) -> TriggerEngine {
        TriggerEngine::open(config, self.store.clone(), &self.data(), self.clock.clone(), sinks).unwrap()
    }
}

trait NowMs {
    fn now_ms(&self) -> i64;
}

impl NowMs for ManualClock {
    fn now_ms(&self) -> i64 {
        modelwatch_agent::Clock::now(self).as_millis() as i64
    }
}

fn only(labels: bool, degradation: bool, schedule: bool, drift: bool) -> TriggerConfig {
    TriggerConfig {
        cooldown: "1h".into(),
        labels: LabelsTrigger { enabled: labels, count: 500 },
        degradation: DegradationTrigger {
            enabled: degradation,
            by_segment: false,
            min_label_age: "0s".into(),
            ..Default::default()
        },
        schedule: ScheduleTrigger { enabled: schedule, ..Default::default() },
        drift: DriftTrigger { enabled: drift, ..Default::default() },
        ..TriggerConfig::default()
    }
}

#[test]
fn the_label_trigger_fires_at_exactly_n_labels_and_ack_starts_the_count_again() {
    let mut w = world();
    let (tx, rx) = crossbeam_channel::unbounded::<RetrainEvent>();
    let mut e = w.engine(only(true, false, false, false), vec![Box::new(ChannelSink(tx))]);
    w.traffic(499, HOUR, 0.9);
    assert!(e.evaluate().unwrap().event.is_none(), "499 labels: not yet");
    w.traffic(1, 60_000, 0.9);
    let fired = e.evaluate().unwrap().event.expect("500 labels fire");
    assert_eq!(fired.reasons[0].trigger(), "labels");
    let Evidence::Labels(ev) = &fired.reasons[0].evidence else { panic!("{:?}", fired.reasons[0]) };
    assert_eq!(ev.labels, 500.0);
    assert_eq!(rx.try_recv().unwrap(), fired, "the channel sink got it");
    // The retraining side takes it: counting starts again.
    e.ack(&fired.id).unwrap();
    assert!(e.ack(&fired.id).unwrap_err().to_string().contains("already"));
    w.clock.advance(Duration::from_secs(7_200));
    w.traffic(400, HOUR, 0.9);
    assert!(e.evaluate().unwrap().event.is_none(), "400 since the acknowledgement");
    w.traffic(100, HOUR, 0.9);
    assert!(e.evaluate().unwrap().event.is_some());
}

#[test]
fn noise_does_not_fire_the_degradation_trigger_and_a_real_drop_does() {
    let mut w = world();
    let mut e = w.engine(only(false, true, false, false), Vec::new());
    // Day 1 and day 2 at the same precision (0.8), ~500 labelled positives each: noise.
    w.traffic(1_000, 24 * HOUR, 0.8);
    w.traffic(1_000, 24 * HOUR, 0.8);
    let out = e.evaluate().unwrap();
    assert!(out.event.is_none(), "noise fired: {}", out.status);
    // A small window with a large drop is not significant: 60 labels.
    let mut small = world();
    let mut es = small.engine(only(false, true, false, false), Vec::new());
    small.traffic(60, 24 * HOUR, 0.8);
    small.traffic(60, 24 * HOUR, 0.5);
    assert!(es.evaluate().unwrap().event.is_none(), "too few labels");
    // Against a fixed baseline range (day 1) instead of the window before: the same.
    let mut against = only(false, true, false, false);
    against.degradation.against = format!("{}..{}", T0, T0 + 24 * HOUR);
    drop(e);
    let mut e = w.engine(against, Vec::new());
    assert!(e.evaluate().unwrap().event.is_none(), "day 2 against day 1: noise");
    // Day 3 at 0.6: a 25 % fall over ~500 positives.
    w.traffic(1_000, 24 * HOUR, 0.6);
    let fired = e.evaluate().unwrap().event.expect("the drop fires");
    assert_eq!(fired.reasons[0].trigger(), "degradation");
    let Evidence::Degradation(ev) = &fired.reasons[0].evidence else { panic!("{:?}", fired.reasons[0]) };
    assert!(ev.relative_fall > 0.1 && ev.p_value < 0.05, "{ev:?}");
    assert!(ev.current_window.1 > ev.current_window.0 && ev.labels_current >= 100.0, "{ev:?}");
    assert!(ev.p_value_corrected.is_some_and(|p| p >= ev.p_value), "{ev:?}");
}

#[test]
fn the_schedule_fires_at_its_cron_times_across_a_simulated_month() {
    let w = world();
    let mut config = only(false, false, true, false);
    config.schedule.cron = "0 0 3 * * Mon".into();
    let mut e = w.engine(config, Vec::new());
    let mut fired = Vec::new();
    // Every 10 minutes for 31 days from Wednesday 2025-11-26.
    for step in 1..=31 * 144 {
        w.clock.set(Timestamp::from_millis((T0 + step * 600_000) as u64));
        if let Some(ev) = e.evaluate().unwrap().event {
            fired.push(ev.fired_at_ms);
        }
    }
    // Mondays at 03:00 UTC: Dec 1, 8, 15, 22 — found at the first evaluation at or after.
    let mondays: Vec<i64> = [5, 12, 19, 26].iter().map(|d| T0 + d * 24 * HOUR + 3 * HOUR).collect();
    assert_eq!(fired, mondays);
}

#[test]
fn the_cool_down_suppresses_whatever_fires_and_manual_force_overrides_it() {
    let w = world();
    let mut config = only(false, false, false, false);
    config.cooldown = "6h".into();
    let mut e = w.engine(config, Vec::new());
    let first = e.fire("a person says so", false).expect("fires");
    assert_eq!(first.reasons[0].trigger(), "manual");
    w.clock.advance(Duration::from_secs(5 * 3_600));
    assert!(matches!(e.fire("again", false), Err(TriggerError::CoolingDown { .. })), "inside the cool-down");
    assert_eq!(e.state().suppressed, 1);
    let forced = e.fire("urgent", true).expect("--force");
    assert_ne!(forced.id, first.id, "a new stable ID");
    w.clock.advance(Duration::from_secs(7 * 3_600));
    assert!(e.fire("later", false).is_ok(), "after the cool-down");
    assert_eq!(e.state().history.len(), 3);
}

#[test]
fn events_in_the_same_second_get_their_own_ids_and_are_each_stored_and_acknowledged() {
    let w = world();
    let mut e = w.engine(only(false, false, false, false), Vec::new());
    let a = e.fire("one", true).unwrap();
    let b = e.fire("two", true).unwrap();
    let c = e.fire("three", true).unwrap();
    let stamped = a.id.strip_suffix("-1").expect("a sequence suffix");
    assert_eq!((b.id.clone(), c.id.clone()), (format!("{stamped}-2"), format!("{stamped}-3")));
    for id in [&a.id, &b.id, &c.id] {
        e.ack(id).unwrap();
    }
    let stored = modelwatch::triggers::events(&w.data(), 0, i64::MAX);
    let fired: Vec<&str> =
        stored.iter().filter(|r| &*r.kind == "retrain_triggered").map(|r| r.message.as_str()).collect();
    assert_eq!(fired.len(), 3, "each event stored once: {fired:?}");
    for id in [&a.id, &b.id, &c.id] {
        assert_eq!(fired.iter().filter(|m| m.contains(&format!("\"id\":\"{id}\""))).count(), 1, "{id}");
    }
}

#[test]
fn looking_at_the_status_neither_delivers_nor_marks_a_pending_event_delivered() {
    let w = world();
    let config = only(false, false, false, false);
    let fired = w.engine(config.clone(), Vec::new()).fire("x", false).unwrap();
    // A crash left its delivery to the channel to do.
    let state_path = w.data().join("triggers/state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["history"][0]["deliveries"] = serde_json::json!([pending_delivery("channel")]);
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    // The status is read beside a running engine, which holds the lock.
    let (tx, rx) = crossbeam_channel::unbounded();
    let running = w.engine(config.clone(), vec![Box::new(ChannelSink(tx))]);
    assert_eq!(rx.try_recv().unwrap().id, fired.id, "the running engine delivers it");
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let status = TriggerEngine::peek(&config, &w.store, &w.data(), w.clock.as_ref()).unwrap();
    assert_eq!(status.unacknowledged, vec![fired.id.clone()]);
    assert_eq!(status.pending_deliveries, 1);
    let after = modelwatch::triggers::read_state(&w.data()).unwrap();
    assert!(after.history[0].deliveries[0].is_pending(), "peek wrote nothing");
    drop(running);
}

/// A delivery to `sink` a crash left to do, as the state file holds it.
fn pending_delivery(sink: &str) -> serde_json::Value {
    serde_json::json!({"sink": sink, "state": "pending", "attempts": 0, "last_attempt_ms": null,
        "next_attempt_ms": T0, "last_error": null, "detail": null})
}

#[test]
fn a_restart_neither_fires_twice_nor_loses_counts_and_finishes_interrupted_deliveries() {
    let mut w = world();
    let config = only(true, false, false, false);
    {
        let mut e = w.engine(config.clone(), Vec::new());
        w.traffic(300, HOUR, 0.9);
        assert!(e.evaluate().unwrap().event.is_none());
        // Only one engine per data directory.
        let second =
            TriggerEngine::open(config.clone(), w.store.clone(), &w.data(), w.clock.clone(), Vec::new());
        assert!(second.err().unwrap().to_string().contains("another process"));
    } // the process "dies" here
    w.traffic(200, HOUR, 0.9);
    let mut e = w.engine(config.clone(), Vec::new());
    let fired = e.evaluate().unwrap().event.expect("300 + 200 labels, counted from the store");
    drop(e);
    // Restarted inside the cool-down: nothing fires again.
    let mut e = w.engine(config.clone(), Vec::new());
    assert!(e.evaluate().unwrap().event.is_none());
    assert_eq!(e.state().history.len(), 1);
    drop(e);

    // A crash after the decision was saved but before the sinks ran: the next start
    // delivers it, once, with the same ID.
    let state_path = w.data().join("triggers/state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["history"][0]["deliveries"] = serde_json::json!([pending_delivery("channel")]);
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let e = w.engine(config, vec![Box::new(ChannelSink(tx))]);
    assert_eq!(rx.try_recv().unwrap().id, fired.id);
    assert!(rx.try_recv().is_err());
    assert_eq!(e.state().history[0].deliveries[0].state, DeliveryState::Delivered);
    // The event is in the trigger event store's events table, once.
    let events = modelwatch::triggers::events(&w.data(), 0, i64::MAX);
    assert_eq!(events.iter().filter(|r| &*r.kind == "retrain_triggered").count(), 1);
    assert!(events[0].message.contains(&fired.id));
}

#[test]
fn the_drift_trigger_fires_on_the_share_of_drifting_features() {
    let mut w = world();
    let mut config = only(false, false, false, true);
    config.drift.reference = format!("{}..{}", T0, T0 + 24 * HOUR);
    config.drift.window = "24h".into();
    config.drift.share = 0.5;
    let mut e = w.engine(config, Vec::new());
    // Confidence is the only numeric distribution here: positives at 0.9, negatives at 0.2.
    w.traffic(2_000, 24 * HOUR, 0.9);
    w.traffic(2_000, 24 * HOUR, 0.9);
    assert!(e.evaluate().unwrap().event.is_none(), "same mix of confidences");
    // Now 90 % of predictions are positive: the confidence distribution moves.
    let h = w.agent.handle();
    for i in 0..2_000 {
        w.clock.set(Timestamp::from_millis((T0 + 48 * HOUR + i * 43_200) as u64));
        w.agent.flush_due().unwrap();
        h.record(&Prediction::new("email", Duration::from_millis(1), if i % 10 == 0 { 0.2 } else { 0.9 }));
    }
    w.clock.set(Timestamp::from_millis((T0 + 72 * HOUR) as u64));
    w.agent.flush_due().unwrap();
    let fired = e.evaluate().unwrap().event.expect("drift fires");
    assert_eq!(fired.reasons[0].trigger(), "drift");
    let Evidence::Drift(DriftEvidence::Share(ev)) = &fired.reasons[0].evidence else {
        panic!("{:?}", fired.reasons[0])
    };
    assert_eq!(ev.drifting[0].feature, "confidence");
}

#[test]
fn the_webhook_makes_one_attempt_per_call_and_signs_the_body() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    // A server that fails twice, then takes the event.
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for attempt in 0..3 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        seen.push(text);
                        break;
                    }
                }
            }
            let status = if attempt < 2 { "500 Internal Server Error" } else { "200 OK" };
            write!(s, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        }
        seen
    });
    let sink = WebhookSink { url, secret: Some(b"k3y".to_vec()), timeout: Duration::from_secs(5) };
    let event = RetrainEvent {
        id: "pii-20251126T000000Z-1".into(),
        model: "pii".into(),
        fired_at_ms: T0,
        reasons: vec![],
    };
    assert_eq!(sink.deliver(&event, T0), Err("HTTP 500 Internal Server Error".into()));
    assert_eq!(sink.deliver(&event, T0 + 30_000), Err("HTTP 500 Internal Server Error".into()));
    assert_eq!(sink.deliver(&event, T0 + 90_000), Ok("HTTP 200".into()));
    let seen = server.join().unwrap();
    let last = seen.last().unwrap();
    let body = &last[last.find("\r\n\r\n").unwrap() + 4..];
    let sig = last
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("x-modelwatch-signature:").map(|v| v.trim().to_string())
        })
        .unwrap();
    let t = (T0 + 90_000) / 1000;
    assert_eq!(sig, WebhookSink::signature(b"k3y", t, body.as_bytes()));
    let parsed: RetrainEvent = serde_json::from_str(body).unwrap();
    assert_eq!(parsed, event);
    // Independent check of the signature with ring's verifier.
    let hex = sig.strip_prefix(&format!("t={t},v1=")).unwrap();
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let signed = format!("{t}.{body}");
    ring::hmac::verify(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k3y"), signed.as_bytes(), &bytes)
        .unwrap();
    // Nobody listening: the attempt fails and says why.
    let dead =
        WebhookSink { url: "http://127.0.0.1:9/hook".into(), secret: None, timeout: Duration::from_secs(1) };
    let e = dead.deliver(&event, T0).unwrap_err();
    assert!(e.to_lowercase().contains("refused"), "{e}");
}

#[test]
fn the_command_sink_gets_the_event_on_stdin_and_in_the_environment_and_is_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got");
    let script = format!(
        "cat > {0}; echo \"$MODELWATCH_EVENT_ID $MODELWATCH_EVENT_TRIGGERS\" >> {0}; exit 3",
        out.display()
    );
    let sink =
        CommandSink { command: vec!["sh".into(), "-c".into(), script], timeout: Duration::from_secs(10) };
    let event = RetrainEvent {
        id: "pii-x".into(),
        model: "pii".into(),
        fired_at_ms: T0,
        reasons: vec![modelwatch::triggers::Reason {
            summary: "s".into(),
            evidence: Evidence::Labels(LabelsFigures { labels: 3.0, needed: 3.0, since_ms: T0 }),
        }],
    };
    assert_eq!(sink.deliver(&event, T0), Err("exit 3".into()));
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(
        got.starts_with(&serde_json::to_string(&event).unwrap()) && got.ends_with("pii-x labels\n"),
        "{got}"
    );
    let slow = CommandSink { command: vec!["sleep".into(), "5".into()], timeout: Duration::from_millis(200) };
    let started = std::time::Instant::now();
    let d = slow.deliver(&event, T0);
    assert!(
        d.as_ref().is_err_and(|e| e.contains("killed")) && started.elapsed() < Duration::from_secs(3),
        "{d:?}"
    );
}

#[test]
fn the_documented_configuration_file_is_the_defaults() {
    let c = modelwatch::triggers::ConfigFile::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/modelwatch.toml"
    )))
    .unwrap();
    assert_eq!(c.triggers, TriggerConfig::default(), "deploy/modelwatch.toml documents every default");
    assert_eq!(c.retrain, modelwatch::retrain::RetrainConfig::default(), "deploy/modelwatch.toml: [retrain]");
    assert_eq!(c.gate, modelwatch::retrain::gate::GateConfig::default(), "deploy/modelwatch.toml: [gate]");
    assert_eq!(c.canary, modelwatch::canary::CanarySettings::default(), "deploy/modelwatch.toml: [canary]");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/modelwatch.toml")).unwrap();
    for key in
        ["min_auc_gain", "max_latency_ratio", "max_importance_shift", "max_segment_drop", "window", "repeats"]
    {
        assert!(text.contains(&format!("\n{key} = ")), "deploy/modelwatch.toml does not document {key}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[triggers.degradation]\nmetric = \"accuracy\"\n").unwrap();
    let e = modelwatch::triggers::ConfigFile::load(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("degradation.metric"), "{e}");
}

#[test]
fn kill_minus_9_at_random_moments_never_fires_twice_and_every_event_is_stored_once_and_delivered() {
    let mut w = world();
    w.traffic(600, HOUR, 0.9);
    w.store.flush().unwrap();
    let dir = w.dir.path();
    let deliveries = dir.join("deliveries.jsonl");
    let config = dir.join("modelwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[triggers]\ncooldown = \"1000d\"\n[triggers.degradation]\nenabled = false\n[triggers.schedule]\nenabled = false\n\
             [triggers.drift]\nenabled = false\n\
             [triggers.delivery]\nmax_attempts = 1000\nbackoff = \"200ms\"\nmax_backoff = \"200ms\"\n\
             [[triggers.sinks]]\ntype = \"command\"\n\
             command = [\"sh\", \"-c\", \"sleep 0.05; cat >> {0}; echo >> {0}\"]\n",
            deliveries.display()
        ),
    )
    .unwrap();
    let data = w.data();
    // An engine that has been counting labels since before the traffic (the state of an
    // earlier start), so the first check fires.
    std::fs::create_dir_all(data.join("triggers")).unwrap();
    std::fs::write(data.join("triggers/state.json"), r#"{"version": 1, "counting_since_ms": 0, "last_fire_ms": null, "schedule_checked_ms": null, "suppressed": 0, "history": []}"#).unwrap();
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args([
                "triggers",
                "check",
                "--config",
                config.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let kills = std::env::var("MODELWATCH_TRIGGER_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    for _ in 0..kills {
        let mut child = check();
        std::thread::sleep(Duration::from_millis((rng.u() * 120.0) as u64));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    // An attempt cut short counts and waits its backoff (200 ms here) before the next.
    std::thread::sleep(Duration::from_millis(300));
    let last = check().wait_with_output().unwrap();
    assert!(last.status.success());
    let state = modelwatch::triggers::read_state(&data).unwrap();
    assert_eq!(state.history.len(), 1, "one event, however often the process died");
    let rec = &state.history[0];
    assert!(rec.stored && rec.deliveries.iter().all(|d| d.state == DeliveryState::Delivered), "{rec:?}");
    let events = modelwatch::triggers::events(&data, 0, i64::MAX);
    assert_eq!(events.iter().filter(|e| &*e.kind == "retrain_triggered").count(), 1, "stored once");
    // Delivered at least once, always with the same ID.
    let got = std::fs::read_to_string(&deliveries).unwrap();
    let ids: Vec<String> = got
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<RetrainEvent>(l).unwrap().id)
        .collect();
    assert!(!ids.is_empty() && ids.iter().all(|id| *id == rec.event.id), "{ids:?}");
}

/// A plain HTTP/1.0 POST on loopback: status and body.
fn post(port: u16, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    crate::support::http(port, "POST", path, "", body)
}

#[test]
fn serve_with_triggers_fires_and_acknowledges_over_http_and_holds_the_lock() {
    let w = world();
    let dir = w.dir.path();
    let config = dir.join("modelwatch.toml");
    std::fs::write(&config, "[triggers]\ncooldown = \"1h\"\n").unwrap();
    let data = w.data();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// Kills the server when the test ends, passed or not.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Server(
        std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["serve", "--data", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
            .args(["--triggers", config.to_str().unwrap(), "--check-every", "1h"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    while post(port, "/api/v1/triggers/fire", "{}").is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    {
        let (s, body) = post(port, "/api/v1/triggers/fire", "{}").unwrap();
        assert_eq!(s, 400, "{body}");
        assert!(body.contains("reason"));
        let (s, body) =
            post(port, "/api/v1/triggers/fire", r#"{"reason": "new labelling guideline"}"#).unwrap();
        assert_eq!(s, 200, "{body}");
        let event: RetrainEvent = serde_json::from_str(&body).unwrap();
        assert_eq!(event.reasons[0].summary, "new labelling guideline");
        let (s, body) = post(port, "/api/v1/triggers/fire", r#"{"reason": "again"}"#).unwrap();
        assert_eq!(s, 409, "inside the cool-down: {body}");
        // The CLI cannot take the engine while serve holds it, and says where to go.
        let cli = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["triggers", "fire", "--reason", "x", "--data", data.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(cli.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&cli.stderr).contains("/api/v1/triggers/fire"));
        let (s, body) = post(port, &format!("/api/v1/triggers/ack/{}", event.id), "").unwrap();
        assert_eq!(s, 200, "{body}");
        let (s, _) = post(port, &format!("/api/v1/triggers/ack/{}", event.id), "").unwrap();
        assert_eq!(s, 409, "acknowledged already");
        let (s, body) = post(port, "/api/v1/triggers/ack/no-such-event", "").unwrap();
        assert_eq!(s, 404, "an unknown event: {body}");
        assert!(body.contains("no-such-event"), "{body}");
        let state = modelwatch::triggers::read_state(&data).unwrap();
        assert_eq!(state.history.len(), 1);
        assert!(state.history[0].acked_at_ms.is_some());
    }
}
