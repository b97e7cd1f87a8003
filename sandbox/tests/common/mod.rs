//! Helpers shared by the sandbox's process tests: specs, reading output, waiting on real conditions.
#![allow(dead_code)]

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use genrun_sandbox::{Rlimits, SpawnSpec};
use tokio::io::AsyncReadExt;

/// Generous: the machine is a loaded 2-core box; deadlines only bound hangs.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn sh(script: &str, cwd: &Path) -> SpawnSpec {
    SpawnSpec {
        program: PathBuf::from("/bin/sh"),
        args: vec![OsString::from("-c"), OsString::from(script)],
        cwd: cwd.to_path_buf(),
        env: vec![("PATH".into(), genrun_sandbox::DEFAULT_PATH.into())],
        user: None,
        rlimits: Rlimits::default(),
        oom_score_adj: None,
        parent_death_signal: None,
    }
}

pub async fn read_all(mut r: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut s = String::new();
    tokio::time::timeout(DEADLINE, r.read_to_string(&mut s))
        .await
        .expect("output did not close in time")
        .expect("read output");
    s
}

/// Reads until `want` lines have arrived (not to EOF: the writer keeps running).
pub async fn read_lines(r: &mut (impl tokio::io::AsyncRead + Unpin), want: usize) -> Vec<String> {
    let mut buf = Vec::new();
    let fut = async {
        let mut b = [0u8; 256];
        while buf.iter().filter(|&&c| c == b'\n').count() < want {
            let n = r.read(&mut b).await.expect("read");
            assert!(
                n > 0,
                "stream closed early: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&b[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("lines in time");
    String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Polls `cond` every 20 ms until it holds; panics after `DEADLINE`.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let end = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f).await.expect("timed out")
}

/// A process is gone when /proc has no entry (a zombie still has one).
pub fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

pub fn proc_field(pid: u32, file: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}

pub fn is_root() -> bool {
    genrun_sandbox::is_root()
}
