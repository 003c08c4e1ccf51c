//! Audited, reversible actions on Okta. Each call runs the same sequence:
//!
//! 1. policy: stated reasoning, evidence that exists in the store;
//! 2. the target resolved at Okta (login, id or shortname), then protected accounts and
//!    evidence about that user checked against the resolved id and login; everything after
//!    acts, locks and displays by the resolved id;
//! 3. the target's current state (a repeated action is reported, not retried);
//! 4. dry-run, if asked or configured;
//! 5. the approval of the exact call by a person other than the requester, whom the
//!    gateway authenticated ([`crate::approvals`]; [`human`] carries the person there);
//! 6. blast-radius limits;
//! 7. the intent, fsynced to the audit log — if that fails, nothing runs;
//! 8. the Okta call, then the state after it, and the outcome record.
//!
//! Every refusal is audited as well. Calls on one user are serialised, so parallel
//! suspends of one user make one Okta call (the second finds the user suspended).

mod human;
pub mod notify;
pub mod policy;
mod reads;
mod types;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use datafusion::prelude::{col, lit};
use idgw_schemas::{AuditPhase, AuditRecord};
use rmcp::model::RequestStateCodec;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::approvals::{self, Approvals, EvidenceItem};
use crate::audit::{self, AuditError, AuditLog};
use crate::data::StoreReader;
use crate::okta::{Done, Okta, OktaError, OktaUser};
pub use human::{Channel, Human, InputRound};
use policy::{BlastRadius, PolicyConfig};
pub use types::*;

/// Who is calling, as the audit log records it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Token `sub` (or `dev-no-auth`).
    pub principal: String,
    /// Held scopes.
    pub scopes: Vec<String>,
    /// MCP client name/version and OAuth client id.
    pub client: Option<String>,
    /// The token's `jti`.
    pub token_id: Option<String>,
    /// The TCP peer (none over stdio).
    pub remote_addr: Option<String>,
}

/// The lifecycle actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Suspend,
    Unsuspend,
    ResetPassword,
    RevokeSessions,
    Notify,
}

impl Kind {
    /// The tool's name.
    pub fn tool(self) -> &'static str {
        match self {
            Kind::Suspend => "suspend_user",
            Kind::Unsuspend => "unsuspend_user",
            Kind::ResetPassword => "reset_password",
            Kind::RevokeSessions => "revoke_sessions",
            Kind::Notify => "notify_user",
        }
    }

    /// Whether the action must cite evidence (the destructive ones).
    fn needs_evidence(self) -> bool {
        matches!(self, Kind::Suspend | Kind::ResetPassword | Kind::RevokeSessions)
    }

    /// The status that means the action was already done.
    fn done_status(self) -> Option<&'static str> {
        match self {
            Kind::Suspend => Some("SUSPENDED"),
            Kind::Unsuspend => Some("ACTIVE"),
            Kind::ResetPassword => Some("RECOVERY"),
            Kind::RevokeSessions | Kind::Notify => None,
        }
    }

    /// What `rollback` does for a transaction of this tool.
    fn inverse(tool: &str) -> Result<Kind, String> {
        match tool {
            "suspend_user" => Ok(Kind::Unsuspend),
            "unsuspend_user" | "reactivate_user" => Ok(Kind::Suspend),
            "reset_password" => Err("a password reset cannot be undone: the old password is gone and the user sets a new one; if the reset was wrong, tell the user (notify_user)".into()),
            "revoke_sessions" => Err("revoked sessions cannot be restored; the user signs in again".into()),
            "notify_user" => Err("a sent notification cannot be unsent; send a correction with notify_user".into()),
            "rollback" => Err("a rollback is not rolled back; act again with the original tool, which is audited and approved like any action".into()),
            other => Err(format!("{other} changed nothing in Okta, so there is nothing to roll back")),
        }
    }
}

/// Why the action service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The audit log could not be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The request-state sealing key could not be made.
    #[error("request-state key: {0}")]
    Key(String),
}

/// A refused or failed call: the text the agent reads (with the transaction id).
pub type ActionError = String;

/// The action side of the gateway.
pub struct Actions {
    okta: Okta,
    audit: Arc<AuditLog>,
    approvals: Arc<Approvals>,
    policy: PolicyConfig,
    blast: BlastRadius,
    reader: Arc<StoreReader>,
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Seals input-required request states with a key of this process.
    codec: RequestStateCodec,
    /// Nonces of request states already answered (single use).
    answered: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actions").field("audit", &self.audit).finish()
    }
}

/// One action call, as `execute` runs it.
struct Call<'a> {
    caller: &'a Caller,
    tool: &'a str,
    kind: Kind,
    login: &'a str,
    reasoning: &'a str,
    evidence: &'a [String],
    approval_id: Option<&'a str>,
    dry_run: bool,
    rollback_of: Option<String>,
    message: Option<&'a str>,
    /// Text the agent wrote for the user: approved word for word whatever the policy says.
    free_text: bool,
    arguments: Map<String, Value>,
}

impl Actions {
    /// The action service deciding with `approvals` (which must write the same audit log);
    /// the blast-radius window starts from the audit log's last hour.
    pub fn new(
        okta: Okta,
        audit: Arc<AuditLog>,
        policy: PolicyConfig,
        reader: Arc<StoreReader>,
        approvals: Arc<Approvals>,
    ) -> Result<Self, SetupError> {
        let hour_ago = Utc::now() - chrono::Duration::hours(1);
        let history = audit.read(|r| r.phase == AuditPhase::Intent && r.timestamp > hour_ago)?;
        let blast = BlastRadius::with_history(
            history
                .into_iter()
                .map(|r| (r.timestamp, r.principal.unwrap_or_default())),
        );
        Ok(Actions {
            okta,
            approvals,
            audit,
            policy,
            blast,
            reader,
            locks: std::sync::Mutex::default(),
            // 32 random bytes (two v4 UUIDs come from the OS generator).
            codec: RequestStateCodec::try_new(
                [*uuid::Uuid::new_v4().as_bytes(), *uuid::Uuid::new_v4().as_bytes()].concat(),
            )
            .map_err(|e| SetupError::Key(e.to_string()))?,
            answered: std::sync::Mutex::default(),
        })
    }

    /// The audit log.
    pub fn audit_log(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    /// The open approval requests.
    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    /// Reconciles intents without an outcome (the gateway stopped mid-call): re-reads each
    /// user at Okta and records the state found as a `reconciled` outcome. Run at start,
    /// before serving; the transactions reconciled.
    pub async fn reconcile(&self) -> Result<Vec<String>, AuditError> {
        let records = self.audit.read(|_| true)?;
        let mut open: Vec<&AuditRecord> = Vec::new();
        for r in &records {
            match r.phase {
                AuditPhase::Intent => open.push(r),
                AuditPhase::Outcome => open.retain(|i| !audit::closes(r, i)),
            }
        }
        let mut done = Vec::new();
        for intent in open {
            let key = intent
                .pre_state
                .as_ref()
                .and_then(|p| p.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| intent.user.clone())
                .unwrap_or_default();
            let mut r = intent.clone();
            r.phase = AuditPhase::Outcome;
            r.status = "reconciled".into();
            match self.okta.read_user(&key).await {
                Ok((u, _)) => {
                    r.error = Some(format!(
                        "no outcome was recorded (the gateway stopped mid-call); Okta shows status {} now",
                        u.status
                    ));
                    r.post_state = serde_json::to_value(&u).ok();
                }
                Err(e) => {
                    r.error = Some(format!(
                        "no outcome was recorded (the gateway stopped mid-call); the user cannot be read now: {e}"
                    ));
                }
            }
            self.write(r, true).await?;
            done.push(intent.transaction_id.clone());
        }
        Ok(done)
    }

    /// Appends off the async threads (the write may fsync).
    async fn write(&self, record: AuditRecord, durable: bool) -> Result<AuditRecord, AuditError> {
        let log = Arc::clone(&self.audit);
        tokio::task::spawn_blocking(move || log.append(record, durable))
            .await
            .unwrap_or_else(|e| {
                Err(AuditError::Io {
                    path: log_dir_text(&e),
                    source: std::io::Error::other("audit writer task failed"),
                })
            })
    }

    /// Records a read-only call (one outcome record, not fsynced at once).
    pub async fn audit_read(&self, caller: &Caller, tool: &str, arguments: Map<String, Value>, error: Option<String>) {
        let tx = audit::new_transaction_id();
        let status = if error.is_some() { "failed" } else { "success" };
        let mut r = base_record(&tx, AuditPhase::Outcome, tool, status, caller, arguments);
        r.user = r
            .arguments
            .get("user_login")
            .or_else(|| r.arguments.get("user"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        r.error = error.as_deref().map(bounded);
        if let Err(e) = self.write(r, false).await {
            tracing::error!(error = %e, tool, "cannot audit a read");
        }
    }

    /// Records a call refused before it reached the tool (scope, sign-in).
    pub async fn audit_denied(&self, caller: &Caller, tool: &str, arguments: Map<String, Value>, reason: &str) {
        let tx = audit::new_transaction_id();
        let mut r = base_record(&tx, AuditPhase::Outcome, tool, "denied", caller, arguments);
        r.error = Some(bounded(reason));
        if let Err(e) = self.write(r, true).await {
            tracing::error!(error = %e, tool, "cannot audit a denied call");
        }
    }

    fn user_lock(&self, login: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(login.to_ascii_lowercase()).or_default())
    }

    /// The evidence items the store knows (alert ids or event uuids), with what the
    /// approver reads of them.
    async fn evidence_items(&self, ids: &[String]) -> Result<Vec<EvidenceItem>, String> {
        fn text(row: &Map<String, Value>, column: &str) -> Option<String> {
            match row.get(column)? {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        }
        let mut found = Vec::new();
        let list: Vec<_> = ids.iter().map(|i| lit(i.clone())).collect();
        let tables: [(&str, &str, &[&str]); 2] = [
            (
                "alerts",
                "alert_id",
                &[
                    "alert_id",
                    "detection",
                    "severity",
                    "summary",
                    "last_seen",
                    "user_id",
                    "user_login",
                ],
            ),
            (
                "events",
                "event_id",
                &[
                    "event_id",
                    "event_type",
                    "severity",
                    "display_message",
                    "event_time",
                    "user_id",
                    "user_login",
                ],
            ),
        ];
        for (table, column, columns) in tables {
            let df = match self.reader.table(table).await {
                Ok(df) => df,
                Err(_) => continue,
            };
            let df = df
                .filter(col(column).in_list(list.clone(), false))
                .and_then(|d| d.select_columns(columns))
                .map_err(|e| e.to_string())?;
            for row in self.reader.rows(df).await.map_err(|e| e.to_string())? {
                let Some(id) = text(&row, column) else { continue };
                let (kind, summary, time) = if table == "alerts" {
                    let summary = format!(
                        "{}: {}",
                        text(&row, "detection").unwrap_or_default(),
                        text(&row, "summary").unwrap_or_default()
                    );
                    ("alert", summary, text(&row, "last_seen"))
                } else {
                    let summary = format!(
                        "{}: {}",
                        text(&row, "event_type").unwrap_or_default(),
                        text(&row, "display_message").unwrap_or_default()
                    );
                    ("event", summary, text(&row, "event_time"))
                };
                if found.iter().any(|f: &EvidenceItem| f.id == id) {
                    continue;
                }
                found.push(EvidenceItem {
                    id,
                    kind: kind.into(),
                    summary,
                    severity: text(&row, "severity"),
                    time,
                    user_id: text(&row, "user_id"),
                    user_login: text(&row, "user_login"),
                });
            }
        }
        // In the order the agent gave them.
        found.sort_by_key(|f| ids.iter().position(|i| *i == f.id));
        Ok(found)
    }

    /// Refuses with an audited `denied` record.
    async fn deny(&self, call: &Call<'_>, tx: &str, reason: String, pre: Option<&OktaUser>) -> ActionError {
        let mut r = call_record(call, tx, AuditPhase::Outcome, "denied");
        r.error = Some(reason.clone());
        r.pre_state = pre.and_then(|p| serde_json::to_value(p).ok());
        let audited = self.write(r, true).await;
        match audited {
            Ok(_) => format!("{} refused ({tx}): {reason}", call.tool),
            Err(e) => format!(
                "{} refused: {reason} (and the refusal could not be audited: {e})",
                call.tool
            ),
        }
    }

    /// Whether `tx` is a successful suspend of `target` in this audit log.
    fn suspend_of(&self, tx: &str, target: &OktaUser) -> Result<(), String> {
        let records = self
            .audit
            .read(|r| r.transaction_id == tx && r.phase == AuditPhase::Outcome && r.status == "success")
            .map_err(|e| e.to_string())?;
        let of_target = records.iter().any(|r| {
            r.action == "suspend_user"
                && (r.pre_state.as_ref().and_then(|p| p.get("id")).and_then(Value::as_str) == Some(target.id.as_str())
                    || r.user.as_deref().is_some_and(|u| policy::same_name(u, &target.login)))
        });
        if of_target {
            Ok(())
        } else {
            Err(format!(
                "transaction_id {tx} is not a successful suspend_user of {} in this audit log",
                target.login
            ))
        }
    }

    /// The Okta call on the resolved user: the Management API by id; a Workflows flow,
    /// whose contract is `user_login`, by the login Okta resolved.
    async fn okta_call(&self, call: &Call<'_>, user: &OktaUser, tx: &str) -> Result<Done, OktaError> {
        let op = op_of(call.kind);
        let key = if self.okta.backend_for(op) == Some("workflows") {
            user.login.as_str()
        } else {
            user.id.as_str()
        };
        // A notification's flow gets the text the user may read in both fields: a flow that
        // mails `reason` must not send the agent's own words unapproved.
        let message = (call.kind == Kind::Notify).then(|| call.message.unwrap_or(call.reasoning));
        let reason = message.unwrap_or(call.reasoning);
        self.okta.act(op, key, reason, tx, message).await
    }

    /// Asks for (or uses) the human approval of `call`.
    async fn execute(&self, call: Call<'_>, human: Human<'_>) -> Result<ActionResult, ActionError> {
        // An approved call continues the transaction that asked for the approval — once the
        // approval checks out for this caller, tool and arguments. Until then a refusal is
        // recorded under a transaction of its own (the claimed id is in its arguments): an id
        // any caller can type must not let it write outcomes into another's transaction,
        // where they would close that transaction's intent.
        let hash = approvals::arguments_hash(call.tool, &call.arguments);
        let mut tx = match (call.approval_id, human) {
            (Some(_), _) => audit::new_transaction_id(),
            (
                None,
                Human::InputRequired(InputRound {
                    request_state: Some(state),
                    ..
                }),
            ) => match self.open_state(&call, &hash, state) {
                Ok(sealed) => sealed.tx,
                Err(why) => return Err(self.deny(&call, &audit::new_transaction_id(), why, None).await),
            },
            _ => audit::new_transaction_id(),
        };
        let reasoning = call.reasoning.trim();
        if reasoning.chars().count() < self.policy.min_reasoning_chars {
            let min = self.policy.min_reasoning_chars;
            return Err(self
                .deny(
                    &call,
                    &tx,
                    format!("reasoning must say, in at least {min} characters, what the evidence shows"),
                    None,
                )
                .await);
        }
        // A rollback's evidence is the transaction it undoes, checked in the audit log.
        if call.kind.needs_evidence() && call.evidence.is_empty() && call.rollback_of.is_none() {
            return Err(self
                .deny(&call, &tx, "evidence is required: alert ids (list_alerts) or event uuids (search_events) that support the action".into(), None)
                .await);
        }
        if let Err(why) = target_syntax(call.login) {
            return Err(self.deny(&call, &tx, why, None).await);
        }
        let evidence = if call.evidence.is_empty() {
            Vec::new()
        } else {
            match self.evidence_items(call.evidence).await {
                Ok(found) => {
                    let unknown: Vec<&str> = call
                        .evidence
                        .iter()
                        .filter(|i| !found.iter().any(|f| f.id == **i))
                        .map(String::as_str)
                        .collect();
                    if !unknown.is_empty() {
                        return Err(self
                            .deny(
                                &call,
                                &tx,
                                format!("evidence not found in the store: {}", unknown.join(", ")),
                                None,
                            )
                            .await);
                    }
                    found
                }
                Err(e) => {
                    return Err(self
                        .deny(&call, &tx, format!("cannot check the evidence: {e}"), None)
                        .await);
                }
            }
        };
        // A given approval must be usable before anything else is looked at, so a used or
        // foreign one is refused even when the action would change nothing.
        if let Some(id) = call.approval_id {
            if let Err(e) = self.approvals.check(id, call.tool, &hash, &call.caller.principal) {
                return Err(self.unusable_approval(&call, &tx, e).await);
            }
            id.clone_into(&mut tx);
        }
        // The user as Okta resolves the name given (login, id or shortname): every check
        // below and the action itself apply to that one account, whatever it was called.
        let target = match self.okta.read_user(call.login).await {
            Ok((u, _)) => u,
            Err(e @ OktaError::NotFound(_)) => return Err(self.deny(&call, &tx, e.to_string(), None).await),
            Err(e) => {
                return Err(self
                    .deny(&call, &tx, format!("cannot resolve the user at Okta: {e}"), None)
                    .await);
            }
        };
        if self.policy.is_protected(&target.id) || self.policy.is_protected(&target.login) {
            return Err(self
                .deny(
                    &call,
                    &tx,
                    format!(
                        "{} ({}) is a protected account (policy.protected_users)",
                        target.login, target.id
                    ),
                    None,
                )
                .await);
        }
        // An unsuspend that names the suspend it reverses must name one of this user.
        if call.kind == Kind::Unsuspend
            && call.tool != "rollback"
            && let Some(of) = call.rollback_of.as_deref()
            && let Err(why) = self.suspend_of(of, &target)
        {
            return Err(self.deny(&call, &tx, why, None).await);
        }
        // From here on the call names the resolved login in records and answers.
        let resolved_login = target.login.clone();
        let call = Call {
            login: &resolved_login,
            ..call
        };
        let lock = self.user_lock(&target.id);
        let _serial = lock.lock().await;
        // Read again under the lock: a parallel call on the same user may have acted.
        let pre = match self.okta.read_user(&target.id).await {
            Ok((u, _)) => u,
            Err(e @ OktaError::NotFound(_)) => return Err(self.deny(&call, &tx, e.to_string(), None).await),
            Err(e) => {
                return Err(self
                    .deny(&call, &tx, format!("cannot read the user's state: {e}"), None)
                    .await);
            }
        };
        if !self.policy.protected_groups.is_empty() {
            let refusal = match self.okta.groups(&pre.id).await {
                Ok(Some(groups)) => self.policy.protected_group(&groups).map(|(id, name)| {
                    format!("{} is a member of the protected group {name} ({id}) (policy.protected_groups)", call.login)
                }),
                // Fails closed: a membership no one can read may be a protected one.
                Ok(None) => Some(
                    "policy.protected_groups is set but group memberships cannot be read without the Management API (OKTA_API_TOKEN or OAuth for Okta); refusing rather than guessing".to_owned(),
                ),
                Err(e) => Some(format!("cannot check the user's groups: {e}")),
            };
            if let Some(why) = refusal {
                return Err(self.deny(&call, &tx, why, Some(&pre)).await);
            }
        }
        if self.policy.protect_admins {
            match self.okta.admin_roles(&pre.id).await {
                Ok(Some(roles)) if !roles.is_empty() => {
                    return Err(self
                        .deny(
                            &call,
                            &tx,
                            format!(
                                "{} holds admin roles ({}); admins are protected (policy.protect_admins)",
                                call.login,
                                roles.join(", ")
                            ),
                            Some(&pre),
                        )
                        .await);
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(self
                        .deny(
                            &call,
                            &tx,
                            format!("cannot check the user's admin roles: {e}"),
                            Some(&pre),
                        )
                        .await);
                }
            }
        }
        if !evidence.is_empty()
            && !evidence.iter().any(|e| {
                e.user_id.as_deref() == Some(pre.id.as_str())
                    || e.user_login
                        .as_deref()
                        .is_some_and(|l| policy::same_name(l, &pre.login))
            })
        {
            return Err(self
                .deny(
                    &call,
                    &tx,
                    format!(
                        "none of the evidence is about {} ({}): cite at least one alert or event of the user acted on",
                        pre.login, pre.id
                    ),
                    Some(&pre),
                )
                .await);
        }
        let result = |status: &str, message: String| result_for(&call, &tx, &pre, status, message);
        // The answer for an action done; `how` says how that is known when not from Okta's
        // answer.
        let success = |how: &str, post: Option<OktaUser>, approval: Option<idgw_schemas::audit::Approval>| {
            let mut r = result(
                "success",
                format!(
                    "{} done on {}{how}: status {} → {}",
                    call.tool,
                    call.login,
                    pre.status,
                    post.as_ref().map_or("unknown", |p| p.status.as_str())
                ),
            );
            r.post_state = post;
            r.approved_by = approval.map(|a| a.approver);
            r
        };
        if call.kind.done_status() == Some(pre.status.as_str()) {
            let mut r = call_record(&call, &tx, AuditPhase::Outcome, "no_change");
            r.pre_state = serde_json::to_value(&pre).ok();
            self.write(r, true).await.map_err(|e| e.to_string())?;
            return Ok(result(
                "no_change",
                format!("{} is already {}; nothing was done", call.login, pre.status),
            ));
        }
        if call.dry_run || self.policy.dry_run {
            let mut r = call_record(&call, &tx, AuditPhase::Outcome, "dry_run");
            r.pre_state = serde_json::to_value(&pre).ok();
            self.write(r, true).await.map_err(|e| e.to_string())?;
            let backend = self.okta.backend_for(op_of(call.kind));
            return Ok(result(
                "dry_run",
                format!(
                    "dry run: {} would run on {} (status {}) through {}; nothing was done",
                    call.tool,
                    call.login,
                    pre.status,
                    backend.unwrap_or("no configured backend")
                ),
            ));
        }
        // By the tool called and by what it does: an alias (`reactivate_user`) or a
        // rollback that unsuspends needs what `unsuspend_user` needs.
        let approval = if self.policy.needs_approval(call.tool)
            || self.policy.needs_approval(call.kind.tool())
            || call.free_text
        {
            let asked = human::Asked {
                hash: &hash,
                pre: &pre,
                evidence: &evidence,
            };
            match self.approve(&call, &tx, asked, human).await? {
                Ok(a) => Some(a),
                Err(pending) => return Ok(pending),
            }
        } else {
            None
        };
        if let Err(why) = self.blast.reserve(&call.caller.principal, &self.policy) {
            return Err(self.deny(&call, &tx, why, Some(&pre)).await);
        }
        let mut intent = call_record(&call, &tx, AuditPhase::Intent, "pending");
        intent.pre_state = serde_json::to_value(&pre).ok();
        intent.approval = approval.clone();
        if let Err(e) = self.write(intent, true).await {
            self.blast.release(&call.caller.principal);
            return Err(fail_closed(&call, &tx, &e));
        }
        let done = self.okta_call(&call, &pre, &tx).await;
        let post = self.okta.read_user(&pre.id).await.ok().map(|(u, _)| u);
        let mut outcome = call_record(&call, &tx, AuditPhase::Outcome, "success");
        outcome.pre_state = serde_json::to_value(&pre).ok();
        outcome.post_state = post.as_ref().and_then(|p| serde_json::to_value(p).ok());
        outcome.approval = approval.clone();
        match done {
            Ok(done) => {
                outcome.okta_request_ids = done.request_ids.clone();
                if let Err(e) = self.write(outcome, true).await {
                    tracing::error!(error = %e, transaction = %tx, "the action ran but its outcome could not be audited");
                }
                let mut r = success("", post, approval);
                r.okta_request_ids = done.request_ids;
                r.backend = Some(done.via.to_owned());
                Ok(r)
            }
            Err(e) => {
                if let OktaError::RateLimited {
                    request_id: Some(id), ..
                }
                | OktaError::Server {
                    request_id: Some(id), ..
                } = &e
                {
                    outcome.okta_request_ids.push(id.clone());
                }
                // Okta's answer says nothing certain after a 5xx or a lost answer: its state
                // after the call does, where the action has one to show.
                let verdict = if e.certainly_not_done() {
                    "failed"
                } else {
                    match (call.kind.done_status(), post.as_ref()) {
                        (Some(done), Some(p)) if p.status == done => "success",
                        (Some(_), Some(_)) => "failed",
                        _ => "unknown",
                    }
                };
                outcome.status = verdict.into();
                outcome.error = Some(match verdict {
                    "success" => format!("Okta's answer was lost ({e}); the user's state after shows it done"),
                    "unknown" => format!("{e}; whether Okta carried it out cannot be read back"),
                    _ => e.to_string(),
                });
                if verdict == "failed" {
                    self.blast.release(&call.caller.principal);
                }
                if let Err(ae) = self.write(outcome, true).await {
                    tracing::error!(error = %ae, transaction = %tx, "cannot audit the action's outcome");
                }
                match verdict {
                    "success" => {
                        let mut r = success(" (Okta's answer was lost; its state after shows it)", post, approval);
                        r.backend = self.okta.backend_for(op_of(call.kind)).map(str::to_owned);
                        Ok(r)
                    }
                    "unknown" => Err(format!(
                        "{} outcome unknown ({tx}): {e}; Okta may have carried it out, so it is not retried: check search_logs for the user before acting again",
                        call.tool
                    )),
                    _ => Err(format!("{} failed ({tx}): {e}", call.tool)),
                }
            }
        }
    }

    /// `suspend_user`, `reset_password`, `revoke_sessions`.
    pub async fn act(
        &self,
        caller: &Caller,
        kind: Kind,
        args: ActArgs,
        human: Human<'_>,
    ) -> Result<ActionResult, ActionError> {
        let arguments = to_map(&args);
        self.execute(
            Call {
                caller,
                tool: kind.tool(),
                kind,
                login: args.user_login.trim(),
                reasoning: &args.reasoning,
                evidence: &args.evidence,
                approval_id: args.approval_id.as_deref(),
                dry_run: args.dry_run,
                rollback_of: None,
                message: None,
                free_text: false,
                arguments,
            },
            human,
        )
        .await
    }

    /// `unsuspend_user` (and its alias `reactivate_user`, recorded under the name called).
    pub async fn unsuspend(
        &self,
        caller: &Caller,
        tool: &str,
        args: UnsuspendArgs,
        human: Human<'_>,
    ) -> Result<ActionResult, ActionError> {
        let arguments = to_map(&args);
        let tool = if tool == "reactivate_user" {
            "reactivate_user"
        } else {
            "unsuspend_user"
        };
        self.execute(
            Call {
                caller,
                tool,
                kind: Kind::Unsuspend,
                login: args.user_login.trim(),
                reasoning: &args.reason,
                evidence: &args.evidence,
                approval_id: args.approval_id.as_deref(),
                dry_run: args.dry_run,
                rollback_of: args.transaction_id.clone(),
                message: None,
                free_text: false,
                arguments,
            },
            human,
        )
        .await
    }

    /// `notify_user`: an operator's template filled with plain values, or text the agent
    /// wrote, which then needs a person's approval ([`notify`]).
    pub async fn notify(
        &self,
        caller: &Caller,
        args: NotifyArgs,
        human: Human<'_>,
    ) -> Result<ActionResult, ActionError> {
        let mut arguments = to_map(&args);
        let chosen = match (&args.template, &args.message) {
            (Some(name), None) => notify::render(&self.policy.notify_templates, name, &args.values).map(|t| (t, false)),
            (None, Some(message)) if args.values.is_empty() => Ok((message.clone(), true)),
            (None, Some(_)) => {
                Err("`values` fill a template's blanks; with `message`, write the whole text".to_owned())
            }
            (Some(_), Some(_)) => Err(
                "give `template` (sent as the operator wrote it) or `message` (approved first), not both".to_owned(),
            ),
            (None, None) => Err(format!(
                "say what to send: `template` (one of {}) with its `values`, or a `message` a person approves first",
                self.policy
                    .notify_templates
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        // A refused text is on record too: an agent probing the filter leaves a trace.
        let (text, free_text) = match chosen {
            Ok(c) => c,
            Err(e) => {
                self.audit_denied(caller, "notify_user", arguments, &e).await;
                return Err(e);
            }
        };
        // The text the user receives is on record and shown to the approver.
        arguments.insert("text".into(), Value::String(text.clone()));
        self.execute(
            Call {
                caller,
                tool: "notify_user",
                kind: Kind::Notify,
                login: args.user_login.trim(),
                reasoning: &args.reasoning,
                evidence: &args.evidence,
                approval_id: args.approval_id.as_deref(),
                dry_run: args.dry_run,
                rollback_of: None,
                message: Some(&text),
                free_text,
                arguments,
            },
            human,
        )
        .await
    }

    /// `rollback`: the inverse of a successful action, itself audited and approved.
    pub async fn rollback(
        &self,
        caller: &Caller,
        args: RollbackArgs,
        human: Human<'_>,
    ) -> Result<ActionResult, ActionError> {
        let arguments = to_map(&args);
        let target = args.transaction_id.trim().to_owned();
        let records = self
            .audit
            .read(|r| r.transaction_id == target || r.rollback_of.as_deref() == Some(target.as_str()))
            .map_err(|e| e.to_string())?;
        let Some(original) = records
            .iter()
            .find(|r| r.transaction_id == target && r.phase == AuditPhase::Outcome && r.status == "success")
        else {
            return Err(self
                .refuse_rollback(
                    caller,
                    &arguments,
                    format!("{target} is not a successful action in this audit log"),
                )
                .await);
        };
        if let Some(done) = records.iter().find(|r| {
            r.rollback_of.as_deref() == Some(target.as_str()) && r.status == "success" && r.phase == AuditPhase::Outcome
        }) {
            return Err(self
                .refuse_rollback(
                    caller,
                    &arguments,
                    format!("{target} was already rolled back by {}", done.transaction_id),
                )
                .await);
        }
        let kind = match Kind::inverse(&original.action) {
            Ok(k) => k,
            Err(why) => return Err(self.refuse_rollback(caller, &arguments, why).await),
        };
        // Undoing needs the authority of the inverse action as well.
        if let Some(needed) = crate::auth::scopes::required(kind.tool())
            && !crate::auth::scopes::grants(&caller.scopes, needed)
        {
            return Err(self
                .refuse_rollback(
                    caller,
                    &arguments,
                    format!(
                        "rolling back {} runs {}, which needs the scope {needed}",
                        original.action,
                        kind.tool()
                    ),
                )
                .await);
        }
        let login = original.user.clone().unwrap_or_default();
        self.execute(
            Call {
                caller,
                tool: "rollback",
                kind,
                login: &login,
                reasoning: &args.reasoning,
                evidence: &[],
                approval_id: args.approval_id.as_deref(),
                dry_run: args.dry_run,
                rollback_of: Some(target.clone()),
                message: None,
                free_text: false,
                arguments,
            },
            human,
        )
        .await
    }

    async fn refuse_rollback(&self, caller: &Caller, arguments: &Map<String, Value>, why: String) -> ActionError {
        self.audit_denied(caller, "rollback", arguments.clone(), &why).await;
        format!("rollback refused: {why}")
    }
}

fn log_dir_text(e: &tokio::task::JoinError) -> String {
    format!("(writer task: {e})")
}

fn to_map<T: Serialize>(args: &T) -> Map<String, Value> {
    match serde_json::to_value(args) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Longest error text recorded, characters: a tool error can quote what the caller sent or
/// a value its query built.
const MAX_RECORDED_ERROR: usize = 4_000;

fn bounded(text: &str) -> String {
    crate::text::clip(text, MAX_RECORDED_ERROR)
}

fn base_record(
    tx: &str,
    phase: AuditPhase,
    tool: &str,
    status: &str,
    caller: &Caller,
    arguments: Map<String, Value>,
) -> AuditRecord {
    let mut r = audit::record(tx, phase, tool, status);
    r.principal = Some(caller.principal.clone());
    r.scopes = caller.scopes.clone();
    r.client = caller.client.clone();
    r.token_id = caller.token_id.clone();
    r.remote_addr = caller.remote_addr.clone();
    r.arguments = redact(arguments);
    r
}

/// Argument names whose values are credentials: recorded as a SHA-256 prefix (enough to
/// match two records of one sign-in), never as the value.
const SECRET_ARGUMENTS: [&str; 6] = [
    "device_code",
    "user_code",
    "access_token",
    "refresh_token",
    "password",
    "client_secret",
];

fn redact(mut arguments: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in arguments.iter_mut() {
        if SECRET_ARGUMENTS.contains(&k.as_str()) {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            let digest = sha2::Sha256::digest(text.as_bytes());
            let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            *v = Value::String(format!("<redacted sha256:{hex}>"));
        }
    }
    arguments
}

/// The answer for a call on `pre`'s user before Okta is asked anything.
fn result_for(call: &Call<'_>, tx: &str, pre: &OktaUser, status: &str, message: String) -> ActionResult {
    ActionResult {
        transaction_id: tx.to_owned(),
        status: status.into(),
        action: call.tool.to_owned(),
        user_login: call.login.to_owned(),
        message,
        pre_state: Some(pre.clone()),
        post_state: None,
        approval: None,
        approved_by: None,
        okta_request_ids: Vec::new(),
        backend: None,
        rollback_of: call.rollback_of.clone(),
        input_required: None,
    }
}

/// The refusal when the audit log cannot take a record: actions fail closed.
fn fail_closed(call: &Call<'_>, tx: &str, e: &AuditError) -> ActionError {
    format!(
        "{} refused ({tx}): the audit log cannot be written ({e}); actions fail closed",
        call.tool
    )
}

fn call_record(call: &Call<'_>, tx: &str, phase: AuditPhase, status: &str) -> AuditRecord {
    let mut r = base_record(tx, phase, call.tool, status, call.caller, call.arguments.clone());
    r.user = Some(call.login.to_owned());
    r.reasoning = Some(call.reasoning.to_owned());
    r.evidence = call.evidence.to_vec();
    r.rollback_of = call.rollback_of.clone();
    r
}

/// Refuses user names that are no account: empty, `.`, `..`, `me` (Okta's alias for the
/// caller), and anything with path, query or control characters, which would change the
/// Okta URL the name is put in.
fn target_syntax(login: &str) -> Result<(), String> {
    let bad = login.is_empty()
        || matches!(login, "." | "..")
        || login.eq_ignore_ascii_case("me")
        || login
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '\\' | '?' | '#' | '%'));
    if bad {
        return Err(format!(
            "user_login {login:?} is not a user: give a login, an Okta user id (00u…) or a shortname"
        ));
    }
    Ok(())
}

/// The Okta operation of an action.
fn op_of(kind: Kind) -> crate::okta::Op {
    match kind {
        Kind::Suspend => crate::okta::Op::Suspend,
        Kind::Unsuspend => crate::okta::Op::Unsuspend,
        Kind::ResetPassword => crate::okta::Op::ResetPassword,
        Kind::RevokeSessions => crate::okta::Op::RevokeSessions,
        Kind::Notify => crate::okta::Op::Notify,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_arguments_are_never_recorded() {
        let caller = Caller {
            principal: "p".into(),
            ..Caller::default()
        };
        let arguments =
            serde_json::json!({"device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS", "tools": ["list_alerts"]});
        let r = base_record(
            "txn-1",
            AuditPhase::Outcome,
            "complete_device_auth",
            "success",
            &caller,
            arguments.as_object().unwrap().clone(),
        );
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains("GmRhmhcx"), "{line}");
        assert!(
            r.arguments["device_code"]
                .as_str()
                .unwrap()
                .starts_with("<redacted sha256:")
        );
        assert_eq!(r.arguments["tools"][0], "list_alerts");
    }
}
