//! Power cuts and failing writes or fsyncs, through an in-memory file system double that
//! keeps only what was synced: after every fault the store reopens with every acknowledged
//! write intact, and after a failed fsync it refuses to acknowledge.

use modelwatch_store::*;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Default)]
struct State {
    inodes: Vec<Inode>,
    names: HashMap<PathBuf, usize>,
    durable_names: HashMap<PathBuf, usize>,
    syncs: usize,
    appends: usize,
    fail_sync_at: Option<usize>,
    fail_append_at: Option<usize>,
    /// Operations so far, and the one at which the "process" dies: it and every later
    /// operation fail until the next power cut.
    ops: usize,
    crash_at: Option<usize>,
    rng: u64,
}

/// Files in memory; a power cut keeps synced contents and directory entries made durable by
/// a directory sync, plus a torn prefix of unsynced appends.
#[derive(Default)]
struct FaultyFs(Mutex<State>);

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

    fn inode(&mut self, p: &Path) -> io::Result<&mut Inode> {
        let i = *self
            .names
            .get(p)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, p.display().to_string()))?;
        Ok(&mut self.inodes[i])
    }
}

impl FaultyFs {
    fn new(seed: u64) -> Self {
        FaultyFs(Mutex::new(State { rng: seed | 1, ..Default::default() }))
    }

    fn power_cut(&self) {
        let mut s = self.0.lock().unwrap();
        s.names = s.durable_names.clone();
        for i in 0..s.inodes.len() {
            let tear = s.next() as usize;
            let inode = &mut s.inodes[i];
            let keep = if inode.data.starts_with(&inode.synced) && inode.data.len() > inode.synced.len() {
                // An append that did not reach the disk whole: a random prefix survives.
                inode.synced.len() + tear % (inode.data.len() - inode.synced.len() + 1)
            } else {
                0
            };
            inode.data = if keep > 0 { inode.data[..keep].to_vec() } else { inode.synced.clone() };
            inode.synced = inode.data.clone();
        }
        s.fail_sync_at = None;
        s.fail_append_at = None;
        s.crash_at = None;
    }

    /// The process dies after `n` more file operations.
    fn crash_in(&self, n: usize) {
        let mut s = self.0.lock().unwrap();
        s.crash_at = Some(s.ops + n);
    }
}

impl Fs for FaultyFs {
    fn write_new(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        s.op()?;
        s.inodes.push(Inode { data: data.to_vec(), synced: Vec::new() });
        let i = s.inodes.len() - 1;
        s.names.insert(path.to_path_buf(), i);
        Ok(())
    }

    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        s.op()?;
        s.appends += 1;
        if s.fail_append_at == Some(s.appends) {
            return Err(io::Error::other("injected write failure"));
        }
        s.inode(path)?.data.extend_from_slice(data);
        Ok(())
    }

    fn sync(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        s.op()?;
        s.syncs += 1;
        if s.fail_sync_at == Some(s.syncs) {
            // As on Linux: the dirty pages may be dropped and the error reported once.
            let i = s.inode(path)?;
            i.data = i.synced.clone();
            return Err(io::Error::other("injected fsync failure (EIO)"));
        }
        let i = s.inode(path)?;
        i.synced = i.data.clone();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        s.op()?;
        let i =
            s.names.remove(from).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "rename source"))?;
        s.names.insert(to.to_path_buf(), i);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        s.op()?;
        let in_dir = |p: &Path| p.parent() == Some(dir);
        s.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<(PathBuf, usize)> =
            s.names.iter().filter(|(p, _)| in_dir(p)).map(|(p, i)| (p.clone(), *i)).collect();
        s.durable_names.extend(current);
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut s = self.0.lock().unwrap();
        s.op()?;
        Ok(s.inode(path)?.data.clone())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        s.op()?;
        s.names.remove(path);
        Ok(())
    }

    fn create_dir_all(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        self.0.lock().unwrap().names.contains_key(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.0.lock().unwrap();
        Ok(s.names
            .keys()
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

/// Every acknowledged marker is readable exactly once.
fn check(store: &Store, acked: &[u64]) {
    let rows = store
        .read(&ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", "marker"))
        .unwrap();
    let mut seen: Vec<u64> = rows.scalars.iter().map(|r| r.value as u64).collect();
    seen.sort();
    let mut want = acked.to_vec();
    want.sort();
    for a in &want {
        assert_eq!(
            seen.iter().filter(|s| *s == a).count(),
            1,
            "acknowledged marker {a} must be there exactly once; have {seen:?}"
        );
    }
    assert!(
        seen.iter().all(|s| acked.contains(s) || *s >= *want.last().unwrap_or(&0)),
        "unacknowledged old rows: {seen:?}"
    );
}

#[test]
fn power_cuts_at_random_moments_lose_nothing_acknowledged() {
    let mut crashes_mid_write = 0;
    for seed in 1..=60u64 {
        let fs = Arc::new(FaultyFs::new(seed * 7919));
        let mut acked = Vec::new();
        let mut next = 0;
        for round in 0..5u64 {
            let store = Store::open_with(config(), fs.clone())
                .unwrap_or_else(|e| panic!("seed {seed} round {round}: {e}"));
            check(&store, &acked);
            // The process dies after a random number of file operations: in the middle of
            // a WAL append, a Parquet publication, a manifest swap or a WAL reset.
            fs.crash_in(1 + ((seed * 131 + round * 977) % 150) as usize);
            for _ in 0..40 {
                match store.append(marker(next)) {
                    Ok(_) => acked.push(next),
                    Err(_) => {
                        crashes_mid_write += 1;
                        break;
                    }
                }
                next += 1;
                if next % 9 == 0 && store.maintain(1_764_115_200_000).is_err() {
                    break;
                }
            }
            drop(store);
            fs.power_cut();
        }
        let store = Store::open_with(config(), fs.clone()).unwrap();
        check(&store, &acked);
        assert!(store.verify().is_empty(), "seed {seed}: {:?}", store.verify());
    }
    assert!(crashes_mid_write > 100, "the crashes must hit writes: {crashes_mid_write}");
}

#[test]
fn a_failed_fsync_stops_acknowledgements_and_keeps_what_was_acknowledged() {
    let fs = Arc::new(FaultyFs::new(3));
    let store = Store::open_with(config(), fs.clone()).unwrap();
    let mut acked = Vec::new();
    for n in 0..3 {
        store.append(marker(n)).unwrap();
        acked.push(n);
    }
    let syncs = fs.0.lock().unwrap().syncs;
    fs.0.lock().unwrap().fail_sync_at = Some(syncs + 1);
    let err = store.append(marker(3)).unwrap_err();
    assert!(err.to_string().contains("fsync failed"), "{err}");
    let again = store.append(marker(4)).unwrap_err();
    assert!(again.to_string().contains("stopped"), "no retry of a failed fsync: {again}");
    drop(store);
    fs.power_cut();
    let store = Store::open_with(config(), fs).unwrap();
    check(&store, &acked);
}

#[test]
fn a_failed_write_stops_acknowledgements_and_keeps_what_was_acknowledged() {
    let fs = Arc::new(FaultyFs::new(5));
    let store = Store::open_with(config(), fs.clone()).unwrap();
    let mut acked = Vec::new();
    for n in 0..10 {
        store.append(marker(n)).unwrap();
        acked.push(n);
    }
    let appends = fs.0.lock().unwrap().appends;
    fs.0.lock().unwrap().fail_append_at = Some(appends + 1);
    assert!(store.append(marker(10)).unwrap_err().to_string().contains("append failed"));
    assert!(store.append(marker(11)).is_err());
    drop(store);
    fs.power_cut();
    let store = Store::open_with(config(), fs).unwrap();
    check(&store, &acked);
}
