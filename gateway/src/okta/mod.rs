//! Acting on Okta: the two backends of the reference design and ours, chosen per operation
//! by configuration — an Okta Workflows API-endpoint flow when one is configured for the
//! operation (the reference payload `{"user_login", "reason"}`), otherwise the Okta
//! Management API (`OKTA_ORG_URL` with an SSWS token). An operation neither can do is a
//! clear [`OktaError::Unsupported`].
//!
//! Every call goes through [`http::send`]: 429 waits for the window, 5xx and dropped
//! connections retry with backoff. Answers are mapped to [`OktaError`] by Okta's
//! `errorCode`, never by its text.

mod management;
mod workflows;

// The HTTP basics (retries, rate limits, credentials, errors) are shared with the pipeline's
// System Log poller.
pub use idgw_pipeline::okta::{OktaError, http, refusal as okta_refusal};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use idgw_pipeline::okta::credentials::ServiceAppConfig;
pub use idgw_pipeline::okta::http::RetryConfig;

use idgw_pipeline::okta::credentials::Credential;

/// The operations, for configuration and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ReadUser,
    Suspend,
    Unsuspend,
    ResetPassword,
    RevokeSessions,
    Notify,
    SearchLogs,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 7] = [
        Op::ReadUser,
        Op::Suspend,
        Op::Unsuspend,
        Op::ResetPassword,
        Op::RevokeSessions,
        Op::Notify,
        Op::SearchLogs,
    ];

    /// The reference design's flow name (`OKTA_WF_<NAME>_URL`).
    pub fn flow_name(self) -> &'static str {
        match self {
            Op::ReadUser => "read_user",
            Op::Suspend => "suspend_user",
            Op::Unsuspend => "unsuspend_user",
            Op::ResetPassword => "reset_password",
            Op::RevokeSessions => "revoke_sessions",
            Op::Notify => "notify_user",
            Op::SearchLogs => "search_logs",
        }
    }
}

/// One Workflows API-endpoint flow.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// `https://{org}.workflows.okta.com/api/flo/{alias}/invoke`.
    pub url: String,
    /// The flow's client token (sent as `x-api-client-token`).
    #[serde(default)]
    pub token: Option<String>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("url", &self.url)
            .field("token", &crate::auth::redacted(&self.token))
            .finish()
    }
}

/// `[gateway.okta.workflows]`: the flows configured, by the reference design's names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowsConfig {
    pub suspend_user: Option<Flow>,
    pub unsuspend_user: Option<Flow>,
    pub reset_password: Option<Flow>,
    pub revoke_sessions: Option<Flow>,
    pub notify_user: Option<Flow>,
    pub search_logs: Option<Flow>,
    pub read_user: Option<Flow>,
}

impl WorkflowsConfig {
    /// The flow for `op`, if configured.
    pub fn flow(&self, op: Op) -> Option<&Flow> {
        match op {
            Op::ReadUser => self.read_user.as_ref(),
            Op::Suspend => self.suspend_user.as_ref(),
            Op::Unsuspend => self.unsuspend_user.as_ref(),
            Op::ResetPassword => self.reset_password.as_ref(),
            Op::RevokeSessions => self.revoke_sessions.as_ref(),
            Op::Notify => self.notify_user.as_ref(),
            Op::SearchLogs => self.search_logs.as_ref(),
        }
    }

    fn slot(&mut self, op: Op) -> &mut Option<Flow> {
        match op {
            Op::ReadUser => &mut self.read_user,
            Op::Suspend => &mut self.suspend_user,
            Op::Unsuspend => &mut self.unsuspend_user,
            Op::ResetPassword => &mut self.reset_password,
            Op::RevokeSessions => &mut self.revoke_sessions,
            Op::Notify => &mut self.notify_user,
            Op::SearchLogs => &mut self.search_logs,
        }
    }
}

/// `[gateway.okta]`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OktaConfig {
    /// `https://{org}.okta.com` for the Management API (`OKTA_ORG_URL`).
    pub org_url: Option<String>,
    /// SSWS API token (`OKTA_API_TOKEN`). Never logged, never sent anywhere but `org_url`.
    pub api_token: Option<String>,
    /// An OAuth service app instead of the API token (taken when both are set).
    pub service_app: Option<ServiceAppConfig>,
    /// Workflows flows, which take precedence for the operations they cover.
    pub workflows: WorkflowsConfig,
    /// Retries and rate-limit waits.
    pub retry: RetryConfig,
}

impl std::fmt::Debug for OktaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaConfig")
            .field("org_url", &self.org_url)
            .field("api_token", &crate::auth::redacted(&self.api_token))
            .field("service_app", &self.service_app)
            .field("workflows", &self.workflows)
            .field("retry", &self.retry)
            .finish()
    }
}

impl OktaConfig {
    /// The first configured Okta URL (org or Workflows flow) that is not on this host: a
    /// real org, which a `--dev-no-auth` demo must not act on.
    pub fn remote_target(&self) -> Option<String> {
        let flows = Op::ALL
            .into_iter()
            .filter_map(|op| self.workflows.flow(op).map(|f| f.url.clone()));
        self.org_url.iter().cloned().chain(flows).find(|u| {
            let host = reqwest::Url::parse(u)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned));
            // IPv6 hosts come bracketed (`[::1]`).
            !host.is_some_and(|h| {
                h == "localhost"
                    || h.trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            })
        })
    }

    /// Applies the reference design's environment names: `OKTA_ORG_URL`, `OKTA_API_TOKEN`,
    /// `OKTA_WF_<FLOW>_URL` / `_TOKEN`.
    pub fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) {
        let nonempty = |n: &str| get(n).filter(|v| !v.trim().is_empty());
        if let Some(v) = nonempty("OKTA_ORG_URL") {
            self.org_url = Some(v.trim_end_matches('/').to_owned());
        }
        if let Some(v) = nonempty("OKTA_API_TOKEN") {
            self.api_token = Some(v);
        }
        if let (Some(client_id), Some(key)) = (
            nonempty("OKTA_SERVICE_CLIENT_ID"),
            nonempty("OKTA_SERVICE_PRIVATE_KEY_FILE"),
        ) {
            self.service_app = Some(ServiceAppConfig {
                client_id,
                private_key_file: key.into(),
                key_id: nonempty("OKTA_SERVICE_KEY_ID"),
                scopes: ServiceAppConfig::default_scopes(),
            });
        }
        for op in Op::ALL {
            let name = op.flow_name().to_ascii_uppercase();
            let url = nonempty(&format!("OKTA_WF_{name}_URL"));
            let token = nonempty(&format!("OKTA_WF_{name}_TOKEN"));
            let slot = self.workflows.slot(op);
            match (url, slot.as_mut()) {
                (Some(url), _) => {
                    let token = token.or_else(|| slot.as_ref().and_then(|f| f.token.clone()));
                    *slot = Some(Flow { url, token });
                }
                (None, Some(flow)) if token.is_some() => flow.token = token,
                _ => {}
            }
        }
    }
}

/// A user as Okta reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OktaUser {
    /// `00u…`.
    pub id: String,
    /// `profile.login`.
    pub login: String,
    /// `ACTIVE`, `SUSPENDED`, `RECOVERY`, …
    pub status: String,
    /// Display name from the profile.
    pub name: Option<String>,
    /// `statusChanged`.
    pub status_changed: Option<String>,
    /// `lastLogin`.
    pub last_login: Option<String>,
}

impl OktaUser {
    fn from_okta(v: &Value) -> Option<Self> {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let name = match (s("/profile/firstName"), s("/profile/lastName")) {
            (Some(f), Some(l)) => Some(format!("{f} {l}").trim().to_owned()),
            (f, l) => f.or(l),
        };
        Some(OktaUser {
            id: s("/id")?,
            login: s("/profile/login")?,
            status: s("/status")?,
            name,
            status_changed: s("/statusChanged"),
            last_login: s("/lastLogin"),
        })
    }
}

/// What an action did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Done {
    /// `workflows` or `management`.
    pub via: &'static str,
    /// `X-Okta-Request-Id`s.
    pub request_ids: Vec<String>,
    /// The flow's or API's answer, when it had one.
    pub detail: Option<Value>,
}

/// A System Log query (the live `search_logs`).
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub filter: Option<String>,
    pub q: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub user_login: Option<String>,
    pub limit: usize,
}

/// The Okta side of the gateway.
#[derive(Debug, Clone)]
pub struct Okta {
    client: reqwest::Client,
    config: OktaConfig,
    credential: Option<std::sync::Arc<Credential>>,
}

impl Okta {
    /// A client for `config` (nothing is contacted yet).
    pub fn new(config: OktaConfig) -> Result<Self, OktaError> {
        if let Some(url) = &config.org_url {
            reqwest::Url::parse(url).map_err(|e| OktaError::Config(format!("OKTA_ORG_URL {url:?}: {e}")))?;
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("idgw/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OktaError::Config(e.to_string()))?;
        let credential = match (&config.org_url, &config.service_app, &config.api_token) {
            (Some(org), Some(app), _) => Some(Credential::service_app(org, app)?),
            (Some(_), None, Some(token)) => Some(Credential::Ssws(token.clone())),
            _ => None,
        };
        Ok(Okta {
            client,
            config,
            credential: credential.map(std::sync::Arc::new),
        })
    }

    /// Which backend serves `op`: `Some("workflows")`, `Some("management")` or `None`.
    pub fn backend_for(&self, op: Op) -> Option<&'static str> {
        if self.config.workflows.flow(op).is_some() {
            Some("workflows")
        } else if self.management().is_some() && op != Op::Notify {
            Some("management")
        } else {
            None
        }
    }

    fn management(&self) -> Option<management::Management<'_>> {
        Some(management::Management {
            client: &self.client,
            org: self.config.org_url.as_deref()?,
            credential: self.credential.as_deref()?,
            retry: &self.config.retry,
        })
    }

    fn unsupported(op: Op) -> OktaError {
        let name = op.flow_name();
        let upper = name.to_ascii_uppercase();
        OktaError::Unsupported(match op {
            Op::Notify => format!(
                "{name} needs an Okta Workflows flow (the Management API cannot send a message): set OKTA_WF_{upper}_URL and OKTA_WF_{upper}_TOKEN"
            ),
            _ => format!(
                "{name} is not configured: set OKTA_ORG_URL with OKTA_API_TOKEN or a service app (OKTA_SERVICE_CLIENT_ID, OKTA_SERVICE_PRIVATE_KEY_FILE) for the Management API, or OKTA_WF_{upper}_URL and OKTA_WF_{upper}_TOKEN (Workflows)"
            ),
        })
    }

    async fn run(&self, op: Op, login: &str, extra: &[(&str, &str)]) -> Result<Done, OktaError> {
        if let Some(flow) = self.config.workflows.flow(op) {
            return workflows::invoke(&self.client, flow, &self.config.retry, op, login, extra).await;
        }
        match self.management() {
            Some(m) if op != Op::Notify => m.act(op, login).await,
            _ => Err(Self::unsupported(op)),
        }
    }

    /// Reads a user by login or id.
    pub async fn read_user(&self, login: &str) -> Result<(OktaUser, Option<String>), OktaError> {
        let (v, request_id) = if let Some(flow) = self.config.workflows.flow(Op::ReadUser) {
            let done = workflows::invoke(&self.client, flow, &self.config.retry, Op::ReadUser, login, &[]).await?;
            let user = done
                .detail
                .as_ref()
                .and_then(|d| d.get("user").cloned())
                .ok_or_else(|| OktaError::Unexpected("the read_user flow answered without `user`".into()))?;
            (user, done.request_ids.into_iter().next())
        } else if let Some(m) = self.management() {
            m.get_user(login).await?
        } else {
            return Err(Self::unsupported(Op::ReadUser));
        };
        let user = OktaUser::from_okta(&v)
            .ok_or_else(|| OktaError::Unexpected("a user without id, profile.login or status".into()))?;
        Ok((user, request_id))
    }

    /// The admin role types assigned to a user (`SUPER_ADMIN`, …), or `None` when no
    /// backend can tell (Workflows only).
    pub async fn admin_roles(&self, user_id: &str) -> Result<Option<Vec<String>>, OktaError> {
        match self.management() {
            Some(m) => m.roles(user_id).await.map(Some),
            None => Ok(None),
        }
    }

    /// The groups (id, name) a user belongs to, or `None` when no backend can tell
    /// (Workflows only).
    pub async fn groups(&self, user_id: &str) -> Result<Option<Vec<(String, String)>>, OktaError> {
        match self.management() {
            Some(m) => m.groups(user_id).await.map(Some),
            None => Ok(None),
        }
    }

    /// One action on `user` (an id for the Management API, a login for a Workflows flow):
    /// suspend (ACTIVE → SUSPENDED), unsuspend (SUSPENDED → ACTIVE), reset_password (the
    /// reset mail goes to the user; → RECOVERY), revoke_sessions, or notify (Workflows only,
    /// with `message`). `transaction_id` travels in a flow's payload so a flow can
    /// recognise a repeat.
    pub async fn act(
        &self,
        op: Op,
        user: &str,
        reason: &str,
        transaction_id: &str,
        message: Option<&str>,
    ) -> Result<Done, OktaError> {
        let mut extra = vec![("reason", reason), ("transaction_id", transaction_id)];
        if let Some(m) = message {
            extra.push(("message", m));
        }
        self.run(op, user, &extra).await
    }

    /// The live System Log, newest first.
    pub async fn search_logs(&self, query: &LogQuery) -> Result<(Vec<Value>, Vec<String>), OktaError> {
        if let Some(flow) = self.config.workflows.flow(Op::SearchLogs) {
            return workflows::search_logs(&self.client, flow, &self.config.retry, query).await;
        }
        match self.management() {
            Some(m) => m.search_logs(query).await,
            None => Err(Self::unsupported(Op::SearchLogs)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_environment_names_configure_backends() {
        let env = |n: &str| match n {
            "OKTA_ORG_URL" => Some("https://example.okta.com/".to_owned()),
            "OKTA_API_TOKEN" => Some("00abc".to_owned()),
            "OKTA_WF_SUSPEND_USER_URL" => Some("https://example.workflows.okta.com/api/flo/abc/invoke".to_owned()),
            "OKTA_WF_SUSPEND_USER_TOKEN" => Some("wf-token".to_owned()),
            "OKTA_WF_NOTIFY_USER_URL" => Some(String::new()),
            _ => None,
        };
        let mut c = OktaConfig::default();
        c.apply_env(&env);
        assert_eq!(c.org_url.as_deref(), Some("https://example.okta.com"));
        let flow = c.workflows.flow(Op::Suspend).unwrap();
        assert_eq!(flow.token.as_deref(), Some("wf-token"));
        assert!(
            c.workflows.flow(Op::Notify).is_none(),
            "an empty URL configures nothing"
        );
        let okta = Okta::new(c).unwrap();
        assert_eq!(okta.backend_for(Op::Suspend), Some("workflows"));
        assert_eq!(okta.backend_for(Op::Unsuspend), Some("management"));
        assert_eq!(okta.backend_for(Op::Notify), None);
        let e = Okta::unsupported(Op::Notify).to_string();
        assert!(e.contains("OKTA_WF_NOTIFY_USER_URL"), "{e}");
    }

    #[test]
    fn refusals_map_by_error_code() {
        let reply = |status: u16, body: &str| http::Reply {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            headers: reqwest::header::HeaderMap::new(),
            body: body.as_bytes().to_vec(),
            request_id: None,
        };
        let wrong = reply(
            400,
            r#"{"errorCode":"E0000001","errorSummary":"Api validation failed: user","errorCauses":[{"errorSummary":"Cannot suspend a user that is not active"}]}"#,
        );
        match okta_refusal(&wrong, "suspend") {
            OktaError::WrongState { code, summary } => {
                assert_eq!(code, "E0000001");
                assert!(summary.contains("not active"), "{summary}");
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            okta_refusal(
                &reply(404, r#"{"errorCode":"E0000007","errorSummary":"Not found"}"#),
                "x"
            ),
            OktaError::NotFound(_)
        ));
        assert!(matches!(
            okta_refusal(&reply(401, r#"{"errorCode":"E0000011"}"#), "x"),
            OktaError::Unauthorized(_)
        ));
        assert!(matches!(
            okta_refusal(&reply(400, "not json"), "x"),
            OktaError::Rejected { .. }
        ));
    }
}
