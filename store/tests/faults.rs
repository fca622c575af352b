//! Power cuts and failing writes or fsyncs, through an in-memory file system double that
//! keeps only what a real disk keeps: after every fault the store reopens with every
//! acknowledged write intact, and after a failed fsync it refuses to acknowledge.
//!
//! What the double models (`FaultyFs`):
//!
//! - File data is durable only once fsynced. A power cut keeps the synced bytes and tears
//!   the unsynced ones: nothing, a prefix, a prefix then zeros (the file grew but the blocks
//!   were not written), or a prefix with flipped bits.
//! - A directory entry (a file created, renamed or removed; a directory created) is durable
//!   only once its directory is fsynced; a power cut restores the entries as of the last
//!   fsync of each directory, and what sits in a directory that was not made durable is
//!   gone with it. Writing into a directory that does not exist fails, as it does on disk.
//! - A descriptor is opened on an inode, not a name. A writeback error is reported by the
//!   next fsync of a descriptor that was open when it happened; a descriptor opened later
//!   (an fsync by path) does not see it (the pessimistic reading of Linux's rules).
//! - The process can die after any number of operations: that one and every later one
//!   fail until the power cut that follows.

use modelwatch_store::*;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
    /// Writeback errors so far: a descriptor reports those after the count it last saw.
    errors: u64,
}

#[derive(Default)]
struct State {
    inodes: Vec<Inode>,
    names: HashMap<PathBuf, usize>,
    durable_names: HashMap<PathBuf, usize>,
    dirs: HashSet<PathBuf>,
    durable_dirs: HashSet<PathBuf>,
    syncs: usize,
    writes: usize,
    fail_sync_at: Option<usize>,
    fail_write_at: Option<usize>,
    /// At this fsync, the inode's dirty pages are first lost to a writeback error (as if
    /// the kernel had failed to write them back in the background).
    writeback_error_at: Option<usize>,
    /// Operations so far, and the one at which the "process" dies: it and every later
    /// operation fail until the next power cut.
    ops: usize,
    crash_at: Option<usize>,
    /// Power cuts so far: a descriptor from before one is dead.
    generation: u64,
    /// How power cuts tore unsynced data: nothing kept, a prefix, zeros, flipped bits.
    tears: [usize; 4],
    rng: u64,
}

/// Files in memory; see the module doc for what a power cut keeps.
#[derive(Clone, Default)]
struct FaultyFs(Arc<Mutex<State>>);

fn not_found(p: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, p.display().to_string())
}

impl State {
    fn op(&mut self) -> io::Result<()> {
        self.ops += 1;
        match self.crash_at {
            Some(at) if self.ops >= at => Err(io::Error::other("crashed")),
            _ => Ok(()),
        }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn is_dir(&self, d: &Path) -> bool {
        d == Path::new("/") || self.dirs.contains(d)
    }

    fn parent_exists(&self, p: &Path) -> io::Result<()> {
        match p.parent() {
            Some(d) if self.is_dir(d) => Ok(()),
            _ => Err(not_found(p)),
        }
    }

    fn inode_of(&self, p: &Path) -> io::Result<usize> {
        self.names.get(p).copied().ok_or_else(|| not_found(p))
    }

    /// An fsync of `inode` by a descriptor that has seen `seen` errors, or by one opened
    /// for this fsync (`fresh`), which sees no error from before.
    fn fsync(&mut self, inode: usize, seen: &mut u64, fresh: bool) -> io::Result<()> {
        self.op()?;
        self.syncs += 1;
        let n = self.syncs;
        if self.writeback_error_at == Some(n) {
            let i = &mut self.inodes[inode];
            i.data = i.synced.clone();
            i.errors += 1;
        }
        let i = &mut self.inodes[inode];
        if fresh {
            *seen = i.errors;
        }
        if self.fail_sync_at == Some(n) {
            // As on Linux: the dirty pages may be dropped and the error reported once.
            i.data = i.synced.clone();
            i.errors += 1;
        }
        if i.errors != *seen {
            *seen = i.errors;
            return Err(io::Error::other("injected fsync failure (EIO)"));
        }
        i.synced = i.data.clone();
        Ok(())
    }

    /// Tears an inode's unsynced bytes at a power cut.
    fn tear(&mut self, inode: usize) {
        let (r1, r2, r3) = (self.next(), self.next(), self.next());
        let i = &self.inodes[inode];
        let synced = i.synced.len();
        let mut data = i.synced.clone();
        if i.data.len() > synced && i.data.starts_with(&i.synced) {
            let unsynced = &i.data[synced..];
            let kept = (r1 as usize) % (unsynced.len() + 1);
            let kind = (r2 % 4) as usize;
            match kind {
                0 => {}
                1 => data.extend_from_slice(&unsynced[..kept]),
                2 => {
                    data.extend_from_slice(&unsynced[..kept]);
                    data.resize(synced + kept + (r3 as usize) % (unsynced.len() - kept + 1), 0);
                }
                _ => {
                    let kept = kept.max(1);
                    data.extend_from_slice(&unsynced[..kept]);
                    for k in 0..1 + r3 % 3 {
                        let at = synced + (r3 >> (8 + 16 * k)) as usize % kept;
                        data[at] ^= 1 << ((r3 >> (4 + 3 * k)) & 7);
                    }
                }
            }
            self.tears[kind] += 1;
        }
        let i = &mut self.inodes[inode];
        i.data = data;
        i.synced = i.data.clone();
    }
}

/// A descriptor of the double: writes and fsyncs one inode.
struct FaultyFile {
    fs: Arc<Mutex<State>>,
    inode: usize,
    generation: u64,
    seen: u64,
}

impl FaultyFile {
    fn state(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        let s = self.fs.lock().unwrap();
        if s.generation != self.generation {
            return Err(io::Error::other("descriptor from before a power cut"));
        }
        Ok(s)
    }
}

impl AppendFile for FaultyFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.state()?;
        s.op()?;
        s.writes += 1;
        if s.fail_write_at == Some(s.writes) {
            return Err(io::Error::other("injected write failure"));
        }
        s.inodes[self.inode].data.extend_from_slice(data);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let inode = self.inode;
        let mut seen = self.seen;
        let r = self.state()?.fsync(inode, &mut seen, false);
        self.seen = seen;
        r
    }
}

impl FaultyFs {
    fn new(seed: u64) -> Self {
        FaultyFs(Arc::new(Mutex::new(State { rng: seed | 1, ..Default::default() })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn power_cut(&self) {
        let mut s = self.state();
        s.generation += 1;
        // A directory survives if its entry and every ancestor's are durable.
        let dirs: HashSet<PathBuf> = s
            .durable_dirs
            .iter()
            .filter(|d| d.ancestors().skip(1).all(|a| a == Path::new("/") || s.durable_dirs.contains(a)))
            .cloned()
            .collect();
        s.dirs = dirs.clone();
        s.durable_dirs = dirs;
        let names: HashMap<PathBuf, usize> = s
            .durable_names
            .iter()
            .filter(|(p, _)| p.parent().is_some_and(|d| s.is_dir(d)))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        s.names = names.clone();
        s.durable_names = names;
        for i in 0..s.inodes.len() {
            s.tear(i);
        }
        s.fail_sync_at = None;
        s.fail_write_at = None;
        s.writeback_error_at = None;
        s.crash_at = None;
    }

    /// The process dies after `n` more file operations.
    fn crash_in(&self, n: usize) {
        let mut s = self.state();
        s.crash_at = Some(s.ops + n);
    }

    /// Appends bytes to a file and syncs them: damage that is on the disk.
    fn append_durably(&self, path: &Path, data: &[u8]) {
        let mut s = self.state();
        let i = s.inode_of(path).unwrap();
        let inode = &mut s.inodes[i];
        inode.data.extend_from_slice(data);
        inode.synced = inode.data.clone();
    }

    fn durable_bytes(&self, path: &Path) -> Vec<u8> {
        let s = self.state();
        s.inodes[s.durable_names[path]].synced.clone()
    }

    fn open_file(&self, path: &Path, truncate: bool) -> io::Result<Box<dyn AppendFile>> {
        let mut s = self.state();
        s.op()?;
        s.parent_exists(path)?;
        let inode = if truncate {
            s.inodes.push(Inode::default());
            let i = s.inodes.len() - 1;
            s.names.insert(path.to_path_buf(), i);
            i
        } else {
            s.inode_of(path)?
        };
        let (generation, seen) = (s.generation, s.inodes[inode].errors);
        Ok(Box::new(FaultyFile { fs: self.0.clone(), inode, generation, seen }))
    }
}

impl Fs for FaultyFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        self.open_file(path, true)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        self.open_file(path, false)
    }

    fn sync(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let inode = s.inode_of(path)?;
        // A descriptor opened now reports no writeback error from before its open.
        s.fsync(inode, &mut 0, true)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.op()?;
        s.parent_exists(to)?;
        let i = s.names.remove(from).ok_or_else(|| not_found(from))?;
        s.names.insert(to.to_path_buf(), i);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.op()?;
        if !s.is_dir(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &Path| p.parent() == Some(dir);
        s.durable_names.retain(|p, _| !in_dir(p));
        let files: Vec<(PathBuf, usize)> =
            s.names.iter().filter(|(p, _)| in_dir(p)).map(|(p, i)| (p.clone(), *i)).collect();
        s.durable_names.extend(files);
        s.durable_dirs.retain(|d| !in_dir(d));
        let dirs: Vec<PathBuf> = s.dirs.iter().filter(|d| in_dir(d)).cloned().collect();
        s.durable_dirs.extend(dirs);
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut s = self.state();
        s.op()?;
        let i = s.inode_of(path)?;
        Ok(s.inodes[i].data.clone())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.op()?;
        s.names.remove(path);
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let missing: Vec<PathBuf> = {
            let s = self.state();
            let mut m: Vec<PathBuf> =
                dir.ancestors().filter(|a| !s.is_dir(a)).map(Path::to_path_buf).collect();
            m.reverse();
            m
        };
        for d in missing {
            {
                let mut s = self.state();
                s.op()?;
                if s.names.contains_key(&d) {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, d.display().to_string()));
                }
                s.parent_exists(&d)?;
                s.dirs.insert(d.clone());
            }
            // Durable in its parent, as the trait requires.
            self.sync_dir(d.parent().unwrap())?;
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.state();
        s.names.contains_key(path) || s.is_dir(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.state();
        let names = s.names.keys().chain(s.dirs.iter());
        Ok(names
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect())
    }
}

fn marker(n: u64) -> Rows {
    let series = SeriesKey {
        model: "m".into(),
        version: "1".into(),
        variant: "control".into(),
        instance: "i".into(),
        segment: "".into(),
        metric: "marker".into(),
        feature: "".into(),
        tags: format!("n={n}").into(),
    };
    let t = 1_764_115_200_000 + n as i64 * 10_000;
    Rows {
        scalars: vec![ScalarRow {
            start_ms: t,
            end_ms: t + 10_000,
            resolution: Resolution::Raw,
            series,
            kind: ScalarKind::Counter,
            value: n as f64,
        }],
        ..Default::default()
    }
}

fn config() -> StoreConfig {
    StoreConfig { buffer_rows: 7, background: false, ..StoreConfig::new("/data") }
}

/// Every acknowledged marker is readable exactly once; any other is one whose append
/// failed (`unsure`: it may or may not have reached the disk), at most once.
fn check_with(store: &Store, acked: &[u64], unsure: &[u64]) {
    let rows = store
        .read(&ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", "marker"))
        .unwrap();
    let mut seen: Vec<u64> = rows.scalars.iter().map(|r| r.value as u64).collect();
    seen.sort();
    for a in acked {
        assert_eq!(
            seen.iter().filter(|s| *s == a).count(),
            1,
            "acknowledged marker {a} must be there exactly once; have {seen:?}"
        );
    }
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(distinct, seen, "no marker twice");
    assert!(seen.iter().all(|s| acked.contains(s) || unsure.contains(s)), "rows never appended: {seen:?}");
}

fn check(store: &Store, acked: &[u64]) {
    check_with(store, acked, &[])
}

fn newest_segment(fs: &FaultyFs) -> PathBuf {
    let mut names = fs.list(Path::new("/data/writers/w0/wal")).unwrap();
    names.retain(|n| n.ends_with(".wal"));
    names.sort();
    Path::new("/data/writers/w0/wal").join(names.last().unwrap())
}

#[test]
fn power_cuts_at_random_moments_lose_nothing_acknowledged() {
    let mut crashes_mid_write = 0;
    let mut torn_tails = 0;
    let mut fs_tears = [0; 4];
    for seed in 1..=60u64 {
        let fs = FaultyFs::new(seed * 7919);
        let mut acked = Vec::new();
        let mut unsure = Vec::new();
        let mut next = 0;
        for round in 0..5u64 {
            let store = Store::open_with(config(), Arc::new(fs.clone()))
                .unwrap_or_else(|e| panic!("seed {seed} round {round}: {e}"));
            check_with(&store, &acked, &unsure);
            torn_tails += usize::from(store.recovery().damage.is_some());
            // The process dies after a random number of file operations: in the middle of
            // a WAL append, a Parquet publication, a manifest swap or a WAL reset.
            fs.crash_in(1 + ((seed * 131 + round * 977) % 150) as usize);
            for _ in 0..40 {
                let n = next;
                // A marker is appended once: a failed append may still have reached the
                // disk whole, and is then replayed.
                next += 1;
                match store.append(marker(n)) {
                    Ok(_) => acked.push(n),
                    Err(_) => {
                        unsure.push(n);
                        crashes_mid_write += 1;
                        break;
                    }
                }
                if next % 9 == 0 && store.maintain(1_764_115_200_000).is_err() {
                    break;
                }
            }
            drop(store);
            fs.power_cut();
        }
        let store = Store::open_with(config(), Arc::new(fs.clone())).unwrap();
        check_with(&store, &acked, &unsure);
        assert!(store.verify().is_empty(), "seed {seed}: {:?}", store.verify());
        let tears = fs.state().tears;
        for (all, n) in fs_tears.iter_mut().zip(tears) {
            *all += n;
        }
    }
    assert!(crashes_mid_write > 100, "the crashes must hit writes: {crashes_mid_write}");
    assert!(torn_tails > 10, "the crashes must tear WAL appends: {torn_tails}");
    assert!(fs_tears.iter().all(|&n| n > 5), "every kind of tear must happen: {fs_tears:?}");
}

#[test]
fn a_crash_during_recovery_loses_nothing_acknowledged() {
    // A WAL with acknowledged records and a torn tail; `open` cuts the tail by rewriting
    // the segment. The process dies at each step of that, then the power goes.
    let setup = || {
        let fs = FaultyFs::new(11);
        let store = Store::open_with(config(), Arc::new(fs.clone())).unwrap();
        for n in 0..5 {
            store.append(marker(n)).unwrap();
        }
        drop(store);
        fs.append_durably(&newest_segment(&fs), &[0x40, 0, 0, 0, 9, 9, 9, 9, 1, 2, 3]);
        (fs, (0..5).collect::<Vec<u64>>())
    };
    let (fs, _) = setup();
    let before = fs.state().ops;
    let store = Store::open_with(config(), Arc::new(fs.clone())).unwrap();
    assert!(store.recovery().damage.is_some(), "the tail is cut");
    let steps = fs.state().ops - before;
    let mut interrupted = 0;
    for k in 1..=steps + 1 {
        let (fs, acked) = setup();
        let segment = newest_segment(&fs);
        fs.crash_in(k);
        if Store::open_with(config(), Arc::new(fs.clone())).is_err() {
            interrupted += 1;
        }
        fs.power_cut();
        // Whatever step it died at, the segment holds the acknowledged records, with or
        // without the tail, and the next open recovers them.
        let store = Store::open_with(config(), Arc::new(fs.clone()))
            .unwrap_or_else(|e| panic!("crash after {k} of {steps} steps: {e}"));
        check(&store, &acked);
        assert_eq!(store.recovery().replayed, 5, "crash after {k} of {steps} steps");
        drop(store);
        let store = Store::open_with(config(), Arc::new(fs.clone())).unwrap();
        assert!(store.recovery().damage.is_none(), "the tail was cut once and for all");
        assert!(fs.durable_bytes(&segment).len() > 8);
    }
    assert_eq!(interrupted, steps, "every step but the last run is interrupted");
}

#[test]
fn a_failed_fsync_stops_acknowledgements_and_keeps_what_was_acknowledged() {
    let fs = FaultyFs::new(3);
    let store = Store::open_with(config(), Arc::new(fs.clone())).unwrap();
    let mut acked = Vec::new();
    for n in 0..3 {
        store.append(marker(n)).unwrap();
        acked.push(n);
    }
    let syncs = fs.state().syncs;
    fs.state().fail_sync_at = Some(syncs + 1);
    let err = store.append(marker(3)).unwrap_err();
    assert!(err.to_string().contains("fsync failed"), "{err}");
    let again = store.append(marker(4)).unwrap_err();
    assert!(again.to_string().contains("stopped"), "no retry of a failed fsync: {again}");
    drop(store);
    fs.power_cut();
    let store = Store::open_with(config(), Arc::new(fs)).unwrap();
    check(&store, &acked);
}

#[test]
fn a_writeback_error_before_the_fsync_is_reported_by_the_wals_descriptor() {
    // The kernel fails to write an append's pages back before the WAL fsyncs them: the
    // fsync through the descriptor that wrote them reports it (one through a descriptor
    // opened afterwards would not, and the append would be acknowledged and lost).
    let fs = FaultyFs::new(4);
    let store = Store::open_with(config(), Arc::new(fs.clone())).unwrap();
    let acked: Vec<u64> = (0..3).collect();
    for &n in &acked {
        store.append(marker(n)).unwrap();
    }
    let syncs = fs.state().syncs;
    fs.state().writeback_error_at = Some(syncs + 1);
    let err = store.append(marker(3)).unwrap_err();
    assert!(err.to_string().contains("fsync failed"), "{err}");
    assert!(store.append(marker(4)).is_err());
    drop(store);
    fs.power_cut();
    let store = Store::open_with(config(), Arc::new(fs)).unwrap();
    check(&store, &acked);
}

#[test]
fn a_failed_write_stops_acknowledgements_and_keeps_what_was_acknowledged() {
    let fs = FaultyFs::new(5);
    let store = Store::open_with(config(), Arc::new(fs.clone())).unwrap();
    let mut acked = Vec::new();
    for n in 0..10 {
        store.append(marker(n)).unwrap();
        acked.push(n);
    }
    let writes = fs.state().writes;
    fs.state().fail_write_at = Some(writes + 1);
    assert!(store.append(marker(10)).unwrap_err().to_string().contains("append failed"));
    assert!(store.append(marker(11)).is_err());
    drop(store);
    fs.power_cut();
    let store = Store::open_with(config(), Arc::new(fs)).unwrap();
    check(&store, &acked);
}

#[test]
fn directories_the_store_creates_survive_a_power_cut() {
    let fs = FaultyFs::new(6);
    let store = Store::open_with(config(), Arc::new(fs.clone())).unwrap();
    store.append(marker(0)).unwrap();
    // Published into partition directories made on the way.
    for n in 1..8 {
        store.append(marker(n)).unwrap();
    }
    drop(store);
    fs.power_cut();
    let store = Store::open_with(config(), Arc::new(fs.clone())).unwrap();
    check(&store, &(0..8).collect::<Vec<_>>());
    assert!(!store.manifest().files.is_empty(), "the first 7 were published");
    assert!(store.verify().is_empty(), "{:?}", store.verify());
}

#[test]
fn the_double_forgets_unsynced_entries_and_directories() {
    let fs = FaultyFs::new(7);
    fs.create_dir_all(Path::new("/a/b")).unwrap();
    publish(&fs, Path::new("/a/b/kept"), b"k").unwrap();
    // A directory made without the fsync of its parent.
    fs.state().dirs.insert(PathBuf::from("/a/b/unsynced"));
    fs.write_new(Path::new("/a/b/lost"), b"l").unwrap();
    fs.write_new(Path::new("/a/b/unsynced/f"), b"f").unwrap();
    assert!(fs.write_new(Path::new("/nowhere/f"), b"f").is_err(), "no directory, no file");
    fs.rename(Path::new("/a/b/kept"), Path::new("/a/b/renamed")).unwrap();
    fs.power_cut();
    assert!(fs.exists(Path::new("/a/b/kept")), "the rename was not synced");
    assert!(!fs.exists(Path::new("/a/b/renamed")) && !fs.exists(Path::new("/a/b/lost")));
    assert!(!fs.exists(Path::new("/a/b/unsynced")) && !fs.exists(Path::new("/a/b/unsynced/f")));
    assert_eq!(fs.read(Path::new("/a/b/kept")).unwrap(), b"k");
}

#[test]
fn interval_durability_syncs_the_sealed_segment_before_publishing() {
    // Group commit: the appends are not synced when acknowledged. Publication seals the
    // segment and syncs it; here the Parquet write then fails, so the rows are only in
    // that segment when the power goes.
    let fs = FaultyFs::new(8);
    let cfg = StoreConfig {
        durability: Durability::Interval(std::time::Duration::from_secs(3600)),
        buffer_rows: 1_000,
        ..config()
    };
    let store = Store::open_with(cfg.clone(), Arc::new(fs.clone())).unwrap();
    let acked: Vec<u64> = (0..5).collect();
    for &n in &acked {
        store.append(marker(n)).unwrap();
    }
    // The next segment's header is the first write of the publication, the Parquet file
    // the second.
    let writes = fs.state().writes;
    fs.state().fail_write_at = Some(writes + 2);
    assert!(store.flush().is_err());
    assert_eq!(segment_count(&fs), 2, "the publication sealed the segment");
    drop(store);
    fs.power_cut();
    let store = Store::open_with(cfg, Arc::new(fs)).unwrap();
    check(&store, &acked);
    assert_eq!(store.recovery().replayed, 5);
}

fn segment_count(fs: &FaultyFs) -> usize {
    fs.list(Path::new("/data/writers/w0/wal")).unwrap().iter().filter(|n| n.ends_with(".wal")).count()
}

#[test]
fn interval_durability_syncs_within_the_interval_without_another_append() {
    let fs = FaultyFs::new(21);
    let cfg = StoreConfig {
        durability: Durability::Interval(std::time::Duration::from_millis(50)),
        background: true,
        maintenance_every: None,
        buffer_rows: 1_000,
        publish_after: std::time::Duration::from_secs(3600),
        ..config()
    };
    let store = Store::open_with(cfg.clone(), Arc::new(fs.clone())).unwrap();
    store.append(marker(1)).unwrap();
    // No other append comes to sync it: the background thread's timer must.
    std::thread::sleep(std::time::Duration::from_millis(400));
    fs.power_cut();
    drop(store);
    let store = Store::open_with(StoreConfig { background: false, ..cfg }, Arc::new(fs)).unwrap();
    check(&store, &[1]);
}
