//! The HTTP sink: streams events to the orchestrator without ever slowing the run.
//!
//! # Payload
//!
//! Events are POSTed in batches to the configured URL:
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! Authorization: Bearer <token>          (only when a token is configured)
//!
//! {"request_id":"req-42","events":[{"ts":"2026-05-01T12:00:03.412Z","seq":7,"request_id":"req-42","kind":"turn","n":3,"max":50,"msg":"turn 3/50"}, ...],"dropped":0}
//! ```
//!
//! - `events`: 1 to `max_batch` (default 100) events in `seq` order, each exactly the JSON line the stdout
//!   renderer prints (see [`crate::Event`] and `schemas/event.schema.json`).
//! - `dropped`: how many events this run has dropped so far in total (queue overflow while the receiver was
//!   unreachable, or batches it rejected with a 4xx). The receiver sees the same loss as gaps in `seq`.
//! - A batch leaves every `interval` (default 250 ms) when events are waiting, or at once when `max_batch`
//!   events are waiting. One request is in flight at a time, so batches arrive in order.
//! - Any 2xx answer accepts the batch. 408, 429, 5xx, timeouts and connection errors are retried with
//!   exponential backoff (250 ms doubling to 5 s, with jitter); the batch goes back to the head of the
//!   queue meanwhile, so a retried batch can be redelivered if the receiver had processed it before
//!   failing: receivers should de-duplicate by `seq`. Other 4xx answers (e.g. 401, 413) reject the batch:
//!   its events are counted as dropped.
//! - The queue holds at most `queue_capacity` events (default 10 000); when it is full the OLDEST events
//!   are dropped and counted.
//! - At the end of the run the queue is flushed until a deadline; what is left is counted as dropped.
//!
//! Emitting only appends to the queue under a short lock: a slow, failing or silent receiver costs the run
//! nothing but the dropped events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Where and how to send events. [`HttpSinkConfig::new`] fills in the documented defaults.
#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
    /// Receiver URL (http or https).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// How long events may wait before a (partial) batch is sent.
    pub interval: Duration,
    /// Most events in one request; a full batch is sent at once.
    pub max_batch: usize,
    /// Most events waiting; beyond it the oldest are dropped.
    pub queue_capacity: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// First retry delay; doubles per failure up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl HttpSinkConfig {
    /// The defaults: 250 ms interval, batches of 100, 10 000 queued events, 10 s per request, backoff
    /// 250 ms to 5 s.
    pub fn new(url: impl Into<String>, token: Option<String>) -> HttpSinkConfig {
        HttpSinkConfig {
            url: url.into(),
            token,
            interval: Duration::from_millis(250),
            max_batch: 100,
            queue_capacity: 10_000,
            request_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Why the HTTP sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpSinkError {
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("the HTTP sink needs a tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
}

/// What the sink achieved, for the final report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HttpReport {
    pub sent: u64,
    pub dropped: u64,
    pub undelivered: u64,
    pub failed_batches: u64,
}

pub(crate) struct HttpSink {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    max_batch: usize,
    capacity: usize,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Arc<str>>,
    /// Events taken for the request in flight.
    in_flight: usize,
    dropped: u64,
    sent: u64,
    failed_batches: u64,
    closing: bool,
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum Delivery {
    Accepted,
    Rejected(reqwest::StatusCode),
    Retry(String),
}

impl HttpSink {
    /// Starts the sender task on the current tokio runtime.
    pub(crate) fn start(
        cfg: HttpSinkConfig,
        request_id: String,
    ) -> Result<HttpSink, HttpSinkError> {
        let handle = tokio::runtime::Handle::try_current().map_err(HttpSinkError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(HttpSinkError::Client)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            max_batch: cfg.max_batch.max(1),
            capacity: cfg.queue_capacity.max(1),
        });
        let task = handle.spawn(run(shared.clone(), client, cfg, request_id));
        Ok(HttpSink {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// Queues one serialized event; never waits for the network.
    pub(crate) fn push(&self, line: Arc<str>) {
        let full_batch = {
            let mut q = lock(&self.shared.queue);
            q.events.push_back(line);
            while q.events.len() > self.shared.capacity {
                q.events.pop_front();
                q.dropped += 1;
            }
            q.events.len() >= self.shared.max_batch
        };
        if full_batch {
            self.shared.wake.notify_one();
        }
    }

    /// Sends what is queued until `deadline`, then gives up on the rest.
    pub(crate) async fn finish(&self, deadline: Instant) -> HttpReport {
        lock(&self.shared.queue).closing = true;
        self.shared.wake.notify_one();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut task) = task {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                // Cancellation takes effect at the task's next await point, which is immediate.
                let _ = task.await;
            }
        }
        let mut q = lock(&self.shared.queue);
        let undelivered = (q.events.len() + q.in_flight) as u64;
        if q.in_flight > 0 {
            q.failed_batches += 1;
        }
        q.events.clear();
        q.in_flight = 0;
        q.dropped += undelivered;
        HttpReport {
            sent: q.sent,
            dropped: q.dropped,
            undelivered,
            failed_batches: q.failed_batches,
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    client: reqwest::Client,
    cfg: HttpSinkConfig,
    request_id: String,
) {
    let mut ticker = tokio::time::interval(cfg.interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = cfg.backoff_initial;
    let mut failing = false;
    loop {
        // Wait for a full batch, the interval with something queued, or the end.
        loop {
            let (len, closing) = {
                let q = lock(&shared.queue);
                (q.events.len(), q.closing)
            };
            if closing && len == 0 {
                return;
            }
            if len >= shared.max_batch || (closing && len > 0) {
                break;
            }
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = ticker.tick() => {
                    if !lock(&shared.queue).events.is_empty() {
                        break;
                    }
                }
            }
        }
        let (batch, dropped) = {
            let mut q = lock(&shared.queue);
            let n = q.events.len().min(shared.max_batch);
            let batch: Vec<Arc<str>> = q.events.drain(..n).collect();
            q.in_flight = batch.len();
            (batch, q.dropped)
        };
        let body = batch_body(&request_id, &batch, dropped);
        match post(&client, &cfg, body).await {
            Delivery::Accepted => {
                let mut q = lock(&shared.queue);
                q.sent += batch.len() as u64;
                q.in_flight = 0;
                backoff = cfg.backoff_initial;
                if failing {
                    failing = false;
                    tracing::info!(url = %cfg.url, "progress receiver reachable again");
                }
            }
            Delivery::Rejected(status) => {
                let mut q = lock(&shared.queue);
                q.dropped += batch.len() as u64;
                q.failed_batches += 1;
                q.in_flight = 0;
                tracing::warn!(url = %cfg.url, %status, events = batch.len(), "progress receiver rejected a batch; its events are dropped");
            }
            Delivery::Retry(error) => {
                {
                    let mut q = lock(&shared.queue);
                    q.failed_batches += 1;
                    q.in_flight = 0;
                    for e in batch.into_iter().rev() {
                        q.events.push_front(e);
                    }
                    while q.events.len() > shared.capacity {
                        q.events.pop_front();
                        q.dropped += 1;
                    }
                }
                if !failing {
                    failing = true;
                    tracing::warn!(url = %cfg.url, %error, "progress receiver unavailable; retrying with backoff");
                }
                tokio::time::sleep(jittered(backoff)).await;
                backoff = (backoff * 2).min(cfg.backoff_max);
            }
        }
    }
}

/// The request body; the events are already serialized, so this is string assembly.
fn batch_body(request_id: &str, events: &[Arc<str>], dropped: u64) -> String {
    let id = serde_json::to_string(request_id).unwrap_or_else(|_| "\"\"".to_string());
    let size: usize = events.iter().map(|e| e.len() + 1).sum();
    let mut body = String::with_capacity(size + id.len() + 64);
    body.push_str("{\"request_id\":");
    body.push_str(&id);
    body.push_str(",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(e);
    }
    body.push_str("],\"dropped\":");
    body.push_str(&dropped.to_string());
    body.push('}');
    body
}

async fn post(client: &reqwest::Client, cfg: &HttpSinkConfig, body: String) -> Delivery {
    let mut req = client
        .post(&cfg.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(cfg.request_timeout)
        .body(body);
    if let Some(token) = &cfg.token {
        req = req.bearer_auth(token);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                Delivery::Accepted
            } else if status.is_server_error()
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            {
                Delivery::Retry(format!("status {status}"))
            } else {
                Delivery::Rejected(status)
            }
        }
        // The error's Display never includes the bearer token (headers are not part of it).
        Err(e) => Delivery::Retry(e.to_string()),
    }
}

/// `d` plus or minus 20 %.
fn jittered(d: Duration) -> Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_valid_json_with_the_documented_fields() {
        let events: Vec<Arc<str>> = vec![Arc::from(r#"{"seq":1}"#), Arc::from(r#"{"seq":2}"#)];
        let body = batch_body("req-\"1\"", &events, 7);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"request_id": "req-\"1\"", "events": [{"seq": 1}, {"seq": 2}], "dropped": 7})
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..100 {
            let j = jittered(Duration::from_millis(1000));
            assert!(
                j >= Duration::from_millis(800) && j <= Duration::from_millis(1200),
                "{j:?}"
            );
        }
    }
}
