//! Reaching the human who approves an exact call: a form by elicitation (2025-11-25), an
//! input-required result answered on the retried call with a sealed, single-use request
//! state (2026-07-28), or out of band through `idgw approve` (the approvals directory).

use std::sync::Arc;

use chrono::Utc;
use idgw_schemas::AuditPhase;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationSchema, InputRequest, InputRequiredResult, InputResponses,
    SealOptions,
};
use rmcp::{Peer, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::approval::{ApprovalError, ApprovalRequest, Decision};
use super::{ActionError, ActionResult, Actions, Call, Confirm, PendingApproval, call_record, fail_closed, result_for};
use crate::okta::OktaUser;

/// How the human who approves is reached.
#[derive(Debug, Clone, Copy)]
pub enum Human<'a> {
    /// Out of band only (`idgw approve`): no client channel.
    OutOfBand,
    /// A form by MCP elicitation, a request from server to client (2025-11-25 clients
    /// that declare the capability; others fall back to out of band).
    Elicit(&'a Peer<RoleServer>),
    /// 2026-07-28 clients, where servers send no requests: an input-required result whose
    /// form the client shows, answered on the retried call with a sealed, single-use
    /// request state.
    InputRequired(&'a InputRound),
}

/// How the human is reached on this connection, as the server found it per call.
#[derive(Debug, Clone)]
pub enum Channel {
    /// Elicitation requests (or out of band when the client cannot take them).
    Elicit,
    /// Input-required results (protocol 2026-07-28 and later).
    InputRequired(Arc<InputRound>),
}

impl Channel {
    /// The [`Human`] for one call over `peer`.
    pub fn human<'a>(&'a self, peer: &'a Peer<RoleServer>) -> Human<'a> {
        match self {
            Channel::Elicit => Human::Elicit(peer),
            Channel::InputRequired(round) => Human::InputRequired(round),
        }
    }
}

/// What a 2026-07-28 `tools/call` carried back.
#[derive(Debug, Clone, Default)]
pub struct InputRound {
    pub responses: Option<InputResponses>,
    pub request_state: Option<String>,
}

/// The sealed `requestState`: the transaction and a nonce; the call it is bound to (tool,
/// arguments hash, principal) is the codec's associated data, not stored.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SealedApproval {
    pub(super) tx: String,
    nonce: String,
}

/// The key of an input-required answer.
const APPROVAL_INPUT: &str = "approval";

impl Actions {
    fn question(call: &Call<'_>, tx: &str, pre: &OktaUser) -> String {
        format!(
            "Approve {tool} on {login} (Okta status {status})?\nRequested by {who}.\nReasoning: {reasoning}\nEvidence: {evidence}\nTransaction {tx}.",
            tool = call.tool,
            login = call.login,
            status = pre.status,
            who = call.caller.principal,
            reasoning = call.reasoning,
            evidence = if call.evidence.is_empty() {
                "none".to_owned()
            } else {
                call.evidence.join(", ")
            },
        )
    }

    /// Refuses a call whose `approval_id` cannot be used (audited as rejected when a human
    /// said no, denied otherwise).
    pub(super) async fn unusable_approval(&self, call: &Call<'_>, tx: &str, e: ApprovalError) -> ActionError {
        let status = if matches!(e, ApprovalError::Rejected(..)) {
            "rejected"
        } else {
            "denied"
        };
        let mut r = call_record(call, tx, AuditPhase::Outcome, status);
        r.error = Some(e.to_string());
        let _ = self.write(r, true).await;
        format!("{} not run ({tx}): {e}", call.tool)
    }

    async fn reject(&self, call: &Call<'_>, tx: &str, why: String) -> ActionError {
        let mut r = call_record(call, tx, AuditPhase::Outcome, "rejected");
        r.error = Some(why.clone());
        let _ = self.write(r, true).await;
        format!("{} not run ({tx}): {why}", call.tool)
    }

    /// The associated data a request state is bound to.
    fn binding(call: &Call<'_>, hash: &str) -> String {
        format!("{}\n{}\n{}", call.tool, hash, call.caller.principal)
    }

    /// Opens a 2026-07-28 request state: its transaction, once.
    pub(super) fn open_state(&self, call: &Call<'_>, hash: &str, state: &str) -> Result<SealedApproval, String> {
        let sealed: SealedApproval = self
            .codec
            .open_json_with(state, Self::binding(call, hash).as_bytes())
            .map_err(|e| {
                format!("the request state does not verify for this call ({e}); call the tool again without it")
            })?;
        let mut answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        if !answered.insert(sealed.nonce.clone()) {
            return Err("this request state was already answered (single use); call the tool again without it".into());
        }
        Ok(sealed)
    }

    pub(super) async fn approve(
        &self,
        call: &Call<'_>,
        tx: &str,
        hash: &str,
        pre: &OktaUser,
        human: Human<'_>,
    ) -> Result<Result<idgw_schemas::audit::Approval, ActionResult>, ActionError> {
        if let (None, Human::InputRequired(round)) = (call.approval_id, human) {
            match (&round.request_state, &round.responses) {
                (Some(_), Some(responses)) => {
                    // The state was opened (and spent) when the transaction was chosen.
                    #[derive(Deserialize)]
                    struct Answer {
                        action: String,
                        #[serde(default)]
                        content: Option<Value>,
                    }
                    let answer = responses
                        .get(APPROVAL_INPUT)
                        .and_then(|v| serde_json::from_value::<Answer>(v.clone()).ok());
                    let approved = answer.as_ref().is_some_and(|a| {
                        a.action == "accept"
                            && a.content.as_ref().and_then(|c| c.get("approve")) == Some(&Value::Bool(true))
                    });
                    if !approved {
                        let why = match answer {
                            Some(a) if a.action != "accept" => format!("the human answered {}", a.action),
                            Some(_) => "the human did not approve".to_owned(),
                            None => format!("no `{APPROVAL_INPUT}` answer in inputResponses"),
                        };
                        return Err(self.reject(call, tx, why).await);
                    }
                    return Ok(Ok(in_client_approval(call, hash)));
                }
                _ => {
                    let sealed = SealedApproval {
                        tx: tx.to_owned(),
                        nonce: uuid::Uuid::new_v4().to_string(),
                    };
                    let ttl = std::time::Duration::from_secs(self.policy.elicitation_timeout_s);
                    let binding = Self::binding(call, hash);
                    let state = self
                        .codec
                        .seal_json_with(
                            &sealed,
                            &SealOptions::new().associated_data(binding.as_bytes()).ttl(ttl),
                        )
                        .map_err(|e| format!("{} not run: {e}", call.tool))?;
                    let schema = ElicitationSchema::from_type::<Confirm>().map_err(|e| e.to_string())?;
                    let form = ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
                        meta: None,
                        message: Self::question(call, tx, pre),
                        requested_schema: schema,
                    });
                    let requests = [(APPROVAL_INPUT.to_owned(), InputRequest::Elicitation(form))].into();
                    self.record_pending(call, tx, pre).await?;
                    let mut r = result_for(
                        call,
                        tx,
                        pre,
                        "input_required",
                        "a human must approve this call in the client".into(),
                    );
                    r.input_required = Some(InputRequiredResult::new(Some(requests), Some(state)));
                    return Ok(Err(r));
                }
            }
        }
        let peer = match human {
            Human::Elicit(p) => Some(p),
            _ => None,
        };
        if let Some(id) = call.approval_id {
            return match self.approvals.consume(id, call.tool, hash, &call.caller.principal) {
                Ok(r) => Ok(Ok(idgw_schemas::audit::Approval {
                    approver: r.approver.unwrap_or_default(),
                    method: "cli".into(),
                    at: r.decided_at.unwrap_or_else(Utc::now),
                    arguments_hash: r.arguments_hash,
                })),
                Err(e) => Err(self.unusable_approval(call, tx, e).await),
            };
        }
        let can_elicit = peer.is_some_and(|p| {
            p.supported_elicitation_modes()
                .contains(&rmcp::service::ElicitationMode::Form)
        });
        if let (true, Some(peer)) = (can_elicit, peer) {
            let question = Self::question(call, tx, pre);
            let timeout = std::time::Duration::from_secs(self.policy.elicitation_timeout_s);
            let answer = peer.elicit_with_timeout::<Confirm>(question, Some(timeout)).await;
            return match answer {
                Ok(Some(Confirm { approve: true })) => Ok(Ok(in_client_approval(call, hash))),
                other => {
                    let why = match other {
                        Ok(_) => "the human did not approve".to_owned(),
                        Err(e) => format!("no approval: {e}"),
                    };
                    Err(self.reject(call, tx, why).await)
                }
            };
        }
        // Out of band: a different person runs `idgw approve`.
        let expires_at = Utc::now() + chrono::Duration::seconds(self.policy.approval_ttl_s as i64);
        let request = ApprovalRequest {
            transaction_id: tx.to_owned(),
            tool: call.tool.to_owned(),
            arguments_hash: hash.to_owned(),
            arguments: call.arguments.clone(),
            principal: call.caller.principal.clone(),
            created_at: Utc::now(),
            expires_at,
            decision: Decision::Pending,
            approver: None,
            decided_at: None,
        };
        self.record_pending(call, tx, pre).await?;
        self.approvals
            .request(&request)
            .map_err(|e| format!("{} not run ({tx}): {e}", call.tool))?;
        let dir = self.audit.dir().display().to_string();
        let message = format!(
            "{} on {} needs a human's approval. Ask a person other than {} to run `idgw approve {tx} --audit-dir {dir}`, then call {} again with the same arguments and approval_id \"{tx}\" before {}.",
            call.tool,
            call.login,
            call.caller.principal,
            call.tool,
            expires_at.to_rfc3339()
        );
        let mut r = result_for(call, tx, pre, "approval_required", message);
        r.approval = Some(PendingApproval {
            approval_id: tx.to_owned(),
            expires_at: expires_at.to_rfc3339(),
            approve_command: format!("idgw approve {tx} --audit-dir {dir}"),
        });
        Ok(Err(r))
    }

    /// Records that the call waits for a human (fsynced, like every step of an action).
    async fn record_pending(&self, call: &Call<'_>, tx: &str, pre: &OktaUser) -> Result<(), ActionError> {
        let mut r = call_record(call, tx, AuditPhase::Outcome, "pending_approval");
        r.pre_state = serde_json::to_value(pre).ok();
        self.write(r, true)
            .await
            .map(|_| ())
            .map_err(|e| fail_closed(call, tx, &e))
    }
}

/// An approval given in the MCP client (a form or an input-required answer).
fn in_client_approval(call: &Call<'_>, hash: &str) -> idgw_schemas::audit::Approval {
    idgw_schemas::audit::Approval {
        approver: format!("{} (human at the MCP client)", call.caller.principal),
        method: "elicitation".into(),
        at: Utc::now(),
        arguments_hash: hash.to_owned(),
    }
}
