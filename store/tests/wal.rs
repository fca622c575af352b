//! The WAL through the store on a real directory: a NaN survives recovery, corruption is
//! refused with the file and offset named and repaired without losing an intact record,
//! and a version-1 (JSON) WAL left by an older build is replayed.

use modelwatch_store::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A store that publishes nothing by itself: every acknowledged row stays in the WAL.
fn config(dir: &Path) -> StoreConfig {
    StoreConfig { background: false, buffer_rows: 1_000_000, ..StoreConfig::new(dir) }
}

fn gauge(n: u64, value: f64) -> Rows {
    let series = SeriesKey {
        model: "m".into(),
        version: "1".into(),
        metric: "temperature".into(),
        tags: format!("n={n}").into(),
        ..SeriesKey::default()
    };
    let t = 1_764_115_200_000 + n as i64 * 10_000;
    Rows {
        scalars: vec![ScalarRow {
            start_ms: t,
            end_ms: t + 10_000,
            resolution: Resolution::Raw,
            series,
            kind: ScalarKind::Gauge,
            value,
        }],
        ..Rows::default()
    }
}

/// The gauges readable from the store, by `n`, as raw bits.
fn gauges(store: &Store) -> Vec<(u64, u64)> {
    let req = ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", "temperature");
    let mut out: Vec<(u64, u64)> = store
        .read(&req)
        .unwrap()
        .scalars
        .iter()
        .map(|r| (r.series.tag("n").unwrap().parse().unwrap(), r.value.to_bits()))
        .collect();
    out.sort();
    out
}

const NAN: u64 = 0x7ff8_0000_dead_beef;

fn value(n: u64) -> f64 {
    if n == 2 { f64::from_bits(NAN) } else { n as f64 * 1.5 }
}

/// Ten acknowledged gauges, the third a NaN, left in the WAL. Returns the WAL directory.
fn ten_in_the_wal(data: &Path) -> PathBuf {
    let store = Store::open_with(config(data), Arc::new(RealFs)).unwrap();
    for n in 0..10 {
        store.append(gauge(n, value(n))).unwrap();
    }
    drop(store);
    data.join("writers/w0/wal")
}

fn segments(wal: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = std::fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    s.sort();
    s
}

/// The offsets of a segment's record frames, read from their lengths.
fn record_offsets(segment: &Path) -> Vec<usize> {
    let b = std::fs::read(segment).unwrap();
    let mut at = 8;
    let mut out = Vec::new();
    while at + 8 <= b.len() {
        out.push(at);
        at += 8 + u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    }
    out
}

#[test]
fn a_nan_gauge_and_every_record_after_it_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    ten_in_the_wal(dir.path());
    let store = Store::open_with(config(dir.path()), Arc::new(RealFs)).unwrap();
    assert_eq!(store.recovery().replayed, 10);
    assert!(store.recovery().damage.is_none());
    let want: Vec<(u64, u64)> = (0..10).map(|n| (n, value(n).to_bits())).collect();
    assert_eq!(gauges(&store), want, "all ten, the NaN's bits intact");
}

/// One byte flipped in record 3 of 10 of `segment` (0: the only segment; with `sealed`, a
/// newer empty segment follows it).
fn corruption_is_refused_then_repaired(sealed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let wal = ten_in_the_wal(dir.path());
    let segment = segments(&wal).remove(0);
    if sealed {
        // A newer segment, as publication leaves: the damaged one is sealed.
        std::fs::write(wal.join("00000002.wal"), b"MWWAL\0\x02\x00").unwrap();
    }
    let offset = record_offsets(&segment)[2];
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[offset + 8 + 3] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();

    let err = Store::open_with(config(dir.path()), Arc::new(RealFs)).err().expect("corruption is refused");
    let msg = err.to_string();
    assert!(msg.contains(&segment.display().to_string()), "names the file: {msg}");
    assert!(msg.contains(&format!("offset {offset}")), "names the offset: {msg}");
    assert!(msg.contains("7 intact record(s) follow"), "{msg}");
    assert!(msg.contains(&format!("modelwatch store repair --data {}", dir.path().display())), "{msg}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "the segment is unchanged");

    let report = inspect_wal(&RealFs, &wal).unwrap();
    assert!(!report.is_ok());
    assert!(
        report.segments[0].to_string().contains(&format!("corrupt at offset {offset}")),
        "{}",
        report.segments[0]
    );

    let plan = repair_wal(&RealFs, &wal, false).unwrap();
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "planning changes nothing");
    assert_eq!((plan.segments[0].kept_before, plan.segments[0].kept_after), (2, 7));
    let done = repair_wal(&RealFs, &wal, true).unwrap();
    assert_eq!(done.segments[0].action, RepairAction::Rewrite);
    assert_eq!(std::fs::read(done.segments[0].moved_to.as_ref().unwrap()).unwrap(), bytes);

    let store = Store::open_with(config(dir.path()), Arc::new(RealFs)).unwrap();
    assert_eq!(store.recovery().replayed, 9);
    let want: Vec<(u64, u64)> = (0..10).filter(|&n| n != 2).map(|n| (n, value(n).to_bits())).collect();
    assert_eq!(gauges(&store), want, "exactly the nine intact records");
}

#[test]
fn corruption_in_the_newest_segment_is_refused_then_repaired() {
    corruption_is_refused_then_repaired(false);
}

#[test]
fn corruption_in_a_sealed_segment_is_refused_then_repaired() {
    corruption_is_refused_then_repaired(true);
}

#[test]
fn a_torn_tail_is_reported_by_inspection_and_cut_by_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal = ten_in_the_wal(dir.path());
    let segment = segments(&wal).remove(0);
    let len = std::fs::metadata(&segment).unwrap().len();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
    std::fs::write(&segment, &bytes).unwrap();
    let report = inspect_wal(&RealFs, &wal).unwrap();
    assert!(report.is_ok(), "a torn tail was never acknowledged");
    assert_eq!(
        report.segments[0].state,
        SegmentState::TornTail {
            offset: len,
            bytes: 7,
            reason: "truncated record header (7 of 8 bytes)".into()
        }
    );
    assert!(report.segments[0].to_string().contains("torn tail"), "{}", report.segments[0]);
    let store = Store::open_with(config(dir.path()), Arc::new(RealFs)).unwrap();
    let d = store.recovery().damage.clone().unwrap();
    assert_eq!((d.offset, d.bytes, d.kind), (len, 7, DamageKind::TornTail));
    assert_eq!(store.recovery().replayed, 10);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), len);
}

#[test]
fn a_version_1_wal_left_by_an_older_build_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    std::fs::create_dir_all(&wal).unwrap();
    let mut v1 = b"MWWAL\0\x01\x00".to_vec();
    for n in 1..=3u64 {
        let payload = serde_json::to_vec(&serde_json::json!({"seq": n, "rows": gauge(n, n as f64)})).unwrap();
        v1.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v1.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        v1.extend_from_slice(&payload);
    }
    std::fs::write(wal.join("00000001.wal"), &v1).unwrap();
    let store = Store::open_with(config(dir.path()), Arc::new(RealFs)).unwrap();
    assert_eq!(store.recovery().replayed, 3);
    // The root `wal/` of the layout before writer slots is adopted by slot w0.
    let wal = dir.path().join("writers/w0/wal");
    store.append(gauge(4, f64::NAN)).unwrap();
    drop(store);
    let store = Store::open_with(config(dir.path()), Arc::new(RealFs)).unwrap();
    let got = gauges(&store);
    assert_eq!(got.len(), 4);
    assert_eq!(&got[..3], &[(1, 1f64.to_bits()), (2, 2f64.to_bits()), (3, 3f64.to_bits())]);
    assert!(f64::from_bits(got[3].1).is_nan());
    assert_eq!(
        std::fs::read(wal.join("00000001.wal")).unwrap(),
        v1,
        "a version-1 segment is never appended to"
    );
    store.flush().unwrap();
    assert!(
        segments(&wal).iter().all(|p| std::fs::read(p).unwrap()[6] == 2),
        "published, then only version 2"
    );
}
