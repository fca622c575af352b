//! Where published files and the manifest live: a local directory (the embedded default,
//! through [`Fs`] so fault tests see every write) or an S3-compatible bucket through the
//! `object_store` crate. The WAL always stays on local disk, where fsync means something.

use crate::fs::{Fs, publish};
use crate::store::StoreError;
use object_store::ObjectStoreExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An S3-compatible bucket for the store's Parquet files and manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectStoreConfig {
    /// `s3://bucket/prefix`.
    pub url: String,
    /// `object_store` S3 options, e.g. `("endpoint", "http://127.0.0.1:9000")`,
    /// `("allow_http", "true")`, `("region", "us-east-1")`, `("access_key_id", ...)`,
    /// `("secret_access_key", ...)`. Unset options come from the standard `AWS_*`
    /// environment variables.
    pub options: Vec<(String, String)>,
}

/// An object's bytes and its version (a bucket's ETag).
pub(crate) type Versioned = (Vec<u8>, Option<String>);

pub(crate) trait Objects: Send + Sync {
    /// Stores `data` under `rel` atomically and durably.
    fn put(&self, rel: &str, data: &[u8]) -> Result<(), StoreError>;
    /// Reads `rel`; `Ok(None)` when it does not exist.
    fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes `rel` (missing is fine).
    fn delete(&self, rel: &str);
    /// Where `rel` is, for messages.
    fn location(&self, rel: &str) -> PathBuf;
    /// Reads `rel` with its version (a bucket's ETag; `None` locally, where the slot's lock
    /// alone keeps a second writer out).
    fn get_versioned(&self, rel: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.get(rel)?.map(|b| (b, None)))
    }
    /// Replaces `rel` only if it is still at `version` (`None`: only if it does not exist
    /// yet), returning the new version; [`StoreError::Conflict`] when another process wrote
    /// it since. Locally this is a plain `put`: the slot's lock already excludes others.
    fn put_versioned(
        &self,
        rel: &str,
        data: &[u8],
        version: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let _ = version;
        self.put(rel, data).map(|()| None)
    }
    /// Moves `from` to `to` (replacing it). Locally an atomic rename made durable; in a
    /// bucket a copy and a delete.
    fn rename(&self, from: &str, to: &str) -> Result<(), StoreError>;
    /// The writer slots that have objects here (`writers/<id>/`).
    fn list_slots(&self) -> Result<Vec<String>, StoreError>;
    /// Every data or temporary file under `prefix` (a directory, relative), as relative
    /// paths with their modification time in ms where the objects keep one (a bucket).
    fn list_files(&self, prefix: &str) -> Result<Vec<(String, Option<i64>)>, StoreError>;
    /// The names of the directories directly under `prefix` (a bucket's common prefixes),
    /// sorted: the registry's models.
    fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
}

pub(crate) struct LocalObjects {
    pub fs: Arc<dyn Fs>,
    pub root: PathBuf,
}

impl Objects for LocalObjects {
    fn put(&self, rel: &str, data: &[u8]) -> Result<(), StoreError> {
        let path = self.root.join(rel);
        publish(&*self.fs, &path, data).map_err(|source| StoreError::Io { path, source })
    }

    fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.root.join(rel);
        // Only "not found" means absent: any other failure is an error, never an empty
        // manifest (a writer would then reuse file IDs and overwrite files).
        match self.fs.read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (from, to) = (self.root.join(from), self.root.join(to));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let dir = to.parent().unwrap_or(&self.root);
        self.fs.create_dir_all(dir).map_err(io(dir))?;
        self.fs.rename(&from, &to).map_err(io(&from))?;
        self.fs.sync_dir(dir).map_err(io(dir))?;
        let old = from.parent().unwrap_or(&self.root);
        self.fs.sync_dir(old).map_err(io(old))
    }

    fn list_slots(&self) -> Result<Vec<String>, StoreError> {
        // Local slots are the directories under `writers/`, which the caller lists itself.
        Ok(Vec::new())
    }

    fn list_files(&self, prefix: &str) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let mut out = Vec::new();
        let mut dirs = vec![prefix.trim_end_matches('/').to_string()];
        while let Some(rel) = dirs.pop() {
            let dir = self.root.join(&rel);
            let names = self.fs.list(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
            for name in names {
                let child = format!("{rel}/{name}");
                // Data lives in `<table>/date=…/resolution=…/`; the slot's own state (its
                // lock, WAL and manifest) is not walked.
                if name.ends_with(".parquet") || name.ends_with(".tmp") {
                    out.push((child, None));
                } else if name.contains('=') || crate::table::Table::ALL.iter().any(|t| t.as_str() == name) {
                    dirs.push(child);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join(prefix);
        let names = self.fs.list(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        let mut out: Vec<String> = names.into_iter().filter(|n| dir.join(n).is_dir()).collect();
        out.sort();
        Ok(out)
    }

    fn delete(&self, rel: &str) {
        let _ = self.fs.remove(&self.root.join(rel));
    }

    fn location(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

pub(crate) struct S3Objects {
    store: Arc<dyn object_store::ObjectStore>,
    prefix: String,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl S3Objects {
    pub fn new(config: &ObjectStoreConfig) -> Result<S3Objects, StoreError> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        // HTTPS through rustls with the ring provider (no C toolchain for aws-lc needed);
        // installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bad = |problem: String| StoreError::Corrupt { path: PathBuf::from(&config.url), problem };
        let mut b = AmazonS3Builder::from_env().with_url(&config.url);
        for (k, v) in &config.options {
            let key: AmazonS3ConfigKey = k.parse().map_err(|e| bad(format!("option {k:?}: {e}")))?;
            b = b.with_config(key, v);
        }
        let store = b.build().map_err(|e| bad(format!("cannot use this bucket: {e}")))?;
        let prefix = config
            .url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/').map(|(_, p)| p.trim_matches('/').to_string()))
            .unwrap_or_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io { path: PathBuf::from(&config.url), source })?;
        Ok(S3Objects {
            store: Arc::new(store),
            prefix,
            url: config.url.trim_end_matches('/').to_string(),
            rt,
        })
    }

    fn path(&self, rel: &str) -> object_store::path::Path {
        if self.prefix.is_empty() {
            object_store::path::Path::from(rel)
        } else {
            object_store::path::Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn err(&self, rel: &str, e: object_store::Error) -> StoreError {
        StoreError::Io { path: self.location(rel), source: std::io::Error::other(e.to_string()) }
    }
}

impl Objects for S3Objects {
    fn put(&self, rel: &str, data: &[u8]) -> Result<(), StoreError> {
        // A PUT is atomic on S3: readers see the old object or the whole new one.
        let payload = object_store::PutPayload::from(data.to_vec());
        self.rt.block_on(self.store.put(&self.path(rel), payload)).map(|_| ()).map_err(|e| self.err(rel, e))
    }

    fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_versioned(rel)?.map(|(bytes, _)| bytes))
    }

    fn delete(&self, rel: &str) {
        let _ = self.rt.block_on(self.store.delete(&self.path(rel)));
    }

    fn get_versioned(&self, rel: &str) -> Result<Option<Versioned>, StoreError> {
        let path = self.path(rel);
        let result = self.rt.block_on(async {
            match self.store.get(&path).await {
                Ok(r) => {
                    let etag = r.meta.e_tag.clone();
                    r.bytes().await.map(|b| Some((b.to_vec(), etag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        result.map_err(|e| self.err(rel, e))
    }

    fn put_versioned(
        &self,
        rel: &str,
        data: &[u8],
        version: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        use object_store::{PutMode, PutOptions, UpdateVersion};
        let mode = match version {
            None => PutMode::Create,
            Some(v) => PutMode::Update(UpdateVersion { e_tag: Some(v.to_string()), version: None }),
        };
        let payload = object_store::PutPayload::from(data.to_vec());
        let opts = PutOptions { mode, ..Default::default() };
        match self.rt.block_on(self.store.put_opts(&self.path(rel), payload, opts)) {
            Ok(r) => Ok(r.e_tag),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                Err(StoreError::Conflict { path: self.location(rel) })
            }
            Err(e) => Err(self.err(rel, e)),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.rt.block_on(self.store.rename(&self.path(from), &self.path(to))).map_err(|e| self.err(from, e))
    }

    fn list_slots(&self) -> Result<Vec<String>, StoreError> {
        let prefix = self.path(crate::store::WRITERS_DIR);
        let listed = self.rt.block_on(self.store.list_with_delimiter(Some(&prefix)));
        let listed = listed.map_err(|e| self.err(crate::store::WRITERS_DIR, e))?;
        Ok(listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }

    fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let path = self.path(prefix.trim_end_matches('/'));
        let listed = self.rt.block_on(self.store.list_with_delimiter(Some(&path)));
        let listed = listed.map_err(|e| self.err(prefix, e))?;
        let mut out: Vec<String> =
            listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
        out.sort();
        Ok(out)
    }

    fn list_files(&self, prefix: &str) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        // Level by level (`list_with_delimiter`), which needs no stream handling.
        let skip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        let mut out = Vec::new();
        let mut dirs = vec![self.path(prefix.trim_end_matches('/'))];
        while let Some(dir) = dirs.pop() {
            let listed = self
                .rt
                .block_on(self.store.list_with_delimiter(Some(&dir)))
                .map_err(|e| self.err(prefix, e))?;
            dirs.extend(listed.common_prefixes);
            out.extend(
                listed
                    .objects
                    .into_iter()
                    .map(|m| (m.location.to_string(), m.last_modified.timestamp_millis()))
                    .filter(|(p, _)| p.ends_with(".parquet") || p.ends_with(".tmp"))
                    .map(|(p, t)| (p.get(skip..).unwrap_or_default().to_string(), Some(t))),
            );
        }
        out.sort();
        Ok(out)
    }

    fn location(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("{}/{rel}", self.url))
    }
}

/// The objects of a store: local unless a bucket is configured.
pub(crate) fn objects_for(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    bucket: Option<&ObjectStoreConfig>,
) -> Result<Box<dyn Objects>, StoreError> {
    Ok(match bucket {
        None => Box::new(LocalObjects { fs: fs.clone(), root: dir.to_path_buf() }),
        Some(c) => Box::new(S3Objects::new(c)?),
    })
}
