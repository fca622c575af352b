//! The write-ahead log: every snapshot is framed here and synced before it is acknowledged.
//! The WAL is a directory of segments; the store seals the active one when it publishes
//! the rows it holds, and deletes it once a durable manifest covers them.
//!
//! # Format (version 1)
//!
//! A header of 8 bytes: the magic `MWWAL\0` and the format version as a little-endian `u16`.
//! Then records, each `len: u32 LE`, `crc: u32 LE` (CRC-32 of the payload), `payload`
//! (`len` bytes of JSON: a [`WalEntry`]). A reader keeps every intact record before the
//! first damaged one (short header, impossible length, truncated payload, CRC mismatch,
//! undecodable payload) and reports the damage's offset; it never panics.

use crate::fs::{AppendFile, Fs, publish};
use crate::rows::Rows;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The WAL file's magic bytes.
pub const WAL_MAGIC: &[u8; 6] = b"MWWAL\0";
/// The WAL format version this build writes and reads.
pub const WAL_VERSION: u16 = 1;
const HEADER: usize = 8;
/// Records larger than this are taken as damage, not allocated.
const MAX_RECORD: u32 = 256 << 20;

/// When an append is made durable before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync before every acknowledgement (the default): nothing acknowledged is lost.
    Sync,
    /// Group commit: fsync at most once per interval. Up to one interval of acknowledged
    /// snapshots can be lost at a power cut (not at a process crash).
    Interval(Duration),
    /// Never fsync; for tests only.
    None,
}

/// One WAL record: the rows of one acknowledged snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WalEntry {
    /// The store's own sequence number of this write.
    pub seq: u64,
    /// The rows.
    pub rows: Rows,
}

/// Where and why a WAL stopped being readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalDamage {
    /// The segment file (empty when decoding bytes with no file).
    pub path: PathBuf,
    /// Byte offset of the first record that could not be read.
    pub offset: u64,
    /// What was wrong with it.
    pub reason: String,
}

/// What a WAL held.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WalContents {
    /// Every intact record before the first damage, in order.
    pub entries: Vec<WalEntry>,
    /// The first damage, if any.
    pub damage: Option<WalDamage>,
    /// Length of the intact prefix (header included).
    pub valid_len: u64,
}

/// Errors of the WAL.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A write or fsync failed: the WAL no longer acknowledges anything.
    #[error(
        "WAL {path}: {op} failed: {source}; the store stops acknowledging writes (restart it to recover from the WAL)"
    )]
    Io {
        /// The WAL file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An earlier write or fsync failed.
    #[error("WAL {0} is stopped after an earlier write or fsync failure; restart the store")]
    Stopped(PathBuf),
    /// The file is not a WAL of a version this build reads.
    #[error("WAL {path}: {reason}")]
    Format {
        /// The WAL file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Encodes the file header.
pub fn header() -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..6].copy_from_slice(WAL_MAGIC);
    h[6..].copy_from_slice(&WAL_VERSION.to_le_bytes());
    h
}

/// Frames one entry.
pub fn encode(entry: &WalEntry) -> Vec<u8> {
    let payload = serde_json::to_vec(entry).unwrap_or_default();
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes a WAL's bytes. Errors only when the header is not a WAL's; damage after the
/// header is reported in the result.
pub fn decode(bytes: &[u8]) -> Result<WalContents, String> {
    if bytes.len() < HEADER {
        return if WAL_MAGIC.starts_with(&bytes[..bytes.len().min(6)]) {
            // A header torn by a crash while the file was being created: empty.
            Ok(WalContents {
                damage: (!bytes.is_empty()).then(|| WalDamage {
                    path: PathBuf::new(),
                    offset: 0,
                    reason: "torn header".into(),
                }),
                ..Default::default()
            })
        } else {
            Err("not a modelwatch WAL (bad magic)".into())
        };
    }
    if &bytes[..6] != WAL_MAGIC {
        return Err("not a modelwatch WAL (bad magic)".into());
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if version != WAL_VERSION {
        return Err(format!("WAL format version {version}; this build reads version {WAL_VERSION}"));
    }
    let mut out = WalContents { valid_len: HEADER as u64, ..Default::default() };
    let mut at = HEADER;
    while at < bytes.len() {
        let damage = |reason: String| Some(WalDamage { path: PathBuf::new(), offset: at as u64, reason });
        let Some(frame) = bytes.get(at..at + 8) else {
            out.damage = damage(format!("truncated record header ({} of 8 bytes)", bytes.len() - at));
            break;
        };
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len > MAX_RECORD {
            out.damage = damage(format!("record length {len} is larger than the {MAX_RECORD}-byte limit"));
            break;
        }
        let Some(payload) = bytes.get(at + 8..at + 8 + len as usize) else {
            out.damage =
                damage(format!("truncated record: {len} bytes announced, {} present", bytes.len() - at - 8));
            break;
        };
        if crc32fast::hash(payload) != crc {
            out.damage = damage("checksum mismatch".into());
            break;
        }
        match serde_json::from_slice::<WalEntry>(payload) {
            Ok(e) => out.entries.push(e),
            Err(e) => {
                out.damage = damage(format!("undecodable record: {e}"));
                break;
            }
        }
        at += 8 + len as usize;
        out.valid_len = at as u64;
    }
    Ok(out)
}

/// Creates an empty segment durably (header, fsync, rename, fsync of the directory). An
/// empty newest segment left by a crash is simply the active segment at recovery.
pub fn prepare_segment(fs: &dyn Fs, path: &Path) -> Result<(), WalError> {
    publish(fs, path, &header()).map_err(|source| WalError::Io {
        path: path.to_path_buf(),
        op: "create",
        source,
    })
}

/// A WAL segment that no longer takes appends, waiting for its rows to be published.
#[derive(Debug)]
struct Sealed {
    path: PathBuf,
    last_seq: u64,
}

/// The appending side of the WAL: a directory of segments `NNNNNNNN.wal`. Appends go to the
/// newest; `rotate` seals it (its rows are being published) and starts a new one; a sealed
/// segment is deleted once a durable manifest covers its last record.
pub struct Wal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    durability: Durability,
    active: PathBuf,
    /// The active segment, open: appends and fsyncs go through this one descriptor.
    file: Box<dyn AppendFile>,
    active_index: u64,
    active_last_seq: u64,
    sealed: Vec<Sealed>,
    last_sync: Instant,
    dirty: bool,
    stopped: bool,
    bytes: u64,
}

/// The indices of the segments in `dir`, oldest first.
fn segment_indices(fs: &dyn Fs, dir: &Path) -> Result<Vec<u64>, WalError> {
    let names =
        fs.list(dir).map_err(|source| WalError::Io { path: dir.to_path_buf(), op: "list", source })?;
    let mut indices: Vec<u64> = names.iter().filter_map(|n| n.strip_suffix(".wal")?.parse().ok()).collect();
    indices.sort_unstable();
    Ok(indices)
}

/// The segment files in `dir`, oldest first.
pub fn segment_paths(fs: &dyn Fs, dir: &Path) -> Result<Vec<PathBuf>, WalError> {
    Ok(segment_indices(fs, dir)?.into_iter().map(|i| dir.join(segment_name(i))).collect())
}

fn segment_name(index: u64) -> String {
    format!("{index:08}.wal")
}

impl Wal {
    /// Opens the WAL in `dir`, creating its first segment if there is none, and returns what
    /// all segments held, oldest first. A damaged tail of the newest segment is cut off
    /// (after being reported) so new records follow the intact prefix.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, durability: Durability) -> Result<(Wal, WalContents), WalError> {
        let io = |path: &Path, op, source| WalError::Io { path: path.to_path_buf(), op, source };
        let indices = segment_indices(&*fs, dir)?;
        let mut contents = WalContents::default();
        let mut sealed = Vec::new();
        let mut last_bytes = HEADER as u64;
        let mut last_seq = 0;
        for (k, &index) in indices.iter().enumerate() {
            let path = dir.join(segment_name(index));
            let bytes = fs.read(&path).map_err(|e| io(&path, "read", e))?;
            let c = decode(&bytes).map_err(|reason| WalError::Format { path: path.clone(), reason })?;
            let newest = k + 1 == indices.len();
            if let Some(d) = &c.damage {
                if contents.damage.is_none() {
                    contents.damage = Some(WalDamage { path: path.clone(), ..d.clone() });
                }
                if newest {
                    // Rewrite the intact prefix so appends do not follow garbage.
                    let mut keep = header().to_vec();
                    keep.extend_from_slice(bytes.get(HEADER..c.valid_len as usize).unwrap_or(&[]));
                    publish(&*fs, &path, &keep).map_err(|e| io(&path, "rewrite", e))?;
                }
            }
            let seg_last = c.entries.last().map_or(last_seq, |e| e.seq);
            last_seq = last_seq.max(seg_last);
            if newest {
                last_bytes = c.valid_len.max(HEADER as u64);
            } else {
                sealed.push(Sealed { path, last_seq: seg_last });
            }
            contents.valid_len = c.valid_len;
            contents.entries.extend(c.entries);
        }
        let active_index = indices.last().copied().unwrap_or(1);
        let active = dir.join(segment_name(active_index));
        if indices.is_empty() {
            publish(&*fs, &active, &header()).map_err(|e| io(&active, "create", e))?;
        }
        let file = fs.open_append(&active).map_err(|e| io(&active, "open", e))?;
        let wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            durability,
            active,
            file,
            active_index,
            active_last_seq: last_seq,
            sealed,
            last_sync: Instant::now(),
            dirty: false,
            stopped: false,
            bytes: last_bytes,
        };
        Ok((wal, contents))
    }

    /// Reads every segment without changing anything (for read-only opens of a store that
    /// another process may be writing).
    pub fn read_only(fs: &dyn Fs, dir: &Path) -> Result<WalContents, WalError> {
        let indices = segment_indices(fs, dir)?;
        let mut contents = WalContents::default();
        for index in indices {
            let path = dir.join(segment_name(index));
            // A segment deleted by the writer between the listing and the read is published.
            let Ok(bytes) = fs.read(&path) else { continue };
            let c = decode(&bytes).map_err(|reason| WalError::Format { path: path.clone(), reason })?;
            if let Some(d) = &c.damage
                && contents.damage.is_none()
            {
                contents.damage = Some(WalDamage { path: path.clone(), ..d.clone() });
            }
            contents.valid_len += c.valid_len;
            contents.entries.extend(c.entries);
        }
        Ok(contents)
    }

    fn fail(&mut self, op: &'static str, source: std::io::Error) -> WalError {
        self.stopped = true;
        WalError::Io { path: self.active.clone(), op, source }
    }

    /// Appends one entry and makes it durable per the policy. Any failure stops the WAL:
    /// an fsync is never retried and assumed to have worked.
    pub fn append(&mut self, entry: &WalEntry) -> Result<(), WalError> {
        if self.stopped {
            return Err(WalError::Stopped(self.dir.clone()));
        }
        let frame = encode(entry);
        if let Err(e) = self.file.write_all(&frame) {
            return Err(self.fail("append", e));
        }
        self.bytes += frame.len() as u64;
        self.active_last_seq = entry.seq;
        self.dirty = true;
        match self.durability {
            Durability::Sync => self.sync(),
            Durability::Interval(d) if self.last_sync.elapsed() >= d => self.sync(),
            _ => Ok(()),
        }
    }

    /// Makes every append so far durable.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.stopped {
            return Err(WalError::Stopped(self.dir.clone()));
        }
        if !self.dirty {
            return Ok(());
        }
        if let Err(e) = self.file.sync_data() {
            return Err(self.fail("fsync", e));
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The file the next segment will be, and the file system to create it on: a publisher
    /// creates it with [`prepare_segment`] before taking the store's lock, so `rotate` under
    /// the lock only switches to it.
    pub fn next_segment(&self) -> (Arc<dyn Fs>, PathBuf) {
        (self.fs.clone(), self.dir.join(segment_name(self.active_index + 1)))
    }

    /// Seals the active segment (its records are about to be published) and starts a new
    /// one, creating it unless `prepared` says [`prepare_segment`] already did. Does nothing
    /// when the active segment is empty. Returns the sealed segment when it still has
    /// unsynced appends (group commit): the caller syncs it, outside any lock.
    pub fn rotate(&mut self, prepared: bool) -> Result<Option<PathBuf>, WalError> {
        if self.stopped {
            return Err(WalError::Stopped(self.dir.clone()));
        }
        if self.bytes <= HEADER as u64 {
            return Ok(None);
        }
        let next = self.dir.join(segment_name(self.active_index + 1));
        if !prepared && let Err(e) = publish(&*self.fs, &next, &header()) {
            return Err(self.fail("rotate", e));
        }
        match self.fs.open_append(&next) {
            Ok(f) => self.file = f,
            Err(e) => return Err(self.fail("rotate", e)),
        }
        let old = std::mem::replace(&mut self.active, next);
        self.sealed.push(Sealed { path: old.clone(), last_seq: self.active_last_seq });
        self.active_index += 1;
        self.bytes = HEADER as u64;
        Ok(std::mem::take(&mut self.dirty).then_some(old))
    }

    /// Records that syncing a sealed segment failed: the WAL stops, as for any fsync error.
    pub fn sync_failed(&mut self, path: &Path, source: std::io::Error) -> WalError {
        self.stopped = true;
        WalError::Io { path: path.to_path_buf(), op: "fsync", source }
    }

    /// Deletes sealed segments whose records are all at or below `covered_seq` (published
    /// under a durable manifest).
    pub fn remove_covered(&mut self, covered_seq: u64) {
        let fs = self.fs.clone();
        self.sealed.retain(|s| {
            if s.last_seq <= covered_seq {
                // A segment left behind by a failed delete is skipped at the next recovery.
                let _ = fs.remove(&s.path);
                false
            } else {
                true
            }
        });
    }

    /// Bytes in the WAL's segments, headers included.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.bytes + self.sealed.len() as u64 * HEADER as u64
    }

    /// Whether an earlier failure stopped the WAL.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(seq: u64) -> WalEntry {
        WalEntry { seq, rows: Rows::default() }
    }

    fn wal_bytes(n: u64) -> Vec<u8> {
        let mut b = header().to_vec();
        for i in 0..n {
            b.extend(encode(&entry(i)));
        }
        b
    }

    #[test]
    fn round_trip() {
        let c = decode(&wal_bytes(5)).unwrap();
        assert_eq!(c.entries.len(), 5);
        assert_eq!(c.damage, None);
        assert_eq!(c.entries[4].seq, 4);
    }

    #[test]
    fn foreign_files_and_versions_are_refused() {
        assert!(decode(b"PAR1....").unwrap_err().contains("bad magic"));
        let mut b = wal_bytes(0);
        b[6] = 9;
        assert!(decode(&b).unwrap_err().contains("version 9"));
    }

    proptest! {
        #[test]
        fn truncation_keeps_every_intact_record(n in 1u64..20, cut in 0usize..4000) {
            let full = wal_bytes(n);
            let cut = cut.min(full.len());
            let c = decode(&full[..cut]).unwrap();
            // Every record that ends before the cut is kept, in order.
            let complete = (0..n).filter(|&i| {
                let end: usize = HEADER + (0..=i).map(|j| encode(&entry(j)).len()).sum::<usize>();
                end <= cut
            }).count();
            prop_assert_eq!(c.entries.len(), complete);
            prop_assert!(c.entries.iter().enumerate().all(|(i, e)| e.seq == i as u64));
            prop_assert_eq!(c.damage.is_some(), cut != full.len() && cut > 0 && c.valid_len as usize != cut);
        }

        #[test]
        fn bit_flips_never_panic_and_keep_the_prefix(n in 1u64..20, at in 0usize..4000, bit in 0u8..8) {
            let mut b = wal_bytes(n);
            let at = at % b.len();
            b[at] ^= 1 << bit;
            match decode(&b) {
                Err(e) => prop_assert!(at < HEADER, "header damage only: {}", e),
                Ok(c) => {
                    prop_assert!(c.entries.iter().enumerate().all(|(i, e)| e.seq == i as u64));
                    if let Some(d) = &c.damage {
                        prop_assert!(d.offset as usize <= at, "damage reported at {} after the flip at {}", d.offset, at);
                    }
                    // Records wholly before the flipped byte survive.
                    let before = (0..n).filter(|&i| {
                        HEADER + (0..=i).map(|j| encode(&entry(j)).len()).sum::<usize>() <= at
                    }).count();
                    prop_assert!(c.entries.len() >= before);
                }
            }
        }
    }
}
