//! Supervision through the real binary (issue 5): stop sequences, limits, signals to genrun, sweeping
//! leftover processes, reaping, the PID 1 path and the agent's environment. Each test checks the exit
//! code, a complete result.json, the partial app stored, and that NO process of the run is left (in /proc).

use std::time::Duration;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(120);

fn assert_complete(run: &RunDir, outcome: &str) -> serde_json::Value {
    let r = run.result();
    assert_eq!(r["outcome"], outcome, "{r:#}");
    assert!(r["finished_at"].is_string());
    assert!(
        run.artifacts().join("app.tar.zst").is_file(),
        "partial app not stored"
    );
    assert_no_process_left(&run.workspace());
    r
}

#[test]
fn sigterm_mid_run_salvages_the_work_as_cancelled_85() {
    let run = RunDir::new("term-1");
    let g = Running::start(run.cmd("slow"));
    g.wait_event("a file written", LIMIT, |e| {
        e["kind"] == "tool" && e["name"] == "Write"
    });
    g.signal(libc::SIGTERM);
    let out = g.finish(LIMIT);
    assert_eq!(code(&out), 85, "{}", explain(&out));
    let r = assert_complete(&run, "cancelled");
    assert!(
        r["agent"]["stop"]["reason"]
            .as_str()
            .unwrap()
            .contains("SIGTERM"),
        "{r:#}"
    );
    assert_eq!(r["agent"]["stop"]["signals_sent"][0], "SIGINT");
    // The agent answered SIGINT with its result line, as the CLI does.
    assert_eq!(r["agent"]["subtype"], "error_during_execution");
    assert!(
        run.archive_paths().iter().any(|p| p == "slow/02.txt"),
        "{:?}",
        run.archive_paths()
    );
}

#[test]
fn agent_ignoring_sigint_and_sigterm_is_killed_and_swept() {
    let run = RunDir::new("stubborn-1");
    let mut cmd = run.cmd("ignore-signals");
    cmd.args(["--timeout", "2s", "--stop-grace", "8s"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 82, "{}", explain(&out));
    let r = assert_complete(&run, "timeout");
    let sent = r["agent"]["stop"]["signals_sent"].to_string();
    assert!(
        sent.contains("SIGINT") && sent.contains("SIGTERM") && sent.contains("SIGKILL"),
        "{sent}"
    );
    assert!(run.archive_paths().iter().any(|p| p == "stubborn.txt"));
}

#[test]
fn second_sigterm_skips_straight_to_result_json() {
    let run = RunDir::new("term-2");
    let mut cmd = run.cmd("ignore-signals");
    cmd.args(["--stop-grace", "60s"]);
    let g = Running::start(cmd);
    g.wait_event("the agent ignoring signals", LIMIT, |e| e["kind"] == "text");
    g.signal(libc::SIGTERM);
    g.wait_kind("stopping", LIMIT);
    g.signal(libc::SIGTERM);
    // With a 60 s grace, only the second signal can make genrun finish this early.
    let out = g.finish(Duration::from_secs(30));
    assert_eq!(code(&out), 85, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "cancelled");
    assert!(r["agent"]["stop"]["signals_sent"]
        .to_string()
        .contains("SIGKILL"));
    assert_no_process_left(&run.workspace());
}

#[test]
fn setsid_grandchildren_are_swept_and_counted() {
    let run = RunDir::new("orphans-1");
    let out = run_with_deadline(run.cmd("grandchildren"), LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let r = assert_complete(&run, "success");
    assert!(
        r["agent"]["swept"].as_u64().unwrap() >= 2,
        "{:#}",
        r["agent"]
    );
}

/// Runs a script that genrun must stop; checks the code, a complete result and the stop reason.
fn stopped(
    id: &str,
    script: &str,
    args: &[&str],
    code_want: i32,
    outcome: &str,
    reason: &str,
) -> serde_json::Value {
    let run = RunDir::new(id);
    let mut cmd = run.cmd(script);
    cmd.args(args);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), code_want, "{}", explain(&out));
    let r = assert_complete(&run, outcome);
    let why = r["agent"]["stop"]["reason"].as_str().unwrap_or_default();
    assert!(why.contains(reason), "stop reason {why:?} lacks {reason:?}");
    r
}

#[test]
fn silent_agent_hits_the_idle_timeout_82() {
    stopped(
        "idle-1",
        "hang",
        &["--idle-timeout", "2s"],
        82,
        "timeout",
        "idle",
    );
}

#[test]
fn hang_after_result_keeps_the_result_lines_outcome() {
    stopped(
        "linger-1",
        "hang-after-result",
        &["--post-result-grace", "1s"],
        0,
        "success",
        "result",
    );
}

#[test]
fn wall_clock_timeout_is_82() {
    stopped(
        "timeout-1",
        "hang",
        &["--timeout", "2s"],
        82,
        "timeout",
        "wall-clock",
    );
}

#[test]
fn orphans_are_reaped_while_the_agent_runs() {
    let run = RunDir::new("zombies-1");
    let script = run.dir.path().join("zombies.script");
    std::fs::write(
        &script,
        "turn\nbash <<EOF\nfor i in 1 2 3 4 5; do (sh -c 'exit 0' &) ; done\nEOF\ntext orphans made\npause 3s\ntext done\n",
    )
    .unwrap();
    let g = Running::start(run.cmd(script.to_str().unwrap()));
    g.wait_event("the orphans", LIMIT, |e| {
        e["kind"] == "text" && e["text"] == "orphans made"
    });
    let genrun_pid = g.pid();
    wait_for(
        "orphaned zombies to be reaped",
        Duration::from_secs(10),
        || zombie_children(genrun_pid) == 0,
    );
    let out = g.finish(LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
}

fn zombie_children(parent: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let rest = stat.rsplit(')').next().unwrap_or("");
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("");
            let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            state == "Z" && ppid == parent
        })
        .count()
}

#[test]
fn as_pid_1_of_a_new_pid_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root for unshare --pid");
        return;
    }
    let run = RunDir::new("pid1-1");
    let inner = run.cmd("grandchildren");
    let flags = ["--pid", "--fork", "--mount-proc"].map(std::ffi::OsStr::new);
    let cmd = wrapped("unshare", &flags, &inner);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let r = assert_complete(&run, "success");
    assert!(
        r["agent"]["swept"].as_u64().unwrap() >= 2,
        "{:#}",
        r["agent"]
    );
}

#[test]
fn agent_environment_holds_no_secrets_and_the_archive_none_either() {
    if !is_root() {
        eprintln!("skipped: the uid-separation test needs root");
        return;
    }
    let run = RunDir::new("env-1");
    // The agent user must be able to execute genrun: use a copy in the run's (world-readable) directory.
    let exe = run.dir.path().join("genrun");
    std::fs::copy(genrun_bin(), &exe).unwrap();
    set_mode(&exe, 0o755);
    let secrets = [
        (
            "ANTHROPIC_API_KEY",
            "sk-ant-api03-TESTSECRETVALUE0123456789abcdef",
        ),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN123456"),
        (
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/0b4c6f2e-secret-uuid",
        ),
        ("GENRUN_PROGRESS_TOKEN", "progress-token-secret-42"),
        ("MY_DB_PASSWORD", "hunter2-database-password"),
    ];
    let mut cmd = genrun();
    cmd.arg("run")
        .args([
            "--request-id",
            "env-1",
            "--prompt",
            "dump env",
            "--log-format",
            "json",
            "--agent-user",
            "nobody",
        ])
        .arg("--workspace")
        .arg(run.workspace())
        .arg("--output")
        .arg(run.output())
        .arg("--agent-cmd")
        .arg(format!("{} scripted-agent --script env", exe.display()))
        .args(["--secret-env", "MY_DB_PASSWORD"]);
    for (k, v) in secrets {
        cmd.env(k, v);
    }
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let dump = archive_file(&run.artifacts().join("app.tar.zst"), "env-dump.txt")
        .expect("env-dump.txt archived");
    let dump = String::from_utf8_lossy(&dump);
    assert!(dump.contains("HOME="), "the dump is empty: {dump}");
    for (name, value) in secrets {
        assert!(
            !dump.contains(value),
            "{name}'s value reached the archive:\n{dump}"
        );
    }
    // What never reached the agent at all (not just redacted).
    for name in [
        "AWS_SECRET_ACCESS_KEY=",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
        "GENRUN_",
    ] {
        assert!(
            !dump.lines().any(|l| l.starts_with(name)),
            "{name} reached the agent:\n{dump}"
        );
    }
    let r = run.result();
    assert_eq!(r["agent"]["user"], "nobody");
    // Events and result.json are redacted as well.
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), r);
    for (name, value) in secrets {
        assert!(
            !all.contains(value),
            "{name} leaked into events or result.json"
        );
    }
    assert_no_process_left(&run.workspace());
}

#[test]
fn agent_limits_never_exceed_genruns_own_hard_limits() {
    // As in a container started with --ulimit nofile=1024:1024, where not even root can raise it.
    let run = RunDir::new("rlimit-1");
    let script = run.dir.path().join("limits.script");
    std::fs::write(
        &script,
        "turn\nbash <<EOF\nulimit -n > nofile.txt\nEOF\ntext done\n",
    )
    .unwrap();
    let inner = run.cmd(script.to_str().unwrap());
    let flags = ["--nofile=1024:1024"].map(std::ffi::OsStr::new);
    let out = run_with_deadline(wrapped("prlimit", &flags, &inner), LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let nofile = archive_file(&run.artifacts().join("app.tar.zst"), "nofile.txt").unwrap();
    assert_eq!(String::from_utf8_lossy(&nofile).trim(), "1024");
}
