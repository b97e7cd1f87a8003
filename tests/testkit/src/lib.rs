//! Real servers for genrun's tests, each started in-process on 127.0.0.1 with an ephemeral port.
//!
//! Every module owns one server: `s3server` (an S3 protocol server backed by `s3s-fs`), `standin` (an
//! Anthropic Messages API stand-in that plays a scripted generation for the real Claude Code CLI) and
//! `receiver` (an HTTP receiver for genrun's progress sink with programmable misbehaviour).

pub mod receiver;
pub mod s3server;
pub mod standin;
