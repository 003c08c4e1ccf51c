//! Admin changes to the tenant: roles, API tokens, support access, federation (identity
//! providers and Org2Org apps), apps set to receive passwords, and the policies and network
//! zones that decide who signs in how.

use idgw_schemas::{Detection, SemanticEvent, Severity};

use super::{RuleConfig, actor_of, login_of, lower, name_of, on_actor, on_user, owned, succeeded, target};
use crate::detect::alerting::Finding;

pub(super) fn admin_privilege_grant(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
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
    // A group grant names no user: it is the group's members who gain the role (see
    // `group_admin_membership`), and the admin who granted it is the entity.
    let group = target(ev, "UserGroup").filter(|_| ev.event_type == "group.privilege.grant");
    let grantee = match group {
        Some(g) => format!("the group {}", name_of(Some(g)).unwrap_or("(unnamed)")),
        None => login_of(ev).to_owned(),
    };
    f.summary = format!(
        "{} granted {} to {grantee}.",
        actor_of(ev),
        role.as_deref().unwrap_or("an admin role"),
    );
    if let Some(g) = group {
        f.evidence.insert("group_id".into(), owned(&g.id).into());
    }
    f.evidence.insert("role".into(), role.into());
    f.evidence.insert("super_admin".into(), super_admin.into());
    f.mitre = &["T1098.003"];
    Some(f)
}

pub(super) fn api_token_created(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
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

pub(super) fn support_impersonation(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
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

/// A federation trust changed: an identity provider created, changed or removed, or an
/// Org2Org app (another Okta org pushing users into this one) created or changed.
pub(super) fn idp_lifecycle(ev: &SemanticEvent<'_>, config: &RuleConfig) -> Option<Finding> {
    if ev.event_type.starts_with("application.lifecycle.") {
        return org2org_lifecycle(ev, config);
    }
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

/// An Org2Org app created, activated or changed. Okta's event names the app instance by its
/// label, which for this app type is "Okta Org2Org" unless renamed; the app's internal name
/// `okta_org2org` appears in the alternate id of some exports. Either is matched.
fn org2org_lifecycle(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    let (severity, verb) = match &*ev.event_type {
        "application.lifecycle.create" => (Severity::High, "created"),
        "application.lifecycle.activate" => (Severity::High, "activated"),
        "application.lifecycle.update" => (Severity::Medium, "changed"),
        _ => return None,
    };
    let is_org2org = |t: &&idgw_schemas::semantic::Principal<'_>| {
        t.kind.as_deref() == Some("AppInstance")
            && [&t.display_name, &t.login].iter().any(|v| {
                v.as_deref()
                    .is_some_and(|n| n.to_ascii_lowercase().replace([' ', '_', '-'], "").contains("org2org"))
            })
    };
    let app = ev.targets.iter().find(is_org2org)?;
    if !succeeded(ev) {
        return None;
    }
    let mut f = on_actor(ev, Detection::IdpLifecycle, severity, 0.8);
    f.summary = format!(
        "{} {verb} the Org2Org app {}: another Okta org can now push or match users into this one.",
        actor_of(ev),
        name_of(Some(app)).unwrap_or("(unnamed)")
    );
    f.evidence.insert("app_id".into(), owned(&app.id).into());
    f.mitre = &["T1484.002", "T1078.004"];
    Some(f)
}

/// An API token revoked. Informational: revoking is what a defender does, and what an
/// attacker does to disrupt integrations (Elastic files it under impact); it mostly dates
/// the end of a token's life for an investigation.
pub(super) fn api_token_revoked(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if ev.event_type != "system.api_token.revoke" || !succeeded(ev) {
        return None;
    }
    let token = target(ev, "Token");
    let mut f = on_actor(ev, Detection::ApiTokenRevoked, Severity::Info, 0.9);
    f.summary = format!(
        "{} revoked the API token {}.",
        actor_of(ev),
        name_of(token).unwrap_or("(unnamed)")
    );
    f.evidence
        .insert("token_id".into(), token.and_then(|t| owned(&t.id)).into());
    f.mitre = &["T1531"];
    Some(f)
}

/// An app set to push users' passwords in clear text to its SCIM endpoint: whoever controls
/// the endpoint receives every assigned user's password.
pub(super) fn scim_password_push(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if !ev.event_type.starts_with("application.lifecycle.") || !succeeded(ev) {
        return None;
    }
    let pushing = ev
        .outcome
        .reason
        .as_deref()
        .is_some_and(|r| r.to_ascii_lowercase().contains("pushing user passwords"));
    if !pushing {
        return None;
    }
    let app = name_of(target(ev, "AppInstance")).unwrap_or("an app");
    let mut f = on_actor(ev, Detection::ScimPasswordPush, Severity::High, 0.85);
    f.summary = format!(
        "{} set {app} to receive users' passwords in clear text (SCIM password push).",
        actor_of(ev)
    );
    f.evidence.insert("app".into(), app.into());
    f.mitre = &["T1556", "T1555"];
    Some(f)
}

/// A sign-on, MFA or password policy, one of its rules, or a network zone changed. Turning
/// off or deleting a policy or rule removes a check from every sign-in it governed (high);
/// editing one, or editing, deactivating or deleting a zone (a blocklist emptied, an address
/// added to a trusted zone) may weaken them (medium). A failed attempt is one step lower.
pub(super) fn policy_weakened(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    let (severity, verb, what) = match &*ev.event_type {
        "policy.lifecycle.deactivate" => (Severity::High, "deactivated", "policy"),
        "policy.lifecycle.delete" => (Severity::High, "deleted", "policy"),
        "policy.rule.deactivate" => (Severity::High, "deactivated", "policy rule"),
        "policy.rule.delete" => (Severity::High, "deleted", "policy rule"),
        "policy.lifecycle.update" => (Severity::Medium, "changed", "policy"),
        "policy.rule.update" => (Severity::Medium, "changed", "policy rule"),
        "zone.update" => (Severity::Medium, "changed", "network zone"),
        "zone.deactivate" => (Severity::Medium, "deactivated", "network zone"),
        "zone.delete" => (Severity::Medium, "deleted", "network zone"),
        "zone.remove_blacklist" | "security.zone.remove_blacklist" => {
            (Severity::Medium, "removed from the blocklist", "network zone")
        }
        "network_zone.rule.disabled" => (Severity::Medium, "disabled", "network zone rule"),
        _ => return None,
    };
    let done = succeeded(ev);
    let severity = if done { severity } else { lower(severity) };
    let object = ["PolicyRule", "PolicyEntity", "NetworkZone", "Zone"]
        .iter()
        .find_map(|k| target(ev, k))
        .or(ev.targets.first());
    let mut f = on_actor(ev, Detection::PolicyWeakened, severity, 0.75);
    f.summary = format!(
        "{} {}{verb} the {what} {}.",
        actor_of(ev),
        if done { "" } else { "tried and failed: " },
        name_of(object).unwrap_or("(unnamed)")
    );
    f.evidence
        .insert("object_id".into(), object.and_then(|t| owned(&t.id)).into());
    f.evidence
        .insert("object".into(), object.and_then(|t| owned(&t.display_name)).into());
    f.mitre = &["T1556", "T1562.001"];
    Some(f)
}
