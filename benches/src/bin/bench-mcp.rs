//! `bench-mcp --store DIR [--idgw PATH] [--calls N] [--seed S] [--only TOOL] [--settle-ms MS]`: MCP tool latency, measured
//! from a client in another process over stdio (rmcp's client; the gateway is the real
//! `idgw gateway serve --stdio --dev-no-auth` binary).
//!
//! Times the gateway's start to its first answered call (spawn, initialize, one
//! `list_alerts`), waits `--settle-ms` (default 1,000: the gateway loads the events
//! footers and opens the vector index in the background after it starts, and calls in that
//! first second are slower — `--settle-ms 0` measures them too), then N calls (default
//! 200, after 10 warm-up calls) of each tool with
//! users, alerts and windows drawn from the store: `analyze_identity_state` (24 h),
//! `list_alerts` (newest 50), `list_alerts` for one user, `search_events` for one user over
//! the 30 days before the store's last event, `explain_alert`, `similar_users` (k=10).
//! `--only TOOL` times just that tool's cases (to profile one); with `IDGW_LOG` set, the
//! gateway's logs go to this process's stderr. Prints JSON: per tool
//! p50/p99/max in milliseconds and the number of tool errors.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value, json};

struct Args {
    store: PathBuf,
    idgw: PathBuf,
    calls: usize,
    seed: u64,
    only: Option<String>,
    settle: Duration,
}

fn usage() -> ! {
    eprintln!("usage: bench-mcp --store DIR [--idgw PATH] [--calls N] [--seed S] [--only TOOL] [--settle-ms MS]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut store = None;
    // The idgw binary beside this one (target/<profile>/).
    let mut idgw = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("idgw")))
        .unwrap_or_else(|| PathBuf::from("idgw"));
    let mut calls = 200;
    let mut seed = 7;
    let mut only = None;
    let mut settle = Duration::from_millis(1_000);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--store" => store = Some(PathBuf::from(value())),
            "--idgw" => idgw = PathBuf::from(value()),
            "--calls" => calls = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage()),
            "--only" => only = Some(value()),
            "--settle-ms" => settle = Duration::from_millis(value().parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    Args {
        store: store.unwrap_or_else(|| usage()),
        idgw,
        calls,
        seed,
        only,
        settle,
    }
}

type Client = RunningService<RoleClient, ()>;

async fn call(client: &Client, tool: &str, args: Value) -> Result<Value, String> {
    let Value::Object(map) = args else {
        return Err("arguments must be an object".into());
    };
    let r = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(map))
        .await
        .map_err(|e| format!("{tool}: {e}"))?;
    if r.is_error == Some(true) {
        return Err(format!("{tool}: {:?}", r.content));
    }
    Ok(r.structured_content.unwrap_or(Value::Null))
}

async fn column(client: &Client, sql: &str, name: &str) -> Vec<String> {
    match call(client, "query_sql", json!({ "sql": sql })).await {
        Ok(v) => v["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r[name].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            eprintln!("bench-mcp: {e}");
            Vec::new()
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let started = Instant::now();
    let mut command = tokio::process::Command::new(&args.idgw);
    command.args([
        "gateway",
        "serve",
        "--store",
        &args.store.to_string_lossy(),
        "--stdio",
        "--dev-no-auth",
    ]);
    // The gateway's logs show only when asked for (IDGW_LOG set), on this process's stderr.
    let logs = if std::env::var_os("IDGW_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let transport = match TokioChildProcess::builder(command).stderr(logs).spawn() {
        Ok((t, _)) => t,
        Err(e) => {
            eprintln!("bench-mcp: cannot start {}: {e}", args.idgw.display());
            std::process::exit(1);
        }
    };
    let client = match ().serve(transport).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-mcp: the gateway did not initialize: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = call(&client, "list_alerts", json!({"limit": 1})).await {
        eprintln!("bench-mcp: first call failed: {e}");
        std::process::exit(1);
    }
    let start_to_first_call_ms = started.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(args.settle).await;

    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut users = column(
        &client,
        "SELECT user_login FROM identity_state WHERE user_login IS NOT NULL",
        "user_login",
    )
    .await;
    users.shuffle(&mut rng);
    let alerts = column(&client, "SELECT alert_id FROM alerts", "alert_id").await;
    let alert_users = column(
        &client,
        "SELECT user_login FROM alerts WHERE user_login IS NOT NULL",
        "user_login",
    )
    .await;
    let last = column(&client, "SELECT CAST(max(event_time) AS VARCHAR) AS t FROM events", "t").await;
    let since = last
        .first()
        .and_then(|t| chrono_like_minus_30_days(t))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    if users.is_empty() || alerts.is_empty() {
        eprintln!("bench-mcp: the store has no users or no alerts");
        std::process::exit(1);
    }
    let pick = |rng: &mut StdRng, v: &[String]| v[rng.random_range(0..v.len())].clone();

    type MakeArgs = Box<dyn Fn(&mut StdRng) -> Value>;
    let (u1, u2, u3, u4, a1) = (
        users.clone(),
        alert_users.clone(),
        users.clone(),
        users.clone(),
        alerts.clone(),
    );
    let since2 = since.clone();
    let cases: Vec<(&str, &str, MakeArgs)> = vec![
        (
            "analyze_identity_state",
            "analyze_identity_state",
            Box::new(move |r| json!({"user": pick(r, &u1), "time_range_hours": 24})),
        ),
        ("list_alerts", "list_alerts", Box::new(|_| json!({"limit": 50}))),
        (
            "list_alerts (one user)",
            "list_alerts",
            Box::new(move |r| json!({"user": pick(r, if u2.is_empty() { &u3 } else { &u2 }), "limit": 50})),
        ),
        (
            "search_events (one user, 30 days)",
            "search_events",
            Box::new(move |r| json!({"user": pick(r, &u4), "since": since2, "limit": 100})),
        ),
        (
            "explain_alert",
            "explain_alert",
            Box::new(move |r| json!({"alert_id": pick(r, &a1)})),
        ),
        (
            "similar_users",
            "similar_users",
            Box::new(move |r| json!({"user": pick(r, &users), "k": 10})),
        ),
    ];
    let mut report = Map::new();
    for (label, tool, make) in &cases {
        if args.only.as_deref().is_some_and(|only| only != *tool) {
            continue;
        }
        let mut times = Vec::with_capacity(args.calls);
        let mut errors = 0usize;
        let mut first_error = None;
        for i in 0..args.calls + 10 {
            let a = make(&mut rng);
            let t = Instant::now();
            let r = call(&client, tool, a).await;
            let elapsed = t.elapsed();
            if let Err(e) = r {
                errors += 1;
                first_error.get_or_insert(e);
            } else if i >= 10 {
                times.push(elapsed);
            }
        }
        times.sort();
        report.insert(
            (*label).to_owned(),
            json!({
                "calls": times.len(),
                "p50_ms": percentile(&times, 0.50),
                "p99_ms": percentile(&times, 0.99),
                "max_ms": times.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
                "errors": errors,
                "first_error": first_error,
            }),
        );
    }
    let _ = client.cancel().await;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "store": args.store,
            "transport": "stdio",
            "start_to_first_call_ms": start_to_first_call_ms,
            "settle_ms": args.settle.as_millis(),
            "calls_per_tool": args.calls,
            "tools": report,
        }))
        .unwrap_or_default()
    );
}

/// `t` (an Arrow timestamp as text, `YYYY-MM-DDTHH:MM:SS…` or with a space) minus 30 days,
/// as RFC 3339.
fn chrono_like_minus_30_days(t: &str) -> Option<String> {
    let t = t.replace(' ', "T");
    let t = if t.ends_with('Z') || t.contains('+') {
        t
    } else {
        format!("{t}Z")
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(&t).ok()?;
    Some((parsed - chrono::Duration::days(30)).to_rfc3339())
}
