//! Runs the test S3 server (`genrun_testkit::s3server`) as a process, for tests/container-smoke.sh.
//!
//! Usage: `s3-testserver [BUCKET]` (default bucket `genrun-smoke`, created at start). Prints `NAME=VALUE`
//! lines: genrun's `GENRUN_S3_ENDPOINT` and `GENRUN_S3_PATH_STYLE`, the AWS credentials and region of
//! `S3Server::env`, and `S3_ROOT`, the directory holding the objects (`S3_ROOT/BUCKET/KEY`). Serves until
//! SIGTERM or SIGINT.

use std::io::Write as _;

use anyhow::Context as _;
use genrun_testkit::s3server::S3Server;

fn main() -> anyhow::Result<()> {
    let bucket = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "genrun-smoke".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the runtime")?;
    runtime.block_on(async {
        let server = S3Server::start().await?;
        server.create_bucket(&bucket).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "GENRUN_S3_ENDPOINT={}", server.endpoint)?;
        writeln!(out, "GENRUN_S3_PATH_STYLE=true")?;
        for (name, value) in server.env() {
            writeln!(out, "{name}={value}")?;
        }
        writeln!(out, "S3_ROOT={}", server.root.display())?;
        out.flush()?;
        drop(out);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
