//! Rule sets in gitignore syntax: the built-in rules, `--rules` files and the workspace's own files.
//!
//! Built-in and `--rules` sets are separate matchers checked before the workspace's `.gitignore`
//! files, so a workspace negation can never re-include what they exclude; a `!` line inside one of
//! them only carves an exception out of that same set. Every matcher remembers where each rule came
//! from so a drop can name the rule.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder, Glob};
use ignore::Match;

use crate::PackageError;

/// The built-in rules (packaging-rules/builtin.gitignore), embedded at build time.
pub const BUILTIN_RULES: &str = include_str!("../../packaging-rules/builtin.gitignore");

/// One rule set and the label its drops carry.
pub(crate) struct RuleSet {
    matcher: Gitignore,
    /// Prefix of drop reasons: `builtin`, `rules <file>`, `<dir>/.gitignore`, `.git/info/exclude`.
    label: String,
}

/// The verdict of one rule set on one path.
pub(crate) enum Verdict {
    /// Excluded; the drop reason.
    Excluded(String),
    /// A `!` rule of this set matched: later (lower-precedence) sets of the same group are not asked.
    Included,
    /// No rule of this set matched.
    Unmatched,
}

impl RuleSet {
    /// The built-in rules, rooted at the workspace.
    pub(crate) fn builtin(root: &Path) -> Result<RuleSet, String> {
        Self::from_text(root, BUILTIN_RULES, "builtin".to_string(), true)
    }

    /// A `--rules` file, rooted at the workspace. Any pattern that does not parse is an error.
    pub(crate) fn extra(root: &Path, file: &Path) -> Result<RuleSet, PackageError> {
        let text = fs::read(file).map_err(|e| PackageError::Rules {
            path: file.to_path_buf(),
            message: e.to_string(),
        })?;
        let text = String::from_utf8(text).map_err(|_| PackageError::Rules {
            path: file.to_path_buf(),
            message: "not valid UTF-8".to_string(),
        })?;
        Self::from_text(root, &text, format!("rules {}", file.display()), true).map_err(|message| {
            PackageError::Rules {
                path: file.to_path_buf(),
                message,
            }
        })
    }

    /// A workspace ignore file (`.gitignore`, `.git/info/exclude`) rooted at `dir`. Like git, lines
    /// that do not parse are skipped. Returns `None` when the file is absent, not a regular file
    /// (never read through a symlink), unreadable, or has no rules.
    pub(crate) fn workspace_file(dir: &Path, file: &Path, label: String) -> Option<RuleSet> {
        let text = read_regular_no_follow(file)?;
        let text = String::from_utf8_lossy(&text);
        let set = Self::from_text(dir, &text, label, false).ok()?;
        (!set.matcher.is_empty()).then_some(set)
    }

    fn from_text(root: &Path, text: &str, label: String, strict: bool) -> Result<RuleSet, String> {
        let mut b = GitignoreBuilder::new(root);
        for (i, line) in text.lines().enumerate() {
            let line = if i == 0 {
                line.trim_start_matches('\u{feff}')
            } else {
                line
            };
            if let Err(e) = b.add_line(None, line) {
                if strict {
                    return Err(format!("line {}: {e}", i + 1));
                }
            }
        }
        let matcher = b.build().map_err(|e| e.to_string())?;
        Ok(RuleSet { matcher, label })
    }

    /// Asks this set about `abs` (a path under the set's root).
    pub(crate) fn verdict(&self, abs: &Path, is_dir: bool) -> Verdict {
        match self.matcher.matched(abs, is_dir) {
            Match::Ignore(glob) => Verdict::Excluded(self.reason(glob)),
            Match::Whitelist(_) => Verdict::Included,
            Match::None => Verdict::Unmatched,
        }
    }

    fn reason(&self, glob: &Glob) -> String {
        format!("{}: {}", self.label, glob.original())
    }
}

/// Reads a file only if it is a regular file, refusing to follow a symlink in its last component.
pub(crate) fn read_regular_no_follow(path: &Path) -> Option<Vec<u8>> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// True when the built-in rules exclude `rel` (relative to `root`) or any directory above it, with
/// the packager's semantics (an excluded directory wins over a `!` rule for something inside it).
/// For callers holding a flat file list; the differential test subtracts this from git's list.
pub fn builtin_excludes(root: &Path, rel: &Path, is_dir: bool) -> bool {
    let Ok(set) = RuleSet::builtin(root) else {
        return false;
    };
    let mut cur = root.to_path_buf();
    let n = rel.components().count();
    for (i, c) in rel.components().enumerate() {
        cur.push(c);
        let last = i + 1 == n;
        if let Verdict::Excluded(_) = set.verdict(&cur, if last { is_dir } else { true }) {
            return true;
        }
    }
    false
}

/// Label of a nested `.gitignore` in drop reasons: its workspace-relative path.
pub(crate) fn gitignore_label(rel_dir: &[u8]) -> String {
    if rel_dir.is_empty() {
        ".gitignore".to_string()
    } else {
        format!("{}/.gitignore", String::from_utf8_lossy(rel_dir))
    }
}

/// `PathBuf` of the `.gitignore` in `dir`.
pub(crate) fn gitignore_in(dir: &Path) -> PathBuf {
    dir.join(".gitignore")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin_drops(rel: &str, is_dir: bool) -> bool {
        let root = Path::new("/ws");
        let set = RuleSet::builtin(root).unwrap();
        matches!(set.verdict(&root.join(rel), is_dir), Verdict::Excluded(_))
    }

    #[test]
    fn builtin_rules_parse_strictly() {
        RuleSet::builtin(Path::new("/ws")).unwrap();
    }

    #[test]
    fn builtin_rules_cover_the_issue_list() {
        for (p, dir) in [
            ("node_modules", true),
            ("client/node_modules", true),
            (".git", true),
            (".git", false),
            ("server.log", false),
            ("logs/app.log", false),
            ("npm-debug.log.123", false),
            (".env", false),
            (".env.local", false),
            ("server/.env.production", false),
            ("cert.pem", false),
            ("tls.key", false),
            ("id_rsa", false),
            ("id_rsa.pub", false),
            (".npmrc", false),
            (".netrc", false),
            (".aws", true),
            (".ssh", true),
            (".cache", true),
            (".vite", true),
            ("coverage", true),
            (".DS_Store", false),
        ] {
            assert!(builtin_drops(p, dir), "{p} should be dropped");
        }
        for (p, dir) in [
            (".env.example", false),
            (".env.sample", false),
            (".env.template", false),
            ("src/App.jsx", false),
            ("package.json", false),
            (".gitignore", false),
            ("src/logs", true),
            ("dist", true),
        ] {
            assert!(!builtin_drops(p, dir), "{p} should be kept");
        }
    }

    #[test]
    fn reason_names_the_rule() {
        let root = Path::new("/ws");
        let set = RuleSet::builtin(root).unwrap();
        match set.verdict(&root.join("a/node_modules"), true) {
            Verdict::Excluded(r) => assert_eq!(r, "builtin: node_modules/"),
            _ => panic!("not excluded"),
        }
    }

    #[test]
    fn bad_extra_rules_are_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rules");
        fs::write(&f, "ok\nfoo[\n{a,b\n").unwrap();
        match RuleSet::extra(dir.path(), &f) {
            Err(PackageError::Rules { message, .. }) => {
                assert!(message.contains("line 3"), "{message}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted a bad rule"),
        }
        match RuleSet::extra(dir.path(), &dir.path().join("missing")) {
            Err(PackageError::Rules { .. }) => {}
            _ => panic!("missing rules file accepted"),
        }
    }

    #[test]
    fn workspace_file_is_not_read_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("real"), "*.txt\n").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join(".gitignore")).unwrap();
        assert!(
            RuleSet::workspace_file(dir.path(), &gitignore_in(dir.path()), "x".into()).is_none()
        );
        fs::remove_file(dir.path().join(".gitignore")).unwrap();
        fs::rename(dir.path().join("real"), dir.path().join(".gitignore")).unwrap();
        assert!(
            RuleSet::workspace_file(dir.path(), &gitignore_in(dir.path()), "x".into()).is_some()
        );
    }
}
