//! The gateway's configuration: the `[gateway]` table of the deployment's TOML file (the
//! pipeline reads the rest of the same file), then environment variables — the reference
//! design's `OKTA_*` and `AUDIT_LOG_DIR`, and `IDGW_*`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use idgw_pipeline::layered::{self, LayerError, Loaded, Spec};

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

/// What the gateway reads of a deployment file and the environment.
pub const SPEC: Spec<'static> = Spec {
    root: Some("gateway"),
    exclude: &[],
    optional_tables: &["audit.kafka", "audit.kafka.security", "okta.service_app"],
    aliases: &[],
    // The gateway's promise: the reviewed file decides who may call and what needs a second
    // person. (The names the gateway read before, OKTA_ISSUER, IDGW_AUTH_AUDIENCE,
    // IDGW_POLICY_PROTECTED_*, still apply; none of them turns approvals off.)
    file_only: &["auth", "policy"],
};

/// Dotted paths of the leaves that differ between two renderings of a configuration.
fn changed_leaves(a: &serde_json::Value, b: &serde_json::Value, prefix: &str) -> Vec<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out = Vec::new();
            for (k, v) in y {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.extend(changed_leaves(x.get(k).unwrap_or(&Value::Null), v, &path));
            }
            out
        }
        _ if a != b => vec![prefix.to_owned()],
        _ => Vec::new(),
    }
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
        Ok(Self::resolve(path, std::env::vars())?.config)
    }

    /// Defaults, then the `[gateway]` table of `path`, then `vars`: `IDGW_GATEWAY_<TABLE>_<KEY>`
    /// by the pipeline's one rule ([`idgw_pipeline::layered`]), then the names this gateway
    /// read before that rule and the reference design's (`OKTA_*`, `AUDIT_LOG_DIR`, …). Keys
    /// those set are reported as set by the environment.
    pub fn resolve(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded<Self>, GatewayConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let mut loaded: Loaded<Self> = layered::load(&SPEC, path, vars.iter().cloned()).map_err(|e| match e {
            LayerError::Io { path, source } => GatewayConfigError::Io { path, source },
            LayerError::Toml { path, message } => GatewayConfigError::Parse { path, message },
            other => GatewayConfigError::Env(other.to_string()),
        })?;
        let before = serde_json::to_value(&loaded.config).unwrap_or_default();
        let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        loaded.config.apply_env(&get)?;
        let after = serde_json::to_value(&loaded.config).unwrap_or_default();
        for key in changed_leaves(&before, &after, "") {
            loaded.sources.insert(
                key,
                layered::Source::Env("an OKTA_*, AUDIT_LOG_DIR or earlier IDGW_* name".into()),
            );
        }
        // The protected users and groups may still come from their earlier names: replacing
        // the file's lists removes protections, so that is said at start.
        for (key, source) in &loaded.sources {
            if let layered::Source::Env(name) = source
                && key.starts_with("policy.")
            {
                tracing::warn!(key = %format!("gateway.{key}"), variable = %name, "a policy setting comes from the environment");
            }
        }
        Ok(loaded)
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
        // The deployment's brokers (design.md) carry the audit copy too. Only the address
        // changes: the topic and the TLS/SASL block the file gave stay.
        if let Some(brokers) = get("KAFKA_BROKERS").filter(|b| !b.trim().is_empty()) {
            match self.audit.kafka.as_mut() {
                Some(k) => k.brokers = brokers,
                None => {
                    self.audit.kafka = Some(crate::audit::mirror::MirrorConfig {
                        brokers,
                        topic: crate::audit::mirror::MirrorConfig::default_topic(),
                        security: Default::default(),
                    });
                }
            }
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

    /// The approval list and the token checks cannot be changed by a process's environment:
    /// an agent that can start the gateway with its own variables does not get to drop
    /// approvals or accept its own tokens.
    #[test]
    fn approvals_and_auth_are_set_only_in_the_file() {
        for (name, value) in [
            ("IDGW_GATEWAY_POLICY_APPROVAL_REQUIRED", ""),
            ("IDGW_GATEWAY_POLICY_MIN_REASONING_CHARS", "0"),
            ("IDGW_GATEWAY_POLICY_NOTIFY_TEMPLATES_WAS_THIS_YOU", "click here"),
            ("IDGW_GATEWAY_AUTH_JWKS_URI", "https://attacker.example/jwks"),
            ("IDGW_GATEWAY_AUTH_LEEWAY_S", "315360000"),
        ] {
            let err = GatewayConfig::resolve(None, vec![(name.to_owned(), value.to_owned())]).unwrap_err();
            assert!(
                err.to_string().contains(name) && err.to_string().contains("only in the configuration file"),
                "{err}"
            );
        }
        let ok = GatewayConfig::resolve(
            None,
            vec![(
                "IDGW_GATEWAY_APPROVALS_PUBLIC_URL".to_owned(),
                "https://idgw.example.com".to_owned(),
            )],
        )
        .unwrap();
        assert_eq!(
            ok.config.approvals.public_url.as_deref(),
            Some("https://idgw.example.com")
        );
    }

    /// `KAFKA_BROKERS` points the audit copy at the brokers; it never drops the TLS and
    /// SASL the file set for it (an attacker's shortcut to a plaintext audit copy).
    #[test]
    fn kafka_brokers_keep_the_audit_copys_security() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[gateway.audit.kafka]\nbrokers = \"a:9093\"\ntopic = \"audit.t\"\n\
             [gateway.audit.kafka.security]\nprotocol = \"ssl\"\n",
        )
        .unwrap();
        let vars = vec![("KAFKA_BROKERS".to_owned(), "b:9093".to_owned())];
        let c = GatewayConfig::resolve(Some(&path), vars).unwrap().config;
        let k = c.audit.kafka.unwrap();
        assert_eq!((k.brokers.as_str(), k.topic.as_str()), ("b:9093", "audit.t"));
        assert_eq!(k.security.protocol, idgw_pipeline::stream::kafka_client::Protocol::Ssl);
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
