//! The Okta Management API backend (reference.md §3): Users lifecycle, sessions, roles and
//! the System Log, with an SSWS API token or a service app's access token.

use reqwest::{Method, Url};
use serde_json::Value;

use super::http::{self, RetryConfig};
use super::{Done, LogQuery, OktaError, Op, okta_refusal};
use idgw_pipeline::okta::credentials::Credential;

pub(super) struct Management<'a> {
    pub client: &'a reqwest::Client,
    pub org: &'a str,
    pub credential: &'a Credential,
    pub retry: &'a RetryConfig,
}

impl Management<'_> {
    /// `org` + path segments, each percent-encoded (logins contain `@` and may contain `+`).
    fn url(&self, segments: &[&str]) -> Result<Url, OktaError> {
        let mut url = Url::parse(self.org).map_err(|e| OktaError::Config(format!("OKTA_ORG_URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| OktaError::Config("OKTA_ORG_URL cannot be a base URL".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        what: &str,
        resend: http::Resend,
    ) -> Result<(Value, Option<String>), OktaError> {
        let authorization = self.credential.header(self.client, self.retry).await?;
        let reply = http::send_with(self.retry, resend, || {
            self.client
                .request(method.clone(), url.clone())
                .header("Authorization", &authorization)
                .header("Accept", "application/json")
        })
        .await?;
        if !reply.status.is_success() {
            if reply.status == reqwest::StatusCode::UNAUTHORIZED {
                // A revoked or expired service-app token: the next call fetches a new one.
                self.credential.forget().await;
            }
            return Err(okta_refusal(&reply, what));
        }
        // Lifecycle calls answer 200 with an empty body, session clears 204.
        let value = if reply.body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&reply.body).map_err(|e| OktaError::Unexpected(format!("{what}: {e}")))?
        };
        Ok((value, reply.request_id))
    }

    pub async fn get_user(&self, login: &str) -> Result<(Value, Option<String>), OktaError> {
        let url = self.url(&["api", "v1", "users", login])?;
        self.call(Method::GET, url, &format!("user {login}"), http::Resend::Always)
            .await
    }

    pub async fn roles(&self, user_id: &str) -> Result<Vec<String>, OktaError> {
        let url = self.url(&["api", "v1", "users", user_id, "roles"])?;
        let (v, _) = self
            .call(Method::GET, url, &format!("roles of {user_id}"), http::Resend::Always)
            .await?;
        Ok(v.as_array()
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(|r| r.get("type").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The groups a user belongs to: (id, name) of each. One page of [`GROUPS_PAGE`]; a
    /// user in more groups is an error (the caller refuses), never a partial answer.
    pub async fn groups(&self, user_id: &str) -> Result<Vec<(String, String)>, OktaError> {
        let mut url = self.url(&["api", "v1", "users", user_id, "groups"])?;
        url.query_pairs_mut().append_pair("limit", &GROUPS_PAGE.to_string());
        let (v, _) = self
            .call(Method::GET, url, &format!("groups of {user_id}"), http::Resend::Always)
            .await?;
        // Anything but a list is an error: an empty answer would protect no one.
        let groups = v
            .as_array()
            .ok_or_else(|| OktaError::Unexpected(format!("groups of {user_id}: not a list")))?;
        if groups.len() >= GROUPS_PAGE {
            return Err(OktaError::Unexpected(format!(
                "{user_id} belongs to {GROUPS_PAGE} groups or more, more than one page; refusing rather than reading part of them"
            )));
        }
        Ok(groups
            .iter()
            .filter_map(|g| {
                let id = g.get("id").and_then(Value::as_str)?;
                let name = g.pointer("/profile/name").and_then(Value::as_str).unwrap_or_default();
                Some((id.to_owned(), name.to_owned()))
            })
            .collect())
    }

    pub async fn act(&self, op: Op, login: &str) -> Result<Done, OktaError> {
        let what = format!("{} {login}", op.flow_name());
        let (method, mut url) = match op {
            Op::Suspend => (
                Method::POST,
                self.url(&["api", "v1", "users", login, "lifecycle", "suspend"])?,
            ),
            Op::Unsuspend => (
                Method::POST,
                self.url(&["api", "v1", "users", login, "lifecycle", "unsuspend"])?,
            ),
            Op::ResetPassword => (
                Method::POST,
                self.url(&["api", "v1", "users", login, "lifecycle", "reset_password"])?,
            ),
            Op::RevokeSessions => (Method::DELETE, self.url(&["api", "v1", "users", login, "sessions"])?),
            Op::ReadUser | Op::Notify | Op::SearchLogs => {
                return Err(OktaError::Unsupported(format!("{} is not an action", op.flow_name())));
            }
        };
        match op {
            // The user gets the reset mail; the agent never sees a reset link.
            Op::ResetPassword => {
                url.query_pairs_mut()
                    .append_pair("sendEmail", "true")
                    .append_pair("revokeSessions", "true");
            }
            Op::RevokeSessions => {
                url.query_pairs_mut().append_pair("oauthTokens", "true");
            }
            _ => {}
        }
        // A lifecycle call happens once: sent again only if it never reached Okta.
        let (detail, request_id) = self.call(method, url, &what, http::Resend::OnlyUnsent).await?;
        Ok(Done {
            via: "management",
            request_ids: request_id.into_iter().collect(),
            detail: (!detail.is_null()).then_some(detail),
        })
    }

    pub async fn search_logs(&self, q: &LogQuery) -> Result<(Vec<Value>, Vec<String>), OktaError> {
        let mut url = self.url(&["api", "v1", "logs"])?;
        {
            let mut pairs = url.query_pairs_mut();
            let mut filter = q.filter.clone();
            if let Some(login) = &q.user_login {
                let by_user = format!("actor.alternateId eq \"{}\"", login.replace('"', ""));
                filter = Some(match filter {
                    Some(f) => format!("({f}) and {by_user}"),
                    None => by_user,
                });
            }
            if let Some(f) = &filter {
                pairs.append_pair("filter", f);
            }
            if let Some(v) = &q.q {
                pairs.append_pair("q", v);
            }
            if let Some(v) = &q.since {
                pairs.append_pair("since", v);
            }
            if let Some(v) = &q.until {
                pairs.append_pair("until", v);
            }
            pairs.append_pair("sortOrder", "DESCENDING");
            pairs.append_pair("limit", &q.limit.clamp(1, 1000).to_string());
        }
        let (v, request_id) = self.call(Method::GET, url, "System Log", http::Resend::Always).await?;
        let events = match v {
            Value::Array(a) => a,
            _ => return Err(OktaError::Unexpected("the System Log answered without an array".into())),
        };
        Ok((events, request_id.into_iter().collect()))
    }
}

/// Groups read per request (Okta's largest page for a user's groups).
pub const GROUPS_PAGE: usize = 200;
