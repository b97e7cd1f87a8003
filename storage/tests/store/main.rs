//! Tests of genrun-storage against real parts: files on disk and an in-process S3 server (testkit's
//! `S3Server`, s3s over s3s-fs on 127.0.0.1) with the real aws-sdk-s3 client.
//!
//! `contract` runs one set of tests over every store; `s3` covers the S3 wire behaviour and protocol-level
//! faults; `faulty` covers the fault-injecting wrapper; `local` the local store's atomicity.

mod contract;
mod faulty;
mod local;
mod s3;
mod support;
