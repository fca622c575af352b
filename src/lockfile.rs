//! An advisory lock on a file of its own, for "one at a time per data directory" (the
//! trigger engine, the retraining manager): held while the returned file is open, freed
//! by the kernel however the process ends, so a crash never leaves a stale lock.

use std::fs::File;
use std::path::Path;

/// Takes the exclusive lock of `path` (creating the file), without waiting: `Ok(None)`
/// while another process or handle holds it.
pub(crate) fn try_lock(path: &Path) -> std::io::Result<Option<File>> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
