//! The Claude Code CLI's argument vector for one headless generation run.
//!
//! `-p` with `--output-format stream-json` requires `--verbose` (else the CLI exits 1), `--max-turns` is
//! accepted though hidden from `--help`, and `bypassPermissions` lets the agent write and run commands
//! without prompts (the CLI refuses it for uid 0, so the agent must run unprivileged).

/// What to ask the agent and within which limits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentInvocation {
    pub prompt: String,
    pub max_turns: u32,
    pub model: Option<String>,
    pub max_budget_usd: Option<f64>,
    /// Appended verbatim after our own arguments.
    pub extra_args: Vec<String>,
}

/// `-p PROMPT --output-format stream-json --verbose --max-turns N [--model M] [--max-budget-usd X]
/// --permission-mode bypassPermissions EXTRA...` (without the program name).
pub fn claude_args(inv: &AgentInvocation) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-p".into(),
        inv.prompt.clone(),
        "--output-format".into(),
        "stream-json".into(),
        "--verbose".into(),
        "--max-turns".into(),
        inv.max_turns.to_string(),
    ];
    if let Some(model) = &inv.model {
        args.push("--model".into());
        args.push(model.clone());
    }
    if let Some(budget) = inv.max_budget_usd {
        args.push("--max-budget-usd".into());
        args.push(budget.to_string());
    }
    args.push("--permission-mode".into());
    args.push("bypassPermissions".into());
    args.extend(inv.extra_args.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full() {
        let mut inv = AgentInvocation {
            prompt: "Build a todo app".into(),
            max_turns: 40,
            model: None,
            max_budget_usd: None,
            extra_args: vec![],
        };
        assert_eq!(
            claude_args(&inv),
            [
                "-p",
                "Build a todo app",
                "--output-format",
                "stream-json",
                "--verbose",
                "--max-turns",
                "40",
                "--permission-mode",
                "bypassPermissions"
            ]
        );
        inv.model = Some("claude-opus-5-5".into());
        inv.max_budget_usd = Some(2.5);
        inv.extra_args = vec!["--append-system-prompt".into(), "Use TypeScript".into()];
        assert_eq!(
            claude_args(&inv),
            [
                "-p",
                "Build a todo app",
                "--output-format",
                "stream-json",
                "--verbose",
                "--max-turns",
                "40",
                "--model",
                "claude-opus-5-5",
                "--max-budget-usd",
                "2.5",
                "--permission-mode",
                "bypassPermissions",
                "--append-system-prompt",
                "Use TypeScript"
            ]
        );
    }

    #[test]
    fn prompt_starting_with_dash_stays_one_argument() {
        let inv = AgentInvocation {
            prompt: "--help me".into(),
            max_turns: 1,
            model: None,
            max_budget_usd: Some(3.0),
            extra_args: vec![],
        };
        let args = claude_args(&inv);
        assert_eq!(args[1], "--help me");
        assert_eq!(args[8], "3");
    }
}
