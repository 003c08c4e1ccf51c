//! `unauthorized_app_access`: a user trying again and again to open apps they are not
//! assigned (`app.generic.unauth_app_access_attempt`). One attempt is a stray click on an old
//! bookmark; `unauth_app_attempts` (5) within `unauth_app_window_s` (1 h) is someone walking
//! the app catalog with the user's session. One alert per user per window.

use std::collections::VecDeque;

use compact_str::CompactString;
use idgw_schemas::{Detection, SemanticEvent, Severity};
use serde::{Deserialize, Serialize};

use super::{EventDetector, user_key};
use crate::detect::alerting::Finding;
use crate::detect::config::DetectConfig;
use crate::detect::rules::{ip_of, login_of, name_of, on_user, target};
use crate::detect::windowed::{FastMap, hourly};

/// Attempts remembered per user.
const MAX_ATTEMPTS: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Attempts {
    times: VecDeque<(i64, CompactString, Option<CompactString>)>,
    /// No new alert before this time (ms).
    quiet_until: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    users: FastMap<CompactString, Attempts>,
    swept: i64,
}

impl State {
    fn len(&self) -> usize {
        self.users.len()
    }
}

/// The detector.
#[derive(Debug)]
pub struct UnauthorizedAppAccess {
    threshold: usize,
    window_ms: i64,
    state: State,
}

impl UnauthorizedAppAccess {
    pub fn new(config: &DetectConfig) -> Self {
        UnauthorizedAppAccess {
            threshold: config.unauth_app_attempts.clamp(1, MAX_ATTEMPTS),
            window_ms: config.unauth_app_window_s.max(1) * 1000,
            state: State {
                swept: i64::MIN,
                ..State::default()
            },
        }
    }
}

impl EventDetector for UnauthorizedAppAccess {
    fn name(&self) -> &'static str {
        "unauthorized_app_access"
    }

    fn on_event(&mut self, ev: &SemanticEvent<'_>, now: i64, out: &mut Vec<Finding>) {
        if let Some(start) = hourly(&mut self.state.swept, now) {
            let window = self.window_ms;
            self.state
                .users
                .retain(|_, a| a.times.back().is_some_and(|(t, ..)| start - t <= window) || a.quiet_until > start);
        }
        if ev.event_type != "app.generic.unauth_app_access_attempt" {
            return;
        }
        let Some(user) = user_key(ev) else {
            return;
        };
        let t = ev.event_time.timestamp_millis();
        let window = self.window_ms;
        let app = name_of(target(ev, "AppInstance")).map(CompactString::from);
        let a = self.state.users.entry(user.into()).or_default();
        a.times.push_back((t, CompactString::from(&*ev.event_id), app));
        a.times.make_contiguous().sort_by_key(|(t, ..)| *t);
        while a.times.front().is_some_and(|(first, ..)| t - first > window) || a.times.len() > MAX_ATTEMPTS {
            a.times.pop_front();
        }
        if a.times.len() < self.threshold || t < a.quiet_until {
            return;
        }
        a.quiet_until = t + window;
        let mut apps: Vec<&str> = a.times.iter().filter_map(|(_, _, app)| app.as_deref()).collect();
        apps.sort_unstable();
        apps.dedup();
        let mut f = on_user(ev, Detection::UnauthorizedAppAccess, Severity::Medium, 0.7);
        f.first_seen = a.times.front().map_or(t, |(first, ..)| *first);
        f.event_uuids = a.times.iter().map(|(_, u, _)| u.to_string()).collect();
        f.summary = format!(
            "{} tried {} times within {} minutes to open apps not assigned to them ({}), last from {}.",
            login_of(ev),
            a.times.len(),
            window / 60_000,
            apps.join(", "),
            ip_of(ev)
        );
        f.evidence.insert("attempts".into(), a.times.len().into());
        f.evidence.insert("apps".into(), serde_json::json!(apps));
        f.mitre = &["T1078", "T1087.004"];
        out.push(f);
    }

    crate::keyed_state!(state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::test_events::{ALICE, BOB, P, ev};
    use crate::detect::stateful::testing::run;

    const PAYROLL: P = ("0oapayroll0000000001", "AppInstance", "Payroll", "Payroll");

    fn make() -> Box<dyn EventDetector> {
        Box::new(UnauthorizedAppAccess::new(&DetectConfig::default()))
    }

    fn attempt(user: P, minute: i64) -> crate::detect::rules::test_events::E {
        ev("app.generic.unauth_app_access_attempt")
            .actor(user)
            .target(PAYROLL)
            .result("FAILURE")
            .at(minute)
    }

    #[test]
    fn five_attempts_within_the_hour_alert_once() {
        let events: Vec<_> = (0..9).map(|i| attempt(ALICE, i * 5)).collect();
        let found = run(make, &events);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Medium);
        assert_eq!(found[0].event_uuids.len(), 5);
        assert_eq!(found[0].user_login.as_deref(), Some("alice@example.com"));
    }

    #[test]
    fn stray_clicks_spread_over_the_day_do_not() {
        // Look-alike: four in an hour, and one every 20 minutes for a day is 3 per hour.
        let mut events: Vec<_> = (0..4).map(|i| attempt(BOB, i)).collect();
        events.extend((0..72).map(|i| attempt(ALICE, 100 + i * 21)));
        assert!(run(make, &events).is_empty());
    }
}
