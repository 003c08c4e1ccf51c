//! The MCP gateway driven from outside the Rust code: the official Python MCP SDK starts the
//! real binary over stdio and connects over streamable HTTP (tests/interop/mcp_client.py),
//! and raw HTTP checks the transport's guards and graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{idgw, stdout};

/// A store with a generated tenant (every attack scenario, with labels) replayed into it.
fn store(dir: &Path) -> PathBuf {
    let events = dir.join("events.ndjson");
    let o = idgw(&[
        "generate",
        "--users",
        "40",
        "--days",
        "3",
        "--seed",
        "11",
        "--out",
        events.to_str().unwrap(),
        "--labels",
        dir.join("labels.jsonl").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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
fn python_mcp() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import mcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("IDGW_REQUIRE_INTEROP").is_none(),
            "IDGW_REQUIRE_INTEROP is set but python3 cannot import mcp (pip install mcp)"
        );
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: python3 with the `mcp` package is absent; the MCP interop tests did not run (pip install mcp)"
        );
    }
    ok
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/mcp_client.py")
}

fn run_client(args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3").arg(script()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "python MCP client {args:?}:\n{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap()
}

/// Starts `idgw gateway serve --http 127.0.0.1:0` and reads the bound address it announces.
fn serve_http(store: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args([
            "gateway",
            "serve",
            "--store",
            store.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("the gateway exited before serving").unwrap();
        if let Some(rest) = line.split("serving MCP on http://").nth(1) {
            break rest.trim_end_matches("/mcp").to_owned();
        }
    };
    // Keep draining stderr so the gateway never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// One raw HTTP POST of an `initialize` request with these extra headers; the status code.
fn post_initialize(addr: &str, headers: &str) -> u16 {
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

    let seen = run_client(&["stdio", env!("CARGO_BIN_EXE_idgw"), store_arg]);
    assert_eq!(seen["tools"].as_array().unwrap().len(), 8, "{seen}");
    assert!(seen["events"].as_u64().unwrap() > 500, "{seen}");

    let (mut child, addr) = serve_http(&store);
    let seen = run_client(&["http", &format!("http://{addr}/mcp")]);
    assert_eq!(seen["mode"], "http");

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
fn gateway_refuses_a_missing_store_and_explains_itself() {
    let o = idgw(&["gateway", "serve", "--store", "/nonexistent/store", "--stdio"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no store at"));
    let help = stdout(&idgw(&["gateway", "serve", "--help"]));
    for word in [
        "--stdio",
        "--http",
        "--allow-origin",
        "analyze_identity_state",
        "AUTHENTICATION IS NOT ENFORCED",
    ] {
        assert!(help.contains(word), "gateway serve --help lacks {word:?}");
    }
}

/// The MCP Inspector CLI (`@modelcontextprotocol/inspector`, Node 22), when .ci/run has
/// installed it: `IDGW_MCP_INSPECTOR` is its `cli.js`, `IDGW_NODE` the Node binary.
fn inspector() -> Option<(String, String)> {
    match (std::env::var("IDGW_NODE"), std::env::var("IDGW_MCP_INSPECTOR")) {
        (Ok(node), Ok(cli)) if Path::new(&node).exists() && Path::new(&cli).exists() => Some((node, cli)),
        _ => {
            assert!(
                std::env::var_os("IDGW_REQUIRE_INTEROP").is_none(),
                "IDGW_REQUIRE_INTEROP is set but IDGW_NODE / IDGW_MCP_INSPECTOR do not name the Inspector"
            );
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: the MCP Inspector CLI is absent (IDGW_NODE, IDGW_MCP_INSPECTOR); .ci/run installs it"
            );
            None
        }
    }
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
    ];
    let tools = inspect(&node, &cli, &stdio, &["--method", "tools/list"]);
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
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

    let (mut child, addr) = serve_http(&store);
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
