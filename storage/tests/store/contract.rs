//! One set of contract tests, run over every store: local, S3, and both wrapped in a benign FaultyStore.

use std::collections::BTreeMap;

use bytes::Bytes;
use genrun_storage::{
    preflight, sha256_file, Body, ErrorClass, PutOptions, StoreError, RESULT_KEY, STATUS_KEY,
};

use crate::support::*;

fn json() -> PutOptions {
    PutOptions {
        content_type: "application/json".into(),
        metadata: BTreeMap::new(),
        if_none_match: true,
    }
}

/// Bytes round-trip; the record names the key, size, sha256 and location.
pub async fn put_bytes_roundtrip(f: Fixture) {
    let body = Bytes::from_static(b"{\"state\":\"done\"}");
    let stored = f
        .store
        .put(
            "result.json",
            Body::Bytes(body.clone()),
            &json(),
            deadline(60),
        )
        .await
        .expect("put");
    assert_eq!(stored.key, "result.json");
    assert_eq!(stored.bytes, body.len() as u64);
    assert_eq!(stored.sha256, sha256_hex(&body));
    assert_eq!(stored.location, f.store.location("result.json"));
    assert!(
        stored.location.ends_with("req-1/result.json"),
        "{}",
        stored.location
    );
    assert!(!stored.multipart);
    assert_eq!(stored.attempts, 1);
    assert_eq!(
        f.store.get("result.json", deadline(60)).await.expect("get"),
        body
    );
    assert!(f
        .store
        .exists("result.json", deadline(60))
        .await
        .expect("exists"));
}

/// A file body under a nested key round-trips and its sha256 matches `sha256_file`.
pub async fn put_file_nested_key(f: Fixture) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.tar.zst");
    let content = data(300 * 1024, 7);
    std::fs::write(&path, &content).expect("write");
    let opts = PutOptions {
        content_type: "application/zstd".into(),
        ..json()
    };
    let stored = f
        .store
        .put(
            "archive/app.tar.zst",
            Body::File(path.clone()),
            &opts,
            deadline(60),
        )
        .await
        .expect("put");
    assert_eq!(stored.sha256, sha256_file(&path).expect("hash"));
    assert_eq!(stored.bytes, content.len() as u64);
    let back = f
        .store
        .get("archive/app.tar.zst", deadline(60))
        .await
        .expect("get");
    assert_eq!(&back[..], &content[..]);
}

/// `if_none_match` refuses an existing key and leaves the first object intact.
pub async fn if_none_match_refuses_existing(f: Fixture) {
    f.store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"first")),
            &json(),
            deadline(60),
        )
        .await
        .expect("first put");
    let err = f
        .store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"second")),
            &json(),
            deadline(60),
        )
        .await
        .expect_err("second put must be refused");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Exists);
    assert!(err.to_string().contains("result.json"), "{err}");
    assert_eq!(
        &f.store.get("result.json", deadline(60)).await.expect("get")[..],
        b"first"
    );
}

/// Without `if_none_match` a put replaces the object.
pub async fn overwrite_replaces(f: Fixture) {
    let opts = PutOptions {
        if_none_match: false,
        ..json()
    };
    for body in [&b"one"[..], &b"two"[..]] {
        f.store
            .put(
                STATUS_KEY,
                Body::Bytes(Bytes::copy_from_slice(body)),
                &opts,
                deadline(60),
            )
            .await
            .expect("put");
    }
    assert_eq!(
        &f.store.get(STATUS_KEY, deadline(60)).await.expect("get")[..],
        b"two"
    );
}

/// A missing key: `get` is NotFound naming it, `exists` is false.
pub async fn missing_is_not_found(f: Fixture) {
    let err = f
        .store
        .get("nope.json", deadline(60))
        .await
        .expect_err("missing");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::NotFound);
    assert!(err.to_string().contains("nope.json"), "{err}");
    assert!(!f
        .store
        .exists("nope.json", deadline(60))
        .await
        .expect("exists"));
}

/// An empty object is an object.
pub async fn empty_body(f: Fixture) {
    let stored = f
        .store
        .put("empty", Body::Bytes(Bytes::new()), &json(), deadline(60))
        .await
        .expect("put");
    assert_eq!(stored.bytes, 0);
    assert_eq!(stored.sha256, sha256_hex(b""));
    assert!(f
        .store
        .get("empty", deadline(60))
        .await
        .expect("get")
        .is_empty());
    assert!(f.store.exists("empty", deadline(60)).await.expect("exists"));
}

/// Keys that would escape the base are refused before any I/O.
pub async fn invalid_keys_refused(f: Fixture) {
    for key in ["../escape", "/abs", "a//b", ""] {
        let err = f
            .store
            .put(
                key,
                Body::Bytes(Bytes::from_static(b"x")),
                &json(),
                deadline(60),
            )
            .await
            .expect_err("invalid key");
        assert!(
            matches!(err, StoreError::InvalidKey { .. }),
            "{key:?}: {err:?}"
        );
    }
}

/// An object above the multipart threshold (6 MiB in tests) round-trips, in parts on S3.
pub async fn large_object(f: Fixture) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.bin");
    let content = data(13 * MIB + 123, 3);
    std::fs::write(&path, &content).expect("write");
    let stored = f
        .store
        .put("big.bin", Body::File(path), &json(), deadline(120))
        .await
        .expect("put");
    assert_eq!(stored.multipart, f.multipart);
    assert_eq!(stored.sha256, sha256_hex(&content));
    assert_eq!(stored.bytes, content.len() as u64);
    let back = f.store.get("big.bin", deadline(120)).await.expect("get");
    assert!(back[..] == content[..], "content differs");
}

/// Preflight writes status.json, refuses a finished run unless overwriting, and then updates status.json.
pub async fn preflight_guards_finished_runs(f: Fixture) {
    let s = f.store.as_ref();
    preflight(
        s,
        Bytes::from_static(b"{\"state\":\"running\",\"n\":1}"),
        false,
        deadline(60),
    )
    .await
    .expect("preflight on an empty base");
    assert_eq!(
        &s.get(STATUS_KEY, deadline(60)).await.expect("status")[..],
        b"{\"state\":\"running\",\"n\":1}"
    );
    preflight(
        s,
        Bytes::from_static(b"{\"state\":\"running\",\"n\":2}"),
        false,
        deadline(60),
    )
    .await
    .expect("a run without result.json may be restarted");

    s.put(
        RESULT_KEY,
        Body::Bytes(Bytes::from_static(b"{}")),
        &json(),
        deadline(60),
    )
    .await
    .expect("result");
    let err = preflight(
        s,
        Bytes::from_static(b"{\"state\":\"running\",\"n\":3}"),
        false,
        deadline(60),
    )
    .await
    .expect_err("finished run");
    assert_eq!(err.class(), ErrorClass::Exists);
    assert!(err.to_string().contains("result.json"), "{err}");
    assert_eq!(
        &s.get(STATUS_KEY, deadline(60)).await.expect("status")[..],
        b"{\"state\":\"running\",\"n\":2}"
    );

    preflight(
        s,
        Bytes::from_static(b"{\"state\":\"running\",\"n\":4}"),
        true,
        deadline(60),
    )
    .await
    .expect("overwrite");
    assert_eq!(
        &s.get(STATUS_KEY, deadline(60)).await.expect("status")[..],
        b"{\"state\":\"running\",\"n\":4}"
    );
}

/// The artifacts of a run stored concurrently, then result.json last.
pub async fn concurrent_artifacts(f: Fixture) {
    let names = [
        "app.tar.zst",
        "app.tar.gz",
        "manifest.json",
        "transcript.jsonl",
    ];
    let futs = names.iter().enumerate().map(|(i, name)| {
        let store = f.store.clone();
        async move {
            let body = Bytes::from(data(20_000 + i * 1000, i as u64));
            let stored = store
                .put(name, Body::Bytes(body.clone()), &json(), deadline(60))
                .await;
            (stored, body)
        }
    });
    for (stored, body) in futures::future::join_all(futs).await {
        assert_eq!(stored.expect("put").sha256, sha256_hex(&body));
    }
    f.store
        .put(
            RESULT_KEY,
            Body::Bytes(Bytes::from_static(b"{}")),
            &json(),
            deadline(60),
        )
        .await
        .expect("result");
    for name in names {
        assert!(
            f.store.exists(name, deadline(60)).await.expect("exists"),
            "{name}"
        );
    }
}

macro_rules! contract_suite {
    ($suite:ident, $fixture:path) => {
        mod $suite {
            contract_suite!(@cases $fixture;
                put_bytes_roundtrip, put_file_nested_key, if_none_match_refuses_existing, overwrite_replaces,
                missing_is_not_found, empty_body, invalid_keys_refused, large_object,
                preflight_guards_finished_runs, concurrent_artifacts);
        }
    };
    (@cases $fixture:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case($fixture().await).await;
            }
        )*
    };
}

contract_suite!(local, crate::support::local_fixture);
contract_suite!(s3, crate::support::s3_fixture);
contract_suite!(faulty_local, crate::support::faulty_local_fixture);
contract_suite!(faulty_s3, crate::support::faulty_s3_fixture);
