//! The read-only tools: arguments, structured results, and what each one reads.
//!
//! Tool names and argument names follow the reference design (design.md, "Compatibility").
//! Bad arguments and unknown users or alerts are tool errors (`isError`) whose text says
//! what to change; nothing here panics on input.

use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::prelude::{DataFrame, Expr, col, lit};
use idgw_pipeline::vectors::{self, SimilarFilter};
use idgw_schemas::{Detection, RiskLevel, Severity};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::data::{DataError, Row, StoreReader};

/// A tool failure: the text the agent reads.
pub type ToolError = String;

fn err(e: DataError) -> ToolError {
    e.to_string()
}

/// Rows per page unless asked.
const DEFAULT_LIMIT: u32 = 50;
/// Rows per page at most.
const MAX_LIMIT: u32 = 500;
/// `query_sql` rows at most.
pub const SQL_MAX_ROWS: usize = 1_000;
/// `query_sql` result bytes at most (JSON).
pub const SQL_MAX_BYTES: usize = 1 << 20;

// ---- arguments ------------------------------------------------------------------------

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
#[derive(Debug, Default, Deserialize, JsonSchema)]
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

// ---- results ---------------------------------------------------------------------------

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

// ---- helpers ---------------------------------------------------------------------------

fn ts_literal(field: &str, value: &str) -> Result<Expr, ToolError> {
    let t = chrono::DateTime::parse_from_rfc3339(value)
        .map_err(|e| format!("{field}: {value:?} is not an RFC 3339 time (e.g. 2026-11-20T08:00:00Z): {e}"))?;
    Ok(ts_ms(t.timestamp_millis()))
}

/// A timestamp literal of the tables' type.
pub(crate) fn ts_ms(ms: i64) -> Expr {
    lit(ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into())))
}

fn page_size(limit: Option<u32>) -> Result<usize, ToolError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        0 => Err("limit must be at least 1".into()),
        n if n > MAX_LIMIT => Err(format!("limit is at most {MAX_LIMIT}; page with cursor")),
        n => Ok(n as usize),
    }
}

/// Cursors are opaque to agents: `o<offset>`.
fn offset_of(cursor: Option<&str>) -> Result<usize, ToolError> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .strip_prefix('o')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("cursor {c:?} was not issued by this server; omit it to start over")),
    }
}

/// Fetches one page (one row more tells whether another page exists).
async fn page(reader: &StoreReader, df: DataFrame, offset: usize, size: usize) -> Result<Page, ToolError> {
    let df = df.limit(offset, Some(size + 1)).map_err(|e| e.to_string())?;
    let mut items = reader.rows(df).await.map_err(err)?;
    let more = items.len() > size;
    items.truncate(size);
    Ok(Page {
        items,
        next_cursor: more.then(|| format!("o{}", offset + size)),
    })
}

fn user_filter(user: &str) -> Expr {
    col("user_id").eq(lit(user)).or(col("user_login").eq(lit(user)))
}

/// Escapes LIKE wildcards in user text.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn str_field(row: &Row, key: &str) -> Option<String> {
    row.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

fn f64_field(row: &Row, key: &str) -> Option<f64> {
    row.get(key).and_then(serde_json::Value::as_f64)
}

/// Tables keep nested values (alert evidence, risk reasons) as JSON text; agents get them
/// as JSON.
fn expand_json(mut row: Row, key: &str) -> Row {
    if let Some(serde_json::Value::String(text)) = row.get(key)
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
    {
        row.insert(key.into(), v);
    }
    row
}

fn expand_evidence(row: Row) -> Row {
    expand_json(row, "evidence")
}

/// The columns of events the tools return (the raw event stays in the store).
const EVENT_COLUMNS: [&str; 18] = [
    "event_id",
    "event_time",
    "event_type",
    "display_message",
    "outcome_result",
    "outcome_reason",
    "user_id",
    "user_login",
    "actor_login",
    "src_ip",
    "geo_country",
    "geo_city",
    "asn",
    "as_org",
    "ua_browser",
    "ua_os",
    "dt_hash",
    "session_id",
];

fn similar_user(n: vectors::Neighbour) -> SimilarUser {
    SimilarUser {
        score: n.score,
        user_id: n.payload.user_id,
        user_login: n.payload.login,
        risk_level: n.payload.risk_level.as_str().into(),
        risk_score: n.payload.risk_score,
        last_country: n.payload.last_country,
    }
}

// ---- the tools -------------------------------------------------------------------------

/// `analyze_identity_state`.
pub async fn analyze_identity_state(reader: &StoreReader, args: AnalyzeArgs) -> Result<IdentityAnalysis, ToolError> {
    if !(1..=720).contains(&args.time_range_hours) {
        return Err("time_range_hours must be between 1 and 720".into());
    }
    let df = reader
        .table("identity_state")
        .await
        .map_err(err)?
        .filter(user_filter(&args.user))
        .map_err(|e| e.to_string())?
        .limit(0, Some(1))
        .map_err(|e| e.to_string())?;
    let Some(state) = reader
        .rows(df)
        .await
        .map_err(err)?
        .pop()
        .map(|r| expand_json(r, "top_reasons"))
    else {
        return Err(format!(
            "user {} not found in identity state; pass an Okta user id (00u…) or a login seen in the events",
            args.user
        ));
    };
    let user_id = str_field(&state, "user_id").unwrap_or_default();
    let as_of = str_field(&state, "updated_at");
    let end_ms = as_of
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(i64::MAX, |t| t.timestamp_millis());
    let start_ms = end_ms.saturating_sub(i64::from(args.time_range_hours) * 3_600_000);
    let window = col("user_id")
        .eq(lit(user_id.as_str()))
        .and(col("event_time").gt_eq(ts_ms(start_ms)));

    let events = reader
        .table("events")
        .await
        .map_err(err)?
        .filter(window.clone())
        .map_err(|e| e.to_string())?;
    let last = || max(col("event_time")).alias("last_seen");
    let locations = events
        .clone()
        .aggregate(
            vec![col("geo_country"), col("geo_city"), col("src_ip")],
            vec![count(lit(1)).alias("events"), last()],
        )
        .and_then(|d| d.sort(vec![col("last_seen").sort(false, true)]))
        .and_then(|d| d.limit(0, Some(10)))
        .map_err(|e| e.to_string())?;
    let devices = events
        .aggregate(
            vec![col("ua_browser"), col("ua_os"), col("dt_hash")],
            vec![count(lit(1)).alias("events"), last()],
        )
        .and_then(|d| d.sort(vec![col("last_seen").sort(false, true)]))
        .and_then(|d| d.limit(0, Some(10)))
        .map_err(|e| e.to_string())?;
    let alerts = reader
        .table("alerts")
        .await
        .map_err(err)?
        .filter(
            col("user_id")
                .eq(lit(user_id.as_str()))
                .and(col("last_seen").gt_eq(ts_ms(start_ms))),
        )
        .and_then(|d| {
            d.sort(vec![
                col("detected_at").sort(false, true),
                col("alert_id").sort(true, true),
            ])
        })
        .and_then(|d| d.limit(0, Some(20)))
        .map_err(|e| e.to_string())?;

    let recent_locations = reader.rows(locations).await.map_err(err)?;
    let recent_devices = reader.rows(devices).await.map_err(err)?;
    let open_alerts: Vec<Row> = reader
        .rows(alerts)
        .await
        .map_err(err)?
        .into_iter()
        .map(expand_evidence)
        .collect();

    let similar_past_behaviors = if reader.has_vectors() {
        let id = user_id.clone();
        match reader
            .with_vectors(move |index| Ok(vectors::similar_to(index, &id, 5, &SimilarFilter::default())?))
            .await
        {
            Ok(found) => found.unwrap_or_default().into_iter().map(similar_user).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "similar users unavailable");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };

    let risk_score = f64_field(&state, "risk_score").unwrap_or(0.0);
    let risk_level =
        str_field(&state, "risk_level").unwrap_or_else(|| RiskLevel::from_score(risk_score).as_str().into());
    let top_reasons: Vec<Row> = state
        .get("top_reasons")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    let events_in_window: i64 = recent_locations.iter().filter_map(|r| r.get("events")?.as_i64()).sum();
    let countries: std::collections::BTreeSet<String> = recent_locations
        .iter()
        .filter_map(|r| str_field(r, "geo_country"))
        .collect();
    let behavior_summary = format!(
        "{} events in the last {} h from {} location(s){}{}; {} client/device combination(s); {} alert(s) in the window; risk {} ({:.1}/100){}.",
        events_in_window,
        args.time_range_hours,
        recent_locations.len(),
        if countries.is_empty() {
            String::new()
        } else {
            format!(" in {}", countries.into_iter().collect::<Vec<_>>().join(", "))
        },
        f64_field(&state, "drift_score").map_or(String::new(), |d| format!(", behaviour drift {d:.2}")),
        recent_devices.len(),
        open_alerts.len(),
        risk_level,
        risk_score,
        top_reasons
            .first()
            .and_then(|r| str_field(r, "summary"))
            .map_or(String::new(), |s| format!("; main reason: {s}")),
    );
    let recommended_actions = recommend(&risk_level, &open_alerts);
    Ok(IdentityAnalysis {
        user_id,
        user_login: str_field(&state, "user_login"),
        risk_score,
        risk_level,
        top_reasons,
        behavior_summary,
        recommended_actions,
        similar_past_behaviors,
        recent_locations,
        recent_devices,
        open_alerts,
        outlier_score: f64_field(&state, "outlier_score"),
        drift_score: f64_field(&state, "drift_score"),
        okta_status: str_field(&state, "okta_status"),
        as_of,
        time_range_hours: args.time_range_hours,
    })
}

/// Next steps by risk level and what the alerts say.
fn recommend(level: &str, alerts: &[Row]) -> Vec<String> {
    let detections: std::collections::BTreeSet<String> =
        alerts.iter().filter_map(|a| str_field(a, "detection")).collect();
    let mut out = Vec::new();
    match level {
        "critical" => {
            out.push(
                "Suspend the account (suspend_user) with this analysis as reasoning, after human approval.".into(),
            );
            out.push("Revoke the user's sessions (revoke_sessions).".into());
        }
        "high" => {
            out.push("Revoke the user's sessions (revoke_sessions) and confirm the recent activity with the user out of band.".into());
        }
        "medium" => out.push("Review the open alerts (explain_alert) and watch the user's next sign-ins.".into()),
        _ => out.push("No action needed; keep monitoring.".into()),
    }
    if detections.contains("mfa_fatigue") || detections.contains("brute_force") || detections.contains("password_spray")
    {
        out.push("Reset the password (reset_password): the alerts show credential attacks.".into());
    }
    if detections.contains("session_hijack") {
        out.push(
            "Treat the session as stolen: revoke sessions even if the sign-in succeeded from a known device.".into(),
        );
    }
    out
}

/// `list_alerts`.
pub async fn list_alerts(reader: &StoreReader, args: ListAlertsArgs) -> Result<Page, ToolError> {
    let size = page_size(args.limit)?;
    let offset = offset_of(args.cursor.as_deref())?;
    let mut filter = lit(true);
    if let Some(s) = &args.since {
        filter = filter.and(col("detected_at").gt_eq(ts_literal("since", s)?));
    }
    if let Some(u) = &args.until {
        filter = filter.and(col("detected_at").lt(ts_literal("until", u)?));
    }
    if let Some(min) = &args.min_severity {
        let min = Severity::parse(&min.to_ascii_lowercase())
            .ok_or_else(|| format!("min_severity {min:?} is not one of info, low, medium, high, critical"))?;
        let allowed: Vec<Expr> = Severity::ALL
            .into_iter()
            .filter(|s| *s >= min)
            .map(|s| lit(s.as_str()))
            .collect();
        filter = filter.and(col("severity").in_list(allowed, false));
    }
    if let Some(d) = &args.detection {
        if !Detection::ALL.iter().any(|x| x.as_str() == d) {
            let names: Vec<&str> = Detection::ALL.iter().map(|x| x.as_str()).collect();
            return Err(format!("detection {d:?} is unknown; one of: {}", names.join(", ")));
        }
        filter = filter.and(col("detection").eq(lit(d.as_str())));
    }
    if let Some(u) = &args.user {
        filter = filter.and(user_filter(u));
    }
    let df = reader
        .table("alerts")
        .await
        .map_err(err)?
        .filter(filter)
        .and_then(|d| {
            d.sort(vec![
                col("detected_at").sort(false, true),
                col("alert_id").sort(true, true),
            ])
        })
        .map_err(|e| e.to_string())?;
    let mut p = page(reader, df, offset, size).await?;
    p.items = p.items.into_iter().map(expand_evidence).collect();
    Ok(p)
}

/// `explain_alert`.
pub async fn explain_alert(reader: &StoreReader, args: ExplainArgs) -> Result<AlertExplanation, ToolError> {
    let df = reader
        .table("alerts")
        .await
        .map_err(err)?
        .filter(col("alert_id").eq(lit(args.alert_id.as_str())))
        .and_then(|d| d.limit(0, Some(1)))
        .map_err(|e| e.to_string())?;
    let Some(alert) = reader.rows(df).await.map_err(err)?.pop() else {
        return Err(format!("alert {} not found; list_alerts gives the ids", args.alert_id));
    };
    let ids: Vec<String> = alert
        .get("event_uuids")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let events = if ids.is_empty() {
        Vec::new()
    } else {
        let df = reader
            .table("events")
            .await
            .map_err(err)?
            .filter(col("event_id").in_list(ids.iter().map(|i| lit(i.as_str())).collect(), false))
            .and_then(|d| d.select_columns(&EVENT_COLUMNS))
            .and_then(|d| d.sort(vec![col("event_time").sort(true, true)]))
            .map_err(|e| e.to_string())?;
        reader.rows(df).await.map_err(err)?
    };
    let found: std::collections::HashSet<&str> = events.iter().filter_map(|e| e.get("event_id")?.as_str()).collect();
    let missing_events = ids.iter().filter(|i| !found.contains(i.as_str())).cloned().collect();
    Ok(AlertExplanation {
        alert: expand_evidence(alert),
        events,
        missing_events,
    })
}

/// `search_events`.
pub async fn search_events(reader: &StoreReader, args: SearchEventsArgs) -> Result<Page, ToolError> {
    let size = page_size(args.limit)?;
    let offset = offset_of(args.cursor.as_deref())?;
    let mut filter = lit(true);
    if let Some(u) = &args.user {
        filter = filter.and(user_filter(u));
    }
    if let Some(ip) = &args.ip {
        filter = filter.and(col("src_ip").eq(lit(ip.as_str())));
    }
    if let Some(t) = &args.event_type {
        filter = filter.and(col("event_type").eq(lit(t.as_str())));
    }
    if let Some(o) = &args.outcome {
        filter = filter.and(col("outcome_result").eq(lit(o.to_ascii_uppercase())));
    }
    if let Some(s) = &args.since {
        filter = filter.and(col("event_time").gt_eq(ts_literal("since", s)?));
    }
    if let Some(u) = &args.until {
        filter = filter.and(col("event_time").lt(ts_literal("until", u)?));
    }
    if let Some(text) = args.text.as_deref().filter(|t| !t.is_empty()) {
        let p = like_pattern(text);
        filter = filter.and(
            col("display_message")
                .ilike(lit(p.clone()))
                .or(col("outcome_reason").ilike(lit(p))),
        );
    }
    let df = reader
        .table("events")
        .await
        .map_err(err)?
        .filter(filter)
        .and_then(|d| d.select_columns(&EVENT_COLUMNS))
        .and_then(|d| {
            d.sort(vec![
                col("event_time").sort(false, true),
                col("event_id").sort(true, true),
            ])
        })
        .map_err(|e| e.to_string())?;
    page(reader, df, offset, size).await
}

/// `similar_users`.
pub async fn similar_users(reader: &StoreReader, args: SimilarArgs) -> Result<SimilarUsers, ToolError> {
    let k = args.k.unwrap_or(10);
    if !(1..=100).contains(&k) {
        return Err("k must be between 1 and 100".into());
    }
    if !reader.has_vectors() {
        return Err(format!(
            "the store {} has no vector index yet; replay events with vectors enabled",
            reader.root().display()
        ));
    }
    let filter = SimilarFilter {
        risk_levels: args.risk_levels,
        countries: args.countries,
    };
    let user = args.user.clone();
    let found = reader
        .with_vectors(move |index| Ok(vectors::similar_to(index, &user, k as usize, &filter)?))
        .await
        .map_err(err)?;
    match found {
        Some(n) => Ok(SimilarUsers {
            user: args.user,
            neighbours: n.into_iter().map(similar_user).collect(),
        }),
        None => Err(format!("user {} not found in the vector index", args.user)),
    }
}

/// `query_sql`.
pub async fn query_sql(reader: &StoreReader, args: SqlArgs) -> Result<SqlResult, ToolError> {
    let (mut rows, mut truncated) = reader.sql(&args.sql, SQL_MAX_ROWS).await.map_err(|e| {
        format!("{e}. Only one read-only query (SELECT/WITH) over events, alerts and identity_state runs here.")
    })?;
    // Keep the answer under the byte limit, whole rows only.
    let mut bytes = 0usize;
    let mut keep = rows.len();
    for (i, r) in rows.iter().enumerate() {
        bytes += serde_json::to_string(r).map_or(0, |s| s.len() + 1);
        if bytes > SQL_MAX_BYTES {
            keep = i;
            break;
        }
    }
    if keep < rows.len() {
        rows.truncate(keep);
        truncated = true;
    }
    Ok(SqlResult {
        row_count: rows.len(),
        rows,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_may_come_as_text_and_bad_ones_are_named() {
        let a: ListAlertsArgs = serde_json::from_str(r#"{"limit": "3"}"#).unwrap();
        assert_eq!(a.limit, Some(3));
        let a: ListAlertsArgs = serde_json::from_str(r#"{"limit": 4}"#).unwrap();
        assert_eq!(a.limit, Some(4));
        let a: ListAlertsArgs = serde_json::from_str("{}").unwrap();
        assert_eq!(a.limit, None);
        let e = serde_json::from_str::<AnalyzeArgs>(r#"{"user": "u", "time_range_hours": "soon"}"#).unwrap_err();
        assert!(e.to_string().contains("not a whole number"), "{e}");
        let a: AnalyzeArgs = serde_json::from_str(r#"{"user": "u"}"#).unwrap();
        assert_eq!(a.time_range_hours, 24);
    }

    #[test]
    fn like_patterns_escape_wildcards_and_cursors_are_checked() {
        assert_eq!(like_pattern("50%_off"), "%50\\%\\_off%");
        assert_eq!(offset_of(Some("o40")), Ok(40));
        assert!(offset_of(Some("40")).is_err());
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(501)).is_err());
        assert_eq!(page_size(None), Ok(50));
    }
}
