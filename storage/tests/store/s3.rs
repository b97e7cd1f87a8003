//! The S3 store on the wire and under protocol-level faults injected by the test server.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::types::ChecksumMode;
use bytes::Bytes;
use genrun_storage::{
    open, preflight, read_url, Body, ErrorClass, PutOptions, S3Options, StaticCredentials, Store,
    StoreError, Target,
};
use genrun_testkit::s3server::{dead_endpoint, FaultAction, FaultRule, S3Op, S3Server};
use tokio::time::Instant;

use crate::support::*;

fn opts_json() -> PutOptions {
    PutOptions {
        content_type: "application/json".into(),
        metadata: BTreeMap::new(),
        if_none_match: true,
    }
}

fn big_file(dir: &tempfile::TempDir, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.path().join("big.bin");
    let content = data(len, 11);
    std::fs::write(&path, &content).expect("write");
    (path, content)
}

async fn assert_absent(server: &S3Server, key: &str) {
    let keys = keys(server).await;
    assert!(
        !keys.iter().any(|k| k == key),
        "{key} must not exist, bucket has {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_content_type_metadata_and_plain_checksum_header() {
    let server = server().await;
    let target: Target = format!("s3://{BUCKET}/runs/prod").parse().expect("target");
    let store = open(&target, "req-42", &opts(&server)).await.expect("open");
    let mut metadata = BTreeMap::new();
    metadata.insert("request-id".to_owned(), "req-42".to_owned());
    metadata.insert("archive-sha256".to_owned(), "ab".repeat(32));
    let body = Bytes::from(data(70_000, 1));
    let put = PutOptions {
        content_type: "application/zstd".into(),
        metadata,
        if_none_match: true,
    };
    let stored = store
        .put("app.tar.zst", Body::Bytes(body.clone()), &put, deadline(60))
        .await
        .expect("put");
    assert_eq!(
        stored.location,
        format!("s3://{BUCKET}/runs/prod/req-42/app.tar.zst")
    );
    assert_eq!(
        keys(&server).await,
        vec!["runs/prod/req-42/app.tar.zst".to_owned()]
    );

    let head = server
        .client()
        .head_object()
        .bucket(BUCKET)
        .key("runs/prod/req-42/app.tar.zst")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("application/zstd"));
    let meta = head.metadata().expect("metadata");
    assert_eq!(meta.get("request-id").map(String::as_str), Some("req-42"));
    assert_eq!(
        meta.get("archive-sha256").map(String::as_str),
        Some("ab".repeat(32).as_str())
    );
    let expected_b64 = aws_smithy_types::base64::encode(hex::decode(&stored.sha256).expect("hex"));
    assert_eq!(
        head.checksum_sha256(),
        Some(expected_b64.as_str()),
        "server stored and verified our sha256"
    );

    let put_req = server
        .requests()
        .into_iter()
        .find(|r| r.op == S3Op::PutObject)
        .expect("a PutObject request");
    assert_eq!(
        put_req.checksum_sha256.as_deref(),
        Some(expected_b64.as_str())
    );
    assert_eq!(put_req.if_none_match.as_deref(), Some("*"));
    let sha_header = put_req.content_sha256.unwrap_or_default();
    assert!(
        !sha_header.starts_with("STREAMING"),
        "aws-chunked was used: {sha_header}"
    );
    assert!(put_req.content_encoding.unwrap_or_default().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_n_503_then_success_after_retries() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    server.inject(FaultRule::status(503, "SlowDown").method("PUT").first(3));
    let stored = store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &opts_json(),
            deadline(60),
        )
        .await
        .expect("put succeeds after retries");
    assert_eq!(stored.attempts, 4);
    assert_eq!(server.count(S3Op::PutObject), 4);
    assert_eq!(keys(&server).await, vec!["r/result.json".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reset_mid_body_is_retried() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    server.inject(FaultRule::reset(64 * 1024).op(S3Op::PutObject).first(1));
    let body = Bytes::from(data(MIB, 5));
    let stored = store
        .put(
            "app.tar.gz",
            Body::Bytes(body.clone()),
            &opts_json(),
            deadline(60),
        )
        .await
        .expect("put succeeds after a reset");
    assert_eq!(stored.attempts, 2);
    let puts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.op == S3Op::PutObject)
        .collect();
    assert!(
        puts[0].fault.as_deref().unwrap_or("").contains("Reset"),
        "{puts:?}"
    );
    assert_eq!(puts[1].status, Some(200), "{puts:?}");
    assert_eq!(
        &store.get("app.tar.gz", deadline(60)).await.expect("get")[..],
        &body[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_response_times_out_within_a_bound() {
    let server = server().await;
    let o = S3Options {
        read_timeout: Duration::from_secs(1),
        operation_timeout: Duration::from_secs(3),
        max_attempts: 2,
        ..opts(&server)
    };
    let store = genrun_storage::S3Store::connect(BUCKET, "r/", &o)
        .await
        .expect("connect");
    server.inject(FaultRule::stall().op(S3Op::PutObject));
    let started = Instant::now();
    let err = store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &opts_json(),
            deadline(120),
        )
        .await
        .expect_err("stalled");
    assert!(
        matches!(err, StoreError::Exhausted { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(err.class(), ErrorClass::Failed);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "hung for {:?}",
        started.elapsed()
    );
    assert_eq!(server.count(S3Op::PutObject), 2);
    assert_absent(&server, "r/result.json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_bounds_retries() {
    let server = server().await;
    let o = S3Options {
        max_attempts: 1000,
        ..opts(&server)
    };
    let store = genrun_storage::S3Store::connect(BUCKET, "r/", &o)
        .await
        .expect("connect");
    server.inject(FaultRule::status(500, "InternalError").method("PUT"));
    let started = Instant::now();
    let err = store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &opts_json(),
            Instant::now() + Duration::from_millis(1500),
        )
        .await
        .expect_err("always 500");
    assert!(
        matches!(
            err,
            StoreError::Exhausted { .. } | StoreError::Timeout { .. }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "ran for {:?}",
        started.elapsed()
    );
    assert!(server.count(S3Op::PutObject) >= 2, "retried at least once");
    assert!(
        server.count(S3Op::PutObject) < 1000,
        "stopped by the deadline, not by attempts"
    );
    assert_absent(&server, "r/result.json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_is_unreachable_within_seconds() {
    let server = server().await;
    let o = S3Options {
        endpoint: Some(dead_endpoint().expect("port")),
        ..opts(&server)
    };
    let target: Target = format!("s3://{BUCKET}/p").parse().expect("target");
    let store = open(&target, "req-1", &o).await.expect("open does no i/o");
    let started = Instant::now();
    let err = preflight(
        store.as_ref(),
        Bytes::from_static(b"{}"),
        false,
        deadline(60),
    )
    .await
    .expect_err("down");
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Unavailable);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_denied_without_retry() {
    let server = server().await;
    let o = S3Options {
        credentials: Some(StaticCredentials {
            access_key_id: server.access_key.clone(),
            secret_access_key: "wrong-secret".into(),
            session_token: None,
        }),
        ..opts(&server)
    };
    let store = genrun_storage::S3Store::connect(BUCKET, "r/", &o)
        .await
        .expect("connect");
    let err = store
        .put(
            "status.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &opts_json(),
            deadline(60),
        )
        .await
        .expect_err("denied");
    assert!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::AccessDenied);
    assert_eq!(server.count(S3Op::PutObject), 1, "403 is not retried");

    let err = preflight(&store, Bytes::from_static(b"{}"), false, deadline(60))
        .await
        .expect_err("preflight denied");
    assert_eq!(err.class(), ErrorClass::AccessDenied, "{err:?}");
    assert_eq!(server.count(S3Op::HeadObject), 1, "403 is not retried");
    assert_eq!(
        server.count(S3Op::PutObject),
        1,
        "preflight stopped at the denied HEAD"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_403_on_result_json_only() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    server.inject(
        FaultRule::status(403, "AccessDenied")
            .method("PUT")
            .key_suffix("result.json"),
    );
    store
        .put(
            "manifest.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &opts_json(),
            deadline(60),
        )
        .await
        .expect("other keys unaffected");
    let err = store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &opts_json(),
            deadline(60),
        )
        .await
        .expect_err("denied");
    assert_eq!(err.class(), ErrorClass::AccessDenied, "{err:?}");
    let result_puts = server
        .requests()
        .iter()
        .filter(|r| r.op == S3Op::PutObject && r.key.ends_with("result.json"))
        .count();
    assert_eq!(result_puts, 1);
    assert_eq!(keys(&server).await, vec!["r/manifest.json".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_bucket_is_a_config_error() {
    let server = server().await;
    let target: Target = "s3://no-such-bucket/p".parse().expect("target");
    let store = open(&target, "req-1", &opts(&server)).await.expect("open");
    let err = preflight(
        store.as_ref(),
        Bytes::from_static(b"{}"),
        false,
        deadline(60),
    )
    .await
    .expect_err("no bucket");
    assert!(
        matches!(&err, StoreError::NoSuchBucket { bucket } if bucket == "no-such-bucket"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Config);
    assert_eq!(server.count(S3Op::PutObject), 1, "not retried");
    assert!(
        !server.root.join("no-such-bucket").exists(),
        "the bucket was not created by the write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_in_transit_once_is_retried() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    server.inject(FaultRule::corrupt_body().op(S3Op::PutObject).first(1));
    let body = Bytes::from(data(100_000, 9));
    let stored = store
        .put(
            "app.tar.zst",
            Body::Bytes(body.clone()),
            &opts_json(),
            deadline(60),
        )
        .await
        .expect("retry carries the right bytes");
    assert_eq!(stored.attempts, 2);
    let puts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.op == S3Op::PutObject)
        .collect();
    assert_eq!(
        puts[0].status,
        Some(400),
        "server rejected the damaged body: {puts:?}"
    );
    assert_eq!(
        &store.get("app.tar.zst", deadline(60)).await.expect("get")[..],
        &body[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_reported_by_server_stores_nothing() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    server.inject(FaultRule::corrupt_body().op(S3Op::PutObject));
    let err = store
        .put(
            "result.json",
            Body::Bytes(Bytes::from(data(5000, 2))),
            &opts_json(),
            deadline(60),
        )
        .await
        .expect_err("always corrupted");
    assert!(
        matches!(err, StoreError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("BadDigest"), "{err}");
    assert_eq!(err.class(), ErrorClass::Failed);
    assert_absent(&server, "r/result.json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_parts_in_parallel_with_per_part_retries() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, content) = big_file(&dir, 13 * MIB);
    server.inject(
        FaultRule::status(503, "SlowDown")
            .op(S3Op::UploadPart)
            .query_contains("partNumber=2")
            .first(2),
    );
    server.inject(FaultRule::new(FaultAction::Delay(Duration::from_secs(2))).op(S3Op::UploadPart));
    let stored = store
        .put("big.bin", Body::File(path), &opts_json(), deadline(120))
        .await
        .expect("multipart put");
    assert!(stored.multipart);
    assert_eq!(stored.attempts, 3, "two retries of part 2");
    assert_eq!(stored.sha256, sha256_hex(&content));
    assert_eq!(server.count(S3Op::CreateMultipartUpload), 1);
    assert_eq!(server.count(S3Op::UploadPart), 5, "3 parts + 2 retries");
    assert!(server.max_in_flight() >= 2, "parts went up concurrently");
    let parts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.op == S3Op::UploadPart)
        .collect();
    assert!(
        parts.iter().all(|r| r.checksum_sha256.is_some()),
        "every part carries its sha256"
    );
    assert_eq!(open_uploads(&server).await, 0);
    assert_eq!(
        &store.get("big.bin", deadline(120)).await.expect("get")[..],
        &content[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_failure_aborts_and_leaves_nothing() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = big_file(&dir, 13 * MIB);
    server.inject(
        FaultRule::status(500, "InternalError")
            .op(S3Op::UploadPart)
            .query_contains("partNumber=2"),
    );
    let err = store
        .put("big.bin", Body::File(path), &opts_json(), deadline(120))
        .await
        .expect_err("part 2 always fails");
    assert!(matches!(err, StoreError::Exhausted { .. }), "{err:?}");
    assert!(server.count(S3Op::AbortMultipartUpload) >= 1);
    assert_eq!(
        open_uploads(&server).await,
        0,
        "no multipart upload left open"
    );
    assert_eq!(
        server.leftover_part_files().expect("read root"),
        0,
        "no part left on disk"
    );
    assert_absent(&server, "r/big.bin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_if_none_match_refuses_existing_and_aborts() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    store
        .put(
            "big.bin",
            Body::Bytes(Bytes::from_static(b"first")),
            &opts_json(),
            deadline(60),
        )
        .await
        .expect("first");
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = big_file(&dir, 7 * MIB);
    let err = store
        .put("big.bin", Body::File(path), &opts_json(), deadline(120))
        .await
        .expect_err("exists");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(open_uploads(&server).await, 0);
    assert_eq!(server.leftover_part_files().expect("read root"), 0);
    assert_eq!(
        &store.get("big.bin", deadline(60)).await.expect("get")[..],
        b"first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_reset_on_part_and_on_complete_are_retried() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, content) = big_file(&dir, 11 * MIB);
    server.inject(FaultRule::reset(MIB as u64).op(S3Op::UploadPart).first(1));
    server.inject(
        FaultRule::reset(0)
            .op(S3Op::CompleteMultipartUpload)
            .first(1),
    );
    let stored = store
        .put("big.bin", Body::File(path), &opts_json(), deadline(120))
        .await
        .expect("put");
    assert_eq!(stored.attempts, 3);
    assert_eq!(server.count(S3Op::CompleteMultipartUpload), 2);
    assert_eq!(open_uploads(&server).await, 0);
    assert_eq!(
        &store.get("big.bin", deadline(60)).await.expect("get")[..],
        &content[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_multipart_put_is_aborted() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = big_file(&dir, 11 * MIB);
    server.inject(FaultRule::stall().op(S3Op::UploadPart));
    let put_opts = opts_json();
    let mut put = Box::pin(store.put("big.bin", Body::File(path), &put_opts, deadline(120)));
    // Wait (bounded) until the upload is open and a part is in flight, then drop the put.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            r = &mut put => panic!("put ended while parts stall: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if server.count(S3Op::UploadPart) > 0 {
            break;
        }
        assert!(Instant::now() < until, "no part was sent");
    }
    assert_eq!(open_uploads(&server).await, 1);
    drop(put);
    assert_eq!(
        server.count(S3Op::AbortMultipartUpload),
        0,
        "nothing aborted before the drop"
    );
    let until = Instant::now() + Duration::from_secs(30);
    while open_uploads(&server).await > 0 {
        assert!(Instant::now() < until, "the dropped upload was not aborted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_absent(&server, "r/big.bin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_url_reads_job_documents_from_s3_and_disk() {
    let server = server().await;
    server
        .client()
        .put_object()
        .bucket(BUCKET)
        .key("jobs/job-1.json")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"{\"prompt\":\"build\"}",
        ))
        .send()
        .await
        .expect("seed job");
    let o = opts(&server);
    let got = read_url(&format!("s3://{BUCKET}/jobs/job-1.json"), &o, deadline(60))
        .await
        .expect("read");
    assert_eq!(&got[..], b"{\"prompt\":\"build\"}");

    let err = read_url(
        &format!("s3://{BUCKET}/jobs/missing.json"),
        &o,
        deadline(60),
    )
    .await
    .expect_err("missing");
    assert_eq!(err.class(), ErrorClass::NotFound, "{err:?}");
    assert!(err.to_string().contains("jobs/missing.json"), "{err}");

    let err = read_url("s3://no-such-bucket/jobs/job-1.json", &o, deadline(60))
        .await
        .expect_err("no bucket");
    assert!(matches!(err, StoreError::NoSuchBucket { .. }), "{err:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prompt.txt");
    std::fs::write(&path, "make an app").expect("write");
    let got = read_url(path.to_str().expect("utf-8"), &o, deadline(60))
        .await
        .expect("local");
    assert_eq!(&got[..], b"make an app");
    let missing = dir.path().join("nope.txt");
    let err = read_url(missing.to_str().expect("utf-8"), &o, deadline(60))
        .await
        .expect_err("missing local");
    assert_eq!(err.class(), ErrorClass::NotFound);

    let err = read_url("s3://bucket-only", &o, deadline(60))
        .await
        .expect_err("invalid");
    assert!(
        err.to_string().contains("expected s3://BUCKET/KEY"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_retries_transient_errors() {
    let server = server().await;
    let store = s3_store(&server, "r/").await;
    store
        .put(
            "manifest.json",
            Body::Bytes(Bytes::from_static(b"[1]")),
            &opts_json(),
            deadline(60),
        )
        .await
        .expect("put");
    server.inject(
        FaultRule::status(503, "ServiceUnavailable")
            .op(S3Op::GetObject)
            .first(2),
    );
    assert_eq!(
        &store.get("manifest.json", deadline(60)).await.expect("get")[..],
        b"[1]"
    );
    assert_eq!(server.count(S3Op::GetObject), 3);
}
