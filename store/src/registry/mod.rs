//! The model registry (the seed's `MLModelManager`): versions of a model with their
//! metadata and artifact, the aliases `control`, `challenger` and `latest`, and an
//! append-only audit log of every change, in the store's data directory or its S3 bucket.
//!
//! # Layout (under `registry/` of the store's root; see `docs/storage-format.md`)
//!
//! ```text
//! registry/<model>/head.json                        aliases, statuses, audit count, last entry
//! registry/<model>/log/<seq, 12 digits>.json        audit entries 1, 2, ... (never rewritten)
//! registry/<model>/versions/<n>-<nonce>/version.json a version's immutable metadata
//! registry/<model>/versions/<n>-<nonce>/artifact/…  the artifact files, copied in
//! registry/<model>/versions/<n>-<nonce>/gate-report-<nonce>.json  a gate report
//! ```
//!
//! The head names every document it depends on with its checksum (`version.json`, the
//! artifact listing, the gate report), and its own rules (aliases, statuses, rollback
//! stack) are checked whenever it is read: an edited document is named, never trusted.
//!
//! # One commit point per change
//!
//! Every change of a model (a registration, a promotion, a rollback, a rejection, a status
//! or gate-report change) is one replacement of the model's `head.json`, which holds the
//! aliases, every version's status, the number of audit entries and the newest entry in
//! full. Locally the replacement is a compare-and-swap under an `flock` written through
//! [`publish`](crate::publish) (temporary file, fsync, rename, directory fsync); on S3 it is
//! a conditional put on the ETag read. The entry's own `log/` file is written after the
//! head, and before the next head replaces it (by whoever makes the next change), so a
//! crash at any moment leaves the aliases and the log in agreement: the log is the `log/`
//! files before the head's count and the head's newest entry. Each head carries the ID of
//! the write that made it, so a writer whose reply was lost can tell its own commit from
//! another's change. Decision record:
//! `docs/decisions/0007-model-registry.md`.
//!
//! # Example
//!
//! ```
//! use modelwatch_store::registry::{Action, Alias, NewVersion, Registry, RegistryConfig};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir()?;
//! let artifact = tempfile::tempdir()?;
//! std::fs::write(artifact.path().join("model.json"), br#"{"coef": [0.5]}"#)?;
//! let clock = Arc::new(modelwatch_agent::ManualClock::new(modelwatch_agent::Timestamp::from_secs(1_764_115_200)));
//! let reg = Registry::open(RegistryConfig::new(dir.path(), clock))?;
//!
//! let v = reg.register(NewVersion::new("pii", "logistic", artifact.path()))?;
//! reg.promote("pii", v.meta.version, &Action::new("cli", "first model"))?;
//! assert_eq!(reg.alias("pii", Alias::Latest)?, Some(1));
//! assert_eq!(reg.log("pii")?.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod names;

pub use names::{MAX_LABEL, MAX_MODEL_NAME, MAX_REASON, QUOTED_CHARS, check_model, parse_version, quote};

use crate::fs::{Fs, RealFs};
use crate::objects::{ObjectStoreConfig, Objects, objects_for};
use crate::store::StoreError;
use modelwatch_agent::Clock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory (or key prefix) of the registry under the store's root.
pub const REGISTRY_DIR: &str = "registry";
/// The version of the head document's layout.
pub const HEAD_FORMAT: u32 = 1;

/// What went wrong in the registry; each names the model, version, alias or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A name, version, actor, reason or event ID the registry does not accept.
    #[error("invalid {what} {value}: {problem}")]
    Invalid {
        /// What was given (`model name`, `version`, `actor`, ...).
        what: &'static str,
        /// The value given, quoted, cut to its first [`QUOTED_CHARS`] characters and
        /// its length when longer (see [`quote`]).
        value: String,
        /// Why it is refused.
        problem: String,
    },
    /// No model of that name is registered.
    #[error("no model {model:?} in the registry")]
    UnknownModel {
        /// The model asked for.
        model: String,
    },
    /// The model has no such version.
    #[error("model {model:?} has no version {version}")]
    UnknownVersion {
        /// The model.
        model: String,
        /// The version asked for.
        version: u32,
    },
    /// An alias that points at no version yet.
    #[error("model {model:?} has no {alias} version")]
    NoAlias {
        /// The model.
        model: String,
        /// The alias.
        alias: Alias,
    },
    /// A promotion of the version that already is the control: nothing to do, nothing
    /// recorded (the command line says so and succeeds).
    #[error("version {version} of model {model:?} is already the control; nothing was recorded")]
    AlreadyControl {
        /// The model.
        model: String,
        /// The version.
        version: u32,
    },
    /// An operation the version's status or the model's history does not allow.
    #[error("model {model:?}: {problem}")]
    Refused {
        /// The model.
        model: String,
        /// Why (naming the version and its status).
        problem: String,
    },
    /// Another process changed the model between this one's read and its write; nothing
    /// was written.
    #[error(
        "conflict {alias} of model {model:?}: another process changed the model since it was read (after audit entry {seq}); nothing was written: read again and retry"
    )]
    Conflict {
        /// The model.
        model: String,
        /// What the operation did: `moving the control alias`, `registering a version`, ...
        alias: String,
        /// The audit entry count this process had read.
        seq: u64,
    },
    /// A registered artifact file that is missing or no longer matches its checksum.
    #[error("model {model:?} version {version}: artifact file {file:?} {problem}")]
    Tampered {
        /// The model.
        model: String,
        /// The version.
        version: u32,
        /// The file, relative to the artifact directory.
        file: String,
        /// `is missing`, or the checksums that differ.
        problem: String,
    },
    /// An artifact directory that cannot be registered.
    #[error("artifact directory {}: {problem}", path.display())]
    Artifact {
        /// The directory (or the file in it at fault).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A registry document that does not parse or contradicts another.
    #[error("{}: {problem}", path.display())]
    Corrupt {
        /// The document.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Reading or writing the store's objects failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file operation failed.
    // The error is not a `source`: it is in the message already, and a chain printer would
    // say it twice ("Permission denied: Permission denied").
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |error| RegistryError::Io { path: path.to_path_buf(), error }
}

/// A version's status; it changes only through recorded operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Registered, not yet judged.
    Candidate,
    /// Judged and refused (by the gate or by hand); never promoted.
    Rejected,
    /// Serving part of the traffic beside the control.
    Canary,
    /// The version serving the traffic.
    Control,
    /// A former control.
    Retired,
}

impl Status {
    /// The name used in documents and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Candidate => "candidate",
            Status::Rejected => "rejected",
            Status::Canary => "canary",
            Status::Control => "control",
            Status::Retired => "retired",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names that point at a version of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alias {
    /// The version serving the traffic.
    Control,
    /// The version being tried against the control.
    Challenger,
    /// The version most recently made control (by a promotion or a rollback): the seed's
    /// `MLModelManager` "latest" pointer.
    Latest,
}

impl Alias {
    /// Every alias.
    pub const ALL: [Alias; 3] = [Alias::Control, Alias::Challenger, Alias::Latest];

    /// The alias's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alias::Control => "control",
            Alias::Challenger => "challenger",
            Alias::Latest => "latest",
        }
    }

    /// The alias of that name.
    pub fn parse(s: &str) -> Option<Alias> {
        Alias::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Alias {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where each alias of a model points.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aliases {
    /// The version serving the traffic.
    pub control: Option<u32>,
    /// The version being tried against the control.
    pub challenger: Option<u32>,
    /// The version most recently made control.
    pub latest: Option<u32>,
}

impl Aliases {
    /// Where `alias` points.
    pub fn get(&self, alias: Alias) -> Option<u32> {
        match alias {
            Alias::Control => self.control,
            Alias::Challenger => self.challenger,
            Alias::Latest => self.latest,
        }
    }

    /// The aliases pointing at `version`.
    pub fn of(&self, version: u32) -> Vec<Alias> {
        Alias::ALL.into_iter().filter(|a| self.get(*a) == Some(version)).collect()
    }
}

/// The time range of the examples a version was trained on, ms since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingWindow {
    /// First example's time (inclusive).
    pub from_ms: i64,
    /// Last example's time (exclusive).
    pub to_ms: i64,
}

/// Hold-out metrics: name (`auc`, `precision`, ...) to value, overall and per segment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Over the whole hold-out set.
    pub overall: BTreeMap<String, f64>,
    /// Per segment, then per metric.
    pub segments: BTreeMap<String, BTreeMap<String, f64>>,
}

/// One file of a version's artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFile {
    /// Relative to the artifact directory, `/`-separated.
    pub path: String,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// A version's artifact: the files copied into the registry at registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Where the files are, relative to the store's root (a directory or key prefix).
    pub path: String,
    /// SHA-256 over the listing `"<sha256>  <path>\n"` of every file in path order (the
    /// format of `sha256sum`), so one checksum covers names and contents.
    pub sha256: String,
    /// Every file, in path order.
    pub files: Vec<ArtifactFile>,
}

/// What a trainer knows about a version it made, the fields a [`NewVersion`] hands in and
/// its [`VersionMeta`] keeps: one struct in both, so a field added for one is not forgotten
/// in the other. `A` is the artifact: in a [`NewVersion`] the directory of files to copy
/// in, in a [`VersionMeta`] the files copied in with their checksums. The artifact is one
/// of these fields (and the model's name is not) so that, flattened into `version.json`,
/// they keep the key order registries on disk have and `docs/storage-format.md` gives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Training<A = Artifact> {
    /// Who trained it and how to load it (`logistic`, `command`, `closure:<name>`, ...): the
    /// registry only stores it.
    pub trainer_kind: String,
    /// The examples it was trained on.
    pub training_window: TrainingWindow,
    /// How many examples it was trained on.
    pub rows: u64,
    /// Its feature schema: the names of its inputs, in order.
    pub features: Vec<String>,
    /// Hold-out metrics, overall and per segment.
    pub metrics: Metrics,
    /// Feature importance as the trainer or the gate computed it (opaque JSON; `null` if
    /// none).
    pub feature_importance: serde_json::Value,
    /// Correlation between the features on the training rows (opaque JSON, written by
    /// `modelwatch::features::correlation`); `null` if none, as in every version registered
    /// before it was computed: the key is then left out of `version.json`, so those files
    /// read and write back byte for byte.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub correlation: serde_json::Value,
    /// The record of the training/hold-out split from the training-data code (opaque JSON;
    /// `null` if none).
    pub split: serde_json::Value,
    /// The artifact: a directory of files to register (nested directories allowed, symbolic
    /// links not), then the files copied in and their checksums.
    pub artifact: A,
    /// The version it was trained to replace, if any; it must exist when registered.
    pub parent: Option<u32>,
    /// The event (a retraining trigger's) that caused it, if any.
    pub event_id: Option<String>,
}

impl<A> Training<A> {
    /// The same fields with `artifact` for the artifact. The literal names every field (a
    /// changed type parameter allows no `..self`), so a field added to [`Training`] is a
    /// compile error here rather than a value dropped at registration.
    fn with_artifact<B>(self, artifact: B) -> Training<B> {
        Training {
            trainer_kind: self.trainer_kind,
            training_window: self.training_window,
            rows: self.rows,
            features: self.features,
            metrics: self.metrics,
            feature_importance: self.feature_importance,
            correlation: self.correlation,
            split: self.split,
            artifact,
            parent: self.parent,
            event_id: self.event_id,
        }
    }
}

/// A version's metadata, fixed at registration (`version.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// The model.
    pub model: String,
    /// Its number, from 1.
    pub version: u32,
    /// When it was registered (the registry's clock), ms since the epoch.
    pub created_at_ms: i64,
    /// What its trainer made and reported, as registered, with the artifact's files.
    #[serde(flatten)]
    pub training: Training,
}

/// A version as the registry knows it now: its fixed metadata, its status, its gate
/// report and the aliases pointing at it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Fixed at registration.
    #[serde(flatten)]
    pub meta: VersionMeta,
    /// Its status now.
    pub status: Status,
    /// The gate's report on it (opaque to the registry), once there is one.
    pub gate_report: Option<serde_json::Value>,
    /// The aliases pointing at it now.
    pub aliases: Vec<Alias>,
}

/// A version to register: everything a trainer knows about what it made. Build it with
/// [`NewVersion::new`] and set the fields of [`training`](NewVersion::training) it has;
/// [`Registry::register`] copies the artifact directory's files in, checksums them, numbers
/// the version and records it as a `candidate` with a `register` audit entry.
#[derive(Clone, Debug)]
pub struct NewVersion {
    /// The model's name (see [`check_model`]).
    pub model: String,
    /// What the trainer made and reported; its artifact is the directory to copy in.
    pub training: Training<PathBuf>,
    /// Who registers it: `auto`, `cli` or a user.
    pub actor: String,
    /// Why, for the audit log.
    pub reason: String,
    /// What the trainer printed, for the audit log (truncated to [`MAX_OUTPUT`] bytes).
    pub trainer_output: Option<String>,
}

/// The most bytes of a trainer's output an audit entry keeps (the tail).
pub const MAX_OUTPUT: usize = 16 * 1024;

impl NewVersion {
    /// A version of `model` made by `trainer_kind` from the files in `artifact_dir`,
    /// registered by `auto` with empty metadata.
    pub fn new(model: &str, trainer_kind: &str, artifact_dir: impl Into<PathBuf>) -> NewVersion {
        NewVersion {
            model: model.to_string(),
            training: Training {
                trainer_kind: trainer_kind.to_string(),
                training_window: TrainingWindow::default(),
                rows: 0,
                features: Vec::new(),
                metrics: Metrics::default(),
                feature_importance: serde_json::Value::Null,
                correlation: serde_json::Value::Null,
                split: serde_json::Value::Null,
                artifact: artifact_dir.into(),
                parent: None,
                event_id: None,
            },
            actor: "auto".to_string(),
            reason: "registered".to_string(),
            trainer_output: None,
        }
    }
}

/// Who does an operation, why, and the event that caused it: what its audit entry records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// `auto`, `cli` or a user.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The event that caused it.
    pub event_id: Option<String>,
}

impl Action {
    /// An action by `actor` for `reason`, caused by no event.
    pub fn new(actor: &str, reason: &str) -> Action {
        Action { actor: actor.to_string(), reason: reason.to_string(), event_id: None }
    }

    /// The same action, caused by event `id`.
    pub fn event(mut self, id: &str) -> Action {
        self.event_id = Some(id.to_string());
        self
    }

    fn check(&self) -> Result<(), RegistryError> {
        names::check_label("actor", &self.actor)?;
        names::check_reason(&self.reason)?;
        if let Some(e) = &self.event_id {
            names::check_label("event ID", e)?;
        }
        Ok(())
    }
}

/// What an audit entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A version was registered (as a candidate).
    Register,
    /// A version was made control (and latest); the previous control retired.
    Promote,
    /// The control went back to the previous control; the one it replaced retired.
    Rollback,
    /// A version was rejected.
    Reject,
    /// The challenger alias moved.
    Challenger,
    /// A version's status changed otherwise (to canary, say).
    Status,
    /// A version's gate report was set.
    GateReport,
}

impl Op {
    /// The operation's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Register => "register",
            Op::Promote => "promote",
            Op::Rollback => "rollback",
            Op::Reject => "reject",
            Op::Challenger => "challenger",
            Op::Status => "status",
            Op::GateReport => "gate_report",
        }
    }
}

/// One entry of a model's audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its number, from 1, without gaps.
    pub seq: u64,
    /// When (the registry's clock), ms since the epoch.
    pub at_ms: i64,
    /// The model.
    pub model: String,
    /// What was done.
    pub op: Op,
    /// The version it was done to.
    pub version: Option<u32>,
    /// For a promotion or rollback, the control it replaced; for a challenger move, the
    /// previous challenger.
    pub previous: Option<u32>,
    /// The version's status after it.
    pub status: Option<Status>,
    /// `auto`, `cli` or a user.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The event that caused it.
    pub event_id: Option<String>,
    /// A trainer's output, for a registration (`null` otherwise: every entry has the same
    /// keys).
    #[serde(default)]
    pub output: Option<String>,
    /// What the registry did beyond the operation itself (a rollback skipping a former
    /// control that cannot serve, a rejection taking a version off the rollback stack).
    #[serde(default)]
    pub note: Option<String>,
}

/// A document of its own, named and checksummed by the head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DocRef {
    /// Its file name in the version's directory.
    file: String,
    /// SHA-256 of its bytes.
    sha256: String,
    /// Its size.
    bytes: u64,
}

/// What the registry keeps per version in the head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct VersionState {
    /// The version's directory under `versions/`.
    dir: String,
    /// Its artifact's checksum, also here so that an edited `version.json` (one rewritten
    /// with new checksums to match a swapped artifact) is caught too.
    sha256: String,
    /// The checksum of its `version.json` bytes, so that any edit of the metadata (rows,
    /// metrics, parent, ...) is named as tampering. Empty in heads written before it was
    /// kept (then only the artifact checksum is compared).
    #[serde(default)]
    meta_sha256: String,
    status: Status,
    /// A gate report kept in the head itself (heads written before reports got their own
    /// documents; never written now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gate_report: Option<serde_json::Value>,
    /// The gate report's own document: reports can be large, and the head is rewritten on
    /// every change, so it keeps only their name and checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gate_doc: Option<DocRef>,
}

/// A model's head document: its one commit point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Head {
    format: u32,
    model: String,
    /// Audit entries committed; the newest is `last`.
    seq: u64,
    next_version: u32,
    aliases: Aliases,
    /// Former controls, oldest first: where a rollback goes.
    previous_controls: Vec<u32>,
    versions: BTreeMap<u32, VersionState>,
    last: AuditEntry,
    /// A name unique to the change that wrote this head: a writer whose conditional put got
    /// an error (a dropped response, and a retry that then found its own write) reads the
    /// head again and knows its change committed if it finds its ID here.
    #[serde(default)]
    write_id: String,
}

/// What a change did, for its audit entry.
struct Changed {
    op: Op,
    version: u32,
    previous: Option<u32>,
    note: Option<String>,
}

impl Changed {
    fn new(op: Op, version: u32, previous: Option<u32>) -> Changed {
        Changed { op, version, previous, note: None }
    }
}

/// The rules every head keeps (each change keeps them; a hand-edited head may not): what is
/// wrong, naming the alias, version or list at fault.
fn check_head(head: &Head) -> Result<(), String> {
    let status = |v: u32| head.versions.get(&v).map(|s| s.status);
    if let Some(max) = head.versions.keys().next_back()
        && head.next_version <= *max
    {
        return Err(format!("next_version is {}, but version {max} is registered", head.next_version));
    }
    for alias in Alias::ALL {
        let Some(v) = head.aliases.get(alias) else { continue };
        let ok: &[Status] = match alias {
            Alias::Control | Alias::Latest => &[Status::Control],
            Alias::Challenger => &[Status::Candidate, Status::Canary],
        };
        match status(v) {
            None => return Err(format!("the {alias} alias names version {v}, which is not registered")),
            Some(s) if !ok.contains(&s) => {
                return Err(format!("the {alias} alias names version {v}, whose status is {s}"));
            }
            Some(_) => {}
        }
    }
    // `latest` is the version most recently made control, which is the control: promotions
    // and rollbacks move both, and nothing else moves either.
    if head.aliases.latest != head.aliases.control {
        return Err(format!(
            "the latest alias names {:?} but the control alias {:?}; they move together",
            head.aliases.latest, head.aliases.control
        ));
    }
    let controls: Vec<u32> =
        head.versions.iter().filter(|(_, s)| s.status == Status::Control).map(|(v, _)| *v).collect();
    if controls.len() > 1 || controls.first().copied() != head.aliases.control {
        return Err(format!(
            "versions {controls:?} have the status control, but the control alias names {:?}",
            head.aliases.control
        ));
    }
    for v in &head.previous_controls {
        match status(*v) {
            None => return Err(format!("the rollback stack names version {v}, which is not registered")),
            Some(Status::Rejected) => {
                return Err(format!("the rollback stack names version {v}, which was rejected"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A model's state as read, with what a later change must find unchanged to apply:
/// [`Registry::promote_from`] moves the control only if no other change came in between.
#[derive(Clone, Debug)]
pub struct ModelState {
    head: Head,
    /// The bucket's ETag of the head read (`None` locally, where the count is compared).
    etag: Option<String>,
}

impl ModelState {
    /// The model.
    pub fn model(&self) -> &str {
        &self.head.model
    }

    /// How many audit entries the model has.
    pub fn seq(&self) -> u64 {
        self.head.seq
    }

    /// Where its aliases point.
    pub fn aliases(&self) -> &Aliases {
        &self.head.aliases
    }

    /// The newest audit entry (the head holds it whole, even before its log file exists).
    pub fn newest(&self) -> &AuditEntry {
        &self.head.last
    }

    /// Every version with its status, in order.
    pub fn statuses(&self) -> Vec<(u32, Status)> {
        self.head.versions.iter().map(|(v, s)| (*v, s.status)).collect()
    }

    /// The former controls a rollback goes back through, most recent last.
    pub fn previous_controls(&self) -> &[u32] {
        &self.head.previous_controls
    }
}

/// Where a registry lives and its clock.
#[derive(Clone)]
pub struct RegistryConfig {
    /// The store's data directory (the registry is its `registry/` directory unless
    /// `objects` is given).
    pub dir: PathBuf,
    /// The store's bucket: the registry is under its `registry/` prefix.
    pub objects: Option<ObjectStoreConfig>,
    /// Where creation and audit times come from.
    pub clock: Arc<dyn Clock>,
}

impl RegistryConfig {
    /// A registry in `dir`'s `registry/` directory.
    pub fn new(dir: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> RegistryConfig {
        RegistryConfig { dir: dir.into(), objects: None, clock }
    }
}

/// The model registry of a store (see the module documentation). Every method reads the
/// documents afresh, so several processes can share one registry; a change made from a
/// stale read fails with [`RegistryError::Conflict`] and writes nothing.
pub struct Registry {
    objects: Box<dyn Objects>,
    /// The data directory when the registry is local: changes are serialised by an `flock`
    /// there (a bucket has its conditional puts instead).
    local: Option<PathBuf>,
    clock: Arc<dyn Clock>,
}

fn head_rel(model: &str) -> String {
    format!("{REGISTRY_DIR}/{model}/head.json")
}

fn entry_rel(model: &str, seq: u64) -> String {
    format!("{REGISTRY_DIR}/{model}/log/{seq:012}.json")
}

fn version_rel(model: &str, dir: &str) -> String {
    format!("{REGISTRY_DIR}/{model}/versions/{dir}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// How many times [`Registry::register`] tries to commit before it gives up with the
/// conflict.
pub const REGISTER_ATTEMPTS: u32 = 10;

/// The buffer artifacts are copied and hashed through, in bytes.
pub const COPY_BUFFER: usize = 256 * 1024;

/// Copies `from` into `to` (if any) through a [`COPY_BUFFER`]-sized buffer, hashing it:
/// its SHA-256 and size, or the error with whether it came from reading.
fn copy_hashing(
    from: &mut impl std::io::Read,
    mut to: Option<&mut dyn std::io::Write>,
) -> Result<(String, u64), (bool, std::io::Error)> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((true, e)),
        };
        ctx.update(&buf[..n]);
        if let Some(to) = to.as_mut() {
            to.write_all(&buf[..n]).map_err(|e| (false, e))?;
        }
        total += n as u64;
    }
    Ok((hex(ctx.finish().as_ref()), total))
}

/// Refuses a metric that is not a finite number: JSON has no NaN, so it would be written as
/// `null` and the version could no longer be read. A trainer leaves a figure it could not
/// compute out of the map.
fn check_metrics(metrics: &Metrics) -> Result<(), RegistryError> {
    let segments = metrics.segments.iter().flat_map(|(seg, m)| m.iter().map(move |(k, v)| (Some(seg), k, v)));
    for (segment, name, value) in metrics.overall.iter().map(|(k, v)| (None, k, v)).chain(segments) {
        if !value.is_finite() {
            let at = segment.map_or_else(|| "overall".to_string(), |s| format!("segment {}", quote(s)));
            return Err(names::invalid(
                "metric",
                name,
                format!("{at} is {value}; leave a figure that could not be computed out of the map"),
            ));
        }
    }
    Ok(())
}

fn listing_sha256(files: &[ArtifactFile]) -> String {
    let listing: String = files.iter().map(|f| format!("{}  {}\n", f.sha256, f.path)).collect();
    sha256(listing.as_bytes())
}

/// A name no other registration picks: a registration that lost a race (or crashed) leaves
/// its files in a directory no head names, never over the winner's.
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The artifact directory's files, relative paths with `/`, in order.
fn walk(root: &Path) -> Result<Vec<(String, PathBuf)>, RegistryError> {
    let bad = |path: &Path, problem: String| RegistryError::Artifact { path: path.to_path_buf(), problem };
    if !root.is_dir() {
        return Err(bad(root, "not a directory".into()));
    }
    let mut out = Vec::new();
    let mut dirs = vec![(String::new(), root.to_path_buf())];
    while let Some((rel, dir)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| bad(&path, format!("the file name {n:?} is not UTF-8")))?;
            names::check_file_name(&name)?;
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_symlink() {
                return Err(bad(&path, "is a symbolic link; the registry copies regular files only".into()));
            } else if kind.is_dir() {
                dirs.push((child, path));
            } else if kind.is_file() {
                out.push((child, path));
            } else {
                return Err(bad(&path, "is not a regular file".into()));
            }
        }
    }
    if out.is_empty() {
        return Err(bad(root, "holds no files: a trainer must write its model there".into()));
    }
    out.sort();
    Ok(out)
}

impl Registry {
    /// Opens the registry of a store (nothing is created until the first registration).
    pub fn open(config: RegistryConfig) -> Result<Registry, RegistryError> {
        let fs: Arc<dyn Fs> = Arc::new(RealFs);
        let objects = objects_for(&fs, &config.dir, config.objects.as_ref())?;
        let local = config.objects.is_none().then(|| config.dir.clone());
        Ok(Registry { objects, local, clock: config.clock })
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millis() as i64
    }

    /// Where `rel` is, for messages.
    pub fn location(&self, rel: &str) -> PathBuf {
        self.objects.location(rel)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, rel: &str, bytes: &[u8]) -> Result<T, RegistryError> {
        serde_json::from_slice(bytes).map_err(|e| RegistryError::Corrupt {
            path: self.location(rel),
            problem: format!("does not parse: {e}"),
        })
    }

    /// The models in the registry, sorted.
    pub fn models(&self) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        for m in self.objects.list_dirs(REGISTRY_DIR)? {
            // A directory without a head is a registration that never committed.
            if check_model(&m).is_ok() && self.objects.get(&head_rel(&m))?.is_some() {
                out.push(m);
            }
        }
        Ok(out)
    }

    fn read_head(&self, model: &str) -> Result<Option<ModelState>, RegistryError> {
        check_model(model)?;
        let rel = head_rel(model);
        let Some((bytes, etag)) = self.objects.get_versioned(&rel)? else { return Ok(None) };
        let head: Head = self.parse(&rel, &bytes)?;
        if head.format != HEAD_FORMAT || head.model != model || head.last.seq != head.seq {
            return Err(RegistryError::Corrupt {
                path: self.location(&rel),
                problem: format!(
                    "format {}, model {:?}, {} entries with the newest numbered {}: not a head of model {model:?} this version reads",
                    head.format, head.model, head.seq, head.last.seq
                ),
            });
        }
        if let Err(problem) = check_head(&head) {
            return Err(RegistryError::Corrupt { path: self.location(&rel), problem });
        }
        Ok(Some(ModelState { head, etag }))
    }

    /// The model's state now (aliases, statuses, audit count), for a later
    /// [`promote_from`](Registry::promote_from).
    pub fn state(&self, model: &str) -> Result<ModelState, RegistryError> {
        self.read_head(model)?.ok_or_else(|| RegistryError::UnknownModel { model: model.to_string() })
    }

    /// Where `alias` of `model` points.
    pub fn alias(&self, model: &str, alias: Alias) -> Result<Option<u32>, RegistryError> {
        Ok(self.state(model)?.head.aliases.get(alias))
    }

    fn info(&self, state: &ModelState, version: u32) -> Result<VersionInfo, RegistryError> {
        let model = state.model();
        let vs = state
            .head
            .versions
            .get(&version)
            .ok_or_else(|| RegistryError::UnknownVersion { model: model.to_string(), version })?;
        let rel = format!("{}/version.json", version_rel(model, &vs.dir));
        let bytes = self.objects.get(&rel)?.ok_or_else(|| RegistryError::Corrupt {
            path: self.location(&rel),
            problem: format!("missing, though the head of model {model:?} lists version {version}"),
        })?;
        if !vs.meta_sha256.is_empty() && sha256(&bytes) != vs.meta_sha256 {
            return Err(RegistryError::Tampered {
                model: model.to_string(),
                version,
                file: "version.json".into(),
                problem: format!(
                    "was changed after registration: its SHA-256 is {}, the head registered {} ({})",
                    sha256(&bytes),
                    vs.meta_sha256,
                    self.location(&rel).display()
                ),
            });
        }
        let meta: VersionMeta = self.parse(&rel, &bytes)?;
        if meta.training.artifact.sha256 != vs.sha256 {
            return Err(RegistryError::Tampered {
                model: model.to_string(),
                version,
                file: "version.json".into(),
                problem: format!(
                    "was changed after registration: it lists an artifact with SHA-256 {}, the head registered {} ({})",
                    meta.training.artifact.sha256,
                    vs.sha256,
                    self.location(&rel).display()
                ),
            });
        }
        if meta.version != version || meta.model != model {
            return Err(RegistryError::Corrupt {
                path: self.location(&rel),
                problem: format!(
                    "holds {} version {}, not {model} version {version}",
                    meta.model, meta.version
                ),
            });
        }
        let gate_report = match &vs.gate_doc {
            None => vs.gate_report.clone(),
            Some(doc) => Some(self.read_doc(model, version, &vs.dir, doc)?),
        };
        Ok(VersionInfo { meta, status: vs.status, gate_report, aliases: state.head.aliases.of(version) })
    }

    /// Reads a version's document the head names, checked against its checksum.
    fn read_doc(
        &self,
        model: &str,
        version: u32,
        dir: &str,
        doc: &DocRef,
    ) -> Result<serde_json::Value, RegistryError> {
        let rel = format!("{}/{}", version_rel(model, dir), doc.file);
        let bytes = self.objects.get(&rel)?.ok_or_else(|| RegistryError::Corrupt {
            path: self.location(&rel),
            problem: format!("missing, though the head of model {model:?} names it for version {version}"),
        })?;
        if sha256(&bytes) != doc.sha256 {
            return Err(RegistryError::Tampered {
                model: model.to_string(),
                version,
                file: doc.file.clone(),
                problem: format!(
                    "was changed after it was recorded: SHA-256 {}, the head registered {} ({})",
                    sha256(&bytes),
                    doc.sha256,
                    self.location(&rel).display()
                ),
            });
        }
        self.parse(&rel, &bytes)
    }

    /// One version of a model.
    pub fn get(&self, model: &str, version: u32) -> Result<VersionInfo, RegistryError> {
        self.info(&self.state(model)?, version)
    }

    /// The version `alias` points at.
    pub fn get_alias(&self, model: &str, alias: Alias) -> Result<VersionInfo, RegistryError> {
        let state = self.state(model)?;
        let v = state
            .head
            .aliases
            .get(alias)
            .ok_or_else(|| RegistryError::NoAlias { model: model.to_string(), alias })?;
        self.info(&state, v)
    }

    /// Every version of a model, oldest first; the first unreadable one fails it all (see
    /// [`versions_each`](Registry::versions_each) to see past it).
    pub fn versions(&self, model: &str) -> Result<Vec<VersionInfo>, RegistryError> {
        self.versions_each(model)?.into_iter().collect()
    }

    /// Every version of a model, oldest first, each read on its own: one whose documents are
    /// missing, do not parse or were changed is its error (naming the document), and the
    /// others are still read. Fails only when the head itself cannot be read.
    pub fn versions_each(
        &self,
        model: &str,
    ) -> Result<Vec<Result<VersionInfo, RegistryError>>, RegistryError> {
        let state = self.state(model)?;
        Ok(state.head.versions.keys().map(|v| self.info(&state, *v)).collect())
    }

    /// A model's audit log, oldest first: every `log/` file before the head's count, then
    /// the head's newest entry (whose file may not be written yet).
    pub fn log(&self, model: &str) -> Result<Vec<AuditEntry>, RegistryError> {
        self.log_each(model)?.into_iter().collect()
    }

    /// A model's audit log like [`log`](Registry::log), each entry read on its own: a
    /// missing or unreadable entry file is its error (naming the file), and the others are
    /// still read. Fails only when the head itself cannot be read.
    pub fn log_each(&self, model: &str) -> Result<Vec<Result<AuditEntry, RegistryError>>, RegistryError> {
        let state = self.state(model)?;
        let mut out = Vec::with_capacity(state.head.seq as usize);
        for seq in 1..state.head.seq {
            out.push(self.read_entry(model, seq, state.head.seq));
        }
        out.push(Ok(state.head.last.clone()));
        Ok(out)
    }

    fn read_entry(&self, model: &str, seq: u64, count: u64) -> Result<AuditEntry, RegistryError> {
        let rel = entry_rel(model, seq);
        let bytes = self.objects.get(&rel)?.ok_or_else(|| RegistryError::Corrupt {
            path: self.location(&rel),
            problem: format!("audit entry {seq} of model {model:?} is missing (the head counts {count})"),
        })?;
        let entry: AuditEntry = self.parse(&rel, &bytes)?;
        if entry.seq != seq || entry.model != model {
            return Err(RegistryError::Corrupt {
                path: self.location(&rel),
                problem: format!(
                    "holds entry {} of {:?}, not entry {seq} of {model:?}",
                    entry.seq, entry.model
                ),
            });
        }
        Ok(entry)
    }

    /// Writes an audit entry's file unless it is there: its content is fixed once its head
    /// committed, so whoever writes it writes the same bytes.
    fn write_entry(&self, entry: &AuditEntry) -> Result<(), RegistryError> {
        let rel = entry_rel(&entry.model, entry.seq);
        if self.local.is_some() {
            // Under the model's lock: nobody else writes it now.
            if self.objects.get(&rel)?.is_none() {
                self.objects.put(&rel, &to_json(entry))?;
            }
            return Ok(());
        }
        match self.objects.put_versioned(&rel, &to_json(entry), None) {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the model's lock (local registries only; released when the file closes, so a
    /// killed process never leaves it held).
    fn lock(&self, model: &str) -> Result<Option<std::fs::File>, RegistryError> {
        let Some(root) = &self.local else { return Ok(None) };
        let dir = root.join(REGISTRY_DIR).join(model);
        RealFs.create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(Some(file))
    }

    /// Replaces the head read as `seen` (`None`: the model is new) by `head`, only if
    /// nobody replaced it since; then writes the new entry's file.
    fn commit(&self, seen: Option<&ModelState>, head: &mut Head, alias: &str) -> Result<(), RegistryError> {
        let _lock = self.lock(&head.model)?;
        self.commit_locked(seen, head, alias)
    }

    /// [`commit`](Registry::commit) with the model's lock already taken by the caller
    /// (locally; a bucket has none).
    fn commit_locked(
        &self,
        seen: Option<&ModelState>,
        head: &mut Head,
        alias: &str,
    ) -> Result<(), RegistryError> {
        head.write_id = nonce();
        let head = &*head;
        let model = head.model.as_str();
        let conflict = || RegistryError::Conflict {
            model: model.to_string(),
            alias: alias.to_string(),
            seq: seen.map_or(0, |s| s.head.seq),
        };
        let rel = head_rel(model);
        if self.local.is_some() {
            // The compare of the compare-and-swap: under the lock nobody moves it now.
            let now = self.read_head(model)?;
            if now.as_ref().map(|s| s.head.seq) != seen.map(|s| s.head.seq) {
                return Err(conflict());
            }
        }
        // The entry before this one must have its file before its head is replaced (its
        // writer may have died after committing it).
        if let Some(s) = seen {
            self.write_entry(&s.head.last)?;
        }
        let etag = seen.and_then(|s| s.etag.as_deref());
        let put = if self.local.is_some() {
            self.objects.put(&rel, &to_json(head))
        } else {
            self.objects.put_versioned(&rel, &to_json(head), etag).map(|_| ())
        };
        if let Err(e) = put {
            // The write may have happened though its answer was lost: a dropped response whose
            // retry then failed its own precondition (412) looks like another writer's change.
            // The head says whose change it holds.
            let ours = matches!(self.read_head(model), Ok(Some(s)) if s.head.write_id == head.write_id);
            if !ours {
                return Err(match e {
                    StoreError::Conflict { .. } => conflict(),
                    e => e.into(),
                });
            }
            tracing::info!(
                "model {model}: the head write answered {e}, but the head holds this change: committed"
            );
        }
        // Committed: a failure from here on is repaired by the next change, never an error
        // that would make the caller believe nothing happened.
        if let Err(e) = self.write_entry(&head.last) {
            tracing::warn!("model {model}: audit entry {} left in the head only: {e}", head.seq);
        }
        Ok(())
    }

    /// Applies `change` to the head read as `seen` and commits it with one audit entry.
    fn change(
        &self,
        seen: &ModelState,
        action: &Action,
        alias: &str,
        change: impl FnOnce(&mut Head) -> Result<Changed, RegistryError>,
    ) -> Result<AuditEntry, RegistryError> {
        action.check()?;
        let mut head = seen.head.clone();
        let Changed { op, version, previous, note } = change(&mut head)?;
        head.seq += 1;
        head.last = AuditEntry {
            seq: head.seq,
            at_ms: self.now_after(&seen.head),
            model: head.model.clone(),
            op,
            version: Some(version),
            previous,
            status: head.versions.get(&version).map(|v| v.status),
            actor: action.actor.clone(),
            reason: action.reason.clone(),
            event_id: action.event_id.clone(),
            output: None,
            note,
        };
        self.commit(Some(seen), &mut head, alias)?;
        Ok(head.last)
    }

    /// The time of a change after `head`'s newest entry: the clock's, but never before that
    /// entry's (a clock set back must not make the log or the versions go back in time).
    fn now_after(&self, head: &Head) -> i64 {
        self.now_ms().max(head.last.at_ms)
    }

    /// Registers a version: copies its artifact files in (streaming, in bounded memory
    /// locally), checksums them, and records it as a `candidate` numbered after the model's
    /// newest version. Locally the number is taken under the model's lock, so concurrent
    /// registrations never conflict; on a bucket a conflict is retried here (up to
    /// [`REGISTER_ATTEMPTS`] times, reading the head again): nothing the caller decided
    /// depends on the head, and the files are copied only once.
    pub fn register(&self, new: NewVersion) -> Result<VersionInfo, RegistryError> {
        let model = new.model.as_str();
        let t = &new.training;
        check_model(model)?;
        names::check_label("trainer kind", &t.trainer_kind)?;
        Action { actor: new.actor.clone(), reason: new.reason.clone(), event_id: t.event_id.clone() }
            .check()?;
        if let Some(f) = t.features.iter().find(|f| f.is_empty() || f.chars().any(char::is_control)) {
            return Err(names::invalid("feature name", f, "empty or holds a control character"));
        }
        check_metrics(&t.metrics)?;
        if t.training_window.from_ms > t.training_window.to_ms {
            return Err(names::invalid(
                "training window",
                &format!("{}..{}", t.training_window.from_ms, t.training_window.to_ms),
                "ends before it starts",
            ));
        }
        let files = walk(&t.artifact)?;
        let mut seen = self.read_head(model)?;
        let first = seen.as_ref().map_or(1, |s| s.head.next_version);
        if let Some(p) = t.parent
            && !seen.as_ref().is_some_and(|s| s.head.versions.contains_key(&p))
        {
            return Err(RegistryError::UnknownVersion { model: model.to_string(), version: p });
        }
        // Named after the number first tried: a retried registration keeps its directory
        // (the head names each version's directory, so the number in it is only a hint).
        let dir = format!("{first}-{}", nonce());
        let base = version_rel(model, &dir);
        let mut listed = Vec::with_capacity(files.len());
        for (rel, path) in &files {
            let (sha256, bytes) = self.copy_in(path, &format!("{base}/artifact/{rel}"))?;
            listed.push(ArtifactFile { path: rel.clone(), sha256, bytes });
        }
        let artifact =
            Artifact { path: format!("{base}/artifact"), sha256: listing_sha256(&listed), files: listed };
        let training = t.clone().with_artifact(artifact);
        let output = new.trainer_output.as_ref().map(|o| {
            let mut start = o.len().saturating_sub(MAX_OUTPUT);
            while !o.is_char_boundary(start) {
                start += 1;
            }
            o[start..].to_string()
        });
        let mut attempt = 1;
        loop {
            // Locally the number is taken under the model's lock, held through the commit, so
            // local registrations never conflict; a bucket has no lock, so there a conflict
            // is retried from a fresh read.
            let lock = self.lock(model)?;
            if lock.is_some() || attempt > 1 {
                seen = self.read_head(model)?;
            }
            let version = seen.as_ref().map_or(1, |s| s.head.next_version);
            let now = seen.as_ref().map_or_else(|| self.now_ms(), |s| self.now_after(&s.head));
            let meta = VersionMeta {
                model: model.to_string(),
                version,
                created_at_ms: now,
                training: training.clone(),
            };
            let meta_bytes = to_json(&meta);
            self.objects.put(&format!("{base}/version.json"), &meta_bytes)?;
            let seq = seen.as_ref().map_or(0, |s| s.head.seq) + 1;
            let entry = AuditEntry {
                seq,
                at_ms: now,
                model: model.to_string(),
                op: Op::Register,
                version: Some(version),
                previous: None,
                status: Some(Status::Candidate),
                actor: new.actor.clone(),
                reason: new.reason.clone(),
                event_id: t.event_id.clone(),
                output: output.clone(),
                note: (attempt > 1).then(|| format!("registered at attempt {attempt}, after conflicts")),
            };
            let mut head = match &seen {
                Some(s) => s.head.clone(),
                None => Head {
                    format: HEAD_FORMAT,
                    model: model.to_string(),
                    seq: 0,
                    next_version: 1,
                    aliases: Aliases::default(),
                    previous_controls: Vec::new(),
                    versions: BTreeMap::new(),
                    last: entry.clone(),
                    write_id: String::new(),
                },
            };
            head.seq = seq;
            head.next_version = version + 1;
            head.versions.insert(
                version,
                VersionState {
                    dir: dir.clone(),
                    sha256: meta.training.artifact.sha256.clone(),
                    meta_sha256: sha256(&meta_bytes),
                    status: Status::Candidate,
                    gate_report: None,
                    gate_doc: None,
                },
            );
            head.last = entry;
            match self.commit_locked(seen.as_ref(), &mut head, "registering a version") {
                Ok(()) => {
                    return Ok(VersionInfo {
                        meta,
                        status: Status::Candidate,
                        gate_report: None,
                        aliases: Vec::new(),
                    });
                }
                Err(RegistryError::Conflict { .. }) if attempt < REGISTER_ATTEMPTS => {
                    drop(lock);
                    // A jittered pause, so that writers racing on a bucket do not collide again
                    // in lockstep.
                    let jitter = u64::from_str_radix(&nonce()[..4], 16).unwrap_or(0) % 50;
                    std::thread::sleep(std::time::Duration::from_millis(u64::from(attempt) * 10 + jitter));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies the file at `path` to `rel`, hashing it on the way: locally through a
    /// [`COPY_BUFFER`]-sized buffer (a 500 MB model must not take 500 MB of memory), made
    /// durable before the head that names it can commit. Its SHA-256 and size.
    fn copy_in(&self, path: &Path, rel: &str) -> Result<(String, u64), RegistryError> {
        if self.local.is_none() {
            // A bucket takes the object in one PUT (see the decision record: multipart
            // uploads for big artifacts are not done yet).
            let bytes = std::fs::read(path).map_err(io(path))?;
            self.objects.put(rel, &bytes)?;
            return Ok((sha256(&bytes), bytes.len() as u64));
        }
        let dest = self.location(rel);
        let dir = dest.parent().unwrap_or(Path::new("."));
        // Each directory it makes is synced into its parent: the head will name them.
        RealFs.create_dir_all(dir).map_err(io(dir))?;
        let mut from = std::fs::File::open(path).map_err(io(path))?;
        let mut to = std::fs::File::create(&dest).map_err(io(&dest))?;
        let digest = copy_hashing(&mut from, Some(&mut to)).map_err(|(on_read, e)| RegistryError::Io {
            path: if on_read { path.to_path_buf() } else { dest.clone() },
            error: e,
        })?;
        to.sync_all().map_err(io(&dest))?;
        // The directory entry too, so that the file survives a crash once the head names it.
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        Ok(digest)
    }

    fn status_of(head: &Head, version: u32) -> Result<Status, RegistryError> {
        head.versions
            .get(&version)
            .map(|v| v.status)
            .ok_or_else(|| RegistryError::UnknownVersion { model: head.model.clone(), version })
    }

    fn set(head: &mut Head, version: u32, status: Status) {
        if let Some(v) = head.versions.get_mut(&version) {
            v.status = status;
        }
    }

    fn refuse(head: &Head, problem: String) -> RegistryError {
        RegistryError::Refused { model: head.model.clone(), problem }
    }

    /// Makes `version` the control (and `latest`), retiring the control it replaces.
    pub fn promote(&self, model: &str, version: u32, action: &Action) -> Result<AuditEntry, RegistryError> {
        self.promote_from(&self.state(model)?, version, action)
    }

    /// [`promote`](Registry::promote) from the state read as `seen`: if any change came in
    /// since, it fails with [`RegistryError::Conflict`] and changes nothing.
    pub fn promote_from(
        &self,
        seen: &ModelState,
        version: u32,
        action: &Action,
    ) -> Result<AuditEntry, RegistryError> {
        self.change(seen, action, "moving the control alias", |head| {
            match Self::status_of(head, version)? {
                Status::Control => {
                    return Err(RegistryError::AlreadyControl { model: head.model.clone(), version });
                }
                Status::Rejected => {
                    return Err(Self::refuse(
                        head,
                        format!("version {version} was rejected; it cannot be promoted"),
                    ));
                }
                Status::Candidate | Status::Canary | Status::Retired => {}
            }
            let previous = head.aliases.control;
            if let Some(old) = previous {
                Self::set(head, old, Status::Retired);
                head.previous_controls.push(old);
            }
            Self::set(head, version, Status::Control);
            head.aliases.control = Some(version);
            head.aliases.latest = Some(version);
            if head.aliases.challenger == Some(version) {
                head.aliases.challenger = None;
            }
            Ok(Changed::new(Op::Promote, version, previous))
        })
    }

    /// Makes the previous control the control (and `latest`) again, retiring the one it
    /// replaces. Only a former control that can serve is gone back to: the control itself
    /// (promoted again since) is skipped, and the entry's `note` says so. A rejected one
    /// never is: a rejection takes it off the stack, and a head whose stack still names one
    /// is refused as corrupt when read (the skip here is a second guard).
    pub fn rollback(&self, model: &str, action: &Action) -> Result<AuditEntry, RegistryError> {
        let seen = self.state(model)?;
        self.change(&seen, action, "moving the control alias", |head| {
            let current = head.aliases.control;
            let mut skipped = Vec::new();
            let back = loop {
                let Some(back) = head.previous_controls.pop() else {
                    let also = if skipped.is_empty() {
                        String::new()
                    } else {
                        format!(" (former controls {} cannot serve)", skipped.join(", "))
                    };
                    return Err(Self::refuse(
                        head,
                        format!("there is no previous control to roll back to{also}"),
                    ));
                };
                match Self::status_of(head, back)? {
                    Status::Rejected => skipped.push(format!("{back} (rejected)")),
                    _ if Some(back) == current => skipped.push(format!("{back} (the control)")),
                    _ => break back,
                }
            };
            if let Some(c) = current {
                Self::set(head, c, Status::Retired);
            }
            Self::set(head, back, Status::Control);
            head.aliases.control = Some(back);
            head.aliases.latest = Some(back);
            if head.aliases.challenger == Some(back) {
                head.aliases.challenger = None;
            }
            let mut changed = Changed::new(Op::Rollback, back, current);
            if !skipped.is_empty() {
                changed.note = Some(format!("skipped former controls {}", skipped.join(", ")));
            }
            Ok(changed)
        })
    }

    /// Rejects `version` (not the control): it can no longer be promoted, and stops being
    /// the challenger.
    pub fn reject(&self, model: &str, version: u32, action: &Action) -> Result<AuditEntry, RegistryError> {
        self.reject_from(&self.state(model)?, version, action)
    }

    /// [`reject`](Registry::reject) from the state read as `seen`: if any change came in
    /// since, it fails with [`RegistryError::Conflict`] and changes nothing.
    pub fn reject_from(
        &self,
        seen: &ModelState,
        version: u32,
        action: &Action,
    ) -> Result<AuditEntry, RegistryError> {
        self.change(seen, action, "rejecting a version", |head| {
            match Self::status_of(head, version)? {
                Status::Control => {
                    return Err(Self::refuse(
                        head,
                        format!("version {version} is the control; roll back or promote another first"),
                    ));
                }
                Status::Rejected => {
                    return Err(Self::refuse(head, format!("version {version} is already rejected")));
                }
                _ => {}
            }
            Self::set(head, version, Status::Rejected);
            if head.aliases.challenger == Some(version) {
                head.aliases.challenger = None;
            }
            // A rejected version must never serve again, not even through a rollback.
            let stacked = head.previous_controls.len();
            head.previous_controls.retain(|v| *v != version);
            let mut changed = Changed::new(Op::Reject, version, None);
            if head.previous_controls.len() != stacked {
                changed.note = Some(format!("version {version} taken off the rollback stack"));
            }
            Ok(changed)
        })
    }

    /// Points the `challenger` alias at `version` (a candidate or canary).
    pub fn set_challenger(
        &self,
        model: &str,
        version: u32,
        action: &Action,
    ) -> Result<AuditEntry, RegistryError> {
        let seen = self.state(model)?;
        self.change(&seen, action, "moving the challenger alias", |head| {
            let status = Self::status_of(head, version)?;
            if !matches!(status, Status::Candidate | Status::Canary) {
                return Err(Self::refuse(
                    head,
                    format!(
                        "version {version} is {status}; only a candidate or canary can be the challenger"
                    ),
                ));
            }
            let previous = head.aliases.challenger;
            head.aliases.challenger = Some(version);
            Ok(Changed::new(Op::Challenger, version, previous))
        })
    }

    /// Sets a version's status to `candidate`, `canary` or `retired` (control and
    /// rejected only through [`promote`](Registry::promote), [`rollback`](Registry::rollback)
    /// and [`reject`](Registry::reject)); the control cannot be moved this way.
    pub fn set_status(
        &self,
        model: &str,
        version: u32,
        status: Status,
        action: &Action,
    ) -> Result<AuditEntry, RegistryError> {
        let seen = self.state(model)?;
        self.change(&seen, action, "changing a status", |head| {
            let now = Self::status_of(head, version)?;
            if matches!(status, Status::Control | Status::Rejected) || now == Status::Control {
                return Err(Self::refuse(
                    head,
                    format!("version {version} cannot go from {now} to {status} this way (promote, roll back or reject)"),
                ));
            }
            Self::set(head, version, status);
            if status == Status::Retired && head.aliases.challenger == Some(version) {
                head.aliases.challenger = None;
            }
            Ok(Changed::new(Op::Status, version, None))
        })
    }

    /// Records the gate's report on `version` (replacing an earlier one). The report is a
    /// document of its own next to the version (`gate-report-<nonce>.json`), the head keeps
    /// its name and checksum: the head, rewritten on every change, stays small.
    pub fn set_gate_report(
        &self,
        model: &str,
        version: u32,
        report: serde_json::Value,
        action: &Action,
    ) -> Result<AuditEntry, RegistryError> {
        let seen = self.state(model)?;
        action.check()?;
        let dir = seen
            .head
            .versions
            .get(&version)
            .map(|v| v.dir.clone())
            .ok_or_else(|| RegistryError::UnknownVersion { model: model.to_string(), version })?;
        let bytes = to_json(&report);
        let doc = DocRef {
            file: format!("gate-report-{}.json", nonce()),
            sha256: sha256(&bytes),
            bytes: bytes.len() as u64,
        };
        // Written before the head that names it; if the change then fails, nobody names it.
        self.objects.put(&format!("{}/{}", version_rel(model, &dir), doc.file), &bytes)?;
        self.change(&seen, action, "recording a gate report", |head| {
            Self::status_of(head, version)?;
            if let Some(v) = head.versions.get_mut(&version) {
                v.gate_report = None;
                v.gate_doc = Some(doc);
            }
            Ok(Changed::new(Op::GateReport, version, None))
        })
    }

    /// Checks every file of a version's artifact against the checksums taken at
    /// registration without keeping it: locally each file is read through a
    /// [`COPY_BUFFER`]-sized buffer. The version, or a [`RegistryError::Tampered`] naming
    /// the missing or changed file.
    pub fn verify_artifact(&self, model: &str, version: u32) -> Result<VersionInfo, RegistryError> {
        let info = self.get(model, version)?;
        self.each_artifact_file(&info, |_, _| Ok(()))?;
        Ok(info)
    }

    /// Reads each artifact file of `info` (streaming locally, whole from a bucket), checks
    /// it, and hands it to `sink` (the file's listing entry, and its bytes on a bucket or
    /// its local path) once it matched.
    fn each_artifact_file(
        &self,
        info: &VersionInfo,
        mut sink: impl FnMut(&ArtifactFile, ArtifactSource) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        let (model, version) = (info.meta.model.as_str(), info.meta.version);
        let art = &info.meta.training.artifact;
        let tampered = |file: &str, problem: String| RegistryError::Tampered {
            model: model.to_string(),
            version,
            file: file.to_string(),
            problem,
        };
        if listing_sha256(&art.files) != art.sha256 {
            return Err(tampered(
                "version.json",
                "lists files whose checksum is not the one recorded".into(),
            ));
        }
        for f in &art.files {
            let rel = format!("{}/{}", art.path, f.path);
            let missing =
                || tampered(&f.path, format!("is missing (expected at {})", self.location(&rel).display()));
            let (found, source) = if self.local.is_some() {
                let path = self.location(&rel);
                let mut file = match std::fs::File::open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
                    Err(e) => return Err(io(&path)(e)),
                };
                let (sha, _) = copy_hashing(&mut file, None).map_err(|(_, e)| io(&path)(e))?;
                (sha, ArtifactSource::Path(path))
            } else {
                let bytes = self.objects.get(&rel)?.ok_or_else(missing)?;
                (sha256(&bytes), ArtifactSource::Bytes(bytes))
            };
            if found != f.sha256 {
                return Err(tampered(
                    &f.path,
                    format!(
                        "was changed after registration: SHA-256 {found}, registered {} ({})",
                        f.sha256,
                        self.location(&rel).display()
                    ),
                ));
            }
            sink(f, source)?;
        }
        Ok(())
    }

    /// Reads every file of a version's artifact and checks it against the checksums taken
    /// at registration: the files, path first, or a [`RegistryError::Tampered`] naming the
    /// missing or changed file. This holds the whole artifact in memory: for a big one use
    /// [`fetch_artifact`](Registry::fetch_artifact) or
    /// [`verify_artifact`](Registry::verify_artifact).
    pub fn read_artifact(&self, model: &str, version: u32) -> Result<Vec<(String, Vec<u8>)>, RegistryError> {
        let info = self.get(model, version)?;
        let mut out = Vec::with_capacity(info.meta.training.artifact.files.len());
        self.each_artifact_file(&info, |f, source| {
            let bytes = match source {
                ArtifactSource::Bytes(b) => b,
                ArtifactSource::Path(p) => std::fs::read(&p).map_err(io(&p))?,
            };
            // Read again after the check: compare, so a file changed in between is not
            // handed out as the registered one.
            if sha256(&bytes) != f.sha256 {
                return Err(RegistryError::Tampered {
                    model: model.to_string(),
                    version,
                    file: f.path.clone(),
                    problem: "changed while it was being read".into(),
                });
            }
            out.push((f.path.clone(), bytes));
            Ok(())
        })?;
        Ok(out)
    }

    /// Copies a version's artifact into `dest` (created if missing) after checking every
    /// file (see [`verify_artifact`](Registry::verify_artifact)), streaming locally; nothing
    /// is written if one is missing or changed.
    pub fn fetch_artifact(
        &self,
        model: &str,
        version: u32,
        dest: &Path,
    ) -> Result<VersionInfo, RegistryError> {
        let info = self.verify_artifact(model, version)?;
        self.each_artifact_file(&info, |f, source| {
            let path = dest.join(&f.path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            match source {
                ArtifactSource::Bytes(b) => std::fs::write(&path, b).map_err(io(&path)),
                ArtifactSource::Path(p) => std::fs::copy(&p, &path).map(|_| ()).map_err(io(&path)),
            }
        })?;
        Ok(info)
    }

    /// The directories under a model's `versions/` that its head does not name: left by a
    /// registration that crashed (or lost its last retry) before its head committed. A
    /// registration still copying its files has one too, so only those older than `min_age`
    /// (by the directory's modification time and the registry's clock) are listed; on a
    /// bucket, where directories have no time, all of them are.
    pub fn orphans(&self, model: &str, min_age: std::time::Duration) -> Result<Vec<Orphan>, RegistryError> {
        let state = self.state(model)?;
        let named: std::collections::BTreeSet<&str> =
            state.head.versions.values().map(|v| v.dir.as_str()).collect();
        let prefix = format!("{REGISTRY_DIR}/{model}/versions");
        let now = self.now_ms();
        let mut out = Vec::new();
        for dir in self.objects.list_dirs(&prefix)? {
            if named.contains(dir.as_str()) {
                continue;
            }
            let rel = version_rel(model, &dir);
            let location = self.location(&rel);
            let age_ms = if self.local.is_some() {
                let modified =
                    std::fs::metadata(&location).and_then(|m| m.modified()).map_err(io(&location))?;
                let at =
                    modified.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
                let age = now - at;
                if age < min_age.as_millis() as i64 {
                    continue;
                }
                Some(age)
            } else {
                None
            };
            out.push(Orphan { dir, location, age_ms });
        }
        Ok(out)
    }

    /// Deletes an orphaned version directory (see [`orphans`](Registry::orphans)); local
    /// registries only. Refused for a directory the head names.
    pub fn remove_orphan(&self, model: &str, orphan: &Orphan) -> Result<(), RegistryError> {
        let state = self.state(model)?;
        names::check_file_name(&orphan.dir)?;
        if state.head.versions.values().any(|v| v.dir == orphan.dir) {
            return Err(Self::refuse(
                &state.head,
                format!("{} is a registered version's directory", orphan.dir),
            ));
        }
        if self.local.is_none() {
            return Err(Self::refuse(
                &state.head,
                format!("{} is in a bucket: delete it with the bucket's tools", orphan.location.display()),
            ));
        }
        let path = self.location(&version_rel(model, &orphan.dir));
        std::fs::remove_dir_all(&path).map_err(io(&path))
    }
}

/// Where a checked artifact file's bytes are.
enum ArtifactSource {
    /// Read whole (from a bucket).
    Bytes(Vec<u8>),
    /// A local file.
    Path(PathBuf),
}

/// A version directory no head names (see [`Registry::orphans`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Orphan {
    /// Its name under `versions/`.
    pub dir: String,
    /// Where it is.
    pub location: PathBuf,
    /// How old it is, ms (locally; `None` on a bucket).
    pub age_ms: Option<i64>,
}

#[cfg(test)]
mod tests;
