//! SOC tuning without a rebuild: suppressions, and per-detection enable and severity.
//!
//! A **suppression** names what it matches (a detection, a user, an address or CIDR, an
//! ASN, a country; all given must match, at least one must be given), why (`reason`), who
//! owns it (`owner`) and until when (`expires`, compared with the alert's event time so a
//! replay judges old alerts as the live stream did). A suppressed alert is kept and stored,
//! marked in its evidence (`suppressed`: id, reason, owner, expiry), counted, and left out
//! of risk and of the webhook: the trail stays whole, nobody is paged. Suppressions come
//! from `[[detect.suppress]]` in the configuration and from the store's
//! `suppressions.json`, which `idgw suppress` edits.
//!
//! Per detection (`[detect.detections.<name>]`): `enabled = false` raises nothing for it
//! (counted as disabled findings), `severity` replaces the detector's severity (and the
//! risk points follow).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use idgw_schemas::{Alert, Detection, Severity};

use super::alerting::severity_points;

/// One suppression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// How `idgw suppress remove` names it (given by `idgw suppress add`; optional in the
    /// configuration).
    #[serde(default)]
    pub id: String,
    /// A detection name (`password_spray`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<String>,
    /// An Okta user id or login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// An address or CIDR block the alert's source IP falls in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The source's autonomous system number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<i64>,
    /// The source's country, as Okta names it (`United States`), case-insensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Why (required).
    pub reason: String,
    /// Who answers for it (required).
    pub owner: String,
    /// Until when (RFC 3339, required: a suppression that never ends is a hole).
    pub expires: DateTime<Utc>,
}

/// A detection's switch and severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionTuning {
    /// Off: the detection raises nothing.
    pub enabled: bool,
    /// Replaces the detector's severity.
    pub severity: Option<Severity>,
}

impl Default for DetectionTuning {
    fn default() -> Self {
        DetectionTuning {
            enabled: true,
            severity: None,
        }
    }
}

/// Tuning that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    #[error("suppression {id:?}: {problem}")]
    Suppression { id: String, problem: String },
    #[error("[detect.detections]: no detection named {0:?}")]
    UnknownDetection(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

fn detection_named(name: &str) -> Option<Detection> {
    Detection::ALL.iter().copied().find(|d| d.as_str() == name)
}

#[derive(Debug, Clone)]
struct Compiled {
    rule: Suppression,
    detection: Option<Detection>,
    net: Option<IpNet>,
}

impl Suppression {
    /// Checks the suppression and makes it ready to match.
    fn compile(self) -> Result<Compiled, TuningError> {
        let bad = |problem: &str| TuningError::Suppression {
            id: self.id.clone(),
            problem: problem.to_owned(),
        };
        if self.reason.trim().is_empty() || self.owner.trim().is_empty() {
            return Err(bad("needs a reason and an owner"));
        }
        if self.detection.is_none()
            && self.user.is_none()
            && self.ip.is_none()
            && self.asn.is_none()
            && self.country.is_none()
        {
            return Err(bad("matches everything: give a detection, user, ip, asn or country"));
        }
        let detection = match &self.detection {
            Some(name) => Some(detection_named(name).ok_or_else(|| bad(&format!("no detection named {name:?}")))?),
            None => None,
        };
        let net = match &self.ip {
            Some(text) => Some(
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| bad(&format!("{text:?} is not an address or CIDR block")))?,
            ),
            None => None,
        };
        Ok(Compiled {
            rule: self,
            detection,
            net,
        })
    }
}

/// The values an alert is matched on, beyond its own fields: its evidence's.
fn evidence_str<'a>(alert: &'a Alert, keys: &[&str]) -> Vec<&'a str> {
    keys.iter()
        .filter_map(|k| alert.evidence.get(*k).and_then(|v| v.as_str()))
        .chain(
            ["to", "from"]
                .iter()
                .filter_map(|k| alert.evidence.get(*k))
                .filter_map(|v| v.get(keys[0]).and_then(|v| v.as_str())),
        )
        .collect()
}

impl Compiled {
    fn matches(&self, alert: &Alert) -> bool {
        let t = alert.last_seen;
        if t > self.rule.expires {
            return false;
        }
        if self.detection.is_some_and(|d| d != alert.detection) {
            return false;
        }
        if let Some(user) = &self.rule.user
            && alert.user_id.as_deref() != Some(user)
            && !alert
                .user_login
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(user))
        {
            return false;
        }
        if let Some(net) = &self.net
            && !alert
                .src_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .is_some_and(|ip| net.contains(&ip))
        {
            return false;
        }
        if let Some(asn) = self.rule.asn {
            let found = ["asn", "new_asn"]
                .iter()
                .filter_map(|k| alert.evidence.get(*k).and_then(|v| v.as_i64()))
                .any(|a| a == asn);
            if !found {
                return false;
            }
        }
        if let Some(country) = &self.rule.country
            && !evidence_str(alert, &["country", "new_country"])
                .iter()
                .any(|c| c.eq_ignore_ascii_case(country))
        {
            return false;
        }
        true
    }
}

/// What tuning made of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Raise it.
    Raise,
    /// Keep it, marked suppressed.
    Suppressed,
    /// Its detection is off.
    Disabled,
}

/// Compiled tuning.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    suppressions: Vec<Compiled>,
    detections: BTreeMap<Detection, DetectionTuning>,
}

impl Tuning {
    /// Tuning from the configuration's suppressions and per-detection settings.
    pub fn new(
        suppressions: &[Suppression],
        detections: &BTreeMap<String, DetectionTuning>,
    ) -> Result<Self, TuningError> {
        let mut tuning = Tuning::default();
        for (name, t) in detections {
            let d = detection_named(name).ok_or_else(|| TuningError::UnknownDetection(name.clone()))?;
            tuning.detections.insert(d, t.clone());
        }
        tuning.add(suppressions.iter().cloned())?;
        Ok(tuning)
    }

    /// Adds suppressions (the store's file, after the configuration's).
    pub fn add(&mut self, list: impl IntoIterator<Item = Suppression>) -> Result<(), TuningError> {
        for mut s in list {
            if s.id.is_empty() {
                s.id = format!("config-{}", self.suppressions.len() + 1);
            }
            self.suppressions.push(s.compile()?);
        }
        Ok(())
    }

    /// Applies the tuning to a new alert: severity override, then suppression (marked in
    /// the evidence).
    pub fn apply(&self, alert: &mut Alert) -> Verdict {
        if let Some(t) = self.detections.get(&alert.detection) {
            if !t.enabled {
                return Verdict::Disabled;
            }
            if let Some(severity) = t.severity
                && severity != alert.severity
            {
                alert.severity = severity;
                alert.risk_score = (severity_points(severity) * alert.confidence * 10.0).round() / 10.0;
                alert.evidence.insert("severity_overridden".into(), true.into());
            }
        }
        let Some(s) = self.suppressions.iter().find(|s| s.matches(alert)) else {
            return Verdict::Raise;
        };
        alert.evidence.insert(
            SUPPRESSED.into(),
            serde_json::json!({
                "id": s.rule.id,
                "reason": s.rule.reason,
                "owner": s.rule.owner,
                "expires": s.rule.expires,
            }),
        );
        Verdict::Suppressed
    }
}

/// The evidence key that marks a suppressed alert.
pub const SUPPRESSED: &str = "suppressed";

/// Whether an alert was suppressed.
pub fn is_suppressed(alert: &Alert) -> bool {
    alert.evidence.contains_key(SUPPRESSED)
}

/// The store's suppressions file.
pub fn store_file(store_root: &Path) -> std::path::PathBuf {
    store_root.join("suppressions.json")
}

/// Reads the store's suppressions (none when the file does not exist).
pub fn read_store_file(store_root: &Path) -> Result<Vec<Suppression>, TuningError> {
    let path = store_file(store_root);
    let err = |message: String| TuningError::File {
        path: path.display().to_string(),
        message,
    };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Writes the store's suppressions (atomically), after checking each.
pub fn write_store_file(store_root: &Path, list: &[Suppression]) -> Result<(), TuningError> {
    for s in list {
        s.clone().compile()?;
    }
    let path = store_file(store_root);
    let err = |message: String| TuningError::File {
        path: path.display().to_string(),
        message,
    };
    let text = serde_json::to_vec_pretty(list).map_err(|e| err(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alerting::utc;

    fn alert(detection: Detection, ip: &str, country: &str) -> Alert {
        let mut evidence = serde_json::Map::new();
        evidence.insert("country".into(), country.into());
        evidence.insert("asn".into(), 13335.into());
        Alert {
            alert_id: "a1".into(),
            detection,
            severity: Severity::High,
            risk_score: 59.5,
            confidence: 0.85,
            user_id: Some("00u1".into()),
            user_login: Some("ana@example.com".into()),
            src_ip: Some(ip.into()),
            first_seen: utc(1_700_000_000_000),
            last_seen: utc(1_700_000_000_000),
            detected_at: utc(1_700_000_000_000),
            event_uuids: vec![],
            summary: String::new(),
            evidence,
            mitre: vec![],
        }
    }

    fn rule(expires: &str) -> Suppression {
        Suppression {
            id: String::new(),
            detection: Some("password_spray".into()),
            user: None,
            ip: Some("198.51.100.0/24".into()),
            asn: None,
            country: None,
            reason: "pentest by Acme, ticket SEC-42".into(),
            owner: "soc@example.com".into(),
            expires: expires.parse().unwrap(),
        }
    }

    #[test]
    fn suppressions_match_what_they_name_until_they_expire_and_mark_the_alert() {
        let tuning = Tuning::new(&[rule("2030-01-01T00:00:00Z")], &BTreeMap::new()).unwrap();
        let mut hit = alert(Detection::PasswordSpray, "198.51.100.7", "United States");
        assert_eq!(tuning.apply(&mut hit), Verdict::Suppressed);
        assert_eq!(hit.evidence[SUPPRESSED]["owner"], "soc@example.com");
        assert!(is_suppressed(&hit));
        // Another address, another detection: raised.
        let mut other = alert(Detection::PasswordSpray, "203.0.113.7", "United States");
        assert_eq!(tuning.apply(&mut other), Verdict::Raise);
        let mut bf = alert(Detection::BruteForce, "198.51.100.7", "United States");
        assert_eq!(tuning.apply(&mut bf), Verdict::Raise);
        // Expired before the alert's evidence: raised.
        let old = Tuning::new(&[rule("2020-01-01T00:00:00Z")], &BTreeMap::new()).unwrap();
        let mut late = alert(Detection::PasswordSpray, "198.51.100.7", "United States");
        assert_eq!(old.apply(&mut late), Verdict::Raise);
        // By country and ASN, from the evidence.
        let by_place = Suppression {
            detection: None,
            ip: None,
            asn: Some(13335),
            country: Some("united states".into()),
            ..rule("2030-01-01T00:00:00Z")
        };
        let t = Tuning::new(&[by_place], &BTreeMap::new()).unwrap();
        assert_eq!(
            t.apply(&mut alert(Detection::ImpossibleTravel, "203.0.113.7", "United States")),
            Verdict::Suppressed
        );
        assert_eq!(
            t.apply(&mut alert(Detection::ImpossibleTravel, "203.0.113.7", "Germany")),
            Verdict::Raise
        );
    }

    #[test]
    fn bad_suppressions_are_refused_and_detections_can_be_turned_off_or_reweighted() {
        let everything = Suppression {
            detection: None,
            ip: None,
            ..rule("2030-01-01T00:00:00Z")
        };
        assert!(Tuning::new(&[everything], &BTreeMap::new()).is_err());
        let ownerless = Suppression {
            owner: " ".into(),
            ..rule("2030-01-01T00:00:00Z")
        };
        assert!(Tuning::new(&[ownerless], &BTreeMap::new()).is_err());
        let bad_net = Suppression {
            ip: Some("10.0.0.0/33".into()),
            ..rule("2030-01-01T00:00:00Z")
        };
        assert!(Tuning::new(&[bad_net], &BTreeMap::new()).is_err());
        let mut per = BTreeMap::new();
        per.insert("nonsense".to_owned(), DetectionTuning::default());
        assert!(Tuning::new(&[], &per).is_err());

        let mut per = BTreeMap::new();
        per.insert(
            "anomalous_signin".to_owned(),
            DetectionTuning {
                enabled: false,
                severity: None,
            },
        );
        per.insert(
            "impossible_travel".to_owned(),
            DetectionTuning {
                enabled: true,
                severity: Some(Severity::Medium),
            },
        );
        let t = Tuning::new(&[], &per).unwrap();
        assert_eq!(
            t.apply(&mut alert(Detection::AnomalousSignin, "203.0.113.7", "X")),
            Verdict::Disabled
        );
        let mut travel = alert(Detection::ImpossibleTravel, "203.0.113.7", "X");
        travel.confidence = 0.8;
        assert_eq!(t.apply(&mut travel), Verdict::Raise);
        assert_eq!((travel.severity, travel.risk_score), (Severity::Medium, 36.0));
    }
}
