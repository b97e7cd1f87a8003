//! A reproducible generated-app-like workspace, for the packaging benchmark and CLI tests.
//!
//! The packager's promises only mean something on a tree like the ones the agent leaves behind: a
//! Vite/React client and an Express server (~150 source files), nested `.gitignore` files (the
//! create-vite one among them), build output, logs, `.env` files, and a `node_modules` of a chosen
//! size with realistic file sizes and `.bin/` symlinks. Contents come from a fixed-seed generator, so
//! the same arguments give the same tree byte for byte (timestamps aside).

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone)]
pub struct FixtureSpec {
    /// Regular files in `node_modules` (spread over packages of 5-60 files each).
    pub node_modules_files: usize,
    /// Seed for names and sizes.
    pub seed: u64,
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixtureStats {
    /// Files outside node_modules that the packager should keep.
    pub source_files: usize,
    /// Everything else written outside node_modules (build output, logs, env files).
    pub other_files: usize,
    pub node_modules_files: usize,
    pub node_modules_bytes: u64,
    pub bin_links: usize,
}

/// The secret value written into the fixture's `.env` files (never to be found in an archive).
pub const FIXTURE_SECRET: &str = "sk-fixture-0000-DO-NOT-SHIP";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A file size shaped like npm packages': median about 1.5 KB, a long tail to ~200 KB.
    fn js_size(&mut self) -> usize {
        match self.below(100) {
            0..=39 => 200 + self.below(1_300) as usize,
            40..=79 => 1_500 + self.below(4_500) as usize,
            80..=95 => 6_000 + self.below(34_000) as usize,
            _ => 40_000 + self.below(160_000) as usize,
        }
    }
}

fn put(root: &Path, rel: &str, body: &[u8]) -> io::Result<()> {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(p, body)
}

/// Source-like text of about `len` bytes.
fn text(rng: &mut Rng, len: usize, header: &str) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "const",
        "return",
        "function",
        "export",
        "import",
        "props",
        "state",
        "useEffect",
        "await",
        "async",
        "request",
        "response",
        "router",
        "todo",
        "item",
        "value",
        "=>",
        "{",
        "}",
        "(",
        ")",
        ";",
        "\n",
        "\n  ",
        "if",
        "else",
        "map",
        "filter",
        "id",
        "title",
        "done",
    ];
    let mut s = String::with_capacity(len + 64);
    s.push_str(header);
    s.push('\n');
    while s.len() < len {
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        s.push(' ');
    }
    s.truncate(len.max(header.len() + 1));
    s.into_bytes()
}

const VITE_GITIGNORE: &str = "# Logs\nlogs\n*.log\nnpm-debug.log*\nyarn-debug.log*\nyarn-error.log*\n\
pnpm-debug.log*\nlerna-debug.log*\n\nnode_modules\ndist\ndist-ssr\n*.local\n\n# Editor directories and files\n\
.vscode/*\n!.vscode/extensions.json\n.idea\n.DS_Store\n*.suo\n*.ntvs*\n*.njsproj\n*.sln\n*.sw?\n";

/// Writes the fixture into `root` (created if missing; must be empty or absent).
pub fn generate(root: &Path, spec: &FixtureSpec) -> io::Result<FixtureStats> {
    let mut rng = Rng(spec.seed | 1);
    let mut st = FixtureStats::default();
    fs::create_dir_all(root)?;

    // Root: npm workspaces with a hoisted node_modules.
    let src = |rel: &str, body: Vec<u8>, st: &mut FixtureStats| -> io::Result<()> {
        st.source_files += 1;
        put(root, rel, &body)
    };
    src(
        "package.json",
        br#"{"name":"todo-app","private":true,"workspaces":["client","server"],"scripts":{"dev":"npm run dev -w client & npm run dev -w server"}}"#.to_vec(),
        &mut st,
    )?;
    let lock = text(&mut rng, 180_000, "{\"lockfileVersion\": 3,");
    src("package-lock.json", lock, &mut st)?;
    src("README.md", text(&mut rng, 2_400, "# Todo app"), &mut st)?;
    src(
        ".gitignore",
        b"node_modules/\ndist/\n*.log\n.env\ncoverage/\n".to_vec(),
        &mut st,
    )?;
    src(".env.example", b"PORT=3001\nAPI_KEY=\n".to_vec(), &mut st)?;
    src(
        ".vscode/extensions.json",
        b"{\"recommendations\":[]}\n".to_vec(),
        &mut st,
    )?;

    // Client: create-vite layout.
    src(
        "client/.gitignore",
        VITE_GITIGNORE.as_bytes().to_vec(),
        &mut st,
    )?;
    src(
        "client/package.json",
        br#"{"name":"client","type":"module","scripts":{"dev":"vite","build":"vite build"}}"#
            .to_vec(),
        &mut st,
    )?;
    src(
        "client/index.html",
        text(&mut rng, 400, "<!doctype html>"),
        &mut st,
    )?;
    src(
        "client/vite.config.js",
        text(&mut rng, 300, "import { defineConfig } from 'vite'"),
        &mut st,
    )?;
    src(
        "client/eslint.config.js",
        text(&mut rng, 800, "import js from '@eslint/js'"),
        &mut st,
    )?;
    src(
        "client/public/vite.svg",
        text(&mut rng, 1_500, "<svg>"),
        &mut st,
    )?;
    for (dir, ext, n) in [
        ("components", "jsx", 40),
        ("pages", "jsx", 12),
        ("hooks", "js", 10),
        ("api", "js", 6),
        ("styles", "css", 12),
        ("assets", "svg", 4),
        ("utils", "js", 6),
    ] {
        for i in 0..n {
            let len = 300 + rng.below(3_500) as usize;
            let body = text(&mut rng, len, "// generated");
            src(&format!("client/src/{dir}/{dir}{i}.{ext}"), body, &mut st)?;
        }
    }
    src(
        "client/src/main.jsx",
        text(&mut rng, 300, "import React from 'react'"),
        &mut st,
    )?;
    src(
        "client/src/App.jsx",
        text(&mut rng, 2_000, "export default function App() {"),
        &mut st,
    )?;
    // Files the create-vite .gitignore drops.
    let other = |rel: &str, body: Vec<u8>, st: &mut FixtureStats| -> io::Result<()> {
        st.other_files += 1;
        put(root, rel, &body)
    };
    other(
        "client/dist/index.html",
        text(&mut rng, 500, "<!doctype html>"),
        &mut st,
    )?;
    other(
        "client/dist/assets/index-3f9a1c.js",
        text(&mut rng, 210_000, "var e;"),
        &mut st,
    )?;
    other(
        "client/dist/assets/index-77b2e0.css",
        text(&mut rng, 12_000, ":root{"),
        &mut st,
    )?;
    other(
        "client/.env.local",
        format!("VITE_KEY={FIXTURE_SECRET}\n").into_bytes(),
        &mut st,
    )?;
    other(
        "client/npm-debug.log",
        text(&mut rng, 3_000, "0 info it worked"),
        &mut st,
    )?;
    other("client/.vscode/settings.json", b"{}\n".to_vec(), &mut st)?;

    // Server: Express.
    src(
        "server/package.json",
        br#"{"name":"server","type":"module","scripts":{"dev":"node --watch src/index.js"}}"#
            .to_vec(),
        &mut st,
    )?;
    src(
        "server/.gitignore",
        b"node_modules\n.env\nuploads/\n".to_vec(),
        &mut st,
    )?;
    src(
        "server/src/index.js",
        text(&mut rng, 900, "import express from 'express'"),
        &mut st,
    )?;
    for (dir, n) in [
        ("routes", 12),
        ("controllers", 10),
        ("models", 8),
        ("middleware", 6),
        ("services", 6),
    ] {
        for i in 0..n {
            let len = 400 + rng.below(2_500) as usize;
            let body = text(&mut rng, len, "// generated");
            src(&format!("server/src/{dir}/{dir}{i}.js"), body, &mut st)?;
        }
    }
    for i in 0..8 {
        let len = 600 + rng.below(2_000) as usize;
        let body = text(&mut rng, len, "import { test } from 'node:test'");
        src(&format!("server/test/t{i}.test.js"), body, &mut st)?;
    }
    other(
        "server/.env",
        format!("PORT=3001\nAPI_KEY={FIXTURE_SECRET}\n").into_bytes(),
        &mut st,
    )?;
    other(
        ".env",
        format!("API_KEY={FIXTURE_SECRET}\n").into_bytes(),
        &mut st,
    )?;
    other("server/uploads/avatar.png", vec![0x89; 40_000], &mut st)?;
    other(
        "logs/server.log",
        text(&mut rng, 50_000, "GET / 200"),
        &mut st,
    )?;
    other(
        "server/server.log",
        text(&mut rng, 8_000, "listening"),
        &mut st,
    )?;
    other("coverage/lcov.info", text(&mut rng, 20_000, "TN:"), &mut st)?;
    other(".DS_Store", vec![0; 6_148], &mut st)?;

    // node_modules: packages of 5-60 files; every 10th package has a CLI linked from .bin/.
    let nm = root.join("node_modules");
    fs::create_dir_all(nm.join(".bin"))?;
    let mut pkg = 0usize;
    while st.node_modules_files < spec.node_modules_files {
        let name = if pkg % 7 == 0 {
            format!("@scope{}/pkg{pkg}", pkg % 13)
        } else {
            format!("pkg{pkg}")
        };
        let want =
            (5 + rng.below(56) as usize).min(spec.node_modules_files - st.node_modules_files);
        for i in 0..want {
            let rel = match i {
                0 => "package.json".to_string(),
                1 => "README.md".to_string(),
                2 => "LICENSE".to_string(),
                _ if i % 3 == 0 => format!("dist/esm/m{i}.js"),
                _ if i % 3 == 1 => format!("lib/f{i}.js"),
                _ => format!("lib/types/f{i}.d.ts"),
            };
            let len = rng.js_size();
            let body = text(&mut rng, len, "'use strict';");
            st.node_modules_bytes += body.len() as u64;
            put(&nm.join(&name), &rel, &body)?;
            st.node_modules_files += 1;
        }
        if pkg % 10 == 0 && want > 3 {
            let cli = nm.join(&name).join("bin/cli.js");
            put(&nm.join(&name), "bin/cli.js", b"#!/usr/bin/env node\n")?;
            fs::set_permissions(&cli, fs::Permissions::from_mode(0o755))?;
            st.node_modules_files += 1;
            let link = nm.join(".bin").join(format!("cli{pkg}"));
            symlink(format!("../{name}/bin/cli.js"), link)?;
            st.bin_links += 1;
        }
        pkg += 1;
    }
    // The Vite dependency-optimiser cache lives inside client/node_modules.
    put(root, "client/node_modules/.vite/deps/_metadata.json", b"{}")?;
    st.other_files += 1;
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_is_reproducible_and_has_the_promised_shape() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let spec = FixtureSpec {
            node_modules_files: 500,
            seed: 7,
        };
        let sa = generate(a.path(), &spec).unwrap();
        let sb = generate(b.path(), &spec).unwrap();
        assert_eq!(sa, sb);
        assert!((140..=170).contains(&sa.source_files), "{sa:?}");
        assert!(sa.node_modules_files >= 500 && sa.bin_links > 0);
        for rel in [
            "client/src/App.jsx",
            "node_modules/pkg1/package.json",
            "server/.env",
        ] {
            assert_eq!(
                fs::read(a.path().join(rel)).unwrap(),
                fs::read(b.path().join(rel)).unwrap()
            );
        }
    }
}
