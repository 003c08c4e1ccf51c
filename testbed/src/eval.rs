//! `idgw eval`: a store's alerts scored against the generator's labels.
//!
//! An attack label is **detected** when an alert of its category shares an evidence event
//! with it, or names the same user (the same source IP for labels without a user) with
//! evidence overlapping the label's time span (give or take [`SLACK_MS`]).
//!
//! Each alert is then one of: **true** (it detects an attack label of its own category),
//! **related** (it overlaps an attack of another category on the same user or source: an
//! impossible-travel alert on the far-away success of a brute force is a real alarm about a
//! real attack, not noise), **look-alike** (it overlaps a benign look-alike) or **false**
//! (none of these: background activity). Precision counts true and related alerts as
//! correct. A benign look-alike is **tripped** when an alert of the detection it resembles,
//! at medium or above, overlaps it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

use idgw_schemas::{Alert, Severity};
use serde::Serialize;

use idgw_schemas::Label;

/// Time either side of a label within which an alert's evidence counts as overlapping.
pub const SLACK_MS: i64 = 30 * 60 * 1000;

/// Evaluation failures.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A line is not a label or an alert.
    #[error("{path} line {line}: {source}")]
    Parse {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
}

/// Figures for one detection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DetectionScore {
    /// Attack labels of this category.
    pub attacks: u64,
    /// Of which detected.
    pub detected: u64,
    /// `detected / attacks` (absent without attacks).
    pub recall: Option<f64>,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts on an attack of this category.
    pub true_alerts: u64,
    /// Alerts on an attack of another category.
    pub related_alerts: u64,
    /// Alerts on benign look-alikes (any severity).
    pub lookalike_alerts: u64,
    /// Alerts on nothing labelled.
    pub false_alerts: u64,
    /// `(true + related) / alerts` (absent without alerts).
    pub precision: Option<f64>,
    /// Benign look-alikes resembling this detection.
    pub lookalikes: u64,
    /// Of which drew a medium-or-higher alert of this detection.
    pub lookalikes_tripped: u64,
    /// Event-time delay from the last evidence event to the alert, median and maximum (s).
    pub delay_p50_s: Option<f64>,
    pub delay_max_s: Option<f64>,
}

/// The evaluation report.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub labels: u64,
    pub alerts: u64,
    /// Over all alerts: `(true + related) / alerts`.
    pub precision: Option<f64>,
    /// The same over medium-or-higher alerts (what reaches an analyst's queue).
    pub precision_medium_up: Option<f64>,
    /// Lowest recall over attack categories.
    pub min_recall: Option<f64>,
    /// Look-alikes that drew a medium-or-higher alert of the detection they resemble.
    pub lookalikes_tripped: u64,
    pub by_detection: BTreeMap<String, DetectionScore>,
    /// Up to 20 missed attack labels, for investigation.
    pub missed: Vec<String>,
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, EvalError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| EvalError::Io {
        path: name.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| EvalError::Io {
            path: name.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|source| EvalError::Parse {
            path: name.clone(),
            line: i + 1,
            source,
        })?);
    }
    Ok(out)
}

/// Reads the labels file and the store's `alerts.jsonl` (absent means no alert).
pub fn load(labels: &Path, alerts: &Path) -> Result<(Vec<Label>, Vec<Alert>), EvalError> {
    let labels = read_jsonl(labels)?;
    let alerts = if alerts.exists() {
        read_jsonl(alerts)?
    } else {
        Vec::new()
    };
    Ok((labels, alerts))
}

struct Indexed<'a> {
    label: &'a Label,
    uuids: HashSet<&'a str>,
    start: i64,
    end: i64,
}

fn overlaps(alert: &Alert, l: &Indexed<'_>) -> bool {
    if alert.event_uuids.iter().any(|u| l.uuids.contains(u.as_str())) {
        return true;
    }
    let same_entity = match (&l.label.user_id, &alert.user_id) {
        (Some(lu), Some(au)) => lu == au,
        (None, _) => l.label.src_ip.is_some() && l.label.src_ip == alert.src_ip,
        _ => false,
    };
    same_entity
        && alert.first_seen.timestamp_millis() <= l.end + SLACK_MS
        && alert.last_seen.timestamp_millis() >= l.start - SLACK_MS
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| (n as f64 / d as f64 * 10_000.0).round() / 10_000.0)
}

/// Scores `alerts` against `labels`.
pub fn evaluate(labels: &[Label], alerts: &[Alert]) -> EvalReport {
    let indexed: Vec<Indexed<'_>> = labels
        .iter()
        .map(|l| Indexed {
            label: l,
            uuids: l.event_uuids.iter().map(String::as_str).collect(),
            start: l.start.timestamp_millis(),
            end: l.end.timestamp_millis(),
        })
        .collect();
    // Candidate labels per user and per source IP, so each alert checks a few labels.
    let mut by_entity: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_uuid: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, l) in indexed.iter().enumerate() {
        for key in [l.label.user_id.as_deref(), l.label.src_ip.as_deref()]
            .into_iter()
            .flatten()
        {
            by_entity.entry(key).or_default().push(i);
        }
        for u in &l.uuids {
            by_uuid.entry(u).or_default().push(i);
        }
    }
    let mut scores: BTreeMap<String, DetectionScore> = BTreeMap::new();
    let mut detected = vec![false; indexed.len()];
    let mut tripped = vec![false; indexed.len()];
    let mut delays: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (mut correct, mut correct_mu, mut total_mu) = (0u64, 0u64, 0u64);
    for alert in alerts {
        let det = alert.detection.as_str();
        let mut candidates: Vec<usize> = [alert.user_id.as_deref(), alert.src_ip.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(|k| by_entity.get(k))
            .flatten()
            .copied()
            .chain(
                alert
                    .event_uuids
                    .iter()
                    .filter_map(|u| by_uuid.get(u.as_str()))
                    .flatten()
                    .copied(),
            )
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let (mut is_true, mut is_related, mut is_lookalike) = (false, false, false);
        for i in candidates {
            let l = &indexed[i];
            if !overlaps(alert, l) {
                continue;
            }
            match (l.label.benign, l.label.category == det) {
                (false, true) => {
                    is_true = true;
                    detected[i] = true;
                }
                (false, false) => is_related = true,
                (true, same) => {
                    is_lookalike = true;
                    if same && alert.severity >= Severity::Medium {
                        tripped[i] = true;
                    }
                }
            }
        }
        let s = scores.entry(det.to_owned()).or_default();
        s.alerts += 1;
        let ok = is_true || is_related;
        match (is_true, is_related, is_lookalike) {
            (true, _, _) => s.true_alerts += 1,
            (false, true, _) => s.related_alerts += 1,
            (false, false, true) => s.lookalike_alerts += 1,
            _ => s.false_alerts += 1,
        }
        correct += u64::from(ok);
        if alert.severity >= Severity::Medium {
            total_mu += 1;
            correct_mu += u64::from(ok);
        }
        let delay = (alert.detected_at - alert.last_seen).num_milliseconds().max(0) as f64 / 1000.0;
        delays.entry(det.to_owned()).or_default().push(delay);
    }
    let mut missed = Vec::new();
    for (i, l) in indexed.iter().enumerate() {
        let s = scores.entry(l.label.category.clone()).or_default();
        if l.label.benign {
            s.lookalikes += 1;
            s.lookalikes_tripped += u64::from(tripped[i]);
        } else {
            s.attacks += 1;
            s.detected += u64::from(detected[i]);
            if !detected[i] && missed.len() < 20 {
                missed.push(format!(
                    "{} {} ({}) user={} ip={} at {}",
                    l.label.label_id,
                    l.label.category,
                    l.label.kind,
                    l.label.user_login.as_deref().unwrap_or("-"),
                    l.label.src_ip.as_deref().unwrap_or("-"),
                    l.label.start.to_rfc3339()
                ));
            }
        }
    }
    for (det, s) in scores.iter_mut() {
        s.recall = ratio(s.detected, s.attacks);
        s.precision = ratio(s.true_alerts + s.related_alerts, s.alerts);
        if let Some(d) = delays.get_mut(det) {
            d.sort_by(f64::total_cmp);
            s.delay_p50_s = d.get(d.len() / 2).copied();
            s.delay_max_s = d.last().copied();
        }
    }
    let min_recall = scores.values().filter_map(|s| s.recall).min_by(f64::total_cmp);
    EvalReport {
        labels: labels.len() as u64,
        alerts: alerts.len() as u64,
        precision: ratio(correct, alerts.len() as u64),
        precision_medium_up: ratio(correct_mu, total_mu),
        min_recall,
        lookalikes_tripped: tripped.iter().filter(|t| **t).count() as u64,
        by_detection: scores,
        missed,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use idgw_schemas::{Alert, Detection, Severity};

    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_722_470_400 + minute * 60, 0).unwrap()
    }

    fn label(id: &str, category: &str, benign: bool, user: &str, minutes: (i64, i64), uuids: &[&str]) -> Label {
        Label {
            label_id: id.into(),
            category: category.into(),
            benign,
            kind: "k".into(),
            user_id: Some(user.into()),
            user_login: Some(format!("{user}@example.com")),
            src_ip: Some("203.0.113.9".into()),
            start: at(minutes.0),
            end: at(minutes.1),
            event_uuids: uuids.iter().map(|u| (*u).to_owned()).collect(),
        }
    }

    fn alert(detection: Detection, severity: Severity, user: &str, minutes: (i64, i64), uuids: &[&str]) -> Alert {
        Alert {
            alert_id: format!("alt-{user}-{}-{}", detection.as_str(), minutes.1),
            detection,
            severity,
            risk_score: 50.0,
            confidence: 0.8,
            user_id: Some(user.into()),
            user_login: None,
            src_ip: None,
            first_seen: at(minutes.0),
            last_seen: at(minutes.1),
            detected_at: at(minutes.1) + chrono::Duration::seconds(30),
            event_uuids: uuids.iter().map(|u| (*u).to_owned()).collect(),
            summary: String::new(),
            evidence: serde_json::Map::new(),
            mitre: Vec::new(),
        }
    }

    #[test]
    fn alerts_are_classified_and_counted() {
        let labels = vec![
            label("l1", "brute_force", false, "u1", (10, 20), &["e1", "e2"]),
            label("l2", "mfa_fatigue", false, "u2", (100, 110), &["e3"]),
            label("l3", "impossible_travel", true, "u3", (200, 260), &["e4", "e5"]),
        ];
        let alerts = vec![
            // Detects l1 by shared evidence.
            alert(Detection::BruteForce, Severity::Medium, "u1", (10, 18), &["e1"]),
            // Same user, other category, overlapping: related.
            alert(Detection::ImpossibleTravel, Severity::High, "u1", (19, 25), &["x1"]),
            // On the look-alike, high: trips it.
            alert(Detection::ImpossibleTravel, Severity::High, "u3", (200, 260), &["e5"]),
            // Nothing labelled there.
            alert(Detection::AnomalousSignin, Severity::Low, "u9", (500, 500), &["x2"]),
        ];
        let r = evaluate(&labels, &alerts);
        let bf = &r.by_detection["brute_force"];
        assert_eq!((bf.attacks, bf.detected, bf.true_alerts), (1, 1, 1));
        assert_eq!(bf.recall, Some(1.0));
        assert_eq!(bf.delay_p50_s, Some(30.0));
        let mfa = &r.by_detection["mfa_fatigue"];
        assert_eq!((mfa.attacks, mfa.detected, mfa.recall), (1, 0, Some(0.0)));
        let it = &r.by_detection["impossible_travel"];
        assert_eq!(
            (it.related_alerts, it.lookalike_alerts, it.lookalikes_tripped),
            (1, 1, 1)
        );
        assert_eq!(r.by_detection["anomalous_signin"].false_alerts, 1);
        assert_eq!(r.lookalikes_tripped, 1);
        assert_eq!(r.min_recall, Some(0.0));
        // 2 of 4 alerts are correct (true + related); of the 3 medium+ alerts, 2.
        assert_eq!(r.precision, Some(0.5));
        assert_eq!(r.precision_medium_up, Some(0.6667));
        assert_eq!(r.missed.len(), 1);
        assert!(r.missed[0].starts_with("l2 mfa_fatigue"));
    }

    #[test]
    fn an_alert_outside_the_slack_does_not_count() {
        let labels = vec![label("l1", "brute_force", false, "u1", (10, 20), &["e1"])];
        let late = alert(
            Detection::BruteForce,
            Severity::Medium,
            "u1",
            (20 + 31, 20 + 40),
            &["zz"],
        );
        let r = evaluate(&labels, &[late]);
        assert_eq!(r.by_detection["brute_force"].detected, 0);
        assert_eq!(r.by_detection["brute_force"].false_alerts, 1);
    }
}
