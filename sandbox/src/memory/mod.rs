//! Memory watch: see memory the way the kernel does, record it, and act before the OOM killer.
//!
//! A task that runs out of memory is killed whole by the kernel (exit 137) and every file the agent wrote
//! is lost. This module finds the limit that applies ([`Probe::detect_limit`]), samples usage cheaply
//! ([`Sampler`]), decides when to warn, terminate a tool or stop the agent ([`Guard`], pure), carries out a
//! tool termination ([`terminate_process`]) and summarises the run for result.json ([`ProfileRecorder`],
//! with a Fargate sizing recommendation). The supervisor's select loop drives it:
//!
//! ```text
//! probe.detect_limit(flag) -> limit;  sampler = probe.sampler(&limit);  guard = Guard::new(cfg, limit.bytes)
//! every interval: s = sampler.sample(Some(agent));  profile.record(&s);
//!                 a = guard.decide(&s, agent);  profile.record_action(&a);  act on a
//! ```

mod cgroup;
mod guard;
mod probe;
mod proctable;
mod profile;
mod sampler;
mod scratch;
mod size;
mod terminate;

#[cfg(test)]
mod tests;

pub use guard::{Guard, GuardAction, GuardConfig, REARM_GAP};
pub use probe::{
    own_memory_cgroup, own_memory_cgroup_dir, LimitSource, MemoryCgroup, MemoryCgroupVersion,
    MemoryLimit, Probe,
};
pub use profile::{
    fargate_memory_mib, fargate_memory_sizes, sparkline, MemoryAction, MemoryActionRecord,
    MemoryProfile, OomKillRecord, ProfileRecorder, Recommendation, CURVE_KEEP, CURVE_POINTS,
    HEADROOM,
};
pub use sampler::{ProcMem, Sample, Sampler, TOP_PROCESSES};
pub use scratch::{ScratchCgroup, ScratchCgroupError};
pub use size::{parse_size, SizeError};
pub use terminate::{terminate_process, TerminateOutcome};
