//! Why the triggers could not run or refused a request, naming the file, key or event.

use std::path::{Path, PathBuf};

/// A trigger error.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// A configuration value is wrong (the message names the key).
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Another engine holds this data directory's triggers.
    #[error(
        "{0}: another process runs the triggers of this data directory (a `modelwatch serve --triggers`, whose POST /api/v1/triggers/fire and /ack/ID do this, or an embedded engine)"
    )]
    Locked(PathBuf),
    /// No event has this ID.
    #[error("no trigger event {0:?} (see `modelwatch triggers history`)")]
    UnknownEvent(String),
    /// The event was acknowledged before.
    #[error("event {0:?} was acknowledged already")]
    AlreadyAcknowledged(String),
    /// A manual event inside the cool-down, without `force`.
    #[error("suppressed by the cool-down until {} (force to fire anyway)", crate::time::rfc3339(*until_ms))]
    CoolingDown {
        /// When the cool-down ends (ms).
        until_ms: i64,
        /// The reasons that were held back.
        suppressed: Vec<super::Reason>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] modelwatch_store::StoreError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] modelwatch_query::QueryError),
    /// A query in the configuration does not parse.
    #[error("{0}")]
    Parse(#[from] modelwatch_query::ParseError),
}

/// A file error naming the file.
pub(crate) fn file_error(path: &Path, e: impl std::fmt::Display) -> TriggerError {
    TriggerError::File { path: path.to_path_buf(), message: e.to_string() }
}
