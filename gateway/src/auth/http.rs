//! The HTTP side of the resource server: the protected-resource metadata document
//! (RFC 9728) and the bearer check in front of `/mcp`.
//!
//! A request without a token, or with one that does not validate, gets 401 with
//! `WWW-Authenticate: Bearer resource_metadata="…"` so a client can find the issuer; a
//! `tools/call` for a tool whose scope the token lacks gets 403 `insufficient_scope` naming
//! the scope (the MCP authorization spec's step-up challenge). Each refusal is audited with
//! the peer's address; unauthenticated ones through [`super::refusals`], so a flood is
//! counted rather than written one record per request. A valid principal travels to the
//! tools in the request's extensions.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use idgw_schemas::AuditPhase;
use serde_json::json;

use super::scopes;
use super::{Principal, Validator};
use crate::audit::{self, AuditLog};

/// Largest JSON-RPC body read for the scope check (larger bodies are refused).
const MAX_BODY: usize = 4 << 20;

/// What the bearer check needs.
#[derive(Debug, Clone)]
pub struct Guard {
    pub validator: Arc<Validator>,
    /// The gateway's resource URI.
    pub resource: String,
    /// The metadata document's URL (in `WWW-Authenticate`).
    pub metadata_url: String,
    pub audit: Arc<AuditLog>,
    /// Unauthenticated refusals of the current window.
    pub refusals: Arc<super::refusals::Refusals>,
}

/// The RFC 9728 document.
pub fn metadata_document(resource: &str, issuer: &str) -> serde_json::Value {
    json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": scopes::ALL,
        "bearer_methods_supported": ["header"],
        "resource_name": "idgw MCP gateway",
        "resource_documentation": "https://github.com/mcp-identity-gateway/mcp-identity-gateway/blob/main/docs/mcp-tools.md",
    })
}

/// Where the metadata of `resource` is served (RFC 9728 §3.1: the well-known path goes
/// before the resource's path).
pub fn metadata_url(resource: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(resource).map_err(|e| format!("resource URI {resource:?}: {e}"))?;
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{}/.well-known/oauth-protected-resource{path}",
        url.origin().ascii_serialization()
    ))
}

/// Routes serving the metadata at `/.well-known/oauth-protected-resource` and at the
/// path-suffixed form for `/mcp`.
pub fn metadata_routes(resource: String, issuer: String) -> Router {
    let doc = Arc::new(metadata_document(&resource, &issuer));
    let get = move || {
        let doc = Arc::clone(&doc);
        async move { Json((*doc).clone()) }
    };
    Router::new()
        .route("/.well-known/oauth-protected-resource", axum::routing::get(get.clone()))
        .route("/.well-known/oauth-protected-resource/mcp", axum::routing::get(get))
}

fn challenge(status: StatusCode, value: String, message: &str) -> Response {
    let mut resp = (
        status,
        Json(json!({"error": if status == StatusCode::FORBIDDEN { "insufficient_scope" } else { "invalid_token" }, "error_description": message})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn quote(s: &str) -> String {
    s.replace(['"', '\\'], "'")
}

fn audit_refusal(
    log: &AuditLog,
    action: &str,
    principal: Option<&Principal>,
    client: Option<String>,
    remote_addr: Option<String>,
    error: &str,
) {
    let tx = audit::new_transaction_id();
    let mut r = audit::record(&tx, AuditPhase::Outcome, action, "denied");
    r.principal = principal.map(|p| p.subject.clone());
    r.scopes = principal.map(|p| p.scopes.clone()).unwrap_or_default();
    r.token_id = principal.and_then(|p| p.token_id.clone());
    r.client = client.as_deref().map(super::refusals::clip);
    r.remote_addr = remote_addr;
    r.error = Some(super::refusals::clip(error));
    if let Err(e) = log.append(r, false) {
        tracing::error!(error = %e, "cannot audit a refused request");
    }
}

/// The tool a JSON-RPC body calls, if it is a `tools/call`.
fn called_tool(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Call {
        method: String,
        #[serde(default)]
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        name: String,
    }
    let call: Call = serde_json::from_slice(body).ok()?;
    (call.method == "tools/call").then_some(call.params?.name)
}

/// The bearer check (an axum middleware).
pub async fn require_bearer(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let www = |extra: &str| format!("Bearer resource_metadata=\"{}\"{extra}", quote(&guard.metadata_url));
    let client = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .map(str::to_owned);
    let remote = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string());
    let unauthenticated = |reason: &str| {
        if guard.refusals.note(remote.as_deref(), reason) {
            audit_refusal(
                &guard.audit,
                "http_request",
                None,
                client.clone(),
                remote.clone(),
                reason,
            );
        }
    };
    let Some(token) = token else {
        crate::metrics::METRICS.auth_failure("no_token");
        unauthenticated("no bearer token");
        return challenge(StatusCode::UNAUTHORIZED, www(""), "a bearer token is required");
    };
    let principal = match guard.validator.validate(&token).await {
        Ok(p) => p,
        // The issuer's keys are out of reach: the token may well be good, so the client
        // keeps it and retries instead of signing in again.
        Err(e) if e.is_unavailable() => {
            crate::metrics::METRICS.auth_failure("issuer_unavailable");
            unauthenticated(&format!("issuer unavailable: {e}"));
            let mut resp = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "temporarily_unavailable", "error_description": "the issuer's signing keys cannot be fetched now; keep the token and retry"})),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            return resp;
        }
        Err(e) => {
            let msg = e.to_string();
            crate::metrics::METRICS.auth_failure("invalid_token");
            unauthenticated(&format!("invalid token: {msg}"));
            return challenge(
                StatusCode::UNAUTHORIZED,
                www(&format!(
                    ", error=\"invalid_token\", error_description=\"{}\"",
                    quote(&msg)
                )),
                &msg,
            );
        }
    };
    // Only POSTs carry JSON-RPC calls; read the body to learn which tool is called.
    let (mut parts, body) = req.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    if let Some(tool) = called_tool(&bytes)
        && let Some(needed) = scopes::required(&tool)
        && !scopes::grants(&principal.scopes, needed)
    {
        crate::metrics::METRICS.auth_failure("insufficient_scope");
        audit_refusal(
            &guard.audit,
            &tool,
            Some(&principal),
            client,
            remote,
            &format!("insufficient_scope: needs {needed}"),
        );
        return challenge(
            StatusCode::FORBIDDEN,
            www(&format!(
                ", error=\"insufficient_scope\", scope=\"{needed}\", error_description=\"{tool} needs {needed}\""
            )),
            &format!("{tool} needs the scope {needed}"),
        );
    }
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_called_tool_is_read_from_json_rpc() {
        let call = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"suspend_user","arguments":{}}}"#;
        assert_eq!(called_tool(call).as_deref(), Some("suspend_user"));
        assert_eq!(called_tool(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#), None);
        assert_eq!(called_tool(b"not json"), None);
    }

    #[test]
    fn metadata_url_puts_the_well_known_path_first() {
        assert_eq!(
            metadata_url("http://127.0.0.1:8765/mcp").unwrap(),
            "http://127.0.0.1:8765/.well-known/oauth-protected-resource/mcp"
        );
        assert!(metadata_url("not a url").is_err());
    }

    #[test]
    fn metadata_names_resource_issuer_and_scopes() {
        let d = metadata_document("http://127.0.0.1:8765/mcp", "https://example.okta.com/oauth2/default");
        assert_eq!(d["resource"], "http://127.0.0.1:8765/mcp");
        assert_eq!(d["authorization_servers"][0], "https://example.okta.com/oauth2/default");
        assert!(
            d["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("mcp:user:write"))
        );
    }
}
