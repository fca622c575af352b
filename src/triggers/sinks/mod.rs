//! Where retraining events go besides the store: a channel or callback in process
//! ([`channel`]), a webhook ([`webhook`]), a command ([`command`]). A sink makes one attempt
//! per call and says what happened; the outbox (`delivery`) keeps every attempt's outcome
//! and retries within the retry budget. A new sink is one file implementing [`EventSink`],
//! plus a [`SinkConfig`] variant if the configuration file can name it.

mod channel;
mod command;
mod webhook;

pub use channel::{Callback, CallbackSink, ChannelSink};
pub use command::CommandSink;
pub use webhook::WebhookSink;

use super::retry::{Budget, RetryOverride, RetryPolicy};
use super::{RetrainEvent, TriggerError};
use serde::{Deserialize, Serialize};

/// A destination for events.
pub trait EventSink: Send {
    /// Its name in the history and the state (`webhook <url>`, `command <program>`): an
    /// event's pending delivery is matched to its sink by name across restarts, so it
    /// should not change while the sink's configuration does not.
    fn name(&self) -> String;

    /// One attempt at handing the event over at `now_ms`: what the sink said (`HTTP 200`),
    /// or why it failed. Never panics; a failure is retried by the outbox.
    fn deliver(&self, event: &RetrainEvent, now_ms: i64) -> Result<String, String>;
}

/// A `[[triggers.sinks]]` entry. The retry keys (`max_attempts`, `give_up_after`,
/// `backoff`, `max_backoff`) override `[triggers.delivery]` for this sink.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// HTTP POST of the event as JSON.
    Webhook {
        /// The URL (redirects are not followed: give the final one).
        url: String,
        /// Environment variable holding the HMAC-SHA256 key (header `X-Modelwatch-Signature:
        /// t=<unix seconds>,v1=<hex of HMAC(key, "<t>.<body>")>`); none: unsigned.
        #[serde(default)]
        secret_env: Option<String>,
        /// Per attempt.
        #[serde(default = "default_webhook_timeout")]
        timeout: String,
        /// Attempts in all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_attempts: Option<u32>,
        /// Retrying ends this long after the event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        give_up_after: Option<String>,
        /// The first wait between attempts (then doubled).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backoff: Option<String>,
        /// The longest wait.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_backoff: Option<String>,
        /// Deprecated: attempts after the first (`max_attempts = retries + 1`), from when the
        /// webhook retried within one delivery. Still read so older files keep working.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retries: Option<u32>,
    },
    /// A command run with the event as JSON on stdin, in a file (`MODELWATCH_EVENT_FILE`)
    /// and in `MODELWATCH_EVENT_*` variables.
    Command {
        /// Program and arguments.
        command: Vec<String>,
        /// How long it may run (then its process group is killed).
        #[serde(default = "default_command_timeout")]
        timeout: String,
        /// Attempts in all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_attempts: Option<u32>,
        /// Retrying ends this long after the event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        give_up_after: Option<String>,
        /// The first wait between attempts (then doubled).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backoff: Option<String>,
        /// The longest wait.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_backoff: Option<String>,
    },
}

fn default_webhook_timeout() -> String {
    "10s".into()
}
fn default_command_timeout() -> String {
    "60s".into()
}

impl SinkConfig {
    /// This entry's overrides of `[triggers.delivery]`.
    fn retry(&self) -> RetryOverride<'_> {
        match self {
            SinkConfig::Webhook { max_attempts, give_up_after, backoff, max_backoff, retries, .. } => {
                RetryOverride {
                    max_attempts: max_attempts.or(retries.map(|r| r.saturating_add(1))),
                    give_up_after: give_up_after.as_deref(),
                    backoff: backoff.as_deref(),
                    max_backoff: max_backoff.as_deref(),
                }
            }
            SinkConfig::Command { max_attempts, give_up_after, backoff, max_backoff, .. } => RetryOverride {
                max_attempts: *max_attempts,
                give_up_after: give_up_after.as_deref(),
                backoff: backoff.as_deref(),
                max_backoff: max_backoff.as_deref(),
            },
        }
    }

    /// Checks the entry; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let d = |s: &str, key: &str| super::kind::duration(s, key).map(|_| ());
        RetryPolicy::default().budget("sinks", &self.retry())?;
        match self {
            SinkConfig::Webhook { url, timeout, .. } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("triggers.sinks: webhook url {url:?} is not http(s)"));
                }
                d(timeout, "sinks.timeout")
            }
            SinkConfig::Command { command, timeout, .. } => {
                if command.is_empty() {
                    return Err("triggers.sinks: a command sink needs `command = [\"program\", ...]`".into());
                }
                d(timeout, "sinks.timeout")
            }
        }
    }
}

/// A sink from the configuration file, with its retry budget (`[triggers.delivery]` under
/// the entry's own keys).
pub(crate) fn from_config(
    c: &SinkConfig,
    policy: &RetryPolicy,
) -> Result<(Box<dyn EventSink>, Budget), TriggerError> {
    let d = |s: &str| {
        crate::time::parse_duration(s)
            .map(crate::time::to_std)
            .map_err(|e| TriggerError::Config(format!("triggers.sinks: {e}")))
    };
    let budget = policy.budget("sinks", &c.retry()).map_err(TriggerError::Config)?;
    let sink: Box<dyn EventSink> = match c {
        SinkConfig::Webhook { url, secret_env, timeout, .. } => {
            let secret = match secret_env {
                Some(var) => Some(
                    std::env::var(var)
                        .map_err(|_| {
                            TriggerError::Config(format!(
                                "webhook sink: the environment variable {var} (its HMAC key) is not set"
                            ))
                        })?
                        .into_bytes(),
                ),
                None => None,
            };
            Box::new(WebhookSink { url: url.clone(), secret, timeout: d(timeout)? })
        }
        SinkConfig::Command { command, timeout, .. } => {
            Box::new(CommandSink { command: command.clone(), timeout: d(timeout)? })
        }
    };
    Ok((sink, budget))
}
