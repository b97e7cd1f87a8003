//! A store wrapper that fails, delays or corrupts chosen calls, for tests of what sits above storage.
//!
//! Why: the pipeline's reactions to storage failures (exit 75 with local copies, 77 on denial, the
//! deadline) must be testable without arranging network faults; the faults here act at the [`Store`]
//! level, i.e. as if the inner store had already exhausted its own retries.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::{sha256_hex, Body, PutOptions, Store, StoreError, Stored};

/// Which trait method a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    Put,
    Get,
    Exists,
}

/// What a fault does.
#[derive(Clone)]
pub enum Fault {
    /// Return the error this builds from the key's location instead of calling the inner store.
    Fail(Arc<dyn Fn(&str) -> StoreError + Send + Sync>),
    /// Wait this long (cut at the deadline, which then yields [`StoreError::Timeout`]), then call through.
    Delay(Duration),
    /// Silently flip one byte: a put stores damaged bytes but reports the original SHA-256; a get returns
    /// damaged bytes.
    Corrupt,
}

impl Fault {
    /// A failure built by `make(location)`.
    pub fn fail(make: impl Fn(&str) -> StoreError + Send + Sync + 'static) -> Fault {
        Fault::Fail(Arc::new(make))
    }
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Fail(_) => f.write_str("Fail"),
            Fault::Delay(d) => write!(f, "Delay({d:?})"),
            Fault::Corrupt => f.write_str("Corrupt"),
        }
    }
}

#[derive(Debug)]
struct Rule {
    op: Option<FaultOp>,
    key: Option<String>,
    remaining: Option<u32>,
    fault: Fault,
}

/// Wraps any store; faults are consulted in the order injected, the first matching one with calls left
/// fires.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    rules: Mutex<Vec<Rule>>,
    calls: AtomicU32,
    faults_fired: AtomicU32,
}

impl<S: Store> FaultyStore<S> {
    pub fn new(inner: S) -> FaultyStore<S> {
        FaultyStore {
            inner,
            rules: Mutex::new(Vec::new()),
            calls: AtomicU32::new(0),
            faults_fired: AtomicU32::new(0),
        }
    }

    /// Fails the first `n` calls (any operation, any key) with `make(location)`.
    pub fn fail_first(
        self,
        n: u32,
        make: impl Fn(&str) -> StoreError + Send + Sync + 'static,
    ) -> Self {
        self.inject(None, None, Some(n), Fault::fail(make));
        self
    }

    /// Adds a fault for calls of `op` (any when `None`) on `key` (any when `None`), for the first `times`
    /// matching calls (all when `None`).
    pub fn inject(&self, op: Option<FaultOp>, key: Option<&str>, times: Option<u32>, fault: Fault) {
        self.lock().push(Rule {
            op,
            key: key.map(str::to_owned),
            remaining: times,
            fault,
        });
    }

    /// Calls made through this wrapper so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Calls on which a fault fired so far.
    pub fn faults_fired(&self) -> u32 {
        self.faults_fired.load(Ordering::SeqCst)
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pick(&self, op: FaultOp, key: &str) -> Option<Fault> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut rules = self.lock();
        for rule in rules.iter_mut() {
            let matches =
                rule.op.is_none_or(|o| o == op) && rule.key.as_deref().is_none_or(|k| k == key);
            if !matches || rule.remaining == Some(0) {
                continue;
            }
            if let Some(r) = rule.remaining.as_mut() {
                *r -= 1;
            }
            self.faults_fired.fetch_add(1, Ordering::SeqCst);
            return Some(rule.fault.clone());
        }
        None
    }

    /// Applies a fault before the call; `Ok(true)` means "corrupt this call".
    async fn before(&self, op: FaultOp, key: &str, deadline: Instant) -> Result<bool, StoreError> {
        match self.pick(op, key) {
            None => Ok(false),
            Some(Fault::Fail(make)) => Err(make(&self.inner.location(key))),
            Some(Fault::Delay(d)) => {
                let started = Instant::now();
                let until = started + d;
                tokio::time::sleep_until(until.min(deadline)).await;
                if until > deadline {
                    return Err(StoreError::Timeout {
                        operation: "faulty delay",
                        location: self.inner.location(key),
                        elapsed: started.elapsed(),
                        attempts: 1,
                    });
                }
                Ok(false)
            }
            Some(Fault::Corrupt) => Ok(true),
        }
    }
}

fn flip(data: &[u8]) -> Bytes {
    let mut v = data.to_vec();
    if let Some(b) = v.get_mut(data.len() / 2) {
        *b ^= 0x01;
    }
    Bytes::from(v)
}

#[async_trait::async_trait]
impl<S: Store> Store for FaultyStore<S> {
    async fn put(
        &self,
        key: &str,
        body: Body,
        opts: &PutOptions,
        deadline: Instant,
    ) -> Result<Stored, StoreError> {
        if !self.before(FaultOp::Put, key, deadline).await? {
            return self.inner.put(key, body, opts, deadline).await;
        }
        let original = match body {
            Body::Bytes(b) => b,
            Body::File(p) => Bytes::from(
                tokio::fs::read(&p)
                    .await
                    .map_err(|source| StoreError::Io { path: p, source })?,
            ),
        };
        let mut stored = self
            .inner
            .put(key, Body::Bytes(flip(&original)), opts, deadline)
            .await?;
        stored.sha256 = sha256_hex(&original);
        Ok(stored)
    }

    async fn get(&self, key: &str, deadline: Instant) -> Result<Bytes, StoreError> {
        let corrupt = self.before(FaultOp::Get, key, deadline).await?;
        let data = self.inner.get(key, deadline).await?;
        Ok(if corrupt { flip(&data) } else { data })
    }

    async fn exists(&self, key: &str, deadline: Instant) -> Result<bool, StoreError> {
        self.before(FaultOp::Exists, key, deadline).await?;
        self.inner.exists(key, deadline).await
    }

    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }
}

/// A shared store is a store (so `FaultyStore` can wrap what [`crate::open`] returns).
#[async_trait::async_trait]
impl<T: Store + ?Sized> Store for Arc<T> {
    async fn put(
        &self,
        key: &str,
        body: Body,
        opts: &PutOptions,
        deadline: Instant,
    ) -> Result<Stored, StoreError> {
        (**self).put(key, body, opts, deadline).await
    }

    async fn get(&self, key: &str, deadline: Instant) -> Result<Bytes, StoreError> {
        (**self).get(key, deadline).await
    }

    async fn exists(&self, key: &str, deadline: Instant) -> Result<bool, StoreError> {
        (**self).exists(key, deadline).await
    }

    fn location(&self, key: &str) -> String {
        (**self).location(key)
    }
}
