//! genrun with the real Claude Code CLI (issue 8): `genrun run` supervises the pinned CLI, run as a
//! non-root agent user, against the Messages API stand-in (`genrun_testkit::standin`), and each test checks
//! the exit code, result.json (turns, cost, session id, CLI version), the events and the stored app.
//!
//! The CLI comes from `tests/install-deps.sh` (npm `@anthropic-ai/claude-code`, pinned). Without it these
//! tests print `skipped: claude CLI not installed` and pass, except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use genrun_testkit::standin::{Scenario, Standin, GENERATION_FINAL_TEXT, LONG_BASH_MARKER};
use serde_json::Value;

use crate::util::*;

/// Bounds a hang; a scripted generation takes a few seconds.
const LIMIT: Duration = Duration::from_secs(240);

/// The installed CLI, or `None` (after saying so) outside CI.
fn claude() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("claude"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the claude CLI must be installed when CI=true (bash tests/install-deps.sh)"
        );
        eprintln!("skipped: claude CLI not installed");
    }
    found
}

/// `genrun run` on the real CLI against `standin`. As root, the agent runs as `uid`, a uid of its own per
/// test: genrun's final sweep kills every process of the agent's uid, so tests running at the same time
/// must not share one (nor `nobody`, which other modules use).
fn genrun_claude(run: &RunDir, claude: &Path, standin: &Standin, uid: u32) -> Command {
    let mut cmd = genrun();
    cmd.arg("run")
        .args(["--request-id", &run.request_id])
        .args([
            "--prompt",
            "Build a small Vite/React app with an Express API.",
        ])
        .arg("--workspace")
        .arg(run.workspace())
        .arg("--output")
        .arg(run.output())
        .arg("--agent-cmd")
        .arg(claude)
        .args(["--log-format", "json"])
        .envs(standin.env());
    if is_root() {
        cmd.args(["--agent-user", &uid.to_string()]);
    }
    cmd
}

fn standin(scenario: Scenario) -> Standin {
    Standin::start_on(scenario, 0).unwrap()
}

fn event<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {:?}", kinds(events)))
}

fn assert_agent_user(r: &Value, uid: u32) {
    if is_root() {
        assert_eq!(r["agent"]["user"], uid.to_string(), "{r:#}");
    }
}

#[test]
fn real_cli_generation_is_packaged_and_reported() {
    let Some(claude) = claude() else { return };
    const UID: u32 = 61801;
    let standin = standin(Scenario::Generation);
    let run = RunDir::new("realcli-ok");
    let mut cmd = genrun_claude(&run, &claude, &standin, UID);
    cmd.args(["--max-turns", "20"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}\n{:?}", explain(&out), standin.log());

    let r = run.result();
    assert_eq!(r["outcome"], "success");
    let agent = &r["agent"];
    assert_eq!(agent["subtype"], "success");
    assert_eq!(agent["turns"], 9);
    assert_eq!(agent["cli_version"], "2.1.330");
    assert!(agent["cost_usd"].as_f64().unwrap() > 0.0, "{agent:#}");
    assert_eq!(agent["final_text"], GENERATION_FINAL_TEXT);
    assert_eq!(agent["tool_counts"]["Write"], 6);
    assert_eq!(agent["tool_counts"]["Edit"], 1);
    assert_eq!(agent["tool_counts"]["Bash"], 1);
    assert_agent_user(&r, UID);
    assert_eq!(standin.requests(), 9);

    let ev = events(&out);
    let started = event(&ev, "agent_started");
    assert_eq!(started["cli_version"], "2.1.330");
    let session = agent["session_id"].as_str().expect("a session id");
    assert_eq!(started["session_id"], session);
    assert!(ev
        .iter()
        .any(|e| e["kind"] == "tool" && e["name"] == "Edit"));
    assert_eq!(event(&ev, "result")["outcome"], "success");
    assert!(run.transcript().contains(session));

    let paths = run.archive_paths();
    for want in [
        "package.json",
        "server/index.js",
        "src/App.jsx",
        "index.html",
        ".gitignore",
        ".env.example",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} missing: {paths:?}");
    }
    for never in [
        "node_modules/express/index.js",
        "logs/server.log",
        "npm-debug.log",
        ".env",
        "dist/bundle.js",
        "escape-link",
    ] {
        assert!(
            !paths.iter().any(|p| p == never),
            "{never} archived: {paths:?}"
        );
    }
    let app = archive_file(&run.artifacts().join("app.tar.zst"), "src/App.jsx").unwrap();
    assert!(String::from_utf8_lossy(&app).contains("Hello from genrun"));
    assert_no_process_left(&run.workspace());
}

#[test]
fn real_cli_turn_limit_exits_81() {
    let Some(claude) = claude() else { return };
    const UID: u32 = 61802;
    let standin = standin(Scenario::TurnLimit);
    let run = RunDir::new("realcli-turns");
    let mut cmd = genrun_claude(&run, &claude, &standin, UID);
    cmd.args(["--max-turns", "3"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 81, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "max_turns");
    assert_eq!(r["agent"]["max_turns"], 3);
    assert_eq!(r["agent"]["subtype"], "error_max_turns");
    // The CLI stops itself after three answers and counts the turn that overshoots.
    assert_eq!(r["agent"]["turns"], 4, "{r:#}");
    assert_eq!(standin.requests(), 3, "{:?}", standin.log());
    assert!(run.artifacts().join("app.tar.zst").is_file());
    assert_no_process_left(&run.workspace());
}

#[test]
fn real_cli_api_500_exits_80_after_one_retry() {
    let Some(claude) = claude() else { return };
    const UID: u32 = 61803;
    let standin = standin(Scenario::ApiError500);
    let run = RunDir::new("realcli-500");
    let out = run_with_deadline(genrun_claude(&run, &claude, &standin, UID), LIMIT);
    assert_eq!(code(&out), 80, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "agent_failed");
    // The CLI reports API failures as subtype success with is_error true.
    assert_eq!(r["agent"]["is_error"], true, "{r:#}");
    assert_eq!(r["agent"]["terminal_reason"], "api_error");
    // CLAUDE_CODE_MAX_RETRIES=1 (from Standin::env) reached the CLI through genrun's scrubbed environment.
    assert_eq!(standin.requests(), 2, "{:?}", standin.log());
    assert_agent_user(&r, UID);
    assert_no_process_left(&run.workspace());
}

#[test]
fn real_cli_budget_exits_84() {
    let Some(claude) = claude() else { return };
    const UID: u32 = 61804;
    let standin = standin(Scenario::Budget);
    let run = RunDir::new("realcli-budget");
    let mut cmd = genrun_claude(&run, &claude, &standin, UID);
    cmd.args(["--max-turns", "50", "--budget-usd", "1"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 84, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "budget");
    assert!(r["agent"]["cost_usd"].as_f64().unwrap() >= 1.0, "{r:#}");
    assert!(standin.requests() < 50);
    assert_no_process_left(&run.workspace());
}

#[test]
fn real_cli_sigterm_during_a_bash_command_is_cancelled_85_and_leaves_no_process() {
    let Some(claude) = claude() else { return };
    const UID: u32 = 61805;
    let standin = standin(Scenario::LongBash { seconds: 600 });
    let run = RunDir::new("realcli-term");
    let g = Running::start(genrun_claude(&run, &claude, &standin, UID));
    let marker = run.workspace().join(LONG_BASH_MARKER);
    wait_for("the Bash tool command to start", LIMIT, || {
        std::fs::read_to_string(&marker).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    let shell: u32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!processes_in(&run.workspace()).is_empty());
    g.signal(libc::SIGTERM);
    let out = g.finish(LIMIT);
    assert_eq!(code(&out), 85, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "cancelled");
    assert!(
        run.archive_paths().iter().any(|p| p == LONG_BASH_MARKER),
        "the work in progress is salvaged: {:?}",
        run.archive_paths()
    );
    assert_no_process_left(&run.workspace());
    assert!(!alive(shell), "the tool's shell {shell} survived");
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

#[test]
fn real_cli_memory_guard_kills_an_allocating_bash_command_and_the_run_continues() {
    let Some(claude) = claude() else { return };
    const UID: u32 = 61806;
    // The CLI itself holds about 250 MB; the tool command alone grows past the limit.
    let standin = standin(Scenario::AllocBash {
        bytes: 700 * 1024 * 1024,
    });
    let run = RunDir::new("realcli-mem");
    let mut cmd = genrun_claude(&run, &claude, &standin, UID);
    cmd.args(["--memory-limit", "800M", "--memory-interval", "100ms"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "success");
    let actions: Vec<&str> = r["memory"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(actions.contains(&"kill_tool"), "{:#}", r["memory"]);
    assert!(!actions.contains(&"stop_agent"), "{:#}", r["memory"]);
    assert!(events(&out)
        .iter()
        .any(|e| e["kind"] == "memory_action" && e["action"] == "killed_tool_process"));
    // The CLI saw its tool command fail, and carried on to its final answer.
    assert!(
        run.transcript().contains("\"is_error\":true"),
        "no failed tool_result in the transcript"
    );
    assert_eq!(r["agent"]["turns"], 2);
    assert_eq!(standin.requests(), 2);
    assert_no_process_left(&run.workspace());
}
