//! The one-screen summary `genrun package` prints: what was kept, what was dropped and why, sizes and
//! digests. At most [`MAX_REASON_LINES`] drop reasons are listed (largest counts first) so the summary
//! stays on one screen; the manifest has them all.

use std::fmt::Write;

use crate::PackageReport;

/// Drop reasons listed before the rest are folded into one line.
pub const MAX_REASON_LINES: usize = 12;

/// Renders `report` for a terminal (plain text, no colour, ends with a newline).
pub fn render_summary(report: &PackageReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kept     {} files, {} dirs, {} symlinks, {}",
        report.files,
        report.dirs,
        report.symlinks,
        human(report.bytes_in)
    );
    let dropped_bytes: u64 = report.drops.iter().filter_map(|d| d.size).sum();
    let _ = writeln!(
        s,
        "dropped  {} entries ({} in dropped files; dropped directories not walked)",
        report.drops.len(),
        human(dropped_bytes)
    );
    let mut reasons: Vec<(&String, &u64)> = report.drops_by_reason.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    for (reason, n) in reasons.iter().take(MAX_REASON_LINES) {
        let _ = writeln!(s, "  {n:>6}  {reason}");
    }
    if reasons.len() > MAX_REASON_LINES {
        let rest: u64 = reasons[MAX_REASON_LINES..].iter().map(|(_, n)| **n).sum();
        let _ = writeln!(
            s,
            "  {rest:>6}  ... {} more reasons (see manifest.json)",
            reasons.len() - MAX_REASON_LINES
        );
    }
    if !report.redacted_files.is_empty() {
        let _ = writeln!(
            s,
            "redacted {} files: {}",
            report.redacted_files.len(),
            report.redacted_files.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "tar      {:>10}  sha256 {}",
        human(report.tar_bytes),
        report.tar_sha256
    );
    for a in &report.archives {
        let _ = writeln!(
            s,
            "{:<8} {:>10}  sha256 {}  {}",
            a.format.as_str(),
            human(a.bytes),
            a.sha256,
            a.path.display()
        );
    }
    let _ = writeln!(
        s,
        "manifest {:>10}  sha256 {}  {}",
        "",
        report.manifest_sha256,
        report.manifest.display()
    );
    let _ = writeln!(s, "took     {} ms", report.duration_ms);
    s
}

/// Bytes in binary units with one decimal (`12.3 KiB`), plain bytes below 1 KiB.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArchiveInfo, Dropped, Format};
    use std::collections::BTreeMap;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 20), "5.0 MiB");
    }

    #[test]
    fn summary_lists_reasons_sizes_and_digests_and_folds_long_reason_lists() {
        let mut by = BTreeMap::new();
        let mut drops = Vec::new();
        for i in 0..20u64 {
            let reason = format!("rule {i:02}");
            by.insert(reason.clone(), i + 1);
            drops.push(Dropped {
                path: format!("p{i}"),
                reason,
                size: Some(100),
                kind: "file".into(),
                path_hex: None,
            });
        }
        let r = PackageReport {
            files: 3,
            dirs: 2,
            symlinks: 1,
            bytes_in: 2048,
            tar_bytes: 10240,
            tar_sha256: "t".repeat(64),
            archives: vec![ArchiveInfo {
                format: Format::TarZst,
                file_name: "app.tar.zst".into(),
                path: "/o/app.tar.zst".into(),
                bytes: 999,
                sha256: "z".repeat(64),
            }],
            drops,
            drops_by_reason: by,
            redacted_files: vec!["server/config.js".into()],
            manifest: "/o/manifest.json".into(),
            manifest_sha256: "m".repeat(64),
            duration_ms: 7,
        };
        let s = render_summary(&r);
        assert!(
            s.contains("kept     3 files, 2 dirs, 1 symlinks, 2.0 KiB"),
            "{s}"
        );
        assert!(s.contains("dropped  20 entries (2.0 KiB"), "{s}");
        assert!(s.contains("    20  rule 19"), "largest count first: {s}");
        assert!(!s.contains("rule 00\n"), "folded: {s}");
        assert!(s.contains("... 8 more reasons"), "{s}");
        assert!(
            s.contains(&"z".repeat(64))
                && s.contains(&"t".repeat(64))
                && s.contains(&"m".repeat(64))
        );
        assert!(s.contains("redacted 1 files: server/config.js"));
        assert!(s.lines().count() <= 24, "one screen: {s}");
    }
}
