//! Where retraining events go besides the store: a channel or callback in process, a
//! webhook, a command. Each reports a [`Delivery`], kept in the trigger history.

use super::{Delivery, RetrainEvent, SinkConfig};
use crate::serve::parse_duration;
use std::io::Write;
use std::time::{Duration, Instant};

/// A destination for events.
pub trait EventSink: Send {
    /// Hands the event over; never panics, reports what happened.
    fn deliver(&self, event: &RetrainEvent) -> Delivery;
}

/// Sends events into a channel (the retraining loop's side reads it).
pub struct ChannelSink(pub crossbeam_channel::Sender<RetrainEvent>);

impl EventSink for ChannelSink {
    fn deliver(&self, event: &RetrainEvent) -> Delivery {
        let ok = self.0.send(event.clone()).is_ok();
        Delivery {
            sink: "channel".into(),
            ok,
            detail: if ok { "sent".into() } else { "receiver gone".into() },
        }
    }
}

/// A function that takes an event (an error is recorded as a failed delivery).
pub type Callback = Box<dyn Fn(&RetrainEvent) -> Result<(), String> + Send + Sync>;

/// Calls a function with each event.
pub struct CallbackSink(pub Callback);

impl EventSink for CallbackSink {
    fn deliver(&self, event: &RetrainEvent) -> Delivery {
        match (self.0)(event) {
            Ok(()) => Delivery { sink: "callback".into(), ok: true, detail: "ok".into() },
            Err(e) => Delivery { sink: "callback".into(), ok: false, detail: e },
        }
    }
}

/// POSTs the event as JSON, retrying with doubling backoff; signs it with HMAC-SHA256 when
/// a key is set (`X-Modelwatch-Signature: sha256=<hex of HMAC(key, body)>`).
pub struct WebhookSink {
    /// Where.
    pub url: String,
    /// The HMAC key.
    pub secret: Option<Vec<u8>>,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// The first wait between attempts (then doubled).
    pub backoff: Duration,
}

impl WebhookSink {
    /// The signature header's value for a body.
    pub fn signature(secret: &[u8], body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, body);
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    fn attempt(&self, rt: &tokio::runtime::Runtime, body: &[u8], id: &str) -> Result<u16, String> {
        rt.block_on(async {
            let client =
                reqwest::Client::builder().timeout(self.timeout).build().map_err(|e| e.to_string())?;
            let mut req = client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-modelwatch-event", id)
                .body(body.to_vec());
            if let Some(s) = &self.secret {
                req = req.header("x-modelwatch-signature", Self::signature(s, body));
            }
            let res = req.send().await.map_err(|e| e.to_string())?;
            Ok(res.status().as_u16())
        })
    }
}

impl EventSink for WebhookSink {
    fn deliver(&self, event: &RetrainEvent) -> Delivery {
        let sink = format!("webhook {}", self.url);
        let body = serde_json::to_vec(event).unwrap_or_default();
        // https needs a TLS crypto provider; ring, as for object storage (a no-op once set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return Delivery { sink, ok: false, detail: e.to_string() },
        };
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
            }
            match self.attempt(&rt, &body, &event.id) {
                Ok(status) if (200..300).contains(&status) => {
                    return Delivery {
                        sink,
                        ok: true,
                        detail: format!("HTTP {status} after {} attempt(s)", attempt + 1),
                    };
                }
                Ok(status) => last = format!("HTTP {status}"),
                Err(e) => last = e,
            }
            tracing::warn!(url = %self.url, attempt = attempt + 1, error = %last, "webhook delivery failed");
        }
        Delivery { sink, ok: false, detail: format!("{last} after {} attempts", self.retries + 1) }
    }
}

/// Runs a command with the event as JSON on stdin and in the environment
/// (`MODELWATCH_EVENT_ID`, `MODELWATCH_EVENT_MODEL`, `MODELWATCH_EVENT_TRIGGERS` (comma
/// separated), `MODELWATCH_EVENT_JSON`); killed past the timeout; its exit status is kept.
pub struct CommandSink {
    /// Program and arguments.
    pub command: Vec<String>,
    /// How long it may run.
    pub timeout: Duration,
}

impl EventSink for CommandSink {
    fn deliver(&self, event: &RetrainEvent) -> Delivery {
        let sink = format!("command {}", self.command.first().cloned().unwrap_or_default());
        let json = serde_json::to_string(event).unwrap_or_default();
        let triggers: Vec<&str> = event.reasons.iter().map(|r| r.trigger.as_str()).collect();
        let spawned = std::process::Command::new(&self.command[0])
            .args(&self.command[1..])
            .env("MODELWATCH_EVENT_ID", &event.id)
            .env("MODELWATCH_EVENT_MODEL", &event.model)
            .env("MODELWATCH_EVENT_TRIGGERS", triggers.join(","))
            .env("MODELWATCH_EVENT_JSON", &json)
            .stdin(std::process::Stdio::piped())
            // Its output is a log, not ours: stdout of `triggers check --format json` stays JSON.
            .stdout(std::io::stderr())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return Delivery { sink, ok: false, detail: format!("cannot run: {e}") },
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its stdin is fine.
            let _ = stdin.write_all(json.as_bytes());
        }
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Delivery {
                        sink,
                        ok: status.success(),
                        detail: status.code().map_or_else(|| format!("{status}"), |c| format!("exit {c}")),
                    };
                }
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Delivery {
                        sink,
                        ok: false,
                        detail: format!("killed after the {:?} timeout", self.timeout),
                    };
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Delivery { sink, ok: false, detail: e.to_string() },
            }
        }
    }
}

/// A sink from the configuration file.
pub(super) fn from_config(c: &SinkConfig) -> Result<Box<dyn EventSink>, super::TriggerError> {
    let d = |s: &str| {
        parse_duration(s).map(|ms| Duration::from_millis(ms as u64)).map_err(super::TriggerError::Config)
    };
    Ok(match c {
        SinkConfig::Webhook { url, secret_env, timeout, retries, backoff } => {
            let secret = match secret_env {
                Some(var) => Some(
                    std::env::var(var)
                        .map_err(|_| {
                            super::TriggerError::Config(format!(
                                "webhook sink: the environment variable {var} (its HMAC key) is not set"
                            ))
                        })?
                        .into_bytes(),
                ),
                None => None,
            };
            Box::new(WebhookSink {
                url: url.clone(),
                secret,
                timeout: d(timeout)?,
                retries: *retries,
                backoff: d(backoff)?,
            })
        }
        SinkConfig::Command { command, timeout } => {
            Box::new(CommandSink { command: command.clone(), timeout: d(timeout)? })
        }
    })
}
