//! Driving the Claude Code CLI from a supervisor.
//!
//! The CLI's `--output-format stream-json --verbose` stream is the only progress signal we get, and it changes
//! shape almost daily, so this crate keeps everything about it in one place:
//! - [`stream`]: the wire types and a lenient per-line parser (unknown shapes are data, never errors);
//! - [`state`]: folding parsed events into turns, tool counts and the final result;
//! - [`reader`]: reading lines of any size without unbounded buffering, teeing the raw transcript;
//! - [`command`]: the CLI's argument vector;
//! - [`scripted`]: a scripted stand-in for the CLI that emits the same line shapes, for demos and tests.

pub mod command;
pub mod reader;
pub mod scripted;
pub mod state;
pub mod stream;
