//! The command line, defined once: every option of every subcommand lives here with its doc, which is also
//! its `--help` text. Values stay raw strings where genrun wants to say precisely what was wrong with them;
//! [`crate::config`] turns them into a validated configuration.
//!
//! Every `run` option can also be set as `GENRUN_<NAME>` in the environment (flags win). Options that repeat
//! take their environment value as a JSON array of strings or, for lists of names, a comma-separated list.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// genrun: the in-container supervisor for an app-generating coding agent.
#[derive(Debug, Parser)]
#[command(name = "genrun", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one job: the container entrypoint.
    Run(Box<RunArgs>),
    /// Run the whole pipeline offline on the built-in scripted agent and print a summary.
    Demo(DemoArgs),
    /// Package a workspace into deterministic archives and a manifest.
    Package(PackageArgs),
    /// Print the exit-code contract.
    ExitCodes(ExitCodesArgs),
    /// The built-in scripted agent (speaks the Claude Code CLI's stream-json; used by demo and tests).
    #[command(hide = true, disable_help_flag = true)]
    ScriptedAgent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Options of `genrun run`. Each is also settable as `GENRUN_<NAME>`; flags win, then the environment, then
/// the job document, then the defaults.
#[derive(Debug, Args, Default, Clone)]
pub struct RunArgs {
    /// Identifies the run in artifact paths, events and the result: [A-Za-z0-9._-]{1,128}. Required.
    #[arg(long, env = "GENRUN_REQUEST_ID", value_name = "ID")]
    pub request_id: Option<String>,

    /// The prompt for the agent.
    #[arg(
        long,
        env = "GENRUN_PROMPT",
        value_name = "TEXT",
        conflicts_with = "prompt_file"
    )]
    pub prompt: Option<String>,

    /// Read the prompt from a file (or s3://BUCKET/KEY).
    #[arg(long, env = "GENRUN_PROMPT_FILE", value_name = "PATH")]
    pub prompt_file: Option<String>,

    /// A JSON job document (a file path or s3://BUCKET/KEY) holding any of these options, snake_case.
    #[arg(long, env = "GENRUN_JOB", value_name = "PATH")]
    pub job: Option<String>,

    /// The directory the agent works in. Default: /workspace/app when /workspace exists (the container),
    /// else a fresh directory under the system temp directory.
    #[arg(long, env = "GENRUN_WORKSPACE", value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// Where artifacts go: a local directory or s3://BUCKET/PREFIX. Artifacts land in <output>/<request-id>/.
    /// Default: ./genrun-output.
    #[arg(long, env = "GENRUN_OUTPUT", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub output: Option<String>,

    /// The agent program, optionally followed by leading arguments separated by spaces. Default: claude.
    #[arg(long, env = "GENRUN_AGENT_CMD", value_name = "PROGRAM")]
    pub agent_cmd: Option<String>,

    /// The model, passed to the agent as --model.
    #[arg(long, env = "GENRUN_MODEL", value_name = "MODEL")]
    pub model: Option<String>,

    /// Turn limit, passed to the agent and enforced from its stream. Default: 1000.
    #[arg(long, env = "GENRUN_MAX_TURNS", value_name = "N")]
    pub max_turns: Option<String>,

    /// Wall-clock limit for the agent (e.g. 90s, 30m, 2h). Default: 60m.
    #[arg(long, env = "GENRUN_TIMEOUT", value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Stop the agent when it prints no stdout line for this long. Default: 15m (longer than the Bash
    /// tool's 10-minute maximum).
    #[arg(long, env = "GENRUN_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<String>,

    /// How long the agent may linger after its result line before genrun stops it. Default: 10s.
    #[arg(long, env = "GENRUN_POST_RESULT_GRACE", value_name = "DURATION")]
    pub post_result_grace: Option<String>,

    /// Cost budget in USD, passed as --max-budget-usd and enforced from the stream.
    #[arg(long, env = "GENRUN_BUDGET_USD", value_name = "USD")]
    pub budget_usd: Option<String>,

    /// An extra argument for the agent CLI (repeatable), e.g. --append-system-prompt-file.
    /// Environment: GENRUN_AGENT_ARG as a JSON array of strings.
    #[arg(long = "agent-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,

    /// Log format: json (JSON lines), pretty (live terminal view) or auto (pretty on a terminal). Default: auto.
    #[arg(long, env = "GENRUN_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Run the agent as this user (NAME or UID). Default: `agent` when genrun runs as root and that user
    /// exists; otherwise genrun's own user.
    #[arg(long, env = "GENRUN_AGENT_USER", value_name = "NAME|UID")]
    pub agent_user: Option<String>,

    /// Allow running the agent as root (sets IS_SANDBOX=1 for the CLI).
    #[arg(long, env = "GENRUN_ALLOW_ROOT_AGENT")]
    pub allow_root_agent: bool,

    /// Pass this environment variable through to the agent (repeatable; env: comma-separated names).
    #[arg(
        long = "agent-env",
        env = "GENRUN_AGENT_ENV",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub agent_env: Vec<String>,

    /// Time from SIGTERM to result.json stored. Default: 25s (ECS's default stopTimeout is 30 s).
    #[arg(long, env = "GENRUN_STOP_GRACE", value_name = "DURATION")]
    pub stop_grace: Option<String>,

    /// Memory limit (e.g. 400M, 4G). Default: the cgroup's limit, then ECS metadata, then /proc/meminfo.
    #[arg(long, env = "GENRUN_MEMORY_LIMIT", value_name = "SIZE")]
    pub memory_limit: Option<String>,

    /// How often memory is sampled. Default: 1s.
    #[arg(long, env = "GENRUN_MEMORY_INTERVAL", value_name = "DURATION")]
    pub memory_interval: Option<String>,

    /// Memory warning level, percent of the limit. Default: 85.
    #[arg(long, env = "GENRUN_MEMORY_WARN", value_name = "PERCENT")]
    pub memory_warn: Option<String>,

    /// Memory action level, percent of the limit. Default: 93.
    #[arg(long, env = "GENRUN_MEMORY_ACT", value_name = "PERCENT")]
    pub memory_act: Option<String>,

    /// The task's vCPU count, for the memory sizing recommendation. Default: ECS metadata, else 4.
    #[arg(long, env = "GENRUN_VCPU", value_name = "N")]
    pub vcpu: Option<String>,

    /// POST progress events in batches to this URL.
    #[arg(long, env = "GENRUN_PROGRESS_URL", value_name = "URL")]
    pub progress_url: Option<String>,

    /// Bearer token for --progress-url (redacted everywhere).
    #[arg(
        long,
        env = "GENRUN_PROGRESS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub progress_token: Option<String>,

    /// Heartbeat event interval. Default: 15s.
    #[arg(long, env = "GENRUN_HEARTBEAT", value_name = "DURATION")]
    pub heartbeat: Option<String>,

    /// Treat the value of this environment variable as a secret to redact (repeatable; env: comma-separated).
    #[arg(
        long = "secret-env",
        env = "GENRUN_SECRET_ENV",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub secret_env: Vec<String>,

    /// S3 endpoint URL for S3-compatible servers.
    #[arg(long, env = "GENRUN_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// Use path-style S3 addressing.
    #[arg(long, env = "GENRUN_S3_PATH_STYLE")]
    pub s3_path_style: bool,

    /// Replace the artifacts of a finished run with the same request id.
    #[arg(long, env = "GENRUN_OVERWRITE")]
    pub overwrite: bool,
}

/// Options of `genrun demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Where the demo's artifacts go.
    #[arg(long, value_name = "DIR", default_value = "genrun-demo")]
    pub out: PathBuf,

    /// Log format: json, pretty or auto.
    #[arg(long, value_name = "FORMAT", default_value = "auto")]
    pub log_format: String,

    /// The built-in script to play (demo, success, ...), or a script file.
    #[arg(long, value_name = "NAME|PATH", default_value = "demo", hide = true)]
    pub script: String,
}

/// Options of `genrun package`.
#[derive(Debug, Args, Clone)]
pub struct PackageArgs {
    /// The workspace to package.
    pub workspace: PathBuf,

    /// Directory for app.tar.zst, app.tar.gz and manifest.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Archive formats, comma-separated: tar.zst, tar.gz.
    #[arg(long, value_name = "LIST", default_value = "tar.zst,tar.gz")]
    pub format: String,

    /// Extra packaging rules (gitignore syntax), repeatable.
    #[arg(long, value_name = "FILE")]
    pub rules: Vec<PathBuf>,

    /// Most bytes kept in all.
    #[arg(long, value_name = "SIZE")]
    pub max_total_bytes: Option<String>,

    /// Largest single file kept.
    #[arg(long, value_name = "SIZE")]
    pub max_file_bytes: Option<String>,

    /// Most entries kept.
    #[arg(long, value_name = "N")]
    pub max_entries: Option<String>,
}

/// Options of `genrun exit-codes`.
#[derive(Debug, Args, Clone)]
pub struct ExitCodesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_run_option_has_a_genrun_env_name_except_repeated_args() {
        let cmd = Cli::command();
        let run = cmd.find_subcommand("run").unwrap();
        for arg in run.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version" | "agent-arg") {
                continue;
            }
            let want = format!("GENRUN_{}", long.replace('-', "_").to_uppercase());
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(want.as_str()),
                "--{long}"
            );
        }
    }

    #[test]
    fn readme_documents_every_run_option_and_exit_code() {
        let readme = include_str!("../README.md");
        let cmd = Cli::command();
        let run = cmd.find_subcommand("run").unwrap();
        for arg in run.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            assert!(
                readme.contains(&format!("`--{long}")),
                "README lacks --{long}"
            );
        }
        assert!(readme.contains(crate::exit::table_markdown().lines().nth(2).unwrap()));
    }

    #[test]
    fn scripted_agent_takes_claude_flags_verbatim() {
        let cli = Cli::try_parse_from([
            "genrun",
            "scripted-agent",
            "--script",
            "demo",
            "-p",
            "x",
            "--verbose",
        ])
        .unwrap();
        match cli.command {
            Command::ScriptedAgent { args } => assert_eq!(args.len(), 5),
            other => panic!("{other:?}"),
        }
    }
}
