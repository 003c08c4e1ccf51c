//! HTTP handlers of the simulator.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::Sim;
use super::state::{OrgState, Status, Window};
use super::{authcode, filter, oauth};

type Shared = Arc<Sim>;

pub fn router(sim: Shared) -> Router {
    let api = Router::new()
        .route("/api/v1/logs", get(logs))
        .route("/api/v1/users/{id}", get(read_user))
        .route("/api/v1/users/{id}/lifecycle/{op}", post(lifecycle))
        .route("/api/v1/users/{id}/sessions", delete(clear_sessions))
        .route("/api/v1/users/{id}/roles", get(list_roles))
        .route("/api/v1/users/{id}/groups", get(list_groups))
        .layer(middleware::from_fn_with_state(Arc::clone(&sim), gate));
    Router::new()
        .merge(api)
        .route("/api/flo/{alias}/invoke", any(invoke_flow))
        .route("/sim/outbox", get(outbox))
        .route("/sim/faults", get(get_faults).post(set_faults))
        .route("/oauth2/v1/token", post(oauth::org_token))
        .route("/oauth2/{server}/v1/device/authorize", post(oauth::device_authorize))
        .route("/oauth2/{server}/v1/token", post(oauth::token))
        .route("/oauth2/{server}/v1/authorize", get(authcode::authorize))
        .route("/oauth2/{server}/v1/authorize/signin", post(authcode::signin))
        .route("/sim/oauth/redirect-uris", post(authcode::register_redirect_uri))
        .route("/oauth2/{server}/v1/keys", get(oauth::keys))
        .route("/oauth2/{server}/.well-known/{doc}", get(oauth::metadata))
        .route(
            "/.well-known/oauth-authorization-server/oauth2/{server}",
            get(oauth::metadata_rfc8414),
        )
        .route("/sim/device/approve", post(oauth::approve))
        .route("/sim/device/deny", post(oauth::deny))
        .route("/sim/keys/rotate", post(oauth::rotate))
        .route("/sim/keys/retire", post(oauth::retire))
        .fallback(not_found)
        .with_state(sim)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn error_id() -> String {
    let mut rng = rand::rng();
    format!("oae{:020x}", rng.random::<u128>() >> 48)
}

/// An Okta error object.
pub fn okta_error(status: StatusCode, code: &str, summary: &str, causes: &[String]) -> Response {
    let causes: Vec<Value> = causes.iter().map(|c| json!({"errorSummary": c})).collect();
    let body = json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": error_id(),
        "errorCauses": causes,
    });
    (status, Json(body)).into_response()
}

/// Okta's 500 (also what a poisoned state lock answers).
fn internal_error() -> Response {
    okta_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "E0000009",
        "Internal Server Error",
        &[],
    )
}

async fn not_found() -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000008",
        "The requested path was not found",
        &[],
    )
}

/// Rate-limit bucket of a request, and its per-minute limit.
fn bucket(sim: &Sim, method: &Method, path: &str) -> (&'static str, u32) {
    if path.starts_with("/api/v1/logs") {
        ("logs", sim.config.logs_per_minute)
    } else if method == Method::GET {
        ("users_read", sim.config.user_reads_per_minute)
    } else {
        ("users_write", sim.config.user_writes_per_minute)
    }
}

/// The `okta.*` scopes an OAuth token needs for a call (any one of them).
fn required_scope(method: &Method, path: &str) -> Option<&'static [&'static str]> {
    if path.starts_with("/api/v1/logs") {
        Some(&["okta.logs.read"])
    } else if path.ends_with("/roles") {
        Some(&["okta.roles.read", "okta.roles.manage"])
    } else if path.ends_with("/groups") {
        Some(&[
            "okta.groups.read",
            "okta.groups.manage",
            "okta.users.read",
            "okta.users.manage",
        ])
    } else if method == Method::GET {
        Some(&["okta.users.read", "okta.users.manage"])
    } else {
        Some(&["okta.users.manage"])
    }
}

/// What every `/api/v1` request goes through: auth, faults, rate limits, Okta headers.
async fn gate(State(sim): State<Shared>, req: Request, next: Next) -> Response {
    let request_id = format!("{:x}", rand::rng().random::<u64>());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let ssws = authorization
        .strip_prefix("SSWS ")
        .is_some_and(|t| t.trim() == sim.config.api_token);
    // A service app's bearer token works within its okta.* scopes.
    let bearer_scopes = if ssws {
        None
    } else {
        oauth::org_token_scopes(&sim, &authorization)
    };
    let authorized = ssws || bearer_scopes.is_some();
    let missing_scope = bearer_scopes.as_ref().and_then(|held| {
        required_scope(req.method(), req.uri().path()).filter(|need| !need.iter().any(|n| held.iter().any(|h| h == n)))
    });
    if authorized && let Some(need) = missing_scope {
        return okta_error(
            StatusCode::FORBIDDEN,
            "E0000006",
            "You do not have permission to perform the requested action",
            &[format!("the token lacks {}", need.join(" or "))],
        );
    }
    let (name, limit) = bucket(&sim, req.method(), req.uri().path());
    enum Fault {
        None,
        TooMany,
        Concurrency,
        Error(StatusCode),
        Drop,
        LostAnswer,
    }
    let (fault, latency, window) = {
        let Ok(mut state) = sim.state.lock() else {
            return internal_error();
        };
        state.requests += 1;
        let latency = state.faults.latency_ms;
        let mut rng = rand::rng();
        let fault = if state.faults.lost_answer_writes > 0 && req.method() != Method::GET {
            state.faults.lost_answer_writes -= 1;
            Fault::LostAnswer
        } else if state.faults.burst_drop > 0 {
            state.faults.burst_drop -= 1;
            Fault::Drop
        } else if state.faults.drop_rate > 0.0 && rng.random_bool(state.faults.drop_rate.min(1.0)) {
            Fault::Drop
        } else if state.faults.burst_503 > 0 {
            state.faults.burst_503 -= 1;
            Fault::Error(StatusCode::SERVICE_UNAVAILABLE)
        } else if state.faults.error_rate > 0.0 && rng.random_bool(state.faults.error_rate.min(1.0)) {
            Fault::Error(StatusCode::INTERNAL_SERVER_ERROR)
        } else if state.faults.burst_429 > 0 {
            state.faults.burst_429 -= 1;
            Fault::Concurrency
        } else {
            Fault::None
        };
        let now = now_ms();
        let w = state.windows.entry(name).or_default();
        if now - w.start_ms >= 60_000 {
            *w = Window { start_ms: now, used: 0 };
        }
        let fault = if matches!(fault, Fault::None) && authorized && w.used >= limit {
            Fault::TooMany
        } else {
            fault
        };
        if authorized && !matches!(fault, Fault::TooMany | Fault::Concurrency) {
            w.used += 1;
        }
        (fault, latency, *w)
    };
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let burst_429 = authorized && matches!(fault, Fault::Concurrency);
    let mut resp = if !authorized {
        okta_error(StatusCode::UNAUTHORIZED, "E0000011", "Invalid token provided", &[])
    } else {
        match fault {
            Fault::None => next.run(req).await,
            Fault::TooMany | Fault::Concurrency => okta_error(
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
                &[],
            ),
            Fault::Error(status) => okta_error(status, "E0000009", "Internal Server Error", &[]),
            Fault::LostAnswer => {
                // Carried out, then the answer is lost on the way back.
                let _done = next.run(req).await;
                dropped_answer()
            }
            Fault::Drop => dropped_answer(),
        }
    };
    let h = resp.headers_mut();
    // A burst 429 stands for Okta's concurrency limit (reference.md §2.4): limit and
    // remaining read 0 and the reset is an estimate, here one second ahead.
    let (limit, remaining, reset) = if burst_429 {
        (0, 0, now_ms().div_euclid(1000) + 1)
    } else {
        (
            limit,
            limit.saturating_sub(window.used),
            (window.start_ms + 60_000).div_euclid(1000),
        )
    };
    h.insert("x-rate-limit-limit", HeaderValue::from(limit));
    h.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    h.insert("x-rate-limit-reset", HeaderValue::from(reset));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-okta-request-id", v);
    }
    resp
}

/// An answer whose body fails mid-stream: the server aborts the connection.
fn dropped_answer() -> Response {
    let stream = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"[{\"uuid\":")),
        Err(std::io::Error::other("connection dropped by fault switch")),
    ]);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn validation(field: &str, message: &str) -> Response {
    okta_error(
        StatusCode::BAD_REQUEST,
        "E0000001",
        &format!("Api validation failed: '{field}': {message}"),
        &[format!("{field}: {message}")],
    )
}

fn parse_time(field: &str, text: &str) -> Result<i64, Box<Response>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            Box::new(validation(
                field,
                "The date format in your query is not recognized. Please enter dates using ISO8601 string format.",
            ))
        })
}

fn words(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.extend(
            s.split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.')
                .filter(|w| !w.is_empty())
                .flat_map(|w| {
                    // Hyphenated and dotted values also match their parts.
                    let mut parts = vec![w.to_lowercase()];
                    parts.extend(
                        w.split(['.', '@'])
                            .filter(|p| !p.is_empty() && *p != w)
                            .map(str::to_lowercase),
                    );
                    parts
                }),
        ),
        Value::Array(a) => a.iter().for_each(|x| words(x, out)),
        Value::Object(o) => o.values().for_each(|x| words(x, out)),
        _ => {}
    }
}

/// `GET /api/v1/logs` (reference.md §2).
async fn logs(State(sim): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let now = now_ms();
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if l <= 1000 => l,
        Some(_) => return validation("limit", "limit must be an integer between 0 and 1000"),
    };
    let descending = match q.get("sortOrder").map(String::as_str) {
        None | Some("ASCENDING") => false,
        Some("DESCENDING") => true,
        Some(_) => return validation("sortOrder", "sortOrder must be ASCENDING or DESCENDING"),
    };
    if q.contains_key("after") && q.contains_key("since") {
        return validation("after", "after cannot be used together with since");
    }
    let since = match q.get("since").map(|s| parse_time("since", s)).transpose() {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let until = match q.get("until").map(|s| parse_time("until", s)).transpose() {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if since.is_some_and(|s| s < now - 180 * 86_400_000) {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000053",
            "Invalid request. The since parameter is over 180 days prior to the current day.",
            &[],
        );
    }
    let filter = match q.get("filter").map(|f| filter::parse(f)).transpose() {
        Ok(f) => f,
        Err(e) => {
            let status = StatusCode::BAD_REQUEST;
            return okta_error(status, e.code, &e.message, &[]);
        }
    };
    let keywords: Vec<String> = q
        .get("q")
        .map(|s| s.split_whitespace().map(str::to_lowercase).collect())
        .unwrap_or_default();
    if keywords.len() > 10 || keywords.iter().any(|k| k.chars().count() > 40) {
        return validation("q", "at most 10 keywords of at most 40 characters each");
    }
    let matches = |v: &Value| {
        filter.as_ref().is_none_or(|f| f.matches(v)) && {
            if keywords.is_empty() {
                true
            } else {
                let mut w = Vec::new();
                words(v, &mut w);
                keywords.iter().all(|k| w.iter().any(|x| x == k))
            }
        }
    };
    let base = format!("{}/api/v1/logs", base_url(&headers));
    let mut keep: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| *k != "after" && *k != "since")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    keep.sort();
    let link = |after: Option<&str>| -> String {
        let mut pairs = keep.clone();
        if let Some(a) = after {
            pairs.push(("after".into(), a.into()));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            base.clone()
        } else {
            format!("{base}?{query}")
        }
    };
    let self_query = serde_urlencoded::to_string(q.iter().collect::<Vec<_>>()).unwrap_or_default();
    let self_link = if self_query.is_empty() {
        base.clone()
    } else {
        format!("{base}?{self_query}")
    };

    let Ok(state) = sim.state.lock() else {
        return internal_error();
    };
    let polling = until.is_none() && !descending;
    let (page, next): (Vec<usize>, Option<String>) = if polling {
        // Persistence order; infinitely many pages: `next` is always there.
        let start = match q.get("after") {
            Some(a) => match cursor(a).and_then(|(_, seq)| usize::try_from(seq + 1).ok()) {
                Some(s) => s,
                None => return validation("after", "invalid cursor"),
            },
            None => {
                let since = since.unwrap_or(now - 7 * 86_400_000);
                state.events.partition_point(|e| e.persist_ms < since)
            }
        };
        let mut page = Vec::new();
        let mut last = start as i64 - 1;
        for (i, e) in state.events.iter().enumerate().skip(start) {
            if page.len() >= limit {
                break;
            }
            last = i as i64;
            if matches(&e.value) {
                page.push(i);
            }
        }
        let at = usize::try_from(last)
            .ok()
            .and_then(|i| state.events.get(i))
            .map_or(now, |e| e.persist_ms);
        (page, Some(format!("{at}_{last}")))
    } else {
        // Bounded: ordered and filtered by `published`, finitely many pages.
        let since = since.unwrap_or(until.unwrap_or(now) - 7 * 86_400_000);
        let until = until.unwrap_or(now);
        let mut hits: Vec<usize> = state
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.published_ms >= since && e.published_ms < until && matches(&e.value))
            .map(|(i, _)| i)
            .collect();
        hits.sort_by_key(|&i| (state.events[i].published_ms, i));
        if descending {
            hits.reverse();
        }
        let start = match q.get("after") {
            Some(a) => match cursor(a) {
                Some((_, seq)) => hits.iter().position(|&i| i as i64 == seq).map_or(hits.len(), |p| p + 1),
                None => return validation("after", "invalid cursor"),
            },
            None => 0,
        };
        let page: Vec<usize> = hits.iter().skip(start).take(limit).copied().collect();
        let more = start + page.len() < hits.len();
        let next = if more {
            page.last().map(|&i| format!("{}_{}", state.events[i].published_ms, i))
        } else {
            None
        };
        (page, next)
    };
    let mut body = String::with_capacity(page.len() * 2048 + 2);
    body.push('[');
    for (n, &i) in page.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&state.events[i].raw);
    }
    body.push(']');
    drop(state);
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("<{self_link}>; rel=\"self\"")) {
        h.append(header::LINK, v);
    }
    if let Some(after) = next
        && let Ok(v) = HeaderValue::from_str(&format!("<{}>; rel=\"next\"", link(Some(&after))))
    {
        h.append(header::LINK, v);
    }
    resp
}

/// Parses `<ms>_<seq>` (a cursor this simulator issued; `seq` is -1 before the first event).
fn cursor(text: &str) -> Option<(i64, i64)> {
    let (ms, seq) = text.split_once('_')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn user_not_found(key: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {key} (User)"),
        &[],
    )
}

async fn read_user(State(sim): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Ok(state) = sim.state.lock() else {
        return internal_error();
    };
    let Some(i) = state.user_index(&id) else {
        return user_not_found(&id);
    };
    let u = &state.users[i];
    let etag = format!("W/\"{:x}\"", u.last_updated_ms);
    let mut resp = Json(u.to_json(&base_url(&headers))).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// `GET /api/v1/users/{id}/roles`: the user's role assignments, as Okta lists them.
async fn list_roles(State(sim): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(state) = sim.state.lock() else {
        return internal_error();
    };
    let Some(i) = state.user_index(&id) else {
        return user_not_found(&id);
    };
    let u = &state.users[i];
    let created = DateTime::<Utc>::from_timestamp_millis(u.created_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let roles: Vec<Value> = u
        .admin_roles
        .iter()
        .enumerate()
        .map(|(n, role)| {
            json!({
                "id": format!("ra1sim{:014}", i * 10 + n),
                "label": role.replace('_', " "),
                "type": role,
                "status": "ACTIVE",
                "created": created,
                "lastUpdated": created,
                "assignmentType": "USER"
            })
        })
        .collect();
    Json(roles).into_response()
}

/// `GET /api/v1/users/{id}/groups`: `Everyone` and the user's own groups, as Okta lists
/// them (`id`, `type`, `profile.name`).
async fn list_groups(State(sim): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(state) = sim.state.lock() else {
        return internal_error();
    };
    let Some(i) = state.user_index(&id) else {
        return user_not_found(&id);
    };
    let u = &state.users[i];
    let group = |name: &str, kind: &str| {
        let digest: u64 = name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        json!({
            "id": format!("00g{:017}", digest % 100_000_000_000_000_000),
            "type": kind,
            "profile": {"name": name, "description": null},
            "objectClass": ["okta:user_group"]
        })
    };
    let mut groups = vec![group("Everyone", "BUILT_IN")];
    groups.extend(u.groups.iter().map(|g| group(g, "OKTA_GROUP")));
    Json(groups).into_response()
}

/// The outcome of a lifecycle operation.
pub enum Lifecycle {
    /// 200 with this JSON body (`Value::Null` for an empty body).
    Ok(Value),
    /// An Okta error.
    Err(Response),
}

/// Applies a lifecycle operation with Okta's state machine, logging the event Okta would.
pub fn apply_lifecycle(sim: &Sim, base: &str, key: &str, op: &str, params: &HashMap<String, String>) -> Lifecycle {
    let now = now_ms();
    let Ok(mut state) = sim.state.lock() else {
        return Lifecycle::Err(internal_error());
    };
    let Some(i) = state.user_index(key) else {
        return Lifecycle::Err(user_not_found(key));
    };
    let status = state.users[i].status;
    let bad = |cause: &str| {
        Lifecycle::Err(okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            &format!("Api validation failed: {cause}"),
            &[cause.to_owned()],
        ))
    };
    let not_allowed = || {
        Lifecycle::Err(okta_error(
            StatusCode::FORBIDDEN,
            "E0000038",
            "This operation is not allowed in the user's current status.",
            &[],
        ))
    };
    let (new_status, event_type, body) = match op {
        "suspend" if status == Status::Active => (Status::Suspended, "user.lifecycle.suspend", Value::Null),
        "suspend" => return bad("Cannot suspend a user that is not active"),
        "unsuspend" if status == Status::Suspended => (Status::Active, "user.lifecycle.unsuspend", Value::Null),
        "unsuspend" => return bad("Cannot unsuspend a user that is not suspended"),
        "unlock" if matches!(status, Status::LockedOut | Status::Active) => {
            (Status::Active, "user.account.unlock", Value::Null)
        }
        "unlock" => {
            return Lifecycle::Err(okta_error(
                StatusCode::FORBIDDEN,
                "E0000032",
                "Unlock is not allowed for this user.",
                &[],
            ));
        }
        "deactivate" if status != Status::Deprovisioned => {
            (Status::Deprovisioned, "user.lifecycle.deactivate", Value::Null)
        }
        "deactivate" => return bad("Cannot deactivate a user that is already deprovisioned"),
        "reset_password" => {
            let send_email = match params.get("sendEmail").map(String::as_str) {
                Some("true") => true,
                Some("false") => false,
                _ => {
                    return Lifecycle::Err(okta_error(
                        StatusCode::BAD_REQUEST,
                        "E0000028",
                        "The request is missing a required parameter.",
                        &["sendEmail: The parameter is required.".to_owned()],
                    ));
                }
            };
            if !matches!(
                status,
                Status::Active | Status::LockedOut | Status::Recovery | Status::PasswordExpired
            ) {
                return not_allowed();
            }
            if params.get("revokeSessions").is_some_and(|v| v == "true") {
                state.users[i].active_sessions = 0;
            }
            let body = if send_email {
                let login = state.users[i].login.clone();
                state
                    .outbox
                    .push(json!({"to": login, "kind": "password_reset", "at": now}));
                json!({})
            } else {
                json!({"resetPasswordUrl": format!("{base}/reset_password/{:x}", rand::rng().random::<u64>())})
            };
            (Status::Recovery, "user.account.reset_password", body)
        }
        "expire_password" if matches!(status, Status::Active | Status::Recovery | Status::LockedOut) => {
            (Status::PasswordExpired, "user.account.expire_password", Value::Null)
        }
        "expire_password" => return not_allowed(),
        _ => {
            return Lifecycle::Err(okta_error(
                StatusCode::NOT_FOUND,
                "E0000008",
                "The requested path was not found",
                &[],
            ));
        }
    };
    let u = &mut state.users[i];
    u.status = new_status;
    u.status_changed_ms = now;
    u.last_updated_ms = now;
    if op == "reset_password" || op == "expire_password" {
        u.password_changed_ms = now;
    }
    let body = if op == "expire_password" { u.to_json(base) } else { body };
    let event = action_event(sim, &state, event_type, i, now);
    state.append(event, now);
    Lifecycle::Ok(body)
}

/// The System Log event of an API-token action on user `i`.
fn action_event(sim: &Sim, state: &OrgState, event_type: &str, i: usize, now: i64) -> String {
    let u = &state.users[i];
    let admin = sim
        .tenant
        .admins
        .first()
        .map(|&a| &sim.tenant.users[a as usize])
        .map(|a| (a.id.clone(), a.login.clone(), a.name.clone()))
        .unwrap_or_else(|| {
            (
                "00u1simadmin0000000".into(),
                "admin@example.com".into(),
                "Sim Admin".into(),
            )
        });
    let published = DateTime::<Utc>::from_timestamp_millis(now)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut rng = rand::rng();
    let uuid = uuid::Uuid::from_u128(rng.random::<u128>() & !(0xf << 76) | (1 << 76)).to_string();
    let request_id = format!("{:x}", rng.random::<u64>());
    json!({
        "actor": {"id": admin.0, "type": "User", "alternateId": admin.1, "displayName": admin.2, "detailEntry": null},
        "client": {"userAgent": {"rawUserAgent": "okta-sdk-java/8.2.2", "os": "Unknown", "browser": "UNKNOWN"},
                   "zone": "null", "device": "Unknown", "id": null, "ipAddress": "127.0.0.1",
                   "geographicalContext": {}},
        "device": null,
        "authenticationContext": {"authenticationProvider": null, "credentialProvider": null, "credentialType": null,
                                  "issuer": null, "interface": null, "authenticationStep": 0, "externalSessionId": "trs-sim"},
        "displayMessage": event_type,
        "eventType": event_type,
        "outcome": {"result": "SUCCESS", "reason": null},
        "published": published,
        "securityContext": {"asNumber": null, "asOrg": null, "isp": null, "domain": null, "isProxy": null},
        "severity": "INFO",
        "debugContext": {"debugData": {"requestId": request_id, "requestUri": format!("/api/v1/users/{}/lifecycle", u.id),
                                        "url": format!("/api/v1/users/{}/lifecycle?", u.id)}},
        "legacyEventType": null,
        "transaction": {"type": "WEB", "id": request_id, "detail": {"requestApiTokenId": "00T1simapitoken00001"}},
        "uuid": uuid,
        "version": "0",
        "request": {"ipChain": [{"ip": "127.0.0.1", "geographicalContext": {}, "version": "V4", "source": null}]},
        "target": [{"id": u.id, "type": "User", "alternateId": u.login, "displayName": format!("{} {}", u.first, u.last), "detailEntry": null}]
    })
    .to_string()
}

async fn lifecycle(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path((id, op)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match apply_lifecycle(&sim, &base_url(&headers), &id, &op, &params) {
        Lifecycle::Ok(Value::Null) => StatusCode::OK.into_response(),
        Lifecycle::Ok(body) => Json(body).into_response(),
        Lifecycle::Err(r) => r,
    }
}

async fn clear_sessions(State(sim): State<Shared>, Path(id): Path<String>) -> Response {
    let now = now_ms();
    let Ok(mut state) = sim.state.lock() else {
        return internal_error();
    };
    let Some(i) = state.user_index(&id) else {
        return user_not_found(&id);
    };
    state.users[i].active_sessions = 0;
    let event = action_event(&sim, &state, "user.session.clear", i, now);
    state.append(event, now);
    StatusCode::NO_CONTENT.into_response()
}

/// `POST|GET /api/flo/{alias}/invoke`: the reference design's flows.
async fn invoke_flow(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(alias): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Option<Json<Value>>,
) -> Response {
    let token = query.get("clientToken").cloned().or_else(|| {
        headers
            .get("x-api-client-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    const FLOWS: [&str; 6] = [
        "suspend_user",
        "unsuspend_user",
        "reset_password",
        "search_logs",
        "read_user",
        "notify_user",
    ];
    if !FLOWS.contains(&alias.as_str()) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Flow not found", "alias": alias})),
        )
            .into_response();
    }
    if token.as_deref() != Some(sim.config.workflows_token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "Unauthorized", "message": "Invalid client token"})),
        )
            .into_response();
    }
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let input = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .or_else(|| query.get(k).map(String::as_str))
            .map(str::to_owned)
    };
    let base = base_url(&headers);
    let flow_error = |status: StatusCode, message: String| {
        (status, Json(json!({"status": "error", "message": message}))).into_response()
    };
    match alias.as_str() {
        "suspend_user" | "unsuspend_user" | "reset_password" => {
            let Some(login) = input("user_login") else {
                return flow_error(StatusCode::BAD_REQUEST, "user_login is required".into());
            };
            let (op, done) = match alias.as_str() {
                "suspend_user" => ("suspend", "suspended"),
                "unsuspend_user" => ("unsuspend", "active"),
                _ => ("reset_password", "recovery"),
            };
            let params: HashMap<String, String> = [("sendEmail".to_owned(), "true".to_owned())].into();
            match apply_lifecycle(&sim, &base, &login, op, &params) {
                Lifecycle::Ok(_) => {
                    let id = sim
                        .state
                        .lock()
                        .ok()
                        .and_then(|s| s.user_index(&login).map(|i| s.users[i].id.clone()));
                    Json(json!({"status": done, "userId": id, "user_login": login, "reason": input("reason")}))
                        .into_response()
                }
                Lifecycle::Err(r) => {
                    let status = r.status();
                    let okta = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap_or_default();
                    let okta: Value = serde_json::from_slice(&okta).unwrap_or(Value::Null);
                    (status, Json(json!({"status": "error", "okta": okta}))).into_response()
                }
            }
        }
        "read_user" => {
            let Some(login) = input("user_login") else {
                return flow_error(StatusCode::BAD_REQUEST, "user_login is required".into());
            };
            let Ok(state) = sim.state.lock() else {
                return flow_error(StatusCode::INTERNAL_SERVER_ERROR, "busy".into());
            };
            match state.user_index(&login) {
                Some(i) => Json(json!({"status": "ok", "user": state.users[i].to_json(&base)})).into_response(),
                None => flow_error(StatusCode::NOT_FOUND, format!("user {login} not found")),
            }
        }
        "search_logs" => {
            let filter = match input("filter").map(|f| filter::parse(&f)).transpose() {
                Ok(f) => f,
                Err(e) => return flow_error(StatusCode::BAD_REQUEST, e.message),
            };
            let login = input("user_login");
            let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(100).min(1000) as usize;
            let Ok(state) = sim.state.lock() else {
                return flow_error(StatusCode::INTERNAL_SERVER_ERROR, "busy".into());
            };
            let events: Vec<&Value> = state
                .events
                .iter()
                .rev()
                .map(|e| &e.value)
                .filter(|v| filter.as_ref().is_none_or(|f| f.matches(v)))
                .filter(|v| {
                    login
                        .as_deref()
                        .is_none_or(|l| v["actor"]["alternateId"] == l || v["target"][0]["alternateId"] == l)
                })
                .take(limit)
                .collect();
            Json(json!({"status": "ok", "count": events.len(), "events": events})).into_response()
        }
        _ => {
            let Some(login) = input("user_login") else {
                return flow_error(StatusCode::BAD_REQUEST, "user_login is required".into());
            };
            let Ok(mut state) = sim.state.lock() else {
                return flow_error(StatusCode::INTERNAL_SERVER_ERROR, "busy".into());
            };
            if state.user_index(&login).is_none() {
                return flow_error(StatusCode::NOT_FOUND, format!("user {login} not found"));
            }
            let message = input("message").or_else(|| input("reason")).unwrap_or_default();
            state
                .outbox
                .push(json!({"to": login, "kind": "notification", "message": message, "at": now_ms()}));
            Json(json!({"status": "sent", "user_login": login})).into_response()
        }
    }
}

async fn outbox(State(sim): State<Shared>) -> Response {
    let items = sim.state.lock().map(|s| s.outbox.clone()).unwrap_or_default();
    Json(items).into_response()
}

async fn get_faults(State(sim): State<Shared>) -> Response {
    let faults = sim.state.lock().map(|s| s.faults.clone()).unwrap_or_default();
    Json(faults).into_response()
}

async fn set_faults(State(sim): State<Shared>, Json(faults): Json<super::state::Faults>) -> Response {
    if let Ok(mut s) = sim.state.lock() {
        s.faults = faults.clone();
    }
    Json(faults).into_response()
}
