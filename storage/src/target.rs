//! Where output goes and where documents come from: `s3://BUCKET[/PREFIX]` or a local path.
//!
//! Why: `--output`, `GENRUN_OUTPUT`, `--job` and `--prompt-file` all accept both forms; parsing them in one
//! place keeps the error messages (what was expected) identical everywhere.

use std::path::PathBuf;
use std::str::FromStr;

use crate::StoreError;

const EXPECTED: &str = "s3://BUCKET[/PREFIX] or a local directory path";
const EXPECTED_OBJECT: &str = "s3://BUCKET/KEY or a local file path";

/// An output location.
///
/// Wire form: `s3://BUCKET` or `s3://BUCKET/PREFIX` (the prefix without leading or trailing `/`), otherwise
/// a local path. Other URL schemes (`http://`, `file://`, `s3a://`...) are rejected rather than taken as
/// relative paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl FromStr for Target {
    type Err = StoreError;

    fn from_str(value: &str) -> Result<Target, StoreError> {
        let invalid = || StoreError::InvalidTarget {
            value: value.to_owned(),
            expected: EXPECTED,
        };
        if let Some(rest) = strip_s3_scheme(value) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if !valid_bucket(bucket) {
                return Err(invalid());
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
                return Err(invalid());
            }
            return Ok(Target::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if value.is_empty() || value.contains("://") {
            return Err(invalid());
        }
        Ok(Target::Local(PathBuf::from(value)))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Local(p) => write!(f, "{}", p.display()),
            Target::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Target::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// A single object to read: `s3://BUCKET/KEY` or a local file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ObjectUrl {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl ObjectUrl {
    pub(crate) fn parse(value: &str) -> Result<ObjectUrl, StoreError> {
        let invalid = || StoreError::InvalidTarget {
            value: value.to_owned(),
            expected: EXPECTED_OBJECT,
        };
        if let Some(rest) = strip_s3_scheme(value) {
            let (bucket, key) = rest.split_once('/').ok_or_else(invalid)?;
            if !valid_bucket(bucket) || key.is_empty() || key.ends_with('/') {
                return Err(invalid());
            }
            return Ok(ObjectUrl::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        if value.is_empty() || value.contains("://") {
            return Err(invalid());
        }
        Ok(ObjectUrl::Local(PathBuf::from(value)))
    }
}

fn strip_s3_scheme(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once("://")?;
    scheme.eq_ignore_ascii_case("s3").then_some(rest)
}

/// Bucket names: 3-63 of `a-z 0-9 . -`, starting and ending alphanumeric (the S3 rules, minus the
/// legacy uppercase names, plus `_` which some S3-compatible stores allow).
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'_')
        })
        && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Checks a store key: non-empty, relative, `/`-separated, no empty, `.` or `..` segments, no `\` or NUL.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && !key.contains(['\\', '\0'])
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidKey {
            key: key.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_with_and_without_prefix() {
        assert_eq!(
            "s3://my-bucket/runs/prod/".parse::<Target>().ok(),
            Some(Target::S3 {
                bucket: "my-bucket".into(),
                prefix: "runs/prod".into()
            })
        );
        assert_eq!(
            "S3://my-bucket".parse::<Target>().ok(),
            Some(Target::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            "s3://my-bucket/a/b"
                .parse::<Target>()
                .map(|t| t.to_string())
                .ok(),
            Some("s3://my-bucket/a/b".into())
        );
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            "out".parse::<Target>().ok(),
            Some(Target::Local("out".into()))
        );
        assert_eq!(
            "/tmp/x".parse::<Target>().ok(),
            Some(Target::Local("/tmp/x".into()))
        );
    }

    #[test]
    fn rejects_bad_targets_naming_what_was_expected() {
        for bad in [
            "",
            "s3://",
            "s3://B",
            "s3://ab",
            "http://x/y",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
            "s3://-bad/x",
        ] {
            let err = bad.parse::<Target>().err();
            let msg = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                msg.contains("expected s3://BUCKET[/PREFIX]"),
                "{bad:?}: {msg}"
            );
            assert_eq!(err.map(|e| e.class()), Some(crate::ErrorClass::Config));
        }
    }

    #[test]
    fn parses_object_urls() {
        assert_eq!(
            ObjectUrl::parse("s3://jobs-1/a/job.json").ok(),
            Some(ObjectUrl::S3 {
                bucket: "jobs-1".into(),
                key: "a/job.json".into()
            })
        );
        assert_eq!(
            ObjectUrl::parse("job.json").ok(),
            Some(ObjectUrl::Local("job.json".into()))
        );
        for bad in [
            "s3://jobs-1",
            "s3://jobs-1/",
            "s3://jobs-1/dir/",
            "ftp://x/y",
            "",
        ] {
            let msg = ObjectUrl::parse(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.contains("expected s3://BUCKET/KEY"), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn checks_keys() {
        for ok in ["result.json", "logs/transcript.jsonl", "a/b/c.tar.zst"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/abs", "a/../b", "..", "./a", "a//b", "a/", "a\\b"] {
            assert!(
                matches!(check_key(bad), Err(StoreError::InvalidKey { .. })),
                "{bad}"
            );
        }
    }
}
