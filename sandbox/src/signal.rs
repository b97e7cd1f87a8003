//! Signals in our own types: the ones genrun sends or receives, how a process ended, delivering a signal to
//! one process or a whole group, listening for the shutdown signals, and the stop sequence as data.
//!
//! Kept free of libc/nix types so the binary's select loop and result record never see raw OS values
//! except as plain numbers.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::error::SandboxError;

/// A signal genrun sends or receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Int,
    Term,
    Kill,
    Hup,
    Quit,
    Usr1,
    Usr2,
    Segv,
    /// SIGSTOP (the sweep freezes processes before killing them).
    Stop,
    /// SIGCONT.
    Cont,
}

impl Signal {
    /// The signal number on this platform.
    pub fn as_raw(self) -> i32 {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Hup => libc::SIGHUP,
            Signal::Quit => libc::SIGQUIT,
            Signal::Usr1 => libc::SIGUSR1,
            Signal::Usr2 => libc::SIGUSR2,
            Signal::Segv => libc::SIGSEGV,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }

    /// The signal with this number, when it is one of ours.
    pub fn from_raw(raw: i32) -> Option<Self> {
        [
            Signal::Int,
            Signal::Term,
            Signal::Kill,
            Signal::Hup,
            Signal::Quit,
            Signal::Usr1,
            Signal::Usr2,
            Signal::Segv,
            Signal::Stop,
            Signal::Cont,
        ]
        .into_iter()
        .find(|s| s.as_raw() == raw)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(signal_name(self.as_raw()).as_str())
    }
}

/// `SIGSEGV` for 11, `SIG34` for a number without a name (real-time signals).
pub fn signal_name(raw: i32) -> String {
    match nix::sys::signal::Signal::try_from(raw) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("SIG{raw}"),
    }
}

/// How a process ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// It called `exit(code)` (0..=255).
    Code(i32),
    /// A signal ended it.
    Signaled { signal: i32, core_dumped: bool },
}

impl ExitInfo {
    /// The exit code, when it exited normally.
    pub fn code(&self) -> Option<i32> {
        match self {
            ExitInfo::Code(c) => Some(*c),
            ExitInfo::Signaled { .. } => None,
        }
    }

    /// The terminating signal number, when a signal ended it.
    pub fn signal(&self) -> Option<i32> {
        match self {
            ExitInfo::Code(_) => None,
            ExitInfo::Signaled { signal, .. } => Some(*signal),
        }
    }

    /// `SIGSEGV` etc. when a signal ended it.
    pub fn signal_name(&self) -> Option<String> {
        self.signal().map(signal_name)
    }

    /// True for exit code 0.
    pub fn success(&self) -> bool {
        *self == ExitInfo::Code(0)
    }

    /// Decodes a raw `waitpid` status; `None` for stopped/continued reports.
    pub(crate) fn from_wait_status(status: i32) -> Option<Self> {
        if libc::WIFEXITED(status) {
            Some(ExitInfo::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(ExitInfo::Signaled {
                signal: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            })
        } else {
            None
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitInfo::Code(c) => write!(f, "exit code {c}"),
            ExitInfo::Signaled {
                signal,
                core_dumped,
            } => {
                write!(f, "killed by {}", signal_name(*signal))?;
                if *core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// Sends `sig` to every process of group `pgid` (`kill(-pgid, sig)`).
///
/// A group with no member left is not an error (the goal is reached). `pgid` 0 and 1 are refused: they would
/// mean "my own group" and "every process" to the kernel.
pub fn signal_group(pgid: u32, sig: Signal) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal process group 0 or 1",
        ));
    }
    let pgid = i32::try_from(pgid).map_err(|_| io::ErrorKind::InvalidInput)?;
    deliver(-pgid, sig)
}

/// Sends `sig` to one process. A process that no longer exists is not an error. pid 0 is refused.
pub fn signal_pid(pid: u32, sig: Signal) -> io::Result<()> {
    if pid == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal pid 0",
        ));
    }
    let pid = i32::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
    deliver(pid, sig)
}

fn deliver(target: i32, sig: Signal) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions; target was checked not to be 0 or -1.
    let rc = unsafe { libc::kill(target, sig.as_raw()) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(err)
}

/// SIGTERM, SIGINT and SIGHUP to genrun (as PID 1 these arrive only because a handler is installed).
pub struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers. Needs a tokio runtime. From now on these signals no longer end the process by
    /// default: whoever holds this must act on them.
    pub fn install() -> Result<Self, SandboxError> {
        use tokio::signal::unix::{signal, SignalKind};
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SandboxError::NoRuntime);
        }
        let install = |kind| signal(kind).map_err(|source| SandboxError::SignalHandler { source });
        Ok(Self {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    /// The next shutdown signal (cancel-safe: usable in `select!`).
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            Some(()) = self.term.recv() => Signal::Term,
            Some(()) = self.int.recv() => Signal::Int,
            Some(()) = self.hup.recv() => Signal::Hup,
            else => std::future::pending().await,
        }
    }
}

/// Who one stop step is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopTarget {
    /// Only the agent process (the CLI answers SIGINT by writing its result line).
    Leader,
    /// The agent's whole process group.
    Group,
}

/// One step of the stop sequence: send `signal` to `target`, then give it `grace` to exit before the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopStep {
    pub signal: Signal,
    pub target: StopTarget,
    pub grace: Duration,
}

impl StopStep {
    /// Sends this step's signal to the agent `pid` (whose process group id is the same number).
    pub fn deliver(&self, pid: u32) -> io::Result<()> {
        match self.target {
            StopTarget::Leader => signal_pid(pid, self.signal),
            StopTarget::Group => signal_group(pid, self.signal),
        }
    }
}

/// The stop sequence: SIGINT to the agent, `int_grace`; SIGTERM to its group, `term_grace`; SIGKILL to its
/// group. The caller drives it with timers and moves on as soon as the agent has exited; after the last
/// step comes the sweep of descendants that left the group.
pub fn stop_plan(int_grace: Duration, term_grace: Duration) -> [StopStep; 3] {
    [
        StopStep {
            signal: Signal::Int,
            target: StopTarget::Leader,
            grace: int_grace,
        },
        StopStep {
            signal: Signal::Term,
            target: StopTarget::Group,
            grace: term_grace,
        },
        StopStep {
            signal: Signal::Kill,
            target: StopTarget::Group,
            grace: Duration::ZERO,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for s in [
            Signal::Int,
            Signal::Term,
            Signal::Kill,
            Signal::Hup,
            Signal::Quit,
            Signal::Usr1,
            Signal::Usr2,
            Signal::Segv,
        ] {
            assert_eq!(Signal::from_raw(s.as_raw()), Some(s));
        }
        assert_eq!(Signal::Int.to_string(), "SIGINT");
        assert_eq!(Signal::Segv.to_string(), "SIGSEGV");
        assert_eq!(Signal::from_raw(libc::SIGCHLD), None);
        assert_eq!(signal_name(34), "SIG34");
    }

    #[test]
    fn exit_info_accessors_and_display() {
        let seg = ExitInfo::Signaled {
            signal: libc::SIGSEGV,
            core_dumped: true,
        };
        assert_eq!(seg.signal_name().as_deref(), Some("SIGSEGV"));
        assert_eq!(seg.code(), None);
        assert_eq!(seg.to_string(), "killed by SIGSEGV (core dumped)");
        assert_eq!(ExitInfo::Code(3).signal_name(), None);
        assert_eq!(ExitInfo::Code(3).to_string(), "exit code 3");
        assert!(ExitInfo::Code(0).success());
        assert!(!ExitInfo::Code(1).success());
    }

    #[test]
    fn refuses_catastrophic_targets() {
        assert_eq!(
            signal_group(1, Signal::Kill).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            signal_group(0, Signal::Kill).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            signal_pid(0, Signal::Kill).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(signal_pid(u32::MAX, Signal::Kill).is_err());
    }

    #[test]
    fn stop_plan_escalates_int_term_kill() {
        let plan = stop_plan(Duration::from_secs(5), Duration::from_secs(3));
        let sigs: Vec<_> = plan.iter().map(|s| (s.signal, s.target, s.grace)).collect();
        assert_eq!(
            sigs,
            vec![
                (Signal::Int, StopTarget::Leader, Duration::from_secs(5)),
                (Signal::Term, StopTarget::Group, Duration::from_secs(3)),
                (Signal::Kill, StopTarget::Group, Duration::ZERO),
            ]
        );
    }
}
