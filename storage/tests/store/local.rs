//! The local store: atomic writes, no temp files left behind, errors on unwritable targets.

use std::collections::BTreeMap;

use bytes::Bytes;
use genrun_storage::{sha256_file, Body, ErrorClass, LocalStore, PutOptions, Store, StoreError};

use crate::support::*;

fn put_opts(if_none_match: bool) -> PutOptions {
    PutOptions {
        content_type: "application/json".into(),
        metadata: BTreeMap::new(),
        if_none_match,
    }
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn no_temp_files_remain_after_success_or_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::new(dir.path());
    store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"1")),
            &put_opts(true),
            deadline(10),
        )
        .await
        .expect("put");
    store
        .put(
            "result.json",
            Body::Bytes(Bytes::from_static(b"2")),
            &put_opts(true),
            deadline(10),
        )
        .await
        .expect_err("exists");
    store
        .put(
            "status.json",
            Body::Bytes(Bytes::from_static(b"3")),
            &put_opts(false),
            deadline(10),
        )
        .await
        .expect("put");
    store
        .put(
            "status.json",
            Body::Bytes(Bytes::from_static(b"4")),
            &put_opts(false),
            deadline(10),
        )
        .await
        .expect("replace");
    assert_eq!(
        entries(dir.path()),
        vec!["result.json".to_owned(), "status.json".to_owned()]
    );
    assert_eq!(
        std::fs::read(dir.path().join("result.json")).expect("read"),
        b"1"
    );
    assert_eq!(
        std::fs::read(dir.path().join("status.json")).expect("read"),
        b"4"
    );
}

#[tokio::test]
async fn a_missing_source_file_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::new(dir.path().join("out"));
    let err = store
        .put(
            "app.tar.zst",
            Body::File(dir.path().join("missing")),
            &put_opts(true),
            deadline(10),
        )
        .await
        .expect_err("missing source");
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Failed);
    assert!(entries(&dir.path().join("out")).is_empty());
}

#[tokio::test]
async fn a_base_that_is_a_file_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let store = LocalStore::new(&file);
    let err = store
        .put(
            "status.json",
            Body::Bytes(Bytes::from_static(b"{}")),
            &put_opts(false),
            deadline(10),
        )
        .await
        .expect_err("base is a file");
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
}

#[test]
fn sha256_file_matches_known_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    std::fs::write(&path, "abc").expect("write");
    assert_eq!(
        sha256_file(&path).expect("hash"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
