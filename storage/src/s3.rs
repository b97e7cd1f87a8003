//! The S3 store: aws-sdk-s3 with genrun's checksums, conditional writes, multipart and retry loop.
//!
//! Why each choice:
//! - A SHA-256 computed by genrun goes in `x-amz-checksum-sha256` on every PutObject/UploadPart, so the
//!   server verifies the bytes; with a precomputed value the SDK sends a plain request (not aws-chunked with
//!   a trailer, which several S3-compatible stores mishandle). The SDK's own checksum calculation is set
//!   to "when required" and payload signing is off (the checksum header, which is signed, covers the body).
//! - The SDK's retries and stalled-stream protection are disabled: [`crate::retry::run`] retries with the
//!   caller's deadline in view. Timeouts: connect and read (first response byte) in the HTTP client, one
//!   attempt's total in the SDK and again around each attempt in the retry loop.
//! - Above the multipart threshold, parts are read and hashed in order (for the whole-object SHA-256) and
//!   uploaded `concurrency` at a time, each with its own retries; any failure aborts the multipart upload
//!   (also when the caller drops the future), so no parts are left behind.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use bytes::Bytes;
use sha2::Digest as _;
use tokio::time::Instant;

use crate::retry::{self, BoxError, Ctx, Failure, Policy};
use crate::target::check_key;
use crate::{Body, PutOptions, S3Options, Store, StoreError, Stored};

const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;
/// Time granted to abort a failed multipart upload even when the caller's deadline has passed.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// A store rooted at `s3://bucket/base`.
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    base: String,
    endpoint: String,
    opts: S3Options,
    policy: Policy,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("base", &self.base)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Builds the client (credentials and region from the default chain unless `opts` gives them).
    /// `base` is a key prefix ending in `/`, or empty. No request is sent.
    pub async fn connect(
        bucket: &str,
        base: &str,
        opts: &S3Options,
    ) -> Result<S3Store, StoreError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = &opts.endpoint {
            let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
            if !scheme_ok || endpoint.len() <= "https://".len() {
                return Err(StoreError::Config {
                    message: format!(
                        "endpoint {endpoint:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"
                    ),
                });
            }
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &opts.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(c) = &opts.credentials {
            loader = loader.credentials_provider(Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                c.session_token.clone(),
                None,
                "genrun",
            ));
        }
        let sdk = loader.load().await;
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .operation_attempt_timeout(opts.operation_timeout)
            .build();
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(timeouts)
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .force_path_style(opts.path_style);
        if sdk.region().is_none() {
            conf = conf.region(Region::new("us-east-1"));
        }
        let endpoint = opts.endpoint.clone().unwrap_or_else(|| {
            format!("s3 in {}", sdk.region().map_or("us-east-1", |r| r.as_ref()))
        });
        Ok(S3Store {
            client: aws_sdk_s3::Client::from_conf(conf.build()),
            bucket: bucket.to_owned(),
            base: base.to_owned(),
            endpoint,
            opts: opts.clone(),
            policy: Policy {
                max_attempts: opts.max_attempts.max(1),
                initial_backoff: opts.initial_backoff,
                max_backoff: opts.max_backoff,
                operation_timeout: opts.operation_timeout,
            },
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Key prefix every key is placed under (`PREFIX/<request-id>/`, or empty).
    pub fn base(&self) -> &str {
        &self.base
    }

    fn full_key(&self, key: &str) -> Result<String, StoreError> {
        check_key(key)?;
        Ok(format!("{}{key}", self.base))
    }

    fn ctx<'a>(&'a self, operation: &'static str, location: &'a str) -> Ctx<'a> {
        Ctx {
            operation,
            location,
            endpoint: &self.endpoint,
        }
    }

    async fn put_single(
        &self,
        full: &str,
        location: &str,
        data: Bytes,
        opts: &PutOptions,
        deadline: Instant,
    ) -> Result<(String, u32), StoreError> {
        let (hex, b64) = {
            let d = data.clone();
            hash_blocking(move || sha2::Sha256::digest(&d)).await?
        };
        let len = data.len() as i64;
        let (_, attempts) = retry::run(&self.policy, self.ctx("put", location), deadline, |_| {
            let mut req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(full)
                .body(ByteStream::from(data.clone()))
                .content_length(len)
                .checksum_sha256(&b64)
                .set_metadata(metadata(opts));
            if !opts.content_type.is_empty() {
                req = req.content_type(&opts.content_type);
            }
            if opts.if_none_match {
                req = req.if_none_match("*");
            }
            async move {
                req.customize()
                    .disable_payload_signing()
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify(e, &self.bucket, location))
            }
        })
        .await?;
        Ok((hex, attempts))
    }

    async fn put_multipart(
        &self,
        full: &str,
        location: &str,
        source: PartSource,
        size: u64,
        opts: &PutOptions,
        deadline: Instant,
    ) -> Result<(String, u32), StoreError> {
        let (upload_id, created) = retry::run(
            &self.policy,
            self.ctx("create multipart upload", location),
            deadline,
            |_| {
                let mut req = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(full)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .set_metadata(metadata(opts));
                if !opts.content_type.is_empty() {
                    req = req.content_type(&opts.content_type);
                }
                async move {
                    let out = req
                        .send()
                        .await
                        .map_err(|e| classify(e, &self.bucket, location))?;
                    out.upload_id.ok_or_else(|| Failure::Transient {
                        detail: "CreateMultipartUpload returned no upload id".into(),
                        connect: None,
                    })
                }
            },
        )
        .await?;
        let mut guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: full.to_owned(),
            upload_id: Some(upload_id.clone()),
        };
        let retries = Arc::new(AtomicU32::new(created - 1));
        let result = self
            .upload_parts_and_complete(
                full, location, &upload_id, source, size, opts, deadline, &retries,
            )
            .await;
        match result {
            Ok(sha256) => {
                guard.upload_id = None;
                Ok((sha256, 1 + retries.load(Ordering::Relaxed)))
            }
            Err(e) => {
                guard.upload_id = None;
                self.abort(full, location, &upload_id, deadline).await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_parts_and_complete(
        &self,
        full: &str,
        location: &str,
        upload_id: &str,
        source: PartSource,
        size: u64,
        opts: &PutOptions,
        deadline: Instant,
        retries: &Arc<AtomicU32>,
    ) -> Result<String, StoreError> {
        let part_size = effective_part_size(size, self.opts.part_size);
        let nparts = size.div_ceil(part_size).max(1);
        let sem = Arc::new(tokio::sync::Semaphore::new(self.opts.concurrency.max(1)));
        let mut tasks: tokio::task::JoinSet<Result<CompletedPart, StoreError>> =
            tokio::task::JoinSet::new();
        let mut completed: Vec<CompletedPart> = Vec::with_capacity(nparts as usize);
        let mut failure: Option<StoreError> = None;
        let mut hasher = sha2::Sha256::new();
        let source = Arc::new(source);

        for index in 0..nparts {
            let permit = match sem.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => break,
            };
            while let Some(done) = tasks.try_join_next() {
                collect(done, &mut completed, &mut failure);
            }
            if failure.is_some() {
                break;
            }
            let offset = index * part_size;
            let len = part_size.min(size - offset);
            let src = source.clone();
            let mut h = std::mem::take(&mut hasher);
            let (read, h) = tokio::task::spawn_blocking(move || {
                let read = src.read(offset, len);
                if let Ok(data) = &read {
                    h.update(data);
                }
                (read, h)
            })
            .await
            .map_err(join_error)?;
            hasher = h;
            let data = match read {
                Ok(data) => data,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let part = PartUpload {
                store: self.clone(),
                full: full.to_owned(),
                location: location.to_owned(),
                upload_id: upload_id.to_owned(),
                number: (index + 1) as i32,
                data,
                deadline,
                retries: retries.clone(),
            };
            tasks.spawn(async move {
                let r = part.run().await;
                drop(permit);
                r
            });
        }
        while let Some(done) = tasks.join_next().await {
            collect(done, &mut completed, &mut failure);
            if failure.is_some() {
                tasks.abort_all();
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        completed.sort_by_key(|p| p.part_number());
        let whole = hex::encode(hasher.finalize());

        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(completed))
            .build();
        let (_, attempts) = retry::run(
            &self.policy,
            self.ctx("complete multipart upload", location),
            deadline,
            |n| {
                let mut req = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(upload_id)
                    .multipart_upload(parts.clone());
                if opts.if_none_match {
                    req = req.if_none_match("*");
                }
                async move {
                    match req.send().await {
                        Ok(_) => Ok(()),
                        // A retry after a lost response: the first attempt may have completed the upload.
                        Err(e) if n > 1 && is_lost_completion(&e) => {
                            match self.head_size(full, location).await {
                                Ok(Some(s)) if s == size => Ok(()),
                                _ => Err(classify(e, &self.bucket, location)),
                            }
                        }
                        Err(e) => Err(classify(e, &self.bucket, location)),
                    }
                }
            },
        )
        .await?;
        retries.fetch_add(attempts - 1, Ordering::Relaxed);
        Ok(whole)
    }

    async fn head_size(&self, full: &str, location: &str) -> Result<Option<u64>, Failure> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
        {
            Ok(out) => Ok(out.content_length.map(|l| l.max(0) as u64)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify(e, &self.bucket, location)),
        }
    }

    async fn abort(&self, full: &str, location: &str, upload_id: &str, deadline: Instant) {
        let deadline = deadline.max(Instant::now() + ABORT_GRACE);
        let policy = Policy {
            max_attempts: 3,
            ..self.policy
        };
        let r = retry::run(
            &policy,
            self.ctx("abort multipart upload", location),
            deadline,
            |_| {
                let req = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(upload_id);
                async move {
                    match req.send().await {
                        Ok(_) => Ok(()),
                        Err(e) if error_code(&e).as_deref() == Some("NoSuchUpload") => Ok(()),
                        Err(e) => Err(classify(e, &self.bucket, location)),
                    }
                }
            },
        )
        .await;
        if let Err(e) = r {
            tracing::warn!(location, upload_id, error = %e, "could not abort multipart upload; parts may remain until a lifecycle rule removes them");
        }
    }
}

#[async_trait::async_trait]
impl Store for S3Store {
    async fn put(
        &self,
        key: &str,
        body: Body,
        opts: &PutOptions,
        deadline: Instant,
    ) -> Result<Stored, StoreError> {
        let full = self.full_key(key)?;
        let location = self.location(key);
        let size = match &body {
            Body::Bytes(b) => b.len() as u64,
            Body::File(p) => tokio::fs::metadata(p)
                .await
                .map_err(|source| StoreError::Io {
                    path: p.clone(),
                    source,
                })?
                .len(),
        };
        let multipart = size > self.opts.multipart_threshold;
        let (sha256, attempts) = if multipart {
            let source = match body {
                Body::Bytes(b) => PartSource::Bytes(b),
                Body::File(p) => {
                    let f = std::fs::File::open(&p).map_err(|source| StoreError::Io {
                        path: p.clone(),
                        source,
                    })?;
                    PartSource::File(f, p)
                }
            };
            self.put_multipart(&full, &location, source, size, opts, deadline)
                .await?
        } else {
            let data = match body {
                Body::Bytes(b) => b,
                Body::File(p) => {
                    Bytes::from(tokio::fs::read(&p).await.map_err(|source| StoreError::Io {
                        path: p.clone(),
                        source,
                    })?)
                }
            };
            self.put_single(&full, &location, data, opts, deadline)
                .await?
        };
        Ok(Stored {
            key: key.to_owned(),
            location,
            bytes: size,
            sha256,
            multipart,
            attempts,
        })
    }

    async fn get(&self, key: &str, deadline: Instant) -> Result<Bytes, StoreError> {
        let full = self.full_key(key)?;
        let location = self.location(key);
        let (data, _) = retry::run(&self.policy, self.ctx("get", &location), deadline, |_| {
            let req = self.client.get_object().bucket(&self.bucket).key(&full);
            let location = &location;
            async move {
                let out = req
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.bucket, location))?;
                let body = out.body.collect().await.map_err(|e| Failure::Transient {
                    detail: format!("reading body: {}", DisplayErrorContext(&e)),
                    connect: None,
                })?;
                Ok(body.into_bytes())
            }
        })
        .await?;
        Ok(data)
    }

    async fn exists(&self, key: &str, deadline: Instant) -> Result<bool, StoreError> {
        let full = self.full_key(key)?;
        let location = self.location(key);
        let (found, _) = retry::run(&self.policy, self.ctx("head", &location), deadline, |_| {
            self.head_size(&full, &location)
        })
        .await?;
        Ok(found.is_some())
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.base)
    }
}

/// One part: hash it, upload it with retries.
struct PartUpload {
    store: S3Store,
    full: String,
    location: String,
    upload_id: String,
    number: i32,
    data: Bytes,
    deadline: Instant,
    retries: Arc<AtomicU32>,
}

impl PartUpload {
    async fn run(self) -> Result<CompletedPart, StoreError> {
        let (_, b64) = {
            let d = self.data.clone();
            hash_blocking(move || sha2::Sha256::digest(&d)).await?
        };
        let s = &self.store;
        let location = self.location.as_str();
        let len = self.data.len() as i64;
        let (etag, attempts) = retry::run(
            &s.policy,
            s.ctx("upload part", location),
            self.deadline,
            |_| {
                let req = s
                    .client
                    .upload_part()
                    .bucket(&s.bucket)
                    .key(&self.full)
                    .upload_id(&self.upload_id)
                    .part_number(self.number)
                    .content_length(len)
                    .checksum_sha256(&b64)
                    .body(ByteStream::from(self.data.clone()));
                async move {
                    let out = req
                        .customize()
                        .disable_payload_signing()
                        .send()
                        .await
                        .map_err(|e| classify(e, &s.bucket, location))?;
                    Ok(out.e_tag.unwrap_or_default())
                }
            },
        )
        .await?;
        self.retries.fetch_add(attempts - 1, Ordering::Relaxed);
        Ok(CompletedPart::builder()
            .part_number(self.number)
            .e_tag(etag)
            .checksum_sha256(b64)
            .build())
    }
}

/// Aborts the multipart upload in the background if the put future is dropped midway.
struct AbortGuard {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let req = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id);
        handle.spawn(async move {
            let _ = tokio::time::timeout(ABORT_GRACE, req.send()).await;
        });
    }
}

/// Where multipart parts come from.
enum PartSource {
    File(std::fs::File, std::path::PathBuf),
    Bytes(Bytes),
}

impl PartSource {
    fn read(&self, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        match self {
            PartSource::Bytes(b) => Ok(b.slice(offset as usize..(offset + len) as usize)),
            PartSource::File(f, path) => {
                use std::os::unix::fs::FileExt as _;
                let mut buf = vec![0u8; len as usize];
                f.read_exact_at(&mut buf, offset)
                    .map_err(|source| StoreError::Io {
                        path: path.clone(),
                        source,
                    })?;
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// Part size: the configured one, at least 5 MiB, grown so the object fits in 10,000 parts.
fn effective_part_size(size: u64, configured: u64) -> u64 {
    configured.max(MIN_PART).max(size.div_ceil(MAX_PARTS))
}

fn collect(
    done: Result<Result<CompletedPart, StoreError>, tokio::task::JoinError>,
    completed: &mut Vec<CompletedPart>,
    failure: &mut Option<StoreError>,
) {
    match done {
        Ok(Ok(part)) => completed.push(part),
        Ok(Err(e)) => {
            failure.get_or_insert(e);
        }
        Err(j) if j.is_cancelled() => {}
        Err(j) => {
            failure.get_or_insert(join_error(j));
        }
    }
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io {
        path: std::path::PathBuf::new(),
        source: std::io::Error::other(format!("worker task failed: {e}")),
    }
}

async fn hash_blocking(
    f: impl FnOnce() -> sha2::digest::Output<sha2::Sha256> + Send + 'static,
) -> Result<(String, String), StoreError> {
    let digest = tokio::task::spawn_blocking(f).await.map_err(join_error)?;
    Ok((
        hex::encode(digest),
        aws_smithy_types::base64::encode(digest),
    ))
}

fn metadata(opts: &PutOptions) -> Option<std::collections::HashMap<String, String>> {
    (!opts.metadata.is_empty()).then(|| {
        opts.metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

fn status_of<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn error_code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<String> {
    match e {
        SdkError::ServiceError(se) => se.err().code().map(str::to_owned),
        _ => None,
    }
}

fn is_lost_completion<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    error_code(e).as_deref() == Some("NoSuchUpload") || status_of(e) == Some(412)
}

/// True when no connection could be established (refused, DNS failure, connect timeout).
fn is_connect_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if h.is_connect() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable
            ) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// Maps an SDK error to how the retry loop treats it.
fn classify<E>(err: SdkError<E, HttpResponse>, bucket: &str, location: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("").to_owned();
            let message = se.err().message().unwrap_or("").to_owned();
            classify_service(status, &code, &message, bucket, location)
        }
        SdkError::TimeoutError(_) => Failure::Transient {
            detail: format!("timed out: {detail}"),
            connect: None,
        },
        SdkError::DispatchFailure(df) => {
            if df.is_user() {
                return Failure::Permanent(StoreError::Rejected {
                    location: location.to_owned(),
                    status: 0,
                    code: "ClientError".into(),
                    message: detail,
                    config: true,
                });
            }
            let connect = is_connect_failure(&err);
            Failure::Transient {
                detail: detail.clone(),
                connect: connect.then(|| BoxError::from(err)),
            }
        }
        SdkError::ResponseError(_) => Failure::Transient {
            detail,
            connect: None,
        },
        SdkError::ConstructionFailure(_) => Failure::Permanent(StoreError::Rejected {
            location: location.to_owned(),
            status: 0,
            code: "ConstructionFailure".into(),
            message: detail,
            config: true,
        }),
        _ => Failure::Transient {
            detail,
            connect: None,
        },
    }
}

fn classify_service(
    status: u16,
    code: &str,
    message: &str,
    bucket: &str,
    location: &str,
) -> Failure {
    const DENIED: [&str; 7] = [
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidToken",
        "AccountProblem",
    ];
    const TRANSIENT: [&str; 8] = [
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "ConditionalRequestConflict",
    ];
    const CONFIG: [&str; 5] = [
        "PermanentRedirect",
        "AuthorizationHeaderMalformed",
        "IllegalLocationConstraintException",
        "InvalidBucketName",
        "InvalidRequest",
    ];
    let permanent = Failure::Permanent;
    if status == 403 || DENIED.contains(&code) {
        return permanent(StoreError::AccessDenied {
            location: location.to_owned(),
            code: if code.is_empty() {
                "403".into()
            } else {
                code.to_owned()
            },
            message: message.to_owned(),
        });
    }
    if code == "NoSuchBucket" {
        return permanent(StoreError::NoSuchBucket {
            bucket: bucket.to_owned(),
        });
    }
    if status == 404 || code == "NoSuchKey" {
        return permanent(StoreError::NotFound {
            location: location.to_owned(),
        });
    }
    if status == 412 || code == "PreconditionFailed" {
        return permanent(StoreError::AlreadyExists {
            location: location.to_owned(),
        });
    }
    if matches!(
        code,
        "BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch"
    ) {
        return Failure::Checksum(format!("{code}: {message}"));
    }
    if status >= 500 || status == 429 || TRANSIENT.contains(&code) {
        return Failure::Transient {
            detail: format!("HTTP {status} {code}: {message}"),
            connect: None,
        };
    }
    permanent(StoreError::Rejected {
        location: location.to_owned(),
        status,
        code: code.to_owned(),
        message: message.to_owned(),
        config: status == 301 || CONFIG.contains(&code),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_respects_minimum_and_part_limit() {
        assert_eq!(effective_part_size(100 << 20, 8 << 20), 8 << 20);
        assert_eq!(effective_part_size(100 << 20, 1 << 20), MIN_PART);
        let huge = 200 * 1024 * 1024 * 1024u64;
        let ps = effective_part_size(huge, 8 << 20);
        assert!(huge.div_ceil(ps) <= MAX_PARTS);
    }

    #[test]
    fn service_errors_are_classified() {
        let c = |status, code| classify_service(status, code, "m", "b", "s3://b/k");
        assert!(matches!(
            c(403, "AccessDenied"),
            Failure::Permanent(StoreError::AccessDenied { .. })
        ));
        assert!(matches!(
            c(403, "SignatureDoesNotMatch"),
            Failure::Permanent(StoreError::AccessDenied { .. })
        ));
        assert!(matches!(
            c(404, "NoSuchBucket"),
            Failure::Permanent(StoreError::NoSuchBucket { .. })
        ));
        assert!(matches!(
            c(404, "NoSuchKey"),
            Failure::Permanent(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            c(412, "PreconditionFailed"),
            Failure::Permanent(StoreError::AlreadyExists { .. })
        ));
        assert!(matches!(c(400, "BadDigest"), Failure::Checksum(_)));
        assert!(matches!(c(503, "SlowDown"), Failure::Transient { .. }));
        assert!(matches!(c(500, "InternalError"), Failure::Transient { .. }));
        assert!(matches!(c(429, ""), Failure::Transient { .. }));
        assert!(matches!(
            c(400, "RequestTimeout"),
            Failure::Transient { .. }
        ));
        assert!(matches!(
            c(409, "ConditionalRequestConflict"),
            Failure::Transient { .. }
        ));
        match c(301, "PermanentRedirect") {
            Failure::Permanent(e @ StoreError::Rejected { .. }) => {
                assert_eq!(e.class(), crate::ErrorClass::Config)
            }
            other => panic!("{other:?}"),
        }
        match c(400, "EntityTooLarge") {
            Failure::Permanent(e @ StoreError::Rejected { .. }) => {
                assert_eq!(e.class(), crate::ErrorClass::Failed)
            }
            other => panic!("{other:?}"),
        }
    }
}
