//! `password_spray`: one source failing against many users, a few attempts each, within a
//! window. Logins that do not exist count too (credential stuffing lists hold many).
//!
//! A slow spray, paced to stay under the window (one user every few minutes), is caught
//! over a long window (`spray_slow_window_s`, 6 h) at a higher threshold
//! (`spray_slow_users`, 20 distinct users), when at most a tenth of the users who failed from
//! the source signed in from it (an office address is mostly people who then get in).
//!
//! A shared address (an office NAT) sees many users mistype a password and then sign in
//! from it: users who fail and then succeed from the source before any alert are typos and
//! do not count towards the threshold.
//!
//! Keyed by source IP. One alert per episode: once fired, the source's failures extend the
//! episode until the window passes without one. A spray that works is worse than one that
//! is seen: a successful sign-in from a spraying source, during its episode, as one of the
//! users it sprayed, is a **critical** alert on that user (once per user and episode).

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
/// Evidence uuids (and sprayed user ids) listed in one alert.
const MAX_EVIDENCE: usize = 200;
/// The evidence key listing the Okta ids of the sprayed users that exist; the risk book
/// gives each of them a share of the alert's risk.
pub const SPRAYED_USER_IDS: &str = "sprayed_user_ids";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attempt {
    time: i64,
    user: u64,
    uuid: CompactString,
    /// The request: one attempt can log several failures.
    #[serde(default)]
    attempt: Option<u64>,
    #[serde(default)]
    event_type: u64,
    /// The Okta id of a user that exists (sprayed users carry risk).
    #[serde(default)]
    user_id: Option<CompactString>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SourceAttempts {
    recent: VecDeque<Attempt>,
    episode_last: Option<i64>,
    /// Users of this episode already alerted on for a successful sign-in.
    #[serde(default)]
    breached: Vec<u64>,
    /// Users who failed from this source and then signed in from it before any alert: a
    /// typo behind a shared address (an office NAT), not a guess.
    #[serde(default)]
    recovered: Vec<u64>,
    /// Time of the last attempt an alert of this source counted: a later alert counts only
    /// attempts after it (a slow spray's long window would otherwise count them again).
    #[serde(default)]
    alerted_upto: Option<i64>,
}

/// Recovered users remembered per source.
const MAX_RECOVERED: usize = 256;

/// The detector.
#[derive(Debug)]
pub struct PasswordSpray {
    users_threshold: usize,
    max_per_user: f64,
    window_ms: i64,
    /// The long window a slow spray is counted over, and its threshold.
    slow_window_ms: i64,
    slow_users: usize,
    sources: FastMap<CompactString, SourceAttempts>,
    swept: i64,
}

impl PasswordSpray {
    pub fn new(config: &DetectConfig) -> Self {
        PasswordSpray {
            users_threshold: config.spray_users.max(2),
            max_per_user: config.spray_max_attempts_per_user,
            window_ms: config.spray_window_s * 1000,
            slow_window_ms: (config.spray_slow_window_s * 1000).max(config.spray_window_s * 1000),
            slow_users: config.spray_slow_users.max(2),
            sources: FastMap::default(),
            swept: i64::MIN,
        }
    }
}

impl PasswordSpray {
    /// Whether the detector looks at `obs` (a lane keyed by user hands these on when the
    /// stream is repartitioned by source).
    pub fn wants(obs: &Obs) -> bool {
        matches!(obs.kind, Kind::SignIn | Kind::PasswordVerified | Kind::SignInFailure)
            && obs.ip.is_some()
            && obs.user_key().is_some()
    }

    /// A successful sign-in: critical when its source is spraying now and the user is one
    /// it sprayed.
    fn on_success(&mut self, obs: &Obs, out: &mut Emit) {
        let (Some(ip), Some(user)) = (obs.ip.as_deref(), obs.user_key()) else {
            return;
        };
        let Some(state) = self.sources.get_mut(ip) else { return };
        let live = state.episode_last.is_some_and(|t| obs.time - t <= self.window_ms);
        let user_hash = hash(user);
        if !live {
            if state.recent.iter().any(|a| a.user == user_hash) && !state.recovered.contains(&user_hash) {
                if state.recovered.len() >= MAX_RECOVERED {
                    state.recovered.remove(0);
                }
                state.recovered.push(user_hash);
            }
            return;
        }
        if state.breached.contains(&user_hash) {
            return;
        }
        let tries: Vec<&Attempt> = state.recent.iter().filter(|a| a.user == user_hash).collect();
        let Some(first) = tries.first().map(|a| a.time) else {
            return;
        };
        state.breached.push(user_hash);
        let sprayed = state.recent.iter().map(|a| a.user).collect::<HashSet<u64>>().len();
        let mut uuids: Vec<String> = tries.iter().map(|a| a.uuid.to_string()).collect();
        uuids.push(obs.uuid.to_string());
        out.findings.push(Finding {
            detection: Detection::PasswordSpray,
            severity: Severity::Critical,
            confidence: 0.9,
            user_id: obs.user_id.as_deref().map(str::to_owned),
            user_login: obs.login.as_deref().map(str::to_owned),
            src_ip: Some(ip.to_owned()),
            first_seen: first,
            last_seen: obs.time,
            event_uuids: uuids,
            summary: format!(
                "{ip}, spraying passwords at {sprayed} users, signed in as {} after {} failed attempt(s): the spray found a password.",
                obs.login.as_deref().unwrap_or(user),
                tries.len()
            ),
            evidence: evidence! {
                "sprayed_users" => sprayed,
                "failed_attempts_on_user" => tries.len(),
                "outcome" => "SUCCESS",
            },
            mitre: &["T1110.003", "T1078"],
        });
    }
}

impl PasswordSpray {
    /// A spray over the source's attempts from index `from` on (those within `window_ms`):
    /// `threshold` distinct users not recovered, few attempts each.
    fn spray(
        &self,
        state: &SourceAttempts,
        obs: &Obs,
        ip: &str,
        from: usize,
        window_ms: i64,
        threshold: usize,
    ) -> Option<Finding> {
        let attempts: Vec<&Attempt> = state.recent.range(from..).collect();
        if attempts.len() < threshold {
            return None;
        }
        let distinct: HashSet<u64> = attempts.iter().map(|a| a.user).collect();
        let per_user = attempts.len() as f64 / distinct.len() as f64;
        let unrecovered = distinct.iter().filter(|u| !state.recovered.contains(u)).count();
        if unrecovered < threshold || per_user > self.max_per_user {
            return None;
        }
        let slow = window_ms > self.window_ms;
        // Over hours, a shared address collects failures of people who never come back;
        // most of its failing users do sign in from it, though. A spraying source's almost
        // never do.
        if slow && (distinct.len() - unrecovered) * 10 > distinct.len() {
            return None;
        }
        let first = attempts.first().map_or(obs.time, |a| a.time);
        let minutes = (obs.time - first) as f64 / 60_000.0;
        // Users who signed in from this source before the alert: typos behind a shared
        // address, or passwords the spray found. The analyst decides; they are named.
        let mut signed_in: Vec<&str> = attempts
            .iter()
            .filter(|a| state.recovered.contains(&a.user))
            .filter_map(|a| a.user_id.as_deref())
            .collect();
        signed_in.sort_unstable();
        signed_in.dedup();
        signed_in.truncate(MAX_EVIDENCE);
        // The users that exist, for their risk: a sprayed user is a likely next victim.
        let mut sprayed_ids: Vec<&str> = attempts.iter().filter_map(|a| a.user_id.as_deref()).collect();
        sprayed_ids.sort_unstable();
        sprayed_ids.dedup();
        sprayed_ids.truncate(MAX_EVIDENCE);
        let mut evidence = evidence! {
            "distinct_users" => distinct.len(),
            "attempts" => attempts.len(),
            "attempts_per_user" => (per_user * 100.0).round() / 100.0,
            "window_minutes" => window_ms / 60_000,
            "threshold_users" => threshold,
            "recovered_users" => distinct.len() - unrecovered,
            "signed_in_from_source" => signed_in,
            "sprayed_user_ids" => sprayed_ids,
        };
        if slow {
            evidence.insert("slow".into(), true.into());
        }
        Some(Finding {
            detection: Detection::PasswordSpray,
            severity: Severity::High,
            confidence: if slow { 0.8 } else { 0.85 },
            user_id: None,
            user_login: None,
            src_ip: Some(ip.to_owned()),
            first_seen: first,
            last_seen: obs.time,
            event_uuids: attempts.iter().take(MAX_EVIDENCE).map(|a| a.uuid.to_string()).collect(),
            summary: format!(
                "{ip} failed to sign in as {} different users ({} attempts) within {minutes:.0} minutes{}.",
                distinct.len(),
                attempts.len(),
                if slow {
                    ", slowly enough to stay under a short window"
                } else {
                    ""
                }
            ),
            evidence,
            mitre: &["T1110.003", "T1110.004"],
        })
    }
}

impl WindowedDetector for PasswordSpray {
    fn name(&self) -> &'static str {
        "password_spray"
    }

    fn on_event(&mut self, obs: &Obs, out: &mut Emit) {
        if matches!(obs.kind, Kind::SignIn | Kind::PasswordVerified) {
            return self.on_success(obs, out);
        }
        if obs.kind != Kind::SignInFailure {
            return;
        }
        let (Some(ip), Some(user)) = (obs.ip.as_deref(), obs.user_key()) else {
            return;
        };
        if obs.attempt.is_some()
            && self.sources.get(ip).is_some_and(|s| {
                let user = hash(user);
                s.recent
                    .iter()
                    .any(|a| a.user == user && obs.same_attempt_as(a.attempt, a.event_type, a.time))
            })
        {
            return;
        }
        let state = self.sources.entry(ip.into()).or_default();
        while state
            .recent
            .front()
            .is_some_and(|a| obs.time - a.time > self.slow_window_ms)
        {
            state.recent.pop_front();
        }
        if state.episode_last.is_some_and(|t| obs.time - t > self.window_ms) {
            state.episode_last = None;
            state.breached.clear();
        }
        if state.recent.is_empty() {
            state.recovered.clear();
        }
        state.recent.push_back(Attempt {
            time: obs.time,
            user: hash(user),
            uuid: obs.uuid.clone(),
            attempt: obs.attempt,
            event_type: obs.event_type,
            user_id: obs.user_id.clone(),
        });
        if state.recent.len() > MAX_ATTEMPTS {
            state.recent.pop_front();
        }
        if state.episode_last.is_some() {
            // Part of the episode already alerted on.
            state.episode_last = Some(obs.time);
            state.alerted_upto = Some(obs.time);
            return;
        }
        // The usual spray within the window; else a slow one under it, over the long window.
        let counted = state
            .alerted_upto
            .map_or(0, |t| state.recent.partition_point(|a| a.time <= t));
        let fast_from = state
            .recent
            .partition_point(|a| obs.time - a.time > self.window_ms)
            .max(counted);
        let state = &self.sources[ip];
        let found = self
            .spray(state, obs, ip, fast_from, self.window_ms, self.users_threshold)
            .or_else(|| self.spray(state, obs, ip, counted, self.slow_window_ms, self.slow_users));
        if let Some(f) = found {
            if let Some(state) = self.sources.get_mut(ip) {
                state.episode_last = Some(obs.time);
                state.alerted_upto = Some(obs.time);
            }
            out.findings.push(f);
        }
    }

    fn on_watermark(&mut self, watermark: i64, _: &mut Emit) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            let window = self.slow_window_ms;
            self.sources
                .retain(|_, s| s.recent.back().is_some_and(|a| now - a.time <= window));
        }
    }

    fn keyed_by_source(&self) -> bool {
        true
    }

    crate::keyed_state!(sources);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(user: &str, minute: i64, ip: &str, kind: Kind) -> Obs {
        Obs::for_test(kind, user, minute, ip)
    }

    #[test]
    fn a_spray_that_finds_a_password_is_critical_on_that_user() {
        let mut d = PasswordSpray::new(&DetectConfig::default());
        let mut out = Emit::default();
        let spray = "203.0.113.9";
        for i in 0..12 {
            d.on_event(
                &attempt(&format!("u{i}@example.com"), i, spray, Kind::SignInFailure),
                &mut out,
            );
        }
        assert_eq!(out.findings.len(), 1, "the spray itself");
        // Look-alikes: the sprayed user signing in from home, and a user the source never
        // tried signing in from the same (shared) address.
        d.on_event(&attempt("u5@example.com", 13, "198.51.100.5", Kind::SignIn), &mut out);
        d.on_event(&attempt("someone@example.com", 14, spray, Kind::SignIn), &mut out);
        assert_eq!(out.findings.len(), 1);
        // The spray works.
        d.on_event(&attempt("u5@example.com", 15, spray, Kind::SignIn), &mut out);
        assert_eq!(out.findings.len(), 2);
        let f = &out.findings[1];
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.user_login.as_deref(), Some("u5@example.com"));
        assert!(f.summary.contains("found a password"), "{}", f.summary);
        // Once per user and episode.
        d.on_event(&attempt("u5@example.com", 16, spray, Kind::SignIn), &mut out);
        assert_eq!(out.findings.len(), 2);
        // Long after the episode, a sign-in from that address is nothing.
        d.on_event(&attempt("u6@example.com", 200, spray, Kind::SignIn), &mut out);
        assert_eq!(out.findings.len(), 2);
    }

    #[test]
    fn an_office_nat_where_users_mistype_and_then_sign_in_is_not_a_spray() {
        let mut d = PasswordSpray::new(&DetectConfig::default());
        let mut out = Emit::default();
        let office = "198.51.100.20";
        // Twenty people behind one address each mistype once and sign in a minute later.
        for i in 0..20 {
            let user = format!("u{i}@example.com");
            d.on_event(&attempt(&user, i, office, Kind::SignInFailure), &mut out);
            d.on_event(&attempt(&user, i, office, Kind::SignIn), &mut out);
        }
        assert!(
            out.findings.is_empty(),
            "{:?}",
            out.findings.iter().map(|f| &f.summary).collect::<Vec<_>>()
        );
        // Ten who never get in from there are a spray, typos around them or not.
        for i in 0..10 {
            d.on_event(
                &attempt(&format!("victim{i}@example.com"), 20 + i, office, Kind::SignInFailure),
                &mut out,
            );
        }
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].evidence["recovered_users"], 20);
    }

    #[test]
    fn a_slow_spray_under_the_window_is_caught_over_the_long_one_once() {
        let mut d = PasswordSpray::new(&DetectConfig::default());
        let mut out = Emit::default();
        let spray = "203.0.113.44";
        // One user every five minutes for three hours: never ten within half an hour.
        for i in 0..36 {
            d.on_event(
                &attempt(&format!("slow{i}@example.com"), i * 5, spray, Kind::SignInFailure),
                &mut out,
            );
        }
        assert_eq!(
            out.findings.len(),
            1,
            "{:?}",
            out.findings.iter().map(|f| &f.summary).collect::<Vec<_>>()
        );
        assert_eq!(out.findings[0].evidence["slow"], true);
        assert_eq!(out.findings[0].evidence["distinct_users"], 20);
        // After a quiet hour it goes on: a new alert needs twenty new users.
        for i in 0..19 {
            d.on_event(
                &attempt(
                    &format!("later{i}@example.com"),
                    240 + i * 5,
                    spray,
                    Kind::SignInFailure,
                ),
                &mut out,
            );
        }
        assert_eq!(out.findings.len(), 1, "the old attempts are not counted twice");
    }
}
