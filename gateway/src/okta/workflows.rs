//! The Okta Workflows backend (reference.md §5): API-endpoint flows invoked with a JSON POST
//! of the reference payload `{"user_login", "reason"}` and the flow's client token.

use serde_json::{Map, Value, json};

use super::http::{self, RetryConfig};
use super::{Done, Flow, LogQuery, OktaError, Op};

async fn post(
    client: &reqwest::Client,
    flow: &Flow,
    retry: &RetryConfig,
    body: &Value,
    what: &str,
    resend: http::Resend,
) -> Result<(Value, Option<String>), OktaError> {
    let reply = http::send_with(retry, resend, || {
        let mut req = client.post(&flow.url).json(body);
        if let Some(token) = &flow.token {
            req = req.header("x-api-client-token", token);
        }
        req
    })
    .await?;
    let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    if reply.status.is_success() {
        return Ok((value, reply.request_id));
    }
    // A flow answers with its own shape; when it passes on Okta's error object (as
    // `okta`), its code decides, as for the Management API.
    let okta = value.get("okta").cloned().unwrap_or(Value::Null);
    let code = okta.get("errorCode").and_then(Value::as_str).unwrap_or_default();
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| okta.get("errorSummary").and_then(Value::as_str))
        .or_else(|| value.get("error").and_then(Value::as_str))
        .unwrap_or("no message")
        .to_owned();
    let causes = okta
        .get("errorCauses")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|c| c.get("errorSummary").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let summary = if causes.is_empty() {
        message
    } else {
        format!("{message}; {causes}")
    };
    Err(match (reply.status.as_u16(), code) {
        (404, _) => OktaError::NotFound(format!("{what}: {summary}")),
        (400, "E0000001") | (403, "E0000038") => OktaError::WrongState {
            code: code.to_owned(),
            summary,
        },
        (401, _) => OktaError::Unauthorized(format!("the {what} flow refused its client token: {summary}")),
        (403, _) => OktaError::Forbidden(summary),
        (status, _) => OktaError::Rejected {
            code: if code.is_empty() {
                status.to_string()
            } else {
                code.to_owned()
            },
            summary,
        },
    })
}

pub(super) async fn invoke(
    client: &reqwest::Client,
    flow: &Flow,
    retry: &RetryConfig,
    op: Op,
    login: &str,
    extra: &[(&str, &str)],
) -> Result<Done, OktaError> {
    let mut body = Map::new();
    body.insert("user_login".into(), json!(login));
    for (k, v) in extra {
        body.insert((*k).into(), json!(v));
    }
    // A flow that acts runs once: sent again only if it never reached Okta (the payload's
    // transaction_id lets a flow recognise a repeat).
    let resend = match op {
        Op::ReadUser | Op::SearchLogs => http::Resend::Always,
        _ => http::Resend::OnlyUnsent,
    };
    let (detail, request_id) = post(client, flow, retry, &Value::Object(body), op.flow_name(), resend).await?;
    Ok(Done {
        via: "workflows",
        request_ids: request_id.into_iter().collect(),
        detail: (!detail.is_null()).then_some(detail),
    })
}

pub(super) async fn search_logs(
    client: &reqwest::Client,
    flow: &Flow,
    retry: &RetryConfig,
    q: &LogQuery,
) -> Result<(Vec<Value>, Vec<String>), OktaError> {
    let mut body = Map::new();
    for (k, v) in [
        ("filter", &q.filter),
        ("q", &q.q),
        ("since", &q.since),
        ("until", &q.until),
        ("user_login", &q.user_login),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    body.insert("limit".into(), json!(q.limit.clamp(1, 1000)));
    let (v, request_id) = post(
        client,
        flow,
        retry,
        &Value::Object(body),
        "search_logs",
        http::Resend::Always,
    )
    .await?;
    let events = match v.get("events") {
        Some(Value::Array(a)) => a.clone(),
        _ => {
            return Err(OktaError::Unexpected(
                "the search_logs flow answered without `events`".into(),
            ));
        }
    };
    Ok((events, request_id.into_iter().collect()))
}
