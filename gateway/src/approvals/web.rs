//! The approval page and the decision API, served by the gateway itself.
//!
//! - `GET /approvals/{tx}`: signs the person in with the authorization-code flow and PKCE
//!   (RFC 7636) against the configured issuer, then shows the exact call (tool, the Okta
//!   user as Okta resolved it, reasoning, evidence, requester, expiry) with one
//!   Approve/Reject form. The form carries a per-session CSRF token; the session cookie is
//!   `HttpOnly`, `SameSite=Lax` and scoped to `/approvals`.
//! - `GET /approvals/callback`: the redirect URI; the code is exchanged with the PKCE
//!   verifier and the access token is checked by the same [`Validator`] that checks agents.
//! - `POST /approvals/{tx}/decision` (`{"approve": bool}`): `idgw approve`, with the
//!   approver's bearer token.
//! - `GET /approvals` (JSON): the open requests, for `idgw approve --list`.
//!
//! Every decision needs an approver this gateway authenticated, holding
//! `mcp:actions:approve`, who is not the requester ([`super::Approvals::decide`]). On a
//! `--dev-no-auth` gateway nobody is authenticated and decisions say so.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ApprovalError, ApprovalRequest, Approvals, Approver, Channel, Decision, Shown};
use crate::auth::{AuthConfig, ServerMetadata, Validator};

/// The session cookie's name (scoped to one request's page).
const COOKIE: &str = "idgw_approver";
/// The cookie that ties a sign-in's `state` to the browser that started it.
const SIGNIN_COOKIE: &str = "idgw_signin";
/// How long a signed-in page session lasts at most (the token's expiry may be sooner).
const SESSION_S: i64 = 15 * 60;
/// How long a started sign-in may take.
const LOGIN_S: i64 = 10 * 60;
/// Open sign-ins and sessions kept at most: a flood of page loads cannot grow memory.
const MAX_PENDING: usize = 10_000;

/// How the page signs approvers in: the issuer's authorization-code flow with PKCE.
#[derive(Clone)]
pub struct SignIn {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// The OAuth client the page signs in with (a public client with PKCE, whose redirect
    /// URIs include `<page base>/approvals/callback`).
    pub client_id: String,
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &crate::auth::redacted(&self.client_secret))
            .finish()
    }
}

impl SignIn {
    /// From the gateway's `[gateway.auth]` and the issuer's metadata; an error says what
    /// is missing.
    pub fn from_config(config: &AuthConfig, meta: &ServerMetadata) -> Result<Self, String> {
        let client_id = config
            .approval_client_id
            .clone()
            .or_else(|| config.client_id.clone())
            .ok_or("the approval page signs approvers in with an OAuth client: set OKTA_CLIENT_ID (or [gateway.auth] approval_client_id)")?;
        Ok(SignIn {
            authorization_endpoint: meta
                .authorization_endpoint
                .clone()
                .ok_or("the issuer's metadata names no authorization_endpoint")?,
            token_endpoint: meta
                .token_endpoint
                .clone()
                .ok_or("the issuer's metadata names no token_endpoint")?,
            client_id,
            client_secret: config.client_secret.clone(),
        })
    }
}

#[derive(Debug)]
struct PendingLogin {
    verifier: String,
    tx: String,
    started: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Session {
    approver: Approver,
    /// The one request this session may see and decide.
    tx: String,
    csrf: String,
    expires: DateTime<Utc>,
}

/// The page's state.
#[derive(Debug)]
pub struct ApprovalWeb {
    approvals: Arc<Approvals>,
    /// Checks approvers' tokens (the agents' validator); `None` on a `--dev-no-auth`
    /// gateway.
    validator: Option<Arc<Validator>>,
    /// How the page signs approvers in, or why it cannot (`idgw approve` still works).
    signin: Result<SignIn, String>,
    http: reqwest::Client,
    logins: Mutex<HashMap<String, PendingLogin>>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Accepted `Host` values (DNS-rebinding protection), without ports.
    hosts: Vec<String>,
    /// The OAuth clients whose tokens the API accepts from approvers
    /// (`[gateway.auth] approver_client_ids`); none: decisions on the page only.
    api_clients: Vec<String>,
}

impl ApprovalWeb {
    /// The page over `approvals`; `validator` is required unless the gateway runs
    /// `--dev-no-auth`.
    pub fn new(
        approvals: Arc<Approvals>,
        validator: Option<Arc<Validator>>,
        signin: Result<SignIn, String>,
    ) -> Result<Self, String> {
        if validator.is_none() != approvals.is_dev_no_auth() {
            return Err(
                "approvers are authenticated with the agents' validator, unless the gateway runs --dev-no-auth".into(),
            );
        }
        Ok(ApprovalWeb {
            approvals,
            validator,
            signin,
            http: reqwest::Client::new(),
            logins: Mutex::default(),
            sessions: Mutex::default(),
            hosts: ["localhost", "127.0.0.1", "[::1]"].map(String::from).to_vec(),
            api_clients: Vec::new(),
        })
    }

    /// Whether decisions here are unauthenticated (a `--dev-no-auth` gateway).
    pub fn is_dev_no_auth(&self) -> bool {
        self.approvals.is_dev_no_auth()
    }

    /// Accepts approvers' tokens on the API (`idgw approve`) from these OAuth clients only
    /// (`[gateway.auth] approver_client_ids`).
    pub fn with_api_clients(mut self, clients: Vec<String>) -> Self {
        self.api_clients = clients;
        self
    }

    /// Accepts these `Host` values (names without ports; the page's own public host is
    /// always accepted).
    pub fn with_hosts(mut self, hosts: Vec<String>) -> Self {
        self.hosts = hosts;
        self
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let name = strip_port(host);
        let public = self
            .approvals
            .page_url("x")
            .and_then(|u| reqwest::Url::parse(&u).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name)) || public.is_some_and(|p| p.eq_ignore_ascii_case(name))
    }

    /// The page's origin (`http://host:port`), as browsers send it in `Origin`.
    fn origin(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.approvals.page_url("x")?).ok()?;
        Some(url.origin().ascii_serialization())
    }

    fn redirect_uri(&self) -> Option<String> {
        self.approvals.page_url("callback")
    }
}

/// The routes under `/approvals`.
pub fn routes(web: Arc<ApprovalWeb>) -> Router {
    Router::new()
        .route("/approvals", get(list))
        .route("/approvals/callback", get(callback))
        .route("/approvals/{tx}", get(page).post(decide_form))
        .route("/approvals/{tx}/request", get(request_api))
        .route("/approvals/{tx}/decision", post(decide_api))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&web), guard))
        .with_state(web)
}

/// `host:port`, `[v6]:port` or a bare name → the name.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Every answer: refused for a foreign `Host` (DNS rebinding), never framed, never cached,
/// no referrer to other sites, no script.
async fn guard(
    State(web): State<Arc<ApprovalWeb>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = if web.host_allowed(request.headers()) {
        next.run(request).await
    } else {
        json_error(StatusCode::FORBIDDEN, "this Host is not one the approval page serves")
    };
    let h = resp.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // `same-origin`, not `no-referrer`: under no-referrer a browser sends `Origin: null`
    // with the form's POST, and the POST is checked by its Origin.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// 32 random bytes, base64url (two v4 UUIDs come from the OS generator).
fn random_token() -> String {
    let bytes = [*uuid::Uuid::new_v4().as_bytes(), *uuid::Uuid::new_v4().as_bytes()].concat();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Equal in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn status_of(e: &ApprovalError) -> StatusCode {
    match e {
        ApprovalError::Unknown(_) => StatusCode::NOT_FOUND,
        ApprovalError::Expired(_) => StatusCode::GONE,
        ApprovalError::Decided(_) => StatusCode::CONFLICT,
        ApprovalError::SelfApproval(..) | ApprovalError::Scope(_) | ApprovalError::NotAPerson(_) => {
            StatusCode::FORBIDDEN
        }
        ApprovalError::NotShown(_) => StatusCode::CONFLICT,
        ApprovalError::NotDevGateway => StatusCode::UNAUTHORIZED,
        ApprovalError::Audit(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn json_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

/// The approver a bearer token or a `--dev-no-auth` label establishes for the API.
async fn api_approver(
    web: &ApprovalWeb,
    headers: &HeaderMap,
    dev_label: Option<&str>,
    addr: SocketAddr,
) -> Result<Approver, Response> {
    let remote = Some(addr.to_string());
    match (bearer(headers), dev_label, &web.validator) {
        (Some(token), _, Some(validator)) => {
            let principal = validator.validate(token).await.map_err(|e| {
                let status = if e.is_unavailable() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::UNAUTHORIZED
                };
                json_error(status, format!("the approver's token: {e}"))
            })?;
            let approver =
                Approver::authenticated(&principal, Channel::Cli, remote).map_err(|e| json_error(status_of(&e), e))?;
            // The page's sign-in hands the token to the gateway itself; a bearer token here
            // was obtained by whoever runs the client, e.g. an agent that ran the device flow
            // of its own client and had a person enter the code.
            if !principal
                .client_id
                .as_ref()
                .is_some_and(|c| web.api_clients.contains(c))
            {
                return Err(json_error(
                    StatusCode::FORBIDDEN,
                    format!(
                        "the token was issued to OAuth client {}, which is not an approver client ([gateway.auth] approver_client_ids{}): decide on the approval page",
                        principal.client_id.as_deref().unwrap_or("(none)"),
                        if web.api_clients.is_empty() { " is empty" } else { "" }
                    ),
                ));
            }
            Ok(approver)
        }
        (None, Some(label), _) if web.approvals.is_dev_no_auth() => {
            Ok(Approver::dev_no_auth(label, Channel::DevNoAuth, remote))
        }
        (None, Some(_), _) => Err(json_error(StatusCode::UNAUTHORIZED, ApprovalError::NotDevGateway)),
        (Some(_), _, None) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "this gateway runs --dev-no-auth and validates no tokens: decide with `idgw approve --dev-no-auth`",
        )),
        (None, None, _) => Err(json_error(
            StatusCode::UNAUTHORIZED,
            "a bearer token of the approver is required (idgw gateway login, then idgw approve)",
        )),
    }
}

#[derive(Debug, Deserialize)]
struct ApiDecision {
    approve: bool,
    /// What the approver was shown (from `GET /approvals/{tx}/request`).
    arguments_hash: String,
    target_id: String,
}

async fn decide_api(
    State(web): State<Arc<ApprovalWeb>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(tx): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Who asks comes first: nothing of the body is looked at for a caller without one.
    #[derive(Deserialize)]
    struct DevLabel {
        #[serde(default)]
        dev_no_auth_approver: Option<String>,
    }
    let label = serde_json::from_slice::<DevLabel>(&body)
        .ok()
        .and_then(|d| d.dev_no_auth_approver);
    let approver = match api_approver(&web, &headers, label.as_deref(), addr).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let body: ApiDecision = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("the decision must be {{approve, arguments_hash, target_id}}: {e}"),
            );
        }
    };
    let shown = Shown {
        arguments_hash: body.arguments_hash,
        target_id: body.target_id,
    };
    match decide(&web, &tx, approver, shown, body.approve).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => json_error(status_of(&e), e),
    }
}

/// `GET /approvals/{tx}/request`: the call to decide, for `idgw approve` to show.
async fn request_api(
    State(web): State<Arc<ApprovalWeb>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(tx): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let label = q.dev_no_auth.then_some("show");
    if let Err(r) = api_approver(&web, &headers, label, addr).await {
        return r;
    }
    match web.approvals.get(&tx) {
        Ok(r) => Json(r).into_response(),
        Err(e) => json_error(status_of(&e), e),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    dev_no_auth: bool,
}

async fn list(
    State(web): State<Arc<ApprovalWeb>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let label = q.dev_no_auth.then_some("list");
    if let Err(r) = api_approver(&web, &headers, label, addr).await {
        return r;
    }
    Json(web.approvals.pending()).into_response()
}

/// Decides off the async threads (the decision is fsynced to the audit log).
async fn decide(
    web: &Arc<ApprovalWeb>,
    tx: &str,
    approver: Approver,
    shown: Shown,
    approve: bool,
) -> Result<ApprovalRequest, ApprovalError> {
    let approvals = Arc::clone(&web.approvals);
    let tx = tx.to_owned();
    tokio::task::spawn_blocking(move || approvals.decide(&tx, approver, &shown, approve))
        .await
        .unwrap_or_else(|e| Err(ApprovalError::Audit(e.to_string())))
}

/// The session of this browser for request `tx` (a session made for another request is
/// not one).
fn session(web: &ApprovalWeb, headers: &HeaderMap, tx: &str) -> Option<Session> {
    let id = cookie(headers, COOKIE)?;
    let mut sessions = web.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let now = Utc::now();
    sessions.retain(|_, s| s.expires > now);
    sessions.get(&id).filter(|s| s.tx == tx).cloned()
}

fn new_session(web: &ApprovalWeb, approver: Approver, tx: &str, expires: DateTime<Utc>) -> Option<String> {
    let mut sessions = web.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let now = Utc::now();
    sessions.retain(|_, s| s.expires > now);
    if sessions.len() >= MAX_PENDING {
        return None;
    }
    let id = random_token();
    sessions.insert(
        id.clone(),
        Session {
            approver,
            tx: tx.to_owned(),
            csrf: random_token(),
            expires,
        },
    );
    Some(id)
}

/// A cookie of `name` for `path` only, HttpOnly, SameSite=Lax (sent on the IdP's
/// redirect back, a top-level navigation), Secure on https.
fn cookie_header(web: &ApprovalWeb, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let secure = web.approvals.page_url("x").is_some_and(|u| u.starts_with("https://"));
    let text = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn session_cookie(web: &ApprovalWeb, id: &str, tx: &str) -> HeaderValue {
    cookie_header(web, COOKIE, id, &format!("/approvals/{tx}"), SESSION_S)
}

/// A whole page (maud escapes everything it interpolates).
fn shell(title: &str, body: Markup) -> axum::response::Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · idgw" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    };
    axum::response::Html(page.into_string())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
main{max-width:760px;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;box-shadow:0 1px 3px #0002}\
h1{font-size:1.35rem}dt{font-weight:600;margin-top:.6rem}dd{margin:0 0 0 1rem}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left;font-size:.9rem}\
.sev-critical,.sev-high{color:#b00020;font-weight:600}.actions{margin-top:1.5rem;display:flex;gap:1rem}\
button{font-size:1rem;padding:.6rem 1.4rem;border-radius:6px;border:1px solid #888;cursor:pointer}\
button.approve{background:#0b6e4f;color:#fff;border-color:#0b6e4f}button.reject{background:#fff;color:#b00020;border-color:#b00020}\
.note{color:#555;font-size:.9rem}.refused{color:#b00020}";

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body = shell(
        title,
        html! {
            h1 { (title) }
            p class="refused" id="message" { (text) }
        },
    );
    (status, body).into_response()
}

fn request_view(r: &ApprovalRequest, form: Option<(&str, &Session)>, dev: bool) -> Markup {
    let user = &r.target;
    html! {
        h1 { "Approve " code { (r.tool) } " on " (user.login) "?" }
        @if dev {
            p class="refused" { "This gateway runs --dev-no-auth: nobody is signed in, and the decision will be recorded as not authenticated." }
        }
        dl id="call" {
            dt { "Action" } dd id="tool" { (r.tool) }
            dt { "Okta user" }
            dd id="target" {
                (user.login) " (" code { (user.id) } ")"
                @if let Some(n) = &user.name { ", " (n) }
                ", status " strong { (user.status) }
            }
            dt { "Requested by" } dd id="requester" { (r.principal) @if let Some(c) = &r.client { " via " (c) } }
            dt { "Reasoning" } dd id="reasoning" { (r.reasoning) }
            dt { "Arguments" } dd { code { (serde_json::Value::Object(r.arguments.clone())) } }
            dt { "Expires" } dd id="expires" { (r.expires_at.to_rfc3339()) }
            dt { "Transaction" } dd { code { (r.transaction_id) } }
        }
        h2 { "Evidence" }
        table id="evidence" {
            tr { th { "Id" } th { "Kind" } th { "Severity" } th { "Time" } th { "Summary" } }
            @for e in &r.evidence {
                tr {
                    td { code { (e.id) } }
                    td { (e.kind) }
                    td class={ "sev-" (e.severity.as_deref().unwrap_or("")) } { (e.severity.as_deref().unwrap_or("-")) }
                    td { (e.time.as_deref().unwrap_or("")) }
                    td { (e.summary) }
                }
            }
        }
        @match r.decision {
            Decision::Pending => {
                @if let Some((action, s)) = form {
                    p class="note" { "Signed in as " strong id="approver" { (s.approver.subject) } "." }
                    form method="post" action=(action) class="actions" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        input type="hidden" name="arguments_hash" value=(r.arguments_hash);
                        input type="hidden" name="target_id" value=(r.target.id);
                        button class="approve" type="submit" name="decision" value="approve" { "Approve" }
                        button class="reject" type="submit" name="decision" value="reject" { "Reject" }
                    }
                }
            }
            Decision::Approved => { p id="outcome" { "Approved by " (r.approver.as_ref().map_or("", |a| a.subject.as_str())) ". The agent may now retry the call." } }
            Decision::Rejected => { p id="outcome" class="refused" { "Rejected by " (r.approver.as_ref().map_or("", |a| a.subject.as_str())) "." } }
        }
    }
}

async fn page(
    State(web): State<Arc<ApprovalWeb>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(tx): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = match web.approvals.get(&tx) {
        Ok(r) => r,
        Err(e) => return message(status_of(&e), "No such approval", &e.to_string()),
    };
    let action = format!("/approvals/{tx}");
    if web.validator.is_none() {
        // --dev-no-auth: an anonymous session so the form still carries a CSRF token.
        let s = match session(&web, &headers, &tx) {
            Some(s) => s,
            None => {
                let approver = Approver::dev_no_auth(
                    &format!("browser at {addr}"),
                    Channel::DevNoAuth,
                    Some(addr.to_string()),
                );
                let Some(id) = new_session(&web, approver, &tx, Utc::now() + chrono::Duration::seconds(SESSION_S))
                else {
                    return message(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Busy",
                        "too many open sessions; try again later",
                    );
                };
                let s = web.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned();
                let mut resp = shell(
                    "Approval",
                    request_view(&r, s.as_ref().map(|s| (action.as_str(), s)), true),
                )
                .into_response();
                resp.headers_mut()
                    .insert(header::SET_COOKIE, session_cookie(&web, &id, &tx));
                return resp;
            }
        };
        return shell("Approval", request_view(&r, Some((&action, &s)), true)).into_response();
    }
    if let Some(s) = session(&web, &headers, &tx) {
        if s.approver.subject.trim().eq_ignore_ascii_case(r.principal.trim()) {
            return message(
                StatusCode::FORBIDDEN,
                "You asked for this action",
                &format!(
                    "{} asked for this call and cannot approve it; another person must sign in and decide.",
                    s.approver.subject
                ),
            );
        }
        return shell("Approval", request_view(&r, Some((&action, &s)), false)).into_response();
    }
    start_signin(&web, &tx)
}

fn start_signin(web: &ApprovalWeb, tx: &str) -> Response {
    let signin = match &web.signin {
        Ok(s) => s,
        Err(why) => {
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "No sign-in",
                &format!("this gateway cannot sign approvers in ({why}); decide with `idgw approve` instead"),
            );
        }
    };
    let Some(redirect_uri) = web.redirect_uri() else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "No sign-in",
            "the approval page has no address yet",
        );
    };
    let state = random_token();
    let verifier = random_token();
    {
        let mut logins = web.logins.lock().unwrap_or_else(|e| e.into_inner());
        let cutoff = Utc::now() - chrono::Duration::seconds(LOGIN_S);
        logins.retain(|_, l| l.started > cutoff);
        if logins.len() >= MAX_PENDING {
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "too many sign-ins in progress; try again later",
            );
        }
        logins.insert(
            state.clone(),
            PendingLogin {
                verifier: verifier.clone(),
                tx: tx.to_owned(),
                started: Utc::now(),
            },
        );
    }
    let Ok(mut url) = reqwest::Url::parse(&signin.authorization_endpoint) else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "No sign-in",
            "the issuer's authorization endpoint is not a URL",
        );
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &signin.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &format!("openid {}", crate::auth::scopes::ACTIONS_APPROVE))
        .append_pair("state", &state)
        .append_pair("nonce", &random_token())
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let mut resp = Redirect::to(url.as_str()).into_response();
    // Only the browser that started this sign-in can finish it (no login CSRF).
    resp.headers_mut().insert(
        header::SET_COOKIE,
        cookie_header(web, SIGNIN_COOKIE, &state, "/approvals/callback", LOGIN_S),
    );
    resp
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
}

async fn callback(
    State(web): State<Arc<ApprovalWeb>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let started_here = match (q.state.as_deref(), cookie(&headers, SIGNIN_COOKIE)) {
        (Some(state), Some(mine)) => same(state, &mine),
        _ => false,
    };
    if !started_here {
        return message(
            StatusCode::BAD_REQUEST,
            "Sign-in not recognised",
            "this sign-in was not started in this browser; open the approval link again",
        );
    }
    let login = q
        .state
        .as_deref()
        .and_then(|s| web.logins.lock().unwrap_or_else(|e| e.into_inner()).remove(s));
    let Some(login) = login.filter(|l| l.started > Utc::now() - chrono::Duration::seconds(LOGIN_S)) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Sign-in not recognised",
            "this sign-in was not started here, was already used or took too long; open the approval link again",
        );
    };
    if let Some(e) = q.error {
        return message(
            StatusCode::UNAUTHORIZED,
            "Sign-in refused",
            &format!("{e}: {}", q.error_description.unwrap_or_default()),
        );
    }
    let (Some(code), Ok(signin), Some(validator), Some(redirect_uri)) =
        (q.code, &web.signin, &web.validator, web.redirect_uri())
    else {
        return message(StatusCode::BAD_REQUEST, "Sign-in incomplete", "no authorization code");
    };
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", signin.client_id.clone()),
        ("code_verifier", login.verifier),
    ];
    let mut req = web
        .http
        .post(&signin.token_endpoint)
        .timeout(std::time::Duration::from_secs(15));
    if let Some(secret) = &signin.client_secret {
        req = req.basic_auth(&signin.client_id, Some(secret));
        form.retain(|(k, _)| *k != "client_id");
    }
    let answer = match req.form(&form).send().await {
        Ok(r) if r.status().is_success() => r.json::<TokenAnswer>().await.map_err(|e| e.to_string()),
        Ok(r) => {
            let status = r.status();
            Err(format!("HTTP {status}: {}", r.text().await.unwrap_or_default()))
        }
        Err(e) => Err(e.to_string()),
    };
    let token = match answer {
        Ok(t) => t.access_token,
        Err(e) => {
            return message(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                &format!("the token exchange failed: {e}"),
            );
        }
    };
    let principal = match validator.validate(&token).await {
        Ok(p) => p,
        Err(e) if e.is_unavailable() => {
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                &format!("the issuer's keys cannot be fetched now; try again in a minute: {e}"),
            );
        }
        Err(e) => {
            return message(
                StatusCode::UNAUTHORIZED,
                "Sign-in refused",
                &format!("the token does not validate for this gateway: {e}"),
            );
        }
    };
    let approver = match Approver::authenticated(&principal, Channel::Page, Some(addr.to_string())) {
        Ok(a) => a,
        Err(e) => return message(StatusCode::FORBIDDEN, "Not an approver", &e.to_string()),
    };
    let expires = DateTime::from_timestamp(principal.expires_at, 0)
        .unwrap_or_else(Utc::now)
        .min(Utc::now() + chrono::Duration::seconds(SESSION_S));
    let Some(id) = new_session(&web, approver, &login.tx, expires) else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "too many open sessions; try again later",
        );
    };
    let mut resp = Redirect::to(&format!("/approvals/{}", login.tx)).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, session_cookie(&web, &id, &login.tx));
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(&web, SIGNIN_COOKIE, "", "/approvals/callback", 0),
    );
    resp
}

#[derive(Debug, Deserialize)]
struct FormDecision {
    csrf: String,
    decision: String,
    arguments_hash: String,
    target_id: String,
}

async fn decide_form(
    State(web): State<Arc<ApprovalWeb>>,
    Path(tx): Path<String>,
    headers: HeaderMap,
    Form(f): Form<FormDecision>,
) -> Response {
    let Some(s) = session(&web, &headers, &tx) else {
        return message(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "open the approval link again to sign in",
        );
    };
    if !same(&f.csrf, &s.csrf) {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "the form's CSRF token does not match this session",
        );
    }
    // Browsers send Origin with every form POST: one from elsewhere, or none, is refused
    // even with a valid cookie and token.
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if origin.is_none() || origin.map(str::to_owned) != web.origin() {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "the form was not posted from this page",
        );
    }
    let approve = match f.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return message(StatusCode::BAD_REQUEST, "Refused", "decision must be approve or reject"),
    };
    let shown = Shown {
        arguments_hash: f.arguments_hash,
        target_id: f.target_id,
    };
    match decide(&web, &tx, s.approver.clone(), shown, approve).await {
        Ok(r) => shell("Decided", request_view(&r, None, web.validator.is_none())).into_response(),
        Err(e) => message(status_of(&e), "Not decided", &e.to_string()),
    }
}
