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

#[test]
fn verify_names_the_wal_and_the_offset_of_its_damage() {
    let dir = tempfile::tempdir().unwrap();
    let data = imported(dir.path());
    let mut segments: Vec<_> =
        std::fs::read_dir(data.join("writers/w0/wal")).unwrap().map(|e| e.unwrap().path()).collect();
    segments.sort();
    let wal = segments.last().unwrap().clone();
    let name = wal.file_name().unwrap().to_str().unwrap().to_string();
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&wal)
        .unwrap()
        .write_all(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3])
        .unwrap();
    let o = modelwatch(&["store", "verify", "--data", data.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(&name) && stdout(&o).contains(&format!("offset {len}")), "{}", stdout(&o));
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
