//! Labelled examples end to end: from the agent's `Handle::example` and from `modelwatch
//! import` into the store's examples dataset (WAL, then wide Parquet files per model and
//! day), read back merged across writer slots and the unpublished tail, split into training
//! and hold-out parts, and read by pyarrow and DuckDB without our code.

use crate::cli::{modelwatch, stderr};
use crate::fleet::{Acked, CrashWriter, add_acks};
use modelwatch::agent::{Clock, Feature, LabelledPrediction, ManualClock, Timestamp};
use modelwatch::{Agent, Prediction};
use modelwatch_store::examples::{Example, ExampleSet, SplitSpec};
use modelwatch_store::{ReadRequest, Resolution, Store, StoreConfig, Table};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// 2025-11-26T00:00:00Z.
const T0: i64 = 1_764_115_200_000;
const HOUR: i64 = 3_600_000;

fn config(dir: &std::path::Path) -> StoreConfig {
    // No background retention as of the real date over the fixed-date data.
    StoreConfig { maintenance_every: None, ..StoreConfig::new(dir) }
}

fn example(id: &str, predicted_ms: i64, segment: &str, features: Vec<f64>) -> Example {
    Example {
        prediction_id: id.into(),
        predicted_ms,
        label_ms: predicted_ms + HOUR,
        segment: segment.into(),
        features,
        confidence: 0.75,
        label: predicted_ms % 2 == 0,
    }
}

fn ids(set: &ExampleSet) -> Vec<&str> {
    set.rows.iter().map(|e| e.prediction_id.as_str()).collect()
}

fn counter(store: &Store, metric: &str) -> f64 {
    let req = ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", metric);
    store.read(&req).unwrap().scalars.iter().map(|r| r.value).sum()
}

#[test]
fn agent_examples_round_trip_through_the_store_in_read_order_with_nan_and_huge_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(config(dir.path())).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
    let agent = Agent::builder("pii")
        .segments(["email", "phone"])
        .features([Feature::numeric("len"), Feature::numeric("digits")])
        .interval(Duration::from_secs(60))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    let h = agent.handle();
    h.record(&Prediction::new("email", Duration::from_millis(2), 0.9).features(&[3.0, 1.0]));
    // Kept in the order of arrival, read back by prediction time then ID.
    let at = |ms: i64| Timestamp::from_millis((T0 + ms) as u64);
    assert!(h.example(&LabelledPrediction::new("phone", at(-5_000), &[f64::NAN, 1e300], 0.2, false).id("b")));
    assert!(h.example(&LabelledPrediction::new("email", at(-9_000), &[1.0, 2.0], 0.8, true).id("z")));
    assert!(
        h.example(
            &LabelledPrediction::new("email", at(-5_000), &[-0.0, f64::INFINITY], 0.6, true)
                .id("a")
                .labelled_at(at(30_000))
        )
    );
    // A vector of the wrong width is refused and counted, never stored.
    assert!(!h.example(&LabelledPrediction::new("email", at(-1_000), &[1.0], 0.6, true).id("short")));
    clock.advance(Duration::from_secs(60));
    agent.flush_due().unwrap();

    let check = |s: &Store, when: &str| {
        let got = s.examples("pii", 0, i64::MAX).unwrap();
        assert_eq!(got.features, ["len", "digits"], "{when}");
        assert_eq!(ids(&got), ["z", "a", "b"], "{when}");
        assert!(got.rows[2].features[0].is_nan(), "{when}");
        assert_eq!(got.rows[2].features[1], 1e300, "{when}");
        assert_eq!(got.rows[1].features[1], f64::INFINITY, "{when}");
        assert_eq!(got.rows[1].label_ms, T0 + 30_000, "{when}");
        // The label time defaults to the agent's clock at the call.
        assert_eq!(got.rows[0].label_ms, T0, "{when}");
        assert_eq!(
            (got.rows[2].segment.as_str(), got.rows[2].confidence, got.rows[2].label),
            ("phone", 0.2, false)
        );
        assert_eq!(counter(s, "overflow_examples_wrong_width"), 1.0, "{when}");
    };
    // Read-your-writes before publication, then from the published files, then after a
    // reopen (nothing replayed twice).
    check(&store, "unpublished");
    store.flush().unwrap();
    assert_eq!(store.manifest().examples.len(), 1);
    assert!(store.manifest().examples[0].path.contains("/examples/model=pii/date=2025-11-25/"));
    check(&store, "published");
    agent.shutdown().unwrap();
    drop(store);
    let store = Store::open(config(dir.path())).unwrap();
    check(&store, "reopened");

    // Windows of prediction time: [from, to), one row, none.
    assert_eq!(ids(&store.examples("pii", T0 - 5_000, T0).unwrap()), ["a", "b"]);
    let one = store.examples("pii", T0 - 9_000, T0 - 8_999).unwrap();
    assert_eq!(ids(&one), ["z"]);
    let none = store.examples("pii", T0, T0 + HOUR).unwrap();
    assert!(none.is_empty());
    assert!(store.examples("nobody", 0, i64::MAX).unwrap().is_empty());
    // "Since the last training": labels that arrived after the cut, any prediction time.
    assert_eq!(ids(&store.examples_labelled_after("pii", T0).unwrap()), ["a"]);
    assert_eq!(ids(&store.examples_labelled_after("pii", T0 - 1).unwrap()), ["z", "a", "b"]);
}

#[test]
fn a_full_example_queue_is_counted_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(config(dir.path())).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
    let agent = Agent::builder("pii")
        .features([Feature::numeric("len")])
        .max_pending_examples(4)
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    let h = agent.handle();
    let kept = (0..10)
        .filter(|i| {
            let id = format!("p{i}");
            h.example(&LabelledPrediction::new("x", clock.now(), &[1.0], 0.5, true).id(&id))
        })
        .count();
    assert_eq!(kept, 4);
    clock.advance(Duration::from_secs(10));
    agent.flush_due().unwrap();
    assert_eq!(store.examples("pii", 0, i64::MAX).unwrap().len(), 4);
    assert_eq!(counter(&store, "overflow_examples_dropped"), 6.0);
}

#[test]
fn bad_examples_get_errors_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let mut set = ExampleSet::new(vec!["len".into(), "digits".into()]);
    set.rows.push(example("ok", T0, "email", vec![1.0, 2.0]));
    set.rows.push(example("ragged", T0 + 1, "email", vec![1.0]));
    let e = store.append_examples("pii", set.clone()).unwrap_err().to_string();
    assert!(e.contains("\"ragged\"") && e.contains("1 feature values") && e.contains("2 features"), "{e}");
    set.rows.pop();
    let e = store.append_examples("", set.clone()).unwrap_err().to_string();
    assert!(e.contains("model name \"\""), "{e}");
    let mut clash = set.clone();
    clash.features[1] = "label".into();
    let e = store.append_examples("pii", clash).unwrap_err().to_string();
    assert!(e.contains("\"label\""), "{e}");
    // Nothing refused was written; an empty set writes nothing.
    store.append_examples("pii", ExampleSet::new(vec!["len".into()])).unwrap();
    assert!(store.examples("pii", 0, i64::MAX).unwrap().is_empty());
    assert_eq!(store.buffered_rows(), 0);
    store.append_examples("pii", set).unwrap();
    assert_eq!(ids(&store.examples("pii", 0, i64::MAX).unwrap()), ["ok"]);
}

#[test]
fn two_writer_slots_and_the_unpublished_tail_merge_in_read_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(config(dir.path())).unwrap();
    let b = Store::open(config(dir.path())).unwrap();
    assert_ne!(a.writer_id(), b.writer_id());
    let features = vec!["len".to_string()];
    let mut sa = ExampleSet::new(features.clone());
    let mut sb = ExampleSet::new(features.clone());
    // Interleaved times across the slots, and across two days.
    for i in 0..40i64 {
        let e = example(&format!("p{i:02}"), T0 - 20 * HOUR + i * HOUR, "s", vec![i as f64]);
        if i % 2 == 0 { sa.rows.push(e) } else { sb.rows.push(e) }
    }
    a.append_examples("pii", sa).unwrap();
    a.flush().unwrap();
    // Slot b's examples stay in its WAL: a reader sees them as acknowledged, not published.
    b.append_examples("pii", sb).unwrap();
    assert_eq!(a.manifest().examples.len(), 2, "one file per day");
    let reader = Store::open_read_only(config(dir.path())).unwrap();
    let got = reader.examples("pii", 0, i64::MAX).unwrap();
    let want: Vec<String> = (0..40).map(|i| format!("p{i:02}")).collect();
    assert_eq!(ids(&got), want);
    // The writer sees the other slot once it has read it again.
    a.refresh().unwrap();
    assert_eq!(a.examples("pii", 0, i64::MAX).unwrap(), got);
    // A split of the merged examples is reproducible and time-ordered.
    let s1 = got.split(&SplitSpec::time(0.25).seed(42)).unwrap();
    let s2 = reader.examples("pii", 0, i64::MAX).unwrap().split(&SplitSpec::time(0.25).seed(42)).unwrap();
    assert_eq!(s1.record, s2.record);
    assert_eq!((s1.record.train_rows, s1.record.holdout_rows), (30, 10));
    let newest_train = s1.train.rows.iter().map(|e| e.predicted_ms).max().unwrap();
    assert!(s1.holdout.rows.iter().all(|e| e.predicted_ms >= newest_train));
    let json = serde_json::to_string(&s1.record).unwrap();
    assert_eq!(serde_json::from_str::<modelwatch_store::examples::SplitRecord>(&json).unwrap(), s1.record);
}

#[test]
fn a_stratified_split_of_stored_examples_keeps_each_segments_share() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let mut set = ExampleSet::new(vec!["x".into()]);
    // A rare segment whose examples are all old: a time split would hold out none of them.
    for i in 0..100i64 {
        let seg = if i < 10 { "rare" } else { "common" };
        set.rows.push(example(&format!("p{i:03}"), T0 + i * 1_000, seg, vec![i as f64]));
    }
    store.append_examples("pii", set).unwrap();
    let got = store.examples("pii", 0, i64::MAX).unwrap();
    let time = got.split(&SplitSpec::time(0.2)).unwrap();
    assert_eq!(time.record.segment_rows["rare"], (10, 0));
    let strat = got.split(&SplitSpec::stratified(0.2).seed(3)).unwrap();
    assert_eq!(strat.record.segment_rows["rare"], (8, 2));
    assert_eq!(strat.record.segment_rows["common"], (72, 18));
    assert_eq!(strat.record, got.split(&SplitSpec::stratified(0.2).seed(3)).unwrap().record);
}

#[test]
fn a_kill_after_acknowledgement_loses_no_example_and_stores_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut acked = Acked::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for kill in 0..8 {
        // Small buffers: kills land before, during and after publications.
        let mut w = CrashWriter::spawn(&data, &["--buffer-rows", "10"]);
        w.wait_for_acks(1);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 150));
        add_acks(&mut acked, w.kill());
        let reader = Store::open_read_only(config(&data)).unwrap();
        let stored = reader.examples("crash", 0, i64::MAX).unwrap();
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &stored.rows {
            *count.entry(e.prediction_id.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = count.iter().filter(|c| *c.1 > 1).collect();
        assert!(twice.is_empty(), "kill {kill}: examples stored twice: {twice:?}");
        for (slot, seqs) in &acked {
            for s in seqs {
                let id = format!("{slot}-{s}");
                assert!(count.contains_key(id.as_str()), "kill {kill}: acknowledged example {id} is missing");
            }
        }
    }
    assert!(acked.values().map(Vec::len).sum::<usize>() >= 8);
}

#[test]
fn import_with_label_time_stores_examples_that_come_back_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = dir.path().join("log.csv");
    let mut text = String::from(
        "timestamp,model,version,variant,segment,latency_ms,confidence,label,label_time,f.len\n",
    );
    for i in 0..6 {
        let label = if i == 5 { String::new() } else { (i % 2).to_string() };
        let label_time = if i >= 4 { String::new() } else { format!("2025-11-26T0{}:30:00Z", i + 1) };
        text.push_str(&format!(
            "2025-11-26T0{i}:00:00Z,pii,v1,control,email,3.5,0.{i}5,{label},{label_time},{i}.5\n"
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let o = modelwatch(&["import", csv.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = Store::open_read_only(config(&data)).unwrap();
    let got = store.examples("pii", 0, i64::MAX).unwrap();
    // Rows 0..4 have a label and a label_time; row 4 has a label only, row 5 neither.
    assert_eq!(got.features, ["len"]);
    assert_eq!(got.len(), 4);
    for (i, e) in got.rows.iter().enumerate() {
        let i = i as i64;
        assert_eq!(e.predicted_ms, T0 + i * HOUR);
        assert_eq!(e.label_ms, T0 + (i + 1) * HOUR + HOUR / 2, "row {i}'s label_time");
        assert_eq!((e.label, e.features[0], e.segment.as_str()), (i % 2 == 1, i as f64 + 0.5, "email"));
    }
    assert_eq!(store.examples_labelled_after("pii", T0 + 3 * HOUR).unwrap().len(), 2);
}

/// A labelled file whose feature is named like an examples column still imports (its
/// metrics and labels), says why it has no training examples, and a categorical feature's
/// per-file codes never reach a training set (two files would mix their categories).
#[test]
fn an_import_keeps_rows_whose_features_no_example_can_hold_and_never_stores_per_file_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let header = "timestamp,model,version,variant,segment,latency_ms,confidence,label,label_time";
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "{header},f.label\n2025-11-26T00:00:00Z,pii,v1,control,email,3.5,0.9,1,2025-11-26T01:00:00Z,2\n"
        ),
    )
    .unwrap();
    let o = modelwatch(&["import", bad.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("without training examples") && stderr(&o).contains("\"label\""),
        "{}",
        stderr(&o)
    );
    let store = Store::open_read_only(config(&data)).unwrap();
    assert_eq!(store.examples("pii", 0, i64::MAX).unwrap().len(), 0);
    drop(store);
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    let row = |hour: u32, colour: &str| {
        format!(
            "2025-11-26T0{hour}:00:00Z,fraud,v1,control,web,3.5,0.9,1,2025-11-26T0{}:30:00Z,{colour}\n",
            hour + 1
        )
    };
    std::fs::write(&a, format!("{header},f.colour\n{}{}", row(0, "red"), row(1, "blue"))).unwrap();
    std::fs::write(&b, format!("{header},f.colour\n{}{}", row(2, "blue"), row(3, "green"))).unwrap();
    for f in [&a, &b] {
        let o = modelwatch(&["import", f.to_str().unwrap(), "--data", data.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        // Said, not silent: a user training on these examples must know the column is empty.
        assert!(
            stderr(&o).contains("categorical features are NaN in the training examples")
                && stderr(&o).contains("colour"),
            "{}",
            stderr(&o)
        );
    }
    let store = Store::open_read_only(config(&data)).unwrap();
    let got = store.examples("fraud", 0, i64::MAX).unwrap();
    assert_eq!(got.len(), 4);
    assert!(got.rows.iter().all(|e| e.features[0].is_nan()), "{:?}", got.rows);
}

#[test]
fn pyarrow_and_duckdb_read_the_examples_dataset() {
    let python = std::env::var("MODELWATCH_PYTHON").expect(
        "MODELWATCH_PYTHON must name a Python with pyarrow and duckdb; run the tests through scripts/test",
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let mut set = ExampleSet::new(vec!["len".into(), "ratio".into()]);
    for i in 0..48i64 {
        let v = if i == 7 { f64::NAN } else { i as f64 };
        set.rows.push(example(&format!("p{i}"), T0 - 24 * HOUR + i * HOUR, "s", vec![v, 1e300]));
    }
    store.append_examples("pii", set).unwrap();
    store.flush().unwrap();
    let script = r#"
import sys, json, glob
import pyarrow.dataset as ds, duckdb
root = sys.argv[1]
files = sorted(glob.glob(root + "/writers/*/examples/model=pii/date=*/*.parquet"))
t = ds.dataset(files, format="parquet").to_table()
d = duckdb.sql(f"select count(*), count(distinct date), sum(len) filter (where not isnan(len)), max(ratio), "
               f"epoch_ms(min(predicted_at)) from read_parquet('{root}/writers/*/examples/*/*/*.parquet', hive_partitioning=true)").fetchall()[0]
print(json.dumps({"pyarrow_rows": t.num_rows, "columns": t.column_names[:8],
                  "duckdb": [d[0], d[1], d[2], d[3], d[4]]}))
"#;
    let o = std::process::Command::new(python)
        .args(["-c", script, dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pyarrow_rows"], 48);
    assert_eq!(
        v["columns"],
        serde_json::json!([
            "prediction_id",
            "predicted_at",
            "label_time",
            "segment",
            "confidence",
            "label",
            "len",
            "ratio"
        ])
    );
    let sum: f64 = (0..48).filter(|&i| i != 7).map(|i| i as f64).sum();
    assert_eq!(v["duckdb"][0], 48);
    assert_eq!(v["duckdb"][1], 2, "two date partitions");
    assert_eq!(v["duckdb"][2].as_f64().unwrap(), sum);
    assert_eq!(v["duckdb"][3].as_f64().unwrap(), 1e300);
    assert_eq!(v["duckdb"][4].as_i64().unwrap(), T0 - 24 * HOUR);
}

#[test]
fn examples_live_in_the_bucket_and_come_back_after_a_restart() {
    use std::io::{Read, Write};
    let bin = std::env::var("MODELWATCH_MOTO")
        .expect("MODELWATCH_MOTO must name moto_server; run through scripts/test");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _moto = crate::support::Killed(
        std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "PUT /modelwatch-examples HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let dir = tempfile::tempdir().unwrap();
    let bucket = |dir: &std::path::Path| StoreConfig {
        objects: Some(modelwatch_store::ObjectStoreConfig {
            url: "s3://modelwatch-examples/prod".into(),
            options: vec![
                ("endpoint".into(), format!("http://127.0.0.1:{port}")),
                ("allow_http".into(), "true".into()),
                ("region".into(), "us-east-1".into()),
                ("access_key_id".into(), "test".into()),
                ("secret_access_key".into(), "test".into()),
            ],
        }),
        ..config(dir)
    };
    let store = Store::open(bucket(dir.path())).unwrap();
    let mut set = ExampleSet::new(vec!["len".into()]);
    for i in 0..30i64 {
        set.rows.push(example(&format!("p{i:02}"), T0 + i * HOUR, "s", vec![i as f64]));
    }
    store.append_examples("fraud/v2", set.clone()).unwrap();
    store.flush().unwrap();
    let files = store.manifest().examples;
    assert_eq!(files.len(), 2);
    assert!(files[0].path.contains("/examples/model=fraud%2Fv2/date=2025-11-26/"), "{}", files[0].path);
    assert!(!dir.path().join(&files[0].path).exists(), "the file is in the bucket, not on disk");
    drop(store);
    let store = Store::open(bucket(dir.path())).unwrap();
    assert_eq!(store.examples("fraud/v2", 0, i64::MAX).unwrap(), set);
}
