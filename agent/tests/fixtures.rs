//! The parser and the state fold against every recorded transcript of the real CLI (2.1.330).

use genrun_agent::state::StreamState;
use genrun_agent::stream::{parse_line, ResultVerdict, StreamEvent, ToolUse};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/claude-code-2.1.330"
);

struct Parsed {
    events: Vec<StreamEvent>,
    state: StreamState,
    new_turns: Vec<u64>,
}

fn load(name: &str) -> Parsed {
    let text = std::fs::read(format!("{DIR}/{name}.jsonl")).unwrap();
    let mut state = StreamState::new();
    let mut events = Vec::new();
    let mut new_turns = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let evs = parse_line(line).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!evs.is_empty());
        for ev in evs {
            new_turns.extend(state.observe(&ev));
            events.push(ev);
        }
    }
    Parsed {
        events,
        state,
        new_turns,
    }
}

fn tools(p: &Parsed) -> Vec<(String, Option<String>)> {
    p.events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolUse(ToolUse { name, target, .. }) => {
                Some((name.clone(), target.clone()))
            }
            _ => None,
        })
        .collect()
}

fn result(p: &Parsed) -> &genrun_agent::stream::ResultLine {
    p.state.result.as_ref().expect("result line")
}

#[test]
fn every_fixture_is_covered_and_parses() {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".jsonl")
                .to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "api401",
            "api500",
            "compaction_system_lines",
            "conn_refused",
            "max_budget",
            "max_turns",
            "no_api_key",
            "partial",
            "permission_denied",
            "sigint",
            "success"
        ],
        "a new fixture needs its own test below"
    );
    for n in &names {
        let p = load(n);
        let init = p.state.init.as_ref().unwrap_or_else(|| panic!("{n}: init"));
        assert_eq!(init.claude_code_version.as_deref(), Some("2.1.330"));
        assert!(init.session_id.is_some());
        assert_eq!(init.session_id, result(&p).session_id, "{n}");
        assert!(
            matches!(p.events[0], StreamEvent::Init(_)),
            "{n}: init first"
        );
        assert!(
            matches!(p.events.last(), Some(StreamEvent::Result(_))),
            "{n}: result last"
        );
        assert_eq!(p.state.cost_usd, result(&p).total_cost_usd);
        assert_eq!(
            p.new_turns,
            (1..=p.state.turns).collect::<Vec<_>>(),
            "{n}: turn numbers count up"
        );
    }
}

#[test]
fn success() {
    let p = load("success");
    let init = p.state.init.as_ref().unwrap();
    assert_eq!(init.model.as_deref(), Some("claude-opus-5-5"));
    assert_eq!(init.cwd.as_deref(), Some("/workspace/app"));
    assert_eq!(init.permission_mode.as_deref(), Some("bypassPermissions"));
    assert_eq!(init.tools.len(), 23);
    assert!(init.tools.iter().any(|t| t == "Write"));
    assert_eq!(
        tools(&p),
        [
            ("Write".into(), Some("/workspace/app/index.html".into())),
            ("Bash".into(), Some("ls -la && cat index.html".into()))
        ]
    );
    let r = result(&p);
    assert_eq!(r.verdict(), ResultVerdict::Success);
    assert_eq!(r.num_turns, Some(3));
    assert_eq!(p.state.turns, 3);
    assert_eq!(r.duration_ms, Some(284));
    assert_eq!(r.duration_api_ms, Some(70));
    assert_eq!(r.terminal_reason.as_deref(), Some("completed"));
    assert_eq!(r.result.as_deref(), Some("Done: created index.html."));
    assert_eq!(
        p.state.last_text.as_deref(),
        Some("Done: created index.html.")
    );
    assert!((p.state.cost_usd.unwrap() - 0.0024).abs() < 1e-12);
    assert_eq!(p.state.tool_errors, 0);
}

#[test]
fn partial_messages_add_only_unknown_stream_events() {
    let p = load("partial");
    assert_eq!(p.state.turns, 3);
    assert_eq!(result(&p).num_turns, Some(3));
    assert_eq!(result(&p).verdict(), ResultVerdict::Success);
    let stream_events = p
        .events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Unknown(u) if u.r#type == "stream_event"))
        .count();
    assert_eq!(stream_events, 27);
    assert_eq!(tools(&p).len(), 2);
}

#[test]
fn max_turns_counts_the_overshooting_turn() {
    let p = load("max_turns");
    let r = result(&p);
    assert_eq!(r.verdict(), ResultVerdict::MaxTurns);
    assert_eq!(r.errors, ["Reached maximum number of turns (1)"]);
    assert_eq!(r.result, None);
    assert_eq!(p.state.turns, 1);
    assert_eq!(r.num_turns, Some(p.state.turns + 1));
    assert_eq!(
        tools(&p),
        [("Write".into(), Some("/workspace/app/index.html".into()))]
    );
}

#[test]
fn max_budget() {
    let p = load("max_budget");
    let r = result(&p);
    assert_eq!(r.verdict(), ResultVerdict::Budget);
    assert_eq!(r.terminal_reason.as_deref(), Some("budget_exhausted"));
    assert_eq!(r.errors, ["Reached maximum budget ($0.003)"]);
    assert_eq!(p.state.turns, 4);
    assert_eq!(r.num_turns, Some(4));
    assert_eq!(p.state.tool_counts.get("Bash"), Some(&4));
    assert_eq!(tools(&p)[3].1.as_deref(), Some("echo step 3"));
}

#[test]
fn api_failures_are_api_errors_and_not_turns() {
    for (name, status, retries) in [
        ("api401", Some(401), 1),
        ("api500", Some(500), 1),
        ("conn_refused", None, 1),
        ("no_api_key", None, 0),
    ] {
        let p = load(name);
        let r = result(&p);
        assert_eq!(r.verdict(), ResultVerdict::ApiError, "{name}");
        assert_eq!(r.terminal_reason.as_deref(), Some("api_error"));
        assert_eq!(r.api_error_status, status, "{name}");
        assert_eq!(r.num_turns, Some(1));
        assert_eq!(p.state.turns, 0, "{name}: the synthetic line is not a turn");
        assert_eq!(p.state.api_retries, retries, "{name}");
        assert_eq!(p.state.last_text, r.result, "{name}: synthetic text kept");
        assert_eq!(p.state.cost_usd, Some(0.0));
    }
    let p = load("api401");
    let retry = p.state.last_api_retry.as_ref().unwrap();
    assert_eq!(
        (retry.attempt, retry.max_retries, retry.retry_delay_ms),
        (Some(1), Some(1), Some(501))
    );
    assert_eq!(retry.error_status, Some(401));
    assert_eq!(retry.error.as_deref(), Some("authentication_failed"));
    let p = load("conn_refused");
    assert_eq!(p.state.last_api_retry.as_ref().unwrap().error_status, None);
}

#[test]
fn compaction() {
    let p = load("compaction_system_lines");
    let c: Vec<_> = p
        .events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Compaction(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].trigger.as_deref(), Some("auto"));
    assert_eq!(c[0].pre_tokens, Some(750174));
    assert_eq!(p.state.unknown, 4, "status lines");
    let r = result(&p);
    assert_eq!(
        r.verdict(),
        ResultVerdict::ApiError,
        "success + is_error, terminal_reason blocking_limit"
    );
    assert_eq!(r.terminal_reason.as_deref(), Some("blocking_limit"));
    // The transcript has no assistant lines; the CLI counted 4 compaction requests.
    assert_eq!((p.state.turns, r.num_turns), (0, Some(4)));
}

#[test]
fn sigint_is_an_execution_error() {
    let p = load("sigint");
    let r = result(&p);
    assert_eq!(r.verdict(), ResultVerdict::ExecutionError);
    assert_eq!(r.terminal_reason.as_deref(), Some("aborted_tools"));
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].starts_with("[ede_diagnostic]"));
    assert_eq!(p.state.tool_errors, 1, "the interrupted tool_result");
    assert_eq!(tools(&p)[0].1.as_deref(), Some("python3 -c \"import time; time.sleep(300)\" & python3 -c \"import time; time.sleep(301)\""));
    // The CLI also counts the interruption messages as turns.
    assert_eq!((p.state.turns, r.num_turns), (1, Some(3)));
}

#[test]
fn permission_denied_is_counted() {
    let p = load("permission_denied");
    let r = result(&p);
    assert_eq!(r.verdict(), ResultVerdict::Success);
    assert_eq!(r.permission_denials, 1);
    assert_eq!(
        p.state.init.as_ref().unwrap().permission_mode.as_deref(),
        Some("acceptEdits")
    );
    assert_eq!(p.state.tool_errors, 1);
    assert_eq!(p.state.turns, 3);
    assert_eq!(r.num_turns, Some(3));
    assert!(p.events.iter().any(|e| matches!(e, StreamEvent::Unknown(u) if u.subtype.as_deref() == Some("permission_denied"))));
    assert_eq!(
        tools(&p)[1].1.as_deref(),
        Some("npm install left-pad && touch made_by_bash.txt")
    );
}
