//! One run, start to finish: preflight the store, prepare the workspace, run and supervise the agent,
//! sweep what it left behind, package the workspace, store the artifacts, and write result.json last.
//!
//! Whatever happens, this module ends by writing result.json (to the store, or to a local copy when the store
//! refuses it) and returning the outcome: an agent that failed, hung or was cancelled still gets its partial
//! work packaged and stored, because that is what the user paid for. When genrun was told to stop
//! (SIGTERM), every phase after the agent runs against the stop-grace deadline, and the artifacts are stored
//! in order of importance (archive and result first); a second signal skips straight to result.json.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use genrun_agent::command::{claude_args, AgentInvocation};
use genrun_packaging::{Format, PackageOptions, PackageReport};
use genrun_progress::{EventKind, Progress, ProgressConfig, Redactor};
use genrun_sandbox::memory::{GuardConfig, Probe, ProfileRecorder};
use genrun_sandbox::{EnvPolicy, Reaper, Rlimits, ShutdownSignals, Signal, SpawnError, SpawnSpec};
use genrun_storage::{Body, ErrorClass, PutOptions, Store, StoreError};
use tokio::time::Instant;

use crate::config::{AgentIdentity, RunConfig};
use crate::exit::Outcome;
use crate::result::{AgentFacts, ArchiveFacts, Artifact, ErrorRecord, PackageFacts, RunResult};
use crate::supervise::{self, Limits, MemoryWatch};

/// How a run ended: the outcome (exit code) and the result document as written.
pub struct Finished {
    pub outcome: Outcome,
    pub result: RunResult,
    /// Where result.json is (store location or local path).
    pub result_location: String,
}

/// Process-wide pieces a run needs: the one reaper and genrun's signal handlers.
pub struct Runtime {
    pub reaper: Reaper,
    pub signals: ShutdownSignals,
}

/// Time kept back from the stop grace for writing result.json.
const RESULT_RESERVE: Duration = Duration::from_millis(1500);
/// Deadline for writing result.json when no stop grace is running.
const RESULT_DEADLINE: Duration = Duration::from_secs(30);
/// Normal deadline for storing artifacts (S3 retries are bounded by it).
const STORE_DEADLINE: Duration = Duration::from_secs(120);
/// How long a preflight may take before the store counts as unreachable.
const PREFLIGHT_DEADLINE: Duration = Duration::from_secs(20);

/// Runs one job.
pub async fn execute(
    cfg: RunConfig,
    rt: &mut Runtime,
    progress: &Progress,
    redactor: &Redactor,
) -> Finished {
    let t0 = Instant::now();
    let mut result = RunResult::new(&cfg.request_id, crate::result::now_rfc3339());
    progress.emit(EventKind::Started {
        version: env!("CARGO_PKG_VERSION").into(),
        workspace: cfg.workspace.display().to_string(),
        output: target_display(&cfg),
        max_turns: cfg.max_turns,
    });

    // Preflight: prove the store is writable before any money is spent.
    let store = match genrun_storage::open(&cfg.output, &cfg.request_id, &cfg.s3).await {
        Ok(s) => s,
        Err(e) => return preflight_failure(result, &e, progress, redactor).await,
    };
    let status = status_json(&cfg.request_id, "running", None, &result.started_at);
    let preflight = genrun_storage::preflight(
        store.as_ref(),
        status,
        cfg.overwrite,
        Instant::now() + PREFLIGHT_DEADLINE,
    )
    .await;
    result.durations_ms.preflight = ms(t0.elapsed());
    match preflight {
        Ok(()) => progress.emit(EventKind::Preflight {
            store: store.location(""),
            ok: true,
            detail: None,
        }),
        Err(e) => {
            progress.emit(EventKind::Preflight {
                store: store.location(""),
                ok: false,
                detail: Some(e.to_string()),
            });
            return preflight_failure(result, &e, progress, redactor).await;
        }
    }

    // Staging: genrun's own files, unreadable by the agent.
    let staging = match make_staging(&cfg.request_id) {
        Ok(s) => s,
        Err(e) => {
            let outcome = Outcome::IoError;
            result.errors.push(ErrorRecord::new(
                "prepare",
                "io",
                format!("creating the staging directory: {e}"),
            ));
            return finish(
                result,
                outcome,
                Some(store),
                None,
                progress,
                redactor,
                Tail::default(),
            )
            .await;
        }
    };

    // The agent.
    let agent_started = Instant::now();
    let sup = match run_agent(&cfg, rt, progress, redactor, &staging).await {
        Ok(sup) => sup,
        Err((outcome, record)) => {
            result.errors.push(record);
            result.durations_ms.agent = ms(agent_started.elapsed());
            return finish(
                result,
                outcome,
                Some(store),
                Some(&staging),
                progress,
                redactor,
                Tail::default(),
            )
            .await;
        }
    };
    result.durations_ms.agent = ms(agent_started.elapsed());
    let AgentRun { supervised, memory } = sup;
    let mut facts = supervised.facts;
    let agent_outcome = supervised.outcome;
    result.agent_outcome = Some(agent_outcome);
    result.memory = serde_json::to_value(&memory).ok();

    // Whatever the agent left running is swept, those that left its group included.
    let agent_uid = match &cfg.identity {
        AgentIdentity::User(u) => Some(u.uid),
        _ => None,
    };
    let sweep = genrun_sandbox::sweep(
        &rt.reaper,
        agent_uid,
        Instant::now() + Duration::from_secs(5),
    )
    .await;
    facts.swept = sweep.swept;
    if sweep.remaining > 0 {
        result.errors.push(ErrorRecord::new(
            "agent",
            "sweep",
            format!(
                "{} processes of the run could not be killed",
                sweep.remaining
            ),
        ));
    }
    result.agent = Some(facts);

    // The panic path is tested through the binary: debug builds can be told to panic here.
    #[cfg(debug_assertions)]
    if std::env::var_os("GENRUN_DEBUG_PANIC").is_some() {
        panic!("GENRUN_DEBUG_PANIC: a deliberate panic for the panic-path test");
    }

    // From here on, a cancelled run works against the stop-grace deadline.
    let mut cancel = Cancel {
        first_at: supervised.cancelled_at,
        hurry: supervised.hurry,
        grace: cfg.stop_grace,
    };

    let mut report = None;
    if !cancel.hurry {
        let t = Instant::now();
        progress.emit(EventKind::Packaging {
            workspace: cfg.workspace.display().to_string(),
        });
        let mut opts = PackageOptions::new(cfg.workspace.clone(), staging.clone());
        opts.redact = redactor.secrets().to_vec();
        let job = tokio::task::spawn_blocking(move || genrun_packaging::package(&opts));
        tokio::pin!(job);
        let packaged = loop {
            tokio::select! {
                r = &mut job => break Some(r),
                _ = sleep_opt(cancel.deadline()) => break None,
                sig = rt.signals.recv() => if cancel.on_signal(sig, progress) {
                    break None;
                },
            }
        };
        result.durations_ms.package = ms(t.elapsed());
        match packaged {
            Some(Ok(Ok(r))) => {
                progress.emit(EventKind::Packaged {
                    files: r.files,
                    dropped: r.drops.len() as u64,
                    bytes_in: r.bytes_in,
                    archives: r
                        .archives
                        .iter()
                        .map(|a| (a.file_name.clone(), a.bytes))
                        .collect(),
                });
                result.package = Some(package_facts(&r));
                report = Some(r);
            }
            Some(Ok(Err(e))) => {
                let kind = if e.is_input_error() {
                    "workspace"
                } else {
                    "io"
                };
                result
                    .errors
                    .push(ErrorRecord::new("package", kind, e.to_string()));
            }
            Some(Err(e)) => {
                result
                    .errors
                    .push(ErrorRecord::new("package", "internal", e.to_string()))
            }
            None if !cancel.hurry => result.errors.push(ErrorRecord::new(
                "package",
                "deadline",
                "packaging did not finish within the stop grace",
            )),
            None => {}
        }
    }
    let package_failed = report.is_none() && !cancel.hurry;

    // Store the artifacts, then result.json last.
    let t = Instant::now();
    let mut store_outcome = None;
    if !cancel.hurry {
        let artifacts = artifact_list(report.as_ref(), &staging);
        progress.emit(EventKind::Storing {
            target: store.location(""),
            objects: artifacts.len(),
        });
        let stored = store_all(
            store.clone(),
            &cfg.request_id,
            artifacts,
            cfg.overwrite,
            &mut cancel,
            &mut rt.signals,
            progress,
        )
        .await;
        let bytes: u64 = stored.done.iter().map(|a| a.bytes).sum();
        progress.emit(EventKind::Stored {
            target: store.location(""),
            objects: stored.done.len(),
            bytes,
        });
        result.artifacts = stored.done;
        for (name, e) in &stored.failed {
            result.errors.push(ErrorRecord::new(
                "store",
                format!("{:?}", e.class()).to_lowercase(),
                format!("{name}: {e}"),
            ));
        }
        for name in &stored.abandoned {
            result.errors.push(ErrorRecord::new(
                "store",
                "abandoned",
                format!("{name}: not stored within the stop grace"),
            ));
        }
        store_outcome = worst_store_outcome(stored.failed.iter().map(|(_, e)| e));
    }
    result.durations_ms.upload = ms(t.elapsed());

    let mut outcome = agent_outcome;
    if package_failed && outcome == Outcome::Success {
        outcome = Outcome::IoError;
    }
    if cancel.first_at.is_some() {
        outcome = Outcome::Cancelled;
    }
    if let Some(o) = store_outcome {
        outcome = o;
    }
    let tail = Tail {
        store_failed: store_outcome.is_some(),
        deadline: cancel.first_at.map(|at| at + cfg.stop_grace),
    };
    finish(
        result,
        outcome,
        Some(store),
        Some(&staging),
        progress,
        redactor,
        tail,
    )
    .await
}

struct AgentRun {
    supervised: supervise::Supervised,
    memory: genrun_sandbox::memory::MemoryProfile,
}

/// Prepares the workspace and HOME, spawns the agent and supervises it.
async fn run_agent(
    cfg: &RunConfig,
    rt: &mut Runtime,
    progress: &Progress,
    redactor: &Redactor,
    staging: &Path,
) -> Result<AgentRun, (Outcome, ErrorRecord)> {
    let io = |what: &str, e: &dyn std::fmt::Display| {
        (
            Outcome::IoError,
            ErrorRecord::new("prepare", "io", format!("{what}: {e}")),
        )
    };
    std::fs::create_dir_all(&cfg.workspace).map_err(|e| {
        io(
            &format!("creating workspace {}", cfg.workspace.display()),
            &e,
        )
    })?;
    let home = std::env::temp_dir().join(format!(
        "genrun-home-{}-{}",
        cfg.request_id,
        std::process::id()
    ));
    std::fs::create_dir_all(&home)
        .map_err(|e| io(&format!("creating agent home {}", home.display()), &e))?;
    let (user, user_name) = match &cfg.identity {
        AgentIdentity::User(u) => {
            for dir in [&cfg.workspace, &home] {
                genrun_sandbox::prepare_dir_for(dir, u).map_err(|e| {
                    (
                        Outcome::OsError,
                        ErrorRecord::new(
                            "prepare",
                            "os",
                            format!("giving {} to {}: {e}", dir.display(), u.name),
                        ),
                    )
                })?;
            }
            (Some(u.clone()), u.name.clone())
        }
        AgentIdentity::Root => (None, "root".to_string()),
        AgentIdentity::Inherit => (
            None,
            std::env::var("USER").unwrap_or_else(|_| "genrun".into()),
        ),
    };

    // Memory: the limit and the sampler, before the agent exists.
    let probe = Probe::system();
    let limit = probe.detect_limit(cfg.memory.limit).await;
    let vcpu = probe.detect_vcpu(cfg.memory.vcpu).await;
    let guard = genrun_sandbox::memory::Guard::new(
        GuardConfig {
            warn_ratio: cfg.memory.warn_ratio,
            act_ratio: cfg.memory.act_ratio,
            ..GuardConfig::default()
        },
        limit.bytes,
    );
    let mut watch = MemoryWatch {
        sampler: probe.sampler(&limit),
        guard,
        recorder: ProfileRecorder::new(limit.clone(), cfg.memory.warn_ratio, cfg.memory.interval),
        limit_bytes: limit.bytes,
        last_percent: None,
    };

    let invocation = AgentInvocation {
        prompt: cfg.prompt.clone(),
        max_turns: cfg.max_turns,
        model: cfg.model.clone(),
        max_budget_usd: cfg.budget_usd,
        extra_args: cfg.agent_args.clone(),
    };
    let mut args: Vec<std::ffi::OsString> = cfg.agent.leading_args.iter().map(Into::into).collect();
    args.extend(claude_args(&invocation).into_iter().map(Into::into));
    let parent_env: Vec<(String, String)> = std::env::vars().collect();
    let env = genrun_sandbox::agent_env(
        &parent_env,
        &EnvPolicy {
            extra_names: cfg.agent_env.clone(),
            home: home.clone(),
            user: user_name.clone(),
            root_sandbox: cfg.identity == AgentIdentity::Root,
            set: Vec::new(),
        },
    );
    let spec = SpawnSpec {
        program: cfg.agent.program.clone(),
        args,
        cwd: cfg.workspace.clone(),
        env,
        user,
        rlimits: Rlimits::default(),
        oom_score_adj: Some(1000),
        parent_death_signal: Some(Signal::Kill),
    };
    let spawned = genrun_sandbox::spawn(spec, &rt.reaper).map_err(|e| {
        let outcome = match &e {
            SpawnError::NotFound { .. } | SpawnError::NotExecutable { .. } => Outcome::Unavailable,
            _ => Outcome::OsError,
        };
        (outcome, ErrorRecord::new("agent", "spawn", e.to_string()))
    })?;

    let transcript = open_transcript(&staging.join("transcript.jsonl.zst"), redactor)
        .map_err(|e| io("creating the transcript", &e))?;
    let limits = Limits {
        max_turns: cfg.max_turns,
        budget_usd: cfg.budget_usd,
        timeout: cfg.timeout,
        idle_timeout: cfg.idle_timeout,
        post_result_grace: cfg.post_result_grace,
        heartbeat: cfg.progress.heartbeat,
        memory_interval: cfg.memory.interval,
        int_grace: (cfg.stop_grace / 5).min(Duration::from_secs(5)),
        term_grace: (cfg.stop_grace / 8).min(Duration::from_secs(3)),
        drain: Duration::from_secs(2),
        workspace: cfg.workspace.clone(),
    };
    let facts = AgentFacts {
        program: cfg.agent.program.display().to_string(),
        user: Some(user_name),
        model: cfg.model.clone(),
        max_turns: cfg.max_turns,
        budget_usd: cfg.budget_usd,
        ..AgentFacts::default()
    };
    let supervised = supervise::supervise(
        spawned,
        transcript,
        &limits,
        progress,
        &mut rt.signals,
        &mut watch,
        facts,
    )
    .await;
    if let Some(genrun_sandbox::ExitInfo::Signaled { signal, .. }) = supervised.exit {
        if signal == libc::SIGKILL && supervised.outcome == Outcome::AgentKilled {
            watch
                .recorder
                .record_oom_kill(supervised.facts.pid.unwrap_or(0), "agent".into());
        }
    }
    let memory = watch.recorder.finish(vcpu);
    let _ = std::fs::remove_dir_all(&home);
    Ok(AgentRun { supervised, memory })
}

fn open_transcript(
    path: &Path,
    redactor: &Redactor,
) -> std::io::Result<Box<dyn std::io::Write + Send>> {
    let file = std::fs::File::create(path)?;
    let encoder = zstd::Encoder::new(file, 3)?.auto_finish();
    Ok(Box::new(redactor.writer(encoder)))
}

/// One artifact to store.
struct Pending {
    name: &'static str,
    path: PathBuf,
    content_type: &'static str,
    sha256: Option<String>,
}

/// The artifacts in order of importance: the archive first, the transcript last.
fn artifact_list(report: Option<&PackageReport>, staging: &Path) -> Vec<Pending> {
    let mut out = Vec::new();
    if let Some(r) = report {
        for format in [Format::TarZst, Format::TarGz] {
            if let Some(a) = r.archives.iter().find(|a| a.format == format) {
                let (name, content_type) = match format {
                    Format::TarZst => ("app.tar.zst", "application/zstd"),
                    Format::TarGz => ("app.tar.gz", "application/gzip"),
                };
                out.push(Pending {
                    name,
                    path: a.path.clone(),
                    content_type,
                    sha256: Some(a.sha256.clone()),
                });
            }
        }
        out.push(Pending {
            name: "manifest.json",
            path: r.manifest.clone(),
            content_type: "application/json",
            sha256: Some(r.manifest_sha256.clone()),
        });
    }
    let transcript = staging.join("transcript.jsonl.zst");
    if transcript.exists() {
        out.push(Pending {
            name: "transcript.jsonl.zst",
            path: transcript,
            content_type: "application/zstd",
            sha256: None,
        });
    }
    out
}

/// Signals that arrive after the agent has finished: the first starts the stop-grace clock (if the agent
/// phase did not already), a second skips straight to result.json.
struct Cancel {
    first_at: Option<Instant>,
    hurry: bool,
    grace: Duration,
}

impl Cancel {
    /// The deadline for packaging and storing, with time kept back for result.json.
    fn deadline(&self) -> Option<Instant> {
        self.first_at
            .map(|at| at + self.grace.saturating_sub(RESULT_RESERVE))
    }

    /// Records a signal; true when genrun must now skip to result.json.
    fn on_signal(&mut self, sig: Signal, progress: &Progress) -> bool {
        if self.first_at.is_none() {
            self.first_at = Some(Instant::now());
            progress.emit(EventKind::Stopping {
                reason: format!("{sig}: salvaging within the stop grace"),
                signal: None,
            });
        } else {
            self.hurry = true;
            progress.emit(EventKind::Stopping {
                reason: format!("second {sig}: skipping to result.json"),
                signal: None,
            });
        }
        self.hurry
    }
}

/// What storing the artifacts came to.
struct StoreOutcome {
    done: Vec<Artifact>,
    failed: Vec<(String, StoreError)>,
    /// Not finished when the stop grace ran out or a second signal came.
    abandoned: Vec<String>,
}

/// Stores the artifacts in parallel; once cancelled, the archive goes first and alone. A signal starts
/// (or, the second time, ends) the stop grace; what is unfinished at its deadline is abandoned.
async fn store_all(
    store: Arc<dyn Store>,
    request_id: &str,
    artifacts: Vec<Pending>,
    overwrite: bool,
    cancel: &mut Cancel,
    signals: &mut ShutdownSignals,
    progress: &Progress,
) -> StoreOutcome {
    let mut out = StoreOutcome {
        done: Vec::new(),
        failed: Vec::new(),
        abandoned: Vec::new(),
    };
    let mut order: Vec<(usize, Artifact)> = Vec::new();
    let mut queue: std::collections::VecDeque<(usize, Pending)> =
        artifacts.into_iter().enumerate().collect();
    let mut set = tokio::task::JoinSet::new();
    let mut names = std::collections::BTreeMap::new();
    let start = |set: &mut tokio::task::JoinSet<_>, i: usize, a: Pending, deadline: Instant| {
        let store = store.clone();
        let request_id = request_id.to_string();
        set.spawn(async move {
            let mut metadata = std::collections::BTreeMap::new();
            metadata.insert("request-id".to_string(), request_id.clone());
            if let Some(sha) = &a.sha256 {
                metadata.insert("sha256".to_string(), sha.clone());
            }
            let opts = PutOptions {
                content_type: a.content_type.into(),
                metadata,
                if_none_match: !overwrite,
            };
            let r = store
                .put(a.name, Body::File(a.path.clone()), &opts, deadline)
                .await;
            (i, a.name, r)
        });
    };
    loop {
        // Cancelled: one at a time, most important first. Otherwise everything at once.
        let parallel = if cancel.first_at.is_some() {
            1
        } else {
            usize::MAX
        };
        while set.len() < parallel {
            let Some((i, a)) = queue.pop_front() else {
                break;
            };
            let deadline = cancel
                .deadline()
                .unwrap_or_else(|| Instant::now() + STORE_DEADLINE);
            names.insert(i, a.name);
            start(&mut set, i, a, deadline);
        }
        if set.is_empty() {
            break;
        }
        tokio::select! {
            next = set.join_next() => match next {
                Some(Ok((i, name, r))) => {
                    names.remove(&i);
                    match r {
                        Ok(s) => order.push((i, Artifact { name: name.into(), location: s.location, bytes: s.bytes, sha256: s.sha256 })),
                        Err(e) => out.failed.push((name.to_string(), e)),
                    }
                }
                Some(Err(e)) => tracing::error!(error = %e, "an upload task failed"),
                None => break,
            },
            _ = sleep_opt(cancel.deadline()) => break,
            sig = signals.recv() => if cancel.on_signal(sig, progress) {
                break;
            },
        }
    }
    set.abort_all();
    out.abandoned = names
        .into_values()
        .map(String::from)
        .chain(queue.into_iter().map(|(_, a)| a.name.to_string()))
        .collect();
    order.sort_by_key(|(i, _)| *i);
    out.done = order.into_iter().map(|(_, a)| a).collect();
    out
}

/// The outcome storing failures force, worst first: refused credentials, then everything else.
fn worst_store_outcome<'a>(errors: impl Iterator<Item = &'a StoreError>) -> Option<Outcome> {
    let mut worst = None;
    for e in errors {
        let o = match e.class() {
            ErrorClass::AccessDenied => Outcome::AccessDenied,
            _ => Outcome::StoreFailed,
        };
        if worst != Some(Outcome::AccessDenied) {
            worst = Some(o);
        }
    }
    worst
}

fn class_outcome(e: &StoreError) -> Outcome {
    match e.class() {
        ErrorClass::AccessDenied => Outcome::AccessDenied,
        ErrorClass::Config => Outcome::Config,
        ErrorClass::Unavailable => Outcome::Unavailable,
        ErrorClass::Failed => Outcome::StoreFailed,
        ErrorClass::NotFound | ErrorClass::Exists => Outcome::BadJob,
    }
}

/// The store failed its preflight: it takes nothing more (and a finished run's result.json is never
/// clobbered), so the result is kept locally and named in the log.
async fn preflight_failure(
    mut result: RunResult,
    e: &StoreError,
    progress: &Progress,
    redactor: &Redactor,
) -> Finished {
    let message = match e.class() {
        ErrorClass::Exists => {
            format!(
                "{e}: a finished run with this request id exists; pass --overwrite to replace it"
            )
        }
        _ => e.to_string(),
    };
    result.errors.push(ErrorRecord::new(
        "preflight",
        format!("{:?}", e.class()).to_lowercase(),
        message,
    ));
    finish(
        result,
        class_outcome(e),
        None,
        None,
        progress,
        redactor,
        Tail::default(),
    )
    .await
}

/// How a run's last write goes.
#[derive(Default)]
struct Tail {
    /// Storing some artifact failed: they stay in staging, which the result names.
    store_failed: bool,
    /// The end of the stop grace, when genrun was told to stop.
    deadline: Option<Instant>,
}

/// Writes result.json last (status.json just before it; just after it when the stop grace is running),
/// emits the result event, and cleans up.
async fn finish(
    mut result: RunResult,
    outcome: Outcome,
    store: Option<Arc<dyn Store>>,
    staging: Option<&Path>,
    progress: &Progress,
    redactor: &Redactor,
    tail: Tail,
) -> Finished {
    result.set_outcome(outcome);
    result.finished_at = crate::result::now_rfc3339();
    result.progress.events = progress.events_emitted() + 1;
    let started = time::OffsetDateTime::parse(
        &result.started_at,
        &time::format_description::well_known::Rfc3339,
    )
    .ok();
    result.durations_ms.total = started
        .map(|s| {
            (time::OffsetDateTime::now_utc() - s)
                .whole_milliseconds()
                .max(0) as u64
        })
        .unwrap_or(0);
    // When storing failed, the artifacts stay in staging and the result names that copy.
    if tail.store_failed || store.is_none() {
        if let Some(dir) = staging {
            result.local_copy = Some(dir.display().to_string());
        }
    }

    let mut location = String::from("(not written)");
    let deadline = tail
        .deadline
        .unwrap_or_else(|| Instant::now() + RESULT_DEADLINE);
    if let Some(store) = &store {
        // Normally status.json first; within the stop grace result.json goes first, as it matters more.
        let stopping = tail.deadline.is_some();
        if !stopping {
            put_status(store.as_ref(), &result, deadline).await;
        }
        let body = result_bytes(&result, redactor);
        let opts = PutOptions {
            content_type: "application/json".into(),
            metadata: [("request-id".to_string(), result.request_id.clone())]
                .into_iter()
                .collect(),
            if_none_match: false,
        };
        match store
            .put("result.json", Body::Bytes(body), &opts, deadline)
            .await
        {
            Ok(s) => location = s.location,
            Err(e) => {
                let forced = match e.class() {
                    ErrorClass::AccessDenied => Outcome::AccessDenied,
                    _ => Outcome::StoreFailed,
                };
                result.errors.push(ErrorRecord::new(
                    "store",
                    "result",
                    format!("result.json: {e}"),
                ));
                result.set_outcome(forced);
                if let Some(dir) = staging {
                    result.local_copy = Some(dir.display().to_string());
                }
            }
        }
        if stopping {
            put_status(store.as_ref(), &result, deadline).await;
        }
    }
    if location == "(not written)" {
        // Keep a local copy so nothing is lost; its path goes to the log.
        let dir = staging.map(Path::to_path_buf).unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "genrun-{}-{}-result",
                result.request_id,
                std::process::id()
            ))
        });
        let path = dir.join("result.json");
        let written = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&path, result_bytes(&result, redactor)));
        match written {
            Ok(()) => {
                tracing::error!(path = %path.display(), "result.json could not be stored; kept a local copy");
                location = path.display().to_string();
            }
            Err(e) => tracing::error!(error = %e, "result.json could not be written anywhere"),
        }
    } else if let (Some(dir), None) = (staging, &result.local_copy) {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Some(copy) = &result.local_copy {
        tracing::error!(path = %copy, "artifacts kept locally");
    }
    progress.emit(EventKind::Result {
        outcome: result.outcome.name().into(),
        exit_code: result.exit_code,
        duration_ms: result.durations_ms.total,
    });
    Finished {
        outcome: result.outcome,
        result,
        result_location: location,
    }
}

/// Marks the run finished in status.json (best effort: result.json is what counts).
async fn put_status(store: &dyn Store, result: &RunResult, deadline: Instant) {
    let status = status_json(
        &result.request_id,
        "finished",
        Some(result),
        &result.started_at,
    );
    let opts = PutOptions {
        content_type: "application/json".into(),
        metadata: Default::default(),
        if_none_match: false,
    };
    if let Err(e) = store
        .put("status.json", Body::Bytes(status), &opts, deadline)
        .await
    {
        tracing::warn!(error = %e, "updating status.json failed");
    }
}

fn result_bytes(result: &RunResult, redactor: &Redactor) -> Bytes {
    let mut v = serde_json::to_value(result).unwrap_or(serde_json::Value::Null);
    redactor.redact_json(&mut v);
    let mut s = serde_json::to_vec_pretty(&v).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

fn status_json(
    request_id: &str,
    state: &str,
    result: Option<&RunResult>,
    started_at: &str,
) -> Bytes {
    let mut v = serde_json::json!({
        "state": state,
        "request_id": request_id,
        "started_at": started_at,
        "genrun_version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(r) = result {
        v["outcome"] = serde_json::json!(r.outcome.name());
        v["exit_code"] = serde_json::json!(r.exit_code);
        v["finished_at"] = serde_json::json!(r.finished_at);
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn package_facts(r: &PackageReport) -> PackageFacts {
    PackageFacts {
        files: r.files,
        dirs: r.dirs,
        symlinks: r.symlinks,
        bytes_in: r.bytes_in,
        tar_bytes: r.tar_bytes,
        tar_sha256: r.tar_sha256.clone(),
        archives: r
            .archives
            .iter()
            .map(|a| {
                (
                    a.file_name.clone(),
                    ArchiveFacts {
                        bytes: a.bytes,
                        sha256: a.sha256.clone(),
                    },
                )
            })
            .collect(),
        dropped: r.drops.len() as u64,
        drops_by_reason: r.drops_by_reason.clone(),
        redacted_files: r.redacted_files.clone(),
    }
}

/// genrun's private staging directory (mode 0700).
fn make_staging(request_id: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "genrun-staging-{request_id}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    genrun_sandbox::restrict_to_owner(&dir).map_err(std::io::Error::other)?;
    Ok(dir)
}

fn target_display(cfg: &RunConfig) -> String {
    match &cfg.output {
        genrun_storage::Target::Local(p) => p.join(&cfg.request_id).display().to_string(),
        genrun_storage::Target::S3 { bucket, prefix } => {
            format!(
                "s3://{bucket}/{}{}/",
                if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{}/", prefix.trim_end_matches('/'))
                },
                cfg.request_id
            )
        }
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Builds the redactor and progress renderers for a run.
pub fn start_progress(cfg: &RunConfig, title: String) -> (Progress, Redactor) {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut secrets = genrun_progress::secret_values_from_env(&env, &cfg.progress.secret_env);
    if let Some(t) = &cfg.progress.token {
        secrets.push(t.clone());
    }
    let redactor = Redactor::new(secrets);
    let http =
        cfg.progress.url.as_ref().map(|url| {
            genrun_progress::HttpSinkConfig::new(url.clone(), cfg.progress.token.clone())
        });
    let progress = Progress::start(
        ProgressConfig {
            request_id: cfg.request_id.clone(),
            format: cfg.progress.format,
            http,
            pretty_title: title,
        },
        redactor.clone(),
    );
    (progress, redactor)
}

/// A configuration that failed validation: say why on stderr and, when the request id and output are
/// known, write a result.json saying so (never over a finished run's).
pub async fn config_failure(failure: crate::config::LoadFailure) -> Outcome {
    let e = &failure.error;
    eprintln!("genrun: error: {e}");
    let (Some(request_id), Some(output)) = (failure.request_id, failure.output) else {
        return e.outcome;
    };
    let mut result = RunResult::new(&request_id, crate::result::now_rfc3339());
    result
        .errors
        .push(ErrorRecord::new("config", e.outcome.name(), e.to_string()));
    result.set_outcome(e.outcome);
    result.finished_at = result.started_at.clone();
    let deadline = Instant::now() + PREFLIGHT_DEADLINE;
    let redactor = Redactor::new(genrun_progress::secret_values_from_env(
        &std::env::vars().collect::<Vec<_>>(),
        &[],
    ));
    if let Ok(store) = genrun_storage::open(&output, &request_id, &failure.s3).await {
        let opts = PutOptions {
            content_type: "application/json".into(),
            metadata: Default::default(),
            if_none_match: true,
        };
        if let Err(err) = store
            .put(
                "result.json",
                Body::Bytes(result_bytes(&result, &redactor)),
                &opts,
                deadline,
            )
            .await
        {
            tracing::debug!(error = %err, "no result.json for the failed configuration");
        }
    }
    e.outcome
}

/// genrun panicked mid-run: kill what is left of the agent and write an `internal` result.json.
pub async fn panic_result(cfg: &RunConfig, redactor: &Redactor, message: &str) -> Outcome {
    if let Ok(procs) = genrun_sandbox::tree::snapshot() {
        for p in genrun_sandbox::tree::descendants(&procs, std::process::id()) {
            let _ = genrun_sandbox::signal_pid(p.pid, Signal::Kill);
        }
    }
    let mut result = RunResult::new(&cfg.request_id, crate::result::now_rfc3339());
    result
        .errors
        .push(ErrorRecord::new("genrun", "panic", message.to_string()));
    result.set_outcome(Outcome::Internal);
    let deadline = Instant::now() + PREFLIGHT_DEADLINE;
    let body = result_bytes(&result, redactor);
    let stored = match genrun_storage::open(&cfg.output, &cfg.request_id, &cfg.s3).await {
        Ok(store) => {
            let opts = PutOptions {
                content_type: "application/json".into(),
                metadata: Default::default(),
                if_none_match: false,
            };
            store
                .put("result.json", Body::Bytes(body.clone()), &opts, deadline)
                .await
                .is_ok()
        }
        Err(_) => false,
    };
    if !stored {
        let path = std::env::temp_dir().join(format!(
            "genrun-{}-{}-result.json",
            cfg.request_id,
            std::process::id()
        ));
        if std::fs::write(&path, &body).is_ok() {
            tracing::error!(path = %path.display(), "result.json kept locally");
        }
    }
    Outcome::Internal
}

/// genrun's own logs: stderr, redacted, JSON when events are JSON.
pub fn init_logging(cfg: &RunConfig, redactor: &Redactor) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GENRUN_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let writer = genrun_progress::redacting_stderr(redactor.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if cfg.progress.format.resolve() == genrun_progress::LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}
