//! The behavioural vector of a user: a fixed layout of hashed histograms and two ratios.
//!
//! | dims | block | what is counted |
//! | --- | --- | --- |
//! | 0–15 | countries | geo-IP country of the user's events |
//! | 16–31 | ASNs | autonomous system of the client IP |
//! | 32–47 | devices | device token (`dtHash`), else fingerprint, else OIE device id |
//! | 48–55 | user-agent families | browser × OS as Okta parses them |
//! | 56–71 | apps | the `AppInstance` target (sign-ins to, SSO into) |
//! | 72–95 | event types | `eventType` |
//! | 96–119 | hour of day | UTC hour of the event |
//! | 120 | failure ratio | events with outcome `FAILURE` or `DENY` / events |
//! | 121 | MFA-denial ratio | push denials / MFA events |
//!
//! Values are hashed (XXH3, stable across builds) into their block's buckets. Each block is
//! scaled to unit length (so the dot product of two blocks is the cosine of the two
//! histograms: 1 for the same mix of values, 0 for disjoint ones, and dominated by each
//! user's habitual values rather than the odd exception), the blocks are weighted equally,
//! and the whole vector is scaled to unit length for cosine distance. Two users are similar when they sign
//! in from the same places, networks, devices and clients, to the same apps, doing the same
//! things at the same hours, with the same failure habits.
//!
//! Counts are kept twice: over the user's lifetime, and decayed with a half-life (recent
//! behaviour). The indexed vector is the recent one; the drift score is how far the recent
//! vector has moved from the lifetime one: their angle, scaled so that 0 is unchanged and 1
//! is orthogonal (nothing in common). The angle rather than `1 − cosine` because it is a
//! metric and spreads the small changes that matter (cosine 0.9 is a drift of 0.29).

use idgw_schemas::SemanticEvent;
use serde::{Deserialize, Serialize};

use crate::detect::observation::{Obs, device_hash, hash, ua_family};
use crate::detect::windowed::FastMap;

type FastSet = std::collections::HashSet<Box<str>, foldhash::fast::RandomState>;

/// `(name, first dimension, buckets)` of every histogram block.
pub const BLOCKS: [(&str, usize, usize); 7] = [
    ("country", 0, 16),
    ("asn", 16, 16),
    ("device", 32, 16),
    ("ua_family", 48, 8),
    ("app", 56, 16),
    ("event_type", 72, 24),
    ("hour", 96, 24),
];
/// Histogram dimensions.
const HIST: usize = 120;
/// Counters kept after the histograms: events, failures, MFA events, push denials.
const EVENTS: usize = HIST;
const FAILURES: usize = HIST + 1;
const MFA: usize = HIST + 2;
const DENIALS: usize = HIST + 3;
const SLOTS: usize = HIST + 4;
/// The vector's dimension: the histograms and the two ratios.
pub const DIM: usize = HIST + 2;

/// The facts of one event the profile counts (hashes, so nothing is allocated).
#[derive(Debug, Clone, Copy, Default)]
struct Facet {
    time: i64,
    country: Option<u64>,
    asn: Option<i64>,
    device: Option<u64>,
    ua_family: Option<u64>,
    app: Option<u64>,
    event_type: u64,
    failure: bool,
    mfa: bool,
    denial: bool,
}

impl Facet {
    fn of(ev: &SemanticEvent<'_>) -> Facet {
        let result = ev.outcome.result.as_deref();
        let client = &ev.client;
        let has_ua = client.browser.is_some() || client.os.is_some();
        let denial = ev.event_type == "user.mfa.okta_verify.deny_push"
            || ev.auth.push_response.as_deref() == Some("OV_RESPONSE_DENY");
        Facet {
            time: ev.event_time.timestamp_millis(),
            country: client.geo.as_ref().and_then(|g| g.country.as_deref()).map(hash),
            asn: ev.network.asn,
            device: device_hash(ev),
            ua_family: has_ua.then(|| ua_family(client.browser.as_deref(), client.os.as_deref())),
            app: ev
                .targets
                .iter()
                .find(|t| t.kind.as_deref() == Some("AppInstance"))
                .and_then(|t| t.display_name.as_deref().or(t.id.as_deref()))
                .map(hash),
            event_type: hash(&ev.event_type),
            failure: matches!(result, Some("FAILURE" | "DENY")),
            mfa: ev.auth.factor.is_some() || ev.event_type.starts_with("user.mfa") || denial,
            denial,
        }
    }

    /// A historical successful sign-in (batch baselines know no app or factor).
    fn of_obs(obs: &Obs) -> Facet {
        Facet {
            time: obs.time,
            country: obs.country.as_deref().map(hash),
            asn: obs.asn,
            device: obs.device,
            ua_family: Some(obs.ua_family),
            app: None,
            event_type: hash("user.session.start"),
            failure: false,
            mfa: false,
            denial: false,
        }
    }

    /// Adds `weight` to every slot this event counts in.
    fn add_to(&self, slots: &mut [f32], weight: f32) {
        let mut bump = |block: usize, value: u64| {
            let (_, first, len) = BLOCKS[block];
            slots[first + (value % len as u64) as usize] += weight;
        };
        if let Some(v) = self.country {
            bump(0, v);
        }
        if let Some(asn) = self.asn {
            bump(1, twox_hash::XxHash3_64::oneshot(&asn.to_le_bytes()));
        }
        if let Some(v) = self.device {
            bump(2, v);
        }
        if let Some(v) = self.ua_family {
            bump(3, v);
        }
        if let Some(v) = self.app {
            bump(4, v);
        }
        bump(5, self.event_type);
        bump(6, self.time.div_euclid(3_600_000).rem_euclid(24) as u64);
        slots[EVENTS] += weight;
        if self.failure {
            slots[FAILURES] += weight;
        }
        if self.mfa {
            slots[MFA] += weight;
        }
        if self.denial {
            slots[DENIALS] += weight;
        }
    }
}

/// One user's counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Lifetime counts.
    lifetime: Box<[f32]>,
    /// Counts decayed to `at`.
    recent: Box<[f32]>,
    /// Event time (ms) `recent` is decayed to.
    at: i64,
}

impl Profile {
    fn new() -> Self {
        Profile {
            lifetime: vec![0.0; SLOTS].into_boxed_slice(),
            recent: vec![0.0; SLOTS].into_boxed_slice(),
            at: i64::MIN,
        }
    }

    fn add(&mut self, facet: &Facet, half_life_ms: f64) {
        facet.add_to(&mut self.lifetime, 1.0);
        let weight = if self.at == i64::MIN {
            self.at = facet.time;
            1.0
        } else if facet.time >= self.at {
            // Decay what is there to the new time, then count the event at full weight.
            let factor = 0.5f64.powf((facet.time - self.at) as f64 / half_life_ms) as f32;
            if factor < 1.0 {
                self.recent.iter_mut().for_each(|c| *c *= factor);
            }
            self.at = facet.time;
            1.0
        } else {
            // A late event counts as what it would have decayed to by now.
            0.5f64.powf((self.at - facet.time) as f64 / half_life_ms) as f32
        };
        facet.add_to(&mut self.recent, weight);
    }

    /// The vector of the recent counts (unit length; all zero for an empty profile).
    pub fn vector(&self) -> Vec<f32> {
        embed(&self.recent)
    }

    /// The vector of the lifetime counts.
    pub fn lifetime_vector(&self) -> Vec<f32> {
        embed(&self.lifetime)
    }

    /// The angle between the recent and the lifetime vector over a right angle, rounded to
    /// 3 decimals: 0 when behaviour is as it always was, towards 1 when the recent
    /// behaviour shares nothing with the past (the vectors have no negative values, so the
    /// angle is at most a right angle).
    pub fn drift(&self) -> f64 {
        let cos = f64::from(dot(&self.vector(), &self.lifetime_vector())).clamp(0.0, 1.0);
        (cos.acos() / std::f64::consts::FRAC_PI_2 * 1000.0).round() / 1000.0
    }

    /// Events counted over the lifetime.
    pub fn events(&self) -> u64 {
        self.lifetime[EVENTS] as u64
    }
}

/// The dot product (the cosine of two unit vectors).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Counts → unit vector (see the module docs).
fn embed(slots: &[f32]) -> Vec<f32> {
    let mut v = vec![0.0f32; DIM];
    for (_, first, len) in BLOCKS {
        let block = &slots[first..first + len];
        let norm = dot(block, block).sqrt();
        if norm > 0.0 {
            for (out, c) in v[first..first + len].iter_mut().zip(block) {
                *out = c / norm;
            }
        }
    }
    let events = slots[EVENTS];
    if events > 0.0 {
        v[HIST] = slots[FAILURES] / events;
        v[HIST + 1] = if slots[MFA] > 0.0 {
            slots[DENIALS] / slots[MFA]
        } else {
            0.0
        };
    }
    let norm = dot(&v, &v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Every user's profile, and which changed since the vectors were last taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Behaviour {
    half_life_ms: f64,
    users: FastMap<Box<str>, Profile>,
    /// Users whose profile changed since [`Behaviour::take_dirty`] (not checkpointed: the
    /// index is flushed before every checkpoint).
    #[serde(skip)]
    dirty: FastSet,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::new(DEFAULT_HALF_LIFE_H)
    }
}

/// The recent profile's half-life when none is configured (hours).
pub const DEFAULT_HALF_LIFE_H: f64 = 168.0;

impl Behaviour {
    /// Empty, with the recent counts' half-life in hours.
    pub fn new(half_life_h: f64) -> Self {
        Behaviour {
            half_life_ms: (half_life_h * 3_600_000.0).max(1.0),
            users: FastMap::default(),
            dirty: FastSet::default(),
        }
    }

    /// Counts one event of its subject user.
    pub fn observe(&mut self, ev: &SemanticEvent<'_>) {
        let Some(id) = ev.subject_user.as_ref().and_then(|u| u.id.as_deref()) else {
            return;
        };
        self.add(id, &Facet::of(ev));
    }

    /// Counts a historical successful sign-in (batch baselines).
    pub fn seed(&mut self, obs: &Obs) {
        if let Some(id) = obs.user_id.as_deref() {
            self.add(id, &Facet::of_obs(obs));
        }
    }

    fn add(&mut self, id: &str, facet: &Facet) {
        // Looked up first: `entry` would allocate the key for every event.
        match self.users.get_mut(id) {
            Some(p) => p.add(facet, self.half_life_ms),
            None => {
                let mut p = Profile::new();
                p.add(facet, self.half_life_ms);
                self.users.insert(id.into(), p);
            }
        }
        if !self.dirty.contains(id) {
            self.dirty.insert(id.into());
        }
    }

    /// Marks a user for the next update (their payload changed: risk, login, country).
    pub fn touch(&mut self, id: &str) {
        if self.users.contains_key(id) && !self.dirty.contains(id) {
            self.dirty.insert(id.into());
        }
    }

    /// The users changed since the last call, sorted.
    pub fn take_dirty(&mut self) -> Vec<Box<str>> {
        let mut ids: Vec<Box<str>> = self.dirty.drain().collect();
        ids.sort_unstable();
        ids
    }

    /// Every user with a profile, sorted.
    pub fn all_users(&self) -> Vec<Box<str>> {
        let mut ids: Vec<Box<str>> = self.users.keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// A user's profile.
    pub fn profile(&self, id: &str) -> Option<&Profile> {
        self.users.get(id)
    }

    /// Users with a profile.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no user has a profile.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn facet(time: i64, country: &str, failure: bool) -> Facet {
        Facet {
            time,
            country: Some(hash(country)),
            asn: Some(7922),
            device: Some(hash("dev")),
            ua_family: Some(ua_family(Some("CHROME"), Some("Mac OS X"))),
            app: Some(hash("Salesforce")),
            event_type: hash("user.session.start"),
            failure,
            ..Facet::default()
        }
    }

    #[test]
    fn blocks_tile_the_histogram_dimensions() {
        let mut next = 0;
        for (name, first, len) in BLOCKS {
            assert_eq!(first, next, "block {name} starts where the previous ends");
            next = first + len;
        }
        assert_eq!(next, HIST);
        assert_eq!(DIM, HIST + 2);
    }

    #[test]
    fn vectors_are_unit_length_and_empty_profiles_are_zero() {
        let empty = Profile::new();
        assert!(empty.vector().iter().all(|x| *x == 0.0));
        let mut p = Profile::new();
        p.add(&facet(0, "United States", false), 168.0 * HOUR as f64);
        let v = p.vector();
        assert_eq!(v.len(), DIM);
        assert!((dot(&v, &v) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn same_habits_are_close_and_other_habits_are_far() {
        let hl = 168.0 * HOUR as f64;
        let mut a = Profile::new();
        let mut b = Profile::new();
        let mut c = Profile::new();
        for i in 0..20 {
            a.add(&facet(i * HOUR, "United States", false), hl);
            b.add(&facet(i * HOUR + 60_000, "United States", i % 10 == 0), hl);
            let mut f = facet(i * HOUR + 7 * HOUR, "Nigeria", true);
            f.asn = Some(37_148);
            f.device = Some(hash("other"));
            f.ua_family = Some(ua_family(Some("FIREFOX"), Some("Linux")));
            c.add(&f, hl);
        }
        let ab = dot(&a.vector(), &b.vector());
        let ac = dot(&a.vector(), &c.vector());
        assert!(ab > 0.95, "similar users: {ab}");
        assert!(ac < 0.6, "different users: {ac}");
    }

    #[test]
    fn drift_rises_when_recent_behaviour_leaves_the_past() {
        let hl = 24.0 * HOUR as f64;
        let mut p = Profile::new();
        for i in 0..200 {
            p.add(&facet(i * HOUR, "United States", false), hl);
        }
        let settled = p.drift();
        // Not exactly 0: the recent hour-of-day mix leans to the last hours.
        assert!(settled < 0.05, "steady behaviour has almost no drift: {settled}");
        for i in 0..30 {
            let mut f = facet((200 + i) * HOUR, "Romania", true);
            f.asn = Some(9050);
            f.device = Some(hash("new-device"));
            p.add(&f, hl);
        }
        // A day of sign-ins from a new country, network and device: about 0.6 of the recent
        // mass is new on three of seven blocks (block cosines ~0.7), failures rose: the
        // vectors' cosine falls to ~0.9, an angle of ~0.29 of a right angle.
        let moved = p.drift();
        assert!(
            moved > 0.2 && moved > 5.0 * settled,
            "a new country, network and device: {moved}"
        );
    }

    #[test]
    fn late_events_count_less_in_the_recent_profile() {
        let hl = HOUR as f64;
        let mut p = Profile::new();
        p.add(&facet(10 * HOUR, "United States", false), hl);
        p.add(&facet(9 * HOUR, "United States", false), hl);
        assert_eq!(p.lifetime[EVENTS], 2.0);
        assert!((p.recent[EVENTS] - 1.5).abs() < 1e-6, "{}", p.recent[EVENTS]);
    }

    #[test]
    fn dirty_users_are_taken_once() {
        let mut b = Behaviour::default();
        let obs = Obs {
            uuid: "e1".into(),
            time: 0,
            seq: 0,
            kind: crate::detect::observation::Kind::SignIn,
            user_id: Some("00u1".into()),
            login: None,
            ip: None,
            lat_lon: None,
            country: Some("Germany".into()),
            city: None,
            asn: None,
            proxy: false,
            anonymizer: false,
            corporate_tunnel: false,
            user_agent: 0,
            ua_family: 1,
            device: None,
            session: None,
            attempt: None,
            event_type: 0,
            ua_major: None,
            okta_client: false,
            okta: 0,
        };
        b.seed(&obs);
        assert_eq!(b.take_dirty(), vec![Box::<str>::from("00u1")]);
        assert!(b.take_dirty().is_empty());
        b.touch("00u1");
        b.touch("unknown");
        assert_eq!(b.take_dirty().len(), 1);
        assert_eq!(b.profile("00u1").map(Profile::events), Some(1));
    }
}
