//! A stand-in for the Anthropic Messages API that plays scripted sessions for the real Claude Code CLI.
//!
//! The real CLI is what genrun supervises in production, so tests run it for real, offline, against this
//! server: `ANTHROPIC_BASE_URL=http://127.0.0.1:PORT` (see [`Standin::env`]) makes the CLI send every model
//! call here, and each answer is chosen from the request alone, so the server keeps no conversation state.
//!
//! # Wire format
//! - `POST /v1/messages` (any query, e.g. `?beta=true`): the body is the CLI's Messages request (`model`,
//!   `system`, `tools`, `messages`, `stream`, ... unknown fields and roles are ignored). With `"stream": true`
//!   the answer is Server-Sent Events, `event: NAME\ndata: JSON\n\n`, in the order `message_start`,
//!   per block `content_block_start` / `content_block_delta` / `content_block_stop`, `message_delta` (with
//!   `stop_reason` and output usage), `message_stop`. Without it, one JSON `message` object.
//!   [`Scenario::ApiError500`] answers `500` with an `{"type":"error",...}` body instead.
//! - `POST /v1/messages/count_tokens` -> `{"input_tokens": N}`; `HEAD` or `GET` of any other path -> 200.
//!
//! # Choosing an answer
//! The step of a script is the number of `tool_result` blocks already in `messages`: every scripted answer
//! carries at most one `tool_use`, so this count grows by one per answer however the CLI groups blocks into
//! messages. A request whose last user message asks for a conversation summary (context compaction) gets a
//! text answer. File tools need absolute paths: the working directory is read from the CLI's environment
//! block (`Primary working directory: ...`); Bash commands use paths relative to it.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// The API key [`Standin::env`] hands the CLI; the stand-in accepts any key.
pub const TEST_API_KEY: &str = "sk-ant-standin-test-key";

/// File (relative to the CLI's working directory) that [`Scenario::LongBash`] writes before it starts
/// waiting; it holds the pid of the tool's shell.
pub const LONG_BASH_MARKER: &str = "standin-long-bash.pid";

/// File (relative to the CLI's working directory) that [`Scenario::AllocBash`] writes once its memory is
/// allocated; it holds the pid of the allocating process.
pub const ALLOC_BASH_MARKER: &str = "standin-alloc.pid";

/// Final text of a [`Scenario::Generation`] run (the `result` field of the CLI's result line).
pub const GENERATION_FINAL_TEXT: &str =
    "Done: generated the app (Vite/React front end, Express API).";

/// Seconds that [`Scenario::AllocBash`] holds its memory before it exits on its own.
pub const ALLOC_HOLD_SECONDS: u32 = 60;

/// Tokens billed for every answer of the ordinary scenarios (input, output).
const USAGE: (u64, u64) = (100, 20);
/// Tokens billed for every answer of [`Scenario::Budget`]: about $0.4 at current list prices.
const BUDGET_USAGE: (u64, u64) = (50_000, 10_000);
/// Safety stop for the scenarios that call tools "forever".
const FOREVER_STEPS: usize = 500;

/// What the stand-in plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A scripted generation: Write files, Edit, Bash that creates `node_modules/`, logs, `.env`, `dist/`
    /// and a symlink out of the workspace, then a final text ([`GENERATION_FINAL_TEXT`]).
    Generation,
    /// Keeps calling a Bash tool forever; `--max-turns` has to stop it.
    TurnLimit,
    /// Every `/v1/messages` answers 500.
    ApiError500,
    /// Keeps calling a Bash tool with large usage per answer, so cost grows fast; `--max-budget-usd`
    /// has to stop it.
    Budget,
    /// One Bash tool command that writes [`LONG_BASH_MARKER`] and then runs for `seconds` (a loop of short
    /// sleeps), then a final text.
    LongBash { seconds: u32 },
    /// One Bash tool command (python3) that allocates and touches `bytes` of memory, writes
    /// [`ALLOC_BASH_MARKER`], holds the memory for [`ALLOC_HOLD_SECONDS`], then a final text.
    AllocBash { bytes: u64 },
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Generation => f.write_str("generation"),
            Scenario::TurnLimit => f.write_str("turn-limit"),
            Scenario::ApiError500 => f.write_str("api-error-500"),
            Scenario::Budget => f.write_str("budget"),
            Scenario::LongBash { seconds } => write!(f, "long-bash:{seconds}"),
            Scenario::AllocBash { bytes } => write!(f, "alloc-bash:{bytes}"),
        }
    }
}

/// Parses the names [`Scenario`]'s `Display` prints: `generation`, `turn-limit`, `api-error-500`,
/// `budget`, `long-bash:SECONDS`, `alloc-bash:BYTES`.
impl FromStr for Scenario {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (name, arg) = match s.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (s, None),
        };
        let number = |what: &str| -> anyhow::Result<u64> {
            let arg = arg.with_context(|| format!("scenario {name} needs :{what}"))?;
            arg.parse()
                .with_context(|| format!("scenario {name}: bad {what} {arg:?}"))
        };
        Ok(match name {
            "generation" => Scenario::Generation,
            "turn-limit" => Scenario::TurnLimit,
            "api-error-500" => Scenario::ApiError500,
            "budget" => Scenario::Budget,
            "long-bash" => Scenario::LongBash {
                seconds: u32::try_from(number("SECONDS")?)
                    .context("long-bash: too many seconds")?,
            },
            "alloc-bash" => Scenario::AllocBash {
                bytes: number("BYTES")?,
            },
            other => anyhow::bail!("unknown scenario {other:?}"),
        })
    }
}

/// A running stand-in on `127.0.0.1` with an ephemeral port. It serves from its own thread and runtime,
/// so it keeps answering while a test blocks on a child process. Dropping it stops the server.
pub struct Standin {
    /// `http://127.0.0.1:PORT`, the value for `ANTHROPIC_BASE_URL`.
    pub base_url: String,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct State {
    scenario: Scenario,
    requests: AtomicUsize,
    log: Mutex<Vec<String>>,
}

impl Standin {
    /// Binds `127.0.0.1:0` and starts serving `scenario`.
    pub async fn start(scenario: Scenario) -> anyhow::Result<Standin> {
        Self::start_on(scenario, 0)
    }

    /// Like [`Standin::start`] on a chosen port (0 = ephemeral); for the `messages-standin` binary.
    pub fn start_on(scenario: Scenario, port: u16) -> anyhow::Result<Standin> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .context("binding the messages stand-in")?;
        listener
            .set_nonblocking(true)
            .context("making the stand-in listener non-blocking")?;
        let addr = listener.local_addr().context("stand-in local address")?;
        let state = Arc::new(State {
            scenario,
            requests: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the stand-in runtime")?;
        let served = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("messages-standin".into())
            .spawn(move || runtime.block_on(serve(listener, served, rx)))
            .context("spawning the stand-in thread")?;
        Ok(Standin {
            base_url: format!("http://{addr}"),
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Number of `POST /v1/messages` requests answered so far (count_tokens and probes not included).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// One line per request served (method, path, step, what was answered), for failure messages.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The scenario being played.
    pub fn scenario(&self) -> Scenario {
        self.state.scenario
    }

    /// Environment that points the real CLI at this stand-in and keeps it hermetic.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("ANTHROPIC_BASE_URL", self.base_url.as_str()),
            ("ANTHROPIC_API_KEY", TEST_API_KEY),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
            ("CLAUDE_CODE_MAX_RETRIES", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    // Connections live in this set so that stopping the server also drops them.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let (response, note) = route(state, &method, &path, &body);
    if let Ok(mut log) = state.log.lock() {
        log.push(format!("{method} {path} -> {note}"));
    }
    response
}

fn route(
    state: &State,
    method: &Method,
    path: &str,
    body: &[u8],
) -> (Response<Full<Bytes>>, String) {
    match (method, path.trim_end_matches('/')) {
        (&Method::POST, "/v1/messages/count_tokens") => (
            json_response(StatusCode::OK, &json!({ "input_tokens": 1000 })),
            "count_tokens".into(),
        ),
        (&Method::POST, "/v1/messages") => {
            let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
            let Ok(request) = serde_json::from_slice::<Value>(body) else {
                return (
                    api_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "body is not JSON",
                    ),
                    "400 not json".into(),
                );
            };
            let answer = plan(state.scenario, &request);
            let note = format!("#{n} {}", answer.describe());
            (render(answer, &request, n), note)
        }
        (&Method::HEAD, _) | (&Method::GET, _) => (plain(StatusCode::OK, ""), "probe".into()),
        _ => (plain(StatusCode::NOT_FOUND, "not found"), "404".into()),
    }
}

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// An assistant message: optional text, then at most one tool call.
    Message {
        text: Option<String>,
        tool: Option<(String, Value)>,
        usage: (u64, u64),
    },
    /// An API error with this status.
    Error(StatusCode),
}

impl Answer {
    fn text(text: &str) -> Answer {
        Answer::Message {
            text: Some(text.to_owned()),
            tool: None,
            usage: USAGE,
        }
    }

    fn tool(text: Option<&str>, name: &str, input: Value) -> Answer {
        Answer::Message {
            text: text.map(str::to_owned),
            tool: Some((name.to_owned(), input)),
            usage: USAGE,
        }
    }

    fn describe(&self) -> String {
        match self {
            Answer::Message {
                tool: Some((name, _)),
                ..
            } => format!("tool_use {name}"),
            Answer::Message { .. } => "text".into(),
            Answer::Error(status) => format!("error {}", status.as_u16()),
        }
    }
}

/// Chooses the answer to `request` (a Messages API body) for `scenario`.
fn plan(scenario: Scenario, request: &Value) -> Answer {
    if scenario == Scenario::ApiError500 {
        return Answer::Error(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if asks_for_summary(request) {
        return Answer::text(
            "<summary>The assistant is generating a web app for the user.</summary>",
        );
    }
    let step = tool_results(request);
    let cwd = working_directory(request);
    let path = |rel: &str| match &cwd {
        Some(dir) => format!("{}/{rel}", dir.trim_end_matches('/')),
        None => rel.to_owned(),
    };
    match scenario {
        Scenario::Generation => generation_step(step, &path),
        Scenario::TurnLimit if step < FOREVER_STEPS => bash(&format!("echo turn {step}"), None),
        Scenario::Budget if step < FOREVER_STEPS => match bash(&format!("echo spend {step}"), None)
        {
            Answer::Message { text, tool, .. } => Answer::Message {
                text,
                tool,
                usage: BUDGET_USAGE,
            },
            other => other,
        },
        Scenario::LongBash { seconds } if step == 0 => {
            let command = format!(
                "echo $$ > {LONG_BASH_MARKER}; i=0; while [ $i -lt {seconds} ]; do sleep 1; i=$((i+1)); done; echo long-bash-finished"
            );
            let timeout_ms = (u64::from(seconds) * 1000 + 60_000).min(600_000);
            bash(&command, Some(timeout_ms))
        }
        Scenario::AllocBash { bytes } if step == 0 => {
            let command = format!(
                "python3 -c \"import os, time; b = bytearray(b'\\x01') * {bytes}; open('{ALLOC_BASH_MARKER}', 'w').write(str(os.getpid())); [time.sleep(0.25) for _ in range({})]; print('held', len(b))\"",
                ALLOC_HOLD_SECONDS * 4
            );
            bash(
                &command,
                Some(u64::from(ALLOC_HOLD_SECONDS) * 1000 + 120_000),
            )
        }
        _ => Answer::text("Finished."),
    }
}

fn bash(command: &str, timeout_ms: Option<u64>) -> Answer {
    let mut input = json!({ "command": command, "description": "Run a step" });
    if let Some(ms) = timeout_ms {
        input["timeout"] = json!(ms);
    }
    Answer::tool(None, "Bash", input)
}

/// The generation script: one tool call per step, then the final text.
fn generation_step(step: usize, path: &dyn Fn(&str) -> String) -> Answer {
    let write = |text: Option<&str>, rel: &str, content: &str| {
        Answer::tool(
            text,
            "Write",
            json!({ "file_path": path(rel), "content": content }),
        )
    };
    match step {
        0 => write(
            Some("I'll scaffold a Vite + React front end with an Express API."),
            "package.json",
            PACKAGE_JSON,
        ),
        1 => write(None, "server/index.js", SERVER_JS),
        2 => write(None, "src/App.jsx", APP_JSX),
        3 => write(None, "index.html", INDEX_HTML),
        4 => write(None, ".gitignore", "dist/\n"),
        5 => write(None, ".env.example", "PORT=3000\n"),
        6 => Answer::tool(
            Some("Now a friendlier greeting."),
            "Edit",
            json!({
                "file_path": path("src/App.jsx"),
                "old_string": "Hello",
                "new_string": "Hello from genrun",
            }),
        ),
        7 => bash(
            "mkdir -p node_modules/express dist logs \
             && echo 'module.exports = {};' > node_modules/express/index.js \
             && echo 'started' > logs/server.log && echo 'debug' > npm-debug.log \
             && echo 'API_KEY=sk-live-not-for-the-archive' > .env \
             && echo 'bundle' > dist/bundle.js \
             && ln -sf /etc/hostname escape-link && echo installed",
            None,
        ),
        _ => Answer::text(GENERATION_FINAL_TEXT),
    }
}

const PACKAGE_JSON: &str = r#"{
  "name": "generated-app",
  "private": true,
  "type": "module",
  "scripts": { "dev": "vite", "build": "vite build", "server": "node server/index.js" },
  "dependencies": { "express": "^4.21.0", "react": "^18.3.1", "react-dom": "^18.3.1" },
  "devDependencies": { "vite": "^5.4.0", "@vitejs/plugin-react": "^4.3.0" }
}
"#;

const SERVER_JS: &str = r#"import express from 'express';

const app = express();
app.get('/api/health', (_req, res) => res.json({ ok: true }));
app.listen(process.env.PORT || 3000);
"#;

const APP_JSX: &str = r#"export default function App() {
  return <h1>Hello</h1>;
}
"#;

const INDEX_HTML: &str = r#"<!doctype html>
<html>
  <body>
    <div id="root"></div>
    <script type="module" src="/src/main.jsx"></script>
  </body>
</html>
"#;

/// Number of `tool_result` blocks in the request's messages.
fn tool_results(request: &Value) -> usize {
    messages(request)
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
        .count()
}

fn messages(request: &Value) -> &[Value] {
    request
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// True when the last user message asks for a conversation summary (the CLI's context compaction).
fn asks_for_summary(request: &Value) -> bool {
    let Some(last) = messages(request)
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return false;
    };
    let mut texts = Vec::new();
    collect_strings(last, &mut texts);
    texts
        .iter()
        .any(|t| t.contains("create a detailed summary of"))
}

/// The CLI's working directory, from its environment block (`Primary working directory: /path`), which it
/// sends in the system prompt or (2.1.330) in a `role: "system"` message.
fn working_directory(request: &Value) -> Option<String> {
    const KEY: &str = "Primary working directory: ";
    let mut texts = Vec::new();
    if let Some(system) = request.get("system") {
        collect_strings(system, &mut texts);
    }
    for message in messages(request) {
        collect_strings(message, &mut texts);
    }
    texts.iter().find_map(|t| {
        let start = t.find(KEY)? + KEY.len();
        let line = t[start..].lines().next()?.trim();
        line.starts_with('/').then(|| line.to_owned())
    })
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Renders `answer` as SSE (streaming requests) or one JSON message.
fn render(answer: Answer, request: &Value, n: usize) -> Response<Full<Bytes>> {
    let (text, tool, usage) = match answer {
        Answer::Error(status) => return api_error(status, "api_error", "Internal server error"),
        Answer::Message { text, tool, usage } => (text, tool, usage),
    };
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-standin");
    let id = format!("msg_standin_{n:04}");
    let stop_reason = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    let mut blocks = Vec::new();
    if let Some(text) = text {
        blocks.push(json!({ "type": "text", "text": text }));
    }
    if let Some((name, input)) = tool {
        blocks.push(json!({ "type": "tool_use", "id": format!("toolu_standin_{n:04}"), "name": name, "input": input }));
    }
    let streaming = request.get("stream").and_then(Value::as_bool) == Some(true);
    if !streaming {
        let message = json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": stop_reason, "stop_sequence": null,
            "usage": { "input_tokens": usage.0, "output_tokens": usage.1 },
        });
        return json_response(StatusCode::OK, &message);
    }
    let mut sse = String::new();
    let mut event = |name: &str, data: Value| {
        sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    event(
        "message_start",
        json!({ "type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": usage.0, "output_tokens": 1,
                       "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
        }}),
    );
    for (index, block) in blocks.iter().enumerate() {
        let (start, deltas) = if block["type"] == "text" {
            let text = block["text"].as_str().unwrap_or_default();
            (
                json!({ "type": "text", "text": "" }),
                halves(text)
                    .into_iter()
                    .map(|t| json!({ "type": "text_delta", "text": t }))
                    .collect::<Vec<_>>(),
            )
        } else {
            let input = block["input"].to_string();
            (
                json!({ "type": "tool_use", "id": block["id"], "name": block["name"], "input": {} }),
                halves(&input)
                    .into_iter()
                    .map(|p| json!({ "type": "input_json_delta", "partial_json": p }))
                    .collect(),
            )
        };
        event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": index, "content_block": start }),
        );
        for delta in deltas {
            event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": index, "delta": delta }),
            );
        }
        event(
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        );
    }
    event(
        "message_delta",
        json!({ "type": "message_delta",
                "delta": { "stop_reason": stop_reason, "stop_sequence": null },
                "usage": { "output_tokens": usage.1 } }),
    );
    event("message_stop", json!({ "type": "message_stop" }));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .header("request-id", format!("req_standin_{n:04}"))
        .body(Full::new(Bytes::from(sse)))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

/// Splits `s` in two at a char boundary, so deltas arrive in more than one piece.
fn halves(s: &str) -> Vec<&str> {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid += 1;
    }
    [&s[..mid], &s[mid..]]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect()
}

fn api_error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({ "type": "error", "error": { "type": kind, "message": message } }),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(messages: Value) -> Value {
        json!({
            "model": "m",
            "stream": true,
            "system": [{ "type": "text", "text": "x" }],
            "messages": messages,
        })
    }

    fn env_message(dir: &str) -> Value {
        json!({ "role": "system", "content": [{ "type": "text",
            "text": format!("# Environment\n - Primary working directory: {dir}\n - Is a git repository: false\n") }] })
    }

    fn tool_result(id: &str) -> Value {
        json!({ "role": "user", "content": [{ "type": "tool_result", "tool_use_id": id, "content": "ok" }] })
    }

    #[test]
    fn generation_writes_absolute_paths_under_the_cli_cwd() {
        let req = request(json!([
            { "role": "user", "content": [{ "type": "text", "text": "build" }] },
            env_message("/workspace/app"),
        ]));
        let Answer::Message {
            tool: Some((name, input)),
            ..
        } = plan(Scenario::Generation, &req)
        else {
            panic!("expected a tool call");
        };
        assert_eq!(name, "Write");
        assert_eq!(input["file_path"], "/workspace/app/package.json");
    }

    #[test]
    fn generation_step_follows_tool_results_and_ends_with_text() {
        let mut msgs = vec![json!({ "role": "user", "content": "build" })];
        let mut names = Vec::new();
        for i in 0..20 {
            match plan(Scenario::Generation, &request(Value::Array(msgs.clone()))) {
                Answer::Message {
                    tool: Some((name, _)),
                    ..
                } => names.push(name),
                Answer::Message {
                    text: Some(text),
                    tool: None,
                    ..
                } => {
                    assert_eq!(text, GENERATION_FINAL_TEXT);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
            msgs.push(json!({ "role": "assistant", "content": [{ "type": "tool_use", "id": i.to_string() }] }));
            msgs.push(tool_result(&i.to_string()));
        }
        assert_eq!(
            names,
            ["Write", "Write", "Write", "Write", "Write", "Write", "Edit", "Bash"]
        );
    }

    #[test]
    fn compaction_request_gets_text() {
        let req = request(json!([
            tool_result("a"),
            { "role": "user", "content": [{ "type": "text",
              "text": "Your task is to create a detailed summary of the conversation so far" }] },
        ]));
        assert!(matches!(
            plan(Scenario::TurnLimit, &req),
            Answer::Message { tool: None, .. }
        ));
    }

    #[test]
    fn api_error_scenario_always_fails_and_budget_is_expensive() {
        let req = request(json!([]));
        assert_eq!(
            plan(Scenario::ApiError500, &req),
            Answer::Error(StatusCode::INTERNAL_SERVER_ERROR)
        );
        let Answer::Message { usage, .. } = plan(Scenario::Budget, &req) else {
            panic!("expected a message");
        };
        assert_eq!(usage, BUDGET_USAGE);
    }

    #[test]
    fn scenario_names_round_trip() {
        for s in [
            Scenario::Generation,
            Scenario::TurnLimit,
            Scenario::ApiError500,
            Scenario::Budget,
            Scenario::LongBash { seconds: 30 },
            Scenario::AllocBash { bytes: 1 << 20 },
        ] {
            assert_eq!(s.to_string().parse::<Scenario>().unwrap(), s);
        }
        assert!("long-bash".parse::<Scenario>().is_err());
        assert!("nope".parse::<Scenario>().is_err());
    }

    #[test]
    fn sse_stream_has_the_documented_event_order() {
        let answer = Answer::tool(Some("hi"), "Bash", json!({ "command": "true" }));
        let response = render(answer, &request(json!([])), 1);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let body = futures::executor::block_on(response.into_body().collect())
            .unwrap()
            .to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let events: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            events,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let partial: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter_map(|v| v["delta"]["partial_json"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&partial).unwrap(),
            json!({ "command": "true" })
        );
    }
}
