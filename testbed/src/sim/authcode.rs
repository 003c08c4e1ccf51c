//! The authorization-code grant with PKCE (RFC 7636) of the custom authorization server,
//! as Okta serves it (reference.md §4): `GET /oauth2/{as}/v1/authorize` checks the client,
//! the registered redirect URI and the S256 code challenge (public clients must send one),
//! then shows a sign-in page; a successful sign-in redirects to the redirect URI with a
//! single-use code valid for 60 seconds; `POST /v1/token` with
//! `grant_type=authorization_code` checks the redirect URI and the code verifier.
//!
//! The sign-in page stands in for Okta's hosted sign-in: a person types a login of the org
//! and a password (any non-empty one; the simulator keeps none) and signs in. Deactivated
//! and suspended users cannot. Redirect URIs are registered per org with
//! `POST /sim/oauth/redirect-uris {"redirect_uri"}` (Okta: the app's sign-in redirect URIs).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine as _;
use chrono::Utc;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Sim;
use super::oauth::{issue_access_token, oauth_error};
use super::state::Status;

/// How long a code is valid (Okta: 60 seconds).
const CODE_TTL_MS: i64 = 60_000;
/// How long a sign-in page may stay open.
const SIGNIN_TTL_MS: i64 = 600_000;

/// An authorize request waiting for the person to sign in.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<String>,
    challenge: String,
    expires_ms: i64,
}

/// An issued code.
#[derive(Debug, Clone)]
pub struct IssuedCode {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: String,
    login: String,
    expires_ms: i64,
}

fn random() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::rng().random::<[u8; 24]>())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn error_page(status: StatusCode, text: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><title>Error</title><h1>Error</h1><p id=\"error\">{}</p>",
            escape(text)
        )),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    client_id: Option<String>,
    response_type: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// Redirects to the client with an OAuth error.
fn redirect_error(redirect_uri: &str, state: Option<&str>, error: &str, description: &str) -> Response {
    let mut url = match reqwest_free_url(redirect_uri) {
        Some(u) => u,
        None => return error_page(StatusCode::BAD_REQUEST, description),
    };
    url.push_str(if url.contains('?') { "&" } else { "?" });
    let mut q = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        q.push(("state", s));
    }
    url.push_str(&serde_urlencoded::to_string(q).unwrap_or_default());
    (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
}

/// The redirect URI as given, if it is an absolute http(s) URL without a fragment.
fn reqwest_free_url(uri: &str) -> Option<String> {
    ((uri.starts_with("http://") || uri.starts_with("https://")) && !uri.contains('#')).then(|| uri.to_owned())
}

/// `GET /oauth2/{as}/v1/authorize`.
pub async fn authorize(
    State(sim): State<Arc<Sim>>,
    Path(server): Path<String>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let Some(client_id) = q.client_id.filter(|c| sim.config.oauth_clients.contains(c)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The 'client_id' parameter is invalid or the client is not registered.",
        );
    };
    let registered = {
        let auth = sim.auth.lock().unwrap_or_else(|e| e.into_inner());
        q.redirect_uri
            .as_ref()
            .is_some_and(|r| auth.redirect_uris.contains(r) || sim.config.redirect_uris.contains(r))
    };
    let Some(redirect_uri) = q.redirect_uri.filter(|_| registered) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The 'redirect_uri' parameter must be a Login redirect URI in the client app settings.",
        );
    };
    let state = q.state.as_deref();
    if q.response_type.as_deref() != Some("code") {
        return redirect_error(
            &redirect_uri,
            state,
            "unsupported_response_type",
            "The response type is not supported by the authorization server. Configured response types: [code].",
        );
    }
    let Some(challenge) = q.code_challenge.filter(|c| (43..=128).contains(&c.len())) else {
        return redirect_error(
            &redirect_uri,
            state,
            "invalid_request",
            "PKCE code challenge is required when the token endpoint authentication method is 'NONE'.",
        );
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return redirect_error(
            &redirect_uri,
            state,
            "invalid_request",
            "'code_challenge_method' is invalid. It must be 'S256'.",
        );
    }
    let scopes: Vec<String> = q
        .scope
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return redirect_error(
            &redirect_uri,
            state,
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        );
    }
    let id = random();
    {
        let mut auth = sim.auth.lock().unwrap_or_else(|e| e.into_inner());
        let now = Utc::now().timestamp_millis();
        auth.authorize_requests.retain(|_, r| r.expires_ms > now);
        auth.authorize_requests.insert(
            id.clone(),
            AuthorizeRequest {
                client_id,
                redirect_uri,
                state: q.state,
                scopes,
                challenge,
                expires_ms: now + SIGNIN_TTL_MS,
            },
        );
    }
    signin_page(&server, &id, None)
}

fn signin_page(server: &str, id: &str, error: Option<&str>) -> Response {
    let error = error.map_or_else(String::new, |e| {
        format!("<p id=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign In</title></head><body>\
         <h1>Sign In</h1>{error}\
         <form method=\"post\" action=\"/oauth2/{server}/v1/authorize/signin\">\
         <input type=\"hidden\" name=\"request\" value=\"{id}\">\
         <label>Username <input id=\"username\" name=\"username\" autocomplete=\"username\"></label>\
         <label>Password <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\
         <button id=\"signin\" type=\"submit\">Sign In</button></form></body></html>",
        server = escape(server),
        id = escape(id),
    ))
    .into_response()
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    request: String,
    username: String,
    password: String,
}

/// `POST /oauth2/{as}/v1/authorize/signin`: the person at the sign-in page.
pub async fn signin(State(sim): State<Arc<Sim>>, Path(server): Path<String>, Form(f): Form<SignInForm>) -> Response {
    let now = Utc::now().timestamp_millis();
    let request = {
        let auth = sim.auth.lock().unwrap_or_else(|e| e.into_inner());
        auth.authorize_requests.get(&f.request).cloned()
    };
    let Some(request) = request.filter(|r| r.expires_ms > now) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in request has expired. Start again from the application.",
        );
    };
    let login = {
        let state = sim.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .user_index(f.username.trim())
            .map(|i| &state.users[i])
            .filter(|u| u.status == Status::Active && !f.password.is_empty())
            .map(|u| u.login.clone())
    };
    let Some(login) = login else {
        return signin_page(&server, &f.request, Some("Unable to sign in"));
    };
    let code = random();
    {
        let mut auth = sim.auth.lock().unwrap_or_else(|e| e.into_inner());
        auth.authorize_requests.remove(&f.request);
        auth.codes.retain(|_, c| c.expires_ms > now);
        auth.codes.insert(
            code.clone(),
            IssuedCode {
                client_id: request.client_id,
                redirect_uri: request.redirect_uri.clone(),
                scopes: request.scopes,
                challenge: request.challenge,
                login,
                expires_ms: now + CODE_TTL_MS,
            },
        );
    }
    let mut q = vec![("code", code.as_str())];
    if let Some(s) = request.state.as_deref() {
        q.push(("state", s));
    }
    let sep = if request.redirect_uri.contains('?') { "&" } else { "?" };
    let location = format!(
        "{}{sep}{}",
        request.redirect_uri,
        serde_urlencoded::to_string(q).unwrap_or_default()
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The fields of a token request this grant reads.
#[derive(Debug, Default)]
pub struct CodeGrant {
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub client_id: Option<String>,
}

/// `POST /oauth2/{as}/v1/token` with `grant_type=authorization_code`.
pub fn token(sim: &Sim, headers: &HeaderMap, server: &str, g: CodeGrant) -> Response {
    let now = Utc::now().timestamp_millis();
    // Single use: taken out whatever happens next.
    let issued = {
        let mut auth = sim.auth.lock().unwrap_or_else(|e| e.into_inner());
        g.code.as_ref().and_then(|c| auth.codes.remove(c))
    };
    let Some(issued) = issued.filter(|c| c.expires_ms > now) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The authorization code is invalid or has expired.",
        );
    };
    if g.client_id.as_deref() != Some(issued.client_id.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "No client credentials found.",
        );
    }
    if g.redirect_uri.as_deref() != Some(issued.redirect_uri.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The 'redirect_uri' does not match the redirection URI used in the authorization request.",
        );
    }
    let verified = g.code_verifier.as_ref().is_some_and(|v| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == issued.challenge
    });
    if !verified {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed.");
    }
    issue_access_token(sim, headers, server, &issued.client_id, &issued.login, issued.scopes)
}

#[derive(Debug, Deserialize)]
pub struct RedirectUri {
    redirect_uri: String,
}

/// `POST /sim/oauth/redirect-uris {"redirect_uri"}`: registers a sign-in redirect URI.
pub async fn register_redirect_uri(State(sim): State<Arc<Sim>>, Json(r): Json<RedirectUri>) -> Response {
    if reqwest_free_url(&r.redirect_uri).is_none() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "not an absolute http(s) URI",
        );
    }
    sim.auth
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .redirect_uris
        .insert(r.redirect_uri.clone());
    Json(json!({"redirect_uri": r.redirect_uri})).into_response()
}
