//! `Alert`: one detection on its evidence (design.md, "Contracts").

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The detection vocabulary. A new detection adds a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Detection {
    /// Consecutive sign-ins too far apart for the time between them.
    ImpossibleTravel,
    /// Many failed sign-ins against one user.
    BruteForce,
    /// One source, many users, few attempts each.
    PasswordSpray,
    /// Repeated push denials or unanswered pushes.
    MfaFatigue,
    /// One session or device token from a new network and client.
    SessionHijack,
    /// Okta locked the account.
    AccountLockout,
    /// An admin role was granted.
    AdminPrivilegeGrant,
    /// An API token was created.
    ApiTokenCreated,
    /// Okta ThreatInsight flagged the source.
    ThreatInsight,
    /// MFA factors were removed or reset.
    MfaTamper,
    /// FastPass declined a phishing attempt.
    FastpassPhishing,
    /// The user reported "this wasn't me".
    SuspiciousActivityReport,
    /// Okta ITP raised the user's risk.
    OktaRiskElevated,
    /// Sign-in through an anonymizing proxy or Tor.
    AnonymizingProxy,
    /// Okta support impersonated a user.
    SupportImpersonation,
    /// An identity provider was created, changed or removed.
    IdpLifecycle,
    /// Sign-in unlike the user's own history.
    AnomalousSignin,
    /// An API token was revoked (informational).
    ApiTokenRevoked,
    /// A service app obtained, or was consented, Okta admin scopes.
    OauthAdminScope,
    /// Okta saw a rotated refresh token used again.
    RefreshTokenReuse,
    /// Repeated attempts to open apps the user is not assigned.
    UnauthorizedAppAccess,
    /// A sign-in through an identity provider that is new or recently created.
    IdpSignin,
    /// A user revealed another user's app password.
    AppPasswordRevealed,
    /// An app was set to receive users' cleartext passwords.
    ScimPasswordPush,
    /// Okta rate limits violated, aggregated per key and window.
    RateLimitViolation,
    /// Okta support reset a password or MFA factor.
    SupportCredentialReset,
    /// Admin console opened from a new device, IP or place.
    AdminConsoleNewBehavior,
    /// A sign-in from a configured sanctioned country.
    SanctionedCountrySignin,
    /// A sign-on, MFA or password policy, rule or network zone changed.
    PolicyWeakened,
    /// A user added to a group that holds an admin role.
    GroupAdminMembership,
    /// A factor enrolled soon after someone else reset the user's MFA.
    EnrollAfterMfaReset,
    /// Okta ThreatInsight declared an org-level attack.
    OrgUnderAttack,
}

impl Detection {
    /// Every detection, in catalog order.
    pub const ALL: [Detection; 32] = [
        Detection::ImpossibleTravel,
        Detection::BruteForce,
        Detection::PasswordSpray,
        Detection::MfaFatigue,
        Detection::SessionHijack,
        Detection::AccountLockout,
        Detection::AdminPrivilegeGrant,
        Detection::ApiTokenCreated,
        Detection::ThreatInsight,
        Detection::MfaTamper,
        Detection::FastpassPhishing,
        Detection::SuspiciousActivityReport,
        Detection::OktaRiskElevated,
        Detection::AnonymizingProxy,
        Detection::SupportImpersonation,
        Detection::IdpLifecycle,
        Detection::AnomalousSignin,
        Detection::ApiTokenRevoked,
        Detection::OauthAdminScope,
        Detection::RefreshTokenReuse,
        Detection::UnauthorizedAppAccess,
        Detection::IdpSignin,
        Detection::AppPasswordRevealed,
        Detection::ScimPasswordPush,
        Detection::RateLimitViolation,
        Detection::SupportCredentialReset,
        Detection::AdminConsoleNewBehavior,
        Detection::SanctionedCountrySignin,
        Detection::PolicyWeakened,
        Detection::GroupAdminMembership,
        Detection::EnrollAfterMfaReset,
        Detection::OrgUnderAttack,
    ];

    /// The snake_case name used in alerts and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Detection::ImpossibleTravel => "impossible_travel",
            Detection::BruteForce => "brute_force",
            Detection::PasswordSpray => "password_spray",
            Detection::MfaFatigue => "mfa_fatigue",
            Detection::SessionHijack => "session_hijack",
            Detection::AccountLockout => "account_lockout",
            Detection::AdminPrivilegeGrant => "admin_privilege_grant",
            Detection::ApiTokenCreated => "api_token_created",
            Detection::ThreatInsight => "threat_insight",
            Detection::MfaTamper => "mfa_tamper",
            Detection::FastpassPhishing => "fastpass_phishing",
            Detection::SuspiciousActivityReport => "suspicious_activity_report",
            Detection::OktaRiskElevated => "okta_risk_elevated",
            Detection::AnonymizingProxy => "anonymizing_proxy",
            Detection::SupportImpersonation => "support_impersonation",
            Detection::IdpLifecycle => "idp_lifecycle",
            Detection::AnomalousSignin => "anomalous_signin",
            Detection::ApiTokenRevoked => "api_token_revoked",
            Detection::OauthAdminScope => "oauth_admin_scope",
            Detection::RefreshTokenReuse => "refresh_token_reuse",
            Detection::UnauthorizedAppAccess => "unauthorized_app_access",
            Detection::IdpSignin => "idp_signin",
            Detection::AppPasswordRevealed => "app_password_revealed",
            Detection::ScimPasswordPush => "scim_password_push",
            Detection::RateLimitViolation => "rate_limit_violation",
            Detection::SupportCredentialReset => "support_credential_reset",
            Detection::AdminConsoleNewBehavior => "admin_console_new_behavior",
            Detection::SanctionedCountrySignin => "sanctioned_country_signin",
            Detection::PolicyWeakened => "policy_weakened",
            Detection::GroupAdminMembership => "group_admin_membership",
            Detection::EnrollAfterMfaReset => "enroll_after_mfa_reset",
            Detection::OrgUnderAttack => "org_under_attack",
        }
    }
}

impl fmt::Display for Detection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Alert severity, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// Parses the lower-case name.
    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// Deterministic: see [`Alert::deterministic_id`].
    pub alert_id: String,
    /// Which detection fired.
    pub detection: Detection,
    /// How bad.
    pub severity: Severity,
    /// 0–100.
    pub risk_score: f64,
    /// 0–1: how sure the detector is.
    pub confidence: f64,
    /// Okta user id, when the alert concerns a user.
    pub user_id: Option<String>,
    /// The user's login.
    pub user_login: Option<String>,
    /// The source IP of the evidence.
    pub src_ip: Option<String>,
    /// Time of the first evidence event.
    pub first_seen: DateTime<Utc>,
    /// Time of the last evidence event.
    pub last_seen: DateTime<Utc>,
    /// The stream's event-time clock (the latest event time seen) when the alert was
    /// raised: `detected_at - last_seen` is the detection delay in event time.
    pub detected_at: DateTime<Utc>,
    /// The evidence events' uuids.
    pub event_uuids: Vec<String>,
    /// One human sentence.
    pub summary: String,
    /// Structured evidence: distances, speeds, counts, locations.
    pub evidence: serde_json::Map<String, serde_json::Value>,
    /// MITRE ATT&CK technique ids.
    pub mitre: Vec<String>,
}

impl Alert {
    /// The alert id for a detection on its evidence: a SHA-256 name hash of the
    /// detection, the entity and the sorted evidence uuids, so the same detection on the
    /// same evidence always gets the same id and a replay never duplicates an alert.
    pub fn deterministic_id(detection: Detection, entity: &str, evidence: &[String]) -> String {
        let mut sorted: Vec<&str> = evidence.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        let mut name = String::with_capacity(64 + sorted.len() * 37);
        name.push_str(detection.as_str());
        name.push('\n');
        name.push_str(entity);
        for uuid in sorted {
            name.push('\n');
            name.push_str(uuid);
        }
        format!("alt-{}", crate::ids::name_hash_hex(&name))
    }
}
