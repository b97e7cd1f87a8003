//! Wire types of the CLI's stream-json output and a lenient parser for one line.
//!
//! The CLI (observed on 2.1.330) prints one JSON object per line on stdout. Only the fields a supervisor acts
//! on are kept; everything else is ignored, and unknown `type`s, `subtype`s and content blocks become
//! [`StreamEvent::Unknown`] instead of errors, because new shapes appear with nearly every CLI release.
//!
//! Line shapes read here (all other fields are ignored):
//! - `{"type":"system","subtype":"init","session_id","model","cwd","tools":[..],"claude_code_version",
//!   "permissionMode"}` -> [`Init`];
//! - `{"type":"system","subtype":"api_retry","attempt","max_retries","retry_delay_ms","error_status","error"}`
//!   -> [`ApiRetry`];
//! - `{"type":"system","subtype":"compact_boundary","compact_metadata":{"trigger","pre_tokens"}}` ->
//!   [`Compaction`];
//! - `{"type":"assistant","message":{"id","model","content":[block..]}}`: one event per content block:
//!   `text` -> [`AssistantText`], `tool_use{id,name,input}` -> [`ToolUse`], `thinking`/`redacted_thinking` ->
//!   [`StreamEvent::Thinking`]. The synthetic line the CLI prints before an API-error result
//!   (`message.model == "<synthetic>"`) is not a model response: its text comes back with `message_id: None`
//!   so that it never counts as a turn;
//! - `{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id","is_error"}..]}}` ->
//!   [`ToolResult`] per block;
//! - `{"type":"result",...}` -> [`ResultLine`].
//!
//! Every successfully parsed line yields at least one event.

use serde::Serialize;
use serde_json::{Map, Value};

/// Longest assistant text kept, in bytes (cut on a char boundary).
pub const MAX_TEXT: usize = 2 * 1024;
/// Longest result text kept, in bytes (cut on a char boundary).
pub const MAX_RESULT_TEXT: usize = 4 * 1024;
/// Longest Bash command target kept, in chars (first line only).
pub const MAX_COMMAND_TARGET_CHARS: usize = 200;
/// Longest other tool target (path, pattern, url, query, description) kept, in chars.
pub const MAX_TARGET_CHARS: usize = 1024;
/// Longest `errors[]` entry kept, in bytes, and the most entries kept.
pub const MAX_ERROR_TEXT: usize = 1024;
pub const MAX_ERRORS: usize = 16;

/// One meaningful piece of a stream-json line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StreamEvent {
    Init(Init),
    AssistantText(AssistantText),
    ToolUse(ToolUse),
    Thinking,
    ToolResult(ToolResult),
    ApiRetry(ApiRetry),
    Compaction(Compaction),
    Result(ResultLine),
    Unknown(Unknown),
}

/// `system`/`init`: the session's identity and set-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Init {
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub cwd: Option<String>,
    pub tools: Vec<String>,
    pub claude_code_version: Option<String>,
    /// The wire field is `permissionMode`.
    pub permission_mode: Option<String>,
}

/// A `text` block of an assistant message. `message_id` is `None` for the synthetic error line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssistantText {
    pub message_id: Option<String>,
    /// At most [`MAX_TEXT`] bytes, cut on a char boundary.
    pub text: String,
}

/// A `tool_use` block of an assistant message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolUse {
    pub message_id: Option<String>,
    pub id: String,
    pub name: String,
    /// What the tool acts on, see [`tool_target`].
    pub target: Option<String>,
}

/// A `tool_result` block of a user message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolResult {
    pub tool_use_id: String,
    pub is_error: bool,
}

/// `system`/`api_retry`: the CLI is retrying a failed API call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiRetry {
    pub attempt: Option<u64>,
    pub max_retries: Option<u64>,
    pub retry_delay_ms: Option<u64>,
    /// HTTP status; `None` for connection failures.
    pub error_status: Option<u64>,
    pub error: Option<String>,
}

/// `system`/`compact_boundary`: the conversation was compacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compaction {
    pub trigger: Option<String>,
    pub pre_tokens: Option<u64>,
}

/// The final `result` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultLine {
    /// Empty when the line had none.
    pub subtype: String,
    pub is_error: bool,
    pub num_turns: Option<u64>,
    pub duration_ms: Option<u64>,
    pub duration_api_ms: Option<u64>,
    /// The CLI's client-side estimate; the only cost figure to trust.
    pub total_cost_usd: Option<f64>,
    pub terminal_reason: Option<String>,
    /// Final text, at most [`MAX_RESULT_TEXT`] bytes.
    pub result: Option<String>,
    pub session_id: Option<String>,
    /// Number of entries of `permission_denials`.
    pub permission_denials: u64,
    /// At most [`MAX_ERRORS`] entries of at most [`MAX_ERROR_TEXT`] bytes.
    pub errors: Vec<String>,
    pub api_error_status: Option<u64>,
}

/// A line or block this parser does not interpret. For assistant/user blocks `subtype` is the block's type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unknown {
    pub r#type: String,
    pub subtype: Option<String>,
}

/// Why a line is not a stream event at all (the caller logs and skips it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line is not json")]
    NotJson,
    #[error("line is json but not an object")]
    NotAnObject,
    #[error("json object has no string `type`")]
    MissingType,
}

/// How a run ended according to its result line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultVerdict {
    Success,
    MaxTurns,
    Budget,
    /// `subtype:"success"` with `is_error:true`: API, auth or network failure (also prompt-too-long).
    ApiError,
    /// `error_during_execution`, e.g. after SIGINT.
    ExecutionError,
    /// An error subtype this version does not know.
    OtherError,
}

impl ResultLine {
    /// The verdict: success is `subtype == "success" && !is_error`; `success` with `is_error` is an API error.
    pub fn verdict(&self) -> ResultVerdict {
        match (self.subtype.as_str(), self.is_error) {
            ("success", false) => ResultVerdict::Success,
            ("success", true) => ResultVerdict::ApiError,
            ("error_max_turns", _) => ResultVerdict::MaxTurns,
            ("error_max_budget_usd", _) => ResultVerdict::Budget,
            ("error_during_execution", _) => ResultVerdict::ExecutionError,
            _ => ResultVerdict::OtherError,
        }
    }
}

/// Parses one line (without its newline; surrounding whitespace is fine) into its events.
pub fn parse_line(line: &[u8]) -> Result<Vec<StreamEvent>, ParseError> {
    let value: Value = serde_json::from_slice(line).map_err(|_| ParseError::NotJson)?;
    let Value::Object(obj) = value else {
        return Err(ParseError::NotAnObject);
    };
    let Some(ty) = obj.get("type").and_then(Value::as_str) else {
        return Err(ParseError::MissingType);
    };
    let subtype = str_field(&obj, "subtype");
    let events = match (ty, subtype.as_deref()) {
        ("system", Some("init")) => vec![StreamEvent::Init(parse_init(&obj))],
        ("system", Some("api_retry")) => vec![StreamEvent::ApiRetry(ApiRetry {
            attempt: u64_field(&obj, "attempt"),
            max_retries: u64_field(&obj, "max_retries"),
            retry_delay_ms: u64_field(&obj, "retry_delay_ms"),
            error_status: u64_field(&obj, "error_status"),
            error: str_field(&obj, "error"),
        })],
        ("system", Some("compact_boundary")) => {
            let empty = Map::new();
            let meta = obj
                .get("compact_metadata")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            vec![StreamEvent::Compaction(Compaction {
                trigger: str_field(meta, "trigger"),
                pre_tokens: u64_field(meta, "pre_tokens"),
            })]
        }
        ("assistant", _) => parse_assistant(&obj),
        ("user", _) => parse_user(&obj),
        ("result", _) => vec![StreamEvent::Result(parse_result(&obj, subtype.clone()))],
        _ => Vec::new(),
    };
    if events.is_empty() {
        return Ok(vec![StreamEvent::Unknown(Unknown {
            r#type: ty.to_owned(),
            subtype,
        })]);
    }
    Ok(events)
}

fn parse_init(obj: &Map<String, Value>) -> Init {
    let tools = obj
        .get("tools")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Init {
        session_id: str_field(obj, "session_id"),
        model: str_field(obj, "model"),
        cwd: str_field(obj, "cwd"),
        tools,
        claude_code_version: str_field(obj, "claude_code_version"),
        permission_mode: str_field(obj, "permissionMode"),
    }
}

fn parse_assistant(obj: &Map<String, Value>) -> Vec<StreamEvent> {
    let Some(message) = obj.get("message").and_then(Value::as_object) else {
        return Vec::new();
    };
    let synthetic = message.get("model").and_then(Value::as_str) == Some("<synthetic>");
    let message_id = if synthetic {
        None
    } else {
        str_field(message, "id")
    };
    let Some(blocks) = message.get("content").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut events = Vec::with_capacity(blocks.len());
    for block in blocks.iter().filter_map(Value::as_object) {
        let block_type = block.get("type").and_then(Value::as_str).unwrap_or("");
        let ev = match block_type {
            "text" => StreamEvent::AssistantText(AssistantText {
                message_id: message_id.clone(),
                text: cap_str(
                    block.get("text").and_then(Value::as_str).unwrap_or(""),
                    MAX_TEXT,
                ),
            }),
            "tool_use" => {
                let name = str_field(block, "name").unwrap_or_default();
                let target = block
                    .get("input")
                    .and_then(|input| tool_target(&name, input));
                StreamEvent::ToolUse(ToolUse {
                    message_id: message_id.clone(),
                    id: str_field(block, "id").unwrap_or_default(),
                    name,
                    target,
                })
            }
            "thinking" | "redacted_thinking" => StreamEvent::Thinking,
            other => StreamEvent::Unknown(Unknown {
                r#type: "assistant".to_owned(),
                subtype: Some(other.to_owned()),
            }),
        };
        events.push(ev);
    }
    events
}

fn parse_user(obj: &Map<String, Value>) -> Vec<StreamEvent> {
    let blocks = obj
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array);
    let Some(blocks) = blocks else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter_map(Value::as_object)
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| {
            StreamEvent::ToolResult(ToolResult {
                tool_use_id: str_field(b, "tool_use_id").unwrap_or_default(),
                is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

fn parse_result(obj: &Map<String, Value>, subtype: Option<String>) -> ResultLine {
    let errors = obj
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .take(MAX_ERRORS)
                .map(|e| match e {
                    Value::String(s) => cap_str(s, MAX_ERROR_TEXT),
                    other => cap_str(&other.to_string(), MAX_ERROR_TEXT),
                })
                .collect()
        })
        .unwrap_or_default();
    ResultLine {
        subtype: subtype.unwrap_or_default(),
        is_error: obj
            .get("is_error")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        num_turns: u64_field(obj, "num_turns"),
        duration_ms: u64_field(obj, "duration_ms"),
        duration_api_ms: u64_field(obj, "duration_api_ms"),
        total_cost_usd: obj.get("total_cost_usd").and_then(Value::as_f64),
        terminal_reason: str_field(obj, "terminal_reason"),
        result: obj
            .get("result")
            .and_then(Value::as_str)
            .map(|s| cap_str(s, MAX_RESULT_TEXT)),
        session_id: str_field(obj, "session_id"),
        permission_denials: obj
            .get("permission_denials")
            .and_then(Value::as_array)
            .map_or(0, |a| a.len() as u64),
        errors,
        api_error_status: u64_field(obj, "api_error_status"),
    }
}

/// What a tool acts on, for progress display: `file_path` for Write/Edit/Read/MultiEdit/NotebookEdit
/// (NotebookEdit also accepts `notebook_path`), the first line of a Bash `command` (at most
/// [`MAX_COMMAND_TARGET_CHARS`] chars), `pattern` for Grep/Glob, `url` for WebFetch, `query` for WebSearch,
/// `description` for Task; `None` for other tools. Non-Bash targets are capped at [`MAX_TARGET_CHARS`] chars.
pub fn tool_target(name: &str, input: &Value) -> Option<String> {
    let field = |key: &str| input.get(key).and_then(Value::as_str);
    let raw = match name {
        "Write" | "Edit" | "Read" | "MultiEdit" => field("file_path"),
        "NotebookEdit" => field("file_path").or_else(|| field("notebook_path")),
        "Bash" => {
            let first = field("command")?.lines().next().unwrap_or("");
            return Some(first.chars().take(MAX_COMMAND_TARGET_CHARS).collect());
        }
        "Grep" | "Glob" => field("pattern"),
        "WebFetch" => field("url"),
        "WebSearch" => field("query"),
        "Task" => field("description"),
        _ => None,
    }?;
    Some(raw.chars().take(MAX_TARGET_CHARS).collect())
}

/// `s` cut to at most `max` bytes on a char boundary.
pub fn cap_str(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn str_field(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn u64_field(obj: &Map<String, Value>, key: &str) -> Option<u64> {
    obj.get(key).and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_and_subtypes_are_events_not_errors() {
        let ev = parse_line(br#"{"type":"rate_limit_event","x":1}"#).unwrap();
        assert_eq!(
            ev,
            vec![StreamEvent::Unknown(Unknown {
                r#type: "rate_limit_event".into(),
                subtype: None
            })]
        );
        let ev =
            parse_line(br#"{"type":"system","subtype":"hook_started","extra":{"a":[1]}}"#).unwrap();
        assert_eq!(
            ev,
            vec![StreamEvent::Unknown(Unknown {
                r#type: "system".into(),
                subtype: Some("hook_started".into())
            })]
        );
    }

    #[test]
    fn unknown_blocks_and_fields_are_tolerated() {
        let line = br#"{"type":"assistant","new_field":true,"message":{"id":"m1","model":"x","content":[
            {"type":"server_tool_use","id":"s"},{"type":"text","text":"hi","citations":[]},
            {"type":"tool_use","id":"t1","name":"Grep","input":{"pattern":"fn main","path":"."}}]}}"#;
        let ev = parse_line(line).unwrap();
        assert_eq!(ev.len(), 3);
        assert_eq!(
            ev[0],
            StreamEvent::Unknown(Unknown {
                r#type: "assistant".into(),
                subtype: Some("server_tool_use".into())
            })
        );
        assert_eq!(
            ev[1],
            StreamEvent::AssistantText(AssistantText {
                message_id: Some("m1".into()),
                text: "hi".into()
            })
        );
        assert_eq!(
            ev[2],
            StreamEvent::ToolUse(ToolUse {
                message_id: Some("m1".into()),
                id: "t1".into(),
                name: "Grep".into(),
                target: Some("fn main".into())
            })
        );
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse_line(b"npm WARN deprecated"), Err(ParseError::NotJson));
        assert_eq!(parse_line(b""), Err(ParseError::NotJson));
        assert_eq!(parse_line(b"{\"type\":\"user\""), Err(ParseError::NotJson));
        assert_eq!(parse_line(b"[1,2]"), Err(ParseError::NotAnObject));
        assert_eq!(parse_line(b"42"), Err(ParseError::NotAnObject));
        assert_eq!(
            parse_line(br#"{"subtype":"init"}"#),
            Err(ParseError::MissingType)
        );
        assert_eq!(parse_line(br#"{"type":7}"#), Err(ParseError::MissingType));
        assert_eq!(ParseError::NotJson.to_string(), "line is not json");
    }

    #[test]
    fn wrong_field_types_degrade_to_none() {
        let ev = parse_line(br#"{"type":"result","subtype":"success","is_error":"no","num_turns":"3","total_cost_usd":"1"}"#)
            .unwrap();
        let StreamEvent::Result(r) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert!(!r.is_error);
        assert_eq!(r.num_turns, None);
        assert_eq!(r.total_cost_usd, None);
        assert_eq!(r.verdict(), ResultVerdict::Success);
    }

    #[test]
    fn verdicts() {
        let mk = |subtype: &str, is_error: bool| ResultLine {
            subtype: subtype.into(),
            is_error,
            num_turns: None,
            duration_ms: None,
            duration_api_ms: None,
            total_cost_usd: None,
            terminal_reason: None,
            result: None,
            session_id: None,
            permission_denials: 0,
            errors: vec![],
            api_error_status: None,
        };
        assert_eq!(mk("success", false).verdict(), ResultVerdict::Success);
        assert_eq!(mk("success", true).verdict(), ResultVerdict::ApiError);
        assert_eq!(
            mk("error_max_turns", true).verdict(),
            ResultVerdict::MaxTurns
        );
        assert_eq!(
            mk("error_max_budget_usd", true).verdict(),
            ResultVerdict::Budget
        );
        assert_eq!(
            mk("error_during_execution", true).verdict(),
            ResultVerdict::ExecutionError
        );
        assert_eq!(
            mk("error_max_structured_output_retries", true).verdict(),
            ResultVerdict::OtherError
        );
        assert_eq!(mk("", false).verdict(), ResultVerdict::OtherError);
    }

    #[test]
    fn targets() {
        let t = |name: &str, input: &str| tool_target(name, &serde_json::from_str(input).unwrap());
        assert_eq!(
            t("Write", r#"{"file_path":"/w/a.ts","content":"x"}"#).as_deref(),
            Some("/w/a.ts")
        );
        assert_eq!(
            t("Edit", r#"{"file_path":"/w/b"}"#).as_deref(),
            Some("/w/b")
        );
        assert_eq!(
            t("Read", r#"{"file_path":"/w/c"}"#).as_deref(),
            Some("/w/c")
        );
        assert_eq!(
            t("MultiEdit", r#"{"file_path":"/w/d"}"#).as_deref(),
            Some("/w/d")
        );
        assert_eq!(
            t("NotebookEdit", r#"{"notebook_path":"/w/n.ipynb"}"#).as_deref(),
            Some("/w/n.ipynb")
        );
        assert_eq!(
            t("Bash", r#"{"command":"npm install\nnpm test"}"#).as_deref(),
            Some("npm install")
        );
        let long = format!(r#"{{"command":"{}"}}"#, "é".repeat(500));
        assert_eq!(t("Bash", &long).unwrap().chars().count(), 200);
        assert_eq!(
            t("Glob", r#"{"pattern":"**/*.ts"}"#).as_deref(),
            Some("**/*.ts")
        );
        assert_eq!(
            t("WebFetch", r#"{"url":"https://x"}"#).as_deref(),
            Some("https://x")
        );
        assert_eq!(
            t("WebSearch", r#"{"query":"vite"}"#).as_deref(),
            Some("vite")
        );
        assert_eq!(
            t("Task", r#"{"description":"explore"}"#).as_deref(),
            Some("explore")
        );
        assert_eq!(t("TodoWrite", r#"{"todos":[]}"#), None);
        assert_eq!(t("Write", r#"{"content":"x"}"#), None);
    }

    #[test]
    fn long_texts_are_capped_on_char_boundaries() {
        let text = "ü".repeat(MAX_TEXT); // 2 bytes each
        let line = serde_json::json!({"type":"assistant","message":{"id":"m","content":[{"type":"text","text":text}]}});
        let ev = parse_line(line.to_string().as_bytes()).unwrap();
        let StreamEvent::AssistantText(t) = &ev[0] else {
            panic!()
        };
        assert_eq!(t.text.len(), MAX_TEXT);
        let line = serde_json::json!({"type":"result","subtype":"success","result":format!("a{}", "€".repeat(3000))});
        let ev = parse_line(line.to_string().as_bytes()).unwrap();
        let StreamEvent::Result(r) = &ev[0] else {
            panic!()
        };
        let res = r.result.as_deref().unwrap();
        assert!(res.len() <= MAX_RESULT_TEXT && res.len() > MAX_RESULT_TEXT - 3);
    }

    #[test]
    fn user_prompt_echo_is_unknown() {
        let ev = parse_line(br#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"[Request interrupted]"}]}}"#)
            .unwrap();
        assert_eq!(
            ev,
            vec![StreamEvent::Unknown(Unknown {
                r#type: "user".into(),
                subtype: None
            })]
        );
    }
}
