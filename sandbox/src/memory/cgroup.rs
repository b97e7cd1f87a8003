//! Finding genrun's own memory cgroup and reading its files.
//!
//! The container's cgroup is rarely the hierarchy's root: `/proc/self/cgroup` names it relative to the
//! hierarchy, and `/proc/self/mountinfo` says which part of the hierarchy is mounted where (docker without a
//! cgroup namespace mounts `/docker/<id>` itself at `/sys/fs/cgroup/memory`). Both are read, never assumed.
//!
//! Wire formats (kernel documentation, cgroup-v1/memory.rst and cgroup-v2.rst):
//! - `/proc/<pid>/cgroup`: one line per hierarchy, `hierarchy-id:controller-list:path`; cgroup v2 is the line
//!   `0::path`; under v1 (or hybrid) the memory controller has its own line (`4:memory:/a/b`), and when it does
//!   the memory controller is NOT on the v2 hierarchy (a controller lives on one hierarchy only).
//! - `/proc/<pid>/mountinfo`: `id parent major:minor root mount-point options [optional...] - fstype source
//!   super-options`; v1 memory mounts have fstype `cgroup` and `memory` among the super options; v2 mounts
//!   have fstype `cgroup2`. Spaces in paths are escaped as `\040`.
//! - v2 files: `memory.max` (`max` or bytes), `memory.current` (bytes), `memory.stat` (`inactive_file N`),
//!   `memory.events` (`oom_kill N`).
//! - v1 files: `memory.limit_in_bytes` (bytes; unlimited reads as a huge page-rounded value such as
//!   9223372036854771712), `memory.usage_in_bytes`, `memory.stat` (`total_inactive_file N`),
//!   `memory.oom_control` (`oom_kill N`, kernels >= 4.13).

use std::fs;
use std::path::{Path, PathBuf};

/// Limits at or above this (2^60, 1 EiB) mean "no limit": v1 reports unlimited as `i64::MAX` rounded down
/// to a page, and no machine has that much memory.
pub(crate) const UNLIMITED_FROM: u64 = 1 << 60;

/// Where the mounts are expected on a real system; a mount point under it is rebased onto the probe's
/// cgroup root, so fixture trees work unchanged.
const SYSTEM_CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CgroupVersion {
    V1,
    V2,
}

/// A memory cgroup directory, and the directory its hierarchy is mounted at (the highest ancestor we may
/// look at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupDir {
    pub version: CgroupVersion,
    pub dir: PathBuf,
    pub mount: PathBuf,
}

/// The memory-relevant lines of `/proc/<pid>/cgroup`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Membership {
    /// Path of the v1 hierarchy holding the memory controller, and that line's controller list.
    pub v1_memory: Option<(String, String)>,
    /// Path on the v2 (unified) hierarchy.
    pub v2: Option<String>,
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Membership {
    let mut out = Membership::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            out.v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            out.v1_memory = Some((path.to_string(), controllers.to_string()));
        }
    }
    out
}

/// A cgroup filesystem mount relevant to memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub version: CgroupVersion,
    /// The part of the hierarchy that is mounted (`/` unless a sub-tree is bind-mounted).
    pub root: String,
    pub mount_point: PathBuf,
}

pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) = (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let super_opts = right.get(2).copied().unwrap_or("");
        let version = match *fstype {
            "cgroup2" => CgroupVersion::V2,
            "cgroup" if super_opts.split(',').any(|o| o == "memory") => CgroupVersion::V1,
            _ => continue,
        };
        out.push(Mount {
            version,
            root: unescape(root),
            mount_point: PathBuf::from(unescape(point)),
        });
    }
    out
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Finds the memory cgroup directory of the process whose `/proc/<pid>` is `proc_dir`, with the cgroup
/// filesystems expected under `cgroup_root`. `None` when the process has no memory cgroup we can see.
pub(crate) fn find_memory_cgroup(proc_dir: &Path, cgroup_root: &Path) -> Option<CgroupDir> {
    let membership = parse_proc_cgroup(&fs::read_to_string(proc_dir.join("cgroup")).ok()?);
    let mounts = fs::read_to_string(proc_dir.join("mountinfo"))
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default();
    if let Some((path, controllers)) = &membership.v1_memory {
        let defaults = [cgroup_root.join(controllers), cgroup_root.join("memory")];
        return locate(
            CgroupVersion::V1,
            path,
            &mounts,
            &defaults,
            cgroup_root,
            "memory.limit_in_bytes",
        );
    }
    let path = membership.v2.as_ref()?;
    let defaults = [cgroup_root.to_path_buf(), cgroup_root.join("unified")];
    locate(
        CgroupVersion::V2,
        path,
        &mounts,
        &defaults,
        cgroup_root,
        "memory.current",
    )
}

/// Tries the mounts of `version` from mountinfo first (stripping the mounted sub-tree's root from `path`),
/// then the conventional mount points; the first directory holding `marker` wins.
fn locate(
    version: CgroupVersion,
    path: &str,
    mounts: &[Mount],
    defaults: &[PathBuf],
    cgroup_root: &Path,
    marker: &str,
) -> Option<CgroupDir> {
    let mut candidates: Vec<(PathBuf, PathBuf)> = Vec::new();
    for m in mounts.iter().filter(|m| m.version == version) {
        let mount = rebase(&m.mount_point, cgroup_root);
        if let Some(rel) = strip_root(path, &m.root) {
            candidates.push((join_rel(&mount, rel), mount));
        }
    }
    for d in defaults {
        candidates.push((join_rel(d, path), d.clone()));
    }
    candidates
        .into_iter()
        .find(|(dir, _)| dir.join(marker).is_file())
        .map(|(dir, mount)| CgroupDir {
            version,
            dir,
            mount,
        })
}

fn rebase(mount_point: &Path, cgroup_root: &Path) -> PathBuf {
    match mount_point.strip_prefix(SYSTEM_CGROUP_ROOT) {
        Ok(rest) if rest.as_os_str().is_empty() => cgroup_root.to_path_buf(),
        Ok(rest) => cgroup_root.join(rest),
        Err(_) => mount_point.to_path_buf(),
    }
}

/// `path` relative to the mounted sub-tree `root`, or `None` when it lies outside it.
fn strip_root<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    if root == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(root.trim_end_matches('/'))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn join_rel(base: &Path, rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

/// Parses a limit file's content: `None` for `max` and for values of 2^60 and more.
pub(crate) fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    let v: u64 = t.parse().ok()?;
    (v < UNLIMITED_FROM).then_some(v)
}

/// The effective limit of `cg`: the smallest limit of the cgroup and its ancestors up to the mount point
/// (a parent's limit binds its children too), with the directory that sets it.
pub(crate) fn effective_limit(cg: &CgroupDir) -> Option<(u64, CgroupDir)> {
    let file = match cg.version {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        CgroupVersion::V2 => "memory.max",
    };
    let mut best: Option<(u64, PathBuf)> = None;
    let mut dir = cg.dir.as_path();
    loop {
        if let Some(limit) = fs::read_to_string(dir.join(file))
            .ok()
            .as_deref()
            .and_then(parse_limit)
        {
            if best.as_ref().is_none_or(|(b, _)| limit < *b) {
                best = Some((limit, dir.to_path_buf()));
            }
        }
        if dir == cg.mount {
            break;
        }
        match dir.parent() {
            Some(parent) if parent.starts_with(&cg.mount) => dir = parent,
            _ => break,
        }
    }
    best.map(|(limit, dir)| {
        (
            limit,
            CgroupDir {
                version: cg.version,
                dir,
                mount: cg.mount.clone(),
            },
        )
    })
}

/// Value of `key` in a flat-keyed file (`key value` per line), as in memory.stat and memory.events.
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Reads memory files with one reused buffer (a sample must stay cheap).
#[derive(Debug, Default)]
pub(crate) struct Reader {
    buf: String,
}

impl Reader {
    fn read(&mut self, path: &Path) -> Option<&str> {
        use std::io::Read;
        self.buf.clear();
        fs::File::open(path)
            .ok()?
            .read_to_string(&mut self.buf)
            .ok()?;
        Some(&self.buf)
    }

    /// Working set: usage minus inactive file cache (what kubelet compares with the limit; the cache is
    /// reclaimed before the OOM killer runs). Falls back to raw usage when memory.stat lacks the key.
    pub(crate) fn working_set(&mut self, cg: &CgroupDir) -> Option<u64> {
        let (usage_file, inactive_key) = match cg.version {
            CgroupVersion::V1 => ("memory.usage_in_bytes", "total_inactive_file"),
            CgroupVersion::V2 => ("memory.current", "inactive_file"),
        };
        let usage: u64 = self.read(&cg.dir.join(usage_file))?.trim().parse().ok()?;
        let inactive = self
            .read(&cg.dir.join("memory.stat"))
            .and_then(|t| keyed_value(t, inactive_key))
            .unwrap_or(0);
        Some(usage.saturating_sub(inactive))
    }

    /// The kernel's count of OOM kills in this cgroup.
    pub(crate) fn oom_kills(&mut self, cg: &CgroupDir) -> Option<u64> {
        let file = match cg.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        self.read(&cg.dir.join(file))
            .and_then(|t| keyed_value(t, "oom_kill"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_v2_unified() {
        let m = parse_proc_cgroup("0::/ecs/task-1/container-a\n");
        assert_eq!(m.v2.as_deref(), Some("/ecs/task-1/container-a"));
        assert_eq!(m.v1_memory, None);
    }

    #[test]
    fn proc_cgroup_v1_memory_line_anywhere_and_combined_controllers() {
        // This machine's shape: memory neither first nor at the root.
        let text = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/9b9d\n1:cpu:/\n0::/\n";
        let m = parse_proc_cgroup(text);
        assert_eq!(
            m.v1_memory,
            Some(("/process_api/9b9d".into(), "memory".into()))
        );
        assert_eq!(m.v2.as_deref(), Some("/"));
        let m = parse_proc_cgroup("5:cpu,memory:/a:b\n");
        assert_eq!(m.v1_memory, Some(("/a:b".into(), "cpu,memory".into())));
        // "memory" must be a whole controller name.
        let m = parse_proc_cgroup("5:memoryx:/a\n7:name=memory:/b\ngarbage\n");
        assert_eq!(m, Membership::default());
    }

    #[test]
    fn mountinfo_finds_v1_memory_and_v2_mounts_with_escapes() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:40 / /mnt/with\\040space rw - cgroup2 none rw
truncated line without separator
";
        let mounts = parse_mountinfo(text);
        assert_eq!(
            mounts,
            vec![
                Mount {
                    version: CgroupVersion::V1,
                    root: "/docker/abc".into(),
                    mount_point: "/sys/fs/cgroup/memory".into()
                },
                Mount {
                    version: CgroupVersion::V2,
                    root: "/".into(),
                    mount_point: "/sys/fs/cgroup/unified".into()
                },
                Mount {
                    version: CgroupVersion::V2,
                    root: "/".into(),
                    mount_point: "/mnt/with space".into()
                },
            ]
        );
    }

    #[test]
    fn limits_max_huge_and_garbage() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("1152921504606846976"), None); // exactly 2^60
        assert_eq!(parse_limit("1152921504606846975"), Some((1 << 60) - 1));
        assert_eq!(parse_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_limit("-1"), None);
    }

    #[test]
    fn root_stripping() {
        assert_eq!(strip_root("/a/b", "/"), Some("/a/b"));
        assert_eq!(strip_root("/docker/abc", "/docker/abc"), Some(""));
        assert_eq!(strip_root("/docker/abc/x", "/docker/abc/"), Some("/x"));
        assert_eq!(strip_root("/docker/abcdef", "/docker/abc"), None);
        assert_eq!(strip_root("/other", "/docker/abc"), None);
    }

    #[test]
    fn keyed_values() {
        let stat = "cache 1\ninactive_file 42\ntotal_inactive_file 43\n";
        assert_eq!(keyed_value(stat, "inactive_file"), Some(42));
        assert_eq!(keyed_value(stat, "total_inactive_file"), Some(43));
        assert_eq!(keyed_value(stat, "file"), None);
    }
}
