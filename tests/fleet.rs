//! A fleet of writing processes on one store root, through the binary: two imports at once,
//! a slot asked for twice, `store compact` beside a live writer, three writers and a reader
//! against one writer (on a directory and on a bucket), and writers killed with SIGKILL in
//! turn. Every row has a fixed time (2025-11-26) and every window and `--as-of` is
//! absolute, so the answers are the same at any hour.
//!
//! CI kills 8 writers in the kill-in-turn test; a longer run:
//! `MODELWATCH_FLEET_KILLS=200 cargo test --test tests fleet`.

use crate::cli::{stderr, stdout};
use crate::support::Rng;
use modelwatch_store::{ReadRequest, Resolution, Store, StoreConfig, Table};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// 2025-11-26T00:00:00Z: generated traffic fills the hour from here.
const T0: i64 = 1_764_115_200_000;
const HOUR: i64 = 3_600_000;
/// Retention as of two days after the data: nothing in it is old enough to drop.
pub(crate) const AS_OF: &str = "2025-11-28T00:00:00Z";
/// The gauge a crash-writer records its sequence number in (tagged `writer=<slot>`).
const SEQ_GAUGE: &str = "crash_writer_seq";

/// Environment for every command of a test: the bucket's, or none.
type Env = Vec<(String, String)>;

fn command(args: &[&str], env: &Env) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_modelwatch"));
    c.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    c
}

fn run(args: &[&str], env: &Env) -> Output {
    command(args, env).output().expect("run modelwatch")
}

fn spawn(args: &[&str], env: &Env) -> Child {
    command(args, env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start modelwatch")
}

/// Asserts the command succeeded and returns its standard output.
fn ok(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: exit {:?}\n{}{}", o.status.code(), stdout(o), stderr(o));
    stdout(o)
}

fn json(o: &Output, what: &str) -> Value {
    let out = ok(o, what);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"))
}

// --- Generated traffic -------------------------------------------------------------------

/// One prediction of generated traffic, as `modelwatch import` reads it.
struct Row {
    segment: &'static str,
    line: String,
}

/// `n` predictions of model `pii`, evenly spread over the hour from [`T0`], each in one of
/// `segments`: latency log-normal with a median per segment, confidence uniform, and a
/// feature `x` that moves by half a standard deviation in the second half hour (so drift
/// has something to find).
fn traffic(n: usize, seed: u64, segments: &[&'static str]) -> Vec<Row> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let ts = T0 + (i as i64 * HOUR) / n as i64;
            let s = rng.below(segments.len());
            let latency_ms = (1.0 + s as f64) * 4.0 * (0.5 * rng.normal()).exp();
            let shift = if ts - T0 >= HOUR / 2 { 0.5 } else { 0.0 };
            let line = format!(
                "{ts},pii,1,control,{},{latency_ms:.3},{:.3},{:.4}\n",
                segments[s],
                rng.u(),
                rng.normal() + shift
            );
            Row { segment: segments[s], line }
        })
        .collect()
}

fn write_csv<'a>(path: &Path, rows: impl IntoIterator<Item = &'a Row>) {
    let mut s = String::from("timestamp,model,version,variant,segment,latency_ms,confidence,f.x\n");
    for r in rows {
        s.push_str(&r.line);
    }
    std::fs::write(path, s).unwrap();
}

fn count_by_segment<'a>(rows: impl IntoIterator<Item = &'a Row>) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r.segment.to_string()).or_insert(0.0) += 1.0;
    }
    m
}

/// The `predictions` counter of model `model`, per segment, as a reader of every slot sees it.
fn predictions_by_segment(data: &Path, model: &str) -> BTreeMap<String, f64> {
    let store = Store::open_read_only(StoreConfig::new(data)).unwrap();
    let req = ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw)
        .tag("metric", "predictions")
        .tag("model", model);
    let mut m = BTreeMap::new();
    for r in store.read(&req).unwrap().scalars {
        *m.entry(r.series.segment.to_string()).or_insert(0.0) += r.value;
    }
    m
}

fn import(file: &Path, data: &Path, extra: &[&str], env: &Env) -> Child {
    let mut args = vec!["import", file.to_str().unwrap(), "--data", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    spawn(&args, env)
}

fn verify(data: &Path, extra: &[&str], env: &Env) {
    let mut args = vec!["store", "verify", "--data", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args, env);
    assert_eq!(o.status.code(), Some(0), "store verify: {}{}", stdout(&o), stderr(&o));
}

fn inspect(data: &Path, extra: &[&str], env: &Env) -> Value {
    let mut args = vec!["store", "inspect", "--data", data.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    json(&run(&args, env), "store inspect")
}

fn writer<'a>(inspected: &'a Value, id: &str) -> &'a Value {
    inspected["writers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .unwrap_or_else(|| panic!("no writer slot {id}: {inspected:#}"))
}

fn writer_ids(inspected: &Value) -> Vec<String> {
    inspected["writers"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_string()).collect()
}

// --- Crash-writers and their acknowledgements --------------------------------------------

/// A `modelwatch crash-writer` process, with what it acknowledged (`<slot> <seq>` lines)
/// and what it said on standard error, gathered by two threads.
pub(crate) struct CrashWriter {
    child: Child,
    acks: Arc<Mutex<Vec<(String, u64)>>>,
    err: Arc<Mutex<String>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CrashWriter {
    pub(crate) fn spawn(data: &Path, extra: &[&str]) -> CrashWriter {
        let mut args = vec!["crash-writer", "--data", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut child = spawn(&args, &Env::new());
        let acks = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let mut e = child.stderr.take().unwrap();
        let threads = vec![
            {
                let acks = acks.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        let (slot, seq) = line.split_once(' ').expect("`<slot> <seq>`");
                        acks.lock().unwrap().push((slot.to_string(), seq.trim().parse().unwrap()));
                    }
                })
            },
            {
                let err = err.clone();
                std::thread::spawn(move || {
                    let mut s = String::new();
                    let _ = e.read_to_string(&mut s);
                    err.lock().unwrap().push_str(&s);
                })
            },
        ];
        CrashWriter { child, acks, err, threads }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn acks(&self) -> Vec<(String, u64)> {
        self.acks.lock().unwrap().clone()
    }

    /// Waits until it has acknowledged `n` snapshots; returns its slot. Panics, with what
    /// it said, if it exits or takes longer than a minute.
    pub(crate) fn wait_for_acks(&mut self, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let acks = self.acks();
            if acks.len() >= n {
                return acks[0].0.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the threads drain the pipes before reporting.
                for t in self.threads.drain(..) {
                    t.join().unwrap();
                }
                panic!(
                    "crash-writer exited ({status}) after {} acks: {}",
                    self.acks().len(),
                    self.err.lock().unwrap()
                );
            }
            assert!(Instant::now() < deadline, "crash-writer made {} of {n} acks in a minute", acks.len());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILLs it and returns every snapshot it acknowledged. Panics if it had exited by
    /// itself (a crash-writer only stops when killed).
    pub(crate) fn kill(mut self) -> Vec<(String, u64)> {
        self.child.kill().unwrap(); // SIGKILL
        let status = self.child.wait().unwrap();
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        assert!(
            status.code().is_none(),
            "crash-writer exited by itself ({status}): {}",
            self.err.lock().unwrap()
        );
        self.acks()
    }
}

impl Drop for CrashWriter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Acknowledged sequence numbers per writer slot.
pub(crate) type Acked = BTreeMap<String, Vec<u64>>;

pub(crate) fn add_acks(acked: &mut Acked, acks: Vec<(String, u64)>) {
    for (slot, seq) in acks {
        acked.entry(slot).or_default().push(seq);
    }
}

/// The sequence numbers the crash-writers of `slot` stored, sorted, duplicates kept, as a
/// reader of every slot sees them (published files and unpublished WAL records).
pub(crate) fn stored_seqs(store: &Store, slot: &str) -> Vec<u64> {
    let req = ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw)
        .tag("metric", SEQ_GAUGE)
        .tag("writer", slot);
    let mut seqs: Vec<u64> = store.read(&req).unwrap().scalars.iter().map(|r| r.value as u64).collect();
    seqs.sort_unstable();
    seqs
}

/// Asserts that every acknowledged snapshot is stored, and no snapshot twice, in each slot.
pub(crate) fn assert_each_ack_stored_once(data: &Path, acked: &Acked, when: &str) {
    let store = Store::open_read_only(StoreConfig::new(data))
        .unwrap_or_else(|e| panic!("{when}: opening a reader failed: {e}"));
    for (slot, seqs) in acked {
        let stored = stored_seqs(&store, slot);
        for s in seqs {
            assert!(
                stored.binary_search(s).is_ok(),
                "{when}: slot {slot}: acknowledged snapshot {s} is missing"
            );
        }
        let twice: Vec<u64> = stored.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        assert!(twice.is_empty(), "{when}: slot {slot}: snapshots stored twice: {twice:?}");
    }
}

// --- 1. Two imports at once --------------------------------------------------------------

#[test]
fn two_imports_into_one_root_at_once_both_keep_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = Env::new();
    // Disjoint rows; segments phone and name in both files, so one series has two writers.
    let a = traffic(20_000, 11, &["email", "phone", "name"]);
    let b = traffic(20_000, 12, &["phone", "name", "address"]);
    let (fa, fb) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    write_csv(&fa, &a);
    write_csv(&fb, &b);
    let mut expected = count_by_segment(&a);
    for (s, n) in count_by_segment(&b) {
        *expected.entry(s).or_insert(0.0) += n;
    }

    let children = [import(&fa, &data, &[], &env), import(&fb, &data, &[], &env)];
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(ok(&o, "import").contains("imported 20000 rows"), "{}", stdout(&o));
    }
    assert_eq!(predictions_by_segment(&data, "pii"), expected);
    verify(&data, &[], &env);
    // Two slots: had the imports not overlapped, the second would have reused the first's.
    let v = inspect(&data, &[], &env);
    assert_eq!(writer_ids(&v), ["w0", "w1"], "{v:#}");
    for id in ["w0", "w1"] {
        let w = writer(&v, id);
        assert_eq!((w["held"].as_bool(), w["unpublished_rows"].as_u64()), (Some(false), Some(0)), "{w}");
        assert!(w["rows"].as_u64().unwrap() > 0, "{w}");
    }

    // A slot asked for by name while a live process holds it is refused at once, naming
    // the slot and the holder's pid; the holder carries on.
    let mut holder = CrashWriter::spawn(&data, &["--writer-id", "w7"]);
    assert_eq!(holder.wait_for_acks(1), "w7");
    let small = dir.path().join("small.csv");
    write_csv(&small, a.iter().take(100));
    let by_env: Env = vec![("MODELWATCH_WRITER_ID".into(), "w7".into())];
    for (extra, env) in [(&["--writer-id", "w7"][..], &Env::new()), (&[][..], &by_env)] {
        let started = Instant::now();
        let o = import(&small, &data, extra, env).wait_with_output().unwrap();
        let took = started.elapsed();
        assert_eq!(o.status.code(), Some(1), "{extra:?} {env:?}: {}{}", stdout(&o), stderr(&o));
        let msg = stderr(&o);
        assert!(msg.contains("writer slot w7") && msg.contains(&format!("pid {}", holder.pid())), "{msg}");
        assert!(took < Duration::from_secs(15), "refused after {took:?}, not at once");
    }
    let n = holder.acks().len();
    holder.wait_for_acks(n + 3);
    let acked = holder.kill();
    assert!(acked.iter().all(|(slot, _)| slot == "w7"));
    assert_eq!(predictions_by_segment(&data, "pii"), expected, "the refused imports wrote nothing");
    verify(&data, &[], &env);
}

// --- 2. `store compact` beside a live writer --------------------------------------------

#[test]
fn store_compact_during_an_import_leaves_the_live_slot_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let env = Env::new();
    // A finished import: a free slot (w0) for compact to maintain.
    let rows = traffic(3_000, 21, &["email", "phone"]);
    let file = dir.path().join("log.csv");
    write_csv(&file, &rows);
    ok(&import(&file, &data, &[], &env).wait_with_output().unwrap(), "import");
    // A live writer in a named slot, its rows all in its WAL (a buffer it never fills
    // within the test, no maintenance of its own).
    let mut live = CrashWriter::spawn(&data, &["--writer-id", "pod-a", "--buffer-rows", "1000000"]);
    live.wait_for_acks(5);
    let held = inspect(&data, &[], &env);
    let w = writer(&held, "pod-a");
    assert_eq!(
        (w["held"].as_bool(), w["holder"]["pid"].as_u64()),
        (Some(true), Some(live.pid() as u64)),
        "{w}"
    );

    let o = run(&["store", "compact", "--data", d, "--as-of", AS_OF], &env);
    let out = ok(&o, "store compact beside a live writer");
    assert!(
        out.contains("skipped writer slot pod-a") && out.contains(&format!("pid {}", live.pid())),
        "names the skipped slot and its holder: {out}"
    );
    assert!(out.contains("in 1 writer slot"), "w0 is maintained: {out}");
    let after = inspect(&data, &[], &env);
    let resolutions = |v: &Value| -> Vec<String> {
        let mut r: Vec<String> = v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["resolution"].as_str().unwrap().to_string())
            .collect();
        r.dedup();
        r.sort();
        r.dedup();
        r
    };
    assert_eq!(resolutions(&after), ["1h", "1m", "raw"], "w0 was rolled up: {after:#}");
    // The live slot was neither adopted nor maintained: no roll-up, no file of its own.
    let manifest = data.join("writers/pod-a/manifest.json");
    if let Ok(bytes) = std::fs::read(&manifest) {
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(m["files"].as_array().unwrap().iter().all(|f| f["resolution"] == "raw"), "{m:#}");
    }
    assert!(writer(&after, "pod-a")["unpublished_rows"].as_u64().unwrap() > 0, "{after:#}");
    // And it carries on.
    let n = live.acks().len();
    live.wait_for_acks(n + 3);
    let mut acked = Acked::new();
    add_acks(&mut acked, live.kill());

    verify(&data, &[], &env);
    assert_each_ack_stored_once(&data, &acked, "after the kill");
    assert_eq!(predictions_by_segment(&data, "pii"), count_by_segment(&rows));
    let freed = inspect(&data, &[], &env);
    let w = writer(&freed, "pod-a");
    assert_eq!(w["held"].as_bool(), Some(false), "{w}");
    let unpublished = w["unpublished_rows"].as_u64().unwrap();
    assert!(unpublished > 0, "the killed writer's rows wait in its WAL: {w}");

    // The next compact adopts the freed slot: its WAL is replayed and published.
    let o = run(&["store", "compact", "--data", d, "--as-of", AS_OF], &env);
    let out = ok(&o, "store compact after the kill");
    assert!(!out.contains("skipped") && out.contains("in 2 writer slots"), "{out}");
    let adopted = inspect(&data, &[], &env);
    let w = writer(&adopted, "pod-a");
    assert_eq!(w["unpublished_rows"].as_u64(), Some(0), "{w}");
    assert!(w["rows"].as_u64().unwrap() >= unpublished, "{w}");
    assert_eq!(adopted["buffered_rows"], 0, "{adopted:#}");
    verify(&data, &[], &env);
    assert_each_ack_stored_once(&data, &acked, "after the adoption");
    assert_eq!(predictions_by_segment(&data, "pii"), count_by_segment(&rows));
}

// --- 3. Writers killed in turn -----------------------------------------------------------

#[test]
fn four_writers_killed_in_turn_lose_no_acknowledged_snapshot() {
    let kills: usize = std::env::var("MODELWATCH_FLEET_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Small buffers and frequent maintenance: kills land in publications and compactions.
    let args = ["--buffer-rows", "30", "--maintenance-ms", "200"];
    let mut writers: Vec<Option<CrashWriter>> =
        (0..4).map(|_| Some(CrashWriter::spawn(&data, &args))).collect();
    let mut slots: Vec<String> = writers.iter_mut().map(|w| w.as_mut().unwrap().wait_for_acks(1)).collect();
    let mut sorted = slots.clone();
    sorted.sort();
    assert_eq!(sorted, ["w0", "w1", "w2", "w3"], "four writers at once take the four lowest slots");

    let mut acked = Acked::new();
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    for kill in 0..kills {
        let i = kill % 4;
        std::thread::sleep(Duration::from_millis(20 + (rng.u() * 300.0) as u64));
        let freed = slots[i].clone();
        let last = writers[i].take().unwrap().kill();
        assert!(last.iter().all(|(s, _)| *s == freed), "kill {kill}: {last:?}");
        add_acks(&mut acked, last);
        // A new process (a new pid) takes the lowest free slot: the one just freed, whose
        // stream of sequence numbers it continues.
        let mut w = CrashWriter::spawn(&data, &args);
        slots[i] = w.wait_for_acks(1);
        assert_eq!(slots[i], freed, "kill {kill}: the restarted writer takes the slot just freed");
        let first = w.acks()[0].1;
        writers[i] = Some(w);
        let before = acked[&freed].iter().max().copied();
        assert!(
            before.is_none_or(|b| first > b),
            "kill {kill}: {freed} restarts at {first} after {before:?}"
        );
    }
    for w in writers.into_iter().flatten() {
        add_acks(&mut acked, w.kill());
    }
    assert_eq!(acked.keys().collect::<Vec<_>>(), ["w0", "w1", "w2", "w3"]);
    // Before anyone adopts the slots, a reader finds the unpublished snapshots in the WALs.
    assert_each_ack_stored_once(&data, &acked, "after the last kill");
    verify(&data, &[], &Env::new());
    let o = run(&["store", "compact", "--data", data.to_str().unwrap(), "--as-of", AS_OF], &Env::new());
    let out = ok(&o, "store compact after the last kill");
    assert!(!out.contains("skipped"), "{out}");
    assert_each_ack_stored_once(&data, &acked, "after store compact");
    let v = inspect(&data, &[], &Env::new());
    assert_eq!(writer_ids(&v), ["w0", "w1", "w2", "w3"], "{v:#}");
    for w in v["writers"].as_array().unwrap() {
        assert_eq!((w["held"].as_bool(), w["unpublished_rows"].as_u64()), (Some(false), Some(0)), "{w}");
    }
    verify(&data, &[], &Env::new());
}

// --- 4. Three writers and a reader against one writer ------------------------------------

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A `moto_server` on loopback (from the PyPI package `moto[server]`, which scripts/test
/// installs; MODELWATCH_MOTO names it).
pub(crate) struct Moto {
    _child: crate::support::Killed,
    pub(crate) port: u16,
}

impl Moto {
    pub(crate) fn start() -> Moto {
        let bin = std::env::var("MODELWATCH_MOTO").expect(
            "MODELWATCH_MOTO must name moto_server (pip install 'moto[server]'); run the tests through scripts/test",
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { _child: crate::support::Killed(child), port }
    }

    /// Creates a bucket with a plain HTTP request (moto does not check signatures).
    pub(crate) fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
    }

    /// What every command needs to reach the bucket.
    pub(crate) fn env(&self) -> Env {
        [
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// A store root: its data directory and, on a bucket, its `--objects` URL.
struct Root {
    data: PathBuf,
    objects: Option<String>,
}

impl Root {
    /// `--data DIR [--objects URL]`.
    fn args(&self) -> Vec<&str> {
        let mut a = vec!["--data", self.data.to_str().unwrap()];
        if let Some(o) = &self.objects {
            a.extend(["--objects", o.as_str()]);
        }
        a
    }

    /// `modelwatch query EXPR` over the hour of traffic as JSON.
    fn query(&self, expr: &str, step: &str, env: &Env) -> Value {
        let (from, to) = (iso(T0), iso(T0 + HOUR));
        let mut args = vec!["query", expr, "--from", &from, "--to", &to, "--step", step, "--format", "json"];
        args.extend(self.args());
        json(&run(&args, env), &format!("query {expr:?} --step {step}"))
    }

    /// `modelwatch drift` of the second half hour against the first, as JSON.
    fn drift(&self, env: &Env) -> Value {
        let reference = format!("{}..{}", iso(T0), iso(T0 + HOUR / 2));
        let (from, to) = (iso(T0 + HOUR / 2), iso(T0 + HOUR));
        let mut args =
            vec!["drift", "--reference", &reference, "--from", &from, "--to", &to, "--format", "json"];
        args.extend(self.args());
        json(&run(&args, env), "drift")
    }
}

/// The sum of every point of every series of a query's JSON answer.
fn total(answer: &Value) -> f64 {
    answer
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["points"].as_array().unwrap())
        .map(|p| p[1].as_f64().unwrap())
        .sum()
}

/// A query's answer per `segment` label: the values of its points.
fn by_segment(answer: &Value) -> BTreeMap<String, Vec<f64>> {
    answer
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let seg = s["tags"]["segment"].as_str().unwrap_or("").to_string();
            (seg, s["points"].as_array().unwrap().iter().map(|p| p[1].as_f64().unwrap()).collect())
        })
        .collect()
}

/// Drift statistics computed from a distribution's moments (`mean`, `m2`, merged with
/// Chan's formula) rather than from its buckets. Buckets add exactly, so counts,
/// quantiles, KS, PSI, JS, Hellinger and medians come out bit for bit the same however the
/// rows were split between writers; the moments are floating-point sums whose last bits
/// depend on that split (each writer's snapshot folds a third of an interval's values), so
/// these agree to rounding only. The normed Wasserstein distance takes |Δmean| / σ when it
/// is the larger, and a feature's verdict tests the means too (Welch), so its p-value and
/// effect are from moments as well.
const FROM_MOMENTS: [&str; 3] = ["mean", "std", "wasserstein_norm"];

/// Equal to within floating-point rounding of a few operations.
fn close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
}

/// Every answer A and B must give alike: counts, latency quantiles (per segment per 10
/// minutes, per segment over the hour, and all merged), confidence and feature quantiles
/// exactly; means of a feature to rounding; drift over fixed windows exactly but for the
/// statistics computed from moments.
fn compare(a: &Root, b: &Root, env: &Env, when: &str) {
    let exact = [
        ("sum(predictions) by (segment)", "10m"),
        ("count(latency) by (segment)", "10m"),
        ("p50(latency) by (segment)", "10m"),
        ("p95(latency) by (segment)", "10m"),
        ("p99(latency) by (segment)", "10m"),
        ("quantile(0.95, latency) by (segment)", "1h"),
        ("p99(latency)", "1h"),
        ("p50(latency)", "1h"),
        ("max(latency) by (segment)", "10m"),
        // Latency sums are whole nanoseconds: exact in a double.
        ("mean(latency) by (segment)", "10m"),
        ("p90(confidence) by (segment)", "10m"),
        ("p50(feature{feature=\"x\"}) by (segment)", "30m"),
    ];
    for (expr, step) in exact {
        let (qa, qb) = (a.query(expr, step, env), b.query(expr, step, env));
        assert!(!qa.as_array().unwrap().is_empty(), "{when}: {expr}: no series");
        assert_eq!(qa, qb, "{when}: {expr} --step {step}: three writers (left) and one (right) differ");
    }
    let expr = "mean(feature{feature=\"x\"}) by (segment)";
    let (ma, mb) = (by_segment(&a.query(expr, "30m", env)), by_segment(&b.query(expr, "30m", env)));
    assert_eq!(ma.keys().collect::<Vec<_>>(), mb.keys().collect::<Vec<_>>(), "{when}: {expr}");
    for (seg, xs) in &ma {
        let ys = &mb[seg];
        assert!(
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| close(*x, *y)),
            "{when}: {expr}: {seg}: {xs:?} {ys:?}"
        );
    }

    let (da, db) = (a.drift(env), b.drift(env));
    assert!(!da["statistics"].as_array().unwrap().is_empty(), "{when}: {da:#}");
    let from_moments = |r: &Value| FROM_MOMENTS.contains(&r["statistic"].as_str().unwrap());
    let numbers = ["value", "p_value", "reference", "current"];
    let verdict_numbers = ["effect_value", "p_value"];
    let bucket_derived = |doc: &Value| {
        let mut doc = doc.clone();
        for r in doc["statistics"].as_array_mut().unwrap().iter_mut().filter(|r| from_moments(r)) {
            numbers.iter().for_each(|k| r[*k] = Value::Null);
        }
        for f in doc["feature_verdicts"].as_array_mut().unwrap() {
            verdict_numbers.iter().for_each(|k| f[*k] = Value::Null);
        }
        doc
    };
    assert_eq!(
        bucket_derived(&da),
        bucket_derived(&db),
        "{when}: drift: three writers (left) and one (right) differ (verdicts, or statistics from buckets)"
    );
    let (sa, sb) = (da["statistics"].as_array().unwrap(), db["statistics"].as_array().unwrap());
    let (va, vb) = (da["feature_verdicts"].as_array().unwrap(), db["feature_verdicts"].as_array().unwrap());
    let rows =
        sa.iter().zip(sb).filter(|(r, _)| from_moments(r)).flat_map(|(a, b)| numbers.map(|k| (a, b, k)));
    let verdicts = va.iter().zip(vb).flat_map(|(a, b)| verdict_numbers.map(|k| (a, b, k)));
    for (ra, rb, k) in rows.chain(verdicts) {
        let alike = match (ra[k].as_f64(), rb[k].as_f64()) {
            // A tiny p-value moves by t² times its statistic's rounding: compare logarithms.
            (Some(x), Some(y)) if k == "p_value" => close(x.ln(), y.ln()),
            (Some(x), Some(y)) => close(x, y),
            (x, y) => x == y,
        };
        assert!(
            alike,
            "{when}: drift {} {} {k}: {} against {}",
            ra["feature"], ra["statistic"], ra[k], rb[k]
        );
    }
}

fn answer_as_one(moto: Option<&Moto>) {
    let dir = tempfile::tempdir().unwrap();
    let env = moto.map(Moto::env).unwrap_or_default();
    if let Some(m) = moto {
        m.create_bucket("fleet");
    }
    let root = |name: &str| Root {
        data: dir.path().join(name),
        objects: moto.map(|_| format!("s3://fleet/{name}")),
    };
    let (a, b) = (root("a"), root("b"));
    let segments = ["email", "phone", "name", "address"];
    let rows = traffic(12_000, 31, &segments);
    let whole = dir.path().join("whole.csv");
    write_csv(&whole, &rows);
    // Round robin: every 10-second interval of every series has rows in all three parts.
    let parts: Vec<PathBuf> = (0..3)
        .map(|k| {
            let p = dir.path().join(format!("part{k}.csv"));
            write_csv(&p, rows.iter().skip(k).step_by(3));
            p
        })
        .collect();
    let expected = count_by_segment(&rows);
    std::fs::create_dir_all(&a.data).unwrap();

    // A reader, over and over while the writers write: it never fails, never counts a
    // row twice (the total never exceeds the traffic) and never loses one it had seen.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, env) = (stop.clone(), env.clone());
        let a = Root { data: a.data.clone(), objects: a.objects.clone() };
        std::thread::spawn(move || {
            let (mut runs, mut last) = (0usize, 0.0);
            while !stop.load(Ordering::Acquire) {
                let seen = total(&a.query("sum(predictions)", "1h", &env));
                assert!(seen <= 12_000.0, "run {runs}: a reader counted {seen} of 12000 predictions");
                assert!(seen >= last, "run {runs}: a reader saw {seen} predictions after {last}");
                last = seen;
                let mut args = vec!["store", "inspect", "--format", "json"];
                args.extend(a.args());
                json(&run(&args, &env), "store inspect during the imports");
                runs += 1;
            }
            runs
        })
    };
    let writers: Vec<Child> = parts.iter().map(|p| import(p, &a.data, &a.args()[2..], &env)).collect();
    for w in writers {
        let o = w.wait_with_output().unwrap();
        assert!(ok(&o, "import into A").contains("imported 4000 rows"), "{}", stdout(&o));
    }
    stop.store(true, Ordering::Release);
    let runs = reader.join().unwrap();
    assert!(runs > 0, "the reader ran during the imports");
    ok(&import(&whole, &b.data, &b.args()[2..], &env).wait_with_output().unwrap(), "import into B");

    // Three slots hold the rows (which three is the slots' business: see
    // `listing_the_writers_never_makes_a_free_slot_look_held` for why the reader's
    // `store inspect` can push a claim past a free slot).
    let v = inspect(&a.data, &a.args()[2..], &env);
    let written: Vec<&Value> = v["writers"].as_array().unwrap().iter().filter(|w| w["rows"] != 0).collect();
    assert_eq!(written.len(), 3, "{v:#}");
    if moto.is_some() {
        assert!(!a.data.join("writers/w0/manifest.json").exists(), "manifests are in the bucket");
        assert!(!a.data.join("writers/w0/distributions").exists(), "Parquet files are in the bucket");
    }
    let ids_b = writer_ids(&inspect(&b.data, &b.args()[2..], &env));
    // On a bucket a numbered slot carries the host's name (`<host>-w0`).
    assert!(ids_b.len() == 1 && ids_b[0].ends_with("w0"), "{ids_b:?}");
    let counts = by_segment(&a.query("sum(predictions) by (segment)", "1h", &env));
    assert_eq!(
        counts,
        expected.iter().map(|(s, n)| (s.clone(), vec![*n])).collect(),
        "A against the traffic"
    );
    compare(&a, &b, &env, "as imported (raw rows)");
    for r in [&a, &b] {
        let mut args = vec!["store", "compact", "--as-of", AS_OF];
        args.extend(r.args());
        ok(&run(&args, &env), "store compact");
        verify(&r.data, &r.args()[2..], &env);
    }
    // Hour-aligned windows now read the 1h roll-ups, 10-minute ones the 1m roll-ups.
    compare(&a, &b, &env, "after store compact (roll-ups)");
}

#[test]
fn three_writers_and_a_reader_answer_as_one_writer() {
    answer_as_one(None);
}

#[test]
fn three_writers_and_a_reader_answer_as_one_writer_over_s3() {
    let moto = Moto::start();
    answer_as_one(Some(&moto));
}

// --- A compactor beside the writers (for the crash loop) ---------------------------------

/// A thread that runs `modelwatch store compact --as-of` over and over until stopped,
/// keeping every failure.
pub(crate) struct Compactor {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<CompactorReport>,
}

#[derive(Debug, Default)]
pub(crate) struct CompactorReport {
    pub runs: usize,
    /// Runs that failed, with their output.
    pub failures: Vec<String>,
}

impl Compactor {
    pub(crate) fn start(data: &Path, pause: Duration) -> Compactor {
        let stop = Arc::new(AtomicBool::new(false));
        let d = data.to_str().unwrap().to_string();
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut report = CompactorReport::default();
            while !s.load(Ordering::Acquire) {
                let o = run(&["store", "compact", "--data", &d, "--as-of", AS_OF], &Env::new());
                report.runs += 1;
                if !o.status.success() {
                    report.failures.push(format!("exit {:?}: {}{}", o.status.code(), stdout(&o), stderr(&o)));
                }
                std::thread::sleep(pause);
            }
            report
        });
        Compactor { stop, thread }
    }

    pub(crate) fn stop(self) -> CompactorReport {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap()
    }
}

// --- A reader that makes a free slot look held ----------------------------------------

/// `store inspect` and `store compact` list the writer slots "without taking any lock"
/// (`list_writers`), yet to say whether a slot is held they take its lock for a moment
/// (store/src/store/slot.rs, `is_held`): a writer claiming the slot in that moment is
/// refused, naming the slot's last holder, which may be long dead, and one claiming the
/// lowest free slot takes a new one. Two threads list the writers in a loop while the
/// main thread claims the only slot, `w0`, by name and then as the lowest free one, over
/// and over, with no other writer anywhere.
#[test]
fn listing_the_writers_never_makes_a_free_slot_look_held() {
    use modelwatch_store::list_writers;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let config = |writer: Option<&str>| StoreConfig {
        background: false,
        writer: writer.map(str::to_string),
        ..StoreConfig::new(&data)
    };
    drop(Store::open(config(None)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let listers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, data) = (stop.clone(), data.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    list_writers(&StoreConfig::new(&data)).unwrap();
                }
            })
        })
        .collect();
    let mut wrong = Vec::new();
    let mut claims = 0;
    let started = Instant::now();
    while claims < 2_000 && wrong.is_empty() && started.elapsed() < Duration::from_secs(20) {
        match Store::open(config(Some("w0"))) {
            Ok(s) => drop(s),
            Err(e) => wrong.push(format!("claim {claims}, by name: {e}")),
        }
        match Store::open(config(None)) {
            Ok(s) if s.writer_id() == Some("w0") => drop(s),
            Ok(s) => wrong.push(format!("claim {claims}, lowest free: took {:?}", s.writer_id())),
            Err(e) => wrong.push(format!("claim {claims}, lowest free: {e}")),
        }
        claims += 1;
    }
    stop.store(true, Ordering::Release);
    listers.into_iter().for_each(|t| t.join().unwrap());
    assert!(
        wrong.is_empty(),
        "a free slot looked held while readers listed the writers:\n{}",
        wrong.join("\n")
    );
}
