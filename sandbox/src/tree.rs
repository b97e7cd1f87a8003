//! A snapshot of the process table read from `/proc`.
//!
//! The sweep (kill every descendant, those that left the agent's process group included) and the memory
//! watch (sum the RSS of the agent's tree) both need "who descends from whom" without any libc types in
//! their interfaces. Processes come and go while we read, so one that vanishes mid-read is skipped.
//!
//! Sources, per pid directory: `stat` (`pid (comm) state ppid pgrp session ...`; `comm` may itself hold
//! spaces and parentheses, so it is cut at the LAST `)`), and `status` (`Uid:` real uid first, `VmRSS:` in kB;
//! kernel threads and zombies have no `VmRSS`, which reads as 0).

use std::collections::HashMap;
use std::io;
use std::path::Path;

/// One process as seen in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// Real uid.
    pub uid: u32,
    /// The `comm` name (at most 15 bytes, set by the kernel from the executable or `prctl`).
    pub name: String,
    pub rss_bytes: u64,
    /// `R`, `S`, `D`, `Z`, `T`, ... as in `/proc/<pid>/stat`.
    pub state: char,
}

/// Reads the live process table from `/proc`.
pub fn snapshot() -> io::Result<Vec<ProcInfo>> {
    snapshot_from(Path::new("/proc"))
}

/// Reads a process table from a `/proc`-shaped directory (a fixture in tests). Only the listing of the root
/// itself can fail; a process whose files vanish or do not parse is skipped.
pub fn snapshot_from(proc_root: &Path) -> io::Result<Vec<ProcInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(info) = read_one(&entry.path(), pid) {
            out.push(info);
        }
    }
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

fn read_one(dir: &Path, pid: u32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let mut info = parse_stat(&stat)?;
    if info.pid != pid {
        return None;
    }
    let (uid, rss_kb) = parse_status(&status)?;
    info.uid = uid;
    info.rss_bytes = rss_kb.saturating_mul(1024);
    Some(info)
}

/// Parses `/proc/<pid>/stat`; uid and rss are left 0 (they come from `status`).
fn parse_stat(stat: &str) -> Option<ProcInfo> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = stat[..open].trim().parse().ok()?;
    let name = stat[open + 1..close].to_string();
    let mut rest = stat[close + 1..].split_ascii_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgid = rest.next()?.parse().ok()?;
    let sid = rest.next()?.parse().ok()?;
    Some(ProcInfo {
        pid,
        ppid,
        pgid,
        sid,
        uid: 0,
        name,
        rss_bytes: 0,
        state,
    })
}

/// Returns (real uid, VmRSS in kB; 0 when absent). `None` without a `Uid:` line.
fn parse_status(status: &str) -> Option<(u32, u64)> {
    let mut uid = None;
    let mut rss_kb = 0;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("Uid:") {
            uid = v
                .split_ascii_whitespace()
                .next()
                .and_then(|s| s.parse().ok());
        } else if let Some(v) = line.strip_prefix("VmRSS:") {
            rss_kb = v
                .split_ascii_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        }
    }
    Some((uid?, rss_kb))
}

/// Every process descending from `root` (children, grandchildren, ... at any depth), `root` excluded,
/// in pid order. Follows `ppid` links only: a process that called `setsid` is still found while its parent
/// chain leads to `root` (with a subreaper or PID 1, orphans are re-parented to `root` itself).
pub fn descendants(procs: &[ProcInfo], root: u32) -> Vec<ProcInfo> {
    let mut children: HashMap<u32, Vec<&ProcInfo>> = HashMap::new();
    for p in procs {
        // pid 0's ppid links (the kernel's own threads) and self-loops must not recurse.
        if p.pid != p.ppid {
            children.entry(p.ppid).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    let mut seen = std::collections::HashSet::from([root]);
    while let Some(pid) = stack.pop() {
        for child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            if seen.insert(child.pid) {
                out.push((*child).clone());
                stack.push(child.pid);
            }
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_proc(root: &Path, pid: u32, stat: &str, status: &str) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(dir.join("status"), status).unwrap();
    }

    #[test]
    fn parses_fixture_with_awkward_comm_and_skips_junk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_proc(
            root,
            1,
            "1 (genrun) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1 0",
            "Name:\tgenrun\nUid:\t0\t0\t0\t0\nVmRSS:\t    2048 kB\n",
        );
        write_proc(
            root,
            42,
            "42 (we ird) (x) R 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1 0",
            "Name:\twe ird\nUid:\t1000\t1000\t1000\t1000\n",
        );
        // Zombie: no VmRSS line.
        write_proc(
            root,
            43,
            "43 (sh) Z 42 42 42 0 -1 0",
            "Name:\tsh\nUid:\t1000\t0\t0\t0\n",
        );
        // Junk: not a pid, unparsable stat, pid mismatch, missing status.
        std::fs::create_dir_all(root.join("self")).unwrap();
        write_proc(root, 50, "garbage", "Uid:\t0\n");
        write_proc(root, 51, "52 (x) S 1 1 1", "Uid:\t0\n");
        std::fs::create_dir_all(root.join("53")).unwrap();
        std::fs::write(root.join("53/stat"), "53 (x) S 1 1 1").unwrap();

        let procs = snapshot_from(root).unwrap();
        assert_eq!(
            procs,
            vec![
                ProcInfo {
                    pid: 1,
                    ppid: 0,
                    pgid: 1,
                    sid: 1,
                    uid: 0,
                    name: "genrun".into(),
                    rss_bytes: 2048 * 1024,
                    state: 'S'
                },
                ProcInfo {
                    pid: 42,
                    ppid: 1,
                    pgid: 42,
                    sid: 42,
                    uid: 1000,
                    name: "we ird) (x".into(),
                    rss_bytes: 0,
                    state: 'R'
                },
                ProcInfo {
                    pid: 43,
                    ppid: 42,
                    pgid: 42,
                    sid: 42,
                    uid: 1000,
                    name: "sh".into(),
                    rss_bytes: 0,
                    state: 'Z'
                },
            ]
        );
    }

    fn p(pid: u32, ppid: u32) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            pgid: pid,
            sid: pid,
            uid: 0,
            name: String::new(),
            rss_bytes: 0,
            state: 'S',
        }
    }

    #[test]
    fn descendants_any_depth_excluding_root_and_strangers() {
        let procs = vec![
            p(1, 0),
            p(10, 1),
            p(11, 10),
            p(12, 11),
            p(13, 10),
            p(20, 1),
            p(21, 20),
        ];
        let pids: Vec<u32> = descendants(&procs, 10).iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![11, 12, 13]);
        assert!(descendants(&procs, 12).is_empty());
        assert!(descendants(&procs, 999).is_empty());
        let all: Vec<u32> = descendants(&procs, 1).iter().map(|p| p.pid).collect();
        assert_eq!(all, vec![10, 11, 12, 13, 20, 21]);
    }

    #[test]
    fn descendants_survives_cycles() {
        // Cannot happen in a consistent table, but a snapshot read across pid reuse could show one.
        let procs = vec![p(5, 6), p(6, 5), p(7, 7)];
        let pids: Vec<u32> = descendants(&procs, 5).iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![6]);
        assert!(descendants(&procs, 7).is_empty());
    }

    #[test]
    fn live_snapshot_sees_this_process_and_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id();
        let procs = snapshot().unwrap();
        let mine = procs.iter().find(|p| p.pid == me).unwrap();
        assert!(mine.rss_bytes > 0);
        assert_eq!(mine.uid, nix::unistd::getuid().as_raw());
        let desc = descendants(&procs, me);
        assert!(desc.iter().any(|p| p.pid == child.id() && p.ppid == me));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
