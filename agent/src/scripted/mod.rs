//! A scripted stand-in for the Claude Code CLI, for `genrun demo` and for tests.
//!
//! It is launched exactly like the real CLI (`genrun scripted-agent --script NAME_OR_PATH -p PROMPT
//! --output-format stream-json --verbose --max-turns N [--model M] [--max-budget-usd X] --permission-mode
//! bypassPermissions`, stdin /dev/null, cwd = workspace), prints the CLI's stream-json line shapes (field
//! names copied from recorded 2.1.330 transcripts) and really performs its tool steps in its cwd, so the
//! whole supervisor pipeline can be exercised without a model, a network or Node.
//!
//! # Behaving like the CLI
//! - Unknown flags are accepted and ignored (`--flag=value`, `--flag value`, or a boolean `--flag`).
//!   `--output-format stream-json` without `--verbose` fails like the CLI (stderr, exit 1).
//! - A `system`/`init` line comes first. Turns are assistant messages with their own `message.id`.
//! - `--max-turns N`: when a new turn would exceed N, a result `error_max_turns` with `num_turns = N + 1`
//!   is printed and the process exits 1 (the overshooting turn is counted, never printed).
//! - `--max-budget-usd X`: each turn adds its cost; the turn that brings the total to X or more is still
//!   printed up to its first tool_use, then a result `error_max_budget_usd` follows (the tool never runs), exit 1.
//! - Bash steps run as `/bin/sh -c COMMAND` in the workspace, each in its own session (setsid) like the
//!   CLI's Bash tool; stdout/stderr are captured (memfd) into the tool_result, at most 30,000 bytes each.
//! - SIGINT: running tool commands are killed (SIGKILL to their process group), an interrupted tool_result
//!   and a result `error_during_execution` / `aborted_tools` are printed, exit 0.
//!   SIGTERM: tool commands are killed, exit 143, no result line. Both are ignored after `ignore-signals`.
//! - Without an explicit `result`, a success result (with the last text as `result`) ends the script, exit 0.
//!
//! # Script language
//! One directive per line; blank lines and lines starting with `#` are ignored. A directive ending in `<<TAG`
//! takes the following lines, up to a line that is exactly `TAG`, as its body (no expansion). Arguments are
//! separated by blanks; `"..."` groups words. Paths are relative to the cwd (the workspace).
//!
//! | directive | effect |
//! |---|---|
//! | `turn [COST]` | start a new turn (new message id); adds COST or the per-turn cost; checks limits |
//! | `cost-per-turn USD` | per-turn cost from now on (default 0.0008) |
//! | `text TEXT` / `text <<EOF` | assistant text block (the last one becomes the result text) |
//! | `thinking TEXT` | assistant thinking block |
//! | `write PATH <<EOF` | Write tool: creates parent dirs, writes the body (plus a final newline) |
//! | `edit PATH <<EOF` | Edit tool: body is OLD, a line `=======`, NEW; replaces the first OLD |
//! | `read PATH` | Read tool |
//! | `bash COMMAND` / `bash <<EOF` | Bash tool: runs the command for real |
//! | `tool NAME JSON` / `tool NAME <<EOF` | a tool_use of any name with that input; result "ok", no effect |
//! | `api-retry [ATTEMPT [MAX [STATUS\|none [ERROR]]]]` | `system`/`api_retry` line (default 1 10 529 overloaded_error) |
//! | `compaction [TRIGGER [PRE_TOKENS]]` | status lines and a `system`/`compact_boundary` line |
//! | `unknown TYPE [SUBTYPE]` | a line of a type the parser does not know |
//! | `garbage TEXT` / `garbage <<EOF` | raw non-JSON line(s) on stdout |
//! | `synthetic-error TEXT` | the CLI's synthetic assistant line (`model:"<synthetic>"`) before API errors |
//! | `huge-write PATH SIZE` | Write tool whose content is SIZE bytes (e.g. `20M`): one huge assistant and user line |
//! | `pause DURATION` | busy but silent (`250ms`, `2s`, `1m`) |
//! | `hang` | silent forever (signals still handled) |
//! | `hang-after-result` | print the final success result, then hang |
//! | `crash [segv\|abort]` | really die of SIGSEGV (default) or SIGABRT |
//! | `exit N` | exit with status N without a result line |
//! | `ignore-signals` | SIGINT and SIGTERM are ignored from now on |
//! | `fork-grandchild [PIDFILE [SECONDS]]` | Bash step starting a detached sleeper (own session, default 3600 s) like a leaked dev server; PIDFILE gets its pid |
//! | `alloc SIZE [RATE]` | the agent itself allocates and touches SIZE bytes at RATE/s (default 100M) and holds them |
//! | `bash-alloc SIZE [RATE]` | Bash step running the hidden alloc mode (below): holds SIZE until killed |
//! | `echo-env FILE` | writes the agent's environment, `/proc/1/environ` and `/proc/<ppid>/environ` (or the read errors) into FILE |
//! | `result SUBTYPE [is_error] [STATUS]` | explicit result line and exit (0 for plain success, else 1); STATUS sets `api_error_status` |
//!
//! Sizes: bytes or `K`/`M`/`G` (binary). Tool steps outside a turn start one implicitly.
//!
//! # Hidden modes
//! Reached as `<current_exe> scripted-agent ...`, so the binary that routes `scripted-agent` to [`main`]
//! provides them:
//! - `--alloc SIZE [--rate RATE]`: allocate and touch SIZE bytes at RATE/s, then hold them until killed;
//! - `--sleep SECONDS [--pidfile FILE]`: call setsid, optionally write the pid, sleep.
//!
//! # Built-in scripts
//! `agent/scripts/*.script`, embedded: `--script NAME` finds them anywhere; anything containing `/` or ending
//! in `.script` is read from disk instead.

mod dsl;
mod os;
mod run;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

pub use dsl::ScriptError;
pub use run::{DEFAULT_MODEL, SCRIPTED_VERSION};

/// The embedded scripts, by name.
pub const BUILTIN_SCRIPTS: &[(&str, &str)] = &[
    ("demo", include_str!("../../scripts/demo.script")),
    ("success", include_str!("../../scripts/success.script")),
    ("fail", include_str!("../../scripts/fail.script")),
    ("max-turns", include_str!("../../scripts/max-turns.script")),
    ("budget", include_str!("../../scripts/budget.script")),
    ("hang", include_str!("../../scripts/hang.script")),
    (
        "hang-after-result",
        include_str!("../../scripts/hang-after-result.script"),
    ),
    ("crash", include_str!("../../scripts/crash.script")),
    (
        "ignore-signals",
        include_str!("../../scripts/ignore-signals.script"),
    ),
    (
        "grandchildren",
        include_str!("../../scripts/grandchildren.script"),
    ),
    (
        "huge-lines",
        include_str!("../../scripts/huge-lines.script"),
    ),
    ("garbage", include_str!("../../scripts/garbage.script")),
    ("slow", include_str!("../../scripts/slow.script")),
    (
        "alloc-agent",
        include_str!("../../scripts/alloc-agent.script"),
    ),
    (
        "alloc-tool",
        include_str!("../../scripts/alloc-tool.script"),
    ),
    ("env", include_str!("../../scripts/env.script")),
];

/// The text of a built-in script (`NAME` or `NAME.script`).
pub fn builtin_script(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".script").unwrap_or(name);
    BUILTIN_SCRIPTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

/// The CLI options the scripted agent honours.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptArgs {
    pub prompt: String,
    pub max_turns: Option<u32>,
    pub model: Option<String>,
    pub max_budget_usd: Option<f64>,
    pub permission_mode: Option<String>,
    /// Where relative paths point and commands run (the process cwd when launched by genrun).
    pub cwd: PathBuf,
    /// The executable providing the hidden modes (`<exe> scripted-agent --alloc ...`); `None` means
    /// `std::env::current_exe()`.
    pub self_exe: Option<PathBuf>,
}

impl Default for ScriptArgs {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            max_turns: None,
            model: None,
            max_budget_usd: None,
            permission_mode: None,
            cwd: PathBuf::from("."),
            self_exe: None,
        }
    }
}

/// Runs `script` against `out`; returns the exit status the process would have. A script that does not
/// parse is reported on stderr with status 1. Signals are not installed here: only [`main`] reacts to real
/// SIGINT/SIGTERM. `crash` really kills the calling process.
pub fn run_script(script: &str, args: ScriptArgs, out: &mut dyn Write) -> i32 {
    static NO_SIGNALS: os::SignalFlags = os::SignalFlags::new();
    run_with_signals(script, args, out, &NO_SIGNALS)
}

fn run_with_signals(
    script: &str,
    args: ScriptArgs,
    out: &mut dyn Write,
    signals: &os::SignalFlags,
) -> i32 {
    match dsl::parse(script) {
        Ok(steps) => run::Runner::new(args, out, signals).run(&steps),
        Err(e) => {
            eprintln!("scripted-agent: {e}");
            1
        }
    }
}

/// Entry point of `genrun scripted-agent ARGS...` (`args` without those two words). Synchronous; call it
/// before starting any async runtime and exit with the returned status.
pub fn main(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match parse_cli(&args) {
        Ok(Mode::Alloc { size, rate }) => hold_allocation(size, rate),
        Ok(Mode::Sleep { secs, pidfile }) => sleep_detached(secs, pidfile),
        Ok(Mode::Script { script, args }) => {
            let text = match load_script(&script) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("scripted-agent: {e}");
                    return 1;
                }
            };
            if let Err(e) = os::install_handlers() {
                eprintln!("scripted-agent: cannot install signal handlers: {e}");
                return 1;
            }
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            run_with_signals(&text, args, &mut out, &os::PROCESS_SIGNALS)
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

#[derive(Debug, PartialEq)]
enum Mode {
    Script { script: String, args: ScriptArgs },
    Alloc { size: u64, rate: u64 },
    Sleep { secs: u64, pidfile: Option<String> },
}

/// Flags of the real CLI that take no value (so an unknown flag's next word is not eaten by mistake).
const BOOLEAN_FLAGS: &[&str] = &[
    "--verbose",
    "--dangerously-skip-permissions",
    "--include-partial-messages",
    "--strict-mcp-config",
    "--bare",
    "--continue",
    "-c",
    "--debug",
    "-d",
    "--print",
    "--mcp-debug",
    "--replay-user-messages",
    "--fork-session",
];

fn parse_cli(argv: &[String]) -> Result<Mode, String> {
    let mut args = ScriptArgs::default();
    let mut script = None;
    let (mut alloc, mut rate, mut sleep, mut pidfile) = (None, None, None, None);
    let (mut output_format, mut verbose) = (None, false);
    let mut i = 0;
    // A leading `scripted-agent` is tolerated so `<exe> scripted-agent ...` works for any binary.
    if argv.first().map(String::as_str) == Some("scripted-agent") {
        i = 1;
    }
    while i < argv.len() {
        let a = argv[i].as_str();
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a, None),
        };
        let value = |i: &mut usize, name: &str| -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            *i += 1;
            argv.get(*i)
                .cloned()
                .ok_or_else(|| format!("error: option '{name}' argument missing"))
        };
        match flag {
            "--script" => script = Some(value(&mut i, flag)?),
            "-p" | "--print" if inline.is_none() && argv.get(i + 1).is_some() => {
                args.prompt = value(&mut i, flag)?
            }
            "--output-format" => output_format = Some(value(&mut i, flag)?),
            "--verbose" => verbose = true,
            "--max-turns" => {
                let v = value(&mut i, flag)?;
                args.max_turns = Some(
                    v.parse()
                        .map_err(|_| format!("error: invalid --max-turns '{v}'"))?,
                );
            }
            "--model" => args.model = Some(value(&mut i, flag)?),
            "--max-budget-usd" => {
                let v = value(&mut i, flag)?;
                let b = v.parse::<f64>().ok().filter(|b| b.is_finite() && *b > 0.0);
                args.max_budget_usd =
                    Some(b.ok_or_else(|| format!("error: invalid --max-budget-usd '{v}'"))?);
            }
            "--permission-mode" => args.permission_mode = Some(value(&mut i, flag)?),
            "--alloc" => alloc = Some(dsl::parse_size(&value(&mut i, flag)?)?),
            "--rate" => rate = Some(dsl::parse_size(&value(&mut i, flag)?)?),
            "--sleep" => {
                let v = value(&mut i, flag)?;
                sleep = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("error: invalid --sleep '{v}'"))?,
                );
            }
            "--pidfile" => pidfile = Some(value(&mut i, flag)?),
            f if BOOLEAN_FLAGS.contains(&f) => {}
            f if f.starts_with('-') => {
                // Unknown flag: takes the next word as its value unless that looks like a flag.
                if inline.is_none() && argv.get(i + 1).is_some_and(|n| !n.starts_with('-')) {
                    i += 1;
                }
            }
            positional => {
                if args.prompt.is_empty() {
                    args.prompt = positional.to_owned();
                }
            }
        }
        i += 1;
    }
    if let Some(size) = alloc {
        return Ok(Mode::Alloc {
            size,
            rate: rate.unwrap_or(dsl::DEFAULT_RATE).max(1),
        });
    }
    if let Some(secs) = sleep {
        return Ok(Mode::Sleep { secs, pidfile });
    }
    if output_format.as_deref() == Some("stream-json") && !verbose {
        return Err(
            "Error: When using --print, --output-format=stream-json requires --verbose".into(),
        );
    }
    let script = script.ok_or("scripted-agent: --script NAME_OR_PATH is required")?;
    args.cwd = std::env::current_dir()
        .map_err(|e| format!("scripted-agent: no current directory: {e}"))?;
    Ok(Mode::Script { script, args })
}

fn load_script(name: &str) -> Result<String, String> {
    if name.contains('/') || (name.ends_with(".script") && std::path::Path::new(name).exists()) {
        return std::fs::read_to_string(name)
            .map_err(|e| format!("cannot read script {name}: {e}"));
    }
    builtin_script(name).map(str::to_owned).ok_or_else(|| {
        let names: Vec<&str> = BUILTIN_SCRIPTS.iter().map(|(n, _)| *n).collect();
        format!("unknown script `{name}` (built-in: {})", names.join(", "))
    })
}

/// Hidden `--alloc` mode: allocate, then hold until killed (default signal actions).
fn hold_allocation(size: u64, rate: u64) -> i32 {
    let held = run::allocate(size, rate, &mut || Ok(()));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        std::hint::black_box(&held);
    }
}

/// Hidden `--sleep` mode: a detached long sleeper, like a dev server left running.
fn sleep_detached(secs: u64, pidfile: Option<String>) -> i32 {
    os::new_session();
    if let Some(p) = pidfile {
        if let Err(e) = std::fs::write(&p, format!("{}\n", std::process::id())) {
            eprintln!("scripted-agent: cannot write {p}: {e}");
        }
    }
    std::thread::sleep(Duration::from_secs(secs));
    0
}

#[cfg(test)]
mod tests;
