//! The event stream as a consumer reads it: shape (snapshot), gap-free `seq`, the 64 KiB line cap, and
//! the plain form of the terminal view.

use std::time::Duration;

use genrun_progress::{Event, EventKind, LogFormat, MAX_LINE_BYTES};
use serde_json::Value;

use crate::common::{all_kinds, capture, json_lines, no_secrets, normalise};
use crate::demo;

const SNAPSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/progress/snapshots/scripted_run.jsonl"
);

/// The JSON lines of a scripted run (plus one of every kind) equal the reviewed snapshot, `ts` aside.
/// `UPDATE_SNAPSHOTS=1` rewrites the snapshot; review the diff.
#[tokio::test]
async fn scripted_run_matches_snapshot() {
    let (p, out) = capture("req-snap", LogFormat::Json, no_secrets());
    demo::first_half(&p, &|| {});
    demo::second_half(&p, &|| {});
    for k in all_kinds() {
        p.emit(k);
    }
    p.emit_msg(
        EventKind::Warning {
            message: "custom".into(),
        },
        "a message of the caller's own",
    );
    let report = p.finish(Duration::from_secs(30)).await;
    assert!(report.rendered_all);

    let lines = json_lines(&out.text());
    let mut last_ts = String::new();
    for l in &lines {
        let ts = l["ts"].as_str().unwrap().to_string();
        assert!(ts >= last_ts, "ts went backwards: {last_ts} then {ts}");
        last_ts = ts;
    }
    let actual: String = lines
        .into_iter()
        .map(|l| serde_json::to_string(&normalise(l)).unwrap() + "\n")
        .collect();
    // Key order on the wire is part of the format: compare the text, not just the values.
    let actual_raw_order: Vec<String> = out
        .text()
        .lines()
        .map(|l| l.split("\"kind\"").next().unwrap().to_string())
        .collect();
    assert!(actual_raw_order
        .iter()
        .all(|prefix| prefix.starts_with("{\"ts\":\"")
            && prefix.contains(",\"seq\":")
            && prefix.ends_with(",\"request_id\":\"req-snap\",")));

    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(SNAPSHOT)
        .expect("snapshot missing: run with UPDATE_SNAPSHOTS=1 and review it");
    // Values, not text: the snapshot is stored with serde_json's sorted keys after normalising.
    let a: Vec<Value> = json_lines(&actual);
    let e: Vec<Value> = json_lines(&expected);
    for (i, (a, e)) in a.iter().zip(e.iter()).enumerate() {
        assert_eq!(a, e, "event {i} differs from the snapshot");
    }
    assert_eq!(
        a.len(),
        e.len(),
        "number of events differs from the snapshot"
    );
}

/// `seq` runs 1..=N without gaps and in output order, however many clones emit from however many threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_is_gap_free_across_clones_and_threads() {
    let (p, out) = capture("req-seq", LogFormat::Json, no_secrets());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..2_500u64 {
                    p.emit(EventKind::Turn {
                        n: t * 10_000 + i,
                        max: 50,
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(p.events_emitted(), 10_000);
    p.finish(Duration::from_secs(60)).await;
    let seqs: Vec<u64> = json_lines(&out.text())
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=10_000).collect::<Vec<u64>>());
}

/// No line exceeds 64 KiB, even with a 1 MB text, a 1 MB message, a 1 MB escaped-heavy target or a huge
/// archive list; cut strings keep their start and say how much was cut; the event stays typed.
#[tokio::test]
async fn line_cap_holds_for_megabyte_fields() {
    let (p, out) = capture("req-cap", LogFormat::Json, no_secrets());
    let text: String = "Grüße, world! ".repeat(80_000); // ~1.2 MB, multibyte
    let control: String = "\u{1}\"\\\n".repeat(250_000); // 1 MB that serializes to 3.25 MB
    p.emit(EventKind::Text { text: text.clone() });
    p.emit(EventKind::Tool {
        name: "Bash".into(),
        target: Some(control),
    });
    p.emit_msg(EventKind::Turn { n: 1, max: 2 }, "m".repeat(1 << 20));
    p.emit(EventKind::Packaged {
        files: 1,
        dropped: 0,
        bytes_in: 1,
        archives: (0..20_000)
            .map(|i| (format!("part-{i:05}.tar.zst"), i))
            .collect(),
    });
    p.emit(EventKind::Turn { n: 2, max: 2 });
    p.finish(Duration::from_secs(30)).await;

    let raw = out.text();
    for line in raw.lines() {
        assert!(line.len() < MAX_LINE_BYTES, "line of {} bytes", line.len());
    }
    let events: Vec<Event> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 5);
    match &events[0].kind {
        EventKind::Text { text: t } => {
            assert!(t.starts_with("Grüße, world! Grüße"));
            assert!(t.contains("… [truncated "), "no marker");
            // Cut only as much as needed: the line is close to the cap.
            assert!(raw.lines().next().unwrap().len() > MAX_LINE_BYTES - 1024);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&events[1].kind, EventKind::Tool { target: Some(t), .. } if t.starts_with("\u{1}\"\\\n") && t.contains("[truncated "))
    );
    assert!(events[2].msg.starts_with("mmm") && events[2].msg.contains("[truncated "));
    assert!(
        matches!(&events[3].kind, EventKind::Packaged { archives, .. } if !archives.is_empty() && archives.len() < 20_000 && archives[0].0 == "part-00000.tar.zst")
    );
    assert_eq!(events[4].kind, EventKind::Turn { n: 2, max: 2 });
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
}

/// After `finish` the stream is closed: later events are not printed or counted, and finishing again
/// returns the first report.
#[tokio::test]
async fn finish_closes_the_stream() {
    let (p, out) = capture("req-fin", LogFormat::Json, no_secrets());
    p.emit(EventKind::Turn { n: 1, max: 1 });
    let first = p.finish(Duration::from_secs(10)).await;
    p.emit(EventKind::Turn { n: 2, max: 1 });
    let second = p.finish(Duration::from_secs(10)).await;
    assert_eq!(first, second);
    assert_eq!(p.events_emitted(), 1);
    assert_eq!(json_lines(&out.text()).len(), 1);
}

/// `--log-format pretty` without a terminal prints the log lines (no status line) and the summary.
#[tokio::test]
async fn pretty_without_a_terminal_prints_plain_lines() {
    let (p, out) = capture("req-pretty", LogFormat::Pretty, no_secrets());
    demo::first_half(&p, &|| {});
    demo::second_half(&p, &|| {});
    p.finish(Duration::from_secs(10)).await;
    let text = console::strip_ansi_codes(&out.text()).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("genrun") && lines[0].contains("request req-pretty"),
        "{text}"
    );
    assert!(lines.contains(&"  ▸ Write  src/App.tsx"), "{text}");
    assert!(lines.contains(&"  ▸ Bash   npm install"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  … running 15s: turn 2/10, memory 31%, $0.12")),
        "{text}"
    );
    assert_eq!(
        lines.last().copied(),
        Some("✔ success (exit 0) in 1m06s · 3 turns · $0.42"),
        "{text}"
    );
    assert!(!text.contains('{'), "no JSON in the pretty output: {text}");
}
