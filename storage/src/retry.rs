//! Our retry loop: exponential backoff with jitter, bounded by attempts and by the caller's deadline.
//!
//! Why: the SDK's standard retry (3 attempts, up to 20 s backoff) knows nothing of genrun's deadline (the
//! SIGTERM grace period shortens it), so it is disabled and every request goes through [`run`], which
//! never starts a backoff that would end past the deadline and cuts an attempt in flight at the deadline.

use std::future::Future;
use std::time::Duration;

use rand::Rng as _;
use tokio::time::Instant;

use crate::StoreError;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How one failed attempt should be treated.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Retrying cannot help: return this at once.
    Permanent(StoreError),
    /// Worth retrying (5xx, throttling, timeouts, resets). `connect` holds the error when no connection
    /// could be made at all.
    Transient {
        detail: String,
        connect: Option<BoxError>,
    },
    /// The server computed a different checksum (bytes damaged in transit): retried, reported as such.
    Checksum(String),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub operation_timeout: Duration,
}

/// Names used in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub operation: &'static str,
    pub location: &'a str,
    pub endpoint: &'a str,
}

/// Backoff before retry number `retry` (1-based): `initial * 2^(retry-1)` capped, uniformly in [d/2, d].
pub(crate) fn backoff(policy: &Policy, retry: u32) -> Duration {
    let exp = policy
        .initial_backoff
        .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    let d = exp.min(policy.max_backoff);
    let lo = d / 2;
    if d.is_zero() {
        return d;
    }
    rand::rng().random_range(lo..=d)
}

/// Runs `attempt(n)` until it succeeds, fails permanently, runs out of attempts, or the deadline would pass.
/// Returns the value and the number of attempts made.
pub(crate) async fn run<T, F, Fut>(
    policy: &Policy,
    ctx: Ctx<'_>,
    deadline: Instant,
    mut attempt: F,
) -> Result<(T, u32), StoreError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let started = Instant::now();
    let mut n = 0u32;
    let mut only_connect_failures = true;
    let mut connect_source: Option<BoxError> = None;
    let mut last: String;
    let mut last_was_checksum: bool;
    loop {
        n += 1;
        let attempt_deadline = deadline.min(Instant::now() + policy.operation_timeout);
        let failure = match tokio::time::timeout_at(attempt_deadline, attempt(n)).await {
            Ok(Ok(v)) => return Ok((v, n)),
            Ok(Err(f)) => f,
            Err(_) if attempt_deadline >= deadline => {
                return Err(StoreError::Timeout {
                    operation: ctx.operation,
                    location: ctx.location.to_owned(),
                    elapsed: started.elapsed(),
                    attempts: n,
                })
            }
            Err(_) => Failure::Transient {
                detail: format!("attempt timed out after {:?}", policy.operation_timeout),
                connect: None,
            },
        };
        match failure {
            Failure::Permanent(e) => return Err(e),
            Failure::Transient { detail, connect } => {
                last_was_checksum = false;
                match connect {
                    Some(source) => connect_source = Some(source),
                    None => only_connect_failures = false,
                }
                last = detail;
            }
            Failure::Checksum(detail) => {
                only_connect_failures = false;
                last_was_checksum = true;
                last = detail;
            }
        }
        tracing::debug!(operation = ctx.operation, location = ctx.location, attempt = n, error = %last, "attempt failed");
        let pause = backoff(policy, n);
        if n >= policy.max_attempts || Instant::now() + pause >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    if only_connect_failures {
        if let Some(source) = connect_source {
            return Err(StoreError::Unreachable {
                endpoint: ctx.endpoint.to_owned(),
                attempts: n,
                source,
            });
        }
    }
    if last_was_checksum {
        return Err(StoreError::ChecksumMismatch {
            location: ctx.location.to_owned(),
            attempts: n,
            detail: last,
        });
    }
    Err(StoreError::Exhausted {
        location: ctx.location.to_owned(),
        attempts: n,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> Policy {
        Policy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            operation_timeout: Duration::from_secs(30),
        }
    }

    const CTX: Ctx<'static> = Ctx {
        operation: "put",
        location: "s3://b/k",
        endpoint: "http://e",
    };

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = Policy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let b1 = backoff(&p, 1);
            assert!(
                b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100),
                "{b1:?}"
            );
            let b3 = backoff(&p, 3);
            assert!(
                b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400),
                "{b3:?}"
            );
            let b30 = backoff(&p, 30);
            assert!(
                b30 >= Duration::from_millis(2500) && b30 <= Duration::from_secs(5),
                "{b30:?}"
            );
        }
    }

    #[tokio::test]
    async fn transient_then_success_counts_attempts() {
        let calls = AtomicU32::new(0);
        let r = run(&policy(), CTX, far(), |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(Failure::Transient {
                        detail: "503".into(),
                        connect: None,
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.ok(), Some((3, 3)));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_is_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<((), u32), _> = run(&policy(), CTX, far(), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(Failure::Permanent(StoreError::AccessDenied {
                    location: "x".into(),
                    code: "AccessDenied".into(),
                    message: String::new(),
                }))
            }
        })
        .await;
        assert!(matches!(r, Err(StoreError::AccessDenied { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn exhaustion_names_the_last_error() {
        let r: Result<((), u32), _> = run(&policy(), CTX, far(), |n| async move {
            Err(Failure::Transient {
                detail: format!("503 #{n}"),
                connect: None,
            })
        })
        .await;
        match r {
            Err(StoreError::Exhausted { attempts, last, .. }) => {
                assert_eq!(attempts, 4);
                assert_eq!(last, "503 #4");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn only_connect_failures_mean_unreachable() {
        let r: Result<((), u32), _> = run(&policy(), CTX, far(), |_| async {
            Err(Failure::Transient {
                detail: "refused".into(),
                connect: Some("connection refused".into()),
            })
        })
        .await;
        assert!(
            matches!(r, Err(StoreError::Unreachable { attempts: 4, .. })),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn checksum_failures_are_reported_as_such() {
        let r: Result<((), u32), _> = run(&policy(), CTX, far(), |_| async {
            Err(Failure::Checksum("BadDigest".into()))
        })
        .await;
        assert!(
            matches!(r, Err(StoreError::ChecksumMismatch { attempts: 4, .. })),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn deadline_cuts_a_hanging_attempt() {
        let deadline = Instant::now() + Duration::from_millis(200);
        let r: Result<((), u32), _> = run(&policy(), CTX, deadline, |_| {
            std::future::pending::<Result<(), Failure>>()
        })
        .await;
        assert!(
            matches!(r, Err(StoreError::Timeout { attempts: 1, .. })),
            "{r:?}"
        );
        assert!(Instant::now() < deadline + Duration::from_secs(5));
    }

    #[tokio::test]
    async fn no_backoff_is_started_past_the_deadline() {
        let p = Policy {
            max_attempts: 100,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        let r: Result<((), u32), _> = run(&p, CTX, deadline, |_| async {
            Err(Failure::Transient {
                detail: "500".into(),
                connect: None,
            })
        })
        .await;
        assert!(
            matches!(r, Err(StoreError::Exhausted { attempts: 1, .. })),
            "{r:?}"
        );
    }
}
