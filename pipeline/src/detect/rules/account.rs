//! Account events: lockouts, MFA changes, risk, reports by the user, credential resets by
//! Okta support and passwords revealed to someone else.

use idgw_schemas::{Detection, SemanticEvent, Severity};

use super::{RuleConfig, actor_of, login_of, name_of, on_actor, on_user, owned, succeeded, target};
use crate::detect::alerting::Finding;

pub(super) fn account_lockout(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if !matches!(&*ev.event_type, "user.account.lock" | "user.account.lock.limit") {
        return None;
    }
    let mut f = on_user(ev, Detection::AccountLockout, Severity::Medium, 0.9);
    f.summary = format!(
        "Okta locked {} out after repeated failed sign-ins from {}.",
        login_of(ev),
        ev.client.ip.as_deref().unwrap_or("an unknown address")
    );
    f.mitre = &["T1110"];
    Some(f)
}

pub(super) fn mfa_tamper(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if ev.event_type == "system.mfa.factor.deactivate" {
        return org_factor_deactivated(ev);
    }
    let severity = match &*ev.event_type {
        "user.mfa.factor.reset_all" => Severity::High,
        "user.mfa.factor.deactivate" | "user.mfa.factor.suspend" => Severity::Medium,
        _ => return None,
    };
    if !succeeded(ev) {
        return None;
    }
    // A user resetting their own factors (a new phone) is everyday self-service: low, kept
    // for the trail, unless Okta or the network says the session is not the user's (an
    // anonymiser or proxy, ThreatInsight's suspicion, a high risk, a new device or IP).
    // Someone else doing it is the help-desk takeover's first step.
    let signals = &ev.okta_signals;
    let red_flag = ev.network.anonymizer
        || ev.network.is_proxy == Some(true)
        || signals.threat_suspected == Some(true)
        || signals.risk.as_ref().and_then(|r| r.level.as_deref()) == Some("HIGH")
        || signals
            .positive_behaviors()
            .any(|b| b.contains("Device") || b.contains("IP") || b.contains("Geo"));
    let own = !red_flag
        && ev.actor.as_ref().and_then(|a| a.id.as_deref()).is_some()
        && ev.actor.as_ref().and_then(|a| a.id.as_deref()) == ev.subject_user.as_ref().and_then(|u| u.id.as_deref());
    let (severity, confidence) = if own { (Severity::Low, 0.5) } else { (severity, 0.8) };
    let mut f = on_user(ev, Detection::MfaTamper, severity, confidence);
    f.summary = if own {
        format!("{} removed their own MFA factors ({}).", login_of(ev), ev.event_type)
    } else {
        format!(
            "{} removed MFA factors of {} ({}).",
            actor_of(ev),
            login_of(ev),
            ev.event_type
        )
    };
    f.evidence.insert("self_service".into(), own.into());
    f.mitre = &["T1556.006"];
    Some(f)
}

/// A factor turned off for the whole org: every user who relied on it now signs in without
/// it. On the admin who did it.
fn org_factor_deactivated(ev: &SemanticEvent<'_>) -> Option<Finding> {
    if !succeeded(ev) {
        return None;
    }
    let factor = ev
        .primary_target
        .as_ref()
        .and_then(|t| t.display_name.as_deref().or(t.login.as_deref()).or(t.id.as_deref()))
        .unwrap_or("an MFA factor");
    let mut f = on_user(ev, Detection::MfaTamper, Severity::High, 0.85);
    f.summary = format!(
        "{} deactivated {factor} for the whole organisation: users who relied on it now sign in without it.",
        actor_of(ev)
    );
    f.mitre = &["T1556.006", "T1562.001"];
    Some(f)
}

pub(super) fn suspicious_activity_report(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if ev.event_type != "user.account.report_suspicious_activity_by_enduser" {
        return None;
    }
    let mut f = on_user(ev, Detection::SuspiciousActivityReport, Severity::High, 0.8);
    f.summary = format!("{} reported activity on their account as not theirs.", login_of(ev));
    f.mitre = &["T1078"];
    Some(f)
}

pub(super) fn okta_risk_elevated(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if !matches!(&*ev.event_type, "user.risk.detect" | "user.risk.change") {
        return None;
    }
    let risk = ev.okta_signals.risk.as_ref();
    let change = ev.okta_signals.risk_change.as_ref();
    let level = risk
        .and_then(|r| r.level.as_deref())
        .or(change.and_then(|c| c.risk_level.as_deref()))?;
    let previous = risk
        .and_then(|r| r.previous_level.as_deref())
        .or(change.and_then(|c| c.prior_risk_level.as_deref()));
    let severity = match level {
        "HIGH" => Severity::High,
        "MEDIUM" => Severity::Medium,
        _ => return None,
    };
    if previous == Some(level) {
        return None;
    }
    let mut f = on_user(ev, Detection::OktaRiskElevated, severity, 0.85);
    let reasons = risk.map(|r| r.reasons.join("; ")).unwrap_or_default();
    f.summary = format!(
        "Okta raised {}'s risk to {level}{}.",
        login_of(ev),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(": {reasons}")
        }
    );
    f.evidence.insert("level".into(), level.into());
    f.evidence.insert("previous_level".into(), previous.into());
    f.evidence.insert(
        "detection_name".into(),
        risk.and_then(|r| r.detection_name.clone()).into(),
    );
    f.evidence.insert("reasons".into(), reasons.into());
    f.mitre = &["T1078"];
    Some(f)
}

/// Okta support reset a credential: the reset is logged with Okta's own system principal as
/// the actor, outside any customer transaction (`transaction.id` "unknown") and without a
/// client (no user agent, no geo). An admin's reset, or Okta's scheduled jobs run inside a
/// transaction, do not match.
pub(super) fn support_credential_reset(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    const RESETS: &[&str] = &[
        "user.account.reset_password",
        "user.mfa.factor.update",
        "user.mfa.factor.reset_all",
        "user.mfa.factor.deactivate",
        "system.mfa.factor.deactivate",
        "user.mfa.attempt_bypass",
    ];
    if !RESETS.contains(&&*ev.event_type) || !succeeded(ev) {
        return None;
    }
    let by_okta = ev.actor.as_ref().and_then(|a| a.login.as_deref()) == Some("system@okta.com");
    let outside_tenant = ev.request.request_id.as_deref() == Some("unknown")
        && ev.client.user_agent.is_none()
        && ev.client.geo.as_ref().and_then(|g| g.country.as_deref()).is_none();
    if !(by_okta && outside_tenant) {
        return None;
    }
    let mut f = on_user(ev, Detection::SupportCredentialReset, Severity::High, 0.85);
    let what = if ev.event_type == "user.account.reset_password" {
        "password"
    } else {
        "MFA factors"
    };
    f.summary = format!(
        "Okta support reset the {what} of {} ({}): confirm with the tenant's admins that they asked for it.",
        login_of(ev),
        ev.event_type
    );
    f.mitre = &["T1199", "T1098"];
    Some(f)
}

/// Someone revealed another user's password for an app (SWA apps keep it readable): the
/// actor is not among the user targets. A user revealing their own password does not match.
pub(super) fn app_password_revealed(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if ev.event_type != "application.user_membership.show_password" || !succeeded(ev) {
        return None;
    }
    let actor = ev.actor.as_ref()?;
    let users: Vec<&str> = ev
        .targets
        .iter()
        .filter(|t| matches!(t.kind.as_deref(), Some("User" | "AppUser")))
        .filter_map(|t| t.login.as_deref().or(t.id.as_deref()))
        .collect();
    let same = |u: &&str| Some(*u) == actor.login.as_deref() || Some(*u) == actor.id.as_deref();
    if users.is_empty() || users.iter().any(same) {
        return None;
    }
    let app = name_of(target(ev, "AppInstance")).unwrap_or("an app");
    let mut f = on_actor(ev, Detection::AppPasswordRevealed, Severity::Medium, 0.8);
    f.summary = format!("{} revealed the {app} password of {}.", actor_of(ev), users.join(", "));
    f.evidence.insert("app".into(), app.into());
    f.evidence.insert("owners".into(), serde_json::json!(users));
    f.evidence.insert(
        "app_id".into(),
        target(ev, "AppInstance").and_then(|t| owned(&t.id)).into(),
    );
    f.mitre = &["T1555", "T1078"];
    Some(f)
}
