//! The bounded line reader: huge lines, tiny reads, cut points, and a property test of the skeleton.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use genrun_agent::reader::{skeleton, Line, LineLimits, LineReader};
use genrun_agent::scripted::{run_script, ScriptArgs};
use genrun_agent::stream::{parse_line, StreamEvent};
use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};

/// A tee the test can inspect afterwards.
#[derive(Clone, Default)]
struct Tee(Arc<Mutex<Vec<u8>>>);

impl Write for Tee {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Returns 1..=7 bytes per read (sizes from a fixed xorshift sequence).
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    seed: u32,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        me.seed ^= me.seed << 13;
        me.seed ^= me.seed >> 17;
        me.seed ^= me.seed << 5;
        let n = (1 + me.seed as usize % 7)
            .min(me.data.len() - me.pos)
            .min(buf.remaining());
        buf.put_slice(&me.data[me.pos..me.pos + n]);
        me.pos += n;
        Poll::Ready(Ok(()))
    }
}

async fn read_all<R: AsyncRead + Unpin>(r: R, limits: LineLimits) -> (Vec<Line>, Vec<u8>) {
    let tee = Tee::default();
    let mut reader = LineReader::new(r, limits, Box::new(tee.clone()));
    let mut lines = Vec::new();
    while let Some(l) = reader.next_line().await.unwrap() {
        lines.push(l);
    }
    drop(reader.into_tee());
    let raw = tee.0.lock().unwrap().clone();
    (lines, raw)
}

#[tokio::test]
async fn a_20_mb_write_line_keeps_tool_and_path_but_not_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let args = ScriptArgs {
        cwd: dir.path().to_path_buf(),
        ..ScriptArgs::default()
    };
    assert_eq!(
        run_script(
            "turn\nhuge-write src/big.js 20M\ntext done\n",
            args,
            &mut out
        ),
        0
    );
    assert!(
        out.len() > 40 << 20,
        "assistant and user lines each carry the 20 MiB body"
    );

    let (lines, tee) = read_all(&out[..], LineLimits::default()).await;
    assert!(tee == out, "the tee received every byte unchanged");
    let path = dir.path().join("src/big.js").display().to_string();
    let mut saw_write = false;
    for l in &lines {
        assert!(
            l.json.len() < 64 * 1024,
            "skeleton of {} bytes kept {} bytes",
            l.raw_len,
            l.json.len()
        );
        assert!(!l.truncated);
        for ev in parse_line(&l.json).expect("skeleton is still json") {
            if let StreamEvent::ToolUse(t) = ev {
                assert_eq!(
                    (t.name.as_str(), t.target.as_deref()),
                    ("Write", Some(path.as_str()))
                );
                assert!(l.raw_len > 20 << 20);
                assert_eq!(l.capped_strings, 1);
                saw_write = true;
            }
        }
    }
    assert!(saw_write);
    assert_eq!(
        lines.iter().map(|l| l.raw_len + 1).sum::<u64>(),
        out.len() as u64
    );
}

#[tokio::test]
async fn tiny_reads_give_the_same_lines() {
    let mut data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/claude-code-2.1.330/success.jsonl"
    ))
    .unwrap();
    data.extend_from_slice("npm WARN \"not json\"\n{\"s\":\"é€😀\\n\\\"\\ud83d\\ude00\\u00e9 tail\"}\nlast line without newline".as_bytes());
    for max_string in [0, 1, 3, 5, 8, 13, 64, 8192] {
        let limits = LineLimits {
            max_string,
            max_line: 1 << 20,
        };
        let (big, _) = read_all(&data[..], limits).await;
        let (small, tee) = read_all(
            Trickle {
                data: data.clone(),
                pos: 0,
                seed: 0x1234_5678,
            },
            limits,
        )
        .await;
        assert_eq!(tee, data);
        assert_eq!(small, big, "max_string {max_string}");
        let expected: Vec<Line> = data
            .split(|&b| b == b'\n')
            .map(|l| skeleton(l, limits))
            .collect();
        assert_eq!(small, expected);
        assert_eq!(small.last().unwrap().json, b"last line without newline");
        // Keys are strings too: with tiny limits they are cut and `type` is lost.
        for l in small
            .iter()
            .filter(|l| max_string >= 16 && l.json.first() == Some(&b'{'))
        {
            serde_json::from_slice::<serde_json::Value>(&l.json)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&l.json)));
        }
    }
}

#[tokio::test]
async fn overlong_lines_are_truncated_and_the_next_line_survives() {
    let long = format!("[{}0]", "1234567,".repeat(10_000));
    let data = format!("{long}\n{{\"type\":\"result\",\"subtype\":\"success\"}}\n");
    let limits = LineLimits {
        max_string: 16,
        max_line: 1000,
    };
    let (lines, _) = read_all(
        Trickle {
            data: data.clone().into_bytes(),
            pos: 0,
            seed: 7,
        },
        limits,
    )
    .await;
    assert_eq!(lines.len(), 2);
    assert!(lines[0].truncated);
    assert_eq!(lines[0].json.len(), 1000);
    assert_eq!(lines[0].raw_len, long.len() as u64);
    assert!(!lines[1].truncated);
    assert!(matches!(
        parse_line(&lines[1].json).unwrap()[0],
        StreamEvent::Result(_)
    ));
}

#[tokio::test]
async fn empty_input_and_empty_lines() {
    assert!(read_all(&b""[..], LineLimits::default()).await.0.is_empty());
    let (lines, _) = read_all(&b"\n\nx"[..], LineLimits::default()).await;
    let json: Vec<&[u8]> = lines.iter().map(|l| &l.json[..]).collect();
    assert_eq!(json, [&b""[..], b"", b"x"]);
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let text = prop_oneof![
        "[a-z ]{0,12}",
        "[\\x00-\\x1f\"\\\\/]{0,6}",
        "\\PC{0,8}",
        Just("😀é€\u{2028}".to_owned()),
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        text.prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{0,4}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every string of `cut` is a prefix of the string at the same place in `orig`, equal when it fits.
fn same_shape(orig: &serde_json::Value, cut: &serde_json::Value, max_string: usize) -> bool {
    use serde_json::Value::*;
    match (orig, cut) {
        (String(o), String(c)) => {
            let encoded = serde_json::to_string(o).unwrap().len() - 2;
            o.starts_with(c.as_str()) && (encoded > max_string || o == c)
        }
        (Array(o), Array(c)) => {
            o.len() == c.len() && o.iter().zip(c).all(|(a, b)| same_shape(a, b, max_string))
        }
        (Object(o), Object(c)) => {
            o.len() == c.len()
                && o.iter()
                    .all(|(k, v)| c.get(k).is_some_and(|w| same_shape(v, w, max_string)))
        }
        // serde_json's default float parsing is not always round-trip exact.
        (Number(a), Number(b)) if a.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap_or(f64::NAN));
            (a - b).abs() <= a.abs() * 1e-15
        }
        (a, b) => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn skeleton_of_short_strings_is_the_line(v in json_value()) {
        let line = serde_json::to_vec(&v).unwrap();
        let s = skeleton(&line, LineLimits { max_string: 1 << 16, max_line: 1 << 20 });
        prop_assert_eq!(&s.json, &line);
        prop_assert_eq!(s.capped_strings, 0);
    }

    #[test]
    fn skeleton_with_cut_strings_is_json_of_the_same_shape(v in json_value(), max_string in 4usize..24) {
        let line = serde_json::to_vec(&v).unwrap();
        let s = skeleton(&line, LineLimits { max_string, max_line: 1 << 20 });
        let cut: serde_json::Value = serde_json::from_slice(&s.json)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&s.json))))?;
        prop_assert!(same_shape(&v, &cut, max_string), "{} -> {}", v, cut);
    }
}
