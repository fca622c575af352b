//! The store's write and read paths, end to end with the agent.

use modelwatch_agent::layout::{latency_histogram_from, new_latency_histogram};
use modelwatch_agent::{Agent, Feature, ManualClock, Prediction, Timestamp};
use modelwatch_store::*;
use std::sync::Arc;
use std::time::Duration;

const T0: u64 = 1_764_115_200; // 2025-11-26T00:00:00Z

fn agent_on(store: Arc<Store>, clock: Arc<ManualClock>) -> Agent {
    Agent::builder("pii")
        .version("2")
        .segments(["email", "phone"])
        .features([Feature::numeric("len"), Feature::categorical("lang", ["en", "de"])])
        .interval(Duration::from_secs(10))
        .clock(clock)
        .background_flush(false)
        .build(store)
        .unwrap()
}

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig { buffer_rows: 1_000_000, background: false, ..StoreConfig::new(dir) }
}

fn all(table: Table) -> ReadRequest {
    ReadRequest::new(table, 0, i64::MAX, Resolution::Raw)
}

#[test]
fn snapshots_round_trip_through_wal_parquet_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(config(dir.path())).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let agent = agent_on(store.clone(), clock.clone());
    let h = agent.handle();
    let mut direct = new_latency_histogram();
    for i in 0..500u64 {
        let lat = 100_000 + i * 997;
        direct.record(lat).unwrap();
        h.record(
            &Prediction::new(if i % 2 == 0 { "email" } else { "phone" }, Duration::from_nanos(lat), 0.5)
                .features(&[i as f64, (i % 3) as f64]),
        );
        if i % 100 == 99 {
            clock.advance(Duration::from_secs(10));
            agent.flush_due().unwrap();
        }
    }
    h.feedback("email", 0.9, true);
    agent.shutdown().unwrap();
    assert_eq!(store.buffered_rows(), 0, "shutdown publishes the buffer");

    let m = store.manifest();
    assert!(
        m.files
            .iter()
            .any(|f| f.path.starts_with("writers/w0/distributions/date=2025-11-26/resolution=raw/part-")),
        "{m:?}"
    );
    for f in &m.files {
        assert!(dir.path().join(&f.path).exists());
    }
    let scalars = store.read(&all(Table::Scalars).tag("metric", "predictions")).unwrap().scalars;
    assert_eq!(scalars.iter().map(|r| r.value).sum::<f64>(), 500.0);
    let email =
        store.read(&all(Table::Scalars).tag("metric", "predictions").tag("segment", "email")).unwrap();
    assert_eq!(email.scalars.iter().map(|r| r.value).sum::<f64>(), 250.0);

    // The latency distribution rebuilds exactly.
    let lat = store.read(&all(Table::Distributions).tag("metric", "latency_ns")).unwrap().distributions;
    let mut merged = lat[0].clone();
    for r in &lat[1..] {
        merged.merge(r);
    }
    let rebuilt = latency_histogram_from(merged.buckets.iter().map(|&(k, c)| (k as usize, c)));
    assert_eq!(rebuilt.len(), 500);
    for q in [0.5, 0.9, 0.99] {
        assert_eq!(rebuilt.value_at_quantile(q), direct.value_at_quantile(q));
    }
    let feature = store
        .read(&all(Table::Distributions).tag("metric", "feature").tag("feature", "len"))
        .unwrap()
        .distributions;
    assert_eq!(feature.iter().map(|r| r.count).sum::<u64>(), 500);
    let cats = store
        .read(&all(Table::Scalars).tag("metric", "feature_category").tag("category", "de"))
        .unwrap()
        .scalars;
    assert_eq!(cats.iter().map(|r| r.value).sum::<f64>(), 167.0);
    assert!(store.verify().is_empty(), "{:?}", store.verify());
}

#[test]
fn reads_see_acknowledged_rows_before_they_are_published_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(Store::open(config(dir.path())).unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
        let agent = agent_on(store.clone(), clock);
        agent.handle().record(&Prediction::new("email", Duration::from_millis(1), 0.5));
        agent.flush_now().unwrap();
        assert!(store.manifest().files.is_empty(), "nothing published yet");
        let r = store.read(&all(Table::Scalars).tag("metric", "predictions")).unwrap();
        assert_eq!(r.scalars.len(), 1, "read-your-writes from the buffer");
        std::mem::forget(agent); // a crash: no shutdown, no publication
    }
    // The leaked store still holds slot w0's lock in this process, as a crashed process's
    // would not: reopen w0 without the operating-system lock, as the next process would.
    let store = Store::open_with(config(dir.path()), Arc::new(RealFs)).unwrap();
    assert_eq!(store.recovery().replayed, 1);
    let r = store.read(&all(Table::Scalars).tag("metric", "predictions")).unwrap();
    assert_eq!(r.scalars.iter().map(|s| s.value).sum::<f64>(), 1.0);
    store.flush().unwrap();
    drop(store);
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(
        (store.recovery().replayed, store.buffered_rows()),
        (0, 0),
        "the WAL was emptied after publication"
    );
    let r = store.read(&all(Table::Scalars).tag("metric", "predictions")).unwrap();
    assert_eq!(r.scalars.iter().map(|s| s.value).sum::<f64>(), 1.0, "no row lost or doubled");
}

#[test]
fn time_range_and_tag_filters_select_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(config(dir.path())).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let agent = agent_on(store.clone(), clock.clone());
    for _ in 0..6 {
        agent.handle().record(&Prediction::new("email", Duration::from_millis(1), 0.5));
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    }
    store.flush().unwrap();
    let t0 = (T0 * 1000) as i64;
    let req = ReadRequest::new(Table::Scalars, t0 + 10_000, t0 + 40_000, Resolution::Raw)
        .tag("metric", "predictions");
    let rows = store.read(&req).unwrap().scalars;
    let starts: Vec<i64> = rows.iter().map(|r| r.start_ms - t0).collect();
    assert_eq!(starts, vec![10_000, 20_000, 30_000]);
    assert!(store.read(&all(Table::Scalars).tag("segment", "phone")).unwrap().scalars.is_empty());
    let batches = store.read_batches(&req).unwrap();
    assert_eq!(batches[0].num_rows(), 3);
}

#[test]
fn maintenance_compacts_rolls_up_exactly_and_applies_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(StoreConfig { buffer_rows: 10, background: false, ..StoreConfig::new(dir.path()) })
            .unwrap(),
    );
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let agent = agent_on(store.clone(), clock.clone());
    let h = agent.handle();
    // 3 minutes of 10 s intervals.
    for i in 0..18u64 {
        for j in 0..5u64 {
            h.record(
                &Prediction::new("email", Duration::from_micros(100 + i * 10 + j), 0.5)
                    .features(&[(i * 5 + j) as f64, 0.0]),
            );
        }
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    }
    agent.shutdown().unwrap();
    let before = store.manifest().files.iter().filter(|f| f.table == Table::Distributions).count();
    assert!(before > 1, "small buffers make many files");
    let report = store.maintain((T0 * 1000) as i64).unwrap();
    assert!(report.compacted_files >= before, "{report:?}");
    let m = store.manifest();
    assert_eq!(
        m.files.iter().filter(|f| f.table == Table::Distributions && f.resolution == Resolution::Raw).count(),
        1
    );

    let raw = store.read(&all(Table::Distributions).tag("metric", "feature")).unwrap().distributions;
    let minute = store
        .read(
            &ReadRequest::new(Table::Distributions, 0, i64::MAX, Resolution::Minute).tag("metric", "feature"),
        )
        .unwrap()
        .distributions;
    assert_eq!(minute.len(), 3, "one row per minute");
    let mut a = raw[0].clone();
    raw[1..].iter().for_each(|r| a.merge(r));
    let mut b = minute[0].clone();
    minute[1..].iter().for_each(|r| b.merge(r));
    assert_eq!(a.buckets, b.buckets, "roll-ups merge buckets exactly");
    assert_eq!((a.count, a.min, a.max), (b.count, b.min, b.max));
    assert!((a.mean.unwrap() - b.mean.unwrap()).abs() < 1e-9);
    let hour = store
        .read(&ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Hour).tag("metric", "predictions"))
        .unwrap();
    assert_eq!(hour.scalars.iter().map(|r| r.value).sum::<f64>(), 90.0);

    // Eight days later the raw partition is past its 7 days; 1m and 1h stay.
    let report = store.maintain((T0 * 1000) as i64 + 8 * 86_400_000).unwrap();
    assert!(report.dropped_files >= 2, "{report:?}");
    let m = store.manifest();
    assert!(m.files.iter().all(|f| f.resolution != Resolution::Raw), "{m:?}");
    assert!(m.files.iter().any(|f| f.resolution == Resolution::Minute));
    for f in &m.files {
        assert!(dir.path().join(&f.path).exists());
    }
    assert!(store.verify().is_empty());
}

#[test]
fn parquet_files_carry_the_format_version_and_sorted_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(config(dir.path())).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let agent = agent_on(store.clone(), clock);
    agent.handle().record(&Prediction::new("phone", Duration::from_millis(1), 0.5));
    agent.handle().record(&Prediction::new("email", Duration::from_millis(1), 0.5));
    agent.shutdown().unwrap();
    let f = store.manifest().files.into_iter().find(|f| f.table == Table::Scalars).unwrap();
    let bytes = std::fs::read(dir.path().join(&f.path)).unwrap();
    let reader = parquet_meta(&bytes);
    assert_eq!(reader.get("modelwatch.format_version").map(String::as_str), Some(FORMAT_VERSION));
    assert_eq!(reader.get("modelwatch.table").map(String::as_str), Some("scalars"));
    let rows = store.read(&all(Table::Scalars)).unwrap().scalars;
    // Metric first (a query's row groups are contiguous), then feature, other tags, time.
    let keys: Vec<_> = rows
        .iter()
        .map(|r| {
            let s = &r.series;
            (
                s.metric.clone(),
                s.feature.clone(),
                s.model.clone(),
                s.variant.clone(),
                s.version.clone(),
                s.segment.clone(),
                s.instance.clone(),
                s.tags.clone(),
                r.start_ms,
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(keys.windows(2).any(|w| w[0].0 != w[1].0), "several metrics, so the order is tested");
}

fn parquet_meta(bytes: &[u8]) -> std::collections::HashMap<String, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(bytes::Bytes::copy_from_slice(bytes)).unwrap();
    r.metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn the_background_thread_publishes_a_full_buffer_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(StoreConfig { buffer_rows: 20, ..StoreConfig::new(dir.path()) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let agent = agent_on(store.clone(), clock.clone());
    for _ in 0..10 {
        agent.handle().record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[1.0, 0.0]));
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.manifest().files.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!store.manifest().files.is_empty(), "published in the background");
    let r = store.read(&all(Table::Scalars).tag("metric", "predictions")).unwrap();
    assert_eq!(
        r.scalars.iter().map(|s| s.value).sum::<f64>(),
        10.0,
        "nothing lost or doubled across the swap"
    );
    drop(agent);
}

#[test]
fn a_read_only_open_sees_a_live_writers_rows_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(Store::open(config(dir.path())).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let agent = agent_on(writer.clone(), clock.clone());
    for _ in 0..3 {
        agent.handle().record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[1.0, 0.0]));
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    }
    let listing = |d: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d.join("writers/w0/wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = listing(dir.path());
    let reader = Store::open_read_only(StoreConfig::new(dir.path())).unwrap();
    let r = reader.read(&all(Table::Scalars).tag("metric", "predictions")).unwrap();
    assert_eq!(
        r.scalars.iter().map(|s| s.value).sum::<f64>(),
        3.0,
        "acknowledged rows still only in the WAL"
    );
    assert!(matches!(reader.append(Rows::default()), Err(StoreError::ReadOnly(_))));
    drop(reader);
    assert_eq!(listing(dir.path()), before, "the read-only open changed no WAL byte");
    drop(agent);
}

#[test]
fn a_read_only_store_refreshes_to_see_new_and_published_rows() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(Store::open(config(dir.path())).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let agent = agent_on(writer.clone(), clock.clone());
    let record = |n: usize| {
        for _ in 0..n {
            agent
                .handle()
                .record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[1.0, 0.0]));
        }
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    };
    let predictions = |s: &Store| -> f64 {
        s.read(&all(Table::Scalars).tag("metric", "predictions"))
            .unwrap()
            .scalars
            .iter()
            .map(|r| r.value)
            .sum()
    };
    record(2);
    let reader = Store::open_read_only(StoreConfig::new(dir.path())).unwrap();
    assert_eq!(predictions(&reader), 2.0);
    let g0 = reader.generation();
    assert!(!reader.refresh().unwrap(), "nothing new yet");
    assert_eq!(reader.generation(), g0);

    record(3);
    assert_eq!(predictions(&reader), 2.0, "a read-only store is a snapshot until refreshed");
    assert!(reader.refresh().unwrap());
    assert!(reader.generation() > g0);
    assert_eq!(predictions(&reader), 5.0, "new WAL records");

    // Publication moves rows from the WAL to Parquet: nothing is lost or counted twice.
    writer.flush().unwrap();
    record(4);
    assert!(reader.refresh().unwrap());
    assert_eq!(predictions(&reader), 9.0, "published rows and the newer WAL records");
    assert!(!reader.refresh().unwrap());
    drop(agent);
}

#[test]
fn reads_served_from_the_decoded_file_cache_equal_reads_from_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(Store::open(config(dir.path())).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let agent = agent_on(writer.clone(), clock.clone());
    for i in 0..30u64 {
        let seg = if i % 3 == 0 { "phone" } else { "email" };
        agent.handle().record(
            &Prediction::new(seg, Duration::from_micros(100 + i * 37), 0.5).features(&[i as f64, 1.0]),
        );
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    }
    drop(agent);
    writer.flush().unwrap();
    let cached = Store::open_read_only(StoreConfig::new(dir.path())).unwrap();
    let direct =
        Store::open_read_only(StoreConfig { read_cache_bytes: 0, ..StoreConfig::new(dir.path()) }).unwrap();
    let t0 = T0 as i64 * 1000;
    for (from, to) in [(0, i64::MAX), (t0 + 50_000, t0 + 120_000), (t0 + 270_000, t0 + 280_000)] {
        for tags in
            [vec![], vec![("metric", "latency_ns")], vec![("metric", "feature"), ("segment", "phone")]]
        {
            for table in [Table::Distributions, Table::Scalars] {
                let mut req = ReadRequest::new(table, from, to, Resolution::Raw);
                for (k, v) in &tags {
                    req = req.tag(k, v);
                }
                // Twice: the second read comes from the cache.
                for _ in 0..2 {
                    let (a, b) = (cached.read(&req).unwrap(), direct.read(&req).unwrap());
                    let sort = |mut r: Rows| {
                        r.distributions.sort_by(|x, y| (&x.series, x.start_ms).cmp(&(&y.series, y.start_ms)));
                        r.scalars.sort_by(|x, y| (&x.series, x.start_ms).cmp(&(&y.series, y.start_ms)));
                        r
                    };
                    let (a, b) = (sort(a), sort(b));
                    if table == Table::Distributions || tags.is_empty() {
                        assert!(!b.is_empty(), "{table:?} {tags:?} {from}..{to} reads something");
                    }
                    assert_eq!(a, b, "{table:?} {tags:?} {from}..{to}");
                }
            }
        }
    }
}

#[test]
fn a_read_only_store_reads_again_when_compaction_replaced_a_listed_file() {
    let dir = tempfile::tempdir().unwrap();
    // No grace period: the replaced files are deleted at once, as they are once it passed.
    let writer =
        Arc::new(Store::open(StoreConfig { delete_grace: Duration::ZERO, ..config(dir.path()) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let agent = agent_on(writer.clone(), clock.clone());
    for _ in 0..2 {
        agent.handle().record(&Prediction::new("email", Duration::from_millis(1), 0.5).features(&[1.0, 0.0]));
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
        writer.flush().unwrap(); // one raw file per flush, in the same hour
    }
    let reader = Store::open_read_only(StoreConfig::new(dir.path())).unwrap();
    let listed: Vec<String> = reader.manifest().files.iter().map(|f| f.path.clone()).collect();
    writer.maintain(T0 as i64 * 1000 + 3_600_000).unwrap(); // compacts the hour's files
    assert!(
        listed.iter().any(|p| !dir.path().join(p).exists()),
        "compaction removed a file the reader lists"
    );
    // The reader still lists the deleted files; its read looks again instead of failing.
    let r = reader.read(&all(Table::Scalars).tag("metric", "predictions")).unwrap();
    assert_eq!(r.scalars.iter().map(|s| s.value).sum::<f64>(), 2.0);
    drop(agent);
}

#[test]
fn snapshots_the_agent_dropped_become_counter_rows() {
    let sink = modelwatch_agent::MemorySink::new();
    let agent = Agent::builder("pii")
        .clock(Arc::new(ManualClock::new(Timestamp::from_secs(T0))))
        .background_flush(false)
        .build(sink.clone())
        .unwrap();
    agent.handle().record_latency("email", Duration::from_millis(1));
    agent.shutdown().unwrap();
    let mut s = (*sink.take()[0]).clone();
    s.overflow.snapshots_dropped = 3;
    s.overflow.predictions_dropped = 41;
    let rows = Rows::from_snapshot(&s);
    let counter = |metric: &str| {
        let r: Vec<_> = rows.scalars.iter().filter(|r| &*r.series.metric == metric).collect();
        assert_eq!(r.len(), 1, "one {metric} row");
        assert_eq!((r[0].kind, &*r[0].series.model, &*r[0].series.segment), (ScalarKind::Counter, "pii", ""));
        r[0].value
    };
    assert_eq!(counter("overflow_snapshots_dropped"), 3.0);
    assert_eq!(counter("overflow_predictions_dropped"), 41.0);
    s.overflow = Default::default();
    let rows = Rows::from_snapshot(&s);
    assert!(
        rows.scalars.iter().all(|r| !r.series.metric.starts_with("overflow_")),
        "zero counts make no rows"
    );
}
