//! Crash loop: a child process appends snapshots, with small buffers (a publication every
//! other snapshot) and background maintenance every 50 ms, and prints each acknowledged
//! `<slot> <seq>`; meanwhile another process runs `modelwatch store compact` over and over
//! (it skips the slot the writer holds and adopts it while the writer is dead). The parent
//! SIGKILLs the writer at random moments and restarts it; after every kill `modelwatch
//! store verify` exits 0 and every acknowledged snapshot is stored exactly once.
//!
//! CI runs 50 kills. A longer soak: `MODELWATCH_CRASH_KILLS=2000 cargo test --test tests crash`.

use crate::cli::{modelwatch, stderr, stdout};
use crate::fleet::{AS_OF, Acked, Compactor, CrashWriter, add_acks, assert_each_ack_stored_once};
use std::time::Duration;

/// A publication every other snapshot (about 9 rows each) and maintenance every 50 ms:
/// kills land in publications, compactions and roll-ups.
const WRITER: [&str; 4] = ["--buffer-rows", "10", "--maintenance-ms", "50"];

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_snapshot() {
    let kills: u64 = std::env::var("MODELWATCH_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let d = data.to_str().unwrap();
    let mut acked = Acked::new();
    // Beside a live writer, `store compact` skips its slot, naming it and its holder.
    let mut first = CrashWriter::spawn(&data, &WRITER);
    let slot = first.wait_for_acks(1);
    let o = modelwatch(&["store", "compact", "--data", d, "--as-of", AS_OF]);
    assert!(o.status.success(), "{}", stderr(&o));
    let skipped = format!("skipped writer slot {slot}: held by pid {}", first.pid());
    assert!(stdout(&o).contains(&skipped), "{}", stdout(&o));
    add_acks(&mut acked, first.kill());

    let compactor = Compactor::start(&data, Duration::from_millis(20));
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for kill in 0..kills {
        // No --writer-id: the writer takes the lowest free slot, w1 when the compactor is
        // adopting w0 at that moment; each slot's sequence numbers are a stream of their own.
        let writer = CrashWriter::spawn(&data, &WRITER);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 180));
        add_acks(&mut acked, writer.kill());

        let o = modelwatch(&["store", "verify", "--data", d]);
        assert_eq!(o.status.code(), Some(0), "kill {kill}: store verify: {}{}", stdout(&o), stderr(&o));
        assert_each_ack_stored_once(&data, &acked, &format!("kill {kill}"));
    }
    let report = compactor.stop();
    assert!(report.failures.is_empty(), "store compact failed beside the writer: {:#?}", report.failures);
    assert!(report.runs > 0, "{report:?}");
    let acks: usize = acked.values().map(Vec::len).sum();
    assert!(acks as u64 > kills, "the writer must make progress between kills: {acks} acks");
    // Once nobody writes, one more pass adopts every slot: nothing is left in a WAL.
    let o = modelwatch(&["store", "compact", "--data", d, "--as-of", AS_OF]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_each_ack_stored_once(&data, &acked, "after the last compact");
    let o = modelwatch(&["store", "inspect", "--data", d, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for w in v["writers"].as_array().unwrap() {
        assert_eq!((w["held"].as_bool(), w["unpublished_rows"].as_u64()), (Some(false), Some(0)), "{w}");
    }
    let o = modelwatch(&["store", "verify", "--data", d]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}
