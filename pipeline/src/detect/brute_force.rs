//! `brute_force`: many failed sign-ins against one user within a window; a success from a
//! failing source while the attack runs raises a second, critical alert.
//!
//! One alert per episode: after firing, the user's failures keep extending the episode
//! until the window passes without one.

use compact_str::CompactString;
use std::collections::VecDeque;

use idgw_schemas::{Detection, Severity};
use serde::{Deserialize, Serialize};

use super::alerting::Finding;
use super::config::DetectConfig;
use super::observation::{Kind, Obs};
use super::windowed::{Emit, FastMap, WindowedDetector, hourly};
use crate::evidence;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Failure {
    time: i64,
    uuid: CompactString,
    ip: Option<CompactString>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserFailures {
    recent: VecDeque<Failure>,
    /// Time of the last failure of an episode that already alerted.
    episode_last: Option<i64>,
    /// Whether the episode's success alert was raised.
    success_alerted: bool,
}

/// The detector.
#[derive(Debug)]
pub struct BruteForce {
    threshold: usize,
    window_ms: i64,
    users: FastMap<CompactString, UserFailures>,
    swept: i64,
}

impl BruteForce {
    pub fn new(config: &DetectConfig) -> Self {
        BruteForce {
            threshold: config.brute_force_failures.max(2),
            window_ms: config.brute_force_window_s * 1000,
            users: FastMap::default(),
            swept: i64::MIN,
        }
    }

    fn finding(&self, obs: &Obs, state: &UserFailures, success: Option<&Obs>) -> Finding {
        let fails = &state.recent;
        let mut ips: Vec<&str> = fails.iter().filter_map(|f| f.ip.as_deref()).collect();
        ips.sort_unstable();
        ips.dedup();
        let first = fails.front().map_or(obs.time, |f| f.time);
        let mut uuids: Vec<String> = fails.iter().map(|f| f.uuid.to_string()).collect();
        let login = obs.login.as_deref().unwrap_or("a user");
        let (severity, confidence, summary) = match success {
            Some(s) => {
                uuids.push(s.uuid.to_string());
                (
                    Severity::Critical,
                    0.9,
                    format!(
                        "{login} signed in from {} right after {} failed attempts from there: the password was guessed.",
                        s.ip.as_deref().unwrap_or("?"),
                        fails.len()
                    ),
                )
            }
            None => (
                Severity::Medium,
                0.8,
                format!(
                    "{} failed sign-ins against {login} within {} minutes from {} source(s).",
                    fails.len(),
                    self.window_ms / 60_000,
                    ips.len()
                ),
            ),
        };
        Finding {
            detection: Detection::BruteForce,
            severity,
            confidence,
            user_id: obs.user_id.as_deref().map(str::to_owned),
            user_login: obs.login.as_deref().map(str::to_owned),
            src_ip: success
                .and_then(|s| s.ip.as_deref())
                .or(ips.first().copied())
                .map(str::to_owned),
            first_seen: first,
            last_seen: obs.time,
            event_uuids: uuids,
            summary,
            evidence: evidence! {
                "failures" => fails.len(),
                "window_minutes" => self.window_ms / 60_000,
                "threshold" => self.threshold,
                "source_ips" => ips,
                "succeeded" => success.is_some(),
            },
            mitre: &["T1110.001"],
        }
    }
}

impl WindowedDetector for BruteForce {
    fn name(&self) -> &'static str {
        "brute_force"
    }

    fn on_event(&mut self, obs: &Obs, out: &mut Emit) {
        let Some(user) = obs.user_id.as_deref() else {
            return;
        };
        match obs.kind {
            Kind::SignInFailure => {
                let state = self.users.entry(user.into()).or_default();
                while state.recent.front().is_some_and(|f| obs.time - f.time > self.window_ms) {
                    state.recent.pop_front();
                }
                if state.episode_last.is_some_and(|t| obs.time - t > self.window_ms) {
                    state.episode_last = None;
                    state.success_alerted = false;
                }
                state.recent.push_back(Failure {
                    time: obs.time,
                    uuid: obs.uuid.clone(),
                    ip: obs.ip.clone(),
                });
                // Enough for the alert's evidence; older failures add nothing.
                if state.recent.len() > 4 * self.threshold {
                    state.recent.pop_front();
                }
                if state.episode_last.is_some() {
                    state.episode_last = Some(obs.time);
                } else if state.recent.len() >= self.threshold {
                    state.episode_last = Some(obs.time);
                    let state = &self.users[user];
                    out.findings.push(self.finding(obs, state, None));
                }
            }
            Kind::SignIn => {
                let Some(state) = self.users.get(user) else {
                    return;
                };
                let during_attack = state.episode_last.is_some_and(|t| obs.time - t <= self.window_ms);
                let from_attacker = obs.ip.is_some() && state.recent.iter().any(|f| f.ip == obs.ip);
                if during_attack && from_attacker && !state.success_alerted {
                    out.findings.push(self.finding(obs, state, Some(obs)));
                    if let Some(s) = self.users.get_mut(user) {
                        s.success_alerted = true;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_watermark(&mut self, watermark: i64, _: &mut Emit) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            let window = self.window_ms;
            self.users
                .retain(|_, u| u.recent.back().is_some_and(|f| now - f.time <= window));
        }
    }

    crate::keyed_state!(users);
}
