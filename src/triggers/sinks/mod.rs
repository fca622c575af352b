//! Where retraining events go besides the store: a channel or callback in process
//! ([`channel`]), a webhook ([`webhook`]), a command ([`command`]). Each reports a
//! [`Delivery`], kept in the trigger history. A new sink is one file implementing
//! [`EventSink`], plus a [`SinkConfig`] variant if the configuration file can name it.

mod channel;
mod command;
mod webhook;

pub use channel::{Callback, CallbackSink, ChannelSink};
pub use command::CommandSink;
pub use webhook::WebhookSink;

use super::{RetrainEvent, TriggerError};
use serde::{Deserialize, Serialize};

/// A destination for events.
pub trait EventSink: Send {
    /// Hands the event over; never panics, reports what happened.
    fn deliver(&self, event: &RetrainEvent) -> Delivery;
}

/// A sink's result for an event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    /// Which sink (`webhook <url>`, `command <program>`, ...).
    pub sink: String,
    /// Whether it took the event.
    pub ok: bool,
    /// Status, exit code or error.
    pub detail: String,
}

/// A `[[triggers.sinks]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// HTTP POST of the event as JSON.
    Webhook {
        /// The URL.
        url: String,
        /// Environment variable holding the HMAC-SHA256 key (header `X-Modelwatch-Signature:
        /// sha256=<hex>`); none: unsigned.
        #[serde(default)]
        secret_env: Option<String>,
        /// Per attempt.
        #[serde(default = "default_webhook_timeout")]
        timeout: String,
        /// Attempts after the first, with doubling backoff from `backoff`.
        #[serde(default = "default_retries")]
        retries: u32,
        /// The first backoff.
        #[serde(default = "default_backoff")]
        backoff: String,
    },
    /// A command run with the event as JSON on stdin and in `MODELWATCH_EVENT_*` variables.
    Command {
        /// Program and arguments.
        command: Vec<String>,
        /// How long it may run.
        #[serde(default = "default_command_timeout")]
        timeout: String,
    },
}

fn default_webhook_timeout() -> String {
    "10s".into()
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> String {
    "1s".into()
}
fn default_command_timeout() -> String {
    "60s".into()
}

impl SinkConfig {
    /// Checks the entry; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let d = |s: &str, key: &str| super::kind::duration(s, key).map(|_| ());
        match self {
            SinkConfig::Webhook { url, timeout, backoff, .. } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("triggers.sinks: webhook url {url:?} is not http(s)"));
                }
                d(timeout, "sinks.timeout")?;
                d(backoff, "sinks.backoff")
            }
            SinkConfig::Command { command, timeout } => {
                if command.is_empty() {
                    return Err("triggers.sinks: a command sink needs `command = [\"program\", ...]`".into());
                }
                d(timeout, "sinks.timeout")
            }
        }
    }
}

/// A sink from the configuration file.
pub(crate) fn from_config(c: &SinkConfig) -> Result<Box<dyn EventSink>, TriggerError> {
    let d = |s: &str| {
        crate::time::parse_duration(s)
            .map(crate::time::to_std)
            .map_err(|e| TriggerError::Config(format!("triggers.sinks: {e}")))
    };
    Ok(match c {
        SinkConfig::Webhook { url, secret_env, timeout, retries, backoff } => {
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
