//! Redaction as a user meets it: secrets and key shapes in events (prompt, agent output, tool input and
//! results), in a transcript written through `RedactingWriter` in arbitrary pieces, in a 20 MB stream with
//! bounded memory, and in genrun's own log records.

use std::io::Write;
use std::time::Duration;

use genrun_progress::{
    redacting_stderr, secret_values_from_env, EventKind, LogFormat, Redactor, KEY_BLOCK_WINDOW,
    REDACTED,
};

use crate::common::{capture, child_command};

const API_KEY: &str = "sk-ant-api03-Zq9xY8wV7uT6sR5qP4oN3mL2kJ1iH0gF-AbCdEfGhIjKlMn_opqr";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEH8aCXVzLWVhc3QtMSJHMEUCIQD+token/with=chars";
const PROGRESS_TOKEN: &str = "prog-token-5f2b9c7e1d";
const DB_PASSWORD: &str = "correct horse battery staple";
const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const PEM: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAMwAAAAtzc2gtZWQyNTUxOQ\n-----END OPENSSH PRIVATE KEY-----";
const OTHER_ANTHROPIC_KEY: &str = "sk-ant-oat01-unknownToGenrunButShapedLikeAKey_0123456789";

fn env_redactor() -> Redactor {
    let env: Vec<(String, String)> = [
        ("ANTHROPIC_API_KEY", API_KEY),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("GENRUN_PROGRESS_TOKEN", PROGRESS_TOKEN),
        ("MY_DB_PASSWORD", DB_PASSWORD),
        ("HOME", "/home/agent"),
        ("SHORT_SECRET", "abc"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let values = secret_values_from_env(
        &env,
        &["MY_DB_PASSWORD".to_string(), "SHORT_SECRET".to_string()],
    );
    Redactor::new(values)
}

const ALL_SECRETS: [&str; 8] = [
    API_KEY,
    AWS_SECRET,
    SESSION_TOKEN,
    PROGRESS_TOKEN,
    DB_PASSWORD,
    ACCESS_KEY_ID,
    PEM,
    OTHER_ANTHROPIC_KEY,
];

fn assert_clean(text: &str) {
    for s in ALL_SECRETS {
        assert!(!text.contains(s), "secret {s:?} leaked in:\n{text}");
    }
    // Fragments too: the key material between PEM markers and the middle of the API key.
    assert!(
        !text.contains("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"),
        "PEM body leaked"
    );
    assert!(
        !text.contains("Zq9xY8wV7uT6sR5qP4oN3mL2kJ1iH0gF"),
        "key body leaked"
    );
}

/// Secrets placed where a run meets them (the prompt in `started`, the agent's text, a tool's command,
/// a tool result in a warning, the caller's own msg, nested arrays) never reach the JSON lines.
#[tokio::test]
async fn secrets_in_events_are_redacted() {
    let (p, out) = capture("req-redact", LogFormat::Json, env_redactor());
    p.emit(EventKind::Started {
        version: "0.1.0".into(),
        workspace: format!("/workspace (prompt: build an app using key {API_KEY})"),
        output: format!("s3://bucket/{PROGRESS_TOKEN}"),
        max_turns: 5,
    });
    p.emit(EventKind::Text {
        text: format!("Your AWS secret is {AWS_SECRET} and the session {SESSION_TOKEN}."),
    });
    p.emit(EventKind::Tool {
        name: "Bash".into(),
        target: Some(format!("curl -H 'x-api-key: {API_KEY}' https://api")),
    });
    p.emit(EventKind::Tool {
        name: "Write".into(),
        target: Some(format!(".env ({OTHER_ANTHROPIC_KEY})")),
    });
    p.emit(EventKind::Warning {
        message: format!("tool result: {ACCESS_KEY_ID} / {DB_PASSWORD}\n{PEM}\nend"),
    });
    p.emit_msg(
        EventKind::Turn { n: 1, max: 5 },
        format!("msg with {DB_PASSWORD}"),
    );
    p.emit(EventKind::Packaged {
        files: 1,
        dropped: 0,
        bytes_in: 1,
        archives: vec![(format!("{PROGRESS_TOKEN}.tar"), 1)],
    });
    p.finish(Duration::from_secs(10)).await;
    let text = out.text();
    assert_clean(&text);
    assert_eq!(text.matches(REDACTED).count(), 19, "{text}");
    assert!(
        text.contains("\"text\":\"Your AWS secret is [REDACTED] and the session [REDACTED].\""),
        "{text}"
    );
    assert!(
        text.contains("\"message\":\"tool result: [REDACTED] / [REDACTED]\\n[REDACTED]\\nend\""),
        "{text}"
    );
    // Short values and ordinary ones stay.
    assert!(text.contains("/workspace (prompt: build an app using key [REDACTED])"));
}

/// A transcript-like text with every kind of secret, split at every possible point into two writes (and
/// written one byte at a time), comes out exactly as redacting it whole.
#[test]
fn writer_redacts_across_every_split_point() {
    let r = env_redactor();
    let text = format!(
        "{{\"type\":\"assistant\",\"text\":\"k={API_KEY} s={AWS_SECRET}\"}}\n{{\"c\":\"{}\"}}\nid {ACCESS_KEY_ID} pw {DB_PASSWORD} {OTHER_ANTHROPIC_KEY} done",
        PEM.replace('\n', "\\n")
    );
    let whole = r.redact(&text).into_owned();
    assert_clean(&whole);
    assert_eq!(whole.matches(REDACTED).count(), 6, "{whole}");
    let bytes = text.as_bytes();
    for split in 0..=bytes.len() {
        let mut w = r.writer(Vec::new());
        w.write_all(&bytes[..split]).unwrap();
        w.write_all(&bytes[split..]).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(out, whole, "split at {split}");
    }
    let mut w = r.writer(Vec::new());
    for b in bytes {
        w.write_all(std::slice::from_ref(b)).unwrap();
    }
    assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), whole);
}

/// Dropping the writer (instead of `finish`) still writes the held-back tail, redacted.
#[test]
fn writer_flushes_on_drop() {
    let r = env_redactor();
    let mut sink = Vec::new();
    {
        let mut w = r.writer(&mut sink);
        write!(w, "tail {DB_PASSWORD}").unwrap();
    }
    assert_eq!(String::from_utf8(sink).unwrap(), "tail [REDACTED]");
}

/// A single 20 MB line (a stream-json transcript line), secrets sprinkled through it and one unterminated
/// private key block, written in uneven pieces: the output equals whole redaction and the writer never
/// holds more than a few hundred KiB.
#[test]
fn twenty_megabyte_stream_is_redacted_with_bounded_memory() {
    let r = env_redactor();
    let mut input: Vec<u8> = Vec::with_capacity(21 << 20);
    let filler =
        b"lorem ipsum dolor sit amet, consectetur adipiscing elit \\\"quoted\\\" ".repeat(16);
    let secrets = [
        API_KEY,
        AWS_SECRET,
        DB_PASSWORD,
        ACCESS_KEY_ID,
        OTHER_ANTHROPIC_KEY,
    ];
    let pem_open = b"-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEA";
    let (mut placed, mut pieces, mut quiet_until) = (0, 0, 0);
    while input.len() < 20 << 20 {
        input.extend_from_slice(&filler);
        pieces += 1;
        if quiet_until == 0 && input.len() >= 10 << 20 {
            // Half way: a private key block that never ends, then a stretch without secrets beyond its window.
            input.extend_from_slice(pem_open);
            quiet_until = input.len() + 2 * KEY_BLOCK_WINDOW;
        } else if pieces % 5 == 0 && input.len() > quiet_until {
            input.extend_from_slice(secrets[placed % secrets.len()].as_bytes());
            input.push(b' ');
            placed += 1;
        }
    }
    assert!(placed > 3000, "placed {placed}");

    let expected = r.redact_bytes(&input).into_owned();
    let mut w = r.writer(Vec::with_capacity(input.len()));
    let mut pos = 0;
    let mut step = 1usize;
    while pos < input.len() {
        // Piece sizes from 1 byte to 1 MB, changing every write.
        step = (step * 7919 + 13) % (1 << 20) + 1;
        let end = (pos + step).min(input.len());
        w.write_all(&input[pos..end]).unwrap();
        pos = end;
    }
    let high_water = w.max_buffered();
    let out = w.finish().unwrap();
    assert!(
        out == expected,
        "streaming output differs from whole redaction"
    );
    let out = String::from_utf8(out).unwrap();
    assert_clean(&out);
    assert!(!out.contains("MIIEpAIBAAKCAQEA"));
    assert_eq!(out.matches(REDACTED).count(), placed + 1);
    // The unterminated block hid exactly the window after its start.
    assert!(out.len() < input.len());
    assert!(
        high_water <= 2 * KEY_BLOCK_WINDOW + 64 * 1024,
        "held {high_water} bytes"
    );
}

/// genrun's own log records (tracing, via `redacting_stderr`) reach stderr redacted. Runs in a child
/// process because it writes to the real stderr.
#[test]
fn log_records_on_stderr_are_redacted() {
    let out = child_command(
        "redaction::child_log_a_secret",
        &[("GENRUN_PROGRESS_CHILD", "log")],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stderr}");
    assert!(
        stderr.contains("upload failed for key [REDACTED] and [REDACTED]"),
        "{stderr}"
    );
    assert_clean(&stderr);
}

/// Child of `log_records_on_stderr_are_redacted`.
#[test]
#[ignore = "child process entry point, run by log_records_on_stderr_are_redacted"]
fn child_log_a_secret() {
    if std::env::var("GENRUN_PROGRESS_CHILD").as_deref() != Ok("log") {
        return;
    }
    let subscriber = tracing_subscriber::fmt()
        .with_writer(redacting_stderr(env_redactor()))
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::error!(
            secret = AWS_SECRET,
            "upload failed for key {} and {}",
            API_KEY,
            ACCESS_KEY_ID
        );
    });
}
