//! The org's custom authorization server (reference.md §4): the OAuth 2.0 Device
//! Authorization Grant, RS256 access tokens with Okta's claims, a JWKS whose keys can
//! rotate, and discovery documents. `POST /sim/device/approve` and `/sim/device/deny` stand
//! in for the person at the verification page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine as _;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::Rng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Sim;

/// One signing key.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    /// JWK `n` and `e`, base64url.
    pub n: String,
    pub e: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Generates a 2048-bit RSA key. Generation is slow, so a process keeps a small pool and
/// hands keys out in turn (rotation asks for the next one).
fn new_key(n: usize) -> SigningKey {
    static POOL: OnceLock<Mutex<Vec<SigningKey>>> = OnceLock::new();
    let pool = POOL.get_or_init(|| Mutex::new(Vec::new()));
    let mut keys = pool.lock().unwrap_or_else(|e| e.into_inner());
    while keys.len() <= n {
        let mut rng = rsa::rand_core::OsRng;
        let Ok(private) = rsa::RsaPrivateKey::new(&mut rng, 2048) else {
            continue;
        };
        let Ok(der) = private.to_pkcs1_der() else { continue };
        let kid = format!("sim-key-{}", keys.len() + 1);
        keys.push(SigningKey {
            kid,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            n: b64(&private.n().to_bytes_be()),
            e: b64(&private.e().to_bytes_be()),
        });
    }
    keys[n].clone()
}

/// A pending device authorization.
#[derive(Debug, Clone)]
pub struct DeviceGrant {
    pub device_code: String,
    pub user_code: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub expires_ms: i64,
    pub interval_s: u64,
    pub last_poll_ms: Option<i64>,
    /// `None` pending, `Some(Ok(login, granted scopes))` approved, `Some(Err(()))` denied.
    pub decision: Option<Result<(String, Vec<String>), ()>>,
}

/// Authorization-server state.
#[derive(Debug, Default)]
pub struct AuthState {
    /// Published keys, newest last; tokens are signed with the newest.
    pub keys: Vec<SigningKey>,
    /// Keys ever published (retired ones included): a rotation never reuses a key.
    pub published: usize,
    pub grants: HashMap<String, DeviceGrant>,
    /// Opaque org-AS access tokens: client id, granted scopes, expiry (ms).
    pub org_tokens: HashMap<String, (String, Vec<String>, i64)>,
    /// Authorize requests waiting at the sign-in page, by id.
    pub authorize_requests: HashMap<String, super::authcode::AuthorizeRequest>,
    /// Authorization codes issued and not yet redeemed.
    pub codes: HashMap<String, super::authcode::IssuedCode>,
    /// Sign-in redirect URIs registered at run time.
    pub redirect_uris: std::collections::HashSet<String>,
}

/// The scopes of a live org-AS bearer token, if `authorization` carries one.
pub fn org_token_scopes(sim: &Sim, authorization: &str) -> Option<Vec<String>> {
    let token = authorization.strip_prefix("Bearer ")?.trim();
    let auth = sim.auth.lock().unwrap_or_else(|e| e.into_inner());
    let (_, scopes, expires_ms) = auth.org_tokens.get(token)?;
    (Utc::now().timestamp_millis() < *expires_ms).then(|| scopes.clone())
}

#[derive(Debug, Deserialize)]
pub struct ClientCredentials {
    grant_type: Option<String>,
    scope: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// An RSA public key from PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`).
fn public_key(pem: &str) -> Option<jsonwebtoken::DecodingKey> {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::pkcs8::DecodePublicKey as _;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .ok()?;
    jsonwebtoken::DecodingKey::from_rsa_components(&b64(&key.n().to_bytes_be()), &b64(&key.e().to_bytes_be())).ok()
}

/// `POST /oauth2/v1/token` (the org authorization server): client credentials for service
/// apps authenticated with private_key_jwt. Like Okta, grants the requested scopes the app
/// holds ("silent downscoping") and answers an opaque token without a refresh token.
pub async fn org_token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Form(form): Form<ClientCredentials>,
) -> Response {
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let invalid_client = |why: &str| {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("The client_assertion token is invalid: {why}"),
        )
    };
    if form.client_assertion_type.as_deref() != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return invalid_client("client_assertion_type must be jwt-bearer");
    }
    let Some(assertion) = form.client_assertion else {
        return invalid_client("no client_assertion");
    };
    // The issuer names the app; its key decides whether the assertion is real.
    let claimed = assertion
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["iss"].as_str().map(str::to_owned));
    let Some(app) = claimed.and_then(|iss| sim.config.service_apps.iter().find(|a| a.client_id == iss)) else {
        return invalid_client("unknown client");
    };
    let Some(key) = public_key(&app.public_key_pem) else {
        return invalid_client("the app's public key is unusable");
    };
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    v.algorithms = vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
    v.set_audience(&[format!("http://{host}/oauth2/v1/token")]);
    v.set_issuer(&[&app.client_id]);
    v.sub = Some(app.client_id.clone());
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = match jsonwebtoken::decode::<Value>(&assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => return invalid_client(&e.to_string()),
    };
    let now = Utc::now().timestamp();
    if claims["exp"].as_i64().is_some_and(|exp| exp > now + 3600) {
        return invalid_client("exp is more than one hour ahead");
    }
    let requested: Vec<String> = form
        .scope
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let granted: Vec<String> = requested.iter().filter(|s| app.scopes.contains(s)).cloned().collect();
    if granted.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        );
    }
    let token = b64(&rand::rng().random::<[u8; 32]>());
    sim.auth.lock().unwrap_or_else(|e| e.into_inner()).org_tokens.insert(
        token.clone(),
        (
            app.client_id.clone(),
            granted.clone(),
            Utc::now().timestamp_millis() + 3_600_000,
        ),
    );
    Json(json!({"token_type": "Bearer", "expires_in": 3600, "access_token": token, "scope": granted.join(" ")}))
        .into_response()
}

pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

fn issuer(headers: &HeaderMap, server: &str) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}/oauth2/{server}")
}

fn with_keys(sim: &Sim) -> std::sync::MutexGuard<'_, AuthState> {
    let mut auth = sim.auth.lock().unwrap_or_else(|e| e.into_inner());
    if auth.keys.is_empty() {
        auth.keys.push(new_key(0));
    }
    auth
}

/// `GET /oauth2/{as}/.well-known/{openid-configuration|oauth-authorization-server}`.
pub async fn metadata(headers: HeaderMap, Path((server, _doc)): Path<(String, String)>) -> Response {
    let iss = issuer(&headers, &server);
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/v1/authorize"),
        "token_endpoint": format!("{iss}/v1/token"),
        "jwks_uri": format!("{iss}/v1/keys"),
        "device_authorization_endpoint": format!("{iss}/v1/device/authorize"),
        "registration_endpoint": iss.replace(&format!("/oauth2/{server}"), "/oauth2/v1/clients"),
        "response_types_supported": ["code", "token", "id_token"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "claims_supported": ["ver", "jti", "iss", "aud", "iat", "exp", "cid", "uid", "scp", "sub"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access", "mcp:logs:read", "mcp:user:read:basic", "mcp:user:read:full", "mcp:analyze:ml", "mcp:user:write"]
    }))
    .into_response()
}

/// `GET /.well-known/oauth-authorization-server/oauth2/{as}` (the RFC 8414 path form).
pub async fn metadata_rfc8414(headers: HeaderMap, Path(server): Path<String>) -> Response {
    metadata(headers, Path((server, "oauth-authorization-server".to_owned()))).await
}

/// `GET /oauth2/{as}/v1/keys` (not rate-limited; 503 under the `keys_unavailable` fault).
pub async fn keys(State(sim): State<Arc<Sim>>) -> Response {
    if sim.state.lock().is_ok_and(|s| s.faults.keys_unavailable) {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The service is temporarily unavailable.",
        );
    }
    let auth = with_keys(&sim);
    let keys: Vec<Value> = auth
        .keys
        .iter()
        .map(|k| json!({"kty": "RSA", "alg": "RS256", "kid": k.kid, "use": "sig", "e": k.e, "n": k.n}))
        .collect();
    Json(json!({"keys": keys})).into_response()
}

/// `POST /sim/keys/rotate`: publishes a new key and signs new tokens with it.
pub async fn rotate(State(sim): State<Arc<Sim>>) -> Response {
    let mut auth = with_keys(&sim);
    let next = auth.published.max(auth.keys.len());
    auth.keys.push(new_key(next));
    auth.published = next + 1;
    let kid = auth.keys.last().map(|k| k.kid.clone()).unwrap_or_default();
    Json(json!({"kid": kid})).into_response()
}

#[derive(Debug, Deserialize)]
pub struct Retire {
    kid: String,
}

/// `POST /sim/keys/retire {"kid"}`: stops publishing a key (as Okta does some time after a
/// rotation, or at once when a key is revoked). At least one key stays.
pub async fn retire(State(sim): State<Arc<Sim>>, Json(retire): Json<Retire>) -> Response {
    let mut auth = with_keys(&sim);
    let before = auth.keys.len();
    if before < 2 {
        return oauth_error(
            StatusCode::CONFLICT,
            "invalid_request",
            "The last key cannot be retired.",
        );
    }
    auth.keys.retain(|k| k.kid != retire.kid);
    if auth.keys.len() == before {
        return oauth_error(StatusCode::NOT_FOUND, "invalid_request", "No such key.");
    }
    Json(json!({"retired": retire.kid, "published": auth.keys.len()})).into_response()
}

#[derive(Debug, Deserialize)]
pub struct DeviceAuthorize {
    client_id: Option<String>,
    scope: Option<String>,
}

/// `POST /oauth2/{as}/v1/device/authorize`.
pub async fn device_authorize(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(_server): Path<String>,
    Form(form): Form<DeviceAuthorize>,
) -> Response {
    let Some(client_id) = form.client_id.filter(|c| sim.config.oauth_clients.contains(c)) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "No client credentials found.",
        );
    };
    let scopes: Vec<String> = form
        .scope
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "No scopes were requested.");
    }
    let mut rng = rand::rng();
    let user_code: String = (0..8).map(|_| char::from(b'A' + rng.random_range(0..26u8))).collect();
    let device_code = uuid::Uuid::from_u128(rng.random::<u128>() & !(0xf << 76) | (4 << 76)).to_string();
    let interval = sim.config.device_interval_s;
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let grant = DeviceGrant {
        device_code: device_code.clone(),
        user_code: user_code.clone(),
        client_id,
        scopes,
        expires_ms: Utc::now().timestamp_millis() + 600_000,
        interval_s: interval,
        last_poll_ms: None,
        decision: None,
    };
    sim.auth
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .grants
        .insert(device_code.clone(), grant);
    Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": format!("http://{host}/activate"),
        "verification_uri_complete": format!("http://{host}/activate?user_code={user_code}"),
        "expires_in": 600,
        "interval": interval
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    device_code: Option<String>,
    client_id: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

/// `POST /oauth2/{as}/v1/token` (device-code and authorization-code grants).
pub async fn token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(server): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    if form.grant_type.as_deref() == Some("authorization_code") {
        let grant = super::authcode::CodeGrant {
            code: form.code,
            redirect_uri: form.redirect_uri,
            code_verifier: form.code_verifier,
            client_id: form.client_id,
        };
        return super::authcode::token(&sim, &headers, &server, grant);
    }
    if form.grant_type.as_deref() != Some("urn:ietf:params:oauth:grant-type:device_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The grant type is not supported.",
        );
    }
    let now = Utc::now().timestamp_millis();
    let mut auth = with_keys(&sim);
    let Some(grant) = form.device_code.as_ref().and_then(|c| auth.grants.get_mut(c)) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The device code is invalid or has expired.",
        );
    };
    if form.client_id.as_deref() != Some(grant.client_id.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "No client credentials found.",
        );
    }
    if now > grant.expires_ms {
        return oauth_error(StatusCode::BAD_REQUEST, "expired_token", "The device code has expired.");
    }
    let too_fast = grant
        .last_poll_ms
        .is_some_and(|t| now - t < grant.interval_s as i64 * 1000 - 100);
    grant.last_poll_ms = Some(now);
    let (login, granted) = match &grant.decision {
        None if too_fast => {
            grant.interval_s += 5;
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "slow_down",
                "Slow down the polling frequency. Please try again later.",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "authorization_pending",
                "The device authorization is pending. Please try again later.",
            );
        }
        Some(Err(())) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "access_denied",
                "The resource owner or authorization server denied the request.",
            );
        }
        Some(Ok(d)) => d.clone(),
    };
    let client_id = grant.client_id.clone();
    let device_code = grant.device_code.clone();
    auth.grants.remove(&device_code);
    drop(auth);
    issue_access_token(&sim, &headers, &server, &client_id, &login, granted)
}

/// An RS256 access token with Okta's claims for `login`, and the token response.
pub(super) fn issue_access_token(
    sim: &Sim,
    headers: &HeaderMap,
    server: &str,
    client_id: &str,
    login: &str,
    granted: Vec<String>,
) -> Response {
    let now = Utc::now().timestamp_millis();
    let offline = granted.iter().any(|s| s == "offline_access");
    let auth = with_keys(sim);
    let Some(key) = auth.keys.last().cloned() else {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "no signing key");
    };
    drop(auth);
    let uid = sim
        .state
        .lock()
        .ok()
        .and_then(|s| s.user_index(login).map(|i| s.users[i].id.clone()));
    let iat = now / 1000;
    let claims = json!({
        "ver": 1,
        "jti": format!("AT.{}", b64(&rand::rng().random::<[u8; 24]>())),
        "iss": issuer(headers, server),
        "aud": sim.config.audience,
        "iat": iat,
        "exp": iat + 3600,
        "cid": client_id,
        "uid": uid,
        "scp": granted,
        "sub": login,
        "auth_time": iat,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    let Ok(access_token) = jsonwebtoken::encode(&header, &claims, &key.encoding) else {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed");
    };
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": 3600,
        "access_token": access_token,
        "scope": granted.join(" "),
    });
    if offline {
        body["refresh_token"] = json!(b64(&rand::rng().random::<[u8; 24]>()));
    }
    Json(body).into_response()
}

#[derive(Debug, Deserialize)]
pub struct Decision {
    user_code: String,
    /// The approving user's login (approve only).
    #[serde(default)]
    user: Option<String>,
    /// Scopes granted (approve only); all requested scopes when absent.
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

fn decide(sim: &Sim, d: Decision, approve: bool) -> Response {
    let mut auth = sim.auth.lock().unwrap_or_else(|e| e.into_inner());
    let Some(grant) = auth.grants.values_mut().find(|g| g.user_code == d.user_code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_user_code",
            "The user code is invalid.",
        );
    };
    grant.decision = Some(if approve {
        let login = d.user.unwrap_or_else(|| "admin@example.com".to_owned());
        let granted = d.scopes.unwrap_or_else(|| grant.scopes.clone());
        Ok((login, granted))
    } else {
        Err(())
    });
    Json(json!({"user_code": grant.user_code, "approved": approve})).into_response()
}

/// `POST /sim/device/approve` `{user_code, user, scopes?}`.
pub async fn approve(State(sim): State<Arc<Sim>>, Json(d): Json<Decision>) -> Response {
    decide(&sim, d, true)
}

/// `POST /sim/device/deny` `{user_code}`.
pub async fn deny(State(sim): State<Arc<Sim>>, Json(d): Json<Decision>) -> Response {
    decide(&sim, d, false)
}
