//! The write-ahead log: every snapshot is framed here and synced before it is acknowledged.
//! The WAL is a directory of segments `NNNNNNNN.wal`; the store seals the active one when it
//! publishes the rows it holds, and deletes it once a durable manifest covers them.
//!
//! # Format (version 2; version 1 is still read)
//!
//! A segment starts with an 8-byte header: the magic `MWWAL\0` and the format version as a
//! little-endian `u16`. Then records, each `len: u32 LE`, `crc: u32 LE` (CRC-32 of the
//! payload), `payload` (`len` bytes, at most 256 MiB). The payload is the binary encoding of
//! a [`WalEntry`] described in `codec` (version 2), or its JSON (version 1, which could not
//! hold NaN or infinite values). New segments are written in version 2; a version-1 segment
//! left by an older build is read, and never appended to: opening starts a new segment.
//!
//! # Damage: torn tail or corruption
//!
//! A frame is *intact* when its length is within the limit and the file, its CRC-32
//! matches and its payload decodes. After a frame that is not, the reader
//! *resynchronises*: it tries every following byte offset for an intact frame whose
//! sequence number is above that of the last intact record before it (in this segment or
//! an earlier one). Everything from the damaged frame to that offset (or to the end of the
//! file) is a *gap*.
//!
//! - A **torn tail** is a gap that no intact record follows, anywhere in the WAL: the
//!   remains of one interrupted append (a short header, a truncated payload, zero-filled or
//!   garbled bytes) that was never acknowledged, since an acknowledged record was fsynced
//!   whole. It is normally at the end of the newest segment, but can end the segment before
//!   empty newer ones: the publisher creates the next segment before it seals the active
//!   one, and an append may be interrupted in between. [`Wal::open`] cuts it off (the
//!   intact prefix is rewritten durably) and reports it in [`WalContents::damage`].
//! - **Corruption** is a gap that intact records follow. It is not an interrupted append
//!   (those records were written, and acknowledged, after it), so [`Wal::open`] refuses with
//!   [`WalError::Corrupt`] and changes nothing; [`repair`] keeps every intact record and
//!   moves the damaged file aside. [`Wal::read_only`] keeps every intact record and reports
//!   the damage.
//!
//! Limits of resynchronisation: a record whose bytes are damaged is lost (its CRC no longer
//! matches); damage that spans several records loses them all; a false resynchronisation
//! (garbage taken for a record) needs a CRC-32 collision *and* a payload that decodes *and*
//! a sequence number above the last good one. A bit flip in the last record of the WAL
//! cannot be told from an interrupted append: it is cut off as a torn tail.
//!
//! # Durability
//!
//! The active segment is kept open: appends and fsyncs go through that one descriptor
//! ([`crate::fs::AppendFile`]), so a writeback error is reported to the fsync that follows
//! it. A failed write or fsync stops the WAL: nothing more is acknowledged until a restart
//! recovers from what is on disk.

mod codec;
mod repair;
mod segment;
#[cfg(test)]
mod tests;

pub use repair::{
    RepairAction, RepairReport, SegmentRepair, SegmentReport, SegmentState, WalReport, inspect, repair,
};
pub use segment::{WAL_VERSION, WalGap, decode, encode};

use crate::fs::{AppendFile, Fs, parent_dir, publish};
use crate::rows::Rows;
use segment::{HEADER, Scan, header_of};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When an append is made durable before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync before every acknowledgement (the default): nothing acknowledged is lost.
    Sync,
    /// Group commit: fsync at most once per interval (at the next append, or by
    /// the store's background thread). Up to one interval of acknowledged snapshots can be lost at a
    /// power cut (not at a process crash).
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

/// Whether damage can be the remains of an interrupted append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// No intact record follows it: an append that never completed, never acknowledged.
    TornTail,
    /// Intact records follow it: acknowledged records were damaged.
    Corrupt,
}

/// Where and why a WAL segment stopped being readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalDamage {
    /// The segment file (empty when decoding bytes with no file).
    pub path: PathBuf,
    /// Byte offset of the first record that could not be read.
    pub offset: u64,
    /// What was wrong with it.
    pub reason: String,
    /// Bytes from `offset` to the next intact record or to the end of the file (for a torn
    /// tail cut by opening the store: the bytes dropped).
    pub bytes: u64,
    /// Intact records after the damage, in this segment and the later ones.
    pub intact_after: usize,
    /// Torn tail or corruption.
    pub kind: DamageKind,
}

impl WalDamage {
    fn new(path: PathBuf, gap: &WalGap, intact_after: usize) -> WalDamage {
        WalDamage {
            path,
            offset: gap.offset,
            reason: gap.reason.clone(),
            bytes: gap.end - gap.offset,
            intact_after,
            kind: if intact_after == 0 { DamageKind::TornTail } else { DamageKind::Corrupt },
        }
    }
}

/// What a WAL held.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WalContents {
    /// Every intact record, in order.
    pub entries: Vec<WalEntry>,
    /// The first damage, if any: from [`Wal::open`] only a torn tail it cut off.
    pub damage: Option<WalDamage>,
    /// Bytes of the intact prefixes of the segments read (headers included).
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
    /// Acknowledged records are damaged: intact records follow the damage, so it is not an
    /// interrupted append. Nothing was changed.
    #[error(
        "WAL segment {path} is damaged at offset {offset} ({reason}) and {intact_after} intact record(s) follow the damage: this is corruption, not an interrupted append, so the store will not open rather than drop acknowledged records (the file is unchanged). Run `{repair}` to see what would be dropped, then `{repair} --yes` to keep every intact record and move the damaged segment aside",
        repair = repair_command(path)
    )]
    Corrupt {
        /// The damaged segment.
        path: PathBuf,
        /// Byte offset of the first record that could not be read.
        offset: u64,
        /// What was wrong with it.
        reason: String,
        /// Intact records after the damage, in this segment and the later ones.
        intact_after: usize,
    },
}

/// The command that repairs the WAL holding `segment`: `DATA/writers/ID/wal/NNNNNNNN.wal`
/// (a writer slot), or `DATA/wal/NNNNNNNN.wal` (the layout before slots).
pub(crate) fn repair_command(segment: &Path) -> String {
    let owner = parent_dir(&parent_dir(segment));
    let slots = parent_dir(&owner);
    if slots.file_name().is_some_and(|n| n == "writers") {
        let id = owner.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        format!("modelwatch store repair --data {} --writer-id {id}", parent_dir(&slots).display())
    } else {
        format!("modelwatch store repair --data {}", owner.display())
    }
}

/// Creates an empty segment durably (header, fsync, rename, fsync of the directory). An
/// empty newest segment left by a crash is simply the active segment at recovery.
pub fn prepare_segment(fs: &dyn Fs, path: &Path) -> Result<(), WalError> {
    publish(fs, path, &header_of(WAL_VERSION)).map_err(|source| WalError::Io {
        path: path.to_path_buf(),
        op: "create",
        source,
    })
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

/// One segment as read from disk.
struct Surveyed {
    index: u64,
    path: PathBuf,
    /// The file's bytes when it is damaged or unreadable (a rewrite or a repair needs them),
    /// else empty:
    /// the intact segments' records are decoded, and their bytes are not kept twice.
    bytes: Vec<u8>,
    /// The scan, or why the segment cannot be read at all (not a WAL, an unknown version,
    /// an I/O error).
    scan: Result<Scan, String>,
    /// For each gap of the scan: intact records after it in the whole WAL.
    intact_after: Vec<usize>,
}

impl Surveyed {
    fn damages(&self) -> impl Iterator<Item = WalDamage> + '_ {
        let gaps = self.scan.as_ref().map(|s| s.gaps.as_slice()).unwrap_or(&[]);
        gaps.iter().zip(&self.intact_after).map(|(g, &n)| WalDamage::new(self.path.clone(), g, n))
    }
}

/// What [`survey`] does when a segment cannot be read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnIoError {
    /// Return the error.
    Fail,
    /// Leave the segment out.
    Skip,
    /// Keep it, unreadable, with the error as the reason.
    Report,
}

/// Reads and scans every segment of `dir`, oldest first, and counts the intact records
/// after each gap. A segment that vanishes between the listing and the read (deleted by a
/// live writer once published) is left out.
fn survey(fs: &dyn Fs, dir: &Path, on_io_error: OnIoError) -> Result<Vec<Surveyed>, WalError> {
    let mut out: Vec<Surveyed> = Vec::new();
    let mut floor = 0;
    for index in segment_indices(fs, dir)? {
        let path = dir.join(segment_name(index));
        let (bytes, scan) = match fs.read(&path) {
            Ok(bytes) => {
                let scan = segment::scan(&bytes, floor);
                let damaged = !scan.as_ref().is_ok_and(|s| s.gaps.is_empty());
                (if damaged { bytes } else { Vec::new() }, scan)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) if on_io_error == OnIoError::Fail => {
                return Err(WalError::Io { path, op: "read", source });
            }
            Err(_) if on_io_error == OnIoError::Skip => continue,
            Err(e) => (Vec::new(), Err(format!("cannot be read: {e}"))),
        };
        if let Ok(s) = &scan {
            floor = floor.max(s.last_seq().unwrap_or(0));
        }
        out.push(Surveyed { index, path, bytes, scan, intact_after: Vec::new() });
    }
    let mut later = 0;
    for s in out.iter_mut().rev() {
        let Ok(scan) = &s.scan else { continue };
        s.intact_after = scan
            .gaps
            .iter()
            .map(|g| later + scan.records.iter().filter(|r| r.offset >= g.end).count())
            .collect();
        later += scan.records.len();
    }
    Ok(out)
}

/// A WAL segment that no longer takes appends, waiting for its rows to be published.
#[derive(Debug)]
struct Sealed {
    path: PathBuf,
    last_seq: u64,
    bytes: u64,
}

/// A segment just sealed with appends not yet synced (group commit), and the descriptor
/// that wrote them: [`SealedSegment::sync`] makes them durable through it, outside the
/// store's lock.
pub struct SealedSegment {
    path: PathBuf,
    file: Box<dyn AppendFile>,
}

impl SealedSegment {
    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsyncs the segment through the descriptor that wrote it. On an error, report it with
    /// [`Wal::sync_failed`]: the WAL stops.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

impl std::fmt::Debug for SealedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSegment").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The appending side of the WAL: a directory of segments `NNNNNNNN.wal`. Appends go to the
/// newest, through one open descriptor; `seal` closes it for appends (its rows are being
/// published) and starts a new one; a sealed segment is deleted once a durable manifest
/// covers its last record.
pub struct Wal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    durability: Durability,
    active: PathBuf,
    file: Box<dyn AppendFile>,
    active_index: u64,
    active_last_seq: u64,
    /// Bytes of the active segment, header included.
    active_bytes: u64,
    sealed: Vec<Sealed>,
    last_sync: Instant,
    /// When the oldest append not yet synced was made.
    unsynced_since: Option<Instant>,
    stopped: bool,
}

impl Wal {
    /// Opens the WAL in `dir` (creating its first segment if there is none) and returns what
    /// all segments held, oldest first.
    ///
    /// - A torn tail (damage no intact record follows) is cut off: the segment's intact
    ///   prefix is rewritten durably, and the damage is returned in
    ///   [`WalContents::damage`] (offset, bytes dropped).
    /// - Corruption (damage intact records follow) is refused with [`WalError::Corrupt`]
    ///   before anything is changed; [`repair`] is the way out.
    /// - A newest segment of an older format version is sealed: appends go to a new one.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, durability: Durability) -> Result<(Wal, WalContents), WalError> {
        let io = |path: &Path, op, source| WalError::Io { path: path.to_path_buf(), op, source };
        fs.create_dir_all(dir).map_err(|e| io(dir, "create directory", e))?;
        // The WAL directory's entry and its segments' entries are durable before anything
        // is replayed from them, even if the process that made them died before its fsync.
        for d in [dir.to_path_buf(), parent_dir(dir)] {
            fs.sync_dir(&d).map_err(|e| io(&d, "fsync directory", e))?;
        }
        // Refuse before changing anything.
        let mut segments = Vec::new();
        for s in survey(&*fs, dir, OnIoError::Fail)? {
            if let Some(d) = s.damages().find(|d| d.kind == DamageKind::Corrupt) {
                let WalDamage { path, offset, reason, intact_after, .. } = d;
                return Err(WalError::Corrupt { path, offset, reason, intact_after });
            }
            match s.scan {
                Ok(scan) => segments.push((s.index, s.path, s.bytes, scan)),
                Err(reason) => return Err(WalError::Format { path: s.path, reason }),
            }
        }
        let mut contents = WalContents::default();
        let mut sealed = Vec::new();
        let mut last_seq = 0;
        let newest = segments.last().map(|s| s.0);
        let mut active = None;
        for (index, path, file_bytes, scan) in segments {
            let mut bytes = scan.len;
            if let Some(gap) = scan.tail_gap() {
                // A torn tail: no intact record follows it. Rewrite the intact prefix so
                // appends do not follow garbage (a torn header becomes a whole one).
                let damage = WalDamage::new(path.clone(), gap, 0);
                let mut keep = header_of(scan.version).to_vec();
                keep.extend_from_slice(file_bytes.get(HEADER..gap.offset as usize).unwrap_or(&[]));
                publish(&*fs, &path, &keep).map_err(|e| io(&path, "rewrite", e))?;
                bytes = keep.len() as u64;
                contents.damage.get_or_insert(damage);
            }
            contents.valid_len += scan.valid_len().max(HEADER as u64);
            let seg_last = scan.last_seq().unwrap_or(last_seq);
            last_seq = last_seq.max(seg_last);
            if Some(index) == newest && scan.version == WAL_VERSION {
                active = Some((index, path, bytes));
            } else {
                sealed.push(Sealed { path, last_seq: seg_last, bytes });
            }
            contents.entries.extend(scan.records.into_iter().map(|r| r.entry));
        }
        let (active_index, active, active_bytes) = match active {
            Some(a) => a,
            None => {
                // No segment yet, or the newest is of an older version: start one.
                let index = newest.map_or(1, |i| i + 1);
                let path = dir.join(segment_name(index));
                prepare_segment(&*fs, &path)?;
                (index, path, HEADER as u64)
            }
        };
        let file = fs.open_append(&active).map_err(|e| io(&active, "open", e))?;
        let wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            durability,
            active,
            file,
            active_index,
            active_last_seq: last_seq,
            active_bytes,
            sealed,
            last_sync: Instant::now(),
            unsynced_since: None,
            stopped: false,
        };
        Ok((wal, contents))
    }

    /// Reads every segment without changing anything (for read-only opens of a store that
    /// another process may be writing): every intact record, including those after
    /// corruption, and the first damage. Errors on a file that is not a WAL segment of a
    /// version this build reads.
    pub fn read_only(fs: &dyn Fs, dir: &Path) -> Result<WalContents, WalError> {
        let mut contents = WalContents::default();
        for s in survey(fs, dir, OnIoError::Skip)? {
            let scan = s
                .scan
                .as_ref()
                .map_err(|reason| WalError::Format { path: s.path.clone(), reason: reason.clone() })?;
            if contents.damage.is_none() {
                contents.damage = s.damages().next();
            }
            contents.valid_len += scan.valid_len();
            contents.entries.extend(s.scan.into_iter().flat_map(|s| s.records).map(|r| r.entry));
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
        self.active_bytes += frame.len() as u64;
        self.active_last_seq = entry.seq;
        self.unsynced_since.get_or_insert_with(Instant::now);
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
        if self.unsynced_since.is_none() {
            return Ok(());
        }
        if let Err(e) = self.file.sync_data() {
            return Err(self.fail("fsync", e));
        }
        self.unsynced_since = None;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// With [`Durability::Interval`]`(d)`: syncs when the oldest unsynced append is at
    /// least `d` old, and returns whether it synced. Call it from a timer (every `d` or
    /// more often) so that an acknowledged append is durable within `d` even when no other
    /// append follows it. Does nothing under the other policies.
    pub fn sync_if_due(&mut self) -> Result<bool, WalError> {
        if self.stopped {
            return Err(WalError::Stopped(self.dir.clone()));
        }
        match (self.durability, self.unsynced_since) {
            (Durability::Interval(d), Some(since)) if since.elapsed() >= d => self.sync().map(|()| true),
            _ => Ok(false),
        }
    }

    /// The file the next segment will be, and the file system to create it on: a publisher
    /// creates it with [`prepare_segment`] before taking the store's lock, so `seal` under
    /// the lock only switches to it.
    pub fn next_segment(&self) -> (Arc<dyn Fs>, PathBuf) {
        (self.fs.clone(), self.dir.join(segment_name(self.active_index + 1)))
    }

    /// Seals the active segment (its records are about to be published) and starts a new
    /// one, creating it unless `prepared` says [`prepare_segment`] already did. Does nothing
    /// when the active segment holds no record. Returns the sealed segment when it still has
    /// unsynced appends (group commit), with the descriptor that wrote them: the caller
    /// syncs it with [`SealedSegment::sync`], outside any lock.
    pub fn seal(&mut self, prepared: bool) -> Result<Option<SealedSegment>, WalError> {
        if self.stopped {
            return Err(WalError::Stopped(self.dir.clone()));
        }
        if self.active_bytes <= HEADER as u64 {
            return Ok(None);
        }
        let next = self.dir.join(segment_name(self.active_index + 1));
        if !prepared && let Err(e) = publish(&*self.fs, &next, &header_of(WAL_VERSION)) {
            return Err(self.fail("rotate", e));
        }
        let file = match self.fs.open_append(&next) {
            Ok(f) => f,
            Err(e) => return Err(self.fail("rotate", e)),
        };
        let old_file = std::mem::replace(&mut self.file, file);
        let old = std::mem::replace(&mut self.active, next);
        self.sealed.push(Sealed {
            path: old.clone(),
            last_seq: self.active_last_seq,
            bytes: self.active_bytes,
        });
        self.active_index += 1;
        self.active_bytes = HEADER as u64;
        Ok(self.unsynced_since.take().map(|_| SealedSegment { path: old, file: old_file }))
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
                // A segment left behind by a failed delete, or brought back by a power cut
                // before the directory was synced, is skipped at the next recovery.
                let _ = fs.remove(&s.path);
                false
            } else {
                true
            }
        });
    }

    /// Bytes in the WAL's segments (the active one and those sealed and not yet deleted),
    /// headers included.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.active_bytes + self.sealed.iter().map(|s| s.bytes).sum::<u64>()
    }

    /// Whether an earlier failure stopped the WAL.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}
