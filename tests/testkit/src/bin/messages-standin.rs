//! Runs the Messages API stand-in as a process, for scripts and containers (tests/container-smoke.sh).
//!
//! Usage: `messages-standin [SCENARIO] [--port PORT]` (SCENARIO as `Scenario`'s names: `generation`,
//! `turn-limit`, `api-error-500`, `budget`, `long-bash:SECONDS`, `alloc-bash:BYTES`; default
//! `generation`). Prints the CLI's environment as `NAME=VALUE` lines (the first is `ANTHROPIC_BASE_URL`),
//! then serves until SIGTERM or SIGINT and prints the number of `/v1/messages` requests it answered.

use std::io::Write as _;

use anyhow::Context as _;
use genrun_testkit::standin::{Scenario, Standin};

fn main() -> anyhow::Result<()> {
    let mut scenario = Scenario::Generation;
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().context("--port needs a value")?;
                port = value.parse().context("--port: not a port number")?;
            }
            "-h" | "--help" => {
                println!("usage: messages-standin [SCENARIO] [--port PORT]");
                return Ok(());
            }
            other => scenario = other.parse()?,
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    runtime.block_on(async {
        let standin = Standin::start_on(scenario, port)?;
        let mut out = std::io::stdout().lock();
        for (name, value) in standin.env() {
            writeln!(out, "{name}={value}")?;
        }
        out.flush()?;
        drop(out);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("messages-standin: {} requests", standin.requests());
        for line in standin.log() {
            eprintln!("messages-standin: {line}");
        }
        Ok(())
    })
}
