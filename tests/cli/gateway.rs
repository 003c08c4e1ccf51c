//! The MCP gateway driven from outside the Rust code: the official Python MCP SDK starts the
//! real binary over stdio and connects over streamable HTTP (tests/interop/mcp_client.py),
//! and raw HTTP checks the transport's guards and graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{idgw, interop, stdout};

/// A store with a generated tenant (every attack scenario, with labels) replayed into it.
pub(super) fn store(dir: &Path) -> PathBuf {
    let events = super::generate(dir, 40, 3, 11);
    let store = dir.join("store");
    let o = idgw(&[
        "replay",
        events.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    store
}

/// Whether python3 with the `mcp` package is here; `IDGW_REQUIRE_INTEROP=1` (set by
/// .ci/run, which installs it) turns its absence into a failure.
pub(super) fn python_mcp() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import mcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    interop(ok, "python3 with the `mcp` package (pip install mcp)")
}

fn script() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/interop/mcp_client.py")
}

/// Starts `idgw sim serve` on a free port; its base URL.
fn start_sim() -> (Child, String) {
    let (users, seed) = (SIM_USERS.to_string(), SIM_SEED.to_string());
    let (child, url, _) = super::sim(&["--users", &users, "--seed", &seed, "--history-days", "1"]);
    (child, url)
}

// The tenant of the store (`store`): actions cite the member's own stored events.
const SIM_USERS: u32 = 40;
const SIM_SEED: u64 = 11;

/// An ordinary member of the simulator's tenant (its users come from the seed).
fn sim_member() -> String {
    let tenant = idgw_testbed::generate::tenant::Tenant::new(SIM_SEED, SIM_USERS);
    tenant
        .users
        .iter()
        .find(|u| u.role == idgw_testbed::generate::tenant::Role::Member)
        .map(|u| u.login.clone())
        .unwrap()
}

pub(super) fn run_client(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python MCP client {args:?}:\n{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap()
}

/// Starts `idgw gateway serve --http 127.0.0.1:0 --dev-no-auth` (with `env`) and reads the
/// bound address it announces.
fn serve_http(store: &Path, env: &[(&str, &str)]) -> (Child, String) {
    serve_http_on(store, "127.0.0.1:0", &["--dev-no-auth"], env)
}

/// Starts `idgw gateway serve --http LISTEN ARGS…` (with `env`) and reads the bound
/// address it announces.
pub(super) fn serve_http_on(store: &Path, listen: &str, args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let (child, addr, _) = serve_http_with_metrics(store, listen, args, env);
    (child, addr)
}

/// As [`serve_http_on`], with `--metrics 127.0.0.1:0`: also the metrics listener's address.
pub(super) fn serve_http_with_metrics(
    store: &Path,
    listen: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args(["gateway", "serve", "--store", store.to_str().unwrap(), "--http", listen])
        .args(["--metrics", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut metrics = String::new();
    let addr = loop {
        let line = lines.next().expect("the gateway exited before serving").unwrap();
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            metrics = rest.trim_end_matches("/metrics").to_owned();
        }
        if let Some(rest) = line.split("serving MCP on http://").nth(1) {
            break rest.trim_end_matches("/mcp").to_owned();
        }
    };
    // Keep draining stderr so the gateway never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr, metrics)
}

/// The body of `GET path` (HTTP/1.1, no keep-alive).
pub(super) fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "GET {path}: {text}");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// One raw HTTP POST of an `initialize` request with these extra headers; the status code.
pub(super) fn post_initialize(addr: &str, headers: &str) -> u16 {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[test]
fn mcp_clients_use_every_tool_over_stdio_and_http() {
    if !python_mcp() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let store_arg = store.to_str().unwrap();

    // The gateway acts on the simulator's org through the Management API.
    let (mut sim, sim_url) = start_sim();
    let okta = [("OKTA_ORG_URL", sim_url.as_str()), ("OKTA_API_TOKEN", "sim-api-token")];
    let member = sim_member();

    let seen = run_client(
        &["stdio", env!("CARGO_BIN_EXE_idgw"), store_arg, "--act", &member],
        &okta,
    );
    // --dev-no-auth holds every scope: 8 read tools, 7 actions, 3 live reads and the audit log.
    assert_eq!(seen["tools"].as_array().unwrap().len(), 18, "{seen}");
    assert!(seen["events"].as_u64().unwrap() > 500, "{seen}");
    assert!(seen["actions"]["elicitations"].as_u64().unwrap() >= 3, "{seen}");
    // Approval by an input-required result, answered on the retried call.
    assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");

    let (mut child, addr, metrics_addr) = serve_http_with_metrics(&store, "127.0.0.1:0", &["--dev-no-auth"], &okta);
    let seen = run_client(
        &["http", &format!("http://{addr}/mcp"), "--act", &member, "--legacy"],
        &[],
    );
    assert_eq!(seen["mode"], "http");
    // Approval by an elicitation request from the server.
    assert_eq!(seen["protocol_version"], "2025-11-25", "{seen}");
    assert!(
        seen["actions"]["suspended"].as_str().unwrap().starts_with("txn-"),
        "{seen}"
    );
    sim.kill().unwrap();
    let _ = sim.wait();
    // Both sessions' calls are in one verifiable audit log.
    let o = idgw(&["audit", "verify", store.join("audit").to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stdout(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(report["records"].as_u64().unwrap() > 40, "{report}");

    // /metrics counts what the client just did: tool calls by tool and outcome, the actions
    // the audit log recorded, the audit writes and the approvals still waiting.
    let metrics = http_get(&metrics_addr, "/metrics");
    // Not on the MCP port, which an ingress publishes.
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    let sample = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(sample("idgw_gateway_tool_calls_total{") >= 5.0, "{metrics}");
    assert!(
        metrics.contains("idgw_gateway_tool_calls_total{tool=\"suspend_user\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(sample("idgw_gateway_tool_call_seconds_count{") >= 5.0, "{metrics}");
    assert!(
        sample("idgw_gateway_actions_total{action=\"suspend_user\"") >= 1.0,
        "{metrics}"
    );
    assert!(sample("idgw_gateway_audit_write_seconds_count") >= 5.0, "{metrics}");
    assert!(metrics.contains("idgw_gateway_approvals_pending "), "{metrics}");
    assert!(metrics.contains("idgw_build_info{version=\""), "{metrics}");
    assert!(metrics.contains("process_start_time_seconds "), "{metrics}");

    // Origin validation: a foreign browser origin is refused, loopback and none pass.
    assert_eq!(post_initialize(&addr, "Origin: http://evil.example\r\n"), 403);
    assert_eq!(post_initialize(&addr, &format!("Origin: http://{addr}\r\n")), 200);
    assert_eq!(post_initialize(&addr, ""), 200);

    // SIGTERM drains and exits 0.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not stop within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn gateway_refuses_a_missing_store_or_missing_auth_and_explains_itself() {
    // Without an issuer the gateway does not start open by accident.
    let o = idgw(&["gateway", "serve", "--store", "/nonexistent/store", "--stdio"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("OKTA_ISSUER") && err.contains("--dev-no-auth"), "{err}");
    let o = idgw(&[
        "gateway",
        "serve",
        "--store",
        "/nonexistent/store",
        "--stdio",
        "--dev-no-auth",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no store at"));
    let o = idgw(&[
        "gateway",
        "serve",
        "--store",
        "/tmp",
        "--http",
        "0.0.0.0:0",
        "--dev-no-auth",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("loopback"));
    // A demo that authenticates nobody never acts on a real org (issue 27 review): with
    // a remote Okta org or Workflows flow configured, --dev-no-auth refuses to start.
    for (name, value) in [
        ("OKTA_ORG_URL", "https://acme.okta.com"),
        (
            "OKTA_WF_SUSPEND_USER_URL",
            "https://acme.workflows.okta.com/api/flo/x/invoke",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_idgw"))
            .args(["gateway", "serve", "--store", "/tmp", "--stdio", "--dev-no-auth"])
            .env(name, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("acts only on an Okta on this host"), "{name}: {err}");
    }
    let help = stdout(&idgw(&["gateway", "serve", "--help"]));
    for word in [
        "--stdio",
        "--http",
        "--allow-origin",
        "analyze_identity_state",
        "suspend_user",
        "--dev-no-auth",
        "AUDIT_LOG_DIR",
    ] {
        assert!(help.contains(word), "gateway serve --help lacks {word:?}");
    }
}

/// The MCP Inspector CLI (`@modelcontextprotocol/inspector`, Node 22), when .ci/run has
/// installed it: `IDGW_MCP_INSPECTOR` is its `cli.js`, `IDGW_NODE` the Node binary.
fn inspector() -> Option<(String, String)> {
    let node = std::env::var("IDGW_NODE").unwrap_or_default();
    let cli = std::env::var("IDGW_MCP_INSPECTOR").unwrap_or_default();
    let present = !node.is_empty() && !cli.is_empty() && Path::new(&node).exists() && Path::new(&cli).exists();
    interop(
        present,
        "the MCP Inspector CLI (IDGW_NODE, IDGW_MCP_INSPECTOR; .ci/run installs it)",
    )
    .then_some((node, cli))
}

fn inspect(node: &str, cli: &str, target: &[&str], method: &[&str]) -> serde_json::Value {
    let out = Command::new(node)
        .arg(cli)
        .arg("--cli")
        .args(target)
        .args(method)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspector {method:?}:\n{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[test]
fn the_mcp_inspector_cli_lists_and_calls_tools_over_stdio_and_http() {
    let Some((node, cli)) = inspector() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let stdio = [
        env!("CARGO_BIN_EXE_idgw"),
        "gateway",
        "serve",
        "--store",
        store.to_str().unwrap(),
        "--stdio",
        "--dev-no-auth",
    ];
    let tools = inspect(&node, &cli, &stdio, &["--method", "tools/list"]);
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 18, "{names:?}");
    assert!(names.contains(&"suspend_user") && !names.contains(&"initiate_device_auth"));
    assert!(names.contains(&"analyze_identity_state") && names.contains(&"query_sql"));
    let called = inspect(
        &node,
        &cli,
        &stdio,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "query_sql",
            "--tool-arg",
            "sql=SELECT count(*) AS n FROM alerts",
        ],
    );
    assert!(
        called["structuredContent"]["rows"][0]["n"].as_u64().unwrap() > 0,
        "{called}"
    );
    let resources = inspect(&node, &cli, &stdio, &["--method", "resources/list"]);
    assert_eq!(resources["resources"].as_array().unwrap().len(), 4, "{resources}");

    let (mut child, addr) = serve_http(&store, &[]);
    let url = format!("http://{addr}/mcp");
    let called = inspect(
        &node,
        &cli,
        &[url.as_str(), "--transport", "http"],
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "list_alerts",
            "--tool-arg",
            "limit=3",
        ],
    );
    assert_eq!(
        called["structuredContent"]["items"].as_array().unwrap().len(),
        3,
        "{called}"
    );
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn audit_verify_reports_tampering_with_exit_code_5() {
    use idgw_gateway::audit::{self, AuditLog};
    use idgw_schemas::AuditPhase;
    let dir = tempfile::tempdir().unwrap();
    {
        let log = AuditLog::open(dir.path()).unwrap();
        for status in ["pending", "success"] {
            let phase = if status == "pending" {
                AuditPhase::Intent
            } else {
                AuditPhase::Outcome
            };
            log.append(audit::record("txn-1", phase, "suspend_user", status), true)
                .unwrap();
        }
        log.append(
            audit::record("txn-2", AuditPhase::Intent, "reset_password", "pending"),
            true,
        )
        .unwrap();
    }
    let d = dir.path().to_str().unwrap();
    let o = idgw(&["audit", "verify", d]);
    assert!(o.status.success(), "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains("3 records, 2 transactions") && text.contains("OK"),
        "{text}"
    );
    assert!(text.contains("open: txn-2"), "{text}");
    let path = dir.path().join(audit::LOG_FILE);
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("suspend_user", "notify_user", 1);
    std::fs::write(&path, edited).unwrap();
    let o = idgw(&["audit", "verify", path.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(5), "{}", stdout(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["problems"][0]["kind"], "chain", "{report}");
    let o = idgw(&["audit", "verify", "/nonexistent/audit"]);
    assert_eq!(o.status.code(), Some(1));
}
