//! The read-only tools: arguments, structured results, and what each one reads.
//!
//! Tool names and argument names follow the reference design (design.md, "Compatibility").
//! Bad arguments and unknown users or alerts are tool errors (`isError`) whose text says
//! what to change; nothing here panics on input.
//!
//! [`args`] and [`results`] are the tools' JSON contracts; [`identity`] (analysis, similar
//! users), [`alerts`], [`events`] and [`sql`] hold what each tool reads; the helpers here
//! page, filter and shape rows for all of them.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::SortExpr;
use datafusion::prelude::{DataFrame, Expr, col, lit};
use idgw_pipeline::vectors::{self, SimilarFilter};
use idgw_schemas::{Detection, RiskLevel, Severity};

use crate::data::{DataError, Row, StoreReader};

mod alerts;
mod args;
mod events;
mod identity;
mod results;
mod sql;

pub use alerts::{explain_alert, list_alerts};
pub(crate) use args::lenient;
pub use args::*;
pub use events::search_events;
pub use identity::{analyze_identity_state, similar_users};
pub use results::*;
pub use sql::query_sql;

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
/// Longest `query_sql` text, bytes.
pub const SQL_MAX_LEN: usize = 16 << 10;
/// `query_sql` result bytes at most (JSON). The answer carries the rows twice (structured
/// content and its text), and the official Python SDK refuses a server-sent event over
/// 1 MiB: at 1 MiB of rows a large result never reached the agent. The worker cuts at it too.
pub const SQL_MAX_BYTES: usize = 256 << 10;

// ---- helpers ---------------------------------------------------------------------------

fn ts_literal(field: &str, value: &str) -> Result<Expr, ToolError> {
    Ok(ts_ms(ms_of(field, value)?))
}

/// An RFC 3339 time argument as epoch milliseconds.
fn ms_of(field: &str, value: &str) -> Result<i64, ToolError> {
    let t = chrono::DateTime::parse_from_rfc3339(value)
        .map_err(|e| format!("{field}: {value:?} is not an RFC 3339 time (e.g. 2026-11-20T08:00:00Z): {e}"))?;
    Ok(t.timestamp_millis())
}

/// Events with `event_time` in `[from_ms, to_ms]`, said twice: on `event_time` (row-group
/// statistics prune) and on the `date` partition the time implies (whole days' files are
/// skipped without opening them). The `date` of an event is the UTC day of its event time,
/// so the second condition never drops a row the first keeps.
pub(crate) fn event_time_window(from_ms: i64, to_ms: i64) -> Expr {
    let day = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d").to_string());
    let mut window = col("event_time")
        .gt_eq(ts_ms(from_ms))
        .and(col("event_time").lt_eq(ts_ms(to_ms)));
    if let (Some(a), Some(b)) = (day(from_ms), day(to_ms)) {
        window = window.and(col("date").gt_eq(lit(a))).and(col("date").lt_eq(lit(b)));
    }
    window
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

/// The Okta id of a user given by id or login, when the identity state knows them. Their
/// events are then matched on `user_id` alone: the column compaction sorts the events by
/// and the per-user reader indexes (an `OR` with the login column would read every page).
/// Anyone else is matched on either column ([`user_filter`]).
async fn known_user_id(reader: &StoreReader, user: &str) -> Result<Option<String>, ToolError> {
    let known = reader.identity(user).await.map_err(err)?;
    Ok(known.as_ref().and_then(|row| str_field(row, "user_id")))
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

/// The stored events that pass `filter`, with the columns the tools return, in `order`.
async fn events_matching(reader: &StoreReader, filter: Expr, order: Vec<SortExpr>) -> Result<DataFrame, ToolError> {
    select_events(reader.table("events").await.map_err(err)?, filter, order)
}

/// The events of `events` that pass `filter`, with the columns the tools return, in `order`.
fn select_events(events: DataFrame, filter: Expr, order: Vec<SortExpr>) -> Result<DataFrame, ToolError> {
    events
        .filter(filter)
        .and_then(|d| d.select_columns(&EVENT_COLUMNS))
        .and_then(|d| d.sort(order))
        .map_err(|e| e.to_string())
}

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
