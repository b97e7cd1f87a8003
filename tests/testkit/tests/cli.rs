//! The real Claude Code CLI against the Messages API stand-in, without genrun.
//!
//! These tests prove that each stand-in scenario drives the pinned CLI (npm `@anthropic-ai/claude-code`)
//! the way genrun's own integration tests rely on: files written, the result line's subtype, turns and
//! cost, the exit status, and what happens to a Bash tool's processes. When `claude` is not on PATH (or
//! named by `CLAUDE_BIN`) they print `skipped: claude CLI not installed` and pass, except under `CI=true`,
//! where the CLI must be installed. The CLI refuses bypass mode as root unless `IS_SANDBOX=1`, which these
//! direct tests set; genrun runs the agent as a non-root user instead.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use genrun_testkit::standin::{
    Scenario, Standin, ALLOC_BASH_MARKER, GENERATION_FINAL_TEXT, LONG_BASH_MARKER,
};
use serde_json::Value;
use tokio::io::AsyncReadExt as _;

/// Bounds a hang of the CLI; a normal run takes a few seconds.
const RUN_DEADLINE: Duration = Duration::from_secs(240);
/// Bounds waiting for a marker file or for a process to disappear.
const WAIT_DEADLINE: Duration = Duration::from_secs(120);

/// The CLI to run, or `None` (after saying so) when it is not installed outside CI.
fn claude() -> Option<PathBuf> {
    let found = std::env::var_os("CLAUDE_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("claude"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the claude CLI must be installed when CI=true (npm install -g @anthropic-ai/claude-code@2.1.330)"
        );
        eprintln!("skipped: claude CLI not installed");
    }
    found
}

/// A started CLI in its own temporary workspace and home.
struct Cli {
    child: tokio::process::Child,
    workspace: tempfile::TempDir,
    _home: tempfile::TempDir,
}

/// What a finished CLI left: its stream-json lines, stderr and exit status.
struct Finished {
    lines: Vec<Value>,
    stderr: String,
    status: ExitStatus,
}

impl Finished {
    fn result(&self) -> &Value {
        let results: Vec<&Value> = self
            .lines
            .iter()
            .filter(|l| l["type"] == "result")
            .collect();
        assert_eq!(
            results.len(),
            1,
            "one result line expected; stderr: {}",
            self.stderr
        );
        results[0]
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |l| l["type"] == kind)
    }
}

impl Cli {
    fn start(bin: &Path, standin: &Standin, extra: &[&str]) -> Cli {
        let workspace = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args([
            "-p",
            "Build a small Vite/React app with an Express API.",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
        ])
        .args(extra)
        .current_dir(workspace.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("IS_SANDBOX", "1")
        .envs(standin.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let child = cmd.spawn().expect("spawning claude");
        Cli {
            child,
            workspace,
            _home: home,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.workspace.path().join(rel)
    }

    async fn finish(&mut self) -> Finished {
        let mut stdout = self.child.stdout.take().unwrap();
        let mut stderr = self.child.stderr.take().unwrap();
        let run = async {
            let mut out = String::new();
            let mut err = String::new();
            let (a, b, status) = tokio::join!(
                stdout.read_to_string(&mut out),
                stderr.read_to_string(&mut err),
                self.child.wait()
            );
            a.unwrap();
            b.unwrap();
            (out, err, status.unwrap())
        };
        let (out, stderr, status) = tokio::time::timeout(RUN_DEADLINE, run)
            .await
            .expect("the claude CLI did not finish in time");
        let lines = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect();
        Finished {
            lines,
            stderr,
            status,
        }
    }
}

/// Waits (bounded) for a marker file with a pid in it.
async fn wait_for_pid_file(path: &Path) -> i32 {
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Live processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields after the command: state, ppid, pgrp.
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && alive(pid) {
            members.push(pid);
        }
    }
    members
}

fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test]
async fn generation_writes_the_app_and_ends_in_success() {
    let Some(bin) = claude() else { return };
    let standin = Standin::start(Scenario::Generation).await.unwrap();
    let mut cli = Cli::start(&bin, &standin, &["--max-turns", "20"]);
    let run = cli.finish().await;

    assert_eq!(run.status.code(), Some(0), "stderr: {}", run.stderr);
    let result = run.result();
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], GENERATION_FINAL_TEXT);
    assert_eq!(result["num_turns"], 9, "log: {:?}", standin.log());
    assert!(result["total_cost_usd"].as_f64().unwrap() > 0.0);
    let init = run
        .of_type("system")
        .find(|l| l["subtype"] == "init")
        .expect("system/init line");
    assert_eq!(init["session_id"], result["session_id"]);
    assert_eq!(init["claude_code_version"], "2.1.330");
    assert_eq!(standin.requests(), 9);

    let read = |rel: &str| std::fs::read_to_string(cli.path(rel)).unwrap();
    assert!(read("package.json").contains("\"express\""));
    assert!(read("server/index.js").contains("express()"));
    assert!(
        read("src/App.jsx").contains("Hello from genrun"),
        "the Edit applied"
    );
    assert_eq!(read(".gitignore"), "dist/\n");
    assert_eq!(read(".env.example"), "PORT=3000\n");
    assert!(read(".env").starts_with("API_KEY="));
    assert!(cli.path("node_modules/express/index.js").is_file());
    assert!(cli.path("logs/server.log").is_file());
    assert!(cli.path("npm-debug.log").is_file());
    assert!(cli.path("dist/bundle.js").is_file());
    assert_eq!(
        std::fs::read_link(cli.path("escape-link")).unwrap(),
        Path::new("/etc/hostname")
    );
}

#[tokio::test]
async fn turn_limit_ends_in_error_max_turns() {
    let Some(bin) = claude() else { return };
    let standin = Standin::start(Scenario::TurnLimit).await.unwrap();
    let mut cli = Cli::start(&bin, &standin, &["--max-turns", "3"]);
    let run = cli.finish().await;

    assert_eq!(run.status.code(), Some(1), "stderr: {}", run.stderr);
    let result = run.result();
    assert_eq!(result["subtype"], "error_max_turns");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["terminal_reason"], "max_turns");
    // num_turns counts the turn that overshoots the limit.
    assert_eq!(result["num_turns"], 4);
    assert_eq!(standin.requests(), 3);
}

#[tokio::test]
async fn api_500_is_retried_once_then_reported_as_an_error_result() {
    let Some(bin) = claude() else { return };
    let standin = Standin::start(Scenario::ApiError500).await.unwrap();
    let mut cli = Cli::start(&bin, &standin, &["--max-turns", "3"]);
    let run = cli.finish().await;

    assert_eq!(run.status.code(), Some(1), "stderr: {}", run.stderr);
    let retry = run
        .of_type("system")
        .find(|l| l["subtype"] == "api_retry")
        .expect("an api_retry line");
    assert_eq!(retry["error_status"], 500);
    let result = run.result();
    // API failures end with subtype success AND is_error true.
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["terminal_reason"], "api_error");
    assert_eq!(result["api_error_status"], 500);
    assert_eq!(
        standin.requests(),
        2,
        "CLAUDE_CODE_MAX_RETRIES=1: one retry"
    );
}

#[tokio::test]
async fn budget_ends_in_error_max_budget() {
    let Some(bin) = claude() else { return };
    let standin = Standin::start(Scenario::Budget).await.unwrap();
    let mut cli = Cli::start(
        &bin,
        &standin,
        &["--max-turns", "50", "--max-budget-usd", "1"],
    );
    let run = cli.finish().await;

    assert_eq!(run.status.code(), Some(1), "stderr: {}", run.stderr);
    let result = run.result();
    assert_eq!(result["subtype"], "error_max_budget_usd");
    assert_eq!(result["terminal_reason"], "budget_exhausted");
    assert!(result["total_cost_usd"].as_f64().unwrap() >= 1.0);
    assert!(
        standin.requests() < 50,
        "the budget, not the turn limit, stopped it"
    );
}

#[tokio::test]
async fn sigterm_during_a_long_bash_command_ends_the_tool_tree() {
    let Some(bin) = claude() else { return };
    let standin = Standin::start(Scenario::LongBash { seconds: 600 })
        .await
        .unwrap();
    let mut cli = Cli::start(&bin, &standin, &["--max-turns", "5"]);
    let shell = wait_for_pid_file(&cli.path(LONG_BASH_MARKER)).await;
    assert!(alive(shell), "the tool command runs");
    let cli_pid = cli.child.id().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(cli_pid).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let run = cli.finish().await;

    assert!(
        run.of_type("result").next().is_none(),
        "no result line after SIGTERM"
    );
    assert_eq!(run.status.code(), Some(143), "stderr: {}", run.stderr);
    // The CLI kills its tool trees before it exits.
    let deadline = Instant::now() + WAIT_DEADLINE;
    while alive(shell) || !group_members(shell).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the Bash tool's processes survived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_killed_allocating_bash_command_does_not_end_the_run() {
    let Some(bin) = claude() else { return };
    const BYTES: u64 = 64 * 1024 * 1024;
    let standin = Standin::start(Scenario::AllocBash { bytes: BYTES })
        .await
        .unwrap();
    let mut cli = Cli::start(&bin, &standin, &["--max-turns", "5"]);
    let allocator = wait_for_pid_file(&cli.path(ALLOC_BASH_MARKER)).await;
    assert!(
        rss_bytes(allocator) >= BYTES,
        "the memory is touched and held"
    );
    // What genrun's memory guard does: kill the allocating tool process, not the CLI.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(allocator),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let run = cli.finish().await;

    assert_eq!(run.status.code(), Some(0), "stderr: {}", run.stderr);
    let failed_tool = run
        .of_type("user")
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|b| b["type"] == "tool_result")
        .expect("a tool_result");
    assert_eq!(failed_tool["is_error"], true);
    let result = run.result();
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["num_turns"], 2);
    assert_eq!(standin.requests(), 2);
}
