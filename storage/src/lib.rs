//! Artifact storage behind one narrow trait: S3, a local directory, and a fault-injecting wrapper.
//!
//! Why: genrun's output goes to S3 in ECS and to a directory locally, and job documents arrive from either.
//! The pipeline codes against [`Store`] (our own types; no AWS type crosses this interface), so the same
//! contract tests run over every implementation and tests can inject faults without a network.
//!
//! - [`LocalStore`]: atomic writes (temp file + rename in the same directory), `if_none_match` honoured.
//! - [`S3Store`]: aws-sdk-s3 with a SHA-256 computed by genrun on every upload (a plain signed request, not
//!   aws-chunked), `If-None-Match: *`, parallel multipart above a threshold with per-part retries and abort
//!   on failure, and our own retry loop bounded by the caller's deadline (see [`S3Store`] for why the SDK's
//!   own retries are off).
//! - [`FaultyStore`]: wraps any store and fails, delays or corrupts chosen calls.

mod error;
mod faulty;
mod local;
mod retry;
mod s3;
mod target;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sha2::Digest as _;
use tokio::time::Instant;

pub use error::{ErrorClass, StoreError};
pub use faulty::{Fault, FaultOp, FaultyStore};
pub use local::LocalStore;
pub use s3::S3Store;
pub use target::Target;

/// Name of the record written by [`preflight`] and updated at the end of a run.
pub const STATUS_KEY: &str = "status.json";
/// Name of the run's final record; its presence means the run finished.
pub const RESULT_KEY: &str = "result.json";

/// Settings of the S3 client. Credentials and region come from the AWS default chain (environment,
/// profile, ECS container credentials) unless given here.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// `--s3-endpoint`: an S3-compatible server instead of AWS.
    pub endpoint: Option<String>,
    /// `--s3-path-style`: `http://host/bucket/key` instead of `http://bucket.host/key`.
    pub path_style: bool,
    /// Region; `None` = the default chain, then `us-east-1`.
    pub region: Option<String>,
    /// Fixed credentials; `None` = the AWS default chain (what production uses).
    pub credentials: Option<StaticCredentials>,
    /// Objects larger than this go up as parallel multipart parts (default 16 MiB).
    pub multipart_threshold: u64,
    /// Size of a multipart part (default 8 MiB; at least 5 MiB; grown to stay within 10,000 parts).
    pub part_size: u64,
    /// Parts in flight at once (default 8).
    pub concurrency: usize,
    /// Limit on establishing a TCP (+TLS) connection (default 3 s).
    pub connect_timeout: Duration,
    /// Limit from sending a request to its response headers, which includes sending the body: keep it
    /// above the time one part takes to upload (default 30 s).
    pub read_timeout: Duration,
    /// Limit on one attempt of one request, body included (default 120 s). The caller's deadline cuts it
    /// shorter.
    pub operation_timeout: Duration,
    /// Attempts per request, first one included (default 6).
    pub max_attempts: u32,
    /// First backoff before a retry (default 100 ms); doubles per retry, full jitter in [d/2, d].
    pub initial_backoff: Duration,
    /// Backoff cap (default 5 s).
    pub max_backoff: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            path_style: false,
            region: None,
            credentials: None,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            concurrency: 8,
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(120),
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Explicit credentials (tests, or a deployment that passes keys directly). `Debug` hides the secret.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// How an object is written.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// `Content-Type` (`application/zstd`, `application/gzip`, `application/json`, ...).
    pub content_type: String,
    /// User metadata (`x-amz-meta-*` on S3; ignored by the local store), e.g. the request id and the
    /// archive's sha256.
    pub metadata: BTreeMap<String, String>,
    /// Fail with [`StoreError::AlreadyExists`] when the key exists (`If-None-Match: *`).
    pub if_none_match: bool,
}

/// What to write.
#[derive(Debug, Clone)]
pub enum Body {
    File(PathBuf),
    Bytes(Bytes),
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The key as given (relative to the store's base).
    pub key: String,
    /// `s3://bucket/full/key` or a local path.
    pub location: String,
    pub bytes: u64,
    /// Hex SHA-256 of the whole object, computed by genrun (and verified by the server on S3).
    pub sha256: String,
    /// Uploaded as a multipart upload.
    pub multipart: bool,
    /// 1 + the number of retries it took (over every request of a multipart upload).
    pub attempts: u32,
}

/// An artifact store rooted at a base (for run output: `PREFIX/<request-id>/`).
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Writes `body` at `key` (relative to the store's base), all or nothing, before `deadline`.
    async fn put(
        &self,
        key: &str,
        body: Body,
        opts: &PutOptions,
        deadline: Instant,
    ) -> Result<Stored, StoreError>;
    /// Reads the whole object at `key`.
    async fn get(&self, key: &str, deadline: Instant) -> Result<Bytes, StoreError>;
    /// Whether an object exists at `key`.
    async fn exists(&self, key: &str, deadline: Instant) -> Result<bool, StoreError>;
    /// Where `key` lives, for logs and the result (`s3://bucket/base/key` or a path).
    fn location(&self, key: &str) -> String;
}

/// Opens the store for one run: base = `target` + `request_id`. Does no network I/O (see [`preflight`]).
pub async fn open(
    target: &Target,
    request_id: &str,
    s3: &S3Options,
) -> Result<Arc<dyn Store>, StoreError> {
    target::check_key(request_id)?;
    if request_id.contains('/') {
        return Err(StoreError::InvalidKey {
            key: request_id.to_owned(),
        });
    }
    match target {
        Target::Local(dir) => Ok(Arc::new(LocalStore::new(dir.join(request_id)))),
        Target::S3 { bucket, prefix } => {
            let base = if prefix.is_empty() {
                format!("{request_id}/")
            } else {
                format!("{prefix}/{request_id}/")
            };
            Ok(Arc::new(S3Store::connect(bucket, &base, s3).await?))
        }
    }
}

/// Reads a whole document from `s3://BUCKET/KEY` or a local path (job documents, `--prompt-file`).
pub async fn read_url(url: &str, s3: &S3Options, deadline: Instant) -> Result<Bytes, StoreError> {
    match target::ObjectUrl::parse(url)? {
        target::ObjectUrl::Local(path) => {
            let read = tokio::fs::read(&path);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(v)) => Ok(Bytes::from(v)),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(StoreError::NotFound {
                        location: path.display().to_string(),
                    })
                }
                Ok(Err(source)) => Err(StoreError::Io { path, source }),
                Err(_) => Err(StoreError::Timeout {
                    operation: "read",
                    location: path.display().to_string(),
                    elapsed: Duration::ZERO,
                    attempts: 1,
                }),
            }
        }
        target::ObjectUrl::S3 { bucket, key } => {
            let store = S3Store::connect(&bucket, "", s3).await?;
            store.get(&key, deadline).await
        }
    }
}

/// Proves the store is writable before any money is spent: refuses when `result.json` exists (a finished
/// run is never clobbered) unless `overwrite`, then writes `status.json`.
pub async fn preflight(
    store: &dyn Store,
    status_json: Bytes,
    overwrite: bool,
    deadline: Instant,
) -> Result<(), StoreError> {
    if !overwrite && store.exists(RESULT_KEY, deadline).await? {
        return Err(StoreError::AlreadyExists {
            location: store.location(RESULT_KEY),
        });
    }
    let opts = PutOptions {
        content_type: "application/json".to_owned(),
        metadata: BTreeMap::new(),
        if_none_match: false,
    };
    store
        .put(STATUS_KEY, Body::Bytes(status_json), &opts, deadline)
        .await?;
    Ok(())
}

/// Hex SHA-256 of a file's contents.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hex SHA-256 of bytes.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}
