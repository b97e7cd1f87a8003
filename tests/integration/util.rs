//! The harness: build a `genrun run` command on the scripted agent, wait for conditions with deadlines,
//! read artifacts back, and check that no process of a run survived it.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The genrun binary under test.
pub fn genrun_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_genrun"))
}

/// A bare `genrun` command with a clean GENRUN_* environment.
pub fn genrun() -> Command {
    let mut cmd = Command::new(genrun_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("GENRUN_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

pub fn is_root() -> bool {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// One run's private directories: workspace and output under one temp dir.
pub struct RunDir {
    pub dir: tempfile::TempDir,
    pub request_id: String,
}

impl RunDir {
    pub fn new(request_id: &str) -> RunDir {
        let dir = tempfile::Builder::new()
            .prefix("genrun-it-")
            .tempdir()
            .unwrap();
        // The agent may run as another user: let it reach its workspace below this directory.
        set_mode(dir.path(), 0o755);
        RunDir {
            dir,
            request_id: request_id.into(),
        }
    }

    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join("workspace")
    }

    pub fn output(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// `<output>/<request-id>/`
    pub fn artifacts(&self) -> PathBuf {
        self.output().join(&self.request_id)
    }

    /// `genrun run` on a built-in script (or a script file), JSON events on stdout.
    pub fn cmd(&self, script: &str) -> Command {
        self.cmd_with_agent(&format!(
            "{} scripted-agent --script {script}",
            genrun_bin().display()
        ))
    }

    /// `genrun run` with any agent command. Everything but the request id and workspace goes through the
    /// environment, so a test can still override it with a flag (flags win).
    pub fn cmd_with_agent(&self, agent_cmd: &str) -> Command {
        let mut cmd = genrun();
        cmd.arg("run")
            .arg("--request-id")
            .arg(&self.request_id)
            .arg("--workspace")
            .arg(self.workspace())
            .env("GENRUN_OUTPUT", self.output())
            .env("GENRUN_AGENT_CMD", agent_cmd)
            .env("GENRUN_LOG_FORMAT", "json")
            .env("GENRUN_PROMPT", "build a todo app");
        if is_root() {
            cmd.arg("--allow-root-agent");
        }
        cmd
    }

    pub fn result(&self) -> Value {
        let text = std::fs::read_to_string(self.artifacts().join("result.json"))
            .unwrap_or_else(|e| panic!("result.json in {}: {e}", self.artifacts().display()));
        serde_json::from_str(&text).unwrap()
    }

    /// The paths inside the stored app.tar.zst, sorted.
    pub fn archive_paths(&self) -> Vec<String> {
        archive_paths(&self.artifacts().join("app.tar.zst"))
    }

    /// The decompressed transcript.
    pub fn transcript(&self) -> String {
        let f = std::fs::File::open(self.artifacts().join("transcript.jsonl.zst")).unwrap();
        let mut s = String::new();
        zstd::Decoder::new(f)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn archive_paths(path: &Path) -> Vec<String> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ar = tar::Archive::new(zstd::Decoder::new(f).unwrap());
    let mut out: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// Reads one file out of a tar.zst archive.
pub fn archive_file(path: &Path, name: &str) -> Option<Vec<u8>> {
    let f = std::fs::File::open(path).ok()?;
    let mut ar = tar::Archive::new(zstd::Decoder::new(f).ok()?);
    for e in ar.entries().ok()? {
        let mut e = e.ok()?;
        if e.path().ok()?.to_string_lossy() == name {
            let mut buf = Vec::new();
            e.read_to_end(&mut buf).ok()?;
            return Some(buf);
        }
    }
    None
}

/// Runs to completion with a deadline (a hung genrun fails the test instead of hanging it).
pub fn run_with_deadline(mut cmd: Command, deadline: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_output(child, deadline)
}

pub fn wait_output(mut child: Child, deadline: Duration) -> Output {
    let start = Instant::now();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("genrun did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Polls `cond` until it holds or the deadline passes.
pub fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("genrun was killed by a signal: {:?}", out.status))
}

/// The JSON events genrun printed on stdout.
pub fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect()
}

pub fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

pub fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Processes (other than zombies) whose working directory is inside `dir`: what a run left behind.
pub fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if !cwd.starts_with(&dir) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("");
        if state == "Z" || state == "X" {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        out.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
    }
    out
}

/// Asserts that nothing of the run is alive (checked in /proc), waiting briefly for the kernel to finish.
pub fn assert_no_process_left(dir: &Path) {
    let start = Instant::now();
    loop {
        let left = processes_in(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "processes of the run are still alive: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a signal to a process.
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: plain kill(2).
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// A genrun process under test whose JSON events are collected as they arrive.
pub struct Running {
    pub child: Child,
    lines: std::sync::Arc<(std::sync::Mutex<Vec<String>>, std::sync::Condvar)>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let lines =
            std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        let l2 = lines.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (m, cv) = &*l2;
                m.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = stderr.read_to_end(&mut v);
            v
        });
        Running {
            child,
            lines,
            reader: Some(reader),
            stderr: Some(stderr),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until an event matching `pred` has been printed; returns it.
    pub fn wait_event(
        &self,
        what: &str,
        deadline: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        let (m, cv) = &*self.lines;
        let mut seen = 0;
        let mut guard = m.lock().unwrap();
        loop {
            while seen < guard.len() {
                if let Ok(v) = serde_json::from_str::<Value>(&guard[seen]) {
                    if pred(&v) {
                        return v;
                    }
                }
                seen += 1;
            }
            let left = deadline.checked_sub(start.elapsed()).unwrap_or_else(|| {
                panic!(
                    "timed out after {deadline:?} waiting for {what}; events so far:\n{}",
                    guard.join("\n")
                )
            });
            guard = cv.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Waits for an event of this kind.
    pub fn wait_kind(&self, kind: &str, deadline: Duration) -> Value {
        self.wait_event(kind, deadline, |v| v["kind"] == kind)
    }

    pub fn signal(&self, sig: i32) {
        kill(self.pid(), sig);
    }

    /// Waits for genrun to exit (killing it and failing past the deadline).
    pub fn finish(mut self, deadline: Duration) -> Output {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("genrun did not exit within {deadline:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let stderr = self
            .stderr
            .take()
            .map(|s| s.join().unwrap())
            .unwrap_or_default();
        let stdout = self.lines.0.lock().unwrap().join("\n").into_bytes();
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

/// `program args... <inner command>`: runs `inner` under a wrapper (unshare, sh), keeping its environment.
pub fn wrapped(program: &str, args: &[&std::ffi::OsStr], inner: &Command) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(Stdio::null());
    cmd
}
