//! The store's errors.

use crate::wal::WalError;
use std::path::PathBuf;

/// Errors of the store, each naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The WAL failed; see the message.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file the manifest lists is gone (deleted outside the store, or replaced by a
    /// writer's compaction since a read-only store last read the manifest).
    #[error(
        "{path}: listed in the manifest but missing; run `modelwatch store verify` to list every file the store cannot read"
    )]
    MissingFile {
        /// The file (a path in the data directory, or the object's URL in a bucket).
        path: PathBuf,
    },
    /// A file is not what it should be.
    #[error("{path}: {problem}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The store was opened read-only.
    #[error("the store at {0} is open read-only")]
    ReadOnly(PathBuf),
    /// The store stopped acknowledging after a WAL failure.
    #[error("the store at {0} stopped after a write or fsync failure; restart it to recover from the WAL")]
    Stopped(PathBuf),
}
