//! [`Progress`]: the handle the run uses to emit events, and the fan-out to renderers and the HTTP sink.
//!
//! `emit` does the per-event work (redaction, line cap, sequence number, timestamp) on the caller's thread
//! under a short lock, then hands the finished line to the renderer thread and the HTTP queue. It never
//! waits for I/O and never fails.

use std::io::IsTerminal;
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::cap::cap_value;
use crate::http::{HttpSink, HttpSinkConfig};
use crate::pretty::PrettyRenderer;
use crate::render::{self, JsonRenderer, RenderMsg, Renderer};
use crate::{Event, EventKind, Redactor, MAX_LINE_BYTES};

/// How events are shown on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (see [`Event`]).
    Json,
    /// The terminal view: status line and log (see [`crate::pretty`]).
    Pretty,
    /// `Pretty` when stdout is a terminal, else `Json`.
    Auto,
}

impl LogFormat {
    /// `Auto` decided against the real stdout.
    pub fn resolve(self) -> LogFormat {
        match self {
            LogFormat::Auto if std::io::stdout().is_terminal() => LogFormat::Pretty,
            LogFormat::Auto => LogFormat::Json,
            other => other,
        }
    }
}

/// An unknown `--log-format` value.
#[derive(Debug, thiserror::Error)]
#[error("unknown log format {0:?} (expected json, pretty or auto)")]
pub struct ParseLogFormatError(pub String);

impl FromStr for LogFormat {
    type Err = ParseLogFormatError;

    fn from_str(s: &str) -> Result<LogFormat, ParseLogFormatError> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            "auto" => Ok(LogFormat::Auto),
            _ => Err(ParseLogFormatError(s.to_string())),
        }
    }
}

/// Everything [`Progress::start`] needs.
#[derive(Debug, Clone)]
pub struct ProgressConfig {
    /// Put on every event.
    pub request_id: String,
    pub format: LogFormat,
    /// The HTTP sink, when `--progress-url` is given.
    pub http: Option<HttpSinkConfig>,
    /// The terminal view's heading (e.g. `genrun demo`).
    pub pretty_title: String,
}

impl ProgressConfig {
    /// JSON-or-terminal by stdout, no HTTP sink, title `genrun`.
    pub fn new(request_id: impl Into<String>) -> ProgressConfig {
        ProgressConfig {
            request_id: request_id.into(),
            format: LogFormat::Auto,
            http: None,
            pretty_title: "genrun".into(),
        }
    }
}

/// What the end of the stream achieved. The HTTP figures are zero without a sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FinishReport {
    /// Events the receiver accepted.
    pub http_sent: u64,
    /// Events the receiver never got: dropped from the full queue, rejected, or still queued at the
    /// deadline (`http_undelivered`).
    pub http_dropped: u64,
    /// Part of `http_dropped`: events still queued or in flight when the deadline passed.
    pub http_undelivered: u64,
    /// Requests that failed (error, timeout, non-2xx, or abandoned at the deadline).
    pub http_failed_batches: u64,
    /// The renderer printed everything before the deadline.
    pub rendered_all: bool,
}

/// The event stream of one run. Cheap to clone; every clone feeds the same stream.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    request_id: String,
    redactor: Redactor,
    state: Mutex<EmitState>,
    http: Option<HttpSink>,
    finished: tokio::sync::Mutex<Option<FinishReport>>,
}

struct EmitState {
    seq: u64,
    closed: bool,
    render: Option<mpsc::Sender<RenderMsg>>,
}

/// Where the renderer writes.
enum Output {
    Stdout,
    Writer(Box<dyn std::io::Write + Send>),
}

/// Placeholders with the width of the real values, so the line cap can be applied before they are known.
const TS_PLACEHOLDER: &str = "0000-00-00T00:00:00.000Z";

impl Progress {
    /// Starts the renderer (per `cfg.format`, on stdout) and the HTTP sink. Call inside a tokio runtime
    /// when `cfg.http` is set; should the sink fail to start, the run goes on without it and an error is
    /// logged.
    pub fn start(cfg: ProgressConfig, redactor: Redactor) -> Progress {
        Progress::start_inner(cfg, redactor, Output::Stdout)
    }

    /// Like [`Progress::start`] but renders to `out` instead of stdout: JSON lines, or for
    /// [`LogFormat::Pretty`] the log lines without a status line. `Auto` means JSON here.
    pub fn start_with_writer(
        cfg: ProgressConfig,
        redactor: Redactor,
        out: Box<dyn std::io::Write + Send>,
    ) -> Progress {
        Progress::start_inner(cfg, redactor, Output::Writer(out))
    }

    fn start_inner(cfg: ProgressConfig, redactor: Redactor, output: Output) -> Progress {
        let renderer: Box<dyn Renderer> = match output {
            Output::Stdout => match cfg.format.resolve() {
                LogFormat::Pretty if std::io::stdout().is_terminal() => {
                    Box::new(PrettyRenderer::live(cfg.pretty_title.clone()))
                }
                LogFormat::Pretty => Box::new(PrettyRenderer::plain(
                    cfg.pretty_title.clone(),
                    Box::new(std::io::stdout()),
                )),
                _ => Box::new(JsonRenderer::new(Box::new(std::io::stdout()))),
            },
            Output::Writer(w) => match cfg.format {
                LogFormat::Pretty => Box::new(PrettyRenderer::plain(cfg.pretty_title.clone(), w)),
                _ => Box::new(JsonRenderer::new(w)),
            },
        };
        let render = match render::spawn(renderer) {
            Ok(tx) => Some(tx),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the progress renderer thread; events are not printed");
                None
            }
        };
        let http = cfg.http.and_then(|h| {
            let url = h.url.clone();
            match HttpSink::start(h, cfg.request_id.clone()) {
                Ok(sink) => Some(sink),
                Err(e) => {
                    tracing::error!(error = %e, %url, "progress HTTP sink disabled");
                    None
                }
            }
        });
        Progress {
            inner: Arc::new(Inner {
                request_id: cfg.request_id,
                redactor,
                state: Mutex::new(EmitState {
                    seq: 0,
                    closed: false,
                    render,
                }),
                http,
                finished: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Emits `kind` with its default message (made from the redacted fields, so a secret cut by the
    /// message's truncation cannot leak a fragment).
    pub fn emit(&self, kind: EventKind) {
        self.emit_inner(kind, None);
    }

    /// Emits `kind` with `msg`. Assigns `seq` and `ts`, redacts, caps the line; never blocks on output.
    /// Events emitted after [`Progress::finish`] are ignored.
    pub fn emit_msg(&self, kind: EventKind, msg: impl Into<String>) {
        self.emit_inner(kind, Some(msg.into()));
    }

    fn emit_inner(&self, kind: EventKind, msg: Option<String>) {
        let inner = &*self.inner;
        let mut event = prepare(&inner.request_id, kind, msg, &inner.redactor);
        let mut st = lock(&inner.state);
        if st.closed {
            return;
        }
        st.seq += 1;
        event.seq = st.seq;
        event.ts = now_ts();
        let line: Arc<str> = match serde_json::to_string(&event) {
            Ok(l) if l.len() < MAX_LINE_BYTES => Arc::from(l),
            _ => {
                let message = format!("could not encode a {} event", event.kind.name());
                event = fallback(&event, &message);
                Arc::from(serde_json::to_string(&event).unwrap_or_default())
            }
        };
        if let Some(http) = &inner.http {
            http.push(line.clone());
        }
        if let Some(tx) = &st.render {
            if tx.send(RenderMsg::Event(Box::new(event), line)).is_err() {
                st.render = None;
            }
        }
    }

    /// How many events have been emitted (the last `seq`).
    pub fn events_emitted(&self) -> u64 {
        lock(&self.inner.state).seq
    }

    /// The request id on every event.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// The redactor events go through (for the run's other outputs).
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// Feeds the terminal view's memory gauge without an event (other renderers ignore it).
    pub fn memory_sample(&self, used: u64, limit: u64) {
        let st = lock(&self.inner.state);
        if let Some(tx) = &st.render {
            let _ = tx.send(RenderMsg::Memory(used, limit));
        }
    }

    /// Ends the stream: later events are ignored, the renderer prints what it has, the HTTP sink sends what
    /// it can until `deadline` from now. Every call returns the report of the first.
    pub async fn finish(&self, deadline: Duration) -> FinishReport {
        let mut finished = self.inner.finished.lock().await;
        if let Some(report) = *finished {
            return report;
        }
        let until = tokio::time::Instant::now() + deadline;
        let render = {
            let mut st = lock(&self.inner.state);
            st.closed = true;
            st.render.take()
        };
        let rendered = async {
            let Some(tx) = render else { return true };
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            if tx.send(RenderMsg::Finish(done_tx)).is_err() {
                return false;
            }
            tokio::time::timeout_at(until, done_rx)
                .await
                .is_ok_and(|r| r.is_ok())
        };
        let http = async {
            match &self.inner.http {
                Some(sink) => Some(sink.finish(until).await),
                None => None,
            }
        };
        let (rendered_all, http) = tokio::join!(rendered, http);
        let http = http.unwrap_or_default();
        let report = FinishReport {
            http_sent: http.sent,
            http_dropped: http.dropped,
            http_undelivered: http.undelivered,
            http_failed_batches: http.failed_batches,
            rendered_all,
        };
        *finished = Some(report);
        report
    }
}

fn lock(m: &Mutex<EmitState>) -> MutexGuard<'_, EmitState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Redacts every string of the event and cuts it to the line cap; `seq` and `ts` are placeholders of
/// their final width, filled in by the caller.
fn prepare(request_id: &str, kind: EventKind, msg: Option<String>, redactor: &Redactor) -> Event {
    let name = kind.name();
    let draft = |kind: EventKind, msg: String| Event {
        ts: TS_PLACEHOLDER.into(),
        seq: u64::MAX,
        request_id: request_id.to_string(),
        kind,
        msg,
    };
    let warning = |what: &str| {
        fallback(
            &draft(
                EventKind::Warning {
                    message: String::new(),
                },
                String::new(),
            ),
            &format!("{what} a {name} event"),
        )
    };
    // Redact the kind first so the default message is made from redacted text.
    let Ok(mut kind_value) = serde_json::to_value(&kind) else {
        return warning("could not encode");
    };
    redactor.redact_json(&mut kind_value);
    let Ok(kind) = serde_json::from_value::<EventKind>(kind_value) else {
        return warning("could not encode");
    };
    let msg = match msg {
        Some(m) => redactor.redact(&m).into_owned(),
        None => kind.default_msg(),
    };
    let Ok(mut v) = serde_json::to_value(draft(kind, msg)) else {
        return warning("could not encode");
    };
    if !cap_value(&mut v, MAX_LINE_BYTES) {
        return warning("could not shrink");
    }
    match serde_json::from_value::<Event>(v) {
        Ok(mut e) => {
            e.ts = TS_PLACEHOLDER.into();
            e.seq = u64::MAX;
            e
        }
        Err(_) => warning("could not encode"),
    }
}

/// A warning that stands in for an event that cannot be represented (e.g. a NaN where a number must be).
fn fallback(event: &Event, message: &str) -> Event {
    Event {
        ts: event.ts.clone(),
        seq: event.seq,
        request_id: event.request_id.chars().take(256).collect(),
        kind: EventKind::Warning {
            message: message.to_string(),
        },
        msg: message.to_string(),
    }
}

/// Now as RFC 3339 UTC with milliseconds, e.g. `2026-05-01T12:00:03.412Z`.
fn now_ts() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format)
        .unwrap_or_else(|_| TS_PLACEHOLDER.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_parses() {
        assert_eq!("json".parse::<LogFormat>().ok(), Some(LogFormat::Json));
        assert_eq!("Pretty".parse::<LogFormat>().ok(), Some(LogFormat::Pretty));
        assert_eq!("auto".parse::<LogFormat>().ok(), Some(LogFormat::Auto));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        let ts = now_ts();
        assert_eq!(ts.len(), TS_PLACEHOLDER.len(), "{ts}");
        assert!(
            time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{ts}"
        );
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn non_finite_numbers_become_a_warning() {
        let kind = EventKind::MemoryWarning {
            used_bytes: 1,
            limit_bytes: 0,
            percent: f64::NAN,
        };
        let e = prepare("r", kind, None, &Redactor::new(Vec::<String>::new()));
        assert_eq!(
            e.kind,
            EventKind::Warning {
                message: "could not encode a memory_warning event".into()
            }
        );
    }
}
