//! What a reader sees of one writer slot: its manifest and the acknowledged rows its WAL
//! holds that the manifest does not cover yet. A read merges every slot's; distributions
//! merge exactly (bucket counts add), so many writers give the counts and quantiles one
//! would for the same traffic.

use super::open::Replay;
use super::slot::{self, LEGACY_SLOT, WRITERS};
use super::{MANIFEST, StoreConfig, StoreError, WAL_DIR};
use crate::fs::{Fs, RealFs};
use crate::manifest::Manifest;
use crate::objects::{Objects, objects_for};
use crate::rows::Rows;
use crate::wal::{Wal, WalContents};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One writer slot as a reader last saw it.
#[derive(Clone, Debug)]
pub(super) struct Source {
    pub id: String,
    pub manifest: Manifest,
    /// Acknowledged rows the manifest does not cover.
    pub buffer: Arc<Rows>,
    /// The highest WAL sequence number seen.
    pub seq: u64,
    /// Bytes in the slot's WAL segments.
    pub wal_bytes: u64,
}

impl Source {
    /// Whether a read would see the same rows in both.
    pub fn same(&self, other: &Source) -> bool {
        self.id == other.id && self.seq == other.seq && self.manifest == other.manifest
    }
}

/// The slots a root holds: the local slot directories, the slots with a manifest in the
/// bucket (a reader on another host sees those), and the legacy root layout (read as `w0`).
pub(super) fn slot_ids(fs: &dyn Fs, objects: &dyn Objects, root: &Path) -> Result<Vec<String>, StoreError> {
    let dir = root.join(WRITERS);
    let local = fs.list(&dir).map_err(|source| StoreError::Io { path: dir, source })?;
    let mut ids: BTreeSet<String> = local.into_iter().filter(|id| slot::check_id(id).is_ok()).collect();
    ids.extend(objects.list_slots()?);
    if objects.get(MANIFEST)?.is_some() || !crate::wal::segment_paths(fs, &root.join(WAL_DIR))?.is_empty() {
        ids.insert(LEGACY_SLOT.into());
    }
    let mut ids: Vec<String> = ids.into_iter().collect();
    slot::sort_ids(&mut ids);
    Ok(ids)
}

/// The manifest of slot `id` and its version; a `w0` without one falls back to a legacy
/// root manifest (a store written before slots).
pub(super) fn read_slot_manifest(
    objects: &dyn Objects,
    id: &str,
) -> Result<(Manifest, Option<String>, bool), StoreError> {
    let rel = format!("{WRITERS}/{id}/{MANIFEST}");
    let decode = |b: &[u8], rel: &str| {
        Manifest::decode(b).map_err(|problem| StoreError::Corrupt { path: objects.location(rel), problem })
    };
    if let Some((bytes, version)) = objects.get_versioned(&rel)? {
        return Ok((decode(&bytes, &rel)?, version, false));
    }
    if id == LEGACY_SLOT
        && let Some(bytes) = objects.get(MANIFEST)?
    {
        return Ok((decode(&bytes, MANIFEST)?, None, true));
    }
    Ok((Manifest::default(), None, false))
}

/// The WAL directories of slot `id`: its own, after the root `wal/` of the layout before
/// slots for `w0`, which adopted those records.
pub(super) fn wal_dirs(root: &Path, id: &str) -> Vec<PathBuf> {
    let own = slot::slot_dir(root, id).join(WAL_DIR);
    if id == LEGACY_SLOT { vec![root.join(WAL_DIR), own] } else { vec![own] }
}

/// Every WAL record of slot `id`, read without changing anything (a record seen in two of
/// its WAL directories, moved between them meanwhile, is kept once).
pub(super) fn read_slot_wal(fs: &dyn Fs, root: &Path, id: &str) -> Result<WalContents, StoreError> {
    let mut contents = WalContents::default();
    let mut seen = BTreeSet::new();
    for dir in wal_dirs(root, id) {
        let c = Wal::read_only(fs, &dir)?;
        contents.valid_len += c.valid_len;
        contents.damage = contents.damage.or(c.damage);
        contents.entries.extend(c.entries.into_iter().filter(|e| seen.insert(e.seq)));
    }
    Ok(contents)
}

/// Every slot but `except` (`None`: every slot), as a reader sees it now.
pub(super) fn load_all(
    fs: &dyn Fs,
    objects: &dyn Objects,
    root: &Path,
    except: Option<&str>,
) -> Result<Vec<Source>, StoreError> {
    let mut out = Vec::new();
    for id in slot_ids(fs, objects, root)? {
        if except != Some(id.as_str()) {
            out.push(load(fs, objects, root, &id)?);
        }
    }
    Ok(out)
}

/// Reads slot `id`: its WAL first, then its manifest, so a publication in between is seen
/// in one or the other (records the manifest covers are skipped), never in neither.
pub(super) fn load(fs: &dyn Fs, objects: &dyn Objects, root: &Path, id: &str) -> Result<Source, StoreError> {
    let contents = read_slot_wal(fs, root, id)?;
    let wal_bytes = contents.valid_len;
    let (manifest, _, _) = read_slot_manifest(objects, id)?;
    let replay = Replay::of(contents, manifest.covered_seq);
    Ok(Source { id: id.to_string(), manifest, buffer: Arc::new(replay.buffer), seq: replay.seq, wal_bytes })
}

/// A writer slot of a store and who holds it, without reading its data (for `store
/// compact` and `demo --replace`).
#[derive(Clone, Debug)]
pub struct WriterSlot {
    /// The slot's ID (`w0`, `w1`, … or an explicit `--writer-id`).
    pub id: String,
    /// Whether a live process on this host holds the slot's lock.
    pub held: bool,
    /// The process holding it, as its lock file says, if a live one does.
    pub holder: Option<super::Holder>,
    /// Whether the slot has a directory (its lock and WAL) on this host. A slot that only
    /// has objects in the bucket is written from another host, whose lock this host cannot
    /// see.
    pub local: bool,
}

/// The writer slots of the store `config` describes and who holds them; reads no WAL or
/// manifest, and takes a slot's lock only to probe it, in a way a claim of the slot waits
/// out rather than mistakes for a live writer (see `slot::is_held`).
pub fn writer_slots(config: &StoreConfig) -> Result<Vec<WriterSlot>, StoreError> {
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let objects = objects_for(&fs, &config.dir, config.objects.as_ref())?;
    let ids = slot_ids(&*fs, &*objects, &config.dir)?;
    Ok(ids
        .into_iter()
        .map(|id| {
            let held = slot::is_held(&config.dir, &id);
            WriterSlot {
                holder: held.then(|| slot::holder(&config.dir, &id)).flatten(),
                held,
                local: slot::slot_dir(&config.dir, &id).is_dir() || id == LEGACY_SLOT,
                id,
            }
        })
        .collect())
}

/// One writer slot of a store with what it holds, for `store inspect`.
#[derive(Clone, Debug)]
pub struct WriterInfo {
    /// The slot and who holds it.
    pub slot: WriterSlot,
    /// Files its manifest lists.
    pub files: usize,
    /// Rows in those files.
    pub rows: u64,
    /// Bytes in those files.
    pub bytes: u64,
    /// Bytes in its WAL (acknowledged rows not yet published, and any torn tail).
    pub wal_bytes: u64,
    /// Acknowledged rows in its WAL that no listed file holds yet.
    pub unpublished_rows: usize,
}

/// The writer slots of the store `config` describes with what each holds, read without
/// taking any lock but `writer_slots`' probes.
pub fn list_writers(config: &StoreConfig) -> Result<Vec<WriterInfo>, StoreError> {
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let objects = objects_for(&fs, &config.dir, config.objects.as_ref())?;
    let mut out = Vec::new();
    for slot in writer_slots(config)? {
        let s = load(&*fs, &*objects, &config.dir, &slot.id)?;
        out.push(WriterInfo {
            slot,
            files: s.manifest.files.len(),
            rows: s.manifest.files.iter().map(|f| f.rows).sum(),
            bytes: s.manifest.files.iter().map(|f| f.bytes).sum(),
            wal_bytes: s.wal_bytes,
            unpublished_rows: s.buffer.len(),
        });
    }
    Ok(out)
}
