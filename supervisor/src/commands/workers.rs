//! `fazt workers status [--json]`: asks the running supervisor (SPEC §2).

use anyhow::Result;
use fazt_ipc::msg::{ChildStatus, ControlRequest, ControlResponse};
use fazt_shared::units::format_bytes;
use fazt_shared::DataDir;
use serde_json::json;

use crate::cli::WorkersCommand;
use crate::control;

/// Runs one `fazt workers` subcommand.
pub fn run(data: &DataDir, cmd: WorkersCommand) -> Result<()> {
    let json = match cmd {
        WorkersCommand::Status { json } => json,
        WorkersCommand::Reload { json } => return reload(data, json),
    };
    let ControlResponse::Workers {
        supervisor_pid,
        children,
        quarantined,
    } = control::request(data, ControlRequest::WorkersStatus)?
    else {
        anyhow::bail!("the supervisor answered something else");
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "data": {
                    "supervisor_pid": supervisor_pid,
                    "children": children,
                    "quarantined": quarantined,
                }
            }))?
        );
        return Ok(());
    }
    println!("supervisor pid {supervisor_pid}");
    let header = [
        "KIND",
        "SLOT",
        "PID",
        "STATE",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "CPU",
        "RSS",
        "JS HEAP",
        "LANES",
        "SERVED",
        "P50",
        "P99",
    ];
    let rows: Vec<[String; 14]> = children.iter().map(row).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(header.to_vec()));
    for r in &rows {
        println!("{}", line(r.iter().map(String::as_str).collect()));
    }
    for c in &children {
        if let Some(note) = &c.note {
            println!("{} {}: {note}", serde_name(&c.kind), c.slot);
        }
    }
    for q in &quarantined {
        println!(
            "app {} is quarantined for {:.0}s more: its requests crashed workers repeatedly",
            q.name,
            (q.left_ms as f64 / 1000.0).ceil()
        );
    }
    Ok(())
}

fn row(c: &ChildStatus) -> [String; 14] {
    let dash = || "-".to_string();
    [
        serde_name(&c.kind),
        c.slot.to_string(),
        c.pid.map_or_else(dash, |p| p.to_string()),
        match c.retry_in_ms {
            // In backoff: when the next start comes.
            Some(ms) => format!(
                "{} (retry in {:.1}s)",
                serde_name(&c.state),
                ms as f64 / 1000.0
            ),
            None => serde_name(&c.state),
        },
        c.uptime_ms.map_or_else(dash, duration),
        c.restarts.to_string(),
        c.last_exit.clone().unwrap_or_else(dash),
        c.cpu_percent.map_or_else(dash, |p| format!("{p:.1}%")),
        c.rss_bytes.map_or_else(dash, format_bytes),
        format_bytes(c.js_heap_bytes),
        format!("{}/{}", c.lanes_busy, c.lanes_total),
        c.served.to_string(),
        micros(c.p50_us),
        micros(c.p99_us),
    ]
}

/// The serde name of a unit enum variant (`ready`, `worker`), as `--json` shows it.
fn serde_name(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

fn micros(us: u64) -> String {
    if us >= 1000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}µs")
    }
}

/// `fazt workers reload`.
fn reload(data: &DataDir, json: bool) -> Result<()> {
    let ControlResponse::Reloaded { replaced, failed } =
        control::request(data, ControlRequest::Reload)?
    else {
        anyhow::bail!("the supervisor answered something else");
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"data": {"replaced": replaced, "failed": failed}})
            )?
        );
    } else {
        println!("replaced {replaced} worker(s)");
        for f in &failed {
            println!("not replaced: {f}");
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("{} worker(s) were not replaced", failed.len());
    }
    Ok(())
}
