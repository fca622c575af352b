//! Crash loop: a child process appends snapshots and prints each acknowledged sequence
//! number; the parent SIGKILLs it at random moments, restarts it, and checks that every
//! acknowledged snapshot is readable and every file opens.
//!
//! CI runs 50 kills. A longer soak: `MODELWATCH_CRASH_KILLS=2000 cargo test --test tests crash`.

use crate::cli::modelwatch;
use modelwatch_store::{ReadRequest, Resolution, Store, StoreConfig, Table};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_snapshot() {
    let kills: u64 = std::env::var("MODELWATCH_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut acked: Vec<u64> = Vec::new();
    for kill in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["crash-writer", "--data", data.to_str().unwrap(), "--buffer-rows", "40"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    // `<writer slot> <sequence number>`: one writer at a time here, so always w0.
                    if let Some(n) = line.strip_prefix("w0 ").and_then(|n| n.trim().parse::<u64>().ok()) {
                        seen.lock().unwrap().push(n);
                    }
                }
            })
        };
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 180));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        acked.extend(seen.lock().unwrap().iter());

        // No background retention as of the real date over the fixed-date data.
        let store = Store::open(StoreConfig { maintenance_every: None, ..StoreConfig::new(&data) })
            .unwrap_or_else(|e| panic!("kill {kill}: reopen failed: {e}"));
        let rows = store
            .read(
                &ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw)
                    .tag("metric", "crash_writer_seq"),
            )
            .unwrap();
        let mut present: Vec<u64> = rows.scalars.iter().map(|r| r.value as u64).collect();
        present.sort();
        for a in &acked {
            assert!(present.binary_search(a).is_ok(), "kill {kill}: acknowledged snapshot {a} is missing");
        }
        let mut dedup = present.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), present.len(), "kill {kill}: a snapshot was stored twice");
        let problems = store.verify();
        assert!(problems.is_empty(), "kill {kill}: {problems:?}");
    }
    assert!(acked.len() as u64 > kills, "the writer must make progress between kills: {} acks", acked.len());
    let o = modelwatch(&["store", "verify", "--data", data.to_str().unwrap()]);
    assert!(o.status.success());
}
