//! Format 1 files, written before format 2 (`docs/decisions/0009-storage-format-2.md`),
//! read exactly as they did, beside format 2 files, and maintenance rewrites them as format
//! 2 without changing a row.
//!
//! The fixture `data/format-v1/` is a store written by modelwatch at `65414e8` (format 1):
//! 8 minutes of one agent across an hour boundary (sparse and busy intervals, NaN, ±inf,
//! 1e300 and a feature of tiny spread around 1e9), its feedback, and one maintenance pass
//! (1m and 1h roll-ups). `data/format-v1-rows.txt` is what that version's read API returned
//! for every table and resolution (`{:?}` of each row: exact floats, NaN included).

use modelwatch_agent::{Agent, Feature, ManualClock, Prediction, Timestamp};
use modelwatch_store::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const T0: u64 = 1_764_115_200; // 2025-11-26T00:00:00Z
/// The fixture's rows start at 00:55 and end at 01:03.
const FIXTURE_END_MS: i64 = (T0 as i64 + 3_780) * 1000;
const RESOLUTIONS: [Resolution; 3] = [Resolution::Raw, Resolution::Minute, Resolution::Hour];

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The rows format 1's reader returned, by "table resolution".
fn golden() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(fixture().join("format-v1-rows.txt")).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        match line.strip_prefix("# ") {
            Some(name) => section = name.to_string(),
            None => out.entry(section.clone()).or_default().push(line.to_string()),
        }
    }
    out
}

/// What the store's read API returns now, in the golden file's form.
fn dump(store: &Store, keep: impl Fn(Resolution, i64) -> bool) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in Table::ALL {
        for res in RESOLUTIONS {
            let rows = store.read(&ReadRequest::new(table, 0, i64::MAX, res)).unwrap();
            let mut lines: Vec<String> = vec![];
            lines.extend(
                rows.distributions.iter().filter(|r| keep(res, r.start_ms)).map(|r| format!("{r:?}")),
            );
            lines.extend(rows.scalars.iter().filter(|r| keep(res, r.start_ms)).map(|r| format!("{r:?}")));
            lines.extend(rows.events.iter().filter(|r| keep(res, r.time_ms)).map(|r| format!("{r:?}")));
            if !lines.is_empty() {
                out.insert(format!("{} {}", table.as_str(), res.as_str()), lines);
            }
        }
    }
    out
}

/// The same, read through the columnar path (the engine's), rows in any order.
fn dump_columns(store: &Store) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in [Table::Distributions, Table::Scalars] {
        for res in RESOLUTIONS {
            let mut rows = Rows::default();
            for part in store.read_columns(&ReadRequest::new(table, 0, i64::MAX, res)).unwrap() {
                part.append_rows(&mut rows);
            }
            let mut lines: Vec<String> = rows.distributions.iter().map(|r| format!("{r:?}")).collect();
            lines.extend(rows.scalars.iter().map(|r| format!("{r:?}")));
            lines.sort();
            if !lines.is_empty() {
                out.insert(format!("{} {}", table.as_str(), res.as_str()), lines);
            }
        }
    }
    out
}

fn sorted(mut m: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    m.values_mut().for_each(|v| v.sort());
    m.retain(|k, _| !k.starts_with("events"));
    m
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn versions(dir: &Path, store: &Store) -> Vec<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    store
        .manifest()
        .files
        .iter()
        .map(|f| {
            let bytes = bytes::Bytes::from(std::fs::read(dir.join(&f.path)).unwrap());
            let r = SerializedFileReader::new(bytes).unwrap();
            let kv = r.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
            kv.into_iter().find(|kv| kv.key == "modelwatch.format_version").and_then(|kv| kv.value).unwrap()
        })
        .collect()
}

#[test]
fn a_format_1_store_reads_as_it_did_beside_format_2_and_maintenance_rewrites_it() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("format-v1"), dir.path());
    let config = StoreConfig {
        buffer_rows: 1_000_000,
        background: false,
        maintenance_every: None,
        ..StoreConfig::new(dir.path())
    };
    let store = Arc::new(Store::open(config).unwrap());
    let v = versions(dir.path(), &store);
    assert!(v.len() >= 10 && v.iter().all(|v| v == "1"), "the fixture is format 1: {v:?}");

    let golden = golden();
    assert_eq!(dump(&store, |_, _| true), golden, "format 1 reads as it did");
    assert_eq!(dump_columns(&store), sorted(golden.clone()), "and so through the columnar path");

    // Format 2 rows beside them: two more minutes of the same agent.
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(FIXTURE_END_MS as u64)));
    let agent = Agent::builder("pii")
        .version("3")
        .variant("canary")
        .instance("fixture")
        .segments(["email", "phone"])
        .features([
            Feature::numeric("len"),
            Feature::numeric("ratio"),
            Feature::categorical("lang", ["en", "de"]),
        ])
        .interval(Duration::from_secs(10))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    for i in 0..12u64 {
        for j in 0..4u64 {
            let features = [i as f64, 1e9, 0.0];
            let p = Prediction::new("email", Duration::from_micros(300 + 17 * i + j), 0.25 + 0.05 * j as f64)
                .features(&features);
            agent.handle().record(&p);
        }
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    }
    agent.shutdown().unwrap();
    let mixed = versions(dir.path(), &store);
    assert!(mixed.contains(&"1".to_string()) && mixed.contains(&"2".to_string()), "{mixed:?}");
    // Rows of the fixture's time (whole roll-up windows before the new rows) are unchanged.
    let before_new = |res: Resolution, start: i64| match res {
        Resolution::Hour => start < (T0 as i64 + 3_600) * 1000,
        _ => start < FIXTURE_END_MS,
    };
    let mut expected = golden.clone();
    expected.get_mut("distributions 1h").unwrap().retain(|l| l.contains("start_ms: 1764115200000"));
    expected.get_mut("scalars 1h").unwrap().retain(|l| l.contains("start_ms: 1764115200000"));
    assert_eq!(dump(&store, before_new), expected, "a store of both formats");

    let report = store.maintain((T0 as i64 + 3 * 3_600) * 1000).unwrap();
    // Every distribution file is format 2 now: roll-ups and compacted files as this pass
    // wrote them anyway, the rest rewritten (scalars and events have one layout in both).
    let after = versions(dir.path(), &store);
    let files = store.manifest().files;
    let distributions: Vec<&String> =
        files.iter().zip(&after).filter(|(f, _)| f.table == Table::Distributions).map(|(_, v)| v).collect();
    assert!(distributions.iter().all(|v| *v == "2"), "{after:?}");
    assert!(files.iter().filter(|f| f.table == Table::Distributions).all(|f| f.format == FORMAT));
    assert!(report.rewritten_files >= 1, "{report:?}");
    // (Compaction merged files, so rows come in another order.)
    assert_eq!(sorted(dump(&store, before_new)), sorted(expected), "the rewrite changed no row");
    assert!(store.verify().is_empty(), "{:?}", store.verify());
}

/// The fixture copied into a fresh directory, its manifest passed through `edit`.
fn fixture_copy(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("format-v1"), dir.path());
    let manifest = dir.path().join("writers/w0/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, edit(text)).unwrap();
    dir
}

fn open(dir: &Path) -> Store {
    Store::open(StoreConfig {
        buffer_rows: 1_000_000,
        background: false,
        maintenance_every: None,
        ..StoreConfig::new(dir)
    })
    .unwrap()
}

/// Latency values counted by a read at `resolution` with the raw rows its roll-ups do not
/// hold (what the query engine reads).
fn latency_count(store: &Store, resolution: Resolution) -> u64 {
    let mut req = ReadRequest::new(Table::Distributions, 0, i64::MAX, resolution).tag("metric", "latency_ns");
    req.unrolled = resolution != Resolution::Raw;
    store.read(&req).unwrap().distributions.iter().map(|r| r.count).sum()
}

#[test]
fn rewritten_raw_files_stay_rolled_up_so_nothing_counts_twice() {
    // A manifest from before raw files carried `rolled_up`: its raw files count as rolled
    // up because the roll-ups' `source_rows` equal theirs (this pass decides so), and their
    // rewrites must say so, or every read and the next pass add them again.
    let dir = fixture_copy(|m| {
        m.replace("\"source_rows\": 0,\n      \"rolled_up\": true", "\"source_rows\": 0")
            .replace("\"rolled_up_flags\": true", "\"rolled_up_flags\": false")
    });
    let store = open(dir.path());
    let raw = latency_count(&store, Resolution::Raw);
    assert!(raw > 200, "{raw}");
    for pass in 0..2 {
        let report = store.maintain((T0 as i64 + 3 * 3_600) * 1000).unwrap();
        assert_eq!(report.rewritten_files, if pass == 0 { 6 } else { 0 }, "{report:?}");
        for res in RESOLUTIONS {
            assert_eq!(latency_count(&store, res), raw, "pass {pass}, {res:?}");
        }
    }
    assert!(store.manifest().files.iter().filter(|f| f.resolution == Resolution::Raw).all(|f| f.rolled_up));
}

#[test]
fn a_rewrite_keeps_each_file_in_its_place_and_an_unreadable_file_stops_nothing() {
    let dir = fixture_copy(|m| m);
    let store = open(dir.path());
    let place = |s: &Store| -> Vec<(Table, Resolution, i64, u64)> {
        s.manifest().files.iter().map(|f| (f.table, f.resolution, f.min_ms, f.rows)).collect()
    };
    let before = place(&store);
    // One roll-up file of format 1 is damaged: its rewrite is skipped (named in the log),
    // the others are rewritten, and the rest of maintenance goes on.
    let damaged = store
        .manifest()
        .files
        .iter()
        .find(|f| f.table == Table::Distributions && f.resolution == Resolution::Hour)
        .unwrap()
        .path
        .clone();
    let bytes = std::fs::read(dir.path().join(&damaged)).unwrap();
    std::fs::write(dir.path().join(&damaged), &bytes[..bytes.len() / 2]).unwrap();
    let report = store.maintain((T0 as i64 + 3 * 3_600) * 1000).unwrap();
    assert_eq!(report.rewritten_files, 5, "{report:?}");
    // Readers merge files in list order: a rewritten file keeps its place (and every bit of
    // a float sum with it).
    assert_eq!(place(&store), before);
    let files = store.manifest().files;
    for f in files.iter().filter(|f| f.table == Table::Distributions) {
        assert_eq!(f.format == 1, f.path == damaged, "{f:?}");
    }
    drop(store);
    std::fs::write(dir.path().join(&damaged), &bytes).unwrap();
    let store = open(dir.path());
    assert_eq!(sorted(dump(&store, |_, _| true)), sorted(golden()), "no row changed");
    assert_eq!(store.maintain((T0 as i64 + 3 * 3_600) * 1000).unwrap().rewritten_files, 1);
}
