//! Killing whatever the agent left behind.
//!
//! The CLI's Bash tool runs every command in its own session, so killing the agent's process group misses
//! them. But genrun is PID 1 or a child subreaper: every orphan of the agent's tree is re-parented to genrun,
//! so "every descendant of genrun" (from `/proc`, following parent links) finds them all, whatever group or
//! session they moved to. Each round first stops them all (SIGSTOP: a forking loop cannot outrun us), then
//! kills them (SIGKILL), then waits for the reaper; rounds repeat until no descendant is left or the
//! deadline passes.
//!
//! When genrun is root and the agent has its own uid, a helper forked as that uid also calls
//! `kill(-1, SIGKILL)`, which reaches every process of that uid, descendant or not.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::reaper::{reap_now, reaped_or, Reaper, SpawnGate};
use crate::signal::{signal_pid, Signal};
use crate::tree::{self, ProcInfo};

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// Distinct processes that were sent SIGKILL.
    pub swept: u32,
    /// Descendants still present (alive or not yet reaped) when the deadline passed; 0 on success.
    pub remaining: u32,
}

/// SIGKILLs every remaining descendant of genrun, those that left the agent's group included, until none is
/// left or `deadline` passes. With `agent_uid` (only acted on when genrun is root and the uid is neither 0
/// nor genrun's own) every process of that uid is killed too.
pub async fn sweep(reaper: &Reaper, agent_uid: Option<u32>, deadline: Instant) -> SweepReport {
    let _ = reaper; // Its presence is the contract: the killed processes get reaped.
    let me = std::process::id();
    let uid = agent_uid.filter(|&u| uid_kill_allowed(u));
    let mut killed: HashSet<u32> = HashSet::new();
    loop {
        reap_now();
        let procs = tree::snapshot().unwrap_or_default();
        let left = tree::descendants(&procs, me);
        let alive: Vec<&ProcInfo> = left.iter().filter(|p| is_alive(p)).collect();
        let uid_alive: Vec<&ProcInfo> = match uid {
            Some(u) => procs
                .iter()
                .filter(|p| p.uid == u && p.pid != me && is_alive(p))
                .collect(),
            None => Vec::new(),
        };
        if left.is_empty() && uid_alive.is_empty() {
            return report(&killed, 0);
        }
        if Instant::now() >= deadline {
            return report(&killed, left.len());
        }
        for p in &alive {
            let _ = signal_pid(p.pid, Signal::Stop);
        }
        for p in &alive {
            if signal_pid(p.pid, Signal::Kill).is_ok() {
                killed.insert(p.pid);
            }
        }
        if let Some(u) = uid.filter(|_| !uid_alive.is_empty()) {
            killed.extend(uid_alive.iter().map(|p| p.pid));
            kill_all_of_uid(u, deadline).await;
        }
        let now = Instant::now();
        if now < deadline {
            reaped_or((deadline - now).min(Duration::from_millis(20))).await;
        }
    }
}

fn report(killed: &HashSet<u32>, remaining: usize) -> SweepReport {
    SweepReport {
        swept: u32::try_from(killed.len()).unwrap_or(u32::MAX),
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
    }
}

fn is_alive(p: &ProcInfo) -> bool {
    !matches!(p.state, 'Z' | 'X' | 'x')
}

fn uid_kill_allowed(uid: u32) -> bool {
    // SAFETY: these getters have no preconditions.
    let (ruid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    euid == 0 && uid != 0 && uid != ruid && uid != euid && uid != u32::MAX
}

/// Forks a helper that becomes `uid` and calls `kill(-1, SIGKILL)`, then waits for it (until `deadline`).
/// Refuses (does nothing) unless genrun is root and `uid` is another, non-root uid: `kill(-1)` as genrun's
/// own uid would kill genrun. Returns whether the helper ran and exited 0.
pub async fn kill_all_of_uid(uid: u32, deadline: Instant) -> bool {
    if !uid_kill_allowed(uid) {
        return false;
    }
    let gate = SpawnGate::enter();
    // SAFETY: the child only makes async-signal-safe system calls and then `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the forked child; plain system calls, then _exit without running any Rust code.
        unsafe {
            let ok = libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(uid) == 0
                && libc::setuid(uid) == 0;
            if !ok {
                libc::_exit(2);
            }
            libc::kill(-1, libc::SIGKILL);
            libc::_exit(0);
        }
    }
    if pid < 0 {
        return false;
    }
    let mut waiter = gate.register(pid.unsigned_abs());
    drop(gate);
    reap_now();
    match tokio::time::timeout_at(deadline, waiter.wait()).await {
        Ok(info) => info.success(),
        Err(_) => false,
    }
}
