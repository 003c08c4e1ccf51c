//! The tools' structured results.

use schemars::JsonSchema;
use serde::Serialize;

use crate::data::Row;

/// A user behaving alike.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SimilarUser {
    /// Cosine similarity of the behaviour vectors (1 = same behaviour).
    pub score: f32,
    pub user_id: String,
    pub user_login: Option<String>,
    pub risk_level: String,
    pub risk_score: f64,
    pub last_country: Option<String>,
}

/// `analyze_identity_state`'s result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IdentityAnalysis {
    pub user_id: String,
    pub user_login: Option<String>,
    /// 0–100, decayed to `as_of`.
    pub risk_score: f64,
    /// low, medium, high or critical.
    pub risk_level: String,
    /// The largest risk contributions: detection, alert id, severity, points, summary, time.
    pub top_reasons: Vec<Row>,
    /// One paragraph an analyst can read.
    pub behavior_summary: String,
    /// What to do next, most urgent first (action tools need their own scopes).
    pub recommended_actions: Vec<String>,
    /// Users with the most similar behaviour vectors (empty when the index is absent).
    pub similar_past_behaviors: Vec<SimilarUser>,
    /// Where the user's events came from in the window: country, city, IP, events, last time.
    pub recent_locations: Vec<Row>,
    /// Clients and devices in the window: browser, OS, device token, events, last time.
    pub recent_devices: Vec<Row>,
    /// Alerts of the user in the window, newest first.
    pub open_alerts: Vec<Row>,
    /// Anomaly model score of the latest unusual sign-in (0–1), when any.
    pub outlier_score: Option<f64>,
    /// How far recent behaviour moved from the user's history (0–1).
    pub drift_score: Option<f64>,
    /// Okta status when known from events.
    pub okta_status: Option<String>,
    /// The state's time (the stream's clock), RFC 3339.
    pub as_of: Option<String>,
    /// Hours summarised.
    pub time_range_hours: u32,
}

/// A page of rows.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Page {
    /// The rows of this page.
    pub items: Vec<Row>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `explain_alert`'s result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AlertExplanation {
    /// The alert (evidence is a JSON object).
    pub alert: Row,
    /// The evidence events, oldest first.
    pub events: Vec<Row>,
    /// Evidence event ids the store does not hold (none, normally).
    pub missing_events: Vec<String>,
}

/// `similar_users`' result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SimilarUsers {
    /// The user asked about.
    pub user: String,
    /// Most similar first.
    pub neighbours: Vec<SimilarUser>,
}

/// `query_sql`'s result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SqlResult {
    pub rows: Vec<Row>,
    pub row_count: usize,
    /// True when rows were cut at the row or byte limit.
    pub truncated: bool,
}
