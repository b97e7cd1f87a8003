//! Reads the paths tracked in a workspace's `.git/index`, without git.
//!
//! `git ls-files --cached --others --exclude-standard` ("what git would ship") includes files that
//! are committed or staged even when a `.gitignore` matches them; the packager keeps those too.
//! Format (git `Documentation/gitformat-index.txt`): header `DIRC`, version (2, 3 or 4), entry count;
//! each entry is 40 bytes of stat data, the object id (20 bytes, or 32 in sha256 repositories), 16-bit
//! flags (bit 14: extended flags follow in versions >= 3; low 12 bits: name length), the path; v2/v3
//! pad each entry with 1-8 NULs to a multiple of 8, v4 prefix-compresses paths against the previous
//! one (varint bytes to strip, then a NUL-terminated suffix). Gitlinks (mode 160000, submodules) are
//! skipped. A missing or unparsable index gives an empty set: the packager then simply follows the
//! `.gitignore` files. Split indexes (`core.splitIndex`) are read only for their own entries.

use std::collections::HashSet;
use std::path::Path;

use crate::rules::read_regular_no_follow;

/// The tracked paths (raw bytes, `/`-separated) and every directory that contains one.
#[derive(Debug, Default)]
pub(crate) struct Tracked {
    pub(crate) files: HashSet<Vec<u8>>,
    pub(crate) dirs: HashSet<Vec<u8>>,
}

impl Tracked {
    /// Loads `<root>/.git/index` when `.git` is a real directory in the workspace.
    pub(crate) fn load(root: &Path) -> Tracked {
        let git = root.join(".git");
        let is_dir = git
            .symlink_metadata()
            .map(|m| m.file_type().is_dir())
            .unwrap_or(false);
        if !is_dir {
            return Tracked::default();
        }
        let Some(bytes) = read_regular_no_follow(&git.join("index")) else {
            return Tracked::default();
        };
        let sha256 = read_regular_no_follow(&git.join("config"))
            .map(|c| is_sha256_repo(&c))
            .unwrap_or(false);
        let paths = parse(&bytes, if sha256 { 32 } else { 20 }).unwrap_or_default();
        let mut t = Tracked::default();
        for p in paths {
            let mut end = p.len();
            while let Some(i) = p[..end].iter().rposition(|&b| b == b'/') {
                if !t.dirs.insert(p[..i].to_vec()) {
                    break;
                }
                end = i;
            }
            t.files.insert(p);
        }
        t
    }
}

fn is_sha256_repo(config: &[u8]) -> bool {
    String::from_utf8_lossy(config).lines().any(|l| {
        let l = l.trim().to_ascii_lowercase();
        l.starts_with("objectformat") && l.contains("sha256")
    })
}

/// Parses an index file into its (non-gitlink) paths. `None` when the bytes are not an index.
pub(crate) fn parse(b: &[u8], oid_len: usize) -> Option<Vec<Vec<u8>>> {
    if b.len() < 12 || &b[0..4] != b"DIRC" {
        return None;
    }
    let version = u32::from_be_bytes(b[4..8].try_into().ok()?);
    if !(2..=4).contains(&version) {
        return None;
    }
    let count = u32::from_be_bytes(b[8..12].try_into().ok()?) as usize;
    let mut pos = 12;
    let mut prev: Vec<u8> = Vec::new();
    let mut out = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let start = pos;
        let stat = b.get(pos..pos + 40)?;
        let mode = u32::from_be_bytes(stat[24..28].try_into().ok()?);
        pos += 40 + oid_len;
        let flags = u16::from_be_bytes(b.get(pos..pos + 2)?.try_into().ok()?);
        pos += 2;
        if version >= 3 && flags & 0x4000 != 0 {
            pos += 2;
        }
        let path = if version == 4 {
            let (strip, n) = varint(b.get(pos..)?)?;
            pos += n;
            let rest = b.get(pos..)?;
            let nul = rest.iter().position(|&c| c == 0)?;
            let keep = prev.len().checked_sub(strip)?;
            let mut p = prev[..keep].to_vec();
            p.extend_from_slice(&rest[..nul]);
            pos += nul + 1;
            p
        } else {
            let rest = b.get(pos..)?;
            let nul = rest.iter().position(|&c| c == 0)?;
            let p = rest[..nul].to_vec();
            let len = pos + nul - start;
            pos = start + ((len + 8) & !7);
            p
        };
        if mode & 0o170000 != 0o160000 && !path.is_empty() {
            out.push(path.clone());
        }
        prev = path;
    }
    Some(out)
}

/// git's offset varint (`decode_varint` in varint.c).
fn varint(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    let mut c = *b.get(i)?;
    i += 1;
    let mut val = usize::from(c & 127);
    while c & 128 != 0 {
        c = *b.get(i)?;
        i += 1;
        val = val.checked_add(1)?.checked_shl(7)? + usize::from(c & 127);
    }
    Some((val, i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    }

    fn tracked_after(version: &str) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        git(root, &["config", "index.version", version]);
        std::fs::create_dir_all(root.join("src/deep/er")).unwrap();
        std::fs::create_dir_all(root.join("src").join("n".repeat(200))).unwrap();
        let long = format!("src/{}/{}", "n".repeat(200), "m".repeat(200));
        for p in [
            "a.txt",
            "src/x.js",
            "src/deep/er/y.js",
            "src/deep/z.js",
            &long,
        ] {
            std::fs::write(root.join(p), p).unwrap();
        }
        git(root, &["add", "."]);
        let mut v: Vec<Vec<u8>> = Tracked::load(root).files.into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn reads_index_versions_2_3_and_4_like_git() {
        let want: Vec<Vec<u8>> = {
            let long = format!("src/{}/{}", "n".repeat(200), "m".repeat(200));
            let mut w: Vec<Vec<u8>> = [
                "a.txt",
                "src/deep/er/y.js",
                "src/deep/z.js",
                "src/x.js",
                &long,
            ]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
            w.sort();
            w
        };
        for v in ["2", "3", "4"] {
            assert_eq!(tracked_after(v), want, "index version {v}");
        }
    }

    #[test]
    fn garbage_is_not_an_index() {
        assert!(parse(b"not an index at all", 20).is_none());
        assert!(
            parse(b"DIRC\0\0\0\x02\0\0\0\x05", 20).is_none(),
            "truncated entries"
        );
    }
}
