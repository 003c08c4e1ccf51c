//! `bench-suite [--smoke | --full] [--out DIR] [--brokers HOST:PORT]`: every end-to-end
//! benchmark in one run, written as `results.json`, `results.md`, `throughput.svg` and
//! `latency.svg` in DIR (default `bench-results/<mode>`), with the machine, date, commit and
//! command.
//!
//! 1. Replay throughput at growing tenant sizes: `idgw generate` (not timed), then
//!    `idgw replay` with its per-stage times; peak RSS sampled from /proc while it runs.
//! 2. Detection quality: `idgw eval` on the largest tenant.
//! 3. MCP tool latency on the largest store, from a client in another process: over stdio
//!    with `bench-mcp` (rmcp's client), and over streamable HTTP with the official Python
//!    SDK (`benches/mcp_http_latency.py`; skipped, visibly, when `mcp` is not importable).
//! 4. Peers on the largest tenant, in alternated rounds of one invocation: `idgw replay`;
//!    a seed-style Python baseline (`benches/peers/seed_baseline.py`: `json` per line,
//!    haversine, scikit-learn IsolationForest, JSONL); DuckDB reading the NDJSON into
//!    Parquet and running impossible travel and brute force as SQL window queries
//!    (`benches/peers/duckdb_baseline.py`). The Python is `IDGW_PEERS_PYTHON` (default
//!    `python3`); without scikit-learn or duckdb the peers are skipped, visibly.
//! 5. Kafka event-to-alert latency: `bench-kafka --rate` at fixed input rates over the
//!    smallest tenant's events, on librdkafka's mock cluster or on `--brokers`. The mock
//!    keeps only ~5 MB per partition, so `--full` needs `--brokers` (tansu will do).
//!
//! `--smoke` is small enough for CI (a debug build finishes in about a minute); `--full` is
//! the recorded run (release build: `cargo build --release -p idgw -p idgw-benches --bins`).
//! The programs are found beside this one (target/<profile>/), or named by `IDGW`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use idgw_benches::suite;
use serde_json::{Value, json};

struct Plan {
    mode: &'static str,
    tenants: Vec<(u32, u32)>,
    mcp_calls: u32,
    kafka: Vec<(u32, u32)>,
    /// Alternated rounds of the peer comparison.
    peer_rounds: u32,
}

fn plan(full: bool) -> Plan {
    if full {
        Plan {
            mode: "full",
            tenants: vec![(1_000, 7), (10_000, 7), (50_000, 7), (100_000, 7)],
            mcp_calls: 200,
            kafka: vec![(1_000, 20), (5_000, 20), (10_000, 20)],
            peer_rounds: 3,
        }
    } else {
        Plan {
            mode: "smoke",
            tenants: vec![(100, 2), (400, 2)],
            mcp_calls: 20,
            kafka: vec![(200, 4)],
            peer_rounds: 1,
        }
    }
}

const USAGE: &str = "\
usage: bench-suite [--smoke | --full] [--out DIR] [--brokers HOST:PORT]
       bench-suite --render DIR

Runs every end-to-end benchmark and writes results.json, results.md, throughput.svg and
latency.svg to DIR (default bench-results/<mode>):
  replay throughput at growing tenant sizes (events/s, time per stage, peak RSS),
  detection quality (idgw eval), MCP tool latency over stdio (bench-mcp), and Kafka
  event-to-alert latency at fixed rates (bench-kafka; librdkafka's mock cluster unless
  --brokers names a real broker).
--smoke (default) is a small run for CI; --full is the run for the record.
Programs are taken from this program's directory; IDGW overrides the idgw binary.
--render DIR rewrites results.md and the plots of a recorded run from its results.json.";

fn main() {
    if let Err(e) = run() {
        eprintln!("bench-suite: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut full = false;
    let mut out: Option<PathBuf> = None;
    let mut brokers: Option<String> = None;
    let mut render: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--smoke" => full = false,
            "--full" => full = true,
            "--out" => out = Some(args.next().ok_or("--out needs a directory")?.into()),
            "--brokers" => brokers = Some(args.next().ok_or("--brokers needs HOST:PORT")?),
            "--render" => render = Some(args.next().ok_or("--render needs a directory")?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unexpected argument {other}\n{USAGE}")),
        }
    }
    if let Some(dir) = render {
        let results = read_json(&dir.join("results.json"))?;
        return write_outputs(&dir, &results);
    }
    let plan = plan(full);
    if full && brokers.is_none() {
        return Err("--full needs --brokers: the mock cluster cannot hold the full run's topic".into());
    }
    let out = out.unwrap_or_else(|| PathBuf::from("bench-results").join(plan.mode));
    let work = out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or("cannot locate this program's directory")?;
    let idgw = std::env::var_os("IDGW").map_or_else(|| here.join("idgw"), PathBuf::from);
    if !idgw.exists() {
        return Err(format!(
            "no idgw binary at {} (build it beside this one, or set IDGW)",
            idgw.display()
        ));
    }

    let mut results = json!({
        "mode": plan.mode,
        "date": chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        "commit": commit(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "machine": machine(),
    });

    let mut replay = Vec::new();
    let mut largest: Option<(u32, PathBuf, PathBuf)> = None;
    // (events file, events in it), smallest tenant first.
    let mut inputs: Vec<(PathBuf, u64)> = Vec::new();
    for &(users, days) in &plan.tenants {
        eprintln!("replay: {users} users, {days} days");
        let events = work.join(format!("events-{users}.ndjson"));
        let labels = work.join(format!("labels-{users}.jsonl"));
        let store = work.join(format!("store-{users}"));
        let _ = std::fs::remove_dir_all(&store);
        run_ok(Command::new(&idgw).args(["generate", "--seed", "42"]).args([
            "--users",
            &users.to_string(),
            "--days",
            &days.to_string(),
            "--out",
            path(&events)?,
            "--labels",
            path(&labels)?,
        ]))?;
        let summary_file = work.join(format!("replay-{users}.json"));
        let peak = run_sampling_rss(
            Command::new(&idgw)
                .args([
                    "replay",
                    "--store",
                    path(&store)?,
                    "--summary-json",
                    path(&summary_file)?,
                ])
                .arg(&events),
        )?;
        let s: Value = read_json(&summary_file)?;
        replay.push(json!({
            "users": users,
            "days": days,
            "events": s["events_in"],
            "events_per_s": s["events_per_s"],
            "elapsed_s": s["elapsed_s"],
            "stages": s["stages"],
            "peak_rss_mib": peak as f64 / 1024.0,
            "alerts": s["alerts"],
            "balanced": s["balanced"],
        }));
        inputs.push((events.clone(), s["events_in"].as_u64().unwrap_or(0)));
        largest = Some((users, labels, store));
    }
    results["replay"] = Value::Array(replay);

    if let Some((users, labels, store)) = &largest {
        eprintln!("quality: idgw eval on {users} users");
        let o =
            run_ok(Command::new(&idgw).args(["eval", "--json", "--labels", path(labels)?, "--store", path(store)?]))?;
        let mut q: Value = serde_json::from_slice(&o).map_err(|e| format!("idgw eval output: {e}"))?;
        q["users"] = json!(users);
        results["quality"] = q;

        eprintln!("mcp: bench-mcp on {users} users");
        let o = run_ok(Command::new(here.join("bench-mcp")).args([
            "--store",
            path(store)?,
            "--idgw",
            path(&idgw)?,
            "--calls",
            &plan.mcp_calls.to_string(),
        ]))?;
        let mut m: Value = serde_json::from_slice(&o).map_err(|e| format!("bench-mcp output: {e}"))?;
        m["store_users"] = json!(users);
        results["mcp"] = m;

        eprintln!("mcp: over streamable HTTP (Python SDK) on {users} users");
        results["mcp_http"] = match mcp_http(&idgw, store, &work, plan.mcp_calls) {
            Ok(mut m) => {
                m["store_users"] = json!(users);
                m
            }
            Err(skip) => {
                eprintln!("SKIPPED: MCP over HTTP: {skip}");
                json!({ "skipped": skip })
            }
        };
    }

    if let Some((events, lines)) = inputs.last() {
        eprintln!(
            "peers: idgw replay, seed-style Python, DuckDB; {} round(s)",
            plan.peer_rounds
        );
        results["peers"] = match peers(&idgw, events, *lines, &work, plan.peer_rounds) {
            Ok(p) => p,
            Err(skip) => {
                eprintln!("SKIPPED: peers: {skip}");
                json!({ "skipped": skip })
            }
        };
    }

    let mut kafka = Vec::new();
    for &(rate, seconds) in &plan.kafka {
        // The smallest tenant that lasts the whole run at this rate (bench-kafka first fills
        // the topic with all of it for the throughput figure, so smaller is quicker).
        let needed = u64::from(rate) * u64::from(seconds);
        let pick = inputs.iter().find(|(_, n)| *n >= needed).or(inputs.last());
        if let Some((events, _)) = pick {
            eprintln!("kafka: {rate} events/s for {seconds} s");
            let mut cmd = Command::new(here.join("bench-kafka"));
            cmd.arg(events)
                .args(["--rate", &rate.to_string(), "--seconds", &seconds.to_string()]);
            if let Some(b) = &brokers {
                cmd.args(["--brokers", b]);
            }
            let o = run_ok(&mut cmd)?;
            let mut k: Value = serde_json::from_slice(&o).map_err(|e| format!("bench-kafka output: {e}"))?;
            k["seconds"] = json!(seconds);
            if k["broker"].is_null() {
                k["broker"] = json!(brokers.clone().unwrap_or_else(|| "mock".into()));
            }
            kafka.push(k);
        }
    }
    results["kafka"] = Value::Array(kafka);

    write_outputs(&out, &results)?;
    println!("{}", out.join("results.md").display());
    Ok(())
}

/// results.json, results.md and the two plots in `out`.
fn write_outputs(out: &Path, results: &Value) -> Result<(), String> {
    let write = |name: &str, text: &str| {
        std::fs::write(out.join(name), text).map_err(|e| format!("{}: {e}", out.join(name).display()))
    };
    write(
        "results.json",
        &serde_json::to_string_pretty(results).map_err(|e| e.to_string())?,
    )?;
    write("results.md", &suite::markdown(results))?;
    write("throughput.svg", &suite::throughput_svg(results))?;
    write("latency.svg", &suite::latency_svg(results))?;
    Ok(())
}

/// `idgw replay`, the seed-style Python baseline and DuckDB on one events file of `lines`
/// events (as the tenant's replay counted them), `rounds`
/// times in rotating order (so a slow minute of the machine hits each alike); each round's
/// events/s over the whole process's wall time, and the medians' ratios. `Err` says why the peers are skipped (no scikit-learn or
/// duckdb for `IDGW_PEERS_PYTHON`).
fn peers(idgw: &Path, events: &Path, lines: u64, work: &Path, rounds: u32) -> Result<Value, String> {
    let python = std::env::var("IDGW_PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import sklearn, duckdb"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        return Err(format!(
            "{python} cannot import sklearn and duckdb (pip install scikit-learn duckdb, or set IDGW_PEERS_PYTHON)"
        ));
    }
    let seed = work.join("seed_baseline.py");
    let duck = work.join("duckdb_baseline.py");
    std::fs::write(&seed, include_str!("../../peers/seed_baseline.py")).map_err(|e| e.to_string())?;
    std::fs::write(&duck, include_str!("../../peers/duckdb_baseline.py")).map_err(|e| e.to_string())?;
    let (mut ours, mut seeds, mut ducks) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = (Value::Null, Value::Null);
    let lines = lines as f64;
    // Each program as a whole process (start, imports and output included), timed here the
    // same way; the order rotates every round so none always runs first on a cold cache.
    let timed = |cmd: &mut Command| -> Result<(Vec<u8>, f64), String> {
        let started = Instant::now();
        let out = run_ok(cmd)?;
        Ok((out, lines / started.elapsed().as_secs_f64()))
    };
    for round in 0..rounds {
        for turn in 0..3 {
            match (round + turn) % 3 {
                0 => {
                    let store = work.join("peers-store");
                    let _ = std::fs::remove_dir_all(&store);
                    let (_, rate) = timed(
                        Command::new(idgw)
                            .args(["replay", "--quiet", "--store", path(&store)?])
                            .arg(events),
                    )?;
                    ours.push(rate);
                }
                1 => {
                    let (o, rate) = timed(
                        Command::new(&python)
                            .arg(&seed)
                            .arg(events)
                            .arg(work.join("seed-alerts.jsonl")),
                    )?;
                    last.0 = serde_json::from_slice(&o).map_err(|e| format!("seed baseline output: {e}"))?;
                    seeds.push(rate);
                }
                _ => {
                    let (o, rate) = timed(Command::new(&python).arg(&duck).arg(events).arg(work.join("duckdb")))?;
                    last.1 = serde_json::from_slice(&o).map_err(|e| format!("duckdb baseline output: {e}"))?;
                    ducks.push(rate);
                }
            }
        }
        eprintln!(
            "peers round {}: idgw {:.0}, seed-style {:.0}, DuckDB {:.0} events/s (whole process)",
            round + 1,
            ours[ours.len() - 1],
            seeds[seeds.len() - 1],
            ducks[ducks.len() - 1]
        );
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (m_ours, m_seed, m_duck) = (median(&ours), median(&seeds), median(&ducks));
    Ok(json!({
        "events_file": events.file_name().map(|n| n.to_string_lossy().into_owned()),
        "rounds": rounds,
        "idgw_events_per_s": ours,
        "seed_events_per_s": seeds,
        "duckdb_events_per_s": ducks,
        "seed": last.0,
        "duckdb": last.1,
        "ratio_vs_seed": if m_seed > 0.0 { m_ours / m_seed } else { 0.0 },
        "ratio_vs_duckdb": if m_duck > 0.0 { m_ours / m_duck } else { 0.0 },
    }))
}

/// The Python SDK's view of the gateway over streamable HTTP: starts `idgw gateway serve
/// --http 127.0.0.1:0`, reads the address it announces, runs the script, stops the gateway.
fn mcp_http(idgw: &Path, store: &Path, work: &Path, calls: u32) -> Result<Value, String> {
    let has_sdk = Command::new("python3")
        .args(["-c", "import mcp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        return Err("python3 cannot import mcp (pip install mcp)".into());
    }
    let script = work.join("mcp_http_latency.py");
    std::fs::write(&script, include_str!("../../mcp_http_latency.py")).map_err(|e| e.to_string())?;
    let mut gateway = Command::new(idgw)
        .args([
            "gateway",
            "serve",
            "--store",
            path(store)?,
            "--http",
            "127.0.0.1:0",
            "--dev-no-auth",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the gateway: {e}"))?;
    let stderr = gateway.stderr.take().ok_or("no gateway stderr")?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.split("serving MCP on ").nth(1) {
                    break rest.split_whitespace().next().unwrap_or_default().to_owned();
                }
            }
            _ => {
                let _ = gateway.kill();
                return Err("the gateway exited before serving".into());
            }
        }
    };
    // Keep its stderr drained so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let result = run_ok(Command::new("python3").arg(&script).arg(&url).arg(calls.to_string()))
        .and_then(|o| serde_json::from_slice(&o).map_err(|e| format!("mcp_http_latency output: {e}")));
    let _ = Command::new("kill").args(["-TERM", &gateway.id().to_string()]).status();
    let _ = gateway.wait();
    result
}

fn path(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("not UTF-8: {}", p.display()))
}

fn read_json(p: &Path) -> Result<Value, String> {
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", p.display()))
}

/// Runs to completion; stdout on success, stderr in the error otherwise.
fn run_ok(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let o = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(o.stdout)
}

/// Runs to completion while reading the child's peak resident set (VmHWM, KiB) from /proc
/// every 50 ms; the last reading before it exits is its peak.
fn run_sampling_rss(cmd: &mut Command) -> Result<u64, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let started = Instant::now();
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        }) {
            peak = peak.max(kib);
        }
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        return Err(format!(
            "{cmd:?} failed ({status}) after {:?}: {err}",
            started.elapsed()
        ));
    }
    Ok(peak)
}

fn commit() -> Value {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or(Value::Null, |o| {
            json!(String::from_utf8_lossy(&o.stdout).trim().to_owned())
        })
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
    });
    let memory_gib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| (kib / 1024.0 / 1024.0).round())
    });
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory_gib": memory_gib,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned()),
    })
}
