//! Keeps every serialized event under the line cap.
//!
//! CloudWatch (awslogs) splits log events above 256 KiB and the orchestrator stores events per line, so an
//! event never serializes to more than [`crate::MAX_LINE_BYTES`] including its newline. The largest string
//! fields are cut (on a character boundary, with a visible marker) until it fits; arrays are shortened only
//! if no long string is left.

use serde_json::Value;

/// Strings at most this long (serialized) are never cut: they are names and numbers' neighbours, and
/// cutting them would not help.
const MIN_CUTTABLE: usize = 64;
/// Room kept for the `… [truncated N bytes]` marker (N up to 20 digits).
const MARKER_ROOM: usize = 48;

/// Shrinks `v` until `serde_json::to_string(v).len() + 1 <= cap`. Returns false if that is impossible
/// (no string or array left to shorten), leaving `v` as small as it got.
pub(crate) fn cap_value(v: &mut Value, cap: usize) -> bool {
    for _ in 0..256 {
        let size = serialized_len(v) + 1;
        if size <= cap {
            return true;
        }
        let excess = size - cap;
        let mut best: Option<(usize, Vec<PathStep>)> = None;
        find_largest_string(v, &mut Vec::new(), &mut best);
        if let Some((len, path)) = best {
            if let Some(Value::String(s)) = get_mut(v, &path) {
                // `len` counts the quotes; the cut string keeps at most `len - excess - MARKER_ROOM` bytes.
                let budget = len.saturating_sub(2 + excess + MARKER_ROOM);
                *s = truncate_serialized(s, budget);
                continue;
            }
        }
        let mut best_arr: Option<(usize, Vec<PathStep>)> = None;
        find_largest_array(v, &mut Vec::new(), &mut best_arr);
        match best_arr.and_then(|(_, path)| get_mut(v, &path)) {
            Some(Value::Array(items)) => {
                let mut removed = 0;
                while removed < excess {
                    match items.pop() {
                        Some(item) => removed += serialized_len(&item) + 1,
                        None => break,
                    }
                }
            }
            _ => return false,
        }
    }
    serialized_len(v) < cap
}

#[derive(Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn serialized_len(v: &Value) -> usize {
    serde_json::to_string(v)
        .map(|s| s.len())
        .unwrap_or(usize::MAX / 2)
}

fn find_largest_string(
    v: &Value,
    path: &mut Vec<PathStep>,
    best: &mut Option<(usize, Vec<PathStep>)>,
) {
    match v {
        Value::String(_) => {
            let len = serialized_len(v);
            if len > MIN_CUTTABLE && best.as_ref().is_none_or(|(b, _)| len > *b) {
                *best = Some((len, path.clone()));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(PathStep::Index(i));
                find_largest_string(item, path, best);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                // The envelope's identity fields stay intact.
                if path.is_empty() && matches!(k.as_str(), "kind" | "ts" | "seq") {
                    continue;
                }
                path.push(PathStep::Key(k.clone()));
                find_largest_string(item, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

fn find_largest_array(
    v: &Value,
    path: &mut Vec<PathStep>,
    best: &mut Option<(usize, Vec<PathStep>)>,
) {
    match v {
        Value::Array(items) => {
            let len = serialized_len(v);
            if !items.is_empty() && best.as_ref().is_none_or(|(b, _)| len > *b) {
                *best = Some((len, path.clone()));
            }
            for (i, item) in items.iter().enumerate() {
                path.push(PathStep::Index(i));
                find_largest_array(item, path, best);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                path.push(PathStep::Key(k.clone()));
                find_largest_array(item, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    let mut cur = v;
    for step in path {
        cur = match (step, cur) {
            (PathStep::Key(k), Value::Object(map)) => map.get_mut(k)?,
            (PathStep::Index(i), Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The longest prefix of `s` whose JSON-escaped form fits in `budget` bytes, plus a marker saying how many
/// bytes were cut.
fn truncate_serialized(s: &str, budget: usize) -> String {
    let mut used = 0;
    let mut cut = s.len();
    for (i, c) in s.char_indices() {
        let w = escaped_width(c);
        if used + w > budget {
            cut = i;
            break;
        }
        used += w;
    }
    let mut out = s[..cut].to_string();
    out.push_str(&format!("… [truncated {} bytes]", s.len() - cut));
    out
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_width(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_values_are_untouched() {
        let mut v = json!({"kind": "text", "text": "hello"});
        let before = v.clone();
        assert!(cap_value(&mut v, 1024));
        assert_eq!(v, before);
    }

    #[test]
    fn escapes_are_counted() {
        // Control characters serialize to six bytes each: a naive byte count would overshoot the cap.
        let mut v = json!({"kind": "text", "text": "\u{1}".repeat(100_000), "msg": "x"});
        assert!(cap_value(&mut v, 4096));
        let line = serde_json::to_string(&v).unwrap_or_default();
        assert!(line.len() < 4096, "{}", line.len());
        assert!(
            line.len() > 3000,
            "cut far more than needed: {}",
            line.len()
        );
        assert!(line.contains("[truncated "));
    }

    #[test]
    fn multibyte_characters_are_not_split() {
        let mut v = json!({"kind": "text", "text": "é".repeat(50_000)});
        assert!(cap_value(&mut v, 1000));
        let text = v["text"].as_str().unwrap_or_default();
        assert!(text.starts_with('é') && text.contains("… [truncated "));
    }

    #[test]
    fn arrays_are_shortened_when_no_long_string_is_left() {
        let items: Vec<Value> = (0..10_000).map(|i| json!([format!("a{i}"), i])).collect();
        let mut v = json!({"kind": "packaged", "archives": items});
        assert!(cap_value(&mut v, 8192));
        assert!(serde_json::to_string(&v).unwrap_or_default().len() < 8192);
        assert!(!v["archives"].as_array().map(Vec::is_empty).unwrap_or(true));
    }
}
