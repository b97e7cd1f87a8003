//! The scripted agent as a real process: real signals, a real crash, detached grandchildren and the hidden
//! memory modes, launched exactly as genrun launches the CLI.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use genrun_agent::stream::{parse_line, ResultVerdict, StreamEvent};

const EXE: &str = env!("CARGO_BIN_EXE_genrun-scripted-agent");
const DEADLINE: Duration = Duration::from_secs(60);

struct Agent {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    fn start(dir: &Path, script: &str, extra: &[&str]) -> Agent {
        let mut child = Command::new(EXE)
            .args([
                "scripted-agent",
                "--script",
                script,
                "-p",
                "build an app",
                "--output-format",
                "stream-json",
            ])
            .args([
                "--verbose",
                "--max-turns",
                "40",
                "--permission-mode",
                "bypassPermissions",
            ])
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Agent {
            child,
            out,
            reader: Some(reader),
        }
    }

    fn with_script(dir: &Path, text: &str, extra: &[&str]) -> Agent {
        let path = dir.join("test.script");
        std::fs::write(&path, text).unwrap();
        let ws = dir.join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        Agent::start(&ws, path.to_str().unwrap(), extra)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn wait(&mut self) -> (std::process::ExitStatus, Vec<StreamEvent>) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("agent did not exit");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.reader.take().unwrap().join().unwrap();
        let out = self.out.lock().unwrap().clone();
        let events = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .flat_map(|l| parse_line(l).unwrap_or_default())
            .collect();
        (status, events)
    }
}

impl Drop for Agent {
    /// A failed test must not leave the agent running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_pid(p: &Path) -> i32 {
    let mut pid = 0;
    wait_until("pid file", || {
        pid = std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        pid > 0
    });
    pid
}

/// (state, session id) of a live process; `None` when gone or a zombie.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    let state = fields[0].chars().next()?;
    (state != 'Z').then(|| (state, fields[3].parse().unwrap_or(0)))
}

fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Processes whose cwd is `dir` and whose command line contains `needle`.
fn find_procs(dir: &Path, needle: &str) -> Vec<i32> {
    let dir = dir.canonicalize().unwrap();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cwd: Option<PathBuf> = std::fs::read_link(e.path().join("cwd")).ok();
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cwd.as_deref() == Some(dir.as_path()) && cmd.contains(needle) {
            found.push(pid);
        }
    }
    found
}

fn last_result(events: &[StreamEvent]) -> Option<&genrun_agent::stream::ResultLine> {
    events.iter().rev().find_map(|e| match e {
        StreamEvent::Result(r) => Some(r),
        _ => None,
    })
}

const LONG_TOOL: &str =
    "turn\ntext Running a long job.\nbash <<EOF\necho $$ > tool.pid\nexec sleep 600\nEOF\n";

#[test]
fn sigterm_kills_tools_and_exits_143_without_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::with_script(dir.path(), LONG_TOOL, &[]);
    let tool = read_pid(&dir.path().join("ws/tool.pid"));
    let (_, sid) = proc_stat(tool).expect("tool running");
    assert_eq!(sid, tool, "tool command leads its own session");
    agent.signal(libc::SIGTERM);
    let (status, events) = agent.wait();
    assert_eq!(status.code(), Some(143));
    assert!(last_result(&events).is_none());
    wait_until("tool gone", || proc_stat(tool).is_none());
}

#[test]
fn sigint_reports_aborted_tools_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::with_script(dir.path(), LONG_TOOL, &[]);
    let tool = read_pid(&dir.path().join("ws/tool.pid"));
    agent.signal(libc::SIGINT);
    let (status, events) = agent.wait();
    assert_eq!(status.code(), Some(0));
    let r = last_result(&events).expect("result line");
    assert_eq!(r.verdict(), ResultVerdict::ExecutionError);
    assert_eq!(r.terminal_reason.as_deref(), Some("aborted_tools"));
    wait_until("tool gone", || proc_stat(tool).is_none());
}

/// Whether `pid` has no signal pending (so a delivered signal's handler has run).
fn nothing_pending(pid: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
        .all(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|m| m.trim_start_matches('0').is_empty())
        })
}

#[test]
fn ignored_signals_let_the_script_finish() {
    let dir = tempfile::tempdir().unwrap();
    let script = "ignore-signals\nbash <<EOF\ntouch ready\nwhile [ ! -e go ]; do sleep 0.02; done\nEOF\ntext survived\n";
    let mut agent = Agent::with_script(dir.path(), script, &[]);
    let ws = dir.path().join("ws");
    wait_until("ready", || ws.join("ready").exists());
    agent.signal(libc::SIGTERM);
    agent.signal(libc::SIGINT);
    let pid = agent.child.id() as i32;
    wait_until("signals delivered", || nothing_pending(pid));
    std::fs::write(ws.join("go"), "").unwrap();
    let (status, events) = agent.wait();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        last_result(&events).unwrap().verdict(),
        ResultVerdict::Success
    );
}

#[test]
fn crash_is_a_real_sigsegv() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let (status, events) = Agent::start(ws, "crash", &[]).wait();
    assert_eq!(status.signal(), Some(libc::SIGSEGV));
    assert!(last_result(&events).is_none());
    assert!(ws.join("before-crash.txt").exists());
}

#[test]
fn builtin_success_with_unknown_flags_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (status, events) = Agent::start(
        dir.path(),
        "success",
        &[
            "--model",
            "claude-test",
            "--append-system-prompt",
            "be brief",
            "--strict-mcp-config",
            "--x=y",
        ],
    )
    .wait();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        last_result(&events).unwrap().verdict(),
        ResultVerdict::Success
    );
    let StreamEvent::Init(init) = &events[0] else {
        panic!("{:?}", events[0])
    };
    assert_eq!(init.model.as_deref(), Some("claude-test"));
    assert_eq!(init.permission_mode.as_deref(), Some("bypassPermissions"));

    let dir = tempfile::tempdir().unwrap();
    let (status, events) = Agent::start(dir.path(), "max-turns", &["--max-turns", "1"]).wait();
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        last_result(&events).unwrap().verdict(),
        ResultVerdict::MaxTurns
    );

    let dir = tempfile::tempdir().unwrap();
    let (status, events) =
        Agent::start(dir.path(), "budget", &["--max-budget-usd", "0.015"]).wait();
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        last_result(&events).unwrap().verdict(),
        ResultVerdict::Budget
    );
}

#[test]
fn missing_verbose_fails_like_the_cli() {
    let out = Command::new(EXE)
        .args([
            "scripted-agent",
            "--script",
            "success",
            "-p",
            "x",
            "--output-format",
            "stream-json",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires --verbose"));
}

#[test]
fn grandchildren_outlive_the_agent_in_their_own_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::with_script(
        dir.path(),
        "fork-grandchild gc.pid 600\ntext started\n",
        &[],
    );
    let agent_pid = agent.child.id() as i32;
    let (status, _) = agent.wait();
    assert_eq!(status.code(), Some(0));
    let gc = read_pid(&dir.path().join("ws/gc.pid"));
    let mut stat = None;
    wait_until("grandchild in its own session", || {
        stat = proc_stat(gc);
        stat.is_some_and(|(_, sid)| sid == gc)
    });
    assert_ne!(gc, agent_pid);
    // SAFETY: kill(2) on the sleeper this test started.
    unsafe { libc::kill(gc, libc::SIGKILL) };
}

#[test]
fn bash_alloc_tool_grows_and_dies_with_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::with_script(dir.path(), "bash-alloc 48M 1G\ntext after\n", &[]);
    let ws = dir.path().join("ws");
    let mut pid = 0;
    // The alloc process itself, not the `/bin/sh -c` around it.
    wait_until("alloc process", || {
        let is_sh = |p: &i32| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .unwrap_or_default()
                .starts_with(b"/bin/sh")
        };
        pid = find_procs(&ws, "--alloc")
            .into_iter()
            .find(|p| !is_sh(p) && proc_stat(*p).is_some())
            .unwrap_or(0);
        pid > 0
    });
    wait_until("48 MiB resident", || rss_bytes(pid) >= 48 << 20);
    agent.signal(libc::SIGTERM);
    let (status, _) = agent.wait();
    assert_eq!(status.code(), Some(143));
    wait_until("alloc process gone", || proc_stat(pid).is_none());
}

#[test]
fn alloc_grows_the_agent_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::with_script(
        dir.path(),
        "alloc 48M 1G\nwrite held.txt <<EOF\nheld\nEOF\nhang\n",
        &[],
    );
    wait_until("allocation done", || {
        dir.path().join("ws/held.txt").exists()
    });
    assert!(rss_bytes(agent.child.id() as i32) >= 48 << 20);
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait().0.code(), Some(143));
}
