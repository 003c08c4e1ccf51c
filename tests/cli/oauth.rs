//! OAuth against a certified OpenID provider (npm `oidc-provider`, run by .ci/run): the
//! device flow of `idgw gateway login` and of the stdio tools, JWT access tokens for the
//! gateway's resource URI validated against the provider's JWKS over HTTP, scopes deciding
//! tools/list and tools/call, and `idgw approve` sending the approver's token to the gateway.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::gateway::{python_mcp, run_client, serve_http_with_metrics, store};
use super::{interop, stdout};

/// The provider's module (`IDGW_OIDC_PROVIDER`, its lib/index.js) and the Node to run it.
fn provider_module() -> Option<(String, String)> {
    let module = std::env::var("IDGW_OIDC_PROVIDER")
        .ok()
        .filter(|m| Path::new(m).exists());
    if !interop(
        module.is_some(),
        "oidc-provider (IDGW_OIDC_PROVIDER; .ci/run installs it)",
    ) {
        return None;
    }
    let module = module?;
    let node = std::env::var("IDGW_NODE").unwrap_or_else(|_| "node".into());
    Some((node, module))
}

fn borrow(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider(node: &str, module: &str, resource: &str) -> Provider {
    let script = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/interop/oidc/provider.mjs");
    let mut child = Command::new(node)
        .arg(script)
        .arg(free_port().to_string())
        .arg(resource)
        .env("OIDC_PROVIDER_MODULE", module)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("the provider exited before listening").unwrap();
    let issuer = line.strip_prefix("listening on ").expect("provider banner").to_owned();
    std::thread::spawn(move || for _ in lines {});
    Provider { child, issuer }
}

/// One raw HTTP POST; the status and the response head.
fn post(addr: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    (status, head)
}

/// Runs `idgw gateway login ARGS` and has the person at the provider approve (or deny) the
/// code it prints.
fn login(provider: &Provider, env: &[(&str, &str)], args: &[&str], approve: bool) -> std::process::Output {
    login_as(provider, env, args, approve, "analyst@example.com")
}

/// [`login`] approved at the provider as `who`.
fn login_as(
    provider: &Provider,
    env: &[(&str, &str)],
    args: &[&str],
    approve: bool,
    who: &str,
) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args(["gateway", "login", "--json", "--timeout", "60"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let code = first
        .split("enter the code ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no user code in {first:?}"))
        .to_owned();
    let addr = provider.issuer.trim_start_matches("http://");
    let path = if approve { "/test/approve" } else { "/test/deny" };
    let (status, _) = post(
        addr,
        path,
        "",
        &serde_json::json!({"user_code": code, "login": who}).to_string(),
    );
    assert_eq!(status, 204, "the provider did not take the decision");
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let mut out = child.wait_with_output().unwrap();
    out.stderr = format!("{first}{rest}").into_bytes();
    out
}

#[test]
fn device_flow_and_jwt_validation_against_a_certified_openid_provider() {
    let Some((node, module)) = provider_module() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let gateway_port = free_port();
    let resource = format!("http://127.0.0.1:{gateway_port}/mcp");
    let provider = start_provider(&node, &module, &resource);
    let token_all = dir.path().join("token-all.json");
    let token_reader = dir.path().join("token-reader.json");
    let env = |token: &Path| -> Vec<(String, String)> {
        vec![
            ("OKTA_ISSUER".into(), provider.issuer.clone()),
            ("OKTA_CLIENT_ID".into(), "idgw-cli".into()),
            ("IDGW_AUTH_AUDIENCE".into(), resource.clone()),
            ("IDGW_AUTH_RESOURCE".into(), resource.clone()),
            ("IDGW_AUTH_TOKEN_FILE".into(), token.to_str().unwrap().into()),
            // One client for agents and approvers here (the provider has one): the API
            // takes approvers' tokens only from listed clients.
            ("IDGW_AUTH_APPROVER_CLIENT_IDS".into(), "idgw-cli".into()),
        ]
    };
    let env_all = env(&token_all);
    let env_reader = env(&token_reader);

    // `idgw gateway login`: every scope by default; the token is validated and kept private.
    let o = login(&provider, &borrow(&env_all), &[], true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let signed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(signed["principal"], "analyst@example.com");
    assert_eq!(signed["scopes"].as_array().unwrap().len(), 11, "{signed}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&token_all).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A denial at the verification page ends the login with the reason.
    let o = login(&provider, &borrow(&env_reader), &["--tools", "list_alerts"], false);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = login(&provider, &borrow(&env_reader), &["--tools", "list_alerts"], true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The HTTP gateway validates the provider's JWTs for its resource URI.
    // Okta itself is the simulator, serving the store's tenant.
    let (mut sim, sim_url, _) = super::sim(&["--users", "40", "--seed", "11", "--history-days", "1"]);
    let mut env_gateway = env_all.clone();
    env_gateway.push(("OKTA_ORG_URL".into(), sim_url.clone()));
    env_gateway.push(("OKTA_API_TOKEN".into(), "sim-api-token".into()));
    let (mut gw, addr, metrics_addr) =
        serve_http_with_metrics(&store, &format!("127.0.0.1:{gateway_port}"), &[], &borrow(&env_gateway));
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    let (status, head) = post(&addr, "/mcp", "", init);
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer resource_metadata="),
        "{head}"
    );
    // The health answer needs no token and no allowed Host (a probe uses the pod's IP).
    let mut probe = TcpStream::connect(&addr).unwrap();
    probe.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        probe,
        "GET /healthz HTTP/1.1\r\nHost: 10.1.2.3:8080\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = probe.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "{answer}"
    );
    // The refused request is counted by reason on /metrics (no token, no tool, no user).
    let metrics = super::gateway::http_get(&metrics_addr, "/metrics");
    assert!(
        metrics.contains("idgw_gateway_auth_failures_total{reason=\"no_token\"} 1"),
        "{metrics}"
    );
    let token = |p: &Path| -> String {
        let t: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        t["access_token"].as_str().unwrap().to_owned()
    };
    let reader = format!("Authorization: Bearer {}\r\n", token(&token_reader));
    assert_eq!(post(&addr, "/mcp", &reader, init).0, 200);
    // `idgw approve` is a client of the gateway, which validates the approver's token: the
    // reader's lacks mcp:actions:approve.
    let gateway_url = format!("http://{addr}");
    let approve = |env: &[(String, String)], tx: &str| {
        Command::new(env!("CARGO_BIN_EXE_idgw"))
            .args(["approve", tx, "--yes"])
            .env("IDGW_GATEWAY_URL", &gateway_url)
            .envs(borrow(env))
            .output()
            .unwrap()
    };
    let o = approve(&env_reader, "txn-none");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("lacks the scope mcp:actions:approve"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A token about to expire is refreshed (and saved) before it is sent; the gateway then
    // knows no such request.
    let mut stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&token_all).unwrap()).unwrap();
    let before = stored["access_token"].clone();
    stored["expires_at"] = serde_json::json!(chrono::Utc::now().timestamp() + 30);
    std::fs::write(&token_all, stored.to_string()).unwrap();
    let o = approve(&env_all, "txn-none");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no open approval txn-none"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let refreshed: serde_json::Value = serde_json::from_slice(&std::fs::read(&token_all).unwrap()).unwrap();
    assert_ne!(refreshed["access_token"], before, "the access token was refreshed");
    assert!(refreshed["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp() + 300);
    let sql = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"query_sql","arguments":{"sql":"SELECT 1"}}}"#;
    let (status, head) = post(&addr, "/mcp", &reader, sql);
    assert_eq!(status, 403);
    assert!(head.contains(r#"scope="mcp:sql:read""#), "{head}");
    // The official Python SDK with the all-scopes token calls every read tool.
    if python_mcp() {
        let seen = run_client(
            &["http", &format!("http://{addr}/mcp"), "--token", &token(&token_all)],
            &[],
        );
        assert_eq!(seen["tools"].as_array().unwrap().len(), 18, "{seen}");
    }
    // The approval page signs the approver in at this provider (its own login and consent
    // pages, authorization code with PKCE), in headless Chromium, while the agent's call
    // waits on its URL elicitation.
    if python_mcp()
        && let Some((playwright, chromium)) = super::attacks::browser()
    {
        let victim = super::attacks::member(0);
        let agent_file = dir.path().join("token-agent.json");
        let env_agent = env(&agent_file);
        let o = login_as(
            &provider,
            &borrow(&env_agent),
            &["--tools", "suspend_user,read_user"],
            true,
            "agent-owner@example.com",
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let evidence = super::attacks::event_of(&store, &victim);
        let node = std::env::var("IDGW_NODE").unwrap_or_else(|_| "node".into());
        let decide = super::attacks::script("tests/interop/approval/decide.mjs");
        let shot = dir.path().join("oidc-approved.png");
        let on_url = [
            node.as_str(),
            decide.to_str().unwrap(),
            &playwright,
            &chromium,
            "analyst@example.com",
            "approve",
            shot.to_str().unwrap(),
        ];
        let seen = super::attacks::agent(
            &format!("http://{addr}/mcp"),
            &token(&agent_file),
            "legacy",
            "suspend_user",
            serde_json::json!({"user_login": victim, "reasoning": "sign-ins from two continents within the hour", "evidence": [evidence]}),
            &on_url,
        );
        let browser: serde_json::Value =
            serde_json::from_str(seen["on_url"][0]["stdout"].as_str().unwrap_or("{}")).unwrap_or_default();
        assert!(
            browser["signin_url"]
                .as_str()
                .unwrap_or("")
                .starts_with(&provider.issuer),
            "{seen}"
        );
        assert_eq!(browser["approver"], "analyst@example.com", "{seen}");
        assert_eq!(seen["structured"]["status"], "success", "{seen}");
        assert_eq!(seen["structured"]["approved_by"], "analyst@example.com", "{seen}");
    }
    gw.kill().unwrap();
    let _ = gw.wait();
    sim.kill().unwrap();
    let _ = sim.wait();

    // Over stdio, the agent signs in through the MCP tools.
    if python_mcp() {
        let stdio_token = dir.path().join("token-stdio.json");
        let env_stdio = env(&stdio_token);
        let approve_url = format!("{}/test/approve", provider.issuer);
        let seen = run_client(
            &[
                "signin",
                env!("CARGO_BIN_EXE_idgw"),
                store.to_str().unwrap(),
                &approve_url,
            ],
            &borrow(&env_stdio),
        );
        assert_eq!(seen["principal"], "analyst@example.com", "{seen}");
        // Before the approval, complete_device_auth answered "pending" within 20 s (plus
        // one polling interval), not after the 60 s an MCP client waits.
        assert!(seen["pending_after_s"].as_f64().unwrap() < 30.0, "{seen}");
        assert!(stdio_token.exists(), "the stdio sign-in keeps its token");
    }
}
