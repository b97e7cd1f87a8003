//! Integration tests through the real genrun binary: real processes, real signals, real files, real
//! servers. One test binary (`autotests = false`); `util` is the small harness every module shares.

mod util;

mod contract;
mod memory;
mod package;
mod progress;
mod realcli;
mod s3;
mod supervision;
