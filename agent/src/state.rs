//! Folding stream events into what a supervisor reports: turns, tool use, the last text and the result.
//!
//! A turn is one model response: a distinct `message.id` of a non-synthetic assistant message (all content
//! blocks of one API response share the id, and the CLI prints one line per block). The synthetic line printed
//! before API-error results carries no id after parsing (see [`crate::stream`]) and is never a turn.
//!
//! How this compares with the result line's `num_turns` (checked on every recorded transcript of 2.1.330):
//! - normal runs (success, permission denials, budget stop, partial messages): equal;
//! - `error_max_turns`: the CLI counts the turn that would overshoot `--max-turns` without printing it,
//!   so `num_turns == turns + 1`;
//! - API/auth/network failures: the CLI counts the failed request (`num_turns` 1), we count 0;
//! - SIGINT during a tool: the CLI also counts the interruption messages (3 for one response);
//! - compaction failures count the compaction requests the stream does not show.
//!
//! Cost: assistant lines carry a provisional `usage` snapshot that must not be summed; `cost_usd` is taken
//! from the result line only and stays `None` until it arrives.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::stream::{ApiRetry, Init, ResultLine, StreamEvent};

/// Running summary of one agent session.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamState {
    /// Model responses seen so far (see the module doc).
    pub turns: u64,
    /// `tool_use` blocks per tool name.
    pub tool_counts: BTreeMap<String, u64>,
    pub init: Option<Init>,
    pub result: Option<ResultLine>,
    /// Text of the most recent assistant text block (including the synthetic error text).
    pub last_text: Option<String>,
    /// `total_cost_usd` of the result line; `None` before it.
    pub cost_usd: Option<f64>,
    /// `tool_result` blocks flagged `is_error`.
    pub tool_errors: u64,
    /// `api_retry` lines seen, and the latest one.
    pub api_retries: u64,
    pub last_api_retry: Option<ApiRetry>,
    /// `compact_boundary` lines seen.
    pub compactions: u64,
    /// Lines or blocks of unknown shape.
    pub unknown: u64,
    #[serde(skip)]
    message_ids: HashSet<String>,
}

impl StreamState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event in; returns the new turn number when this event starts a turn.
    pub fn observe(&mut self, ev: &StreamEvent) -> Option<u64> {
        match ev {
            StreamEvent::Init(init) => self.init = Some(init.clone()),
            StreamEvent::AssistantText(t) => {
                self.last_text = Some(t.text.clone());
                return self.message(t.message_id.as_deref());
            }
            StreamEvent::ToolUse(t) => {
                *self.tool_counts.entry(t.name.clone()).or_insert(0) += 1;
                return self.message(t.message_id.as_deref());
            }
            StreamEvent::Thinking => {}
            StreamEvent::ToolResult(r) => self.tool_errors += u64::from(r.is_error),
            StreamEvent::ApiRetry(r) => {
                self.api_retries += 1;
                self.last_api_retry = Some(r.clone());
            }
            StreamEvent::Compaction(_) => self.compactions += 1,
            StreamEvent::Result(r) => {
                self.cost_usd = r.total_cost_usd;
                self.result = Some(r.clone());
            }
            StreamEvent::Unknown(_) => self.unknown += 1,
        }
        None
    }

    /// Total number of `tool_use` blocks.
    pub fn tool_uses(&self) -> u64 {
        self.tool_counts.values().sum()
    }

    fn message(&mut self, id: Option<&str>) -> Option<u64> {
        let id = id?;
        if self.message_ids.contains(id) {
            return None;
        }
        self.message_ids.insert(id.to_owned());
        self.turns += 1;
        Some(self.turns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{AssistantText, ToolUse};

    fn text(id: Option<&str>) -> StreamEvent {
        StreamEvent::AssistantText(AssistantText {
            message_id: id.map(Into::into),
            text: "t".into(),
        })
    }

    #[test]
    fn blocks_of_one_message_are_one_turn() {
        let mut s = StreamState::new();
        assert_eq!(s.observe(&text(Some("a"))), Some(1));
        let tu = StreamEvent::ToolUse(ToolUse {
            message_id: Some("a".into()),
            id: "t".into(),
            name: "Write".into(),
            target: None,
        });
        assert_eq!(s.observe(&tu), None);
        assert_eq!(s.observe(&text(Some("b"))), Some(2));
        assert_eq!(s.observe(&text(None)), None, "synthetic line is not a turn");
        assert_eq!(s.turns, 2);
        assert_eq!(s.tool_counts.get("Write"), Some(&1));
        assert_eq!(s.cost_usd, None);
    }
}
