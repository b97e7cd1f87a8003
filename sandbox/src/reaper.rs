//! The one owner of `waitpid` in the process.
//!
//! As PID 1 genrun inherits every orphan of the container; as a child subreaper (when not PID 1) it
//! inherits the orphans of its own descendants. All of them must be reaped, and a `waitpid(-1)` loop steals
//! the status that any other waiter (`std`/`tokio` `Child::wait`) expects. So nothing else in genrun waits:
//! [`crate::spawn`] registers the agent's pid here and gets an [`ExitWaiter`]; the reaper reaps EVERY child
//! and hands registered pids their status.
//!
//! Races handled:
//! - `std::process::Command::spawn` itself waits for a child whose `exec` failed (and panics on ECHILD), and
//!   a child can exit before its pid is registered. Spawning holds `gate` from fork to registration; the
//!   reaper only reaps when it can take `gate`, and spawning reaps right after releasing it.
//! - A missed SIGCHLD (coalesced signals, a runtime shutting down): a periodic poll reaps anyway.
//!
//! The table is process-wide (there is one set of children per process); each installed [`Reaper`] drives it
//! from a task on its runtime until dropped.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::SandboxError;
use crate::signal::ExitInfo;

/// How often the reaper polls even without SIGCHLD.
const POLL: Duration = Duration::from_millis(500);

struct Shared {
    table: Mutex<HashMap<u32, Slot>>,
    gate: Mutex<()>,
    reaped: AtomicU64,
    reaped_event: tokio::sync::Notify,
}

#[derive(Default)]
struct Slot {
    status: Option<ExitInfo>,
    waker: Option<Waker>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| Shared {
        table: Mutex::new(HashMap::new()),
        gate: Mutex::new(()),
        reaped: AtomicU64::new(0),
        reaped_event: tokio::sync::Notify::new(),
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover rather than cascade if it ever happens.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Held from before a fork until the child's pid is registered.
pub(crate) struct SpawnGate(#[allow(dead_code)] MutexGuard<'static, ()>);

impl SpawnGate {
    pub(crate) fn enter() -> Self {
        SpawnGate(lock(&shared().gate))
    }

    /// Registers `pid` (a child forked under this gate) for its exit status.
    pub(crate) fn register(&self, pid: u32) -> ExitWaiter {
        lock(&shared().table).insert(pid, Slot::default());
        ExitWaiter { pid }
    }
}

/// Reaps every child that has exited, without blocking. Skips the round while a spawn holds the gate (the
/// spawner reaps when done). Returns how many it reaped.
pub(crate) fn reap_now() -> u64 {
    let s = shared();
    let _gate = match s.gate.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return 0,
    };
    let mut n = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            n += 1;
            s.reaped.fetch_add(1, Ordering::Relaxed);
            if let Some(info) = ExitInfo::from_wait_status(status) {
                record(pid.unsigned_abs(), info);
            }
            continue;
        }
        if pid == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break; // 0: children left, none exited; ECHILD: no children.
    }
    if n > 0 {
        s.reaped_event.notify_waiters();
    }
    n
}

fn record(pid: u32, info: ExitInfo) {
    let mut table = lock(&shared().table);
    if let Some(slot) = table.get_mut(&pid) {
        slot.status = Some(info);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }
    // Unregistered: an orphan (or a child whose waiter was dropped); reaping it was the point.
}

/// Whether this process has any child (running or zombie), without reaping anything.
pub(crate) fn has_children() -> bool {
    // SAFETY: siginfo_t is plain data; WNOWAIT leaves any zombie in place.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    !(rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
}

/// Waits until the reaper reaped something or `max` passed.
pub(crate) async fn reaped_or(max: Duration) {
    let _ = tokio::time::timeout(max, shared().reaped_event.notified()).await;
}

/// The process's reaper; drives reaping on the current tokio runtime until dropped.
pub struct Reaper {
    is_pid1: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Reaper {
    /// Starts reaping: on SIGCHLD and every 500 ms. When not PID 1, first makes this process a child
    /// subreaper so orphans of its descendants come back to it. Needs a tokio runtime.
    pub fn install() -> Result<Reaper, SandboxError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| SandboxError::NoRuntime)?;
        let is_pid1 = std::process::id() == 1;
        if !is_pid1 {
            // SAFETY: PR_SET_CHILD_SUBREAPER takes plain integer arguments.
            let rc =
                unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                return Err(SandboxError::Subreaper {
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        let _guard = handle.enter();
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
            .map_err(|source| SandboxError::SignalHandler { source })?;
        let task = handle.spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut signals_alive = true;
            loop {
                tokio::select! {
                    r = sigchld.recv(), if signals_alive => signals_alive = r.is_some(),
                    _ = tick.tick() => {}
                }
                reap_now();
            }
        });
        reap_now();
        Ok(Reaper { is_pid1, task })
    }

    /// Whether this process is PID 1 (of its PID namespace).
    pub fn is_pid1(&self) -> bool {
        self.is_pid1
    }

    /// How many processes have been reaped so far (agent, orphans and helpers alike).
    pub fn reaped_count(&self) -> u64 {
        shared().reaped.load(Ordering::Relaxed)
    }

    /// Waits until this process has no child left (every orphan reaped). True when none is left, false
    /// when `deadline` passed first.
    pub async fn wait_no_children(&self, deadline: Instant) -> bool {
        loop {
            reap_now();
            if !has_children() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            reaped_or((deadline - now).min(Duration::from_millis(50))).await;
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reaper")
            .field("is_pid1", &self.is_pid1)
            .finish()
    }
}

/// The exit status of one spawned process, delivered by the reaper.
///
/// A future (poll it by `&mut` in `select!`: cancel-safe, and it yields the same status again once
/// ready). Dropping it forgets the pid; the process is still reaped.
#[derive(Debug)]
pub struct ExitWaiter {
    pid: u32,
}

impl ExitWaiter {
    /// The pid this waits for.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The status, when the process has already been reaped.
    pub fn try_status(&self) -> Option<ExitInfo> {
        lock(&shared().table).get(&self.pid).and_then(|s| s.status)
    }

    /// Waits for the status (same as awaiting `&mut self`).
    pub async fn wait(&mut self) -> ExitInfo {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll(cx)).await
    }
}

impl Future for ExitWaiter {
    type Output = ExitInfo;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExitInfo> {
        let mut table = lock(&shared().table);
        let slot = table.entry(self.pid).or_default();
        match slot.status {
            Some(info) => Poll::Ready(info),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for ExitWaiter {
    fn drop(&mut self) {
        lock(&shared().table).remove(&self.pid);
    }
}
