//! The human summary `genrun demo` prints at the end: one screen, read from result.json's model.

use std::fmt::Write;

use crate::result::RunResult;

/// Renders the summary of a finished run.
pub fn render(r: &RunResult, result_location: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ngenrun {}: {} (exit {})",
        r.request_id,
        r.outcome.name(),
        r.exit_code
    );
    if let Some(a) = &r.agent {
        let calls: u64 = a.tool_counts.values().sum();
        let mut tools: Vec<_> = a.tool_counts.iter().collect();
        tools.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
        let tools = tools
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let cost = a
            .cost_usd
            .map(|c| format!(" · ${c:.4}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  agent      {} turns of {} · {calls} tool calls ({tools}){cost} · {}",
            a.turns,
            a.max_turns,
            a.exit.as_deref().unwrap_or("did not exit")
        );
        if let Some(stop) = &a.stop {
            let _ = writeln!(
                out,
                "  stopped    {} ({})",
                stop.reason,
                stop.signals_sent.join(" → ")
            );
        }
        if a.swept > 0 {
            let _ = writeln!(out, "  swept      {} leftover processes", a.swept);
        }
    }
    if let Some(m) = &r.memory {
        let peak = m["peak_bytes"].as_u64().unwrap_or(0);
        let limit = m["limit_bytes"].as_u64().unwrap_or(0);
        let source = m["limit_source"].as_str().unwrap_or("?");
        let curve: Vec<u64> = m["curve"]
            .as_array()
            .map(|c| c.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default();
        let rec = m["recommendation"]
            .as_object()
            .map(|o| {
                format!(
                    " · size {} MiB at {} vCPU",
                    o.get("memory_mib").and_then(|v| v.as_u64()).unwrap_or(0),
                    o.get("vcpu").and_then(|v| v.as_f64()).unwrap_or(0.0)
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  memory     peak {} of {} ({source}) {}{rec}",
            bytes(peak),
            bytes(limit),
            genrun_sandbox::memory::sparkline(&curve)
        );
    }
    if let Some(p) = &r.package {
        let mut reasons: Vec<_> = p.drops_by_reason.iter().collect();
        reasons.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
        let reasons = reasons
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "  workspace  {} files kept ({}) · {} dropped ({reasons})",
            p.files,
            bytes(p.bytes_in),
            p.dropped
        );
        let archives = p
            .archives
            .iter()
            .map(|(n, a)| format!("{n} {}", bytes(a.bytes)))
            .collect::<Vec<_>>()
            .join(" · ");
        let _ = writeln!(out, "  archives   {archives}");
        if !p.redacted_files.is_empty() {
            let _ = writeln!(
                out,
                "  redacted   secrets removed from {}",
                p.redacted_files.join(", ")
            );
        }
    }
    let d = &r.durations_ms;
    let _ = writeln!(
        out,
        "  duration   {} (preflight {}, agent {}, package {}, upload {})",
        secs(d.total),
        secs(d.preflight),
        secs(d.agent),
        secs(d.package),
        secs(d.upload)
    );
    for e in &r.errors {
        let _ = writeln!(out, "  error      [{}] {}", e.phase, e.message);
    }
    let _ = writeln!(out, "  result     {result_location}");
    out
}

fn secs(ms: u64) -> String {
    format!("{:.2}s", ms as f64 / 1000.0)
}

/// Bytes in binary units, one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
