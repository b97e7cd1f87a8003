//! Packs the agent's workspace into the archives the user downloads.
//!
//! The packager is genrun's last act in every run, and the one that decides what leaves the container:
//! it must never ship `node_modules`, logs, `.env` files, keys, `.git` or anything reached through a
//! symlink, must report everything it leaves out, and must give byte-identical archives for the same
//! tree on any machine. Pipeline (one function per step):
//!
//! 1. [`walk`] the workspace once, sequentially, without following symlinks: built-in rules
//!    (`packaging-rules/builtin.gitignore`) and `--rules` files first, then the workspace's own
//!    `.gitignore` files and `.git/info/exclude` with git's precedence; files tracked in `.git/index`
//!    stay in even when a `.gitignore` matches them, as with `git ls-files --cached --others
//!    --exclude-standard`. An excluded directory is reported once and never descended into.
//! 2. Sort by raw path bytes and apply the [`Limits`] in that order (so limit drops are deterministic).
//! 3. [`archive`]: stream one tar (fixed mtime, uid/gid 0, no names, modes 0644/0755) into a SHA-256
//!    and both compressors at once, so each file is read once; redact secret values on the way.
//! 4. Write `manifest.json` ([`Manifest`]) and return a [`PackageReport`].

mod archive;
pub mod fixture;
mod gitindex;
mod manifest;
mod rules;
mod summary;
mod symlink;
mod walk;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use manifest::{Manifest, ManifestArchive, ManifestEntry, ManifestTar, ManifestTotals};
pub use rules::{builtin_excludes, BUILTIN_RULES};
pub use summary::render_summary;
pub use walk::{scan, EntryKind, KeptEntry, Scan};

/// The mtime stamped on every entry when `SOURCE_DATE_EPOCH` is not set: 2000-01-01T00:00:00Z, the
/// value Bazel's rules_pkg uses.
pub const DEFAULT_MTIME: u64 = 946_684_800;

/// The marker that replaces each occurrence of a redacted secret value in archived files.
pub const REDACTION_MARKER: &[u8] = b"[REDACTED]";

/// The name of the manifest written next to the archives.
pub const MANIFEST_FILE: &str = "manifest.json";

/// An archive format. Wire form (CLI `--format`, manifest, JSON): `"tar.zst"` or `"tar.gz"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Format {
    /// Zstandard, single-threaded, level [`ZSTD_LEVEL`]: small and fast; for machines.
    #[serde(rename = "tar.zst")]
    TarZst,
    /// Gzip, level [`GZIP_LEVEL`], header without mtime or file name: opens on every desktop and
    /// browser.
    #[serde(rename = "tar.gz")]
    TarGz,
}

/// The fixed zstd level (changing it changes the archive bytes). Level 3: the 9 measured 4 % smaller
/// but cost about as much CPU as the whole git ls-files | tar -czf pipeline we are measured against.
pub const ZSTD_LEVEL: i32 = 3;

/// The fixed gzip level (the `gzip` default; changing it changes the archive bytes).
pub const GZIP_LEVEL: u32 = 6;

impl Format {
    /// Both formats, zstd first.
    pub const ALL: [Format; 2] = [Format::TarZst, Format::TarGz];

    /// The extension used on the wire and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::TarZst => "tar.zst",
            Format::TarGz => "tar.gz",
        }
    }

    /// The archive's file name inside the output directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::TarZst => "app.tar.zst",
            Format::TarGz => "app.tar.gz",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--format` value that names no known format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown archive format {0:?} (expected tar.zst or tar.gz)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "tar.zst" => Ok(Format::TarZst),
            "tar.gz" => Ok(Format::TarGz),
            other => Err(UnknownFormat(other.to_string())),
        }
    }
}

/// Caps on what gets packaged. Whatever a limit leaves out is reported as a drop whose reason is the
/// field name (`max_total_bytes`, `max_file_bytes`, `max_entries`). Limits are applied in archive order
/// (raw path bytes), so the same tree always loses the same entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Sum of kept regular-file sizes (before redaction). Default 512 MiB. A file that would cross it
    /// is dropped; smaller files after it may still fit.
    pub max_total_bytes: u64,
    /// Largest single regular file. Default 64 MiB.
    pub max_file_bytes: u64,
    /// Kept entries of any kind (files, directories, symlinks). Default 100,000.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_bytes: 512 * 1024 * 1024,
            max_file_bytes: 64 * 1024 * 1024,
            max_entries: 100_000,
        }
    }
}

/// What to package and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageOptions {
    /// The directory to package. Must exist and be a directory.
    pub workspace: PathBuf,
    /// Where archives and `manifest.json` go; created when missing. When it lies inside the workspace
    /// it is left out of the archive (reported as "output directory").
    pub out_dir: PathBuf,
    /// Which archives to write; duplicates are ignored, an empty list writes only the manifest.
    pub formats: Vec<Format>,
    /// Extra rule files (gitignore syntax) applied like the built-in rules: the workspace cannot
    /// re-include what they exclude.
    pub extra_rules: Vec<PathBuf>,
    /// Size and count caps.
    pub limits: Limits,
    /// Seconds since the epoch stamped on every entry.
    pub mtime: u64,
    /// Exact secret values; every occurrence in a kept regular file is replaced by `[REDACTED]`.
    /// Empty strings are ignored.
    pub redact: Vec<String>,
}

impl PackageOptions {
    /// Defaults: both formats, no extra rules, default limits, mtime from `SOURCE_DATE_EPOCH` (when it
    /// is a valid integer) else [`DEFAULT_MTIME`], no redaction.
    pub fn new(workspace: PathBuf, out_dir: PathBuf) -> Self {
        let mtime = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_MTIME);
        PackageOptions {
            workspace,
            out_dir,
            formats: Format::ALL.to_vec(),
            extra_rules: Vec::new(),
            limits: Limits::default(),
            mtime,
            redact: Vec::new(),
        }
    }
}

/// One archive written by [`package`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    pub format: Format,
    /// `app.tar.zst` or `app.tar.gz`.
    pub file_name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the archive file.
    pub sha256: String,
}

/// One entry left out of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// Workspace-relative path, `/`-separated (lossy UTF-8; see `path_hex`).
    pub path: String,
    /// Why: `builtin: <rule>`, `rules <file>: <rule>`, `<dir>/.gitignore: <rule>`,
    /// `.git/info/exclude: <rule>`, a limit name (`max_file_bytes`, `max_total_bytes`,
    /// `max_entries`), `symlink escapes workspace`, `special file`, `output directory`, `unreadable`.
    pub reason: String,
    /// Size in bytes for dropped regular files; `None` for directories (never walked) and others.
    pub size: Option<u64>,
    /// `file`, `dir`, `symlink`, `fifo`, `socket`, `block_device`, `char_device` or `unknown`.
    pub kind: String,
    /// Hex of the raw path bytes, present only when the path is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
}

/// What [`package`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Sum of kept regular-file sizes as read from disk (before redaction).
    pub bytes_in: u64,
    /// Size of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// SHA-256 of the uncompressed tar stream.
    pub tar_sha256: String,
    pub archives: Vec<ArchiveInfo>,
    /// Every drop, sorted by raw path bytes.
    pub drops: Vec<Dropped>,
    pub drops_by_reason: BTreeMap<String, u64>,
    /// Paths of kept files in which at least one secret value was replaced.
    pub redacted_files: Vec<String>,
    pub manifest: PathBuf,
    pub manifest_sha256: String,
    pub duration_ms: u64,
}

/// Why packaging failed. [`PackageError::is_input_error`] separates bad input from I/O trouble.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The workspace is missing, not a directory, or cannot be listed.
    #[error("workspace {path}: {source}")]
    Workspace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A `--rules` file is missing, unreadable or holds a pattern that does not parse.
    #[error("rules file {path}: {message}")]
    Rules { path: PathBuf, message: String },
    /// The output directory is the workspace itself or contains it.
    #[error("output directory {path}: {message}")]
    OutDir { path: PathBuf, message: String },
    /// Reading a kept file or writing an output failed (disk full, file vanished mid-read, ...).
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl PackageError {
    /// True when the caller's input is at fault (workspace, rules file, output directory choice);
    /// false for I/O failures while packaging.
    pub fn is_input_error(&self) -> bool {
        match self {
            PackageError::Workspace { .. }
            | PackageError::Rules { .. }
            | PackageError::OutDir { .. } => true,
            PackageError::Io { .. } => false,
        }
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        PackageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Packages `opts.workspace` into `opts.out_dir`: the archives in `opts.formats` and `manifest.json`.
/// Outputs are written under temporary names and renamed into place, so a failed run leaves no
/// half-written archive under the final name.
pub fn package(opts: &PackageOptions) -> Result<PackageReport, PackageError> {
    let started = Instant::now();
    let scan = walk::scan(opts)?;
    let mut formats = opts.formats.clone();
    formats.sort();
    formats.dedup();
    let written = archive::write(opts, &scan, &formats)?;

    let mut drops_by_reason = BTreeMap::new();
    for d in &scan.drops {
        *drops_by_reason.entry(d.reason.clone()).or_insert(0u64) += 1;
    }
    let manifest = Manifest::build(opts, &scan, &written);
    let (manifest_path, manifest_sha256) = manifest.write(&opts.out_dir)?;

    Ok(PackageReport {
        files: scan.count(EntryKind::File),
        dirs: scan.count(EntryKind::Dir),
        symlinks: scan.count(EntryKind::Symlink),
        bytes_in: scan.bytes_in(),
        tar_bytes: written.tar_bytes,
        tar_sha256: written.tar_sha256.clone(),
        archives: written.archives.clone(),
        drops: scan.drops.clone(),
        drops_by_reason,
        redacted_files: written.redacted.clone(),
        manifest: manifest_path,
        manifest_sha256,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Lossy `/`-separated display form of raw path bytes, plus their hex when they are not UTF-8.
pub(crate) fn display_path(raw: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(raw) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(raw).into_owned(),
            Some(hex::encode(raw)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_round_trips_through_str_and_serde() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
            assert_eq!(serde_json::from_str::<Format>(&json).unwrap(), f);
        }
        assert_eq!(Format::TarZst.file_name(), "app.tar.zst");
        assert_eq!(Format::TarGz.file_name(), "app.tar.gz");
        assert!("zip".parse::<Format>().is_err());
    }

    #[test]
    fn limits_defaults_are_the_documented_ones() {
        let l = Limits::default();
        assert_eq!(l.max_total_bytes, 512 << 20);
        assert_eq!(l.max_file_bytes, 64 << 20);
        assert_eq!(l.max_entries, 100_000);
    }

    #[test]
    fn input_errors_are_classified() {
        let e = PackageError::Rules {
            path: "r".into(),
            message: "m".into(),
        };
        assert!(e.is_input_error());
        let e = PackageError::Workspace {
            path: "w".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(e.is_input_error());
        let e = PackageError::io(Path::new("x"), io::Error::from(io::ErrorKind::StorageFull));
        assert!(!e.is_input_error());
    }
}
