//! The sweep with real process trees: an agent that ignores SIGTERM and leaves grandchildren in their own
//! sessions; killing the group misses them, the sweep does not. Also the uid-wide kill.
//!
//! A sweep kills EVERY descendant of the test process, so this binary holds only sweep tests and runs them
//! one at a time.

mod common;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use genrun_sandbox::{kill_all_of_uid, signal_group, spawn, sweep, tree, Reaper, Signal};
use tokio::sync::Mutex;
use tokio::time::Instant;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn my_descendants() -> Vec<tree::ProcInfo> {
    tree::descendants(&tree::snapshot().unwrap(), std::process::id())
}

#[tokio::test]
async fn sweep_kills_setsid_grandchildren_that_survive_the_group_kill() {
    let _one = ONE_AT_A_TIME.lock().await;
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
        trap '' TERM INT
        setsid sh -c 'trap "" TERM INT HUP; sleep 300' &
        setsid sleep 300 &
        sh -c 'setsid sleep 300 & sleep 300' &
        echo ready
        while :; do sleep 1; done
    "#;
    let mut s = spawn(sh(script, dir.path()), &reaper).unwrap();
    assert_eq!(read_lines(&mut s.stdout, 1).await, vec!["ready"]);
    // agent sh, 2 setsid trees (sh+sleep, sleep), inner sh + its sleep + its setsid sleep, loop sleep.
    wait_until("the tree is up", || my_descendants().len() >= 7).await;
    // ...and the three escapees have really left (setsid done), or the group kill would still reach them.
    wait_until("three new sessions", || {
        my_descendants().iter().filter(|p| p.sid == p.pid).count() >= 3
    })
    .await;

    // SIGTERM to the group is ignored by the agent.
    signal_group(s.pid, Signal::Term).unwrap();
    let still_running = tokio::time::timeout(Duration::from_millis(300), &mut s.exit)
        .await
        .is_err();
    assert!(still_running, "the agent ignores SIGTERM");

    signal_group(s.pid, Signal::Kill).unwrap();
    assert_eq!(within(&mut s.exit).await.signal(), Some(libc::SIGKILL));
    // The setsid ones escaped the group kill.
    wait_until("the group members died", || {
        my_descendants()
            .iter()
            .all(|p| p.pgid != s.pid || p.state == 'Z')
    })
    .await;
    let escaped: Vec<u32> = my_descendants()
        .iter()
        .filter(|p| p.state != 'Z')
        .map(|p| p.pid)
        .collect();
    assert!(escaped.len() >= 3, "setsid processes escaped: {escaped:?}");

    let report = sweep(&reaper, None, Instant::now() + DEADLINE).await;
    assert_eq!(report.remaining, 0);
    assert!(
        report.swept >= escaped.len() as u32,
        "{report:?} vs {escaped:?}"
    );
    assert!(my_descendants().is_empty(), "left: {:?}", my_descendants());
    for pid in escaped {
        assert!(gone(pid), "{pid} still in /proc");
    }
}

#[tokio::test]
async fn sweep_with_nothing_left_reports_zero() {
    let _one = ONE_AT_A_TIME.lock().await;
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = spawn(sh("exit 0", dir.path()), &reaper).unwrap();
    within(s.exit).await;
    let report = sweep(&reaper, None, Instant::now() + DEADLINE).await;
    assert_eq!((report.swept, report.remaining), (0, 0));
}

#[tokio::test]
async fn sweep_outruns_a_forking_loop() {
    let _one = ONE_AT_A_TIME.lock().await;
    let reaper = Reaper::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Each generation forks a new session and exits: the tree keeps moving.
    let script = r#"
        echo ready
        setsid sh -c 'while :; do setsid sh -c "sleep 300" & sleep 0.05; done' &
        exec sleep 300
    "#;
    let mut s = spawn(sh(script, dir.path()), &reaper).unwrap();
    assert_eq!(read_lines(&mut s.stdout, 1).await, vec!["ready"]);
    wait_until("the loop forked", || my_descendants().len() >= 5).await;
    signal_group(s.pid, Signal::Kill).unwrap();
    within(&mut s.exit).await;
    let report = sweep(&reaper, None, Instant::now() + DEADLINE).await;
    assert_eq!(report.remaining, 0);
    assert!(report.swept >= 4, "{report:?}");
    assert!(my_descendants().is_empty(), "left: {:?}", my_descendants());
}

#[tokio::test]
async fn uid_wide_kill_reaches_every_process_of_the_agent_uid() {
    let _one = ONE_AT_A_TIME.lock().await;
    let reaper = Reaper::install().unwrap();
    let deadline = Instant::now() + DEADLINE;
    // Refused for root and for genrun's own uid (it would kill genrun).
    assert!(!kill_all_of_uid(0, deadline).await);
    assert!(!kill_all_of_uid(unsafe { libc::getuid() }, deadline).await);
    if !is_root() {
        eprintln!("skipped the rest: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let user = genrun_sandbox::resolve_user("54321").unwrap();
    let mut exits = Vec::new();
    for args in [["300"].as_slice(), ["301"].as_slice()] {
        let mut spec = sh("", dir.path());
        spec.program = PathBuf::from("sleep");
        spec.args = args.iter().map(OsString::from).collect();
        spec.user = Some(user.clone());
        exits.push(spawn(spec, &reaper).unwrap().exit);
    }
    assert!(kill_all_of_uid(54321, deadline).await);
    for e in exits {
        assert_eq!(within(e).await.signal(), Some(libc::SIGKILL));
    }
    // And through the sweep, counting what it killed.
    let mut spec = sh("", dir.path());
    spec.program = PathBuf::from("sleep");
    spec.args = vec![OsString::from("302")];
    spec.user = Some(user);
    let s = spawn(spec, &reaper).unwrap();
    let report = sweep(&reaper, Some(54321), Instant::now() + DEADLINE).await;
    assert_eq!((report.swept, report.remaining), (1, 0));
    assert_eq!(within(s.exit).await.signal(), Some(libc::SIGKILL));
}
