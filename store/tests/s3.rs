//! The store on an S3-compatible bucket: a real `moto_server` on loopback (from the PyPI
//! package `moto[server]`, installed by scripts/test; the test fails without it).

use modelwatch_agent::{Agent, ManualClock, Prediction, Timestamp};
use modelwatch_store::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Moto {
    let bin = std::env::var("MODELWATCH_MOTO")
        .expect("MODELWATCH_MOTO must name moto_server (pip install 'moto[server]'); run the tests through scripts/test");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto { child, port }
}

/// Creates a bucket with a plain HTTP request (moto does not check signatures).
fn create_bucket(port: u16, bucket: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
}

fn config(dir: &std::path::Path, port: u16) -> StoreConfig {
    StoreConfig {
        background: false,
        buffer_rows: 200,
        objects: Some(ObjectStoreConfig {
            url: "s3://modelwatch-test/prod/pii".into(),
            options: vec![
                ("endpoint".into(), format!("http://127.0.0.1:{port}")),
                ("allow_http".into(), "true".into()),
                ("region".into(), "us-east-1".into()),
                ("access_key_id".into(), "test".into()),
                ("secret_access_key".into(), "test".into()),
            ],
        }),
        ..StoreConfig::new(dir)
    }
}

#[test]
fn files_and_manifest_live_in_the_bucket_and_survive_a_restart() {
    let server = moto();
    create_bucket(server.port, "modelwatch-test");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(config(dir.path(), server.port)).unwrap());
    // Hosts share no lock on a bucket: a numbered slot carries this host's name.
    let id = store.writer_id().unwrap().to_string();
    assert!(id.ends_with("-w0") && id.len() > 3, "{id}");
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200)));
    let agent = Agent::builder("pii")
        .segments(["email"])
        .interval(Duration::from_secs(10))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    for _ in 0..100 {
        agent.handle().record(&Prediction::new("email", Duration::from_millis(2), 0.7));
        agent.handle().record(&Prediction::new("email", Duration::from_millis(3), 0.9));
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
    }
    agent.shutdown().unwrap();
    let m = store.manifest();
    assert!(!m.files.is_empty());
    assert!(!dir.path().join("manifest.json").exists(), "the manifest is in the bucket, not on disk");
    assert!(!dir.path().join("scalars").exists(), "Parquet files are in the bucket");
    store.maintain(1_764_115_200_000).unwrap();
    assert!(store.verify().is_empty(), "{:?}", store.verify());
    drop(store);

    let store = Store::open(config(dir.path(), server.port)).unwrap();
    let req = ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", "predictions");
    assert_eq!(store.read(&req).unwrap().scalars.iter().map(|r| r.value).sum::<f64>(), 200.0);
    let hourly =
        ReadRequest::new(Table::Distributions, 0, i64::MAX, Resolution::Hour).tag("metric", "latency_ns");
    assert_eq!(store.read(&hourly).unwrap().distributions.iter().map(|r| r.count).sum::<u64>(), 200);
    let v = verify_dir(dir.path(), config(dir.path(), server.port).objects.as_ref()).unwrap();
    assert!(v.files > 0 && v.problems.is_empty(), "{v:?}");
}

#[test]
fn a_missing_bucket_is_an_error_that_names_it() {
    let server = moto();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), server.port));
    let err = match store {
        Err(e) => e.to_string(),
        Ok(s) => {
            let event = EventRow {
                time_ms: 1_764_115_200_000,
                model: "m".into(),
                version: "1".into(),
                variant: "control".into(),
                kind: "model_loaded".into(),
                message: String::new(),
            };
            s.append(Rows { events: vec![event], ..Default::default() }).unwrap();
            s.flush().err().map(|e| e.to_string()).unwrap_or_default()
        }
    };
    assert!(err.contains("modelwatch-test"), "{err}");
}

fn marker(store: &Store, model: &str, n: usize) {
    for k in 0..n {
        let event = EventRow {
            time_ms: 1_764_115_200_000 + k as i64,
            model: model.into(),
            version: "1".into(),
            variant: "control".into(),
            kind: "marker".into(),
            message: String::new(),
        };
        store.append(Rows { events: vec![event], ..Default::default() }).unwrap();
    }
}

fn events(store: &Store, model: &str) -> usize {
    let req = ReadRequest::new(Table::Events, 0, i64::MAX, Resolution::Raw).tag("model", model);
    store.read(&req).unwrap().events.len()
}

#[test]
fn two_hosts_claiming_one_writer_id_on_a_bucket_the_second_is_refused_and_distinct_ids_both_keep_their_rows()
{
    let server = moto();
    create_bucket(server.port, "modelwatch-test");
    // Two hosts: two local data directories (their own WALs and locks), one bucket prefix.
    let (host_a, host_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let named =
        |dir: &std::path::Path, id: &str| StoreConfig { writer: Some(id.into()), ..config(dir, server.port) };

    let a = Store::open(named(host_a.path(), "pod-a")).unwrap();
    let b = Store::open(named(host_b.path(), "pod-a")).unwrap(); // no shared lock across hosts
    marker(&a, "a", 5);
    a.flush().unwrap();
    marker(&b, "b", 5);
    let err = b.flush().unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("writers/pod-a/manifest.json") && msg.contains("same writer ID"), "{msg}");
    assert!(b.append(Rows::default()).is_err(), "the refused writer stops acknowledging");
    // Its acknowledged rows are not deleted: they stay in host B's WAL of the slot, for an
    // operator to recover (the bucket's manifest of pod-a is pod-a's on host A).
    drop(b);
    let on_b = list_writers(&named(host_b.path(), "pod-a")).unwrap();
    let slot = on_b.iter().find(|w| w.slot.id == "pod-a").unwrap();
    assert!(slot.wal_bytes > 100, "the five records are still in the WAL: {slot:?}");

    // Distinct IDs on the same prefix: both publish, and a reader sees both.
    let c = Store::open(named(host_b.path(), "pod-c")).unwrap();
    marker(&c, "c", 7);
    c.flush().unwrap();
    marker(&a, "a", 3);
    a.flush().unwrap();
    let reader = Store::open_read_only(config(tempfile::tempdir().unwrap().path(), server.port)).unwrap();
    assert_eq!((events(&reader, "a"), events(&reader, "c")), (8, 7));
    assert_eq!(events(&reader, "b"), 0, "the refused writer published nothing");

    // Reopening pod-a on host B must not replay its WAL against host A's manifest (whose
    // covered sequence numbers are A's) nor trim it: refused, nothing changed. (Both
    // "hosts" are this machine: the manifest is edited to say another host published it.)
    set_manifest_host(server.port, "prod/pii/writers/pod-a/manifest.json", "host-a");
    let wal_before: Vec<Vec<u8>> = segment_bytes(&host_b.path().join("writers/pod-a/wal"));
    let err = Store::open(named(host_b.path(), "pod-a")).err().expect("refused");
    assert!(matches!(err, StoreError::ForeignManifest { records: 5, .. }), "{err:?}");
    assert!(err.to_string().contains("host-a"), "{err}");
    assert_eq!(segment_bytes(&host_b.path().join("writers/pod-a/wal")), wal_before, "nothing changed");
}

/// Rewrites a manifest in the bucket as if `host` had published it.
fn set_manifest_host(port: u16, key: &str, host: &str) {
    use object_store::{ObjectStoreExt, PutPayload, path::Path as Key};
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("modelwatch-test")
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let key = Key::from(key);
        let bytes = store.get(&key).await.unwrap().bytes().await.unwrap();
        let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        m["host"] = host.into();
        store.put(&key, PutPayload::from(m.to_string().into_bytes())).await.unwrap();
    });
}

fn segment_bytes(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}
