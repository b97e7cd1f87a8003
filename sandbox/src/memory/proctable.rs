//! An incrementally refreshed process table, cheap enough to read every sampling interval.
//!
//! `crate::tree::snapshot` reads `stat` and `status` of every process (about 2 ms for 116 processes on the
//! development machine, measured), too slow for a sample that must cost well under a millisecond; and
//! `/proc/<pid>/task/<tid>/children` is not available on the Firecracker kernels Fargate uses. So: each
//! refresh lists `/proc` (one getdents), reads `stat` once for a pid never seen before, and re-reads it
//! only for processes of genrun's tree (their RSS and, after an exec, their name change) and for processes
//! whose parent vanished (re-parenting). Everything else keeps what was read when it appeared: a process's
//! parent changes only by re-parenting. A pid recycled between two refreshes would keep its predecessor's
//! parent; with sequential pid allocation that needs the whole pid space to wrap within one interval.
//!
//! `/proc/<pid>/stat`: `pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
//! utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss ...`, `comm` cut at
//! the LAST `)`, `rss` in pages.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

use super::sampler::ProcMem;

/// One process as the table knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    ppid: u32,
    name: String,
    state: char,
    rss_bytes: u64,
    /// Refresh generation in which the pid was last listed / its stat last read.
    listed: u64,
    read: u64,
}

#[derive(Debug)]
pub(crate) struct ProcTable {
    proc_root: PathBuf,
    page_size: u64,
    entries: HashMap<u32, Entry>,
    generation: u64,
    path: String,
    buf: String,
}

impl ProcTable {
    pub(crate) fn new(proc_root: PathBuf) -> ProcTable {
        ProcTable {
            proc_root,
            page_size: page_size(),
            entries: HashMap::new(),
            generation: 0,
            path: String::new(),
            buf: String::new(),
        }
    }

    /// Refreshes the table and returns `supervisor`, its descendants, and `agent` with its descendants
    /// (when the agent is not among them), zombies left out (they hold no memory), in no particular order.
    pub(crate) fn members(&mut self, supervisor: u32, agent: Option<u32>) -> Vec<ProcMem> {
        self.refresh();
        let mut children: HashMap<u32, Vec<u32>> = HashMap::with_capacity(self.entries.len());
        for (&pid, e) in &self.entries {
            if pid != e.ppid {
                children.entry(e.ppid).or_default().push(pid);
            }
        }
        let mut seen = HashSet::new();
        let mut stack: Vec<u32> = Vec::new();
        for root in std::iter::once(supervisor).chain(agent) {
            if self.entries.contains_key(&root) && seen.insert(root) {
                stack.push(root);
            }
            while let Some(pid) = stack.pop() {
                for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
                    if seen.insert(child) {
                        stack.push(child);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(seen.len());
        for pid in seen {
            let stale = self
                .entries
                .get(&pid)
                .is_some_and(|e| e.read != self.generation);
            if stale && !self.read(pid) {
                continue;
            }
            let Some(e) = self.entries.get(&pid) else {
                continue;
            };
            if e.state == 'Z' {
                continue;
            }
            out.push(ProcMem {
                pid,
                name: e.name.clone(),
                rss_bytes: e.rss_bytes,
                is_agent: Some(pid) == agent,
                is_supervisor: pid == supervisor,
            });
        }
        out
    }

    fn refresh(&mut self) {
        self.generation += 1;
        let generation = self.generation;
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            self.entries.clear();
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            match self.entries.get_mut(&pid) {
                Some(e) => e.listed = generation,
                None => {
                    self.read(pid);
                }
            }
        }
        self.entries.retain(|_, e| e.listed == generation);
        let orphaned: Vec<u32> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.ppid != 0 && e.read != generation && !self.entries.contains_key(&e.ppid)
            })
            .map(|(&pid, _)| pid)
            .collect();
        for pid in orphaned {
            self.read(pid);
        }
    }

    /// (Re-)reads one process's stat; false (and the entry dropped) when it vanished or does not parse.
    fn read(&mut self, pid: u32) -> bool {
        self.path.clear();
        let _ = write!(self.path, "{}/{pid}/stat", self.proc_root.display());
        self.buf.clear();
        let ok = std::fs::File::open(&self.path)
            .and_then(|mut f| f.read_to_string(&mut self.buf))
            .is_ok();
        let parsed = if ok { parse_stat(&self.buf, pid) } else { None };
        match parsed {
            Some((ppid, name, state, rss_pages)) => {
                let e = Entry {
                    ppid,
                    name: name.to_string(),
                    state,
                    rss_bytes: rss_pages.saturating_mul(self.page_size),
                    listed: self.generation,
                    read: self.generation,
                };
                self.entries.insert(pid, e);
                true
            }
            None => {
                self.entries.remove(&pid);
                false
            }
        }
    }
}

/// (ppid, comm, state, rss pages) from `/proc/<pid>/stat`, checking the pid.
fn parse_stat(stat: &str, pid: u32) -> Option<(u32, &str, char, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    if close < open || stat[..open].trim().parse::<u32>().ok()? != pid {
        return None;
    }
    let mut fields = stat[close + 1..].split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // rss is the 22nd field after comm's closing parenthesis counting state as the 1st.
    let rss = fields.nth(19)?.parse().ok()?;
    Some((ppid, &stat[open + 1..close], state, rss))
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(4096)
}

/// The page size RSS counts are multiplied by (tests use it to state expectations).
#[cfg(test)]
pub(crate) fn system_page_size() -> u64 {
    page_size()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_with_awkward_comm() {
        let stat = "42 (we ird) (x) R 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 1000 2560 18446744073709551615";
        assert_eq!(parse_stat(stat, 42), Some((1, "we ird) (x", 'R', 2560)));
        // Pid mismatch (recycled while reading), truncated, garbage.
        assert_eq!(parse_stat(stat, 43), None);
        assert_eq!(parse_stat("42 (x) R 1 42 42", 42), None);
        assert_eq!(parse_stat("garbage", 42), None);
    }

    fn write_stat(
        root: &std::path::Path,
        pid: u32,
        comm: &str,
        state: char,
        ppid: u32,
        rss_pages: u64,
    ) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let stat = format!("{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 {rss_pages} 0");
        std::fs::write(dir.join("stat"), stat).unwrap();
    }

    #[test]
    fn refresh_follows_exec_exit_reparenting_and_new_children() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ps = system_page_size();
        write_stat(root, 1, "genrun", 'S', 0, 10);
        write_stat(root, 5, "claude", 'S', 1, 100);
        write_stat(root, 6, "sh", 'S', 5, 1);
        write_stat(root, 7, "sleep", 'S', 6, 1);
        write_stat(root, 9, "other", 'S', 0, 1000);
        let mut t = ProcTable::new(root.to_path_buf());
        let pids = |v: Vec<ProcMem>| {
            let mut p: Vec<(u32, String, u64)> = v
                .into_iter()
                .map(|m| (m.pid, m.name, m.rss_bytes))
                .collect();
            p.sort();
            p
        };
        assert_eq!(
            pids(t.members(1, Some(5))),
            vec![
                (1, "genrun".into(), 10 * ps),
                (5, "claude".into(), 100 * ps),
                (6, "sh".into(), ps),
                (7, "sleep".into(), ps)
            ]
        );
        // sh execs node and grows; sleep's parent sh... is replaced: 6 exits, 7 is re-parented to genrun
        // (subreaper); a new child 8 appears; the stranger 9 changes but is never re-read.
        std::fs::remove_dir_all(root.join("6")).unwrap();
        write_stat(root, 7, "sleep", 'S', 1, 2);
        write_stat(root, 8, "node", 'R', 5, 500);
        write_stat(root, 9, "other", 'S', 1, 1000);
        write_stat(root, 5, "claude", 'S', 1, 120);
        assert_eq!(
            pids(t.members(1, Some(5))),
            vec![
                (1, "genrun".into(), 10 * ps),
                (5, "claude".into(), 120 * ps),
                (7, "sleep".into(), 2 * ps),
                (8, "node".into(), 500 * ps)
            ]
        );
        // 8 becomes a zombie: left out. The agent outside genrun's tree still counts with its tree.
        write_stat(root, 8, "node", 'Z', 5, 0);
        assert_eq!(pids(t.members(1, Some(5))).len(), 3);
        assert_eq!(
            pids(t.members(7, Some(5)))
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>(),
            vec![5, 7]
        );
        // The proc root vanished: nothing.
        drop(dir);
        assert!(t.members(1, Some(5)).is_empty());
    }
}
