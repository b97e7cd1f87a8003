//! The one walk over the workspace: decides, for every entry, keep or drop (and why).
//!
//! Precedence, first match wins:
//! 1. the output directory, when it lies inside the workspace, is dropped;
//! 2. the built-in rules, then each `--rules` file (each an independent set: a workspace negation
//!    cannot undo them);
//! 3. the workspace's ignore files with git's precedence: the deepest `.gitignore` with any matching
//!    rule decides (within a file the last matching rule wins), then `.git/info/exclude`. An entry
//!    under an excluded directory is excluded, whatever a deeper negation says. Exception, as in
//!    `git ls-files --cached`: paths tracked in `.git/index` are kept, and an excluded directory is
//!    still walked for the tracked paths under it (only those);
//! 4. by type: directories and regular files are kept (hard links become regular files); symlinks
//!    only when their target stays inside the workspace ([`crate::symlink`]); FIFOs, sockets and
//!    devices are dropped;
//! 5. after sorting by raw path bytes, the [`crate::Limits`].
//!
//! Dropped directories are reported once and never opened. Nothing is followed through a symlink:
//! entry types come from `lstat` (the directory entry), and `.gitignore` files that are symlinks are
//! not read.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::gitindex::Tracked;
use crate::rules::{gitignore_in, gitignore_label, RuleSet, Verdict};
use crate::symlink::stays_inside;
use crate::{display_path, Dropped, PackageError, PackageOptions};

/// Kind of a kept entry. Wire form: `"file"`, `"dir"`, `"symlink"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One entry that goes into the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptEntry {
    /// Workspace-relative path as raw bytes, `/`-separated, never absolute, never `..`.
    pub rel: Vec<u8>,
    pub kind: EntryKind,
    /// Size on disk for regular files (before redaction); 0 otherwise.
    pub size: u64,
    /// Any execute bit set on a regular file (archived as 0755, else 0644).
    pub executable: bool,
    /// Raw link target for symlinks.
    pub target: Option<Vec<u8>>,
}

impl KeptEntry {
    /// The entry's path relative to the workspace.
    pub fn rel_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.rel))
    }
}

/// The outcome of the walk: what is kept (sorted by raw path bytes) and what is dropped.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The canonical workspace directory.
    pub root: PathBuf,
    pub entries: Vec<KeptEntry>,
    /// Sorted by raw path bytes.
    pub drops: Vec<Dropped>,
}

impl Scan {
    /// Number of kept entries of `kind`.
    pub fn count(&self, kind: EntryKind) -> u64 {
        self.entries.iter().filter(|e| e.kind == kind).count() as u64
    }

    /// Sum of kept regular-file sizes as found on disk.
    pub fn bytes_in(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// Walks `opts.workspace` and applies rules and limits; reads no file contents except ignore files
/// and `.git/index`.
pub fn scan(opts: &PackageOptions) -> Result<Scan, PackageError> {
    let root = fs::canonicalize(&opts.workspace).map_err(|source| PackageError::Workspace {
        path: opts.workspace.clone(),
        source,
    })?;
    let root_dir = fs::read_dir(&root).map_err(|source| PackageError::Workspace {
        path: opts.workspace.clone(),
        source,
    })?;
    let out_abs = resolve(&opts.out_dir);
    if out_abs.as_deref() == Some(root.as_path()) {
        return Err(PackageError::OutDir {
            path: opts.out_dir.clone(),
            message: "is the workspace itself".to_string(),
        });
    }

    let mut fixed = vec![
        RuleSet::builtin(&root).map_err(|message| PackageError::Rules {
            path: PathBuf::from("packaging-rules/builtin.gitignore"),
            message,
        })?,
    ];
    for f in &opts.extra_rules {
        fixed.push(RuleSet::extra(&root, f)?);
    }
    let info_exclude = if is_real_dir(&root.join(".git")) && is_real_dir(&root.join(".git/info")) {
        RuleSet::workspace_file(
            &root,
            &root.join(".git/info/exclude"),
            ".git/info/exclude".to_string(),
        )
    } else {
        None
    };

    let mut w = Walker {
        root: root.clone(),
        out_abs,
        fixed,
        info_exclude,
        tracked: Tracked::load(&root),
        kept: Vec::new(),
        drops: Vec::new(),
    };
    let mut stack = Vec::new();
    w.walk_dir(&root, &[], root_dir, &mut stack, None)?;

    let Walker {
        mut kept,
        mut drops,
        ..
    } = w;
    kept.sort_by(|a, b| a.rel.cmp(&b.rel));
    let kept = apply_limits(kept, &opts.limits, &mut drops);
    drops.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Scan {
        root,
        entries: kept,
        drops: drops.into_iter().map(|(_, d)| d).collect(),
    })
}

struct Walker {
    root: PathBuf,
    out_abs: Option<PathBuf>,
    fixed: Vec<RuleSet>,
    info_exclude: Option<RuleSet>,
    tracked: Tracked,
    kept: Vec<KeptEntry>,
    drops: Vec<(Vec<u8>, Dropped)>,
}

impl Walker {
    /// Visits the entries of the directory `abs` (already opened as `rd`). `excluded_by` is the
    /// reason when this directory is excluded but walked only for the tracked paths below it.
    fn walk_dir(
        &mut self,
        abs: &Path,
        rel: &[u8],
        rd: fs::ReadDir,
        stack: &mut Vec<RuleSet>,
        excluded_by: Option<&str>,
    ) -> Result<(), PackageError> {
        let mut children = Vec::new();
        for e in rd {
            let e = e.map_err(|err| PackageError::io(abs, err))?;
            let ft = e
                .file_type()
                .map_err(|err| PackageError::io(&e.path(), err))?;
            children.push((e.file_name(), ft));
        }
        children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

        let pushed = if excluded_by.is_none() {
            match RuleSet::workspace_file(abs, &gitignore_in(abs), gitignore_label(rel)) {
                Some(set) => {
                    stack.push(set);
                    true
                }
                None => false,
            }
        } else {
            false
        };

        let mut result = Ok(());
        for (name, ft) in children {
            let child_abs = abs.join(&name);
            let mut child_rel = Vec::with_capacity(rel.len() + 1 + name.len());
            if !rel.is_empty() {
                child_rel.extend_from_slice(rel);
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(name.as_bytes());
            if let Err(e) = self.visit(&child_abs, child_rel, ft, stack, excluded_by) {
                result = Err(e);
                break;
            }
        }
        if pushed {
            stack.pop();
        }
        result
    }

    fn visit(
        &mut self,
        abs: &Path,
        rel: Vec<u8>,
        ft: fs::FileType,
        stack: &mut Vec<RuleSet>,
        excluded_by: Option<&str>,
    ) -> Result<(), PackageError> {
        let is_dir = ft.is_dir();
        if self.out_abs.as_deref() == Some(abs) {
            self.drop_entry(rel, "output directory".to_string(), ft, abs);
            return Ok(());
        }
        for set in &self.fixed {
            if let Verdict::Excluded(reason) = set.verdict(abs, is_dir) {
                self.drop_entry(rel, reason, ft, abs);
                return Ok(());
            }
        }
        let excluded = match excluded_by {
            Some(r) => Some(r.to_string()),
            None => self.workspace_verdict(stack, abs, is_dir),
        };
        let mut walk_excluded_dir = None;
        if let Some(reason) = excluded {
            if is_dir && self.tracked.dirs.contains(&rel) {
                walk_excluded_dir = Some(reason);
            } else if is_dir || !self.tracked.files.contains(&rel) {
                self.drop_entry(rel, reason, ft, abs);
                return Ok(());
            }
        }

        if is_dir {
            let rd = match fs::read_dir(abs) {
                Ok(rd) => rd,
                Err(_) => {
                    self.drop_entry(rel, "unreadable".to_string(), ft, abs);
                    return Ok(());
                }
            };
            self.kept.push(KeptEntry {
                rel: rel.clone(),
                kind: EntryKind::Dir,
                size: 0,
                executable: true,
                target: None,
            });
            return self.walk_dir(abs, &rel, rd, stack, walk_excluded_dir.as_deref());
        }
        if ft.is_file() {
            let meta = match abs.symlink_metadata() {
                Ok(m) => m,
                Err(_) => {
                    self.drop_entry(rel, "unreadable".to_string(), ft, abs);
                    return Ok(());
                }
            };
            self.kept.push(KeptEntry {
                rel,
                kind: EntryKind::File,
                size: meta.len(),
                executable: meta.permissions().mode() & 0o111 != 0,
                target: None,
            });
            return Ok(());
        }
        if ft.is_symlink() {
            let target = fs::read_link(abs).ok();
            match target {
                Some(t) if stays_inside(&self.root, Path::new(OsStr::from_bytes(&rel)), &t) => {
                    self.kept.push(KeptEntry {
                        rel,
                        kind: EntryKind::Symlink,
                        size: 0,
                        executable: false,
                        target: Some(t.as_os_str().as_bytes().to_vec()),
                    });
                }
                _ => self.drop_entry(rel, "symlink escapes workspace".to_string(), ft, abs),
            }
            return Ok(());
        }
        self.drop_entry(rel, "special file".to_string(), ft, abs);
        Ok(())
    }

    fn workspace_verdict(&self, stack: &[RuleSet], abs: &Path, is_dir: bool) -> Option<String> {
        for set in stack.iter().rev() {
            match set.verdict(abs, is_dir) {
                Verdict::Excluded(r) => return Some(r),
                Verdict::Included => return None,
                Verdict::Unmatched => {}
            }
        }
        match self.info_exclude.as_ref().map(|s| s.verdict(abs, is_dir)) {
            Some(Verdict::Excluded(r)) => Some(r),
            _ => None,
        }
    }

    fn drop_entry(&mut self, rel: Vec<u8>, reason: String, ft: fs::FileType, abs: &Path) {
        let size = if ft.is_file() {
            abs.symlink_metadata().ok().map(|m| m.len())
        } else {
            None
        };
        let d = dropped(&rel, reason, kind_name(ft), size);
        self.drops.push((rel, d));
    }
}

fn dropped(rel: &[u8], reason: String, kind: &str, size: Option<u64>) -> Dropped {
    let (path, path_hex) = display_path(rel);
    Dropped {
        path,
        reason,
        size,
        kind: kind.to_string(),
        path_hex,
    }
}

fn kind_name(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block_device"
    } else if ft.is_char_device() {
        "char_device"
    } else {
        "unknown"
    }
}

/// Applies the limits in archive order; what does not fit becomes a drop named after the limit.
fn apply_limits(
    entries: Vec<KeptEntry>,
    limits: &crate::Limits,
    drops: &mut Vec<(Vec<u8>, Dropped)>,
) -> Vec<KeptEntry> {
    let mut kept = Vec::with_capacity(entries.len());
    let mut count = 0u64;
    let mut total = 0u64;
    for e in entries {
        let kind = match e.kind {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
        };
        let size = (e.kind == EntryKind::File).then_some(e.size);
        let reason = if e.kind == EntryKind::File && e.size > limits.max_file_bytes {
            Some("max_file_bytes")
        } else if count >= limits.max_entries {
            Some("max_entries")
        } else if e.kind == EntryKind::File && total.saturating_add(e.size) > limits.max_total_bytes
        {
            Some("max_total_bytes")
        } else {
            None
        };
        match reason {
            Some(r) => {
                let d = dropped(&e.rel, r.to_string(), kind, size);
                drops.push((e.rel, d));
            }
            None => {
                count += 1;
                total += e.size;
                kept.push(e);
            }
        }
    }
    kept
}

/// The absolute, symlink-resolved form of `p`, resolving the longest existing ancestor when `p`
/// does not exist yet.
fn resolve(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = fs::canonicalize(p) {
        return Some(c);
    }
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(p)
    };
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = fs::canonicalize(cur) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return Some(out);
        }
        rest.push(cur.file_name()?.to_os_string());
        cur = cur.parent()?;
    }
}

fn is_real_dir(p: &Path) -> bool {
    p.symlink_metadata()
        .map(|m| m.file_type().is_dir())
        .unwrap_or(false)
}
