//! The command sink: a program run with the event on stdin, in a file and (when small) in
//! its environment; a non-zero exit is a failed attempt, retried by the outbox.

use super::EventSink;
use crate::triggers::RetrainEvent;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The largest event passed whole in `MODELWATCH_EVENT_JSON`: Linux refuses to start a
/// program with one environment string over 128 KiB, and the whole environment shares
/// the argument space; larger events are read from the file or stdin.
const ENV_JSON_MAX: usize = 16 << 10;

/// Runs a command with the event as JSON on stdin and in the file named by
/// `MODELWATCH_EVENT_FILE` (removed when the command ends), and its small fields in the
/// environment: `MODELWATCH_EVENT_ID`, `MODELWATCH_EVENT_MODEL`, `MODELWATCH_EVENT_TRIGGERS`
/// (comma separated) and, for an event up to 16 KiB, `MODELWATCH_EVENT_JSON`.
/// The command runs in a process group of its own, killed whole past the timeout; its exit
/// status is the attempt's outcome.
pub struct CommandSink {
    /// Program and arguments.
    pub command: Vec<String>,
    /// How long it may run.
    pub timeout: Duration,
}

/// The event's file, removed when the attempt ends however it ends.
struct EventFile(PathBuf);

impl EventFile {
    fn write(id: &str, json: &[u8]) -> std::io::Result<EventFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let safe: String =
            id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("modelwatch-event-{}-{n}-{safe}.json", std::process::id()));
        // create_new: never follow or reuse a file someone else put there; 0600: the event
        // is nobody else's business.
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        let file = EventFile(path);
        f.write_all(json)?;
        f.sync_all()?;
        Ok(file)
    }
}

impl Drop for EventFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl EventSink for CommandSink {
    fn name(&self) -> String {
        // The whole command line names the sink (hashed, to keep secrets and long scripts
        // out of the state): deliveries follow their command when sinks are reordered or
        // another command of the same program is added.
        let argv = self.command.join("\0");
        let hash = ring::digest::digest(&ring::digest::SHA256, argv.as_bytes());
        let short: String = hash.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("command {} #{short}", self.command.first().cloned().unwrap_or_default())
    }

    fn deliver(&self, event: &RetrainEvent, _now_ms: i64) -> Result<String, String> {
        let (program, args) = self.command.split_first().ok_or("no command to run")?;
        let json = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        let file =
            EventFile::write(&event.id, &json).map_err(|e| format!("cannot write the event file: {e}"))?;
        let mut cmd = std::process::Command::new(program);
        cmd.args(args)
            .env("MODELWATCH_EVENT_ID", &event.id)
            .env("MODELWATCH_EVENT_MODEL", &event.model)
            .env("MODELWATCH_EVENT_TRIGGERS", event.triggers())
            .env("MODELWATCH_EVENT_FILE", &file.0)
            .stdin(std::process::Stdio::piped())
            // Its output is a log, not ours: stdout of `triggers check --format json` stays JSON.
            .stdout(std::io::stderr())
            // Its own group, so the timeout reaches whatever it started too.
            .process_group(0);
        if json.len() <= ENV_JSON_MAX {
            cmd.env("MODELWATCH_EVENT_JSON", String::from_utf8_lossy(&json).as_ref());
        } else {
            // Not one inherited from whoever started modelwatch, describing another event.
            cmd.env_remove("MODELWATCH_EVENT_JSON");
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // Its own thread: a command that does not read its stdin fills the pipe (64 KiB)
            // and would otherwise block this one past the timeout. The write ends when the
            // command reads it all, exits or is killed (a broken pipe), so the thread is not
            // waited for.
            let spawned =
                std::thread::Builder::new().name("modelwatch-command-stdin".into()).spawn(move || {
                    let _ = stdin.write_all(&json);
                });
            if let Err(e) = spawned {
                kill_group(&mut child);
                return Err(format!("cannot start the thread writing stdin: {e}"));
            }
        }
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok("exit 0".into()),
                Ok(Some(status)) => {
                    return Err(status.code().map_or_else(|| format!("{status}"), |c| format!("exit {c}")));
                }
                Ok(None) if started.elapsed() >= self.timeout => {
                    kill_group(&mut child);
                    return Err(format!("killed (its process group) after the {:?} timeout", self.timeout));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    kill_group(&mut child);
                    return Err(e.to_string());
                }
            }
        }
    }
}

/// Kills the child's process group (its pid is the group's id) and reaps the child.
fn kill_group(child: &mut std::process::Child) {
    let group = rustix::process::Pid::from_child(child);
    if rustix::process::kill_process_group(group, rustix::process::Signal::KILL).is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
}
