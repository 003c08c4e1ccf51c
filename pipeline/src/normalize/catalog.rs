//! What each Okta event type means: its category, action, OCSF class and activity, and
//! whose event it is. One table, so the mapping is read in one place (docs/architecture.md
//! links here).

use idgw_schemas::semantic::Category;

/// Whose event it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The acting user (sign-ins, MFA, sessions); a user target if the actor is no user.
    Actor,
    /// The user acted on (admin actions on a user); the actor if there is no user target.
    TargetUser,
    /// No user: the event belongs to its source IP (ThreatInsight, attacks).
    SourceIp,
}

/// The meaning of one event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub category: Category,
    pub action: &'static str,
    pub class_uid: i32,
    pub activity_id: i32,
    pub subject: Subject,
}

/// OCSF Authentication.
pub const AUTHENTICATION: i32 = 3002;
/// OCSF Account Change.
pub const ACCOUNT_CHANGE: i32 = 3001;
/// OCSF User Access Management.
pub const USER_ACCESS: i32 = 3005;
/// OCSF Group Management.
pub const GROUP_MANAGEMENT: i32 = 3006;
/// OCSF API Activity.
pub const API_ACTIVITY: i32 = 6003;
/// OCSF Detection Finding.
pub const DETECTION_FINDING: i32 = 2004;
/// OCSF Base Event.
pub const BASE_EVENT: i32 = 0;

const fn k(category: Category, action: &'static str, class_uid: i32, activity_id: i32, subject: Subject) -> Kind {
    Kind {
        category,
        action,
        class_uid,
        activity_id,
        subject,
    }
}

/// Looks up an event type. Unknown types fall back by prefix, then to a base event; they
/// are stored, never rejected.
pub fn kind_of(event_type: &str) -> Kind {
    use Category as C;
    use Subject::{Actor, SourceIp, TargetUser};
    match event_type {
        "user.session.start" => k(C::Authentication, "login", AUTHENTICATION, 1, Actor),
        "user.authentication.auth_via_IDP"
        | "user.authentication.auth_via_social"
        | "user.authentication.authenticate" => k(C::Authentication, "login", AUTHENTICATION, 1, Actor),
        "user.session.end" => k(C::Authentication, "logout", AUTHENTICATION, 2, Actor),
        "user.session.clear" => k(C::Authentication, "session_clear", AUTHENTICATION, 2, TargetUser),
        "user.authentication.universal_logout" => {
            k(C::Authentication, "universal_logout", AUTHENTICATION, 2, TargetUser)
        }
        "user.session.context.change" => k(C::Authentication, "session_context_change", AUTHENTICATION, 99, Actor),
        "user.session.impersonation.initiate" => {
            k(C::Authentication, "impersonation_start", AUTHENTICATION, 1, TargetUser)
        }
        "user.session.impersonation.end" => k(C::Authentication, "impersonation_end", AUTHENTICATION, 2, TargetUser),
        "user.session.impersonation.grant" | "user.session.impersonation.extend" => {
            k(C::Privilege, "impersonation_grant", USER_ACCESS, 1, TargetUser)
        }
        "user.session.impersonation.revoke" => k(C::Privilege, "impersonation_revoke", USER_ACCESS, 2, TargetUser),
        "user.authentication.auth_via_mfa" | "user.authentication.verify" => {
            k(C::Mfa, "mfa_verify", AUTHENTICATION, 99, Actor)
        }
        "system.push.send_factor_verify_push" => k(C::Mfa, "push_sent", AUTHENTICATION, 99, Actor),
        "user.mfa.okta_verify.deny_push" => k(C::Mfa, "push_deny", AUTHENTICATION, 99, Actor),
        "user.mfa.attempt_bypass" => k(C::Mfa, "mfa_bypass_attempt", AUTHENTICATION, 99, Actor),
        "user.mfa.factor.activate" => k(C::Mfa, "factor_enroll", ACCOUNT_CHANGE, 10, TargetUser),
        "user.mfa.factor.deactivate" | "user.mfa.factor.suspend" => {
            k(C::Mfa, "factor_remove", ACCOUNT_CHANGE, 11, TargetUser)
        }
        "user.mfa.factor.reset_all" => k(C::Mfa, "factor_reset_all", ACCOUNT_CHANGE, 11, TargetUser),
        // A factor turned on or off for the whole org, by an admin (the actor).
        "system.mfa.factor.activate" => k(C::Mfa, "org_factor_enable", API_ACTIVITY, 3, Actor),
        "system.mfa.factor.deactivate" => k(C::Mfa, "org_factor_disable", API_ACTIVITY, 3, Actor),
        "user.authentication.sso" => k(C::Sso, "sso", AUTHENTICATION, 4, Actor),
        "policy.evaluate_sign_on" => k(C::Policy, "policy_evaluate", AUTHENTICATION, 99, Actor),
        "policy.auth_reevaluate.fail" => k(C::Policy, "reevaluate_fail", AUTHENTICATION, 99, Actor),
        "policy.entity_risk.action" => k(C::Risk, "entity_risk_action", DETECTION_FINDING, 1, TargetUser),
        "user.lifecycle.create" => k(C::Account, "create", ACCOUNT_CHANGE, 1, TargetUser),
        "user.lifecycle.activate" | "user.lifecycle.reactivate" => {
            k(C::Account, "activate", ACCOUNT_CHANGE, 2, TargetUser)
        }
        "user.lifecycle.suspend" => k(C::Account, "suspend", ACCOUNT_CHANGE, 5, TargetUser),
        "user.lifecycle.unsuspend" => k(C::Account, "unsuspend", ACCOUNT_CHANGE, 2, TargetUser),
        "user.lifecycle.deactivate" => k(C::Account, "deactivate", ACCOUNT_CHANGE, 5, TargetUser),
        "user.lifecycle.delete.initiated" | "user.lifecycle.delete.completed" => {
            k(C::Account, "delete", ACCOUNT_CHANGE, 6, TargetUser)
        }
        "user.account.lock" | "user.account.lock.limit" => k(C::Account, "lock", ACCOUNT_CHANGE, 9, TargetUser),
        "user.account.unlock" | "user.account.unlock_by_admin" => {
            k(C::Account, "unlock", ACCOUNT_CHANGE, 12, TargetUser)
        }
        "user.account.reset_password" => k(C::Account, "password_reset", ACCOUNT_CHANGE, 4, TargetUser),
        "user.account.update_password" => k(C::Account, "password_change", ACCOUNT_CHANGE, 3, TargetUser),
        "user.account.report_suspicious_activity_by_enduser" => {
            k(C::Risk, "suspicious_activity_report", DETECTION_FINDING, 1, Actor)
        }
        "user.account.privilege.grant" | "group.privilege.grant" => {
            k(C::Privilege, "privilege_grant", USER_ACCESS, 1, TargetUser)
        }
        "user.account.privilege.revoke" | "group.privilege.revoke" => {
            k(C::Privilege, "privilege_revoke", USER_ACCESS, 2, TargetUser)
        }
        "group.user_membership.add" => k(C::Account, "group_add", GROUP_MANAGEMENT, 3, TargetUser),
        "group.user_membership.remove" => k(C::Account, "group_remove", GROUP_MANAGEMENT, 4, TargetUser),
        "system.api_token.create" => k(C::Credential, "api_token_create", API_ACTIVITY, 1, Actor),
        "system.api_token.revoke" => k(C::Credential, "api_token_revoke", API_ACTIVITY, 4, Actor),
        "security.threat.detected" => k(C::Threat, "threat_detected", DETECTION_FINDING, 1, SourceIp),
        "security.attack.start" => k(C::Threat, "attack_start", DETECTION_FINDING, 1, SourceIp),
        "security.attack.end" => k(C::Threat, "attack_end", DETECTION_FINDING, 3, SourceIp),
        "security.request.blocked" => k(C::Threat, "request_blocked", DETECTION_FINDING, 1, SourceIp),
        "user.risk.detect" | "user.risk.change" => k(C::Risk, "risk_detect", DETECTION_FINDING, 1, TargetUser),
        "system.org.rate_limit.warning"
        | "system.org.rate_limit.violation"
        | "system.operation.rate_limit.violation" => k(C::System, "rate_limit", API_ACTIVITY, 99, Actor),
        "app.oauth2.as.token.grant" | "app.oauth2.token.grant" => k(C::Oauth, "token_grant", AUTHENTICATION, 3, Actor),
        "app.oauth2.as.authorize" | "app.oauth2.authorize" => k(C::Oauth, "authorize", AUTHENTICATION, 99, Actor),
        "system.idp.lifecycle.create" => k(C::Idp, "idp_create", API_ACTIVITY, 1, Actor),
        "system.idp.lifecycle.activate" => k(C::Idp, "idp_activate", API_ACTIVITY, 3, Actor),
        "system.idp.lifecycle.deactivate" => k(C::Idp, "idp_deactivate", API_ACTIVITY, 3, Actor),
        "system.idp.lifecycle.update" => k(C::Idp, "idp_update", API_ACTIVITY, 3, Actor),
        "system.idp.lifecycle.delete" => k(C::Idp, "idp_delete", API_ACTIVITY, 4, Actor),
        other => by_prefix(other),
    }
}

fn by_prefix(event_type: &str) -> Kind {
    use Category as C;
    use Subject::{Actor, SourceIp, TargetUser};
    const PREFIXES: &[(&str, Kind)] = &[
        (
            "user.session.",
            k(C::Authentication, "other", AUTHENTICATION, 99, Actor),
        ),
        (
            "user.authentication.",
            k(C::Authentication, "other", AUTHENTICATION, 99, Actor),
        ),
        ("user.mfa.", k(C::Mfa, "other", AUTHENTICATION, 99, Actor)),
        (
            "user.lifecycle.",
            k(C::Account, "other", ACCOUNT_CHANGE, 99, TargetUser),
        ),
        ("user.account.", k(C::Account, "other", ACCOUNT_CHANGE, 99, TargetUser)),
        ("user.risk.", k(C::Risk, "other", DETECTION_FINDING, 99, TargetUser)),
        ("policy.", k(C::Policy, "other", AUTHENTICATION, 99, Actor)),
        ("security.", k(C::Threat, "other", DETECTION_FINDING, 99, SourceIp)),
        ("system.idp.", k(C::Idp, "other", API_ACTIVITY, 99, Actor)),
        ("app.oauth2.", k(C::Oauth, "other", AUTHENTICATION, 99, Actor)),
        ("system.", k(C::System, "other", API_ACTIVITY, 99, Actor)),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| event_type.starts_with(prefix))
        .map(|(_, kind)| *kind)
        .unwrap_or(k(C::Other, "other", BASE_EVENT, 99, TargetUser))
}

/// OCSF class name.
pub fn class_name(class_uid: i32) -> &'static str {
    match class_uid {
        AUTHENTICATION => "Authentication",
        ACCOUNT_CHANGE => "Account Change",
        USER_ACCESS => "User Access Management",
        GROUP_MANAGEMENT => "Group Management",
        API_ACTIVITY => "API Activity",
        DETECTION_FINDING => "Detection Finding",
        _ => "Base Event",
    }
}

/// OCSF category of a class.
pub fn category_uid(class_uid: i32) -> i32 {
    class_uid / 1000
}

/// OCSF activity name within a class.
pub fn activity_name(class_uid: i32, activity_id: i32) -> &'static str {
    match (class_uid, activity_id) {
        (AUTHENTICATION, 1) => "Logon",
        (AUTHENTICATION, 2) => "Logoff",
        (AUTHENTICATION, 3) => "Authentication Ticket",
        (AUTHENTICATION, 4) => "Service Ticket Request",
        (ACCOUNT_CHANGE, 1) => "Create",
        (ACCOUNT_CHANGE, 2) => "Enable",
        (ACCOUNT_CHANGE, 3) => "Password Change",
        (ACCOUNT_CHANGE, 4) => "Password Reset",
        (ACCOUNT_CHANGE, 5) => "Disable",
        (ACCOUNT_CHANGE, 6) => "Delete",
        (ACCOUNT_CHANGE, 9) => "Lock",
        (ACCOUNT_CHANGE, 10) => "MFA Factor Enable",
        (ACCOUNT_CHANGE, 11) => "MFA Factor Disable",
        (ACCOUNT_CHANGE, 12) => "Unlock",
        (USER_ACCESS, 1) => "Assign Privileges",
        (USER_ACCESS, 2) => "Revoke Privileges",
        (GROUP_MANAGEMENT, 3) => "Add User",
        (GROUP_MANAGEMENT, 4) => "Remove User",
        (API_ACTIVITY, 1) => "Create",
        (API_ACTIVITY, 2) => "Read",
        (API_ACTIVITY, 3) => "Update",
        (API_ACTIVITY, 4) => "Delete",
        (DETECTION_FINDING, 1) => "Create",
        (DETECTION_FINDING, 2) => "Update",
        (DETECTION_FINDING, 3) => "Close",
        _ => "Other",
    }
}

/// OCSF status from Okta's `outcome.result`: 1 Success, 2 Failure, 0 Unknown, 99 Other.
pub fn status_id(result: Option<&str>) -> i32 {
    match result {
        Some("SUCCESS" | "ALLOW") => 1,
        Some("FAILURE" | "DENY") => 2,
        None | Some("UNKNOWN") => 0,
        Some(_) => 99,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_prefix_and_unknown_types() {
        assert_eq!(kind_of("user.session.start").class_uid, AUTHENTICATION);
        assert_eq!(kind_of("user.lifecycle.suspend").subject, Subject::TargetUser);
        assert_eq!(kind_of("security.threat.detected").subject, Subject::SourceIp);
        assert_eq!(kind_of("user.account.something_new").category, Category::Account);
        assert_eq!(kind_of("brand.new.thing").class_uid, BASE_EVENT);
        assert_eq!(activity_name(ACCOUNT_CHANGE, 9), "Lock");
        assert_eq!(category_uid(DETECTION_FINDING), 2);
        assert_eq!(status_id(Some("DENY")), 2);
        assert_eq!(status_id(Some("CHALLENGE")), 99);
    }
}
