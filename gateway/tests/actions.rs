//! Actions against the Okta simulator: policy, out-of-band approval bound to the call,
//! audit intent and outcome with a verifiable chain, rollback, repeated and parallel
//! actions, Okta failures (429 storms, 5xx, dropped connections), both backends, and
//! failing closed when the audit log cannot be written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use idgw_gateway::actions::Human::OutOfBand;
use idgw_gateway::actions::policy::PolicyConfig;
use idgw_gateway::actions::{ActArgs, Actions, Caller, Kind, NotifyArgs, RollbackArgs, UnsuspendArgs};
use idgw_gateway::approvals::{self, Approvals, Approver};
use idgw_gateway::audit::{self, AuditLog};
use idgw_gateway::okta::{Flow, Okta, OktaConfig, RetryConfig, ServiceAppConfig, WorkflowsConfig};
use idgw_gateway::{StoreReader, tools};
use idgw_pipeline::source::file::Input;
use idgw_pipeline::{PipelineConfig, Store};
use idgw_schemas::AuditPhase;
use idgw_testbed::generate::tenant::Role;
use idgw_testbed::sim::{self, SimConfig};
use serde_json::json;

const TOKEN: &str = "sim-api-token";
const REASON: &str = "impossible travel from Lagos 40 minutes after a sign-in in Berlin";

struct Fixture {
    _dir: tempfile::TempDir,
    sim: sim::Running,
    reader: Arc<StoreReader>,
    audit_dir: PathBuf,
    alert_id: String,
    /// An event uuid of each sim user, stored in the store (evidence about that user).
    user_events: std::collections::HashMap<String, String>,
    member: String,
    member2: String,
    admin: String,
}

fn golden(name: &str) -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join(format!("../pipeline/tests/golden/{name}/events.ndjson.gz"))
}

async fn fixture() -> Fixture {
    fixture_with(Vec::new()).await
}

async fn fixture_with(service_apps: Vec<sim::ServiceApp>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let org = sim::build(SimConfig {
        users: 30,
        history_days: 1,
        seed: 8,
        api_token: TOKEN.into(),
        service_apps,
        ..SimConfig::default()
    })
    .unwrap();
    // The org's own System Log goes into the store too, so each user has events an action
    // on them can cite as evidence.
    let history = dir.path().join("org-history.ndjson");
    let mut user_events = std::collections::HashMap::new();
    {
        let state = org.state.lock().unwrap();
        let mut lines = String::new();
        for e in &state.events {
            lines.push_str(&e.value.to_string());
            lines.push('\n');
            if let (Some(login), Some(uuid)) = (e.value["actor"]["alternateId"].as_str(), e.value["uuid"].as_str())
                && e.value["actor"]["type"] == "User"
            {
                user_events
                    .entry(login.to_ascii_lowercase())
                    .or_insert_with(|| uuid.to_owned());
            }
        }
        std::fs::write(&history, lines).unwrap();
    }
    let summary = idgw_pipeline::replay(
        &[Input::Path(golden("impossible_travel")), Input::Path(history)],
        &Store::open(&store).unwrap(),
        &PipelineConfig::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(summary.alerts > 0, "{summary:?}");
    let reader = Arc::new(
        StoreReader::open(store.clone(), &PipelineConfig::default(), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    let alerts = tools::list_alerts(&reader, tools::ListAlertsArgs::default())
        .await
        .unwrap();
    let alert_id = alerts.items[0]["alert_id"].as_str().unwrap().to_owned();
    let members: Vec<String> = org
        .tenant
        .users
        .iter()
        .filter(|u| u.role == Role::Member)
        .map(|u| u.login.clone())
        .collect();
    let admin = org
        .tenant
        .users
        .iter()
        .find(|u| u.role == Role::Admin)
        .map(|u| u.login.clone())
        .expect("the tenant has an admin");
    let sim = sim::serve("127.0.0.1:0", org).await.unwrap();
    Fixture {
        audit_dir: dir.path().join("audit"),
        _dir: dir,
        sim,
        reader,
        alert_id,
        user_events,
        member: members[0].clone(),
        member2: members[1].clone(),
        admin,
    }
}

fn fast_retries() -> RetryConfig {
    RetryConfig {
        max_retries: 5,
        min_delay_ms: 20,
        max_delay_ms: 200,
        max_rate_limit_wait_s: 5,
        timeout_s: 10,
    }
}

fn management(f: &Fixture) -> OktaConfig {
    OktaConfig {
        org_url: Some(f.sim.base_url()),
        api_token: Some(TOKEN.into()),
        retry: fast_retries(),
        ..OktaConfig::default()
    }
}

fn actions(f: &Fixture, okta: OktaConfig, policy: PolicyConfig) -> Actions {
    let log = Arc::new(AuditLog::open(&f.audit_dir).unwrap());
    let approvals = Arc::new(Approvals::new(Arc::clone(&log), false));
    Actions::new(Okta::new(okta).unwrap(), log, policy, Arc::clone(&f.reader), approvals).unwrap()
}

/// What the page shows of request `tx`.
fn shown(approvals: &Approvals, tx: &str) -> approvals::Shown {
    approvals::Shown::of(&approvals.get(tx).unwrap())
}

/// An approver the gateway authenticated (as its page or API would).
fn approver(subject: &str) -> Approver {
    let p = idgw_gateway::auth::Principal {
        subject: subject.into(),
        client_id: Some("0oa1approver".into()),
        scopes: vec!["mcp:actions:approve".into()],
        expires_at: 0,
        token_id: Some(format!("AT.{subject}")),
    };
    Approver::authenticated(&p, approvals::Channel::Cli, Some("127.0.0.1:5555".into())).unwrap()
}

fn no_approval() -> PolicyConfig {
    PolicyConfig {
        approval_required: Vec::new(),
        ..PolicyConfig::default()
    }
}

fn agent() -> Caller {
    Caller {
        principal: "agent@example.com".into(),
        scopes: vec!["mcp:user:write".into(), "mcp:actions:rollback".into()],
        client: Some("test/1".into()),
        token_id: Some("jti-agent-1".into()),
        remote_addr: Some("127.0.0.1:50000".into()),
    }
}

/// Evidence about `login`: one of its stored events (the golden alert for strangers).
fn evidence(f: &Fixture, login: &str) -> Vec<String> {
    vec![
        f.user_events
            .get(&login.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| f.alert_id.clone()),
    ]
}

fn act_args(f: &Fixture, login: &str) -> ActArgs {
    ActArgs {
        user_login: login.into(),
        reasoning: REASON.into(),
        evidence: evidence(f, login),
        approval_id: None,
        dry_run: false,
    }
}

fn status(f: &Fixture, login: &str) -> String {
    let state = f.sim.sim.state.lock().unwrap();
    let i = state.user_index(login).unwrap();
    serde_json::to_value(state.users[i].status)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn okta_events(f: &Fixture, event_type: &str, login: &str) -> usize {
    let state = f.sim.sim.state.lock().unwrap();
    state
        .events
        .iter()
        .filter(|e| e.value["eventType"] == event_type && e.value["target"][0]["alternateId"] == login)
        .count()
}

fn verified(dir: &Path) -> audit::Verification {
    let v = audit::verify(dir).unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_is_approved_out_of_band_runs_once_and_rolls_back() {
    let f = fixture().await;
    let a = actions(&f, management(&f), PolicyConfig::default());
    let caller = agent();

    // Policy first: evidence, real evidence, enough reasoning.
    let mut bare = act_args(&f, &f.member);
    bare.evidence.clear();
    let e = a.act(&caller, Kind::Suspend, bare, OutOfBand).await.unwrap_err();
    assert!(e.contains("evidence is required"), "{e}");
    let mut invented = act_args(&f, &f.member);
    invented.evidence = vec!["alert-that-does-not-exist".into()];
    let e = a.act(&caller, Kind::Suspend, invented, OutOfBand).await.unwrap_err();
    assert!(e.contains("not found in the store"), "{e}");
    let mut terse = act_args(&f, &f.member);
    terse.reasoning = "bad".into();
    let e = a.act(&caller, Kind::Suspend, terse, OutOfBand).await.unwrap_err();
    assert!(e.contains("reasoning"), "{e}");
    assert_eq!(status(&f, &f.member), "ACTIVE");

    // The first valid call asks for approval and does nothing.
    let pending = a
        .act(&caller, Kind::Suspend, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(pending.status, "approval_required");
    let id = pending.approval.unwrap().approval_id;
    assert_eq!(status(&f, &f.member), "ACTIVE");
    let with_id = |login: &str| ActArgs {
        approval_id: Some(id.clone()),
        ..act_args(&f, login)
    };
    let e = a
        .act(&caller, Kind::Suspend, with_id(&f.member), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("still pending"), "{e}");

    let approvals = Arc::clone(a.approvals());
    assert!(
        matches!(
            approvals.decide(&id, approver(&caller.principal), &shown(&approvals, &id), true),
            Err(approvals::ApprovalError::SelfApproval(..))
        ),
        "no self-approval"
    );
    assert!(
        matches!(
            approvals.decide(
                &id,
                Approver::dev_no_auth("local:me", approvals::Channel::DevNoAuth, None),
                &shown(&approvals, &id),
                true
            ),
            Err(approvals::ApprovalError::NotDevGateway)
        ),
        "a --dev-no-auth decision on a gateway that authenticates"
    );
    // A decision must be about the call the approver was shown.
    let mut other = shown(&approvals, &id);
    other.target_id = "00uSomeoneElse".into();
    assert!(matches!(
        approvals.decide(&id, approver("analyst@example.com"), &other, true),
        Err(approvals::ApprovalError::NotShown(_))
    ));
    approvals
        .decide(&id, approver("analyst@example.com"), &shown(&approvals, &id), true)
        .unwrap();

    // The approval is bound to the call: other arguments, another caller are refused.
    let e = a
        .act(&caller, Kind::Suspend, with_id(&f.member2), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("another call"), "{e}");
    let intruder = Caller {
        principal: "intruder@example.com".into(),
        ..agent()
    };
    let e = a
        .act(&intruder, Kind::Suspend, with_id(&f.member), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("another call"), "{e}");
    assert_eq!(status(&f, &f.member), "ACTIVE");

    let done = a
        .act(&caller, Kind::Suspend, with_id(&f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(done.status, "success", "{done:?}");
    assert_eq!(done.transaction_id, id, "the approved call continues its transaction");
    assert_eq!(done.approved_by.as_deref(), Some("analyst@example.com"));
    assert_eq!(done.backend.as_deref(), Some("management"));
    assert!(!done.okta_request_ids.is_empty());
    assert_eq!(done.post_state.unwrap().status, "SUSPENDED");
    assert_eq!(status(&f, &f.member), "SUSPENDED");
    // Used once.
    let e = a
        .act(&caller, Kind::Suspend, with_id(&f.member), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("no open approval"), "{e}");

    // A repeated suspend is reported, not retried.
    let again = a
        .act(&caller, Kind::Suspend, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(again.status, "no_change");
    assert_eq!(okta_events(&f, "user.lifecycle.suspend", &f.member), 1);
    // The alias of unsuspend_user needs its approval too (review of issue 27: it ran
    // without one).
    let alias = a
        .unsuspend(
            &caller,
            "reactivate_user",
            UnsuspendArgs {
                user_login: f.member.clone(),
                transaction_id: Some(id.clone()),
                reason: "the user says the sign-in was theirs, reactivate".into(),
                evidence: Vec::new(),
                approval_id: None,
                dry_run: false,
            },
            OutOfBand,
        )
        .await
        .unwrap();
    assert_eq!(alias.status, "approval_required", "{alias:?}");
    assert_eq!(status(&f, &f.member), "SUSPENDED");

    // Rollback: approved like any action, linked to the original.
    let rb = |approval_id: Option<String>| RollbackArgs {
        transaction_id: id.clone(),
        reasoning: "the sign-in from Lagos was the user's confirmed business trip".into(),
        approval_id,
        dry_run: false,
    };
    let pending = a.rollback(&caller, rb(None), OutOfBand).await.unwrap();
    assert_eq!(pending.status, "approval_required");
    let rid = pending.approval.unwrap().approval_id;
    approvals
        .decide(&rid, approver("analyst@example.com"), &shown(&approvals, &rid), true)
        .unwrap();
    let undone = a.rollback(&caller, rb(Some(rid)), OutOfBand).await.unwrap();
    assert_eq!(undone.status, "success", "{undone:?}");
    assert_eq!(undone.rollback_of.as_deref(), Some(id.as_str()));
    assert_eq!(status(&f, &f.member), "ACTIVE");
    let e = a.rollback(&caller, rb(None), OutOfBand).await.unwrap_err();
    assert!(e.contains("already rolled back"), "{e}");

    // The audit log holds all of it and verifies.
    let v = verified(&f.audit_dir);
    let records = a.audit_log().read(|_| true).unwrap();
    assert_eq!(v.records as usize, records.len());
    let of_tx: Vec<_> = records.iter().filter(|r| r.transaction_id == id).collect();
    let statuses: Vec<&str> = of_tx.iter().map(|r| r.status.as_str()).collect();
    assert!(statuses.starts_with(&["pending_approval"]), "{statuses:?}");
    assert!(
        statuses.contains(&"pending") && statuses.contains(&"success"),
        "{statuses:?}"
    );
    let intent = of_tx.iter().find(|r| r.phase == AuditPhase::Intent).unwrap();
    assert_eq!(intent.principal.as_deref(), Some("agent@example.com"));
    assert_eq!(intent.reasoning.as_deref(), Some(REASON));
    assert_eq!(intent.evidence, evidence(&f, &f.member));
    let decision = of_tx
        .iter()
        .find(|r| r.status == "approved")
        .expect("the decision is a record");
    assert_eq!(decision.principal.as_deref(), Some("analyst@example.com"));
    let given = decision.approval.as_ref().unwrap();
    assert_eq!(given.method, "cli");
    assert_eq!(given.token_id.as_deref(), Some("AT.analyst@example.com"));
    assert_eq!(given.arguments_hash, intent.approval.as_ref().unwrap().arguments_hash);
    assert_eq!(intent.approval.as_ref().unwrap().approver, "analyst@example.com");
    assert_eq!(intent.pre_state.as_ref().unwrap()["status"], "ACTIVE");
    let outcome = of_tx
        .iter()
        .find(|r| r.phase == AuditPhase::Outcome && r.status == "success")
        .unwrap();
    assert_eq!(outcome.post_state.as_ref().unwrap()["status"], "SUSPENDED");
    assert!(!outcome.okta_request_ids.is_empty());
    assert!(
        records
            .iter()
            .any(|r| r.status == "denied" && r.principal.as_deref() == Some("intruder@example.com"))
    );
    assert!(
        records
            .iter()
            .any(|r| r.rollback_of.as_deref() == Some(id.as_str()) && r.status == "success")
    );
    let page = a
        .audit_records(&idgw_gateway::actions::AuditLogArgs {
            user_login: Some(f.member.to_uppercase()),
            limit: Some(3),
        })
        .unwrap();
    assert_eq!(page.records.len(), 3);
    assert!(page.records[0].seq > page.records[2].seq, "newest first");
    f.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_accounts_and_irreversible_actions_are_refused() {
    let f = fixture().await;
    let policy = PolicyConfig {
        protected_users: vec![f.member2.to_uppercase()],
        ..no_approval()
    };
    let a = actions(&f, management(&f), policy);
    let caller = agent();
    let e = a
        .act(&caller, Kind::Suspend, act_args(&f, &f.member2), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("protected account"), "{e}");
    // Named by its Okta id instead of its login, the same account is still protected
    // (issue 27, attack 4: the dry run answered "would run").
    let member2_id = {
        let state = f.sim.sim.state.lock().unwrap();
        state.users[state.user_index(&f.member2).unwrap()].id.clone()
    };
    let by_id = ActArgs {
        user_login: member2_id.clone(),
        dry_run: true,
        ..act_args(&f, &f.member2)
    };
    let e = a.act(&caller, Kind::Suspend, by_id, OutOfBand).await.unwrap_err();
    assert!(e.contains("protected account") && e.contains(&member2_id), "{e}");
    // Names that are no account are refused before Okta is asked.
    for name in ["", ".", "..", "me", "ME", "../users/x", "a?b", "x%2Fy"] {
        let bad = ActArgs {
            user_login: name.into(),
            ..act_args(&f, &f.member)
        };
        let e = a.act(&caller, Kind::Suspend, bad, OutOfBand).await.unwrap_err();
        assert!(e.contains("is not a user"), "{name:?}: {e}");
    }
    // Evidence about someone else does not support acting on this user.
    let elsewhere = ActArgs {
        evidence: evidence(&f, &f.member2),
        ..act_args(&f, &f.member)
    };
    let e = a.act(&caller, Kind::Suspend, elsewhere, OutOfBand).await.unwrap_err();
    assert!(e.contains("none of the evidence is about"), "{e}");
    assert_eq!(status(&f, &f.member), "ACTIVE");
    // An unsuspend must name a suspend of this very user, not any transaction.
    let e = a
        .unsuspend(
            &caller,
            "unsuspend_user",
            UnsuspendArgs {
                user_login: f.member.clone(),
                transaction_id: Some("txn-made-up".into()),
                reason: "reverses the suspend made this morning".into(),
                evidence: Vec::new(),
                approval_id: None,
                dry_run: true,
            },
            OutOfBand,
        )
        .await
        .unwrap_err();
    assert!(e.contains("is not a successful suspend_user of"), "{e}");
    let e = a
        .act(&caller, Kind::Suspend, act_args(&f, &f.admin), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("SUPER_ADMIN"), "{e}");
    let info = a.read_user(&f.admin).await.unwrap();
    assert!(info.protected && info.admin_roles == Some(vec!["SUPER_ADMIN".to_owned()]));
    let e = a
        .act(
            &caller,
            Kind::Suspend,
            act_args(&f, "nobody@example.invalid"),
            OutOfBand,
        )
        .await
        .unwrap_err();
    assert!(e.contains("not found"), "{e}");

    let reset = a
        .act(&caller, Kind::ResetPassword, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(reset.status, "success");
    assert_eq!(status(&f, &f.member), "RECOVERY");
    let e = a
        .rollback(
            &caller,
            RollbackArgs {
                transaction_id: reset.transaction_id,
                reasoning: "undo the reset please, it was a mistake".into(),
                approval_id: None,
                dry_run: false,
            },
            OutOfBand,
        )
        .await
        .unwrap_err();
    assert!(e.contains("cannot be undone"), "{e}");
    // Without the Workflows notify flow, notify_user says what to configure.
    let e = a
        .notify(
            &caller,
            NotifyArgs {
                user_login: f.member.clone(),
                template: Some("was_this_you".into()),
                values: [("location", "Lagos, NG"), ("time", "01:20 UTC")]
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .into(),
                message: None,
                approval_id: None,
                reasoning: REASON.into(),
                evidence: Vec::new(),
                dry_run: false,
            },
            OutOfBand,
        )
        .await
        .unwrap_err();
    assert!(e.contains("OKTA_WF_NOTIFY_USER_URL"), "{e}");
    // Dry run: recorded, nothing done.
    let dry = a
        .act(
            &caller,
            Kind::RevokeSessions,
            ActArgs {
                dry_run: true,
                ..act_args(&f, &f.member)
            },
            OutOfBand,
        )
        .await
        .unwrap();
    assert_eq!(dry.status, "dry_run");
    assert_eq!(okta_events(&f, "user.session.clear", &f.member), 0);
    // A protected group (by name, any case) covers its members, named by login or id.
    drop(a);
    let grouped = actions(
        &f,
        management(&f),
        PolicyConfig {
            protected_groups: vec!["staff".into()],
            ..no_approval()
        },
    );
    let by_id = ActArgs {
        user_login: member2_id.clone(),
        dry_run: true,
        ..act_args(&f, &f.member2)
    };
    let e = grouped.act(&caller, Kind::Suspend, by_id, OutOfBand).await.unwrap_err();
    assert!(e.contains("protected group Staff"), "{e}");
    drop(grouped);
    // Where memberships cannot be read (Workflows only), a set list refuses every action.
    let flow = |name: &str| {
        Some(Flow {
            url: format!("{}/api/flo/{name}/invoke", f.sim.base_url()),
            token: Some("sim-workflows-token".into()),
        })
    };
    let workflows_only = OktaConfig {
        workflows: WorkflowsConfig {
            suspend_user: flow("suspend_user"),
            read_user: flow("read_user"),
            ..WorkflowsConfig::default()
        },
        retry: fast_retries(),
        ..OktaConfig::default()
    };
    let blind = actions(
        &f,
        workflows_only,
        PolicyConfig {
            protected_groups: vec!["Service Accounts".into()],
            protect_admins: false,
            ..no_approval()
        },
    );
    let e = blind
        .act(&caller, Kind::Suspend, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("cannot be read without the Management API"), "{e}");
    drop(blind);
    verified(&f.audit_dir);
    f.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_whose_answer_is_lost_is_read_back_never_sent_twice() {
    let f = fixture().await;
    let a = actions(&f, management(&f), no_approval());
    let caller = agent();
    // Okta suspends the user and the answer is lost: not sent again (a second suspend
    // would be refused as "already suspended" and reported as a failure); the user's state
    // after shows it done.
    set_faults(&f, json!({"lost_answer_writes": 1})).await;
    let done = a
        .act(&caller, Kind::Suspend, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(done.status, "success", "{done:?}");
    assert!(done.message.contains("answer was lost"), "{}", done.message);
    assert_eq!(okta_events(&f, "user.lifecycle.suspend", &f.member), 1);
    // Revoking sessions has no state to read back: the outcome is unknown, and it is not
    // sent again.
    set_faults(&f, json!({"lost_answer_writes": 1})).await;
    let e = a
        .act(&caller, Kind::RevokeSessions, act_args(&f, &f.member2), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("outcome unknown"), "{e}");
    assert_eq!(okta_events(&f, "user.session.clear", &f.member2), 1);
    let records = a.audit_log().read(|_| true).unwrap();
    let statuses: Vec<&str> = records
        .iter()
        .filter(|r| r.phase == AuditPhase::Outcome && r.action != "get_audit_log")
        .map(|r| r.status.as_str())
        .collect();
    assert_eq!(statuses, ["success", "unknown"], "{records:?}");

    // An intent left without an outcome (a stop mid-call) is reconciled at start from
    // Okta's state.
    let member2_id = {
        let state = f.sim.sim.state.lock().unwrap();
        state.users[state.user_index(&f.member2).unwrap()].id.clone()
    };
    let mut intent = audit::record("txn-cut-short", AuditPhase::Intent, "suspend_user", "pending");
    intent.user = Some(f.member2.clone());
    intent.pre_state = Some(json!({"id": member2_id, "status": "ACTIVE"}));
    a.audit_log().append(intent, true).unwrap();
    assert_eq!(a.reconcile().await.unwrap(), vec!["txn-cut-short".to_owned()]);
    let outcome = a
        .audit_log()
        .read(|r| r.transaction_id == "txn-cut-short" && r.phase == AuditPhase::Outcome)
        .unwrap();
    assert_eq!(outcome[0].status, "reconciled");
    assert_eq!(outcome[0].post_state.as_ref().unwrap()["status"], "ACTIVE");
    assert!(a.reconcile().await.unwrap().is_empty(), "reconciled once");
    verified(&f.audit_dir);
    f.sim.stop().await;
}

async fn set_faults(f: &Fixture, faults: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/sim/faults", f.sim.base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_server_errors_and_dropped_connections_are_ridden_out() {
    let f = fixture().await;
    let a = actions(&f, management(&f), no_approval());
    let caller = agent();

    set_faults(&f, json!({"burst_429": 3})).await;
    let t = std::time::Instant::now();
    let done = a
        .act(&caller, Kind::Suspend, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(done.status, "success", "{done:?}");
    // Three 429s, each waited out until its reset (about a second ahead).
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());

    set_faults(&f, json!({"burst_503": 2})).await;
    let unsuspend = UnsuspendArgs {
        user_login: f.member.clone(),
        transaction_id: Some(done.transaction_id.clone()),
        reason: "confirmed with the user by phone; travel was real".into(),
        evidence: Vec::new(),
        approval_id: None,
        dry_run: false,
    };
    let back = a
        .unsuspend(&caller, "reactivate_user", unsuspend, OutOfBand)
        .await
        .unwrap();
    assert_eq!(
        (back.status.as_str(), back.action.as_str()),
        ("success", "reactivate_user")
    );
    // Rolling back the unsuspend suspends again (its evidence is the transaction it undoes).
    let again = a
        .rollback(
            &caller,
            RollbackArgs {
                transaction_id: back.transaction_id.clone(),
                reasoning: "the phone confirmation came from the attacker's SIM swap".into(),
                approval_id: None,
                dry_run: false,
            },
            OutOfBand,
        )
        .await
        .unwrap();
    assert_eq!((again.status.as_str(), again.action.as_str()), ("success", "rollback"));
    assert_eq!(again.rollback_of.as_deref(), Some(back.transaction_id.as_str()));
    assert_eq!(status(&f, &f.member), "SUSPENDED");

    set_faults(&f, json!({"burst_drop": 2})).await;
    let revoked = a
        .act(&caller, Kind::RevokeSessions, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(revoked.status, "success");
    assert_eq!(okta_events(&f, "user.session.clear", &f.member), 1);

    // Okta stays down: the action fails, and intent and failure are both on record.
    set_faults(&f, json!({"error_rate": 1.0})).await;
    let e = a
        .act(&caller, Kind::Suspend, act_args(&f, &f.member2), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("failed") || e.contains("cannot resolve"), "{e}");
    set_faults(&f, json!({})).await;
    assert_eq!(status(&f, &f.member2), "ACTIVE");
    verified(&f.audit_dir);
    f.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_suspends_of_one_user_make_one_okta_call() {
    let f = fixture().await;
    let a = Arc::new(actions(&f, management(&f), no_approval()));
    let mut calls = Vec::new();
    for _ in 0..6 {
        let a = Arc::clone(&a);
        let args = act_args(&f, &f.member);
        calls.push(tokio::spawn(async move {
            a.act(&agent(), Kind::Suspend, args, OutOfBand).await
        }));
    }
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap().unwrap().status);
    }
    statuses.sort();
    assert_eq!(statuses.iter().filter(|s| *s == "success").count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| *s == "no_change").count(), 5, "{statuses:?}");
    assert_eq!(okta_events(&f, "user.lifecycle.suspend", &f.member), 1);
    verified(&f.audit_dir);
    f.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_flows_receive_the_reference_payload() {
    let f = fixture().await;
    let flow = |name: &str| {
        Some(Flow {
            url: format!("{}/api/flo/{name}/invoke", f.sim.base_url()),
            token: Some("sim-workflows-token".into()),
        })
    };
    let okta = OktaConfig {
        workflows: WorkflowsConfig {
            suspend_user: flow("suspend_user"),
            unsuspend_user: flow("unsuspend_user"),
            read_user: flow("read_user"),
            notify_user: flow("notify_user"),
            ..WorkflowsConfig::default()
        },
        retry: fast_retries(),
        ..OktaConfig::default()
    };
    let a = actions(&f, okta, no_approval());
    let caller = agent();
    let done = a
        .act(&caller, Kind::Suspend, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(done.backend.as_deref(), Some("workflows"));
    assert_eq!(status(&f, &f.member), "SUSPENDED");
    let sent = a
        .notify(
            &caller,
            NotifyArgs {
                user_login: f.member.clone(),
                template: Some("account_secured".into()),
                values: [("action", "suspended after a suspicious sign-in")]
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .into(),
                message: None,
                approval_id: None,
                reasoning: REASON.into(),
                evidence: evidence(&f, &f.member),
                dry_run: false,
            },
            OutOfBand,
        )
        .await
        .unwrap();
    assert_eq!(sent.status, "success");
    // Text the agent wrote waits for a person, whatever the policy says of notify_user.
    let phish = a
        .notify(
            &caller,
            NotifyArgs {
                user_login: f.member.clone(),
                template: None,
                values: Default::default(),
                message: Some("Your account is locked. Re-verify at https://okta-verify.example.net".into()),
                approval_id: None,
                reasoning: REASON.into(),
                evidence: evidence(&f, &f.member),
                dry_run: false,
            },
            OutOfBand,
        )
        .await
        .unwrap();
    assert_eq!(phish.status, "approval_required", "{phish:?}");
    // A template's blank cannot carry a link either.
    let e = a
        .notify(
            &caller,
            NotifyArgs {
                user_login: f.member.clone(),
                template: Some("was_this_you".into()),
                values: [("location", "Lagos; verify at okta-verify.net"), ("time", "now")]
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .into(),
                message: None,
                approval_id: None,
                reasoning: REASON.into(),
                evidence: evidence(&f, &f.member),
                dry_run: false,
            },
            OutOfBand,
        )
        .await
        .unwrap_err();
    assert!(e.contains("the value for {location}"), "{e}");
    let outbox = f.sim.sim.state.lock().unwrap().outbox.clone();
    assert!(
        outbox
            .iter()
            .any(|m| m["to"] == f.member.as_str() && m["message"].as_str().unwrap().contains("suspicious")),
        "{outbox:?}"
    );
    assert!(
        outbox
            .iter()
            .all(|m| !m["message"].as_str().unwrap().contains("verify")),
        "unapproved text was sent: {outbox:?}"
    );
    // Without the Management API, reset_password is not configured: a clear refusal.
    let e = a
        .act(&caller, Kind::ResetPassword, act_args(&f, &f.member2), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("OKTA_WF_RESET_PASSWORD_URL"), "{e}");
    // A wrong flow token is Okta refusing the gateway's credentials.
    let bad = OktaConfig {
        workflows: WorkflowsConfig {
            read_user: Some(Flow {
                url: format!("{}/api/flo/read_user/invoke", f.sim.base_url()),
                token: Some("wrong".into()),
            }),
            ..WorkflowsConfig::default()
        },
        ..OktaConfig::default()
    };
    let e = Okta::new(bad).unwrap().read_user(&f.member).await.unwrap_err();
    assert!(e.to_string().contains("client token"), "{e}");
    f.sim.stop().await;
}

/// An `approval_id` is something any caller can type. A call that cannot use the approval
/// it names (another principal's, a terse one) is refused under a transaction of its own:
/// its refusal never lands in the approval's transaction, where an outcome would close the
/// owner's intent once the approved action is in flight (a crash then leaves it
/// unreconciled, read as refused although Okta carried it out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_never_lands_in_a_transaction_the_caller_does_not_own() {
    let f = fixture().await;
    let a = actions(&f, management(&f), PolicyConfig::default());
    let owner = agent();
    let pending = a
        .act(&owner, Kind::Suspend, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    let id = pending.approval.unwrap().approval_id;
    let approvals = Arc::clone(a.approvals());
    approvals
        .decide(&id, approver("analyst@example.com"), &shown(&approvals, &id), true)
        .unwrap();

    let intruder = Caller {
        principal: "second-agent@example.com".into(),
        ..agent()
    };
    let claims = |login: &str| ActArgs {
        approval_id: Some(id.clone()),
        ..act_args(&f, login)
    };
    let e = a
        .act(&intruder, Kind::Suspend, claims(&f.member), OutOfBand)
        .await
        .unwrap_err();
    assert!(
        !e.contains(&format!("({id})")),
        "refused under the claimed transaction: {e}"
    );
    let terse = ActArgs {
        reasoning: "x".into(),
        ..claims(&f.member2)
    };
    a.act(&intruder, Kind::Suspend, terse, OutOfBand).await.unwrap_err();
    let e = a
        .act(&intruder, Kind::Unsuspend, claims(&f.member), OutOfBand)
        .await
        .unwrap_err();
    assert!(!e.contains(&format!("({id})")), "{e}");
    let written = a.audit_log().read(|r| r.transaction_id == id).unwrap();
    assert!(
        written
            .iter()
            .all(|r| r.principal.as_deref() != Some(intruder.principal.as_str())),
        "{written:#?}"
    );
    let refusals = a
        .audit_log()
        .read(|r| r.principal.as_deref() == Some(intruder.principal.as_str()))
        .unwrap();
    assert_eq!(refusals.len(), 3, "{refusals:#?}");
    assert!(
        refusals
            .iter()
            .all(|r| r.arguments.get("approval_id") == Some(&serde_json::json!(id))),
        "the claimed id is kept in the refusal's arguments: {refusals:#?}"
    );

    // The owner's approved call still runs, in its own transaction.
    let done = a
        .act(&owner, Kind::Suspend, claims(&f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(done.status, "success");
    assert_eq!(status(&f, &f.member), "SUSPENDED");
    assert!(verified(&f.audit_dir).open_intents.is_empty());
    f.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_a_broken_audit_log_stop_actions() {
    let f = fixture().await;
    let policy = PolicyConfig {
        max_actions_per_principal_per_hour: 1,
        ..no_approval()
    };
    let a = actions(&f, management(&f), policy);
    let caller = agent();
    a.act(&caller, Kind::RevokeSessions, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    let e = a
        .act(&caller, Kind::Suspend, act_args(&f, &f.member2), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("per principal"), "{e}");
    assert_eq!(status(&f, &f.member2), "ACTIVE");

    // The head cannot be replaced any more: the intent is not durable, so nothing runs.
    let other = Caller {
        principal: "second-agent@example.com".into(),
        ..agent()
    };
    std::fs::create_dir(f.audit_dir.join(format!("{}.tmp", audit::HEAD_FILE))).unwrap();
    let e = a
        .act(&other, Kind::Suspend, act_args(&f, &f.member2), OutOfBand)
        .await
        .unwrap_err();
    assert!(e.contains("fail closed"), "{e}");
    assert_eq!(status(&f, &f.member2), "ACTIVE");
    assert_eq!(okta_events(&f, "user.lifecycle.suspend", &f.member2), 0);

    // Once the head can be replaced again, the chain goes on from the last acknowledged
    // record: the refused record left no line behind that the next one would fork from.
    std::fs::remove_dir(f.audit_dir.join(format!("{}.tmp", audit::HEAD_FILE))).unwrap();
    a.act(&other, Kind::Suspend, act_args(&f, &f.member2), OutOfBand)
        .await
        .unwrap();
    assert_eq!(status(&f, &f.member2), "SUSPENDED");
    let v = audit::verify(&f.audit_dir).unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert!(v.open_intents.is_empty(), "{:?}", v.open_intents);
    drop(a);
    AuditLog::open(&f.audit_dir).expect("the log reopens");
    f.sim.stop().await;
}

/// An RSA key pair: the private key's PEM file and the public key's PEM.
fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let file = dir.join(format!("{name}.pem"));
    std::fs::write(&file, private.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let public = private.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    (file, public)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_app_acts_with_private_key_jwt_within_its_scopes() {
    let keys = tempfile::tempdir().unwrap();
    let (full_key, full_public) = key_pair(keys.path(), "full");
    let (reader_key, reader_public) = key_pair(keys.path(), "reader");
    let (stranger_key, _) = key_pair(keys.path(), "stranger");
    let app = |client_id: &str, public_key_pem: String, scopes: &[&str]| sim::ServiceApp {
        client_id: client_id.into(),
        public_key_pem,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    };
    let f = fixture_with(vec![
        app("0oafullapp", full_public.clone(), &sim::OKTA_SCOPES),
        app("0oareaderapp", reader_public, &["okta.users.read", "okta.roles.read"]),
    ])
    .await;
    let with_app = |client_id: &str, key: &Path| OktaConfig {
        org_url: Some(f.sim.base_url()),
        service_app: Some(ServiceAppConfig {
            client_id: client_id.into(),
            private_key_file: key.to_owned(),
            key_id: Some("key-1".into()),
            scopes: idgw_gateway::okta::ServiceAppConfig::default_scopes(),
        }),
        retry: fast_retries(),
        ..OktaConfig::default()
    };
    let a = actions(&f, with_app("0oafullapp", &full_key), no_approval());
    let done = a
        .act(&agent(), Kind::Suspend, act_args(&f, &f.member), OutOfBand)
        .await
        .unwrap();
    assert_eq!(
        (done.status.as_str(), done.backend.as_deref()),
        ("success", Some("management"))
    );
    assert_eq!(status(&f, &f.member), "SUSPENDED");
    // The token is reused, not fetched per call.
    assert_eq!(f.sim.sim.auth.lock().unwrap().org_tokens.len(), 1);
    let info = a.read_user(&f.admin).await.unwrap();
    assert_eq!(info.admin_roles, Some(vec!["SUPER_ADMIN".to_owned()]));
    drop(a);

    // Okta grants only what the app holds: reading works, suspending is forbidden.
    let reader = Okta::new(with_app("0oareaderapp", &reader_key)).unwrap();
    assert_eq!(reader.read_user(&f.member2).await.unwrap().0.status, "ACTIVE");
    let e = reader
        .act(idgw_gateway::okta::Op::Suspend, &f.member2, REASON, "txn-test", None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission"), "{e}");
    assert_eq!(status(&f, &f.member2), "ACTIVE");

    // An assertion signed with another key is refused at the token endpoint.
    let stranger = Okta::new(with_app("0oafullapp", &stranger_key)).unwrap();
    let e = stranger.read_user(&f.member2).await.unwrap_err();
    assert!(e.to_string().contains("refused the service app"), "{e}");
    f.sim.stop().await;
}
