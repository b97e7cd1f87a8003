//! Errors of the sandbox's set-up operations (spawning has its own `SpawnError`, user lookup `UserError`).

use std::io;
use std::path::PathBuf;

/// A set-up step of the sandbox failed. All of these are OS errors to the binary (exit 71) except where it
/// decides otherwise.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no tokio runtime is running (the reaper and signal handlers need one)")]
    NoRuntime,
    #[error("cannot become a child subreaper")]
    Subreaper {
        #[source]
        source: io::Error,
    },
    #[error("cannot install a signal handler")]
    SignalHandler {
        #[source]
        source: io::Error,
    },
    #[error("cannot mark genrun non-dumpable")]
    Dumpable {
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot change the owner of {path}")]
    Chown {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot change the permissions of {path}")]
    Chmod {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is a symbolic link (refusing to follow it)")]
    Symlink { path: PathBuf },
}
