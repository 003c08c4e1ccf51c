//! Event detectors with state: like the single-event [`rules`](super::rules) they see every
//! event as it arrives (full event, no reorder buffer), but they remember a little across
//! events — groups that hold an admin role, MFA resets awaiting an enrollment, counts per
//! user or per rate-limit key. Their state is bounded (windows swept once an hour of
//! event time, caps on every map) and checkpointed with the engine, so a restore gives the
//! same alerts as an uninterrupted run.
//!
//! Arrival order is event order for Okta within seconds; each detector compares event times,
//! never arrival, so an event a little late is still judged by its own time.

use idgw_schemas::SemanticEvent;
use serde_json::value::RawValue;

use super::alerting::Finding;
use super::config::DetectConfig;
use super::windowed::Deferred;

mod enroll_after_reset;
mod group_admin;
mod idp_signin;
mod oauth_scopes;
mod org_attack;
mod rate_limit;
mod unauth_app_access;

/// A stateful event detector.
pub trait EventDetector: Send {
    /// A stable name (its checkpoint key).
    fn name(&self) -> &'static str;
    /// One event, in arrival order; `now` is the stream's clock (the latest event time, ms).
    fn on_event(&mut self, ev: &SemanticEvent<'_>, now: i64, out: &mut Vec<Finding>);
    /// A copy of the state, to serialize later.
    fn snapshot(&self) -> Deferred;
    /// Replaces the state with a checkpoint's.
    fn restore(&mut self, state: &RawValue) -> Result<(), serde_json::Error>;
    /// Keys held, for metrics and sizing.
    fn keys(&self) -> usize;
}

/// Every stateful event detector, one line each.
pub fn event_detectors(config: &DetectConfig) -> Vec<Box<dyn EventDetector>> {
    vec![
        Box::new(oauth_scopes::OauthAdminScope::default()),
        Box::new(group_admin::GroupAdminMembership::new(config)),
        Box::new(enroll_after_reset::EnrollAfterReset::new(config)),
        Box::new(unauth_app_access::UnauthorizedAppAccess::new(config)),
        Box::new(rate_limit::RateLimit::new(config)),
        Box::new(idp_signin::IdpSignin::default()),
        Box::new(org_attack::OrgUnderAttack::default()),
    ]
}

/// The subject user's key: id, else login.
fn user_key(ev: &SemanticEvent<'_>) -> Option<String> {
    let u = ev.subject_user.as_ref()?;
    u.id.as_deref().or(u.login.as_deref()).map(str::to_owned)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::detect::rules::test_events::E;

    /// Runs `events` through `d` (and a copy restored from its checkpoint half-way), and
    /// returns the findings, checking both runs agree.
    pub fn run(make: impl Fn() -> Box<dyn EventDetector>, events: &[E]) -> Vec<Finding> {
        let evs: Vec<_> = events.iter().map(E::event).collect();
        let go = |cut: Option<usize>| {
            let mut d = make();
            let mut out = Vec::new();
            let mut now = i64::MIN;
            for (i, ev) in evs.iter().enumerate() {
                if cut == Some(i) {
                    let state = d.snapshot()().unwrap();
                    d = make();
                    d.restore(&state).unwrap();
                }
                now = now.max(ev.event_time.timestamp_millis());
                d.on_event(ev, now, &mut out);
            }
            out
        };
        let straight = go(None);
        let resumed = go(Some(evs.len() / 2));
        let key = |f: &Finding| (f.detection, f.severity, f.event_uuids.clone(), f.summary.clone());
        assert_eq!(
            straight.iter().map(key).collect::<Vec<_>>(),
            resumed.iter().map(key).collect::<Vec<_>>(),
            "a restore changed the findings"
        );
        straight
    }
}
