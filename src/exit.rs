//! The exit-code contract between genrun and whatever started it (the orchestrator, ECS, a developer).
//!
//! Codes follow sysexits.h where one fits and use 80-86 for what the agent did. genrun itself never exits
//! 1, 2, 101, 126, 127 or 128+n, so those always mean that something outside genrun failed (the runtime, the
//! kernel's OOM killer, an expired stop timeout). Every code has exactly one [`Outcome`]; the table below is
//! what `genrun exit-codes`, the README and result.json all print.

use serde::Serialize;

/// What a run (or a command) came to. One variant per exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The agent succeeded and the artifacts are stored.
    Success,
    /// Bad command line.
    Usage,
    /// The job is invalid: missing prompt, bad request id, unreadable job document.
    BadJob,
    /// The agent program is missing or not executable, or the output store is unreachable at start.
    Unavailable,
    /// A bug in genrun. The panic hook maps here and still writes result.json.
    Internal,
    /// fork, exec, setuid or rlimit failed.
    OsError,
    /// Disk full or another I/O error while packaging or writing.
    IoError,
    /// Storing artifacts failed after retries; they are kept locally (path in the log and result).
    StoreFailed,
    /// The store refused our credentials.
    AccessDenied,
    /// An invalid configuration value.
    Config,
    /// The agent ended in error: API or auth failure, crash, non-zero exit.
    AgentFailed,
    /// The turn limit was reached.
    MaxTurns,
    /// The wall-clock or idle limit was reached.
    Timeout,
    /// The memory guard stopped the agent.
    Memory,
    /// The cost budget was reached.
    Budget,
    /// SIGTERM or SIGINT was received; the work was salvaged within the grace period.
    Cancelled,
    /// The agent was killed by a signal genrun did not send (the kernel's OOM killer, ...).
    AgentKilled,
}

/// Exit code constants, one per [`Outcome`].
pub mod code {
    /// The agent succeeded; artifacts stored.
    pub const SUCCESS: i32 = 0;
    /// Bad command line.
    pub const USAGE: i32 = 64;
    /// Job invalid (missing prompt, bad request id, unreadable job document).
    pub const BAD_JOB: i32 = 65;
    /// Agent program missing or not executable; output store unreachable at start.
    pub const UNAVAILABLE: i32 = 69;
    /// genrun bug.
    pub const INTERNAL: i32 = 70;
    /// fork/exec/setuid/rlimit failure.
    pub const OS_ERROR: i32 = 71;
    /// Disk full or I/O error while packaging or writing.
    pub const IO_ERROR: i32 = 74;
    /// Storing artifacts failed after retries.
    pub const STORE_FAILED: i32 = 75;
    /// The store refused our credentials.
    pub const ACCESS_DENIED: i32 = 77;
    /// Invalid configuration value.
    pub const CONFIG: i32 = 78;
    /// Agent ended in error.
    pub const AGENT_FAILED: i32 = 80;
    /// Turn limit reached.
    pub const MAX_TURNS: i32 = 81;
    /// Wall-clock or idle limit reached.
    pub const TIMEOUT: i32 = 82;
    /// Memory guard stopped the agent.
    pub const MEMORY: i32 = 83;
    /// Cost budget reached.
    pub const BUDGET: i32 = 84;
    /// SIGTERM/SIGINT received; work salvaged.
    pub const CANCELLED: i32 = 85;
    /// Agent killed by a signal genrun did not send.
    pub const AGENT_KILLED: i32 = 86;
}

/// Whether the orchestrator should run the same job again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// Nothing to retry: it worked.
    NotApplicable,
    /// Retrying the same job gives the same answer.
    No,
    /// Retry as is.
    Yes,
    /// Retry after a while (a dependency was unavailable).
    Later,
    /// Retry with more storage.
    MoreStorage,
    /// Retry with more memory.
    MoreMemory,
    /// It depends (a hung agent may succeed next time; a too-large job will not).
    Maybe,
    /// It depends on why the task was stopped (user cancel: no; Spot interruption: yes).
    PerStopReason,
}

impl Retry {
    /// The README's wording.
    pub fn as_str(self) -> &'static str {
        match self {
            Retry::NotApplicable => "-",
            Retry::No => "no",
            Retry::Yes => "yes",
            Retry::Later => "yes, later",
            Retry::MoreStorage => "yes, more storage",
            Retry::MoreMemory => "yes, more memory",
            Retry::Maybe => "maybe",
            Retry::PerStopReason => "per stop reason",
        }
    }
}

impl Outcome {
    /// Every outcome, in code order.
    pub const ALL: [Outcome; 17] = [
        Outcome::Success,
        Outcome::Usage,
        Outcome::BadJob,
        Outcome::Unavailable,
        Outcome::Internal,
        Outcome::OsError,
        Outcome::IoError,
        Outcome::StoreFailed,
        Outcome::AccessDenied,
        Outcome::Config,
        Outcome::AgentFailed,
        Outcome::MaxTurns,
        Outcome::Timeout,
        Outcome::Memory,
        Outcome::Budget,
        Outcome::Cancelled,
        Outcome::AgentKilled,
    ];

    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Outcome::Success => code::SUCCESS,
            Outcome::Usage => code::USAGE,
            Outcome::BadJob => code::BAD_JOB,
            Outcome::Unavailable => code::UNAVAILABLE,
            Outcome::Internal => code::INTERNAL,
            Outcome::OsError => code::OS_ERROR,
            Outcome::IoError => code::IO_ERROR,
            Outcome::StoreFailed => code::STORE_FAILED,
            Outcome::AccessDenied => code::ACCESS_DENIED,
            Outcome::Config => code::CONFIG,
            Outcome::AgentFailed => code::AGENT_FAILED,
            Outcome::MaxTurns => code::MAX_TURNS,
            Outcome::Timeout => code::TIMEOUT,
            Outcome::Memory => code::MEMORY,
            Outcome::Budget => code::BUDGET,
            Outcome::Cancelled => code::CANCELLED,
            Outcome::AgentKilled => code::AGENT_KILLED,
        }
    }

    /// The snake_case name used in result.json and events.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Usage => "usage",
            Outcome::BadJob => "bad_job",
            Outcome::Unavailable => "unavailable",
            Outcome::Internal => "internal",
            Outcome::OsError => "os_error",
            Outcome::IoError => "io_error",
            Outcome::StoreFailed => "store_failed",
            Outcome::AccessDenied => "access_denied",
            Outcome::Config => "config",
            Outcome::AgentFailed => "agent_failed",
            Outcome::MaxTurns => "max_turns",
            Outcome::Timeout => "timeout",
            Outcome::Memory => "memory",
            Outcome::Budget => "budget",
            Outcome::Cancelled => "cancelled",
            Outcome::AgentKilled => "agent_killed",
        }
    }

    /// One line on what the code means.
    pub fn meaning(self) -> &'static str {
        match self {
            Outcome::Success => "agent succeeded; artifacts stored",
            Outcome::Usage => "bad command line",
            Outcome::BadJob => {
                "job invalid (missing prompt, bad request id, unreadable job document)"
            }
            Outcome::Unavailable => {
                "agent program missing or not executable; output store unreachable at start"
            }
            Outcome::Internal => {
                "genrun bug (the panic hook maps here and still writes result.json)"
            }
            Outcome::OsError => "fork/exec/setuid/rlimit failure",
            Outcome::IoError => "disk full or I/O error while packaging or writing",
            Outcome::StoreFailed => {
                "storing artifacts failed after retries (kept locally, path in the log)"
            }
            Outcome::AccessDenied => "the store refused our credentials",
            Outcome::Config => "invalid configuration value",
            Outcome::AgentFailed => "agent ended in error (API/auth failure, crash, non-zero exit)",
            Outcome::MaxTurns => "turn limit reached",
            Outcome::Timeout => "wall-clock or idle limit reached",
            Outcome::Memory => "memory guard stopped the agent",
            Outcome::Budget => "cost budget reached",
            Outcome::Cancelled => "SIGTERM/SIGINT received; work salvaged within the grace period",
            Outcome::AgentKilled => {
                "agent killed by a signal genrun did not send (kernel OOM killer...)"
            }
        }
    }

    /// Whether to retry.
    pub fn retry(self) -> Retry {
        match self {
            Outcome::Success => Retry::NotApplicable,
            Outcome::Usage | Outcome::BadJob | Outcome::Internal => Retry::No,
            Outcome::AccessDenied | Outcome::Config | Outcome::AgentFailed => Retry::No,
            Outcome::MaxTurns | Outcome::Budget => Retry::No,
            Outcome::Unavailable => Retry::Later,
            Outcome::OsError | Outcome::StoreFailed => Retry::Yes,
            Outcome::IoError => Retry::MoreStorage,
            Outcome::Timeout => Retry::Maybe,
            Outcome::Memory | Outcome::AgentKilled => Retry::MoreMemory,
            Outcome::Cancelled => Retry::PerStopReason,
        }
    }

    /// Parses a snake_case outcome name.
    #[cfg(test)]
    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.name() == name)
    }
}

/// Exit codes genrun promises never to use (they mean something outside genrun failed).
pub const NEVER_USED: &[i32] = &[1, 2, 101, 126, 127];

/// The contract as a Markdown table (README, `genrun exit-codes`).
pub fn table_markdown() -> String {
    let mut out = String::from("| code | outcome | meaning | retry? |\n|---|---|---|---|\n");
    for o in Outcome::ALL {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            o.code(),
            o.name(),
            o.meaning(),
            o.retry().as_str()
        ));
    }
    out.push_str(
        "\ngenrun itself never exits 1, 2, 101, 126, 127 or 128+n, so those always mean something outside it failed.\n",
    );
    out
}

/// The contract as JSON (`genrun exit-codes --json`).
pub fn table_json() -> serde_json::Value {
    let codes: Vec<_> = Outcome::ALL
        .into_iter()
        .map(|o| {
            serde_json::json!({
                "code": o.code(),
                "outcome": o.name(),
                "meaning": o.meaning(),
                "retry": o.retry().as_str(),
            })
        })
        .collect();
    serde_json::json!({ "codes": codes, "never_used": NEVER_USED, "never_used_ranges": ["128-255"] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_outcome_has_a_distinct_code_outside_the_reserved_ones() {
        let mut seen = HashSet::new();
        for o in Outcome::ALL {
            assert!(seen.insert(o.code()), "{o:?} reuses {}", o.code());
            assert!(!NEVER_USED.contains(&o.code()), "{o:?}");
            assert!(o.code() < 128, "{o:?}");
            assert_eq!(Outcome::from_name(o.name()), Some(o));
        }
    }

    #[test]
    fn serde_name_matches_name() {
        for o in Outcome::ALL {
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::json!(o.name())
            );
        }
    }

    #[test]
    fn markdown_table_lists_every_code() {
        let t = table_markdown();
        for o in Outcome::ALL {
            assert!(
                t.contains(&format!("| {} | {} |", o.code(), o.name())),
                "{t}"
            );
        }
    }
}
