//! Differential property test: on a git repository, the packager keeps exactly what
//! `git ls-files --cached --others --exclude-standard` lists, minus the built-in rules.
//!
//! Trees, `.gitignore` files (nested, with negations, `**`, anchored and trailing-slash patterns,
//! dotfiles), `.git/info/exclude` and a few force-added (tracked but ignored) files are generated at
//! random; the real git binary is the oracle. Git runs with HOME, XDG_CONFIG_HOME and the global and
//! system config pointed away, so the host's configuration cannot change its answer.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use genrun_packaging::{builtin_excludes, scan, EntryKind, PackageOptions};
use proptest::prelude::*;

const NAMES: &[&str] = &[
    "a",
    "b",
    "c",
    "d.js",
    "e.txt",
    ".hidden",
    "x.log",
    "build",
    "dist",
    "lib",
    "node_modules",
    ".env",
    ".env.example",
    "foo.bar",
    "sub",
    "ab",
];

const SEGMENTS: &[&str] = &[
    "a", "b", "c", "d.js", "e.txt", ".hidden", "build", "dist", "lib", "sub", "foo.bar", "*",
    "*.js", "*.txt", "?", "[ab]", "**", "b*", ".*", "ab",
];

#[derive(Debug, Clone)]
struct Case {
    files: Vec<Vec<usize>>,
    ignores: Vec<(usize, Vec<String>)>,
    info_exclude: Vec<String>,
    tracked: Vec<usize>,
}

fn pattern() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        0..3usize,
        prop::collection::vec(0..SEGMENTS.len(), 1..=3),
        0..4usize,
        0..12usize,
    )
        .prop_map(|(neg, anchor, segs, trail, comment)| {
            if comment == 0 {
                return "# comment".to_string();
            }
            let mut p = String::new();
            if neg {
                p.push('!');
            }
            p.push_str(["", "/", "**/"][anchor]);
            let segs: Vec<&str> = segs.iter().map(|&i| SEGMENTS[i]).collect();
            p.push_str(&segs.join("/"));
            p.push_str(["", "/", "/**", ""][trail]);
            p
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::collection::vec(0..NAMES.len(), 1..=4), 1..40),
        prop::collection::vec(
            (any::<usize>(), prop::collection::vec(pattern(), 1..6)),
            0..6,
        ),
        prop::collection::vec(pattern(), 0..3),
        prop::collection::vec(any::<usize>(), 0..5),
    )
        .prop_map(|(files, ignores, info_exclude, tracked)| Case {
            files,
            ignores,
            info_exclude,
            tracked,
        })
}

fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("the git binary is required for this test");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Materialises the case; returns the regular files created (relative paths).
fn build(root: &Path, c: &Case) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    dirs.insert(PathBuf::new());
    for f in &c.files {
        let rel: PathBuf = f.iter().map(|&i| NAMES[i]).collect();
        // Skip paths that collide with an existing file or directory.
        let prefix_is_file = rel
            .ancestors()
            .skip(1)
            .any(|a| files.iter().any(|f| f == a));
        if prefix_is_file || dirs.contains(&rel) || files.contains(&rel) {
            continue;
        }
        if let Some(parent) = rel.parent() {
            fs::create_dir_all(root.join(parent)).unwrap();
            for a in parent.ancestors() {
                dirs.insert(a.to_path_buf());
            }
        }
        fs::write(root.join(&rel), rel.as_os_str().as_bytes()).unwrap();
        files.push(rel);
    }
    let dirs: Vec<PathBuf> = dirs.into_iter().collect();
    for (d, pats) in &c.ignores {
        let dir = &dirs[d % dirs.len()];
        let mut text = pats.join("\n");
        text.push('\n');
        fs::write(root.join(dir).join(".gitignore"), text).unwrap();
    }
    files
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap().join("ws");
    fs::create_dir(&root).unwrap();
    let files = build(&root, c);
    git(&root, &["init", "-q"]);
    if !c.info_exclude.is_empty() {
        fs::write(
            root.join(".git/info/exclude"),
            c.info_exclude.join("\n") + "\n",
        )
        .unwrap();
    }
    if !files.is_empty() {
        for t in &c.tracked {
            let f = files[t % files.len()].to_str().unwrap().to_string();
            git(&root, &["add", "-f", "--", &f]);
        }
    }
    let listed = git(
        &root,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    let want: BTreeSet<Vec<u8>> = listed
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .filter(|p| !builtin_excludes(&root, Path::new(std::ffi::OsStr::from_bytes(p)), false))
        .map(|p| p.to_vec())
        .collect();

    let opts = PackageOptions::new(root.clone(), tmp.path().join("out"));
    let s = scan(&opts).unwrap();
    let got: BTreeSet<Vec<u8>> = s
        .entries
        .iter()
        .filter(|e| e.kind != EntryKind::Dir)
        .map(|e| e.rel.clone())
        .collect();
    let show = |s: &BTreeSet<Vec<u8>>| -> Vec<String> {
        s.iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    };
    let missing: BTreeSet<_> = want.difference(&got).cloned().collect();
    let extra: BTreeSet<_> = got.difference(&want).cloned().collect();
    prop_assert!(
        missing.is_empty() && extra.is_empty(),
        "git lists but packager dropped: {:?}\npackager kept but git does not list: {:?}",
        show(&missing),
        show(&extra)
    );
    Ok(())
}

proptest! {
    // 64 cases keep CI fast; PROPTEST_CASES=1000 for a deeper run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn packager_file_list_equals_git_ls_files_minus_builtin_rules(c in case()) {
        check(&c)?;
    }
}

/// Files, then (directory, .gitignore text) pairs.
type TrickyCase = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// Hand-picked cases git is known to be particular about, run every time.
#[test]
fn known_tricky_cases() {
    let tricky: &[TrickyCase] = &[
        // A file under an excluded directory cannot be re-included.
        (&["dist/a", "dist/b"], &[("", "dist/\n!dist/a\n")]),
        // ... but excluding the contents (not the directory) allows it.
        (&["dist/a", "dist/b"], &[("", "dist/*\n!dist/a\n")]),
        // The deepest .gitignore decides.
        (
            &["sub/a.js", "sub/b.js", "c.js"],
            &[("", "*.js\n"), ("sub", "!a.js\n")],
        ),
        // Anchored vs unanchored.
        (&["a", "sub/a"], &[("", "/a\n")]),
        // Trailing slash matches directories only.
        (&["build", "sub/build/x"], &[("", "build/\n")]),
        // `**` in the middle and at the end.
        (
            &["a/b/c/d.js", "a/x/d.js", "a/d.js"],
            &[("", "a/**/d.js\n")],
        ),
        (&["lib/a/b", "lib/c"], &[("", "lib/**\n!lib/c\n")]),
        // Dotfiles are ordinary names to git.
        (
            &[".hidden/a", ".env.example", "e.txt"],
            &[("", ".*\n!.env.example\n")],
        ),
    ];
    for (files, ignores) in tricky {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap().join("ws");
        fs::create_dir(&root).unwrap();
        for f in *files {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        for (d, text) in *ignores {
            fs::write(root.join(d).join(".gitignore"), text).unwrap();
        }
        git(&root, &["init", "-q"]);
        let listed = git(
            &root,
            &[
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
        );
        let want: BTreeSet<Vec<u8>> = listed
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .filter(|p| !builtin_excludes(&root, Path::new(std::ffi::OsStr::from_bytes(p)), false))
            .map(|p| p.to_vec())
            .collect();
        let s = scan(&PackageOptions::new(root.clone(), tmp.path().join("out"))).unwrap();
        let got: BTreeSet<Vec<u8>> = s
            .entries
            .iter()
            .filter(|e| e.kind != EntryKind::Dir)
            .map(|e| e.rel.clone())
            .collect();
        assert_eq!(got, want, "files {files:?} ignores {ignores:?}");
    }
}
