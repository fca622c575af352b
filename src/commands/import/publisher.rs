//! Publication of the imported rows as Parquet on a thread of its own, so that encoding
//! them overlaps replaying the next batches. The store allows it: an append holds the
//! store's lock only for its WAL write, a publication only to take the buffer.
//!
//! The importing thread counts the bytes it appends and wakes the publisher every
//! [`PUBLISH_BYTES`]; when the publisher falls behind by [`MAX_UNPUBLISHED`], the importing
//! thread publishes itself (waiting for the publication under way), which bounds the rows
//! the store holds in memory.

use modelwatch_store::{Rows, Store, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Mutex, PoisonError};

/// Appended store rows (their approximate size in memory) that wake the publisher:
/// publication costs about ten fsyncs, and the store holds these rows in memory (twice,
/// and again as Arrow arrays, while it writes them).
const PUBLISH_BYTES: usize = 4 << 20;
/// Unpublished rows at which the importing thread stops to publish.
const MAX_UNPUBLISHED: usize = 2 * PUBLISH_BYTES;

/// What the importing thread and the publisher share.
#[derive(Default)]
pub(super) struct Publication {
    /// Bytes appended since the publisher last took the buffer.
    unpublished: AtomicUsize,
    /// The publisher's error, which ends it.
    failed: Mutex<Option<StoreError>>,
}

impl Publication {
    /// Records an append of `bytes`: wakes the publisher, or publishes here when it is far
    /// behind.
    pub(super) fn appended(
        &self,
        store: &Store,
        bytes: usize,
        wake: &SyncSender<()>,
    ) -> Result<(), StoreError> {
        let unpublished = self.unpublished.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if unpublished >= MAX_UNPUBLISHED {
            self.unpublished.store(0, Ordering::Release);
            return store.flush();
        }
        if unpublished >= PUBLISH_BYTES {
            // Full: woken already. Disconnected: stopped on an error, which the end of the
            // import reports.
            let _ = wake.try_send(());
        }
        Ok(())
    }

    /// The publisher's loop: publish at each wake-up until the importing thread hangs up.
    pub(super) fn run(&self, store: &Store, wake: Receiver<()>) {
        while wake.recv().is_ok() {
            // Rows appended from here on are published now or counted for next time.
            self.unpublished.store(0, Ordering::Release);
            if let Err(e) = store.flush() {
                *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                return;
            }
        }
    }

    /// The publisher's error, if it stopped on one.
    pub(super) fn error(&self) -> Option<StoreError> {
        self.failed.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// About the size of `rows` in a WAL record (JSON), which is also about their size in
/// memory with their allocations: a row's tags and numbers take some 300 bytes whatever it
/// holds, a distribution's bucket some 16 more.
pub(super) fn footprint(rows: &Rows) -> usize {
    let buckets: usize = rows.distributions.iter().map(|d| d.buckets.len()).sum();
    let messages: usize = rows.events.iter().map(|e| e.message.len()).sum();
    (rows.distributions.len() + rows.scalars.len() + rows.events.len()) * 300 + buckets * 16 + messages
}
