//! The fault-injecting wrapper: failures, delays and corruption at the Store level.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use genrun_storage::{
    open, Body, ErrorClass, Fault, FaultOp, FaultyStore, LocalStore, PutOptions, S3Options, Store,
    StoreError, Target,
};
use tokio::time::Instant;

use crate::support::*;

fn put_opts() -> PutOptions {
    PutOptions {
        content_type: "application/json".into(),
        metadata: BTreeMap::new(),
        if_none_match: false,
    }
}

fn exhausted(location: &str) -> StoreError {
    StoreError::Exhausted {
        location: location.to_owned(),
        attempts: 6,
        last: "HTTP 503 SlowDown".into(),
    }
}

#[tokio::test]
async fn fails_the_first_n_calls_then_passes_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FaultyStore::new(LocalStore::new(dir.path())).fail_first(2, exhausted);
    for _ in 0..2 {
        let err = store
            .put(
                "result.json",
                Body::Bytes(Bytes::from_static(b"{}")),
                &put_opts(),
                deadline(10),
            )
            .await
            .expect_err("injected");
        assert!(
            matches!(&err, StoreError::Exhausted { location, .. } if location.ends_with("result.json")),
            "{err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Failed);
    }
    assert!(
        !dir.path().join("result.json").exists(),
        "failed calls did not reach the inner store"
    );
    store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &put_opts(),
            deadline(10),
        )
        .await
        .expect("third call passes");
    assert_eq!(store.calls(), 3);
    assert_eq!(store.faults_fired(), 2);
    assert!(dir.path().join("result.json").exists());
}

#[tokio::test]
async fn faults_target_an_operation_and_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FaultyStore::new(LocalStore::new(dir.path()));
    store.inject(
        Some(FaultOp::Put),
        Some("result.json"),
        None,
        Fault::fail(|loc| StoreError::AccessDenied {
            location: loc.to_owned(),
            code: "AccessDenied".into(),
            message: String::new(),
        }),
    );
    store
        .put(
            "manifest.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &put_opts(),
            deadline(10),
        )
        .await
        .expect("other key");
    for _ in 0..3 {
        let err = store
            .put(
                "result.json",
                Body::Bytes(Bytes::from_static(b"{}")),
                &put_opts(),
                deadline(10),
            )
            .await
            .expect_err("always denied");
        assert_eq!(err.class(), ErrorClass::AccessDenied);
    }
    assert!(!store
        .exists("result.json", deadline(10))
        .await
        .expect("exists is not a put"));
}

#[tokio::test]
async fn delay_past_the_deadline_is_a_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FaultyStore::new(LocalStore::new(dir.path()));
    store.inject(None, None, Some(1), Fault::Delay(Duration::from_secs(3600)));
    let started = Instant::now();
    let err = store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &put_opts(),
            Instant::now() + Duration::from_millis(200),
        )
        .await
        .expect_err("deadline");
    assert!(matches!(err, StoreError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!dir.path().join("result.json").exists());
}

#[tokio::test]
async fn corruption_is_visible_to_a_reader_that_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FaultyStore::new(LocalStore::new(dir.path()));
    store.inject(Some(FaultOp::Put), None, Some(1), Fault::Corrupt);
    let body = Bytes::from(data(1000, 4));
    let stored = store
        .put(
            "app.tar.zst",
            Body::Bytes(body.clone()),
            &put_opts(),
            deadline(10),
        )
        .await
        .expect("put");
    assert_eq!(
        stored.sha256,
        sha256_hex(&body),
        "the record claims the original bytes"
    );
    let back = store.get("app.tar.zst", deadline(10)).await.expect("get");
    assert_ne!(sha256_hex(&back), stored.sha256, "what was stored differs");

    store.inject(Some(FaultOp::Get), None, Some(1), Fault::Corrupt);
    store
        .put("b", Body::Bytes(body.clone()), &put_opts(), deadline(10))
        .await
        .expect("put");
    assert_ne!(
        &store.get("b", deadline(10)).await.expect("get")[..],
        &body[..]
    );
    assert_eq!(
        &store.get("b", deadline(10)).await.expect("get")[..],
        &body[..],
        "only once"
    );
}

#[tokio::test]
async fn wraps_what_open_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::Local(dir.path().to_path_buf());
    let inner: Arc<dyn Store> = open(&target, "req-9", &S3Options::default())
        .await
        .expect("open");
    let store = FaultyStore::new(inner).fail_first(1, exhausted);
    assert!(store.exists("x", deadline(10)).await.is_err());
    assert!(!store.exists("x", deadline(10)).await.expect("second call"));
    assert_eq!(
        store.location("x"),
        dir.path().join("req-9").join("x").display().to_string()
    );
}
