//! Approvals the gateway itself verifies.
//!
//! An approval counts only when this process authenticated the approver at the moment of
//! the decision, as a principal other than the requester holding `mcp:actions:approve`
//! ([`web`]: the approval page signs the person in with the authorization-code flow and
//! PKCE; `idgw approve` sends the decision with the approver's token). Nothing the calling
//! MCP client answers and no file anyone can write is an approval.
//!
//! Open requests live in this process's memory; the audit log records each request, each
//! decision (approver `sub`, token `jti`, channel, remote address, the hash of the exact
//! call) and each use (the intent record carries the approval). The log is the proof, not
//! the authority: an edited log breaks its chain, and a record appended by hand is never
//! read back as a decision. A restart therefore voids open approvals; the agent asks anew.

pub mod web;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use idgw_schemas::{AuditPhase, AuditRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditLog};
/// The argument names that do not change what a call does, and so are not part of what
/// an approval is bound to.
const UNBOUND_ARGUMENTS: [&str; 2] = ["approval_id", "dry_run"];

/// SHA-256 (hex) of the tool name and its arguments with keys sorted at every level.
pub fn arguments_hash(tool: &str, arguments: &Map<String, Value>) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    canonical(&m[k.as_str()], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let bound: Map<String, Value> = arguments
        .iter()
        .filter(|(k, _)| !UNBOUND_ARGUMENTS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut text = String::new();
    canonical(&Value::Object(bound), &mut text);
    let digest = Sha256::new()
        .chain_update(tool.as_bytes())
        .chain_update([0])
        .chain_update(text.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long a page sign-in or an answer waits at most, whatever the policy says.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// How an approver reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// The approval page, signed in with the authorization-code flow and PKCE.
    Page,
    /// `idgw approve`, with the approver's stored token.
    Cli,
    /// A `--dev-no-auth` gateway: nobody was authenticated (demos only).
    DevNoAuth,
    /// A `--dev-no-auth` gateway taking the calling client's own form answer (demos only).
    DevNoAuthClient,
}

impl Channel {
    /// The name the audit log records.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Page => "page",
            Channel::Cli => "cli",
            Channel::DevNoAuth => "dev-no-auth",
            Channel::DevNoAuthClient => "dev-no-auth-client",
        }
    }

    fn is_dev(self) -> bool {
        matches!(self, Channel::DevNoAuth | Channel::DevNoAuthClient)
    }
}

/// What the approver was shown, repeated with the decision so that a decision cannot land
/// on another call than the one the person read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    pub arguments_hash: String,
    /// The resolved Okta user id.
    pub target_id: String,
}

impl Shown {
    /// What `r` shows.
    pub fn of(r: &ApprovalRequest) -> Self {
        Shown {
            arguments_hash: r.arguments_hash.clone(),
            target_id: r.target.id.clone(),
        }
    }
}

/// Who decided, as the gateway authenticated them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// The token's `sub` (or a `--dev-no-auth` label).
    pub subject: String,
    /// The token's `jti`.
    pub token_id: Option<String>,
    /// The OAuth client the token was issued to.
    pub client_id: Option<String>,
    pub channel: Channel,
    /// Where the decision came from.
    pub remote_addr: Option<String>,
}

impl Approver {
    /// An approver from a token this gateway validated: it must hold `mcp:actions:approve`.
    pub fn authenticated(
        principal: &crate::auth::Principal,
        channel: Channel,
        remote_addr: Option<String>,
    ) -> Result<Self, ApprovalError> {
        if channel.is_dev() {
            return Err(ApprovalError::NotDevGateway);
        }
        if !crate::auth::scopes::grants(&principal.scopes, crate::auth::scopes::ACTIONS_APPROVE) {
            return Err(ApprovalError::Scope(principal.subject.clone()));
        }
        // A service app's token (client credentials: `sub` is the client) is no person.
        if principal.client_id.as_deref() == Some(principal.subject.as_str()) {
            return Err(ApprovalError::NotAPerson(principal.subject.clone()));
        }
        Ok(Approver {
            subject: principal.subject.clone(),
            token_id: principal.token_id.clone(),
            client_id: principal.client_id.clone(),
            channel,
            remote_addr,
        })
    }

    /// A `--dev-no-auth` decision: accepted only by a gateway running `--dev-no-auth`.
    pub fn dev_no_auth(label: &str, channel: Channel, remote_addr: Option<String>) -> Self {
        Approver {
            subject: format!("{label} (dev-no-auth: not authenticated)"),
            token_id: None,
            client_id: None,
            channel: if channel.is_dev() { channel } else { Channel::DevNoAuth },
            remote_addr,
        }
    }
}

/// The Okta user a call acts on, as Okta resolved it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// `00u…`.
    pub id: String,
    pub login: String,
    pub name: Option<String>,
    pub status: String,
}

/// One evidence item, as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceItem {
    /// The alert id or event uuid.
    pub id: String,
    /// `alert` or `event`.
    pub kind: String,
    /// The alert's summary, or the event's type and display message.
    pub summary: String,
    pub severity: Option<String>,
    pub time: Option<String>,
    pub user_id: Option<String>,
    pub user_login: Option<String>,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Pending,
    Approved,
    Rejected,
}

/// One approval request: the exact call a person is asked to approve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The transaction the request belongs to (its id is the approval id).
    pub transaction_id: String,
    pub tool: String,
    pub arguments_hash: String,
    /// The arguments, for the human to read.
    pub arguments: Map<String, Value>,
    /// Who asked (token `sub`).
    pub principal: String,
    /// The MCP client and OAuth client that asked.
    pub client: Option<String>,
    /// The user the call acts on.
    pub target: Target,
    pub reasoning: String,
    pub evidence: Vec<EvidenceItem>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decision: Decision,
    pub approver: Option<Approver>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl ApprovalRequest {
    /// The approval as the intent record carries it (its use).
    pub fn audit_approval(&self) -> idgw_schemas::audit::Approval {
        let a = self.approver.clone();
        idgw_schemas::audit::Approval {
            approver: a.as_ref().map(|a| a.subject.clone()).unwrap_or_default(),
            method: a.as_ref().map_or("", |a| a.channel.as_str()).to_owned(),
            at: self.decided_at.unwrap_or_else(Utc::now),
            arguments_hash: self.arguments_hash.clone(),
            token_id: a.as_ref().and_then(|a| a.token_id.clone()),
            client_id: a.as_ref().and_then(|a| a.client_id.clone()),
            remote_addr: a.and_then(|a| a.remote_addr),
        }
    }
}

/// Why an approval cannot be given or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error(
        "no open approval {0} (unknown, already used, or asked before the gateway restarted: approvals live in the gateway that asked)"
    )]
    Unknown(String),
    #[error("approval {0} has expired; call the tool again to ask anew")]
    Expired(String),
    #[error("approval {0} is still pending: a person other than the requester must approve it")]
    Pending(String),
    #[error("approval {0} was rejected by {1}")]
    Rejected(String, String),
    #[error("approval {0} was given for another call (tool, arguments or caller differ); ask anew for this one")]
    Mismatch(String),
    #[error("approval {0} cannot be decided by the principal who asked for it ({1}); another person must approve")]
    SelfApproval(String, String),
    #[error("approval {0} was already decided")]
    Decided(String),
    #[error(
        "this gateway authenticates approvers: --dev-no-auth decisions are accepted only by a gateway running --dev-no-auth"
    )]
    NotDevGateway,
    #[error("{0} lacks the scope mcp:actions:approve; sign in again with it")]
    Scope(String),
    #[error("{0} is an application (a client-credentials token), not a person; approvers sign in as themselves")]
    NotAPerson(String),
    #[error("approval {0} is not the call that was shown (its arguments or its user changed); open the request again")]
    NotShown(String),
    #[error("the decision could not be audited ({0}), so it was not taken")]
    Audit(String),
}

/// The open approval requests of this gateway.
#[derive(Debug)]
pub struct Approvals {
    audit: Arc<AuditLog>,
    open: Mutex<HashMap<String, ApprovalRequest>>,
    /// Bumped on every decision, so a waiting call sees it at once.
    decided: tokio::sync::watch::Sender<u64>,
    /// The approval page's base URL (`http://host:port`), once a listener serves it.
    page_base: Mutex<Option<String>>,
    dev_no_auth: bool,
}

impl Approvals {
    /// The approvals of a gateway writing `audit`; `dev_no_auth` for a `--dev-no-auth` demo.
    pub fn new(audit: Arc<AuditLog>, dev_no_auth: bool) -> Self {
        Approvals {
            audit,
            open: Mutex::default(),
            decided: tokio::sync::watch::channel(0).0,
            page_base: Mutex::default(),
            dev_no_auth,
        }
    }

    /// Whether this gateway runs `--dev-no-auth`.
    pub fn is_dev_no_auth(&self) -> bool {
        self.dev_no_auth
    }

    /// Where the approval page is served (`http://host:port`, no trailing slash).
    pub fn set_page_base(&self, base: &str) {
        *self.page_base.lock().unwrap_or_else(|e| e.into_inner()) = Some(base.trim_end_matches('/').to_owned());
    }

    /// The approval page of `tx`, when one is served.
    pub fn page_url(&self, tx: &str) -> Option<String> {
        let base = self.page_base.lock().unwrap_or_else(|e| e.into_inner());
        base.as_ref().map(|b| format!("{b}/approvals/{tx}"))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, ApprovalRequest>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a request (its `pending_approval` record is the caller's to write first).
    pub fn open(&self, r: ApprovalRequest) {
        let now = Utc::now();
        let mut open = self.map();
        // Expired requests go; the map holds at most what a TTL's worth of calls opened.
        open.retain(|_, o| o.expires_at + chrono::Duration::seconds(60) > now);
        open.insert(r.transaction_id.clone(), r);
    }

    /// One open request.
    pub fn get(&self, tx: &str) -> Result<ApprovalRequest, ApprovalError> {
        self.map()
            .get(tx)
            .cloned()
            .ok_or_else(|| ApprovalError::Unknown(tx.to_owned()))
    }

    /// Pending, unexpired requests, oldest first.
    pub fn pending(&self) -> Vec<ApprovalRequest> {
        let now = Utc::now();
        let mut v: Vec<_> = self
            .map()
            .values()
            .filter(|r| r.decision == Decision::Pending && r.expires_at > now)
            .cloned()
            .collect();
        v.sort_by_key(|r| r.created_at);
        v
    }

    /// A decision by `approver`, whom the caller authenticated, on the call they were shown
    /// (`shown`: its arguments hash and the resolved user's id): only on a pending,
    /// unexpired request, never by the principal who asked, and only once it is in the
    /// audit log (fsynced).
    pub fn decide(
        &self,
        tx: &str,
        approver: Approver,
        shown: &Shown,
        approve: bool,
    ) -> Result<ApprovalRequest, ApprovalError> {
        if approver.channel.is_dev() && !self.dev_no_auth {
            return Err(ApprovalError::NotDevGateway);
        }
        let mut open = self.map();
        let r = open.get_mut(tx).ok_or_else(|| ApprovalError::Unknown(tx.to_owned()))?;
        if r.decision != Decision::Pending {
            return Err(ApprovalError::Decided(tx.to_owned()));
        }
        if Utc::now() > r.expires_at {
            return Err(ApprovalError::Expired(tx.to_owned()));
        }
        if approver.subject.trim().eq_ignore_ascii_case(r.principal.trim()) {
            return Err(ApprovalError::SelfApproval(tx.to_owned(), approver.subject));
        }
        if shown.arguments_hash != r.arguments_hash || shown.target_id != r.target.id {
            return Err(ApprovalError::NotShown(tx.to_owned()));
        }
        let mut decided = r.clone();
        decided.decision = if approve {
            Decision::Approved
        } else {
            Decision::Rejected
        };
        decided.approver = Some(approver.clone());
        decided.decided_at = Some(Utc::now());
        let status = if approve { "approved" } else { "rejected_by_approver" };
        let mut record: AuditRecord = audit::record(tx, AuditPhase::Outcome, &r.tool, status);
        record.principal = Some(approver.subject.clone());
        record.client = approver.client_id.clone();
        record.token_id = approver.token_id.clone();
        record.remote_addr = approver.remote_addr.clone();
        record.user = Some(r.target.login.clone());
        record.arguments = r.arguments.clone();
        record.reasoning = Some(r.reasoning.clone());
        record.evidence = r.evidence.iter().map(|e| e.id.clone()).collect();
        record.approval = Some(decided.audit_approval());
        self.audit
            .append(record, true)
            .map_err(|e| ApprovalError::Audit(e.to_string()))?;
        *r = decided.clone();
        drop(open);
        self.decided.send_modify(|n| *n += 1);
        Ok(decided)
    }

    /// Whether the approval can be used for this exact call (without using it).
    pub fn check(
        &self,
        tx: &str,
        tool: &str,
        arguments_hash: &str,
        principal: &str,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let r = self.get(tx)?;
        if r.tool != tool || r.arguments_hash != arguments_hash || r.principal != principal {
            return Err(ApprovalError::Mismatch(tx.to_owned()));
        }
        match r.decision {
            Decision::Pending => return Err(ApprovalError::Pending(tx.to_owned())),
            Decision::Rejected => {
                let by = r.approver.as_ref().map(|a| a.subject.clone()).unwrap_or_default();
                return Err(ApprovalError::Rejected(tx.to_owned(), by));
            }
            Decision::Approved => {}
        }
        if Utc::now() > r.expires_at {
            return Err(ApprovalError::Expired(tx.to_owned()));
        }
        Ok(r)
    }

    /// Uses an approval for this exact call on the user `target_id` (as resolved now: the
    /// user approved must be the user acted on), once.
    pub fn consume(
        &self,
        tx: &str,
        tool: &str,
        arguments_hash: &str,
        principal: &str,
        target_id: &str,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let checked = self.check(tx, tool, arguments_hash, principal)?;
        if checked.target.id != target_id {
            return Err(ApprovalError::Mismatch(tx.to_owned()));
        }
        // Whoever removes it uses it: of parallel callers, one does. (An approved request
        // never changes again, so the check above still holds.)
        self.map()
            .remove(tx)
            .map(|_| checked)
            .ok_or_else(|| ApprovalError::Unknown(tx.to_owned()))
    }

    /// Waits until `tx` is decided (or `timeout` passes); its decision then.
    pub async fn wait_decided(&self, tx: &str, timeout: std::time::Duration) -> Decision {
        let mut rx = self.decided.subscribe();
        let wait = async {
            loop {
                match self.get(tx) {
                    Ok(r) if r.decision != Decision::Pending => return r.decision,
                    Ok(_) => {}
                    Err(_) => return Decision::Pending,
                }
                if rx.changed().await.is_err() {
                    return Decision::Pending;
                }
            }
        };
        tokio::time::timeout(timeout.min(MAX_WAIT), wait)
            .await
            .unwrap_or(Decision::Pending)
    }
}

#[cfg(test)]
mod tests {}
