//! The HTTP sink against a real receiver on 127.0.0.1 (`genrun_testkit::receiver`): down at start, gated
//! (proving emit does not wait), slow, failing then recovering, silent; order, gaps, drop counts, the
//! bearer token, and the finish deadline.

use std::time::{Duration, Instant};

use genrun_progress::{EventKind, HttpSinkConfig, LogFormat, Progress, ProgressConfig, Redactor};
use genrun_testkit::receiver::{reserve_port, Behaviour, Receiver};
use serde_json::Value;

use crate::common::no_secrets;

const HANG_BOUND: Duration = Duration::from_secs(120);

fn sink(url: &str, token: Option<&str>) -> HttpSinkConfig {
    let mut c = HttpSinkConfig::new(url, token.map(str::to_string));
    // Keep retries quick so recovery is seen soon after the receiver comes up.
    c.backoff_max = Duration::from_millis(500);
    c
}

/// A Progress whose stdout renderer discards, feeding `http`.
fn start(request_id: &str, http: HttpSinkConfig, redactor: Redactor) -> Progress {
    let mut cfg = ProgressConfig::new(request_id);
    cfg.format = LogFormat::Json;
    cfg.http = Some(http);
    Progress::start_with_writer(cfg, redactor, Box::new(std::io::sink()))
}

fn turn(i: u64) -> EventKind {
    EventKind::Turn { n: i, max: 100_000 }
}

/// Every batch is well formed: the request id, 1..=max_batch events in increasing seq order.
fn check_batches(r: &Receiver, request_id: &str, max_batch: usize) {
    let mut last = 0;
    for b in r.batches() {
        assert_eq!(b["request_id"], request_id);
        assert!(b["dropped"].is_u64());
        let events = b["events"].as_array().unwrap();
        assert!(
            !events.is_empty() && events.len() <= max_batch,
            "batch of {}",
            events.len()
        );
        for e in events {
            let seq = e["seq"].as_u64().unwrap();
            assert!(seq > last, "seq {seq} after {last}");
            last = seq;
            assert_eq!(e["request_id"], request_id);
        }
    }
}

/// Receiver down at start: 500 events overflow a 50-event queue; when the receiver comes up the newest
/// 50 arrive, the oldest 450 are reported dropped, and the gaps in seq say the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_at_start_then_up() {
    let port = reserve_port().unwrap();
    let mut cfg = sink(&format!("http://127.0.0.1:{port}/progress"), None);
    cfg.queue_capacity = 50;
    cfg.max_batch = 10;
    let p = start("req-down", cfg, no_secrets());
    for i in 1..=500 {
        p.emit(turn(i));
    }
    let r = Receiver::start_on(port, Behaviour::Normal).await.unwrap();
    let report = tokio::time::timeout(HANG_BOUND, p.finish(Duration::from_secs(60)))
        .await
        .unwrap();

    assert_eq!(r.seqs(), (451..=500).collect::<Vec<u64>>());
    assert_eq!(
        (
            report.http_sent,
            report.http_dropped,
            report.http_undelivered
        ),
        (50, 450, 0)
    );
    assert!(
        report.http_failed_batches >= 1,
        "connection refused counts as a failure"
    );
    let batches = r.batches();
    assert!(batches.iter().all(|b| b["dropped"] == 450), "{batches:?}");
    // Gaps before the first received seq = the dropped count the receiver was told.
    let first = r.seqs()[0];
    assert_eq!(first - 1, batches[0]["dropped"].as_u64().unwrap());
    check_batches(&r, "req-down", 10);
}

/// emit never waits for the receiver: with the receiver holding the first request (gate closed), 10 000
/// more events are emitted; only then is the gate opened, and everything arrives in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_does_not_wait_for_a_held_request() {
    let r = Receiver::start(Behaviour::Gated).await.unwrap();
    let mut cfg = sink(&r.url, None);
    // The held request must not time out (and be retried) however slowly this machine emits.
    cfg.request_timeout = HANG_BOUND;
    let p = start("req-gate", cfg, no_secrets());
    p.emit(turn(1));
    assert!(
        r.wait_for_requests(1, HANG_BOUND).await,
        "first batch never arrived"
    );

    let emitter = p.clone();
    let all_emitted = tokio::task::spawn_blocking(move || {
        for i in 2..=10_001 {
            emitter.emit(turn(i));
        }
    });
    // If emit waited for the held request, this would time out (the gate only opens below).
    tokio::time::timeout(HANG_BOUND, all_emitted)
        .await
        .expect("emit blocked on the receiver")
        .unwrap();
    assert!(
        r.batches().is_empty(),
        "no response was released while emitting"
    );
    assert_eq!(r.requests(), 1, "one request in flight at a time");

    r.open_gate();
    let report = tokio::time::timeout(HANG_BOUND, p.finish(Duration::from_secs(90)))
        .await
        .unwrap();
    assert_eq!((report.http_sent, report.http_dropped), (10_001, 0));
    assert_eq!(r.seqs(), (1..=10_001).collect::<Vec<u64>>());
    check_batches(&r, "req-gate", 100);
}

/// A receiver taking 5 s per request while 10 000 events are emitted: the run is not stretched. finish
/// returns at its deadline, what arrived is the contiguous start of the stream, the rest is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_receiver_is_cut_off_at_the_deadline() {
    let r = Receiver::start(Behaviour::Slow(Duration::from_secs(5)))
        .await
        .unwrap();
    let p = start("req-slow", sink(&r.url, None), no_secrets());
    let emitter = p.clone();
    tokio::time::timeout(
        HANG_BOUND,
        tokio::task::spawn_blocking(move || (1..=10_000).for_each(|i| emitter.emit(turn(i)))),
    )
    .await
    .expect("emit blocked on the receiver")
    .unwrap();
    assert!(r.wait_for_requests(1, HANG_BOUND).await);

    let deadline = Duration::from_secs(7);
    let started = Instant::now();
    let report = p.finish(deadline).await;
    let took = started.elapsed();
    // Bounds a hang only: finish gives up at its deadline.
    assert!(
        took < deadline + Duration::from_secs(10),
        "finish took {took:?}"
    );
    assert_eq!(report.http_sent + report.http_dropped, 10_000);
    assert!(
        report.http_undelivered > 0 && report.http_undelivered == report.http_dropped,
        "{report:?}"
    );
    assert!(
        report.http_failed_batches >= 1,
        "the abandoned request counts: {report:?}"
    );
    let seqs = r.seqs();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<u64>>());
    assert_eq!(seqs.len() as u64, report.http_sent);
}

/// 500s then recovery: the failed batches are retried and nothing is lost or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_then_recovery_lose_nothing() {
    let r = Receiver::start(Behaviour::FailFirst(3)).await.unwrap();
    let p = start("req-500", sink(&r.url, None), no_secrets());
    for i in 1..=250 {
        p.emit(turn(i));
    }
    let report = tokio::time::timeout(HANG_BOUND, p.finish(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(r.failed(), 3);
    assert_eq!(report.http_failed_batches, 3);
    assert_eq!((report.http_sent, report.http_dropped), (250, 0));
    assert_eq!(r.seqs(), (1..=250).collect::<Vec<u64>>());
    assert!(r.batches().iter().all(|b| b["dropped"] == 0));
    check_batches(&r, "req-500", 100);
}

/// A 4xx other than 408/429 (here 401) is not retried: the batch's events count as dropped, the next
/// batch says so, and the stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_batch_is_dropped_not_retried() {
    let r = Receiver::start(Behaviour::FailFirstWith(1, 401))
        .await
        .unwrap();
    let p = start("req-401", sink(&r.url, None), no_secrets());
    p.emit(turn(1));
    assert!(r.wait_for_requests(1, HANG_BOUND).await);
    p.emit(turn(2));
    p.emit(turn(3));
    let report = tokio::time::timeout(HANG_BOUND, p.finish(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        (
            report.http_sent,
            report.http_dropped,
            report.http_failed_batches
        ),
        (2, 1, 1)
    );
    assert_eq!(r.seqs(), vec![2, 3]);
    assert!(r.batches().iter().all(|b| b["dropped"] == 1));
    assert_eq!(
        r.requests(),
        1 + r.batches().len(),
        "the rejected batch was not sent again"
    );
}

/// A receiver that accepts and never answers: finish returns within its deadline and reports every
/// event as undelivered; per-request timeouts lead to retries meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_receiver_does_not_hold_finish() {
    let r = Receiver::start(Behaviour::Hang).await.unwrap();
    let mut cfg = sink(&r.url, None);
    cfg.request_timeout = Duration::from_millis(300);
    let p = start("req-hang", cfg, no_secrets());
    for i in 1..=50 {
        p.emit(turn(i));
    }
    // Timed-out requests are retried: the receiver sees the batch more than once.
    assert!(r.wait_for_requests(3, HANG_BOUND).await);
    let deadline = Duration::from_secs(2);
    let started = Instant::now();
    let report = p.finish(deadline).await;
    let took = started.elapsed();
    assert!(
        took < deadline + Duration::from_secs(10),
        "finish took {took:?}"
    );
    assert_eq!(
        (
            report.http_sent,
            report.http_dropped,
            report.http_undelivered
        ),
        (0, 50, 50)
    );
    assert!(report.http_failed_batches >= 3, "{report:?}");
    assert!(r.batches().is_empty());
}

/// A silent receiver with the default 10 s request timeout: the finish deadline, not the request
/// timeout, bounds the end of the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_deadline_cuts_a_hanging_request() {
    let r = Receiver::start(Behaviour::Hang).await.unwrap();
    let p = start("req-hang2", sink(&r.url, None), no_secrets());
    p.emit(turn(1));
    assert!(r.wait_for_requests(1, HANG_BOUND).await);
    let started = Instant::now();
    let report = p.finish(Duration::from_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "finish waited for the request timeout"
    );
    assert_eq!(
        (
            report.http_sent,
            report.http_undelivered,
            report.http_failed_batches
        ),
        (0, 1, 1)
    );
}

/// The token goes in `Authorization: Bearer`, on every request; where it appears in event text it is
/// redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_sent_and_redacted_from_events() {
    let token = "gr-progress-token-0123456789";
    let r = Receiver::start(Behaviour::FailFirst(1)).await.unwrap();
    let p = start(
        "req-auth",
        sink(&r.url, Some(token)),
        Redactor::new([token.to_string()]),
    );
    p.emit(EventKind::Warning {
        message: format!("curl -H 'Authorization: Bearer {token}'"),
    });
    p.emit(turn(2));
    let report = tokio::time::timeout(HANG_BOUND, p.finish(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(report.http_sent, 2);
    let auth = r.authorizations();
    assert!(auth.len() >= 2, "{auth:?}");
    assert!(
        auth.iter()
            .all(|a| a.as_deref() == Some(&format!("Bearer {token}")[..])),
        "{auth:?}"
    );
    let events = r.events();
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains(token) && text.contains("Bearer [REDACTED]"),
        "{text}"
    );
}

/// Without a token no Authorization header is sent; a partial batch leaves on the interval without
/// waiting for 100 events or for finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_batch_leaves_on_the_interval() {
    let r = Receiver::start(Behaviour::Normal).await.unwrap();
    let p = start("req-tick", sink(&r.url, None), no_secrets());
    for i in 1..=3 {
        p.emit(turn(i));
    }
    assert!(
        r.wait_for_seq(3, HANG_BOUND).await,
        "events never left without finish"
    );
    assert_eq!(r.seqs(), vec![1, 2, 3]);
    assert_eq!(r.authorizations()[0], None);
    let ev: &Value = &r.events()[0];
    assert_eq!(ev["kind"], "turn");
    p.finish(Duration::from_secs(10)).await;
}
