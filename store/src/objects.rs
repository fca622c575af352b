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

pub(crate) trait Objects: Send + Sync {
    /// Stores `data` under `rel` atomically and durably.
    fn put(&self, rel: &str, data: &[u8]) -> Result<(), StoreError>;
    /// Reads `rel`; `Ok(None)` when it does not exist.
    fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes `rel` (missing is fine).
    fn delete(&self, rel: &str);
    /// Where `rel` is, for messages.
    fn location(&self, rel: &str) -> PathBuf;
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
        if !self.fs.exists(&path) {
            return Ok(None);
        }
        self.fs.read(&path).map(Some).map_err(|source| StoreError::Io { path, source })
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
        let path = self.path(rel);
        let result = self.rt.block_on(async {
            match self.store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        result.map(|b| b.map(|b| b.to_vec())).map_err(|e| self.err(rel, e))
    }

    fn delete(&self, rel: &str) {
        let _ = self.rt.block_on(self.store.delete(&self.path(rel)));
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
