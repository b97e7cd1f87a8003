//! The terminal view: a live status line under a scrolling log, for people watching a run (`genrun demo`,
//! `--log-format pretty`).
//!
//! On a terminal the bottom line is redrawn in place by indicatif:
//!
//! ```text
//!   ▸ Write  src/App.tsx
//!   │ I'll add the API route next.
//!   ▸ Bash   npm run build
//! ⠹ 00:01:12 │ turn 7/50 │ $0.42 │ mem ███░░░░░░░ 31% of 4.0 GiB │ Bash npm run build
//! ```
//!
//! and the run ends with one summary line (`✔ success (exit 0) in 3m12s · 42 turns · $1.23`). When stdout
//! is not a terminal the same log lines are printed without the status line, plus heartbeats for liveness.

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::event::{first_line, human_bytes, human_duration_s};
use crate::render::Renderer;
use crate::{Event, EventKind};

/// Where the view goes.
enum Output {
    /// A terminal: status line plus log lines printed above it.
    Live(ProgressBar),
    /// Anything else: log lines only.
    Plain(std::io::BufWriter<Box<dyn Write + Send>>),
}

/// What the status line shows.
#[derive(Default)]
struct Status {
    turn: u64,
    max_turns: u32,
    cost_usd: Option<f64>,
    memory: Option<(u64, u64)>,
    memory_percent: Option<f64>,
    activity: String,
}

pub(crate) struct PrettyRenderer {
    out: Output,
    title: String,
    status: Status,
    done: bool,
}

impl PrettyRenderer {
    /// A live view on stdout (the caller checked that stdout is a terminal).
    pub(crate) fn live(title: String) -> PrettyRenderer {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template("{spinner:.cyan} {elapsed_precise} │ {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "·"]);
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        let out = if bar.is_hidden() {
            Output::Plain(std::io::BufWriter::new(Box::new(std::io::stdout())))
        } else {
            Output::Live(bar)
        };
        let mut r = PrettyRenderer {
            out,
            title,
            status: Status::default(),
            done: false,
        };
        r.redraw_status();
        r
    }

    /// Log lines only, to `out`.
    pub(crate) fn plain(title: String, out: Box<dyn Write + Send>) -> PrettyRenderer {
        PrettyRenderer {
            out: Output::Plain(std::io::BufWriter::new(out)),
            title,
            status: Status::default(),
            done: false,
        }
    }

    fn line(&mut self, text: String) {
        match &mut self.out {
            Output::Live(bar) => {
                let width = console::Term::stdout().size().1 as usize;
                let text = if width > 8 {
                    console::truncate_str(&text, width - 1, "…")
                } else {
                    Cow::Borrowed(text.as_str())
                };
                bar.println(text);
            }
            Output::Plain(w) => {
                let _ = writeln!(w, "{text}");
            }
        }
    }

    fn redraw_status(&mut self) {
        if let Output::Live(bar) = &self.out {
            bar.set_message(status_text(&self.status));
        }
    }
}

impl Renderer for PrettyRenderer {
    fn event(&mut self, event: &Event, _line: &str) {
        if self.done {
            return;
        }
        let plain = matches!(self.out, Output::Plain(_));
        let msg = &event.msg;
        match &event.kind {
            EventKind::Started {
                max_turns,
                workspace,
                output,
                ..
            } => {
                self.status.max_turns = *max_turns;
                let title = format!("{} {}", style("▶").cyan().bold(), style(&self.title).bold());
                self.line(format!(
                    "{title} {}",
                    style(format!("· request {}", event.request_id)).dim()
                ));
                self.line(format!(
                    "  {}",
                    style(format!("workspace {workspace} → {output}")).dim()
                ));
            }
            EventKind::Preflight { ok: true, .. } => {
                self.line(format!("  {} {msg}", style("✓").green()))
            }
            EventKind::Preflight { ok: false, .. } => {
                self.line(format!("  {} {msg}", style("✗").red()))
            }
            EventKind::AgentStarted { .. } | EventKind::AgentFinished { .. } => {
                self.line(format!("  {} {msg}", style("●").cyan()))
            }
            EventKind::Turn { n, max } => {
                self.status.turn = *n;
                self.status.max_turns = *max;
            }
            EventKind::Tool { name, target } => {
                let target = target
                    .as_deref()
                    .map(|t| first_line(t, 200))
                    .unwrap_or_default();
                self.status.activity = format!("{name} {target}");
                self.line(format!(
                    "  {} {} {target}",
                    style("▸").cyan(),
                    style(format!("{name:<6}")).cyan().bold()
                ));
            }
            EventKind::Text { text } => {
                let text = first_line(text, 200);
                self.line(format!("  {} {}", style("│").dim(), style(text).dim()));
            }
            EventKind::ApiRetry { .. } | EventKind::Compaction { .. } => {
                self.line(format!("  {} {msg}", style("↻").yellow()))
            }
            EventKind::MemoryWarning {
                used_bytes,
                limit_bytes,
                percent,
            } => {
                self.status.memory = Some((*used_bytes, *limit_bytes));
                self.status.memory_percent = Some(*percent);
                self.line(format!(
                    "  {} {}",
                    style("!").yellow().bold(),
                    style(msg).yellow()
                ));
            }
            EventKind::MemoryAction {
                used_bytes,
                limit_bytes,
                ..
            } => {
                self.status.memory = Some((*used_bytes, *limit_bytes));
                self.line(format!(
                    "  {} {}",
                    style("!").red().bold(),
                    style(msg).red()
                ));
            }
            EventKind::Heartbeat {
                turns,
                max_turns,
                memory_percent,
                cost_usd,
                ..
            } => {
                self.status.turn = self.status.turn.max(*turns);
                self.status.max_turns = *max_turns;
                if memory_percent.is_some() {
                    self.status.memory_percent = *memory_percent;
                }
                if cost_usd.is_some() {
                    self.status.cost_usd = *cost_usd;
                }
                if plain {
                    self.line(format!("  {} {}", style("…").dim(), style(msg).dim()));
                }
            }
            EventKind::Stopping { .. } => {
                self.line(format!("  {} {}", style("■").yellow(), style(msg).yellow()))
            }
            EventKind::Packaging { .. }
            | EventKind::Packaged { .. }
            | EventKind::Storing { .. }
            | EventKind::Stored { .. } => self.line(format!("  {} {msg}", style("◆").blue())),
            EventKind::Warning { .. } => self.line(format!(
                "  {} {}",
                style("!").yellow().bold(),
                style(msg).yellow()
            )),
            EventKind::Result {
                outcome,
                exit_code,
                duration_ms,
            } => {
                let mut summary = format!(
                    "{outcome} (exit {exit_code}) in {} · {} turns",
                    human_duration_s(duration_ms / 1000),
                    self.status.turn
                );
                if let Some(c) = self.status.cost_usd {
                    summary.push_str(&format!(" · ${c:.2}"));
                }
                let line = if *exit_code == 0 {
                    format!("{} {}", style("✔").green().bold(), style(summary).green())
                } else {
                    format!("{} {}", style("✘").red().bold(), style(summary).red())
                };
                self.finish();
                self.line(line);
                self.done = true;
                return;
            }
        }
        if let EventKind::AgentFinished {
            cost_usd: Some(c),
            turns,
            ..
        } = &event.kind
        {
            self.status.cost_usd = Some(*c);
            self.status.turn = self.status.turn.max(*turns);
        }
        self.redraw_status();
    }

    fn memory(&mut self, used: u64, limit: u64) {
        self.status.memory = Some((used, limit));
        self.status.memory_percent = None;
        self.redraw_status();
    }

    fn flush(&mut self) {
        if let Output::Plain(w) = &mut self.out {
            let _ = w.flush();
        }
    }

    fn finish(&mut self) {
        match &mut self.out {
            Output::Live(bar) => {
                if !bar.is_finished() {
                    bar.finish_and_clear();
                }
                // Log lines after the bar is gone go straight to the terminal.
                self.out = Output::Plain(std::io::BufWriter::new(Box::new(std::io::stdout())));
            }
            Output::Plain(w) => {
                let _ = w.flush();
            }
        }
    }
}

impl Drop for PrettyRenderer {
    fn drop(&mut self) {
        if let Output::Plain(w) = &mut self.out {
            let _ = w.flush();
        }
    }
}

/// `turn 7/50 │ $0.42 │ mem ███░░░░░░░ 31% of 4.0 GiB │ Bash npm run build`
fn status_text(s: &Status) -> String {
    let mut parts = Vec::new();
    if s.max_turns > 0 {
        parts.push(format!("turn {}/{}", s.turn, s.max_turns));
    } else {
        parts.push("starting".to_string());
    }
    if let Some(c) = s.cost_usd {
        parts.push(format!("${c:.2}"));
    }
    let mem = match (s.memory, s.memory_percent) {
        (Some((used, limit)), _) if limit > 0 => Some((
            used as f64 * 100.0 / limit as f64,
            format!(" of {}", human_bytes(limit)),
        )),
        (_, Some(p)) => Some((p, String::new())),
        _ => None,
    };
    if let Some((pct, of)) = mem {
        let filled = ((pct / 10.0).round().clamp(0.0, 10.0)) as usize;
        let gauge = format!("{}{}", "█".repeat(filled), "░".repeat(10 - filled));
        let gauge = if pct >= 90.0 {
            style(gauge).red().to_string()
        } else if pct >= 75.0 {
            style(gauge).yellow().to_string()
        } else {
            style(gauge).green().to_string()
        };
        parts.push(format!("mem {gauge} {pct:.0}%{of}"));
    }
    if !s.activity.is_empty() {
        parts.push(style(s.activity.clone()).dim().to_string());
    }
    parts.join(" │ ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_shows_turn_cost_and_memory() {
        console::set_colors_enabled(false);
        let s = Status {
            turn: 7,
            max_turns: 50,
            cost_usd: Some(0.4213),
            memory: Some((1 << 30, 4 << 30)),
            memory_percent: None,
            activity: "Bash npm run build".into(),
        };
        assert_eq!(
            status_text(&s),
            "turn 7/50 │ $0.42 │ mem ███░░░░░░░ 25% of 4.0 GiB │ Bash npm run build"
        );
        assert_eq!(status_text(&Status::default()), "starting");
    }
}
