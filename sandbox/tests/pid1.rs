//! genrun in the two situations a test process is not in: PID 1 of a new PID namespace, and not root.
//! Both need root to set up (`unshare --pid --fork --mount-proc`; switching to uid 54321).
//!
//! This binary has no test harness: run normally it re-runs itself in each situation with a probe variable
//! set.
//! - `GENRUN_SANDBOX_PID1_PROBE`: installs the reaper as PID 1, spawns a child that leaves orphans (one in
//!   its own session), and checks that the child's status arrives, every orphan is reaped, the sweep works,
//!   and SIGTERM sent to PID 1 reaches the installed handler.
//! - `GENRUN_SANDBOX_UNPRIV_PROBE`: a non-root, non-dumpable genrun still sets its child's oom_score_adj and
//!   rlimits (subreaper and all), and switching to another user is an OS error naming the step.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use genrun_sandbox::{signal_group, spawn, sweep, ExitInfo, Reaper, ShutdownSignals, Signal};
use tokio::time::Instant;

const PROBE_ENV: &str = "GENRUN_SANDBOX_PID1_PROBE";
const UNPRIV_ENV: &str = "GENRUN_SANDBOX_UNPRIV_PROBE";
const UNPRIV_UID: u32 = 54321;

fn main() {
    if std::env::var_os(PROBE_ENV).is_some() {
        probe();
        return;
    }
    if std::env::var_os(UNPRIV_ENV).is_some() {
        unprivileged_probe();
        return;
    }
    if !is_root() {
        eprintln!("pid1: skipped (needs root for unshare --pid and setuid)");
        return;
    }
    run_as_pid1();
    run_unprivileged();
}

fn run_unprivileged() {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(&exe)
        .env(UNPRIV_ENV, "1")
        .current_dir("/")
        .uid(UNPRIV_UID)
        .gid(UNPRIV_UID)
        .output()
        .expect("run the probe as another user");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("UNPRIV-PROBE-OK"),
        "unprivileged probe failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    println!("unprivileged: ok ({})", stdout.trim());
}

fn unprivileged_probe() {
    assert!(!is_root());
    genrun_sandbox::set_non_dumpable().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reaper = Reaper::install().unwrap();
        let me = genrun_sandbox::resolve_user(&UNPRIV_UID.to_string()).unwrap();
        let mut spec = sh("", std::path::Path::new("/"));
        spec.program = "sleep".into();
        spec.args = vec!["300".into()];
        spec.user = Some(me);
        spec.oom_score_adj = Some(1000);
        spec.parent_death_signal = Some(Signal::Kill);
        spec.rlimits.nofile = Some(1000);
        let s = spawn(spec.clone(), &reaper).unwrap();
        let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", s.pid)).unwrap();
        assert_eq!(adj.trim(), "1000");
        assert_eq!(
            proc_field(s.pid, "limits", "Max open files").unwrap(),
            "Max open files 1000 1000 files"
        );
        signal_group(s.pid, Signal::Kill).unwrap();
        assert_eq!(within(s.exit).await.signal(), Some(libc::SIGKILL));

        spec.user = Some(genrun_sandbox::resolve_user("0").unwrap());
        match spawn(spec, &reaper) {
            Err(genrun_sandbox::SpawnError::Os { what, .. }) => assert_eq!(what, "setgroups"),
            other => panic!("expected setgroups to fail, got {other:?}"),
        }
        println!("UNPRIV-PROBE-OK");
    });
}

fn run_as_pid1() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(&exe)
        .env(PROBE_ENV, "1")
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PID1-PROBE-OK"),
        "probe failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    println!("pid1: ok ({})", stdout.trim());
}

fn probe() {
    assert_eq!(std::process::id(), 1, "the probe must be PID 1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut signals = ShutdownSignals::install().unwrap();
        let reaper = Reaper::install().unwrap();
        assert!(reaper.is_pid1());
        let dir = tempfile::tempdir().unwrap();

        // Orphans come to PID 1 without any subreaper setting; the child's own status is not lost.
        let script = "( sleep 1 & ); ( setsid sleep 1 & ); ( sh -c 'exit 3' & ); exit 5";
        let s = spawn(sh(script, dir.path()), &reaper).unwrap();
        assert_eq!(within(s.exit).await, ExitInfo::Code(5));
        let all_reaped = reaper.wait_no_children(Instant::now() + DEADLINE).await;
        assert!(all_reaped, "orphans left unreaped");
        // sh + the 3 orphans (the subshells are reaped by sh)
        assert!(
            reaper.reaped_count() >= 4,
            "reaped {}",
            reaper.reaped_count()
        );
        let zombies: Vec<_> = genrun_sandbox::tree::snapshot()
            .unwrap()
            .into_iter()
            .filter(|p| p.state == 'Z')
            .collect();
        assert!(zombies.is_empty(), "zombies: {zombies:?}");

        // Group kill + sweep as PID 1.
        let mut s = spawn(
            // "up" comes from inside the new session, so the escapee exists before the group kill.
            sh(
                "setsid sh -c 'echo up; exec sleep 300' & exec sleep 300",
                dir.path(),
            ),
            &reaper,
        )
        .unwrap();
        assert_eq!(read_lines(&mut s.stdout, 1).await, vec!["up"]);
        signal_group(s.pid, Signal::Kill).unwrap();
        within(&mut s.exit).await;
        let report = sweep(&reaper, None, Instant::now() + DEADLINE).await;
        assert_eq!((report.swept, report.remaining), (1, 0));
        assert!(reaper.wait_no_children(Instant::now() + DEADLINE).await);

        // PID 1 only gets signals it handles: SIGTERM to ourselves must arrive at the handler.
        unsafe { libc::kill(1, libc::SIGTERM) };
        let sig = tokio::time::timeout(Duration::from_secs(30), signals.recv())
            .await
            .expect("SIGTERM reached PID 1");
        assert_eq!(sig, Signal::Term);
        println!(
            "PID1-PROBE-OK reaped={} swept={}",
            reaper.reaped_count(),
            report.swept
        );
    });
}
