//! Executing a parsed script: emitting the CLI's line shapes and really performing the tool steps.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Value};

use super::dsl::{Crash, Step};
use super::os::{self, Sig, SignalFlags};
use super::ScriptArgs;

/// Version string the scripted agent reports in its init line.
pub const SCRIPTED_VERSION: &str = "2.1.330-scripted";
/// Model reported when no `--model` is given.
pub const DEFAULT_MODEL: &str = "claude-scripted";
/// Cost added per turn unless changed by `cost-per-turn`, like the recorded transcripts.
const DEFAULT_TURN_COST: f64 = 0.0008;
/// The CLI cuts tool output at about this many bytes.
const MAX_TOOL_OUTPUT: usize = 30_000;
/// How often waits look at signal flags and child status.
const POLL: Duration = Duration::from_millis(10);

const TOOLS: &[&str] = &[
    "Task",
    "Bash",
    "Edit",
    "Glob",
    "Grep",
    "NotebookEdit",
    "Read",
    "TodoWrite",
    "WebFetch",
    "WebSearch",
    "Write",
];

/// Why execution stops early: the exit status to return.
type Stop = i32;

pub(crate) struct Runner<'a> {
    out: &'a mut dyn Write,
    args: ScriptArgs,
    signals: &'a SignalFlags,
    session_id: String,
    model: String,
    start: Instant,
    seed: u64,
    turns: u64,
    cost: f64,
    cost_per_turn: f64,
    message_id: Option<String>,
    tool_seq: u64,
    last_text: Option<String>,
    budget_hit: bool,
    ignore_signals: bool,
    result_sent: bool,
    /// Process group and tool_use id of the running tool command.
    running: Option<(u32, String)>,
    held: Vec<Vec<u8>>,
}

impl<'a> Runner<'a> {
    pub(crate) fn new(args: ScriptArgs, out: &'a mut dyn Write, signals: &'a SignalFlags) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut seed = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        let session_id = uuid(&mut seed);
        let model = args
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        Self {
            out,
            args,
            signals,
            session_id,
            model,
            start: Instant::now(),
            seed,
            turns: 0,
            cost: 0.0,
            cost_per_turn: DEFAULT_TURN_COST,
            message_id: None,
            tool_seq: 0,
            last_text: None,
            budget_hit: false,
            ignore_signals: false,
            result_sent: false,
            running: None,
            held: Vec::new(),
        }
    }

    /// Runs every step; returns the process exit status.
    pub(crate) fn run(mut self, steps: &[Step]) -> i32 {
        if let Err(code) = self.run_inner(steps) {
            return code;
        }
        0
    }

    fn run_inner(&mut self, steps: &[Step]) -> Result<(), Stop> {
        self.emit_init()?;
        for step in steps {
            self.check_signals()?;
            self.step(step)?;
        }
        self.finish()
    }

    fn step(&mut self, step: &Step) -> Result<(), Stop> {
        match step {
            Step::Turn { cost } => self.start_turn(*cost),
            Step::CostPerTurn(c) => {
                self.cost_per_turn = *c;
                Ok(())
            }
            Step::Text(text) => {
                self.ensure_turn()?;
                self.last_text = Some(text.clone());
                self.assistant(&json!({"type": "text", "text": text}))
            }
            Step::Thinking(text) => {
                self.ensure_turn()?;
                self.assistant(
                    &json!({"type": "thinking", "thinking": text, "signature": "scripted"}),
                )
            }
            Step::Write { path, content } => self.write(path, content),
            Step::Edit { path, old, new } => self.edit(path, old, new),
            Step::Read { path } => self.read(path),
            Step::Bash { command } => {
                self.ensure_turn()?;
                let id = self.tool_use(
                    "Bash",
                    &json!({"command": command, "description": describe(command)}),
                )?;
                self.bash(&id, command)
            }
            Step::Tool { name, input } => {
                self.ensure_turn()?;
                let id = self.tool_use(name, input)?;
                self.tool_result(&id, "ok", false, &json!("ok"))
            }
            Step::ApiRetry {
                attempt,
                max_retries,
                status,
                error,
            } => {
                let uuid = self.uuid();
                self.line(&json!({
                    "type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": max_retries,
                    "retry_delay_ms": 500, "error_status": status, "error": error,
                    "session_id": self.session_id, "uuid": uuid,
                }))
            }
            Step::Compaction {
                trigger,
                pre_tokens,
            } => self.compaction(trigger, *pre_tokens),
            Step::Unknown { ty, subtype } => {
                let mut v = json!({
                    "type": ty, "session_id": self.session_id, "uuid": self.uuid(),
                    "scripted_note": "a line type the parser does not know", "nested": {"list": [1, {"a": null}]},
                });
                if let Some(s) = subtype {
                    v["subtype"] = json!(s);
                }
                self.line(&v)
            }
            Step::Garbage(text) => {
                for l in text.split('\n') {
                    self.raw(l.as_bytes())?;
                }
                Ok(())
            }
            Step::SyntheticError(text) => self.synthetic_error(text),
            Step::HugeWrite { path, size } => self.huge_write(path, *size),
            Step::Pause(d) => self.wait(*d),
            Step::Hang => self.wait_forever(),
            Step::HangAfterResult => {
                self.finish()?;
                self.wait_forever()
            }
            Step::Crash(kind) => {
                let _ = self.out.flush();
                os::crash(*kind == Crash::Abort)
            }
            Step::Exit(code) => {
                let _ = self.out.flush();
                Err(*code)
            }
            Step::IgnoreSignals => {
                self.ignore_signals = true;
                Ok(())
            }
            Step::ForkGrandchild { pidfile, secs } => {
                self.fork_grandchild(pidfile.as_deref(), *secs)
            }
            Step::Alloc { size, rate } => self.alloc(*size, *rate),
            Step::BashAlloc { size, rate } => {
                self.ensure_turn()?;
                let command = format!("{} --alloc {size} --rate {rate}", self.self_command());
                let id = self.tool_use(
                    "Bash",
                    &json!({"command": command, "description": "Run the build"}),
                )?;
                self.bash(&id, &command)
            }
            Step::EchoEnv(path) => self.echo_env(path),
            Step::Result {
                subtype,
                is_error,
                api_error_status,
            } => {
                let code = if subtype == "success" && !is_error {
                    0
                } else {
                    1
                };
                self.result(subtype, *is_error, *api_error_status, None)?;
                Err(code)
            }
        }
    }

    // ---- turns, limits, results ----

    fn ensure_turn(&mut self) -> Result<(), Stop> {
        if self.message_id.is_none() {
            self.start_turn(None)?;
        }
        Ok(())
    }

    fn start_turn(&mut self, cost: Option<f64>) -> Result<(), Stop> {
        self.check_budget()?;
        if let Some(max) = self.args.max_turns {
            if self.turns >= u64::from(max) {
                // Like the CLI: the overshooting turn is counted but never printed.
                self.turns += 1;
                self.result(
                    "error_max_turns",
                    true,
                    None,
                    Some(format!("Reached maximum number of turns ({max})")),
                )?;
                return Err(1);
            }
        }
        self.turns += 1;
        self.cost += cost.unwrap_or(self.cost_per_turn);
        let short = self.session_id.get(..8).unwrap_or("scripted").to_owned();
        self.message_id = Some(format!("msg_scripted_{short}_{:04}", self.turns));
        if let Some(budget) = self.args.max_budget_usd {
            // Checked after the response arrives, before its tools run (see check_budget).
            self.budget_hit = self.cost >= budget;
        }
        Ok(())
    }

    /// Stops with `error_max_budget_usd` once the turn that crossed the budget has been printed.
    fn check_budget(&mut self) -> Result<(), Stop> {
        if !self.budget_hit {
            return Ok(());
        }
        let budget = self.args.max_budget_usd.unwrap_or(0.0);
        self.result(
            "error_max_budget_usd",
            true,
            None,
            Some(format!("Reached maximum budget (${budget})")),
        )?;
        Err(1)
    }

    fn finish(&mut self) -> Result<(), Stop> {
        if self.result_sent {
            return Ok(());
        }
        self.check_budget()?;
        self.result("success", false, None, None)
    }

    /// Prints the result line. `error` goes to `errors[]`; success results carry the last text instead.
    fn result(
        &mut self,
        subtype: &str,
        is_error: bool,
        api_error_status: Option<u64>,
        error: Option<String>,
    ) -> Result<(), Stop> {
        let terminal_reason = match (subtype, is_error) {
            ("success", false) => "completed",
            ("success", true) => "api_error",
            ("error_max_turns", _) => "max_turns",
            ("error_max_budget_usd", _) => "budget_exhausted",
            ("error_during_execution", _) => "aborted_tools",
            _ => "error",
        };
        let turns = self.turns;
        let uuid = self.uuid();
        let mut v = json!({
            "type": "result", "subtype": subtype, "is_error": is_error,
            "duration_ms": self.start.elapsed().as_millis() as u64,
            "duration_api_ms": turns * 30,
            "num_turns": turns,
            "stop_reason": if is_error { "tool_use" } else { "end_turn" },
            "session_id": self.session_id,
            "total_cost_usd": self.cost,
            "usage": {
                "input_tokens": turns * 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "output_tokens": turns * 20, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": "standard",
            },
            "modelUsage": {
                self.model.clone(): {"inputTokens": turns * 100, "outputTokens": turns * 20, "costUSD": self.cost}
            },
            "permission_denials": [],
            "terminal_reason": terminal_reason,
            "api_error_status": api_error_status,
            "uuid": uuid,
        });
        match error {
            Some(e) => v["errors"] = json!([e]),
            None => v["result"] = json!(self.last_text.clone().unwrap_or_default()),
        }
        self.result_sent = true;
        self.line(&v)
    }

    // ---- signals and waiting ----

    /// Acts on a pending signal: SIGTERM kills the running tool and stops with 143 (no result line);
    /// SIGINT kills it, reports the interruption and an `error_during_execution` result, and stops with 0.
    fn check_signals(&mut self) -> Result<(), Stop> {
        let Some(sig) = self.signals.take() else {
            return Ok(());
        };
        if self.ignore_signals {
            return Ok(());
        }
        let running = self.running.take();
        if let Some((pgid, _)) = &running {
            os::kill_group(*pgid);
        }
        match sig {
            Sig::Term => {
                let _ = self.out.flush();
                Err(143)
            }
            Sig::Int => {
                if !self.result_sent {
                    if let Some((_, id)) = &running {
                        let msg = "The user doesn't want to proceed with this tool use. The tool use was rejected.";
                        self.tool_result(id, msg, true, &json!("User rejected tool use"))?;
                        let uuid = self.uuid();
                        self.line(&json!({
                            "type": "user",
                            "message": {"role": "user", "content": [
                                {"type": "text", "text": "[Request interrupted by user for tool use]"}]},
                            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": uuid,
                        }))?;
                    }
                    let diag = "[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=tool_use";
                    self.result("error_during_execution", true, None, Some(diag.to_owned()))?;
                }
                Err(0)
            }
        }
    }

    fn wait(&mut self, d: Duration) -> Result<(), Stop> {
        let until = Instant::now() + d;
        loop {
            self.check_signals()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(POLL.min(until - now));
        }
    }

    fn wait_forever(&mut self) -> Result<(), Stop> {
        let _ = self.out.flush();
        loop {
            self.check_signals()?;
            std::thread::sleep(POLL);
        }
    }

    // ---- tools ----

    fn abs(&self, path: &str) -> PathBuf {
        self.args.cwd.join(path)
    }

    fn write(&mut self, path: &str, content: &str) -> Result<(), Stop> {
        self.ensure_turn()?;
        let abs = self.abs(path);
        let shown = abs.display().to_string();
        let id = self.tool_use("Write", &json!({"file_path": shown, "content": content}))?;
        self.finish_write(&id, &abs, &shown, content)
    }

    fn finish_write(
        &mut self,
        id: &str,
        abs: &Path,
        shown: &str,
        content: &str,
    ) -> Result<(), Stop> {
        let existed = abs.exists();
        let written = abs
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(abs, content));
        match written {
            Ok(()) => {
                let msg = if existed {
                    format!("The file {shown} has been updated successfully.")
                } else {
                    format!("File created successfully at: {shown}")
                };
                let tur = WriteResult {
                    r#type: if existed { "update" } else { "create" },
                    file_path: shown,
                    content,
                    structured_patch: [],
                    original_file: None,
                };
                self.tool_result(id, &msg, false, &tur)
            }
            Err(e) => self.tool_result(
                id,
                &format!("Error writing file: {e}"),
                true,
                &json!(format!("Error: {e}")),
            ),
        }
    }

    fn edit(&mut self, path: &str, old: &str, new: &str) -> Result<(), Stop> {
        self.ensure_turn()?;
        let abs = self.abs(path);
        let shown = abs.display().to_string();
        let id = self.tool_use(
            "Edit",
            &json!({"file_path": shown, "old_string": old, "new_string": new}),
        )?;
        let outcome = std::fs::read_to_string(&abs)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                if !text.contains(old) {
                    return Err(format!(
                        "String to replace not found in file.\nString: {old}"
                    ));
                }
                std::fs::write(&abs, text.replacen(old, new, 1)).map_err(|e| e.to_string())
            });
        match outcome {
            Ok(()) => {
                let msg = format!("The file {shown} has been updated successfully.");
                let tur = json!({"filePath": shown, "oldString": old, "newString": new, "replaceAll": false});
                self.tool_result(&id, &msg, false, &tur)
            }
            Err(e) => self.tool_result(&id, &e, true, &json!(format!("Error: {e}"))),
        }
    }

    fn read(&mut self, path: &str) -> Result<(), Stop> {
        self.ensure_turn()?;
        let abs = self.abs(path);
        let shown = abs.display().to_string();
        let id = self.tool_use("Read", &json!({"file_path": shown}))?;
        match std::fs::read_to_string(&abs) {
            Ok(text) => {
                let numbered: String = text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| format!("{:>6}\t{l}\n", i + 1))
                    .collect();
                let numbered = crate::stream::cap_str(&numbered, MAX_TOOL_OUTPUT);
                let tur = json!({"type": "text", "file": {"filePath": shown, "numLines": text.lines().count()}});
                self.tool_result(&id, &numbered, false, &tur)
            }
            Err(e) => self.tool_result(
                &id,
                &format!("File does not exist. ({e})"),
                true,
                &json!("Error"),
            ),
        }
    }

    /// Runs a command like the CLI's Bash tool: `/bin/sh -c`, own session, output captured.
    fn bash(&mut self, id: &str, command: &str) -> Result<(), Stop> {
        let (out, err) = (os::capture_file(), os::capture_file());
        let mut child = match os::spawn_shell(command, &self.args.cwd, out.as_ref(), err.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                return self.tool_result(
                    id,
                    &format!("Error: {e}"),
                    true,
                    &json!(format!("Error: {e}")),
                )
            }
        };
        self.running = Some((child.id(), id.to_owned()));
        let status = loop {
            if let Err(stop) = self.check_signals() {
                let _ = child.wait();
                return Err(stop);
            }
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => std::thread::sleep(POLL),
                Err(_) => break None,
            }
        };
        self.running = None;
        let stdout = os::read_capture(out, MAX_TOOL_OUTPUT);
        let stderr = os::read_capture(err, MAX_TOOL_OUTPUT);
        let code = status.and_then(|s| s.code());
        let ok = code == Some(0);
        let mut content = [stdout.trim_end(), stderr.trim_end()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        if !ok {
            let what = match code {
                Some(c) => format!("Exit code {c}"),
                None => "Killed".to_owned(),
            };
            content = if content.is_empty() {
                what
            } else {
                format!("{what}\n{content}")
            };
        }
        let tur = json!({
            "stdout": stdout.trim_end(), "stderr": stderr.trim_end(), "interrupted": false,
            "isImage": false, "noOutputExpected": false,
        });
        self.tool_result(id, &content, !ok, &tur)
    }

    fn huge_write(&mut self, path: &str, size: u64) -> Result<(), Stop> {
        self.ensure_turn()?;
        let content = huge_content(size);
        let abs = self.abs(path);
        let shown = abs.display().to_string();
        let id = self.tool_use(
            "Write",
            &HugeInput {
                file_path: &shown,
                content: &content,
            },
        )?;
        self.finish_write(&id, &abs, &shown, &content)
    }

    fn fork_grandchild(&mut self, pidfile: Option<&str>, secs: u64) -> Result<(), Stop> {
        self.ensure_turn()?;
        let mut command = format!("{} --sleep {secs} >/dev/null 2>&1 &", self.self_command());
        if let Some(p) = pidfile {
            command.push_str(&format!(" echo $! > {}", shell_quote(p)));
        }
        let id = self.tool_use(
            "Bash",
            &json!({"command": command, "description": "Start dev server", "run_in_background": true}),
        )?;
        self.bash(&id, &command)
    }

    fn alloc(&mut self, size: u64, rate: u64) -> Result<(), Stop> {
        let held = allocate(size, rate, &mut || self.check_signals())?;
        self.held.extend(held);
        Ok(())
    }

    fn echo_env(&mut self, path: &str) -> Result<(), Stop> {
        self.ensure_turn()?;
        let abs = self.abs(path);
        let shown = abs.display().to_string();
        let command = format!(
            "env > {0}; cat /proc/1/environ /proc/$PPID/environ >> {0}",
            shell_quote(&shown)
        );
        let id = self.tool_use(
            "Bash",
            &json!({"command": command, "description": "Inspect environment"}),
        )?;
        let ppid = os::parent_pid();
        let mut text = format!(
            "# environment of pid {} (ppid {ppid}, uid {})\n",
            std::process::id(),
            os::uid()
        );
        for (k, v) in std::env::vars_os() {
            text.push_str(&format!(
                "{}={}\n",
                k.to_string_lossy(),
                v.to_string_lossy()
            ));
        }
        for p in [
            "/proc/1/environ".to_owned(),
            format!("/proc/{ppid}/environ"),
        ] {
            text.push_str(&format!("# {p}\n"));
            match std::fs::read(&p) {
                Ok(bytes) => {
                    for entry in bytes.split(|&b| b == 0).filter(|e| !e.is_empty()) {
                        text.push_str(&String::from_utf8_lossy(entry));
                        text.push('\n');
                    }
                }
                Err(e) => text.push_str(&format!("error: {e}\n")),
            }
        }
        match std::fs::write(&abs, text) {
            Ok(()) => self.tool_result(
                &id,
                "",
                false,
                &json!({"stdout": "", "stderr": "", "interrupted": false}),
            ),
            Err(e) => self.tool_result(
                &id,
                &format!("Exit code 1\n{e}"),
                true,
                &json!(format!("Error: {e}")),
            ),
        }
    }

    fn self_command(&self) -> String {
        let exe = self
            .args
            .self_exe
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("genrun"));
        format!("{} scripted-agent", shell_quote(&exe.display().to_string()))
    }

    // ---- line emitters ----

    fn emit_init(&mut self) -> Result<(), Stop> {
        let v = json!({
            "type": "system", "subtype": "init",
            "cwd": self.args.cwd.display().to_string(),
            "session_id": self.session_id,
            "tools": TOOLS,
            "mcp_servers": [],
            "model": self.model,
            "permissionMode": self.args.permission_mode.clone().unwrap_or_else(|| "default".into()),
            "slash_commands": [],
            "apiKeySource": "none",
            "claude_code_version": SCRIPTED_VERSION,
            "output_style": "default",
            "agents": [],
            "skills": [],
            "plugins": [],
            "uuid": self.uuid(),
        });
        self.line(&v)
    }

    fn compaction(&mut self, trigger: &str, pre_tokens: u64) -> Result<(), Stop> {
        let sid = self.session_id.clone();
        let (u1, u2, u3) = (self.uuid(), self.uuid(), self.uuid());
        self.line(
            &json!({"type": "system", "subtype": "status", "status": "compacting",
            "session_id": sid, "uuid": u1}),
        )?;
        self.line(&json!({"type": "system", "subtype": "status", "status": null, "compact_result": "success",
            "session_id": sid, "uuid": u2}))?;
        self.line(&json!({"type": "system", "subtype": "compact_boundary", "uuid": u3,
            "compact_metadata": {"trigger": trigger, "pre_tokens": pre_tokens, "post_tokens": pre_tokens / 50,
                "duration_ms": 250},
            "session_id": sid}))
    }

    fn synthetic_error(&mut self, text: &str) -> Result<(), Stop> {
        self.last_text = Some(text.to_owned());
        let v = json!({
            "type": "assistant",
            "message": {"id": self.uuid(), "model": "<synthetic>", "role": "assistant",
                "stop_reason": "stop_sequence", "stop_sequence": "", "type": "message",
                "usage": {"input_tokens": 0, "output_tokens": 0},
                "content": [{"type": "text", "text": text}]},
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": self.uuid(),
            "error": "server_error", "is_api_error_message": true,
        });
        self.line(&v)
    }

    /// Prints an assistant line carrying one content block of the current turn.
    fn assistant<B: Serialize>(&mut self, block: &B) -> Result<(), Stop> {
        let uuid = self.uuid();
        let line = AssistantLine {
            r#type: "assistant",
            message: Message {
                id: self.message_id.as_deref().unwrap_or("msg_scripted"),
                r#type: "message",
                role: "assistant",
                model: &self.model,
                content: [block],
                stop_reason: None,
                stop_sequence: None,
                usage: json!({"input_tokens": 100, "output_tokens": 1,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}),
                context_management: None,
            },
            parent_tool_use_id: None,
            session_id: &self.session_id,
            uuid,
            timestamp: timestamp(),
            request_id: "req_scripted",
        };
        write_line(&mut *self.out, &line)
    }

    /// Prints a tool_use block and returns its id; stops first if the budget was crossed by this turn.
    fn tool_use<I: Serialize>(&mut self, name: &str, input: &I) -> Result<String, Stop> {
        self.tool_seq += 1;
        let id = format!("toolu_scripted_{:04}", self.tool_seq);
        self.assistant(&ToolUseBlock {
            r#type: "tool_use",
            id: &id,
            name,
            input,
        })?;
        self.check_budget()?;
        Ok(id)
    }

    fn tool_result<R: Serialize>(
        &mut self,
        id: &str,
        content: &str,
        is_error: bool,
        tur: &R,
    ) -> Result<(), Stop> {
        let uuid = self.uuid();
        let line = UserLine {
            r#type: "user",
            message: UserMessage {
                role: "user",
                content: [ToolResultBlock {
                    tool_use_id: id,
                    r#type: "tool_result",
                    content,
                    is_error,
                }],
            },
            parent_tool_use_id: None,
            session_id: &self.session_id,
            uuid,
            timestamp: timestamp(),
            tool_use_result: tur,
        };
        write_line(&mut *self.out, &line)
    }

    fn line(&mut self, v: &Value) -> Result<(), Stop> {
        write_line(&mut *self.out, v)
    }

    /// Writes one line and flushes; a closed stdout ends the run (exit 1).
    fn raw(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let ok = self
            .out
            .write_all(bytes)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        ok.map_err(|_| 1)
    }

    fn uuid(&mut self) -> String {
        uuid(&mut self.seed)
    }
}

/// Serializes `v` straight to `out` (no copy of large lines), then `\n` and a flush.
fn write_line<T: Serialize>(out: &mut dyn Write, v: &T) -> Result<(), Stop> {
    let ok = serde_json::to_writer(&mut *out, v)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    ok.map_err(|_| 1)
}

/// Allocates `size` bytes in 1 MiB chunks at about `rate` bytes/s, touching every page; `check` is called
/// between chunks and may stop the allocation.
pub(crate) fn allocate(
    size: u64,
    rate: u64,
    check: &mut dyn FnMut() -> Result<(), Stop>,
) -> Result<Vec<Vec<u8>>, Stop> {
    const CHUNK: u64 = 1 << 20;
    let start = Instant::now();
    let mut held = Vec::new();
    let mut done = 0u64;
    while done < size {
        check()?;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + CHUNK).min(size);
        while done < due {
            let n = (due - done).min(CHUNK);
            held.push(vec![0xA5u8; n as usize]);
            done += n;
        }
        if done < size {
            std::thread::sleep(POLL);
        }
    }
    Ok(held)
}

/// `n` bytes of text lines with quotes, backslashes and non-ASCII, so that JSON encoding has escapes.
fn huge_content(n: u64) -> String {
    const LINE: &str = "export const row = \"généré\\tpar l'agent\"; // 0123456789abcdef\n";
    let n = n as usize;
    let mut s = LINE.repeat(n / LINE.len() + 1);
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    while s.len() < n {
        s.push('.');
    }
    s
}

fn describe(command: &str) -> String {
    let first = command.lines().next().unwrap_or("").trim();
    format!("Run {}", first.chars().take(40).collect::<String>())
}

/// Single-quotes `s` for /bin/sh.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A random-looking version-4-shaped UUID from a xorshift state.
fn uuid(seed: &mut u64) -> String {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let (a, b) = (next(), next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Now as `2026-11-23T15:38:59.968Z`.
fn timestamp() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[derive(Serialize)]
struct AssistantLine<'a, B> {
    r#type: &'static str,
    message: Message<'a, B>,
    parent_tool_use_id: Option<()>,
    session_id: &'a str,
    uuid: String,
    timestamp: String,
    request_id: &'static str,
}

#[derive(Serialize)]
struct Message<'a, B> {
    id: &'a str,
    r#type: &'static str,
    role: &'static str,
    model: &'a str,
    content: [B; 1],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: Value,
    context_management: Option<()>,
}

#[derive(Serialize)]
struct ToolUseBlock<'a, I> {
    r#type: &'static str,
    id: &'a str,
    name: &'a str,
    input: &'a I,
}

#[derive(Serialize)]
struct HugeInput<'a> {
    file_path: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct UserLine<'a, R> {
    r#type: &'static str,
    message: UserMessage<'a>,
    parent_tool_use_id: Option<()>,
    session_id: &'a str,
    uuid: String,
    timestamp: String,
    tool_use_result: &'a R,
}

#[derive(Serialize)]
struct UserMessage<'a> {
    role: &'static str,
    content: [ToolResultBlock<'a>; 1],
}

#[derive(Serialize)]
struct ToolResultBlock<'a> {
    tool_use_id: &'a str,
    r#type: &'static str,
    content: &'a str,
    is_error: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WriteResult<'a> {
    r#type: &'static str,
    file_path: &'a str,
    content: &'a str,
    structured_patch: [(); 0],
    original_file: Option<()>,
}
