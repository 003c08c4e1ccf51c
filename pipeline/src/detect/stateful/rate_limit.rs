//! `rate_limit_violation`: Okta refused requests over a rate limit (org-wide API limits,
//! per-operation limits such as SMS enrollment, per-client limits). Bursts come as hundreds
//! of events, so one alert is raised per event type and key (the user or app that hit the
//! limit, else the source IP) per `rate_limit_window_s`; the alert counts what it covers up
//! to the moment it is raised. Warnings (`…rate_limit.warning`, `…notification`) are not
//! violations and raise nothing.

use idgw_schemas::{Detection, SemanticEvent, Severity};
use serde::{Deserialize, Serialize};

use super::EventDetector;
use crate::detect::alerting::Finding;
use crate::detect::config::DetectConfig;
use crate::detect::rules::{actor_of, ip_of, on_user};
use crate::detect::windowed::{FastMap, hourly};

/// Keys remembered at most.
const MAX_KEYS: usize = 50_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Window {
    opened: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    keys: FastMap<String, Window>,
    swept: i64,
}

impl State {
    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The detector.
#[derive(Debug)]
pub struct RateLimit {
    window_ms: i64,
    state: State,
}

impl RateLimit {
    pub fn new(config: &DetectConfig) -> Self {
        RateLimit {
            window_ms: config.rate_limit_window_s.max(1) * 1000,
            state: State {
                swept: i64::MIN,
                ..State::default()
            },
        }
    }
}

/// True for the event types that report a limit violated.
pub fn is_violation(event_type: &str) -> bool {
    (event_type.contains("rate_limit") && event_type.ends_with(".violation"))
        || matches!(
            event_type,
            "core.concurrency.org.limit.violation" | "application.integration.rate_limit_exceeded"
        )
}

impl EventDetector for RateLimit {
    fn name(&self) -> &'static str {
        "rate_limit_violation"
    }

    fn on_event(&mut self, ev: &SemanticEvent<'_>, now: i64, out: &mut Vec<Finding>) {
        if let Some(start) = hourly(&mut self.state.swept, now) {
            let window = self.window_ms;
            self.state.keys.retain(|_, w| start - w.opened <= window);
        }
        if !is_violation(&ev.event_type) {
            return;
        }
        let actor = ev
            .actor
            .as_ref()
            .filter(|a| a.kind.as_deref() != Some("SystemPrincipal"))
            .and_then(|a| a.id.as_deref());
        let who = actor.or(ev.client.ip.as_deref()).unwrap_or("org");
        let key = format!("{}|{who}", ev.event_type);
        let t = ev.event_time.timestamp_millis();
        if let Some(w) = self.state.keys.get(&key)
            && (0..=self.window_ms).contains(&(t - w.opened))
        {
            return;
        }
        if self.state.keys.len() >= MAX_KEYS && !self.state.keys.contains_key(&key) {
            return;
        }
        self.state.keys.insert(key, Window { opened: t });
        let mut f = on_user(ev, Detection::RateLimitViolation, Severity::Medium, 0.7);
        if ev.actor.as_ref().and_then(|a| a.kind.as_deref()) == Some("User") && f.user_id.is_none() {
            let a = ev.actor.as_ref();
            f.user_id = a.and_then(|a| a.id.as_deref()).map(str::to_owned);
            f.user_login = a.and_then(|a| a.login.as_deref()).map(str::to_owned);
        }
        let detail = ev
            .outcome
            .reason
            .as_deref()
            .or(ev.display_message.as_deref())
            .unwrap_or("");
        f.summary = format!(
            "Okta rate limit violated ({}) by {} from {}{}{}; further violations of this limit by the same key within {} minutes are not alerted again.",
            ev.event_type,
            actor.map_or("an unknown caller", |_| actor_of(ev)),
            ip_of(ev),
            if detail.is_empty() { "" } else { ": " },
            detail,
            self.window_ms / 60_000
        );
        f.evidence.insert("key".into(), who.into());
        f.evidence
            .insert("window_minutes".into(), (self.window_ms / 60_000).into());
        f.mitre = &["T1499", "T1110"];
        out.push(f);
    }

    crate::keyed_state!(state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::test_events::{ALICE, BOB, P, ev};
    use crate::detect::stateful::testing::run;

    const SMS: P = ("SMS", "Factor Type", "SMS", "SMS");

    fn make() -> Box<dyn EventDetector> {
        Box::new(RateLimit::new(&DetectConfig::default()))
    }

    #[test]
    fn a_burst_is_one_alert_per_key_and_window() {
        let mut events = Vec::new();
        for i in 0..40 {
            events.push(
                ev("system.operation.rate_limit.violation")
                    .actor(ALICE)
                    .target(SMS)
                    .result("DENY")
                    .reason("Too many enrollment attempts for SMS factor")
                    .at(i),
            );
        }
        events.push(
            ev("system.operation.rate_limit.violation")
                .actor(BOB)
                .target(SMS)
                .result("DENY")
                .at(5),
        );
        // The next window opens a new alert.
        events.push(
            ev("system.operation.rate_limit.violation")
                .actor(ALICE)
                .target(SMS)
                .result("DENY")
                .at(70),
        );
        // Look-alike: warnings are not violations.
        events.push(ev("system.org.rate_limit.warning").actor(ALICE).at(80));
        let found = run(make, &events);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].user_login.as_deref(), Some("alice@example.com"));
        assert!(
            found[0].summary.contains("Too many enrollment attempts"),
            "{}",
            found[0].summary
        );
    }
}
