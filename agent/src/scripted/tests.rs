//! Tests of the scripted agent run in-process against temp workspaces; its output is read back with this
//! crate's own parser. Real-process behaviour (signals, crash, hidden modes) is in `tests/scripted_process.rs`.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::state::StreamState;
use crate::stream::{parse_line, ParseError, ResultVerdict, StreamEvent};

fn args(dir: &Path) -> ScriptArgs {
    ScriptArgs {
        prompt: "build".into(),
        cwd: dir.to_path_buf(),
        ..ScriptArgs::default()
    }
}

struct Run {
    code: i32,
    lines: Vec<Vec<u8>>,
    state: StreamState,
    events: Vec<StreamEvent>,
    not_json: usize,
}

fn fold(code: i32, out: &[u8]) -> Run {
    let mut state = StreamState::new();
    let mut events = Vec::new();
    let mut not_json = 0;
    let lines: Vec<Vec<u8>> = out.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    assert_eq!(
        lines.last().map(Vec::len),
        Some(0),
        "output ends with a newline"
    );
    let lines = lines[..lines.len() - 1].to_vec();
    for l in &lines {
        match parse_line(l) {
            Ok(evs) => {
                for ev in evs {
                    state.observe(&ev);
                    events.push(ev);
                }
            }
            Err(ParseError::NotJson | ParseError::NotAnObject) => not_json += 1,
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(l)),
        }
    }
    Run {
        code,
        lines,
        state,
        events,
        not_json,
    }
}

fn run(script: &str, a: ScriptArgs) -> Run {
    let mut out = Vec::new();
    let code = run_script(script, a, &mut out);
    fold(code, &out)
}

fn verdict(r: &Run) -> ResultVerdict {
    r.state.result.as_ref().expect("a result line").verdict()
}

fn tool_result_content(r: &Run, nth: usize) -> String {
    let l = r
        .lines
        .iter()
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "user")
        .nth(nth)
        .expect("tool result line");
    l["message"]["content"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn builtin_scripts_parse() {
    for (name, text) in BUILTIN_SCRIPTS {
        dsl::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(builtin_script("demo.script").is_some());
    assert!(builtin_script("nope").is_none());
}

#[test]
fn success_writes_files_and_reports_like_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(builtin_script("success").unwrap(), args(dir.path()));
    assert_eq!(r.code, 0);
    assert_eq!(verdict(&r), ResultVerdict::Success);
    let init = r.state.init.as_ref().unwrap();
    assert_eq!(init.claude_code_version.as_deref(), Some(SCRIPTED_VERSION));
    assert_eq!(init.cwd.as_deref(), Some(dir.path().to_str().unwrap()));
    assert!(init.tools.contains(&"Write".to_owned()));
    assert_eq!(r.state.turns, 2);
    assert_eq!(r.state.result.as_ref().unwrap().num_turns, Some(2));
    assert_eq!(r.state.tool_counts.get("Write"), Some(&2));
    assert_eq!(r.state.cost_usd, Some(0.0016));
    assert_eq!(
        r.state.result.as_ref().unwrap().result.as_deref(),
        Some("Done: created index.html and style.css.")
    );
    assert!(std::fs::read_to_string(dir.path().join("index.html"))
        .unwrap()
        .contains("<h1>Hello</h1>"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("style.css")).unwrap(),
        "h1 { color: rebeccapurple; }\n"
    );
    let target = dir.path().join("index.html").display().to_string();
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, StreamEvent::ToolUse(t) if t.target.as_deref() == Some(&target))));
}

#[test]
fn demo_generates_a_realistic_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(builtin_script("demo").unwrap(), args(dir.path()));
    assert_eq!(r.code, 0, "{}", tool_result_content(&r, 27));
    assert_eq!(verdict(&r), ResultVerdict::Success);
    assert_eq!(r.state.turns, 10);
    assert_eq!(r.state.result.as_ref().unwrap().num_turns, Some(10));
    assert_eq!(r.state.tool_errors, 0);
    assert!(r.state.tool_counts["Write"] >= 25);
    let d = dir.path();
    for f in [
        "package.json",
        "vite.config.ts",
        "index.html",
        "src/main.tsx",
        "src/App.tsx",
        "server/index.js",
        "server/routes/todos.js",
        "README.md",
        ".gitignore",
        ".env.example",
        ".env",
        "npm-debug.log",
        "server.log",
        "dist/index.html",
        "package-lock.json",
        ".git/config",
    ] {
        assert!(d.join(f).is_file(), "{f}");
    }
    assert!(std::fs::read_to_string(d.join(".gitignore"))
        .unwrap()
        .contains("node_modules\ndist\n"));
    assert!(std::fs::read_to_string(d.join("src/components/Header.tsx"))
        .unwrap()
        .contains("'1 item'"));
    let mut files = 0;
    let mut stack = vec![d.join("node_modules")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                files += 1;
            }
        }
    }
    assert!(
        (1900..2200).contains(&files),
        "{files} files in node_modules"
    );
    let vite = d.join("node_modules/.bin/vite");
    assert_eq!(
        std::fs::read_link(&vite).unwrap(),
        Path::new("../vite/bin/vite.js")
    );
    assert!(vite.exists(), "relative .bin link resolves");
    assert_eq!(
        std::fs::read_link(d.join("leaked-passwd")).unwrap(),
        Path::new("/etc/passwd")
    );
}

#[test]
fn api_failure_is_success_with_is_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(builtin_script("fail").unwrap(), args(dir.path()));
    assert_eq!(r.code, 1);
    assert_eq!(verdict(&r), ResultVerdict::ApiError);
    let res = r.state.result.as_ref().unwrap();
    assert_eq!(res.api_error_status, Some(500));
    assert_eq!(res.terminal_reason.as_deref(), Some("api_error"));
    assert!(res.result.as_deref().unwrap().starts_with("API Error: 500"));
    assert_eq!(r.state.turns, 0, "the synthetic line is not a turn");
    assert_eq!(r.state.api_retries, 2);
}

#[test]
fn max_turns_stops_before_the_overshooting_turn() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        builtin_script("max-turns").unwrap(),
        ScriptArgs {
            max_turns: Some(2),
            ..args(dir.path())
        },
    );
    assert_eq!(r.code, 1);
    assert_eq!(verdict(&r), ResultVerdict::MaxTurns);
    let res = r.state.result.as_ref().unwrap();
    assert_eq!(
        res.num_turns,
        Some(3),
        "counts the overshooting turn like the CLI"
    );
    assert_eq!(res.errors, ["Reached maximum number of turns (2)"]);
    assert_eq!(r.state.turns, 2);
    assert!(dir.path().join("step2.txt").exists());
    assert!(!dir.path().join("step3.txt").exists());
    // Without the limit the same script succeeds.
    let dir = tempfile::tempdir().unwrap();
    let r = run(builtin_script("max-turns").unwrap(), args(dir.path()));
    assert_eq!(
        (r.code, verdict(&r), r.state.turns),
        (0, ResultVerdict::Success, 5)
    );
}

#[test]
fn budget_stops_after_the_crossing_turn_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        builtin_script("budget").unwrap(),
        ScriptArgs {
            max_budget_usd: Some(0.025),
            ..args(dir.path())
        },
    );
    assert_eq!(r.code, 1);
    assert_eq!(verdict(&r), ResultVerdict::Budget);
    let res = r.state.result.as_ref().unwrap();
    assert_eq!(res.num_turns, Some(3));
    assert_eq!(res.terminal_reason.as_deref(), Some("budget_exhausted"));
    assert!((r.state.cost_usd.unwrap() - 0.03).abs() < 1e-9);
    assert_eq!(
        r.state.tool_counts["Bash"], 3,
        "the third tool_use is printed"
    );
    let results = r
        .events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ToolResult(_)))
        .count();
    assert_eq!(results, 2, "but never runs");
}

#[test]
fn garbage_and_unknown_lines_do_not_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(builtin_script("garbage").unwrap(), args(dir.path()));
    assert_eq!(r.code, 0);
    assert_eq!(verdict(&r), ResultVerdict::Success);
    assert_eq!(r.not_json, 5);
    assert!(r.state.unknown >= 4);
    assert_eq!(r.state.api_retries, 1);
    assert_eq!(r.state.compactions, 1);
    assert!(r.events.contains(&StreamEvent::Thinking));
    assert_eq!(r.state.tool_counts.get("Glob"), Some(&1));
    assert_eq!(r.state.turns, 2);
}

#[test]
fn bash_runs_in_its_own_session_with_output_captured() {
    let dir = tempfile::tempdir().unwrap();
    let script = "bash <<EOF\nsid=$(cut -d' ' -f6 /proc/$$/stat)\n[ \"$sid\" = \"$$\" ] && echo own-session\n\
                  echo to-stderr >&2\nEOF\nbash exit 3\n";
    let r = run(script, args(dir.path()));
    assert_eq!(r.code, 0);
    assert_eq!(tool_result_content(&r, 0), "own-session\nto-stderr");
    assert_eq!(tool_result_content(&r, 1), "Exit code 3");
    assert_eq!(r.state.tool_errors, 1);
}

#[test]
fn edit_and_read_work_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let script = "write a.txt <<EOF\nhello world\nEOF\nedit a.txt <<EOF\nworld\n=======\nthere\nEOF\nread a.txt\n\
                  edit a.txt <<EOF\nabsent\n=======\nx\nEOF\n";
    let r = run(script, args(dir.path()));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "hello there\n"
    );
    assert_eq!(tool_result_content(&r, 2), "     1\thello there\n");
    assert_eq!(r.state.tool_errors, 1, "edit of a missing string fails");
    assert_eq!(r.state.turns, 1, "implicit turn");
}

#[test]
fn echo_env_dumps_environments() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(builtin_script("env").unwrap(), args(dir.path()));
    assert_eq!(r.code, 0);
    let dump = std::fs::read_to_string(dir.path().join("env-dump.txt")).unwrap();
    assert!(dump.contains("# /proc/1/environ\n"));
    assert!(dump.contains(&format!(
        "# /proc/{}/environ\n",
        std::os::unix::process::parent_id()
    )));
    let (k, v) = std::env::vars()
        .next()
        .expect("the test has some environment");
    assert!(dump.contains(&format!("{k}={v}\n")));
}

#[test]
fn huge_write_emits_huge_lines_and_writes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = run("huge-write big.js 3M\n", args(dir.path()));
    assert_eq!(r.code, 0);
    assert_eq!(
        std::fs::metadata(dir.path().join("big.js")).unwrap().len(),
        3 << 20
    );
    assert!(
        r.lines.iter().filter(|l| l.len() > 3 << 20).count() >= 2,
        "assistant and user lines"
    );
    assert_eq!(r.state.tool_counts["Write"], 1);
}

#[test]
fn explicit_exit_and_bad_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let r = run("text hi\nexit 7\ntext never\n", args(dir.path()));
    assert_eq!(r.code, 7);
    assert!(r.state.result.is_none());
    let mut out = Vec::new();
    assert_eq!(run_script("frobnicate\n", args(dir.path()), &mut out), 1);
    assert!(out.is_empty());
}

#[test]
fn alloc_holds_memory_then_continues() {
    let dir = tempfile::tempdir().unwrap();
    let r = run("alloc 16M 1G\ntext after\n", args(dir.path()));
    assert_eq!(r.code, 0);
    assert_eq!(r.state.last_text.as_deref(), Some("after"));
    let held = run::allocate(3 << 20, 1 << 30, &mut || Ok(())).unwrap();
    assert_eq!(held.iter().map(Vec::len).sum::<usize>(), 3 << 20);
    assert!(
        held.iter()
            .all(|c| c.iter().step_by(4096).all(|&b| b == 0xA5)),
        "pages touched"
    );
}

/// A writer the test can read while the script runs in another thread.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "never saw {needle:?} in {}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn spawn(
    script: &'static str,
    dir: &Path,
) -> (Shared, Arc<os::SignalFlags>, std::thread::JoinHandle<i32>) {
    let out = Shared::default();
    let flags = Arc::new(os::SignalFlags::new());
    let (o, f, a) = (out.clone(), flags.clone(), args(dir));
    let h = std::thread::spawn(move || run_with_signals(script, a, &mut o.clone(), &f));
    (out, flags, h)
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn wait_file(p: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = std::fs::read_to_string(p) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "{} never written", p.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_kills_the_tool_and_exits_143_without_result() {
    let dir = tempfile::tempdir().unwrap();
    let (out, flags, h) = spawn(
        "turn\nbash <<EOF\necho $$ > tool.pid\nexec sleep 600\nEOF\n",
        dir.path(),
    );
    let pid: i32 = wait_file(&dir.path().join("tool.pid"))
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    flags.term.store(true, Ordering::SeqCst);
    assert_eq!(h.join().unwrap(), 143);
    assert!(!pid_alive(pid), "tool command killed");
    assert!(!out.text().contains("\"type\":\"result\""));
}

#[test]
fn sigint_kills_the_tool_and_reports_aborted_tools() {
    let dir = tempfile::tempdir().unwrap();
    let (out, flags, h) = spawn(
        "turn\nbash <<EOF\necho $$ > tool.pid\nexec sleep 600\nEOF\n",
        dir.path(),
    );
    let pid: i32 = wait_file(&dir.path().join("tool.pid"))
        .trim()
        .parse()
        .unwrap();
    flags.int.store(true, Ordering::SeqCst);
    assert_eq!(h.join().unwrap(), 0);
    assert!(!pid_alive(pid));
    let r = fold(0, out.text().as_bytes());
    assert_eq!(verdict(&r), ResultVerdict::ExecutionError);
    assert_eq!(
        r.state.result.as_ref().unwrap().terminal_reason.as_deref(),
        Some("aborted_tools")
    );
    assert_eq!(r.state.tool_errors, 1, "interrupted tool_result");
}

#[test]
fn sigterm_while_hanging_and_after_result() {
    for script in ["hang", "hang-after-result"] {
        let dir = tempfile::tempdir().unwrap();
        let (out, flags, h) = spawn(builtin_script(script).unwrap(), dir.path());
        out.wait_for(if script == "hang" {
            "File created successfully"
        } else {
            "\"type\":\"result\""
        });
        flags.term.store(true, Ordering::SeqCst);
        assert_eq!(h.join().unwrap(), 143, "{script}");
        assert_eq!(
            out.text().matches("\"type\":\"result\"").count(),
            usize::from(script != "hang")
        );
    }
}

#[test]
fn ignored_signals_do_not_stop_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let (out, flags, h) = spawn(
        "ignore-signals\nbash <<EOF\nwhile [ ! -e go ]; do sleep 0.02; done\nEOF\ntext survived\n",
        dir.path(),
    );
    out.wait_for("\"name\":\"Bash\"");
    flags.term.store(true, Ordering::SeqCst);
    flags.int.store(true, Ordering::SeqCst);
    // Both flags are consumed (and ignored) by the running step before it is released.
    let deadline = Instant::now() + Duration::from_secs(60);
    while flags.term.load(Ordering::SeqCst) || flags.int.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(h.join().unwrap(), 0);
    let r = fold(0, out.text().as_bytes());
    assert_eq!(verdict(&r), ResultVerdict::Success);
    assert_eq!(r.state.last_text.as_deref(), Some("survived"));
}

#[test]
fn cli_flags_are_parsed_leniently() {
    let argv = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let m = parse_cli(&argv(
        "--script success -p hello --output-format stream-json --verbose --max-turns 3 --model m \
         --max-budget-usd 0.5 --permission-mode bypassPermissions --append-system-prompt extra --foo=bar \
         --include-partial-messages --setting-sources user",
    ))
    .unwrap();
    let Mode::Script { script, args } = m else {
        panic!("{m:?}")
    };
    assert_eq!(script, "success");
    assert_eq!(args.prompt, "hello");
    assert_eq!(args.max_turns, Some(3));
    assert_eq!(args.model.as_deref(), Some("m"));
    assert_eq!(args.max_budget_usd, Some(0.5));
    assert_eq!(args.permission_mode.as_deref(), Some("bypassPermissions"));
    let e = parse_cli(&argv("--script success -p hi --output-format stream-json")).unwrap_err();
    assert!(e.contains("requires --verbose"), "{e}");
    assert!(
        parse_cli(&argv("-p hi --verbose")).is_err(),
        "script required"
    );
    assert!(parse_cli(&argv("--script s --verbose --max-turns many")).is_err());
    assert_eq!(
        parse_cli(&argv("scripted-agent --alloc 500M --rate 100M")).unwrap(),
        Mode::Alloc {
            size: 500 << 20,
            rate: 100 << 20
        }
    );
    assert_eq!(
        parse_cli(&argv("--sleep 30 --pidfile /tmp/x")).unwrap(),
        Mode::Sleep {
            secs: 30,
            pidfile: Some("/tmp/x".into())
        }
    );
}
