use super::*;
use crate::rows::{Resolution, ScalarKind, ScalarRow, SeriesKey};
use crate::table::Table;
use modelwatch_agent::{ManualClock, Timestamp};

/// 2100-01-01T00:00:00Z: far enough ahead that the system clock never expires it.
const T: i64 = 4_102_444_800_000;
const DAY: i64 = 86_400_000;

fn predictions(start_ms: i64) -> Rows {
    let series = SeriesKey { model: "pii".into(), metric: "predictions".into(), ..Default::default() };
    let row = ScalarRow {
        start_ms,
        end_ms: start_ms + 10_000,
        resolution: Resolution::Raw,
        series,
        kind: ScalarKind::Counter,
        value: 1.0,
    };
    Rows { scalars: vec![row], ..Default::default() }
}

fn scalars(res: Resolution) -> ReadRequest {
    ReadRequest::new(Table::Scalars, 0, i64::MAX, res)
}

#[test]
fn a_listed_file_that_is_gone_is_a_missing_file_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap();
    store.append(predictions(T)).unwrap();
    store.flush().unwrap();
    let listed = store.manifest().files[0].path.clone();
    let gone = dir.path().join(&listed);
    std::fs::remove_file(&gone).unwrap();

    let err = store.read(&scalars(Resolution::Raw)).unwrap_err();
    let StoreError::MissingFile { path } = &err else { panic!("expected MissingFile, got {err:?}") };
    assert_eq!(path, &gone);
    let message = err.to_string();
    assert!(message.contains(&*gone.to_string_lossy()), "{message}");
    assert!(message.contains("modelwatch store verify"), "{message}");
    assert_eq!(store.verify(), [format!("{}: listed in the manifest but missing", gone.display())]);

    // A read-only store reads the manifest again and retries once; the writer still lists
    // the file, so the retry fails the same way.
    let reader = Store::open_read_only(StoreConfig::new(dir.path())).unwrap();
    let err = reader.read(&scalars(Resolution::Raw)).unwrap_err();
    assert!(matches!(&err, StoreError::MissingFile { path } if path == &gone), "{err:?}");
}

#[test]
fn background_maintenance_applies_retention_as_of_the_configured_clock() {
    let dir = tempfile::tempdir().unwrap();
    // Eight days after the rows: raw rows (kept 7 days) are past retention by this clock,
    // and by no system clock of this century.
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis((T + 8 * DAY) as u64)));
    let store = Store::open(StoreConfig {
        maintenance_every: Some(Duration::from_millis(1)),
        clock,
        ..StoreConfig::new(dir.path())
    })
    .unwrap();
    store.append(predictions(T)).unwrap();

    // One pass publishes the row, rolls it up and drops the raw file in one manifest swap.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !store.manifest().files.iter().any(|f| f.resolution == Resolution::Minute) {
        assert!(Instant::now() < deadline, "no maintenance pass: {:?}", store.manifest());
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = store.manifest();
    assert!(m.files.iter().all(|f| f.resolution != Resolution::Raw), "{m:?}");
    let minute = store.read(&scalars(Resolution::Minute)).unwrap();
    assert_eq!(minute.scalars.iter().map(|r| r.value).sum::<f64>(), 1.0);
}
