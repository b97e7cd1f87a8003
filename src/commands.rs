//! One function per subcommand. Each builds what it needs, runs, and returns an exit code; every error is
//! mapped to an [`Outcome`] here or in the modules these call, never by `main`.

use std::time::Duration;

use clap::error::ErrorKind;
use genrun_progress::LogFormat;
use genrun_sandbox::{Reaper, ShutdownSignals};

use crate::cli::{Cli, Command, DemoArgs, ExitCodesArgs, PackageArgs, RunArgs};
use crate::config::{
    self, AgentIdentity, AgentProgram, MemorySettings, ProgressSettings, RunConfig,
};
use crate::exit::Outcome;
use crate::run::{self, Runtime};

/// How long progress renderers may take to flush at the end (the HTTP sink's deadline).
const PROGRESS_FLUSH: Duration = Duration::from_secs(3);

pub fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => run_command(*args),
        Command::Demo(args) => demo_command(args),
        Command::Package(args) => package_command(args),
        Command::ExitCodes(args) => exit_codes_command(args),
        Command::ScriptedAgent { args } => genrun_agent::scripted::main(args),
    }
}

/// Help and version go to stdout with 0; anything else is a bad command line (64).
pub fn usage_error(e: clap::Error) -> i32 {
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Outcome::Success.code(),
        _ => Outcome::Usage.code(),
    }
}

fn exit_codes_command(args: ExitCodesArgs) -> i32 {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::exit::table_json()).unwrap_or_default()
        );
    } else {
        print!("{}", crate::exit::table_markdown());
    }
    Outcome::Success.code()
}

fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("genrun: error: starting the async runtime: {e}");
            Outcome::OsError.code()
        })
}

/// Installs the reaper and signal handlers: the first things genrun does as PID 1.
fn supervision() -> Result<Runtime, i32> {
    let reaper = Reaper::install().map_err(|e| {
        eprintln!("genrun: error: installing the reaper: {e}");
        Outcome::OsError.code()
    })?;
    let signals = ShutdownSignals::install().map_err(|e| {
        eprintln!("genrun: error: installing signal handlers: {e}");
        Outcome::OsError.code()
    })?;
    if let Err(e) = genrun_sandbox::set_non_dumpable() {
        eprintln!("genrun: warning: could not mark genrun non-dumpable: {e}");
    }
    Ok(Runtime { reaper, signals })
}

fn run_command(mut args: RunArgs) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let runtime = match supervision() {
            Ok(r) => r,
            Err(code) => return code,
        };
        if let Err(e) = config::agent_args_from_env(&mut args) {
            eprintln!("genrun: error: {e}");
            return e.outcome.code();
        }
        let cfg = match config::load(args).await {
            Ok(cfg) => cfg,
            Err(failure) => return run::config_failure(*failure).await.code(),
        };
        execute_and_report(cfg, runtime, None).await
    })
}

/// Runs the pipeline in its own task so that a panic becomes an `internal` result instead of a lost run.
async fn execute_and_report(cfg: RunConfig, mut runtime: Runtime, demo: Option<&DemoArgs>) -> i32 {
    let title = format!("genrun {}", cfg.request_id);
    let (progress, redactor) = run::start_progress(&cfg, title);
    crate::run::init_logging(&cfg, &redactor);
    let task_cfg = cfg.clone();
    let (p, r) = (progress.clone(), redactor.clone());
    // A local task (current-thread runtime): its panic comes back as an error instead of ending genrun.
    let local = tokio::task::LocalSet::new();
    let handle = local.spawn_local(async move {
        let finished = run::execute(task_cfg, &mut runtime, &p, &r).await;
        (finished, runtime)
    });
    let finish_progress = |progress: genrun_progress::Progress| async move {
        let report = progress.finish(PROGRESS_FLUSH).await;
        if report.http_dropped > 0 || report.http_failed_batches > 0 {
            tracing::warn!(
                sent = report.http_sent,
                dropped = report.http_dropped,
                failed_batches = report.http_failed_batches,
                "progress events were not all delivered"
            );
        }
    };
    let outcome = match local.run_until(handle).await {
        Ok((finished, _runtime)) => {
            if let Some(_demo) = demo {
                let text = crate::summary::render(&finished.result, &finished.result_location);
                finish_progress(progress).await;
                print_summary(&cfg, &text);
            } else {
                finish_progress(progress).await;
            }
            finished.outcome
        }
        Err(e) => {
            let message = panic_message(e);
            tracing::error!(%message, "genrun panicked");
            let outcome = run::panic_result(&cfg, &redactor, &message).await;
            finish_progress(progress).await;
            outcome
        }
    };
    outcome.code()
}

fn print_summary(cfg: &RunConfig, text: &str) {
    // JSON lines own stdout in json mode; the human summary then goes to stderr.
    if cfg.progress.format.resolve() == LogFormat::Json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into()),
        Err(e) => e.to_string(),
    }
}

fn demo_command(args: DemoArgs) -> i32 {
    let format: LogFormat = match args.log_format.parse() {
        Ok(f) => f,
        Err(_) => {
            eprintln!(
                "genrun: error: log_format: invalid value {:?}: expected json, pretty or auto",
                args.log_format
            );
            return Outcome::Config.code();
        }
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("genrun: error: finding genrun's own executable for the scripted agent: {e}");
            return Outcome::OsError.code();
        }
    };
    let request_id = format!(
        "demo-{}",
        crate::result::now_rfc3339()
            .replace([':', '-'], "")
            .replace('T', "-")
            .split('.')
            .next()
            .unwrap_or("run")
    );
    let workspace =
        std::env::temp_dir().join(format!("genrun-demo-workspace-{}", std::process::id()));
    let identity = if genrun_sandbox::is_root() {
        match genrun_sandbox::lookup_user(config::defaults::AGENT_USER) {
            Some(u) if u.uid != 0 => AgentIdentity::User(u),
            // The scripted agent is genrun's own code: running it as root is safe.
            _ => AgentIdentity::Root,
        }
    } else {
        AgentIdentity::Inherit
    };
    let cfg = RunConfig {
        request_id,
        prompt: DEMO_PROMPT.into(),
        workspace: workspace.clone(),
        output: genrun_storage::Target::Local(args.out.clone()),
        agent: AgentProgram {
            program: exe,
            leading_args: vec![
                "scripted-agent".into(),
                "--script".into(),
                args.script.clone(),
            ],
        },
        model: None,
        max_turns: 50,
        timeout: Duration::from_secs(600),
        idle_timeout: config::defaults::IDLE_TIMEOUT,
        post_result_grace: config::defaults::POST_RESULT_GRACE,
        budget_usd: None,
        agent_args: Vec::new(),
        identity,
        agent_env: Vec::new(),
        stop_grace: config::defaults::STOP_GRACE,
        memory: MemorySettings {
            limit: None,
            interval: Duration::from_millis(250),
            warn_ratio: config::defaults::MEMORY_WARN_PERCENT / 100.0,
            act_ratio: config::defaults::MEMORY_ACT_PERCENT / 100.0,
            vcpu: None,
        },
        progress: ProgressSettings {
            format,
            url: None,
            token: None,
            heartbeat: config::defaults::HEARTBEAT,
            secret_env: Vec::new(),
        },
        s3: genrun_storage::S3Options::default(),
        overwrite: false,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async {
        let runtime = match supervision() {
            Ok(r) => r,
            Err(code) => return code,
        };
        execute_and_report(cfg, runtime, Some(&args)).await
    });
    let _ = std::fs::remove_dir_all(&workspace);
    code
}

/// The prompt the demo's scripted agent pretends to answer.
const DEMO_PROMPT: &str =
    "Build a full-stack todo app: a Vite + React client and an Express API server \
with in-memory storage, a README, and a .env.example.";

fn package_command(args: PackageArgs) -> i32 {
    let mut opts = genrun_packaging::PackageOptions::new(args.workspace.clone(), args.out.clone());
    let mut formats = Vec::new();
    for f in args
        .format
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        match f.parse() {
            Ok(fmt) => formats.push(fmt),
            Err(_) => {
                eprintln!("genrun: error: format: invalid value {f:?}: expected tar.zst and/or tar.gz, comma-separated");
                return Outcome::Config.code();
            }
        }
    }
    if formats.is_empty() {
        eprintln!("genrun: error: format: empty: expected tar.zst and/or tar.gz");
        return Outcome::Config.code();
    }
    opts.formats = formats;
    opts.extra_rules = args.rules.clone();
    let sizes = [
        (
            "max_total_bytes",
            &args.max_total_bytes,
            &mut opts.limits.max_total_bytes,
        ),
        (
            "max_file_bytes",
            &args.max_file_bytes,
            &mut opts.limits.max_file_bytes,
        ),
    ];
    for (field, raw, slot) in sizes {
        if let Some(v) = raw {
            match genrun_sandbox::memory::parse_size(v) {
                Ok(n) => *slot = n,
                Err(_) => {
                    eprintln!("genrun: error: {field}: invalid value {v:?}: expected a size such as 512M or 2G");
                    return Outcome::Config.code();
                }
            }
        }
    }
    if let Some(v) = &args.max_entries {
        match v.trim().parse() {
            Ok(n) => opts.limits.max_entries = n,
            Err(_) => {
                eprintln!(
                    "genrun: error: max_entries: invalid value {v:?}: expected a whole number"
                );
                return Outcome::Config.code();
            }
        }
    }
    match genrun_packaging::package(&opts) {
        Ok(report) => {
            print!("{}", genrun_packaging::render_summary(&report));
            Outcome::Success.code()
        }
        Err(e) => {
            eprintln!("genrun: error: {e}");
            match &e {
                genrun_packaging::PackageError::Rules { .. } => Outcome::Config.code(),
                _ if e.is_input_error() => Outcome::BadJob.code(),
                _ => Outcome::IoError.code(),
            }
        }
    }
}
