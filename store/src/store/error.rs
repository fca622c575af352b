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
    /// Labelled examples that cannot be stored (a ragged row, a bad feature or model name),
    /// or an examples file that cannot be read.
    #[error(transparent)]
    Examples(#[from] crate::examples::ExamplesError),
    /// The store was opened read-only.
    #[error("the store at {0} is open read-only")]
    ReadOnly(PathBuf),
    /// A writer ID that cannot name a slot.
    #[error("writer ID {0:?}: use 1 to 64 letters, digits, `_`, `-` or `.`, not starting with `.`")]
    BadWriterId(String),
    /// Another live process holds the writer slot asked for.
    #[error(
        "writer slot {id} of {dir} is held by {}; each process writes its own slot: give another --writer-id (or none, to take a free one), or stop that process",
        holder.as_ref().map_or_else(|| "another process".to_string(), |h| h.to_string())
    )]
    WriterHeld {
        /// The slot.
        id: String,
        /// Who holds it, as its lock file says.
        holder: Option<super::Holder>,
        /// The store root.
        dir: PathBuf,
    },
    /// Another process published this writer's manifest since this one read it: two
    /// processes (on different hosts) use one writer ID on one bucket.
    #[error(
        "{path}: another process published this writer's manifest; two processes use the same writer ID on this bucket. This one stops publishing (its acknowledged rows stay in its WAL); give each process its own --writer-id"
    )]
    Conflict {
        /// The manifest's location.
        path: PathBuf,
    },
    /// This host's WAL of a slot holds records, but the slot's manifest in the bucket was
    /// last published by another host: two hosts used one writer ID.
    #[error(
        "writer slot {id}'s manifest was last published from host {host}, but this host's WAL {wal} holds {records} record(s) that manifest does not cover: two hosts used writer ID {id}. Nothing was changed; keep the records by opening this host's store under a new --writer-id after moving {wal} into that slot (writers/<new id>/wal), or move {wal} aside to discard them"
    )]
    ForeignManifest {
        /// The slot.
        id: String,
        /// The host that published the manifest.
        host: String,
        /// This host's WAL directory of the slot.
        wal: PathBuf,
        /// Records in it.
        records: usize,
    },
    /// Publication has been failing and the unpublished rows reached their bound.
    #[error(
        "the store at {dir} refuses new rows: {bytes} bytes are waiting to be published (limit {limit}) because publication keeps failing: {last_error}"
    )]
    Full {
        /// The store root.
        dir: PathBuf,
        /// Bytes in the WAL waiting for publication.
        bytes: u64,
        /// The bound (`StoreConfig::max_unpublished_bytes`).
        limit: u64,
        /// Why publication fails.
        last_error: String,
    },
    /// The store stopped acknowledging after a WAL failure.
    #[error("the store at {0} stopped after a write or fsync failure; restart it to recover from the WAL")]
    Stopped(PathBuf),
}
