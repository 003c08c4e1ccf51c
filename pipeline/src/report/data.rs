//! What the report shows, read from the store with a handful of aggregate queries (never a
//! whole table into memory: the events table is only counted and read for the few users
//! whose timelines the page draws).

use chrono::{DateTime, Utc};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::SessionContext;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ReportError, ReportOptions};
use crate::Store;
use crate::query;

/// Everything one page shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// The store it describes.
    pub store: String,
    /// Table-wide counts.
    pub totals: Totals,
    /// Alerts per hour, detection and severity.
    pub alert_counts: Vec<AlertCount>,
    /// The riskiest users, riskiest first.
    pub top_users: Vec<UserRow>,
    /// Impossible-travel alerts with both ends located.
    pub travels: Vec<Travel>,
    /// Activity of the riskiest users.
    pub timelines: Vec<Timeline>,
}

/// Table-wide counts.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Totals {
    /// Rows in `events`.
    pub events: u64,
    /// Distinct users in `events`.
    pub users: u64,
    /// Earliest event time (ms since the epoch).
    pub first_event_ms: Option<i64>,
    /// Latest event time (ms since the epoch).
    pub last_event_ms: Option<i64>,
    /// Rows in `alerts`.
    #[serde(default)]
    pub alerts: u64,
    /// Users with a risk score above zero.
    #[serde(default)]
    pub users_at_risk: u64,
    /// Alerts a suppression matched (stored and marked, out of risk).
    #[serde(default)]
    pub suppressed_alerts: u64,
}

/// Alerts of one detection and severity in one hour.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertCount {
    /// Start of the hour (ms since the epoch).
    pub hour_ms: i64,
    /// Detection name.
    pub detection: String,
    /// Severity name.
    pub severity: String,
    /// How many.
    pub n: u64,
}

/// One row of `identity_state`.
#[derive(Debug, Clone, Deserialize)]
pub struct UserRow {
    /// Okta user id.
    pub user_id: String,
    /// Login.
    pub user_login: Option<String>,
    /// 0–100.
    pub risk_score: f64,
    /// Band of the score.
    pub risk_level: String,
    /// JSON list of [`idgw_schemas::RiskReason`].
    pub top_reasons: String,
    /// Alerts raised for the user.
    pub alert_count: u64,
    /// Events seen for the user.
    pub event_count: u64,
    /// Last event time (ms since the epoch).
    pub last_seen_ms: Option<i64>,
    /// Last city.
    pub last_city: Option<String>,
    /// Last country.
    pub last_country: Option<String>,
    /// Okta status when known.
    pub okta_status: Option<String>,
}

impl UserRow {
    /// The login, or the id when the login is unknown.
    pub fn name(&self) -> &str {
        self.user_login.as_deref().unwrap_or(&self.user_id)
    }

    /// The reasons behind the score; an unreadable list reads as none (the table's writer
    /// always writes valid JSON, so this only guards against foreign files).
    pub fn reasons(&self) -> Vec<Reason> {
        serde_json::from_str(&self.top_reasons).unwrap_or_default()
    }
}

/// One reason behind a risk score (the fields of `RiskReason` the page shows).
#[derive(Debug, Clone, Deserialize)]
pub struct Reason {
    /// Detection name.
    pub detection: String,
    /// Severity name.
    pub severity: String,
    /// Points it adds now.
    pub contribution: f64,
    /// The alert's summary.
    pub summary: String,
}

/// A located place.
#[derive(Debug, Clone, Deserialize)]
pub struct Place {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Country.
    #[serde(default)]
    pub country: Option<String>,
    /// Source IP.
    #[serde(default)]
    pub ip: Option<String>,
}

/// An impossible-travel alert: where from, where to, how fast.
#[derive(Debug, Clone)]
pub struct Travel {
    /// Alert id.
    pub alert_id: String,
    /// The user's login or id.
    pub user: String,
    /// Severity name.
    pub severity: String,
    /// When the second sign-in happened (ms since the epoch).
    pub at_ms: i64,
    /// First sign-in.
    pub from: Place,
    /// Second sign-in.
    pub to: Place,
    /// Great-circle distance.
    pub distance_km: f64,
    /// Implied speed.
    pub speed_kmh: f64,
}

/// One user's recent activity.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Index into [`ReportData::top_users`].
    pub user: usize,
    /// Events, oldest first.
    pub events: Vec<TimelineEvent>,
    /// The user's alerts in the same window.
    pub alerts: Vec<TimelineAlert>,
    /// Events in the window beyond the ones drawn.
    pub events_not_drawn: u64,
}

/// One event on a timeline.
#[derive(Debug, Clone, Deserialize)]
pub struct TimelineEvent {
    /// Event time (ms since the epoch).
    pub at_ms: i64,
    /// Okta event type.
    pub event_type: String,
    /// Outcome.
    pub outcome_result: Option<String>,
    /// Source IP.
    pub src_ip: Option<String>,
    /// City.
    pub geo_city: Option<String>,
    /// Country.
    pub geo_country: Option<String>,
}

/// One alert on a timeline.
#[derive(Debug, Clone, Deserialize)]
pub struct TimelineAlert {
    /// When its last evidence happened (ms since the epoch).
    pub at_ms: i64,
    /// Detection name.
    pub detection: String,
    /// Severity name.
    pub severity: String,
    /// Summary.
    pub summary: String,
}

#[derive(Deserialize)]
struct TravelRow {
    alert_id: String,
    user: String,
    severity: String,
    at_ms: i64,
    evidence: String,
}

#[derive(Deserialize)]
struct TravelEvidence {
    from: Place,
    to: Place,
    #[serde(default)]
    distance_km: f64,
    #[serde(default)]
    speed_kmh: f64,
}

#[derive(Deserialize)]
struct Count {
    n: u64,
}

/// Reads what the page needs.
pub async fn gather(store: &Store, options: &ReportOptions) -> Result<ReportData, ReportError> {
    let ctx = query::session(store).await?;
    let mut totals: Totals = rows(
        &ctx,
        "SELECT count(*) AS events, count(DISTINCT user_id) AS users, \
         CAST(min(event_time) AS BIGINT) AS first_event_ms, \
         CAST(max(event_time) AS BIGINT) AS last_event_ms FROM events",
    )
    .await?
    .pop()
    .unwrap_or_default();
    totals.alerts = count(&ctx, "SELECT count(*) AS n FROM alerts").await?;
    // The marker `detect::tuning` writes into a suppressed alert's evidence.
    totals.suppressed_alerts = count(
        &ctx,
        "SELECT count(*) AS n FROM alerts WHERE evidence LIKE '%\"suppressed\":{%'",
    )
    .await?;
    totals.users_at_risk = count(&ctx, "SELECT count(*) AS n FROM identity_state WHERE risk_score > 0").await?;

    let alert_counts = rows(
        &ctx,
        "SELECT CAST(date_trunc('hour', last_seen) AS BIGINT) AS hour_ms, detection, severity, \
         CAST(count(*) AS BIGINT) AS n FROM alerts GROUP BY 1, 2, 3 ORDER BY 1",
    )
    .await?;

    let top_users: Vec<UserRow> = rows(
        &ctx,
        &format!(
            "SELECT user_id, user_login, risk_score, risk_level, top_reasons, alert_count, \
             event_count, CAST(last_seen AS BIGINT) AS last_seen_ms, last_city, last_country, \
             okta_status FROM identity_state WHERE risk_score > 0 \
             ORDER BY risk_score DESC, user_id LIMIT {}",
            options.top_users
        ),
    )
    .await?;

    let travel_rows: Vec<TravelRow> = rows(
        &ctx,
        &format!(
            "SELECT alert_id, coalesce(user_login, user_id, '?') AS user, severity, \
             CAST(last_seen AS BIGINT) AS at_ms, evidence FROM alerts \
             WHERE detection = 'impossible_travel' ORDER BY risk_score DESC, alert_id LIMIT {}",
            options.max_arcs
        ),
    )
    .await?;
    let travels = travel_rows
        .into_iter()
        .filter_map(|r| {
            // An alert whose evidence lacks coordinates cannot be drawn; it is still in the
            // alert counts and the user's reasons.
            let e: TravelEvidence = serde_json::from_str(&r.evidence).ok()?;
            Some(Travel {
                alert_id: r.alert_id,
                user: r.user,
                severity: r.severity,
                at_ms: r.at_ms,
                from: e.from,
                to: e.to,
                distance_km: e.distance_km,
                speed_kmh: e.speed_kmh,
            })
        })
        .collect();

    let mut timelines = Vec::new();
    for (i, user) in top_users.iter().enumerate().take(options.timeline_users) {
        timelines.push(timeline(&ctx, i, user, options).await?);
    }

    Ok(ReportData {
        generated_at: Utc::now(),
        store: store.root().display().to_string(),
        totals,
        alert_counts,
        top_users,
        travels,
        timelines,
    })
}

async fn timeline(
    ctx: &SessionContext,
    index: usize,
    user: &UserRow,
    options: &ReportOptions,
) -> Result<Timeline, ReportError> {
    let end = user.last_seen_ms.unwrap_or(0);
    let start = end - options.timeline_days * 86_400_000;
    let id = sql_literal(&user.user_id);
    let window = format!(
        "user_id = {id} AND event_time >= to_timestamp_millis({start}) \
         AND event_time <= to_timestamp_millis({end})"
    );
    let total = count(ctx, &format!("SELECT count(*) AS n FROM events WHERE {window}")).await?;
    let mut events: Vec<TimelineEvent> = rows(
        ctx,
        &format!(
            "SELECT CAST(event_time AS BIGINT) AS at_ms, event_type, outcome_result, src_ip, \
             geo_city, geo_country FROM events WHERE {window} \
             ORDER BY event_time DESC LIMIT {}",
            options.timeline_events
        ),
    )
    .await?;
    events.reverse();
    let alerts = rows(
        ctx,
        &format!(
            "SELECT CAST(last_seen AS BIGINT) AS at_ms, detection, severity, summary FROM alerts \
             WHERE user_id = {id} AND last_seen >= to_timestamp_millis({start}) \
             AND last_seen <= to_timestamp_millis({end}) ORDER BY last_seen"
        ),
    )
    .await?;
    Ok(Timeline {
        user: index,
        events_not_drawn: total.saturating_sub(events.len() as u64),
        events,
        alerts,
    })
}

/// A string as a SQL literal: quotes doubled, so a user id can never end the literal.
fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64, ReportError> {
    Ok(rows::<Count>(ctx, sql).await?.pop().map_or(0, |c| c.n))
}

async fn rows<T: DeserializeOwned>(ctx: &SessionContext, sql: &str) -> Result<Vec<T>, ReportError> {
    let batches: Vec<RecordBatch> = ctx
        .sql_with_options(sql, query::read_only())
        .await
        .map_err(query::QueryError::from)?
        .collect()
        .await
        .map_err(query::QueryError::from)?;
    let mut out = Vec::new();
    for batch in &batches {
        let part: Vec<T> = serde_arrow::from_record_batch(batch).map_err(|e| ReportError::Decode {
            sql: sql.to_owned(),
            reason: e.to_string(),
        })?;
        out.extend(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::sql_literal;

    #[test]
    fn literals_cannot_be_escaped() {
        assert_eq!(sql_literal("00u1"), "'00u1'");
        assert_eq!(sql_literal("a' OR '1'='1"), "'a'' OR ''1''=''1'");
    }
}
