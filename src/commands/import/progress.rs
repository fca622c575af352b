//! How far an import of a file got, recorded in the store itself so that it is exactly as
//! durable as the rows: every batch's append carries one `events` row of kind `import`
//! whose message is a [`Progress`] in JSON. The file is named by the SHA-256 of its bytes,
//! so a renamed or copied file is the same input, and an edited one is a new input.
//!
//! A batch's rows and its progress event are one WAL record: after a crash at any point,
//! the latest progress event of a file says exactly how many of its records are in the
//! store, and a new run skips them.
//!
//! An event's time is the latest row timestamp stored so far, not the wall clock: it marks
//! the imported data, and retention drops it with the raw rows it describes (the message
//! says when the import ran).

use anyhow::Context;
use modelwatch_store::{EventRow, ReadRequest, Resolution, Store, Table};
use serde::{Deserialize, Serialize};

/// The `kind` of a progress event.
pub(super) const EVENT_KIND: &str = "import";
/// The version of [`Progress`]'s JSON.
const FORMAT: u32 = 1;

/// The message of a progress event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Progress {
    /// [`FORMAT`].
    pub(super) format: u32,
    /// SHA-256 of the file's bytes, hex.
    pub(super) sha256: String,
    /// The file's name when it was imported (for people; the hash is what counts).
    pub(super) file: String,
    /// Input records (readable or not) stored up to and including this batch: the offset
    /// a later run resumes from.
    pub(super) rows_done: u64,
    /// Of those, rows imported.
    pub(super) imported: u64,
    /// Of those, rows rejected.
    pub(super) rejected: u64,
    /// Whether this batch was the file's last.
    pub(super) complete: bool,
    /// When the run that stored this batch started (RFC 3339).
    pub(super) imported_at: String,
    /// The file's records, in the last batch's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) total_rows: Option<u64>,
}

/// The latest progress of a file in the store, and when it was recorded.
pub(super) struct Previous {
    pub(super) progress: Progress,
    pub(super) time_ms: i64,
}

impl Progress {
    /// Progress before any batch.
    pub(super) fn start(sha256: &str, file: &str, imported_at: &str) -> Progress {
        Progress {
            format: FORMAT,
            sha256: sha256.to_string(),
            file: file.to_string(),
            imported_at: imported_at.to_string(),
            rows_done: 0,
            imported: 0,
            rejected: 0,
            complete: false,
            total_rows: None,
        }
    }

    /// The event that records this progress, at `time_ms`, for the file's model (or
    /// `modelwatch` when it holds several).
    pub(super) fn event(&self, time_ms: i64, model: (&str, &str, &str)) -> anyhow::Result<EventRow> {
        Ok(EventRow {
            time_ms,
            model: model.0.into(),
            version: model.1.into(),
            variant: model.2.into(),
            kind: EVENT_KIND.into(),
            message: serde_json::to_string(self)?,
        })
    }
}

/// The furthest progress recorded for the file with this hash, if any. Messages that are
/// not progress (another writer's `import` events) are ignored.
pub(super) fn previous(store: &Store, sha256: &str) -> anyhow::Result<Option<Previous>> {
    let req = ReadRequest::new(Table::Events, 0, i64::MAX, Resolution::Raw).tag("kind", EVENT_KIND);
    let events = store.read(&req).context("reading earlier imports from the store")?.events;
    Ok(events
        .into_iter()
        .filter_map(|e| {
            let p: Progress = serde_json::from_str(&e.message).ok()?;
            (p.format == FORMAT && p.sha256 == sha256).then_some(Previous { progress: p, time_ms: e.time_ms })
        })
        .max_by_key(|p| (p.progress.complete, p.progress.rows_done, p.time_ms)))
}
