//! End-to-end tests of `package()` on real trees: what is kept and dropped (and why), the archive's
//! format as three independent extractors see it, determinism, limits, redaction and errors.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use genrun_packaging::{
    package, Format, Limits, Manifest, PackageError, PackageOptions, PackageReport,
};

const NON_UTF8: &[u8] = b"caf\xe9.txt";

fn long_dir() -> String {
    format!("{}/{}", "l".repeat(70), "m".repeat(70))
}

fn write(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

/// A generated-app-like tree with one of everything the packager must decide about. Returns the
/// socket listener, which must stay alive while packaging.
fn rich_tree(root: &Path) -> UnixListener {
    fs::create_dir_all(root).unwrap();
    write(root, "package.json", "{\"name\":\"app\"}\n");
    write(
        root,
        "src/App.jsx",
        "export default function App() { return null }\n",
    );
    write(root, "src/main.jsx", "import App from './App'\n");
    write(root, "bin/run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(root.join("bin/run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    // The workspace tries to re-include built-in drops; it must not succeed.
    write(
        root,
        ".gitignore",
        "dist/\n*.tmp\n!keep.tmp\n!node_modules/\n!.env\n!server.log\n",
    );
    write(root, "keep.tmp", "k");
    write(root, "drop.tmp", "dd");
    for i in 0..50 {
        write(root, &format!("dist/assets/chunk{i}.js"), "x");
    }
    write(root, "node_modules/react/index.js", "module.exports = {}\n");
    write(
        root,
        "node_modules/vite/bin/vite.js",
        "#!/usr/bin/env node\n",
    );
    fs::create_dir_all(root.join("node_modules/.bin")).unwrap();
    symlink("../vite/bin/vite.js", root.join("node_modules/.bin/vite")).unwrap();
    write(root, "client/.gitignore", "*.generated.js\n");
    write(root, "client/x.generated.js", "gen");
    write(root, "client/y.js", "y");
    write(root, ".env", "SECRET=1\n");
    write(root, "server/.env.local", "SECRET=2\n");
    write(root, ".env.example", "SECRET=\n");
    write(root, "server.log", "log line\n");
    write(root, "keys/id_rsa", "PRIVATE");
    write(root, ".git-credentials", "https://u:p@host\n");
    // Symlinks.
    symlink("src/App.jsx", root.join("link_in")).unwrap();
    symlink("src", root.join("link_dir")).unwrap();
    symlink("../outside/secret.txt", root.join("link_out")).unwrap();
    symlink("/etc/hostname", root.join("link_abs")).unwrap();
    symlink("/proc/self/environ", root.join("link_environ")).unwrap();
    fs::create_dir_all(root.join("sub")).unwrap();
    symlink("..", root.join("sub/up")).unwrap();
    symlink("sub/up/../outside", root.join("via")).unwrap();
    // Special files.
    let st = Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    let sock = UnixListener::bind(root.join("sock")).unwrap();
    // Hard link, long path, non-UTF-8 name, empty directory.
    fs::hard_link(root.join("src/App.jsx"), root.join("hard.jsx")).unwrap();
    write(root, &format!("{}/deep-file.txt", long_dir()), "deep");
    fs::write(root.join(OsStr::from_bytes(NON_UTF8)), "latin1 name").unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    sock
}

fn workspace_with_outside(tmp: &Path) -> PathBuf {
    write(tmp, "outside/secret.txt", "OUTSIDE-SECRET");
    tmp.join("ws")
}

/// Everything in a directory, by raw relative path, without following symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(Vec<u8>),
    Special,
}

fn tree_of(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let m = p.symlink_metadata().unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    Node::Link(fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()),
                );
            } else if m.is_dir() {
                out.insert(rel, Node::Dir(mode));
                go(root, &p, out);
            } else if m.is_file() {
                out.insert(rel, Node::File(mode, fs::read(&p).unwrap()));
            } else {
                out.insert(rel, Node::Special);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

fn read_manifest(r: &PackageReport) -> Manifest {
    serde_json::from_slice(&fs::read(&r.manifest).unwrap()).unwrap()
}

fn drop_reason<'a>(r: &'a PackageReport, path: &str) -> Option<&'a str> {
    r.drops
        .iter()
        .find(|d| d.path == path)
        .map(|d| d.reason.as_str())
}

fn kept_paths(m: &Manifest) -> Vec<String> {
    m.entries.iter().map(|e| e.path.clone()).collect()
}

#[test]
fn rich_tree_keeps_exactly_what_the_rules_allow_and_reports_every_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace_with_outside(tmp.path());
    let _sock = rich_tree(&ws);
    let r = package(&PackageOptions::new(ws.clone(), tmp.path().join("out"))).unwrap();
    let m = read_manifest(&r);
    let long = long_dir();
    let mut want: Vec<String> = vec![
        ".env.example".into(),
        ".gitignore".into(),
        "bin".into(),
        "bin/run.sh".into(),
        "caf\u{fffd}.txt".into(),
        "client".into(),
        "client/.gitignore".into(),
        "client/y.js".into(),
        "empty".into(),
        "hard.jsx".into(),
        "keep.tmp".into(),
        "keys".into(),
        "l".repeat(70),
        long.clone(),
        format!("{long}/deep-file.txt"),
        "link_dir".into(),
        "link_in".into(),
        "package.json".into(),
        "server".into(),
        "src".into(),
        "src/App.jsx".into(),
        "src/main.jsx".into(),
        "sub".into(),
        "sub/up".into(),
    ];
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut got = kept_paths(&m);
    // The non-UTF-8 name sorts by its raw bytes (0xe9 > ASCII), not by its lossy display form.
    got.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(got, want);

    let nonutf8 = m.entries.iter().find(|e| e.path_hex.is_some()).unwrap();
    assert_eq!(
        nonutf8.path_hex.as_deref(),
        Some(hex::encode(NON_UTF8).as_str())
    );

    for (path, reason) in [
        ("node_modules", "builtin: node_modules/"),
        (".env", "builtin: .env"),
        ("server/.env.local", "builtin: .env.*"),
        ("server.log", "builtin: *.log"),
        ("keys/id_rsa", "builtin: id_rsa*"),
        (".git-credentials", "builtin: .git-credentials"),
        ("dist", ".gitignore: dist/"),
        ("drop.tmp", ".gitignore: *.tmp"),
        ("client/x.generated.js", "client/.gitignore: *.generated.js"),
        ("link_out", "symlink escapes workspace"),
        ("link_abs", "symlink escapes workspace"),
        ("link_environ", "symlink escapes workspace"),
        ("via", "symlink escapes workspace"),
        ("fifo", "special file"),
        ("sock", "special file"),
    ] {
        assert_eq!(drop_reason(&r, path), Some(reason), "{path}");
    }
    // Dropped directories are reported once, never walked.
    assert_eq!(
        r.drops
            .iter()
            .filter(|d| d.path.starts_with("node_modules"))
            .count(),
        1
    );
    assert_eq!(
        r.drops
            .iter()
            .filter(|d| d.path.starts_with("dist"))
            .count(),
        1
    );
    let nm = r.drops.iter().find(|d| d.path == "node_modules").unwrap();
    assert_eq!((nm.kind.as_str(), nm.size), ("dir", None));
    // Dropped files carry their size; special files their kind.
    let tmpd = r.drops.iter().find(|d| d.path == "drop.tmp").unwrap();
    assert_eq!((tmpd.kind.as_str(), tmpd.size), ("file", Some(2)));
    assert_eq!(
        r.drops.iter().find(|d| d.path == "fifo").unwrap().kind,
        "fifo"
    );
    assert_eq!(
        r.drops.iter().find(|d| d.path == "sock").unwrap().kind,
        "socket"
    );
    // Nothing was read through a link, nothing outside ended up in the tar.
    let tar = decompress_gz(&r);
    assert!(!contains(&tar, b"OUTSIDE-SECRET"));
    assert!(!contains(&tar, b"SECRET=1") && !contains(&tar, b"PRIVATE"));
    // Report, manifest and archives agree.
    assert_eq!(r.drops.len() as u64, m.totals.dropped);
    assert_eq!(m.drops, r.drops);
    assert_eq!(m.tar.sha256, r.tar_sha256);
    assert_eq!(m.archives.len(), 2);
    for a in &r.archives {
        let bytes = fs::read(&a.path).unwrap();
        assert_eq!(bytes.len() as u64, a.bytes);
        assert_eq!(sha256(&bytes), a.sha256);
    }
    assert_eq!(sha256(&fs::read(&r.manifest).unwrap()), r.manifest_sha256);
    assert_eq!(sha256(&tar), r.tar_sha256);
    // Modes are normalised; the hard link is a plain file with the same content.
    let mode = |p: &str| m.entries.iter().find(|e| e.path == p).unwrap().mode.clone();
    assert_eq!(mode("bin/run.sh"), "0755");
    assert_eq!(mode("src/App.jsx"), "0644");
    assert_eq!(mode("src"), "0755");
    let sha = |p: &str| {
        m.entries
            .iter()
            .find(|e| e.path == p)
            .unwrap()
            .sha256
            .clone()
    };
    assert_eq!(sha("hard.jsx"), sha("src/App.jsx"));
    let link = m.entries.iter().find(|e| e.path == "link_in").unwrap();
    assert_eq!(link.target.as_deref(), Some("src/App.jsx"));
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn archive(r: &PackageReport, f: Format) -> PathBuf {
    r.archives
        .iter()
        .find(|a| a.format == f)
        .unwrap()
        .path
        .clone()
}

fn decompress_gz(r: &PackageReport) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(archive(r, Format::TarGz)).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    let zst = zstd::decode_all(fs::File::open(archive(r, Format::TarZst)).unwrap()).unwrap();
    assert_eq!(zst, out, "both archives hold the same tar");
    out
}

/// The kept tree as it should come out of an extractor: source entries named in the manifest, with
/// normalised modes.
fn expected_tree(ws: &Path, m: &Manifest) -> BTreeMap<Vec<u8>, Node> {
    let src = tree_of(ws);
    m.entries
        .iter()
        .map(|e| {
            let raw = match &e.path_hex {
                Some(h) => hex::decode(h).unwrap(),
                None => e.path.as_bytes().to_vec(),
            };
            let mode = u32::from_str_radix(&e.mode, 8).unwrap();
            let node = match src.get(&raw).unwrap() {
                Node::Dir(_) => Node::Dir(mode),
                Node::File(_, c) => Node::File(mode, c.clone()),
                Node::Link(t) => Node::Link(t.clone()),
                Node::Special => panic!("special file kept"),
            };
            (raw, node)
        })
        .collect()
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

#[test]
fn gnu_tar_bsdtar_and_python_extract_exactly_the_kept_tree() {
    for tool in ["tar", "bsdtar", "python3", "zstd"] {
        assert!(
            have(tool),
            "{tool} is required (apt-get install -y tar libarchive-tools python3 zstd)"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace_with_outside(tmp.path());
    let _sock = rich_tree(&ws);
    let r = package(&PackageOptions::new(ws.clone(), tmp.path().join("out"))).unwrap();
    let want = expected_tree(&ws, &read_manifest(&r));
    assert!(want.len() > 20);
    let zst = archive(&r, Format::TarZst);
    let gz = archive(&r, Format::TarGz);
    let py = "import sys, tarfile\n\
              t = tarfile.open(sys.argv[1])\n\
              kw = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}\n\
              t.extractall(sys.argv[2], **kw)\n";
    let runs: Vec<(&str, Vec<String>)> = vec![
        (
            "gnu tar zst",
            vec![
                "tar".into(),
                "--zstd".into(),
                "-xf".into(),
                zst.display().to_string(),
                "-C".into(),
            ],
        ),
        (
            "gnu tar gz",
            vec![
                "tar".into(),
                "-xzf".into(),
                gz.display().to_string(),
                "-C".into(),
            ],
        ),
        (
            "bsdtar zst",
            vec![
                "bsdtar".into(),
                "-xf".into(),
                zst.display().to_string(),
                "-C".into(),
            ],
        ),
        (
            "bsdtar gz",
            vec![
                "bsdtar".into(),
                "-xf".into(),
                gz.display().to_string(),
                "-C".into(),
            ],
        ),
        (
            "python tarfile gz",
            vec![
                "python3".into(),
                "-c".into(),
                py.into(),
                gz.display().to_string(),
            ],
        ),
    ];
    for (i, (name, mut argv)) in runs.into_iter().enumerate() {
        let dest = tmp.path().join(format!("x{i}"));
        fs::create_dir(&dest).unwrap();
        argv.push(dest.display().to_string());
        let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = tree_of(&dest);
        assert_eq!(got, want, "{name} extracted a different tree");
    }
}

#[test]
fn tar_entries_are_normalised_sorted_and_relative() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace_with_outside(tmp.path());
    let _sock = rich_tree(&ws);
    let mut opts = PackageOptions::new(ws, tmp.path().join("out"));
    opts.mtime = 1_234_567_890;
    let r = package(&opts).unwrap();
    let tar = decompress_gz(&r);
    let mut a = tar::Archive::new(&tar[..]);
    let mut paths: Vec<Vec<u8>> = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 1_234_567_890);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert!(h.username_bytes().is_none_or(|u| u.is_empty()));
        assert!(h.groupname_bytes().is_none_or(|g| g.is_empty()));
        assert!(
            [0o644, 0o755, 0o777].contains(&h.mode().unwrap()),
            "{:o}",
            h.mode().unwrap()
        );
        let p = e.path_bytes().to_vec();
        assert!(!p.starts_with(b"/"), "absolute entry");
        assert!(!p.split(|&b| b == b'/').any(|c| c == b".."), "`..` entry");
        if let Some(t) = e.link_name_bytes() {
            assert!(!t.starts_with(b"/"), "absolute link target");
        }
        let p = p.strip_suffix(b"/").map(|s| s.to_vec()).unwrap_or(p);
        paths.push(p);
    }
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "entries are in raw byte order");
    assert!(paths.iter().any(|p| p.len() > 100), "a long path survived");
    assert!(
        paths.iter().any(|p| p.as_slice() == NON_UTF8),
        "a non-UTF-8 name survived as bytes"
    );
    assert_eq!(
        paths.len(),
        r.files as usize + r.dirs as usize + r.symlinks as usize
    );
}

#[test]
fn same_tree_twice_gives_byte_identical_outputs_whatever_the_disk_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a/ws");
    let b = tmp.path().join("b/ws");
    let _s1 = rich_tree(&a);
    // Same content created in another order, with other permissions and timestamps.
    fs::create_dir_all(b.join("zzz-created-first")).unwrap();
    let _s2 = rich_tree(&b);
    fs::remove_dir(b.join("zzz-created-first")).unwrap();
    fs::set_permissions(b.join("src/App.jsx"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(b.join("src"), fs::Permissions::from_mode(0o700)).unwrap();
    let f = fs::File::options()
        .write(true)
        .open(b.join("package.json"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(12345))
        .unwrap();

    let ra = package(&PackageOptions::new(a.clone(), tmp.path().join("oa"))).unwrap();
    let ra2 = package(&PackageOptions::new(a, tmp.path().join("oa2"))).unwrap();
    let rb = package(&PackageOptions::new(b, tmp.path().join("ob"))).unwrap();
    for name in ["app.tar.zst", "app.tar.gz", "manifest.json"] {
        let x = fs::read(tmp.path().join("oa").join(name)).unwrap();
        assert_eq!(
            x,
            fs::read(tmp.path().join("oa2").join(name)).unwrap(),
            "{name} twice"
        );
        assert_eq!(
            x,
            fs::read(tmp.path().join("ob").join(name)).unwrap(),
            "{name} other tree"
        );
    }
    assert_eq!(ra.tar_sha256, rb.tar_sha256);
    assert_eq!(ra2.manifest_sha256, rb.manifest_sha256);
}

#[test]
fn gzip_header_has_no_mtime_or_name_and_zstd_is_single_frame() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("ws"), "a.txt", "a");
    let r = package(&PackageOptions::new(
        tmp.path().join("ws"),
        tmp.path().join("out"),
    ))
    .unwrap();
    let gz = fs::read(archive(&r, Format::TarGz)).unwrap();
    assert_eq!(&gz[0..3], &[0x1f, 0x8b, 8]);
    assert_eq!(gz[3], 0, "no FNAME/FCOMMENT/FEXTRA flags");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime 0");
    let zst = fs::read(archive(&r, Format::TarZst)).unwrap();
    assert_eq!(&zst[0..4], &[0x28, 0xb5, 0x2f, 0xfd]);
}

#[test]
fn limits_drop_in_archive_order_and_are_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "a.bin", &"a".repeat(600));
    write(&ws, "b.bin", &"b".repeat(300));
    write(&ws, "c.bin", &"c".repeat(300));
    write(&ws, "d.bin", &"d".repeat(100));
    write(&ws, "e.bin", &"e".repeat(10));
    write(&ws, "f.bin", &"f".repeat(10));
    let mut opts = PackageOptions::new(ws.clone(), tmp.path().join("out"));
    opts.limits = Limits {
        max_file_bytes: 500,
        max_total_bytes: 450,
        max_entries: 3,
    };
    let r = package(&opts).unwrap();
    let m = read_manifest(&r);
    // a: too big; b kept (300); c would cross 450; d kept (400); e kept (410, 3rd entry); f: count.
    assert_eq!(kept_paths(&m), vec!["b.bin", "d.bin", "e.bin"]);
    assert_eq!(drop_reason(&r, "a.bin"), Some("max_file_bytes"));
    assert_eq!(drop_reason(&r, "c.bin"), Some("max_total_bytes"));
    assert_eq!(drop_reason(&r, "f.bin"), Some("max_entries"));
    assert_eq!(
        r.drops.iter().find(|d| d.path == "a.bin").unwrap().size,
        Some(600)
    );
    assert_eq!(r.drops_by_reason.get("max_entries"), Some(&1));
    assert_eq!(m.totals.dropped_bytes, 600 + 300 + 10);
}

#[test]
fn secret_values_are_redacted_in_small_and_large_files_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let secret = "sk-live-REDACTME-0123456789";
    write(
        &ws,
        "server/config.js",
        &format!("const key = '{secret}'; // {secret}\n"),
    );
    write(&ws, "clean.js", "nothing here\n");
    // > 8 MiB so it is streamed; a secret straddles a 64 KiB boundary.
    let mut big = vec![b'x'; 9 * 1024 * 1024];
    let at = 64 * 1024 - 5;
    big[at..at + secret.len()].copy_from_slice(secret.as_bytes());
    let end = big.len() - secret.len();
    big[end..].copy_from_slice(secret.as_bytes());
    fs::write(ws.join("big.dat"), &big).unwrap();
    let mut big_clean = vec![b'y'; 9 * 1024 * 1024];
    big_clean[0] = b's';
    fs::write(ws.join("big_clean.dat"), &big_clean).unwrap();

    let mut opts = PackageOptions::new(ws.clone(), tmp.path().join("out"));
    opts.redact = vec![secret.to_string(), String::new()];
    let r = package(&opts).unwrap();
    assert_eq!(r.redacted_files, vec!["big.dat", "server/config.js"]);
    let m = read_manifest(&r);
    assert_eq!(m.redacted_files, r.redacted_files);
    let tar = decompress_gz(&r);
    assert!(
        !contains(&tar, secret.as_bytes()),
        "secret left in the archive"
    );
    let mut a = tar::Archive::new(&tar[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let path = path.trim_end_matches('/').to_string();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        let me = m.entries.iter().find(|x| x.path == path).unwrap();
        if path == "server" {
            continue;
        }
        assert_eq!(
            me.size,
            body.len() as u64,
            "{path}: manifest size is the archived size"
        );
        assert_eq!(me.sha256.as_deref(), Some(sha256(&body).as_str()), "{path}");
        match path.as_str() {
            "server/config.js" => {
                assert_eq!(body, b"const key = '[REDACTED]'; // [REDACTED]\n");
                assert!(me.redacted);
            }
            "big.dat" => {
                let mut want = big.clone();
                want.splice(end.., b"[REDACTED]".iter().copied());
                want.splice(at..at + secret.len(), b"[REDACTED]".iter().copied());
                assert!(body == want, "big.dat redacted across the chunk boundary");
                assert!(me.redacted);
            }
            "big_clean.dat" => assert!(body == big_clean && !me.redacted),
            "clean.js" => assert!(!me.redacted),
            other => panic!("unexpected {other}"),
        }
    }
    // The workspace itself is untouched.
    assert!(fs::read_to_string(ws.join("server/config.js"))
        .unwrap()
        .contains(secret));
}

#[test]
fn git_repository_metadata_is_dropped_and_info_exclude_and_tracked_files_are_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "a.txt", "a");
    write(&ws, "local-only.txt", "l");
    write(&ws, "dist/tracked.js", "t");
    write(&ws, "dist/untracked.js", "u");
    write(&ws, ".gitignore", "dist/\n");
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .args(args)
            .current_dir(&ws)
            .env("HOME", tmp.path())
            .env("XDG_CONFIG_HOME", tmp.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap();
        assert!(st.success());
    };
    git(&["init", "-q"]);
    git(&["add", "-f", "dist/tracked.js"]);
    fs::write(ws.join(".git/info/exclude"), "local-only.txt\n").unwrap();
    let r = package(&PackageOptions::new(ws.clone(), tmp.path().join("out"))).unwrap();
    let m = read_manifest(&r);
    assert_eq!(
        kept_paths(&m),
        vec![".gitignore", "a.txt", "dist", "dist/tracked.js"]
    );
    assert_eq!(drop_reason(&r, ".git"), Some("builtin: .git"));
    assert_eq!(
        drop_reason(&r, "local-only.txt"),
        Some(".git/info/exclude: local-only.txt")
    );
    assert_eq!(
        drop_reason(&r, "dist/untracked.js"),
        Some(".gitignore: dist/")
    );
}

#[test]
fn extra_rules_apply_and_cannot_be_reincluded_by_the_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "fixtures/big.json", "{}");
    write(&ws, "src/a.js", "a");
    write(&ws, ".gitignore", "!fixtures/\n!fixtures/big.json\n");
    let rules = tmp.path().join("extra.rules");
    fs::write(&rules, "# ours\nfixtures/\n").unwrap();
    let mut opts = PackageOptions::new(ws, tmp.path().join("out"));
    opts.extra_rules = vec![rules.clone()];
    let r = package(&opts).unwrap();
    assert_eq!(
        drop_reason(&r, "fixtures"),
        Some(format!("rules {}: fixtures/", rules.display()).as_str())
    );
    assert_eq!(r.files, 2);
}

#[test]
fn an_output_directory_inside_the_workspace_is_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write(&ws, "a.txt", "a");
    let opts = PackageOptions::new(ws.clone(), ws.join("out"));
    let first = package(&opts).unwrap();
    let second = package(&opts).unwrap();
    assert_eq!(first.tar_sha256, second.tar_sha256);
    assert_eq!(drop_reason(&second, "out"), Some("output directory"));
    assert_eq!(second.files, 1);
}

#[test]
fn formats_option_writes_only_the_requested_archives() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("ws"), "a.txt", "a");
    let mut opts = PackageOptions::new(tmp.path().join("ws"), tmp.path().join("out"));
    opts.formats = vec![Format::TarGz, Format::TarGz];
    let r = package(&opts).unwrap();
    assert_eq!(r.archives.len(), 1);
    assert!(tmp.path().join("out/app.tar.gz").exists());
    assert!(!tmp.path().join("out/app.tar.zst").exists());
    let leftovers: Vec<_> = fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
}

#[test]
fn bad_inputs_are_input_errors_and_output_failures_are_io_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let e = package(&PackageOptions::new(
        tmp.path().join("missing"),
        out.clone(),
    ))
    .unwrap_err();
    assert!(
        matches!(e, PackageError::Workspace { .. }) && e.is_input_error(),
        "{e}"
    );

    fs::write(tmp.path().join("file"), "x").unwrap();
    let e = package(&PackageOptions::new(tmp.path().join("file"), out.clone())).unwrap_err();
    assert!(
        matches!(e, PackageError::Workspace { .. }) && e.is_input_error(),
        "{e}"
    );

    let ws = tmp.path().join("ws");
    write(&ws, "a.txt", "a");
    let mut opts = PackageOptions::new(ws.clone(), out.clone());
    let bad = tmp.path().join("bad.rules");
    fs::write(&bad, "{unclosed\n").unwrap();
    opts.extra_rules = vec![bad];
    let e = package(&opts).unwrap_err();
    assert!(
        matches!(e, PackageError::Rules { .. }) && e.is_input_error(),
        "{e}"
    );

    let e = package(&PackageOptions::new(ws.clone(), ws.clone())).unwrap_err();
    assert!(
        matches!(e, PackageError::OutDir { .. }) && e.is_input_error(),
        "{e}"
    );

    // An output directory that cannot be created (its parent is a file).
    let e = package(&PackageOptions::new(ws, tmp.path().join("file/out"))).unwrap_err();
    assert!(
        matches!(e, PackageError::Io { .. }) && !e.is_input_error(),
        "{e}"
    );
}

#[test]
fn a_full_disk_is_an_io_error_naming_the_archive_and_leaves_no_partial_output() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    // Enough data that the compressor must write before the end.
    let mut body = Vec::new();
    let mut x: u64 = 1;
    for _ in 0..400_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push(x as u8);
    }
    write(&ws, "a.txt", "a");
    fs::write(ws.join("noise.bin"), &body).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    // The packager's temporary name for the gzip archive, pointed at a device that is always full.
    let tmp_name = out.join(format!(".app.tar.gz.tmp{}", std::process::id()));
    symlink("/dev/full", &tmp_name).unwrap();
    let e = package(&PackageOptions::new(ws, out.clone())).unwrap_err();
    match &e {
        PackageError::Io { path, source } => {
            assert_eq!(path, &tmp_name, "{e}");
            assert_eq!(source.raw_os_error(), Some(28), "ENOSPC: {e}");
        }
        other => panic!("{other}"),
    }
    assert!(!e.is_input_error());
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "partial outputs left: {left:?}");
}
