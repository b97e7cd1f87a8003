//! The agent's process set-up, with real processes: exit codes and signals, missing programs, the
//! environment allowlist, process group, stdin, rlimits, oom_score_adj, user switch, parent-death signal,
//! and the reaper (orphans reaped while the agent runs, statuses never lost).
//!
//! Every test spawns through the process-wide reaper, so nothing here uses `Child::wait`.

mod common;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use genrun_sandbox::{
    agent_env, signal_group, spawn, EnvPolicy, ExitInfo, Reaper, Rlimits, ShutdownSignals, Signal,
    SpawnError,
};

#[tokio::test]
async fn exit_code_and_both_output_streams() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = spawn(sh("echo out; echo err >&2; exit 7", dir.path()), &reaper).unwrap();
    let (out, err) = tokio::join!(read_all(s.stdout), read_all(s.stderr));
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    assert_eq!(within(s.exit).await, ExitInfo::Code(7));
}

#[tokio::test]
async fn exit_by_signal_is_reported_with_its_name_and_no_core() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = spawn(sh("kill -SEGV $$", dir.path()), &reaper).unwrap();
    let info = within(s.exit).await;
    assert_eq!(
        info,
        ExitInfo::Signaled {
            signal: libc::SIGSEGV,
            core_dumped: false
        }
    );
    assert_eq!(info.signal_name().as_deref(), Some("SIGSEGV"));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "core file written"
    );
}

#[tokio::test]
async fn missing_and_non_executable_programs() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bad_interp = dir.path().join("bad-interp");
    std::fs::write(&bad_interp, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&bad_interp, std::fs::Permissions::from_mode(0o755)).unwrap();

    let with = |program: &str, path: Option<String>| {
        let mut spec = sh("", dir.path());
        spec.program = PathBuf::from(program);
        spec.args.clear();
        if let Some(p) = path {
            spec.env = vec![("PATH".into(), p)];
        }
        spawn(spec, &reaper).map(|_| ())
    };
    let d = dir.path().display().to_string();
    assert!(matches!(
        with("genrun-no-such-program", None),
        Err(SpawnError::NotFound { .. })
    ));
    assert!(matches!(
        with("/nonexistent/claude", None),
        Err(SpawnError::NotFound { .. })
    ));
    assert!(matches!(
        with(plain.to_str().unwrap(), None),
        Err(SpawnError::NotExecutable { .. })
    ));
    assert!(matches!(
        with("./plain.sh", None),
        Err(SpawnError::NotExecutable { .. })
    ));
    assert!(matches!(
        with(&d, None),
        Err(SpawnError::NotExecutable { .. })
    ));
    // Found only as a non-executable file in the child's PATH.
    assert!(matches!(
        with("plain.sh", Some(d.clone())),
        Err(SpawnError::NotExecutable { .. })
    ));
    // Passes the pre-check, fails at exec (ENOENT for the interpreter): still "not found", not an OS error.
    assert!(matches!(
        with("bad-interp", Some(d)),
        Err(SpawnError::NotFound { .. })
    ));
}

#[tokio::test]
async fn environment_is_exactly_the_allowlist() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let parent: Vec<(String, String)> = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/root"),
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-value"),
        (
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/secret-uuid",
        ),
        ("ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2/v4/x"),
        ("GENRUN_HTTP_TOKEN", "genrun-secret"),
        ("AWS_REGION", "eu-west-1"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let policy = EnvPolicy {
        extra_names: vec!["AWS_REGION".into()],
        home: dir.path().join("home"),
        user: "agent".into(),
        root_sandbox: false,
        set: vec![],
    };
    let env = agent_env(&parent, &policy);
    let mut spec = sh("", dir.path());
    spec.program = PathBuf::from("env");
    spec.args.clear();
    spec.env = env.clone();
    let s = spawn(spec, &reaper).unwrap();
    let out = read_all(s.stdout).await;
    assert_eq!(within(s.exit).await, ExitInfo::Code(0));
    let mut seen: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    seen.sort();
    assert_eq!(seen, env);
    assert!(!out.contains("secret"), "a secret reached the child: {out}");
    assert!(out.contains("AWS_REGION=eu-west-1\n"));
}

#[tokio::test]
async fn own_process_group_stdin_null_and_group_signal() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh("", dir.path());
    spec.program = PathBuf::from("sleep");
    spec.args = vec![OsString::from("300")];
    let s = spawn(spec, &reaper).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.pid)).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    assert_eq!(fields[2], s.pid.to_string(), "pgid is the pid");
    assert_ne!(fields[2], unsafe { libc::getpgrp() }.to_string());
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/fd/0", s.pid)).unwrap(),
        PathBuf::from("/dev/null")
    );
    signal_group(s.pid, Signal::Term).unwrap();
    assert_eq!(
        within(s.exit).await,
        ExitInfo::Signaled {
            signal: libc::SIGTERM,
            core_dumped: false
        }
    );
}

#[tokio::test]
async fn rlimits_and_oom_score_adj_apply_to_the_child() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh("", dir.path());
    spec.program = PathBuf::from("sleep");
    spec.args = vec![OsString::from("300")];
    spec.rlimits = Rlimits {
        nofile: Some(1234),
        fsize: Some(1 << 20),
        core_zero: true,
    };
    spec.oom_score_adj = Some(1000);
    let s = spawn(spec, &reaper).unwrap();
    assert_eq!(
        proc_field(s.pid, "limits", "Max open files").unwrap(),
        "Max open files 1234 1234 files"
    );
    assert_eq!(
        proc_field(s.pid, "limits", "Max file size").unwrap(),
        "Max file size 1048576 1048576 bytes"
    );
    assert_eq!(
        proc_field(s.pid, "limits", "Max core file size").unwrap(),
        "Max core file size 0 0 bytes"
    );
    let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", s.pid)).unwrap();
    assert_eq!(adj.trim(), "1000");
    signal_group(s.pid, Signal::Kill).unwrap();
    within(s.exit).await;

    // The file-size limit is enforced: writing past it kills the writer with SIGXFSZ.
    let mut spec = sh("exec head -c 2000000 /dev/zero > big", dir.path());
    spec.rlimits.fsize = Some(1 << 20);
    let s = spawn(spec, &reaper).unwrap();
    assert_eq!(within(s.exit).await.signal(), Some(libc::SIGXFSZ));
    assert_eq!(
        std::fs::metadata(dir.path().join("big")).unwrap().len(),
        1 << 20
    );
}

#[tokio::test]
async fn failing_child_setup_is_an_os_error_naming_the_step() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // (Rlimits can no longer fail: they are capped at genrun's own hard limits.)
    let mut spec = sh("exit 0", dir.path());
    spec.cwd = dir.path().join("missing");
    match spawn(spec, &reaper) {
        Err(SpawnError::Os { what, .. }) => assert_eq!(what, "open the working directory"),
        other => panic!("expected an OS error, got {other:?}"),
    }
}

#[tokio::test]
async fn runs_as_another_user_when_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for spec_user in ["nobody", "54321"] {
        let user = genrun_sandbox::resolve_user(spec_user).unwrap();
        let mut spec = sh("", dir.path());
        spec.program = PathBuf::from("sleep");
        spec.args = vec![OsString::from("300")];
        spec.user = Some(user.clone());
        spec.oom_score_adj = Some(1000);
        spec.parent_death_signal = Some(Signal::Kill);
        let s = spawn(spec, &reaper).unwrap();
        let (u, g) = (user.uid, user.gid);
        assert_eq!(
            proc_field(s.pid, "status", "Uid:").unwrap(),
            format!("Uid: {u} {u} {u} {u}")
        );
        assert_eq!(
            proc_field(s.pid, "status", "Gid:").unwrap(),
            format!("Gid: {g} {g} {g} {g}")
        );
        assert_eq!(
            proc_field(s.pid, "status", "Groups:").unwrap(),
            format!("Groups: {g}")
        );
        let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", s.pid)).unwrap();
        assert_eq!(adj.trim(), "1000");
        signal_group(s.pid, Signal::Kill).unwrap();
        within(s.exit).await;
    }
}

#[tokio::test]
async fn parent_death_signal_fires_when_the_spawning_thread_ends() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh("", dir.path());
    spec.program = PathBuf::from("sleep");
    spec.args = vec![OsString::from("300")];
    spec.parent_death_signal = Some(Signal::Kill);
    let reaper_ref = &reaper;
    // A thread with its own runtime spawns, hands back the waiter, and ends.
    let exit = std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let _ctx = rt.enter();
                spawn(spec, reaper_ref).unwrap().exit
            })
            .join()
            .unwrap()
    });
    assert_eq!(
        within(exit).await,
        ExitInfo::Signaled {
            signal: libc::SIGKILL,
            core_dumped: false
        }
    );
}

#[tokio::test]
async fn exit_waiter_is_cancel_safe_in_select() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh("", dir.path());
    spec.program = PathBuf::from("sleep");
    spec.args = vec![OsString::from("300")];
    let mut s = spawn(spec, &reaper).unwrap();
    let timed_out = tokio::select! {
        _ = &mut s.exit => false,
        _ = tokio::time::sleep(Duration::from_millis(50)) => true,
    };
    assert!(timed_out);
    assert_eq!(s.exit.try_status(), None);
    signal_group(s.pid, Signal::Kill).unwrap();
    let first = within(s.exit.wait()).await;
    assert_eq!(first.signal(), Some(libc::SIGKILL));
    // Ready again with the same status.
    assert_eq!(s.exit.try_status(), Some(first));
    assert_eq!(within(&mut s.exit).await, first);
}

#[tokio::test]
async fn many_instant_exits_each_get_their_own_status() {
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut waiters = Vec::new();
    for code in 0..24 {
        let s = spawn(sh(&format!("exit {code}"), dir.path()), &reaper).unwrap();
        waiters.push((code, s.exit));
    }
    for (code, w) in waiters {
        assert_eq!(within(w).await, ExitInfo::Code(code));
    }
}

#[tokio::test]
async fn orphans_are_reaped_while_the_agent_runs_and_its_status_still_arrives() {
    let reaper = Reaper::install().unwrap();
    let me = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    // Two orphans (one in its own session) outlive their parent subshell; the agent keeps running.
    let script = "( sleep 3 & echo $! ); ( setsid sleep 3 & echo $! ); echo up; exec sleep 300";
    let mut s = spawn(sh(script, dir.path()), &reaper).unwrap();
    let lines = read_lines(&mut s.stdout, 3).await;
    assert_eq!(lines[2], "up");
    let orphans: Vec<u32> = lines[..2].iter().map(|l| l.parse().unwrap()).collect();
    // Both re-parented to us (the subreaper; they live 3 s), then reaped by our reaper once they exit: as
    // our children they can only leave /proc by our waitpid.
    let all_mine = || {
        let procs = genrun_sandbox::tree::snapshot().unwrap();
        orphans
            .iter()
            .all(|o| procs.iter().any(|p| p.pid == *o && p.ppid == me))
    };
    wait_until("orphans re-parented to us", all_mine).await;
    wait_until("orphans reaped", || orphans.iter().all(|&o| gone(o))).await;
    assert!(s.exit.try_status().is_none(), "the agent still runs");
    signal_group(s.pid, Signal::Kill).unwrap();
    assert_eq!(within(s.exit).await.signal(), Some(libc::SIGKILL));
    assert!(reaper.reaped_count() >= 3);
}

#[tokio::test]
async fn shutdown_signals_are_received() {
    let mut sigs = ShutdownSignals::install().unwrap();
    unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    assert_eq!(within(sigs.recv()).await, Signal::Hup);
}

#[test]
fn install_outside_a_runtime_is_an_error() {
    assert!(matches!(
        Reaper::install(),
        Err(genrun_sandbox::SandboxError::NoRuntime)
    ));
}
