//! Inspection and repair of a WAL directory, for `store verify` and `store repair`. Both
//! read the segments exactly as [`Wal::open`](super::Wal::open) does, so what they call a
//! torn tail or corruption is what opening will do with it.

use super::segment::{HEADER, WAL_VERSION, WalGap, header_of};
use super::{OnIoError, Surveyed, WalError, repair_command, survey};
use crate::fs::{Fs, publish};
use std::fmt;
use std::path::{Path, PathBuf};

/// What [`inspect`] found in a WAL directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalReport {
    /// The WAL directory.
    pub dir: PathBuf,
    /// Every segment, oldest first.
    pub segments: Vec<SegmentReport>,
}

impl WalReport {
    /// Whether a store opens on this WAL without losing an acknowledged record: nothing is
    /// corrupt or unreadable (a torn tail is fine: it was never acknowledged).
    pub fn is_ok(&self) -> bool {
        self.problems().next().is_none()
    }

    /// The segments that stop the store from opening (corrupt or unreadable).
    pub fn problems(&self) -> impl Iterator<Item = &SegmentReport> {
        self.segments
            .iter()
            .filter(|s| matches!(s.state, SegmentState::Corrupt { .. } | SegmentState::Unreadable { .. }))
    }
}

/// One segment as [`inspect`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    /// The segment file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its format version (`None` when unreadable).
    pub version: Option<u16>,
    /// Intact records in it.
    pub records: usize,
    /// Whether it is damaged, and how.
    pub state: SegmentState,
}

/// How a segment is damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentState {
    /// Every byte belongs to an intact record.
    Intact,
    /// The remains of an interrupted append, never acknowledged: the next open cuts them
    /// off. `store verify` reports it and succeeds.
    TornTail {
        /// Where the damage starts.
        offset: u64,
        /// The unacknowledged bytes the next open drops.
        bytes: u64,
        /// What was wrong with the frame at `offset`.
        reason: String,
    },
    /// Damage that intact records follow: the store refuses to open until
    /// [`repair`] runs. `store verify` fails.
    Corrupt {
        /// Where the first damage starts.
        offset: u64,
        /// What was wrong with the frame at `offset`.
        reason: String,
        /// Every damaged stretch of the segment (what a repair drops).
        gaps: Vec<WalGap>,
        /// Records lost in those stretches, from the sequence numbers around them (`None`
        /// when no intact record precedes the damage to count from).
        records_lost: Option<u64>,
        /// Intact records after the first damage, in this segment and the later ones.
        intact_after: usize,
    },
    /// Not a WAL segment of a version this build reads, or unreadable: the store refuses to
    /// open, and repair leaves it alone.
    Unreadable {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for SegmentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let summary = format!("{} records, {} bytes", self.records, self.bytes);
        match &self.state {
            SegmentState::Intact => write!(f, "{path}: {summary}, intact"),
            SegmentState::TornTail { offset, bytes, reason } => write!(
                f,
                "{path}: {summary}; torn tail at offset {offset} ({reason}): {bytes} bytes of an interrupted append, never acknowledged, that the next open drops"
            ),
            SegmentState::Corrupt { offset, reason, gaps, records_lost, intact_after } => {
                let lost = records_lost.map_or_else(|| "an unknown number of".to_string(), |n| n.to_string());
                write!(
                    f,
                    "{path}: {summary}; corrupt at offset {offset} ({reason}): {lost} record(s) lost in {} damaged stretch(es), {intact_after} intact record(s) after the damage; the store will not open until `{}` keeps them",
                    gaps.len(),
                    repair_command(&self.path)
                )
            }
            SegmentState::Unreadable { reason } => write!(f, "{path}: {reason}"),
        }
    }
}

/// Reads every segment of the WAL directory `dir` (`DATA/wal`) and reports, per segment,
/// its size, its intact records and its damage, changing nothing. For `store verify`: exit
/// 0 when [`WalReport::is_ok`] (printing torn tails), 1 otherwise. Errors only when the
/// directory cannot be listed.
pub fn inspect(fs: &dyn Fs, dir: &Path) -> Result<WalReport, WalError> {
    let surveyed = survey(fs, dir, OnIoError::Report)?;
    let lost = records_lost(&surveyed);
    let segments = surveyed
        .iter()
        .zip(lost)
        .map(|(s, records_lost)| {
            let scan = match &s.scan {
                Ok(scan) => scan,
                Err(reason) => {
                    let state = SegmentState::Unreadable { reason: reason.clone() };
                    let bytes = s.bytes.len() as u64;
                    return SegmentReport { path: s.path.clone(), bytes, version: None, records: 0, state };
                }
            };
            let bytes = scan.len;
            let state = match (scan.gaps.first(), s.intact_after.first()) {
                (None, _) => SegmentState::Intact,
                (Some(g), Some(&intact_after)) if intact_after > 0 => SegmentState::Corrupt {
                    offset: g.offset,
                    reason: g.reason.clone(),
                    gaps: scan.gaps.clone(),
                    records_lost,
                    intact_after,
                },
                (Some(g), _) => SegmentState::TornTail {
                    offset: g.offset,
                    bytes: g.end - g.offset,
                    reason: g.reason.clone(),
                },
            };
            SegmentReport {
                path: s.path.clone(),
                bytes,
                version: Some(scan.version),
                records: scan.records.len(),
                state,
            }
        })
        .collect();
    Ok(WalReport { dir: dir.to_path_buf(), segments })
}

/// Per segment: the records lost in its damaged stretches that intact records follow, from
/// the sequence numbers of the intact records on either side (the store numbers its writes
/// one by one). `None` when a stretch has no intact record before it.
fn records_lost(segments: &[Surveyed]) -> Vec<Option<u64>> {
    // Every intact record's (segment, offset, seq), in WAL order.
    let all: Vec<(usize, u64, u64)> = segments
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.scan.iter().flat_map(move |sc| sc.records.iter().map(move |r| (i, r.offset, r.entry.seq)))
        })
        .collect();
    segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let Ok(scan) = &s.scan else { return None };
            let mut total = 0u64;
            for (g, &after) in scan.gaps.iter().zip(&s.intact_after) {
                if after == 0 {
                    continue; // a torn tail: nothing acknowledged was lost
                }
                let prev = all.iter().rev().find(|r| r.0 < i || (r.0 == i && r.1 < g.offset))?.2;
                let next = all.iter().find(|r| r.0 > i || (r.0 == i && r.1 >= g.end))?.2;
                total += next.saturating_sub(prev).saturating_sub(1);
            }
            Some(total)
        })
        .collect()
}

/// What [`repair`] did, or would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairReport {
    /// The WAL directory.
    pub dir: PathBuf,
    /// Whether the repair was carried out (`apply`), or only planned.
    pub applied: bool,
    /// Every damaged or unreadable segment, oldest first (intact ones are not listed).
    pub segments: Vec<SegmentRepair>,
}

/// What repair does with one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRepair {
    /// The segment file.
    pub path: PathBuf,
    /// What is done with it.
    pub action: RepairAction,
    /// The byte ranges `[start, end)` that hold no intact record and are dropped.
    pub dropped: Vec<(u64, u64)>,
    /// Intact records before the first damage, kept.
    pub kept_before: usize,
    /// Intact records after the first damage, kept.
    pub kept_after: usize,
    /// Where the damaged file was kept, once applied.
    pub moved_to: Option<PathBuf>,
}

/// What repair does with a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairAction {
    /// Corrupt: the damaged file is kept aside (`NNNNNNNN.wal.damaged`, then `.damaged.2`,
    /// ...; never overwritten) and the segment is rewritten with every intact record, in
    /// order, so the next open replays them.
    Rewrite,
    /// A torn tail: left for the next open to cut off (nothing acknowledged is in it).
    LeftToOpen,
    /// Not a WAL segment this build reads: left alone (the store will not open while it is
    /// in the WAL directory; move it away by hand if it is not a segment).
    LeftAlone {
        /// Why it cannot be read.
        reason: String,
    },
}

impl fmt::Display for SegmentRepair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let ranges: Vec<String> = self.dropped.iter().map(|(a, b)| format!("{a}..{b}")).collect();
        let dropped_bytes: u64 = self.dropped.iter().map(|(a, b)| b - a).sum();
        let (kept, before, after) = (self.kept_before + self.kept_after, self.kept_before, self.kept_after);
        match (&self.action, &self.moved_to) {
            (RepairAction::Rewrite, None) => write!(
                f,
                "{path}: would drop {dropped_bytes} damaged bytes (offsets {}) and keep {kept} intact records ({before} before the damage, {after} after it)",
                ranges.join(", ")
            ),
            (RepairAction::Rewrite, Some(aside)) => write!(
                f,
                "{path}: dropped {dropped_bytes} damaged bytes (offsets {}), kept {kept} intact records ({before} before the damage, {after} after it); the damaged file is kept as {}",
                ranges.join(", "),
                aside.display()
            ),
            (RepairAction::LeftToOpen, _) => write!(
                f,
                "{path}: torn tail ({dropped_bytes} bytes at offset {}) of an interrupted append, never acknowledged; left for the next open to cut off",
                self.dropped.first().map_or(0, |r| r.0)
            ),
            (RepairAction::LeftAlone { reason }, _) => write!(
                f,
                "{path}: {reason}; left alone (the store will not open while it is in the WAL directory: move it away by hand if it is not a WAL segment)"
            ),
        }
    }
}

/// Plans, and with `apply` carries out, the repair of the WAL directory `dir` (`DATA/wal`):
/// each corrupt segment is rewritten with every intact record it holds, in order, after the
/// damaged file is copied aside; torn tails are left to the next open; unreadable files are
/// left alone. Afterwards opening the store succeeds (unless a file is
/// unreadable) and replays every kept record.
///
/// Each file is written atomically and durably (temporary name, fsync, rename, fsync of
/// the directory), the copy aside first, so a crash during a repair leaves either the
/// damaged segment or the repaired one, and running it again is safe. The store must not be
/// open for writing meanwhile (the caller holds its lock).
pub fn repair(fs: &dyn Fs, dir: &Path, apply: bool) -> Result<RepairReport, WalError> {
    let mut report = RepairReport { dir: dir.to_path_buf(), applied: apply, segments: Vec::new() };
    for s in survey(fs, dir, OnIoError::Report)? {
        let scan = match &s.scan {
            Ok(scan) => scan,
            Err(reason) => {
                report.segments.push(SegmentRepair {
                    path: s.path.clone(),
                    action: RepairAction::LeftAlone { reason: reason.clone() },
                    dropped: Vec::new(),
                    kept_before: 0,
                    kept_after: 0,
                    moved_to: None,
                });
                continue;
            }
        };
        let Some(first) = scan.gaps.first() else { continue };
        let corrupt = s.intact_after.first().is_some_and(|&n| n > 0);
        let kept_before = scan.records.iter().filter(|r| r.offset < first.offset).count();
        let mut entry = SegmentRepair {
            path: s.path.clone(),
            action: if corrupt { RepairAction::Rewrite } else { RepairAction::LeftToOpen },
            dropped: scan.gaps.iter().map(|g| (g.offset, g.end)).collect(),
            kept_before,
            kept_after: scan.records.len() - kept_before,
            moved_to: None,
        };
        if corrupt && apply {
            let io = |path: &Path, op, source| WalError::Io { path: path.to_path_buf(), op, source };
            let aside = aside_name(fs, &s.path);
            publish(fs, &aside, &s.bytes).map_err(|e| io(&aside, "copy aside", e))?;
            let version = if s.bytes.len() >= HEADER { scan.version } else { WAL_VERSION };
            let mut kept = header_of(version).to_vec();
            for r in &scan.records {
                kept.extend_from_slice(&s.bytes[r.offset as usize..(r.offset + r.len) as usize]);
            }
            publish(fs, &s.path, &kept).map_err(|e| io(&s.path, "rewrite", e))?;
            entry.moved_to = Some(aside);
        }
        report.segments.push(entry);
    }
    Ok(report)
}

/// The first of `NNNNNNNN.wal.damaged`, `NNNNNNNN.wal.damaged.2`, ... that does not exist
/// (none ends in `.wal`, so none is taken for a segment).
fn aside_name(fs: &dyn Fs, segment: &Path) -> PathBuf {
    let name = segment.file_name().and_then(|n| n.to_str()).unwrap_or("segment.wal");
    let dir = segment.parent().unwrap_or(Path::new("."));
    (1..)
        .map(|n| dir.join(if n == 1 { format!("{name}.damaged") } else { format!("{name}.damaged.{n}") }))
        .find(|p| !fs.exists(p))
        .unwrap_or_else(|| dir.join(format!("{name}.damaged")))
}
