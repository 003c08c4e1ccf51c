//! Reaching the person who approves an exact call.
//!
//! The approval itself is given only where the gateway authenticates the approver: its
//! approval page or `idgw approve` ([`crate::approvals`]). The MCP client merely carries
//! the person there: URL-mode elicitation (2025-11-25), an input-required result holding a
//! URL elicitation (2026-07-28), or an `approval_required` answer with the URL. Whatever a
//! client answers is never an approval: the client is the agent's, and the agent is who
//! asked. Only a `--dev-no-auth` demo gateway takes a form answered in the client, and its
//! answer and audit record say so.

use std::sync::Arc;

use chrono::Utc;
use idgw_schemas::AuditPhase;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationAction, ElicitationSchema, InputRequest, InputRequiredResult,
    InputResponses, SealOptions,
};
use rmcp::{Peer, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ActionError, ActionResult, Actions, Call, Confirm, PendingApproval, call_record, fail_closed, result_for};
use crate::approvals::{self, ApprovalError, ApprovalRequest, Approver, Decision, EvidenceItem, Target};
use crate::okta::OktaUser;

/// How the human who approves is reached.
#[derive(Debug, Clone, Copy)]
pub enum Human<'a> {
    /// Out of band only: the answer names the page and `idgw approve`.
    OutOfBand,
    /// 2025-11-25 clients: a URL-mode elicitation request sends the person to the page
    /// (clients without it get the answer out of band).
    Elicit(&'a Peer<RoleServer>),
    /// 2026-07-28 clients, where servers send no requests: an input-required result with a
    /// URL elicitation, answered on the retried call with a sealed, single-use request
    /// state; the gateway then looks at its own record of the decision.
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

/// How long one tool call waits for a person sent to the approval page, at most.
const IN_CALL_WAIT: std::time::Duration = std::time::Duration::from_secs(45);

/// What the evidence check found, for the approval request.
pub(super) struct Asked<'a> {
    pub(super) hash: &'a str,
    pub(super) pre: &'a OktaUser,
    pub(super) evidence: &'a [EvidenceItem],
}

impl Actions {
    fn question(call: &Call<'_>, tx: &str, pre: &OktaUser) -> String {
        format!(
            "Approve {tool} on {login} ({id}, Okta status {status})?\nRequested by {who}.\nReasoning: {reasoning}\nEvidence: {evidence}\nTransaction {tx}.",
            tool = call.tool,
            login = pre.login,
            id = pre.id,
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

    fn url_question(call: &Call<'_>, pre: &OktaUser) -> String {
        format!(
            "{} on {} needs the approval of a person other than {}: open this page, sign in as an approver and decide.",
            call.tool, pre.login, call.caller.principal
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

    /// Refuses a call the human at a `--dev-no-auth` client did not approve.
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

    /// Uses the approval of `tx` for this call on the user `target_id`.
    async fn use_approval(
        &self,
        call: &Call<'_>,
        tx: &str,
        hash: &str,
        target_id: &str,
    ) -> Result<idgw_schemas::audit::Approval, ActionError> {
        match self
            .approvals
            .consume(tx, call.tool, hash, &call.caller.principal, target_id)
        {
            Ok(r) => Ok(r.audit_approval()),
            Err(e) => Err(self.unusable_approval(call, tx, e).await),
        }
    }

    /// A `--dev-no-auth` demo's approval from the calling client's own form: recorded as a
    /// decision that nobody was authenticated for, then used.
    async fn dev_client_approval(
        &self,
        call: &Call<'_>,
        tx: &str,
        hash: &str,
        target_id: &str,
    ) -> Result<idgw_schemas::audit::Approval, ActionError> {
        let approver = Approver::dev_no_auth(
            &format!("{} at the MCP client", call.caller.principal),
            approvals::Channel::DevNoAuthClient,
            None,
        );
        let approvals = Arc::clone(&self.approvals);
        let id = tx.to_owned();
        let shown = approvals::Shown {
            arguments_hash: hash.to_owned(),
            target_id: target_id.to_owned(),
        };
        let decided = tokio::task::spawn_blocking(move || approvals.decide(&id, approver, &shown, true))
            .await
            .unwrap_or_else(|e| Err(ApprovalError::Audit(e.to_string())));
        if let Err(e) = decided {
            return Err(self.unusable_approval(call, tx, e).await);
        }
        self.use_approval(call, tx, hash, target_id).await
    }

    pub(super) async fn approve(
        &self,
        call: &Call<'_>,
        tx: &str,
        asked: Asked<'_>,
        human: Human<'_>,
    ) -> Result<Result<idgw_schemas::audit::Approval, ActionResult>, ActionError> {
        let Asked { hash, pre, .. } = asked;
        let dev = self.approvals.is_dev_no_auth();
        if call.approval_id.is_some() {
            return self.use_approval(call, tx, hash, &pre.id).await.map(Ok);
        }
        // A 2026-07-28 retry: the transaction came from the sealed state. Only the gateway's
        // own record of the decision counts, whatever the client answered.
        if let Human::InputRequired(round) = human
            && round.request_state.is_some()
        {
            if dev && let Some(responses) = &round.responses {
                if !client_form_approved(responses) {
                    let why = "the human at the MCP client did not approve".to_owned();
                    return Err(self.reject(call, tx, why).await);
                }
                return self.dev_client_approval(call, tx, hash, &pre.id).await.map(Ok);
            }
            return match self.approvals.check(tx, call.tool, hash, &call.caller.principal) {
                Ok(_) => self.use_approval(call, tx, hash, &pre.id).await.map(Ok),
                Err(ApprovalError::Pending(_)) => {
                    let r = self.approvals.get(tx).map_err(|e| e.to_string())?;
                    self.input_required(call, tx, hash, pre, &r).map(Err)
                }
                Err(e) => Err(self.unusable_approval(call, tx, e).await),
            };
        }
        let request = self.open_request(call, tx, asked).await?;
        match human {
            Human::InputRequired(_) => self.input_required(call, tx, hash, pre, &request).map(Err),
            Human::Elicit(peer) => {
                let modes = peer.supported_elicitation_modes();
                let timeout = std::time::Duration::from_secs(self.policy.elicitation_timeout_s);
                if dev && modes.contains(&rmcp::service::ElicitationMode::Form) {
                    let answer = peer
                        .elicit_with_timeout::<Confirm>(Self::question(call, tx, pre), Some(timeout))
                        .await;
                    return match answer {
                        Ok(Some(Confirm { approve: true })) => {
                            self.dev_client_approval(call, tx, hash, &pre.id).await.map(Ok)
                        }
                        other => {
                            let why = match other {
                                Ok(_) => "the human at the MCP client did not approve".to_owned(),
                                Err(e) => format!("no approval: {e}"),
                            };
                            Err(self.reject(call, tx, why).await)
                        }
                    };
                }
                let url = self.approvals.page_url(tx).and_then(|u| reqwest::Url::parse(&u).ok());
                if let (true, Some(url)) = (modes.contains(&rmcp::service::ElicitationMode::Url), url) {
                    // The whole wait stays inside the 60 s MCP clients give a call; a slower
                    // person is answered with approval_required and the approval_id.
                    let deadline = std::time::Instant::now() + timeout.min(IN_CALL_WAIT);
                    let left = || deadline.saturating_duration_since(std::time::Instant::now());
                    let answer = peer
                        .elicit_url_with_timeout(Self::url_question(call, pre), url, tx, Some(left()))
                        .await;
                    if let Ok(ElicitationAction::Accept) = answer {
                        match self.approvals.wait_decided(tx, left()).await {
                            Decision::Approved => return self.use_approval(call, tx, hash, &pre.id).await.map(Ok),
                            Decision::Rejected => {
                                let e = self
                                    .approvals
                                    .check(tx, call.tool, hash, &call.caller.principal)
                                    .err()
                                    .unwrap_or_else(|| ApprovalError::Rejected(tx.to_owned(), String::new()));
                                return Err(self.unusable_approval(call, tx, e).await);
                            }
                            Decision::Pending => {}
                        }
                    }
                }
                Ok(Err(self.out_of_band(call, tx, pre, &request)))
            }
            Human::OutOfBand => Ok(Err(self.out_of_band(call, tx, pre, &request))),
        }
    }

    /// Records the request (fsynced) and opens it for a decision.
    async fn open_request(&self, call: &Call<'_>, tx: &str, asked: Asked<'_>) -> Result<ApprovalRequest, ActionError> {
        let expires_at = Utc::now() + chrono::Duration::seconds(self.policy.approval_ttl_s as i64);
        let pre = asked.pre;
        let request = ApprovalRequest {
            transaction_id: tx.to_owned(),
            tool: call.tool.to_owned(),
            arguments_hash: asked.hash.to_owned(),
            arguments: call.arguments.clone(),
            principal: call.caller.principal.clone(),
            client: call.caller.client.clone(),
            target: Target {
                id: pre.id.clone(),
                login: pre.login.clone(),
                name: pre.name.clone(),
                status: pre.status.clone(),
            },
            reasoning: call.reasoning.to_owned(),
            evidence: asked.evidence.to_vec(),
            created_at: Utc::now(),
            expires_at,
            decision: Decision::Pending,
            approver: None,
            decided_at: None,
        };
        let mut r = call_record(call, tx, AuditPhase::Outcome, "pending_approval");
        r.pre_state = serde_json::to_value(pre).ok();
        r.approval = Some(idgw_schemas::audit::Approval {
            approver: String::new(),
            method: String::new(),
            at: expires_at,
            arguments_hash: asked.hash.to_owned(),
            token_id: None,
            client_id: None,
            remote_addr: None,
        });
        r.error = Some(format!(
            "waiting for a person other than {} until {}",
            call.caller.principal,
            expires_at.to_rfc3339()
        ));
        self.write(r, true).await.map_err(|e| fail_closed(call, tx, &e))?;
        self.approvals.open(request.clone());
        Ok(request)
    }

    /// The 2026-07-28 answer: a URL elicitation to the page (a form on `--dev-no-auth`),
    /// with a fresh sealed state for the retry.
    fn input_required(
        &self,
        call: &Call<'_>,
        tx: &str,
        hash: &str,
        pre: &OktaUser,
        request: &ApprovalRequest,
    ) -> Result<ActionResult, ActionError> {
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
        let url = self.approvals.page_url(tx);
        let form = if self.approvals.is_dev_no_auth() {
            let schema = ElicitationSchema::from_type::<Confirm>().map_err(|e| e.to_string())?;
            ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: Self::question(call, tx, pre),
                requested_schema: schema,
            })
        } else if let Some(url) = url {
            ElicitRequest::new(ElicitRequestParams::UrlElicitationParams {
                meta: None,
                message: Self::url_question(call, pre),
                url,
                elicitation_id: tx.to_owned(),
            })
        } else {
            return Ok(self.out_of_band(call, tx, pre, request));
        };
        let requests = [(APPROVAL_INPUT.to_owned(), InputRequest::Elicitation(form))].into();
        let mut r = self.out_of_band(call, tx, pre, request);
        r.status = "input_required".into();
        r.input_required = Some(InputRequiredResult::new(Some(requests), Some(state)));
        Ok(r)
    }

    /// The `approval_required` answer: where a person other than the requester decides.
    fn out_of_band(&self, call: &Call<'_>, tx: &str, pre: &OktaUser, request: &ApprovalRequest) -> ActionResult {
        let url = self.approvals.page_url(tx);
        let base = url
            .as_deref()
            .and_then(|u| u.split("/approvals/").next())
            .unwrap_or("<gateway URL>");
        // The command names no URL: `idgw approve` sends the approver's token only to the
        // gateway the approver configured (IDGW_GATEWAY_URL), never to one a message names.
        let command = format!("idgw approve {tx}");
        let expires = request.expires_at.to_rfc3339();
        let message = format!(
            "{} on {} needs the approval of a person other than {}. Ask them to open {} (or, where the gateway takes approvers' client in [gateway.auth] approver_client_ids, run `{command}` with IDGW_GATEWAY_URL={base}), then call {} again with the same arguments and approval_id \"{tx}\" before {expires}.",
            call.tool,
            pre.login,
            call.caller.principal,
            url.as_deref().unwrap_or("the approval page"),
            call.tool,
        );
        let mut r = result_for(call, tx, pre, "approval_required", message);
        r.approval = Some(PendingApproval {
            approval_id: tx.to_owned(),
            expires_at: expires,
            approval_url: url,
            approve_command: command,
        });
        r
    }
}

/// Whether a `--dev-no-auth` client's input-required answer approves.
fn client_form_approved(responses: &InputResponses) -> bool {
    #[derive(Deserialize)]
    struct Answer {
        action: String,
        #[serde(default)]
        content: Option<Value>,
    }
    responses
        .get(APPROVAL_INPUT)
        .and_then(|v| serde_json::from_value::<Answer>(v.clone()).ok())
        .is_some_and(|a| {
            a.action == "accept" && a.content.as_ref().and_then(|c| c.get("approve")) == Some(&Value::Bool(true))
        })
}
