//! Shared helpers: fixtures for each store, options for the test server, deadlines, data.

use std::sync::Arc;
use std::time::Duration;

use genrun_storage::{
    Fault, FaultyStore, LocalStore, S3Options, S3Store, StaticCredentials, Store,
};
use genrun_testkit::s3server::S3Server;
use tokio::time::Instant;

pub const BUCKET: &str = "genrun-test";
pub const MIB: usize = 1024 * 1024;

/// A store under test plus whatever keeps it alive.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    /// Whether objects above the (small) test threshold go up as multipart.
    pub multipart: bool,
    pub _keep: Box<dyn std::any::Any + Send>,
}

pub fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// Options pointing at the test server, with small thresholds and quick backoff.
pub fn opts(server: &S3Server) -> S3Options {
    S3Options {
        endpoint: Some(server.endpoint.clone()),
        path_style: true,
        region: Some("us-east-1".into()),
        credentials: Some(StaticCredentials {
            access_key_id: server.access_key.clone(),
            secret_access_key: server.secret_key.clone(),
            session_token: None,
        }),
        multipart_threshold: 6 * MIB as u64,
        part_size: 5 * MIB as u64,
        concurrency: 4,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(30),
        operation_timeout: Duration::from_secs(60),
        max_attempts: 6,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    }
}

pub async fn server() -> S3Server {
    let server = S3Server::start().await.expect("start s3 server");
    server.create_bucket(BUCKET).await.expect("create bucket");
    server
}

pub async fn s3_store(server: &S3Server, base: &str) -> S3Store {
    S3Store::connect(BUCKET, base, &opts(server))
        .await
        .expect("connect")
}

pub async fn local_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::new(dir.path().join("req-1"));
    Fixture {
        store: Arc::new(store),
        multipart: false,
        _keep: Box::new(dir),
    }
}

pub async fn s3_fixture() -> Fixture {
    let server = server().await;
    let store = s3_store(&server, "runs/req-1/").await;
    Fixture {
        store: Arc::new(store),
        multipart: true,
        _keep: Box::new(server),
    }
}

/// Benign faults (a short delay on every call): the contract must hold through the wrapper.
fn benign<S: Store + 'static>(inner: S) -> FaultyStore<S> {
    let f = FaultyStore::new(inner);
    f.inject(None, None, None, Fault::Delay(Duration::from_millis(1)));
    f
}

pub async fn faulty_local_fixture() -> Fixture {
    let Fixture {
        store,
        multipart,
        _keep,
    } = local_fixture().await;
    Fixture {
        store: Arc::new(benign(store)),
        multipart,
        _keep,
    }
}

pub async fn faulty_s3_fixture() -> Fixture {
    let Fixture {
        store,
        multipart,
        _keep,
    } = s3_fixture().await;
    Fixture {
        store: Arc::new(benign(store)),
        multipart,
        _keep,
    }
}

/// Lists the keys in the test bucket.
pub async fn keys(server: &S3Server) -> Vec<String> {
    let out = server
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list objects");
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// Multipart uploads still open in the test bucket, through the real ListMultipartUploads call.
pub async fn open_uploads(server: &S3Server) -> usize {
    let out = server
        .client()
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list multipart uploads");
    out.uploads().len()
}
