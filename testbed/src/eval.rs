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

use crate::labels::Label;

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
