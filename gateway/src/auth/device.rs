//! The OAuth 2.0 Device Authorization Grant (RFC 8628) for the stdio transport and
//! `idgw gateway login`: start it, poll the token endpoint honouring `interval` and
//! `slow_down`, keep the token in a private file and refresh it before it expires.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{AuthConfig, AuthError, ServerMetadata};

/// What the user is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeviceStart {
    /// What `complete_device_auth` polls with.
    pub device_code: String,
    /// The code the person types at the verification page.
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds the codes stay valid.
    pub expires_in: u64,
    /// Seconds between polls.
    #[serde(default = "five")]
    pub interval: u64,
}

fn five() -> u64 {
    5
}

/// A token as the token endpoint returns it, with its expiry made absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredToken {
    pub issuer: String,
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Seconds since the epoch.
    pub expires_at: i64,
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

fn flow_err(message: impl Into<String>) -> AuthError {
    AuthError::Flow(message.into())
}

fn endpoints(meta: &ServerMetadata) -> Result<(&str, &str), AuthError> {
    match (
        meta.device_authorization_endpoint.as_deref(),
        meta.token_endpoint.as_deref(),
    ) {
        (Some(d), Some(t)) => Ok((d, t)),
        _ => Err(flow_err(format!(
            "{} does not advertise the device authorization grant (no device_authorization_endpoint)",
            meta.issuer
        ))),
    }
}

fn client_id(config: &AuthConfig) -> Result<&str, AuthError> {
    config
        .client_id
        .as_deref()
        .ok_or_else(|| flow_err("the device flow needs a client: set OKTA_CLIENT_ID"))
}

fn with_client<'a>(config: &'a AuthConfig, form: &mut Vec<(&'static str, &'a str)>) -> Result<(), AuthError> {
    form.push(("client_id", client_id(config)?));
    if let Some(secret) = &config.client_secret {
        form.push(("client_secret", secret));
    }
    Ok(())
}

/// Starts a device authorization for `scopes` (plus `offline_access`, so the token can be
/// refreshed).
pub async fn start(config: &AuthConfig, meta: &ServerMetadata, scopes: &[&str]) -> Result<DeviceStart, AuthError> {
    let (device, _) = endpoints(meta)?;
    let mut scope: Vec<&str> = scopes.to_vec();
    scope.push("offline_access");
    let scope = scope.join(" ");
    let mut form = vec![("scope", scope.as_str())];
    with_client(config, &mut form)?;
    let resp = reqwest::Client::new()
        .post(device)
        .form(&form)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .map_err(|e| flow_err(format!("device authorization: {e}")))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let e: Option<OAuthError> = resp.json().await.ok();
        return Err(flow_err(format!(
            "device authorization refused ({status}): {}",
            e.map(|e| format!("{} {}", e.error, e.error_description.unwrap_or_default()))
                .unwrap_or_default()
        )));
    }
    resp.json()
        .await
        .map_err(|e| flow_err(format!("device authorization answer: {e}")))
}

/// One poll's result.
#[derive(Debug)]
pub enum Poll {
    Token(StoredToken),
    Pending,
    SlowDown,
}

/// Polls the token endpoint once.
pub async fn poll_once(config: &AuthConfig, meta: &ServerMetadata, device_code: &str) -> Result<Poll, AuthError> {
    let (_, token) = endpoints(meta)?;
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
    ];
    with_client(config, &mut form)?;
    token_request(token, &form, &meta.issuer).await
}

async fn token_request(url: &str, form: &[(&str, &str)], issuer: &str) -> Result<Poll, AuthError> {
    let resp = reqwest::Client::new()
        .post(url)
        .form(form)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .map_err(|e| flow_err(format!("token endpoint: {e}")))?;
    if resp.status().is_success() {
        let t: TokenResponse = resp.json().await.map_err(|e| flow_err(format!("token answer: {e}")))?;
        return Ok(Poll::Token(StoredToken {
            issuer: issuer.to_owned(),
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_at: chrono::Utc::now().timestamp() + t.expires_in.unwrap_or(3600),
            scope: t.scope,
        }));
    }
    let e: OAuthError = resp
        .json()
        .await
        .map_err(|e| flow_err(format!("token endpoint error without an OAuth error body: {e}")))?;
    match e.error.as_str() {
        "authorization_pending" => Ok(Poll::Pending),
        "slow_down" => Ok(Poll::SlowDown),
        "expired_token" => Err(flow_err(
            "the device code expired; start again with initiate_device_auth (or idgw gateway login)",
        )),
        "access_denied" => Err(flow_err("the sign-in was denied at the verification page")),
        other => Err(flow_err(format!(
            "token endpoint: {other}: {}",
            e.error_description.unwrap_or_default()
        ))),
    }
}

/// Polls until the person approves or denies, the code expires or `deadline` passes,
/// waiting `interval` seconds between polls and five more after each `slow_down`.
pub async fn poll(
    config: &AuthConfig,
    meta: &ServerMetadata,
    device_code: &str,
    mut interval: u64,
    deadline: Duration,
) -> Result<Option<StoredToken>, AuthError> {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        match poll_once(config, meta, device_code).await? {
            Poll::Token(t) => return Ok(Some(t)),
            Poll::Pending => {}
            Poll::SlowDown => interval += 5,
        }
        let next = tokio::time::Instant::now() + Duration::from_secs(interval.max(1));
        if next > end {
            return Ok(None);
        }
        tokio::time::sleep_until(next).await;
    }
}

/// Exchanges the refresh token for a new access token.
pub async fn refresh(
    config: &AuthConfig,
    meta: &ServerMetadata,
    stored: &StoredToken,
) -> Result<StoredToken, AuthError> {
    let refresh_token = stored
        .refresh_token
        .as_deref()
        .ok_or_else(|| flow_err("the token has no refresh token; sign in again with idgw gateway login"))?;
    let token = meta
        .token_endpoint
        .as_deref()
        .ok_or_else(|| flow_err("the issuer advertises no token endpoint"))?;
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    with_client(config, &mut form)?;
    match token_request(token, &form, &meta.issuer).await? {
        Poll::Token(mut t) => {
            // Issuers may keep the refresh token unchanged and not send it again.
            if t.refresh_token.is_none() {
                t.refresh_token = stored.refresh_token.clone();
            }
            Ok(t)
        }
        _ => Err(flow_err("the refresh grant answered like a pending device grant")),
    }
}

/// Writes the token readable by its owner only (mode 0600), atomically.
pub fn save(path: &Path, token: &StoredToken) -> Result<(), AuthError> {
    let io = |e: std::io::Error| flow_err(format!("token file {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write as _;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(&serde_json::to_vec_pretty(token).map_err(|e| flow_err(e.to_string()))?)
            .map_err(io)?;
        f.sync_data().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads the stored token, if any.
pub fn load(path: &Path) -> Result<Option<StoredToken>, AuthError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| flow_err(format!("token file {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(flow_err(format!("token file {}: {e}", path.display()))),
    }
}

/// The stored token, refreshed (and saved) when it expires within five minutes.
pub async fn current(config: &AuthConfig, meta: &ServerMetadata) -> Result<Option<StoredToken>, AuthError> {
    let path = config.token_path();
    let Some(t) = load(&path)? else { return Ok(None) };
    if t.issuer != meta.issuer {
        return Ok(None);
    }
    if t.expires_at - chrono::Utc::now().timestamp() > 300 {
        return Ok(Some(t));
    }
    if t.refresh_token.is_none() {
        return Ok(None);
    }
    let fresh = refresh(config, meta, &t).await?;
    save(&path, &fresh)?;
    Ok(Some(fresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_private_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub").join("token.json");
        let t = StoredToken {
            issuer: "https://i".into(),
            access_token: "a.b.c".into(),
            refresh_token: Some("r".into()),
            expires_at: 42,
            scope: Some("mcp:logs:read".into()),
        };
        save(&p, &t).unwrap();
        assert_eq!(load(&p).unwrap(), Some(t));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(load(&d.path().join("absent.json")).unwrap(), None);
    }
}
