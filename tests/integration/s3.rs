//! S3 through the real binary (issue 4), against an S3 protocol server the tests start themselves
//! (`s3s-fs` in-process, with a fault policy): the object layout and checksums, result.json last, the
//! preflight's verdicts, never clobbering a finished run, retries, failures that keep a local copy, job
//! documents read from S3, and SIGTERM while storing.

use std::time::{Duration, Instant};

use genrun_testkit::s3server::{dead_endpoint, FaultRule, S3Op, S3Server};
use serde_json::Value;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(120);

/// Hex SHA-256 of bytes, through the storage crate's own helper (the one genrun uses).
fn sha256_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b");
    std::fs::write(&p, bytes).unwrap();
    genrun_storage::sha256_file(&p).unwrap()
}

/// The result.json genrun kept locally when the store refused it, found through the path its log names.
fn local_result(out: &std::process::Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = regex::Regex::new(r"/[^ \x22]*result\.json").unwrap();
    let local = path
        .find(&stderr)
        .map(|m| m.as_str().to_string())
        .expect("the log names the local result.json");
    serde_json::from_slice(&std::fs::read(&local).unwrap()).unwrap()
}

struct S3 {
    rt: tokio::runtime::Runtime,
    server: S3Server,
}

impl S3 {
    fn start() -> S3 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(S3Server::start()).unwrap();
        rt.block_on(server.create_bucket("artifacts")).unwrap();
        S3 { rt, server }
    }

    /// `genrun run` storing into s3://artifacts/runs.
    fn cmd(&self, run: &RunDir, script: &str) -> std::process::Command {
        let mut cmd = run.cmd(script);
        cmd.env("GENRUN_OUTPUT", "s3://artifacts/runs")
            .env("GENRUN_S3_ENDPOINT", &self.server.endpoint)
            .env("GENRUN_S3_PATH_STYLE", "true");
        cmd.envs(self.server.env());
        cmd
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let client = self.server.client();
        self.rt.block_on(async {
            let o = client
                .get_object()
                .bucket("artifacts")
                .key(key)
                .send()
                .await
                .ok()?;
            Some(o.body.collect().await.ok()?.into_bytes().to_vec())
        })
    }

    fn head(&self, key: &str) -> Option<aws_sdk_s3::operation::head_object::HeadObjectOutput> {
        let client = self.server.client();
        self.rt.block_on(async {
            client
                .head_object()
                .bucket("artifacts")
                .key(key)
                .send()
                .await
                .ok()
        })
    }

    fn result(&self, request_id: &str) -> Value {
        let bytes = self
            .get(&format!("runs/{request_id}/result.json"))
            .expect("result.json in the bucket");
        serde_json::from_slice(&bytes).unwrap()
    }

    fn put(&self, key: &str, body: &[u8]) {
        let client = self.server.client();
        let body = body.to_vec();
        self.rt
            .block_on(async {
                client
                    .put_object()
                    .bucket("artifacts")
                    .key(key)
                    .body(aws_sdk_s3::primitives::ByteStream::from(body))
                    .send()
                    .await
            })
            .unwrap();
    }
}

#[test]
fn a_run_stores_every_artifact_verified_with_result_json_last() {
    let s3 = S3::start();
    let run = RunDir::new("s3-ok-1");
    let out = run_with_deadline(s3.cmd(&run, "success"), LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let r = s3.result("s3-ok-1");
    assert_eq!(r["outcome"], "success");
    let types = [
        ("app.tar.zst", "application/zstd"),
        ("app.tar.gz", "application/gzip"),
        ("manifest.json", "application/json"),
        ("transcript.jsonl.zst", "application/zstd"),
        ("result.json", "application/json"),
        ("status.json", "application/json"),
    ];
    for (name, content_type) in types {
        let key = format!("runs/s3-ok-1/{name}");
        let head = s3.head(&key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(head.content_type(), Some(content_type), "{key}");
        if name != "status.json" {
            let meta = head.metadata().cloned().unwrap_or_default();
            assert_eq!(
                meta.get("request-id").map(String::as_str),
                Some("s3-ok-1"),
                "{key}: {meta:?}"
            );
        }
    }
    // Every stored object's bytes match the checksum the result records, and the archive's metadata
    // carries its sha256.
    for a in r["artifacts"].as_array().unwrap() {
        let name = a["name"].as_str().unwrap();
        let bytes = s3.get(&format!("runs/s3-ok-1/{name}")).unwrap();
        assert_eq!(sha256_hex(&bytes), a["sha256"].as_str().unwrap(), "{name}");
        assert_eq!(a["location"], format!("s3://artifacts/runs/s3-ok-1/{name}"));
    }
    let head = s3.head("runs/s3-ok-1/app.tar.zst").unwrap();
    assert_eq!(
        head.metadata().unwrap().get("sha256").map(String::as_str),
        r["package"]["archives"]["app.tar.zst"]["sha256"].as_str()
    );
    // Every upload carried genrun's own SHA-256 checksum and If-None-Match; result.json was the last PUT.
    let puts: Vec<_> = s3
        .server
        .requests()
        .into_iter()
        .filter(|q| q.op == S3Op::PutObject)
        .collect();
    for p in &puts {
        assert!(
            p.checksum_sha256.is_some(),
            "{} without x-amz-checksum-sha256",
            p.key
        );
        if !p.key.ends_with("status.json") && !p.key.ends_with("result.json") {
            assert_eq!(p.if_none_match.as_deref(), Some("*"), "{}", p.key);
        }
    }
    assert!(
        puts.first().unwrap().key.ends_with("status.json"),
        "the preflight is not first"
    );
    assert!(
        puts.last().unwrap().key.ends_with("result.json"),
        "result.json is not last: {puts:?}"
    );
    let status: Value =
        serde_json::from_slice(&s3.get("runs/s3-ok-1/status.json").unwrap()).unwrap();
    assert_eq!(status["state"], "finished");
    // And the archive holds the app.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("app.tar.zst");
    std::fs::write(&local, s3.get("runs/s3-ok-1/app.tar.zst").unwrap()).unwrap();
    assert!(archive_paths(&local).len() >= 2);
}

#[test]
fn preflight_access_denied_is_77_before_the_agent_starts() {
    let s3 = S3::start();
    s3.server
        .inject(FaultRule::status(403, "AccessDenied").op(S3Op::PutObject));
    let run = RunDir::new("s3-403-1");
    let start = Instant::now();
    let out = run_with_deadline(s3.cmd(&run, "success"), LIMIT);
    assert_eq!(code(&out), 77, "{}", explain(&out));
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the preflight took {:?}",
        start.elapsed()
    );
    // The agent never ran: nothing was written into the workspace.
    let written = std::fs::read_dir(run.workspace())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(written, 0, "the agent ran despite a failed preflight");
    // 403 is not retried, and a store that refused us gets nothing more.
    assert_eq!(s3.server.count(S3Op::PutObject), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("result.json"),
        "the log does not name the local result.json: {stderr}"
    );
}

#[test]
fn preflight_unknown_bucket_is_78() {
    let s3 = S3::start();
    let run = RunDir::new("s3-nobucket-1");
    let mut cmd = s3.cmd(&run, "success");
    cmd.args(["--output", "s3://no-such-bucket/runs"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 78, "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no-such-bucket"),
        "{}",
        explain(&out)
    );
}

#[test]
fn preflight_unreachable_endpoint_is_69() {
    let s3 = S3::start();
    let run = RunDir::new("s3-down-1");
    let mut cmd = s3.cmd(&run, "success");
    cmd.args(["--s3-endpoint", &dead_endpoint().unwrap()]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 69, "{}", explain(&out));
}

#[test]
fn a_finished_run_is_never_clobbered_unless_overwrite() {
    let s3 = S3::start();
    let run = RunDir::new("s3-twice-1");
    let out = run_with_deadline(s3.cmd(&run, "success"), LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let first = s3.get("runs/s3-twice-1/result.json").unwrap();

    let again = RunDir::new("s3-twice-1");
    let out = run_with_deadline(s3.cmd(&again, "fail"), LIMIT);
    assert_eq!(code(&out), 65, "{}", explain(&out));
    assert_eq!(
        s3.get("runs/s3-twice-1/result.json").unwrap(),
        first,
        "result.json was clobbered"
    );

    let mut cmd = s3.cmd(&again, "fail");
    cmd.arg("--overwrite");
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 80, "{}", explain(&out));
    assert_eq!(s3.result("s3-twice-1")["outcome"], "agent_failed");
}

#[test]
fn transient_503s_are_retried_and_the_run_succeeds() {
    let s3 = S3::start();
    s3.server.inject(
        FaultRule::status(503, "SlowDown")
            .op(S3Op::PutObject)
            .skip(1)
            .first(3),
    );
    let run = RunDir::new("s3-503-1");
    let out = run_with_deadline(s3.cmd(&run, "success"), LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    assert_eq!(s3.result("s3-503-1")["outcome"], "success");
}

#[test]
fn exhausted_retries_are_75_with_a_local_copy() {
    let s3 = S3::start();
    s3.server.inject(
        FaultRule::status(503, "ServiceUnavailable")
            .op(S3Op::PutObject)
            .key_suffix("app.tar.gz"),
    );
    let run = RunDir::new("s3-75-1");
    let out = run_with_deadline(s3.cmd(&run, "success"), Duration::from_secs(300));
    assert_eq!(code(&out), 75, "{}", explain(&out));
    let r = s3.result("s3-75-1");
    assert_eq!(r["outcome"], "store_failed");
    assert_eq!(r["agent_outcome"], "success");
    let copy = std::path::PathBuf::from(r["local_copy"].as_str().expect("local_copy named"));
    assert!(
        copy.join("app.tar.gz").is_file(),
        "no local copy in {}",
        copy.display()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(copy.to_str().unwrap()),
        "the log does not name the copy"
    );
    // Nothing half-written: the failed object is absent, not partial.
    assert!(s3.get("runs/s3-75-1/app.tar.gz").is_none());
    let _ = std::fs::remove_dir_all(copy);
}

#[test]
fn refused_result_json_is_77_and_kept_locally() {
    let s3 = S3::start();
    s3.server.inject(
        FaultRule::status(403, "AccessDenied")
            .op(S3Op::PutObject)
            .key_suffix("result.json"),
    );
    let run = RunDir::new("s3-77-1");
    let out = run_with_deadline(s3.cmd(&run, "success"), LIMIT);
    assert_eq!(code(&out), 77, "{}", explain(&out));
    assert!(s3.get("runs/s3-77-1/result.json").is_none());
    let r = local_result(&out);
    assert_eq!(r["outcome"], "access_denied");
    assert_eq!(r["agent_outcome"], "success");
}

#[test]
fn job_document_and_prompt_file_from_s3() {
    let s3 = S3::start();
    s3.put(
        "jobs/j1.json",
        br#"{"prompt_file": "s3://artifacts/prompts/p1.txt", "max_turns": 33}"#,
    );
    s3.put("prompts/p1.txt", b"a prompt kept in S3");
    let run = RunDir::new("s3-job-1");
    let mut cmd = s3.cmd(&run, "success");
    cmd.env_remove("GENRUN_PROMPT")
        .args(["--job", "s3://artifacts/jobs/j1.json"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    assert_eq!(s3.result("s3-job-1")["agent"]["max_turns"], 33);

    let run = RunDir::new("s3-job-2");
    let mut cmd = s3.cmd(&run, "success");
    cmd.env_remove("GENRUN_PROMPT")
        .args(["--job", "s3://artifacts/jobs/missing.json"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 65, "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("jobs/missing.json"),
        "{}",
        explain(&out)
    );
}

#[test]
fn sigterm_while_storing_finishes_within_the_grace_with_the_archive_first() {
    let s3 = S3::start();
    // Every upload but the first of the archive stalls: only SIGTERM's deadline can end storing.
    s3.server.inject(
        FaultRule::stall()
            .op(S3Op::PutObject)
            .key_suffix("app.tar.gz"),
    );
    let run = RunDir::new("s3-term-1");
    let mut cmd = s3.cmd(&run, "success");
    cmd.args(["--stop-grace", "6s"]);
    let g = Running::start(cmd);
    g.wait_kind("storing", LIMIT);
    wait_for("the stalled upload reaching the server", LIMIT, || {
        s3.server
            .requests()
            .iter()
            .any(|q| q.key.ends_with("app.tar.gz"))
    });
    g.signal(libc::SIGTERM);
    let out = g.finish(Duration::from_secs(60));
    assert_eq!(code(&out), 85, "{}", explain(&out));
    let r = s3.result("s3-term-1");
    assert_eq!(r["outcome"], "cancelled");
    assert_eq!(r["agent_outcome"], "success");
    assert!(
        s3.get("runs/s3-term-1/app.tar.zst").is_some(),
        "the archive was not stored"
    );
    assert!(
        r["errors"].to_string().contains("app.tar.gz"),
        "{:#}",
        r["errors"]
    );
    assert_no_process_left(&run.workspace());
}

#[test]
fn a_store_that_stalls_everything_cannot_hold_genrun_past_the_stop_grace() {
    let s3 = S3::start();
    // The preflight gets through; every later PUT (artifacts and result.json) stalls.
    s3.server
        .inject(FaultRule::stall().op(S3Op::PutObject).skip(1));
    let run = RunDir::new("s3-stall-1");
    let mut cmd = s3.cmd(&run, "success");
    cmd.args(["--stop-grace", "4s"]);
    let g = Running::start(cmd);
    g.wait_kind("storing", LIMIT);
    g.signal(libc::SIGTERM);
    // The grace is 4 s; without it bounding result.json too, its 30 s deadline would apply.
    let out = g.finish(Duration::from_secs(20));
    assert_eq!(code(&out), 75, "{}", explain(&out));
    let r = local_result(&out);
    assert_eq!(r["agent_outcome"], "success");
    assert!(r["local_copy"].is_string(), "{r:#}");
    assert_no_process_left(&run.workspace());
}
