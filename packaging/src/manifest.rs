//! `manifest.json`: what the archives hold and what was left out, for people and for the orchestrator.
//!
//! Wire format (version 1), pretty-printed JSON, deterministic for a given tree and options (no
//! timestamps, durations or host paths):
//!
//! ```text
//! {
//!   "version": 1,
//!   "mtime": 946684800,                      // stamped on every entry
//!   "rules_sha256": "<hex>",                 // of the built-in rules text
//!   "limits": {"max_total_bytes": .., "max_file_bytes": .., "max_entries": ..},
//!   "entries": [                             // every kept entry, in archive order (raw path bytes)
//!     {"path": "src/App.jsx", "kind": "file", "size": 1234, "mode": "0644", "sha256": "<hex>"},
//!     {"path": "src", "kind": "dir", "size": 0, "mode": "0755"},
//!     {"path": "node_bin", "kind": "symlink", "size": 0, "mode": "0777", "target": "x/y"}
//!     // optional: "path_hex"/"target_hex" (raw bytes when not UTF-8), "redacted": true
//!   ],
//!   "totals": {"files": .., "dirs": .., "symlinks": .., "bytes": .., "bytes_in": ..,
//!              "dropped": .., "dropped_bytes": ..},
//!   "tar": {"bytes": .., "sha256": "<hex>"}, // the uncompressed tar stream
//!   "archives": [{"format": "tar.zst", "file": "app.tar.zst", "bytes": .., "sha256": "<hex>"}],
//!   "drops": [{"path": "node_modules", "reason": "builtin: node_modules/", "size": null, "kind": "dir"}],
//!   "drops_by_reason": {"builtin: node_modules/": 1},
//!   "redacted_files": ["server/config.js"]
//! }
//! ```
//!
//! `size` and `sha256` of a file describe the archived bytes (after redaction); `totals.bytes_in` is
//! what was read from disk. A dropped file carries its size; a dropped directory appears once
//! (`size: null`) and was not walked.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::archive::Written;
use crate::walk::{EntryKind, Scan};
use crate::{display_path, Dropped, Format, Limits, PackageError, PackageOptions, MANIFEST_FILE};

/// The manifest document; see the module docs for the wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub mtime: u64,
    pub rules_sha256: String,
    pub limits: Limits,
    pub entries: Vec<ManifestEntry>,
    pub totals: ManifestTotals,
    pub tar: ManifestTar,
    pub archives: Vec<ManifestArchive>,
    pub drops: Vec<Dropped>,
    pub drops_by_reason: BTreeMap<String, u64>,
    pub redacted_files: Vec<String>,
}

/// One kept entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub kind: EntryKind,
    pub size: u64,
    /// Octal, as archived: "0644", "0755" or "0777" (symlinks).
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_hex: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestTotals {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Archived file bytes (after redaction).
    pub bytes: u64,
    /// File bytes read from disk.
    pub bytes_in: u64,
    pub dropped: u64,
    /// Sum of the sizes of dropped files (dropped directories are not walked, so not counted).
    pub dropped_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestTar {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestArchive {
    pub format: Format,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    pub(crate) fn build(opts: &PackageOptions, scan: &Scan, w: &Written) -> Manifest {
        let entries: Vec<ManifestEntry> = scan
            .entries
            .iter()
            .zip(&w.digests)
            .map(|(e, (size, sha, redacted))| {
                let (path, path_hex) = display_path(&e.rel);
                let (target, target_hex) = match &e.target {
                    Some(t) => {
                        let (s, h) = display_path(t);
                        (Some(s), h)
                    }
                    None => (None, None),
                };
                let mode = match e.kind {
                    EntryKind::Dir => "0755",
                    EntryKind::Symlink => "0777",
                    EntryKind::File if e.executable => "0755",
                    EntryKind::File => "0644",
                };
                ManifestEntry {
                    path,
                    path_hex,
                    kind: e.kind,
                    size: *size,
                    mode: mode.to_string(),
                    sha256: sha.clone(),
                    target,
                    target_hex,
                    redacted: *redacted,
                }
            })
            .collect();
        let mut drops_by_reason = BTreeMap::new();
        for d in &scan.drops {
            *drops_by_reason.entry(d.reason.clone()).or_insert(0u64) += 1;
        }
        Manifest {
            version: 1,
            mtime: opts.mtime,
            rules_sha256: hex::encode(Sha256::digest(crate::BUILTIN_RULES.as_bytes())),
            limits: opts.limits.clone(),
            totals: ManifestTotals {
                files: scan.count(EntryKind::File),
                dirs: scan.count(EntryKind::Dir),
                symlinks: scan.count(EntryKind::Symlink),
                bytes: entries.iter().map(|e| e.size).sum(),
                bytes_in: scan.bytes_in(),
                dropped: scan.drops.len() as u64,
                dropped_bytes: scan.drops.iter().filter_map(|d| d.size).sum(),
            },
            entries,
            tar: ManifestTar {
                bytes: w.tar_bytes,
                sha256: w.tar_sha256.clone(),
            },
            archives: w
                .archives
                .iter()
                .map(|a| ManifestArchive {
                    format: a.format,
                    file: a.file_name.clone(),
                    bytes: a.bytes,
                    sha256: a.sha256.clone(),
                })
                .collect(),
            drops: scan.drops.clone(),
            drops_by_reason,
            redacted_files: w.redacted.clone(),
        }
    }

    /// Writes `manifest.json` into `out_dir` (via a temporary name); returns its path and SHA-256.
    pub(crate) fn write(&self, out_dir: &Path) -> Result<(PathBuf, String), PackageError> {
        let mut json = serde_json::to_vec_pretty(self)
            .map_err(|e| PackageError::io(out_dir, std::io::Error::other(e)))?;
        json.push(b'\n');
        let fin = out_dir.join(MANIFEST_FILE);
        let tmp = out_dir.join(format!(".{MANIFEST_FILE}.tmp{}", std::process::id()));
        fs::write(&tmp, &json).map_err(|e| PackageError::io(&tmp, e))?;
        if let Err(e) = fs::rename(&tmp, &fin) {
            let _ = fs::remove_file(&tmp);
            return Err(PackageError::io(&fin, e));
        }
        Ok((fin, hex::encode(Sha256::digest(&json))))
    }
}
