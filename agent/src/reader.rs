//! Reading the agent's stdout line by line without trusting line sizes.
//!
//! A single stream-json line can be many MB (a 3 MB Write gave a 3 MB assistant line and a 6 MB user line),
//! and what matters in it (the tool name, the file path) is small. [`LineReader`] streams every byte to a
//! tee (the raw transcript, unchanged) and keeps a *skeleton* of each line for parsing:
//! - a line whose first non-blank byte is `{` or `[` is treated as JSON: every string literal is cut to at
//!   most [`LineLimits::max_string`] bytes of its encoded content, on a unit boundary (a whole UTF-8 char,
//!   a whole escape like `\n` or `\u00e9`, a whole surrogate pair `\ud83d\ude00`), and closed with its
//!   quote, so the skeleton stays valid JSON with the same structure;
//! - any other line passes through unchanged;
//! - the skeleton is cut at [`LineLimits::max_line`] bytes in all; beyond that the rest of the line is
//!   dropped and [`Line::truncated`] is set (such a line usually no longer parses; the caller logs and skips).
//!
//! Memory use is bounded by the read buffer plus `max_line`, whatever the line size.

use std::io::Write;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Read-buffer size.
const CHUNK: usize = 64 * 1024;

/// Bounds for one line's skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineLimits {
    /// Most bytes kept of one JSON string's encoded content (default 8 KiB).
    pub max_string: usize,
    /// Most bytes kept of one line (default 1 MiB).
    pub max_line: usize,
}

impl Default for LineLimits {
    fn default() -> Self {
        Self {
            max_string: 8 * 1024,
            max_line: 1024 * 1024,
        }
    }
}

/// One line's skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line without its `\n`, strings capped (see the module doc).
    pub json: Vec<u8>,
    /// Bytes the line had on the wire, without its `\n`.
    pub raw_len: u64,
    /// The skeleton hit `max_line` and lost its tail.
    pub truncated: bool,
    /// Number of string literals that were cut.
    pub capped_strings: u64,
}

/// Reads lines of any size from `inner`, teeing every raw byte.
pub struct LineReader<R> {
    inner: R,
    tee: Box<dyn Write + Send>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    capper: Capper,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// `tee` receives every byte read from `inner`, unchanged, as it is read.
    pub fn new(inner: R, limits: LineLimits, tee: Box<dyn Write + Send>) -> Self {
        Self {
            inner,
            tee,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            capper: Capper::new(limits),
        }
    }

    /// The next line, `None` at EOF. A last line without `\n` is still returned (unless empty).
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            if self.pos < self.end {
                let chunk = &self.buf[self.pos..self.end];
                match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.capper.feed(&chunk[..i]);
                        self.pos += i + 1;
                        return Ok(Some(self.capper.finish()));
                    }
                    None => {
                        self.capper.feed(chunk);
                        self.pos = self.end;
                    }
                }
            }
            if self.eof {
                return Ok(self.capper.pending().then(|| self.capper.finish()));
            }
            let n = self.inner.read(&mut self.buf).await?;
            if n == 0 {
                self.eof = true;
                self.tee.flush()?;
                continue;
            }
            self.tee.write_all(&self.buf[..n])?;
            self.pos = 0;
            self.end = n;
        }
    }

    /// Gives the tee back (e.g. to flush or close the transcript).
    pub fn into_tee(self) -> Box<dyn Write + Send> {
        self.tee
    }
}

/// Where the capper is inside the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Only blanks seen so far.
    Start,
    /// Not JSON: copy.
    Raw,
    /// JSON, outside a string.
    Json,
    /// JSON, inside a string that still fits.
    Str,
    /// JSON, inside a string that overflowed: drop until its closing quote.
    Drop { escaped: bool },
}

/// The byte-level state machine behind [`LineReader`], fed one line in pieces.
#[derive(Debug)]
pub(crate) struct Capper {
    limits: LineLimits,
    out: Vec<u8>,
    raw_len: u64,
    truncated: bool,
    capped: u64,
    mode: Mode,
    /// Encoded bytes kept of the current string.
    kept: usize,
    /// The unit (char or escape) being collected inside a string, and its expected length.
    unit: Vec<u8>,
    need: usize,
}

impl Capper {
    pub(crate) fn new(limits: LineLimits) -> Self {
        Self {
            limits,
            out: Vec::new(),
            raw_len: 0,
            truncated: false,
            capped: 0,
            mode: Mode::Start,
            kept: 0,
            unit: Vec::with_capacity(12),
            need: 0,
        }
    }

    /// Whether anything of a line has been fed since the last `finish`.
    pub(crate) fn pending(&self) -> bool {
        self.raw_len > 0
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.raw_len += bytes.len() as u64;
        let mut i = 0;
        while i < bytes.len() {
            match self.mode {
                Mode::Raw => {
                    self.push_slice(&bytes[i..]);
                    return;
                }
                Mode::Drop { escaped } => {
                    // Fast scan for the closing quote.
                    let rest = &bytes[i..];
                    let mut esc = escaped;
                    let mut close = None;
                    for (j, &b) in rest.iter().enumerate() {
                        if esc {
                            esc = false;
                        } else if b == b'\\' {
                            esc = true;
                        } else if b == b'"' {
                            close = Some(j);
                            break;
                        }
                    }
                    match close {
                        Some(j) => {
                            self.push(b'"');
                            self.mode = Mode::Json;
                            i += j + 1;
                        }
                        None => {
                            self.mode = Mode::Drop { escaped: esc };
                            return;
                        }
                    }
                }
                _ => {
                    self.byte(bytes[i]);
                    i += 1;
                }
            }
        }
    }

    fn byte(&mut self, b: u8) {
        match self.mode {
            Mode::Start => {
                if b == b'{' || b == b'[' {
                    self.mode = Mode::Json;
                } else if !b.is_ascii_whitespace() {
                    self.mode = Mode::Raw;
                }
                self.push(b);
            }
            Mode::Json => {
                if b == b'"' {
                    self.mode = Mode::Str;
                    self.kept = 0;
                    self.unit.clear();
                }
                self.push(b);
            }
            Mode::Str => self.string_byte(b),
            Mode::Raw => self.push(b),
            Mode::Drop { escaped } => {
                if escaped {
                    self.mode = Mode::Drop { escaped: false };
                } else if b == b'\\' {
                    self.mode = Mode::Drop { escaped: true };
                } else if b == b'"' {
                    self.push(b);
                    self.mode = Mode::Json;
                }
            }
        }
    }

    fn string_byte(&mut self, b: u8) {
        if self.unit.is_empty() {
            match b {
                b'"' => {
                    self.push(b);
                    self.mode = Mode::Json;
                    return;
                }
                b'\\' => {
                    self.unit.push(b);
                    self.need = 2; // revised when the escape letter arrives
                    return;
                }
                _ => {
                    self.unit.push(b);
                    self.need = utf8_len(b);
                }
            }
        } else if self.unit[0] == b'\\' {
            let len = self.unit.len();
            if len == 6 && self.need == 6 {
                // A complete `\uXXXX` high surrogate waiting for its pair.
                if b == b'\\' {
                    self.unit.push(b);
                    self.need = 8;
                    return;
                }
                self.commit_unit();
                return self.byte(b);
            }
            self.unit.push(b);
            if len == 1 && b == b'u' {
                self.need = 6;
            } else if len == 7 && b == b'u' {
                self.need = 12;
            }
            if self.unit.len() == 6 && self.need == 6 && is_high_surrogate(&self.unit[2..6]) {
                return; // wait for a possible low surrogate
            }
        } else if b & 0xC0 == 0x80 {
            self.unit.push(b);
        } else {
            // Invalid UTF-8 (a char cut short): keep what came and start over with this byte.
            self.commit_unit();
            return self.byte(b);
        }
        if self.unit.len() >= self.need {
            self.commit_unit();
        }
    }

    /// Keeps the collected unit if it fits, else switches to dropping the rest of the string.
    fn commit_unit(&mut self) {
        if self.unit.is_empty() {
            return;
        }
        if self.kept + self.unit.len() <= self.limits.max_string {
            self.kept += self.unit.len();
            let unit = std::mem::take(&mut self.unit);
            self.push_slice(&unit);
            self.unit = unit;
            self.unit.clear();
            return;
        }
        // Overflow: the unit and everything up to the closing quote goes. A unit that was a lone escape
        // backslash (`\`) followed by its letter is already complete, so the drop scan starts unescaped,
        // except for the pending high-surrogate case which ended on a full escape too.
        self.unit.clear();
        self.capped += 1;
        self.mode = Mode::Drop { escaped: false };
    }

    fn push(&mut self, b: u8) {
        if self.out.len() < self.limits.max_line {
            self.out.push(b);
        } else {
            self.truncated = true;
        }
    }

    fn push_slice(&mut self, s: &[u8]) {
        let room = self.limits.max_line.saturating_sub(self.out.len());
        if s.len() > room {
            self.truncated = true;
        }
        self.out.extend_from_slice(&s[..s.len().min(room)]);
    }

    /// Ends the current line and returns its skeleton.
    pub(crate) fn finish(&mut self) -> Line {
        if self.mode == Mode::Str {
            // The line ended inside a string (malformed input): keep what was collected.
            let unit = std::mem::take(&mut self.unit);
            if self.kept + unit.len() <= self.limits.max_string {
                self.push_slice(&unit);
            }
        }
        let line = Line {
            json: std::mem::take(&mut self.out),
            raw_len: self.raw_len,
            truncated: self.truncated,
            capped_strings: self.capped,
        };
        *self = Capper::new(self.limits);
        line
    }
}

fn utf8_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

fn is_high_surrogate(hex: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(hex) else {
        return false;
    };
    u16::from_str_radix(s, 16).is_ok_and(|v| (0xD800..0xDC00).contains(&v))
}

/// Caps one complete line (without `\n`) the way [`LineReader`] does; useful for tests and tools.
pub fn skeleton(line: &[u8], limits: LineLimits) -> Line {
    let mut c = Capper::new(limits);
    c.feed(line);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(max_string: usize) -> LineLimits {
        LineLimits {
            max_string,
            max_line: 1 << 20,
        }
    }

    #[test]
    fn short_strings_unchanged() {
        let line = br#"{"a":"x\"y\\z\u00e9","b":[1,"\ud83d\ude00",null]}"#;
        let s = skeleton(line, lim(64));
        assert_eq!(s.json, line);
        assert_eq!(s.capped_strings, 0);
    }

    #[test]
    fn long_string_cut_and_closed() {
        let line = format!(
            r#"{{"name":"Write","content":"{}","after":1}}"#,
            "a".repeat(100)
        );
        let s = skeleton(line.as_bytes(), lim(10));
        assert_eq!(
            s.json,
            br#"{"name":"Write","content":"aaaaaaaaaa","after":1}"#
        );
        assert_eq!(s.capped_strings, 1);
        assert_eq!(s.raw_len, line.len() as u64);
    }

    #[test]
    fn cut_never_splits_escapes_or_chars() {
        // Each case: content, max_string, expected kept content.
        let cases: &[(&str, usize, &str)] = &[
            (r"abc\ndef", 4, r"abc"),
            (r"abc\ndef", 5, r"abc\n"),
            (r"ab\u00e9cd", 5, r"ab"),
            (r"ab\u00e9cd", 8, r"ab\u00e9"),
            (r"a\ud83d\ude00b", 7, r"a"),
            (r"a\ud83d\ude00b", 12, r"a"),
            (r"a\ud83d\ude00b", 13, r"a\ud83d\ude00"),
            ("aé€😀b", 2, "a"),
            ("aé€😀b", 3, "aé"),
            ("aé€😀b", 5, "aé"),
            ("aé€😀b", 6, "aé€"),
            ("aé€😀b", 9, "aé€"),
            ("aé€😀b", 10, "aé€😀"),
            (r#"q\"\\\"x"#, 3, r#"q\""#),
            (r#"q\"\\\"x"#, 4, r#"q\""#),
            (r#"q\"\\\"x"#, 5, r#"q\"\\"#),
        ];
        for (content, max, want) in cases {
            let line = format!(r#"["{content}","t"]"#);
            let s = skeleton(line.as_bytes(), lim(*max));
            let want_line = format!(r#"["{want}","t"]"#);
            assert_eq!(
                String::from_utf8_lossy(&s.json),
                want_line,
                "content {content} max {max}"
            );
            let v: serde_json::Value = serde_json::from_slice(&s.json).unwrap();
            assert_eq!(v[1], "t");
        }
    }

    #[test]
    fn non_json_lines_pass_through() {
        let line = format!("npm WARN \"{}\" done", "x".repeat(100));
        let s = skeleton(line.as_bytes(), lim(8));
        assert_eq!(s.json, line.as_bytes());
    }

    #[test]
    fn max_line_truncates() {
        let line = format!("[{}1]", "1,".repeat(1000));
        let s = skeleton(
            line.as_bytes(),
            LineLimits {
                max_string: 8,
                max_line: 100,
            },
        );
        assert!(s.truncated);
        assert_eq!(s.json.len(), 100);
        assert_eq!(s.raw_len, line.len() as u64);
    }
}
