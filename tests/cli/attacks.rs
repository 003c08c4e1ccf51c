//! Attacks on the gateway's promise (issue 27): an AI agent cannot change an identity
//! without a second, authenticated person approving that exact change. Each attack drives
//! the release-shaped binary as an attacker would: the Okta simulator as Okta and as the
//! authorization server, the official Python MCP SDK as the agent (tests/interop/agent.py),
//! `idgw approve` as a shell user, and headless Chromium as the approver's browser
//! (tests/interop/approval/decide.mjs). Every attack asserts the refusal and that the user
//! is still ACTIVE at Okta; the legitimate path (another person approves) then succeeds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::gateway::{python_mcp, serve_http_on, store};
use super::{idgw, interop, stdout};

/// The sim's OAuth client (device grant and authorization code with PKCE).
const CLIENT: &str = "0oa1simmcpclient0000";
/// The approvers' own OIDC app (`idgw approve`), which agents do not hold.
const APPROVER_CLIENT: &str = "0oa1simapprovercli00";
/// The tenant of `store()` (40 users, seed 11), which the simulator serves too.
const USERS: u32 = 40;
const SEED: u64 = 11;
/// What the agent may do: everything but approve.
const AGENT_TOOLS: &str = "suspend_user,unsuspend_user,reset_password,revoke_sessions,rollback,read_user,get_audit_log";

/// One raw HTTP request; the status and the body.
fn http(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let (status, _, body) = http_full(addr, addr, method, path, headers, body);
    (status, body)
}

/// One raw HTTP request with `Host: host` (JSON unless `headers` name a content type); the
/// status, the head (lower-cased) and the body.
fn http_full(addr: &str, host: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let json = if headers.to_ascii_lowercase().contains("content-type:") {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}{json}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn host(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// `idgw gateway login` against the simulator's authorization server, approved at the
/// verification step as `user`; the access token it stored in `token_file`.
fn login(sim_url: &str, token_file: &Path, user: &str, tools: Option<&str>) -> String {
    login_with(sim_url, CLIENT, token_file, user, tools)
}

/// [`login`] through OAuth client `client`.
fn login_with(sim_url: &str, client: &str, token_file: &Path, user: &str, tools: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idgw"));
    cmd.args(["gateway", "login", "--json", "--timeout", "60"]);
    if let Some(t) = tools {
        cmd.args(["--tools", t]);
    }
    let mut child = cmd
        .env("OKTA_ISSUER", format!("{sim_url}/oauth2/default"))
        .env("OKTA_CLIENT_ID", client)
        .env("IDGW_AUTH_TOKEN_FILE", token_file)
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
    let (status, body) = http(
        host(sim_url),
        "POST",
        "/sim/device/approve",
        "",
        &serde_json::json!({"user_code": code, "user": user}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login as {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(token_file).unwrap()).unwrap();
    t["access_token"].as_str().unwrap().to_owned()
}

pub(super) fn script(rel: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())).join(rel)
}

/// The agent's one tool call (tests/interop/agent.py); what it saw.
pub(super) fn agent(
    url: &str,
    token: &str,
    mode: &str,
    tool: &str,
    arguments: serde_json::Value,
    on_url: &[&str],
) -> serde_json::Value {
    let call = serde_json::json!({"tool": tool, "arguments": arguments}).to_string();
    let mut cmd = Command::new("python3");
    cmd.arg(script("tests/interop/agent.py"))
        .args([url, token, mode, &call]);
    if !on_url.is_empty() {
        cmd.arg("--on-url").args(on_url);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "agent.py {tool}:\n{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap()
}

/// The user's status at the simulated Okta.
fn okta_status(sim_url: &str, login: &str) -> String {
    let (status, body) = http(
        host(sim_url),
        "GET",
        &format!("/api/v1/users/{login}"),
        "Authorization: SSWS sim-api-token\r\nAccept: application/json\r\n",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["status"].as_str().unwrap().to_owned()
}

/// One stored event of `login`: evidence about the user acted on.
pub(super) fn event_of(store: &Path, login: &str) -> String {
    let o = idgw(&[
        "query",
        "--store",
        store.to_str().unwrap(),
        "--json",
        &format!("SELECT event_id FROM events WHERE user_login = '{login}' ORDER BY event_time LIMIT 1"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let row: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().expect("the user has events")).unwrap();
    row["event_id"].as_str().unwrap().to_owned()
}

fn audit_records(store: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(store.join("audit/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `idgw approve ARGS` with the approver's own configuration: the gateway at `gateway`,
/// the token in `token_file`.
fn approve_cmd(gateway: &str, issuer: &str, args: &[&str], token_file: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idgw"));
    cmd.arg("approve")
        .args(args)
        .env("IDGW_GATEWAY_URL", gateway)
        .env("OKTA_ISSUER", issuer)
        .env("OKTA_CLIENT_ID", CLIENT)
        .stdin(Stdio::null());
    if let Some(t) = token_file {
        cmd.env("IDGW_AUTH_TOKEN_FILE", t);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The browser (playwright-core and Chromium, both installed by .ci/run).
pub(super) fn browser() -> Option<(String, String)> {
    let pw = std::env::var("IDGW_PLAYWRIGHT").ok().filter(|p| Path::new(p).exists());
    let chromium = std::env::var("IDGW_CHROMIUM").ok().filter(|p| Path::new(p).exists());
    if !interop(
        pw.is_some() && chromium.is_some(),
        "playwright-core and Chromium (IDGW_PLAYWRIGHT, IDGW_CHROMIUM)",
    ) {
        return None;
    }
    Some((pw?, chromium?))
}

/// The login of the `i`-th ordinary member of the store's tenant.
pub(super) fn member(i: usize) -> String {
    let tenant = idgw_testbed::generate::tenant::Tenant::new(SEED, USERS);
    tenant
        .users
        .iter()
        .filter(|u| u.role == idgw_testbed::generate::tenant::Role::Member)
        .nth(i)
        .map(|u| u.login.clone())
        .unwrap()
}

#[test]
fn no_agent_can_approve_its_own_action() {
    if !python_mcp() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (mut sim, sim_url, _) = super::sim(&[
        "--users",
        &USERS.to_string(),
        "--seed",
        &SEED.to_string(),
        "--history-days",
        "1",
        "--oauth-client",
        APPROVER_CLIENT,
    ]);
    let tenant = idgw_testbed::generate::tenant::Tenant::new(SEED, USERS);
    let members: Vec<_> = tenant
        .users
        .iter()
        .filter(|u| u.role == idgw_testbed::generate::tenant::Role::Member)
        .collect();
    let (victim, protected) = (members[0], members[1]);
    // People of the org: the one who runs the agent, and an analyst who approves (both sign
    // in at the simulated Okta).
    let (agent_login, analyst_login) = (members[3].login.as_str(), members[2].login.as_str());

    // The agent holds every scope but the approve scope; a second token of the same person,
    // through the approvers' client, holds that too; the analyst is someone else with the
    // approve scope, signed in through the approvers' client. `phished` is the analyst's
    // token through the agents' client: what an agent gets by running its client's device
    // flow and having the analyst enter the code.
    let agent_token = login(&sim_url, &dir.path().join("agent.json"), agent_login, Some(AGENT_TOOLS));
    let agent_all = dir.path().join("agent-all.json");
    login_with(&sim_url, APPROVER_CLIENT, &agent_all, agent_login, None);
    let analyst = dir.path().join("analyst.json");
    login_with(&sim_url, APPROVER_CLIENT, &analyst, analyst_login, None);
    let phished = dir.path().join("phished.json");
    login(&sim_url, &phished, analyst_login, None);

    let config = dir.path().join("idgw.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway.policy]\nprotected_users = [\"{}\"]\nelicitation_timeout_s = 20\n",
            protected.login
        ),
    )
    .unwrap();
    let issuer = format!("{sim_url}/oauth2/default");
    let env = [
        ("OKTA_ISSUER", issuer.as_str()),
        ("OKTA_CLIENT_ID", CLIENT),
        ("OKTA_ORG_URL", sim_url.as_str()),
        ("OKTA_API_TOKEN", "sim-api-token"),
        ("IDGW_AUTH_APPROVER_CLIENT_IDS", APPROVER_CLIENT),
    ];
    let (mut gw, addr) = serve_http_on(&store, "127.0.0.1:0", &["--config", config.to_str().unwrap()], &env);
    let gateway = format!("http://{addr}");
    let mcp = format!("{gateway}/mcp");
    let evidence = event_of(&store, &victim.login);
    let reasoning = "sign-ins from two continents within the hour; contain the account";
    let suspend = serde_json::json!({"user_login": victim.login, "reasoning": reasoning, "evidence": [evidence]});

    // Attack 1a: a 2025-11-25 client answers its own elicitation "approve". The gateway sent
    // it to the approval page instead (URL mode) and nothing approved it there.
    let seen = agent(&mcp, &agent_token, "legacy", "suspend_user", suspend.clone(), &[]);
    assert_eq!(seen["protocol_version"], "2025-11-25", "{seen}");
    assert_eq!(seen["elicited"][0]["mode"], "url", "{seen}");
    assert_eq!(seen["structured"]["status"], "approval_required", "{seen}");
    let tx = seen["structured"]["approval"]["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = seen["structured"]["approval"]["approval_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(page, format!("{gateway}/approvals/{tx}"));
    assert_eq!(okta_status(&sim_url, &victim.login), "ACTIVE");
    // Attack 1b: a 2026-07-28 client answers every input request "approve" with the sealed
    // state, round after round: the gateway asks again each time.
    let seen = agent(&mcp, &agent_token, "auto", "suspend_user", suspend.clone(), &[]);
    assert!(seen["rounds_exceeded"].as_bool().unwrap(), "{seen}");
    assert!(
        seen["elicited"].as_array().unwrap().iter().all(|e| e["mode"] == "url"),
        "{seen}"
    );
    assert_eq!(okta_status(&sim_url, &victim.login), "ACTIVE");

    // Attack 2: a forged approval file where the old design kept approvals.
    let forged = store.join("audit/approvals");
    std::fs::create_dir_all(&forged).unwrap();
    std::fs::write(
        forged.join(format!("{tx}.json")),
        serde_json::json!({"transaction_id": tx, "decision": "approved", "approver": "ciso@example.com"}).to_string(),
    )
    .unwrap();
    let with_id = serde_json::json!({"user_login": victim.login, "reasoning": reasoning, "evidence": [evidence], "approval_id": tx});
    let seen = agent(&mcp, &agent_token, "legacy", "suspend_user", with_id.clone(), &[]);
    assert!(seen["is_error"].as_bool().unwrap(), "{seen}");
    assert!(seen["text"].as_str().unwrap().contains("still pending"), "{seen}");
    assert_eq!(okta_status(&sim_url, &victim.login), "ACTIVE");

    // Attack 3: `idgw approve --dev-no-auth` against a gateway that authenticates.
    let o = approve_cmd(&gateway, &issuer, &[&tx, "--dev-no-auth", "--yes"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("accepted only by a gateway running --dev-no-auth"),
        "{}",
        stderr(&o)
    );
    // The agent's own token: without the approve scope, then with it (the same person).
    let o = approve_cmd(&gateway, &issuer, &[&tx, "--yes"], Some(&dir.path().join("agent.json")));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("lacks the scope mcp:actions:approve"),
        "{}",
        stderr(&o)
    );
    let o = approve_cmd(&gateway, &issuer, &[&tx, "--yes"], Some(&agent_all));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("another person must approve"), "{}", stderr(&o));
    // Attack 4: the analyst's own token, phished through the agents' client (the device
    // flow the agent can start): not an approver client, refused before anything is shown.
    let o = approve_cmd(&gateway, &issuer, &[&tx, "--yes"], Some(&phished));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("not an approver client"), "{}", stderr(&o));
    let phished_token: serde_json::Value = serde_json::from_slice(&std::fs::read(&phished).unwrap()).unwrap();
    let (status, body) = http(
        &addr,
        "POST",
        &format!("/approvals/{tx}/decision"),
        &format!(
            "Authorization: Bearer {}\r\n",
            phished_token["access_token"].as_str().unwrap()
        ),
        r#"{"approve":true}"#,
    );
    assert_eq!(status, 403, "{body}");
    // No token at all, and a forged one.
    let (status, _) = http(
        &addr,
        "POST",
        &format!("/approvals/{tx}/decision"),
        "",
        r#"{"approve":true}"#,
    );
    assert_eq!(status, 401);
    let (status, _) = http(
        &addr,
        "POST",
        &format!("/approvals/{tx}/decision"),
        "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJjaXNvIn0.\r\n",
        r#"{"approve":true}"#,
    );
    assert_eq!(status, 401);
    let seen = agent(&mcp, &agent_token, "legacy", "suspend_user", with_id.clone(), &[]);
    assert!(seen["text"].as_str().unwrap().contains("still pending"), "{seen}");
    assert_eq!(okta_status(&sim_url, &victim.login), "ACTIVE");

    // The page itself, without a browser: never framed or cached, refused under a foreign
    // Host (DNS rebinding), its sign-in finished only by the browser that started it, and
    // no decision without a signed-in session of this request.
    let (status, head, _) = http_full(&addr, &addr, "GET", &format!("/approvals/{tx}"), "", "");
    assert_eq!(status, 303, "an unsigned visitor is sent to sign in: {head}");
    assert!(
        head.contains("location: ") && head.contains("code_challenge_method=s256"),
        "{head}"
    );
    assert!(
        head.contains("x-frame-options: deny") && head.contains("frame-ancestors 'none'"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(
        head.contains("set-cookie: idgw_signin=") && head.contains("httponly"),
        "{head}"
    );
    let (status, _, _) = http_full(&addr, "rebound.example:80", "GET", &format!("/approvals/{tx}"), "", "");
    assert_eq!(status, 403);
    let (status, _, body) = http_full(
        &addr,
        &addr,
        "GET",
        "/approvals/callback?code=stolen&state=guessed",
        "",
        "",
    );
    assert_eq!(status, 400);
    assert!(body.contains("not started in this browser"), "{body}");
    let (status, _, _) = http_full(
        &addr,
        &addr,
        "POST",
        &format!("/approvals/{tx}"),
        &format!("Origin: {gateway}\r\nContent-Type: application/x-www-form-urlencoded\r\n"),
        "csrf=x&decision=approve&arguments_hash=x&target_id=x",
    );
    assert_eq!(status, 401, "a form post without a session of this request");

    // Attack 4: a protected account named by its Okta id instead of its login.
    let by_id = serde_json::json!({
        "user_login": protected.id, "reasoning": reasoning,
        "evidence": [event_of(&store, &protected.login)], "dry_run": true});
    let seen = agent(&mcp, &agent_token, "legacy", "suspend_user", by_id, &[]);
    assert!(seen["is_error"].as_bool().unwrap(), "{seen}");
    assert!(seen["text"].as_str().unwrap().contains("protected account"), "{seen}");
    // Names that are no account are refused.
    for name in ["me", "..", "../../api/v1/users/x"] {
        let bad = serde_json::json!({"user_login": name, "reasoning": reasoning, "evidence": [evidence]});
        let seen = agent(&mcp, &agent_token, "legacy", "suspend_user", bad, &[]);
        assert!(
            seen["text"].as_str().unwrap().contains("is not a user"),
            "{name}: {seen}"
        );
    }

    // A decision about another call than the one shown (a stale or swapped request) is
    // refused, and `idgw approve` without a terminal does not decide unasked.
    let analyst_token: serde_json::Value = serde_json::from_slice(&std::fs::read(&analyst).unwrap()).unwrap();
    let bearer = format!(
        "Authorization: Bearer {}\r\n",
        analyst_token["access_token"].as_str().unwrap()
    );
    let (status, body) = http(
        &addr,
        "POST",
        &format!("/approvals/{tx}/decision"),
        &bearer,
        &serde_json::json!({"approve": true, "arguments_hash": "0".repeat(64), "target_id": victim.id}).to_string(),
    );
    assert_eq!(status, 409, "{body}");
    let o = approve_cmd(&gateway, &issuer, &[&tx], Some(&analyst));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pass --yes"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&victim.id),
        "the call is shown first: {}",
        stderr(&o)
    );

    // The legitimate path: another person, signed in with the approve scope, approves.
    let o = approve_cmd(&gateway, &issuer, &["--list", "--json", "--yes"], Some(&analyst));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&tx), "{}", stdout(&o));
    let o = approve_cmd(&gateway, &issuer, &[&tx, "--json", "--yes"], Some(&analyst));
    assert!(o.status.success(), "{}", stderr(&o));
    let decided: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(decided["approver"]["subject"], analyst_login, "{decided}");
    assert_eq!(decided["target"]["id"], victim.id.as_str(), "{decided}");
    // Attack 5: another principal (the approver's own token, which may act) calls with the
    // approved id before the agent does: refused, and its refusal is not written into the
    // approval's transaction, where an outcome would close the agent's intent.
    let intruder = analyst_token["access_token"].as_str().unwrap();
    let seen = agent(&mcp, intruder, "legacy", "suspend_user", with_id.clone(), &[]);
    assert!(seen["is_error"].as_bool().unwrap(), "{seen}");
    assert!(
        !seen["text"].as_str().unwrap().contains(&format!("({tx})")),
        "refused under the approval's transaction: {seen}"
    );
    let seen = agent(&mcp, &agent_token, "legacy", "suspend_user", with_id.clone(), &[]);
    assert_eq!(seen["structured"]["status"], "success", "{seen}");
    assert_eq!(seen["structured"]["approved_by"], analyst_login, "{seen}");
    assert_eq!(okta_status(&sim_url, &victim.login), "SUSPENDED");
    // Used once.
    let seen = agent(&mcp, &agent_token, "legacy", "suspend_user", with_id, &[]);
    assert!(seen["text"].as_str().unwrap().contains("no open approval"), "{seen}");

    // The decision and its use are records of the hash-chained log, with the approver's
    // token id; the log verifies.
    let records = audit_records(&store);
    assert!(
        records
            .iter()
            .filter(|r| r["transaction_id"] == tx.as_str() && r["principal"] == analyst_login)
            .all(|r| r["status"] == "approved"),
        "only the approver's decision is theirs in the transaction"
    );
    assert!(
        records.iter().any(|r| r["principal"] == analyst_login
            && r["status"] == "denied"
            && r["arguments"]["approval_id"] == tx.as_str()),
        "the refusal is on record, with the id it claimed"
    );
    let decision = records
        .iter()
        .find(|r| r["transaction_id"] == tx.as_str() && r["status"] == "approved")
        .expect("a decision record");
    assert_eq!(decision["principal"], analyst_login);
    assert_eq!(decision["approval"]["method"], "cli");
    assert!(
        decision["approval"]["token_id"]
            .as_str()
            .is_some_and(|j| j.starts_with("AT.")),
        "{decision}"
    );
    let intent = records
        .iter()
        .find(|r| r["transaction_id"] == tx.as_str() && r["phase"] == "intent")
        .expect("an intent record");
    assert_eq!(intent["approval"]["approver"], analyst_login);
    assert_eq!(
        intent["approval"]["arguments_hash"],
        decision["approval"]["arguments_hash"]
    );
    assert!(
        !records
            .iter()
            .any(|r| r["status"] == "approved" && r["principal"] == agent_login),
        "the agent never approved anything"
    );
    // Attack 6: the head's temporary name taken (a shell on the host; used-up inodes do the
    // same): a record written then cannot be acknowledged. Once the name is free again the
    // chain goes on from the last acknowledged record instead of forking beside it.
    let blocker = store.join("audit").join(format!("{}.tmp", "audit.head.json"));
    std::fs::create_dir(&blocker).unwrap();
    let read = serde_json::json!({"user_login": victim.login});
    agent(&mcp, &agent_token, "legacy", "read_user", read.clone(), &[]);
    std::fs::remove_dir(&blocker).unwrap();
    let seen = agent(&mcp, &agent_token, "legacy", "read_user", read, &[]);
    assert!(!seen["is_error"].as_bool().unwrap_or(true), "{seen}");
    let o = idgw(&["audit", "verify", store.join("audit").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stdout(&o));

    // The approval page in a real browser: the agent's call carries the person there (URL
    // elicitation); they sign in at the issuer with PKCE, see the exact call and approve,
    // and the agent's call completes. The requester signing in is refused.
    if let Some((playwright, chromium)) = browser() {
        let (status, body) = http(
            host(&sim_url),
            "POST",
            "/sim/oauth/redirect-uris",
            "",
            &serde_json::json!({"redirect_uri": format!("{gateway}/approvals/callback")}).to_string(),
        );
        assert_eq!(status, 200, "{body}");
        let node = std::env::var("IDGW_NODE").unwrap_or_else(|_| "node".into());
        let decide = script("tests/interop/approval/decide.mjs");
        let shot = dir.path().join("approved.png");
        let reset = serde_json::json!({"user_login": victim.id, "reasoning": reasoning, "evidence": [evidence]});
        let on_url = [
            node.as_str(),
            decide.to_str().unwrap(),
            &playwright,
            &chromium,
            analyst_login,
            "approve",
            shot.to_str().unwrap(),
        ];
        let seen = agent(&mcp, &agent_token, "legacy", "revoke_sessions", reset, &on_url);
        let browser: serde_json::Value =
            serde_json::from_str(seen["on_url"][0]["stdout"].as_str().unwrap_or("{}")).unwrap_or_default();
        assert!(
            browser["signin_url"]
                .as_str()
                .unwrap_or("")
                .contains("/oauth2/default/v1/authorize"),
            "{seen}"
        );
        assert_eq!(browser["tool"], "revoke_sessions", "{seen}");
        assert!(browser["target"].as_str().unwrap().contains(&victim.id), "{seen}");
        assert!(browser["requester"].as_str().unwrap().contains(agent_login), "{seen}");
        assert_eq!(browser["approver"], analyst_login, "{seen}");
        assert_eq!(browser["evidence"][0][0], evidence.as_str(), "{seen}");
        assert!(
            browser["outcome"]
                .as_str()
                .unwrap()
                .starts_with(&format!("Approved by {analyst_login}")),
            "{seen}"
        );
        assert_eq!(seen["structured"]["status"], "success", "{seen}");
        assert_eq!(seen["structured"]["approved_by"], analyst_login, "{seen}");
        assert!(shot.exists());

        // The requester signs in at the page of a new request: refused, nothing decided.
        let notify = serde_json::json!({"user_login": victim.login, "reasoning": reasoning, "evidence": [evidence]});
        let pending = agent(&mcp, &agent_token, "auto", "reset_password", notify, &[]);
        assert!(pending["rounds_exceeded"].as_bool().unwrap(), "{pending}");
        let url = pending["elicited"][0]["url"].as_str().unwrap();
        let out = Command::new(&node)
            .arg(&decide)
            .args([
                &playwright,
                &chromium,
                agent_login,
                "approve",
                dir.path().join("refused.png").to_str().unwrap(),
                url,
            ])
            .output()
            .unwrap();
        let refused: serde_json::Value = serde_json::from_str(stdout(&out).lines().last().unwrap_or("{}")).unwrap();
        assert!(
            refused["refused"].as_str().unwrap_or("").contains("cannot approve it"),
            "{refused} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(okta_status(&sim_url, &victim.login), "SUSPENDED", "no reset happened");
    }
    gw.kill().unwrap();
    let _ = gw.wait();
    sim.kill().unwrap();
    let _ = sim.wait();
}

/// Attack: someone with a shell on the gateway's host cuts the last records of the audit
/// log (the deleted suspend of a colleague, say) and rewrites `audit.head.json` to match.
/// The chain alone still verifies; the head the gateway signed and published outside the
/// directory, and the Kafka mirror, still name the records that were cut.
#[test]
fn a_cut_audit_tail_is_caught_by_the_published_head_and_the_mirror() {
    use idgw_gateway::audit::{self, signed_head};
    if !python_mcp() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = keys.join("audit-signing.pem");
    let o = idgw(&["audit", "keygen", key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let public = keys.join("audit-signing.pem.pub");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Never overwritten.
    assert!(!idgw(&["audit", "keygen", key.to_str().unwrap()]).status.success());
    let witness = dir.path().join("witness");
    std::fs::create_dir(&witness).unwrap();
    let copy = witness.join("audit.head.json");

    let broker = super::stream::external_broker().unwrap_or_else(super::stream::mock);
    let brokers = broker.brokers();
    let topic = format!("idgw.audit.{}", super::stream::rand_u64());
    broker.create_topic(&topic, 1);
    let env = [
        ("IDGW_AUDIT_SIGNING_KEY", key.to_str().unwrap()),
        ("IDGW_AUDIT_HEAD_COPY", copy.to_str().unwrap()),
        ("KAFKA_BROKERS", brokers.as_str()),
        ("IDGW_AUDIT_KAFKA_TOPIC", topic.as_str()),
    ];
    // A copy inside the audit directory is refused: it would be cut with the log.
    let inside = store.join("audit/head-copy.json");
    let o = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args([
            "gateway",
            "serve",
            "--store",
            store.to_str().unwrap(),
            "--dev-no-auth",
            "--stdio",
        ])
        .envs(env)
        .env("IDGW_AUDIT_HEAD_COPY", &inside)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is inside the audit directory"), "{}", stderr(&o));

    let (mut gw, addr) = serve_http_on(&store, "127.0.0.1:0", &["--dev-no-auth"], &env);
    let seen = super::gateway::run_client(&["http", &format!("http://{addr}/mcp")], &[]);
    assert_eq!(seen["mode"], "http", "{seen}");
    // The gateway flushes the mirror when it stops.
    let _ = Command::new("kill").args(["-TERM", &gw.id().to_string()]).status();
    assert!(gw.wait().unwrap().success());

    let audit_dir = store.join("audit");
    let log = audit_dir.join(audit::LOG_FILE);
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(lines.len() > 8, "{}", lines.len());
    let published = signed_head::SignedHead::read(&copy).unwrap();
    assert_eq!(published.records, lines.len() as u64);
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", audit_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        idgw(&args)
    };
    let expect = [
        "--expect-head",
        copy.to_str().unwrap(),
        "--public-key",
        public.to_str().unwrap(),
    ];
    let mirror = [
        "--against-kafka",
        brokers.as_str(),
        "--topic",
        topic.as_str(),
        "--public-key",
        public.to_str().unwrap(),
    ];
    // Someone who may produce to the topic adds a line far beyond the end, unsigned: with
    // the public key it proves nothing either way.
    {
        use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
        let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        let mut fake: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        fake["seq"] = serde_json::json!(u64::MAX);
        let fake = fake.to_string();
        producer
            .send(BaseRecord::<str, str>::to(&topic).key("txn-fake").payload(&fake))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    }
    // Intact: every check passes.
    let o = verify(&expect);
    assert!(o.status.success(), "{}", stdout(&o));
    let o = verify(&mirror);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));

    // The attack: three records cut, the local head rewritten to the new end.
    let kept = &lines[..lines.len() - 3];
    std::fs::write(&log, format!("{}\n", kept.join("\n"))).unwrap();
    let head =
        serde_json::json!({"records": kept.len(), "last_hash": audit::line_hash(kept.last().unwrap().as_bytes())});
    std::fs::write(audit_dir.join(audit::HEAD_FILE), head.to_string()).unwrap();
    // The chain alone cannot tell.
    let o = verify(&[]);
    assert!(o.status.success(), "{}", stdout(&o));
    // The published head and the mirror can.
    let o = verify(&expect);
    assert_eq!(o.status.code(), Some(5), "{}", stdout(&o));
    assert!(stdout(&o).contains("3 records were cut from the end"), "{}", stdout(&o));
    let o = verify(&mirror);
    assert_eq!(o.status.code(), Some(5), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("3 records were cut from the end"), "{}", stdout(&o));
    // And the gateway refuses to serve on the cut log.
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_idgw"))
            .args([
                "gateway",
                "serve",
                "--store",
                store.to_str().unwrap(),
                "--dev-no-auth",
                "--stdio",
            ])
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = start();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("3 records were cut from the end"), "{}", stderr(&o));
    // Deleting the copy as well does not make the gateway start afresh.
    std::fs::remove_file(&copy).unwrap();
    let o = start();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is missing"), "{}", stderr(&o));

    // The attacker also replaces the published copy with one signed by a key of their own.
    let forged_key = dir.path().join("attacker.pem");
    assert!(
        idgw(&["audit", "keygen", forged_key.to_str().unwrap()])
            .status
            .success()
    );
    let forger = signed_head::HeadSigner::load(&forged_key, Some(copy.clone())).unwrap();
    let forged = forger.sign(&audit::Head {
        records: kept.len() as u64,
        last_hash: audit::line_hash(kept.last().unwrap().as_bytes()),
    });
    forger.publish(&forged, true).unwrap();
    let o = verify(&expect);
    assert_eq!(o.status.code(), Some(5), "{}", stdout(&o));
    assert!(stdout(&o).contains("not by the key given"), "{}", stdout(&o));
    drop(broker);
}

/// Attack: a scanner floods the gateway with requests that carry no token or a forged one,
/// to fill the audit disk or bury a real event. Each kind of refusal from each address is on
/// record once, with its address; the rest are counted into one summary record per window
/// (written at the latest when the gateway stops). A signed-in call's record carries the
/// token's `jti` and the peer's address.
#[test]
fn a_flood_of_unauthenticated_requests_is_counted_not_recorded_one_by_one() {
    use base64::Engine as _;
    if !python_mcp() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (mut sim, sim_url, _) = super::sim(&["--users", &USERS.to_string(), "--seed", &SEED.to_string()]);
    let issuer = format!("{sim_url}/oauth2/default");
    let env = [("OKTA_ISSUER", issuer.as_str()), ("OKTA_CLIENT_ID", CLIENT)];
    let (mut gw, addr) = serve_http_on(&store, "127.0.0.1:0", &[], &env);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"scanner","version":"1"}}}"#;
    const EACH: usize = 300;
    for i in 0..2 * EACH {
        let auth = if i % 2 == 0 {
            String::new()
        } else {
            "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0.\r\n".to_owned()
        };
        let (status, _) = http(
            &addr,
            "POST",
            "/mcp",
            &format!("Accept: application/json, text/event-stream\r\n{auth}"),
            init,
        );
        assert_eq!(status, 401);
    }
    // A legitimate call in the middle of it.
    let token = login(
        &sim_url,
        &dir.path().join("analyst.json"),
        &member(2),
        Some("list_alerts"),
    );
    let seen = agent(
        &format!("http://{addr}/mcp"),
        &token,
        "legacy",
        "list_alerts",
        serde_json::json!({"limit": 1}),
        &[],
    );
    assert!(!seen["is_error"].as_bool().unwrap_or(false), "{seen}");
    let _ = Command::new("kill").args(["-TERM", &gw.id().to_string()]).status();
    assert!(gw.wait().unwrap().success());
    sim.kill().unwrap();
    let _ = sim.wait();

    let records = audit_records(&store);
    let refused: Vec<_> = records.iter().filter(|r| r["action"] == "http_request").collect();
    // One per reason from this address: no token, and the forged token's defect.
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(
        refused
            .iter()
            .all(|r| r["remote_addr"].as_str().unwrap().starts_with("127.0.0.1:"))
    );
    let summaries: Vec<_> = records
        .iter()
        .filter(|r| r["action"] == "unauthenticated_requests")
        .collect();
    let counted: u64 = summaries
        .iter()
        .map(|r| r["arguments"]["refused"].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, 2 * EACH - 2, "{summaries:#?}");
    assert_eq!(
        summaries
            .iter()
            .map(|r| r["arguments"]["by_address"]["127.0.0.1"].as_u64().unwrap())
            .sum::<u64>() as usize,
        2 * EACH - 2
    );
    assert!(
        records.len() < 10,
        "{} records for {} requests",
        records.len(),
        2 * EACH + 1
    );
    // The signed-in call: who, with which token, from where.
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let call = records
        .iter()
        .find(|r| r["action"] == "list_alerts")
        .expect("the call is on record");
    assert_eq!(call["principal"], member(2));
    assert_eq!(call["token_id"], claims["jti"], "{call}");
    assert!(call["token_id"].is_string(), "{claims}");
    assert!(
        call["remote_addr"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{call}"
    );
    let o = idgw(&["audit", "verify", store.join("audit").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stdout(&o));
}

/// Attack: an agent with `mcp:sql:read` writes SQL to exhaust the gateway: a string grown
/// past any memory (which aborted the whole process when the allocation failed), unbounded
/// recursion, a query larger than anything a person writes, an aggregation past the memory
/// pool, and more queries at once than the machine has cores. Each fails alone with a reason;
/// the gateway answers the next call.
#[test]
fn query_sql_cannot_take_the_gateway_down() {
    if !python_mcp() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (mut gw, addr) = serve_http_on(
        &store,
        "127.0.0.1:0",
        &[
            "--dev-no-auth",
            "--query-memory",
            "4",
            "--query-concurrency",
            "1",
            "--query-timeout",
            "8",
        ],
        &[],
    );
    let url = format!("http://{addr}/mcp");
    let sql = |q: &str| agent(&url, "none", "legacy", "query_sql", serde_json::json!({"sql": q}), &[]);
    let alive = || {
        let seen = sql("SELECT count(*) AS n FROM events");
        assert!(
            !seen["is_error"].as_bool().unwrap(),
            "the gateway stopped answering: {seen}"
        );
        assert!(seen["structured"]["rows"][0]["n"].as_u64().unwrap() > 100, "{seen}");
    };
    alive();

    // Each event's user id repeated 10^8 times: terabytes for one batch of rows.
    let seen = sql("SELECT length(repeat(user_id, 100000000)) AS n FROM events");
    assert!(seen["is_error"].as_bool().unwrap(), "{seen}");
    assert!(
        seen["text"].as_str().unwrap().contains("more memory than its limit"),
        "{seen}"
    );
    alive();

    // An error that quotes a value the query built (250 MB of it): cut short in the answer
    // (and the audit record), never carried whole into the gateway.
    let seen = sql("SELECT CAST(repeat(chr(1), 250000000) AS INT) AS n");
    assert!(seen["is_error"].as_bool().unwrap(), "{}", &seen.to_string()[..500]);
    assert!(
        seen["text"].as_str().unwrap().len() < 20_000,
        "{} bytes",
        seen["text"].as_str().unwrap().len()
    );
    alive();

    let seen = sql("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r");
    assert!(seen["is_error"].as_bool().unwrap(), "{seen}");
    assert!(
        seen["text"].as_str().unwrap().to_lowercase().contains("recursive"),
        "{seen}"
    );

    let long = format!("SELECT 1 AS x{}", " ".repeat(20_000));
    let seen = sql(&long);
    assert!(seen["is_error"].as_bool().unwrap(), "{seen}");
    assert!(
        seen["text"].as_str().unwrap().contains("at most 16384 are accepted"),
        "{seen}"
    );

    // A large result reaches the agent cut to whole rows (it was over the official SDK's
    // 1 MiB event limit).
    let seen = sql("SELECT raw FROM events");
    assert!(!seen["is_error"].as_bool().unwrap(), "{seen}");
    assert_eq!(
        seen["structured"]["truncated"], true,
        "{}",
        seen["structured"]["row_count"]
    );
    // Every pair of events' verbatim JSON gathered: past a 4 MiB pool.
    let seen = sql("SELECT cardinality(array_agg(a.raw)) AS n FROM events a CROSS JOIN events b");
    assert!(seen["is_error"].as_bool().unwrap(), "{seen}");
    assert!(seen["text"].as_str().unwrap().contains("Resources exhausted"), "{seen}");
    alive();

    // One query at a time here: a second one waits 5 s for the first (which runs until its
    // 8 s limit), then is refused.
    let slow = {
        let url = url.clone();
        std::thread::spawn(move || {
            agent(
                &url,
                "none",
                "legacy",
                "query_sql",
                serde_json::json!({"sql": "SELECT count(*) FROM range(1000000000000)"}),
                &[],
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let seen = sql("SELECT 1 AS one");
    assert!(seen["is_error"].as_bool().unwrap(), "{seen}");
    assert!(seen["text"].as_str().unwrap().contains("already running"), "{seen}");
    let slow = slow.join().unwrap();
    assert!(slow["text"].as_str().unwrap().contains("longer than 8 s"), "{slow}");
    alive();
    gw.kill().unwrap();
    let _ = gw.wait();
}

/// An action called with arguments that do not parse never reaches the action code, and was
/// therefore not on record: an agent probing the gateway's schema left no trace.
#[test]
fn an_action_whose_arguments_do_not_parse_is_on_record() {
    if !python_mcp() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (mut gw, addr) = serve_http_on(&store, "127.0.0.1:0", &["--dev-no-auth"], &[]);
    // A raw JSON-RPC client: an SDK might check the arguments against the schema first.
    let accept = "Accept: application/json, text/event-stream\r\n";
    let (status, head, _) = http_full(
        &addr,
        &addr,
        "POST",
        "/mcp",
        accept,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"prober","version":"1"}}}"#,
    );
    assert_eq!(status, 200, "{head}");
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("mcp-session-id:"))
        .unwrap()
        .trim()
        .to_owned();
    let with_session = format!("{accept}Mcp-Session-Id: {session}\r\n");
    let (status, _, _) = http_full(
        &addr,
        &addr,
        "POST",
        "/mcp",
        &with_session,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert!(status == 202 || status == 200, "{status}");
    let (status, _, body) = http_full(
        &addr,
        &addr,
        "POST",
        "/mcp",
        &with_session,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"suspend_user","arguments":{"user_login":42,"reasoning":"probing","approve":true}}}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("failed to deserialize"), "{body}");
    gw.kill().unwrap();
    let _ = gw.wait();
    let records = audit_records(&store);
    let probe = records
        .iter()
        .find(|r| r["action"] == "suspend_user")
        .unwrap_or_else(|| panic!("no record of the call: {records:#?}"));
    assert_eq!(probe["status"], "denied", "{probe}");
    assert!(probe["error"].as_str().unwrap().contains("do not parse"), "{probe}");
    assert_eq!(probe["arguments"]["user_login"], 42, "{probe}");
}

/// The issuer's keys over time. A key the issuer stops publishing (rotated out, or revoked
/// after a leak) stops verifying once the gateway's refresh comes round: before, a key once
/// fetched verified tokens for the life of the process. When the issuer cannot be reached, a
/// token under an unknown key gets 503 with `Retry-After` (the client keeps its token), not
/// 401; tokens under keys already held keep working.
#[test]
fn retired_issuer_keys_stop_verifying_and_an_issuer_outage_is_503() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (mut sim, sim_url, _) = super::sim(&["--users", &USERS.to_string(), "--seed", &SEED.to_string()]);
    let issuer = format!("{sim_url}/oauth2/default");
    let config = dir.path().join("idgw.toml");
    std::fs::write(&config, "[gateway.auth]\njwks_min_refresh_s = 1\njwks_refresh_s = 2\n").unwrap();
    let env = [("OKTA_ISSUER", issuer.as_str()), ("OKTA_CLIENT_ID", CLIENT)];
    let (mut gw, addr) = serve_http_on(&store, "127.0.0.1:0", &["--config", config.to_str().unwrap()], &env);
    let analyst = member(2);
    let kid = |token: &str| -> String {
        let header = token.split('.').next().unwrap();
        let h: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        h["kid"].as_str().unwrap().to_owned()
    };
    let status = |token: &str| super::gateway::post_initialize(&addr, &format!("Authorization: Bearer {token}\r\n"));
    let sim_post = |path: &str, body: serde_json::Value| {
        let (status, text) = http(host(&sim_url), "POST", path, "", &body.to_string());
        assert_eq!(status, 200, "{path}: {text}");
    };

    let first = login(&sim_url, &dir.path().join("t1.json"), &analyst, Some("list_alerts"));
    assert_eq!(status(&first), 200);
    sim_post("/sim/keys/rotate", serde_json::json!({}));
    let second = login(&sim_url, &dir.path().join("t2.json"), &analyst, Some("list_alerts"));
    assert_ne!(kid(&first), kid(&second));
    // (Unknown kids are looked up at most once per jwks_min_refresh_s.)
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(status(&second), 200, "a new key is fetched for its unknown kid");
    // The first key is retired at the issuer: after the refresh interval it verifies no more.
    sim_post("/sim/keys/retire", serde_json::json!({"kid": kid(&first)}));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(status(&first), 401, "a token under a retired key still verified");
    assert_eq!(status(&second), 200);

    // The issuer goes down after signing a token under yet another key.
    sim_post("/sim/keys/rotate", serde_json::json!({}));
    let third = login(&sim_url, &dir.path().join("t3.json"), &analyst, Some("list_alerts"));
    sim_post("/sim/faults", serde_json::json!({"keys_unavailable": true}));
    std::thread::sleep(Duration::from_millis(2500));
    let (code, head, _) = http_full(
        &addr,
        &addr,
        "POST",
        "/mcp",
        &format!("Authorization: Bearer {third}\r\nAccept: application/json, text/event-stream\r\n"),
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
    );
    assert_eq!(code, 503, "{head}");
    assert!(head.contains("retry-after: 30"), "{head}");
    // A token under a key already held keeps working through the outage.
    assert_eq!(status(&second), 200);
    // The issuer is back: after the backoff the new key is fetched.
    sim_post("/sim/faults", serde_json::json!({}));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(status(&third), 200);
    gw.kill().unwrap();
    let _ = gw.wait();
    sim.kill().unwrap();
    let _ = sim.wait();
}

/// An agent that can start the gateway with its own environment tries to drop the approval
/// list, accept tokens from its own key set, or switch dry run and admin protection off:
/// the gateway refuses to start with the reason, or keeps the file's stricter policy.
#[test]
fn the_environment_cannot_switch_approvals_off() {
    let dir = tempfile::tempdir().unwrap();
    let store = super::gateway::store(dir.path());
    for (name, value) in [
        ("IDGW_GATEWAY_POLICY_APPROVAL_REQUIRED", ""),
        ("IDGW_GATEWAY_AUTH_JWKS_URI", "https://attacker.example/jwks"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_idgw"))
            .args([
                "gateway",
                "serve",
                "--store",
                store.to_str().unwrap(),
                "--stdio",
                "--dev-no-auth",
            ])
            .env(name, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(name) && stderr(&o).contains("only in the configuration file"),
            "{}",
            stderr(&o)
        );
    }
    // The earlier policy names only tighten: dry run stays on although the variable says off.
    let config = dir.path().join("idgw.toml");
    std::fs::write(&config, "[gateway.policy]\ndry_run = true\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args(["config", "show", "--json", "--config", config.to_str().unwrap()])
        .env("IDGW_POLICY_DRY_RUN", "false")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let row = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["key"] == "gateway.policy.dry_run")
        .unwrap();
    assert_eq!(row["value"], true, "{row}");
}
