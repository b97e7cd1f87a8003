//! result.json: the record of one run, written last. Its presence means the run is complete.
//!
//! The orchestrator reads this before the exit code, and the exit code before ECS's stop reason. The shape
//! is pinned by `schemas/result.schema.json` (a test checks every field against it, so drift fails).
//! `outcome`/`exit_code` are what genrun exited with; `agent_outcome` is what the agent alone came to, so
//! when storing fails (75/77 win) the agent's verdict is still there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exit::Outcome;

/// Bumped on any incompatible change to this document.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    pub schema_version: u32,
    pub genrun_version: String,
    pub request_id: String,
    pub outcome: Outcome,
    pub exit_code: i32,
    /// The README's "retry?" column for `outcome`.
    pub retry: String,
    /// What the agent came to before storing; `null` when the agent never ran.
    pub agent_outcome: Option<Outcome>,
    pub started_at: String,
    pub finished_at: String,
    pub durations_ms: Durations,
    pub agent: Option<AgentFacts>,
    pub package: Option<PackageFacts>,
    pub memory: Option<serde_json::Value>,
    pub artifacts: Vec<Artifact>,
    /// Where the artifacts were kept on local disk when storing them failed.
    pub local_copy: Option<String>,
    pub progress: ProgressFacts,
    pub errors: Vec<ErrorRecord>,
}

/// Time spent per phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Durations {
    pub preflight: u64,
    pub agent: u64,
    pub package: u64,
    pub upload: u64,
    pub total: u64,
}

/// What the agent did, from its stream and its exit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFacts {
    pub program: String,
    pub pid: Option<u32>,
    pub user: Option<String>,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub cli_version: Option<String>,
    pub turns: u64,
    pub max_turns: u32,
    pub cost_usd: Option<f64>,
    pub budget_usd: Option<f64>,
    pub subtype: Option<String>,
    pub terminal_reason: Option<String>,
    pub is_error: Option<bool>,
    /// The result line's final text, truncated.
    pub final_text: Option<String>,
    pub tool_counts: BTreeMap<String, u64>,
    pub permission_denials: u64,
    /// The result line's `errors`.
    pub errors: Vec<String>,
    /// The last 64 KiB of the agent's stderr.
    pub stderr_tail: String,
    /// `exited N` or `killed by SIGNAME`.
    pub exit: Option<String>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<String>,
    pub result_line_seen: bool,
    pub lines: u64,
    pub non_json_lines: u64,
    pub stop: Option<StopFacts>,
    /// Processes of the run still alive after the agent exited, killed by the sweep.
    pub swept: u32,
}

/// Why and how genrun stopped the agent, when it did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopFacts {
    pub reason: String,
    pub signals_sent: Vec<String>,
}

/// What the packager kept and dropped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageFacts {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes_in: u64,
    pub tar_bytes: u64,
    pub tar_sha256: String,
    pub archives: BTreeMap<String, ArchiveFacts>,
    pub dropped: u64,
    pub drops_by_reason: BTreeMap<String, u64>,
    pub redacted_files: Vec<String>,
}

/// One archive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveFacts {
    pub bytes: u64,
    pub sha256: String,
}

/// One stored object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub name: String,
    pub location: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Progress events of the run (HTTP delivery is known only after result.json: see the log and `seq` gaps).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressFacts {
    /// Events emitted, the final `result` event included.
    pub events: u64,
}

/// Something that went wrong, in the phase it went wrong in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRecord {
    pub phase: String,
    pub kind: String,
    pub message: String,
}

impl ErrorRecord {
    pub fn new(phase: &str, kind: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorRecord {
            phase: phase.into(),
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl RunResult {
    /// A result for a run that has just started; the pipeline fills it in.
    pub fn new(request_id: &str, started_at: String) -> Self {
        RunResult {
            schema_version: SCHEMA_VERSION,
            genrun_version: env!("CARGO_PKG_VERSION").into(),
            request_id: request_id.into(),
            outcome: Outcome::Internal,
            exit_code: Outcome::Internal.code(),
            retry: Outcome::Internal.retry().as_str().into(),
            agent_outcome: None,
            started_at: started_at.clone(),
            finished_at: started_at,
            durations_ms: Durations::default(),
            agent: None,
            package: None,
            memory: None,
            artifacts: Vec::new(),
            local_copy: None,
            progress: ProgressFacts::default(),
            errors: Vec::new(),
        }
    }

    /// Sets the final outcome (and the exit code and retry advice that go with it).
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = outcome;
        self.exit_code = outcome.code();
        self.retry = outcome.retry().as_str().into();
    }
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&fmt)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}
