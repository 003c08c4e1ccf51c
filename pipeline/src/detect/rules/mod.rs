//! Stateless single-event rules: each looks at one event and may raise one alert, at once
//! (they never wait for the reorder buffer). Registration is the plain list in [`rules`];
//! the rules themselves live in files named for what they watch.

use std::borrow::Cow;

use idgw_schemas::{Detection, SemanticEvent, Severity};

use super::alerting::Finding;
use super::config::DetectConfig;
use crate::evidence;

mod account;
mod admin_changes;
pub mod oauth;
mod signin;
#[cfg(test)]
pub(crate) mod test_events;
mod threat;

/// What a rule may read from the configuration, prepared once.
#[derive(Debug, Clone, Default)]
pub struct RuleConfig {
    /// `sanctioned_countries`, lower-case.
    pub sanctioned_countries: Vec<String>,
}

impl RuleConfig {
    /// The rules' view of `[detect]`.
    pub fn new(config: &DetectConfig) -> Self {
        RuleConfig {
            sanctioned_countries: config
                .sanctioned_countries
                .iter()
                .map(|c| c.trim().to_lowercase())
                .filter(|c| !c.is_empty())
                .collect(),
        }
    }
}

/// A rule's evaluation: one event in, at most one finding out.
pub type Eval = fn(&SemanticEvent<'_>, &RuleConfig) -> Option<Finding>;

/// A single-event rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The detection it raises.
    pub detection: Detection,
    /// Looks at one event.
    pub eval: Eval,
}

/// Every single-event rule, one line each.
pub fn rules() -> Vec<Rule> {
    use Detection as D;
    let rule = |detection, eval: Eval| Rule { detection, eval };
    vec![
        rule(D::AccountLockout, account::account_lockout),
        rule(D::AdminPrivilegeGrant, admin_changes::admin_privilege_grant),
        rule(D::ApiTokenCreated, admin_changes::api_token_created),
        rule(D::ApiTokenRevoked, admin_changes::api_token_revoked),
        rule(D::ThreatInsight, threat::threat_insight),
        rule(D::MfaTamper, account::mfa_tamper),
        rule(D::FastpassPhishing, signin::fastpass_phishing),
        rule(D::SuspiciousActivityReport, account::suspicious_activity_report),
        rule(D::OktaRiskElevated, account::okta_risk_elevated),
        rule(D::AnonymizingProxy, signin::anonymizing_proxy),
        rule(D::SupportImpersonation, admin_changes::support_impersonation),
        rule(D::IdpLifecycle, admin_changes::idp_lifecycle),
        rule(D::RefreshTokenReuse, oauth::refresh_token_reuse),
        rule(D::AppPasswordRevealed, account::app_password_revealed),
        rule(D::ScimPasswordPush, admin_changes::scim_password_push),
        rule(D::SupportCredentialReset, account::support_credential_reset),
        rule(D::AdminConsoleNewBehavior, signin::admin_console_new_behavior),
        rule(D::SanctionedCountrySignin, signin::sanctioned_country_signin),
        rule(D::PolicyWeakened, admin_changes::policy_weakened),
    ]
}

/// An event's text as an owned string, for a finding that outlives the event.
pub(crate) fn owned(text: &Option<Cow<'_, str>>) -> Option<String> {
    text.as_deref().map(str::to_owned)
}

pub(crate) fn succeeded(ev: &SemanticEvent<'_>) -> bool {
    matches!(ev.outcome.result.as_deref(), Some("SUCCESS" | "ALLOW") | None)
}

pub(crate) fn login_of<'e>(ev: &'e SemanticEvent<'_>) -> &'e str {
    ev.subject_user
        .as_ref()
        .and_then(|u| u.login.as_deref().or(u.id.as_deref()))
        .unwrap_or("an unknown user")
}

pub(crate) fn actor_of<'e>(ev: &'e SemanticEvent<'_>) -> &'e str {
    ev.actor
        .as_ref()
        .and_then(|a| a.login.as_deref().or(a.display_name.as_deref()).or(a.id.as_deref()))
        .unwrap_or("an unknown actor")
}

/// The first target of Okta type `kind`.
pub(crate) fn target<'e, 'a>(
    ev: &'e SemanticEvent<'a>,
    kind: &str,
) -> Option<&'e idgw_schemas::semantic::Principal<'a>> {
    ev.targets.iter().find(|t| t.kind.as_deref() == Some(kind))
}

/// A principal's most readable name.
pub(crate) fn name_of<'e>(p: Option<&'e idgw_schemas::semantic::Principal<'_>>) -> Option<&'e str> {
    p.and_then(|t| t.display_name.as_deref().or(t.login.as_deref()).or(t.id.as_deref()))
}

pub(crate) fn ip_of<'e>(ev: &'e SemanticEvent<'_>) -> &'e str {
    ev.client.ip.as_deref().unwrap_or("an unknown address")
}

/// A finding about the event's subject user, on this one event.
pub(crate) fn on_user(ev: &SemanticEvent<'_>, detection: Detection, severity: Severity, confidence: f64) -> Finding {
    let t = ev.event_time.timestamp_millis();
    Finding {
        detection,
        severity,
        confidence,
        user_id: ev.subject_user.as_ref().and_then(|u| owned(&u.id)),
        user_login: ev.subject_user.as_ref().and_then(|u| owned(&u.login)),
        src_ip: owned(&ev.client.ip),
        first_seen: t,
        last_seen: t,
        event_uuids: vec![ev.event_id.to_string()],
        summary: String::new(),
        evidence: evidence! {
            "event_type" => ev.event_type,
            "outcome" => ev.outcome.result,
            "reason" => ev.outcome.reason,
            "actor" => ev.actor.as_ref().and_then(|a| a.login.clone()),
            "country" => ev.client.geo.as_ref().and_then(|g| g.country.clone()),
        },
        mitre: &[],
    }
}

/// A finding about the event's actor (an admin's change, an app's token): the actor, when
/// it is a user, is the entity.
pub(crate) fn on_actor(ev: &SemanticEvent<'_>, detection: Detection, severity: Severity, confidence: f64) -> Finding {
    let mut f = on_user(ev, detection, severity, confidence);
    let actor = ev.actor.as_ref().filter(|a| a.kind.as_deref() == Some("User"));
    if let Some(a) = actor {
        f.user_id = owned(&a.id);
        f.user_login = owned(&a.login);
    }
    f
}

pub(crate) fn lower(s: Severity) -> Severity {
    match s {
        Severity::Critical => Severity::High,
        Severity::High => Severity::Medium,
        Severity::Medium => Severity::Low,
        Severity::Low | Severity::Info => Severity::Info,
    }
}

#[cfg(test)]
mod tests;
