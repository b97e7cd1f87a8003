//! Redaction of secrets in everything genrun writes: events, its own logs, the stored transcript.
//!
//! A generated app ends up in a public repository and the logs end up in CloudWatch, so every secret value
//! genrun was given, and anything shaped like a well-known key, is replaced by [`REDACTED`] before it leaves
//! the process. Two kinds of matches:
//!
//! 1. exact secret values (API keys, AWS secrets, the progress token, `--secret-env` values), at least
//!    [`MIN_SECRET_LEN`] bytes long (shorter values are too common to replace safely), also in their
//!    JSON-escaped form;
//! 2. key shapes: Anthropic keys (`sk-ant-…`), AWS access key ids (`AKIA`/`ASIA` + 16), and PEM private key
//!    blocks (`-----BEGIN … PRIVATE KEY-----` through the matching `-----END … PRIVATE KEY-----`; a block
//!    without an end is redacted for [`KEY_BLOCK_WINDOW`] bytes, so a truncated key is still hidden).
//!
//! [`RedactingWriter`] applies the same rules to a stream: the result is byte-for-byte what
//! [`Redactor::redact_bytes`] gives for the whole stream, whatever the write boundaries, while holding back
//! only a small overlap (the longest possible match) instead of whole lines, so a 20 MB transcript line
//! costs little memory.

use std::borrow::Cow;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;

use regex::bytes::Regex;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";
/// Secret values shorter than this are ignored: replacing e.g. `true` or `1234` everywhere would corrupt
/// ordinary text and reveal nothing worth hiding.
pub const MIN_SECRET_LEN: usize = 8;
/// How far past a `-----BEGIN … PRIVATE KEY-----` line the end line is looked for, and how much is
/// redacted when it is missing. A 4096-bit RSA key in PEM is about 3.3 KiB.
pub const KEY_BLOCK_WINDOW: usize = 64 * 1024;

/// Input is processed in slices of this size so one huge `write` does not grow the buffer.
const STREAM_SLICE: usize = 64 * 1024;

const ANTHROPIC_KEY: &str = r"sk-ant-[A-Za-z0-9_\-]{8,256}";
const ANTHROPIC_KEY_MAX: usize = 7 + 256;
const AWS_ACCESS_KEY_ID: &str = r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)";
const KEY_BEGIN: &str = r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----";
const KEY_END: &str = r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----";
const KEY_MARKER_MAX: usize = 11 + 40 + 16;

/// Replaces known secret values and key shapes. Cheap to clone (shared).
#[derive(Clone)]
pub struct Redactor {
    inner: Arc<Inner>,
}

struct Inner {
    secrets: Vec<String>,
    /// Secrets (longest first) and shapes, leftmost-first. `None` only if even the built-in shapes failed
    /// to compile, which tests rule out.
    matcher: Option<Regex>,
    key_end: Option<Regex>,
    /// Bytes a streaming scan must hold back: a match starting earlier is fully visible.
    overlap: usize,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.inner.secrets.len())
            .finish()
    }
}

/// Why a [`Redactor`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedactorError {
    #[error("cannot compile the redaction pattern for {secrets} secrets")]
    Compile {
        secrets: usize,
        #[source]
        source: regex::Error,
    },
}

impl Redactor {
    /// A redactor for `secrets` (values shorter than [`MIN_SECRET_LEN`] are ignored) plus the built-in key
    /// shapes. Should the pattern not compile (it would take many thousands of secrets), the built-in
    /// shapes alone are used and an error is logged.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let secrets: Vec<String> = secrets.into_iter().collect();
        match Redactor::try_new(secrets) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "secret redaction limited to built-in key shapes");
                Redactor::shapes_only()
            }
        }
    }

    /// Like [`Redactor::new`] but reports a pattern that does not compile.
    pub fn try_new(secrets: impl IntoIterator<Item = String>) -> Result<Redactor, RedactorError> {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        let mut literals: Vec<String> = Vec::new();
        for s in &secrets {
            literals.push(s.clone());
            let escaped = json_escaped(s);
            if escaped != *s {
                literals.push(escaped);
            }
        }
        literals.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let longest = literals.iter().map(String::len).max().unwrap_or(0);
        let mut alternatives: Vec<String> = literals.iter().map(|s| regex::escape(s)).collect();
        alternatives.push(ANTHROPIC_KEY.to_string());
        alternatives.push(AWS_ACCESS_KEY_ID.to_string());
        alternatives.push(KEY_BEGIN.to_string());
        let pattern = alternatives.join("|");
        let count = secrets.len();
        let compile = |p: &str| {
            regex::bytes::RegexBuilder::new(p)
                .size_limit(256 << 20)
                .dfa_size_limit(64 << 20)
                .build()
                .map_err(|source| RedactorError::Compile {
                    secrets: count,
                    source,
                })
        };
        let matcher = Some(compile(&pattern)?);
        let key_end = Some(compile(KEY_END)?);
        // +1: the AWS shape ends with a word boundary that needs one byte of lookahead.
        let overlap = longest.max(ANTHROPIC_KEY_MAX).max(KEY_MARKER_MAX) + 1;
        Ok(Redactor {
            inner: Arc::new(Inner {
                secrets,
                matcher,
                key_end,
                overlap,
            }),
        })
    }

    fn shapes_only() -> Redactor {
        Redactor::try_new(Vec::<String>::new()).unwrap_or_else(|e| {
            // The built-in patterns are constants covered by tests: unreachable in practice.
            tracing::error!(error = %e, "built-in redaction patterns do not compile");
            let inner = Inner {
                secrets: Vec::new(),
                matcher: None,
                key_end: None,
                overlap: 0,
            };
            Redactor {
                inner: Arc::new(inner),
            }
        })
    }

    /// The secret values being redacted (deduplicated, longest first).
    pub fn secrets(&self) -> &[String] {
        &self.inner.secrets
    }

    /// `s` with secrets replaced; borrowed when nothing matched.
    pub fn redact<'a>(&self, s: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(s.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(s),
            // Redaction ranges end on character boundaries, so this is valid UTF-8.
            Cow::Owned(v) => Cow::Owned(
                String::from_utf8(v)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }

    /// `b` with secrets replaced; borrowed when nothing matched.
    pub fn redact_bytes<'a>(&self, b: &'a [u8]) -> Cow<'a, [u8]> {
        let (ranges, _) = self.scan(b, true);
        if ranges.is_empty() {
            return Cow::Borrowed(b);
        }
        let mut out = Vec::with_capacity(b.len());
        splice(&mut out, b, &ranges, b.len());
        Cow::Owned(out)
    }

    /// Redacts every string (and object key) in `v` in place.
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| self.redact_json(i)),
            serde_json::Value::Object(map) => {
                let needs_key_change = map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_)));
                if needs_key_change {
                    let old = std::mem::take(map);
                    for (k, mut val) in old {
                        self.redact_json(&mut val);
                        map.insert(self.redact(&k).into_owned(), val);
                    }
                } else {
                    map.values_mut().for_each(|i| self.redact_json(i));
                }
            }
            _ => {}
        }
    }

    /// A writer that redacts everything written through it before passing it to `inner`.
    pub fn writer<W: Write>(&self, inner: W) -> RedactingWriter<W> {
        RedactingWriter {
            redactor: self.clone(),
            inner: Some(inner),
            pending: Vec::new(),
            max_buffered: 0,
        }
    }

    /// The ranges of `buf` to redact, and how far the decision is final. With `eof == false` the tail that
    /// could still turn into (or extend) a match is left undecided.
    fn scan(&self, buf: &[u8], eof: bool) -> (Vec<Range<usize>>, usize) {
        let inner = &*self.inner;
        let len = buf.len();
        let (Some(matcher), Some(key_end)) = (&inner.matcher, &inner.key_end) else {
            return (Vec::new(), len);
        };
        let hold_limit = if eof {
            len
        } else {
            len.saturating_sub(inner.overlap)
        };
        let mut ranges = Vec::new();
        let mut pos = 0;
        while pos < len {
            let Some(m) = matcher.find_at(buf, pos) else {
                break;
            };
            if m.start() >= hold_limit {
                break;
            }
            let text = m.as_bytes();
            if text.starts_with(b"-----BEGIN ") && text.ends_with(b"PRIVATE KEY-----") {
                let window_end = m.start() + KEY_BLOCK_WINDOW;
                // Decide only when the whole window (plus a character's bytes) is visible or at the end.
                let decidable = eof || len >= window_end + 4;
                let search_end = len.min(window_end);
                match key_end.find(&buf[m.end()..search_end]) {
                    Some(end) => {
                        let stop = m.end() + end.end();
                        ranges.push(m.start()..stop);
                        pos = stop;
                    }
                    None if decidable => {
                        let stop = char_boundary_at_or_after(buf, search_end);
                        ranges.push(m.start()..stop);
                        pos = stop;
                    }
                    None => return (ranges, m.start()),
                }
                continue;
            }
            ranges.push(m.range());
            pos = m.end().max(m.start() + 1);
        }
        let decided = if eof {
            len
        } else {
            pos.max(hold_limit).min(len)
        };
        (ranges, decided)
    }
}

/// Appends `src[..upto]` to `out` with `ranges` (sorted, within `..upto`) replaced by [`REDACTED`].
fn splice(out: &mut Vec<u8>, src: &[u8], ranges: &[Range<usize>], upto: usize) {
    let mut last = 0;
    for r in ranges {
        out.extend_from_slice(&src[last..r.start]);
        out.extend_from_slice(REDACTED.as_bytes());
        last = r.end;
    }
    out.extend_from_slice(&src[last..upto]);
}

fn char_boundary_at_or_after(buf: &[u8], mut i: usize) -> usize {
    while i < buf.len() && (buf[i] & 0xC0) == 0x80 {
        i += 1;
    }
    i
}

/// `s` as it appears inside a JSON string (without the quotes).
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""));
    quoted[1..quoted.len() - 1].to_string()
}

/// A [`Write`] adapter that redacts a byte stream (transcripts, logs) on its way to `W`.
///
/// The output equals [`Redactor::redact_bytes`] of the whole stream, however it is split into writes. Up to
/// the longest possible match is held back (more only while a private key block is open, at most
/// [`KEY_BLOCK_WINDOW`]); [`RedactingWriter::finish`] or drop writes the rest. `flush` passes on only what
/// is already decided.
pub struct RedactingWriter<W: Write> {
    redactor: Redactor,
    inner: Option<W>,
    pending: Vec<u8>,
    max_buffered: usize,
}

impl<W: Write> RedactingWriter<W> {
    /// Writes the held-back tail and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.drain(true)?;
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("redacting writer already finished"))?;
        inner.flush()?;
        Ok(inner)
    }

    /// The most bytes this writer has held at once (for checking its memory use stays bounded).
    pub fn max_buffered(&self) -> usize {
        self.max_buffered
    }

    /// The inner writer.
    pub fn get_ref(&self) -> Option<&W> {
        self.inner.as_ref()
    }

    fn drain(&mut self, eof: bool) -> io::Result<()> {
        let (ranges, decided) = self.redactor.scan(&self.pending, eof);
        if decided == 0 {
            return Ok(());
        }
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| io::Error::other("redacting writer already finished"))?;
        if ranges.is_empty() {
            inner.write_all(&self.pending[..decided])?;
        } else {
            let mut out = Vec::with_capacity(decided);
            splice(&mut out, &self.pending, &ranges, decided);
            inner.write_all(&out)?;
        }
        self.pending.drain(..decided);
        Ok(())
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for slice in buf.chunks(STREAM_SLICE) {
            self.pending.extend_from_slice(slice);
            self.max_buffered = self.max_buffered.max(self.pending.len());
            self.drain(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = self.drain(true);
            if let Some(w) = self.inner.as_mut() {
                let _ = w.flush();
            }
        }
    }
}

/// Environment variables whose values are always secrets.
pub const SECRET_ENV_NAMES: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "GENRUN_PROGRESS_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
];

/// The non-empty values in `env` of [`SECRET_ENV_NAMES`] and of `extra_names` (e.g. `--secret-env`),
/// deduplicated, in first-seen order.
pub fn secret_values_from_env(env: &[(String, String)], extra_names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, value) in env {
        let wanted =
            SECRET_ENV_NAMES.contains(&name.as_str()) || extra_names.iter().any(|n| n == name);
        if wanted && !value.is_empty() && !out.contains(value) {
            out.push(value.clone());
        }
    }
    out
}

/// A `tracing_subscriber` writer factory for genrun's own logs: each log record is redacted as a whole and
/// written to stderr.
pub fn redacting_stderr(redactor: Redactor) -> RedactingStderr {
    RedactingStderr { redactor }
}

/// See [`redacting_stderr`].
#[derive(Clone, Debug)]
pub struct RedactingStderr {
    redactor: Redactor,
}

/// One log record being written; redacted and written to stderr when dropped.
pub struct RedactingStderrRecord {
    redactor: Redactor,
    buf: Vec<u8>,
}

impl Write for RedactingStderrRecord {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingStderrRecord {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let out = self.redactor.redact_bytes(&self.buf);
            let mut err = io::stderr().lock();
            let _ = err.write_all(&out);
            let _ = err.flush();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderrRecord;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderrRecord {
            redactor: self.redactor.clone(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_ignored_and_long_ones_replaced() {
        let r = Redactor::new(["short".to_string(), "hunter2-is-long".to_string()]);
        assert_eq!(r.secrets(), &["hunter2-is-long".to_string()]);
        assert_eq!(
            r.redact("a short hunter2-is-long z"),
            "a short [REDACTED] z"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn longer_secret_wins_over_its_prefix() {
        let r = Redactor::new(["password1".to_string(), "password1234".to_string()]);
        assert_eq!(
            r.redact("x password1234 y password1 z"),
            "x [REDACTED] y [REDACTED] z"
        );
    }

    #[test]
    fn json_escaped_secret_is_found() {
        let secret = "abc\"def\\ghij".to_string();
        let r = Redactor::new([secret.clone()]);
        let line = serde_json::to_string(&serde_json::json!({ "t": secret })).unwrap_or_default();
        assert!(
            !line.contains(&secret),
            "the serialized form differs from the raw value: {line}"
        );
        assert_eq!(r.redact(&line), r#"{"t":"[REDACTED]"}"#);
    }

    #[test]
    fn key_shapes() {
        let r = Redactor::new(Vec::<String>::new());
        assert_eq!(
            r.redact("k=sk-ant-api03-AbC_d-123456789xyz;"),
            "k=[REDACTED];"
        );
        assert_eq!(r.redact("id AKIAIOSFODNN7EXAMPLE."), "id [REDACTED].");
        assert_eq!(r.redact("id ASIAIOSFODNN7EXAMPLE"), "id [REDACTED]");
        // Not a key id: too long, or embedded in a longer word.
        assert_eq!(r.redact("AKIAIOSFODNN7EXAMPLEX"), "AKIAIOSFODNN7EXAMPLEX");
        assert_eq!(r.redact("XAKIAIOSFODNN7EXAMPLE"), "XAKIAIOSFODNN7EXAMPLE");
        let pem = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nafter";
        assert_eq!(r.redact(pem), "before\n[REDACTED]\nafter");
        let escaped = r#"{"c":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}"#;
        assert_eq!(r.redact(escaped), r#"{"c":"[REDACTED]\n"}"#);
        // A truncated block (no end line) is hidden to the end of the text.
        assert_eq!(
            r.redact("x -----BEGIN EC PRIVATE KEY-----\nMHcCAQEE…"),
            "x [REDACTED]"
        );
        // Public keys and certificates are not secrets.
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(r.redact(cert), cert);
    }

    #[test]
    fn redact_json_walks_strings_and_keys() {
        let r = Redactor::new(["s3cr3t-value-1".to_string()]);
        let mut v = serde_json::json!({"a": ["x s3cr3t-value-1", 3], "s3cr3t-value-1": {"b": "s3cr3t-value-1"}});
        r.redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["x [REDACTED]", 3], "[REDACTED]": {"b": "[REDACTED]"}})
        );
    }

    #[test]
    fn env_values_are_collected() {
        let env: Vec<(String, String)> = [
            ("ANTHROPIC_API_KEY", "sk-ant-xyz"),
            ("PATH", "/usr/bin"),
            ("MY_TOKEN", "tok-123456789"),
            ("AWS_SESSION_TOKEN", ""),
            ("GENRUN_PROGRESS_TOKEN", "sk-ant-xyz"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let v = secret_values_from_env(&env, &["MY_TOKEN".to_string()]);
        assert_eq!(
            v,
            vec!["sk-ant-xyz".to_string(), "tok-123456789".to_string()]
        );
    }

    #[test]
    fn many_secrets_compile() {
        let secrets = (0..2000).map(|i| format!("secret-{i:04}-{}", "x".repeat(48)));
        let r = Redactor::try_new(secrets);
        assert!(r.is_ok());
    }
}
