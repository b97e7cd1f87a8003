//! Deciding what to do about memory, before the kernel's OOM killer decides for us.
//!
//! Pure: samples in, actions out; the supervisor carries the actions out. The policy, in order:
//! 1. Below the warning level nothing happens; the warning re-arms once usage falls
//!    [`REARM_GAP`] of the limit below it (so usage hovering at the level does not warn every sample).
//! 2. At or above the warning level: one `Warn` per upward crossing.
//! 3. At or above the action level:
//!    - while a tool kill is still in progress (its process is still among the sample's processes) wait,
//!      unless it has been running for longer than `kill_wait`: then stop the agent;
//!    - the agent's tree holds no process: stop the agent (nothing smaller to sacrifice);
//!    - the agent itself is the largest process: stop the agent;
//!    - `max_tool_kills` tool kills have already been spent in this run: stop the agent;
//!    - otherwise kill the largest process (a tool command: a build, an install); the agent sees a failed
//!      tool call and can carry on.
//! 4. Once the agent is stopped the guard has nothing more to say.

use std::time::Duration;

use super::sampler::Sample;

/// Fraction of the limit below the warning level under which the warning re-arms.
pub const REARM_GAP: f64 = 0.02;

/// Levels as fractions of the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// `--memory-warn` (default 0.85).
    pub warn_ratio: f64,
    /// `--memory-act` (default 0.93).
    pub act_ratio: f64,
    /// Tool kills allowed per run before the agent itself is stopped (default 2).
    pub max_tool_kills: u32,
    /// How long a killed tool may take to disappear before the agent is stopped instead (default 15 s; it
    /// should exceed the grace period given to [`super::terminate_process`]).
    pub kill_wait: Duration,
}

impl Default for GuardConfig {
    fn default() -> GuardConfig {
        GuardConfig {
            warn_ratio: 0.85,
            act_ratio: 0.93,
            max_tool_kills: 2,
            kill_wait: Duration::from_secs(15),
        }
    }
}

/// What the supervisor should do after a sample.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardAction {
    None,
    /// Usage crossed the warning level: emit a progress event.
    Warn {
        used: u64,
        limit: u64,
        percent: f64,
    },
    /// Terminate this tool process (SIGTERM, SIGKILL after a grace period).
    KillTool {
        pid: u32,
        name: String,
        rss_bytes: u64,
    },
    /// Stop the agent (the sandbox stop sequence), salvage, exit 83.
    StopAgent {
        reason: String,
    },
}

/// The guard's state across samples.
#[derive(Debug, Clone)]
pub struct Guard {
    cfg: GuardConfig,
    limit: u64,
    warned: bool,
    tool_kills: u32,
    /// Tool kills in progress: pid and the sample time they were decided at.
    pending: Vec<(u32, Duration)>,
    stopped: bool,
}

impl Guard {
    pub fn new(cfg: GuardConfig, limit: u64) -> Guard {
        Guard {
            cfg,
            limit,
            warned: false,
            tool_kills: 0,
            pending: Vec::new(),
            stopped: false,
        }
    }

    /// Tool kills decided so far.
    pub fn tool_kills(&self) -> u32 {
        self.tool_kills
    }

    pub fn decide(&mut self, s: &Sample, agent_pid: u32) -> GuardAction {
        if self.stopped {
            return GuardAction::None;
        }
        let limit = self.limit as f64;
        let used = s.used_bytes as f64;
        let percent = used / limit * 100.0;
        // A killed tool that left the sample is gone (or no longer matters); its pid may be reused.
        self.pending
            .retain(|(pid, _)| s.processes.iter().any(|p| p.pid == *pid));

        if used < limit * self.cfg.warn_ratio {
            if used < limit * (self.cfg.warn_ratio - REARM_GAP) {
                self.warned = false;
            }
            return GuardAction::None;
        }
        if used < limit * self.cfg.act_ratio {
            if self.warned {
                return GuardAction::None;
            }
            self.warned = true;
            return GuardAction::Warn {
                used: s.used_bytes,
                limit: self.limit,
                percent,
            };
        }

        self.warned = true;
        if let Some(&(pid, since)) = self.pending.first() {
            if s.elapsed.saturating_sub(since) < self.cfg.kill_wait {
                return GuardAction::None;
            }
            return self.stop(format!(
                "memory at {percent:.0}% of the limit and tool process {pid} still alive {}s after it was \
                 terminated",
                self.cfg.kill_wait.as_secs()
            ));
        }
        let largest = s
            .processes
            .iter()
            .filter(|p| !p.is_supervisor)
            .max_by(|a, b| a.rss_bytes.cmp(&b.rss_bytes).then(b.pid.cmp(&a.pid)));
        let Some(largest) = largest else {
            return self.stop(format!(
                "memory at {percent:.0}% of the limit and no tool process to terminate"
            ));
        };
        if largest.pid == agent_pid {
            return self.stop(format!(
                "memory at {percent:.0}% of the limit and the agent itself is the largest process ({} MiB)",
                largest.rss_bytes >> 20
            ));
        }
        if self.tool_kills >= self.cfg.max_tool_kills {
            return self.stop(format!(
                "memory at {percent:.0}% of the limit after {} tool processes were terminated",
                self.tool_kills
            ));
        }
        self.tool_kills += 1;
        self.pending.push((largest.pid, s.elapsed));
        GuardAction::KillTool {
            pid: largest.pid,
            name: largest.name.clone(),
            rss_bytes: largest.rss_bytes,
        }
    }

    fn stop(&mut self, reason: String) -> GuardAction {
        self.stopped = true;
        GuardAction::StopAgent { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ProcMem;

    const LIMIT: u64 = 1000 << 20;
    const AGENT: u32 = 100;
    const GENRUN: u32 = 1;

    fn proc(pid: u32, mib: u64) -> ProcMem {
        ProcMem {
            pid,
            name: format!("p{pid}"),
            rss_bytes: mib << 20,
            is_agent: pid == AGENT,
            is_supervisor: pid == GENRUN,
        }
    }

    /// A sample at `secs` with usage at `permille` of the limit and these processes (pid, MiB).
    fn sample(secs: u64, permille: u64, procs: &[(u32, u64)]) -> Sample {
        let mut processes: Vec<ProcMem> = procs.iter().map(|&(p, m)| proc(p, m)).collect();
        processes.sort_by_key(|p| std::cmp::Reverse(p.rss_bytes));
        Sample {
            elapsed: Duration::from_secs(secs),
            used_bytes: LIMIT / 1000 * permille,
            cgroup_oom_kills: None,
            processes,
        }
    }

    fn guard() -> Guard {
        Guard::new(GuardConfig::default(), LIMIT)
    }

    fn is_stop(a: &GuardAction) -> bool {
        matches!(a, GuardAction::StopAgent { .. })
    }

    #[test]
    fn below_warn_does_nothing() {
        let mut g = guard();
        assert_eq!(
            g.decide(&sample(0, 500, &[(AGENT, 300)]), AGENT),
            GuardAction::None
        );
        assert_eq!(
            g.decide(&sample(1, 849, &[(AGENT, 300)]), AGENT),
            GuardAction::None
        );
    }

    #[test]
    fn warns_once_per_upward_crossing_with_rearm_gap() {
        let mut g = guard();
        let procs = [(AGENT, 300)];
        let a = g.decide(&sample(0, 860, &procs), AGENT);
        let GuardAction::Warn {
            used,
            limit,
            percent,
        } = a
        else {
            panic!("{a:?}")
        };
        assert_eq!((used, limit), (LIMIT / 1000 * 860, LIMIT));
        assert!((percent - 86.0).abs() < 0.01, "{percent}");
        // Staying above: silent.
        assert_eq!(g.decide(&sample(1, 900, &procs), AGENT), GuardAction::None);
        // Dipping just below the level (inside the re-arm gap) and back: silent.
        assert_eq!(g.decide(&sample(2, 840, &procs), AGENT), GuardAction::None);
        assert_eq!(g.decide(&sample(3, 870, &procs), AGENT), GuardAction::None);
        // Falling clearly below re-arms; the next crossing warns again.
        assert_eq!(g.decide(&sample(4, 800, &procs), AGENT), GuardAction::None);
        assert!(matches!(
            g.decide(&sample(5, 880, &procs), AGENT),
            GuardAction::Warn { .. }
        ));
    }

    #[test]
    fn at_act_kills_the_largest_tool_never_genrun() {
        let mut g = guard();
        // genrun is listed largest but is never a target; the build (pid 200) is the largest of the tree.
        let s = sample(
            0,
            950,
            &[(GENRUN, 800), (AGENT, 250), (200, 600), (201, 10)],
        );
        assert_eq!(
            g.decide(&s, AGENT),
            GuardAction::KillTool {
                pid: 200,
                name: "p200".into(),
                rss_bytes: 600 << 20
            }
        );
        assert_eq!(g.tool_kills(), 1);
        // Jumping straight to act counts as the warning: falling back into the warn band stays silent.
        assert_eq!(
            g.decide(&sample(1, 880, &[(AGENT, 250)]), AGENT),
            GuardAction::None
        );
    }

    #[test]
    fn does_not_rekill_a_tool_being_killed_and_stops_if_it_never_dies() {
        let mut g = guard();
        let procs = [(AGENT, 250), (200, 600)];
        assert!(matches!(
            g.decide(&sample(10, 950, &procs), AGENT),
            GuardAction::KillTool { pid: 200, .. }
        ));
        // Still present and still above act within kill_wait: wait, no second kill.
        assert_eq!(g.decide(&sample(11, 950, &procs), AGENT), GuardAction::None);
        assert_eq!(g.decide(&sample(24, 960, &procs), AGENT), GuardAction::None);
        assert_eq!(g.tool_kills(), 1);
        // kill_wait (15 s) exceeded: give up on the tool, stop the agent.
        let a = g.decide(&sample(25, 960, &procs), AGENT);
        assert!(is_stop(&a), "{a:?}");
        // Stopped: nothing more, whatever happens.
        assert_eq!(g.decide(&sample(26, 990, &procs), AGENT), GuardAction::None);
    }

    #[test]
    fn second_tool_is_killed_then_budget_exhausted_stops_agent() {
        let mut g = guard();
        assert!(matches!(
            g.decide(&sample(0, 950, &[(AGENT, 250), (200, 600)]), AGENT),
            GuardAction::KillTool { pid: 200, .. }
        ));
        // 200 is gone, usage still high because of another tool.
        assert!(matches!(
            g.decide(&sample(1, 940, &[(AGENT, 250), (300, 500)]), AGENT),
            GuardAction::KillTool { pid: 300, .. }
        ));
        let a = g.decide(&sample(2, 940, &[(AGENT, 250), (400, 500)]), AGENT);
        let GuardAction::StopAgent { reason } = a else {
            panic!("{a:?}")
        };
        assert!(reason.contains("after 2 tool processes"), "{reason}");
    }

    #[test]
    fn budget_is_per_run_not_per_episode() {
        let mut g = guard();
        let spike = |t, pid| sample(t, 950, &[(AGENT, 250), (pid, 600)]);
        assert!(matches!(
            g.decide(&spike(0, 200), AGENT),
            GuardAction::KillTool { .. }
        ));
        assert_eq!(
            g.decide(&sample(1, 300, &[(AGENT, 250)]), AGENT),
            GuardAction::None
        );
        assert!(matches!(
            g.decide(&spike(2, 201), AGENT),
            GuardAction::KillTool { .. }
        ));
        assert_eq!(
            g.decide(&sample(3, 300, &[(AGENT, 250)]), AGENT),
            GuardAction::None
        );
        assert!(is_stop(&g.decide(&spike(4, 202), AGENT)));
    }

    #[test]
    fn a_reused_pid_can_be_killed_again() {
        let mut g = guard();
        assert!(matches!(
            g.decide(&sample(0, 950, &[(AGENT, 250), (200, 600)]), AGENT),
            GuardAction::KillTool { pid: 200, .. }
        ));
        assert_eq!(
            g.decide(&sample(1, 300, &[(AGENT, 250)]), AGENT),
            GuardAction::None
        );
        assert!(matches!(
            g.decide(&sample(2, 950, &[(AGENT, 250), (200, 600)]), AGENT),
            GuardAction::KillTool { pid: 200, .. }
        ));
    }

    #[test]
    fn agent_largest_stops_agent() {
        let mut g = guard();
        let a = g.decide(
            &sample(0, 950, &[(GENRUN, 5), (AGENT, 800), (200, 100)]),
            AGENT,
        );
        let GuardAction::StopAgent { reason } = a else {
            panic!("{a:?}")
        };
        assert!(reason.contains("agent itself"), "{reason}");
        assert_eq!(g.tool_kills(), 0);
    }

    #[test]
    fn nothing_but_genrun_stops_agent() {
        let mut g = guard();
        assert!(is_stop(&g.decide(&sample(0, 950, &[(GENRUN, 900)]), AGENT)));
        let mut g = guard();
        assert!(is_stop(&g.decide(&sample(0, 950, &[]), AGENT)));
    }

    #[test]
    fn zero_tool_budget_stops_at_once() {
        let cfg = GuardConfig {
            max_tool_kills: 0,
            ..GuardConfig::default()
        };
        let mut g = Guard::new(cfg, LIMIT);
        assert!(is_stop(
            &g.decide(&sample(0, 950, &[(AGENT, 250), (200, 600)]), AGENT)
        ));
    }
}
