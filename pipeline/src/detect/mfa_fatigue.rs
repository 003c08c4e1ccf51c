//! `mfa_fatigue`: push denials or unanswered pushes piling up for one user within a window
//! (high); an approval that follows them is the attack succeeding (critical).
//!
//! A refusal is a denied push (one denial logged twice under one request counts once), a
//! wrong number-challenge answer, an `UNANSWERED` or `ABANDONED` push, or a push never
//! answered at all: a new push sent a minute or more after the previous one while that one
//! got no answer (some orgs log nothing for a push that times out; a quicker resend is the
//! user asking again). An explicit answer arriving later for that push takes the implied
//! refusal's place rather than counting twice. Elastic's sequence "denials, then SSO" is
//! covered too: a sign-in or SSO after two denials within the window, from an address a
//! denied push was requested from, is the attack succeeding.

use compact_str::CompactString;
use std::collections::VecDeque;

use idgw_schemas::{Detection, Severity};
use serde::{Deserialize, Serialize};

use super::alerting::Finding;
use super::config::DetectConfig;
use super::observation::{Kind, Obs};
use super::windowed::{Emit, FastMap, WindowedDetector, hourly};
use crate::evidence;

/// Refusals remembered per user.
const MAX_REFUSALS: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Refusal {
    time: i64,
    uuid: CompactString,
    unanswered: bool,
    ip: Option<CompactString>,
    /// Implied by a later push while this one had no answer.
    #[serde(default)]
    implied: bool,
    /// The request and event type that logged it (one denial can be logged twice).
    #[serde(default)]
    attempt: Option<u64>,
    #[serde(default)]
    event_type: u64,
}

/// A push resent sooner than this after the last one is the user asking again (a slow
/// phone), not a push left unanswered.
const RESEND_MS: i64 = 60_000;

/// The last push sent, while no answer to it has been seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    time: i64,
    uuid: CompactString,
    ip: Option<CompactString>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserPushes {
    refusals: VecDeque<Refusal>,
    /// Pushes sent within the window, since the first refusal.
    sent: VecDeque<i64>,
    episode_last: Option<i64>,
    approval_alerted: bool,
    #[serde(default)]
    pending: Option<Pending>,
}

/// The detector.
#[derive(Debug)]
pub struct MfaFatigue {
    threshold: usize,
    window_ms: i64,
    users: FastMap<CompactString, UserPushes>,
    swept: i64,
}

impl MfaFatigue {
    pub fn new(config: &DetectConfig) -> Self {
        MfaFatigue {
            threshold: config.mfa_fatigue_denials.max(2),
            window_ms: config.mfa_fatigue_window_s * 1000,
            users: FastMap::default(),
            swept: i64::MIN,
        }
    }

    fn finding(&self, obs: &Obs, state: &UserPushes, approval: bool) -> Finding {
        let signed_in = matches!(obs.kind, Kind::SignIn | Kind::Sso);
        let refusals = &state.refusals;
        let denied = refusals.iter().filter(|r| !r.unanswered).count();
        let unanswered = refusals.len() - denied;
        let mut uuids: Vec<String> = refusals.iter().map(|r| r.uuid.to_string()).collect();
        let login = obs.login.as_deref().unwrap_or("a user");
        let (severity, confidence, summary) = if approval {
            uuids.push(obs.uuid.to_string());
            (
                Severity::Critical,
                0.9,
                if signed_in {
                    format!(
                        "{login} signed in from {} after {denied} denied and {unanswered} unanswered pushes requested from there: MFA fatigue worked.",
                        obs.ip.as_deref().unwrap_or("?")
                    )
                } else {
                    format!(
                        "{login} approved a push after {denied} denied and {unanswered} unanswered ones: MFA fatigue worked."
                    )
                },
            )
        } else {
            (
                Severity::High,
                0.85,
                format!(
                    "{login} denied {denied} and ignored {unanswered} Okta Verify pushes within {} minutes.",
                    self.window_ms / 60_000
                ),
            )
        };
        Finding {
            detection: Detection::MfaFatigue,
            severity,
            confidence,
            user_id: obs.user_id.as_deref().map(str::to_owned),
            user_login: obs.login.as_deref().map(str::to_owned),
            src_ip: refusals
                .back()
                .and_then(|r| r.ip.as_deref())
                .or(obs.ip.as_deref())
                .map(str::to_owned),
            first_seen: refusals.front().map_or(obs.time, |r| r.time),
            last_seen: obs.time,
            event_uuids: uuids,
            summary,
            evidence: evidence! {
                "denied" => denied,
                "unanswered" => unanswered,
                "pushes_sent" => state.sent.len(),
                "approved_after" => approval,
                "window_minutes" => self.window_ms / 60_000,
            },
            mitre: &["T1621"],
        }
    }
}

impl MfaFatigue {
    fn on_push_sent(&mut self, user: &str, obs: &Obs, out: &mut Emit) {
        let window = self.window_ms;
        let state = self.users.entry(user.into()).or_default();
        while state.sent.front().is_some_and(|&t| obs.time - t > window) {
            state.sent.pop_front();
        }
        state.sent.push_back(obs.time);
        if state.sent.len() > MAX_REFUSALS {
            state.sent.pop_front();
        }
        let unanswered = state
            .pending
            .take()
            .filter(|p| (RESEND_MS..=window).contains(&(obs.time - p.time)));
        state.pending = Some(Pending {
            time: obs.time,
            uuid: obs.uuid.clone(),
            ip: obs.ip.clone(),
        });
        if let Some(p) = unanswered {
            let refusal = Refusal {
                time: p.time,
                uuid: p.uuid,
                unanswered: true,
                ip: p.ip,
                implied: true,
                attempt: None,
                event_type: 0,
            };
            self.add_refusal(user, obs, refusal, out);
        }
    }

    fn on_refusal(&mut self, user: &str, obs: &Obs, out: &mut Emit) {
        let state = self.users.entry(user.into()).or_default();
        // One denial logged twice (`deny_push` and `auth_via_mfa` of one request).
        if state
            .refusals
            .iter()
            .any(|r| obs.same_attempt_as(r.attempt, r.event_type, r.time))
        {
            return;
        }
        let unanswered = obs.kind == Kind::PushUnanswered;
        // The answer to the pending push; with none pending, the late answer to a push
        // already counted as unanswered, which it replaces.
        if state.pending.take().is_none()
            && let Some(r) = state.refusals.iter_mut().rev().find(|r| r.implied)
        {
            r.implied = false;
            r.unanswered = unanswered;
            r.uuid = obs.uuid.clone();
            return;
        }
        let refusal = Refusal {
            time: obs.time,
            uuid: obs.uuid.clone(),
            unanswered,
            ip: obs.ip.clone(),
            implied: false,
            attempt: obs.attempt,
            event_type: obs.event_type,
        };
        self.add_refusal(user, obs, refusal, out);
    }

    /// Counts a refusal; the first time the window holds `threshold` of them, alerts.
    fn add_refusal(&mut self, user: &str, obs: &Obs, refusal: Refusal, out: &mut Emit) {
        let window = self.window_ms;
        let state = self.users.entry(user.into()).or_default();
        while state.refusals.front().is_some_and(|r| obs.time - r.time > window) {
            state.refusals.pop_front();
        }
        if state.episode_last.is_some_and(|t| obs.time - t > window) {
            state.episode_last = None;
            state.approval_alerted = false;
        }
        state.refusals.push_back(refusal);
        if state.refusals.len() > MAX_REFUSALS {
            state.refusals.pop_front();
        }
        if state.episode_last.is_some() {
            state.episode_last = Some(obs.time);
        } else if state.refusals.len() >= self.threshold {
            state.episode_last = Some(obs.time);
            out.findings.push(self.finding(obs, &self.users[user], false));
        }
    }

    /// An approved push, or a sign-in or SSO: the attack succeeding when refusals the user
    /// made precede it. A push approval needs two explicit refusals one of which a denial,
    /// or `threshold` explicit refusals (pushes only implied unanswered never make it
    /// critical: the phone may simply have been offline). A sign-in or SSO needs two
    /// denials and must come from an address a refused push was requested from, as
    /// Elastic's sequence rule does with the user.
    fn on_success(&mut self, user: &str, obs: &Obs, out: &mut Emit, push: bool) {
        let window = self.window_ms;
        let Some(state) = self.users.get(user) else {
            return;
        };
        let recent = state
            .refusals
            .iter()
            .filter(|r| obs.time - r.time <= window && !r.implied);
        let (refused, denied) = recent.fold((0, 0), |(n, d), r| (n + 1, d + usize::from(!r.unanswered)));
        let suspicious = if push {
            (refused >= 2 && denied >= 1) || refused >= self.threshold
        } else {
            denied >= 2
                && obs.ip.is_some()
                && state
                    .refusals
                    .iter()
                    .any(|r| !r.implied && !r.unanswered && r.ip == obs.ip)
        };
        if suspicious && !state.approval_alerted {
            out.findings.push(self.finding(obs, state, true));
        }
        let Some(state) = self.users.get_mut(user) else {
            return;
        };
        if suspicious {
            state.approval_alerted = true;
            state.episode_last.get_or_insert(obs.time);
        }
        // Any success answers the pending push (another factor was chosen, or it worked).
        state.pending = None;
        if push && state.refusals.is_empty() && state.sent.len() <= 1 {
            // An ordinary sign-in's push: nothing to remember.
            self.users.remove(user);
        }
    }
}

impl WindowedDetector for MfaFatigue {
    fn name(&self) -> &'static str {
        "mfa_fatigue"
    }

    fn on_event(&mut self, obs: &Obs, out: &mut Emit) {
        let Some(user) = obs.user_id.as_deref() else {
            return;
        };
        match obs.kind {
            Kind::PushSent => self.on_push_sent(user, obs, out),
            Kind::PushDenied | Kind::PushUnanswered => self.on_refusal(user, obs, out),
            Kind::PushApproved => self.on_success(user, obs, out, true),
            Kind::SignIn | Kind::Sso => self.on_success(user, obs, out, false),
            _ => {}
        }
    }

    fn on_watermark(&mut self, watermark: i64, _: &mut Emit) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            let window = self.window_ms;
            self.users.retain(|_, u| {
                let last = u
                    .refusals
                    .back()
                    .map(|r| r.time)
                    .max(u.sent.back().copied())
                    .max(u.pending.as_ref().map(|p| p.time));
                last.is_some_and(|t| now - t <= window)
            });
        }
    }

    crate::keyed_state!(users);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: Kind, second: i64, ip: &str) -> Obs {
        Obs {
            user_id: Some("00u1".into()),
            time: 1_700_000_000_000 + second * 1000,
            seq: second as u64,
            uuid: format!("{kind:?}-{second}").into(),
            ..Obs::for_test(kind, "ana@example.com", 0, ip)
        }
    }

    fn run(events: &[Obs]) -> Vec<Finding> {
        let mut d = MfaFatigue::new(&DetectConfig::default());
        let mut out = Emit::default();
        for e in events {
            d.on_event(e, &mut out);
        }
        out.findings
    }

    const ATTACKER: &str = "203.0.113.9";
    const HOME: &str = "198.51.100.7";

    #[test]
    fn pushes_never_answered_count_once_even_when_answered_late() {
        // Four pushes a minute or more apart, no answer logged for any: three were never
        // answered. The approval after them is not critical (the phone may have been off).
        let mut bombing: Vec<Obs> = (0..4).map(|i| ev(Kind::PushSent, i * 70, ATTACKER)).collect();
        bombing.push(ev(Kind::PushApproved, 300, ATTACKER));
        let f = run(&bombing);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].evidence["unanswered"], 3);
        // Resent within the minute: the user asking again, nothing implied.
        let resent: Vec<Obs> = (0..6).map(|i| ev(Kind::PushSent, i * 30, HOME)).collect();
        assert!(run(&resent).is_empty());
        // Two pushes whose UNANSWERED is logged after the next push went out: two
        // refusals, not three (the late answer takes the implied refusal's place).
        let late = [
            ev(Kind::PushSent, 0, ATTACKER),
            ev(Kind::PushSent, 20, ATTACKER),
            ev(Kind::PushUnanswered, 30, ATTACKER),
            ev(Kind::PushUnanswered, 40, ATTACKER),
        ];
        assert!(run(&late).is_empty());
        let mut third = late.to_vec();
        third.push(ev(Kind::PushSent, 60, ATTACKER));
        third.push(ev(Kind::PushUnanswered, 70, ATTACKER));
        assert_eq!(run(&third).len(), 1, "a third refused push");
    }

    #[test]
    fn a_slow_user_is_not_an_attack_but_denials_then_a_sign_in_are() {
        // The look-alike: the phone was slow, the user resent twice and approved.
        let slow = [
            ev(Kind::PushSent, 0, HOME),
            ev(Kind::PushSent, 40, HOME),
            ev(Kind::PushSent, 80, HOME),
            ev(Kind::PushApproved, 90, HOME),
        ];
        assert!(run(&slow).is_empty());
        // Elastic's sequence: two denials, then the attacker's SSO.
        let worked = [
            ev(Kind::PushSent, 0, ATTACKER),
            ev(Kind::PushDenied, 10, ATTACKER),
            ev(Kind::PushSent, 60, ATTACKER),
            ev(Kind::PushDenied, 70, ATTACKER),
            ev(Kind::Sso, 200, ATTACKER),
        ];
        let f = run(&worked);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(f[0].summary.contains("signed in from 203.0.113.9"), "{}", f[0].summary);
        // Denials, then the user's own SSO from home: not the attack working.
        let own = [
            ev(Kind::PushDenied, 10, ATTACKER),
            ev(Kind::PushDenied, 70, ATTACKER),
            ev(Kind::Sso, 200, HOME),
        ];
        assert!(run(&own).is_empty());
        // One denial logged twice (deny_push and auth_via_mfa of one request) is one.
        let twice = |second: i64, event_type: u64| Obs {
            attempt: Some(7),
            event_type,
            ..ev(Kind::PushDenied, second, ATTACKER)
        };
        let logged_twice = [twice(10, 1), twice(10, 2), ev(Kind::Sso, 200, ATTACKER)];
        assert!(run(&logged_twice).is_empty());
    }
}
