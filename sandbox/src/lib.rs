//! genrun-sandbox: running the agent contained, and supervising it.
//!
//! - [`spawn`]: the agent as another user, in its own process group, with a scrubbed environment
//!   ([`agent_env`]), rlimits, `oom_score_adj` and a parent-death signal.
//! - [`Reaper`]: the one owner of `waitpid` (PID 1 duty; child subreaper otherwise); it hands the agent's
//!   exit status to [`ExitWaiter`].
//! - [`signal_group`], [`stop_plan`], [`sweep`]: stopping the agent and everything it left behind.
//! - [`ShutdownSignals`]: SIGTERM/SIGINT/SIGHUP to genrun.
//! - [`tree`]: the process table from `/proc`; [`memory`]: the memory watch.
//!
//! Every child of a process using this crate must be started through [`spawn`]: the reaper reaps every
//! child, so a `std`/`tokio` `Child::wait` elsewhere would lose its status.

pub mod memory;
pub mod tree;

mod env;
mod error;
mod reaper;
mod signal;
mod spawn;
mod sweep;
mod user;

pub use env::{agent_env, EnvPolicy, DEFAULT_PATH};
pub use error::SandboxError;
pub use reaper::{ExitWaiter, Reaper};
pub use signal::{
    signal_group, signal_name, signal_pid, stop_plan, ExitInfo, ShutdownSignals, Signal, StopStep,
    StopTarget,
};
pub use spawn::{spawn, Rlimits, SpawnError, SpawnSpec, Spawned};
pub use sweep::{kill_all_of_uid, sweep, SweepReport};
pub use user::{
    is_root, lookup_user, prepare_dir_for, resolve_user, restrict_to_owner, set_non_dumpable,
    UserError, UserSpec,
};
