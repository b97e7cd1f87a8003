//! The run's contract through the real binary: every exit code reachable without S3 or memory pressure,
//! the artifacts, result.json, the transcript and the event stream.

use std::time::Duration;

use serde_json::Value;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn success_stores_every_artifact_and_result_json_last() {
    let run = RunDir::new("ok-1");
    let out = run_with_deadline(run.cmd("success"), LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));

    let dir = run.artifacts();
    for name in [
        "app.tar.zst",
        "app.tar.gz",
        "manifest.json",
        "transcript.jsonl.zst",
        "result.json",
        "status.json",
    ] {
        assert!(
            dir.join(name).is_file(),
            "{name} missing in {}",
            dir.display()
        );
    }
    // result.json is the last artifact written: its mtime is not older than any other artifact's.
    let mtime = |n: &str| std::fs::metadata(dir.join(n)).unwrap().modified().unwrap();
    for name in [
        "app.tar.zst",
        "app.tar.gz",
        "manifest.json",
        "transcript.jsonl.zst",
    ] {
        assert!(
            mtime("result.json") >= mtime(name),
            "result.json written before {name}"
        );
    }

    let r = run.result();
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["request_id"], "ok-1");
    assert_eq!(r["outcome"], "success");
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["agent_outcome"], "success");
    let agent = &r["agent"];
    assert_eq!(agent["subtype"], "success");
    assert_eq!(agent["is_error"], false);
    assert!(agent["turns"].as_u64().unwrap() >= 1, "{agent}");
    assert!(agent["cost_usd"].as_f64().unwrap() > 0.0, "{agent}");
    assert!(
        agent["session_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{agent}"
    );
    assert!(agent["cli_version"].as_str().is_some(), "{agent}");
    assert!(
        agent["tool_counts"]["Write"].as_u64().unwrap() >= 1,
        "{agent}"
    );
    assert_eq!(agent["result_line_seen"], true);
    let pkg = &r["package"];
    assert!(pkg["files"].as_u64().unwrap() >= 2, "{pkg}");
    for name in ["app.tar.zst", "app.tar.gz"] {
        let sha = pkg["archives"][name]["sha256"].as_str().unwrap();
        assert_eq!(sha.len(), 64);
        let stored: Vec<&Value> = r["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"] == name)
            .collect();
        assert_eq!(stored.len(), 1, "{name} not listed in artifacts");
        assert_eq!(stored[0]["sha256"], sha);
    }
    for phase in ["preflight", "agent", "package", "upload", "total"] {
        assert!(r["durations_ms"][phase].is_u64(), "durations_ms.{phase}");
    }
    assert!(
        r["memory"]["peak_bytes"].as_u64().unwrap() > 0,
        "{}",
        r["memory"]
    );

    // The transcript is the agent's raw stream, line for line.
    let transcript = run.transcript();
    assert!(
        transcript.lines().next().unwrap().contains("\"init\""),
        "{transcript}"
    );
    assert!(transcript.lines().last().unwrap().contains("\"result\""));

    // Events: gap-free seq, started first, result last.
    let ev = events(&out);
    let k = kinds(&ev);
    assert_eq!(k.first().map(String::as_str), Some("started"), "{k:?}");
    assert_eq!(k.last().map(String::as_str), Some("result"), "{k:?}");
    for want in [
        "preflight",
        "agent_started",
        "turn",
        "tool",
        "agent_finished",
        "packaging",
        "packaged",
        "storing",
        "stored",
    ] {
        assert!(k.iter().any(|x| x == want), "no {want} event in {k:?}");
    }
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "seq gap at {e}");
        assert_eq!(e["request_id"], "ok-1");
    }
}

#[test]
fn result_json_matches_its_schema() {
    let run = RunDir::new("schema-1");
    let out = run_with_deadline(run.cmd("success"), LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let schema: Value = serde_json::from_str(include_str!("../../schemas/result.schema.json"))
        .expect("schema is JSON");
    let r = run.result();
    check_against_schema(&schema, &schema, &r, "$");
}

/// A small JSON Schema checker for the subset our schema uses (type, required, properties,
/// additionalProperties: false, items, enum, $ref to #/$defs): enough to make drift fail.
fn check_against_schema(root: &Value, schema: &Value, v: &Value, at: &str) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return check_against_schema(root, &root["$defs"][name], v, at);
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        assert!(ok, "{at}: {actual} is not one of {types:?}");
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        assert!(e.contains(v), "{at}: {v} not in enum");
    }
    if let Value::Object(map) = v {
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = req.as_str().unwrap();
            assert!(map.contains_key(key), "{at}: missing required {key}");
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check_against_schema(root, s, val, &format!("{at}.{k}")),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => panic!("{at}: property {k} is not in the schema"),
                    Some(s @ Value::Object(_)) => {
                        check_against_schema(root, s, val, &format!("{at}.{k}"))
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check_against_schema(root, s, item, &format!("{at}[{i}]"));
        }
    }
}

#[test]
fn demo_runs_the_whole_pipeline_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = genrun();
    // The default log format, auto: stdout is a pipe here, so it must hold JSON lines only.
    cmd.arg("demo").arg("--out").arg(dir.path().join("demo"));
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    assert!(events(&out).len() > 10, "stdout is not JSON lines");
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("demo"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    let artifacts = runs[0].path();
    let r: Value =
        serde_json::from_slice(&std::fs::read(artifacts.join("result.json")).unwrap()).unwrap();
    assert_eq!(r["outcome"], "success");
    let paths = archive_paths(&artifacts.join("app.tar.zst"));
    assert!(paths.iter().any(|p| p == "package.json"), "{paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("src/")), "{paths:?}");
    for p in &paths {
        assert!(
            !p.split('/').any(|c| c == "node_modules" || c == ".git"),
            "{p} kept"
        );
        assert!(!p.ends_with(".log"), "{p} kept");
        let name = p.rsplit('/').next().unwrap();
        assert!(
            name == ".env.example" || !name.starts_with(".env"),
            "{p} kept"
        );
    }
    let drops = &r["package"]["drops_by_reason"];
    assert!(drops.as_object().unwrap().len() >= 3, "{drops}");
    assert!(
        drops
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("symlink")),
        "the escaping symlink is not reported: {drops}"
    );
    // The human summary (stderr in json mode) names the essentials.
    let summary = String::from_utf8_lossy(&out.stderr);
    for want in [
        "success (exit 0)",
        "turns",
        "tool calls",
        "memory",
        "files kept",
        "dropped",
        "app.tar.zst",
        "app.tar.gz",
    ] {
        assert!(summary.contains(want), "summary lacks {want:?}:\n{summary}");
    }
}

#[test]
fn unknown_flag_is_usage_64() {
    let out = run_with_deadline(
        {
            let mut c = genrun();
            c.args(["run", "--no-such-flag"]);
            c
        },
        LIMIT,
    );
    assert_eq!(code(&out), 64, "{}", explain(&out));
}

#[test]
fn missing_prompt_is_bad_job_65_and_still_writes_result_json() {
    let run = RunDir::new("noprompt-1");
    let mut cmd = genrun();
    cmd.args([
        "run",
        "--request-id",
        "noprompt-1",
        "--log-format",
        "json",
        "--output",
    ])
    .arg(run.output());
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 65, "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prompt"), "{stderr}");
    let r = run.result();
    assert_eq!(r["outcome"], "bad_job");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("prompt"),
        "{r}"
    );
}

#[test]
fn bad_request_id_is_bad_job_65_naming_field_and_value() {
    let out = run_with_deadline(
        {
            let mut c = genrun();
            c.args(["run", "--request-id", "../evil", "--prompt", "x"]);
            c
        },
        LIMIT,
    );
    assert_eq!(code(&out), 65, "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("request_id") && stderr.contains("../evil") && stderr.contains("expected"),
        "{stderr}"
    );
}

#[test]
fn unreadable_job_document_is_bad_job_65() {
    let run = RunDir::new("job-1");
    let mut cmd = genrun();
    cmd.args([
        "run",
        "--request-id",
        "job-1",
        "--job",
        "/nonexistent/job.json",
        "--output",
    ])
    .arg(run.output());
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 65, "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/job.json"));
}

#[test]
fn job_document_and_environment_configure_a_run() {
    let run = RunDir::new("jobdoc-1");
    let job = run.dir.path().join("job.json");
    std::fs::write(
        &job,
        serde_json::to_vec(&serde_json::json!({
            "prompt": "from the job document",
            "max_turns": 40,
            "workspace": run.workspace(),
            "agent_cmd": format!("{} scripted-agent --script success", genrun_bin().display()),
            "allow_root_agent": true,
        }))
        .unwrap(),
    )
    .unwrap();
    let mut cmd = genrun();
    cmd.arg("run")
        .env("GENRUN_REQUEST_ID", "jobdoc-1")
        .env("GENRUN_JOB", &job)
        .env("GENRUN_OUTPUT", run.output())
        .env("GENRUN_LOG_FORMAT", "json");
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    assert_eq!(run.result()["agent"]["max_turns"], 40);
}

#[test]
fn invalid_setting_is_config_78() {
    let run = RunDir::new("cfg-1");
    let mut cmd = run.cmd("success");
    cmd.args(["--timeout", "soon"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 78, "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("timeout") && stderr.contains("\"soon\""),
        "{stderr}"
    );
    assert_eq!(run.result()["outcome"], "config");
}

#[test]
fn missing_agent_program_is_unavailable_69_with_result_json() {
    let run = RunDir::new("noagent-1");
    let cmd = run.cmd_with_agent("/nonexistent/claude");
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 69, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "unavailable");
    assert!(
        r["errors"].to_string().contains("/nonexistent/claude"),
        "{r}"
    );
}

#[test]
fn api_error_result_is_agent_failed_80_and_partial_work_is_stored() {
    let run = RunDir::new("fail-1");
    let out = run_with_deadline(run.cmd("fail"), LIMIT);
    assert_eq!(code(&out), 80, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "agent_failed");
    assert_eq!(r["agent"]["is_error"], true);
    assert!(run.artifacts().join("app.tar.zst").is_file());
    assert_no_process_left(&run.workspace());
}

#[test]
fn turn_limit_is_max_turns_81() {
    let run = RunDir::new("turns-1");
    let mut cmd = run.cmd("max-turns");
    cmd.args(["--max-turns", "2"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 81, "{}", explain(&out));
    assert_eq!(run.result()["agent"]["subtype"], "error_max_turns");
    assert_no_process_left(&run.workspace());
}

#[test]
fn budget_is_84() {
    let run = RunDir::new("budget-1");
    let mut cmd = run.cmd("budget");
    cmd.args(["--budget-usd", "0.05"]);
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 84, "{}", explain(&out));
    assert_eq!(run.result()["outcome"], "budget");
    assert_no_process_left(&run.workspace());
}

#[test]
fn crash_by_segv_is_agent_killed_86() {
    let run = RunDir::new("segv-1");
    let out = run_with_deadline(run.cmd("crash"), LIMIT);
    assert_eq!(code(&out), 86, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["agent"]["exit_signal"], "SIGSEGV");
    assert!(
        run.artifacts().join("app.tar.zst").is_file(),
        "partial work not stored"
    );
    assert_no_process_left(&run.workspace());
}

#[test]
fn exit_codes_json_lists_the_contract() {
    let out = run_with_deadline(
        {
            let mut c = genrun();
            c.args(["exit-codes", "--json"]);
            c
        },
        LIMIT,
    );
    assert_eq!(code(&out), 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<i64> = v["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_i64().unwrap())
        .collect();
    assert_eq!(
        codes,
        [0, 64, 65, 69, 70, 71, 74, 75, 77, 78, 80, 81, 82, 83, 84, 85, 86]
    );
}

#[test]
fn garbage_and_unknown_lines_never_fail_the_run() {
    let run = RunDir::new("garbage-1");
    let out = run_with_deadline(run.cmd("garbage"), LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let r = run.result();
    assert!(r["agent"]["non_json_lines"].as_u64().unwrap() >= 1, "{r}");
}

#[test]
fn huge_lines_are_read_bounded_and_keep_the_tool_target() {
    let run = RunDir::new("huge-1");
    let out = run_with_deadline(run.cmd("huge-lines"), LIMIT);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let ev = events(&out);
    let tools: Vec<&Value> = ev
        .iter()
        .filter(|e| e["kind"] == "tool" && e["name"] == "Write")
        .collect();
    assert!(!tools.is_empty(), "no Write tool event");
    assert!(
        tools.iter().all(|t| t["target"].as_str().is_some()),
        "{tools:?}"
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        assert!(
            line.len() <= 64 * 1024,
            "event line of {} bytes",
            line.len()
        );
    }
    // The raw stream is kept whole in the transcript.
    assert!(run.transcript().len() > 20 * 1024 * 1024);
}

#[test]
fn stderr_tail_is_the_last_64_kib_in_the_result() {
    let run = RunDir::new("stderr-1");
    // An agent that prints nothing on stdout, 200 KB of diagnostics on stderr, and fails.
    let agent = run.dir.path().join("noisy-agent.sh");
    std::fs::write(
        &agent,
        "#!/bin/sh\nhead -c 200000 /dev/zero | tr '\\0' x >&2\necho END-OF-DIAGNOSTICS >&2\nexit 3\n",
    )
    .unwrap();
    set_mode(&agent, 0o755);
    let out = run_with_deadline(run.cmd_with_agent(agent.to_str().unwrap()), LIMIT);
    assert_eq!(code(&out), 80, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["agent"]["exit_code"], 3);
    assert_eq!(r["agent"]["result_line_seen"], false);
    let tail = r["agent"]["stderr_tail"].as_str().unwrap();
    assert!(
        tail.len() <= 64 * 1024 && tail.len() > 60 * 1024,
        "tail of {} bytes",
        tail.len()
    );
    assert!(
        tail.ends_with("END-OF-DIAGNOSTICS\n"),
        "{:?}",
        &tail[tail.len() - 40..]
    );
}

#[test]
fn genrun_never_exits_with_reserved_codes_on_bad_input() {
    for args in [
        vec!["run"],
        vec!["nonsense"],
        vec!["run", "--max-turns"],
        vec!["package"],
    ] {
        let out = run_with_deadline(
            {
                let mut c = genrun();
                c.args(&args);
                c
            },
            LIMIT,
        );
        let c = code(&out);
        assert!(
            ![1, 2, 101, 126, 127].contains(&c) && c < 128,
            "{args:?} exited {c}"
        );
    }
}

#[test]
fn panic_is_internal_70_and_still_writes_result_json() {
    let run = RunDir::new("panic-1");
    let mut cmd = run.cmd("success");
    cmd.env("GENRUN_DEBUG_PANIC", "1");
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 70, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "internal");
    assert!(
        r["errors"].to_string().contains("deliberate panic"),
        "{r:#}"
    );
    assert_no_process_left(&run.workspace());
}

#[test]
fn unwritable_staging_is_io_error_74_with_result_json() {
    let run = RunDir::new("io-1");
    let mut cmd = run.cmd("success");
    cmd.env("TMPDIR", run.dir.path().join("no-such-dir/deeper"));
    // A file where the staging directory's parent should be: creating it fails.
    std::fs::write(run.dir.path().join("no-such-dir"), "not a directory").unwrap();
    let out = run_with_deadline(cmd, LIMIT);
    assert_eq!(code(&out), 74, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "io_error");
    assert!(r["errors"].to_string().contains("staging"), "{r:#}");
}

#[test]
fn exec_failure_is_os_error_71_with_result_json() {
    // An agent program still open for writing cannot be executed (ETXTBSY): exec fails for a reason
    // that is neither "not found" nor "not executable".
    let run = RunDir::new("os-1");
    let agent = run.dir.path().join("being-written.sh");
    let mut writer = std::fs::File::create(&agent).unwrap();
    std::io::Write::write_all(&mut writer, b"#!/bin/sh\nexit 0\n").unwrap();
    set_mode(&agent, 0o755);
    let out = run_with_deadline(run.cmd_with_agent(agent.to_str().unwrap()), LIMIT);
    drop(writer);
    assert_eq!(code(&out), 71, "{}", explain(&out));
    let r = run.result();
    assert_eq!(r["outcome"], "os_error");
    assert!(r["errors"].to_string().contains("spawn"), "{r:#}");
}
