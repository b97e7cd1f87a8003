//! Tests of the memory watch against fixture trees (`sandbox/tests/fixtures/memory/`), a local ECS
//! metadata endpoint, live processes, and real cgroups where this process may create them.
//!
//! Child processes are this test binary re-run on `helper_process_entry` (ignored, so it never runs as a
//! test of its own) with `GENRUN_MEMORY_TEST_HELPER` saying what to do; they report on stdout with lines
//! prefixed `GENRUN:`.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

const MIB: u64 = 1 << 20;
const FIXTURE_MEMTOTAL: u64 = 8052428 * 1024;
const HELPER_ENV: &str = "GENRUN_MEMORY_TEST_HELPER";
const REQUIRE_CGROUP_ENV: &str = "GENRUN_REQUIRE_CGROUP_TESTS";

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/memory")
        .join(name)
}

fn fixture(name: &str) -> Probe {
    let dir = fixture_dir(name);
    Probe {
        proc_root: dir.join("proc"),
        cgroup_root: dir.join("sys/fs/cgroup"),
        ecs_metadata_uri: None,
    }
}

fn cg(name: &str, rel: &str) -> PathBuf {
    fixture_dir(name).join("sys/fs/cgroup").join(rel)
}

// ---------------------------------------------------------------------------------------------------------
// Limit detection from fixture trees.

#[tokio::test]
async fn v2_nested_cgroup_limit_is_own_not_ancestors() {
    // /proc/self/cgroup "0::/ecs/task-1/container-a"; 512 MiB there, 1 GiB on the task, "max" above.
    let p = fixture("v2-nested");
    let limit = p.detect_limit(None).await;
    assert_eq!(limit.source, LimitSource::CgroupV2);
    assert_eq!(limit.bytes, 512 * MIB);
    assert_eq!(
        limit.cgroup_dir,
        Some(cg("v2-nested", "ecs/task-1/container-a"))
    );
    assert_eq!(
        own_memory_cgroup_dir(&p),
        Some(cg("v2-nested", "ecs/task-1/container-a"))
    );
}

#[tokio::test]
async fn v2_container_at_its_namespace_root() {
    // A private cgroup namespace: "0::/" and the container's cgroup mounted as /sys/fs/cgroup itself.
    let p = fixture("v2-ns-root");
    let limit = p.detect_limit(None).await;
    assert_eq!((limit.bytes, limit.source), (GIB, LimitSource::CgroupV2));
    assert_eq!(limit.cgroup_dir.as_deref(), Some(p.cgroup_root.as_path()));
    assert_eq!(
        serde_json::to_value(&limit).unwrap()["cgroup_dir"],
        p.cgroup_root.to_str().unwrap()
    );
    assert_eq!(p.sampler(&limit).sample(None).used_bytes, 300_000_000);
    // A scratch cgroup is never made at a hierarchy's (apparent) root, nor without a cgroup.
    assert!(matches!(
        ScratchCgroup::create(&p, "x", GIB),
        Err(ScratchCgroupError::AtRoot)
    ));
    assert!(matches!(
        ScratchCgroup::create(&fixture("bare"), "x", GIB),
        Err(ScratchCgroupError::NoCgroup)
    ));
}

#[tokio::test]
async fn v2_unlimited_own_cgroup_takes_the_parents_limit() {
    // Own memory.max "max"; the task cgroup above has 2 GiB.
    let p = fixture("v2-parent-limit");
    let limit = p.detect_limit(None).await;
    assert_eq!(
        (limit.bytes, limit.source),
        (2048 * MIB, LimitSource::CgroupV2)
    );
    assert_eq!(limit.cgroup_dir, Some(cg("v2-parent-limit", "ecs/task-2")));
}

#[tokio::test]
async fn v2_max_everywhere_falls_to_meminfo() {
    let limit = fixture("v2-max").detect_limit(None).await;
    assert_eq!(
        (limit.bytes, limit.source),
        (FIXTURE_MEMTOTAL, LimitSource::Meminfo)
    );
    assert_eq!(limit.cgroup_dir, None);
}

#[tokio::test]
async fn v1_memory_line_not_first_and_not_at_root() {
    let p = fixture("v1-nested");
    let limit = p.detect_limit(None).await;
    assert_eq!(
        (limit.bytes, limit.source),
        (256 * MIB, LimitSource::CgroupV1)
    );
    assert_eq!(
        limit.cgroup_dir,
        Some(cg("v1-nested", "memory/process_api/9b9dd7648a01"))
    );
    assert_eq!(
        own_memory_cgroup(&p),
        Some(MemoryCgroup {
            dir: cg("v1-nested", "memory/process_api/9b9dd7648a01"),
            version: MemoryCgroupVersion::V1
        })
    );
}

#[tokio::test]
async fn v1_huge_value_means_unlimited() {
    // 9223372036854771712 in the cgroup and every ancestor.
    let limit = fixture("v1-unlimited").detect_limit(None).await;
    assert_eq!(limit.source, LimitSource::Meminfo);
}

#[tokio::test]
async fn hybrid_uses_the_v1_memory_controller() {
    // The unified hierarchy carries a decoy memory.max of 1 MiB that must not be used.
    let limit = fixture("hybrid").detect_limit(None).await;
    assert_eq!(
        (limit.bytes, limit.source),
        (768 * MIB, LimitSource::CgroupV1)
    );
}

#[tokio::test]
async fn v1_bind_mounted_container_cgroup_found_through_mountinfo() {
    // /proc/self/cgroup says /docker/0123abcd, and mountinfo says that sub-tree is what is mounted at
    // /sys/fs/cgroup/memory; /sys/fs/cgroup/memory/docker/0123abcd does not exist.
    let limit = fixture("v1-docker-bind").detect_limit(None).await;
    assert_eq!(
        (limit.bytes, limit.source),
        (400 * MIB, LimitSource::CgroupV1)
    );
    assert_eq!(limit.cgroup_dir, Some(cg("v1-docker-bind", "memory")));
}

#[tokio::test]
async fn missing_cgroup_files_go_to_the_next_source() {
    // The named v2 directory does not exist (and there is no mountinfo).
    let limit = fixture("missing-dir").detect_limit(None).await;
    assert_eq!(limit.source, LimitSource::Meminfo);
    // The v1 directory exists but has no memory.limit_in_bytes.
    let limit = fixture("v1-missing-limit").detect_limit(None).await;
    assert_eq!(limit.source, LimitSource::Meminfo);
    assert_eq!(own_memory_cgroup_dir(&fixture("v1-missing-limit")), None);
}

#[tokio::test]
async fn nothing_readable_gives_unknown() {
    // No /proc/self/cgroup, no meminfo.
    let p = fixture("bare");
    let limit = p.detect_limit(None).await;
    assert_eq!(
        (limit.bytes, limit.source),
        (u64::MAX, LimitSource::Unknown)
    );
    assert_eq!(own_memory_cgroup_dir(&p), None);
    assert_eq!(p.detect_vcpu(None).await, 4.0);
}

// ---------------------------------------------------------------------------------------------------------
// The fallback order, with a real ECS task metadata endpoint on 127.0.0.1.

#[derive(Clone)]
enum Reply {
    Json(&'static str),
    Status(u16),
    Hang,
}

struct Ecs {
    uri: String,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Ecs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ecs_server(reply: Reply) -> Ecs {
    use http_body_util::Full;
    use hyper::body::Bytes;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (h, pa) = (hits.clone(), paths.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (reply, h, pa) = (reply.clone(), h.clone(), pa.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let reply = reply.clone();
                        h.fetch_add(1, Ordering::SeqCst);
                        pa.lock().unwrap().push(req.uri().path().to_string());
                        async move {
                            let (status, body) = match reply {
                                Reply::Json(body) => (200, body),
                                Reply::Status(code) => (code, "{}"),
                                Reply::Hang => {
                                    std::future::pending::<()>().await;
                                    (200, "{}")
                                }
                            };
                            let resp = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(body.as_bytes())))
                                .unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    Ecs {
        uri: format!("http://{addr}/v4/abc"),
        hits,
        paths,
        task,
    }
}

const ECS_TASK: &str = r#"{"Cluster":"c","TaskARN":"arn:t","Family":"genrun","Limits":{"CPU":0.5,"Memory":2048},
    "Containers":[{"Name":"genrun","Limits":{"CPU":512,"Memory":2048}}]}"#;

fn with_ecs(name: &str, ecs: &Ecs) -> Probe {
    Probe {
        ecs_metadata_uri: Some(ecs.uri.clone()),
        ..fixture(name)
    }
}

#[tokio::test]
async fn flag_wins_over_cgroup_and_ecs() {
    let ecs = ecs_server(Reply::Json(ECS_TASK)).await;
    let limit = with_ecs("v1-nested", &ecs)
        .detect_limit(Some(400 * MIB))
        .await;
    assert_eq!(
        limit,
        MemoryLimit {
            bytes: 400 * MIB,
            source: LimitSource::Flag,
            cgroup_dir: None
        }
    );
    assert_eq!(ecs.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cgroup_wins_over_ecs() {
    let ecs = ecs_server(Reply::Json(ECS_TASK)).await;
    let limit = with_ecs("v1-nested", &ecs).detect_limit(None).await;
    assert_eq!(
        (limit.bytes, limit.source),
        (256 * MIB, LimitSource::CgroupV1)
    );
    assert_eq!(ecs.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn ecs_wins_over_meminfo_when_the_cgroup_is_unlimited() {
    let ecs = ecs_server(Reply::Json(ECS_TASK)).await;
    let p = with_ecs("v1-unlimited", &ecs);
    let limit = p.detect_limit(None).await;
    assert_eq!(
        (limit.bytes, limit.source),
        (2048 * MIB, LimitSource::EcsMetadata)
    );
    assert_eq!(p.detect_vcpu(None).await, 0.5);
    assert_eq!(p.detect_vcpu(Some(2.0)).await, 2.0);
    assert_eq!(
        *ecs.paths.lock().unwrap(),
        vec!["/v4/abc/task", "/v4/abc/task"]
    );
}

#[tokio::test]
async fn ecs_failures_fall_back_to_meminfo_and_four_vcpu() {
    let cases = [
        ("500", Reply::Status(500)),
        ("404", Reply::Status(404)),
        ("malformed", Reply::Json("{not json")),
        ("no limits", Reply::Json(r#"{"Cluster":"c"}"#)),
        (
            "zero memory",
            Reply::Json(r#"{"Limits":{"CPU":0,"Memory":0}}"#),
        ),
        ("hang", Reply::Hang),
    ];
    for (what, reply) in cases {
        let ecs = ecs_server(reply).await;
        let p = with_ecs("v1-unlimited", &ecs);
        let started = Instant::now();
        let limit = p.detect_limit(None).await;
        assert_eq!(
            (limit.bytes, limit.source),
            (FIXTURE_MEMTOTAL, LimitSource::Meminfo),
            "{what}"
        );
        assert_eq!(p.detect_vcpu(None).await, 4.0, "{what}");
        assert!(
            ecs.hits.load(Ordering::SeqCst) >= 1,
            "{what}: endpoint not asked"
        );
        // Bounds a hang only (the timeout is 2 s per request).
        assert!(started.elapsed() < Duration::from_secs(30), "{what}");
    }
}

#[tokio::test]
async fn ecs_unreachable_falls_back_to_meminfo() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = Probe {
        ecs_metadata_uri: Some(format!("http://{addr}/v4/gone")),
        ..fixture("v1-unlimited")
    };
    assert_eq!(p.detect_limit(None).await.source, LimitSource::Meminfo);
    assert_eq!(p.detect_vcpu(None).await, 4.0);
}

// ---------------------------------------------------------------------------------------------------------
// Sampling from fixture trees.

#[tokio::test]
async fn v2_working_set_and_oom_kills() {
    let p = fixture("v2-nested");
    let limit = p.detect_limit(None).await;
    let mut s = p.sampler(&limit);
    assert!(s.uses_cgroup());
    let sample = s.sample(None);
    // memory.current 300000000 - inactive_file 50000000.
    assert_eq!(sample.used_bytes, 250_000_000);
    assert_eq!(sample.cgroup_oom_kills, Some(1));
}

#[tokio::test]
async fn v2_usage_read_where_the_limit_is() {
    // The limit is the parent's, so usage and OOM kills are the parent's too.
    let p = fixture("v2-parent-limit");
    let limit = p.detect_limit(None).await;
    let sample = p.sampler(&limit).sample(None);
    assert_eq!(sample.used_bytes, 800_000_000);
    assert_eq!(sample.cgroup_oom_kills, Some(4));
}

#[tokio::test]
async fn v1_working_set_uses_total_inactive_file_and_oom_control() {
    let p = fixture("v1-nested");
    let limit = p.detect_limit(None).await;
    let sample = p.sampler(&limit).sample(None);
    // usage_in_bytes 310000000 - total_inactive_file 40000000 (not the local inactive_file).
    assert_eq!(sample.used_bytes, 270_000_000);
    assert_eq!(sample.cgroup_oom_kills, Some(3));
}

#[tokio::test]
async fn without_a_cgroup_limit_usage_is_the_tree_but_oom_kills_still_read() {
    // A flag limit: usage is the process tree (none in this fixture), the counter is the own cgroup's.
    let p = fixture("v1-nested");
    let limit = p.detect_limit(Some(GIB)).await;
    let mut s = p.sampler(&limit);
    assert!(!s.uses_cgroup());
    let sample = s.sample(None);
    assert_eq!(sample.used_bytes, 0);
    assert_eq!(sample.cgroup_oom_kills, Some(3));
    // No cgroup visible at all: no counter.
    let p = fixture("proc-tree");
    assert_eq!(
        p.sampler(&p.detect_limit(Some(GIB)).await)
            .sample(None)
            .cgroup_oom_kills,
        None
    );
}

const GIB: u64 = 1 << 30;

#[tokio::test]
async fn tree_rss_sums_genrun_descendants_and_adopted_orphans() {
    // genrun (1) -> claude (50) -> npm (60) -> node (61); zombie sh (62); orphan esbuild (70, re-parented
    // to genrun) -> vite (71); sshd (99) is not ours.
    let p = fixture("proc-tree");
    let limit = p.detect_limit(Some(GIB)).await;
    let sample = p.sampler(&limit).with_supervisor_pid(1).sample(Some(50));
    let page = super::proctable::system_page_size();
    let pages = 5120 + 60000 + 15000 + 175000 + 7500 + 2500;
    assert_eq!(sample.used_bytes, pages * page);
    let got: Vec<(u32, &str, bool, bool)> = sample
        .processes
        .iter()
        .map(|p| (p.pid, p.name.as_str(), p.is_agent, p.is_supervisor))
        .collect();
    assert_eq!(
        got,
        vec![
            (61, "node", false, false),
            (50, "claude", true, false),
            (60, "npm run build", false, false),
            (70, "esbuild", false, false),
            (1, "genrun", false, true),
        ]
    );
    assert_eq!(sample.processes[0].rss_bytes, 175000 * page);
    // An agent outside genrun's tree still counts (with its own tree).
    let sample = p.sampler(&limit).with_supervisor_pid(70).sample(Some(60));
    assert_eq!(sample.used_bytes, (7500 + 2500 + 15000 + 175000) * page);
}

#[tokio::test]
async fn guard_on_the_fixture_tree_kills_the_build_not_the_agent() {
    let p = fixture("proc-tree");
    let limit = p
        .detect_limit(Some(
            1100 * MIB * super::proctable::system_page_size() / 4096,
        ))
        .await;
    let sample = p.sampler(&limit).with_supervisor_pid(1).sample(Some(50));
    let mut guard = Guard::new(GuardConfig::default(), limit.bytes);
    assert!(matches!(
        guard.decide(&sample, 50),
        GuardAction::KillTool { pid: 61, .. }
    ));
}

// ---------------------------------------------------------------------------------------------------------
// Live processes.

/// Spawns this test binary as a helper in `mode`.
fn helper(mode: &str, stdin: Stdio) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "memory::tests::helper_process_entry",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(HELPER_ENV, mode)
    .stdin(stdin)
    .stdout(Stdio::piped());
    cmd
}

/// Reads helper lines until one starts with `GENRUN:<word>`; returns the rest of it.
fn expect_line(out: &mut BufReader<ChildStdout>, word: &str) -> String {
    let prefix = format!("GENRUN:{word}");
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "helper ended before {prefix}");
        if let Some(rest) = line.trim_end().strip_prefix(&prefix) {
            return rest.trim().to_string();
        }
    }
}

/// Kills and reaps a helper whatever happens to the test.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rss_tree_sum_grows_by_what_a_child_allocates() {
    const ALLOC_MIB: u64 = 50;
    // helper (parent mode) -> helper (alloc mode); the sampler treats the first as genrun.
    let mut child = Reaped(
        helper(&format!("parent:{ALLOC_MIB}"), Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let grandchild: u32 = expect_line(&mut out, "ready").parse().unwrap();
    let probe = Probe::system();
    let limit = MemoryLimit {
        bytes: 4 * GIB,
        source: LimitSource::Flag,
        cgroup_dir: None,
    };
    let mut sampler = probe.sampler(&limit).with_supervisor_pid(child.0.id());
    let before = sampler.sample(Some(grandchild));
    assert!(before
        .processes
        .iter()
        .any(|p| p.pid == grandchild && p.is_agent));
    assert!(before
        .processes
        .iter()
        .any(|p| p.pid == child.0.id() && p.is_supervisor));

    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    expect_line(&mut out, "allocated");
    let want = ALLOC_MIB * MIB;
    let deadline = Instant::now() + Duration::from_secs(60);
    let grown = loop {
        let s = sampler.sample(Some(grandchild));
        let grown = s.used_bytes.saturating_sub(before.used_bytes);
        if grown >= want * 9 / 10 || Instant::now() > deadline {
            break (grown, s);
        }
        // Polling a condition under a deadline; the pause only keeps the loop from spinning.
        std::thread::sleep(Duration::from_millis(5));
    };
    let (grown, after) = grown;
    println!(
        "tree rss before {} KiB, after {} KiB, grown {} KiB (allocated {} KiB)",
        before.used_bytes >> 10,
        after.used_bytes >> 10,
        grown >> 10,
        want >> 10
    );
    let err = (grown as f64 - want as f64).abs() / want as f64;
    assert!(err <= 0.10, "grew by {grown} bytes for {want} allocated");
    assert_eq!(after.processes[0].pid, grandchild, "{:?}", after.processes);
    drop(stdin);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn sampler_cost_per_sample() {
    // Prints the figure; speed is not asserted. Both modes: tree RSS, and cgroup working set where this
    // process's memory cgroup is visible.
    let probe = Probe::system();
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count();
    let mut modes = vec![(
        "process tree",
        MemoryLimit {
            bytes: GIB,
            source: LimitSource::Flag,
            cgroup_dir: None,
        },
    )];
    if let Some(own) = own_memory_cgroup(&probe) {
        let source = match own.version {
            MemoryCgroupVersion::V1 => LimitSource::CgroupV1,
            MemoryCgroupVersion::V2 => LimitSource::CgroupV2,
        };
        modes.push((
            "cgroup working set",
            MemoryLimit {
                bytes: GIB,
                source,
                cgroup_dir: Some(own.dir),
            },
        ));
    }
    for (mode, limit) in modes {
        let mut sampler = probe.sampler(&limit);
        // The first sample reads every process once (cold); later ones only genrun's tree and new pids.
        let t = Instant::now();
        sampler.sample(None);
        let cold = t.elapsed();
        let mut times = Vec::new();
        for _ in 0..300 {
            let t = Instant::now();
            let s = sampler.sample(None);
            times.push(t.elapsed());
            assert!(s.used_bytes > 0);
            assert!(s
                .processes
                .iter()
                .any(|p| p.is_supervisor && p.pid == std::process::id()));
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        println!(
            "sampler cost ({mode}, {procs} processes in /proc, {} build): cold {cold:?}; then mean {:?}, \
             p50 {:?}, p99 {:?}",
            if cfg!(debug_assertions) { "debug" } else { "release" },
            mean,
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
}

/// Not a test: the entry point of helper child processes (see the module doc).
#[test]
#[ignore = "helper process entry, run by other tests"]
fn helper_process_entry() {
    let Ok(mode) = std::env::var(HELPER_ENV) else {
        return;
    };
    let parts: Vec<&str> = mode.split(':').collect();
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "GENRUN:{line}").unwrap();
        out.flush().unwrap();
    };
    let stdin = std::io::stdin();
    let wait_eof = || {
        let mut sink = String::new();
        while stdin.lock().read_line(&mut sink).unwrap_or(0) > 0 {}
    };
    match parts.as_slice() {
        ["parent", mib] => {
            let status = helper(&format!("alloc:{mib}:wait"), Stdio::inherit())
                .stdout(Stdio::inherit())
                .status()
                .unwrap();
            assert!(status.success());
        }
        ["alloc", mib, when] => {
            if *when == "wait" {
                say(format!("ready {}", std::process::id()));
                let mut line = String::new();
                stdin.lock().read_line(&mut line).unwrap();
            }
            let len = mib.parse::<usize>().unwrap() << 20;
            let mut block = vec![0u8; len];
            // Touch every page so it is resident.
            for i in (0..len).step_by(4096) {
                block[i] = 1;
            }
            std::hint::black_box(&block);
            say("allocated".into());
            wait_eof();
            std::hint::black_box(&block);
        }
        ["probe"] => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let probe = Probe::system();
            let limit = rt.block_on(probe.detect_limit(None));
            let sample = probe.sampler(&limit).sample(None);
            let report = serde_json::json!({
                "limit": limit,
                "used_bytes": sample.used_bytes,
                "oom_kills": sample.cgroup_oom_kills,
            });
            say(format!("probe {report}"));
        }
        other => panic!("unknown helper mode {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Real cgroups: only where this process may create a child of its own memory cgroup (root, writable
// cgroupfs). Set GENRUN_REQUIRE_CGROUP_TESTS=1 to make a skip a failure.

fn scratch_or_skip(tag: &str, limit: u64) -> Option<ScratchCgroup> {
    let required = std::env::var(REQUIRE_CGROUP_ENV).is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(!required, "{REQUIRE_CGROUP_ENV}=1 but: {why}");
        println!("SKIPPED (real cgroup): {why}");
        None
    };
    if !nix::unistd::geteuid().is_root() {
        return skip("not root".into());
    }
    let name = format!("genrun-memtest-{}-{tag}", std::process::id());
    match ScratchCgroup::create(&Probe::system(), &name, limit) {
        Ok(s) => Some(s),
        Err(e @ (ScratchCgroupError::NoCgroup | ScratchCgroupError::AtRoot)) => skip(e.to_string()),
        Err(ScratchCgroupError::Create { path, source })
            if matches!(
                source.raw_os_error(),
                Some(libc::EROFS | libc::EACCES | libc::EPERM)
            ) =>
        {
            skip(format!("cannot create {}: {source}", path.display()))
        }
        Err(e) => panic!("{e}: {:?}", std::error::Error::source(&e)),
    }
}

#[test]
fn real_cgroup_limit_seen_from_a_child_inside_it() {
    let Some(scratch) = scratch_or_skip("probe", 256 * MIB) else {
        return;
    };
    let own = own_memory_cgroup_dir(&Probe::system()).unwrap();
    assert_eq!(
        scratch.dir().parent(),
        Some(own.as_path()),
        "must be a child of our own cgroup"
    );
    let mut cmd = helper("probe", Stdio::null());
    scratch.join_on_spawn(&mut cmd).unwrap();
    let mut child = Reaped(cmd.spawn().unwrap());
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let report: serde_json::Value = serde_json::from_str(&expect_line(&mut out, "probe")).unwrap();
    let want_source = match scratch.version() {
        MemoryCgroupVersion::V1 => "cgroup_v1",
        MemoryCgroupVersion::V2 => "cgroup_v2",
    };
    assert_eq!(report["limit"]["source"], want_source, "{report}");
    assert_eq!(report["limit"]["bytes"], 256 * MIB, "{report}");
    assert_eq!(
        report["limit"]["cgroup_dir"],
        scratch.dir().to_str().unwrap(),
        "{report}"
    );
    let used = report["used_bytes"].as_u64().unwrap();
    assert!(used > 0 && used < 256 * MIB, "{report}");
    assert_eq!(report["oom_kills"], 0, "{report}");
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn real_cgroup_kernel_oom_kill_is_counted() {
    let Some(scratch) = scratch_or_skip("oom", 64 * MIB) else {
        return;
    };
    let limit = MemoryLimit {
        bytes: 64 * MIB,
        source: match scratch.version() {
            MemoryCgroupVersion::V1 => LimitSource::CgroupV1,
            MemoryCgroupVersion::V2 => LimitSource::CgroupV2,
        },
        cgroup_dir: Some(scratch.dir().to_path_buf()),
    };
    let mut sampler = Probe::system().sampler(&limit);
    assert_eq!(sampler.sample(None).cgroup_oom_kills, Some(0));
    let mut cmd = helper("alloc:256:now", Stdio::null());
    scratch.join_on_spawn(&mut cmd).unwrap();
    let mut child = Reaped(cmd.spawn().unwrap());
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(sampler.sample(None).cgroup_oom_kills, Some(1));
    assert_eq!(scratch.oom_kills(), Some(1));
}

#[test]
fn scratch_cgroup_is_removed_on_drop_even_with_a_process_inside() {
    let Some(scratch) = scratch_or_skip("drop", 128 * MIB) else {
        return;
    };
    let dir = scratch.dir().to_path_buf();
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    scratch.join_on_spawn(&mut cmd).unwrap();
    let child = Reaped(cmd.spawn().unwrap());
    assert_eq!(scratch.pids(), vec![child.0.id()]);
    drop(scratch);
    assert!(!dir.exists(), "{} left behind", dir.display());
    // The process was moved back to our own cgroup, not killed.
    let own = own_memory_cgroup_dir(&Probe::system()).unwrap();
    let procs = std::fs::read_to_string(own.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l.trim() == child.0.id().to_string()));
}
