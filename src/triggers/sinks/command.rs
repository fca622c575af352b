//! The command sink: a program run with the event on stdin and in its environment; a
//! non-zero exit is a failed attempt, retried by the outbox.

use super::EventSink;
use crate::triggers::RetrainEvent;
use std::io::Write;
use std::time::{Duration, Instant};

/// Runs a command with the event as JSON on stdin and in the environment
/// (`MODELWATCH_EVENT_ID`, `MODELWATCH_EVENT_MODEL`, `MODELWATCH_EVENT_TRIGGERS` (comma
/// separated), `MODELWATCH_EVENT_JSON`); killed past the timeout; its exit status is the
/// attempt's outcome.
pub struct CommandSink {
    /// Program and arguments.
    pub command: Vec<String>,
    /// How long it may run.
    pub timeout: Duration,
}

impl EventSink for CommandSink {
    fn name(&self) -> String {
        format!("command {}", self.command.first().cloned().unwrap_or_default())
    }

    fn deliver(&self, event: &RetrainEvent, _now_ms: i64) -> Result<String, String> {
        let (program, args) = self.command.split_first().ok_or("no command to run")?;
        let json = serde_json::to_string(event).map_err(|e| e.to_string())?;
        let mut child = std::process::Command::new(program)
            .args(args)
            .env("MODELWATCH_EVENT_ID", &event.id)
            .env("MODELWATCH_EVENT_MODEL", &event.model)
            .env("MODELWATCH_EVENT_TRIGGERS", event.triggers())
            .env("MODELWATCH_EVENT_JSON", &json)
            .stdin(std::process::Stdio::piped())
            // Its output is a log, not ours: stdout of `triggers check --format json` stays JSON.
            .stdout(std::io::stderr())
            .spawn()
            .map_err(|e| format!("cannot run: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its stdin is fine.
            let _ = stdin.write_all(json.as_bytes());
        }
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok("exit 0".into()),
                Ok(Some(status)) => {
                    return Err(status.code().map_or_else(|| format!("{status}"), |c| format!("exit {c}")));
                }
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("killed after the {:?} timeout", self.timeout));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
