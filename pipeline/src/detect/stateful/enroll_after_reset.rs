//! `enroll_after_mfa_reset`: someone other than the user (a help desk, an admin, Okta
//! support) reset or removed the user's MFA, and a factor was enrolled for the user soon
//! after. That is how a help-desk social-engineering takeover ends (the caller enrols their
//! own phone); it is also how a user with a new phone is helped, so the plain sequence is
//! medium, and high when the enrollment comes with behaviours Okta flags as new for the user
//! (device, IP, place) or through an anonymiser.

use compact_str::CompactString;

use idgw_schemas::{Detection, SemanticEvent, Severity};
use serde::{Deserialize, Serialize};

use super::{EventDetector, user_key};
use crate::detect::alerting::Finding;
use crate::detect::config::DetectConfig;
use crate::detect::rules::{actor_of, ip_of, login_of, on_user, succeeded};
use crate::detect::windowed::{FastMap, hourly};

/// Pending resets remembered at most (the sweep keeps far fewer: one window's worth).
const MAX_PENDING: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reset {
    time: i64,
    uuid: CompactString,
    by: CompactString,
    event_type: CompactString,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    pending: FastMap<CompactString, Reset>,
    swept: i64,
}

impl State {
    fn len(&self) -> usize {
        self.pending.len()
    }
}

/// The detector.
#[derive(Debug)]
pub struct EnrollAfterReset {
    window_ms: i64,
    state: State,
}

impl EnrollAfterReset {
    pub fn new(config: &DetectConfig) -> Self {
        EnrollAfterReset {
            window_ms: config.enroll_after_reset_window_s.max(1) * 1000,
            state: State {
                swept: i64::MIN,
                ..State::default()
            },
        }
    }
}

impl EventDetector for EnrollAfterReset {
    fn name(&self) -> &'static str {
        "enroll_after_mfa_reset"
    }

    fn on_event(&mut self, ev: &SemanticEvent<'_>, now: i64, out: &mut Vec<Finding>) {
        if let Some(start) = hourly(&mut self.state.swept, now) {
            let window = self.window_ms;
            self.state.pending.retain(|_, r| start - r.time <= window);
        }
        if !succeeded(ev) {
            return;
        }
        let Some(user) = user_key(ev) else {
            return;
        };
        let t = ev.event_time.timestamp_millis();
        match &*ev.event_type {
            "user.mfa.factor.reset_all" | "user.mfa.factor.deactivate" => {
                let subject = ev.subject_user.as_ref();
                let actor = ev.actor.as_ref();
                let same = |a: Option<&str>, b: Option<&str>| a.is_some() && a == b;
                let by_self = same(
                    actor.and_then(|a| a.id.as_deref()),
                    subject.and_then(|s| s.id.as_deref()),
                ) || same(
                    actor.and_then(|a| a.login.as_deref()),
                    subject.and_then(|s| s.login.as_deref()),
                );
                if by_self || self.state.pending.len() >= MAX_PENDING {
                    return;
                }
                self.state.pending.insert(
                    user.into(),
                    Reset {
                        time: t,
                        uuid: CompactString::from(&*ev.event_id),
                        by: actor_of(ev).into(),
                        event_type: CompactString::from(&*ev.event_type),
                    },
                );
            }
            "user.mfa.factor.activate" => {
                let Some(reset) = self.state.pending.get(user.as_str()) else {
                    return;
                };
                let after = t - reset.time;
                if !(0..=self.window_ms).contains(&after) {
                    return;
                }
                let new: Vec<&str> = ev
                    .okta_signals
                    .positive_behaviors()
                    .filter(|b| {
                        matches!(
                            *b,
                            "New Device" | "New IP" | "New Geo-Location" | "New Country" | "New City"
                        )
                    })
                    .collect();
                let suspicious = !new.is_empty() || ev.network.anonymizer;
                let severity = if suspicious { Severity::High } else { Severity::Medium };
                let mut f = on_user(ev, Detection::EnrollAfterMfaReset, severity, 0.8);
                f.first_seen = reset.time;
                f.event_uuids = vec![reset.uuid.to_string(), ev.event_id.to_string()];
                f.summary = format!(
                    "{} reset the MFA of {} ({}) and {} minutes later a factor was enrolled for them from {}{}.",
                    reset.by,
                    login_of(ev),
                    reset.event_type,
                    after / 60_000,
                    ip_of(ev),
                    if new.is_empty() {
                        String::new()
                    } else {
                        format!(", new to them: {}", new.join(", "))
                    }
                );
                f.evidence.insert("reset_by".into(), reset.by.as_str().into());
                f.evidence.insert("minutes_after_reset".into(), (after / 60_000).into());
                f.evidence.insert("new_behaviors".into(), serde_json::json!(new));
                f.mitre = &["T1556.006", "T1098.005"];
                out.push(f);
                self.state.pending.remove(user.as_str());
            }
            _ => {}
        }
    }

    crate::keyed_state!(state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::test_events::{ADMIN, ALICE, BOB, ev};
    use crate::detect::stateful::testing::run;

    fn make() -> Box<dyn EventDetector> {
        Box::new(EnrollAfterReset::new(&DetectConfig::default()))
    }

    #[test]
    fn an_enrollment_from_a_new_device_soon_after_a_help_desk_reset_is_high() {
        let events = [
            ev("user.mfa.factor.reset_all").actor(ADMIN).target(ALICE),
            ev("user.mfa.factor.activate")
                .actor(ALICE)
                .target(ALICE)
                .ip("203.0.113.66")
                .behavior("New Device", "POSITIVE")
                .behavior("New IP", "POSITIVE")
                .at(12),
        ];
        let found = run(make, &events);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].detection, found[0].severity),
            (Detection::EnrollAfterMfaReset, Severity::High)
        );
        assert_eq!(found[0].event_uuids.len(), 2);
        assert!(found[0].summary.contains("12 minutes later"), "{}", found[0].summary);
    }

    #[test]
    fn look_alikes_stay_below_high_or_quiet() {
        // The user with a new phone: same device history, reset by the help desk: medium.
        let plain = [
            ev("user.mfa.factor.deactivate").actor(ADMIN).target(BOB),
            ev("user.mfa.factor.activate").actor(BOB).target(BOB).at(5),
        ];
        let found = run(make, &plain);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Medium);
        // Their own reset, an enrollment after the window, and an enrollment with no reset.
        let quiet = [
            ev("user.mfa.factor.reset_all").actor(ALICE).target(ALICE),
            ev("user.mfa.factor.activate").actor(ALICE).target(ALICE).at(3),
            ev("user.mfa.factor.reset_all").actor(ADMIN).target(BOB).at(10),
            ev("user.mfa.factor.activate").actor(BOB).target(BOB).at(10 + 61),
            ev("user.mfa.factor.activate").actor(ADMIN).target(ADMIN).at(200),
        ];
        assert!(run(make, &quiet).is_empty());
    }
}
