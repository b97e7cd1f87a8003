//! Benchmark: storing a run's artifacts with genrun-storage vs `aws s3 cp` (awscli from PyPI), against the
//! same in-process S3 server (testkit's `S3Server`, s3s over s3s-fs on 127.0.0.1).
//!
//! Why: the upload tail (agent exit to result.json stored) must stay well under a second for a typical app,
//! and a 200 MiB artifact must not be slower than the reference client. Prints medians and ratios; asserts
//! nothing about speed.
//!
//! Run: `cargo bench -p genrun-storage --bench store` (needs `aws` on PATH: `pip install awscli`; without
//! it only genrun's figures are printed). `GENRUN_BENCH_ITERS=N` and `GENRUN_BENCH_BIG_MIB=M` tune it.
//!
//! What is timed:
//! - small set: a ~70 KB tar.zst, ~80 KB tar.gz, ~20 KB manifest, ~8 KB transcript stored concurrently, then
//!   result.json. genrun: `open` (client set-up) + the five puts, in-process. awscli: one
//!   `aws s3 cp --recursive` process for the same five files (process start included: that is what a
//!   script would pay).
//! - large: one file (200 MiB by default), genrun with its default multipart settings vs `aws s3 cp`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use genrun_storage::{open, Body, PutOptions, S3Options, StaticCredentials, Target};
use genrun_testkit::s3server::S3Server;

const BUCKET: &str = "bench";

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn options(server: &S3Server) -> S3Options {
    S3Options {
        endpoint: Some(server.endpoint.clone()),
        path_style: true,
        region: Some("us-east-1".into()),
        credentials: Some(StaticCredentials {
            access_key_id: server.access_key.clone(),
            secret_access_key: server.secret_key.clone(),
            session_token: None,
        }),
        ..S3Options::default()
    }
}

struct Artifact {
    name: &'static str,
    content_type: &'static str,
}

const SMALL: [Artifact; 4] = [
    Artifact {
        name: "app.tar.zst",
        content_type: "application/zstd",
    },
    Artifact {
        name: "app.tar.gz",
        content_type: "application/gzip",
    },
    Artifact {
        name: "manifest.json",
        content_type: "application/json",
    },
    Artifact {
        name: "transcript.jsonl",
        content_type: "application/x-ndjson",
    },
];

async fn genrun_small(server: &S3Server, dir: &Path, run: &str) -> Duration {
    let started = Instant::now();
    let target = Target::S3 {
        bucket: BUCKET.into(),
        prefix: "genrun/small".into(),
    };
    let store = open(&target, run, &options(server)).await.expect("open");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let puts = SMALL.iter().map(|a| {
        let store = store.clone();
        let opts = PutOptions {
            content_type: a.content_type.into(),
            metadata: BTreeMap::from([("request-id".to_owned(), run.to_owned())]),
            if_none_match: true,
        };
        let path = dir.join(a.name);
        async move { store.put(a.name, Body::File(path), &opts, deadline).await }
    });
    for r in futures::future::join_all(puts).await {
        r.expect("put");
    }
    let result = std::fs::read(dir.join("result.json")).expect("result");
    let opts = PutOptions {
        content_type: "application/json".into(),
        metadata: BTreeMap::new(),
        if_none_match: true,
    };
    store
        .put(
            "result.json",
            Body::Bytes(Bytes::from(result)),
            &opts,
            deadline,
        )
        .await
        .expect("put result");
    started.elapsed()
}

async fn genrun_big(server: &S3Server, file: &Path, run: &str) -> Duration {
    let started = Instant::now();
    let target = Target::S3 {
        bucket: BUCKET.into(),
        prefix: "genrun/big".into(),
    };
    let store = open(&target, run, &options(server)).await.expect("open");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let opts = PutOptions {
        content_type: "application/octet-stream".into(),
        metadata: BTreeMap::new(),
        if_none_match: true,
    };
    let stored = store
        .put("big.bin", Body::File(file.to_path_buf()), &opts, deadline)
        .await
        .expect("put big");
    assert!(stored.multipart);
    started.elapsed()
}

fn aws(server: &S3Server, config: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new("aws")
        .args(args)
        .args(["--endpoint-url", &server.endpoint, "--only-show-errors"])
        .envs(server.env())
        .env("AWS_CONFIG_FILE", config)
        .output()
        .expect("run aws");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

async fn delete_prefix(server: &S3Server, prefix: &str) {
    let client = server.client();
    let list = client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .send()
        .await
        .expect("list");
    for o in list.contents() {
        if let Some(k) = o.key() {
            client
                .delete_object()
                .bucket(BUCKET)
                .key(k)
                .send()
                .await
                .expect("delete");
        }
    }
}

fn have_aws() -> bool {
    Command::new("aws")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn print_row(what: &str, genrun: Duration, aws: Option<Duration>) {
    match aws {
        Some(a) => println!(
            "{what:<28} genrun {:>9.1} ms   aws s3 cp {:>9.1} ms   aws/genrun {:>6.2}x",
            genrun.as_secs_f64() * 1e3,
            a.as_secs_f64() * 1e3,
            a.as_secs_f64() / genrun.as_secs_f64()
        ),
        None => println!(
            "{what:<28} genrun {:>9.1} ms   (aws not installed)",
            genrun.as_secs_f64() * 1e3
        ),
    }
}

fn main() {
    let iters: usize = std::env::var("GENRUN_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let big_mib: usize = std::env::var("GENRUN_BENCH_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let server = S3Server::start().await.expect("server");
        server.create_bucket(BUCKET).await.expect("bucket");
        let work = tempfile::tempdir().expect("tempdir");
        let small = work.path().join("small");
        std::fs::create_dir_all(&small).expect("mkdir");
        let sizes = [70_000, 80_000, 20_000, 8_000];
        for (a, size) in SMALL.iter().zip(sizes) {
            std::fs::write(small.join(a.name), data(size, size as u64)).expect("write");
        }
        std::fs::write(small.join("result.json"), data(3_000, 3)).expect("write");
        let big: PathBuf = work.path().join("big.bin");
        std::fs::write(&big, data(big_mib * 1024 * 1024, 42)).expect("write big");
        let config = work.path().join("aws-config");
        std::fs::write(
            &config,
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n",
        )
        .expect("config");
        let aws_ok = have_aws();
        let small_dir = small.to_string_lossy().into_owned();
        let big_path = big.to_string_lossy().into_owned();

        // Warm-up (connection set-up, page cache, Python bytecode).
        genrun_small(&server, &small, "warm").await;
        if aws_ok {
            aws(
                &server,
                &config,
                &[
                    "s3",
                    "cp",
                    "--recursive",
                    &small_dir,
                    "s3://bench/aws/small/warm/",
                ],
            );
        }

        let mut g = Vec::new();
        let mut a = Vec::new();
        for i in 0..iters {
            g.push(genrun_small(&server, &small, &format!("run-{i}")).await);
            if aws_ok {
                let dest = format!("s3://bench/aws/small/run-{i}/");
                a.push(aws(
                    &server,
                    &config,
                    &["s3", "cp", "--recursive", &small_dir, &dest],
                ));
            }
        }
        println!(
            "genrun-storage vs aws s3 cp, {iters} iterations, medians, server {}",
            server.endpoint
        );
        let gm = median(&mut g);
        let am = (!a.is_empty()).then(|| median(&mut a));
        print_row("small set (5 files, 181 KB)", gm, am);

        let big_iters = iters.div_ceil(3).max(3);
        let mut g = Vec::new();
        let mut a = Vec::new();
        for i in 0..big_iters {
            g.push(genrun_big(&server, &big, &format!("run-{i}")).await);
            delete_prefix(&server, "genrun/big/").await;
            if aws_ok {
                a.push(aws(
                    &server,
                    &config,
                    &["s3", "cp", &big_path, "s3://bench/aws/big/big.bin"],
                ));
                delete_prefix(&server, "aws/big/").await;
            }
        }
        let gm = median(&mut g);
        let am = (!a.is_empty()).then(|| median(&mut a));
        print_row(&format!("large ({big_mib} MiB, {big_iters} iters)"), gm, am);
        let mbps = (big_mib as f64) / gm.as_secs_f64();
        println!("genrun large throughput: {mbps:.0} MiB/s");
    });
}
