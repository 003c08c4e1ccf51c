//! `IdentityState`: the latest picture of one user (one row per user in `identity_state`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::alert::{Detection, Severity};

/// Risk level bands of the 0–100 score (the reference design's `risk_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Score below 25.
    Low,
    /// 25 to below 50.
    Medium,
    /// 50 to below 75.
    High,
    /// 75 and above.
    Critical,
}

impl RiskLevel {
    /// The band a score falls in.
    pub fn from_score(score: f64) -> Self {
        match score {
            s if s >= 75.0 => RiskLevel::Critical,
            s if s >= 50.0 => RiskLevel::High,
            s if s >= 25.0 => RiskLevel::Medium,
            _ => RiskLevel::Low,
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Critical => "critical",
        }
    }
}

/// One contribution to a user's risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RiskReason {
    /// The detection behind it.
    pub detection: Detection,
    /// The alert behind it.
    pub alert_id: String,
    /// The alert's severity.
    pub severity: Severity,
    /// Points it adds to the score now (after decay).
    pub contribution: f64,
    /// The alert's summary.
    pub summary: String,
    /// When the alert's last evidence happened.
    pub at: DateTime<Utc>,
}

/// The latest state of one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IdentityState {
    /// Okta user id.
    pub user_id: String,
    /// Login.
    pub user_login: Option<String>,
    /// 0–100, decayed to `updated_at`.
    pub risk_score: f64,
    /// Band of the score.
    pub risk_level: RiskLevel,
    /// Largest contributions first.
    pub top_reasons: Vec<RiskReason>,
    /// Events seen for the user.
    pub event_count: u64,
    /// Alerts raised for the user.
    pub alert_count: u64,
    /// Last event time.
    pub last_seen: Option<DateTime<Utc>>,
    /// Last source IP.
    pub last_ip: Option<String>,
    /// Last country.
    pub last_country: Option<String>,
    /// Last city.
    pub last_city: Option<String>,
    /// Countries the user signs in from.
    pub known_countries: Vec<String>,
    /// How far the user's recent behaviour is from their own history (0–1), when known.
    pub outlier_score: Option<f64>,
    /// How far the user's recent behaviour vector has moved from their lifetime one
    /// (`1 − cosine`, 0–1; 0 = unchanged). See docs/detections.md, "Behaviour vectors".
    #[serde(default)]
    pub drift_score: Option<f64>,
    /// Okta status (`ACTIVE`, `SUSPENDED`, …) when known.
    pub okta_status: Option<String>,
    /// Event time this state reflects.
    pub updated_at: DateTime<Utc>,
}
