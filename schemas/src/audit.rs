//! `AuditRecord`: one entry of the gateway's hash-chained audit log.
//!
//! Keeps the reference design's fields (`transaction_id`, `timestamp`, `action`, `user`,
//! `reasoning`, `status`, `rollback_of`) and adds who, with what authority, on what evidence,
//! and the chain: `prev_hash` is the SHA-256 of the previous record's canonical JSON line.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether the record was written before the action ran or after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditPhase {
    /// Written (and fsynced) before the action runs.
    Intent,
    /// Written after, with the result.
    Outcome,
}

/// Human approval of one exact call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Approval {
    /// Who approved.
    pub approver: String,
    /// How the gateway authenticated the approver: `page` (the approval page, signed in
    /// with the authorization-code flow and PKCE), `cli` (`idgw approve` with the
    /// approver's token); `dev-no-auth` and `dev-no-auth-client` on demo gateways only.
    pub method: String,
    /// When.
    pub at: DateTime<Utc>,
    /// SHA-256 of the tool name and canonical arguments the approval is bound to.
    pub arguments_hash: String,
    /// The approver's token `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The OAuth client the approver's token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Where the decision came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// `txn-<uuid>`; intent and outcome of one call share it.
    pub transaction_id: String,
    /// When the record was written.
    pub timestamp: DateTime<Utc>,
    /// Intent or outcome.
    pub phase: AuditPhase,
    /// The tool (`suspend_user`, …).
    pub action: String,
    /// The user acted on (login).
    pub user: Option<String>,
    /// The agent's stated reasoning.
    pub reasoning: Option<String>,
    /// `pending`, `success`, `failed`, `denied`, `rejected`, `dry_run`.
    pub status: String,
    /// The transaction this one rolls back.
    pub rollback_of: Option<String>,
    /// Who called (token `sub`).
    pub principal: Option<String>,
    /// The MCP client (name/version) and OAuth client id.
    pub client: Option<String>,
    /// The caller's token `jti`, when its token has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Where the request came from (the TCP peer; absent over stdio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
    /// Scopes the caller held.
    pub scopes: Vec<String>,
    /// The call's arguments.
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// Alert ids or event uuids offered as evidence.
    pub evidence: Vec<String>,
    /// Approval, when one was required.
    pub approval: Option<Approval>,
    /// The target's state before the action.
    pub pre_state: Option<serde_json::Value>,
    /// The target's state after.
    pub post_state: Option<serde_json::Value>,
    /// Okta `X-Okta-Request-Id`s of the calls made.
    pub okta_request_ids: Vec<String>,
    /// Error text when the action failed or was refused.
    pub error: Option<String>,
    /// SHA-256 (hex) of the previous record's line; 64 zeros for the first.
    pub prev_hash: String,
}
