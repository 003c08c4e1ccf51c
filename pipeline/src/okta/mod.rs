//! Talking to Okta's APIs, shared by the System Log poller and the gateway: one call with
//! Okta's failure handling ([`http::send`]), the credentials ([`credentials`]), and what can
//! go wrong ([`OktaError`]), mapped from Okta's `errorCode`, never from its text.

pub mod credentials;
pub mod http;

/// What Okta said no to, or why it could not be asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OktaError {
    /// No such user (E0000007, or the flow's not-found answer).
    #[error("not found in Okta: {0}")]
    NotFound(String),
    /// The user's status does not allow the operation (E0000001 on a lifecycle call,
    /// E0000038): e.g. suspending a user who is not ACTIVE.
    #[error("Okta refused in the user's current status ({code}): {summary}")]
    WrongState { code: String, summary: String },
    /// Still rate-limited after waiting, or the window resets too far ahead.
    #[error("Okta rate limit: the window resets in {wait_s} s")]
    RateLimited { wait_s: u64, request_id: Option<String> },
    /// 5xx after the retries.
    #[error("Okta server error {status}: {detail}")]
    Server {
        status: u16,
        detail: String,
        request_id: Option<String>,
    },
    /// The connection could not be made: the request never reached Okta.
    #[error("the request did not reach Okta: {0}")]
    NotSent(String),
    /// The connection failed or dropped after the request was sent: whether Okta carried
    /// it out is not known from the answer.
    #[error("cannot reach Okta: {0}")]
    Transport(String),
    /// The credentials were refused (401).
    #[error("Okta refused the gateway's credentials: {0}")]
    Unauthorized(String),
    /// The credentials lack the permission (403).
    #[error("Okta denied the permission: {0}")]
    Forbidden(String),
    /// Another 4xx.
    #[error("Okta rejected the request ({code}): {summary}")]
    Rejected { code: String, summary: String },
    /// Neither backend is configured for the operation.
    #[error("{0}")]
    Unsupported(String),
    /// The configuration cannot work (bad URL).
    #[error("Okta configuration: {0}")]
    Config(String),
    /// Okta answered something this client cannot read.
    #[error("unexpected answer from Okta: {0}")]
    Unexpected(String),
}

impl OktaError {
    /// Worth trying again after a delay.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            OktaError::Server { .. } | OktaError::Transport(_) | OktaError::NotSent(_) | OktaError::RateLimited { .. }
        )
    }

    /// Whether Okta certainly did not carry the request out: it refused it, or it never
    /// got it. Otherwise (5xx, a dropped answer, an unreadable one) it may have.
    pub fn certainly_not_done(&self) -> bool {
        !matches!(
            self,
            OktaError::Server { .. } | OktaError::Transport(_) | OktaError::Unexpected(_)
        )
    }
}

/// Maps a non-2xx, non-retried Okta answer to an error by its `errorCode`.
pub fn refusal(reply: &http::Reply, what: &str) -> OktaError {
    let body = http::OktaErrorBody::parse(&reply.body);
    let summary = if body.error_summary.is_empty() {
        String::from_utf8_lossy(&reply.body).chars().take(300).collect()
    } else {
        body.text()
    };
    match (reply.status.as_u16(), body.error_code.as_str()) {
        (404, _) | (410, _) => OktaError::NotFound(format!("{what}: {summary}")),
        (400, "E0000001") | (403, "E0000038") | (423, _) => OktaError::WrongState {
            code: body.error_code,
            summary,
        },
        (401, _) => OktaError::Unauthorized(summary),
        (403, _) => OktaError::Forbidden(summary),
        _ => OktaError::Rejected {
            code: if body.error_code.is_empty() {
                reply.status.as_u16().to_string()
            } else {
                body.error_code
            },
            summary,
        },
    }
}
