//! A segment's bytes: the header, the record frames, and the scan that finds every intact
//! record and every damaged stretch between them (resynchronising after damage).

use super::codec;
use super::{WalContents, WalDamage, WalEntry};
use std::path::PathBuf;

/// The WAL file's magic bytes.
pub const WAL_MAGIC: &[u8; 6] = b"MWWAL\0";
/// The WAL format version this build writes.
pub const WAL_VERSION: u16 = 2;
/// The oldest version this build reads (JSON payloads).
const WAL_V1: u16 = 1;
/// Bytes of the segment header.
pub const HEADER: usize = 8;
/// Bytes of a record's frame header (`len`, `crc`).
const FRAME: usize = 8;
/// Records larger than this are taken as damage, not allocated.
pub const MAX_RECORD: u32 = 256 << 20;

/// Encodes a segment header of `version`.
pub fn header_of(version: u16) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..6].copy_from_slice(WAL_MAGIC);
    h[6..].copy_from_slice(&version.to_le_bytes());
    h
}

/// Frames one entry in the current version: `len`, `crc`, payload.
pub fn encode(entry: &WalEntry) -> Vec<u8> {
    frame(&codec::encode_v2(entry))
}

/// Frames a payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// An intact record of a segment.
#[derive(Debug)]
pub struct Record {
    /// Where its frame starts.
    pub offset: u64,
    /// Its frame's length (frame header included).
    pub len: u64,
    /// What it holds.
    pub entry: WalEntry,
}

/// A stretch of a segment holding no intact record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalGap {
    /// Where the damage starts (the frame that could not be read).
    pub offset: u64,
    /// Where the next intact record starts, or the file's length.
    pub end: u64,
    /// What was wrong with the frame at `offset`.
    pub reason: String,
}

/// What one segment holds.
#[derive(Debug, Default)]
pub struct Scan {
    /// The header's version ([`WAL_VERSION`] for a torn header).
    pub version: u16,
    /// The file's length.
    pub len: u64,
    /// Every intact record, in file order.
    pub records: Vec<Record>,
    /// Every damaged stretch, in file order.
    pub gaps: Vec<WalGap>,
}

impl Scan {
    /// Length of the intact prefix: up to the first damage, or the whole file.
    pub fn valid_len(&self) -> u64 {
        self.gaps.first().map_or(self.len, |g| g.offset)
    }

    /// The damage that runs to the end of the file, if any.
    pub fn tail_gap(&self) -> Option<&WalGap> {
        self.gaps.last().filter(|g| g.end == self.len)
    }

    /// The highest sequence number among the records.
    pub fn last_seq(&self) -> Option<u64> {
        self.records.iter().map(|r| r.entry.seq).max()
    }
}

/// Scans a segment's bytes. `floor` is the highest sequence number of the segments before
/// it: a record found by resynchronisation must be above it and above every record before
/// it in this segment. Errors only when the header is not a WAL's of a version this build
/// reads; any damage after it is in the result.
pub fn scan(bytes: &[u8], floor: u64) -> Result<Scan, String> {
    let len = bytes.len() as u64;
    if bytes.len() < HEADER {
        return if WAL_MAGIC.starts_with(&bytes[..bytes.len().min(6)]) {
            // A header torn by a crash while the file was being created: no records.
            let reason = format!("torn header ({} of {HEADER} bytes)", bytes.len());
            Ok(Scan {
                version: WAL_VERSION,
                len,
                records: Vec::new(),
                gaps: vec![WalGap { offset: 0, end: len, reason }],
            })
        } else {
            Err("not a modelwatch WAL (bad magic)".into())
        };
    }
    if &bytes[..6] != WAL_MAGIC {
        return Err("not a modelwatch WAL (bad magic)".into());
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if !(WAL_V1..=WAL_VERSION).contains(&version) {
        return Err(format!(
            "WAL format version {version}; this build reads versions {WAL_V1} to {WAL_VERSION}"
        ));
    }
    let mut out = Scan { version, len, ..Scan::default() };
    let mut last_seq = floor;
    let mut at = HEADER;
    while at < bytes.len() {
        match read_frame(bytes, at, version) {
            Ok((entry, n)) => {
                last_seq = last_seq.max(entry.seq);
                out.records.push(Record { offset: at as u64, len: n as u64, entry });
                at += n;
            }
            Err(reason) => {
                let next = resync(bytes, at + 1, version, last_seq);
                out.gaps.push(WalGap { offset: at as u64, end: next.map_or(len, |p| p as u64), reason });
                match next {
                    Some(p) => at = p,
                    None => break,
                }
            }
        }
    }
    Ok(out)
}

/// Reads the frame at `at`: its entry and its length.
fn read_frame(bytes: &[u8], at: usize, version: u16) -> Result<(WalEntry, usize), String> {
    let left = bytes.len() - at;
    let Some(head) = bytes.get(at..at + FRAME) else {
        return Err(format!("truncated record header ({left} of {FRAME} bytes)"));
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_RECORD {
        return Err(format!("record length {len} is larger than the {MAX_RECORD}-byte limit"));
    }
    let Some(payload) = bytes.get(at + FRAME..at + FRAME + len as usize) else {
        return Err(format!("truncated record: {len} bytes announced, {} present", left - FRAME));
    };
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    let entry = if version == WAL_V1 { codec::decode_v1(payload) } else { codec::decode_v2(payload) };
    entry.map(|e| (e, FRAME + len as usize)).map_err(|e| format!("undecodable record: {e}"))
}

/// The first offset from `from` where an intact record with a sequence number above
/// `last_seq` starts, trying every byte. Cheap tests (length, payload tag, sequence
/// number) come before the checksum, so a scan over garbage costs about one pass.
fn resync(bytes: &[u8], from: usize, version: u16, last_seq: u64) -> Option<usize> {
    (from..bytes.len().saturating_sub(FRAME - 1)).find(|&p| {
        let len = u32::from_le_bytes([bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]]) as usize;
        let Some(payload) = bytes.get(p + FRAME..p + FRAME + len) else { return false };
        let plausible = if version == WAL_V1 {
            codec::looks_like_v1(payload)
        } else {
            codec::peek_seq_v2(payload).is_some_and(|s| s > last_seq)
        };
        plausible && matches!(read_frame(bytes, p, version), Ok((e, _)) if e.seq > last_seq)
    })
}

/// Decodes one segment's bytes on their own (for `store verify` and the fuzzer): every
/// intact record, the first damage (offset and reason; `path` empty), and the length of the
/// intact prefix. Errors only when the header is not a WAL's.
pub fn decode(bytes: &[u8]) -> Result<WalContents, String> {
    let scan = scan(bytes, 0)?;
    let intact_after = |g: &WalGap| scan.records.iter().filter(|r| r.offset >= g.end).count();
    let damage = scan.gaps.first().map(|g| WalDamage::new(PathBuf::new(), g, intact_after(g)));
    let valid_len = scan.valid_len();
    Ok(WalContents { entries: scan.records.into_iter().map(|r| r.entry).collect(), damage, valid_len })
}
