//! A throw-away memory cgroup for tests that need a real kernel limit.
//!
//! Always created as a child of the cgroup this process runs in (as `/proc/self/cgroup` names it), never at
//! a hierarchy's root, and removed on drop (its processes are moved back to the parent first) so a failing
//! test leaves nothing behind. Needs root and a writable cgroupfs; cgroup v2 additionally needs the memory
//! controller already enabled in the parent's `cgroup.subtree_control`.

use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cgroup::{CgroupDir, CgroupVersion, Reader};
use super::probe::{MemoryCgroupVersion, Probe};

/// Attempts at removing the directory while exited processes are still being released.
const RMDIR_ATTEMPTS: u32 = 40;
const RMDIR_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ScratchCgroupError {
    #[error("no memory cgroup visible for this process")]
    NoCgroup,
    #[error(
        "this process's memory cgroup is the hierarchy root; refusing to create a cgroup there"
    )]
    AtRoot,
    #[error("cannot create cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A child memory cgroup of this process's own, with a limit; removed on drop.
#[derive(Debug)]
pub struct ScratchCgroup {
    cg: CgroupDir,
    parent: PathBuf,
}

impl ScratchCgroup {
    /// Creates `<own memory cgroup>/<name>` limited to `limit_bytes` (swap limited too where the files
    /// exist, so the limit is reached rather than swapped around).
    pub fn create(
        probe: &Probe,
        name: &str,
        limit_bytes: u64,
    ) -> Result<ScratchCgroup, ScratchCgroupError> {
        let own = probe.own_cgroup().ok_or(ScratchCgroupError::NoCgroup)?;
        if own.dir == own.mount {
            return Err(ScratchCgroupError::AtRoot);
        }
        let dir = own.dir.join(name);
        fs::create_dir(&dir).map_err(|source| ScratchCgroupError::Create {
            path: dir.clone(),
            source,
        })?;
        let scratch = ScratchCgroup {
            cg: CgroupDir {
                version: own.version,
                dir,
                mount: own.mount,
            },
            parent: own.dir,
        };
        let limit = limit_bytes.to_string();
        match own.version {
            CgroupVersion::V1 => {
                scratch.write("memory.limit_in_bytes", &limit)?;
                // Optional (swap accounting may be off); must follow limit_in_bytes.
                let _ = scratch.write("memory.memsw.limit_in_bytes", &limit);
            }
            CgroupVersion::V2 => {
                scratch.write("memory.max", &limit)?;
                let _ = scratch.write("memory.swap.max", "0");
            }
        }
        Ok(scratch)
    }

    pub fn dir(&self) -> &Path {
        &self.cg.dir
    }

    pub fn version(&self) -> MemoryCgroupVersion {
        match self.cg.version {
            CgroupVersion::V1 => MemoryCgroupVersion::V1,
            CgroupVersion::V2 => MemoryCgroupVersion::V2,
        }
    }

    /// Moves a running process into the cgroup.
    pub fn add_pid(&self, pid: u32) -> Result<(), ScratchCgroupError> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// Makes `cmd`'s child join the cgroup between fork and exec, so everything it runs is charged here.
    pub fn join_on_spawn(&self, cmd: &mut std::process::Command) -> Result<(), ScratchCgroupError> {
        let path = self.cg.dir.join("cgroup.procs");
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| ScratchCgroupError::Write { path, source })?;
        // SAFETY: the closure only calls write(2) on a descriptor opened before fork; "0" means the
        // calling process. No allocation happens in the child.
        unsafe {
            cmd.pre_exec(move || {
                let fd = file.as_raw_fd();
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(())
    }

    /// Pids currently in the cgroup.
    pub fn pids(&self) -> Vec<u32> {
        fs::read_to_string(self.cg.dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The kernel's OOM-kill counter of the cgroup.
    pub fn oom_kills(&self) -> Option<u64> {
        Reader::default().oom_kills(&self.cg)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), ScratchCgroupError> {
        let path = self.cg.dir.join(file);
        write_file(&path, value).map_err(|source| ScratchCgroupError::Write { path, source })
    }
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

impl Drop for ScratchCgroup {
    fn drop(&mut self) {
        let parent_procs = self.parent.join("cgroup.procs");
        for attempt in 0..RMDIR_ATTEMPTS {
            for pid in self.pids() {
                let _ = write_file(&parent_procs, &pid.to_string());
            }
            match fs::remove_dir(&self.cg.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) if attempt + 1 == RMDIR_ATTEMPTS => {
                    tracing::warn!(dir = %self.cg.dir.display(), error = %e, "cannot remove scratch cgroup");
                }
                Err(_) => std::thread::sleep(RMDIR_PAUSE),
            }
        }
    }
}
