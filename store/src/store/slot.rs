//! Writer slots: every writing process holds an exclusive lock on one slot of the store root,
//! `writers/<id>/`, for its whole life, and writes only there (its WAL, its manifest, its
//! Parquet files). The lock is an `flock` on `writers/<id>/LOCK`, so the operating system
//! releases it when the process dies, however it dies; whoever claims the slot next replays
//! its WAL. Readers take no slot's lock to read: they list the slots and merge their
//! manifests. To say whether a slot is held (`is_held`) a reader takes its lock for a
//! moment; it does so holding `writers/<id>/PROBE` shared, and a claim tries the lock
//! holding `PROBE` exclusively, so a claim never meets a probe and never mistakes one for a
//! live writer, however long the scheduler keeps the probe off the CPU.

use super::StoreError;
use modelwatch_agent::Clock;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The directory of the writer slots under the store root.
pub(crate) const WRITERS: &str = "writers";
/// The lock file in a slot.
const LOCK: &str = "LOCK";
/// The file that keeps a probe of a slot's lock and a claim of it apart.
const PROBE: &str = "PROBE";
/// The slot that adopts a store written before slots existed (a `manifest.json` and `wal/`
/// at the root).
pub(crate) const LEGACY_SLOT: &str = "w0";

/// Who holds a slot, as its lock file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Process ID.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When it claimed the slot (RFC 3339, UTC).
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {} since {}", self.pid, self.host, self.since)
    }
}

/// A claimed slot: the lock is held as long as this value lives.
#[derive(Debug)]
pub(crate) struct SlotLock {
    pub id: String,
    file: File,
}

impl Drop for SlotLock {
    /// Unlocks before the descriptor closes. An `flock` belongs to the open file, which
    /// lives until its last descriptor closes, and a child process forked by any thread of
    /// this one (to run a command) holds a copy of every descriptor until it execs: closing
    /// ours alone would leave the slot looking held for that long, and a claim of it in
    /// that window refused.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Whether `id` can name a slot: 1 to 64 of `[A-Za-z0-9_.-]`, not starting with a dot.
pub(crate) fn check_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok { Ok(()) } else { Err(StoreError::BadWriterId(id.to_string())) }
}

/// The local directory of slot `id`.
pub(crate) fn slot_dir(root: &Path, id: &str) -> PathBuf {
    root.join(WRITERS).join(id)
}

/// The slots that exist in the local directory, sorted (`w2` before `w10`).
pub(crate) fn local_slots(root: &Path) -> Result<Vec<String>, StoreError> {
    let dir = root.join(WRITERS);
    let mut ids = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| check_id(id).is_ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(StoreError::Io { path: dir, source }),
    };
    sort_ids(&mut ids);
    Ok(ids)
}

/// Sorts slot IDs with the numbered slots (`w0`, `w1`, … `w10`) first, by number.
pub(crate) fn sort_ids(ids: &mut [String]) {
    ids.sort_by_key(|id| (numbered(id).unwrap_or(u64::MAX), id.clone()));
}

/// The number of an automatically numbered slot `w<N>`.
fn numbered(id: &str) -> Option<u64> {
    id.strip_prefix('w').filter(|n| !n.is_empty() && !n.starts_with('+')).and_then(|n| n.parse().ok())
}

/// Claims slot `id`: `Ok(None)` when a live process holds it (with `wait`, blocks until it
/// is free instead).
pub(crate) fn try_claim(
    root: &Path,
    id: &str,
    wait: bool,
    clock: &dyn Clock,
) -> Result<Option<SlotLock>, StoreError> {
    check_id(id)?;
    let dir = slot_dir(root, id);
    // Durable: each directory it creates is fsynced into its parent.
    crate::fs::Fs::create_dir_all(&crate::fs::RealFs, &dir).map_err(io(&dir))?;
    let path = dir.join(LOCK);
    // Neither truncated nor rewritten before the lock is ours: the holder's details stay.
    let mut file = open_rw(&path).map_err(io(&path))?;
    if wait {
        // A probe only delays a blocking claim. `PROBE` is not held here: readers would
        // wait as long as the holder lives.
        file.lock().map_err(io(&path))?;
    } else {
        // Probes hold `PROBE` shared for as long as they hold the lock, and never block
        // while holding it: once it is ours, the lock is held by a claim alone.
        let guard_path = dir.join(PROBE);
        let guard = open_rw(&guard_path).map_err(io(&guard_path))?;
        guard.lock().map_err(io(&guard_path))?;
        let tried = file.try_lock();
        // Unlocked, not just closed, for the reason `SlotLock` unlocks on drop.
        let _ = guard.unlock();
        match tried {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
    }
    let since = crate::manifest::rfc3339_secs(clock.now().as_millis() as i64);
    let me = format!("pid={}\nhost={}\nsince={since}\n", std::process::id(), host_name());
    file.set_len(0).map_err(io(&path))?;
    file.rewind().map_err(io(&path))?;
    file.write_all(me.as_bytes()).map_err(io(&path))?;
    Ok(Some(SlotLock { id: id.to_string(), file }))
}

/// An I/O error on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, source }
}

/// Opens `path` for reading and writing, creating it empty if missing, never truncating it.
fn open_rw(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

/// Claims `id`, or fails at once naming the process that holds it.
pub(crate) fn claim(root: &Path, id: &str, wait: bool, clock: &dyn Clock) -> Result<SlotLock, StoreError> {
    try_claim(root, id, wait, clock)?.ok_or_else(|| StoreError::WriterHeld {
        id: id.to_string(),
        holder: holder(root, id),
        dir: root.into(),
    })
}

/// Claims the lowest-numbered free slot `<prefix>w<N>`, creating the next one when all are
/// held. The prefix is empty for a local store; for a bucket it is this host's name and a
/// dash (`pod-7f9c-w0`): hosts share no lock, so numbered slots alone would make every
/// host's first process claim `w0`.
pub(crate) fn claim_free(root: &Path, prefix: &str, clock: &dyn Clock) -> Result<SlotLock, StoreError> {
    let taken: Vec<String> = local_slots(root)?;
    let mine = |id: &String| id.strip_prefix(prefix).and_then(numbered);
    let mut numbers: Vec<(u64, &String)> = taken.iter().filter_map(|id| mine(id).map(|n| (n, id))).collect();
    numbers.sort();
    for (_, id) in &numbers {
        if let Some(lock) = try_claim(root, id, false, clock)? {
            return Ok(lock);
        }
    }
    // Another process may create the same new slot at the same moment: the lock decides,
    // and the loser moves on to the next number.
    let mut n = numbers.last().map_or(0, |(m, _)| m + 1);
    loop {
        if let Some(lock) = try_claim(root, &format!("{prefix}w{n}"), false, clock)? {
            return Ok(lock);
        }
        n += 1;
    }
}

/// The prefix of automatically numbered slots on a bucket: this host's name, made a valid
/// slot ID, and a dash.
pub(crate) fn host_prefix() -> String {
    let host: String = host_name()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(48)
        .collect();
    format!("{}-", host.trim_start_matches('.'))
}

/// Whether slot `id` is held by a live process (without claiming it).
pub(crate) fn is_held(root: &Path, id: &str) -> bool {
    probe(root, id, || {})
}

/// `is_held`, calling `during` while the probe holds the slot's lock (for tests: a probe
/// the scheduler keeps off the CPU).
fn probe(root: &Path, id: &str, during: impl FnOnce()) -> bool {
    let dir = slot_dir(root, id);
    let Ok(file) = OpenOptions::new().read(true).write(true).open(dir.join(LOCK)) else { return false };
    // Created here too, for a slot last claimed before slots had one. Where it cannot be
    // opened the slot is said to be held: calling a live writer's slot free is the worse
    // mistake (`demo --replace` deletes a store whose slots are all free).
    let Ok(guard) = open_rw(&dir.join(PROBE)) else { return true };
    if guard.lock_shared().is_err() {
        return true;
    }
    let held = match file.try_lock() {
        Ok(()) => {
            during();
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    };
    // Both unlocked, not just closed: a child forked meanwhile keeps copies of both.
    let _ = guard.unlock();
    held
}

/// Who holds slot `id`, as its lock file says (`None` if it cannot be read).
pub(crate) fn holder(root: &Path, id: &str) -> Option<Holder> {
    let mut text = String::new();
    File::open(slot_dir(root, id).join(LOCK)).ok()?.read_to_string(&mut text).ok()?;
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix('=')).map(str::to_string);
    Some(Holder { pid: field("pid")?.parse().ok()?, host: field("host")?, since: field("since")? })
}

/// This machine's name, for lock files and messages.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_agent::{ManualClock, Timestamp};

    fn clock() -> ManualClock {
        ManualClock::new(Timestamp::from_secs(1_764_115_200))
    }

    #[test]
    fn a_held_slot_is_refused_naming_its_holder_and_free_slots_are_taken_lowest_first() {
        let dir = tempfile::tempdir().unwrap();
        let c = clock();
        let a = claim_free(dir.path(), "", &c).unwrap();
        let b = claim_free(dir.path(), "", &c).unwrap();
        assert_eq!((a.id.as_str(), b.id.as_str()), ("w0", "w1"));
        let err = claim(dir.path(), "w0", false, &c).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("w0") && msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert!(msg.contains("2025-11-26T00:00:00Z"), "{msg}");
        assert!(is_held(dir.path(), "w1"));
        drop(a);
        assert!(!is_held(dir.path(), "w0"));
        assert_eq!(claim_free(dir.path(), "", &c).unwrap().id, "w0", "the freed slot is reused");
        let on_bucket = claim_free(dir.path(), "pod-a-", &c).unwrap();
        assert_eq!(on_bucket.id, "pod-a-w0", "a bucket's numbered slots carry the host's name");
    }

    #[test]
    fn a_dropped_claim_frees_its_slot_while_a_child_process_holds_a_copy_of_its_descriptor() {
        // A process forked while a slot is held copies every descriptor, the lock file's
        // too, and keeps the copy until it execs: here a child keeps it as its stdin.
        let dir = tempfile::tempdir().unwrap();
        let c = clock();
        let lock = claim(dir.path(), "w0", false, &c).unwrap();
        let copy = lock.file.try_clone().unwrap();
        let mut child = std::process::Command::new("sleep").arg("600").stdin(copy).spawn().unwrap();
        drop(lock);
        let by_name = claim(dir.path(), "w0", false, &c).map(|l| l.id.clone());
        let lowest_free = claim_free(dir.path(), "", &c).map(|l| l.id.clone());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(by_name.unwrap(), "w0", "the slot was freed when its claim was dropped");
        assert_eq!(lowest_free.unwrap(), "w0");
    }

    /// Runs `claim` while another thread's probe of `w0` holds its lock, for longer than
    /// any fixed retry budget a claim could give a probe.
    fn during_a_long_probe<T>(root: &Path, claim: impl FnOnce() -> T) -> (bool, T) {
        let (probing, probe_holds_the_lock) = std::sync::mpsc::channel();
        let root = root.to_path_buf();
        let prober = std::thread::spawn(move || {
            probe(&root, "w0", || {
                probing.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(300));
            })
        });
        probe_holds_the_lock.recv().unwrap();
        let claimed = claim();
        (prober.join().unwrap(), claimed)
    }

    #[test]
    fn a_claim_that_meets_a_probe_waits_it_out_and_takes_the_slot() {
        let dir = tempfile::tempdir().unwrap();
        let c = clock();
        drop(claim(dir.path(), "w0", false, &c).unwrap());
        let (held, by_name) = during_a_long_probe(dir.path(), || claim(dir.path(), "w0", false, &c));
        assert!(!held, "the probe found the slot free");
        let by_name = by_name.expect("a claim by name is not refused because of a probe");
        assert_eq!(by_name.id, "w0");
        assert!(is_held(dir.path(), "w0"), "a probe after the claim finds the slot held");
        drop(by_name);
        let (held, lowest_free) = during_a_long_probe(dir.path(), || claim_free(dir.path(), "", &c));
        assert!(!held);
        assert_eq!(lowest_free.unwrap().id, "w0", "a probe does not push a claim to another slot");
    }

    #[test]
    fn ids_are_checked_and_sorted_by_number() {
        assert!(check_id("pod-a_1.x").is_ok());
        for bad in ["", ".hidden", "a/b", "é", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        let mut ids: Vec<String> = ["w10", "pod", "w2", "w0"].map(String::from).to_vec();
        sort_ids(&mut ids);
        assert_eq!(ids, ["w0", "w2", "w10", "pod"]);
    }
}
