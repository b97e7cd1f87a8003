//! Starting the agent contained.
//!
//! The child is set up between fork and exec, in this order (std does the first three):
//! 1. stdin `/dev/null`, stdout/stderr pipes; `chdir(cwd)`; its own process group (pgid = pid);
//! 2. signal mask emptied and the signals genrun uses set back to their default action (ignored signals
//!    survive exec; a shell started genrun in the background with SIGINT ignored, for one);
//! 3. `oom_score_adj` written (before dropping root: afterwards the non-dumpable child cannot open it; a
//!    non-root genrun first makes the child dumpable for the same reason);
//! 4. rlimits (core 0, open files, file size; both soft and hard, clamped to genrun's hard limit);
//! 5. `setgroups([gid])`, `setgid`, `setuid` when a user is given;
//! 6. `PR_SET_PDEATHSIG` (after setuid: a credential change clears it), then a check that genrun is still
//!    its parent; 7. exec.
//!
//! Steps 2-6 run in a `pre_exec` closure that only makes async-signal-safe system calls on data prepared
//! before the fork. Each step first writes its number to a close-on-exec pipe, so a failure names its step.
//! The program is looked up before forking (in the child's `PATH`), which gives `NotFound`/`NotExecutable`
//! their own errors.
//!
//! No `Child::wait`: the child's status comes from the [`Reaper`](crate::Reaper).
//! `PR_SET_PDEATHSIG` fires when the spawning THREAD exits: spawn from a long-lived thread (the main thread
//! or a runtime worker, never `spawn_blocking`).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::reaper::{reap_now, ExitWaiter, Reaper, SpawnGate};
use crate::signal::Signal;
use crate::user::UserSpec;

/// Resource limits for the agent. Each is set as both soft and hard limit, clamped to genrun's own hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimits {
    /// RLIMIT_NOFILE.
    pub nofile: Option<u64>,
    /// RLIMIT_FSIZE in bytes (largest file the agent can write).
    pub fsize: Option<u64>,
    /// RLIMIT_CORE 0: a crashing agent writes no core file into the workspace.
    pub core_zero: bool,
}

impl Default for Rlimits {
    /// 4096 open files, 4 GiB per file, no core files.
    fn default() -> Self {
        Rlimits {
            nofile: Some(4096),
            fsize: Some(4 << 30),
            core_zero: true,
        }
    }
}

/// What to start and how.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// A path (relative ones are taken from `cwd`) or a bare name looked up in `env`'s `PATH`.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// The complete environment (see [`crate::agent_env`]); nothing is inherited.
    pub env: Vec<(String, String)>,
    /// Run as this user (needs root unless it is the current one).
    pub user: Option<UserSpec>,
    pub rlimits: Rlimits,
    /// Written to the child's `/proc/self/oom_score_adj` (-1000..=1000; 1000 makes it the OOM killer's
    /// first choice).
    pub oom_score_adj: Option<i32>,
    /// Sent to the child when the spawning thread (genrun) dies.
    pub parent_death_signal: Option<Signal>,
}

/// A started child. Its process group id equals `pid`.
pub struct Spawned {
    pub pid: u32,
    pub stdout: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    pub stderr: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    pub exit: ExitWaiter,
}

impl std::fmt::Debug for Spawned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawned").field("pid", &self.pid).finish()
    }
}

/// Starting the child failed. `NotFound`/`NotExecutable` are "unavailable" (exit 69), `Os` is an OS error
/// (exit 71).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("program not found: {program}")]
    NotFound { program: PathBuf },
    #[error("program is not executable: {program}")]
    NotExecutable { program: PathBuf },
    #[error("cannot start the agent: {what} failed")]
    Os {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The child's set-up steps, in order; the index is what the child writes to the stage pipe.
const STAGES: &[&str] = &[
    "reset signals",
    "write oom_score_adj",
    "set rlimits",
    "setgroups",
    "setgid",
    "setuid",
    "set the parent-death signal",
    "exec",
];
const ST_SIGNALS: u8 = 0;
const ST_OOM: u8 = 1;
const ST_RLIMIT: u8 = 2;
const ST_GROUPS: u8 = 3;
const ST_GID: u8 = 4;
const ST_UID: u8 = 5;
const ST_PDEATH: u8 = 6;
const ST_EXEC: u8 = 7;

/// Signals put back to their default action in the child.
const RESET_SIGNALS: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGPIPE,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCHLD,
    libc::SIGALRM,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Everything the child needs, computed before the fork (no allocation after it).
struct ChildPlan {
    stage_fd: libc::c_int,
    oom: Option<([u8; 8], usize)>,
    make_dumpable: bool,
    rlimits: [(libc::__rlimit_resource_t, libc::rlim_t, bool); 3],
    ids: Option<(libc::uid_t, libc::gid_t)>,
    pdeath: Option<libc::c_int>,
    parent: libc::pid_t,
}

impl ChildPlan {
    fn stage(&self, n: u8) {
        // SAFETY: writing one byte from a live stack variable to an fd we own.
        unsafe {
            libc::write(self.stage_fd, (&n as *const u8).cast(), 1);
        }
    }

    /// Runs between fork and exec: async-signal-safe calls only.
    fn run(&self) -> io::Result<()> {
        fn check(rc: libc::c_int) -> io::Result<()> {
            if rc == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
        self.stage(ST_SIGNALS);
        // SAFETY (whole block): plain system calls on stack data prepared before the fork.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                &set,
                std::ptr::null_mut(),
            ))?;
            for &sig in RESET_SIGNALS {
                if libc::signal(sig, libc::SIG_DFL) == libc::SIG_ERR {
                    return Err(io::Error::last_os_error());
                }
            }

            if let Some((buf, len)) = &self.oom {
                self.stage(ST_OOM);
                if self.make_dumpable {
                    // A non-dumpable process's /proc files belong to root, so a non-root genrun that
                    // called `set_non_dumpable` could not open its child's own oom_score_adj. The flag is
                    // per address space (the child has its own copy) and exec resets it anyway.
                    check(libc::prctl(
                        libc::PR_SET_DUMPABLE,
                        1 as libc::c_ulong,
                        0 as libc::c_ulong,
                        0 as libc::c_ulong,
                        0 as libc::c_ulong,
                    ))?;
                }
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                check(fd)?;
                let n = libc::write(fd, buf.as_ptr().cast(), *len);
                let err = io::Error::last_os_error();
                libc::close(fd);
                if n != *len as isize {
                    return Err(err);
                }
            }

            self.stage(ST_RLIMIT);
            for &(res, value, on) in &self.rlimits {
                if on {
                    let lim = libc::rlimit {
                        rlim_cur: value,
                        rlim_max: value,
                    };
                    check(libc::setrlimit(res, &lim))?;
                }
            }

            if let Some((uid, gid)) = self.ids {
                self.stage(ST_GROUPS);
                check(libc::setgroups(1, &gid))?;
                self.stage(ST_GID);
                check(libc::setgid(gid))?;
                self.stage(ST_UID);
                check(libc::setuid(uid))?;
            }

            if let Some(sig) = self.pdeath {
                self.stage(ST_PDEATH);
                check(libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    sig as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                ))?;
                if libc::getppid() != self.parent {
                    // genrun died between fork and prctl: the signal will never come.
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
        }
        self.stage(ST_EXEC);
        Ok(())
    }
}

/// Starts `spec` contained (see the module docs). Needs a tokio runtime (the pipes register with it) and an
/// installed [`Reaper`], which delivers the exit status to `Spawned::exit`.
pub fn spawn(spec: SpawnSpec, reaper: &Reaper) -> Result<Spawned, SpawnError> {
    let _ = reaper; // Its presence is the contract: somebody reaps.
    let program = resolve_program(&spec)?;
    if !spec.cwd.is_dir() {
        return Err(SpawnError::Os {
            what: "open the working directory",
            source: io::Error::new(
                io::ErrorKind::NotFound,
                format!("not a directory: {}", spec.cwd.display()),
            ),
        });
    }

    let (stage_r, stage_w) = stage_pipe().map_err(|source| SpawnError::Os {
        what: "create a pipe",
        source,
    })?;
    let plan = ChildPlan {
        stage_fd: stage_w.as_raw_fd(),
        oom: spec.oom_score_adj.map(oom_bytes),
        make_dumpable: !crate::user::is_root(),
        rlimits: rlimit_plan(&spec.rlimits),
        ids: child_ids(spec.user.as_ref()),
        pdeath: spec.parent_death_signal.map(Signal::as_raw),
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
    };

    let mut cmd = Command::new(&program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: `run` makes only async-signal-safe system calls and does not allocate.
    unsafe {
        cmd.pre_exec(move || plan.run());
    }

    let gate = SpawnGate::enter();
    let result = cmd.spawn();
    let (mut child, exit) = match result {
        Ok(child) => {
            let exit = gate.register(child.id());
            (child, exit)
        }
        Err(source) => {
            drop(gate);
            drop(stage_w);
            return Err(classify(source, last_stage(&stage_r), program));
        }
    };
    drop(gate);
    drop(stage_w);
    reap_now();

    let pid = child.id();
    let pipes = child
        .stdout
        .take()
        .zip(child.stderr.take())
        .ok_or_else(|| io::Error::other("missing output pipe"))
        .and_then(|(out, err)| {
            let out = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(out))?;
            let err = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(err))?;
            Ok((out, err))
        });
    // The std Child is dropped without waiting: the reaper owns its status.
    drop(child);
    match pipes {
        Ok((out, err)) => Ok(Spawned {
            pid,
            stdout: Box::new(out),
            stderr: Box::new(err),
            exit,
        }),
        Err(source) => {
            let _ = crate::signal::signal_group(pid, Signal::Kill);
            Err(SpawnError::Os {
                what: "register the output pipes",
                source,
            })
        }
    }
}

/// Finds the program the way exec will, so a missing or non-executable one gets its own error.
fn resolve_program(spec: &SpawnSpec) -> Result<PathBuf, SpawnError> {
    let prog = &spec.program;
    let not_found = || SpawnError::NotFound {
        program: prog.clone(),
    };
    if prog.as_os_str().is_empty() {
        return Err(not_found());
    }
    let candidate = if prog.as_os_str().as_encoded_bytes().contains(&b'/') {
        let p = if prog.is_absolute() {
            prog.clone()
        } else {
            spec.cwd.join(prog)
        };
        return check_executable(&p, prog);
    } else {
        let path = spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(crate::env::DEFAULT_PATH);
        let mut first_non_exec = None;
        let mut found = None;
        for dir in path.split(':').filter(|d| !d.is_empty()) {
            let p = Path::new(dir).join(prog);
            match check_executable(&p, prog) {
                Ok(p) => {
                    found = Some(p);
                    break;
                }
                Err(SpawnError::NotExecutable { .. }) if first_non_exec.is_none() => {
                    first_non_exec = Some(p)
                }
                Err(_) => {}
            }
        }
        match (found, first_non_exec) {
            (Some(p), _) => p,
            (None, Some(_)) => {
                return Err(SpawnError::NotExecutable {
                    program: prog.clone(),
                })
            }
            (None, None) => return Err(not_found()),
        }
    };
    Ok(candidate)
}

fn check_executable(p: &Path, named: &Path) -> Result<PathBuf, SpawnError> {
    match std::fs::metadata(p) {
        Err(_) => Err(SpawnError::NotFound {
            program: named.to_path_buf(),
        }),
        Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => {
            Err(SpawnError::NotExecutable {
                program: named.to_path_buf(),
            })
        }
        Ok(_) => Ok(p.to_path_buf()),
    }
}

fn classify(source: io::Error, stage: Option<u8>, program: PathBuf) -> SpawnError {
    let what = match stage {
        None => "set up stdio, working directory or process group",
        Some(s) => STAGES.get(usize::from(s)).copied().unwrap_or("exec"),
    };
    if stage == Some(ST_EXEC) {
        match source.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => return SpawnError::NotFound { program },
            Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) => {
                return SpawnError::NotExecutable { program }
            }
            _ => {}
        }
    }
    SpawnError::Os { what, source }
}

/// A close-on-exec, non-blocking pipe: (read end, write end).
fn stage_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into `fds`, which we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The last stage the failed child reached (all its writes happened before `spawn` returned).
fn last_stage(read: &OwnedFd) -> Option<u8> {
    let mut buf = [0u8; 64];
    let mut last = None;
    loop {
        // SAFETY: reading into a live stack buffer from an fd we own.
        let n = unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return last;
        }
        last = Some(buf[n.unsigned_abs() - 1]);
    }
}

fn oom_bytes(v: i32) -> ([u8; 8], usize) {
    let v = v.clamp(-1000, 1000);
    let s = v.to_string();
    let mut buf = [0u8; 8];
    buf[..s.len()].copy_from_slice(s.as_bytes());
    (buf, s.len())
}

fn rlimit_plan(r: &Rlimits) -> [(libc::__rlimit_resource_t, libc::rlim_t, bool); 3] {
    let clamp = |res: libc::__rlimit_resource_t, v: u64| -> libc::rlim_t {
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into `cur`.
        let ok = unsafe { libc::getrlimit(res, &mut cur) } == 0;
        // Never above genrun's own hard limit, even as root: in a container (docker --ulimit, ECS
        // ulimits) root cannot raise it either, and the agent would fail to start.
        if ok && cur.rlim_max != libc::RLIM_INFINITY {
            v.min(cur.rlim_max)
        } else {
            v
        }
    };
    [
        (
            libc::RLIMIT_NOFILE,
            r.nofile.map_or(0, |v| clamp(libc::RLIMIT_NOFILE, v)),
            r.nofile.is_some(),
        ),
        (
            libc::RLIMIT_FSIZE,
            r.fsize.map_or(0, |v| clamp(libc::RLIMIT_FSIZE, v)),
            r.fsize.is_some(),
        ),
        (libc::RLIMIT_CORE, 0, r.core_zero),
    ]
}

/// The ids to switch to, or `None` when the child already runs as them.
fn child_ids(user: Option<&UserSpec>) -> Option<(libc::uid_t, libc::gid_t)> {
    let u = user?;
    // SAFETY: these getters have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if u.uid == euid && u.gid == egid {
        None
    } else {
        Some((u.uid, u.gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_bytes_formats_and_clamps() {
        let (b, n) = oom_bytes(1000);
        assert_eq!(&b[..n], b"1000");
        let (b, n) = oom_bytes(-5000);
        assert_eq!(&b[..n], b"-1000");
    }

    #[test]
    fn stage_table_matches_constants() {
        assert_eq!(STAGES[usize::from(ST_EXEC)], "exec");
        assert_eq!(STAGES[usize::from(ST_UID)], "setuid");
        assert_eq!(STAGES.len(), usize::from(ST_EXEC) + 1);
    }

    #[test]
    fn exec_errors_map_to_unavailable_others_to_os() {
        let p = PathBuf::from("x");
        let e = |n| io::Error::from_raw_os_error(n);
        assert!(matches!(
            classify(e(libc::ENOENT), Some(ST_EXEC), p.clone()),
            SpawnError::NotFound { .. }
        ));
        assert!(matches!(
            classify(e(libc::EACCES), Some(ST_EXEC), p.clone()),
            SpawnError::NotExecutable { .. }
        ));
        assert!(matches!(
            classify(e(libc::EPERM), Some(ST_UID), p.clone()),
            SpawnError::Os { what: "setuid", .. }
        ));
        // ENOENT before exec (e.g. no /proc) is an OS error, not a missing program.
        assert!(matches!(
            classify(e(libc::ENOENT), Some(ST_OOM), p),
            SpawnError::Os {
                what: "write oom_score_adj",
                ..
            }
        ));
    }
}
