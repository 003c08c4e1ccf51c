//! Who may call what. Over HTTP the gateway is an OAuth resource server (MCP
//! authorization): bearer JWTs validated against the issuer's JWKS ([`jwt`]), 401 with a
//! pointer to the protected-resource metadata it serves, 403 `insufficient_scope`
//! ([`http`]). Over stdio the operator signs in with the device authorization grant
//! ([`device`]). Either way, each tool needs the scope [`scopes::required`] names.
//!
//! The caller's token is only ever validated here; it is never passed on to Okta (the
//! gateway acts on Okta with its own credentials, see [`crate::okta`]).

pub mod device;
pub mod http;
pub mod jwt;
pub mod refusals;
pub mod scopes;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use jwt::{Principal, TokenError, Validator};

/// `[gateway.auth]`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The authorization server's issuer, e.g. `https://{org}.okta.com/oauth2/default`
    /// (`OKTA_ISSUER`; with `OKTA_AUTH_SERVER_ID` an org URL becomes
    /// `{org}/oauth2/{id}`).
    pub issuer: Option<String>,
    /// The `aud` access tokens must carry: this gateway's identifier (`api://mcp` as in the
    /// reference design; the resource URI for RFC 8707 issuers).
    pub audience: String,
    /// Where the issuer publishes its keys; discovered from its metadata when absent.
    pub jwks_uri: Option<String>,
    /// The device-flow client (`OKTA_CLIENT_ID`).
    pub client_id: Option<String>,
    /// Its secret, for confidential clients (`OKTA_CLIENT_SECRET`).
    pub client_secret: Option<String>,
    /// The client the approval page signs approvers in with (authorization code + PKCE;
    /// its redirect URIs include `<page base>/approvals/callback`); default `client_id`
    /// (`IDGW_AUTH_APPROVAL_CLIENT_ID`).
    pub approval_client_id: Option<String>,
    /// The OAuth clients whose tokens may decide approvals through the API (`idgw approve`;
    /// `IDGW_AUTH_APPROVER_CLIENT_IDS`, comma-separated). Empty (the default): decisions are
    /// made on the approval page only. A token of any other client is refused there: an
    /// agent that can run a client's device flow can have a person enter its code and get
    /// that person's token, so the agents' client must never be listed.
    pub approver_client_ids: Vec<String>,
    /// The resource URI served in the protected-resource metadata; by default
    /// `http://<listen address>/mcp`.
    pub resource: Option<String>,
    /// Accepted signature algorithms (never `none`, never HMAC).
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_s: u64,
    /// Fetch the JWKS again for an unknown `kid` at most this often, in seconds.
    pub jwks_min_refresh_s: u64,
    /// Fetch the JWKS again when the keys held are older than this, in seconds, so keys the
    /// issuer stopped publishing stop verifying (`IDGW_AUTH_JWKS_REFRESH_S`).
    pub jwks_refresh_s: u64,
    /// Where `idgw gateway login` keeps the operator's token (mode 0600); default
    /// `$XDG_CONFIG_HOME/idgw/token.json` or `~/.config/idgw/token.json`.
    pub token_file: Option<PathBuf>,
}

/// Secrets never reach logs: `Debug` says whether one is set, never what it is.
pub(crate) fn redacted(secret: &Option<String>) -> &'static str {
    if secret.is_some() { "<redacted>" } else { "<none>" }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_uri", &self.jwks_uri)
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .field("approval_client_id", &self.approval_client_id)
            .field("approver_client_ids", &self.approver_client_ids)
            .field("resource", &self.resource)
            .field("algorithms", &self.algorithms)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: None,
            audience: "api://mcp".into(),
            jwks_uri: None,
            client_id: None,
            client_secret: None,
            approval_client_id: None,
            approver_client_ids: Vec::new(),
            resource: None,
            algorithms: vec!["RS256".into(), "ES256".into()],
            leeway_s: 60,
            jwks_min_refresh_s: 10,
            jwks_refresh_s: 900,
            token_file: None,
        }
    }
}

impl AuthConfig {
    /// The reference design's names: `OKTA_ISSUER`, `OKTA_AUTH_SERVER_ID`,
    /// `OKTA_CLIENT_ID`, `OKTA_CLIENT_SECRET`; and `IDGW_AUTH_APPROVAL_CLIENT_ID`,
    /// `IDGW_AUTH_APPROVER_CLIENT_IDS`, `IDGW_AUTH_AUDIENCE`,
    /// `IDGW_AUTH_RESOURCE`, `IDGW_AUTH_TOKEN_FILE`, `IDGW_AUTH_JWKS_REFRESH_S`. A value
    /// that does not parse is an error, not ignored.
    pub fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let nonempty = |n: &str| get(n).filter(|v| !v.trim().is_empty());
        if let Some(v) = nonempty("OKTA_ISSUER") {
            self.issuer = Some(v.trim_end_matches('/').to_owned());
        }
        if let (Some(id), Some(issuer)) = (nonempty("OKTA_AUTH_SERVER_ID"), self.issuer.as_mut())
            && !issuer.contains("/oauth2/")
        {
            *issuer = format!("{issuer}/oauth2/{id}");
        }
        if let Some(v) = nonempty("OKTA_CLIENT_ID") {
            self.client_id = Some(v);
        }
        if let Some(v) = nonempty("OKTA_CLIENT_SECRET") {
            self.client_secret = Some(v);
        }
        if let Some(v) = nonempty("IDGW_AUTH_APPROVAL_CLIENT_ID") {
            self.approval_client_id = Some(v);
        }
        if let Some(v) = nonempty("IDGW_AUTH_APPROVER_CLIENT_IDS") {
            self.approver_client_ids = v
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = nonempty("IDGW_AUTH_AUDIENCE") {
            self.audience = v;
        }
        if let Some(v) = nonempty("IDGW_AUTH_RESOURCE") {
            self.resource = Some(v);
        }
        if let Some(v) = nonempty("IDGW_AUTH_TOKEN_FILE") {
            self.token_file = Some(PathBuf::from(v));
        }
        if let Some(v) = nonempty("IDGW_AUTH_JWKS_REFRESH_S") {
            self.jwks_refresh_s = v
                .trim()
                .parse()
                .map_err(|e| format!("IDGW_AUTH_JWKS_REFRESH_S={v:?}: {e}"))?;
        }
        Ok(())
    }

    /// The token file's path.
    pub fn token_path(&self) -> PathBuf {
        if let Some(p) = &self.token_file {
            return p.clone();
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("idgw").join("token.json")
    }
}

/// The authorization server's endpoints (RFC 8414 / OIDC discovery).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
}

/// Authentication set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Nothing configured.
    #[error(
        "no authorization server configured: set OKTA_ISSUER (and OKTA_CLIENT_ID for the device flow) or [gateway.auth] issuer; for a local demo only, pass --dev-no-auth"
    )]
    NotConfigured,
    /// Discovery failed.
    #[error("discovering {issuer}: {message}")]
    Discovery { issuer: String, message: String },
    /// The configuration cannot work.
    #[error("auth configuration: {0}")]
    Config(String),
    /// A device-flow or token-file step failed.
    #[error("{0}")]
    Flow(String),
}

/// Fetches the issuer's metadata: RFC 8414 at `{issuer}/.well-known/oauth-authorization-server`,
/// then OIDC discovery; `jwks_uri` from the configuration wins.
pub async fn discover(config: &AuthConfig) -> Result<ServerMetadata, AuthError> {
    let issuer = config.issuer.clone().ok_or(AuthError::NotConfigured)?;
    let client = reqwest::Client::new();
    let mut last = String::new();
    for doc in ["oauth-authorization-server", "openid-configuration"] {
        let url = format!("{issuer}/.well-known/{doc}");
        match client.get(&url).timeout(Duration::from_secs(10)).send().await {
            Ok(r) if r.status().is_success() => match r.json::<ServerMetadata>().await {
                Ok(mut m) => {
                    if m.issuer.trim_end_matches('/') != issuer {
                        return Err(AuthError::Discovery {
                            issuer,
                            message: format!("the metadata names issuer {:?}", m.issuer),
                        });
                    }
                    if let Some(j) = &config.jwks_uri {
                        m.jwks_uri = j.clone();
                    }
                    return Ok(m);
                }
                Err(e) => last = format!("{url}: {e}"),
            },
            Ok(r) => last = format!("{url}: HTTP {}", r.status()),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    // Without metadata, a configured JWKS is enough to validate (not for the device flow).
    if let Some(j) = &config.jwks_uri {
        return Ok(ServerMetadata {
            issuer,
            jwks_uri: j.clone(),
            ..ServerMetadata::default()
        });
    }
    Err(AuthError::Discovery { issuer, message: last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_environment_names() {
        let env = |n: &str| match n {
            "OKTA_ISSUER" => Some("https://example.okta.com/".to_owned()),
            "OKTA_AUTH_SERVER_ID" => Some("aus123".to_owned()),
            "OKTA_CLIENT_ID" => Some("0oa1".to_owned()),
            _ => None,
        };
        let mut c = AuthConfig::default();
        c.apply_env(&env).unwrap();
        assert_eq!(c.issuer.as_deref(), Some("https://example.okta.com/oauth2/aus123"));
        assert_eq!(c.client_id.as_deref(), Some("0oa1"));
        assert_eq!(c.audience, "api://mcp");
        // A number that does not parse is an error, not ignored.
        assert!(
            AuthConfig::default()
                .apply_env(&|n: &str| (n == "IDGW_AUTH_JWKS_REFRESH_S").then(|| "15m".to_owned()))
                .is_err()
        );
        // An issuer that already names its server is kept.
        let mut c = AuthConfig::default();
        c.apply_env(&|n: &str| match n {
            "OKTA_ISSUER" => Some("https://example.okta.com/oauth2/default".to_owned()),
            "OKTA_AUTH_SERVER_ID" => Some("aus123".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.issuer.as_deref(), Some("https://example.okta.com/oauth2/default"));
    }

    #[test]
    fn symmetric_algorithms_are_refused_in_configuration() {
        let c = AuthConfig {
            algorithms: vec!["HS256".into()],
            ..AuthConfig::default()
        };
        assert!(
            Validator::new(&c, "https://i", "https://i/keys")
                .unwrap_err()
                .contains("symmetric")
        );
    }
}
