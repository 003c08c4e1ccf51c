//! The System Log poller against the Okta simulator: it follows `next` links through 429
//! storms, 503s and dropped connections, stores every event once, and a restart resumes
//! from the cursor in its checkpoint instead of reading the log again.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};

/// The simulator with a small tenant: the process, its base URL and its event count.
pub fn start_sim(extra: &[&str]) -> (Child, String, u64) {
    let mut args = vec!["--users", "40", "--seed", "5", "--history-days", "1"];
    args.extend_from_slice(extra);
    super::sim(&args)
}

/// Sends a request to the simulator (plain HTTP/1.1: the test needs nothing more); the
/// whole answer.
fn request(method: &str, base: &str, path: &str, body: &str) -> String {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

fn run_poller(store: &Path, sim: &str, config: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args([
            "pipeline",
            "run",
            "--until-end",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ])
        .args(["--store", store.to_str().unwrap()])
        .env("IDGW_POLLER_ENABLED", "true")
        .env("OKTA_ORG_URL", sim)
        .env("OKTA_API_TOKEN", "sim-api-token")
        .env("IDGW_POLLER_SINCE_MINUTES", "4320")
        .env("IDGW_LOG", "info,qdrant_edge=error")
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

#[test]
fn the_poller_reads_the_whole_log_through_faults_and_resumes_from_its_cursor() {
    let (mut sim, url, events) = start_sim(&["--logs-per-minute", "600"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("idgw.toml");
    std::fs::write(
        &config,
        "[poller]\nlimit = 100\nempty_wait_ms = 100\n\n\
         [poller.retry]\nmin_delay_ms = 50\nmax_delay_ms = 400\n\n\
         [kafka]\ncommit_interval_ms = 100\n\n[vectors]\nenabled = false\n\n[admin]\nlisten = \"\"\n",
    )
    .unwrap();
    // Okta having a bad minute: a 429 storm, 503s and connections dropped mid-answer.
    let answer = request(
        "POST",
        &url,
        "/sim/faults",
        r#"{"burst_429": 3, "burst_503": 2, "burst_drop": 2}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let store = dir.path().join("store");
    let first = run_poller(&store, &url, &config);
    let c = &first["counters"];
    assert_eq!(c["events_in"], events, "every event of the log: {first}");
    assert_eq!(c["events_ok"], events);
    assert_eq!(first["balanced"], true);
    assert!(
        first["alerts"].as_u64().unwrap() > 0,
        "the tenant's attacks are detected: {first}"
    );
    let stored = super::idgw(&[
        "query",
        "--store",
        store.to_str().unwrap(),
        "--json",
        "SELECT count(*) AS n FROM events",
    ]);
    let row: serde_json::Value = serde_json::from_slice(&stored.stdout).unwrap();
    assert_eq!(row["n"], events);
    assert!(store.join("checkpoints/okta/okta-system-log.json.zst").exists());
    let faults = request("GET", &url, "/sim/faults", "");
    for used in ["\"burst_429\":0", "\"burst_503\":0", "\"burst_drop\":0"] {
        assert!(faults.contains(used), "the poller went through every fault: {faults}");
    }

    // A restart resumes from the stored next link: nothing is read twice.
    let second = run_poller(&store, &url, &config);
    assert_eq!(second["counters"]["events_in"], 0, "{second}");
    let _ = sim.kill();
}
