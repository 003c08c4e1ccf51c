//! How the gateway and the poller prove themselves to Okta's APIs (reference.md §3.1): an SSWS
//! API token, or an OAuth service app that gets access tokens from the org authorization
//! server with client credentials and a private_key_jwt assertion. Service-app tokens are
//! cached until a minute before they expire and dropped when Okta refuses them.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::OktaError;
use super::http::{self, RetryConfig};

/// `[gateway.okta.service_app]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAppConfig {
    /// The service app's client id (`OKTA_SERVICE_CLIENT_ID`).
    pub client_id: String,
    /// Its RSA private key, PEM (PKCS#8 or PKCS#1) (`OKTA_SERVICE_PRIVATE_KEY_FILE`).
    pub private_key_file: PathBuf,
    /// The `kid` of the key registered with the app (`OKTA_SERVICE_KEY_ID`).
    #[serde(default)]
    pub key_id: Option<String>,
    /// Scopes requested (the app must be granted them, and its admin role must allow them).
    #[serde(default = "ServiceAppConfig::default_scopes")]
    pub scopes: Vec<String>,
}

impl ServiceAppConfig {
    /// What the gateway's calls need: users (read and lifecycle), sessions, roles, the log.
    pub fn default_scopes() -> Vec<String> {
        [
            "okta.users.manage",
            "okta.users.read",
            "okta.roles.read",
            "okta.logs.read",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// A service app's key and its cached access token.
pub struct ServiceApp {
    client_id: String,
    key: EncodingKey,
    key_id: Option<String>,
    scopes: String,
    token_url: String,
    cached: tokio::sync::Mutex<Option<(String, i64)>>,
}

impl std::fmt::Debug for ServiceApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceApp")
            .field("client_id", &self.client_id)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The Management API credential.
pub enum Credential {
    Ssws(String),
    ServiceApp(Box<ServiceApp>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Ssws(_) => f.write_str("Credential::Ssws(<redacted>)"),
            Credential::ServiceApp(a) => write!(f, "Credential::ServiceApp({})", a.client_id),
        }
    }
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

impl Credential {
    /// A service app for `org`, with its key read from disk.
    pub fn service_app(org: &str, config: &ServiceAppConfig) -> Result<Self, OktaError> {
        use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
        use rsa::pkcs8::DecodePrivateKey as _;
        let path = config.private_key_file.display().to_string();
        let pem = std::fs::read_to_string(&config.private_key_file)
            .map_err(|e| OktaError::Config(format!("service app key {path}: {e}")))?;
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(&pem))
            .map_err(|e| OktaError::Config(format!("service app key {path}: not an RSA private key in PEM ({e})")))?;
        let der = private
            .to_pkcs1_der()
            .map_err(|e| OktaError::Config(format!("service app key {path}: {e}")))?;
        Ok(Credential::ServiceApp(Box::new(ServiceApp {
            client_id: config.client_id.clone(),
            key: EncodingKey::from_rsa_der(der.as_bytes()),
            key_id: config.key_id.clone(),
            scopes: config.scopes.join(" "),
            token_url: format!("{}/oauth2/v1/token", org.trim_end_matches('/')),
            cached: tokio::sync::Mutex::new(None),
        })))
    }

    /// The `Authorization` header value for the next call.
    pub async fn header(&self, client: &reqwest::Client, retry: &RetryConfig) -> Result<String, OktaError> {
        let app = match self {
            Credential::Ssws(token) => return Ok(format!("SSWS {token}")),
            Credential::ServiceApp(app) => app,
        };
        let mut cached = app.cached.lock().await;
        let now = chrono::Utc::now().timestamp();
        if let Some((token, expires_at)) = cached.as_ref()
            && *expires_at - now > 60
        {
            return Ok(format!("Bearer {token}"));
        }
        let reply = http::send(retry, || {
            let now = chrono::Utc::now().timestamp();
            let claims = Assertion {
                iss: &app.client_id,
                sub: &app.client_id,
                aud: &app.token_url,
                iat: now,
                exp: now + 300,
                jti: uuid::Uuid::new_v4().to_string(),
            };
            let mut header = Header::new(Algorithm::RS256);
            header.kid = app.key_id.clone();
            // Signing with a parsed RSA key does not fail; an empty assertion would be
            // refused by Okta with a clear invalid_client.
            let assertion = jsonwebtoken::encode(&header, &claims, &app.key).unwrap_or_default();
            client.post(&app.token_url).form(&[
                ("grant_type", "client_credentials"),
                ("scope", app.scopes.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
        })
        .await?;
        if !reply.status.is_success() {
            #[derive(Deserialize, Default)]
            struct OAuthError {
                #[serde(default)]
                error: String,
                #[serde(default)]
                error_description: String,
            }
            let e: OAuthError = serde_json::from_slice(&reply.body).unwrap_or_default();
            return Err(OktaError::Unauthorized(format!(
                "the org authorization server refused the service app {}: {} {}",
                app.client_id, e.error, e.error_description
            )));
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&reply.body).map_err(|e| OktaError::Unexpected(format!("token answer: {e}")))?;
        let header = format!("Bearer {}", answer.access_token);
        *cached = Some((answer.access_token, now + answer.expires_in.unwrap_or(3600)));
        Ok(header)
    }

    /// Drops a cached token Okta no longer accepts.
    pub async fn forget(&self) {
        if let Credential::ServiceApp(app) = self {
            *app.cached.lock().await = None;
        }
    }
}
