//! `session_hijack`: one session id or device token used from a new IP whose network (ASN)
//! or country differs, with a different user agent: a stolen cookie replayed elsewhere.
//!
//! The same device on another network with the same user agent (a laptop moving from home
//! to a phone hotspot) is not a hijack. One alert per token.

use compact_str::CompactString;
use idgw_schemas::{Detection, Severity};
use serde::{Deserialize, Serialize};

use super::alerting::Finding;
use super::config::DetectConfig;
use super::observation::{Obs, hash};
use super::windowed::{Emit, FastMap, WindowedDetector, hourly};
use crate::evidence;

/// Tokens remembered per user (oldest forgotten first).
const TOKENS_PER_USER: usize = 12;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenUse {
    token: u64,
    /// True for a session id, false for a device token.
    session: bool,
    first_time: i64,
    last_time: i64,
    uuid: CompactString,
    ip: Option<CompactString>,
    asn: Option<i64>,
    country: Option<u64>,
    user_agent: u64,
    flagged: bool,
}

/// The detector.
#[derive(Debug)]
pub struct SessionHijack {
    ttl_ms: i64,
    users: FastMap<CompactString, Vec<TokenUse>>,
    swept: i64,
}

impl SessionHijack {
    pub fn new(config: &DetectConfig) -> Self {
        SessionHijack {
            ttl_ms: config.session_ttl_s * 1000,
            users: FastMap::default(),
            swept: i64::MIN,
        }
    }
}

fn finding(obs: &Obs, seen: &TokenUse) -> Finding {
    let what = if seen.session { "session" } else { "device token" };
    Finding {
        detection: Detection::SessionHijack,
        severity: Severity::High,
        confidence: if seen.session { 0.85 } else { 0.7 },
        user_id: obs.user_id.as_deref().map(str::to_owned),
        user_login: obs.login.as_deref().map(str::to_owned),
        src_ip: obs.ip.as_deref().map(str::to_owned),
        first_seen: seen.first_time,
        last_seen: obs.time,
        event_uuids: vec![seen.uuid.to_string(), obs.uuid.to_string()],
        summary: format!(
            "{}'s {what} from {} reappeared from {} on another network with another browser.",
            obs.login.as_deref().unwrap_or("a user"),
            seen.ip.as_deref().unwrap_or("?"),
            obs.ip.as_deref().unwrap_or("?"),
        ),
        evidence: evidence! {
            "token_kind" => what,
            "original_ip" => seen.ip,
            "original_asn" => seen.asn,
            "new_ip" => obs.ip,
            "new_asn" => obs.asn,
            "new_country" => obs.country,
            "country_changed" => seen.country != obs.country.as_deref().map(hash),
            "user_agent_changed" => true,
            "minutes_since_first_use" => (obs.time - seen.first_time) as f64 / 60_000.0,
        },
        mitre: &["T1550.004", "T1539"],
    }
}

impl WindowedDetector for SessionHijack {
    fn name(&self) -> &'static str {
        "session_hijack"
    }

    fn on_event(&mut self, obs: &Obs, out: &mut Emit) {
        let Some(user) = obs.user_id.as_deref() else {
            return;
        };
        if obs.session.is_none() && obs.device.is_none() {
            return;
        }
        let country = obs.country.as_deref().map(hash);
        // Look up before inserting: `entry` would allocate the key for every event.
        if !self.users.contains_key(user) {
            self.users.insert(user.into(), Vec::new());
        }
        let Some(tokens) = self.users.get_mut(user) else {
            return;
        };
        let mut fired = false;
        for (token, is_session) in [(obs.session, true), (obs.device, false)] {
            let Some(token) = token else {
                continue;
            };
            match tokens.iter_mut().find(|t| t.token == token) {
                Some(seen) => {
                    let moved = obs.ip.is_some() && obs.ip != seen.ip;
                    let other_network = obs.asn != seen.asn || country != seen.country;
                    let other_client = obs.user_agent != seen.user_agent;
                    if moved && other_network && other_client && !seen.flagged {
                        seen.flagged = true;
                        // Session and device token usually move together: one alert.
                        if !fired {
                            fired = true;
                            out.findings.push(finding(obs, seen));
                        }
                    }
                    seen.last_time = seen.last_time.max(obs.time);
                }
                None => {
                    if tokens.len() >= TOKENS_PER_USER
                        && let Some(oldest) = tokens
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, t)| t.last_time)
                            .map(|(i, _)| i)
                    {
                        tokens.swap_remove(oldest);
                    }
                    tokens.push(TokenUse {
                        token,
                        session: is_session,
                        first_time: obs.time,
                        last_time: obs.time,
                        uuid: obs.uuid.clone(),
                        ip: obs.ip.clone(),
                        asn: obs.asn,
                        country,
                        user_agent: obs.user_agent,
                        flagged: false,
                    });
                }
            }
        }
        if tokens.is_empty() {
            self.users.remove(user);
        }
    }

    fn on_watermark(&mut self, watermark: i64, _: &mut Emit) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            let ttl = self.ttl_ms;
            self.users.retain(|_, tokens| {
                tokens.retain(|t| now - t.last_time <= ttl);
                !tokens.is_empty()
            });
        }
    }

    crate::keyed_state!(users);
}
