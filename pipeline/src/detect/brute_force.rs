//! `brute_force`: many failed sign-ins against one user within a window; a success from a
//! failing source while the attack runs raises a second, critical alert. A failed sign-in
//! is any failed guess [`Kind::SignInFailure`] lists (Classic and Identity Engine shapes,
//! passwords and one-time codes), counted once per attempt.
//!
//! One alert per episode: after firing, the user's failures keep extending the episode
//! until the window passes without one.

use compact_str::CompactString;
use std::collections::VecDeque;

use idgw_schemas::{Detection, Severity};
use serde::{Deserialize, Serialize};

use super::alerting::Finding;
use super::config::DetectConfig;
use super::observation::{Kind, Obs, hash};
use super::windowed::{CappedSet, Emit, FastMap, WindowedDetector, hourly};
use crate::evidence;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Failure {
    time: i64,
    uuid: CompactString,
    ip: Option<CompactString>,
    /// The request it belongs to: one attempt can log several failures.
    #[serde(default)]
    attempt: Option<u64>,
    #[serde(default)]
    event_type: u64,
    /// Browser and OS family of the client (0: not recorded).
    #[serde(default)]
    ua_family: u64,
    /// From an address and client the user had signed in from before.
    #[serde(default)]
    known: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserFailures {
    recent: VecDeque<Failure>,
    /// Time of the last failure of an episode that already alerted.
    episode_last: Option<i64>,
    /// Whether the episode's success alert was raised.
    success_alerted: bool,
    /// Whether the episode's alert was the low one (every failure from a known client) and
    /// a failure from an unknown one has since raised the medium one.
    #[serde(default)]
    escalated: bool,
    /// Address-and-client pairs the user signed in from (the last [`KNOWN_CLIENTS`]).
    #[serde(default)]
    clients: CappedSet,
    /// Time of the user's last successful sign-in.
    #[serde(default)]
    last_signin: Option<i64>,
}

/// Address-and-client pairs remembered per user.
const KNOWN_CLIENTS: usize = 8;
/// Known clients are forgotten after a month without a sign-in.
const FORGET_MS: i64 = 30 * 24 * 3600 * 1000;

/// The address-and-client pair of a sign-in or a failure: the address and the exact user
/// agent (a family alone is what everyone's Chrome on Windows shares).
fn client_of(obs: &Obs) -> Option<u64> {
    Some(hash(obs.ip.as_deref()?) ^ obs.user_agent.rotate_left(29))
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
            None if fails.iter().all(|f| f.known) => (
                Severity::Low,
                0.5,
                format!(
                    "{} failed sign-ins against {login} within {} minutes, all from an address and client {login} signs in from: likely a device with an old saved password.",
                    fails.len(),
                    self.window_ms / 60_000,
                ),
            ),
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
                "known_client" => fails.iter().all(|f| f.known),
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
                // The same attempt seen again (its session event, its authenticator check
                // and its policy decision) is one guess.
                if obs.attempt.is_some()
                    && self.users.get(user).is_some_and(|s| {
                        s.recent
                            .iter()
                            .any(|f| obs.same_attempt_as(f.attempt, f.event_type, f.time))
                    })
                {
                    return;
                }
                let state = self.users.entry(user.into()).or_default();
                while state.recent.front().is_some_and(|f| obs.time - f.time > self.window_ms) {
                    state.recent.pop_front();
                }
                if state.episode_last.is_some_and(|t| obs.time - t > self.window_ms) {
                    state.episode_last = None;
                    state.success_alerted = false;
                    state.escalated = false;
                }
                let known = client_of(obs).is_some_and(|c| state.clients.contains(c));
                state.recent.push_back(Failure {
                    time: obs.time,
                    uuid: obs.uuid.clone(),
                    ip: obs.ip.clone(),
                    attempt: obs.attempt,
                    event_type: obs.event_type,
                    ua_family: obs.ua_family,
                    known,
                });
                // Enough for the alert's evidence; older failures add nothing.
                if state.recent.len() > 4 * self.threshold {
                    state.recent.pop_front();
                }
                if state.episode_last.is_some() {
                    state.episode_last = Some(obs.time);
                    // An episode that alerted low (a device with an old password) joined by
                    // failures from elsewhere: someone is guessing behind the noise.
                    let alerted_low = state.recent.iter().filter(|f| f.known).count() >= self.threshold;
                    if !known && alerted_low && !state.escalated {
                        state.escalated = true;
                        let mut finding = self.finding(obs, &self.users[user], None);
                        finding.severity = Severity::Medium;
                        finding.confidence = 0.75;
                        finding.summary = format!(
                            "{} failed sign-ins against {} within {} minutes, now also from an address or client the user does not use.",
                            finding.evidence["failures"],
                            obs.login.as_deref().unwrap_or("a user"),
                            self.window_ms / 60_000
                        );
                        out.findings.push(finding);
                    }
                } else if state.recent.len() >= self.threshold {
                    state.episode_last = Some(obs.time);
                    let state = &self.users[user];
                    out.findings.push(self.finding(obs, state, None));
                }
            }
            // A guessed password shows as a session, or (MFA following) as the password
            // checking out.
            Kind::SignIn | Kind::PasswordVerified => {
                let state = self.users.entry(user.into()).or_default();
                let during_attack = state.episode_last.is_some_and(|t| obs.time - t <= self.window_ms);
                // The guesser signing in: from an address that failed in the episode with a
                // client the user had not signed in from there before (a script may guess
                // and a browser sign in). The user's laptop behind the same office address
                // as a phone looping on an old password: every failure there is known.
                let from_attacker = obs.ip.is_some() && state.recent.iter().any(|f| f.ip == obs.ip && !f.known);
                if during_attack && from_attacker && !state.success_alerted {
                    state.success_alerted = true;
                    let finding = self.finding(obs, &self.users[user], Some(obs));
                    out.findings.push(finding);
                }
                let Some(state) = self.users.get_mut(user) else { return };
                if let Some(c) = client_of(obs) {
                    state.clients.insert(c, KNOWN_CLIENTS);
                }
                state.last_signin = Some(obs.time);
            }
            _ => {}
        }
    }

    fn seed(&mut self, obs: &Obs) {
        if let (Kind::SignIn, Some(user), Some(c)) = (obs.kind, obs.user_id.as_deref(), client_of(obs)) {
            let state = self.users.entry(user.into()).or_default();
            state.clients.insert(c, KNOWN_CLIENTS);
            state.last_signin = Some(state.last_signin.map_or(obs.time, |t| t.max(obs.time)));
        }
    }

    fn on_watermark(&mut self, watermark: i64, _: &mut Emit) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            let window = self.window_ms;
            self.users.retain(|_, u| {
                u.recent.back().is_some_and(|f| now - f.time <= window)
                    || u.last_signin.is_some_and(|t| now - t <= FORGET_MS)
            });
        }
    }

    crate::keyed_state!(users);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::observation::hash;

    /// Failed attempt `n` against one user, logged by `events` events of one request (a
    /// session start, an authenticator check, a policy decision).
    fn attempt(n: i64, events: usize) -> Vec<Obs> {
        (0..events)
            .map(|e| Obs {
                user_id: Some("00u1".into()),
                attempt: Some(hash(&format!("request-{n}"))),
                event_type: e as u64,
                uuid: format!("ev-{n}-{e}").into(),
                ..Obs::for_test(Kind::SignInFailure, "ana@example.com", n, "203.0.113.9")
            })
            .collect()
    }

    fn alerts(attempts: i64, events: usize) -> usize {
        let mut d = BruteForce::new(&DetectConfig::default());
        let mut out = Emit::default();
        for n in 0..attempts {
            for o in attempt(n, events) {
                d.on_event(&o, &mut out);
            }
        }
        out.findings.len()
    }

    fn with_client(mut o: Obs, ip: &str, agent: u64) -> Obs {
        o.ip = Some(ip.into());
        o.ua_family = agent;
        o.user_agent = agent;
        o
    }

    #[test]
    fn an_old_password_looping_on_a_known_device_is_low_and_never_a_guessed_password() {
        const OFFICE: &str = "198.51.100.20";
        const PHONE: u64 = 7;
        const LAPTOP: u64 = 9;
        let mut d = BruteForce::new(&DetectConfig::default());
        let mut out = Emit::default();
        // The user's phone has signed in from the office before.
        let earlier = Obs {
            user_id: Some("00u1".into()),
            ..Obs::for_test(Kind::SignIn, "ana@example.com", -600, OFFICE)
        };
        d.on_event(&with_client(earlier, OFFICE, PHONE), &mut out);
        // Now it loops on the old password, and the user signs in on the laptop meanwhile.
        for n in 0..10 {
            for o in attempt(n, 1) {
                d.on_event(&with_client(o, OFFICE, PHONE), &mut out);
            }
        }
        let laptop = Obs {
            user_id: Some("00u1".into()),
            ..Obs::for_test(Kind::SignIn, "ana@example.com", 11, OFFICE)
        };
        d.on_event(&with_client(laptop, OFFICE, LAPTOP), &mut out);
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].severity, Severity::Low, "{}", out.findings[0].summary);
        // Someone guessing behind that noise, from elsewhere: medium, once.
        for n in 12..14 {
            for o in attempt(n, 1) {
                d.on_event(&with_client(o, "203.0.113.9", LAPTOP), &mut out);
            }
        }
        let severities: Vec<Severity> = out.findings.iter().map(|f| f.severity).collect();
        assert_eq!(severities, [Severity::Low, Severity::Medium]);

        // The attacker: failures from a new address, then a success from it with the
        // client that failed.
        let mut d = BruteForce::new(&DetectConfig::default());
        let mut out = Emit::default();
        for n in 0..8 {
            for o in attempt(n, 1) {
                d.on_event(&with_client(o, "203.0.113.9", LAPTOP), &mut out);
            }
        }
        let guessed = Obs {
            user_id: Some("00u1".into()),
            ..Obs::for_test(Kind::SignIn, "ana@example.com", 9, "203.0.113.9")
        };
        d.on_event(&with_client(guessed, "203.0.113.9", LAPTOP), &mut out);
        let severities: Vec<Severity> = out.findings.iter().map(|f| f.severity).collect();
        assert_eq!(severities, [Severity::Medium, Severity::Critical]);

        // Where MFA follows the password, the guess shows as the password checking out.
        let mut d = BruteForce::new(&DetectConfig::default());
        let mut out = Emit::default();
        for n in 0..8 {
            for o in attempt(n, 1) {
                d.on_event(&with_client(o, "203.0.113.9", LAPTOP), &mut out);
            }
        }
        let verified = Obs {
            user_id: Some("00u1".into()),
            ..Obs::for_test(Kind::PasswordVerified, "ana@example.com", 9, "203.0.113.9")
        };
        d.on_event(&with_client(verified, "203.0.113.9", PHONE), &mut out);
        assert_eq!(out.findings.last().map(|f| f.severity), Some(Severity::Critical));
    }

    #[test]
    fn one_attempt_logged_three_ways_is_one_guess() {
        assert_eq!(alerts(5, 3), 0, "five guesses, fifteen events");
        assert_eq!(alerts(8, 3), 1);
        assert_eq!(alerts(8, 1), 1);
        // A redacted request id shared by every attempt (as SIEM samples have it): the
        // same event type, a minute apart, are eight attempts.
        let mut d = BruteForce::new(&DetectConfig::default());
        let mut out = Emit::default();
        for n in 0..8 {
            let mut o = attempt(n, 1).remove(0);
            o.attempt = Some(hash("redacted"));
            d.on_event(&o, &mut out);
        }
        assert_eq!(out.findings.len(), 1);
    }
}
