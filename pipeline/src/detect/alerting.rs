//! Turning a detector's finding into an [`Alert`]: deterministic id, risk points, times.

use chrono::{DateTime, Utc};
use idgw_schemas::{Alert, Detection, Severity};
use serde_json::{Map, Value};

/// What a detector found; [`Finding::into_alert`] completes it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub detection: Detection,
    pub severity: Severity,
    /// 0–1.
    pub confidence: f64,
    pub user_id: Option<String>,
    pub user_login: Option<String>,
    pub src_ip: Option<String>,
    /// Event time of the first and last evidence, ms.
    pub first_seen: i64,
    pub last_seen: i64,
    pub event_uuids: Vec<String>,
    pub summary: String,
    pub evidence: Map<String, Value>,
    pub mitre: &'static [&'static str],
}

/// Risk points of a severity at full confidence.
pub fn severity_points(severity: Severity) -> f64 {
    match severity {
        Severity::Info => 5.0,
        Severity::Low => 20.0,
        Severity::Medium => 45.0,
        Severity::High => 70.0,
        Severity::Critical => 90.0,
    }
}

/// Milliseconds since the epoch as a UTC time (out-of-range values clamp to the epoch).
pub fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl Finding {
    /// The alert, raised when the stream's clock read `detected_at` (ms).
    pub fn into_alert(self, detected_at: i64) -> Alert {
        let entity = self.user_id.as_deref().or(self.src_ip.as_deref()).unwrap_or("unknown");
        let alert_id = Alert::deterministic_id(self.detection, entity, &self.event_uuids);
        let confidence = self.confidence.clamp(0.0, 1.0);
        Alert {
            alert_id,
            detection: self.detection,
            severity: self.severity,
            risk_score: (severity_points(self.severity) * confidence * 10.0).round() / 10.0,
            confidence,
            user_id: self.user_id,
            user_login: self.user_login,
            src_ip: self.src_ip,
            first_seen: utc(self.first_seen),
            last_seen: utc(self.last_seen),
            detected_at: utc(detected_at.max(self.last_seen)),
            event_uuids: self.event_uuids,
            summary: self.summary,
            evidence: self.evidence,
            mitre: self.mitre.iter().map(|m| (*m).to_owned()).collect(),
        }
    }
}

/// Builds an evidence map from `key => value` pairs.
#[macro_export]
macro_rules! evidence {
    ($($key:literal => $value:expr),* $(,)?) => {{
        let mut map = serde_json::Map::new();
        $(map.insert($key.to_owned(), serde_json::json!($value));)*
        map
    }};
}
