//! A scripted run for the terminal view: shared by the pty test and `examples/pretty_demo.rs`.

use genrun_progress::{EventKind, Progress};

/// Start of a run up to the agent working on turn 3 of 10.
pub fn first_half(p: &Progress, pace: &dyn Fn()) {
    let steps = vec![
        EventKind::Started {
            version: "0.1.0".into(),
            workspace: "/workspace".into(),
            output: "file:///tmp/out".into(),
            max_turns: 10,
        },
        EventKind::Preflight {
            store: "file:///tmp/out".into(),
            ok: true,
            detail: None,
        },
        EventKind::AgentStarted {
            pid: 4242,
            program: "claude".into(),
            model: Some("claude-sonnet-4-5".into()),
            cli_version: Some("2.1.330".into()),
            session_id: None,
        },
        EventKind::Turn { n: 1, max: 10 },
        EventKind::Text {
            text: "I'll scaffold a Vite + React app with an Express API.".into(),
        },
        EventKind::Tool {
            name: "Write".into(),
            target: Some("package.json".into()),
        },
        EventKind::Tool {
            name: "Write".into(),
            target: Some("src/App.tsx".into()),
        },
        EventKind::Turn { n: 2, max: 10 },
        EventKind::Tool {
            name: "Bash".into(),
            target: Some("npm install".into()),
        },
        EventKind::Heartbeat {
            elapsed_s: 15,
            turns: 2,
            max_turns: 10,
            memory_percent: Some(31.0),
            cost_usd: Some(0.12),
        },
        EventKind::Turn { n: 3, max: 10 },
        EventKind::Tool {
            name: "Edit".into(),
            target: Some("server/index.ts".into()),
        },
    ];
    for k in steps {
        p.emit(k);
        pace();
    }
    p.memory_sample(1_300 << 20, 4 << 30);
}

/// The agent finishing, packaging, storing and the result.
pub fn second_half(p: &Progress, pace: &dyn Fn()) {
    let steps = vec![
        EventKind::Tool {
            name: "Bash".into(),
            target: Some("npm run build".into()),
        },
        EventKind::AgentFinished {
            subtype: Some("success".into()),
            is_error: Some(false),
            turns: 3,
            cost_usd: Some(0.42),
            duration_ms: 64_000,
            exit: "code 0".into(),
        },
        EventKind::Packaging {
            workspace: "/workspace".into(),
        },
        EventKind::Packaged {
            files: 23,
            dropped: 4100,
            bytes_in: 81_920,
            archives: vec![("workspace.tar.zst".into(), 20_480)],
        },
        EventKind::Storing {
            target: "file:///tmp/out".into(),
            objects: 4,
        },
        EventKind::Stored {
            target: "file:///tmp/out".into(),
            objects: 4,
            bytes: 24_576,
        },
        EventKind::Result {
            outcome: "success".into(),
            exit_code: 0,
            duration_ms: 66_000,
        },
    ];
    for k in steps {
        p.emit(k);
        pace();
    }
}
