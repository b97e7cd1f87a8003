//! Integration tests of genrun-progress: the event stream as a consumer sees it (JSON lines, schema, line
//! cap, seq), redaction, the HTTP sink against a real receiver, and the terminal view under a pty.
//!
//! One test binary (like the repository's `tests/integration`), one module per area.

mod common;
mod demo;
mod http_sink;
mod pty;
mod redaction;
mod schema;
mod stream;
