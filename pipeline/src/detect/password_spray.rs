//! `password_spray`: one source failing against many users, a few attempts each, within a
//! window. Logins that do not exist count too (credential stuffing lists hold many).
//!
//! Keyed by source IP. One alert per episode: once fired, the source's failures extend the
//! episode until the window passes without one.

use compact_str::CompactString;
use std::collections::{HashSet, VecDeque};

use idgw_schemas::{Detection, Severity};
use serde::{Deserialize, Serialize};

use super::alerting::Finding;
use super::config::DetectConfig;
use super::observation::{Kind, Obs, hash};
use super::windowed::{Emit, FastMap, WindowedDetector, hourly};
use crate::evidence;

/// Attempts remembered per source (a spray's evidence needs no more).
const MAX_ATTEMPTS: usize = 512;
/// Evidence uuids listed in one alert.
const MAX_EVIDENCE: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attempt {
    time: i64,
    user: u64,
    uuid: CompactString,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SourceAttempts {
    recent: VecDeque<Attempt>,
    episode_last: Option<i64>,
}

/// The detector.
#[derive(Debug)]
pub struct PasswordSpray {
    users_threshold: usize,
    max_per_user: f64,
    window_ms: i64,
    sources: FastMap<CompactString, SourceAttempts>,
    swept: i64,
}

impl PasswordSpray {
    pub fn new(config: &DetectConfig) -> Self {
        PasswordSpray {
            users_threshold: config.spray_users.max(2),
            max_per_user: config.spray_max_attempts_per_user,
            window_ms: config.spray_window_s * 1000,
            sources: FastMap::default(),
            swept: i64::MIN,
        }
    }
}

impl WindowedDetector for PasswordSpray {
    fn name(&self) -> &'static str {
        "password_spray"
    }

    fn on_event(&mut self, obs: &Obs, out: &mut Emit) {
        if obs.kind != Kind::SignInFailure {
            return;
        }
        let (Some(ip), Some(user)) = (obs.ip.as_deref(), obs.user_key()) else {
            return;
        };
        let state = self.sources.entry(ip.into()).or_default();
        while state.recent.front().is_some_and(|a| obs.time - a.time > self.window_ms) {
            state.recent.pop_front();
        }
        if state.episode_last.is_some_and(|t| obs.time - t > self.window_ms) {
            state.episode_last = None;
        }
        state.recent.push_back(Attempt {
            time: obs.time,
            user: hash(user),
            uuid: obs.uuid.clone(),
        });
        if state.recent.len() > MAX_ATTEMPTS {
            state.recent.pop_front();
        }
        if state.episode_last.is_some() {
            state.episode_last = Some(obs.time);
            return;
        }
        if state.recent.len() < self.users_threshold {
            return;
        }
        let distinct: HashSet<u64> = state.recent.iter().map(|a| a.user).collect();
        let per_user = state.recent.len() as f64 / distinct.len() as f64;
        if distinct.len() < self.users_threshold || per_user > self.max_per_user {
            return;
        }
        state.episode_last = Some(obs.time);
        let first = state.recent.front().map_or(obs.time, |a| a.time);
        let minutes = (obs.time - first) as f64 / 60_000.0;
        out.findings.push(Finding {
            detection: Detection::PasswordSpray,
            severity: Severity::High,
            confidence: 0.85,
            user_id: None,
            user_login: None,
            src_ip: Some(ip.to_owned()),
            first_seen: first,
            last_seen: obs.time,
            event_uuids: state
                .recent
                .iter()
                .take(MAX_EVIDENCE)
                .map(|a| a.uuid.to_string())
                .collect(),
            summary: format!(
                "{ip} failed to sign in as {} different users ({} attempts) within {minutes:.0} minutes.",
                distinct.len(),
                state.recent.len()
            ),
            evidence: evidence! {
                "distinct_users" => distinct.len(),
                "attempts" => state.recent.len(),
                "attempts_per_user" => (per_user * 100.0).round() / 100.0,
                "window_minutes" => self.window_ms / 60_000,
                "threshold_users" => self.users_threshold,
            },
            mitre: &["T1110.003", "T1110.004"],
        });
    }

    fn on_watermark(&mut self, watermark: i64, _: &mut Emit) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            let window = self.window_ms;
            self.sources
                .retain(|_, s| s.recent.back().is_some_and(|a| now - a.time <= window));
        }
    }

    crate::keyed_state!(sources);
}
