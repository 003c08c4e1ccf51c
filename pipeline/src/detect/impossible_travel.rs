//! `impossible_travel`: two consecutive successful sign-ins of one user, too far apart for
//! the time between them.
//!
//! Distance is haversine minus a geo-IP accuracy allowance; sign-ins from the same IP or
//! closer than the minimum distance are never compared. A sign-in geo-IP placed only in a
//! country (no coordinates, or coordinates that are a country point) counts
//! at the country's centre with a much wider allowance, and is never compared with another
//! sign-in in the same country. A proxy
//! lowers the alert only at a *known* egress: a network (ASN) the user signed in from
//! before, or a corporate tunnel Okta marks as not anonymising. A proxy or anonymiser new to
//! the user is where an attacker with a stolen password signs in from, so it is no excuse:
//! the alert stays high. Destinations the user already signed in from lower it too.

use compact_str::CompactString;
use idgw_schemas::{Detection, Severity};
use serde::{Deserialize, Serialize};

use super::alerting::Finding;
use super::config::DetectConfig;
use super::geo;
use super::observation::{Kind, Obs, hash, okta_flags};
use super::windowed::{CappedSet, Emit, FastMap, WindowedDetector, haversine_km, hourly};
use crate::evidence;

/// Sign-ins older than this are forgotten (a month).
const FORGET_MS: i64 = 30 * 24 * 3600 * 1000;
/// Countries remembered per user.
const KNOWN_COUNTRIES: usize = 8;
/// Networks (ASNs) remembered per user.
const KNOWN_NETWORKS: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LastSignIn {
    time: i64,
    uuid: CompactString,
    ip: Option<CompactString>,
    lat_lon: (f64, f64),
    country: Option<CompactString>,
    city: Option<CompactString>,
    proxy: bool,
    /// Whether this sign-in's proxy (if any) was a known egress when it was seen.
    #[serde(default)]
    known_egress: bool,
    /// Located only to its country.
    #[serde(default)]
    coarse: bool,
}

/// Where `obs` happened and whether only to the country: its coordinates, else its
/// country's centre.
fn position(obs: &Obs) -> Option<((f64, f64), bool)> {
    match obs.lat_lon {
        Some(at) => Some((at, geo::is_country_point(obs.country.as_deref(), at))),
        None => Some((geo::centre(obs.country.as_deref()?)?, true)),
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserTravel {
    last: Option<LastSignIn>,
    countries: CappedSet,
    /// ASNs of the user's sign-ins.
    #[serde(default)]
    networks: CappedSet,
}

/// Whether `obs`'s proxy is an egress the user is known to use.
fn known_egress(user: &UserTravel, obs: &Obs) -> bool {
    !obs.anonymizer && (obs.corporate_tunnel || obs.asn.is_some_and(|a| user.networks.contains(a as u64)))
}

/// The detector.
#[derive(Debug)]
pub struct ImpossibleTravel {
    max_kmh: f64,
    allowance_km: f64,
    /// Added to the allowance for each end located only to its country.
    country_km: f64,
    min_km: f64,
    users: FastMap<CompactString, UserTravel>,
    swept: i64,
}

impl ImpossibleTravel {
    pub fn new(config: &DetectConfig) -> Self {
        ImpossibleTravel {
            max_kmh: config.travel_max_kmh,
            allowance_km: config.travel_geo_allowance_km,
            country_km: config.travel_country_accuracy_km,
            min_km: config.travel_min_km,
            users: FastMap::default(),
            swept: i64::MIN,
        }
    }

    fn compare(
        &self,
        user: &UserTravel,
        prev: &LastSignIn,
        obs: &Obs,
        (here, coarse): ((f64, f64), bool),
    ) -> Option<Finding> {
        if prev.ip.is_some() && prev.ip == obs.ip {
            return None;
        }
        let coarse_ends = u8::from(prev.coarse) + u8::from(coarse);
        // A country's centre says nothing about a move within that country.
        if coarse_ends > 0 && prev.country.is_some() && prev.country == obs.country {
            return None;
        }
        let km = haversine_km(prev.lat_lon, here);
        let effective_km = km - self.allowance_km - f64::from(coarse_ends) * self.country_km;
        if effective_km < self.min_km {
            return None;
        }
        // A minute at least: identical timestamps are not infinite speed.
        let hours = ((obs.time - prev.time).max(60_000)) as f64 / 3_600_000.0;
        let kmh = effective_km / hours;
        if kmh <= self.max_kmh {
            return None;
        }
        // A proxied end at a known egress explains the distance; a proxy new to the user
        // does not (the attacker's end), and says so.
        let proxied = (obs.proxy && known_egress(user, obs)) || (prev.proxy && prev.known_egress);
        let unfamiliar_proxy = !proxied && (obs.proxy || obs.anonymizer);
        let known_destination = obs.country.as_deref().is_some_and(|c| user.countries.contains(hash(c)));
        let (severity, confidence) = match (proxied, known_destination) {
            (true, _) => (Severity::Info, 0.3),
            (false, true) if !unfamiliar_proxy => (Severity::Low, 0.5),
            (false, _) if coarse_ends > 0 => (Severity::High, 0.6),
            (false, _) if kmh > 3.0 * self.max_kmh || unfamiliar_proxy => (Severity::High, 0.9),
            (false, _) => (Severity::High, 0.75),
        };
        let place = |city: &Option<CompactString>, country: &Option<CompactString>| {
            format!(
                "{}, {}",
                city.as_deref().unwrap_or("?"),
                country.as_deref().unwrap_or("?")
            )
        };
        let from = place(&prev.city, &prev.country);
        let to = place(&obs.city, &obs.country);
        let mut finding = Finding {
            detection: Detection::ImpossibleTravel,
            severity,
            confidence,
            user_id: obs.user_id.as_deref().map(str::to_owned),
            user_login: obs.login.as_deref().map(str::to_owned),
            src_ip: obs.ip.as_deref().map(str::to_owned),
            first_seen: prev.time,
            last_seen: obs.time,
            event_uuids: vec![prev.uuid.to_string(), obs.uuid.to_string()],
            summary: format!(
                "{} signed in from {from} and {:.0} min later from {to}: {km:.0} km at {kmh:.0} km/h{}.",
                obs.login.as_deref().unwrap_or("a user"),
                (obs.time - prev.time) as f64 / 60_000.0,
                if proxied {
                    " (through a proxy or VPN the user is known to use, so likely not travel)"
                } else if unfamiliar_proxy {
                    " (through a proxy or anonymiser new to this user)"
                } else if known_destination {
                    " (a country the user has signed in from before)"
                } else if coarse_ends > 0 {
                    " (located only to the country; distance between country centres less 1,000 km per end)"
                } else {
                    ""
                }
            ),
            evidence: evidence! {
                "distance_km" => (km * 10.0).round() / 10.0,
                "effective_distance_km" => (effective_km * 10.0).round() / 10.0,
                // Two decimals: a value JSON gives back exactly.
                "elapsed_minutes" => ((obs.time - prev.time) as f64 / 600.0).round() / 100.0,
                "speed_kmh" => kmh.round(),
                "threshold_kmh" => self.max_kmh,
                "from" => serde_json::json!({"ip": prev.ip, "city": prev.city, "country": prev.country, "lat": prev.lat_lon.0, "lon": prev.lat_lon.1}),
                "to" => serde_json::json!({"ip": obs.ip, "city": obs.city, "country": obs.country, "lat": here.0, "lon": here.1}),
                "proxy_or_vpn" => proxied,
                "unfamiliar_proxy" => unfamiliar_proxy,
                "known_destination" => known_destination,
            },
            mitre: &["T1078"],
        };
        if coarse_ends > 0 {
            finding.evidence.insert("country_level_ends".into(), coarse_ends.into());
        }
        if obs.okta != 0 {
            // Okta's Velocity behaviour agreeing (or not) is worth a look.
            finding
                .evidence
                .insert("okta".into(), okta_flags::names(obs.okta).into());
        }
        Some(finding)
    }
}

impl WindowedDetector for ImpossibleTravel {
    fn name(&self) -> &'static str {
        "impossible_travel"
    }

    fn on_event(&mut self, obs: &Obs, out: &mut Emit) {
        if obs.kind != Kind::SignIn {
            return;
        }
        let (Some(user_id), Some(here)) = (obs.user_id.as_deref(), position(obs)) else {
            return;
        };
        let state = self.users.remove(user_id).unwrap_or_default();
        if let Some(prev) = &state.last
            && let Some(f) = self.compare(&state, prev, obs, here)
        {
            out.findings.push(f);
        }
        self.remember(user_id, state, obs, here);
    }

    fn seed(&mut self, obs: &Obs) {
        if let (Kind::SignIn, Some(user_id), Some(here)) = (obs.kind, obs.user_id.as_deref(), position(obs)) {
            let state = self.users.remove(user_id).unwrap_or_default();
            self.remember(user_id, state, obs, here);
        }
    }

    fn on_watermark(&mut self, watermark: i64, _: &mut Emit) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            self.users
                .retain(|_, u| u.last.as_ref().is_some_and(|l| now - l.time < FORGET_MS));
        }
    }

    crate::keyed_state!(users);
}

impl ImpossibleTravel {
    /// Makes `obs` the user's last sign-in.
    fn remember(&mut self, user_id: &str, mut state: UserTravel, obs: &Obs, (here, coarse): ((f64, f64), bool)) {
        if let Some(c) = obs.country.as_deref() {
            state.countries.insert(hash(c), KNOWN_COUNTRIES);
        }
        // Judged before this sign-in's network joins the known ones.
        let known = known_egress(&state, obs);
        if let Some(a) = obs.asn {
            state.networks.insert(a as u64, KNOWN_NETWORKS);
        }
        state.last = Some(LastSignIn {
            time: obs.time,
            uuid: obs.uuid.clone(),
            ip: obs.ip.clone(),
            lat_lon: here,
            country: obs.country.clone(),
            city: obs.city.clone(),
            proxy: obs.proxy,
            known_egress: known,
            coarse,
        });
        self.users.insert(user_id.into(), state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::observation::Kind;

    const NYC: (f64, f64) = (40.71, -74.0);
    const SINGAPORE: (f64, f64) = (1.35, 103.82);
    const FRANKFURT: (f64, f64) = (50.11, 8.68);

    fn sign_in(user: &str, minute: i64, at: (f64, f64), ip: &str, asn: i64) -> Obs {
        Obs {
            user_id: Some(user.into()),
            lat_lon: Some(at),
            country: Some("X".into()),
            city: Some("Y".into()),
            asn: Some(asn),
            ..Obs::for_test(Kind::SignIn, &format!("{user}@example.com"), minute, ip)
        }
    }

    fn run(events: &[Obs]) -> Vec<Finding> {
        let mut d = ImpossibleTravel::new(&DetectConfig::default());
        let mut out = Emit::default();
        for e in events {
            d.on_event(e, &mut out);
        }
        out.findings
    }

    #[test]
    fn a_proxy_new_to_the_user_is_no_excuse_but_a_known_egress_is() {
        // The attacker: the user's password used from a hosting network flagged as a proxy,
        // half an hour after the user signed in at home.
        let attacker = Obs {
            proxy: true,
            ..sign_in("ana", 30, SINGAPORE, "203.0.113.50", 14061)
        };
        let f = run(&[sign_in("ana", 0, NYC, "198.51.100.1", 7922), attacker]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::High, "{}", f[0].summary);
        assert!(f[0].summary.contains("new to this user"), "{}", f[0].summary);

        // The look-alike: the user's corporate VPN egress, used before, far from home.
        let vpn = |minute| Obs {
            proxy: true,
            ..sign_in("ben", minute, FRANKFURT, "192.0.2.10", 13335)
        };
        let f = run(&[vpn(0), sign_in("ben", 600, NYC, "198.51.100.2", 7922), vpn(630)]);
        assert!(
            f.iter().all(|f| f.severity == Severity::Info),
            "{:?}",
            f.iter().map(|f| &f.summary).collect::<Vec<_>>()
        );
        // A corporate tunnel Okta marks as not anonymising, the first time.
        let zscaler = Obs {
            proxy: true,
            corporate_tunnel: true,
            ..sign_in("cai", 25, FRANKFURT, "192.0.2.20", 62044)
        };
        let f = run(&[sign_in("cai", 0, NYC, "198.51.100.3", 7922), zscaler]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Info);
        // An anonymiser is never a known egress, even on a network seen before.
        let tor = |minute| Obs {
            proxy: true,
            anonymizer: true,
            ..sign_in("dee", minute, FRANKFURT, "192.0.2.30", 24940)
        };
        let f = run(&[tor(0), sign_in("dee", 600, NYC, "198.51.100.4", 7922), tor(630)]);
        assert_eq!(f.last().map(|f| f.severity), Some(Severity::High));
    }

    fn located_in(user: &str, minute: i64, country: &str, at: Option<(f64, f64)>, city: Option<&str>, ip: &str) -> Obs {
        Obs {
            user_id: Some(user.into()),
            lat_lon: at,
            country: Some(country.into()),
            city: city.map(Into::into),
            asn: Some(7922),
            ..Obs::for_test(Kind::SignIn, &format!("{user}@example.com"), minute, ip)
        }
    }

    #[test]
    fn countries_compare_without_coordinates_and_country_centres_widen_the_allowance() {
        let nyc = |minute| {
            located_in(
                "eve",
                minute,
                "United States",
                Some(NYC),
                Some("New York"),
                "198.51.100.9",
            )
        };
        // No coordinates at the far end: its country's centre, 1,000 km less.
        let f = run(&[nyc(0), located_in("eve", 60, "Russia", None, None, "203.0.113.77")]);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].severity, f[0].confidence), (Severity::High, 0.6));
        assert_eq!(f[0].evidence["country_level_ends"], 1);
        // Geo-IP's "somewhere in the United States" point is 1,800 km from New York: the
        // same country at country accuracy is no travel.
        let kansas = located_in(
            "eve",
            30,
            "United States",
            Some((37.751, -97.822)),
            Some("Wichita"),
            "198.51.7.7",
        );
        assert!(run(&[nyc(0), kansas]).is_empty());
        // Neighbours at country level within the hour: Germany to the Netherlands is no
        // more than the widened allowance.
        let f = run(&[
            located_in("fay", 0, "Germany", None, None, "198.51.100.10"),
            located_in("fay", 50, "Netherlands", None, None, "198.51.100.11"),
        ]);
        assert!(f.is_empty(), "{:?}", f.iter().map(|f| &f.summary).collect::<Vec<_>>());
        // Without coordinates or a known country nothing is compared.
        assert!(run(&[nyc(0), located_in("eve", 10, "Atlantis", None, None, "203.0.113.78")]).is_empty());
    }
}
