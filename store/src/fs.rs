//! File operations the store's durability rests on, behind a trait so a test double can
//! simulate a power cut (losing or tearing unsynced writes) and failed writes or fsyncs.

use std::io;
use std::path::{Path, PathBuf};

/// The file system operations the store uses. Paths are absolute or relative to the process.
pub trait Fs: Send + Sync + 'static {
    /// Creates (or truncates) a file and writes `data` (not yet durable).
    fn write_new(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Appends to a file (not yet durable).
    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Makes a file's contents durable (fsync).
    fn sync(&self, path: &Path) -> io::Result<()>;
    /// Renames atomically (not durable until the directory is synced).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable (fsync of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file exists.
    fn exists(&self, path: &Path) -> bool;
    /// Files directly in `dir` (names only), empty if it does not exist.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn write_new(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        std::fs::write(path, data)
    }

    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).create(true).open(path)?.write_all(data)
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
        std::fs::create_dir_all(dir)
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

/// Writes `data` to `path` atomically and durably: temporary name, fsync, rename, fsync of
/// the directory.
pub fn publish(fs: &dyn Fs, path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    fs.create_dir_all(&dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    fs.write_new(&tmp, data)?;
    fs.sync(&tmp)?;
    fs.rename(&tmp, path)?;
    fs.sync_dir(&dir)
}
