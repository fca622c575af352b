//! The WAL through [`Wal::open`] on real directories: recovery of torn tails, refusal of
//! corruption, repair, the old JSON format, and the byte count.

use super::segment::{HEADER, WAL_MAGIC, frame, header_of};
use super::*;
use crate::fs::RealFs;
use crate::rows::{Resolution, ScalarKind, ScalarRow, SeriesKey};
use proptest::prelude::*;

fn entry(seq: u64) -> WalEntry {
    let series = SeriesKey { model: "m".into(), metric: "gauge".into(), ..SeriesKey::default() };
    let value = if seq.is_multiple_of(3) { f64::from_bits(0x7ff8_0000_0000_0000 | seq) } else { seq as f64 };
    let row = ScalarRow {
        start_ms: 1_764_115_200_000 + seq as i64 * 10_000,
        end_ms: 1_764_115_210_000 + seq as i64 * 10_000,
        resolution: Resolution::Raw,
        series,
        kind: ScalarKind::Gauge,
        value,
    };
    WalEntry { seq, rows: Rows { scalars: vec![row], ..Rows::default() } }
}

fn open(dir: &Path) -> Result<(Wal, WalContents), WalError> {
    Wal::open(Arc::new(RealFs), dir, Durability::Sync)
}

fn seqs(c: &WalContents) -> Vec<u64> {
    c.entries.iter().map(|e| e.seq).collect()
}

/// A WAL directory whose segments hold `split` records each: `[3, 2]` is two segments, the
/// first (sealed) with seqs 1..=3, the second with 4..=5. Returns the segment paths.
fn wal_with(dir: &Path, split: &[u64]) -> Vec<PathBuf> {
    // No fsyncs: the files are read back as written, with no power cut.
    let (mut wal, _) = Wal::open(Arc::new(RealFs), dir, Durability::None).unwrap();
    let mut seq = 0;
    for (i, &n) in split.iter().enumerate() {
        if i > 0 {
            wal.seal(false).unwrap();
        }
        for _ in 0..n {
            seq += 1;
            wal.append(&entry(seq)).unwrap();
        }
    }
    segment_paths(&RealFs, dir).unwrap()
}

/// The offset of record `k` (0-based) of a segment holding `first..` in order.
fn offset_of(first: u64, k: u64) -> usize {
    HEADER + (first..first + k).map(|s| encode(&entry(s)).len()).sum::<usize>()
}

fn flip(path: &Path, at: usize, bit: u8) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 1 << bit;
    std::fs::write(path, b).unwrap();
}

#[test]
fn records_round_trip_through_the_files_with_their_nan_bits() {
    let dir = tempfile::tempdir().unwrap();
    wal_with(dir.path(), &[4, 0, 3]);
    let (_, c) = open(dir.path()).unwrap();
    assert_eq!(seqs(&c), (1..=7).collect::<Vec<_>>());
    assert_eq!(c.damage, None);
    for e in &c.entries {
        assert_eq!(e.rows.scalars[0].value.to_bits(), entry(e.seq).rows.scalars[0].value.to_bits());
    }
}

#[test]
fn len_is_the_bytes_of_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path()).unwrap();
    let on_disk = || -> u64 {
        segment_paths(&RealFs, dir.path()).unwrap().iter().map(|p| std::fs::metadata(p).unwrap().len()).sum()
    };
    assert_eq!(wal.len(), on_disk());
    for s in 1..=3 {
        wal.append(&entry(s)).unwrap();
    }
    assert_eq!(wal.len(), on_disk());
    wal.seal(false).unwrap();
    wal.append(&entry(4)).unwrap();
    assert_eq!(wal.len(), on_disk());
    wal.remove_covered(3);
    assert_eq!(wal.len(), on_disk());
    drop(wal);
    let (wal, _) = open(dir.path()).unwrap();
    assert_eq!(wal.len(), on_disk());
}

#[test]
fn a_version_1_segment_is_replayed_and_never_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    // Written as version 1 did: JSON payloads.
    let mut v1 = header_of(1).to_vec();
    for s in 1..=3 {
        let mut e = entry(s);
        e.rows.scalars[0].value = s as f64; // JSON cannot hold the NaN
        v1.extend(frame(&serde_json::to_vec(&e).unwrap()));
    }
    let old = dir.path().join("00000001.wal");
    std::fs::write(&old, &v1).unwrap();
    let (mut wal, c) = open(dir.path()).unwrap();
    assert_eq!(seqs(&c), [1, 2, 3]);
    wal.append(&entry(4)).unwrap();
    drop(wal);
    assert_eq!(std::fs::read(&old).unwrap(), v1, "the old segment is not written to");
    let (mut wal, c) = open(dir.path()).unwrap();
    assert_eq!(seqs(&c), [1, 2, 3, 4]);
    assert_eq!(c.entries[3].rows.scalars[0].value.to_bits(), entry(4).rows.scalars[0].value.to_bits());
    wal.remove_covered(3);
    assert_eq!(segment_paths(&RealFs, dir.path()).unwrap(), [dir.path().join("00000002.wal")]);
}

#[test]
fn a_version_1_segment_with_a_nan_keeps_the_records_around_it() {
    let dir = tempfile::tempdir().unwrap();
    // What version 1 wrote for a NaN gauge: `null`, which does not decode.
    let mut v1 = header_of(1).to_vec();
    for s in 1..=4 {
        let mut json = serde_json::to_value(entry(s)).unwrap();
        if s == 2 {
            json["rows"]["scalars"][0]["value"] = serde_json::Value::Null;
        } else {
            json["rows"]["scalars"][0]["value"] = (s as f64).into();
        }
        v1.extend(frame(&serde_json::to_vec(&json).unwrap()));
    }
    std::fs::write(dir.path().join("00000001.wal"), &v1).unwrap();
    let report = inspect(&RealFs, dir.path()).unwrap();
    assert!(
        matches!(
            &report.segments[0].state,
            SegmentState::Corrupt { records_lost: Some(1), intact_after: 2, .. }
        ),
        "{report:?}"
    );
    assert!(matches!(open(dir.path()), Err(WalError::Corrupt { intact_after: 2, .. })));
    repair(&RealFs, dir.path(), true).unwrap();
    assert_eq!(seqs(&open(dir.path()).unwrap().1), [1, 3, 4]);
}

/// The test the issue asks for, at the WAL's level: a byte flipped in record 3 of 10.
fn corruption_is_refused_and_repaired(split: &[u64], segment: usize) {
    let dir = tempfile::tempdir().unwrap();
    let paths = wal_with(dir.path(), split);
    let first = 1 + split[..segment].iter().sum::<u64>();
    let at = offset_of(first, 2) + 8 + 5;
    flip(&paths[segment], at, 3);
    let damaged = std::fs::read(&paths[segment]).unwrap();
    let before: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();

    let err = open(dir.path()).err().expect("corruption must be refused");
    let msg = err.to_string();
    let name = paths[segment].display().to_string();
    let offset = offset_of(first, 2);
    assert!(msg.contains(&name) && msg.contains(&format!("offset {offset}")), "{msg}");
    assert!(msg.contains("modelwatch store repair --data"), "{msg}");
    let after: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert_eq!(before, after, "a refused open changes no file");
    assert_eq!(segment_paths(&RealFs, dir.path()).unwrap(), paths);

    // Read-only readers keep every intact record.
    let ro = Wal::read_only(&RealFs, dir.path()).unwrap();
    let total: u64 = split.iter().sum();
    let want: Vec<u64> = (1..=total).filter(|&s| s != first + 2).collect();
    assert_eq!(seqs(&ro), want);
    assert_eq!(ro.damage.as_ref().map(|d| (d.offset, d.kind)), Some((offset as u64, DamageKind::Corrupt)));

    let report = inspect(&RealFs, dir.path()).unwrap();
    assert!(!report.is_ok());
    let SegmentState::Corrupt { offset: o, records_lost, intact_after, .. } = &report.segments[segment].state
    else {
        panic!("{report:?}")
    };
    assert_eq!((*o, *records_lost, *intact_after), (offset as u64, Some(1), (total - first - 2) as usize));
    assert!(
        report.segments[segment].to_string().contains("corrupt at offset"),
        "{}",
        report.segments[segment]
    );

    let plan = repair(&RealFs, dir.path(), false).unwrap();
    assert_eq!(plan.segments.len(), 1);
    assert_eq!(
        (plan.segments[0].kept_before, plan.segments[0].kept_after),
        (2, (split[segment] - 3) as usize)
    );
    assert_eq!(plan.segments[0].dropped, [(offset as u64, offset_of(first, 3) as u64)]);
    assert_eq!(
        before,
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect::<Vec<_>>(),
        "a plan changes nothing"
    );

    let done = repair(&RealFs, dir.path(), true).unwrap();
    let aside = done.segments[0].moved_to.clone().unwrap();
    assert_eq!(std::fs::read(&aside).unwrap(), damaged, "the damaged file is kept as it was");
    assert!(done.segments[0].to_string().contains("kept 9 intact records"), "{}", done.segments[0]);
    assert!(inspect(&RealFs, dir.path()).unwrap().is_ok());
    let (_, c) = open(dir.path()).unwrap();
    assert_eq!(seqs(&c), want);
    assert_eq!(c.damage, None);

    // A second repair of a new corruption keeps the first copy.
    let paths = segment_paths(&RealFs, dir.path()).unwrap();
    flip(&paths[segment], HEADER + 9, 0);
    repair(&RealFs, dir.path(), true).unwrap();
    assert_eq!(std::fs::read(&aside).unwrap(), damaged);
    assert!(aside.with_extension("damaged.2").exists(), "the next copy aside is {}.2", aside.display());
}

#[test]
fn corruption_in_the_newest_segment_is_refused_and_repaired() {
    corruption_is_refused_and_repaired(&[10], 0);
}

#[test]
fn corruption_in_a_sealed_segment_is_refused_and_repaired() {
    corruption_is_refused_and_repaired(&[10, 2], 0);
}

#[test]
fn damage_in_a_sealed_segment_followed_only_by_empty_ones_is_a_torn_tail() {
    // The publisher creates the next segment before sealing the active one: an append to
    // the active one interrupted meanwhile leaves a torn tail before an empty segment.
    let dir = tempfile::tempdir().unwrap();
    let paths = wal_with(dir.path(), &[3]);
    let mut b = std::fs::read(&paths[0]).unwrap();
    let cut = b.len();
    b.extend_from_slice(&encode(&entry(4))[..11]);
    std::fs::write(&paths[0], &b).unwrap();
    prepare_segment(&RealFs, &dir.path().join("00000002.wal")).unwrap();
    let (_, c) = open(dir.path()).unwrap();
    assert_eq!(seqs(&c), [1, 2, 3]);
    let d = c.damage.unwrap();
    assert_eq!((d.offset, d.bytes, d.kind), (cut as u64, 11, DamageKind::TornTail));
    assert_eq!(std::fs::read(&paths[0]).unwrap().len(), cut);
}

#[test]
fn a_zero_filled_stretch_with_records_after_it_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let paths = wal_with(dir.path(), &[6]);
    let mut b = std::fs::read(&paths[0]).unwrap();
    let (from, to) = (offset_of(1, 1), offset_of(1, 3));
    b[from..to].fill(0);
    std::fs::write(&paths[0], &b).unwrap();
    assert!(matches!(open(dir.path()), Err(WalError::Corrupt { intact_after: 3, .. })));
    let ro = Wal::read_only(&RealFs, dir.path()).unwrap();
    assert_eq!(seqs(&ro), [1, 4, 5, 6]);
    let plan = repair(&RealFs, dir.path(), false).unwrap();
    assert_eq!(plan.segments[0].dropped, [(from as u64, to as u64)]);
}

#[test]
fn a_torn_header_becomes_a_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000001.wal"), &WAL_MAGIC[..3]).unwrap();
    let (mut wal, c) = open(dir.path()).unwrap();
    assert_eq!(c.damage.map(|d| (d.offset, d.bytes, d.kind)), Some((0, 3, DamageKind::TornTail)));
    wal.append(&entry(1)).unwrap();
    drop(wal);
    assert_eq!(seqs(&open(dir.path()).unwrap().1), [1]);
}

#[test]
fn sync_if_due_syncs_only_old_unsynced_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) =
        Wal::open(Arc::new(RealFs), dir.path(), Durability::Interval(Duration::from_millis(500))).unwrap();
    assert!(!wal.sync_if_due().unwrap(), "nothing to sync");
    wal.append(&entry(1)).unwrap();
    assert!(!wal.sync_if_due().unwrap(), "not due yet");
    std::thread::sleep(Duration::from_millis(550));
    assert!(wal.sync_if_due().unwrap());
    assert!(!wal.sync_if_due().unwrap(), "synced already");
    wal.append(&entry(2)).unwrap();
    // Group commit: the sealed segment's last append is synced through its own descriptor.
    let mut sealed = wal.seal(false).unwrap().expect("an unsynced append");
    sealed.sync().unwrap();
    assert_eq!(sealed.path(), dir.path().join("00000001.wal"));
    let (_, sync) = Wal::open(Arc::new(RealFs), dir.path(), Durability::Sync).unwrap();
    assert_eq!(seqs(&sync), [1, 2]);
}

#[test]
fn foreign_files_and_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000001.wal"), b"PAR1....").unwrap();
    assert!(matches!(open(dir.path()), Err(WalError::Format { reason, .. }) if reason.contains("bad magic")));
    std::fs::write(dir.path().join("00000001.wal"), header_of(9)).unwrap();
    assert!(matches!(open(dir.path()), Err(WalError::Format { reason, .. }) if reason.contains("version 9")));
    let report = inspect(&RealFs, dir.path()).unwrap();
    assert!(matches!(report.segments[0].state, SegmentState::Unreadable { .. }));
    let plan = repair(&RealFs, dir.path(), true).unwrap();
    assert!(matches!(plan.segments[0].action, RepairAction::LeftAlone { .. }));
    assert_eq!(std::fs::read(dir.path().join("00000001.wal")).unwrap(), header_of(9));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A cut anywhere in the newest segment keeps exactly the records it does not reach,
    /// reports the rest as a torn tail, and leaves a WAL that opens clean.
    #[test]
    fn truncation_of_the_newest_segment_is_a_torn_tail(sealed in 0u64..4, n in 1u64..12, cut in 0usize..10_000) {
        let dir = tempfile::tempdir().unwrap();
        let split: Vec<u64> = if sealed > 0 { vec![sealed, n] } else { vec![n] };
        let paths = wal_with(dir.path(), &split);
        let newest = paths.last().unwrap();
        let full = std::fs::read(newest).unwrap();
        let cut = cut % (full.len() + 1);
        std::fs::write(newest, &full[..cut]).unwrap();
        let first = sealed + 1;
        let complete = (0..n).filter(|&k| offset_of(first, k + 1) <= cut).count() as u64;
        let (wal, c) = open(dir.path()).unwrap();
        prop_assert_eq!(seqs(&c), (1..first + complete).collect::<Vec<_>>());
        // A cut inside the header leaves a torn header: the whole file is the torn tail.
        let boundary = if cut < HEADER { 0 } else { offset_of(first, complete) };
        prop_assert_eq!(c.damage.is_some(), cut < HEADER || cut != boundary);
        if let Some(d) = &c.damage {
            prop_assert_eq!(d.kind, DamageKind::TornTail);
            prop_assert_eq!((d.offset as usize, d.bytes as usize), (boundary, cut - boundary));
            prop_assert_eq!(&d.path, newest);
        }
        drop(wal);
        let (_, again) = open(dir.path()).unwrap();
        prop_assert_eq!(&again.damage, &None);
        prop_assert_eq!(seqs(&again), seqs(&c));
    }

    /// A flipped bit in any record is refused as corruption when intact records follow it,
    /// and otherwise (the last record) cut off as a torn tail; repair then keeps every other
    /// record.
    #[test]
    fn a_bit_flip_is_corruption_unless_it_hits_the_last_record(records in proptest::collection::vec(1u64..6, 1..4), empty_newest: bool, at in 0usize..100_000, bit in 0u8..8) {
        let mut split = records.clone();
        if empty_newest {
            split.push(0);
        }
        let total: u64 = split.iter().sum();
        let dir = tempfile::tempdir().unwrap();
        let paths = wal_with(dir.path(), &split);
        // Pick a byte of some record, and find its seq.
        let record_bytes: Vec<(usize, usize, u64)> = split.iter().enumerate().flat_map(|(i, &n)| {
            let first = 1 + split[..i].iter().sum::<u64>();
            (0..n).map(move |k| (i, offset_of(first, k), first + k))
        }).collect();
        let (seg, start, seq) = record_bytes[at % record_bytes.len()];
        let len = encode(&entry(seq)).len();
        let byte = start + (at / record_bytes.len()) % len;
        flip(&paths[seg], byte, bit);
        let before: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
        let rest: Vec<u64> = (1..=total).filter(|&s| s != seq).collect();
        match open(dir.path()) {
            Ok((_, c)) => {
                prop_assert_eq!(seq, total, "only the last record can be a torn tail");
                prop_assert_eq!(seqs(&c), rest);
                prop_assert_eq!(c.damage.map(|d| (d.offset as usize, d.kind)), Some((start, DamageKind::TornTail)));
            }
            Err(WalError::Corrupt { path, offset, intact_after, .. }) => {
                prop_assert!(seq < total);
                prop_assert_eq!((path, offset as usize, intact_after as u64), (paths[seg].clone(), start, total - seq));
                prop_assert_eq!(&before, &paths.iter().map(|p| std::fs::read(p).unwrap()).collect::<Vec<_>>());
                repair(&RealFs, dir.path(), true).unwrap();
                prop_assert_eq!(seqs(&open(dir.path()).unwrap().1), rest);
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    /// Any bytes after a header: open, read-only, inspect and repair never panic, and what
    /// open keeps is what read-only reads.
    #[test]
    fn garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..600), keep in 0u64..4) {
        let dir = tempfile::tempdir().unwrap();
        let paths = wal_with(dir.path(), &[keep]);
        let mut b = std::fs::read(&paths[0]).unwrap();
        b.extend_from_slice(&tail);
        std::fs::write(&paths[0], &b).unwrap();
        let ro = Wal::read_only(&RealFs, dir.path()).unwrap();
        let report = inspect(&RealFs, dir.path()).unwrap();
        let _ = repair(&RealFs, dir.path(), false).unwrap();
        match open(dir.path()) {
            Ok((_, c)) => {
                prop_assert!(report.is_ok());
                prop_assert_eq!(seqs(&c), seqs(&ro));
            }
            Err(WalError::Corrupt { .. }) => prop_assert!(!report.is_ok()),
            Err(e) => prop_assert!(false, "{}", e),
        }
    }
}
