//! `idp_signin`: sign-ins through an external identity provider
//! (`user.authentication.auth_via_IDP`). In a federated tenant these are every sign-in, so
//! only the unusual ones alert: through an IdP created or activated within the last 7 days
//! (an attacker's IdP is used right after it is added; high, once per user), and the first
//! sign-in through an IdP this engine has not seen before (low).

use std::collections::BTreeMap;

use idgw_schemas::{Detection, SemanticEvent, Severity};
use serde::{Deserialize, Serialize};

use super::{EventDetector, user_key};
use crate::detect::alerting::Finding;
use crate::detect::observation::hash;
use crate::detect::rules::{ip_of, login_of, name_of, on_user, owned, succeeded, target};
use crate::detect::windowed::CappedSet;

/// How long an IdP counts as new after its creation or activation (7 days).
const RECENT_MS: i64 = 7 * 24 * 3_600_000;
/// IdPs remembered at most.
const MAX_IDPS: usize = 1024;
/// Users remembered per recent IdP (each alerted once).
const MAX_USERS: usize = 256;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Idp {
    /// Created or activated at (ms).
    added: Option<i64>,
    name: Option<String>,
    signed_in: bool,
    users: CappedSet,
    last: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    idps: BTreeMap<String, Idp>,
}

impl State {
    fn len(&self) -> usize {
        self.idps.len()
    }
}

/// The detector.
#[derive(Debug, Default)]
pub struct IdpSignin {
    state: State,
}

impl EventDetector for IdpSignin {
    fn name(&self) -> &'static str {
        "idp_signin"
    }

    fn on_event(&mut self, ev: &SemanticEvent<'_>, _now: i64, out: &mut Vec<Finding>) {
        if !succeeded(ev) {
            return;
        }
        let t = ev.event_time.timestamp_millis();
        let idp = target(ev, "IdentityProvider");
        let id = idp
            .and_then(|p| p.id.as_deref().or(p.display_name.as_deref()))
            .or(ev.auth.credential_provider.as_deref());
        let idps = &mut self.state.idps;
        match &*ev.event_type {
            "system.idp.lifecycle.create" | "system.idp.lifecycle.activate" => {
                let Some(id) = id else {
                    return;
                };
                let e = idps.entry(id.to_owned()).or_default();
                e.added = Some(t);
                e.name = idp.and_then(|p| owned(&p.display_name)).or(e.name.take());
                e.last = t;
            }
            "system.idp.lifecycle.delete" => {
                if let Some(id) = id {
                    idps.remove(id);
                }
            }
            "user.authentication.auth_via_IDP" => {
                let Some(user) = user_key(ev) else {
                    return;
                };
                let id = id.unwrap_or("unknown");
                let e = idps.entry(id.to_owned()).or_default();
                e.last = t;
                if e.name.is_none() {
                    e.name = name_of(idp).map(str::to_owned);
                }
                let first = !e.signed_in;
                e.signed_in = true;
                let recent = e.added.filter(|a| (0..=RECENT_MS).contains(&(t - a)));
                let new_user = recent.is_some() && e.users.insert(hash(&user), MAX_USERS);
                let name = e.name.clone().unwrap_or_else(|| id.to_owned());
                let finding = if let Some(added) = recent.filter(|_| new_user) {
                    let mut f = on_user(ev, Detection::IdpSignin, Severity::High, 0.75);
                    let minutes = (t - added) / 60_000;
                    let ago = if minutes < 120 {
                        format!("{minutes} minutes")
                    } else {
                        format!("{} hours", minutes / 60)
                    };
                    f.summary = format!(
                        "{} signed in through the identity provider {name}, added {ago} ago, from {}.",
                        login_of(ev),
                        ip_of(ev)
                    );
                    f.evidence.insert("idp_added_minutes_ago".into(), minutes.into());
                    Some(f)
                } else if first {
                    let mut f = on_user(ev, Detection::IdpSignin, Severity::Low, 0.5);
                    f.summary = format!(
                        "First sign-in seen through the identity provider {name}: {} from {}.",
                        login_of(ev),
                        ip_of(ev)
                    );
                    Some(f)
                } else {
                    None
                };
                if let Some(mut f) = finding {
                    f.evidence.insert("idp".into(), name.into());
                    f.evidence.insert("idp_id".into(), id.into());
                    f.mitre = &["T1199", "T1484.002"];
                    out.push(f);
                }
            }
            _ => return,
        }
        while idps.len() > MAX_IDPS {
            let oldest = idps.iter().min_by_key(|(k, e)| (e.last, *k)).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                idps.remove(&k);
            }
        }
    }

    crate::keyed_state!(state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::test_events::{ADMIN, ALICE, BOB, P, ev};
    use crate::detect::stateful::testing::run;

    const ROGUE: P = (
        "0oaidp00000000000001",
        "IdentityProvider",
        "Partner SAML",
        "Partner SAML",
    );
    const CORP: P = (
        "0oaidp00000000000002",
        "IdentityProvider",
        "Corp Azure AD",
        "Corp Azure AD",
    );

    fn make() -> Box<dyn EventDetector> {
        Box::new(IdpSignin::default())
    }

    #[test]
    fn sign_ins_through_a_new_idp_are_high_once_per_user() {
        let events = [
            ev("system.idp.lifecycle.create").actor(ADMIN).target(ROGUE),
            ev("user.authentication.auth_via_IDP").actor(ALICE).target(ROGUE).at(30),
            ev("user.authentication.auth_via_IDP").actor(ALICE).target(ROGUE).at(40),
            ev("user.authentication.auth_via_IDP").actor(BOB).target(ROGUE).at(50),
        ];
        let found = run(make, &events);
        let sev: Vec<_> = found.iter().map(|f| f.severity).collect();
        assert_eq!(sev, [Severity::High, Severity::High], "{found:?}");
        assert!(found[0].summary.contains("Partner SAML"), "{}", found[0].summary);
    }

    #[test]
    fn the_everyday_corporate_idp_stays_quiet_after_its_first_sign_in() {
        // Look-alike: the long-standing IdP (no lifecycle in the stream): one low, then none.
        let events: Vec<_> = (0..5)
            .map(|i| {
                ev("user.authentication.auth_via_IDP")
                    .actor(if i % 2 == 0 { ALICE } else { BOB })
                    .target(CORP)
                    .at(i)
            })
            .collect();
        let found = run(make, &events);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Low);
    }
}
