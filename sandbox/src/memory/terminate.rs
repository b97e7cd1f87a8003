//! Terminating one tool process the guard picked: SIGTERM, then SIGKILL after a grace period.
//!
//! The process is pinned with a pidfd (Linux >= 5.3) before anything is sent, so a pid recycled during the
//! grace period can never receive the SIGKILL, and its exit is awaited on the pidfd instead of polled.
//! Without pidfd support it falls back to `kill(2)` and polling `/proc/<pid>/stat`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// How often the fallback checks whether the process is gone.
const POLL: Duration = Duration::from_millis(20);

/// How [`terminate_process`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminateOutcome {
    /// No such process (it had already exited and been reaped).
    NotFound,
    /// It exited within the grace period after SIGTERM.
    Terminated,
    /// It was still alive after the grace period and was sent SIGKILL.
    Killed,
    /// A signal could not be sent (permission).
    SignalFailed,
}

/// Sends SIGTERM to `pid`, waits up to `grace` for it to exit (a zombie counts as exited), then SIGKILL.
pub async fn terminate_process(pid: u32, grace: Duration) -> TerminateOutcome {
    let Ok(raw) = i32::try_from(pid) else {
        return TerminateOutcome::NotFound;
    };
    if raw <= 0 {
        return TerminateOutcome::NotFound;
    }
    match pidfd_open(raw) {
        Ok(fd) => with_pidfd(fd, grace).await,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => TerminateOutcome::NotFound,
        Err(_) => with_kill(raw, grace).await,
    }
}

async fn with_pidfd(fd: OwnedFd, grace: Duration) -> TerminateOutcome {
    if let Err(e) = pidfd_signal(&fd, libc::SIGTERM) {
        return match e.raw_os_error() {
            Some(libc::ESRCH) => TerminateOutcome::NotFound,
            _ => TerminateOutcome::SignalFailed,
        };
    }
    // A pidfd becomes readable when its process exits.
    // SAFETY: `fd` is an open pidfd owned by the AsyncFd until `into_inner`, and OwnedFd always returns
    // that same descriptor.
    let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
    let fd = match registered {
        Ok(afd) => {
            if tokio::time::timeout(grace, afd.readable()).await.is_ok() {
                return TerminateOutcome::Terminated;
            }
            afd.into_inner()
        }
        Err(e) => {
            // Not registrable with the reactor: serve the grace period whole.
            let (fd, _) = e.into_parts();
            tokio::time::sleep(grace).await;
            fd
        }
    };
    match pidfd_signal(&fd, libc::SIGKILL) {
        Ok(()) => TerminateOutcome::Killed,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => TerminateOutcome::Terminated,
        Err(_) => TerminateOutcome::SignalFailed,
    }
}

async fn with_kill(pid: i32, grace: Duration) -> TerminateOutcome {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    match kill(Pid::from_raw(pid), Signal::SIGTERM) {
        Ok(()) => {}
        Err(nix::errno::Errno::ESRCH) => return TerminateOutcome::NotFound,
        Err(_) => return TerminateOutcome::SignalFailed,
    }
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !alive(pid) {
            return TerminateOutcome::Terminated;
        }
        tokio::time::sleep(POLL).await;
    }
    match kill(Pid::from_raw(pid), Signal::SIGKILL) {
        Ok(()) => TerminateOutcome::Killed,
        Err(nix::errno::Errno::ESRCH) => TerminateOutcome::Terminated,
        Err(_) => TerminateOutcome::SignalFailed,
    }
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_ascii_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pidfd_signal(fd: &OwnedFd, sig: i32) -> std::io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    /// A shell that ignores SIGTERM and blocks reading stdin; returns once the trap is installed.
    fn stubborn() -> std::process::Child {
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; read x"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        child
    }

    #[tokio::test]
    async fn sigterm_is_enough_for_a_willing_process() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let outcome = terminate_process(child.id(), Duration::from_secs(30)).await;
        assert_eq!(outcome, TerminateOutcome::Terminated);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    }

    #[tokio::test]
    async fn sigkill_after_grace_for_a_process_ignoring_sigterm() {
        let mut child = stubborn();
        let outcome = terminate_process(child.id(), Duration::from_millis(300)).await;
        assert_eq!(outcome, TerminateOutcome::Killed);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn a_zombie_counts_as_exited_at_once() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::SIGKILL,
        )
        .unwrap();
        // Not reaped: a zombie until wait(). Waiting the whole grace would end in `Killed`.
        let outcome = terminate_process(child.id(), Duration::from_secs(600)).await;
        assert_eq!(outcome, TerminateOutcome::Terminated);
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn a_reaped_pid_is_not_found() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(
            terminate_process(pid, Duration::from_secs(1)).await,
            TerminateOutcome::NotFound
        );
        assert_eq!(
            terminate_process(0, Duration::from_secs(1)).await,
            TerminateOutcome::NotFound
        );
        assert_eq!(
            terminate_process(u32::MAX, Duration::from_secs(1)).await,
            TerminateOutcome::NotFound
        );
    }

    #[tokio::test]
    async fn fallback_without_pidfd_terminates_and_kills() {
        let mut willing = Command::new("sleep").arg("30").spawn().unwrap();
        let outcome = with_kill(willing.id() as i32, Duration::from_secs(30)).await;
        // `sleep` dies of SIGTERM at once but stays a zombie (unreaped), which counts as gone.
        assert_eq!(outcome, TerminateOutcome::Terminated);
        assert_eq!(willing.wait().unwrap().signal(), Some(libc::SIGTERM));
        let mut child = stubborn();
        let outcome = with_kill(child.id() as i32, Duration::from_millis(300)).await;
        assert_eq!(outcome, TerminateOutcome::Killed);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}
