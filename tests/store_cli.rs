//! `modelwatch store inspect | verify | compact` on a real data directory.

use crate::cli::{modelwatch, stderr, stdout};
use std::io::Write;
use std::path::Path;

fn imported(dir: &Path) -> std::path::PathBuf {
    let mut s = String::from("timestamp,model,version,variant,segment,latency_ms,confidence,f.x\n");
    for i in 0..300u64 {
        s.push_str(&format!(
            "{},pii,1,control,email,{},0.5,{}\n",
            1_764_115_200_000 + i * 1000,
            1 + i % 9,
            i
        ));
    }
    let file = dir.join("log.csv");
    std::fs::write(&file, s).unwrap();
    let data = dir.join("data");
    let o = modelwatch(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    data
}

#[test]
fn inspect_reports_partitions_as_a_table_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = imported(dir.path());
    let t = modelwatch(&["store", "inspect", "--data", data.to_str().unwrap()]);
    assert!(t.status.success());
    assert!(stdout(&t).contains("distributions") && stdout(&t).contains("2025-11-26"), "{}", stdout(&t));
    let j = modelwatch(&["store", "inspect", "--data", data.to_str().unwrap(), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&j)).unwrap();
    let parts = v["partitions"].as_array().unwrap();
    assert!(
        parts
            .iter()
            .any(|p| p["table"] == "scalars" && p["resolution"] == "raw" && p["rows"].as_u64().unwrap() > 0)
    );
    assert_eq!(v["buffered_rows"], 0);
}

#[test]
fn verify_passes_on_intact_data_and_names_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = imported(dir.path());
    let ok = modelwatch(&["store", "verify", "--data", data.to_str().unwrap()]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    // Damage one Parquet file.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("writers/w0/manifest.json")).unwrap()).unwrap();
    let path = manifest["files"][0]["path"].as_str().unwrap().to_string();
    let full = data.join(&path);
    let bytes = std::fs::read(&full).unwrap();
    std::fs::write(&full, &bytes[..bytes.len() / 2]).unwrap();
    let bad = modelwatch(&["store", "verify", "--data", data.to_str().unwrap(), "--format", "json"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains(&path), "{}", stdout(&bad));
}

/// A store whose WAL holds `n` acknowledged, unpublished records (one counter each), as a
/// crash leaves it; returns the data directory and the WAL segment holding them.
fn unpublished(dir: &Path, n: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    use modelwatch_store::*;
    let data = dir.join("data");
    let store = Store::open(StoreConfig { background: false, ..StoreConfig::new(&data) }).unwrap();
    for k in 0..n {
        let series = SeriesKey { model: "pii".into(), metric: "marker".into(), ..Default::default() };
        let row = ScalarRow {
            start_ms: 1_764_115_200_000 + k as i64 * 10_000,
            end_ms: 1_764_115_210_000 + k as i64 * 10_000,
            resolution: Resolution::Raw,
            series,
            kind: ScalarKind::Counter,
            value: 1.0,
        };
        store.append(Rows { scalars: vec![row], ..Default::default() }).unwrap();
    }
    drop(store); // no flush: the records stay in the WAL
    let mut segments: Vec<_> =
        std::fs::read_dir(data.join("writers/w0/wal")).unwrap().map(|e| e.unwrap().path()).collect();
    segments.sort();
    let wal = segments.into_iter().rev().find(|p| std::fs::metadata(p).unwrap().len() > 8).unwrap();
    (data, wal)
}

fn markers(data: &Path) -> f64 {
    use modelwatch_store::*;
    let store = Store::open_read_only(StoreConfig::new(data)).unwrap();
    let req = ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", "marker");
    store.read(&req).unwrap().scalars.iter().map(|r| r.value).sum()
}

#[test]
fn verify_after_a_crash_reports_the_torn_tail_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (data, wal) = unpublished(dir.path(), 3);
    let name = wal.file_name().unwrap().to_str().unwrap().to_string();
    let len = std::fs::metadata(&wal).unwrap().len();
    // Half a record header and payload: an append the crash interrupted.
    std::fs::OpenOptions::new().append(true).open(&wal).unwrap().write_all(&[40, 0, 0, 0, 1, 2, 3]).unwrap();
    let o = modelwatch(&["store", "verify", "--data", data.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&name) && out.contains(&format!("torn tail at offset {len}")), "{out}");
    assert!(out.contains("7 bytes") && out.contains("never acknowledged"), "{out}");
    assert_eq!(markers(&data), 3.0);
}

#[test]
fn a_flipped_byte_in_the_wal_fails_verify_refuses_open_and_repair_keeps_every_intact_record() {
    let dir = tempfile::tempdir().unwrap();
    let (data, wal) = unpublished(dir.path(), 10);
    let d = data.to_str().unwrap();
    // Flip a byte in the payload of record 3 of 10.
    let mut bytes = std::fs::read(&wal).unwrap();
    let mut at = 8;
    for _ in 0..2 {
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    let third = at;
    bytes[third + 12] ^= 0x10;
    std::fs::write(&wal, &bytes).unwrap();

    let o = modelwatch(&["store", "verify", "--data", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(&format!("corrupt at offset {third}")), "{}", stdout(&o));
    assert!(stdout(&o).contains("store repair --data"), "{}", stdout(&o));
    // A writer refuses to open, naming the file and offset, and changes nothing.
    let err =
        modelwatch_store::Store::open(modelwatch_store::StoreConfig::new(&data)).err().unwrap().to_string();
    assert!(err.contains(&wal.display().to_string()) && err.contains(&format!("offset {third}")), "{err}");
    assert_eq!(std::fs::read(&wal).unwrap(), bytes, "the damaged segment is unchanged");

    let dry = modelwatch(&["store", "repair", "--data", d]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stdout(&dry).contains("keep 9 intact records (2 before the damage, 7 after it)"),
        "{}",
        stdout(&dry)
    );
    assert_eq!(std::fs::read(&wal).unwrap(), bytes, "a dry run changes nothing");
    let yes = modelwatch(&["store", "repair", "--data", d, "--yes"]);
    assert!(yes.status.success(), "{}", stderr(&yes));
    assert!(stdout(&yes).contains("kept 9 intact records"), "{}", stdout(&yes));
    let ok = modelwatch(&["store", "verify", "--data", d]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert_eq!(markers(&data), 9.0);
}

#[test]
fn compact_rolls_up_and_applies_retention_as_of_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = imported(dir.path());
    let d = data.to_str().unwrap();
    let o = modelwatch(&["store", "compact", "--data", d, "--as-of", "2025-11-27T00:00:00Z"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("roll-up rows") && stdout(&o).contains("dropped 0 files"), "{}", stdout(&o));
    let resolutions = |d: &str| -> Vec<String> {
        let j = modelwatch(&["store", "inspect", "--data", d, "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&j)).unwrap();
        let mut r: Vec<String> = v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["resolution"].as_str().unwrap().to_string())
            .collect();
        r.sort();
        r.dedup();
        r
    };
    assert_eq!(resolutions(d), ["1h", "1m", "raw"]);
    // A year later only the hourly roll-ups (kept 2 years) remain.
    let o = modelwatch(&["store", "compact", "--data", d, "--as-of", "2026-11-26T00:00:00Z"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(resolutions(d), ["1h"]);
    let bad = modelwatch(&["store", "compact", "--data", d, "--as-of", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "a time that does not parse is a usage error");
    assert!(stderr(&bad).contains("--as-of"), "{}", stderr(&bad));
}
