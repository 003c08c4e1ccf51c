//! `org_under_attack`: Okta ThreatInsight declared the org under a credential-based attack
//! (`security.attack.start`; high) and, later, that it ended (`security.attack.end`; info,
//! closing it). A start while one is open is the same attack and raises nothing; an open
//! attack with no end for a day is considered over.

use idgw_schemas::{Detection, SemanticEvent, Severity};
use serde::{Deserialize, Serialize};

use super::EventDetector;
use crate::detect::alerting::Finding;
use crate::detect::rules::{on_user, owned};

/// An attack with no end after this long is over (24 h).
const STALE_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    /// The open attack: start time and event.
    open: Option<(i64, String)>,
}

impl State {
    fn len(&self) -> usize {
        usize::from(self.open.is_some())
    }
}

/// The detector.
#[derive(Debug, Default)]
pub struct OrgUnderAttack {
    state: State,
}

impl EventDetector for OrgUnderAttack {
    fn name(&self) -> &'static str {
        "org_under_attack"
    }

    fn on_event(&mut self, ev: &SemanticEvent<'_>, _now: i64, out: &mut Vec<Finding>) {
        let t = ev.event_time.timestamp_millis();
        let detail = owned(&ev.outcome.reason);
        match &*ev.event_type {
            "security.attack.start" => {
                if self.state.open.as_ref().is_some_and(|(s, _)| t - s <= STALE_MS) {
                    return;
                }
                self.state.open = Some((t, ev.event_id.to_string()));
                let mut f = on_user(ev, Detection::OrgUnderAttack, Severity::High, 0.85);
                f.summary = format!(
                    "Okta ThreatInsight reports the org under attack{}: expect password spraying or credential stuffing against many users.",
                    detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
                );
                f.mitre = &["T1110"];
                out.push(f);
            }
            "security.attack.end" => {
                let Some((start, uuid)) = self.state.open.take() else {
                    return;
                };
                let mut f = on_user(ev, Detection::OrgUnderAttack, Severity::Info, 0.85);
                f.first_seen = start;
                f.event_uuids = vec![uuid, ev.event_id.to_string()];
                f.summary = format!(
                    "Okta ThreatInsight reports the attack on the org over after {} minutes.",
                    (t - start) / 60_000
                );
                f.mitre = &["T1110"];
                out.push(f);
            }
            _ => {}
        }
    }

    crate::keyed_state!(state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::test_events::{OKTA_SYSTEM, ev};
    use crate::detect::stateful::testing::run;

    #[test]
    fn an_attack_opens_once_and_its_end_closes_it() {
        let events = [
            ev("security.attack.start").actor(OKTA_SYSTEM).no_client(),
            ev("security.attack.start").actor(OKTA_SYSTEM).no_client().at(10),
            ev("security.attack.end").actor(OKTA_SYSTEM).no_client().at(95),
            // Look-alike: an end with nothing open.
            ev("security.attack.end").actor(OKTA_SYSTEM).no_client().at(100),
        ];
        let found = run(|| Box::new(OrgUnderAttack::default()), &events);
        let sev: Vec<_> = found.iter().map(|f| f.severity).collect();
        assert_eq!(sev, [Severity::High, Severity::Info], "{found:?}");
        assert!(found[1].summary.contains("95 minutes"), "{}", found[1].summary);
    }
}
