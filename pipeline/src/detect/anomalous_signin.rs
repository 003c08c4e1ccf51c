//! `anomalous_signin`: a successful sign-in unlike the user's own history.
//!
//! Two layers. Per user, a compact profile (capped sets of hashed countries, cities, ASNs,
//! devices and user-agent families, and an hour-of-day histogram) turns each sign-in into
//! novelty features that are already normalized to that user: "new country for *this*
//! user", "an hour *this* user rarely signs in". One shared random cut forest (`rcf3`)
//! learns which combinations of those features are common across the tenant and scores
//! each sign-in; an alert needs both a high model score and enough novelty, and only after
//! the user has a minimum history.

use idgw_schemas::{Detection, Severity};
use rcf3::Forest;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::alerting::Finding;
use super::config::DetectConfig;
use super::observation::{Kind, Obs, hash, okta_flags};
use super::windowed::{CappedSet, Deferred, Emit, FastMap, WindowedDetector, deferred, from_raw, hourly};
use crate::evidence;

/// Profiles unused this long are forgotten (90 days).
const FORGET_MS: i64 = 90 * 24 * 3600 * 1000;
const FEATURES: usize = 7;
const FEATURE_NAMES: [&str; FEATURES] = [
    "new_country",
    "new_city",
    "new_asn",
    "new_device",
    "new_user_agent_family",
    "unusual_hour",
    "proxy",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Profile {
    signins: u32,
    last_time: i64,
    countries: CappedSet,
    cities: CappedSet,
    asns: CappedSet,
    devices: CappedSet,
    ua_families: CappedSet,
    hours: [u16; 24],
}

impl Profile {
    fn features(&self, obs: &Obs) -> [f32; FEATURES] {
        let novel = |set: &CappedSet, v: Option<u64>| match v {
            Some(h) => f32::from(u8::from(!set.contains(h))),
            None => 0.0,
        };
        let hour = hour_of(obs.time);
        let total: u32 = self.hours.iter().map(|&h| u32::from(h)).sum();
        let near: u32 = [23, 0, 1].iter().map(|d| u32::from(self.hours[(hour + d) % 24])).sum();
        let rarity = if total == 0 {
            0.0
        } else {
            1.0 - near as f32 / total as f32
        };
        [
            novel(&self.countries, obs.country.as_deref().map(hash)),
            novel(&self.cities, obs.city.as_deref().map(hash)),
            novel(&self.asns, obs.asn.map(|a| a as u64)),
            novel(&self.devices, obs.device),
            novel(&self.ua_families, Some(obs.ua_family)),
            rarity,
            f32::from(u8::from(obs.proxy)),
        ]
    }

    fn learn(&mut self, obs: &Obs) {
        self.signins = self.signins.saturating_add(1);
        self.last_time = self.last_time.max(obs.time);
        if let Some(c) = obs.country.as_deref() {
            self.countries.insert(hash(c), 8);
        }
        if let Some(c) = obs.city.as_deref() {
            self.cities.insert(hash(c), 16);
        }
        if let Some(a) = obs.asn {
            self.asns.insert(a as u64, 16);
        }
        if let Some(d) = obs.device {
            self.devices.insert(d, 16);
        }
        self.ua_families.insert(obs.ua_family, 8);
        let slot = &mut self.hours[hour_of(obs.time)];
        *slot = slot.saturating_add(1);
    }
}

fn hour_of(ms: i64) -> usize {
    (ms.rem_euclid(86_400_000) / 3_600_000) as usize
}

/// Novelty points an alert needs: more than a new network, device and browser together
/// (a user's second device on their phone's carrier is that, and ordinary).
const MIN_POINTS: f32 = 3.5;

/// Novelty points enough when Okta itself rated the sign-in high risk or suspected a
/// threat: a new country, or two of network, device and browser.
const OKTA_MIN_POINTS: f32 = 2.0;

/// Novelty points: a new country weighs double, a new city half (cities shift with
/// geo-IP), an hour the user almost never signs in at counts one.
fn novelty(f: &[f32; FEATURES]) -> f32 {
    2.0 * f[0] + 0.5 * f[1] + f[2] + f[3] + f[4] + if f[5] > 0.9 { 1.0 } else { 0.0 }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    profiles: FastMap<Box<str>, Profile>,
    model: Forest,
}

/// The detector.
#[derive(Debug)]
pub struct AnomalousSignin {
    min_history: u32,
    threshold: f64,
    state: State,
    swept: i64,
}

impl AnomalousSignin {
    pub fn new(config: &DetectConfig) -> Self {
        AnomalousSignin {
            min_history: config.anomaly_min_history,
            threshold: config.anomaly_model_threshold,
            state: State {
                profiles: FastMap::default(),
                model: new_model(),
            },
            swept: i64::MIN,
        }
    }
}

/// The shared model: small (it scores after 33 sign-ins with history), seeded (so replays
/// and restores give identical scores).
fn new_model() -> Forest {
    Forest::builder(FEATURES)
        .num_trees(40)
        .capacity(128)
        .seed(0x1d9_a11e)
        .build()
        .unwrap_or_else(|e| unreachable!("a fixed, valid forest configuration: {e}"))
}

impl WindowedDetector for AnomalousSignin {
    fn name(&self) -> &'static str {
        "anomalous_signin"
    }

    fn on_event(&mut self, obs: &Obs, out: &mut Emit) {
        if obs.kind != Kind::SignIn {
            return;
        }
        let Some(user) = obs.user_id.as_deref() else {
            return;
        };
        let profile = self.state.profiles.entry(user.into()).or_default();
        if profile.signins >= self.min_history {
            let features = profile.features(obs);
            let score = match self.state.model.update_and_score(&features) {
                Ok(s) if self.state.model.is_ready() => s,
                _ => 0.0,
            };
            out.outliers
                .push((user.into(), (score / (2.0 * self.threshold)).clamp(0.0, 1.0)));
            let points = novelty(&features);
            // Okta's own verdict (a high sign-in risk, ThreatInsight's suspicion) on a
            // sign-in that is also new for the user is enough on its own.
            let okta_alarm = obs.okta & (okta_flags::RISK_HIGH | okta_flags::THREAT_SUSPECTED) != 0;
            if (score > self.threshold && points >= MIN_POINTS) || (okta_alarm && points >= OKTA_MIN_POINTS) {
                // A new country on a known device and browser is travel; with a new device
                // or browser too it is what an account takeover looks like.
                let new_client = features[3] > 0.0 || features[4] > 0.0;
                let severity = if (features[0] > 0.0 && new_client && points >= 4.0) || okta_alarm {
                    Severity::Medium
                } else {
                    Severity::Low
                };
                let okta = okta_flags::names(obs.okta);
                let unusual: Vec<&str> = FEATURE_NAMES
                    .iter()
                    .zip(features)
                    .filter(|(_, v)| *v > 0.9)
                    .map(|(n, _)| *n)
                    .collect();
                let mut finding = Finding {
                    detection: Detection::AnomalousSignin,
                    severity,
                    confidence: (0.4 + 0.1 * f64::from(points)).min(0.9),
                    user_id: Some(user.to_owned()),
                    user_login: obs.login.as_deref().map(str::to_owned),
                    src_ip: obs.ip.as_deref().map(str::to_owned),
                    first_seen: obs.time,
                    last_seen: obs.time,
                    event_uuids: vec![obs.uuid.to_string()],
                    summary: format!(
                        "{} signed in unlike their last {} sign-ins: {}{}.",
                        obs.login.as_deref().unwrap_or("a user"),
                        profile.signins,
                        unusual.join(", ").replace('_', " "),
                        if okta.is_empty() {
                            String::new()
                        } else {
                            format!("; Okta: {}", okta.join(", ").replace("okta_", "").replace('_', " "))
                        }
                    ),
                    evidence: evidence! {
                        "model_score" => (score * 1000.0).round() / 1000.0,
                        "model_threshold" => self.threshold,
                        "novelty_points" => points,
                        "unusual" => unusual,
                        "history_signins" => profile.signins,
                        "country" => obs.country,
                        "city" => obs.city,
                        "asn" => obs.asn,
                    },
                    mitre: &["T1078"],
                };
                if !okta.is_empty() {
                    finding.evidence.insert("okta".into(), okta.into());
                }
                out.findings.push(finding);
            }
        }
        profile.learn(obs);
    }

    fn seed(&mut self, obs: &Obs) {
        if let Some(user) = obs.user_id.as_deref() {
            self.state.profiles.entry(user.into()).or_default().learn(obs);
        }
    }

    fn on_watermark(&mut self, watermark: i64, _: &mut Emit) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            self.state.profiles.retain(|_, p| now - p.last_time < FORGET_MS);
        }
    }

    fn snapshot(&self) -> Deferred {
        deferred(self.state.clone())
    }

    fn restore(&mut self, state: &RawValue) -> Result<(), serde_json::Error> {
        self.state = from_raw(state)?;
        Ok(())
    }

    fn keys(&self) -> usize {
        self.state.profiles.len()
    }
}
