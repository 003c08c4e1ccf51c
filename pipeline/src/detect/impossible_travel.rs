//! `impossible_travel`: two consecutive successful sign-ins of one user, too far apart for
//! the time between them.
//!
//! Distance is haversine minus a geo-IP accuracy allowance; sign-ins from the same IP,
//! without coordinates, or closer than the minimum distance are never compared. Proxy,
//! VPN and cloud egress addresses, and destinations the user already signed in from, lower
//! the severity and confidence instead of firing high.

use compact_str::CompactString;
use idgw_schemas::{Detection, Severity};
use serde::{Deserialize, Serialize};

use super::alerting::Finding;
use super::config::DetectConfig;
use super::observation::{Kind, Obs, hash};
use super::windowed::{CappedSet, Emit, FastMap, WindowedDetector, haversine_km, hourly};
use crate::evidence;

/// Sign-ins older than this are forgotten (a month).
const FORGET_MS: i64 = 30 * 24 * 3600 * 1000;
/// Countries remembered per user.
const KNOWN_COUNTRIES: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LastSignIn {
    time: i64,
    uuid: CompactString,
    ip: Option<CompactString>,
    lat_lon: (f64, f64),
    country: Option<CompactString>,
    city: Option<CompactString>,
    proxy: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserTravel {
    last: Option<LastSignIn>,
    countries: CappedSet,
}

/// The detector.
#[derive(Debug)]
pub struct ImpossibleTravel {
    max_kmh: f64,
    allowance_km: f64,
    min_km: f64,
    users: FastMap<CompactString, UserTravel>,
    swept: i64,
}

impl ImpossibleTravel {
    pub fn new(config: &DetectConfig) -> Self {
        ImpossibleTravel {
            max_kmh: config.travel_max_kmh,
            allowance_km: config.travel_geo_allowance_km,
            min_km: config.travel_min_km,
            users: FastMap::default(),
            swept: i64::MIN,
        }
    }

    fn compare(&self, user: &UserTravel, prev: &LastSignIn, obs: &Obs, here: (f64, f64)) -> Option<Finding> {
        if prev.ip.is_some() && prev.ip == obs.ip {
            return None;
        }
        let km = haversine_km(prev.lat_lon, here);
        let effective_km = km - self.allowance_km;
        if effective_km < self.min_km {
            return None;
        }
        // A minute at least: identical timestamps are not infinite speed.
        let hours = ((obs.time - prev.time).max(60_000)) as f64 / 3_600_000.0;
        let kmh = effective_km / hours;
        if kmh <= self.max_kmh {
            return None;
        }
        let proxied = obs.proxy || prev.proxy;
        let known_destination = obs.country.as_deref().is_some_and(|c| user.countries.contains(hash(c)));
        let (severity, confidence) = match (proxied, known_destination) {
            (true, _) => (Severity::Info, 0.3),
            (false, true) => (Severity::Low, 0.5),
            (false, false) if kmh > 3.0 * self.max_kmh => (Severity::High, 0.9),
            (false, false) => (Severity::High, 0.75),
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
        Some(Finding {
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
                    " (through a proxy or VPN, so likely not travel)"
                } else if known_destination {
                    " (a country the user has signed in from before)"
                } else {
                    ""
                }
            ),
            evidence: evidence! {
                "distance_km" => (km * 10.0).round() / 10.0,
                "effective_distance_km" => (effective_km * 10.0).round() / 10.0,
                "elapsed_minutes" => (obs.time - prev.time) as f64 / 60_000.0,
                "speed_kmh" => kmh.round(),
                "threshold_kmh" => self.max_kmh,
                "from" => serde_json::json!({"ip": prev.ip, "city": prev.city, "country": prev.country, "lat": prev.lat_lon.0, "lon": prev.lat_lon.1}),
                "to" => serde_json::json!({"ip": obs.ip, "city": obs.city, "country": obs.country, "lat": here.0, "lon": here.1}),
                "proxy_or_vpn" => proxied,
                "known_destination" => known_destination,
            },
            mitre: &["T1078"],
        })
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
        let (Some(user_id), Some(here)) = (obs.user_id.as_deref(), obs.lat_lon) else {
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
        if let (Kind::SignIn, Some(user_id), Some(here)) = (obs.kind, obs.user_id.as_deref(), obs.lat_lon) {
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
    fn remember(&mut self, user_id: &str, mut state: UserTravel, obs: &Obs, here: (f64, f64)) {
        if let Some(c) = obs.country.as_deref() {
            state.countries.insert(hash(c), KNOWN_COUNTRIES);
        }
        state.last = Some(LastSignIn {
            time: obs.time,
            uuid: obs.uuid.clone(),
            ip: obs.ip.clone(),
            lat_lon: here,
            country: obs.country.clone(),
            city: obs.city.clone(),
            proxy: obs.proxy,
        });
        self.users.insert(user_id.into(), state);
    }
}
