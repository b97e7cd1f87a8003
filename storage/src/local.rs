//! The local-directory store: the output layout on disk, written atomically.
//!
//! Why: local runs (and the fallback when S3 failed) must never leave a half-written `result.json`.
//! Each object is written to a temp file in the destination directory, synced, then renamed over the
//! destination (or hard-linked, which fails when the destination exists, for `if_none_match`).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::Digest as _;
use tokio::time::Instant;

use crate::target::check_key;
use crate::{Body, PutOptions, Store, StoreError, Stored};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A store rooted at a local directory (created on first write).
#[derive(Debug, Clone)]
pub struct LocalStore {
    base: PathBuf,
}

impl LocalStore {
    pub fn new(base: impl Into<PathBuf>) -> LocalStore {
        LocalStore { base: base.into() }
    }

    /// The directory objects are written under.
    pub fn base(&self) -> &Path {
        &self.base
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.base.join(key))
    }
}

/// Runs blocking file work on the blocking pool, bounded by the deadline.
async fn blocking<T: Send + 'static>(
    operation: &'static str,
    location: String,
    deadline: Instant,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let started = Instant::now();
    match tokio::time::timeout_at(deadline, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(StoreError::Io {
            path: PathBuf::from(&location),
            source: std::io::Error::other(join.to_string()),
        }),
        Err(_) => Err(StoreError::Timeout {
            operation,
            location,
            elapsed: started.elapsed(),
            attempts: 1,
        }),
    }
}

#[async_trait::async_trait]
impl Store for LocalStore {
    async fn put(
        &self,
        key: &str,
        body: Body,
        opts: &PutOptions,
        deadline: Instant,
    ) -> Result<Stored, StoreError> {
        let dest = self.path(key)?;
        let key = key.to_owned();
        let if_none_match = opts.if_none_match;
        let location = dest.display().to_string();
        blocking("put", location, deadline, move || {
            let (bytes, sha256) = write_atomic(&dest, body, if_none_match)?;
            Ok(Stored {
                key,
                location: dest.display().to_string(),
                bytes,
                sha256,
                multipart: false,
                attempts: 1,
            })
        })
        .await
    }

    async fn get(&self, key: &str, deadline: Instant) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        let location = path.display().to_string();
        blocking("get", location, deadline, move || {
            match std::fs::read(&path) {
                Ok(v) => Ok(Bytes::from(v)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound {
                    location: path.display().to_string(),
                }),
                Err(source) => Err(StoreError::Io { path, source }),
            }
        })
        .await
    }

    async fn exists(&self, key: &str, deadline: Instant) -> Result<bool, StoreError> {
        let path = self.path(key)?;
        let location = path.display().to_string();
        blocking("exists", location, deadline, move || {
            path.try_exists()
                .map_err(|source| StoreError::Io { path, source })
        })
        .await
    }

    fn location(&self, key: &str) -> String {
        self.base.join(key).display().to_string()
    }
}

/// Removes the temp file unless the write completed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn write_atomic(dest: &Path, body: Body, if_none_match: bool) -> Result<(u64, String), StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let exists = || StoreError::AlreadyExists {
        location: dest.display().to_string(),
    };
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if if_none_match && dest.try_exists().map_err(io(dest))? {
        return Err(exists());
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = std::fs::File::create_new(&tmp).map_err(io(&tmp))?;
    let mut guard = TempGuard(Some(tmp.clone()));

    let mut hasher = sha2::Sha256::new();
    let mut total = 0u64;
    match body {
        Body::Bytes(b) => {
            hasher.update(&b);
            file.write_all(&b).map_err(io(&tmp))?;
            total = b.len() as u64;
        }
        Body::File(src) => {
            let mut input = std::fs::File::open(&src).map_err(io(&src))?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = input.read(&mut buf).map_err(io(&src))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io(&tmp))?;
                total += n as u64;
            }
        }
    }
    file.sync_all().map_err(io(&tmp))?;
    drop(file);

    if if_none_match {
        // link(2) refuses an existing destination: the no-clobber check and the publish are one step.
        match std::fs::hard_link(&tmp, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
            Err(e) => return Err(io(dest)(e)),
        }
    } else {
        std::fs::rename(&tmp, dest).map_err(io(dest))?;
        guard.0 = None;
    }
    drop(guard);
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok((total, hex::encode(hasher.finalize())))
}
