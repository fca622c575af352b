//! Verification: every file a manifest lists and every WAL segment read back, changing
//! nothing, for a store that is open or for a data directory on its own.

use super::open::read_manifest;
use super::read::read_file;
use super::{Shared, Store, StoreError, WAL_DIR};
use crate::fs::{Fs, RealFs};
use crate::manifest::Manifest;
use crate::objects::{ObjectStoreConfig, Objects, objects_for};
use std::path::Path;
use std::sync::Arc;

impl Store {
    /// Reads every file of the manifest and every WAL segment; returns what is damaged
    /// (empty when all is well).
    pub fn verify(&self) -> Vec<String> {
        self.shared.verify()
    }
}

impl Shared {
    fn verify(&self) -> Vec<String> {
        let manifest = self.lock().manifest.clone();
        verify_files(&*self.objects, &*self.fs, &self.config.dir, &manifest)
    }
}

/// Verifies a data directory without opening it as a store (nothing is repaired or
/// written): every file of the manifest and every WAL segment is read back.
/// Returns the number of files the manifest lists and the problems found.
pub fn verify_dir(
    dir: &Path,
    bucket: Option<&ObjectStoreConfig>,
) -> Result<(usize, Vec<String>), StoreError> {
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let objects = objects_for(&fs, dir, bucket)?;
    let manifest = read_manifest(&*objects)?;
    Ok((manifest.files.len(), verify_files(&*objects, &*fs, dir, &manifest)))
}

/// Reads every file a manifest lists and every WAL segment, changing nothing; returns what
/// is damaged, each naming the file (and for the WAL the offset).
fn verify_files(objects: &dyn Objects, fs: &dyn Fs, dir: &Path, manifest: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    for f in &manifest.files {
        match read_file(objects, f, i64::MIN, i64::MAX, &[]) {
            Ok(rows) if rows.len() as u64 != f.rows => problems.push(format!(
                "{}: {} rows, the manifest says {}",
                objects.location(&f.path).display(),
                rows.len(),
                f.rows
            )),
            Ok(_) => {}
            // The error's advice is to run this verification: here, say only what is wrong.
            Err(StoreError::MissingFile { path }) => {
                problems.push(format!("{}: listed in the manifest but missing", path.display()))
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let wal_dir = dir.join(WAL_DIR);
    let segments = match crate::wal::segment_paths(fs, &wal_dir) {
        Ok(s) => s,
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    for wal in segments {
        match fs.read(&wal).map(|b| crate::wal::decode(&b)) {
            Ok(Ok(c)) => {
                if let Some(d) = c.damage {
                    problems.push(format!("{}: damaged at offset {}: {}", wal.display(), d.offset, d.reason));
                }
            }
            Ok(Err(e)) => problems.push(format!("{}: {e}", wal.display())),
            Err(e) => problems.push(format!("{}: {e}", wal.display())),
        }
    }
    problems
}
