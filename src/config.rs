//! Raw options become one validated [`RunConfig`] here, and nowhere else.
//!
//! Precedence, highest first:
//! 1. command-line flags;
//! 2. `GENRUN_<NAME>` environment variables (clap reads these together with the flags);
//! 3. the job document (`--job`, a JSON object whose keys are the option names in snake_case);
//! 4. the defaults documented on each option in [`crate::cli::RunArgs`].
//!
//! Every check happens before anything starts, and every error names the field, the value and what was
//! expected. Errors about the job itself (request id, prompt, job document) are `bad_job` (65); malformed
//! settings are `config` (78).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::CommandFactory;
use genrun_progress::LogFormat;
use genrun_sandbox::UserSpec;
use genrun_storage::{S3Options, Target};

use crate::cli::{Cli, RunArgs};
use crate::exit::Outcome;

/// The program genrun runs as the agent, with any leading arguments (e.g. `genrun scripted-agent --script x`).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentProgram {
    pub program: PathBuf,
    pub leading_args: Vec<String>,
}

/// Who the agent runs as.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentIdentity {
    /// A separate, unprivileged user.
    User(UserSpec),
    /// genrun's own (non-root) user: nothing to drop.
    Inherit,
    /// root, explicitly allowed with --allow-root-agent.
    Root,
}

/// Memory watch settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySettings {
    pub limit: Option<u64>,
    pub interval: Duration,
    pub warn_ratio: f64,
    pub act_ratio: f64,
    pub vcpu: Option<f64>,
}

/// Progress settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressSettings {
    pub format: LogFormat,
    pub url: Option<String>,
    pub token: Option<String>,
    pub heartbeat: Duration,
    pub secret_env: Vec<String>,
}

/// A validated `genrun run` configuration.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub request_id: String,
    pub prompt: String,
    pub workspace: PathBuf,
    pub output: Target,
    pub agent: AgentProgram,
    pub model: Option<String>,
    pub max_turns: u32,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub post_result_grace: Duration,
    pub budget_usd: Option<f64>,
    pub agent_args: Vec<String>,
    pub identity: AgentIdentity,
    pub agent_env: Vec<String>,
    pub stop_grace: Duration,
    pub memory: MemorySettings,
    pub progress: ProgressSettings,
    pub s3: S3Options,
    pub overwrite: bool,
}

/// A configuration problem: which field, what was wrong, and which outcome it maps to.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub outcome: Outcome,
    pub field: String,
    pub message: String,
}

impl ConfigError {
    fn bad_job(field: &str, message: impl Into<String>) -> Self {
        ConfigError {
            outcome: Outcome::BadJob,
            field: field.into(),
            message: message.into(),
        }
    }

    fn config(field: &str, message: impl Into<String>) -> Self {
        ConfigError {
            outcome: Outcome::Config,
            field: field.into(),
            message: message.into(),
        }
    }

    fn invalid(field: &str, value: &str, expected: &str) -> Self {
        Self::config(
            field,
            format!("invalid value {value:?}: expected {expected}"),
        )
    }
}

/// A failed load, with whatever was already known so a result.json can still be written.
#[derive(Debug)]
pub struct LoadFailure {
    pub error: ConfigError,
    pub request_id: Option<String>,
    pub output: Option<Target>,
    pub s3: S3Options,
}

/// Defaults, in one place (the README's option table quotes them).
pub mod defaults {
    use std::time::Duration;
    pub const AGENT_CMD: &str = "claude";
    pub const MAX_TURNS: u32 = 1000;
    pub const TIMEOUT: Duration = Duration::from_secs(60 * 60);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
    pub const POST_RESULT_GRACE: Duration = Duration::from_secs(10);
    pub const STOP_GRACE: Duration = Duration::from_secs(25);
    pub const MEMORY_INTERVAL: Duration = Duration::from_secs(1);
    pub const MEMORY_WARN_PERCENT: f64 = 85.0;
    pub const MEMORY_ACT_PERCENT: f64 = 93.0;
    pub const HEARTBEAT: Duration = Duration::from_secs(15);
    pub const OUTPUT: &str = "genrun-output";
    pub const CONTAINER_WORKSPACE: &str = "/workspace/app";
    pub const AGENT_USER: &str = "agent";
}

/// Loads and validates a run configuration.
pub async fn load(mut args: RunArgs) -> Result<RunConfig, Box<LoadFailure>> {
    let s3 = S3Options {
        endpoint: args.s3_endpoint.clone(),
        path_style: args.s3_path_style,
        ..S3Options::default()
    };
    let fail = |error: ConfigError, args: &RunArgs, s3: &S3Options| {
        let request_id = args
            .request_id
            .clone()
            .filter(|r| validate_request_id(r).is_ok());
        let output = args
            .output
            .as_deref()
            .map_or(Ok(Target::Local(defaults::OUTPUT.into())), |o| o.parse());
        Box::new(LoadFailure {
            error,
            request_id,
            output: output.ok(),
            s3: s3.clone(),
        })
    };

    if let Some(job) = args.job.clone() {
        let doc = read_source(&job, &s3).await.map_err(|e| {
            fail(
                ConfigError::bad_job("job", format!("cannot read {job}: {e}")),
                &args,
                &s3,
            )
        })?;
        let from_job = merge_job_document(&mut args, &doc).map_err(|e| fail(e, &args, &s3))?;
        // A bad value that came from the job document makes the job invalid (65), named as such.
        return build(&args, &s3).await.map_err(|mut e| {
            if from_job.contains(&e.field) {
                e.outcome = Outcome::BadJob;
                e.field = format!("job.{}", e.field);
            }
            fail(e, &args, &s3)
        });
    }
    build(&args, &s3).await.map_err(|e| fail(e, &args, &s3))
}

async fn build(args: &RunArgs, s3: &S3Options) -> Result<RunConfig, ConfigError> {
    let request_id = args.request_id.clone().ok_or_else(|| {
        ConfigError::bad_job(
            "request_id",
            "missing: pass --request-id or GENRUN_REQUEST_ID",
        )
    })?;
    validate_request_id(&request_id)?;

    let output: Target = match &args.output {
        Some(o) => o
            .parse()
            .map_err(|e| ConfigError::config("output", format!("{e}")))?,
        None => Target::Local(defaults::OUTPUT.into()),
    };

    let prompt = match (&args.prompt, &args.prompt_file) {
        (Some(p), None) => p.clone(),
        (None, Some(f)) => {
            let bytes = read_source(f, s3).await.map_err(|e| {
                ConfigError::bad_job("prompt_file", format!("cannot read {f}: {e}"))
            })?;
            String::from_utf8(bytes).map_err(|_| {
                ConfigError::bad_job("prompt_file", format!("{f} is not UTF-8 text"))
            })?
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::bad_job(
                "prompt",
                "give either prompt or prompt_file, not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::bad_job(
                "prompt",
                "missing: pass --prompt, --prompt-file or a job document with \"prompt\"",
            ))
        }
    };
    if prompt.trim().is_empty() {
        return Err(ConfigError::bad_job("prompt", "is empty"));
    }

    let agent = parse_agent_cmd(args.agent_cmd.as_deref().unwrap_or(defaults::AGENT_CMD))?;
    let max_turns = match &args.max_turns {
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                ConfigError::invalid("max_turns", v, "a whole number of turns, at least 1")
            })?,
        None => defaults::MAX_TURNS,
    };
    let timeout = opt_duration("timeout", &args.timeout)?.unwrap_or(defaults::TIMEOUT);
    let idle_timeout =
        opt_duration("idle_timeout", &args.idle_timeout)?.unwrap_or(defaults::IDLE_TIMEOUT);
    let post_result_grace = opt_duration("post_result_grace", &args.post_result_grace)?
        .unwrap_or(defaults::POST_RESULT_GRACE);
    let stop_grace = opt_duration("stop_grace", &args.stop_grace)?.unwrap_or(defaults::STOP_GRACE);
    let budget_usd = opt_positive(
        "budget_usd",
        &args.budget_usd,
        "a positive number of US dollars",
    )?;
    let format = match &args.log_format {
        Some(v) => v
            .parse()
            .map_err(|_| ConfigError::invalid("log_format", v, "json, pretty or auto"))?,
        None => LogFormat::Auto,
    };
    let workspace = match &args.workspace {
        Some(w) => w.clone(),
        None => default_workspace(&request_id),
    };
    let identity = resolve_identity(args.agent_user.as_deref(), args.allow_root_agent)?;
    for name in args.agent_env.iter().chain(&args.secret_env) {
        validate_env_name(name)?;
    }

    let memory = MemorySettings {
        limit: match &args.memory_limit {
            Some(v) => Some(
                genrun_sandbox::memory::parse_size(v)
                    .ok()
                    .filter(|b| *b > 0)
                    .ok_or_else(|| {
                        ConfigError::invalid("memory_limit", v, "a size such as 400M or 4G")
                    })?,
            ),
            None => None,
        },
        interval: opt_duration("memory_interval", &args.memory_interval)?
            .unwrap_or(defaults::MEMORY_INTERVAL),
        warn_ratio: opt_percent("memory_warn", &args.memory_warn)?
            .unwrap_or(defaults::MEMORY_WARN_PERCENT)
            / 100.0,
        act_ratio: opt_percent("memory_act", &args.memory_act)?
            .unwrap_or(defaults::MEMORY_ACT_PERCENT)
            / 100.0,
        vcpu: opt_positive(
            "vcpu",
            &args.vcpu,
            "a positive number such as 0.5, 1, 2 or 4",
        )?,
    };
    if memory.warn_ratio > memory.act_ratio {
        return Err(ConfigError::config(
            "memory_warn",
            format!(
                "the warning level ({}%) must not be above the action level ({}%)",
                memory.warn_ratio * 100.0,
                memory.act_ratio * 100.0
            ),
        ));
    }
    positive("memory_interval", memory.interval)?;
    http_url("progress_url", args.progress_url.as_deref())?;
    let heartbeat = opt_duration("heartbeat", &args.heartbeat)?.unwrap_or(defaults::HEARTBEAT);
    positive("heartbeat", heartbeat)?;
    http_url("s3_endpoint", s3.endpoint.as_deref())?;

    Ok(RunConfig {
        request_id,
        prompt,
        workspace,
        output,
        agent,
        model: args.model.clone().filter(|m| !m.is_empty()),
        max_turns,
        timeout,
        idle_timeout,
        post_result_grace,
        budget_usd,
        agent_args: args.agent_args.clone(),
        identity,
        agent_env: args.agent_env.clone(),
        stop_grace,
        memory,
        progress: ProgressSettings {
            format,
            url: args.progress_url.clone(),
            token: args.progress_token.clone(),
            heartbeat,
            secret_env: args.secret_env.clone(),
        },
        s3: s3.clone(),
        overwrite: args.overwrite,
    })
}

/// `[A-Za-z0-9._-]{1,128}`, and not `.` or `..` (it becomes a path component).
pub fn validate_request_id(id: &str) -> Result<(), ConfigError> {
    let ok = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(ConfigError::bad_job(
            "request_id",
            format!("invalid value {id:?}: expected 1 to 128 characters of A-Z a-z 0-9 . _ - (not . or ..)"),
        ))
    }
}

fn validate_env_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "agent_env",
            name,
            "an environment variable name such as AWS_REGION",
        ))
    }
}

fn parse_agent_cmd(s: &str) -> Result<AgentProgram, ConfigError> {
    let mut words = s.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| ConfigError::invalid("agent_cmd", s, "a program name or path"))?;
    Ok(AgentProgram {
        program: PathBuf::from(program),
        leading_args: words.map(String::from).collect(),
    })
}

fn default_workspace(request_id: &str) -> PathBuf {
    if Path::new("/workspace").is_dir() {
        PathBuf::from(defaults::CONTAINER_WORKSPACE)
    } else {
        std::env::temp_dir().join(format!("genrun-{request_id}-{}", std::process::id()))
    }
}

fn resolve_identity(user: Option<&str>, allow_root: bool) -> Result<AgentIdentity, ConfigError> {
    let root = genrun_sandbox::is_root();
    match user {
        Some(spec) => {
            let u = genrun_sandbox::resolve_user(spec)
                .map_err(|e| ConfigError::config("agent_user", format!("{spec:?}: {e}")))?;
            if u.uid == 0 {
                return if allow_root {
                    Ok(AgentIdentity::Root)
                } else {
                    Err(ConfigError::config("agent_user", "is root: pass --allow-root-agent to run the agent as root"))
                };
            }
            if !root && u.uid != current_uid() {
                return Err(ConfigError::config(
                    "agent_user",
                    format!("{spec:?}: switching users needs genrun to run as root"),
                ));
            }
            Ok(AgentIdentity::User(u))
        }
        None if root => match genrun_sandbox::lookup_user(defaults::AGENT_USER) {
            Some(u) if u.uid != 0 => Ok(AgentIdentity::User(u)),
            _ if allow_root => Ok(AgentIdentity::Root),
            _ => Err(ConfigError::config(
                "agent_user",
                "genrun runs as root and no user named `agent` exists: pass --agent-user NAME|UID, or \
                 --allow-root-agent to run the agent as root",
            )),
        },
        None => Ok(AgentIdentity::Inherit),
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// Parses `90`, `90s`, `500ms`, `30m`, `2h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" | "mins" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn opt_duration(field: &str, v: &Option<String>) -> Result<Option<Duration>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) => parse_duration(s).map(Some).ok_or_else(|| {
            ConfigError::invalid(field, s, "a duration such as 500ms, 90s, 30m or 2h")
        }),
    }
}

fn opt_positive(
    field: &str,
    v: &Option<String>,
    expected: &str,
) -> Result<Option<f64>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0)
            .map(Some)
            .ok_or_else(|| ConfigError::invalid(field, s, expected)),
    }
}

fn positive(field: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::invalid(field, "0", "a positive duration"));
    }
    Ok(())
}

fn http_url(field: &str, url: Option<&str>) -> Result<(), ConfigError> {
    match url {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
            Err(ConfigError::invalid(field, u, "an http:// or https:// URL"))
        }
        _ => Ok(()),
    }
}

fn opt_percent(field: &str, v: &Option<String>) -> Result<Option<f64>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) => s
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0 && *p <= 100.0)
            .map(Some)
            .ok_or_else(|| ConfigError::invalid(field, s, "a percentage between 0 and 100")),
    }
}

async fn read_source(location: &str, s3: &S3Options) -> Result<Vec<u8>, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    genrun_storage::read_url(location, s3, deadline)
        .await
        .map(|b| b.to_vec())
        .map_err(|e| e.to_string())
}

/// The option names a job document may hold: every `run` option but `job` itself, in snake_case.
pub fn job_document_keys() -> Vec<String> {
    let cmd = Cli::command();
    let Some(run) = cmd.find_subcommand("run") else {
        return Vec::new();
    };
    run.get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version" | "job"))
        .map(|l| l.replace('-', "_"))
        .collect()
}

/// Fills options not given by flag or environment from a JSON job document; returns the keys it filled.
fn merge_job_document(args: &mut RunArgs, doc: &[u8]) -> Result<Vec<String>, ConfigError> {
    let value: serde_json::Value = serde_json::from_slice(doc)
        .map_err(|e| ConfigError::bad_job("job", format!("not valid JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(ConfigError::bad_job(
            "job",
            "expected a JSON object of options",
        ));
    };
    let known = job_document_keys();
    let mut fields = BTreeMap::new();
    for (key, v) in map {
        if !known.contains(&key) {
            return Err(ConfigError::bad_job(
                &format!("job.{key}"),
                format!("unknown option; expected one of: {}", known.join(", ")),
            ));
        }
        fields.insert(key, v);
    }
    let mut filled = Vec::new();
    for (key, v) in fields {
        let field = format!("job.{key}");
        filled.push(key.clone());
        let scalar = || -> Result<String, ConfigError> {
            match &v {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                serde_json::Value::Bool(b) => Ok(b.to_string()),
                _ => Err(ConfigError::bad_job(
                    &field,
                    "expected a string or a number",
                )),
            }
        };
        let list = || -> Result<Vec<String>, ConfigError> {
            match &v {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| ConfigError::bad_job(&field, "expected an array of strings")),
                _ => Err(ConfigError::bad_job(&field, "expected an array of strings")),
            }
        };
        let flag = || -> Result<bool, ConfigError> {
            v.as_bool()
                .ok_or_else(|| ConfigError::bad_job(&field, "expected true or false"))
        };
        macro_rules! fill {
            ($f:ident) => {
                if args.$f.is_none() {
                    args.$f = Some(scalar()?.into());
                }
            };
        }
        match key.as_str() {
            "request_id" => fill!(request_id),
            "prompt" => fill!(prompt),
            "prompt_file" => fill!(prompt_file),
            "workspace" => fill!(workspace),
            "output" => fill!(output),
            "agent_cmd" => fill!(agent_cmd),
            "model" => fill!(model),
            "max_turns" => fill!(max_turns),
            "timeout" => fill!(timeout),
            "idle_timeout" => fill!(idle_timeout),
            "post_result_grace" => fill!(post_result_grace),
            "budget_usd" => fill!(budget_usd),
            "log_format" => fill!(log_format),
            "agent_user" => fill!(agent_user),
            "stop_grace" => fill!(stop_grace),
            "memory_limit" => fill!(memory_limit),
            "memory_interval" => fill!(memory_interval),
            "memory_warn" => fill!(memory_warn),
            "memory_act" => fill!(memory_act),
            "vcpu" => fill!(vcpu),
            "progress_url" => fill!(progress_url),
            "progress_token" => fill!(progress_token),
            "heartbeat" => fill!(heartbeat),
            "s3_endpoint" => fill!(s3_endpoint),
            "agent_arg" => {
                if args.agent_args.is_empty() {
                    args.agent_args = list()?;
                }
            }
            "agent_env" => {
                if args.agent_env.is_empty() {
                    args.agent_env = list()?;
                }
            }
            "secret_env" => {
                if args.secret_env.is_empty() {
                    args.secret_env = list()?;
                }
            }
            "allow_root_agent" => args.allow_root_agent |= flag()?,
            "s3_path_style" => args.s3_path_style |= flag()?,
            "overwrite" => args.overwrite |= flag()?,
            other => {
                return Err(ConfigError::bad_job(
                    &format!("job.{other}"),
                    "is not supported in a job document",
                ))
            }
        }
    }
    Ok(filled)
}

/// Reads `GENRUN_AGENT_ARG` (a JSON array of strings) when no `--agent-arg` flag was given.
pub fn agent_args_from_env(args: &mut RunArgs) -> Result<(), ConfigError> {
    if !args.agent_args.is_empty() {
        return Ok(());
    }
    if let Ok(v) = std::env::var("GENRUN_AGENT_ARG") {
        let parsed: Vec<String> = serde_json::from_str(&v).map_err(|_| {
            ConfigError::invalid(
                "agent_arg",
                &v,
                "a JSON array of strings, e.g. [\"--foo\",\"bar\"]",
            )
        })?;
        args.agent_args = parsed;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs {
            request_id: Some("req-1".into()),
            prompt: Some("build".into()),
            allow_root_agent: true,
            ..RunArgs::default()
        }
    }

    async fn load_err(a: RunArgs) -> ConfigError {
        load(a).await.expect_err("expected an error").error
    }

    #[test]
    fn request_ids() {
        for ok in ["a", "req-1.2_3", &"x".repeat(128)] {
            validate_request_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(129)] {
            let e = validate_request_id(bad).unwrap_err();
            assert_eq!(e.outcome, Outcome::BadJob);
            assert_eq!(e.field, "request_id");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "abc", "5x", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn missing_prompt_is_bad_job() {
        let e = load_err(RunArgs {
            prompt: None,
            ..args()
        })
        .await;
        assert_eq!((e.outcome, e.field.as_str()), (Outcome::BadJob, "prompt"));
    }

    #[tokio::test]
    async fn bad_values_name_field_value_and_expectation() {
        let e = load_err(RunArgs {
            max_turns: Some("lots".into()),
            ..args()
        })
        .await;
        assert_eq!(
            (e.outcome, e.field.as_str()),
            (Outcome::Config, "max_turns")
        );
        assert!(
            e.message.contains("\"lots\"") && e.message.contains("expected"),
            "{e}"
        );
        let e = load_err(RunArgs {
            timeout: Some("soon".into()),
            ..args()
        })
        .await;
        assert_eq!(e.field, "timeout");
        let e = load_err(RunArgs {
            log_format: Some("xml".into()),
            ..args()
        })
        .await;
        assert_eq!(e.field, "log_format");
        let e = load_err(RunArgs {
            memory_warn: Some("95".into()),
            memory_act: Some("90".into()),
            ..args()
        })
        .await;
        assert_eq!(e.field, "memory_warn");
    }

    #[tokio::test]
    async fn job_document_fills_gaps_but_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job.json");
        std::fs::write(
            &job,
            r#"{"prompt":"from job","model":"m-job","max_turns":7,"agent_arg":["--x","y"]}"#,
        )
        .unwrap();
        let cfg = load(RunArgs {
            prompt: None,
            model: Some("m-flag".into()),
            job: Some(job.display().to_string()),
            ..args()
        })
        .await
        .unwrap();
        assert_eq!(cfg.prompt, "from job");
        assert_eq!(cfg.model.as_deref(), Some("m-flag"));
        assert_eq!(cfg.max_turns, 7);
        assert_eq!(cfg.agent_args, ["--x", "y"]);
    }

    #[tokio::test]
    async fn job_document_errors_are_bad_job_and_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job.json");
        std::fs::write(&job, r#"{"prompt":"p","colour":"red"}"#).unwrap();
        let e = load_err(RunArgs {
            prompt: None,
            job: Some(job.display().to_string()),
            ..args()
        })
        .await;
        assert_eq!(
            (e.outcome, e.field.as_str()),
            (Outcome::BadJob, "job.colour")
        );
        std::fs::write(&job, r#"{"prompt":"p","max_turns":"many"}"#).unwrap();
        let e = load_err(RunArgs {
            prompt: None,
            job: Some(job.display().to_string()),
            ..args()
        })
        .await;
        assert_eq!(
            (e.outcome, e.field.as_str()),
            (Outcome::BadJob, "job.max_turns")
        );
        let e = load_err(RunArgs {
            job: Some("/nonexistent/job.json".into()),
            ..args()
        })
        .await;
        assert_eq!((e.outcome, e.field.as_str()), (Outcome::BadJob, "job"));
        assert!(e.message.contains("/nonexistent/job.json"), "{e}");
    }

    #[test]
    fn job_keys_cover_every_run_option() {
        let keys = job_document_keys();
        for k in [
            "request_id",
            "prompt",
            "max_turns",
            "agent_arg",
            "memory_limit",
            "overwrite",
        ] {
            assert!(keys.contains(&k.to_string()), "{k}");
        }
        assert!(!keys.contains(&"job".to_string()));
    }

    #[test]
    fn agent_cmd_splits_leading_arguments() {
        let a = parse_agent_cmd("/bin/genrun scripted-agent --script demo").unwrap();
        assert_eq!(a.program, PathBuf::from("/bin/genrun"));
        assert_eq!(a.leading_args, ["scripted-agent", "--script", "demo"]);
    }
}
