//! `oauth_admin_scope`: an app holding Okta admin scopes (`okta.users.manage`, …).
//! - A token granted by **client credentials** carries them with no user behind it: org-wide
//!   admin power in a secret or key. A service app does this every hour, so the alert is
//!   raised the first time an app gets a given set of admin scopes from an address, and
//!   again only after `RELEARN_MS` without it: the same secret used from an address new to
//!   the app is news.
//! - An admin **consenting** such a scope to an app (`app.oauth2.admin.consent.grant`) is
//!   rare and always alerted.
//!
//! High when a scope takes over accounts or roles (users, factors, roles, groups, apps,
//! policies, IdPs, …: see `rules::oauth`), medium for other `okta.*.manage` scopes.

use std::collections::BTreeMap;

use idgw_schemas::{Detection, SemanticEvent, Severity};
use serde::{Deserialize, Serialize};

use super::EventDetector;
use crate::detect::alerting::Finding;
use crate::detect::observation::hash;
use crate::detect::rules::oauth::admin_scopes;
use crate::detect::rules::{actor_of, ip_of, name_of, on_actor, on_user, target};

/// An app's admin-scope set is news again after this long without it (7 days).
const RELEARN_MS: i64 = 7 * 24 * 3_600_000;
/// `(app, scope set)` pairs remembered at most (the oldest forgotten first).
const MAX_PAIRS: usize = 10_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    /// Hash of `(client, scope set)` → last time seen (ms).
    seen: BTreeMap<u64, i64>,
}

impl State {
    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// The detector.
#[derive(Debug, Default)]
pub struct OauthAdminScope {
    state: State,
}

fn is_token_grant(event_type: &str) -> bool {
    event_type.starts_with("app.oauth2.token.grant") || event_type.starts_with("app.oauth2.as.token.grant")
}

impl OauthAdminScope {
    fn consent(ev: &SemanticEvent<'_>, out: &mut Vec<Finding>) {
        // The scope is in `grantedScopes` when present, else named by the targets.
        let mut list: Vec<String> = ev.oauth.granted().map(str::to_owned).collect();
        for t in &ev.targets {
            list.extend(
                [&t.display_name, &t.login]
                    .iter()
                    .filter_map(|v| v.as_deref())
                    .map(str::to_owned),
            );
        }
        let joined = list.join(" ");
        let scopes = admin_scopes(Some(&joined));
        if scopes.is_empty() {
            return;
        }
        let high = scopes.iter().any(|(_, h)| *h);
        let mut names: Vec<&str> = scopes.iter().map(|(s, _)| *s).collect();
        names.sort_unstable();
        names.dedup();
        let app = ev
            .targets
            .iter()
            .find(|t| matches!(t.kind.as_deref(), Some("AppInstance" | "PublicClientApp" | "Client")))
            .or(target(ev, "AppInstance"));
        let mut f = on_actor(
            ev,
            Detection::OauthAdminScope,
            if high { Severity::High } else { Severity::Medium },
            0.8,
        );
        f.summary = format!(
            "{} granted the Okta admin scope{} {} to {}: the app can now call the admin API with them.",
            actor_of(ev),
            if names.len() > 1 { "s" } else { "" },
            names.join(", "),
            name_of(app).unwrap_or("an app")
        );
        f.evidence.insert("scopes".into(), serde_json::json!(names));
        f.evidence.insert("consent".into(), true.into());
        f.mitre = &["T1098.003", "T1550.001"];
        out.push(f);
    }
}

impl EventDetector for OauthAdminScope {
    fn name(&self) -> &'static str {
        "oauth_admin_scope"
    }

    fn on_event(&mut self, ev: &SemanticEvent<'_>, now: i64, out: &mut Vec<Finding>) {
        if ev
            .outcome
            .result
            .as_deref()
            .is_some_and(|r| r != "SUCCESS" && r != "ALLOW")
        {
            return;
        }
        if ev.event_type == "app.oauth2.admin.consent.grant" {
            return Self::consent(ev, out);
        }
        if !is_token_grant(&ev.event_type) || ev.oauth.grant_type.as_deref() != Some("client_credentials") {
            return;
        }
        let scopes = admin_scopes(ev.oauth.granted_scopes.as_deref());
        if scopes.is_empty() {
            return;
        }
        let mut names: Vec<&str> = scopes.iter().map(|(s, _)| *s).collect();
        names.sort_unstable();
        names.dedup();
        let client = ev
            .actor
            .as_ref()
            .and_then(|a| a.id.as_deref().or(a.login.as_deref()))
            .or(ev.client.client_id.as_deref())
            .unwrap_or("unknown");
        // Per source address too: the app's own service calls from a few fixed egress
        // addresses; the same secret used from an address new to the app is news (a stolen
        // secret). A service behind rotating addresses re-alerts per address: give it a
        // fixed egress or suppress it.
        let network = ev.client.ip.as_deref().unwrap_or_default();
        let key = hash(&format!("{client}|{}|{network}", names.join(" ")));
        let t = ev.event_time.timestamp_millis();
        let fresh = self.state.seen.get(&key).is_none_or(|last| t - last > RELEARN_MS);
        let last = self.state.seen.entry(key).or_insert(t);
        *last = (*last).max(t);
        if self.state.seen.len() > MAX_PAIRS {
            let horizon = now - RELEARN_MS;
            self.state.seen.retain(|_, last| *last >= horizon);
            while self.state.seen.len() > MAX_PAIRS {
                let oldest = self.state.seen.iter().min_by_key(|(k, t)| (**t, **k)).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.state.seen.remove(&k);
                }
            }
        }
        if !fresh {
            return;
        }
        let high = scopes.iter().any(|(_, h)| *h);
        let app = ev
            .actor
            .as_ref()
            .and_then(|a| a.display_name.as_deref().or(a.login.as_deref()))
            .unwrap_or(client);
        let mut f = on_user(
            ev,
            Detection::OauthAdminScope,
            if high { Severity::High } else { Severity::Medium },
            0.8,
        );
        f.summary = format!(
            "The service app {app} obtained a client-credentials token with Okta admin scope{} {} from {} (first time from this address in 7 days): org-wide admin API access with no user behind it.",
            if names.len() > 1 { "s" } else { "" },
            names.join(", "),
            ip_of(ev)
        );
        f.evidence.insert("client".into(), client.into());
        f.evidence.insert("app".into(), app.into());
        f.evidence.insert("scopes".into(), serde_json::json!(names));
        f.evidence.insert("grant_type".into(), "client_credentials".into());
        f.mitre = &["T1550.001", "T1098"];
        out.push(f);
    }

    crate::keyed_state!(state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::test_events::{ADMIN, ALICE, P, ev};
    use crate::detect::stateful::testing::run;

    const SERVICE_APP: P = (
        "0oasvc0000000000001",
        "PublicClientApp",
        "0oasvc0000000000001",
        "Provisioning Bot",
    );
    const SCOPE: P = (
        "scp0000000000000001",
        "OAuth2Scope",
        "okta.users.manage",
        "okta.users.manage",
    );
    const READ_SCOPE: P = ("scp0000000000000002", "OAuth2Scope", "okta.logs.read", "okta.logs.read");

    fn make() -> Box<dyn EventDetector> {
        Box::new(OauthAdminScope::default())
    }

    fn grant(grant_type: &str, scopes: &str, minute: i64) -> crate::detect::rules::test_events::E {
        ev("app.oauth2.as.token.grant.access_token")
            .actor(SERVICE_APP)
            .no_client()
            .ip("34.201.10.8")
            .debug("grantType", grant_type)
            .debug("grantedScopes", scopes)
            .debug("requestedScopes", scopes)
            .debug("clientAuthType", "private_key_jwt")
            .at(minute)
    }

    #[test]
    fn a_client_credentials_token_with_admin_scopes_alerts_once_per_app_and_set() {
        let events = [
            grant("client_credentials", "okta.users.manage, okta.groups.read", 0),
            grant("client_credentials", "okta.users.manage, okta.groups.read", 60),
            grant("client_credentials", "okta.logStreams.manage", 61),
            // Look-alikes: a user's own authorization-code token, read scopes, `.self` scopes.
            grant("authorization_code", "okta.users.manage openid", 62),
            grant("client_credentials", "okta.logs.read okta.users.read", 63),
            grant("client_credentials", "okta.users.manage.self", 64),
            grant("client_credentials", "okta.users.manage, okta.groups.read", 65).result("FAILURE"),
        ];
        let found = run(make, &events);
        let got: Vec<_> = found.iter().map(|f| f.severity).collect();
        assert_eq!(got, [Severity::High, Severity::Medium], "{found:?}");
        assert!(found[0].summary.contains("Provisioning Bot"), "{}", found[0].summary);
        // A week later the same set is news again.
        let later = [
            grant("client_credentials", "okta.users.manage", 0),
            grant("client_credentials", "okta.users.manage", 8 * 24 * 60),
        ];
        assert_eq!(run(make, &later).len(), 2);
        // The same secret used from an address new to the app, an hour later: news.
        let stolen = [
            grant("client_credentials", "okta.users.manage", 0),
            grant("client_credentials", "okta.users.manage", 60).ip("203.0.113.66"),
            grant("client_credentials", "okta.users.manage", 120),
        ];
        assert_eq!(run(make, &stolen).len(), 2);
    }

    #[test]
    fn an_admin_consenting_an_admin_scope_is_alerted_on_the_admin() {
        let events = [
            ev("app.oauth2.admin.consent.grant")
                .actor(ADMIN)
                .target(SCOPE)
                .target(SERVICE_APP),
            ev("app.oauth2.admin.consent.grant")
                .actor(ADMIN)
                .target(READ_SCOPE)
                .target(SERVICE_APP)
                .at(1),
            ev("app.oauth2.as.consent.grant").actor(ALICE).target(READ_SCOPE).at(2),
        ];
        let found = run(make, &events);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::High);
        assert_eq!(found[0].user_login.as_deref(), Some("it.admin@example.com"));
    }
}
