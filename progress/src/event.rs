//! The typed progress event: the one wire shape every renderer and the HTTP sink carry.
//!
//! The core builds an [`EventKind`]; [`crate::Progress`] stamps it into an [`Event`] (sequence number, time,
//! request id, human message) so that producers cannot get the envelope wrong. `schemas/event.schema.json`
//! describes the same shape and a test validates emitted events against it, so the two cannot drift.

use serde::{Deserialize, Serialize};

/// One progress event, serialized as one JSON object per line.
///
/// Wire format (key order as written here, `kind`'s fields flattened between `kind` and `msg`):
///
/// ```json
/// {"ts":"2026-05-01T12:00:03.412Z","seq":7,"request_id":"req-42","kind":"tool","name":"Write","target":"src/App.tsx","msg":"Write src/App.tsx"}
/// ```
///
/// - `ts`: RFC 3339 UTC with milliseconds, assigned when the event was emitted.
/// - `seq`: starts at 1 for each run and has no gaps as emitted; a consumer that sees a gap lost events
///   (the HTTP sink drops the oldest events when its queue is full, see [`crate::http`]).
/// - `request_id`: the job's request id, the same on every event of a run.
/// - `kind`: one of the snake_case names of [`EventKind`]; the kind's fields follow. Optional fields are
///   present with `null` rather than absent.
/// - `msg`: a short human sentence, already redacted like everything else.
///
/// No serialized event (plus its newline) is longer than [`crate::MAX_LINE_BYTES`]: long string fields are
/// cut and end with a `… [truncated N bytes]` marker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub ts: String,
    pub seq: u64,
    pub request_id: String,
    #[serde(flatten)]
    pub kind: EventKind,
    pub msg: String,
}

/// What happened. The variant name in snake_case is the wire `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// genrun started a run.
    Started {
        version: String,
        workspace: String,
        output: String,
        max_turns: u32,
    },
    /// A check before the agent starts (e.g. the store is reachable and writable).
    Preflight {
        store: String,
        ok: bool,
        detail: Option<String>,
    },
    /// The agent process is running.
    AgentStarted {
        pid: u32,
        program: String,
        model: Option<String>,
        cli_version: Option<String>,
        session_id: Option<String>,
    },
    /// The agent began assistant turn `n` of at most `max`.
    Turn { n: u64, max: u32 },
    /// The agent used a tool; `target` is the file path (Write/Edit/Read) or the first line of a command.
    Tool {
        name: String,
        target: Option<String>,
    },
    /// Assistant text (truncated by the producer).
    Text { text: String },
    /// The CLI retried a failed API request.
    ApiRetry {
        attempt: Option<u64>,
        max_retries: Option<u64>,
        error_status: Option<u64>,
        error: Option<String>,
    },
    /// The CLI compacted its context.
    Compaction {
        trigger: Option<String>,
        pre_tokens: Option<u64>,
    },
    /// Memory use crossed the warning threshold.
    MemoryWarning {
        used_bytes: u64,
        limit_bytes: u64,
        percent: f64,
    },
    /// The memory guard acted (e.g. killed the largest process, stopped the agent).
    MemoryAction {
        action: String,
        pid: Option<u32>,
        process: Option<String>,
        rss_bytes: Option<u64>,
        used_bytes: u64,
        limit_bytes: u64,
    },
    /// Periodic liveness summary.
    Heartbeat {
        elapsed_s: u64,
        turns: u64,
        max_turns: u32,
        memory_percent: Option<f64>,
        cost_usd: Option<f64>,
    },
    /// The agent process ended; `exit` describes how ("code 0", "signal 9", ...).
    AgentFinished {
        subtype: Option<String>,
        is_error: Option<bool>,
        turns: u64,
        cost_usd: Option<f64>,
        duration_ms: u64,
        exit: String,
    },
    /// genrun is stopping the agent (limit reached, cancelled, memory).
    Stopping {
        reason: String,
        signal: Option<String>,
    },
    /// Packaging of the workspace began.
    Packaging { workspace: String },
    /// The workspace was packaged; `archives` lists `[name, bytes]` pairs.
    Packaged {
        files: u64,
        dropped: u64,
        bytes_in: u64,
        archives: Vec<(String, u64)>,
    },
    /// Upload of `objects` artifacts to `target` began.
    Storing { target: String, objects: usize },
    /// Upload finished.
    Stored {
        target: String,
        objects: usize,
        bytes: u64,
    },
    /// Something went wrong that does not end the run.
    Warning { message: String },
    /// The run's outcome; the last event of a run.
    Result {
        outcome: String,
        exit_code: i32,
        duration_ms: u64,
    },
}

impl EventKind {
    /// The wire name of this kind (the `kind` field).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Started { .. } => "started",
            EventKind::Preflight { .. } => "preflight",
            EventKind::AgentStarted { .. } => "agent_started",
            EventKind::Turn { .. } => "turn",
            EventKind::Tool { .. } => "tool",
            EventKind::Text { .. } => "text",
            EventKind::ApiRetry { .. } => "api_retry",
            EventKind::Compaction { .. } => "compaction",
            EventKind::MemoryWarning { .. } => "memory_warning",
            EventKind::MemoryAction { .. } => "memory_action",
            EventKind::Heartbeat { .. } => "heartbeat",
            EventKind::AgentFinished { .. } => "agent_finished",
            EventKind::Stopping { .. } => "stopping",
            EventKind::Packaging { .. } => "packaging",
            EventKind::Packaged { .. } => "packaged",
            EventKind::Storing { .. } => "storing",
            EventKind::Stored { .. } => "stored",
            EventKind::Warning { .. } => "warning",
            EventKind::Result { .. } => "result",
        }
    }

    /// A short human sentence describing the event (the `msg` used by [`crate::Progress::emit`]).
    pub fn default_msg(&self) -> String {
        match self {
            EventKind::Started { version, workspace, output, max_turns } => format!(
                "genrun {version} started: workspace {workspace}, output {output}, at most {max_turns} turns"
            ),
            EventKind::Preflight { store, ok: true, .. } => format!("preflight: {store} ok"),
            EventKind::Preflight { store, ok: false, detail } => match detail {
                Some(d) => format!("preflight: {store} failed: {d}"),
                None => format!("preflight: {store} failed"),
            },
            EventKind::AgentStarted { pid, program, model, cli_version, .. } => {
                let mut s = format!("agent started: {program} (pid {pid}");
                if let Some(m) = model {
                    s.push_str(&format!(", model {m}"));
                }
                if let Some(v) = cli_version {
                    s.push_str(&format!(", CLI {v}"));
                }
                s.push(')');
                s
            }
            EventKind::Turn { n, max } => format!("turn {n}/{max}"),
            EventKind::Tool { name, target: Some(t) } => format!("{name} {}", first_line(t, 160)),
            EventKind::Tool { name, target: None } => name.clone(),
            EventKind::Text { text } => first_line(text, 160),
            EventKind::ApiRetry { attempt, max_retries, error_status, error } => {
                let mut s = String::from("API retry");
                if let Some(a) = attempt {
                    s.push_str(&format!(" {a}"));
                    if let Some(m) = max_retries {
                        s.push_str(&format!("/{m}"));
                    }
                }
                if let Some(st) = error_status {
                    s.push_str(&format!(" after status {st}"));
                }
                if let Some(e) = error {
                    s.push_str(&format!(": {}", first_line(e, 120)));
                }
                s
            }
            EventKind::Compaction { trigger, pre_tokens } => {
                let mut s = String::from("context compacted");
                if let Some(t) = trigger {
                    s.push_str(&format!(" ({t})"));
                }
                if let Some(p) = pre_tokens {
                    s.push_str(&format!(", {p} tokens before"));
                }
                s
            }
            EventKind::MemoryWarning { used_bytes, limit_bytes, percent } => format!(
                "memory at {percent:.0}% ({} of {})",
                human_bytes(*used_bytes),
                human_bytes(*limit_bytes)
            ),
            EventKind::MemoryAction { action, pid, process, rss_bytes, used_bytes, limit_bytes } => {
                let mut s = format!("memory guard: {action}");
                match (process, pid) {
                    (Some(p), Some(id)) => s.push_str(&format!(" {p} (pid {id})")),
                    (Some(p), None) => s.push_str(&format!(" {p}")),
                    (None, Some(id)) => s.push_str(&format!(" pid {id}")),
                    (None, None) => {}
                }
                if let Some(r) = rss_bytes {
                    s.push_str(&format!(" using {}", human_bytes(*r)));
                }
                s.push_str(&format!(" at {} of {}", human_bytes(*used_bytes), human_bytes(*limit_bytes)));
                s
            }
            EventKind::Heartbeat { elapsed_s, turns, max_turns, memory_percent, cost_usd } => {
                let mut s = format!("running {}: turn {turns}/{max_turns}", human_duration_s(*elapsed_s));
                if let Some(m) = memory_percent {
                    s.push_str(&format!(", memory {m:.0}%"));
                }
                if let Some(c) = cost_usd {
                    s.push_str(&format!(", ${c:.2}"));
                }
                s
            }
            EventKind::AgentFinished { subtype, turns, cost_usd, duration_ms, exit, .. } => {
                let mut s = format!(
                    "agent finished: {} after {turns} turns in {}",
                    subtype.as_deref().unwrap_or("no result"),
                    human_duration_s(duration_ms / 1000)
                );
                if let Some(c) = cost_usd {
                    s.push_str(&format!(", ${c:.2}"));
                }
                s.push_str(&format!(" ({exit})"));
                s
            }
            EventKind::Stopping { reason, signal } => match signal {
                Some(sig) => format!("stopping agent: {reason} ({sig})"),
                None => format!("stopping agent: {reason}"),
            },
            EventKind::Packaging { workspace } => format!("packaging {workspace}"),
            EventKind::Packaged { files, dropped, bytes_in, archives } => {
                let total: u64 = archives.iter().map(|(_, b)| *b).sum();
                format!(
                    "packaged {files} files ({}) into {} archive(s) of {}; {dropped} excluded",
                    human_bytes(*bytes_in),
                    archives.len(),
                    human_bytes(total)
                )
            }
            EventKind::Storing { target, objects } => format!("storing {objects} objects to {target}"),
            EventKind::Stored { target, objects, bytes } => {
                format!("stored {objects} objects ({}) to {target}", human_bytes(*bytes))
            }
            EventKind::Warning { message } => first_line(message, 200),
            EventKind::Result { outcome, exit_code, duration_ms } => format!(
                "result: {outcome} (exit {exit_code}) after {}",
                human_duration_s(duration_ms / 1000)
            ),
        }
    }
}

/// The first line of `s`, cut to at most `max` characters with an ellipsis.
pub(crate) fn first_line(s: &str, max: usize) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end();
    let more_lines = s.trim().lines().nth(1).is_some();
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max || more_lines {
        out.push('…');
    }
    out
}

/// Bytes in binary units with one decimal, e.g. `1.5 GiB`.
pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Seconds as `1h02m03s`, `4m05s` or `6s`.
pub(crate) fn human_duration_s(s: u64) -> String {
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{sec:02}s")
    } else if m > 0 {
        format!("{m}m{sec:02}s")
    } else {
        format!("{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_cuts_and_marks() {
        assert_eq!(first_line("hello\nworld", 80), "hello…");
        assert_eq!(first_line("abcdef", 3), "abc…");
        assert_eq!(first_line("\n\n  x  \n", 10), "  x");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(human_duration_s(5), "5s");
        assert_eq!(human_duration_s(65), "1m05s");
        assert_eq!(human_duration_s(3723), "1h02m03s");
    }
}
