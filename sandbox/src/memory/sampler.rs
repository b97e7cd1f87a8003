//! One memory sample: how much is used, who uses it, and whether the kernel has OOM-killed anything.
//!
//! Taken every `--memory-interval` from the supervisor's select loop, so it must stay cheap: a listing of
//! `/proc`, one small read per process of genrun's tree and per new process (see `proctable`), and two
//! or three cgroup files. Usage is measured the way the limit is enforced: the limiting cgroup's working
//! set when the limit is a cgroup's, otherwise the summed RSS of genrun and every process under it (as a
//! subreaper genrun also adopts the agent's orphans, so they count).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cgroup::{CgroupDir, Reader};
use super::proctable::ProcTable;

/// How many of the largest processes a sample keeps.
pub const TOP_PROCESSES: usize = 5;

/// A process of genrun's tree and its resident memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcMem {
    pub pid: u32,
    /// The kernel's `comm` (at most 15 bytes).
    pub name: String,
    pub rss_bytes: u64,
    /// The agent process itself.
    pub is_agent: bool,
    /// genrun itself (never a target for the guard).
    #[serde(default)]
    pub is_supervisor: bool,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Time since the sampler was made.
    pub elapsed: Duration,
    /// Bytes counted against the limit (see the module doc).
    pub used_bytes: u64,
    /// The kernel's cumulative OOM-kill count for the cgroup, where readable.
    pub cgroup_oom_kills: Option<u64>,
    /// genrun and the agent's tree, largest RSS first, at most [`TOP_PROCESSES`].
    pub processes: Vec<ProcMem>,
}

/// Takes samples; made by [`super::Probe::sampler`].
#[derive(Debug)]
pub struct Sampler {
    started: Instant,
    table: ProcTable,
    supervisor_pid: u32,
    /// The cgroup whose limit applies; usage is its working set.
    limiting: Option<CgroupDir>,
    /// Where the OOM-kill counter is read (the limiting cgroup, else genrun's own).
    oom_source: Option<CgroupDir>,
    reader: Reader,
}

impl Sampler {
    pub(crate) fn new(
        proc_root: PathBuf,
        limiting: Option<CgroupDir>,
        oom_source: Option<CgroupDir>,
    ) -> Sampler {
        Sampler {
            started: Instant::now(),
            table: ProcTable::new(proc_root),
            supervisor_pid: std::process::id(),
            limiting,
            oom_source,
            reader: Reader::default(),
        }
    }

    /// Treats `pid` as genrun (default: this process); for process tables read from fixtures.
    pub fn with_supervisor_pid(mut self, pid: u32) -> Sampler {
        self.supervisor_pid = pid;
        self
    }

    /// Whether usage is a cgroup's working set (otherwise the process tree's RSS).
    pub fn uses_cgroup(&self) -> bool {
        self.limiting.is_some()
    }

    pub fn sample(&mut self, agent_pid: Option<u32>) -> Sample {
        let elapsed = self.started.elapsed();
        let mut members = self.table.members(self.supervisor_pid, agent_pid);
        let tree_rss: u64 = members.iter().map(|p| p.rss_bytes).sum();
        let used_bytes = self
            .limiting
            .as_ref()
            .and_then(|cg| self.reader.working_set(cg))
            .unwrap_or(tree_rss);
        let cgroup_oom_kills = self
            .oom_source
            .as_ref()
            .and_then(|cg| self.reader.oom_kills(cg));
        members.sort_by(|a, b| b.rss_bytes.cmp(&a.rss_bytes).then(a.pid.cmp(&b.pid)));
        members.truncate(TOP_PROCESSES);
        Sample {
            elapsed,
            used_bytes,
            cgroup_oom_kills,
            processes: members,
        }
    }
}
