//! The command sink: a program run with the event on stdin and in its environment.

use super::{Delivery, EventSink};
use crate::triggers::RetrainEvent;
use std::io::Write;
use std::time::{Duration, Instant};

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
        let Some((program, args)) = self.command.split_first() else {
            return Delivery { sink, ok: false, detail: "no command to run".into() };
        };
        let spawned = std::process::Command::new(program)
            .args(args)
            .env("MODELWATCH_EVENT_ID", &event.id)
            .env("MODELWATCH_EVENT_MODEL", &event.model)
            .env("MODELWATCH_EVENT_TRIGGERS", event.triggers())
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
