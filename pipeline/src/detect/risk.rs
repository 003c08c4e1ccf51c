//! Per-user risk with reasons, and the facts `identity_state` reports.
//!
//! Each alert adds its risk points (severity points × confidence, see
//! [`super::alerting::severity_points`]); points decay with a half-life; a user's score
//! combines the decayed points like independent probabilities,
//! `100 × (1 − Π(1 − pᵢ/100))`, so it rises with every alert, never passes 100, and one
//! critical alert outweighs many informational ones. The score is order-independent: late
//! alerts land where they belong.

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use idgw_schemas::{Alert, Detection, IdentityState, RiskLevel, RiskReason, SemanticEvent, Severity};
use serde::{Deserialize, Serialize};

use super::alerting::utc;
use super::password_spray::SPRAYED_USER_IDS;
use super::windowed::FastMap;

/// Contributions kept per user (the weakest, after decay, is dropped first).
const MAX_CONTRIBUTIONS: usize = 16;
/// The share of a password spray's points each sprayed user carries (a high spray: about
/// 18 points, "low" on its own, enough to rank the user above untouched ones).
const SPRAYED_USER_SHARE: f64 = 0.3;
/// Reasons shown in identity state.
const TOP_REASONS: usize = 5;
/// Country names kept per user.
const KNOWN_COUNTRIES: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Contribution {
    alert_id: Box<str>,
    detection: Detection,
    severity: Severity,
    points: f64,
    at: i64,
    summary: Box<str>,
    /// A share of a spray's points on a user it tried (one per user: the largest).
    #[serde(default)]
    shared: bool,
}

/// A contribution's points at `now` after decay (none before it happened).
fn decayed(c: &Contribution, now: i64, half_life_ms: f64) -> f64 {
    c.points * 0.5f64.powf((now - c.at).max(0) as f64 / half_life_ms)
}

/// Risk contributions per user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RiskBook {
    half_life_ms: f64,
    users: FastMap<CompactString, Vec<Contribution>>,
}

impl RiskBook {
    pub fn new(half_life_h: f64) -> Self {
        RiskBook {
            half_life_ms: (half_life_h * 3_600_000.0).max(1.0),
            users: FastMap::default(),
        }
    }

    fn decayed(&self, c: &Contribution, now: i64) -> f64 {
        decayed(c, now, self.half_life_ms)
    }

    /// Adds an alert's points to its user, and a share of a password spray's to each user
    /// it tried that exists (the spray knows their logins; one of them may fall next).
    pub fn add(&mut self, alert: &Alert) {
        self.add_for(alert, |_| true);
    }

    /// [`RiskBook::add`] for the users `mine` accepts only (a lane keyed by user taking an
    /// alert raised by a lane keyed by source, which names users of other lanes too).
    pub fn add_for(&mut self, alert: &Alert, mine: impl Fn(&str) -> bool) {
        if let Some(user) = alert.user_id.as_deref().filter(|u| mine(u)) {
            self.contribute(user, alert, alert.risk_score, false);
        }
        if alert.detection == Detection::PasswordSpray
            && let Some(ids) = alert.evidence.get(SPRAYED_USER_IDS).and_then(|v| v.as_array())
        {
            for id in ids.iter().filter_map(|v| v.as_str()) {
                if Some(id) != alert.user_id.as_deref() && mine(id) {
                    self.contribute(id, alert, alert.risk_score * SPRAYED_USER_SHARE, true);
                }
            }
        }
    }

    /// Adds `points` of `alert` to `user`. Spray shares do not add up: a user keeps the
    /// largest (sprays from many throwaway addresses must not push anyone to "critical").
    fn contribute(&mut self, user: &str, alert: &Alert, points: f64, shared: bool) {
        let at = alert.last_seen.timestamp_millis();
        let now = alert.detected_at.timestamp_millis();
        let half_life = self.half_life_ms;
        let list = self.users.entry(user.into()).or_default();
        if list.iter().any(|c| *c.alert_id == *alert.alert_id) {
            return;
        }
        if shared && let Some(i) = list.iter().position(|c| c.shared) {
            if decayed(&list[i], now, half_life) >= points {
                return;
            }
            list.remove(i);
        }
        list.push(Contribution {
            alert_id: alert.alert_id.as_str().into(),
            detection: alert.detection,
            severity: alert.severity,
            points,
            at,
            summary: alert.summary.as_str().into(),
            shared,
        });
        if list.len() > MAX_CONTRIBUTIONS
            && let Some(weakest) = list
                .iter()
                .enumerate()
                .min_by(|a, b| decayed(a.1, now, half_life).total_cmp(&decayed(b.1, now, half_life)))
                .map(|(i, _)| i)
        {
            list.remove(weakest);
        }
    }

    /// The user's score at `now` and the reasons, largest first.
    pub fn score(&self, user: &str, now: i64) -> (f64, Vec<RiskReason>) {
        let Some(list) = self.users.get(user) else {
            return (0.0, Vec::new());
        };
        let mut reasons: Vec<RiskReason> = list
            .iter()
            .map(|c| RiskReason {
                detection: c.detection,
                alert_id: c.alert_id.to_string(),
                severity: c.severity,
                contribution: (self.decayed(c, now) * 10.0).round() / 10.0,
                summary: c.summary.to_string(),
                at: utc(c.at),
            })
            .collect();
        let keep = 1.0 - reasons.iter().map(|r| 1.0 - r.contribution / 100.0).product::<f64>();
        reasons.sort_by(|a, b| b.contribution.total_cmp(&a.contribution).then(b.at.cmp(&a.at)));
        reasons.truncate(TOP_REASONS);
        ((100.0 * keep * 10.0).round() / 10.0, reasons)
    }

    /// Drops contributions that decayed below a tenth of a point.
    pub fn expire(&mut self, now: i64) {
        let half_life = self.half_life_ms;
        self.users.retain(|_, list| {
            list.retain(|c| decayed(c, now, half_life) >= 0.1);
            !list.is_empty()
        });
    }
}

/// What identity state reports of one user, besides risk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Facts {
    login: Option<CompactString>,
    events: u64,
    alerts: u64,
    last_seen: i64,
    last_ip: Option<CompactString>,
    last_country: Option<CompactString>,
    last_city: Option<CompactString>,
    countries: Vec<CompactString>,
    okta_status: Option<Box<str>>,
    outlier: Option<f64>,
}

/// The latest facts of every user seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Identities {
    users: FastMap<CompactString, Facts>,
}

impl Facts {
    /// Adds a country to the known ones (the oldest is forgotten beyond the cap).
    fn remember_country(&mut self, country: &str) {
        if self.countries.iter().any(|c| &**c == country) {
            return;
        }
        if self.countries.len() >= KNOWN_COUNTRIES {
            self.countries.remove(0);
        }
        self.countries.push(country.into());
    }
}

/// The Okta status an event leaves its subject user in, when it changes it.
fn status_after(ev: &SemanticEvent<'_>) -> Option<&'static str> {
    if !matches!(ev.outcome.result.as_deref(), Some("SUCCESS") | None) {
        return None;
    }
    Some(match &*ev.event_type {
        "user.lifecycle.suspend" => "SUSPENDED",
        "user.lifecycle.unsuspend" | "user.lifecycle.activate" | "user.lifecycle.reactivate" => "ACTIVE",
        "user.lifecycle.deactivate" => "DEPROVISIONED",
        "user.account.lock" | "user.account.lock.limit" => "LOCKED_OUT",
        "user.account.unlock" | "user.account.unlock_by_admin" => "ACTIVE",
        "user.account.reset_password" => "RECOVERY",
        "user.account.update_password" => "ACTIVE",
        _ => return None,
    })
}

impl Identities {
    /// Records one event of its subject user.
    pub fn observe(&mut self, ev: &SemanticEvent<'_>) {
        let Some(subject) = ev.subject_user.as_ref() else {
            return;
        };
        let Some(id) = subject.id.as_deref() else {
            return;
        };
        let t = ev.event_time.timestamp_millis();
        let facts = self.facts(id);
        facts.events += 1;
        if facts.login.is_none() {
            facts.login = subject.login.as_deref().map(Into::into);
        }
        if let Some(status) = status_after(ev) {
            facts.okta_status = Some(status.into());
        }
        // Only the user's own actions say where the user is (an admin acting on them does not).
        let own = ev.actor.as_ref().and_then(|a| a.id.as_deref()) == Some(id);
        if t >= facts.last_seen {
            facts.last_seen = t;
            if own && ev.client.ip.is_some() {
                facts.last_ip = ev.client.ip.as_deref().map(Into::into);
                let geo = ev.client.geo.as_ref();
                facts.last_country = geo.and_then(|g| g.country.as_deref()).map(Into::into);
                facts.last_city = geo.and_then(|g| g.city.as_deref()).map(Into::into);
            }
        }
        let success = ev.event_type == "user.session.start" && ev.outcome.result.as_deref() == Some("SUCCESS");
        if success && let Some(country) = ev.client.geo.as_ref().and_then(|g| g.country.as_deref()) {
            facts.remember_country(country);
        }
    }

    /// The user's facts, created when new (looked up first: `entry` would allocate the key
    /// for every event).
    fn facts(&mut self, id: &str) -> &mut Facts {
        if !self.users.contains_key(id) {
            self.users.insert(id.into(), Facts::default());
        }
        self.users.get_mut(id).unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Records a historical successful sign-in (batch baselines): counts it, and updates
    /// login, last location and known countries.
    pub fn seed(&mut self, obs: &super::observation::Obs) {
        let Some(id) = obs.user_id.as_deref() else {
            return;
        };
        let facts = self.facts(id);
        facts.events += 1;
        if facts.login.is_none() {
            facts.login.clone_from(&obs.login);
        }
        if obs.time >= facts.last_seen {
            facts.last_seen = obs.time;
            facts.last_ip.clone_from(&obs.ip);
            facts.last_country.clone_from(&obs.country);
            facts.last_city.clone_from(&obs.city);
        }
        if let Some(country) = obs.country.as_deref() {
            facts.remember_country(country);
        }
    }

    /// Counts an alert against its user.
    pub fn alerted(&mut self, alert: &Alert) {
        if let Some(user) = alert.user_id.as_deref() {
            let facts = self.users.entry(user.into()).or_default();
            facts.alerts += 1;
            if facts.login.is_none() {
                facts.login = alert.user_login.as_deref().map(Into::into);
            }
        }
    }

    /// True when the user has identity state here.
    pub fn knows(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Sets a user's outlier score.
    pub fn outlier(&mut self, user: &str, score: f64) {
        if let Some(facts) = self.users.get_mut(user) {
            facts.outlier = Some(score);
        }
    }

    /// A user's login and last country, when known.
    pub fn label(&self, user: &str) -> (Option<&str>, Option<&str>) {
        match self.users.get(user) {
            Some(f) => (f.login.as_deref(), f.last_country.as_deref()),
            None => (None, None),
        }
    }

    /// Users known.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no user is known.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Every user's state as of `now` (ms), sorted by user id.
    pub fn states(&self, risk: &RiskBook, now: i64) -> Vec<IdentityState> {
        let updated_at: DateTime<Utc> = utc(now);
        let mut out: Vec<IdentityState> = self
            .users
            .iter()
            .map(|(id, f)| {
                let (risk_score, top_reasons) = risk.score(id, now);
                IdentityState {
                    user_id: id.to_string(),
                    user_login: f.login.as_deref().map(str::to_owned),
                    risk_score,
                    risk_level: RiskLevel::from_score(risk_score),
                    top_reasons,
                    event_count: f.events,
                    alert_count: f.alerts,
                    last_seen: (f.events > 0).then(|| utc(f.last_seen)),
                    last_ip: f.last_ip.as_deref().map(str::to_owned),
                    last_country: f.last_country.as_deref().map(str::to_owned),
                    last_city: f.last_city.as_deref().map(str::to_owned),
                    known_countries: f.countries.iter().map(|c| c.to_string()).collect(),
                    outlier_score: f.outlier,
                    drift_score: None,
                    okta_status: f.okta_status.as_deref().map(str::to_owned),
                    updated_at,
                }
            })
            .collect();
        out.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use idgw_schemas::{Alert, Detection, Severity};

    use super::*;

    const HOUR: i64 = 3_600_000;

    fn alert(id: &str, points: f64, at: i64) -> Alert {
        Alert {
            alert_id: id.into(),
            detection: Detection::BruteForce,
            severity: Severity::High,
            risk_score: points,
            confidence: 1.0,
            user_id: Some("u1".into()),
            user_login: None,
            src_ip: None,
            first_seen: utc(at),
            last_seen: utc(at),
            detected_at: utc(at),
            event_uuids: Vec::new(),
            summary: id.into(),
            evidence: serde_json::Map::new(),
            mitre: Vec::new(),
        }
    }

    #[test]
    fn scores_combine_like_probabilities_decay_and_ignore_repeats() {
        let mut book = RiskBook::new(24.0);
        book.add(&alert("a", 50.0, 0));
        book.add(&alert("b", 50.0, 0));
        book.add(&alert("b", 50.0, 0));
        let (score, reasons) = book.score("u1", 0);
        assert_eq!(score, 75.0, "1 - 0.5 * 0.5; the repeated alert counts once");
        assert_eq!(reasons.len(), 2);
        let (later, reasons) = book.score("u1", 24 * HOUR);
        assert_eq!(reasons[0].contribution, 25.0, "one half-life halves the points");
        assert_eq!(later, 43.8, "1 - 0.75 * 0.75, rounded to a tenth");
        // Order does not matter: the same alerts the other way round give the same score.
        let mut other = RiskBook::new(24.0);
        other.add(&alert("b", 50.0, 0));
        other.add(&alert("a", 50.0, 0));
        assert_eq!(other.score("u1", 24 * HOUR).0, later);
        // Long decayed contributions are dropped.
        book.expire(24 * 30 * HOUR);
        assert_eq!(book.score("u1", 24 * 30 * HOUR), (0.0, Vec::new()));
    }

    #[test]
    fn a_spray_gives_every_sprayed_user_a_share_of_its_risk() {
        let mut spray = alert("spray", 60.0, 0);
        spray.detection = Detection::PasswordSpray;
        spray.user_id = None;
        spray
            .evidence
            .insert(SPRAYED_USER_IDS.into(), serde_json::json!(["u2", "u3"]));
        let mut book = RiskBook::new(24.0);
        book.add(&spray);
        for user in ["u2", "u3"] {
            let (score, reasons) = book.score(user, 0);
            assert_eq!(score, 18.0, "{user}: 60 x 0.3");
            assert_eq!(reasons[0].alert_id, "spray");
        }
        assert_eq!(book.score("u1", 0).0, 0.0);
        // A second spray from another address: the share is not added, the larger is kept.
        let mut again = spray.clone();
        again.alert_id = "spray2".into();
        book.add(&again);
        assert_eq!(book.score("u2", 0).0, 18.0);
        // Other detections' evidence lists give nobody risk.
        let mut other = alert("bf", 50.0, 0);
        other
            .evidence
            .insert(SPRAYED_USER_IDS.into(), serde_json::json!(["u4"]));
        book.add(&other);
        assert_eq!(book.score("u4", 0).0, 0.0);
    }
}
