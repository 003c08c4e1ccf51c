//! `group_admin_membership`: a user added to a group that holds an admin role gains that role
//! without any `privilege.grant` naming them. The groups are learned from the stream
//! (`group.privilege.grant` / `.revoke`) and taken from `admin_groups` in the configuration
//! (roles granted before the stream began).

use std::collections::BTreeMap;

use idgw_schemas::{Detection, SemanticEvent, Severity};
use serde::{Deserialize, Serialize};

use super::{EventDetector, user_key};
use crate::detect::alerting::Finding;
use crate::detect::config::DetectConfig;
use crate::detect::rules::{actor_of, login_of, on_user, owned, succeeded, target};

/// Admin groups remembered (the oldest grant is forgotten first).
const MAX_GROUPS: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AdminGroup {
    role: Option<String>,
    name: Option<String>,
    granted: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    groups: BTreeMap<String, AdminGroup>,
}

impl State {
    fn len(&self) -> usize {
        self.groups.len()
    }
}

/// The detector.
#[derive(Debug)]
pub struct GroupAdminMembership {
    configured: Vec<String>,
    state: State,
}

impl GroupAdminMembership {
    pub fn new(config: &DetectConfig) -> Self {
        GroupAdminMembership {
            configured: config.admin_groups.iter().map(|g| g.trim().to_lowercase()).collect(),
            state: State::default(),
        }
    }
}

impl EventDetector for GroupAdminMembership {
    fn name(&self) -> &'static str {
        "group_admin_membership"
    }

    fn on_event(&mut self, ev: &SemanticEvent<'_>, _now: i64, out: &mut Vec<Finding>) {
        if !succeeded(ev) {
            return;
        }
        let Some(group) = target(ev, "UserGroup") else {
            return;
        };
        let Some(id) = group.id.as_deref().or(group.display_name.as_deref()) else {
            return;
        };
        let t = ev.event_time.timestamp_millis();
        match &*ev.event_type {
            "group.privilege.grant" => {
                let groups = &mut self.state.groups;
                groups.insert(
                    id.to_owned(),
                    AdminGroup {
                        role: owned(&ev.privilege_granted),
                        name: owned(&group.display_name),
                        granted: t,
                    },
                );
                while groups.len() > MAX_GROUPS {
                    let oldest = groups
                        .iter()
                        .min_by_key(|(k, g)| (g.granted, *k))
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        groups.remove(&k);
                    }
                }
            }
            "group.privilege.revoke" => {
                self.state.groups.remove(id);
            }
            "group.user_membership.add" => {
                let learned = self.state.groups.get(id);
                let named = |v: Option<&str>| v.is_some_and(|v| self.configured.contains(&v.to_lowercase()));
                if learned.is_none() && !named(group.id.as_deref()) && !named(group.display_name.as_deref()) {
                    return;
                }
                if user_key(ev).is_none() {
                    return;
                }
                let role = learned.and_then(|g| g.role.clone());
                let name = group
                    .display_name
                    .as_deref()
                    .or(learned.and_then(|g| g.name.as_deref()))
                    .unwrap_or(id)
                    .to_owned();
                let super_admin = role
                    .as_deref()
                    .is_some_and(|r| r.to_ascii_lowercase().contains("super"));
                let mut f = on_user(ev, Detection::GroupAdminMembership, Severity::High, 0.85);
                f.summary = format!(
                    "{} added {} to {name}, a group holding {}: {} now has admin rights.",
                    actor_of(ev),
                    login_of(ev),
                    role.as_deref().unwrap_or("an admin role (configured)"),
                    login_of(ev)
                );
                f.evidence.insert("group_id".into(), id.into());
                f.evidence.insert("group".into(), name.into());
                f.evidence.insert("role".into(), role.into());
                f.evidence.insert("super_admin".into(), super_admin.into());
                f.evidence.insert("learned".into(), learned.is_some().into());
                f.mitre = &["T1098.003", "T1078.004"];
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
    use crate::detect::rules::test_events::{ADMIN, ALICE, BOB, P, ev};
    use crate::detect::stateful::testing::run;

    const HELPDESK: P = (
        "00g1helpdesk00000001",
        "UserGroup",
        "Help Desk Admins",
        "Help Desk Admins",
    );
    const SALES: P = ("00g1sales00000000002", "UserGroup", "Sales", "Sales");

    fn make(groups: &[&str]) -> impl Fn() -> Box<dyn EventDetector> {
        let config = DetectConfig {
            admin_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..DetectConfig::default()
        };
        move || Box::new(GroupAdminMembership::new(&config))
    }

    #[test]
    fn membership_of_a_group_granted_a_role_is_high_on_the_added_user() {
        let events = [
            ev("group.privilege.grant")
                .actor(ADMIN)
                .target(HELPDESK)
                .debug("privilegeGranted", "Help Desk administrator"),
            ev("group.user_membership.add")
                .actor(ADMIN)
                .target(BOB)
                .target(SALES)
                .at(5),
            ev("group.user_membership.add")
                .actor(ADMIN)
                .target(ALICE)
                .target(HELPDESK)
                .at(10),
            ev("group.privilege.revoke").actor(ADMIN).target(HELPDESK).at(20),
            ev("group.user_membership.add")
                .actor(ADMIN)
                .target(BOB)
                .target(HELPDESK)
                .at(30),
        ];
        let found = run(make(&[]), &events);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!(
            (f.detection, f.severity),
            (Detection::GroupAdminMembership, Severity::High)
        );
        assert_eq!(f.user_login.as_deref(), Some("alice@example.com"));
        assert!(f.summary.contains("Help Desk administrator"), "{}", f.summary);
    }

    #[test]
    fn a_configured_admin_group_needs_no_grant_in_the_stream() {
        let events = [
            ev("group.user_membership.add")
                .actor(ADMIN)
                .target(ALICE)
                .target(HELPDESK),
            // Look-alike: a failed add, and an ordinary group.
            ev("group.user_membership.add")
                .actor(ADMIN)
                .target(BOB)
                .target(HELPDESK)
                .result("FAILURE")
                .at(1),
            ev("group.user_membership.add")
                .actor(ADMIN)
                .target(BOB)
                .target(SALES)
                .at(2),
        ];
        assert_eq!(run(make(&["help desk admins"]), &events).len(), 1);
        assert!(run(make(&[]), &events).is_empty());
    }
}
