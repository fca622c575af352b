//! Verification: every file a manifest lists and every WAL segment read back, changing
//! nothing, for a store that is open or for a data directory on its own.

use super::read::read_file;
use super::slot::{self, LEGACY_SLOT};
use super::{Shared, Store, StoreError, WAL_DIR, sources};
use crate::fs::{Fs, RealFs};
use crate::manifest::Manifest;
use crate::objects::{ObjectStoreConfig, Objects, objects_for};
use std::path::{Path, PathBuf};
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
        let (manifest, peers) = {
            let inner = self.lock();
            (inner.manifest.clone(), inner.peers.clone())
        };
        let mut problems = Vec::new();
        if !self.read_only {
            problems = verify_files(&*self.objects, &*self.fs, &manifest, &self.wal_dirs(&self.writer_id));
        }
        for p in &peers {
            problems.extend(verify_files(&*self.objects, &*self.fs, &p.manifest, &self.wal_dirs(&p.id)));
        }
        problems
    }

    fn wal_dirs(&self, id: &str) -> Vec<PathBuf> {
        wal_dirs(&self.config.dir, id)
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
    let (mut files, mut problems) = (0, Vec::new());
    for id in sources::slot_ids(&*fs, &*objects, dir)? {
        let (manifest, _, _) = sources::read_slot_manifest(&*objects, &id)?;
        files += manifest.files.len();
        problems.extend(verify_files(&*objects, &*fs, &manifest, &wal_dirs(dir, &id)));
    }
    Ok((files, problems))
}

/// The WAL directories of slot `id` (`w0` also reads the old layout's root WAL).
fn wal_dirs(root: &Path, id: &str) -> Vec<PathBuf> {
    let mut dirs = vec![slot::slot_dir(root, id).join(WAL_DIR)];
    if id == LEGACY_SLOT {
        dirs.insert(0, root.join(WAL_DIR));
    }
    dirs
}

/// Reads every file a manifest lists and every WAL segment, changing nothing; returns what
/// is damaged, each naming the file (and for the WAL the offset).
fn verify_files(
    objects: &dyn Objects,
    fs: &dyn Fs,
    manifest: &Manifest,
    wal_dirs: &[PathBuf],
) -> Vec<String> {
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
    let mut segments = Vec::new();
    for wal_dir in wal_dirs {
        match crate::wal::segment_paths(fs, wal_dir) {
            Ok(s) => segments.extend(s),
            Err(e) => problems.push(e.to_string()),
        }
    }
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
