//! The scripted agent's contact with the OS: signal flags, tool commands in their own session, crashes.
//!
//! Kept apart so the libc calls sit in one place and the runner works with plain types.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// Signals received and not yet acted on. The process-wide instance is set by real signal handlers
/// (installed by [`install_handlers`]); tests use their own instance and set the flags directly.
#[derive(Debug, Default)]
pub(crate) struct SignalFlags {
    pub(crate) int: AtomicBool,
    pub(crate) term: AtomicBool,
}

impl SignalFlags {
    pub(crate) const fn new() -> Self {
        Self {
            int: AtomicBool::new(false),
            term: AtomicBool::new(false),
        }
    }

    /// Takes the pending signal, SIGTERM first.
    pub(crate) fn take(&self) -> Option<Sig> {
        if self.term.swap(false, Ordering::SeqCst) {
            Some(Sig::Term)
        } else if self.int.swap(false, Ordering::SeqCst) {
            Some(Sig::Int)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    Int,
    Term,
}

pub(crate) static PROCESS_SIGNALS: SignalFlags = SignalFlags::new();

extern "C" fn on_signal(sig: libc::c_int) {
    // Only atomic stores: async-signal-safe.
    if sig == libc::SIGTERM {
        PROCESS_SIGNALS.term.store(true, Ordering::SeqCst);
    } else if sig == libc::SIGINT {
        PROCESS_SIGNALS.int.store(true, Ordering::SeqCst);
    }
}

/// Routes SIGINT and SIGTERM of this process to [`PROCESS_SIGNALS`].
pub(crate) fn install_handlers() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only does atomic stores is valid; the mask is
        // emptied before use.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// An anonymous in-memory file for a tool's output (falls back to discarding it).
pub(crate) fn capture_file() -> Option<File> {
    // SAFETY: memfd_create with a valid C string; the returned fd is owned by the File.
    let fd = unsafe { libc::memfd_create(c"scripted-tool".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a fresh descriptor we own.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// Reads back at most `max` bytes written to a capture file.
pub(crate) fn read_capture(file: Option<File>, max: usize) -> String {
    let Some(mut f) = file else {
        return String::new();
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.by_ref().take(max as u64).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Starts `/bin/sh -c command` in `cwd`, in its own session (like the CLI's Bash tool), stdin /dev/null.
pub(crate) fn spawn_shell(
    command: &str,
    cwd: &Path,
    stdout: Option<&File>,
    stderr: Option<&File>,
) -> std::io::Result<Child> {
    let to_stdio = |f: Option<&File>| -> Stdio {
        f.and_then(|f| f.try_clone().ok())
            .map_or_else(Stdio::null, Stdio::from)
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(to_stdio(stdout))
        .stderr(to_stdio(stderr));
    // SAFETY: setsid is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// SIGKILLs the process group led by `pid` (a tool command started by [`spawn_shell`]).
pub(crate) fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain kill(2) on a negative pid (a process group we created).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Starts a new session for this process (the hidden `--sleep` mode); errors are irrelevant there.
pub(crate) fn new_session() {
    // SAFETY: setsid has no memory-safety preconditions.
    unsafe {
        libc::setsid();
    }
}

/// Dies of SIGSEGV or SIGABRT for real (the default action, core dump allowed).
pub(crate) fn crash(abort: bool) -> ! {
    let sig = if abort { libc::SIGABRT } else { libc::SIGSEGV };
    // SAFETY: restoring the default action and raising a signal; std's SIGSEGV handler would otherwise
    // treat a raised (not faulting) SIGSEGV as handled and return.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    std::process::abort()
}

pub(crate) fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

pub(crate) fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}
