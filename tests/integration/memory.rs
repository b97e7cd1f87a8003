//! The memory guard through the real binary (issue 6): a tool command that grows past the limit is killed
//! and the agent carries on; an agent that grows itself is stopped (83) with its work stored; the profile's
//! peak matches what was allocated; and, where a child memory cgroup can be made, the guard acts before the
//! kernel's OOM killer does.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(180);

fn actions(r: &Value) -> Vec<String> {
    r["memory"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn growing_tool_command_is_killed_and_the_agent_finishes() {
    let run = RunDir::new("mem-tool-1");
    let mut cmd = run.cmd("alloc-tool");
    cmd.args(["--memory-limit", "400M", "--memory-interval", "100ms"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "success");
    assert_eq!(r["memory"]["limit_source"], "flag");
    assert!(
        actions(&r).contains(&"kill_tool".to_string()),
        "{:#}",
        r["memory"]
    );
    assert!(
        !actions(&r).contains(&"stop_agent".to_string()),
        "{:#}",
        r["memory"]
    );
    let ev = events(&out);
    assert!(
        ev.iter().any(|e| e["kind"] == "memory_warning"),
        "no memory_warning event"
    );
    assert!(ev
        .iter()
        .any(|e| e["kind"] == "memory_action" && e["action"] == "killed_tool_process"));
    // genrun itself stayed small throughout.
    assert_genrun_small(&r);
    assert_no_process_left(&run.workspace());
}

#[test]
fn agent_growing_itself_is_stopped_with_83_and_its_work_stored() {
    let run = RunDir::new("mem-agent-1");
    let mut cmd = run.cmd("alloc-agent");
    cmd.args(["--memory-limit", "400M", "--memory-interval", "100ms"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 83, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "memory");
    assert!(
        actions(&r).contains(&"stop_agent".to_string()),
        "{:#}",
        r["memory"]
    );
    assert!(run.archive_paths().iter().any(|p| p == "started.txt"));
    assert_genrun_small(&r);
    assert_no_process_left(&run.workspace());
}

#[test]
fn profile_peak_is_within_ten_percent_of_what_was_held() {
    let run = RunDir::new("mem-peak-1");
    // Large enough that genrun's and the agent's own few tens of MiB stay within the 10 %.
    let held: u64 = 1 << 30;
    let script = run.dir.path().join("peak.script");
    // Hold 1 GiB (touched) for 2 s, then exit the tool normally.
    std::fs::write(
        &script,
        format!(
            "turn\nbash <<EOF\npython3 -c \"import time; b = b'x' * {held}; time.sleep(2)\"\nEOF\ntext done\n"
        ),
    )
    .unwrap();
    let mut cmd = run.cmd(script.to_str().unwrap());
    cmd.args(["--memory-limit", "4G", "--memory-interval", "100ms"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let r = run.result();
    let peak = r["memory"]["peak_bytes"].as_u64().unwrap();
    assert!(
        peak >= held && peak <= held + held / 10,
        "peak {peak} vs held {held}: {:#}",
        r["memory"]
    );
    assert!(
        r["memory"]["recommendation"]["memory_mib"]
            .as_u64()
            .is_some(),
        "{:#}",
        r["memory"]
    );
    assert!(r["memory"]["p50_bytes"].as_u64().unwrap() <= peak);
}

fn assert_genrun_small(r: &Value) {
    let top = r["memory"]["top_at_peak"].as_array().unwrap();
    assert!(
        top.iter().any(|p| p["is_supervisor"] == true),
        "genrun is not in the profile: {top:?}"
    );
    for p in top {
        if p["is_supervisor"] == true {
            assert!(
                p["rss_bytes"].as_u64().unwrap() < 64 << 20,
                "genrun itself grew: {p}"
            );
        }
    }
}

/// A child memory cgroup of this process's own (never the hierarchy's root), removed on drop.
struct ChildCgroup(PathBuf);

impl ChildCgroup {
    fn create(limit: u64) -> Option<ChildCgroup> {
        if !is_root() {
            return None;
        }
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        // cgroup v1 "N:memory:/path" or v2 "0::/path".
        let (root, rel) = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            if ctrl.split(',').any(|c| c == "memory") {
                Some((PathBuf::from("/sys/fs/cgroup/memory"), path.to_string()))
            } else if ctrl.is_empty() && PathBuf::from("/sys/fs/cgroup/cgroup.controllers").exists()
            {
                Some((PathBuf::from("/sys/fs/cgroup"), path.to_string()))
            } else {
                None
            }
        })?;
        let dir = root
            .join(rel.trim_start_matches('/'))
            .join(format!("genrun-test-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cg = ChildCgroup(dir);
        let limit_file = if cg.0.join("memory.max").exists() {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(cg.0.join(limit_file), limit.to_string()).ok()?;
        Some(cg)
    }
}

impl Drop for ChildCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn in_a_real_cgroup_the_guard_acts_before_the_kernel() {
    let Some(cg) = ChildCgroup::create(400 << 20) else {
        eprintln!("skipped: cannot create a child memory cgroup here (needs root and a writable cgroupfs)");
        return;
    };
    let run = RunDir::new("mem-cgroup-1");
    let inner = {
        let mut c = run.cmd("alloc-tool");
        c.args(["--memory-interval", "100ms"]);
        c
    };
    // Join the cgroup, then become genrun.
    let script = std::ffi::OsStr::new("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"");
    let cmd = wrapped(
        "sh",
        &[std::ffi::OsStr::new("-c"), script, cg.0.as_os_str()],
        &inner,
    );
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let r = run.result();
    let source = r["memory"]["limit_source"].as_str().unwrap();
    assert!(
        source == "cgroup_v1" || source == "cgroup_v2",
        "{:#}",
        r["memory"]
    );
    assert_eq!(r["memory"]["limit_bytes"], 400u64 << 20);
    assert!(
        actions(&r).contains(&"kill_tool".to_string()),
        "{:#}",
        r["memory"]
    );
    assert_eq!(
        r["memory"]["oom_kills"], 0,
        "the kernel acted first: {:#}",
        r["memory"]
    );
    assert_no_process_left(&run.workspace());
}
