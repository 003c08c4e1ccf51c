//! One Okta HTTP call with Okta's failure handling: a 429 waits until
//! `X-Rate-Limit-Reset` (reference.md §2.4), 5xx answers and dropped connections retry with
//! jittered exponential backoff, everything else is answered at once. The retry loop is
//! `backon`'s; this module only says which failures retry and how long a 429 waits.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::OktaError;

/// How hard to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay, in milliseconds (doubles each retry, with jitter).
    pub min_delay_ms: u64,
    /// Longest backoff delay, in milliseconds.
    pub max_delay_ms: u64,
    /// Longest wait for a rate-limit window to reset, in seconds; a 429 whose reset is
    /// further away fails at once with the time to wait.
    pub max_rate_limit_wait_s: u64,
    /// Per-request timeout, in seconds.
    pub timeout_s: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 4,
            min_delay_ms: 200,
            max_delay_ms: 5_000,
            max_rate_limit_wait_s: 60,
            timeout_s: 30,
        }
    }
}

/// An answer that was not retried away.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// The answer's headers (`Link`, `X-Rate-Limit-*`).
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    /// `X-Okta-Request-Id`.
    pub request_id: Option<String>,
}

/// Okta's error object (reference.md §2.5).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaErrorBody {
    #[serde(default)]
    pub error_code: String,
    #[serde(default)]
    pub error_summary: String,
    #[serde(default)]
    pub error_causes: Vec<Cause>,
}

/// One `errorCauses` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cause {
    #[serde(default)]
    pub error_summary: String,
}

impl OktaErrorBody {
    /// Parses `body`, or an empty error when it is not Okta's error object.
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// The summary and causes in one line.
    pub fn text(&self) -> String {
        let mut t = self.error_summary.clone();
        for c in &self.error_causes {
            if !c.error_summary.is_empty() && !t.contains(&c.error_summary) {
                t.push_str("; ");
                t.push_str(&c.error_summary);
            }
        }
        t
    }
}

/// Seconds until the epoch-seconds `X-Rate-Limit-Reset`, at least one.
pub fn reset_wait(headers: &reqwest::header::HeaderMap) -> Duration {
    let reset = headers
        .get("x-rate-limit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let now = chrono::Utc::now().timestamp();
    // One extra second: the reset is whole seconds and windows are not aligned to them.
    Duration::from_secs(reset.map_or(1, |r| (r - now).clamp(0, 3600) as u64 + 1))
}

/// When a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Reads and other idempotent calls: after 5xx, dropped connections and 429s.
    Always,
    /// Calls that change something and must not happen twice (suspend, reset, a flow):
    /// only when Okta provably did not act on it — the connection was never made, or a 429
    /// (Okta refuses before acting) — never after a 5xx or a lost answer.
    OnlyUnsent,
}

/// Sends the request `build` makes (again for each retry) and reads the answer; an
/// idempotent call ([`Resend::Always`]).
pub async fn send(retry: &RetryConfig, build: impl Fn() -> reqwest::RequestBuilder) -> Result<Reply, OktaError> {
    send_with(retry, Resend::Always, build).await
}

/// [`send`] with the resend policy the call allows.
pub async fn send_with(
    retry: &RetryConfig,
    resend: Resend,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply, OktaError> {
    let attempt = || async {
        let resp = build()
            .timeout(Duration::from_secs(retry.timeout_s.max(1)))
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    OktaError::NotSent(e.to_string())
                } else {
                    OktaError::Transport(e.to_string())
                }
            })?;
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("x-okta-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let wait = (status == StatusCode::TOO_MANY_REQUESTS).then(|| reset_wait(resp.headers()));
        let headers = resp.headers().clone();
        // A connection dropped mid-body is a transport failure, retried like one.
        let body = resp
            .bytes()
            .await
            .map_err(|e| OktaError::Transport(format!("reading the answer: {e}")))?
            .to_vec();
        if let Some(wait) = wait {
            return Err(OktaError::RateLimited {
                wait_s: wait.as_secs(),
                request_id,
            });
        }
        if status.is_server_error() {
            return Err(OktaError::Server {
                status: status.as_u16(),
                detail: OktaErrorBody::parse(&body).text(),
                request_id,
            });
        }
        Ok(Reply {
            status,
            headers,
            body,
            request_id,
        })
    };
    let backoff = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(retry.min_delay_ms))
        .with_max_delay(Duration::from_millis(retry.max_delay_ms.max(retry.min_delay_ms)))
        .with_max_times(retry.max_retries);
    let max_wait = Duration::from_secs(retry.max_rate_limit_wait_s);
    attempt
        .retry(backoff)
        .when(|e: &OktaError| match e {
            OktaError::RateLimited { wait_s, .. } => Duration::from_secs(*wait_s) <= max_wait,
            OktaError::NotSent(_) => true,
            e => resend == Resend::Always && e.retryable(),
        })
        .adjust(|e: &OktaError, backoff| match (e, backoff) {
            // Out of retries stays out of retries; otherwise a 429 waits for its window.
            (OktaError::RateLimited { wait_s, .. }, Some(_)) => Some(Duration::from_secs(*wait_s)),
            (_, b) => b,
        })
        .notify(|e: &OktaError, after: Duration| {
            tracing::warn!(error = %e, retry_in_ms = after.as_millis() as u64, "Okta call failed; retrying");
        })
        .await
}
