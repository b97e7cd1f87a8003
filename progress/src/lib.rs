//! Live, typed, redacted progress events for logs, terminals and the orchestrator.
//!
//! genrun's run emits typed [`EventKind`]s through a [`Progress`] handle and never prints. `Progress` stamps
//! each into an [`Event`] (`ts`, gap-free `seq`, `request_id`, `kind`, `msg`), redacts it with a
//! [`Redactor`], caps it at [`MAX_LINE_BYTES`], and fans it out:
//!
//! - to one renderer on its own thread: JSON lines on stdout (the default when stdout is not a terminal,
//!   e.g. ECS with awslogs) or the terminal view ([`LogFormat::Pretty`], see the `pretty` module docs);
//! - to the HTTP sink when configured ([`HttpSinkConfig`]; payload documented in [`http`]).
//!
//! The wire shape of an event is documented on [`Event`] and in `schemas/event.schema.json`.
//!
//! The same [`Redactor`] serves genrun's other outputs: [`Redactor::writer`] for the stored transcript and
//! [`redacting_stderr`] for genrun's own logs.

mod cap;
mod emitter;
mod event;
pub mod http;
pub mod pretty;
mod redact;
mod render;

pub use emitter::{FinishReport, LogFormat, ParseLogFormatError, Progress, ProgressConfig};
pub use event::{Event, EventKind};
pub use http::{HttpSinkConfig, HttpSinkError};
pub use redact::{
    redacting_stderr, secret_values_from_env, RedactingStderr, RedactingStderrRecord,
    RedactingWriter, Redactor, RedactorError, KEY_BLOCK_WINDOW, MIN_SECRET_LEN, REDACTED,
    SECRET_ENV_NAMES,
};

/// No serialized event, newline included, is longer than this (CloudWatch splits events at 256 KiB).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
