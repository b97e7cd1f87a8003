//! `genrun package` through the real binary: archives, manifest and summary on the generated-app
//! fixture, determinism and SOURCE_DATE_EPOCH, the options, and the exit codes of the contract.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use genrun_packaging::fixture::{generate, FixtureSpec, FIXTURE_SECRET};
use genrun_packaging::{builtin_excludes, Manifest};

use crate::util::genrun;

fn package_cmd(ws: &Path, out: &Path) -> Command {
    let mut cmd = genrun();
    cmd.arg("package").arg(ws).arg("--out").arg(out);
    cmd.env_remove("SOURCE_DATE_EPOCH");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run genrun")
}

fn manifest(out: &Path) -> Manifest {
    serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fs::read(p).unwrap()))
}

fn gunzip(p: &Path) -> Vec<u8> {
    let o = Command::new("gzip").arg("-dc").arg(p).output().unwrap();
    assert!(o.status.success());
    o.stdout
}

fn fixture(dir: &Path) -> PathBuf {
    let ws = dir.join("ws");
    generate(
        &ws,
        &FixtureSpec {
            node_modules_files: 2_000,
            seed: 1,
        },
    )
    .unwrap();
    ws
}

#[test]
fn package_on_the_fixture_keeps_nothing_the_rules_drop_and_prints_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = fixture(tmp.path());
    let out = tmp.path().join("out");
    let o = run(&mut package_cmd(&ws, &out));
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8(o.stdout).unwrap();

    let m = manifest(&out);
    for a in &m.archives {
        let p = out.join(&a.file);
        assert_eq!(sha256_file(&p), a.sha256);
        assert!(
            stdout.contains(&a.sha256),
            "summary shows the {} digest:\n{stdout}",
            a.file
        );
    }
    assert_eq!(m.archives.len(), 2);
    assert!(stdout.contains(&m.tar.sha256), "{stdout}");
    assert!(
        stdout.contains(&format!("kept     {} files", m.totals.files)),
        "{stdout}"
    );
    assert!(stdout.contains("builtin: node_modules/"), "{stdout}");

    // Nothing kept matches a built-in rule, no node_modules, logs, env files, build output.
    let root = fs::canonicalize(&ws).unwrap();
    for e in &m.entries {
        let is_dir = e.kind == genrun_packaging::EntryKind::Dir;
        assert!(
            !builtin_excludes(&root, Path::new(&e.path), is_dir),
            "kept {}",
            e.path
        );
        assert!(
            !e.path.contains("node_modules") && !e.path.contains("dist/"),
            "kept {}",
            e.path
        );
    }
    // All source files are in (the fixture has ~150), plus .env.example.
    assert!(m.totals.files >= 140, "{:?}", m.totals);
    assert!(m.entries.iter().any(|e| e.path == ".env.example"));
    assert!(m.entries.iter().any(|e| e.path == "client/src/App.jsx"));
    // node_modules is reported once, not walked; no secret in either archive.
    assert_eq!(
        m.drops
            .iter()
            .filter(|d| d.path.starts_with("node_modules"))
            .count(),
        1
    );
    let tar = gunzip(&out.join("app.tar.gz"));
    assert!(!tar
        .windows(FIXTURE_SECRET.len())
        .any(|w| w == FIXTURE_SECRET.as_bytes()));
    let zst = zstd::decode_all(fs::File::open(out.join("app.tar.zst")).unwrap()).unwrap();
    assert_eq!(zst, tar);
    // GNU tar lists exactly the manifest's entries.
    let listed = Command::new("tar")
        .arg("-tzf")
        .arg(out.join("app.tar.gz"))
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    let want: Vec<String> = m.entries.iter().map(|e| e.path.clone()).collect();
    assert_eq!(listed, want);
}

#[test]
fn package_is_byte_identical_across_runs_and_honours_source_date_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    fs::create_dir_all(ws.join("src")).unwrap();
    fs::write(ws.join("src/a.js"), "a").unwrap();
    let (o1, o2, o3) = (
        tmp.path().join("o1"),
        tmp.path().join("o2"),
        tmp.path().join("o3"),
    );
    for o in [&o1, &o2] {
        let r = run(package_cmd(&ws, o).env("SOURCE_DATE_EPOCH", "1700000000"));
        assert_eq!(r.status.code(), Some(0));
    }
    assert_eq!(run(&mut package_cmd(&ws, &o3)).status.code(), Some(0));
    for f in ["app.tar.zst", "app.tar.gz", "manifest.json"] {
        assert_eq!(
            fs::read(o1.join(f)).unwrap(),
            fs::read(o2.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(manifest(&o1).mtime, 1_700_000_000);
    assert_eq!(manifest(&o3).mtime, genrun_packaging::DEFAULT_MTIME);
    assert_ne!(
        fs::read(o1.join("app.tar.gz")).unwrap(),
        fs::read(o3.join("app.tar.gz")).unwrap()
    );
    let listed = Command::new("tar")
        .args(["--full-time", "--numeric-owner", "-tvzf"])
        .arg(o1.join("app.tar.gz"))
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    for line in listed.lines() {
        assert!(
            line.contains(" 0/0 ") && line.contains("2023-11-14 22:13:20"),
            "{line}"
        );
    }
}

#[test]
fn package_format_rules_and_limits_options() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    fs::create_dir_all(ws.join("fixtures")).unwrap();
    fs::write(ws.join("fixtures/data.json"), "{}").unwrap();
    fs::write(ws.join("big.bin"), vec![7u8; 5000]).unwrap();
    fs::write(ws.join("a.js"), "a").unwrap();
    fs::write(ws.join("b.js"), "b").unwrap();
    let rules = tmp.path().join("more.rules");
    fs::write(&rules, "fixtures/\n").unwrap();
    let out = tmp.path().join("out");
    let o = run(package_cmd(&ws, &out)
        .args([
            "--format",
            "tar.gz",
            "--max-file-bytes",
            "4096",
            "--max-entries",
            "1",
        ])
        .arg("--rules")
        .arg(&rules));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.join("app.tar.gz").exists() && !out.join("app.tar.zst").exists());
    let m = manifest(&out);
    let reason = |p: &str| {
        m.drops
            .iter()
            .find(|d| d.path == p)
            .map(|d| d.reason.clone())
    };
    assert_eq!(
        reason("fixtures"),
        Some(format!("rules {}: fixtures/", rules.display()))
    );
    assert_eq!(reason("big.bin").as_deref(), Some("max_file_bytes"));
    assert_eq!(reason("b.js").as_deref(), Some("max_entries"));
    assert_eq!(m.entries.len(), 1);
    assert_eq!(m.entries[0].path, "a.js");
}

#[test]
fn package_exit_codes_follow_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    fs::write(ws.join("a.js"), "a").unwrap();
    let out = tmp.path().join("out");

    // Missing workspace: bad input (65).
    let o = run(&mut package_cmd(&tmp.path().join("missing"), &out));
    assert_eq!(
        o.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("workspace"));

    // A rules file that does not parse, or does not exist: configuration (78).
    let bad = tmp.path().join("bad.rules");
    fs::write(&bad, "{unclosed\n").unwrap();
    let o = run(package_cmd(&ws, &out).arg("--rules").arg(&bad));
    assert_eq!(
        o.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(package_cmd(&ws, &out)
        .arg("--rules")
        .arg(tmp.path().join("nope.rules")));
    assert_eq!(o.status.code(), Some(78));

    // An unknown format: configuration (78).
    let o = run(package_cmd(&ws, &out).args(["--format", "zip"]));
    assert_eq!(o.status.code(), Some(78));

    // The output cannot be written (its parent is a file): I/O error (74).
    fs::write(tmp.path().join("file"), "x").unwrap();
    let o = run(&mut package_cmd(&ws, &tmp.path().join("file/out")));
    assert_eq!(
        o.status.code(),
        Some(74),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Missing required --out: usage (64).
    let o = run(genrun().arg("package").arg(&ws));
    assert_eq!(o.status.code(), Some(64));
}
