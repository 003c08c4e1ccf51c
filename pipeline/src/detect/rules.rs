//! Stateless single-event rules: each looks at one event and may raise one alert, at once
//! (they never wait for the reorder buffer). Registration is the plain list in [`rules`].

use std::borrow::Cow;

use idgw_schemas::{Detection, SemanticEvent, Severity};

use super::alerting::Finding;
use crate::evidence;

/// A single-event rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The detection it raises.
    pub detection: Detection,
    /// Looks at one event.
    pub eval: fn(&SemanticEvent<'_>) -> Option<Finding>,
}

/// Every single-event rule, one line each.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            detection: Detection::AccountLockout,
            eval: account_lockout,
        },
        Rule {
            detection: Detection::AdminPrivilegeGrant,
            eval: admin_privilege_grant,
        },
        Rule {
            detection: Detection::ApiTokenCreated,
            eval: api_token_created,
        },
        Rule {
            detection: Detection::ThreatInsight,
            eval: threat_insight,
        },
        Rule {
            detection: Detection::MfaTamper,
            eval: mfa_tamper,
        },
        Rule {
            detection: Detection::FastpassPhishing,
            eval: fastpass_phishing,
        },
        Rule {
            detection: Detection::SuspiciousActivityReport,
            eval: suspicious_activity_report,
        },
        Rule {
            detection: Detection::OktaRiskElevated,
            eval: okta_risk_elevated,
        },
        Rule {
            detection: Detection::AnonymizingProxy,
            eval: anonymizing_proxy,
        },
        Rule {
            detection: Detection::SupportImpersonation,
            eval: support_impersonation,
        },
        Rule {
            detection: Detection::IdpLifecycle,
            eval: idp_lifecycle,
        },
    ]
}

/// An event's text as an owned string, for a finding that outlives the event.
fn owned(text: &Option<Cow<'_, str>>) -> Option<String> {
    text.as_deref().map(str::to_owned)
}

fn succeeded(ev: &SemanticEvent<'_>) -> bool {
    matches!(ev.outcome.result.as_deref(), Some("SUCCESS" | "ALLOW") | None)
}

fn login_of<'e>(ev: &'e SemanticEvent<'_>) -> &'e str {
    ev.subject_user
        .as_ref()
        .and_then(|u| u.login.as_deref().or(u.id.as_deref()))
        .unwrap_or("an unknown user")
}

fn actor_of<'e>(ev: &'e SemanticEvent<'_>) -> &'e str {
    ev.actor
        .as_ref()
        .and_then(|a| a.login.as_deref().or(a.display_name.as_deref()).or(a.id.as_deref()))
        .unwrap_or("an unknown actor")
}

/// A finding about the event's subject user, on this one event.
fn on_user(ev: &SemanticEvent<'_>, detection: Detection, severity: Severity, confidence: f64) -> Finding {
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

fn account_lockout(ev: &SemanticEvent<'_>) -> Option<Finding> {
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

fn admin_privilege_grant(ev: &SemanticEvent<'_>) -> Option<Finding> {
    if !matches!(
        &*ev.event_type,
        "user.account.privilege.grant" | "group.privilege.grant"
    ) || !succeeded(ev)
    {
        return None;
    }
    let role = owned(&ev.privilege_granted);
    let super_admin = role
        .as_deref()
        .is_some_and(|r| r.to_ascii_lowercase().contains("super") || r.contains("SUPER_ADMIN"));
    let severity = if super_admin { Severity::High } else { Severity::Medium };
    let mut f = on_user(ev, Detection::AdminPrivilegeGrant, severity, 0.9);
    f.summary = format!(
        "{} granted {} to {}.",
        actor_of(ev),
        role.as_deref().unwrap_or("an admin role"),
        login_of(ev)
    );
    f.evidence.insert("role".into(), role.into());
    f.evidence.insert("super_admin".into(), super_admin.into());
    f.mitre = &["T1098.003"];
    Some(f)
}

fn api_token_created(ev: &SemanticEvent<'_>) -> Option<Finding> {
    if ev.event_type != "system.api_token.create" || !succeeded(ev) {
        return None;
    }
    let mut f = on_user(ev, Detection::ApiTokenCreated, Severity::Medium, 0.7);
    let token = ev.targets.iter().find(|t| t.kind.as_deref() == Some("Token"));
    f.summary = format!("{} created an API token.", login_of(ev));
    f.evidence
        .insert("token_id".into(), token.and_then(|t| owned(&t.id)).into());
    f.mitre = &["T1098.001"];
    Some(f)
}

fn threat_insight(ev: &SemanticEvent<'_>) -> Option<Finding> {
    if ev.event_type != "security.threat.detected" {
        return None;
    }
    let level = ev.okta_signals.threat_max_level();
    let severity = match level {
        Some("HIGH") => Severity::High,
        Some("MEDIUM") => Severity::Medium,
        _ => Severity::Low,
    };
    let blocked = ev.outcome.result.as_deref() == Some("DENY");
    // Okta already blocked the request: the source is hostile, but nothing got through.
    let severity = if blocked { lower(severity) } else { severity };
    let mut f = on_user(ev, Detection::ThreatInsight, severity, 0.85);
    let names: Vec<&str> = ev
        .okta_signals
        .threat_detections
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    f.summary = format!(
        "Okta ThreatInsight flagged {} ({}){}.",
        ev.client.ip.as_deref().unwrap_or("a source"),
        if names.is_empty() {
            "no detail".to_owned()
        } else {
            names.join(", ")
        },
        if blocked {
            "; the request was denied"
        } else {
            "; the request was allowed"
        }
    );
    f.evidence.insert("detections".into(), serde_json::json!(names));
    f.evidence.insert("max_level".into(), level.into());
    f.evidence.insert("blocked".into(), blocked.into());
    f.mitre = &["T1110"];
    Some(f)
}

fn lower(s: Severity) -> Severity {
    match s {
        Severity::Critical => Severity::High,
        Severity::High => Severity::Medium,
        Severity::Medium => Severity::Low,
        Severity::Low | Severity::Info => Severity::Info,
    }
}

fn mfa_tamper(ev: &SemanticEvent<'_>) -> Option<Finding> {
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
    let mut f = on_user(ev, Detection::MfaTamper, severity, 0.8);
    f.summary = format!(
        "{} removed MFA factors of {} ({}).",
        actor_of(ev),
        login_of(ev),
        ev.event_type
    );
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

fn fastpass_phishing(ev: &SemanticEvent<'_>) -> Option<Finding> {
    let declined = ev
        .outcome
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("FastPass declined phishing attempt"));
    if !declined || ev.outcome.result.as_deref() != Some("FAILURE") {
        return None;
    }
    let mut f = on_user(ev, Detection::FastpassPhishing, Severity::High, 0.95);
    f.summary = format!(
        "FastPass refused to sign {} in to a phishing site (from {}).",
        login_of(ev),
        ev.client.ip.as_deref().unwrap_or("an unknown address")
    );
    f.mitre = &["T1566", "T1557"];
    Some(f)
}

fn suspicious_activity_report(ev: &SemanticEvent<'_>) -> Option<Finding> {
    if ev.event_type != "user.account.report_suspicious_activity_by_enduser" {
        return None;
    }
    let mut f = on_user(ev, Detection::SuspiciousActivityReport, Severity::High, 0.8);
    f.summary = format!("{} reported activity on their account as not theirs.", login_of(ev));
    f.mitre = &["T1078"];
    Some(f)
}

fn okta_risk_elevated(ev: &SemanticEvent<'_>) -> Option<Finding> {
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

fn anonymizing_proxy(ev: &SemanticEvent<'_>) -> Option<Finding> {
    if ev.event_type != "user.session.start" || !ev.network.anonymizer {
        return None;
    }
    let success = ev.outcome.result.as_deref() == Some("SUCCESS");
    let severity = if success { Severity::High } else { Severity::Medium };
    let mut f = on_user(ev, Detection::AnonymizingProxy, severity, 0.8);
    let via: Vec<String> = ev
        .network
        .tunnels
        .iter()
        .filter_map(|t| t.operator.clone().or(t.kind.clone()))
        .chain(owned(&ev.network.proxy_type))
        .collect();
    f.summary = format!(
        "{} {} through an anonymizing proxy ({}) from {}.",
        login_of(ev),
        if success { "signed in" } else { "tried to sign in" },
        if via.is_empty() {
            "anonymizer".to_owned()
        } else {
            via.join(", ")
        },
        ev.client.ip.as_deref().unwrap_or("an unknown address")
    );
    f.evidence.insert("via".into(), serde_json::json!(via));
    f.evidence.insert("isp".into(), owned(&ev.network.isp).into());
    f.mitre = &["T1090.003"];
    Some(f)
}

fn support_impersonation(ev: &SemanticEvent<'_>) -> Option<Finding> {
    let severity = match &*ev.event_type {
        "user.session.impersonation.initiate" => Severity::High,
        "user.session.impersonation.grant" | "user.session.impersonation.extend" => Severity::Medium,
        _ => return None,
    };
    let mut f = on_user(ev, Detection::SupportImpersonation, severity, 0.9);
    f.summary = format!(
        "Okta support impersonation of {}: {} by {}.",
        login_of(ev),
        ev.event_type.rsplit('.').next().unwrap_or("grant"),
        actor_of(ev)
    );
    f.mitre = &["T1078.004"];
    Some(f)
}

fn idp_lifecycle(ev: &SemanticEvent<'_>) -> Option<Finding> {
    let (severity, verb) = match &*ev.event_type {
        "system.idp.lifecycle.create" => (Severity::High, "created"),
        "system.idp.lifecycle.activate" => (Severity::High, "activated"),
        "system.idp.lifecycle.update" => (Severity::Medium, "changed"),
        "system.idp.lifecycle.deactivate" => (Severity::Low, "deactivated"),
        "system.idp.lifecycle.delete" => (Severity::Low, "deleted"),
        _ => return None,
    };
    if !succeeded(ev) {
        return None;
    }
    let mut f = on_user(ev, Detection::IdpLifecycle, severity, 0.8);
    let idp = ev
        .targets
        .iter()
        .find(|t| t.kind.as_deref() == Some("IdentityProvider"));
    f.summary = format!(
        "{} {verb} the identity provider {}.",
        actor_of(ev),
        idp.and_then(|t| t.display_name.as_deref().or(t.id.as_deref()))
            .unwrap_or("(unnamed)")
    );
    f.evidence
        .insert("idp_id".into(), idp.and_then(|t| owned(&t.id)).into());
    f.mitre = &["T1484.002"];
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoded, decode};
    use crate::normalize::normalize_fields;

    /// The rule's finding for one event, as the pipeline decodes and normalizes it.
    fn finding(json: &str) -> Option<Finding> {
        let Ok(Decoded::Event { event, .. }) = decode(json.as_bytes(), 1 << 20) else {
            panic!("not an event: {json}");
        };
        mfa_tamper(&normalize_fields(&event).unwrap())
    }

    fn org_factor(event_type: &str, result: &str) -> String {
        format!(
            r#"{{"uuid":"9f1c2d3e-0000-4000-8000-000000000001","published":"2026-11-02T09:14:03.512Z","eventType":"{event_type}","displayMessage":"Deactivate factor for the organization","severity":"INFO","actor":{{"id":"00uadmin0000000001","type":"User","alternateId":"it.admin@example.com","displayName":"IT Admin"}},"client":{{"ipAddress":"198.51.100.20","userAgent":{{"rawUserAgent":"Mozilla/5.0","os":"Windows","browser":"CHROME"}}}},"outcome":{{"result":"{result}","reason":null}},"target":[{{"id":"fctokta0verify00001","type":"Factor","alternateId":"okta_verify","displayName":"Okta Verify"}}],"transaction":{{"type":"WEB","id":"tx1"}}}}"#
        )
    }

    #[test]
    fn an_org_wide_factor_deactivation_is_high_on_the_admin() {
        let f = finding(&org_factor("system.mfa.factor.deactivate", "SUCCESS")).expect("an alert");
        assert_eq!((f.detection, f.severity), (Detection::MfaTamper, Severity::High));
        assert_eq!(f.user_login.as_deref(), Some("it.admin@example.com"));
        assert!(
            f.summary.contains("deactivated Okta Verify for the whole organisation"),
            "{}",
            f.summary
        );
        // Look-alikes: the same change failing, and a factor turned on.
        assert!(finding(&org_factor("system.mfa.factor.deactivate", "FAILURE")).is_none());
        assert!(finding(&org_factor("system.mfa.factor.activate", "SUCCESS")).is_none());
    }
}
