//! Writer slots: every writing process holds an exclusive lock on one slot of the store root,
//! `writers/<id>/`, for its whole life, and writes only there (its WAL, its manifest, its
//! Parquet files). The lock is an `flock` on `writers/<id>/LOCK`, so the operating system
//! releases it when the process dies, however it dies; whoever claims the slot next replays
//! its WAL. Readers take no lock: they list the slots and merge their manifests.

use super::StoreError;
use modelwatch_agent::Clock;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The directory of the writer slots under the store root.
pub(crate) const WRITERS: &str = "writers";
/// The lock file in a slot.
const LOCK: &str = "LOCK";
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

/// How many times a claim retries a lock that looks held (2 ms apart): a probe by `is_held`
/// holds it for microseconds, a live writer for its life.
const PROBE_RETRIES: u32 = 25;

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
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    // Durable: each directory it creates is fsynced into its parent.
    crate::fs::Fs::create_dir_all(&crate::fs::RealFs, &dir).map_err(io(&dir))?;
    let path = dir.join(LOCK);
    // Neither truncated nor rewritten before the lock is ours: the holder's details stay.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    if wait {
        file.lock().map_err(io(&path))?;
    } else {
        // `is_held` (behind `store inspect` and `store compact`) probes a slot by taking its
        // lock for a moment: a claim that meets the probe tries again for a little while
        // before it believes a live process holds the slot.
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < PROBE_RETRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
        }
    }
    let since = crate::manifest::rfc3339_secs(clock.now().as_millis() as i64);
    let me = format!("pid={}\nhost={}\nsince={since}\n", std::process::id(), host_name());
    file.set_len(0).map_err(io(&path))?;
    file.rewind().map_err(io(&path))?;
    file.write_all(me.as_bytes()).map_err(io(&path))?;
    Ok(Some(SlotLock { id: id.to_string(), file }))
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
    let path = slot_dir(root, id).join(LOCK);
    let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else { return false };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
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
