//! Prints what `Progress::emit` costs the caller: `cargo run --release -p genrun-progress --example
//! emit_bench`. The HTTP sink points at a port where nothing listens, so every event also goes through
//! the sink's queue (and its drop-oldest path) while the sender retries.

use std::time::{Duration, Instant};

use genrun_progress::{EventKind, HttpSinkConfig, LogFormat, Progress, ProgressConfig, Redactor};

#[tokio::main]
async fn main() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9);
    let mut cfg = ProgressConfig::new("req-bench");
    cfg.format = LogFormat::Json;
    let mut http = HttpSinkConfig::new(
        format!("http://127.0.0.1:{port}/"),
        Some("token-0123456789".into()),
    );
    http.queue_capacity = 1_000;
    cfg.http = Some(http);
    let secrets = (0..20).map(|i| format!("secret-value-{i:02}-abcdefgh"));
    let p = Progress::start_with_writer(cfg, Redactor::new(secrets), Box::new(std::io::sink()));
    let text = "I'll add the API route and wire it to the React form. ".repeat(4);
    for (label, n) in [
        ("tool", 20_000u64),
        ("text 220 B", 20_000),
        ("text 1 MB", 20),
    ] {
        let big = "x".repeat(1 << 20);
        let start = Instant::now();
        for i in 0..n {
            match label {
                "tool" => p.emit(EventKind::Tool {
                    name: "Write".into(),
                    target: Some(format!("src/file{i}.tsx")),
                }),
                "text 1 MB" => p.emit(EventKind::Text { text: big.clone() }),
                _ => p.emit(EventKind::Text { text: text.clone() }),
            }
        }
        let per = start.elapsed() / n as u32;
        println!("{label:>12}: {n} events, {per:?} per emit");
    }
    let report = p.finish(Duration::from_secs(1)).await;
    println!(
        "http: sent {}, dropped {}",
        report.http_sent, report.http_dropped
    );
}
