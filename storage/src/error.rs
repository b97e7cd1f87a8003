//! The failure space of storage, and the class each failure belongs to.
//!
//! Why: the binary maps failures to exit codes in one exhaustive match; this crate says what happened
//! ([`StoreError`]) and what kind of thing it is ([`ErrorClass`]), never which number to exit with.

use std::path::PathBuf;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server refused the credentials or the permission (HTTP 403); never retried.
    #[error("access denied to {location} ({code}): {message}")]
    AccessDenied {
        location: String,
        code: String,
        message: String,
    },
    /// The bucket does not exist.
    #[error("bucket {bucket} does not exist")]
    NoSuchBucket { bucket: String },
    /// No connection to the endpoint could be made (refused, DNS, connect timeout) on any attempt.
    #[error("cannot reach {endpoint} after {attempts} attempt(s)")]
    Unreachable {
        endpoint: String,
        attempts: u32,
        #[source]
        source: BoxError,
    },
    /// The object does not exist.
    #[error("{location} does not exist")]
    NotFound { location: String },
    /// The object exists and the write asked not to replace it (`If-None-Match: *`, HTTP 412).
    #[error("{location} already exists")]
    AlreadyExists { location: String },
    /// The server computed a different SHA-256 than the one sent, on every attempt.
    #[error("checksum of {location} did not match after {attempts} attempt(s): {detail}")]
    ChecksumMismatch {
        location: String,
        attempts: u32,
        detail: String,
    },
    /// Every retry failed with a transient error (5xx, throttling, timeout, reset), or the next backoff would
    /// pass the deadline.
    #[error("storing {location} failed after {attempts} attempt(s): {last}")]
    Exhausted {
        location: String,
        attempts: u32,
        last: String,
    },
    /// The caller's deadline passed while a request was in flight.
    #[error("{operation} of {location} did not finish before the deadline ({elapsed:?} elapsed, {attempts} attempt(s))")]
    Timeout {
        operation: &'static str,
        location: String,
        elapsed: Duration,
        attempts: u32,
    },
    /// The server rejected the request for a reason that retrying cannot fix.
    #[error("{location} rejected by the server (HTTP {status}, {code}): {message}")]
    Rejected {
        location: String,
        status: u16,
        code: String,
        message: String,
        /// The rejection says the configuration is wrong (region, endpoint, malformed request).
        config: bool,
    },
    /// A local file could not be read or written.
    #[error("i/o error on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `--output`/`--job` value is neither `s3://BUCKET[/PREFIX]` nor a path.
    #[error("invalid target {value:?}: expected {expected}")]
    InvalidTarget {
        value: String,
        expected: &'static str,
    },
    /// A key that would escape the store's base (`..`, absolute) or is empty.
    #[error("invalid key {key:?}: expected a relative path without `.` or `..` segments")]
    InvalidKey { key: String },
    /// The S3 client could not be built from the configuration.
    #[error("invalid s3 configuration: {message}")]
    Config { message: String },
}

/// What kind of failure a [`StoreError`] is; the binary maps each class to one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Credentials or permission refused (exit 77).
    AccessDenied,
    /// Unknown bucket, invalid target or key, bad endpoint/region (exit 78).
    Config,
    /// The store cannot be reached at all; at start-up this is exit 69 (later, storing failed: 75).
    Unavailable,
    /// Storing failed after retries or for a reason retrying cannot fix (exit 75).
    Failed,
    /// The object is missing (exit 65 when reading a job document or prompt file).
    NotFound,
    /// A finished run (its `result.json`) is already there and overwriting was not asked for.
    Exists,
}

impl StoreError {
    /// The class of this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::AccessDenied { .. } => ErrorClass::AccessDenied,
            StoreError::NoSuchBucket { .. }
            | StoreError::InvalidTarget { .. }
            | StoreError::InvalidKey { .. }
            | StoreError::Config { .. } => ErrorClass::Config,
            StoreError::Rejected { config: true, .. } => ErrorClass::Config,
            StoreError::Unreachable { .. } => ErrorClass::Unavailable,
            StoreError::NotFound { .. } => ErrorClass::NotFound,
            StoreError::AlreadyExists { .. } => ErrorClass::Exists,
            StoreError::ChecksumMismatch { .. }
            | StoreError::Exhausted { .. }
            | StoreError::Timeout { .. }
            | StoreError::Rejected { config: false, .. }
            | StoreError::Io { .. } => ErrorClass::Failed,
        }
    }
}
