//! `mfa_fatigue`: push denials or unanswered pushes piling up for one user within a window
//! (high); an approval that follows them is the attack succeeding (critical).

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
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserPushes {
    refusals: VecDeque<Refusal>,
    /// Pushes sent within the window, since the first refusal.
    sent: VecDeque<i64>,
    episode_last: Option<i64>,
    approval_alerted: bool,
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
                format!(
                    "{login} approved a push after {denied} denied and {unanswered} unanswered ones: MFA fatigue worked."
                ),
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

impl WindowedDetector for MfaFatigue {
    fn name(&self) -> &'static str {
        "mfa_fatigue"
    }

    fn on_event(&mut self, obs: &Obs, out: &mut Emit) {
        let Some(user) = obs.user_id.as_deref() else {
            return;
        };
        let window = self.window_ms;
        match obs.kind {
            Kind::PushSent => {
                // Counted only once a refusal opened state: every sign-in sends a push,
                // and state for every user would cost memory for nothing.
                let Some(state) = self.users.get_mut(user) else {
                    return;
                };
                while state.sent.front().is_some_and(|&t| obs.time - t > window) {
                    state.sent.pop_front();
                }
                state.sent.push_back(obs.time);
                if state.sent.len() > MAX_REFUSALS {
                    state.sent.pop_front();
                }
            }
            Kind::PushDenied | Kind::PushUnanswered => {
                let state = self.users.entry(user.into()).or_default();
                while state.refusals.front().is_some_and(|r| obs.time - r.time > window) {
                    state.refusals.pop_front();
                }
                if state.episode_last.is_some_and(|t| obs.time - t > window) {
                    state.episode_last = None;
                    state.approval_alerted = false;
                }
                state.refusals.push_back(Refusal {
                    time: obs.time,
                    uuid: obs.uuid.clone(),
                    unanswered: obs.kind == Kind::PushUnanswered,
                    ip: obs.ip.clone(),
                });
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
            Kind::PushApproved => {
                let Some(state) = self.users.get(user) else {
                    return;
                };
                let recent = state.refusals.back().is_some_and(|r| obs.time - r.time <= window);
                // Two refusals are enough context for an approval to be suspicious.
                if recent && state.refusals.len() >= 2 && !state.approval_alerted {
                    out.findings.push(self.finding(obs, state, true));
                    if let Some(s) = self.users.get_mut(user) {
                        s.approval_alerted = true;
                        s.episode_last.get_or_insert(obs.time);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_watermark(&mut self, watermark: i64, _: &mut Emit) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            let window = self.window_ms;
            self.users.retain(|_, u| {
                let last = u.refusals.back().map(|r| r.time).max(u.sent.back().copied());
                last.is_some_and(|t| now - t <= window)
            });
        }
    }

    crate::keyed_state!(users);
}
