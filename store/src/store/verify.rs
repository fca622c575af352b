//! Verification: every file a manifest lists and every WAL segment read back, changing
//! nothing, for a store that is open or for a data directory on its own.

use super::read::read_file;
use super::slot;
use super::{Shared, Store, StoreError, sources};
use crate::fs::{Fs, RealFs};
use crate::manifest::Manifest;
use crate::objects::{ObjectStoreConfig, Objects, objects_for};
use crate::wal::SegmentState;
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
        let (manifest, peers) = {
            let inner = self.lock();
            (inner.manifest.clone(), inner.peers.clone())
        };
        let own = (!self.read_only).then_some((self.writer_id.as_str(), &manifest));
        let slots = own.into_iter().chain(peers.iter().map(|p| (p.id.as_str(), &p.manifest)));
        let mut v = Verification::default();
        for (id, manifest) in slots {
            verify_slot(&*self.objects, &*self.fs, &self.config.dir, id, manifest, &mut v);
        }
        v.problems
    }
}

/// What [`verify_dir`] found.
#[derive(Clone, Debug, Default)]
pub struct Verification {
    /// Files the writer slots' manifests list.
    pub files: usize,
    /// Writer slots.
    pub writers: usize,
    /// Damage that loses or hides acknowledged data (a missing or unreadable file, a
    /// corrupt WAL segment), each naming the file and, for the WAL, the offset.
    pub problems: Vec<String>,
    /// What is fine but worth saying: a WAL tail torn by a crash (never acknowledged),
    /// which the next open drops.
    pub notes: Vec<String>,
}

/// Verifies a data directory without opening it as a store (nothing is repaired or
/// written, no lock is taken): every file each writer slot's manifest lists and every WAL
/// segment is read back.
pub fn verify_dir(dir: &Path, bucket: Option<&ObjectStoreConfig>) -> Result<Verification, StoreError> {
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let objects = objects_for(&fs, dir, bucket)?;
    let mut v = Verification::default();
    for id in sources::slot_ids(&*fs, &*objects, dir)? {
        let (manifest, _, _) = sources::read_slot_manifest(&*objects, &id)?;
        verify_slot(&*objects, &*fs, dir, &id, &manifest, &mut v);
    }
    Ok(v)
}

/// Reads back every file a slot's manifest lists and inspects each of its WAL segments
/// once, changing nothing; adds what is damaged (naming the file, and for the WAL the
/// offset) and the torn tails the next open drops to `v`.
fn verify_slot(
    objects: &dyn Objects,
    fs: &dyn Fs,
    root: &Path,
    id: &str,
    manifest: &Manifest,
    v: &mut Verification,
) {
    v.writers += 1;
    v.files += manifest.files.len();
    for f in &manifest.files {
        match read_file(objects, f, i64::MIN, i64::MAX, &[]) {
            Ok(rows) if rows.len() as u64 != f.rows => v.problems.push(format!(
                "{}: {} rows, the manifest says {}",
                objects.location(&f.path).display(),
                rows.len(),
                f.rows
            )),
            Ok(_) => {}
            // The error's advice is to run this verification: here, say only what is wrong.
            Err(StoreError::MissingFile { path }) => {
                v.problems.push(format!("{}: listed in the manifest but missing", path.display()))
            }
            Err(e) => v.problems.push(e.to_string()),
        }
    }
    for wal_dir in sources::wal_dirs(root, id) {
        match crate::wal::inspect(fs, &wal_dir) {
            Ok(report) => {
                v.problems.extend(report.problems().map(|s| s.to_string()));
                let torn =
                    report.segments.iter().filter(|s| matches!(s.state, SegmentState::TornTail { .. }));
                v.notes.extend(torn.map(|s| s.to_string()));
            }
            Err(e) => v.problems.push(e.to_string()),
        }
    }
}

/// What [`repair_dir`] did, or would do, per writer slot.
#[derive(Clone, Debug, Default)]
pub struct Repair {
    /// Each repaired (or, without `apply`, inspected) slot's WAL directories.
    pub reports: Vec<(String, crate::wal::RepairReport)>,
    /// Slots a live process holds (their writer opened their WAL: nothing to repair), with
    /// who holds them.
    pub skipped: Vec<(String, String)>,
}

/// Plans, and with `apply` carries out, the repair of the WAL of the writer slot
/// `config.writer` names, or of every slot no live process holds: each corrupt segment is
/// rewritten with every intact record (before and after the damage) and the damaged file
/// kept aside (see [`crate::repair_wal`]). Each slot is claimed for the repair, so no
/// writer opens it meanwhile.
pub fn repair_dir(config: &super::StoreConfig, apply: bool) -> Result<Repair, StoreError> {
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let objects = objects_for(&fs, &config.dir, config.objects.as_ref())?;
    let ids = match &config.writer {
        Some(id) => vec![id.clone()],
        None => sources::slot_ids(&*fs, &*objects, &config.dir)?,
    };
    let mut out = Repair::default();
    for id in ids {
        let lock = if config.writer.is_some() {
            Some(slot::claim(&config.dir, &id, config.wait_for_writer, &*config.clock)?)
        } else {
            slot::try_claim(&config.dir, &id, false, &*config.clock)?
        };
        let Some(_lock) = lock else {
            let who =
                slot::holder(&config.dir, &id).map_or_else(|| "a live process".into(), |h| h.to_string());
            out.skipped.push((id, who));
            continue;
        };
        for wal_dir in sources::wal_dirs(&config.dir, &id) {
            out.reports.push((id.clone(), crate::wal::repair(&*fs, &wal_dir, apply)?));
        }
    }
    Ok(out)
}
