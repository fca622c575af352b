//! File operations the store's durability rests on, behind a trait so a test double can
//! simulate a power cut (losing or tearing unsynced writes, forgetting directory entries
//! whose directory was not synced) and failed writes or fsyncs.
//!
//! Two rules the store relies on, and every implementation must keep:
//!
//! 1. **An fsync goes through the descriptor that wrote the data.** A file that is appended
//!    to over time (the WAL's active segment) is opened once with [`Fs::open_append`]; its
//!    appends and fsyncs go through that one [`AppendFile`]. On Linux a writeback error is
//!    reported to the descriptors open when it happened: an fsync through a descriptor
//!    opened later can succeed although the data was lost.
//! 2. **A directory entry is durable only once its directory is fsynced.** A file created,
//!    renamed or removed, and a directory created, survives a power cut only after
//!    [`Fs::sync_dir`] of the directory holding it; [`Fs::create_dir_all`] does that for
//!    every directory it creates, and [`publish`] for the file it publishes.

use std::io;
use std::path::{Path, PathBuf};

/// A file open for writing at its end, from [`Fs::create`] or [`Fs::open_append`]: every
/// write and fsync of it goes through this one descriptor.
pub trait AppendFile: Send {
    /// Appends all of `data` (not yet durable).
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes everything written through this descriptor durable (fdatasync: the data and
    /// the file's size). An error means the data may be lost: never retry and assume it
    /// worked.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The file system operations the store uses. Paths are absolute or relative to the process.
pub trait Fs: Send + Sync + 'static {
    /// Creates (or truncates) a file and opens it for appending (its entry is not durable
    /// until its directory is synced).
    fn create(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    /// Makes a file's contents durable (fsync), through a descriptor opened for it. For a
    /// file written by a descriptor that is already closed; a file still being written is
    /// synced through its [`AppendFile`].
    fn sync(&self, path: &Path) -> io::Result<()>;
    /// Renames atomically (not durable until the directory is synced).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable (fsync of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Removes a file (not durable until the directory is synced); a missing file is not
    /// an error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its parents durably: each directory it creates is fsynced
    /// into its parent (the parent is synced after the entry is made). A directory that
    /// already exists is left as it is.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file exists.
    fn exists(&self, path: &Path) -> bool;
    /// Files directly in `dir` (names only), empty if it does not exist.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Creates (or truncates) a file and writes `data` (not yet durable).
    fn write_new(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.create(path)?.write_all(data)
    }
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A real file open for appending.
struct RealAppendFile(std::fs::File);

impl AppendFile for RealAppendFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.0, data)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Fs for RealFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
        Ok(Box::new(RealAppendFile(f)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        Ok(Box::new(RealAppendFile(std::fs::OpenOptions::new().append(true).open(path)?)))
    }

    fn sync(&self, path: &Path) -> io::Result<()> {
        std::fs::OpenOptions::new().read(true).open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        // The missing directories, deepest first; created shallowest first, each synced
        // into its parent before the next is made inside it.
        let mut missing = Vec::new();
        let mut at = dir;
        while !at.as_os_str().is_empty() && !at.is_dir() {
            missing.push(at);
            match at.parent() {
                Some(p) => at = p,
                None => break,
            }
        }
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(d) {
                Ok(()) => {}
                // Another process made it at the same moment; its entry may not be durable
                // yet, so sync the parent all the same.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(e),
            }
            self.sync_dir(&parent_dir(d))?;
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        match std::fs::read_dir(dir) {
            Ok(rd) => {
                Ok(rd.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// Writes `data` to `path` atomically and durably: the directory made durably, a temporary
/// name written and fsynced through one descriptor, a rename over `path`, an fsync of the
/// directory.
pub fn publish(fs: &dyn Fs, path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    fs.create_dir_all(&dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = fs.create(&tmp)?;
    file.write_all(data)?;
    file.sync_data()?;
    drop(file);
    fs.rename(&tmp, path)?;
    fs.sync_dir(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dir_all_makes_every_missing_level_and_leaves_existing_ones() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        RealFs.create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        RealFs.create_dir_all(&deep).unwrap();
        std::fs::write(root.path().join("a/file"), b"x").unwrap();
        assert!(RealFs.create_dir_all(&root.path().join("a/file/d")).is_err());
    }

    #[test]
    fn appends_and_syncs_go_through_one_handle() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("f");
        publish(&RealFs, &p, b"head").unwrap();
        let mut f = RealFs.open_append(&p).unwrap();
        f.write_all(b"-one").unwrap();
        f.sync_data().unwrap();
        f.write_all(b"-two").unwrap();
        assert_eq!(RealFs.read(&p).unwrap(), b"head-one-two");
        assert!(RealFs.open_append(&root.path().join("missing")).is_err(), "open_append creates nothing");
    }
}
