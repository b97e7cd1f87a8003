//! The one loop that owns the agent: its stdout lines, its exit, genrun's signals, the limits' timers and
//! the memory ticks all arrive in a single `select!`, so every decision about the child is made in one place
//! and in one order.
//!
//! Stopping is a sequence, not an act: SIGINT to the agent (the Claude Code CLI then writes its result line),
//! a grace, SIGTERM to its process group, a grace, SIGKILL to the group. The loop keeps reading the stream
//! while it escalates, so a result line written in response to SIGINT is not lost. After the agent has
//! exited, stdout is drained for a short while (a leaked grandchild can hold the pipe open forever) and
//! every remaining process of the run is swept (see [`crate::run`]).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use genrun_agent::reader::{LineLimits, LineReader};
use genrun_agent::state::StreamState;
use genrun_agent::stream::{self, ResultVerdict, StreamEvent};
use genrun_progress::{EventKind, Progress};
use genrun_sandbox::memory::{terminate_process, Guard, GuardAction, ProfileRecorder, Sampler};
use genrun_sandbox::{signal_group, signal_pid, ExitInfo, ShutdownSignals, Signal, Spawned};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::exit::Outcome;
use crate::result::{AgentFacts, StopFacts};

/// Why genrun stopped the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// genrun received this signal.
    Cancelled(Signal),
    WallTimeout,
    IdleTimeout,
    /// The agent printed its result but did not exit.
    PostResult,
    MaxTurns,
    Budget,
    Memory(String),
}

impl StopReason {
    pub fn describe(&self) -> String {
        match self {
            StopReason::Cancelled(s) => format!("cancelled by {s}"),
            StopReason::WallTimeout => "wall-clock timeout".into(),
            StopReason::IdleTimeout => "idle timeout (no output)".into(),
            StopReason::PostResult => "agent lingered after its result line".into(),
            StopReason::MaxTurns => "turn limit exceeded".into(),
            StopReason::Budget => "cost budget exceeded".into(),
            StopReason::Memory(why) => format!("memory guard: {why}"),
        }
    }
}

/// Limits and timings the loop enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_turns: u32,
    pub budget_usd: Option<f64>,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub post_result_grace: Duration,
    pub heartbeat: Duration,
    pub memory_interval: Duration,
    /// Grace after SIGINT, and after SIGTERM, in the stop sequence.
    pub int_grace: Duration,
    pub term_grace: Duration,
    /// How long stdout may stay open after the agent exited.
    pub drain: Duration,
    /// Tool targets inside the workspace are shown relative to it.
    pub workspace: std::path::PathBuf,
}

/// Memory watch state lent to the loop.
pub struct MemoryWatch {
    pub sampler: Sampler,
    pub guard: Guard,
    pub recorder: ProfileRecorder,
    pub limit_bytes: u64,
    /// The latest sample's share of the limit, for heartbeats.
    pub last_percent: Option<f64>,
}

/// What the loop hands back.
pub struct Supervised {
    pub facts: AgentFacts,
    pub outcome: Outcome,
    /// A second signal arrived: skip straight to writing result.json.
    pub hurry: bool,
    /// When the first cancelling signal arrived (the stop-grace clock starts there).
    pub cancelled_at: Option<Instant>,
    pub exit: Option<ExitInfo>,
}

/// Runs the loop until the agent has exited and its output is drained.
pub async fn supervise(
    spawned: Spawned,
    transcript: Box<dyn std::io::Write + Send>,
    limits: &Limits,
    progress: &Progress,
    signals: &mut ShutdownSignals,
    memory: &mut MemoryWatch,
    facts: AgentFacts,
) -> Supervised {
    let Spawned {
        pid,
        stdout,
        stderr,
        mut exit,
    } = spawned;
    let started = Instant::now();
    let mut facts = facts;
    facts.pid = Some(pid);

    let (line_tx, mut lines) = mpsc::channel(256);
    let reader = tokio::spawn(read_lines(stdout, transcript, line_tx));
    let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
    let stderr_task = tokio::spawn(tail(stderr, stderr_tail.clone(), 64 * 1024));

    let mut state = StreamState::default();
    let mut announced = false;
    let mut exited: Option<ExitInfo> = None;
    let mut stdout_open = true;
    let mut drain_deadline = far_future();
    let wall_deadline = started + limits.timeout;
    let mut idle_deadline = started + limits.idle_timeout;
    let mut post_result_deadline = far_future();
    let mut stop: Option<StopReason> = None;
    let mut stop_step = 0u8;
    let mut stop_next = far_future();
    let mut signals_sent: Vec<String> = Vec::new();
    let mut we_killed = false;
    let mut hurry = false;
    let mut cancelled_at = None;
    let mut heartbeat = tokio::time::interval_at(started + limits.heartbeat, limits.heartbeat);
    let mut mem_tick = tokio::time::interval(limits.memory_interval);
    mem_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    // Begins (or, for a later reason, keeps) the stop sequence.
    macro_rules! begin_stop {
        ($reason:expr) => {{
            let reason: StopReason = $reason;
            if stop.is_none() && exited.is_none() {
                progress.emit(EventKind::Stopping {
                    reason: reason.describe(),
                    signal: Some("SIGINT".into()),
                });
                let _ = signal_pid(pid, Signal::Int);
                signals_sent.push("SIGINT".into());
                stop_step = 1;
                stop_next = Instant::now() + limits.int_grace;
            }
            if stop.is_none() {
                stop = Some(reason);
            }
        }};
    }

    loop {
        if exited.is_some() && (!stdout_open || Instant::now() >= drain_deadline) {
            break;
        }
        tokio::select! {
            line = lines.recv(), if stdout_open => match line {
                Some(line) => {
                    idle_deadline = Instant::now() + limits.idle_timeout;
                    facts.lines += 1;
                    let events = match stream::parse_line(&line.json) {
                        Ok(events) => events,
                        Err(e) => {
                            facts.non_json_lines += 1;
                            tracing::warn!(bytes = line.raw_len, error = %e, "skipped a line the agent printed that is not stream-json");
                            continue;
                        }
                    };
                    for ev in &events {
                        if let Some(turn) = state.observe(ev) {
                            if !announced {
                                announce(progress, pid, &facts, &state);
                                announced = true;
                            }
                            progress.emit(EventKind::Turn { n: turn, max: limits.max_turns });
                            if turn > u64::from(limits.max_turns) {
                                begin_stop!(StopReason::MaxTurns);
                            }
                        }
                        match ev {
                            StreamEvent::Init(_) => {
                                if !announced {
                                    announce(progress, pid, &facts, &state);
                                    announced = true;
                                }
                            }
                            StreamEvent::ToolUse(t) => progress.emit(EventKind::Tool { name: t.name.clone(), target: t.target.as_deref().map(|x| relative_to(x, &limits.workspace)) }),
                            // Whole (the parser caps it at 2 KiB): emit() redacts before it shortens anything.
                            StreamEvent::AssistantText(t) => progress.emit(EventKind::Text { text: t.text.clone() }),
                            StreamEvent::ApiRetry(r) => progress.emit(EventKind::ApiRetry {
                                attempt: r.attempt,
                                max_retries: r.max_retries,
                                error_status: r.error_status,
                                error: r.error.clone(),
                            }),
                            StreamEvent::Compaction(c) => progress.emit(EventKind::Compaction { trigger: c.trigger.clone(), pre_tokens: c.pre_tokens }),
                            StreamEvent::Result(r) => {
                                post_result_deadline = Instant::now() + limits.post_result_grace;
                                if let (Some(budget), Some(cost)) = (limits.budget_usd, r.total_cost_usd) {
                                    if cost > budget && r.verdict() == ResultVerdict::Success {
                                        begin_stop!(StopReason::Budget);
                                    }
                                }
                            }
                            StreamEvent::Thinking | StreamEvent::ToolResult(_) | StreamEvent::Unknown(_) => {}
                        }
                    }
                }
                None => stdout_open = false,
            },
            status = &mut exit, if exited.is_none() => {
                exited = Some(status);
                drain_deadline = Instant::now() + limits.drain;
            }
            sig = signals.recv() => {
                if cancelled_at.is_none() {
                    cancelled_at = Some(Instant::now());
                    begin_stop!(StopReason::Cancelled(sig));
                    if !matches!(stop, Some(StopReason::Cancelled(_))) {
                        // A limit was already stopping the agent; the signal still decides the outcome.
                        stop = Some(StopReason::Cancelled(sig));
                    }
                } else {
                    hurry = true;
                    progress.emit(EventKind::Stopping { reason: format!("second {sig}: stopping at once"), signal: Some("SIGKILL".into()) });
                    if exited.is_none() {
                        let _ = signal_group(pid, Signal::Kill);
                        signals_sent.push("SIGKILL".into());
                        we_killed = true;
                    }
                    drain_deadline = Instant::now();
                }
            }
            _ = sleep_until(wall_deadline), if stop.is_none() && exited.is_none() => begin_stop!(StopReason::WallTimeout),
            _ = sleep_until(idle_deadline), if stop.is_none() && exited.is_none() => begin_stop!(StopReason::IdleTimeout),
            _ = sleep_until(post_result_deadline), if stop.is_none() && exited.is_none() => begin_stop!(StopReason::PostResult),
            _ = sleep_until(stop_next), if stop.is_some() && exited.is_none() => {
                let (sig, grace) = match stop_step {
                    1 => (Signal::Term, limits.term_grace),
                    _ => (Signal::Kill, Duration::from_secs(3600)),
                };
                let _ = signal_group(pid, sig);
                if sig == Signal::Kill {
                    we_killed = true;
                } else {
                    // The agent's own pid may have left its group; make sure it gets the signal too.
                    let _ = signal_pid(pid, sig);
                }
                signals_sent.push(sig.to_string());
                stop_step += 1;
                stop_next = Instant::now() + grace;
            }
            _ = heartbeat.tick() => {
                progress.emit(EventKind::Heartbeat {
                    elapsed_s: started.elapsed().as_secs(),
                    turns: state.turns,
                    max_turns: limits.max_turns,
                    memory_percent: memory.last_percent,
                    cost_usd: state.cost_usd,
                });
            }
            _ = mem_tick.tick() => {
                let sample = memory.sampler.sample(Some(pid));
                memory.recorder.record(&sample);
                progress.memory_sample(sample.used_bytes, memory.limit_bytes);
                memory.last_percent = Some(percent(sample.used_bytes, memory.limit_bytes));
                let action = memory.guard.decide(&sample, pid);
                match &action {
                    GuardAction::None => {}
                    GuardAction::Warn { used, limit, percent } => {
                        progress.emit(EventKind::MemoryWarning { used_bytes: *used, limit_bytes: *limit, percent: *percent });
                    }
                    GuardAction::KillTool { pid: tool, name, rss_bytes } => {
                        memory.recorder.record_action(&action);
                        progress.emit(EventKind::MemoryAction {
                            action: "killed_tool_process".into(),
                            pid: Some(*tool),
                            process: Some(name.clone()),
                            rss_bytes: Some(*rss_bytes),
                            used_bytes: sample.used_bytes,
                            limit_bytes: memory.limit_bytes,
                        });
                        tokio::spawn(terminate_process(*tool, Duration::from_secs(2)));
                    }
                    GuardAction::StopAgent { reason } => {
                        memory.recorder.record_action(&action);
                        progress.emit(EventKind::MemoryAction {
                            action: "stopping_agent".into(),
                            pid: Some(pid),
                            process: None,
                            rss_bytes: None,
                            used_bytes: sample.used_bytes,
                            limit_bytes: memory.limit_bytes,
                        });
                        begin_stop!(StopReason::Memory(reason.clone()));
                    }
                }
            }
        }
    }

    // A leaked grandchild may hold stdout or stderr open: stop reading (the sweep ends it) and wait for the
    // reader to be dropped, which finishes the compressed transcript.
    reader.abort();
    let _ = reader.await;
    stderr_task.abort();
    let _ = stderr_task.await;
    facts.stderr_tail = match stderr_tail.lock() {
        Ok(mut keep) => String::from_utf8_lossy(keep.make_contiguous()).into_owned(),
        Err(_) => String::new(),
    };
    fill_stream_facts(&mut facts, &state);
    if let Some(ex) = &exited {
        match ex {
            ExitInfo::Code(c) => {
                facts.exit = Some(format!("exited {c}"));
                facts.exit_code = Some(*c);
            }
            ExitInfo::Signaled { .. } => {
                let name = ex.signal_name().unwrap_or_else(|| "a signal".into());
                facts.exit = Some(format!("killed by {name}"));
                facts.exit_signal = Some(name);
            }
        }
    }
    if let Some(reason) = &stop {
        facts.stop = Some(StopFacts {
            reason: reason.describe(),
            signals_sent: signals_sent.clone(),
        });
    }
    let outcome = decide(stop.as_ref(), &state, exited.as_ref(), we_killed);
    progress.emit(EventKind::AgentFinished {
        subtype: facts.subtype.clone(),
        is_error: facts.is_error,
        turns: facts.turns,
        cost_usd: facts.cost_usd,
        duration_ms: started.elapsed().as_millis() as u64,
        exit: facts.exit.clone().unwrap_or_else(|| "unknown".into()),
    });
    Supervised {
        facts,
        outcome,
        hurry,
        cancelled_at,
        exit: exited,
    }
}

/// The agent's outcome from what genrun did and what the agent said, in that order of authority:
/// a stop genrun decided wins (except after a result line, whose verdict stands); then the result line;
/// then the exit status and signal.
pub fn decide(
    stop: Option<&StopReason>,
    state: &StreamState,
    exit: Option<&ExitInfo>,
    we_killed: bool,
) -> Outcome {
    match stop {
        Some(StopReason::Cancelled(_)) => return Outcome::Cancelled,
        Some(StopReason::WallTimeout | StopReason::IdleTimeout) => return Outcome::Timeout,
        Some(StopReason::Memory(_)) => return Outcome::Memory,
        Some(StopReason::MaxTurns) => return Outcome::MaxTurns,
        Some(StopReason::Budget) => return Outcome::Budget,
        Some(StopReason::PostResult) | None => {}
    }
    if let Some(result) = &state.result {
        return match result.verdict() {
            ResultVerdict::Success => Outcome::Success,
            ResultVerdict::MaxTurns => Outcome::MaxTurns,
            ResultVerdict::Budget => Outcome::Budget,
            ResultVerdict::ApiError | ResultVerdict::ExecutionError | ResultVerdict::OtherError => {
                Outcome::AgentFailed
            }
        };
    }
    match exit {
        Some(ExitInfo::Signaled { .. }) if !we_killed => Outcome::AgentKilled,
        _ => Outcome::AgentFailed,
    }
}

fn announce(progress: &Progress, pid: u32, facts: &AgentFacts, state: &StreamState) {
    let init = state.init.as_ref();
    progress.emit(EventKind::AgentStarted {
        pid,
        program: facts.program.clone(),
        model: init
            .and_then(|i| i.model.clone())
            .or_else(|| facts.model.clone()),
        cli_version: init.and_then(|i| i.claude_code_version.clone()),
        session_id: init.and_then(|i| i.session_id.clone()),
    });
}

fn fill_stream_facts(facts: &mut AgentFacts, state: &StreamState) {
    facts.turns = state.turns;
    facts.tool_counts = state.tool_counts.clone();
    if let Some(init) = &state.init {
        facts.session_id = init.session_id.clone();
        facts.model = init.model.clone().or(facts.model.take());
        facts.cli_version = init.claude_code_version.clone();
    }
    if let Some(r) = &state.result {
        facts.result_line_seen = true;
        facts.subtype = Some(r.subtype.clone());
        facts.is_error = Some(r.is_error);
        facts.terminal_reason = r.terminal_reason.clone();
        facts.final_text = r.result.clone();
        facts.permission_denials = r.permission_denials;
        facts.errors = r.errors.clone();
        facts.cost_usd = r.total_cost_usd;
        if let Some(n) = r.num_turns {
            facts.turns = facts.turns.max(n);
        }
        if r.session_id.is_some() {
            facts.session_id = r.session_id.clone();
        }
    }
}

/// Reads stdout line by line (bounded), teeing every raw byte into the transcript.
async fn read_lines(
    stdout: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    transcript: Box<dyn std::io::Write + Send>,
    tx: mpsc::Sender<genrun_agent::reader::Line>,
) {
    let mut reader = LineReader::new(stdout, LineLimits::default(), transcript);
    loop {
        match reader.next_line().await {
            Ok(Some(line)) => {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "reading the agent's stdout failed");
                break;
            }
        }
    }
    // Dropping the reader drops the transcript writer, which finishes the compressed stream.
    let mut tee = reader.into_tee();
    let _ = tee.flush();
}

/// Keeps the last `cap` bytes of a stream in `keep` (shared, so it survives the task being aborted).
async fn tail(
    mut r: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    keep: Arc<Mutex<VecDeque<u8>>>,
    cap: usize,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let Ok(mut keep) = keep.lock() else { break };
                keep.extend(&buf[..n]);
                let excess = keep.len().saturating_sub(cap);
                keep.drain(..excess);
            }
        }
    }
}

fn percent(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        0.0
    } else {
        (used as f64 / limit as f64 * 1000.0).round() / 10.0
    }
}

/// `target` relative to the workspace when it is a path inside it (the CLI reports absolute paths).
fn relative_to(target: &str, workspace: &std::path::Path) -> String {
    match std::path::Path::new(target).strip_prefix(workspace) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => target.to_string(),
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_targets_inside_the_workspace_are_relative() {
        let ws = std::path::Path::new("/workspace/app");
        assert_eq!(relative_to("/workspace/app/src/App.tsx", ws), "src/App.tsx");
        assert_eq!(relative_to("/etc/passwd", ws), "/etc/passwd");
        assert_eq!(relative_to("npm install", ws), "npm install");
        assert_eq!(relative_to("/workspace/app", ws), "/workspace/app");
    }

    #[test]
    fn outcome_rules() {
        use genrun_agent::stream::ResultLine;
        let mut state = StreamState::default();
        assert_eq!(
            decide(None, &state, Some(&ExitInfo::Code(0)), false),
            Outcome::AgentFailed
        );
        assert_eq!(
            decide(
                None,
                &state,
                Some(&ExitInfo::Signaled {
                    signal: 9,
                    core_dumped: false
                }),
                false
            ),
            Outcome::AgentKilled
        );
        assert_eq!(
            decide(
                None,
                &state,
                Some(&ExitInfo::Signaled {
                    signal: 9,
                    core_dumped: false
                }),
                true
            ),
            Outcome::AgentFailed
        );
        state.result = Some(ResultLine {
            subtype: "success".into(),
            is_error: false,
            num_turns: Some(2),
            duration_ms: None,
            duration_api_ms: None,
            total_cost_usd: Some(0.1),
            terminal_reason: None,
            result: None,
            session_id: None,
            permission_denials: 0,
            errors: vec![],
            api_error_status: None,
        });
        assert_eq!(
            decide(None, &state, Some(&ExitInfo::Code(0)), false),
            Outcome::Success
        );
        // A stop genrun decided wins, except after a result line, whose verdict stands.
        assert_eq!(
            decide(Some(&StopReason::PostResult), &state, None, true),
            Outcome::Success
        );
        assert_eq!(
            decide(Some(&StopReason::WallTimeout), &state, None, true),
            Outcome::Timeout
        );
        assert_eq!(
            decide(
                Some(&StopReason::Cancelled(Signal::Term)),
                &state,
                None,
                true
            ),
            Outcome::Cancelled
        );
        state.result.as_mut().unwrap().is_error = true;
        assert_eq!(
            decide(None, &state, Some(&ExitInfo::Code(1)), false),
            Outcome::AgentFailed
        );
    }
}
