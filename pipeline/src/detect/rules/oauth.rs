//! OAuth: refresh tokens used twice, and which Okta API scopes count as admin ones (the
//! `oauth_admin_scope` detector in `stateful/` uses them).

use idgw_schemas::semantic::split_scopes;
use idgw_schemas::{Detection, SemanticEvent, Severity};

use super::{RuleConfig, ip_of, on_user};
use crate::detect::alerting::Finding;

/// Okta management scopes that let their holder take over accounts or decide who is an
/// admin and how anyone signs in.
const HIGH_RISK_SCOPES: &[&str] = &[
    "okta.users.manage",
    "okta.factors.manage",
    "okta.authenticators.manage",
    "okta.roles.manage",
    "okta.groups.manage",
    "okta.apps.manage",
    "okta.policies.manage",
    "okta.idps.manage",
    "okta.authorizationServers.manage",
    "okta.apiTokens.manage",
    "okta.clients.manage",
    "okta.networkZones.manage",
];

/// The admin scopes in a scope list: every `okta.<resource>.manage` (not `….manage.self`,
/// which only touches the caller's own objects), high-risk ones first flagged by the bool.
pub fn admin_scopes(list: Option<&str>) -> Vec<(&str, bool)> {
    split_scopes(list)
        .filter(|s| s.starts_with("okta.") && s.ends_with(".manage"))
        .map(|s| (s, HIGH_RISK_SCOPES.iter().any(|h| h.eq_ignore_ascii_case(s))))
        .collect()
}

/// Okta detected a refresh token used after it was rotated: two holders of one token, one of
/// them a thief (Okta revokes the token family).
pub(super) fn refresh_token_reuse(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if !matches!(
        &*ev.event_type,
        "app.oauth2.as.token.detect_reuse" | "app.oauth2.token.detect_reuse"
    ) {
        return None;
    }
    let client = ev
        .actor
        .as_ref()
        .and_then(|a| a.display_name.as_deref().or(a.id.as_deref()))
        .unwrap_or("an OAuth client");
    let mut f = on_user(ev, Detection::RefreshTokenReuse, Severity::High, 0.85);
    if f.user_id.is_none() {
        // The actor is the client app: the user is the token's subject, when a target says so.
        if let Some(u) = ev.targets.iter().find(|t| t.kind.as_deref() == Some("User")) {
            f.user_id = u.id.as_deref().map(str::to_owned);
            f.user_login = u.login.as_deref().map(str::to_owned);
        }
    }
    f.summary = format!(
        "Okta saw a rotated refresh token of {client} used again from {}: the token was copied; Okta revoked its family.",
        ip_of(ev)
    );
    f.evidence.insert("client".into(), client.into());
    f.mitre = &["T1550.001", "T1528"];
    Some(f)
}
