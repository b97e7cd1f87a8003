//! The agent's environment: cleared, then an allowlist.
//!
//! Precedence (later wins), each name at most once, output sorted by name:
//! 1. from the parent: `PATH`, `LANG`, `LC_ALL`, `TZ`, `TERM`, every `ANTHROPIC_*` and `CLAUDE_*`;
//! 2. from the parent: each name in `EnvPolicy::extra_names` (`--agent-env NAME`; the only way `AWS_*`,
//!    `AWS_CONTAINER_CREDENTIALS_*` or `ECS_*` can reach the agent);
//! 3. fixed: `HOME` (policy.home), `USER` and `LOGNAME` (policy.user), `PATH` when still missing,
//!    `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`, `DISABLE_AUTOUPDATER=1`, `IS_SANDBOX=1` when the agent
//!    runs as root;
//! 4. `EnvPolicy::set`: pairs genrun adds on purpose.
//!
//! `GENRUN_*` (genrun's own configuration and tokens) never passes, not even when named or set.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `PATH` given to the agent when genrun's own environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PASS_NAMES: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ", "TERM"];
const PASS_PREFIXES: &[&str] = &["ANTHROPIC_", "CLAUDE_"];
const NEVER_PREFIX: &str = "GENRUN_";

/// What the agent's environment is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvPolicy {
    /// Names passed through from genrun's environment on explicit request (`--agent-env NAME`).
    pub extra_names: Vec<String>,
    /// The agent's HOME (a per-job directory it owns).
    pub home: PathBuf,
    /// The agent user's name, for `USER` and `LOGNAME`.
    pub user: String,
    /// The agent runs as root (`--allow-root-agent`): the CLI then wants `IS_SANDBOX=1`.
    pub root_sandbox: bool,
    /// Pairs genrun sets on purpose; they win over everything else.
    pub set: Vec<(String, String)>,
}

/// Builds the agent's environment from genrun's (`parent`) under `policy`. See the module docs.
pub fn agent_env(parent: &[(String, String)], policy: &EnvPolicy) -> Vec<(String, String)> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let valid = |n: &str| !n.is_empty() && !n.contains(['=', '\0']) && !n.starts_with(NEVER_PREFIX);

    for (name, value) in parent {
        if !valid(name) || value.contains('\0') {
            continue;
        }
        let allowed = PASS_NAMES.contains(&name.as_str())
            || PASS_PREFIXES.iter().any(|p| name.starts_with(p))
            || policy.extra_names.iter().any(|n| n == name);
        if allowed {
            out.insert(name.clone(), value.clone());
        }
    }
    out.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    out.insert("HOME".into(), policy.home.to_string_lossy().into_owned());
    out.insert("USER".into(), policy.user.clone());
    out.insert("LOGNAME".into(), policy.user.clone());
    out.insert(
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
        "1".into(),
    );
    out.insert("DISABLE_AUTOUPDATER".into(), "1".into());
    if policy.root_sandbox {
        out.insert("IS_SANDBOX".into(), "1".into());
    }
    for (name, value) in &policy.set {
        if valid(name) && !value.contains('\0') {
            out.insert(name.clone(), value.clone());
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn parent() -> Vec<(String, String)> {
        pairs(&[
            ("PATH", "/opt/node/bin:/usr/bin"),
            ("HOME", "/root"),
            ("USER", "root"),
            ("LANG", "C.UTF-8"),
            ("TERM", "xterm"),
            ("TZ", "UTC"),
            ("ANTHROPIC_API_KEY", "sk-ant-secret"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "oauth"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_SESSION_TOKEN", "aws-session"),
            ("AWS_REGION", "eu-west-1"),
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/uuid",
            ),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://x"),
            ("ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2/v4/x"),
            ("ECS_CONTAINER_METADATA_URI", "http://169.254.170.2/v3/x"),
            ("GENRUN_HTTP_TOKEN", "genrun-token"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "0"),
            ("SECRET_DB_URL", "postgres://"),
            ("LD_PRELOAD", "/tmp/evil.so"),
        ])
    }

    fn policy() -> EnvPolicy {
        EnvPolicy {
            extra_names: vec![],
            home: PathBuf::from("/var/lib/genrun/home"),
            user: "agent".into(),
            root_sandbox: false,
            set: vec![],
        }
    }

    #[test]
    fn default_allowlist_exactly() {
        let env = agent_env(&parent(), &policy());
        assert_eq!(
            env,
            pairs(&[
                ("ANTHROPIC_API_KEY", "sk-ant-secret"),
                ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                ("CLAUDE_CODE_OAUTH_TOKEN", "oauth"),
                ("DISABLE_AUTOUPDATER", "1"),
                ("HOME", "/var/lib/genrun/home"),
                ("LANG", "C.UTF-8"),
                ("LOGNAME", "agent"),
                ("PATH", "/opt/node/bin:/usr/bin"),
                ("TERM", "xterm"),
                ("TZ", "UTC"),
                ("USER", "agent"),
            ])
        );
    }

    #[test]
    fn aws_passes_only_when_named_and_genrun_never() {
        let mut p = policy();
        p.extra_names = vec![
            "AWS_REGION".into(),
            "AWS_ACCESS_KEY_ID".into(),
            "GENRUN_HTTP_TOKEN".into(),
            "NOT_SET_ANYWHERE".into(),
        ];
        p.set = pairs(&[("GENRUN_X", "1"), ("CLAUDE_CONFIG_DIR", "/h/.claude")]);
        let env = agent_env(&parent(), &p);
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("AWS_REGION"), Some("eu-west-1"));
        assert_eq!(get("AWS_ACCESS_KEY_ID"), Some("AKIA"));
        assert_eq!(get("CLAUDE_CONFIG_DIR"), Some("/h/.claude"));
        for never in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "ECS_CONTAINER_METADATA_URI_V4",
            "ECS_CONTAINER_METADATA_URI",
            "GENRUN_HTTP_TOKEN",
            "GENRUN_X",
            "NOT_SET_ANYWHERE",
            "SECRET_DB_URL",
            "LD_PRELOAD",
        ] {
            assert_eq!(get(never), None, "{never} leaked");
        }
        assert!(!env
            .iter()
            .any(|(_, v)| v.contains("aws-secret") || v.contains("genrun-token")));
    }

    #[test]
    fn root_sandbox_default_path_and_set_wins() {
        let mut p = policy();
        p.root_sandbox = true;
        p.set = pairs(&[("HOME", "/override"), ("BAD=NAME", "x"), ("", "y")]);
        let env = agent_env(&pairs(&[("FOO", "bar")]), &p);
        assert_eq!(
            env,
            pairs(&[
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                ("DISABLE_AUTOUPDATER", "1"),
                ("HOME", "/override"),
                ("IS_SANDBOX", "1"),
                ("LOGNAME", "agent"),
                ("PATH", DEFAULT_PATH),
                ("USER", "agent"),
            ])
        );
    }
}
