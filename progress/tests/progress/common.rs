//! Helpers shared by the tests: capturing rendered output, parsing and normalising lines, one sample of
//! every event kind, re-running this test binary as a child.

use std::io::Write;
use std::sync::{Arc, Mutex};

use genrun_progress::{EventKind, LogFormat, Progress, ProgressConfig, Redactor};
use serde_json::Value;

/// A `Write` whose bytes the test can read back while the renderer thread owns a clone.
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A Progress rendering `format` into a buffer.
pub fn capture(request_id: &str, format: LogFormat, redactor: Redactor) -> (Progress, SharedBuf) {
    let buf = SharedBuf::default();
    let mut cfg = ProgressConfig::new(request_id);
    cfg.format = format;
    let p = Progress::start_with_writer(cfg, redactor, Box::new(buf.clone()));
    (p, buf)
}

pub fn no_secrets() -> Redactor {
    Redactor::new(Vec::<String>::new())
}

/// Every line parsed as JSON (panics on a line that is not).
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The event with `ts` replaced by a fixed string, after checking it has the documented shape.
pub fn normalise(mut v: Value) -> Value {
    let ts = v["ts"].as_str().expect("ts is a string").to_string();
    assert_eq!(ts.len(), 24, "{ts}");
    assert!(
        time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339).is_ok(),
        "{ts}"
    );
    assert!(ts.ends_with('Z'), "{ts}");
    v["ts"] = Value::String("<ts>".into());
    v
}

/// One event of every kind, optional fields both set and unset across the list.
pub fn all_kinds() -> Vec<EventKind> {
    vec![
        EventKind::Started {
            version: "0.1.0".into(),
            workspace: "/workspace".into(),
            output: "s3://bucket/runs/r1".into(),
            max_turns: 50,
        },
        EventKind::Preflight {
            store: "s3://bucket/runs/r1".into(),
            ok: true,
            detail: None,
        },
        EventKind::Preflight {
            store: "s3://bucket/runs/r1".into(),
            ok: false,
            detail: Some("access denied".into()),
        },
        EventKind::AgentStarted {
            pid: 42,
            program: "claude".into(),
            model: Some("claude-sonnet-4-5".into()),
            cli_version: Some("2.1.330".into()),
            session_id: Some("5d0c".into()),
        },
        EventKind::AgentStarted {
            pid: 43,
            program: "claude".into(),
            model: None,
            cli_version: None,
            session_id: None,
        },
        EventKind::Turn { n: 1, max: 50 },
        EventKind::Tool {
            name: "Write".into(),
            target: Some("src/App.tsx".into()),
        },
        EventKind::Tool {
            name: "TodoWrite".into(),
            target: None,
        },
        EventKind::Text {
            text: "I'll scaffold the app.\nThen the API.".into(),
        },
        EventKind::ApiRetry {
            attempt: Some(1),
            max_retries: Some(10),
            error_status: Some(529),
            error: Some("overloaded".into()),
        },
        EventKind::ApiRetry {
            attempt: None,
            max_retries: None,
            error_status: None,
            error: None,
        },
        EventKind::Compaction {
            trigger: Some("auto".into()),
            pre_tokens: Some(160_000),
        },
        EventKind::MemoryWarning {
            used_bytes: 3 << 30,
            limit_bytes: 4 << 30,
            percent: 75.0,
        },
        EventKind::MemoryAction {
            action: "killed".into(),
            pid: Some(99),
            process: Some("node".into()),
            rss_bytes: Some(2 << 30),
            used_bytes: 3 << 30,
            limit_bytes: 4 << 30,
        },
        EventKind::MemoryAction {
            action: "stop_agent".into(),
            pid: None,
            process: None,
            rss_bytes: None,
            used_bytes: 4 << 30,
            limit_bytes: 4 << 30,
        },
        EventKind::Heartbeat {
            elapsed_s: 75,
            turns: 3,
            max_turns: 50,
            memory_percent: Some(31.5),
            cost_usd: Some(0.12),
        },
        EventKind::Heartbeat {
            elapsed_s: 15,
            turns: 0,
            max_turns: 50,
            memory_percent: None,
            cost_usd: None,
        },
        EventKind::AgentFinished {
            subtype: Some("success".into()),
            is_error: Some(false),
            turns: 12,
            cost_usd: Some(1.2345),
            duration_ms: 192_000,
            exit: "code 0".into(),
        },
        EventKind::AgentFinished {
            subtype: None,
            is_error: None,
            turns: 3,
            cost_usd: None,
            duration_ms: 5_000,
            exit: "signal 9".into(),
        },
        EventKind::Stopping {
            reason: "wall-clock limit".into(),
            signal: Some("SIGTERM".into()),
        },
        EventKind::Stopping {
            reason: "cancelled".into(),
            signal: None,
        },
        EventKind::Packaging {
            workspace: "/workspace".into(),
        },
        EventKind::Packaged {
            files: 120,
            dropped: 3400,
            bytes_in: 1_234_567,
            archives: vec![("workspace.tar.zst".into(), 234_567)],
        },
        EventKind::Storing {
            target: "s3://bucket/runs/r1".into(),
            objects: 4,
        },
        EventKind::Stored {
            target: "s3://bucket/runs/r1".into(),
            objects: 4,
            bytes: 300_000,
        },
        EventKind::Warning {
            message: "transcript line over 20 MiB skipped".into(),
        },
        EventKind::Result {
            outcome: "success".into(),
            exit_code: 0,
            duration_ms: 200_000,
        },
    ]
}

/// Runs this test binary again with only `test` (an `#[ignore]`d child entry point) and `env` set.
pub fn child_command(test: &str, env: &[(&str, &str)]) -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}
