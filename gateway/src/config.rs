//! The gateway's configuration: the `[gateway]` table of the deployment's TOML file (the
//! pipeline reads the rest of the same file), then environment variables — the reference
//! design's `OKTA_*` and `AUDIT_LOG_DIR`, and `IDGW_*`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::actions::policy::PolicyConfig;
use crate::auth::AuthConfig;
use crate::okta::OktaConfig;

/// `[gateway]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Who may call (`[gateway.auth]`).
    pub auth: AuthConfig,
    /// How the gateway acts on Okta (`[gateway.okta]`).
    pub okta: OktaConfig,
    /// Guardrails on actions (`[gateway.policy]`).
    pub policy: PolicyConfig,
    /// `[gateway.audit]`.
    pub audit: AuditConfig,
    /// Where approvers decide (`[gateway.approvals]`).
    pub approvals: ApprovalsConfig,
}

/// `[gateway.approvals]`: the approval page the gateway serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// The page's base URL as approvers' browsers reach it, e.g.
    /// `https://idgw.example.com` behind a proxy (`IDGW_APPROVALS_PUBLIC_URL`); default
    /// `http://<listen address>`. `<base>/approvals/callback` must be a redirect URI of
    /// the sign-in client.
    pub public_url: Option<String>,
    /// Where a stdio gateway serves the page (`IDGW_APPROVALS_LISTEN`); default
    /// `127.0.0.1:0` (a free loopback port, announced on stderr). An HTTP gateway serves
    /// it beside `/mcp`.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[gateway.audit]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The audit directory (`AUDIT_LOG_DIR`); default `<store>/audit`.
    pub dir: Option<PathBuf>,
    /// A copy of every record on a Kafka topic (`[gateway.audit.kafka]`).
    pub kafka: Option<crate::audit::mirror::MirrorConfig>,
    /// The gateway's Ed25519 private key, PKCS#8 PEM (`IDGW_AUDIT_SIGNING_KEY`; `idgw
    /// audit keygen` or `openssl genpkey -algorithm ed25519` makes one). With it, the
    /// chain head is signed after every record and published to `head_copy` and, as a
    /// header of each record, on the Kafka mirror.
    pub signing_key: Option<PathBuf>,
    /// Where the signed head is written, outside the audit directory: another volume or a
    /// path only the gateway may write and auditors may read (`IDGW_AUDIT_HEAD_COPY`).
    pub head_copy: Option<PathBuf>,
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum GatewayConfigError {
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("invalid [gateway] configuration in {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment: {0}")]
    Env(String),
}

impl GatewayConfig {
    /// Defaults, then the `[gateway]` table of `path`, then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, GatewayConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| GatewayConfigError::Io {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|message| GatewayConfigError::Parse {
                    path: p.display().to_string(),
                    message,
                })?
            }
            None => GatewayConfig::default(),
        };
        config.apply_env(&|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// The `[gateway]` table of a deployment file.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        match table.remove("gateway") {
            Some(v) => v.try_into().map_err(|e: toml::de::Error| e.to_string()),
            None => Ok(GatewayConfig::default()),
        }
    }

    /// Environment overrides.
    pub fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), GatewayConfigError> {
        self.auth.apply_env(get).map_err(GatewayConfigError::Env)?;
        self.okta.apply_env(get);
        self.policy.apply_env(get).map_err(GatewayConfigError::Env)?;
        if let Some(url) = get("IDGW_APPROVALS_PUBLIC_URL").filter(|u| !u.trim().is_empty()) {
            self.approvals.public_url = Some(url.trim().trim_end_matches('/').to_owned());
        }
        if let Some(listen) = get("IDGW_APPROVALS_LISTEN").filter(|u| !u.trim().is_empty()) {
            self.approvals.listen = Some(
                listen
                    .trim()
                    .parse()
                    .map_err(|e| GatewayConfigError::Env(format!("IDGW_APPROVALS_LISTEN={listen:?}: {e}")))?,
            );
        }
        if let Some(dir) = get("AUDIT_LOG_DIR").filter(|d| !d.trim().is_empty()) {
            self.audit.dir = Some(PathBuf::from(dir));
        }
        if let Some(key) = get("IDGW_AUDIT_SIGNING_KEY").filter(|d| !d.trim().is_empty()) {
            self.audit.signing_key = Some(PathBuf::from(key));
        }
        if let Some(copy) = get("IDGW_AUDIT_HEAD_COPY").filter(|d| !d.trim().is_empty()) {
            self.audit.head_copy = Some(PathBuf::from(copy));
        }
        // The deployment's brokers (design.md) carry the audit copy too.
        if let Some(brokers) = get("KAFKA_BROKERS").filter(|b| !b.trim().is_empty()) {
            let topic = self
                .audit
                .kafka
                .as_ref()
                .map_or_else(crate::audit::mirror::MirrorConfig::default_topic, |k| k.topic.clone());
            self.audit.kafka = Some(crate::audit::mirror::MirrorConfig { brokers, topic });
        }
        if let (Some(topic), Some(k)) = (
            get("IDGW_AUDIT_KAFKA_TOPIC").filter(|t| !t.trim().is_empty()),
            self.audit.kafka.as_mut(),
        ) {
            k.topic = topic;
        }
        Ok(())
    }

    /// The audit directory for a gateway over `store`.
    pub fn audit_dir(&self, store: &Path) -> PathBuf {
        self.audit.dir.clone().unwrap_or_else(|| store.join("audit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_appear_in_debug() {
        let env = |n: &str| match n {
            "OKTA_CLIENT_SECRET" => Some("client-secret-value".to_owned()),
            "OKTA_API_TOKEN" => Some("00ssws-token-value".to_owned()),
            "OKTA_ORG_URL" => Some("https://acme.okta.com".to_owned()),
            "OKTA_WF_SUSPEND_USER_URL" => Some("https://acme.workflows.okta.com/api/flo/x/invoke".to_owned()),
            "OKTA_WF_SUSPEND_USER_TOKEN" => Some("flow-token-value".to_owned()),
            _ => None,
        };
        let mut c = GatewayConfig::default();
        c.apply_env(&env).unwrap();
        assert_eq!(c.okta.api_token.as_deref(), Some("00ssws-token-value"));
        let text = format!("{c:?} {c:#?}");
        for secret in ["client-secret-value", "00ssws-token-value", "flow-token-value"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("<redacted>") && text.contains("acme.okta.com"), "{text}");
    }

    #[test]
    fn the_example_deployment_file_parses() {
        let c = GatewayConfig::from_toml(include_str!("../../deploy/config.example.toml")).unwrap();
        assert_eq!(c, GatewayConfig::default(), "the example documents the defaults");
    }

    #[test]
    fn the_gateway_table_of_a_deployment_file() {
        let text = r#"
[store]
batch_rows = 1000

[gateway.auth]
issuer = "https://example.okta.com/oauth2/default"
audience = "api://mcp"

[gateway.okta]
org_url = "https://example.okta.com"

[gateway.okta.workflows.suspend_user]
url = "https://example.workflows.okta.com/api/flo/abc/invoke"

[gateway.policy]
protected_users = ["breakglass@example.com"]
max_actions_per_hour = 5
"#;
        let c = GatewayConfig::from_toml(text).unwrap();
        assert_eq!(
            c.auth.issuer.as_deref(),
            Some("https://example.okta.com/oauth2/default")
        );
        assert_eq!(c.policy.max_actions_per_hour, 5);
        assert!(c.okta.workflows.suspend_user.is_some());
        assert!(
            GatewayConfig::from_toml("[gateway.policy]\nmax_actions = 1\n").is_err(),
            "unknown keys are refused"
        );
        let mut c = GatewayConfig::default();
        c.apply_env(&|n: &str| (n == "AUDIT_LOG_DIR").then(|| "/var/log/idgw".to_owned()))
            .unwrap();
        assert_eq!(c.audit_dir(Path::new("/store")), PathBuf::from("/var/log/idgw"));
        assert_eq!(
            GatewayConfig::default().audit_dir(Path::new("/store")),
            PathBuf::from("/store/audit")
        );
    }
}
