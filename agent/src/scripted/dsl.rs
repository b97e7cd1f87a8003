//! Parsing the scripted agent's line-based script language (reference in the parent module's doc).

use std::time::Duration;

/// One directive of a script.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Turn {
        cost: Option<f64>,
    },
    CostPerTurn(f64),
    Text(String),
    Thinking(String),
    Write {
        path: String,
        content: String,
    },
    Edit {
        path: String,
        old: String,
        new: String,
    },
    Read {
        path: String,
    },
    Bash {
        command: String,
    },
    Tool {
        name: String,
        input: serde_json::Value,
    },
    ApiRetry {
        attempt: u64,
        max_retries: u64,
        status: Option<u64>,
        error: String,
    },
    Compaction {
        trigger: String,
        pre_tokens: u64,
    },
    Unknown {
        ty: String,
        subtype: Option<String>,
    },
    Garbage(String),
    SyntheticError(String),
    HugeWrite {
        path: String,
        size: u64,
    },
    Pause(Duration),
    Hang,
    HangAfterResult,
    Crash(Crash),
    Exit(i32),
    IgnoreSignals,
    ForkGrandchild {
        pidfile: Option<String>,
        secs: u64,
    },
    Alloc {
        size: u64,
        rate: u64,
    },
    BashAlloc {
        size: u64,
        rate: u64,
    },
    EchoEnv(String),
    Result {
        subtype: String,
        is_error: bool,
        api_error_status: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crash {
    Segv,
    Abort,
}

/// Default allocation rate of `alloc` / `bash-alloc`: 100 MiB/s.
pub(crate) const DEFAULT_RATE: u64 = 100 << 20;
/// Default lifetime of a `fork-grandchild` sleeper.
pub(crate) const DEFAULT_GRANDCHILD_SECS: u64 = 3600;

/// A script that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("script line {line}: {message}")]
pub struct ScriptError {
    pub line: usize,
    pub message: String,
}

pub(crate) fn parse(script: &str) -> Result<Vec<Step>, ScriptError> {
    let lines: Vec<&str> = script.lines().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let lineno = i + 1;
        let line = lines[i].trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| ScriptError {
            line: lineno,
            message,
        };
        let (word, rest) = match line.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (line, ""),
        };
        // A trailing `<<TAG` takes the following lines up to a line that is exactly TAG.
        let (rest, body) = match heredoc_tag(rest) {
            Some((before, tag)) => {
                let start = i;
                while i < lines.len() && lines[i].trim_end_matches('\r') != tag {
                    i += 1;
                }
                if i == lines.len() {
                    return Err(err(format!("heredoc `{tag}` is never closed")));
                }
                let body = lines[start..i].join("\n");
                i += 1;
                (before, Some(body))
            }
            None => (rest, None),
        };
        let args = split_args(rest).map_err(&err)?;
        let arg = |n: usize, what: &str| -> Result<String, ScriptError> {
            args.get(n)
                .cloned()
                .ok_or_else(|| err(format!("`{word}` needs {what}")))
        };
        let body_or_rest = || -> String { body.clone().unwrap_or_else(|| rest.to_owned()) };
        let file_body = || -> Result<String, ScriptError> {
            body.as_ref()
                .map(|b| {
                    if b.is_empty() {
                        String::new()
                    } else {
                        format!("{b}\n")
                    }
                })
                .ok_or_else(|| {
                    err(format!(
                        "`{word}` needs a heredoc body (`{word} PATH <<EOF`)"
                    ))
                })
        };
        let step = match word {
            "turn" => Step::Turn {
                cost: args
                    .first()
                    .map(|c| parse_f64(c))
                    .transpose()
                    .map_err(&err)?,
            },
            "cost-per-turn" => {
                Step::CostPerTurn(parse_f64(&arg(0, "a cost in USD")?).map_err(&err)?)
            }
            "text" => Step::Text(body_or_rest()),
            "thinking" => Step::Thinking(body_or_rest()),
            "write" => Step::Write {
                path: arg(0, "a path")?,
                content: file_body()?,
            },
            "edit" => {
                let path = arg(0, "a path")?;
                let body = body
                    .clone()
                    .ok_or_else(|| err("`edit` needs a heredoc body".into()))?;
                let (old, new) = split_edit(&body)
                    .ok_or_else(|| err("`edit` body needs a `=======` line".into()))?;
                Step::Edit { path, old, new }
            }
            "read" => Step::Read {
                path: arg(0, "a path")?,
            },
            "bash" => {
                let command = body_or_rest();
                if command.trim().is_empty() {
                    return Err(err("`bash` needs a command".into()));
                }
                Step::Bash { command }
            }
            "tool" => {
                let name = arg(0, "a tool name")?;
                let json = match &body {
                    Some(b) => b.clone(),
                    None => rest
                        .strip_prefix(name.as_str())
                        .unwrap_or("")
                        .trim()
                        .to_owned(),
                };
                let input = if json.is_empty() {
                    serde_json::json!({})
                } else {
                    serde_json::from_str(&json)
                        .map_err(|e| err(format!("`tool` input is not json: {e}")))?
                };
                Step::Tool { name, input }
            }
            "api-retry" => Step::ApiRetry {
                attempt: opt_u64(&args, 0, 1).map_err(&err)?,
                max_retries: opt_u64(&args, 1, 10).map_err(&err)?,
                status: match args.get(2).map(String::as_str) {
                    None => Some(529),
                    Some("none") => None,
                    Some(s) => Some(parse_u64(s).map_err(&err)?),
                },
                error: args
                    .get(3)
                    .cloned()
                    .unwrap_or_else(|| "overloaded_error".into()),
            },
            "compaction" => Step::Compaction {
                trigger: args.first().cloned().unwrap_or_else(|| "auto".into()),
                pre_tokens: opt_u64(&args, 1, 150_000).map_err(&err)?,
            },
            "unknown" => Step::Unknown {
                ty: arg(0, "a type")?,
                subtype: args.get(1).cloned(),
            },
            "garbage" => Step::Garbage(body_or_rest()),
            "synthetic-error" => Step::SyntheticError(body_or_rest()),
            "huge-write" => Step::HugeWrite {
                path: arg(0, "a path")?,
                size: parse_size(&arg(1, "a size")?).map_err(&err)?,
            },
            "pause" => Step::Pause(parse_duration(&arg(0, "a duration")?).map_err(&err)?),
            "hang" => Step::Hang,
            "hang-after-result" => Step::HangAfterResult,
            "crash" => match args.first().map(String::as_str) {
                None | Some("segv") => Step::Crash(Crash::Segv),
                Some("abort") => Step::Crash(Crash::Abort),
                Some(other) => return Err(err(format!("unknown crash kind `{other}`"))),
            },
            "exit" => Step::Exit(
                arg(0, "an exit code")?
                    .parse()
                    .map_err(|_| err("exit code is not a number".into()))?,
            ),
            "ignore-signals" => Step::IgnoreSignals,
            "fork-grandchild" => Step::ForkGrandchild {
                pidfile: args.first().cloned(),
                secs: opt_u64(&args, 1, DEFAULT_GRANDCHILD_SECS).map_err(&err)?,
            },
            "alloc" | "bash-alloc" => {
                let size = parse_size(&arg(0, "a size")?).map_err(&err)?;
                let rate = match args.get(1) {
                    Some(r) => parse_size(r).map_err(&err)?,
                    None => DEFAULT_RATE,
                };
                if rate == 0 {
                    return Err(err("rate must be positive".into()));
                }
                if word == "alloc" {
                    Step::Alloc { size, rate }
                } else {
                    Step::BashAlloc { size, rate }
                }
            }
            "echo-env" => Step::EchoEnv(arg(0, "a file")?),
            "result" => {
                let subtype = arg(0, "a subtype")?;
                let mut is_error = subtype != "success";
                let mut api_error_status = None;
                for a in &args[1..] {
                    match a.as_str() {
                        "is_error" => is_error = true,
                        n => api_error_status = Some(parse_u64(n).map_err(&err)?),
                    }
                }
                Step::Result {
                    subtype,
                    is_error,
                    api_error_status,
                }
            }
            other => return Err(err(format!("unknown directive `{other}`"))),
        };
        steps.push(step);
    }
    Ok(steps)
}

/// `("write a.txt", "EOF")` for `write a.txt <<EOF`.
fn heredoc_tag(rest: &str) -> Option<(&str, &str)> {
    let (before, tag) = rest.rsplit_once("<<")?;
    let tag = tag.trim();
    let ok = !tag.is_empty() && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then(|| (before.trim(), tag))
}

/// Splits an `edit` body at its `=======` line into (old, new).
fn split_edit(body: &str) -> Option<(String, String)> {
    let mut old = Vec::new();
    let mut lines = body.lines();
    for l in lines.by_ref() {
        if l == "=======" {
            let new: Vec<&str> = lines.collect();
            return Some((old.join("\n"), new.join("\n")));
        }
        old.push(l);
    }
    None
}

/// Whitespace-separated words; `"..."` groups (with `\"` and `\\`).
fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e) => word.push(e),
                        None => return Err("unterminated quote".into()),
                    },
                    Some(ch) => word.push(ch),
                    None => return Err("unterminated quote".into()),
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                word.push(ch);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

fn opt_u64(args: &[String], n: usize, default: u64) -> Result<u64, String> {
    args.get(n).map_or(Ok(default), |s| parse_u64(s))
}

fn parse_u64(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not a whole number"))
}

fn parse_f64(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("`{s}` is not a non-negative number"))
}

/// `1048576`, `512K`, `20M`, `1.5G` (binary units; `KB`/`KiB` spellings accepted).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches(['B', 'b']).trim_end_matches('i');
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let v: f64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{s}` is not a size"));
    }
    Ok((v * mult as f64) as u64)
}

/// `250ms`, `2s`, `1.5s`, `3m`, `1h`; a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration"))?;
    Duration::try_from_secs_f64(v * mult).map_err(|_| format!("`{s}` is not a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_and_heredocs() {
        let steps = parse(
            "# comment\n\nturn 0.5\ntext Hello \"world\"\nwrite src/a.ts <<EOF\nconst a = 1;\n  indented\nEOF\n\
             edit src/a.ts <<END\nconst a = 1;\n=======\nconst a = 2;\nEND\nbash <<EOF\necho hi\nEOF\nbash ls -la\n\
             result success is_error 401\n",
        )
        .unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Turn { cost: Some(0.5) },
                Step::Text("Hello \"world\"".into()),
                Step::Write {
                    path: "src/a.ts".into(),
                    content: "const a = 1;\n  indented\n".into()
                },
                Step::Edit {
                    path: "src/a.ts".into(),
                    old: "const a = 1;".into(),
                    new: "const a = 2;".into()
                },
                Step::Bash {
                    command: "echo hi".into()
                },
                Step::Bash {
                    command: "ls -la".into()
                },
                Step::Result {
                    subtype: "success".into(),
                    is_error: true,
                    api_error_status: Some(401)
                },
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("turn\nfly away\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("unknown directive `fly`"), "{e}");
        let e = parse("write a <<EOF\nnever closed\n").unwrap_err();
        assert!(e.to_string().contains("never closed"), "{e}");
        assert!(parse("write a\n").is_err());
        assert!(parse("alloc lots\n").is_err());
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("20M").unwrap(), 20 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("x").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("-1s").is_err());
    }
}
