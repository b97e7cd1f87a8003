//! A real HTTP receiver for genrun's progress batches, with programmable misbehaviour.
//!
//! Tests point the progress HTTP sink (or the genrun binary's `--progress-url`) at [`Receiver::url`] and
//! then read what arrived. The receiver accepts `POST` of any path with a JSON body (the batch documented
//! in `genrun_progress::http`) and records, per request, the `Authorization` header; accepted bodies are
//! kept in arrival order. [`Behaviour`] makes it slow, failing, silent or gated; tests synchronise on what
//! the receiver has seen with the `wait_*` methods, never with sleeps.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 at once.
    Normal,
    /// Waits this long before answering 200 (a receiver that is up but slow).
    Slow(Duration),
    /// Answers 500 to the first N requests (without keeping their batches), then 200.
    FailFirst(usize),
    /// Answers the given status to the first N requests (without keeping their batches), then 200.
    FailFirstWith(usize, u16),
    /// Reads the request, then never answers; the connection stays open.
    Hang,
    /// Holds every request until [`Receiver::open_gate`], then answers 200 (lets a test prove the sender
    /// did not wait for the answer, without timing anything).
    Gated,
}

/// A running receiver on 127.0.0.1; stops when dropped.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/progress`.
    pub url: String,
    pub port: u16,
    state: Arc<State>,
    task: JoinHandle<()>,
}

struct State {
    behaviour: Behaviour,
    log: Mutex<Log>,
    changed: Notify,
    gate: watch::Sender<bool>,
}

#[derive(Default)]
struct Log {
    /// Requests whose body was read, in arrival order.
    arrived: usize,
    authorizations: Vec<Option<String>>,
    /// Bodies answered with 200, in arrival order.
    accepted: Vec<Value>,
    /// Requests answered 500 on purpose.
    failed: usize,
}

impl Receiver {
    /// Starts on an ephemeral port.
    pub async fn start(behaviour: Behaviour) -> anyhow::Result<Receiver> {
        Receiver::start_on(0, behaviour).await
    }

    /// Starts on `port` (e.g. one from [`reserve_port`] that a sender already tried while nothing
    /// listened).
    pub async fn start_on(port: u16, behaviour: Behaviour) -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .with_context(|| format!("bind 127.0.0.1:{port}"))?;
        let port = listener.local_addr().context("local address")?.port();
        let (gate, _) = watch::channel(false);
        let state = Arc::new(State {
            behaviour,
            log: Mutex::new(Log::default()),
            changed: Notify::new(),
            gate,
        });
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(Receiver {
            url: format!("http://127.0.0.1:{port}/progress"),
            port,
            state,
            task,
        })
    }

    /// Accepted batch bodies (`{"request_id", "events", "dropped"}`) in arrival order.
    pub fn batches(&self) -> Vec<Value> {
        self.log().accepted.clone()
    }

    /// The events of all accepted batches, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.log()
            .accepted
            .iter()
            .flat_map(|b| {
                b.get("events")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The `seq` of every accepted event, in arrival order.
    pub fn seqs(&self) -> Vec<u64> {
        self.events()
            .iter()
            .filter_map(|e| e.get("seq").and_then(Value::as_u64))
            .collect()
    }

    /// The `Authorization` header of every request that arrived (None when absent).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.log().authorizations.clone()
    }

    /// Requests that arrived (answered or not).
    pub fn requests(&self) -> usize {
        self.log().arrived
    }

    /// Requests answered with an error on purpose ([`Behaviour::FailFirst`], [`Behaviour::FailFirstWith`]).
    pub fn failed(&self) -> usize {
        self.log().failed
    }

    /// Lets held requests ([`Behaviour::Gated`]) and all later ones through.
    pub fn open_gate(&self) {
        self.state.gate.send_replace(true);
    }

    /// Waits until at least `n` requests arrived; false at the timeout.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |log| log.arrived >= n).await
    }

    /// Waits until an accepted event has `seq >= seq`; false at the timeout.
    pub async fn wait_for_seq(&self, seq: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |log| {
            log.accepted.iter().any(|b| {
                b.get("events")
                    .and_then(Value::as_array)
                    .is_some_and(|evs| {
                        evs.iter()
                            .any(|e| e.get("seq").and_then(Value::as_u64) >= Some(seq))
                    })
            })
        })
        .await
    }

    async fn wait_until(&self, timeout: Duration, done: impl Fn(&Log) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.log()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.log());
            }
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.state.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

/// A port that was free a moment ago and has nothing listening now (for "receiver down at start").
pub fn reserve_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind an ephemeral port")?;
    Ok(l.local_addr().context("local address")?.port())
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req.into_body().collect().await?.to_bytes();
    let index = {
        let mut log = state.log.lock().unwrap_or_else(|e| e.into_inner());
        log.arrived += 1;
        log.authorizations.push(auth);
        log.arrived - 1
    };
    state.changed.notify_waiters();
    match &state.behaviour {
        Behaviour::Normal => {}
        Behaviour::Slow(d) => tokio::time::sleep(*d).await,
        Behaviour::FailFirst(n) | Behaviour::FailFirstWith(n, _) if index < *n => {
            let status = match &state.behaviour {
                Behaviour::FailFirstWith(_, code) => {
                    StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            state.log.lock().unwrap_or_else(|e| e.into_inner()).failed += 1;
            state.changed.notify_waiters();
            return Ok(reply(status, "{\"error\":\"injected failure\"}"));
        }
        Behaviour::FailFirst(_) | Behaviour::FailFirstWith(..) => {}
        Behaviour::Hang => std::future::pending::<()>().await,
        Behaviour::Gated => {
            let mut gate = state.gate.subscribe();
            let _ = gate.wait_for(|open| *open).await;
        }
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            "{\"error\":\"body is not JSON\"}",
        ));
    };
    state
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .accepted
        .push(value);
    state.changed.notify_waiters();
    Ok(reply(StatusCode::OK, "{}"))
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
