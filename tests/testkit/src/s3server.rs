//! An S3 protocol server for tests: `s3s` over `s3s-fs` on 127.0.0.1, with a fault policy.
//!
//! Why: genrun's storage must meet the real wire protocol (SigV4, `x-amz-checksum-sha256`, `If-None-Match`,
//! multipart) in `cargo test` alone, with no external service. Each [`S3Server`] has its own temp root, an
//! ephemeral port and fixed test credentials; it runs on its own thread and runtime, so a test may block
//! (e.g. wait for the genrun binary) without starving it.
//!
//! On top of `s3s-fs` the server adds what the tests need and `s3s-fs` 0.14 lacks:
//! - `NoSuchBucket` for writes and reads into a bucket that was never created (`s3s-fs` would create it);
//! - verification of a part's `x-amz-checksum-sha256` (`s3s-fs` verifies whole objects only);
//! - `ListMultipartUploads`, so a test can assert that no multipart upload was left behind.
//!
//! Faults are injected at the protocol level by [`FaultRule`]s the server consults for every request, e.g.
//! "the first 3 PUTs get 503" (`FaultRule::status(503, "ServiceUnavailable").method("PUT").first(3)`) or
//! "every PUT of result.json gets 403" (`FaultRule::status(403, "AccessDenied").method("PUT")
//! .key_suffix("result.json")`). Every request is logged ([`RequestRecord`]) so a test can count them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use futures::TryStreamExt as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use sha2::Digest as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Access key every test server accepts.
pub const TEST_ACCESS_KEY: &str = "GENRUNTESTACCESSKEY1";
/// Secret key every test server accepts.
pub const TEST_SECRET_KEY: &str = "genrun/test/secret/key/0123456789abcdef";
/// Region the test clients sign for.
pub const TEST_REGION: &str = "us-east-1";

/// A running S3 server. Dropping it stops the server and removes its temp root.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`; path-style addressing.
    pub endpoint: String,
    /// Root directory of `s3s-fs`: one directory per bucket, objects as files.
    pub root: PathBuf,
    pub access_key: String,
    pub secret_key: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server")
            .field("endpoint", &self.endpoint)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl S3Server {
    /// Starts a server with its own temp root on an ephemeral port of 127.0.0.1.
    pub async fn start() -> anyhow::Result<S3Server> {
        let dir = tempfile::Builder::new().prefix("genrun-s3-").tempdir()?;
        let root = dir.path().canonicalize()?;
        let shared = Arc::new(Shared::default());
        let fs = s3s_fs::FileSystem::new(&root).map_err(|e| anyhow::anyhow!("s3s-fs: {e:?}"))?;
        let s3 = TestS3 {
            fs,
            root: root.clone(),
            shared: shared.clone(),
        };
        let service = {
            let mut b = S3ServiceBuilder::new(s3);
            b.set_auth(s3s::auth::SimpleAuth::from_single(
                TEST_ACCESS_KEY,
                TEST_SECRET_KEY,
            ));
            b.build()
        };

        let (addr_tx, addr_rx) = oneshot::channel::<std::io::Result<SocketAddr>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let shared_for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("s3server".into())
            .spawn(move || serve_thread(service, shared_for_thread, addr_tx, stop_rx))?;
        let addr = addr_rx
            .await
            .context("s3 server thread ended before binding")??;

        Ok(S3Server {
            endpoint: format!("http://{addr}"),
            root,
            access_key: TEST_ACCESS_KEY.to_owned(),
            secret_key: TEST_SECRET_KEY.to_owned(),
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// Creates a bucket through the S3 protocol.
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        self.client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .with_context(|| format!("create bucket {name}"))?;
        Ok(())
    }

    /// A real SDK client with the test credentials, for assertions (list, get, head).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let creds = Credentials::new(
            &self.access_key,
            &self.secret_key,
            None,
            None,
            "genrun-testkit",
        );
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(creds)
            .region(Region::new(TEST_REGION))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Environment for running the genrun binary (or awscli) against this server: credentials, region, and no
    /// instance-metadata or profile lookups. Pass `--s3-endpoint` / `--s3-path-style` separately.
    pub fn env(&self) -> Vec<(String, String)> {
        let none = self
            .root
            .join(".no-aws-config")
            .to_string_lossy()
            .into_owned();
        [
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", TEST_REGION.to_owned()),
            ("AWS_DEFAULT_REGION", TEST_REGION.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", none.clone()),
            ("AWS_SHARED_CREDENTIALS_FILE", none),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Adds a fault rule; rules are consulted in the order added, the first that fires wins.
    pub fn inject(&self, rule: FaultRule) {
        lock(&self.shared.faults).push(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// Requests of one operation received so far.
    pub fn count(&self, op: S3Op) -> usize {
        lock(&self.shared.log).iter().filter(|r| r.op == op).count()
    }

    /// Multipart uploads created and neither completed nor aborted (what `ListMultipartUploads` returns).
    pub fn open_multipart_uploads(&self) -> Vec<(String, String, String)> {
        lock(&self.shared.uploads)
            .iter()
            .map(|(id, u)| (u.bucket.clone(), u.key.clone(), id.clone()))
            .collect()
    }

    /// Part files of unfinished multipart uploads left in the root.
    pub fn leftover_part_files(&self) -> std::io::Result<usize> {
        let mut n = 0;
        for entry in std::fs::read_dir(&self.root)? {
            if entry?
                .file_name()
                .to_string_lossy()
                .starts_with(".upload_id-")
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The largest number of requests the server was handling at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Path of an object's bytes on disk.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An endpoint on 127.0.0.1 where nothing listens (a port bound and released), for "endpoint down" tests.
pub fn dead_endpoint() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{addr}"))
}

/// The S3 operation a request addresses, derived from method, path and query (path-style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Op {
    PutObject,
    UploadPart,
    CreateMultipartUpload,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListMultipartUploads,
    GetObject,
    HeadObject,
    /// Anything else (bucket operations, listing, deletes).
    Other,
}

impl S3Op {
    fn classify(method: &hyper::Method, key: &str, query: &str) -> S3Op {
        let has = |name: &str| {
            query
                .split('&')
                .any(|p| p == name || p.starts_with(&format!("{name}=")))
        };
        match *method {
            hyper::Method::PUT if key.is_empty() => S3Op::Other,
            hyper::Method::PUT if has("partNumber") => S3Op::UploadPart,
            hyper::Method::PUT => S3Op::PutObject,
            hyper::Method::POST if has("uploads") => S3Op::CreateMultipartUpload,
            hyper::Method::POST if has("uploadId") => S3Op::CompleteMultipartUpload,
            hyper::Method::DELETE if has("uploadId") => S3Op::AbortMultipartUpload,
            hyper::Method::GET if key.is_empty() && has("uploads") => S3Op::ListMultipartUploads,
            hyper::Method::GET if !key.is_empty() => S3Op::GetObject,
            hyper::Method::HEAD if !key.is_empty() => S3Op::HeadObject,
            _ => S3Op::Other,
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub op: S3Op,
    pub bucket: String,
    pub key: String,
    pub query: String,
    /// Response status; `None` when a fault reset or stalled the connection.
    pub status: Option<u16>,
    /// The fault that fired, if any (its `Debug` form).
    pub fault: Option<String>,
    /// `x-amz-content-sha256` (`UNSIGNED-PAYLOAD`, a hex digest, or `STREAMING-...` for aws-chunked).
    pub content_sha256: Option<String>,
    /// `x-amz-checksum-sha256` as sent in the headers.
    pub checksum_sha256: Option<String>,
    pub content_encoding: Option<String>,
    pub if_none_match: Option<String>,
    pub content_type: Option<String>,
}

/// What a fault does to a matching request.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Read the whole request body, then answer this status with an S3 XML error of this code.
    Status { status: u16, code: String },
    /// Read at least this many bytes of the request body (or all of it), then drop the connection without
    /// answering; unread bytes make the kernel send a TCP reset.
    Reset { after_bytes: u64 },
    /// Read the request body, then answer nothing for this long, then drop the connection (the request has
    /// no effect).
    Stall(Duration),
    /// Wait this long, then serve the request normally.
    Delay(Duration),
    /// Flip one byte in the middle of the request body before the S3 layer sees it (a transit corruption the
    /// server's checksum verification must catch).
    CorruptBody,
}

/// A rule of the fault policy: which requests it matches and what it does to them.
#[derive(Debug, Clone)]
pub struct FaultRule {
    action: FaultAction,
    method: Option<String>,
    op: Option<S3Op>,
    key_suffix: Option<String>,
    query_contains: Option<String>,
    skip: u32,
    times: Option<u32>,
    seen: u32,
    fired: u32,
}

impl FaultRule {
    /// A rule that fires on every request (narrow it with the builder methods).
    pub fn new(action: FaultAction) -> FaultRule {
        FaultRule {
            action,
            method: None,
            op: None,
            key_suffix: None,
            query_contains: None,
            skip: 0,
            times: None,
            seen: 0,
            fired: 0,
        }
    }

    /// Answer `status` with the S3 error `code` (e.g. 503 `SlowDown`, 403 `AccessDenied`).
    pub fn status(status: u16, code: &str) -> FaultRule {
        FaultRule::new(FaultAction::Status {
            status,
            code: code.to_owned(),
        })
    }

    /// Reset the connection after reading `after_bytes` of the body.
    pub fn reset(after_bytes: u64) -> FaultRule {
        FaultRule::new(FaultAction::Reset { after_bytes })
    }

    /// Stall the response for an hour (longer than any test), then drop the connection.
    pub fn stall() -> FaultRule {
        FaultRule::new(FaultAction::Stall(Duration::from_secs(3600)))
    }

    /// Corrupt one byte of the request body in transit.
    pub fn corrupt_body() -> FaultRule {
        FaultRule::new(FaultAction::CorruptBody)
    }

    /// Only requests with this HTTP method (`"PUT"`, `"POST"`, ...).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests of this operation.
    pub fn op(mut self, op: S3Op) -> Self {
        self.op = Some(op);
        self
    }

    /// Only requests whose object key ends with this (e.g. `"result.json"`).
    pub fn key_suffix(mut self, suffix: &str) -> Self {
        self.key_suffix = Some(suffix.to_owned());
        self
    }

    /// Only requests whose raw query string contains this (e.g. `"partNumber=2&"` or `"uploads"`).
    pub fn query_contains(mut self, s: &str) -> Self {
        self.query_contains = Some(s.to_owned());
        self
    }

    /// Let the first `n` matching requests through untouched.
    pub fn skip(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }

    /// Fire on the first `n` matching requests only (after any skipped ones).
    pub fn first(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, method: &str, op: S3Op, key: &str, query: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self.op.is_none_or(|o| o == op)
            && self.key_suffix.as_deref().is_none_or(|s| key.ends_with(s))
            && self
                .query_contains
                .as_deref()
                .is_none_or(|s| query.contains(s))
    }

    /// Counts a matching request; true when the rule fires on it.
    fn take(&mut self) -> bool {
        self.seen += 1;
        if self.seen <= self.skip {
            return false;
        }
        if self.times.is_some_and(|t| self.fired >= t) {
            return false;
        }
        self.fired += 1;
        true
    }
}

#[derive(Default)]
struct Shared {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    faults: Mutex<Vec<FaultRule>>,
    log: Mutex<Vec<RequestRecord>>,
    uploads: Mutex<BTreeMap<String, Upload>>,
}

struct Upload {
    bucket: String,
    key: String,
    initiated: SystemTime,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn serve_thread(
    service: S3Service,
    shared: Arc<Shared>,
    addr_tx: oneshot::Sender<std::io::Result<SocketAddr>>,
    stop_rx: oneshot::Receiver<()>,
) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("s3server-rt")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = addr_tx.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => {
                let _ = addr_tx.send(Err(e));
                return;
            }
        };
        let _ = addr_tx.send(listener.local_addr());
        let mut stop_rx = stop_rx;
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((socket, _)) = accepted else { continue };
                    let _ = socket.set_nodelay(true);
                    let service = service.clone();
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            handle(service.clone(), shared.clone(), req)
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(socket), svc)
                            .await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                _ = &mut stop_rx => break,
            }
        }
        conns.abort_all();
    });
    rt.shutdown_timeout(Duration::from_secs(2));
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Decrements the in-flight gauge when a request's handling ends (however it ends).
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    service: S3Service,
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<s3s::Body>, BoxError> {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _in_flight = InFlight(shared.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let trimmed = path.trim_start_matches('/');
    let (bucket, key) = match trimmed.split_once('/') {
        Some((b, k)) => (percent_decode(b), percent_decode(k)),
        None => (percent_decode(trimmed), String::new()),
    };
    let op = S3Op::classify(&method, &key, &query);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut record = RequestRecord {
        method: method.to_string(),
        op,
        bucket,
        key: key.clone(),
        query: query.clone(),
        status: None,
        fault: None,
        content_sha256: header("x-amz-content-sha256"),
        checksum_sha256: header("x-amz-checksum-sha256"),
        content_encoding: header("content-encoding"),
        if_none_match: header("if-none-match"),
        content_type: header("content-type"),
    };

    let fault = {
        let mut rules = lock(&shared.faults);
        let mut fired = None;
        for rule in rules.iter_mut() {
            if rule.matches(method.as_str(), op, &key, &query) && rule.take() {
                fired = Some(rule.action.clone());
                break;
            }
        }
        fired
    };
    record.fault = fault.as_ref().map(|f| format!("{f:?}"));

    let (parts, body) = req.into_parts();
    let body = match fault {
        None => s3s::Body::from(body),
        Some(FaultAction::Status { status, code }) => {
            let _ = body.collect().await;
            record.status = Some(status);
            lock(&shared.log).push(record);
            return Ok(error_response(status, &code, &path));
        }
        Some(FaultAction::Reset { after_bytes }) => {
            let mut body = body;
            let mut read = 0u64;
            while read < after_bytes {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                    _ => break,
                }
            }
            lock(&shared.log).push(record);
            return Err("fault: connection reset".into());
        }
        Some(FaultAction::Stall(d)) => {
            let _ = body.collect().await;
            lock(&shared.log).push(record);
            tokio::time::sleep(d).await;
            return Err("fault: stalled response dropped".into());
        }
        Some(FaultAction::Delay(d)) => {
            tokio::time::sleep(d).await;
            s3s::Body::from(body)
        }
        Some(FaultAction::CorruptBody) => {
            let bytes = body.collect().await?.to_bytes();
            let mut v = bytes.to_vec();
            if !v.is_empty() {
                let mid = v.len() / 2;
                v[mid] ^= 0x01;
            }
            s3s::Body::from(Bytes::from(v))
        }
    };
    let resp = service.call(hyper::Request::from_parts(parts, body)).await;
    match resp {
        Ok(resp) => {
            record.status = Some(resp.status().as_u16());
            lock(&shared.log).push(record);
            Ok(resp)
        }
        Err(e) => {
            lock(&shared.log).push(record);
            Err(BoxError::from(e))
        }
    }
}

fn error_response(status: u16, code: &str, resource: &str) -> hyper::Response<s3s::Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected fault</Message>\
         <Resource>{resource}</Resource><RequestId>genrun-testkit</RequestId></Error>"
    );
    let mut resp = hyper::Response::new(s3s::Body::from(xml));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    resp
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s3s-fs` plus bucket checks, part checksum verification and `ListMultipartUploads`.
struct TestS3 {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TestS3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestS3").field("root", &self.root).finish()
    }
}

impl TestS3 {
    fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        let valid = !bucket.is_empty() && !bucket.contains(['/', '\\']) && !bucket.starts_with('.');
        if valid && bucket_dir(&self.root, bucket).is_dir() {
            Ok(())
        } else {
            Err(s3_error!(NoSuchBucket))
        }
    }
}

fn bucket_dir(root: &Path, bucket: &str) -> PathBuf {
    root.join(bucket)
}

/// Reads a request body whole and checks it against its `x-amz-checksum-sha256` (BadDigest otherwise).
async fn verified_body(body: Option<StreamingBlob>, expected_b64: &str) -> S3Result<Bytes> {
    let Some(body) = body else {
        return Err(s3_error!(IncompleteBody));
    };
    let chunks: Vec<Bytes> = body
        .try_collect()
        .await
        .map_err(|e| s3_error!(IncompleteBody, "reading body: {e}"))?;
    let data = Bytes::from(chunks.concat());
    if aws_smithy_types::base64::encode(sha2::Sha256::digest(&data)) != expected_b64 {
        return Err(s3_error!(BadDigest, "checksum_sha256 mismatch"));
    }
    Ok(data)
}

#[async_trait::async_trait]
impl S3 for TestS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.fs.delete_objects(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.require_bucket(&req.input.bucket)?;
        self.fs.copy_object(req).await
    }

    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.require_bucket(&req.input.bucket)?;
        // s3s-fs writes the object before comparing checksums; S3 stores nothing on BadDigest.
        if let Some(expected) = req.input.checksum_sha256.clone() {
            let data = verified_body(req.input.body.take(), &expected).await?;
            req.input.body = Some(StreamingBlob::from(s3s::Body::from(data)));
        }
        self.fs.put_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.require_bucket(&req.input.bucket)?;
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.require_bucket(&req.input.bucket)?;
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let resp = self.fs.create_multipart_upload(req).await?;
        if let Some(id) = &resp.output.upload_id {
            lock(&self.shared.uploads).insert(
                id.clone(),
                Upload {
                    bucket,
                    key,
                    initiated: SystemTime::now(),
                },
            );
        }
        Ok(resp)
    }

    async fn upload_part(
        &self,
        mut req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        if let Some(expected) = req.input.checksum_sha256.clone() {
            let data = verified_body(req.input.body.take(), &expected).await?;
            req.input.body = Some(StreamingBlob::from(s3s::Body::from(data)));
            let mut resp = self.fs.upload_part(req).await?;
            resp.output.checksum_sha256 = Some(expected);
            return Ok(resp);
        }
        self.fs.upload_part(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let id = req.input.upload_id.clone();
        let resp = self.fs.complete_multipart_upload(req).await?;
        lock(&self.shared.uploads).remove(&id);
        Ok(resp)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let id = req.input.upload_id.clone();
        if !lock(&self.shared.uploads).contains_key(&id) {
            return Err(s3_error!(NoSuchUpload));
        }
        let resp = self.fs.abort_multipart_upload(req).await?;
        lock(&self.shared.uploads).remove(&id);
        Ok(resp)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let bucket = req.input.bucket;
        self.require_bucket(&bucket)?;
        let prefix = req.input.prefix.unwrap_or_default();
        let uploads: Vec<MultipartUpload> = lock(&self.shared.uploads)
            .iter()
            .filter(|(_, u)| u.bucket == bucket && u.key.starts_with(&prefix))
            .map(|(id, u)| MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(id.clone()),
                initiated: Some(Timestamp::from(u.initiated)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(bucket),
            prefix: Some(prefix),
            is_truncated: Some(false),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}
