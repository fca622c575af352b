//! Scorers that follow the registry, against the real binary: a running `canary-scorer`
//! serves a promotion as soon as a refresh reads it and gives the challenger its share, and
//! beside a `crash-registry` loop killed with SIGKILL at seeded random moments the aliases
//! stay intact and the scorer keeps serving the registry's control, never erring.

use super::support::Killed;
use modelwatch::agent::router::{Arm, decide, salt_of, threshold};
use modelwatch::canary::DEFAULT_FRACTION;
use modelwatch::store::registry::{Action, AuditEntry, NewVersion, Op, Registry, RegistryConfig};
use modelwatch::{ManualClock, Timestamp};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// Requests the scorer routes after each refresh.
const REQUESTS: usize = 2_000;

/// A hang guard only: no assertion depends on how fast anything runs.
const SILENT: Duration = Duration::from_secs(60);

fn registry(data: &Path) -> Registry {
    let clock = std::sync::Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200)));
    Registry::open(RegistryConfig::new(data, clock)).unwrap()
}

/// The scorer process over `data`'s registry, and its lines as they come.
fn scorer(data: &Path, model: &str, refresh_ms: u64) -> (Killed, Receiver<Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["canary-scorer", "--data", data.to_str().unwrap(), "--model", model])
        .args(["--refresh-ms", &refresh_ms.to_string(), "--requests", &REQUESTS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("scorer line {line:?}: {e}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    (Killed(child), rx)
}

/// Every scorer line up to the first that read audit entry `seq` or later (it included).
fn until_seq(rx: &Receiver<Value>, seq: u64, seen: &mut Vec<Value>) -> Value {
    loop {
        let line = rx
            .recv_timeout(SILENT)
            .unwrap_or_else(|e| panic!("the scorer went silent waiting for entry {seq}: {e}"));
        assert!(line.get("error").is_none(), "the scorer erred: {line}");
        seen.push(line.clone());
        if line["seq"].as_u64().unwrap() >= seq {
            return line;
        }
    }
}

fn served(line: &Value) -> BTreeMap<u32, u64> {
    line["served"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(v, n)| (v.parse().unwrap(), n.as_u64().unwrap()))
        .collect()
}

fn version(line: &Value, alias: &str) -> Option<u32> {
    line[alias].as_u64().map(|v| v as u32)
}

fn register(reg: &Registry, model: &str, weights: &str) -> u32 {
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("weights.bin"), weights).unwrap();
    reg.register(NewVersion::new(model, "test", art.path())).unwrap().meta.version
}

#[test]
fn a_running_scorer_serves_a_promotion_at_the_first_refresh_that_reads_it_and_the_challenger_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let reg = registry(&data);
    let act = Action::new("test", "watcher test");
    let v1 = register(&reg, "pii", "one");
    let s1 = reg.promote("pii", v1, &act).unwrap().seq;
    let (_scorer, rx) = scorer(&data, "pii", 20);
    let mut seen = Vec::new();

    let line = until_seq(&rx, s1, &mut seen);
    assert_eq!((version(&line, "control"), version(&line, "challenger")), (Some(v1), None), "{line}");
    assert_eq!(served(&line), BTreeMap::from([(v1, REQUESTS as u64)]), "{line}");

    // A challenger takes the keys the router gives it: exactly those, about the fraction.
    let v2 = register(&reg, "pii", "two, bigger");
    let s2 = reg.set_challenger("pii", v2, &act).unwrap().seq;
    let line = until_seq(&rx, s2, &mut seen);
    assert_eq!((version(&line, "control"), version(&line, "challenger")), (Some(v1), Some(v2)), "{line}");
    let salt = salt_of(&format!("pii/{v2}"));
    let expect = (0..REQUESTS)
        .filter(|i| {
            decide(salt, threshold(DEFAULT_FRACTION), format!("key-{i}").as_bytes()) == Arm::Challenger
        })
        .count() as u64;
    assert_eq!(served(&line), BTreeMap::from([(v1, REQUESTS as u64 - expect), (v2, expect)]), "{line}");
    let share = expect as f64 / REQUESTS as f64;
    assert!((share - DEFAULT_FRACTION).abs() <= 0.03, "challenger share {share}");

    // The promotion commits: the refresh that reads it serves it to every key.
    let s3 = reg.promote("pii", v2, &act).unwrap().seq;
    let before = seen.len();
    let line = until_seq(&rx, s3, &mut seen);
    assert_eq!((version(&line, "control"), version(&line, "challenger")), (Some(v2), None), "{line}");
    assert_eq!(served(&line), BTreeMap::from([(v2, REQUESTS as u64)]), "{line}");
    for l in &seen[before..seen.len() - 1] {
        assert_eq!(version(l, "control"), Some(v1), "a refresh that read entry {} served {l}", l["seq"]);
    }
    // And keeps serving it.
    let next = rx.recv_timeout(SILENT).unwrap();
    assert_eq!(served(&next), BTreeMap::from([(v2, REQUESTS as u64)]), "{next}");
    let refreshes: Vec<u64> = seen.iter().chain([&next]).map(|l| l["refresh"].as_u64().unwrap()).collect();
    assert_eq!(refreshes, (1..=refreshes.len() as u64).collect::<Vec<_>>(), "one line per refresh");
    assert!(seen.iter().all(|l| l["failed"].as_array().unwrap().is_empty()), "{seen:?}");
}

/// The control after each audit entry, replaying the log from the start.
fn controls(log: &[AuditEntry]) -> Vec<Option<u32>> {
    let mut control = None;
    let mut out = vec![None]; // before entry 1
    for e in log {
        if matches!(e.op, Op::Promote | Op::Rollback) {
            control = e.version;
        }
        out.push(control);
    }
    out
}

#[test]
fn aliases_stay_intact_through_sigkills_during_promotions_and_the_scorer_beside_them_serves_the_control() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let d = data.to_str().unwrap();
    // Started before the model exists: it serves nothing until the first promotion.
    let (mut scorer, rx) = scorer(&data, "crash", 10);
    let mut seen: Vec<Value> = Vec::new();
    let reg = registry(&data);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let (mut kills, mut promotions) = (0, 0);
    while kills < 12 || promotions < 5 {
        assert!(kills < 200, "the crash loop makes no progress ({promotions} promotions)");
        let mut child = Killed(
            Command::new(env!("CARGO_BIN_EXE_modelwatch"))
                .args(["crash-registry", "--data", d, "--model", "crash"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 180));
        child.0.kill().unwrap();
        let status = child.0.wait().unwrap();
        kills += 1;
        assert!(status.code().is_none(), "the crash loop stopped by itself ({status})");
        let at = format!("kill {kills}");
        if !data.join("registry/crash/head.json").exists() {
            continue;
        }
        // The head reads, control and latest agree, and the log's newest entry (and the
        // whole log replayed) gives the aliases the head holds.
        let state = reg.state("crash").unwrap_or_else(|e| panic!("{at}: the head does not read: {e}"));
        let aliases = state.aliases().clone();
        assert_eq!(aliases.control, aliases.latest, "{at}");
        let log = reg.log("crash").unwrap_or_else(|e| panic!("{at}: the log does not read: {e}"));
        let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=state.seq()).collect::<Vec<_>>(), "{at}");
        let newest = log.last().unwrap();
        if matches!(newest.op, Op::Promote | Op::Rollback) {
            assert_eq!(newest.version, aliases.control, "{at}: newest entry {newest:?}");
        }
        assert_eq!(*controls(&log).last().unwrap(), aliases.control, "{at}");
        promotions = log.iter().filter(|e| e.op == Op::Promote).count();

        // The scorer, never killed, serves that control once a refresh reads this head.
        let line = until_seq(&rx, state.seq(), &mut seen);
        assert_eq!(line["seq"].as_u64(), Some(state.seq()), "{at}: nothing writes the registry now");
        assert_eq!(version(&line, "control"), aliases.control, "{at}: {line}");
        let want = aliases.control.map(|c| BTreeMap::from([(c, REQUESTS as u64)])).unwrap_or_default();
        assert_eq!(served(&line), want, "{at}: {line}");
        assert!(scorer.0.try_wait().unwrap().is_none(), "{at}: the scorer exited");
    }
    // Every refresh during the loop served the control of the entry it read.
    let log = reg.log("crash").unwrap();
    let control_at = controls(&log);
    for l in &seen {
        let seq = l["seq"].as_u64().unwrap() as usize;
        assert!(l["failed"].as_array().unwrap().is_empty(), "{l}");
        assert_eq!(version(l, "control"), control_at[seq], "{l}");
        let want = control_at[seq].map(|c| BTreeMap::from([(c, REQUESTS as u64)])).unwrap_or_default();
        assert_eq!(served(l), want, "{l}");
    }
    let refreshes: Vec<u64> = seen.iter().map(|l| l["refresh"].as_u64().unwrap()).collect();
    assert_eq!(
        refreshes,
        (1..=refreshes.len() as u64).collect::<Vec<_>>(),
        "one line per refresh, none an error"
    );
    eprintln!(
        "watcher beside the crash loop: {kills} kills, {promotions} promotions, {} refreshes",
        seen.len()
    );
}
