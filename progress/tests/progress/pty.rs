//! The terminal view rendered on a real pseudo-terminal (util-linux `script`, or tmux) and checked: the
//! live status line (elapsed, turn n/max, cost, memory gauge), the scrolling tool log, the final summary.
//!
//! The child is this test binary re-run with `child_pretty_view`, which plays the first half of the demo
//! run, then waits for a line on its terminal so the test can look at the status line before letting it
//! finish (synchronisation on what is on screen, not on time).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use genrun_progress::{LogFormat, Progress, ProgressConfig, Redactor};

use crate::demo;

const BOUND: Duration = Duration::from_secs(120);

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The shell command that runs the child on the terminal (`exec`: the child replaces the shell).
fn child_shell_command(exec: bool) -> String {
    let exe = std::env::current_exe().unwrap();
    format!(
        "stty cols 120 rows 40 -echo; GENRUN_PROGRESS_CHILD=pretty TERM=xterm-256color {}'{}' --exact pty::child_pretty_view --ignored --nocapture --test-threads=1",
        if exec { "exec " } else { "" },
        exe.display()
    )
}

/// Polls `screen` until `cond` holds; panics with the screen after `BOUND`.
fn wait_for(what: &str, screen: &dyn Fn() -> String, cond: &dyn Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let s = screen();
        if cond(&s) {
            return s;
        }
        assert!(
            start.elapsed() < BOUND,
            "timed out waiting for {what}; screen so far:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(50)); // polling interval, not synchronisation
    }
}

fn has_status_line(s: &str) -> bool {
    s.lines().any(|l| {
        l.contains("turn 3/10")
            && l.contains("$0.12")
            && l.contains("mem ")
            && l.contains("% of 4.0 GiB")
            && l.contains("00:00:")
    })
}

fn check_final(s: &str) {
    for expected in [
        "▸ Write  src/App.tsx",
        "▸ Bash   npm install",
        "▸ Edit   server/index.ts",
        "◆ stored 4 objects",
        "✔ success (exit 0) in 1m06s · 3 turns · $0.42",
    ] {
        assert!(s.contains(expected), "missing {expected:?} in:\n{s}");
    }
}

#[test]
fn pretty_view_on_a_pseudo_terminal() {
    let forced = std::env::var("GENRUN_TEST_PTY_TOOL").ok();
    let tool = match forced.as_deref() {
        Some(t) => t.to_string(),
        None if have("script") => "script".into(),
        None if have("tmux") => "tmux".into(),
        None => {
            eprintln!("SKIPPED pretty_view_on_a_pseudo_terminal: neither `script` (util-linux) nor `tmux` is installed (apt-get install bsdutils tmux)");
            return;
        }
    };
    match tool.as_str() {
        "script" => under_script(),
        "tmux" => under_tmux(),
        other => panic!("unknown GENRUN_TEST_PTY_TOOL {other}"),
    }
}

/// `script` copies everything written to the terminal to its stdout: check the raw stream.
fn under_script() {
    let mut child = Command::new("script")
        .args(["-qfec", &child_shell_command(true), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let raw = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = raw.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let screen = || {
        console::strip_ansi_codes(&String::from_utf8_lossy(&raw.lock().unwrap()))
            .replace('\r', "\n")
    };
    let seen = wait_for("the status line", &screen, &|s| has_status_line(s));
    assert!(seen.contains("▸ Write  src/App.tsx"), "{seen}");
    // The status line is redrawn in place: cursor movement / line erase sequences are present.
    assert!(
        String::from_utf8_lossy(&raw.lock().unwrap()).contains("\x1b["),
        "no terminal control sequences"
    );

    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child did not finish; screen:\n{}", screen());
        }
        std::thread::sleep(Duration::from_millis(50)); // polling interval, not synchronisation
    };
    reader.join().unwrap();
    let out = screen();
    assert!(status.success(), "child failed: {status}\n{out}");
    check_final(&out);
    // The summary is the last thing the view printed.
    let summary_at = out.rfind("✔ success").unwrap();
    assert!(
        !out[summary_at..].contains("turn 3/10"),
        "status line drawn after the summary:\n{out}"
    );
}

/// Kills the tmux session however the test ends.
struct TmuxSession(String);

impl Drop for TmuxSession {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

/// tmux renders the screen: check what is actually visible.
fn under_tmux() {
    let session = TmuxSession(format!("genrun-progress-{}", std::process::id()));
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output().unwrap();
    // The shell stays after the child so the final screen can be read; the guard ends it.
    let cmd = format!("{}; sleep 600", child_shell_command(false));
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session.0,
        "-x",
        "120",
        "-y",
        "40",
        &cmd,
    ]);
    assert!(
        out.status.success(),
        "tmux: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let capture = || {
        let out = tmux(&["capture-pane", "-p", "-t", &session.0, "-S", "-200"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let seen = wait_for("the status line", &capture, &|s| has_status_line(s));
    assert!(seen.contains("▸ Write  src/App.tsx"), "{seen}");
    tmux(&["send-keys", "-t", &session.0, "Enter"]);
    let done = wait_for("the summary", &capture, &|s| s.contains("✔ success"));
    check_final(&done);
    assert!(
        !has_status_line(&done),
        "status line left on screen:\n{done}"
    );
}

/// Child of `pretty_view_on_a_pseudo_terminal`: the demo run on the real stdout.
#[test]
#[ignore = "child process entry point, run by pretty_view_on_a_pseudo_terminal"]
fn child_pretty_view() {
    if std::env::var("GENRUN_PROGRESS_CHILD").as_deref() != Ok("pretty") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut cfg = ProgressConfig::new("req-pty");
        cfg.format = LogFormat::Pretty;
        cfg.pretty_title = "genrun demo".into();
        let p = Progress::start(cfg, Redactor::new(Vec::<String>::new()));
        demo::first_half(&p, &|| {});
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        demo::second_half(&p, &|| {});
        p.finish(Duration::from_secs(10)).await;
    });
}
