//! Progress through the real binary (issue 7): the HTTP sink against a real receiver that is down, failing,
//! gated or silent; redaction of secrets in events, transcript, result.json and the archive; the
//! terminal view under a pseudo-terminal.

use std::time::Duration;

use genrun_testkit::receiver::{reserve_port, Behaviour, Receiver};
use serde_json::Value;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(120);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn with_sink(run: &RunDir, script: &str, url: &str, token: &str) -> std::process::Command {
    let mut cmd = run.cmd(script);
    cmd.args(["--progress-url", url, "--progress-token", token]);
    cmd
}

#[test]
fn every_event_reaches_the_receiver_in_order_with_the_bearer_token() {
    let rt = rt();
    let rx = rt.block_on(Receiver::start(Behaviour::Normal)).unwrap();
    let run = RunDir::new("http-1");
    let out = run_with_deadline(
        with_sink(&run, "success", &rx.url, "tok-progress-0123456789"),
        LIMIT,
    );
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let printed = events(&out);
    let seqs = rx.seqs();
    assert_eq!(
        seqs,
        (1..=printed.len() as u64).collect::<Vec<_>>(),
        "receiver got {seqs:?}"
    );
    let received = rx.events();
    assert_eq!(kinds(&received), kinds(&printed));
    assert!(rx
        .authorizations()
        .iter()
        .all(|a| a.as_deref() == Some("Bearer tok-progress-0123456789")));
    // The token itself never appears in what genrun printed or stored.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("tok-progress-0123456789"));
    assert!(!run.result().to_string().contains("tok-progress-0123456789"));
}

#[test]
fn a_receiver_that_holds_every_request_does_not_hold_the_agent() {
    let rt = rt();
    let rx = rt.block_on(Receiver::start(Behaviour::Gated)).unwrap();
    let run = RunDir::new("http-gated-1");
    // The gate is never opened while genrun runs: if the agent waited for the receiver, genrun could not
    // finish; it does, with the whole run done and only the final flush cut short by its deadline.
    let out = run_with_deadline(
        with_sink(&run, "demo", &rx.url, "tok-gated-0123456789"),
        LIMIT,
    );
    assert_eq!(code(&out), 0, "{}", explain(&out));
    assert_eq!(run.result()["outcome"], "success");
    assert!(rx.requests() >= 1, "genrun never tried to deliver");
    rx.open_gate();
}

#[test]
fn a_receiver_that_never_answers_is_abandoned_at_the_flush_deadline() {
    let rt = rt();
    let rx = rt.block_on(Receiver::start(Behaviour::Hang)).unwrap();
    let run = RunDir::new("http-hang-1");
    let out = run_with_deadline(
        with_sink(&run, "success", &rx.url, "tok-hang-0123456789"),
        LIMIT,
    );
    assert_eq!(code(&out), 0, "{}", explain(&out));
    assert_eq!(run.result()["outcome"], "success");
}

#[test]
fn failing_receiver_recovers_and_nothing_is_lost() {
    let rt = rt();
    let rx = rt
        .block_on(Receiver::start(Behaviour::FailFirst(3)))
        .unwrap();
    let run = RunDir::new("http-500-1");
    let out = run_with_deadline(
        with_sink(&run, "success", &rx.url, "tok-500-0123456789"),
        LIMIT,
    );
    assert_eq!(code(&out), 0, "{}", explain(&out));
    assert_eq!(rx.failed(), 3);
    let n = events(&out).len() as u64;
    assert_eq!(rx.seqs(), (1..=n).collect::<Vec<_>>());
}

#[test]
fn receiver_down_at_start_gets_the_events_once_it_is_up() {
    let rt = rt();
    let port = reserve_port().unwrap();
    let run = RunDir::new("http-down-1");
    let script = run.dir.path().join("wait.script");
    // The agent keeps working until the test has started the receiver (a file appears).
    let marker = run.dir.path().join("receiver-up");
    std::fs::write(
        &script,
        format!(
            "turn\ntext waiting for the receiver\nbash <<EOF\nwhile [ ! -e {} ]; do sleep 0.05; done\nEOF\ntext done\n",
            marker.display()
        ),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/progress");
    let g = Running::start(with_sink(
        &run,
        script.to_str().unwrap(),
        &url,
        "tok-down-0123456789",
    ));
    g.wait_event("the agent waiting", LIMIT, |e| e["kind"] == "text");
    let rx = rt
        .block_on(Receiver::start_on(port, Behaviour::Normal))
        .unwrap();
    std::fs::write(&marker, "").unwrap();
    let out = g.finish(LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let n = events(&out).len() as u64;
    // Everything queued while the receiver was down arrives (the queue is far larger than this run),
    // in order, and no batch reports drops.
    assert_eq!(rx.seqs(), (1..=n).collect::<Vec<_>>());
    assert!(
        rx.batches().iter().all(|b| b["dropped"] == 0),
        "{:?}",
        rx.batches()
    );
}

#[test]
fn secrets_are_redacted_in_events_transcript_result_and_archive() {
    let run = RunDir::new("redact-1");
    let api_key = "sk-ant-api03-REDACTME0123456789abcdefghij";
    let custom = "custom-secret-value-987654321";
    let script = run.dir.path().join("leak.script");
    std::fs::write(
        &script,
        format!(
            "turn\ntext My key is {api_key} and {custom}\nwrite config.js <<EOF\nexport const key = \"{api_key}\";\nexport const other = \"{custom}\";\nEOF\nbash echo {custom}\ntext done with {custom}\n"
        ),
    )
    .unwrap();
    let mut cmd = run.cmd(script.to_str().unwrap());
    cmd.env("ANTHROPIC_API_KEY", api_key)
        .env("MY_SERVICE_TOKEN", custom)
        .args(["--secret-env", "MY_SERVICE_TOKEN"]);
    cmd.args(["--prompt", &format!("use the key {api_key}")]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    for secret in [api_key, custom] {
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(secret),
            "secret in events"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains(secret),
            "secret in logs"
        );
        assert!(
            !run.transcript().contains(secret),
            "secret in the transcript"
        );
        assert!(
            !std::fs::read_to_string(run.artifacts().join("result.json"))
                .unwrap()
                .contains(secret)
        );
        assert!(
            !std::fs::read_to_string(run.artifacts().join("manifest.json"))
                .unwrap()
                .contains(secret)
        );
    }
    assert!(run.transcript().contains("[REDACTED]"));
    let config = archive_file(&run.artifacts().join("app.tar.zst"), "config.js").unwrap();
    let config = String::from_utf8(config).unwrap();
    assert!(
        !config.contains(api_key) && !config.contains(custom),
        "{config}"
    );
    assert!(config.contains("[REDACTED]"), "{config}");
    let r = run.result();
    assert_eq!(
        r["package"]["redacted_files"],
        serde_json::json!(["config.js"])
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(run.artifacts().join("manifest.json")).unwrap())
            .unwrap();
    assert!(manifest.to_string().contains("config.js"));
}

#[test]
fn terminal_view_under_a_pseudo_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "skipped: `script` (bsdutils) is not installed; tests/install-deps.sh installs it"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let command = format!(
        "{} demo --out {} --log-format auto",
        genrun_bin().display(),
        dir.path().join("demo").display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120");
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let screen = String::from_utf8_lossy(&out.stdout);
    // auto picked the terminal view: no JSON lines, a status line, the tools log, the final summary.
    assert!(
        !screen
            .lines()
            .any(|l| l.trim_start().starts_with("{\"ts\"")),
        "JSON on a terminal:\n{screen}"
    );
    for want in [
        "turn",
        "Write",
        "success (exit 0)",
        "files kept",
        "app.tar.zst",
    ] {
        assert!(
            screen.contains(want),
            "the terminal view lacks {want:?}:\n{screen}"
        );
    }
}

#[test]
fn heartbeats_carry_elapsed_turns_and_memory() {
    let run = RunDir::new("heartbeat-1");
    let mut cmd = run.cmd("hang");
    cmd.args([
        "--timeout",
        "2s",
        "--heartbeat",
        "300ms",
        "--memory-interval",
        "100ms",
    ]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 82, "{}", explain(&out));
    let beats: Vec<Value> = events(&out)
        .into_iter()
        .filter(|e| e["kind"] == "heartbeat")
        .collect();
    assert!(
        beats.len() >= 3,
        "{} heartbeats in a 2 s run at 300 ms",
        beats.len()
    );
    let last = beats.last().unwrap();
    assert!(last["elapsed_s"].as_u64().unwrap() >= 1, "{last}");
    assert_eq!(last["turns"], 1);
    assert_eq!(last["max_turns"], 1000);
    assert!(last["memory_percent"].as_f64().is_some(), "{last}");
}
