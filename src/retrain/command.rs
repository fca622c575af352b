//! The external-command trainer: a user's program (a scikit-learn script, say) trains; we
//! hand it the data as files, bound its time and output, and check what it leaves.
//!
//! The contract (also in `docs/decisions/0008-trainer-interface.md`):
//!
//! - The program is run directly (argv, no shell) with three arguments appended: the
//!   training Parquet file, the hold-out Parquet file and the output directory, all
//!   absolute paths. The same three are in the environment as `MODELWATCH_TRAIN`,
//!   `MODELWATCH_HOLDOUT` and `MODELWATCH_OUT_DIR`. Both files are in
//!   [`ExampleSet`](modelwatch_store::examples::ExampleSet)'s wide layout (fixed columns,
//!   then one `Float64` column per feature, named as the feature); they are removed when
//!   the command ends.
//! - Its stdin is empty; it runs in a process group of its own, killed whole when the
//!   timeout passes and when it exits (a subprocess it left behind cannot change the
//!   artifact after it is checked; one that left the group with `setsid` is out of reach); the last [`CommandTrainer::OUTPUT_LIMIT`] bytes of its stdout and of
//!   its stderr are kept for the audit log.
//! - It exits 0 having written into the output directory `model.json`, a linear model
//!   ([`LinearModel`]'s format, with the data's features in the data's order), and
//!   `metadata.json`, a JSON object of whatever it wants recorded. Anything else it writes
//!   there is kept with the version, as regular files and directories only: the registry
//!   refuses symbolic links and other special files.

use super::linear::LinearModel;
use super::{CommandOutput, METADATA_FILE, MODEL_FILE, TrainError, Trained, Trainer, TrainingData};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs a user's training program on the data written as Parquet files.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandTrainer {
    /// The program and its first arguments; the data and output paths are appended.
    pub argv: Vec<OsString>,
    /// How long it may run before its process group is killed.
    pub timeout: Duration,
    /// Extra environment variables for it (its own settings: `C`, a seed...).
    pub env: Vec<(OsString, OsString)>,
}

impl CommandTrainer {
    /// The kind of this trainer's models.
    pub const KIND: &'static str = "command";
    /// How much of each of its output streams is kept: the end, where the errors are.
    pub const OUTPUT_LIMIT: usize = 64 << 10;
    /// How long the output is still read once the program is gone: a grandchild that left
    /// its process group may hold the pipes open forever, and must not hold us.
    const DRAIN: Duration = Duration::from_secs(2);

    /// A trainer running `argv` with a `timeout`.
    pub fn new<I, S>(argv: I, timeout: Duration) -> CommandTrainer
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        CommandTrainer { argv: argv.into_iter().map(Into::into).collect(), timeout, env: Vec::new() }
    }

    /// Adds an environment variable for the program.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> CommandTrainer {
        self.env.push((key.into(), value.into()));
        self
    }

    fn program(&self) -> String {
        self.argv.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Runs the program to its end or its timeout and returns what it printed.
    fn run(&self, train: &Path, holdout: &Path, out_dir: &Path) -> Result<CommandOutput, TrainError> {
        let program = self.program();
        let (first, args) = self
            .argv
            .split_first()
            .ok_or_else(|| TrainError::Settings("the training command is empty".into()))?;
        let mut cmd = Command::new(first);
        cmd.args(args)
            .args([train.as_os_str(), holdout.as_os_str(), out_dir.as_os_str()])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("MODELWATCH_TRAIN", train)
            .env("MODELWATCH_HOLDOUT", holdout)
            .env("MODELWATCH_OUT_DIR", out_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so the timeout reaches whatever it started too.
            .process_group(0);
        let mut child =
            cmd.spawn().map_err(|source| TrainError::Spawn { program: program.clone(), source })?;
        let stdout = Tail::spawn(child.stdout.take());
        let stderr = Tail::spawn(child.stderr.take());
        let group = rustix::process::Pid::from_child(&child);
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if started.elapsed() >= self.timeout => break Err(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(source) => {
                    kill_group(&mut child);
                    return Err(TrainError::Io { path: PathBuf::from(&program), source });
                }
            }
        };
        if status.is_err() {
            kill_group(&mut child);
        } else {
            // Whatever it left running in its group (a forgotten subprocess) could still
            // write into the output directory after it is checked: it goes too. (The child
            // is reaped, but the group lives on while a member does.)
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let deadline = Instant::now() + Self::DRAIN;
        let output = CommandOutput { stdout: stdout.finish(deadline), stderr: stderr.finish(deadline) };
        match status {
            Err(()) => Err(TrainError::Timeout { program, timeout: self.timeout, output }),
            Ok(s) if s.success() => Ok(output),
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                let status = match (s.code(), s.signal()) {
                    (Some(c), _) => format!("exited with status {c}"),
                    (None, Some(sig)) => format!("was killed by signal {sig}"),
                    _ => format!("ended with {s}"),
                };
                Err(TrainError::Exit { program, status, output })
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

/// The end of one output stream, read on a thread of its own so that a chatty program never
/// blocks on a full pipe.
struct Tail {
    buf: Arc<Mutex<(Vec<u8>, bool)>>,
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl Tail {
    fn spawn(stream: Option<impl Read + Send + 'static>) -> Tail {
        let buf = Arc::new(Mutex::new((Vec::new(), false)));
        let Some(mut stream) = stream else { return Tail { buf, done: None } };
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&buf);
        let spawned = std::thread::Builder::new().name("modelwatch-trainer-output".into()).spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let Ok(mut b) = shared.lock() else { break };
                b.0.extend_from_slice(&chunk[..n]);
                // Trimmed in halves, not per read: amortised O(1) a byte.
                if b.0.len() > 2 * CommandTrainer::OUTPUT_LIMIT {
                    let cut = b.0.len() - CommandTrainer::OUTPUT_LIMIT;
                    b.0.drain(..cut);
                    b.1 = true;
                }
            }
            let _ = tx.send(());
        });
        Tail { buf, done: spawned.ok().map(|_| rx) }
    }

    /// What was read by `deadline` (the end of the stream, normally), as text.
    fn finish(self, deadline: Instant) -> String {
        if let Some(done) = &self.done {
            let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let Ok(b) = self.buf.lock() else { return String::new() };
        let (bytes, mut cut) = (&b.0, b.1);
        let start = bytes.len().saturating_sub(CommandTrainer::OUTPUT_LIMIT);
        cut |= start > 0;
        let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
        if cut { format!("[earlier output dropped]\n{text}") } else { text }
    }
}

impl Trainer for CommandTrainer {
    fn kind(&self) -> String {
        Self::KIND.into()
    }

    fn train(&self, data: &TrainingData, out_dir: &Path) -> Result<Trained, TrainError> {
        data.check()?;
        if self.timeout.is_zero() {
            return Err(TrainError::Settings("the training command's timeout is zero".into()));
        }
        super::prepare_out_dir(out_dir)?;
        let out_dir = std::path::absolute(out_dir)
            .map_err(|source| TrainError::Io { path: out_dir.to_path_buf(), source })?;
        let inputs = tempfile::Builder::new()
            .prefix("modelwatch-training-")
            .tempdir()
            .map_err(|source| TrainError::Io { path: std::env::temp_dir(), source })?;
        let train = inputs.path().join("train.parquet");
        let holdout = inputs.path().join("holdout.parquet");
        data.train.write_parquet(&train)?;
        data.holdout.write_parquet(&holdout)?;
        let output = self.run(&train, &holdout, &out_dir)?;
        drop(inputs);

        let model_path = out_dir.join(MODEL_FILE);
        let model = LinearModel::load(&model_path)?;
        if model.features != data.features() {
            return Err(TrainError::Malformed {
                path: model_path,
                what: format!(
                    "its features {:?} are not the training data's {:?}, in that order",
                    model.features,
                    data.features()
                ),
            });
        }
        let metadata = super::read_metadata(&out_dir.join(METADATA_FILE))?;
        Ok(Trained {
            kind: Self::KIND.into(),
            files: super::list_files(&out_dir)?,
            artifact_dir: out_dir,
            metadata,
            output,
        })
    }
}
