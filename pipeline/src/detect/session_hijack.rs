//! `session_hijack`: one session id or device token used from a new IP whose network (ASN)
//! or country differs, with a different user agent: a stolen cookie replayed elsewhere.
//!
//! The same device on another network with the same user agent (a laptop moving from home
//! to a phone hotspot) is not a hijack, nor is a browser updating itself: clients compare by
//! browser family, OS and major version (a newer major by at most two is an update), and
//! only by the exact string when no version can be read. Without an ASN at either end, a
//! move to another country or another /16 (IPv4) or /32 (IPv6) is a network change, so a
//! missing ASN hides nothing. Requests Okta's Admin Console makes for the user (its own
//! client id, from Okta's addresses) are ignored. One alert per token.

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
    /// Browser and OS family hash (0: not known, from a checkpoint before it was kept).
    #[serde(default)]
    ua_family: u64,
    #[serde(default)]
    ua_major: Option<u16>,
    flagged: bool,
}

/// A session seen in another country on another network within this long has not
/// travelled with its user.
const FAST_MOVE_MS: i64 = 3_600_000;

/// How many major versions a browser may move forward and still be the same browser.
const UPDATE_MAJORS: u16 = 2;

/// Whether `obs` comes from the client `seen` recorded, allowing for browser updates.
fn same_client(seen: &TokenUse, obs: &Obs) -> bool {
    if seen.ua_family == 0 || seen.ua_family != obs.ua_family {
        return seen.ua_family == 0 && seen.user_agent == obs.user_agent;
    }
    match (seen.ua_major, obs.ua_major) {
        (Some(old), Some(new)) => new >= old && new - old <= UPDATE_MAJORS,
        _ => seen.user_agent == obs.user_agent,
    }
}

/// The address block an IP belongs to when no ASN is known: /16 for IPv4, /32 for IPv6.
fn block(ip: &str) -> Option<u128> {
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => Some(u128::from(u32::from(v4) >> 16)),
        std::net::IpAddr::V6(v6) => Some((u128::from(v6) >> 96) | (1 << 64)),
    }
}

/// Whether `obs` is on another network than `seen`: another ASN, another country, or,
/// with an ASN missing, another address block.
fn other_network(seen: &TokenUse, obs: &Obs, country: Option<u64>) -> bool {
    if let (Some(a), Some(b)) = (seen.asn, obs.asn)
        && a != b
    {
        return true;
    }
    if seen.country.is_some() && country.is_some() && seen.country != country {
        return true;
    }
    if seen.asn.is_none() || obs.asn.is_none() {
        let (old, new) = (seen.ip.as_deref().and_then(block), obs.ip.as_deref().and_then(block));
        return old.is_some() && new.is_some() && old != new;
    }
    false
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
            // Two decimals: a value JSON gives back exactly.
            "minutes_since_first_use" => ((obs.time - seen.first_time) as f64 / 600.0).round() / 100.0,
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
        if (obs.session.is_none() && obs.device.is_none()) || obs.okta_client {
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
                    let other_network = other_network(seen, obs, country);
                    let other_client = !same_client(seen, obs);
                    // The same session in another country on another network within the
                    // hour, even with a matching browser: a replayed cookie whose thief
                    // copied the browser family (most fleets and most thieves run Chrome
                    // on Windows). Medium: travel does not cross borders that fast, but a
                    // user agent can be faked both ways.
                    let far_fast = seen.session
                        && seen.country.is_some()
                        && country.is_some()
                        && seen.country != country
                        && seen.asn.is_some()
                        && obs.asn.is_some()
                        && seen.asn != obs.asn
                        && obs.time - seen.last_time <= FAST_MOVE_MS;
                    if moved && other_network && (other_client || far_fast) && !seen.flagged {
                        seen.flagged = true;
                        // Session and device token usually move together: one alert.
                        if !fired {
                            fired = true;
                            let mut f = finding(obs, seen);
                            if !other_client {
                                f.severity = Severity::Medium;
                                f.confidence = 0.6;
                                f.summary = format!(
                                    "{}'s session from {} ({}) reappeared from {} in another country on another network within the hour, with the same browser family.",
                                    obs.login.as_deref().unwrap_or("a user"),
                                    seen.ip.as_deref().unwrap_or("?"),
                                    seen.asn.map_or_else(|| "?".to_owned(), |a| format!("AS{a}")),
                                    obs.ip.as_deref().unwrap_or("?"),
                                );
                                f.evidence.insert("user_agent_changed".into(), false.into());
                            }
                            out.findings.push(f);
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
                        ua_family: obs.ua_family,
                        ua_major: obs.ua_major,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::observation::{Kind, ua_family};

    /// A use of session `token` by `user` from `ip` (ASN, country), `minute` minutes in,
    /// with `browser` at `major` on Windows.
    fn use_of(minute: i64, ip: &str, asn: Option<i64>, country: &str, browser: &str, major: u16) -> Obs {
        Obs {
            user_id: Some("00u1".into()),
            asn,
            country: Some(country.into()),
            user_agent: hash(&format!("{browser}/{major}.0.1")),
            ua_family: ua_family(Some(browser), Some("Windows")),
            ua_major: Some(major),
            session: Some(hash("idxSession1")),
            ..Obs::for_test(Kind::SessionActivity, "ana@example.com", minute, ip)
        }
    }

    fn alerts(uses: &[Obs]) -> Vec<Finding> {
        let mut d = SessionHijack::new(&DetectConfig::default());
        let mut out = Emit::default();
        for o in uses {
            d.on_event(o, &mut out);
        }
        out.findings
    }

    #[test]
    fn a_stolen_cookie_is_caught_and_a_browser_update_or_a_hotspot_is_not() {
        let home = use_of(0, "198.51.100.7", Some(7922), "United States", "CHROME", 130);
        // The cookie replayed from a hosting network with another browser.
        let thief = use_of(40, "203.0.113.9", Some(14061), "Netherlands", "FIREFOX", 128);
        assert_eq!(alerts(&[home.clone(), thief]).len(), 1);
        // The same family, an older major: not an update.
        let older = use_of(40, "203.0.113.9", Some(14061), "Netherlands", "CHROME", 118);
        assert_eq!(alerts(&[home.clone(), older]).len(), 1);
        // Look-alikes: Chrome updating itself while the laptop moves to a phone hotspot;
        // the same browser on another network.
        let updated = use_of(40, "172.56.1.9", Some(21928), "United States", "CHROME", 131);
        assert!(alerts(&[home.clone(), updated]).is_empty());
        let hotspot = use_of(40, "172.56.1.9", Some(21928), "United States", "CHROME", 130);
        assert!(alerts(&[home.clone(), hotspot]).is_empty());
        // The thief copied the browser: another country and network within the hour.
        let copied = use_of(40, "203.0.113.9", Some(14061), "Netherlands", "CHROME", 131);
        let f = alerts(&[home.clone(), copied]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Medium);
        // The user who flew there with the laptop, hours later: no alert.
        let flown = use_of(600, "203.0.113.9", Some(14061), "Netherlands", "CHROME", 130);
        assert!(alerts(&[home.clone(), flown]).is_empty());
    }

    #[test]
    fn a_missing_asn_does_not_hide_a_move_and_the_admin_console_is_ignored() {
        let home = use_of(0, "198.51.100.7", None, "United States", "CHROME", 130);
        let elsewhere = use_of(40, "203.0.113.9", None, "United States", "FIREFOX", 128);
        assert_eq!(alerts(&[home.clone(), elsewhere]).len(), 1, "another /16 without ASNs");
        let same_block = use_of(40, "198.51.3.4", None, "United States", "FIREFOX", 128);
        assert!(alerts(&[home.clone(), same_block]).is_empty(), "same /16, same country");
        let console = Obs {
            okta_client: true,
            ..use_of(40, "203.0.113.9", Some(14061), "United States", "UNKNOWN", 1)
        };
        assert!(
            alerts(&[home, console]).is_empty(),
            "Okta's Admin Console acting for the user"
        );
    }
}
