//! The tools' arguments (their JSON Schemas come from these types).

use idgw_schemas::RiskLevel;
use schemars::JsonSchema;
use serde::Deserialize;

/// Whole numbers given as JSON numbers or as numeric strings (some clients, the MCP
/// Inspector CLI among them, send every argument as a string).
pub(crate) mod lenient {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(u32),
        Text(String),
    }

    fn parse<E: serde::de::Error>(v: NumberOrText) -> Result<u32, E> {
        match v {
            NumberOrText::Number(n) => Ok(n),
            NumberOrText::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| E::custom(format!("{t:?} is not a whole number"))),
        }
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        parse(NumberOrText::deserialize(d)?)
    }

    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Option::<NumberOrText>::deserialize(d)?.map(parse).transpose()
    }
}

/// `analyze_identity_state`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AnalyzeArgs {
    /// Okta user id (`00u…`) or login.
    pub user: String,
    /// Hours of activity to summarise, back from the user's latest state (1–720, default 24).
    #[serde(default = "default_hours", deserialize_with = "lenient::u32")]
    pub time_range_hours: u32,
}

fn default_hours() -> u32 {
    24
}

/// `list_alerts`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ListAlertsArgs {
    /// Only alerts detected at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only alerts detected before this time (RFC 3339).
    pub until: Option<String>,
    /// Lowest severity: info, low, medium, high or critical.
    pub min_severity: Option<String>,
    /// Only this detection (e.g. `impossible_travel`).
    pub detection: Option<String>,
    /// Only this user (Okta id or login).
    pub user: Option<String>,
    /// Alerts per page (1–500, default 50).
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `explain_alert`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExplainArgs {
    /// The alert's `alert_id`.
    pub alert_id: String,
}

/// `search_events`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct SearchEventsArgs {
    /// The user the event is about (Okta id or login).
    pub user: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Okta `eventType`, exact (e.g. `user.session.start`).
    pub event_type: Option<String>,
    /// Outcome: SUCCESS, FAILURE, DENY, ALLOW, …
    pub outcome: Option<String>,
    /// At or after this time (RFC 3339).
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    pub until: Option<String>,
    /// Text contained in the display message or the outcome reason (case-insensitive).
    pub text: Option<String>,
    /// Events per page (1–500, default 50).
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `similar_users`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SimilarArgs {
    /// Okta user id or login.
    pub user: String,
    /// Neighbours to return (1–100, default 10).
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub k: Option<u32>,
    /// Only neighbours at these risk levels (low, medium, high, critical).
    #[serde(default)]
    pub risk_levels: Vec<RiskLevel>,
    /// Only neighbours whose last country is one of these.
    #[serde(default)]
    pub countries: Vec<String>,
}

/// `query_sql`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SqlArgs {
    /// One read-only SQL query over `events`, `alerts` and `identity_state`.
    pub sql: String,
}
