//! Detections computed on demand over stored events, with the pipeline's own engine:
//! `detect_impossible_travel` and `detect_anomalies_ml`.
//!
//! The stored events of the scope (a user, or everyone) from a look-back before the window
//! to its end are read in event-time order from the `raw` column, decoded and normalized
//! exactly as the pipeline does, and run through a fresh engine; the alerts of the asked
//! detection that end inside the window are returned. The look-back gives the profiles
//! (last location, known countries, the anomaly model) the history they need.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::prelude::{col, lit};
use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::detect::{DetectConfig, Engine};
use idgw_pipeline::normalize::normalize_fields;
use idgw_schemas::{Alert, Detection};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::data::{DataError, Progress, StoreReader};
use crate::tools::{ToolError, ts_ms};

/// History read before the window (days).
const LOOKBACK_DAYS: i64 = 30;
/// Most events one call examines.
pub const MAX_EVENTS: i64 = 2_000_000;

/// Arguments of the on-demand detections.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DetectArgs {
    /// Okta user id or login; absent or `all` for every user.
    pub user: Option<String>,
    /// Hours back from the latest stored event of the scope (1–720, default 24).
    #[serde(default = "default_hours", deserialize_with = "crate::tools::lenient::u32")]
    pub time_range_hours: u32,
}

fn default_hours() -> u32 {
    24
}

/// What an on-demand run found.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DetectionRun {
    /// The detection run.
    pub detection: String,
    /// The user, or `all`.
    pub scope: String,
    /// Window start and end (RFC 3339).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Events read (the window and the look-back before it).
    pub events_examined: u64,
    /// Of those, events stored without their verbatim JSON (`[store] raw = false` when
    /// they were written): not seen by this run.
    pub events_without_raw: u64,
    /// Alerts of this detection ending in the window, oldest first (the Alert contract).
    pub alerts: Vec<serde_json::Value>,
}

/// Runs `detection` over the scope's stored events.
pub async fn run(
    reader: &StoreReader,
    config: &DetectConfig,
    detection: Detection,
    args: DetectArgs,
    progress: Progress,
) -> Result<DetectionRun, ToolError> {
    if !(1..=720).contains(&args.time_range_hours) {
        return Err("time_range_hours must be between 1 and 720".into());
    }
    let user = args.user.filter(|u| !u.is_empty() && u != "all");
    let scope = match &user {
        Some(u) => col("user_id")
            .eq(lit(u.as_str()))
            .or(col("user_login").eq(lit(u.as_str()))),
        None => lit(true),
    };
    let label = user.clone().unwrap_or_else(|| "all".into());
    let events = reader.table("events").await.map_err(|e| e.to_string())?;

    // The window ends at the scope's latest event (the store's clock, not the wall clock).
    let latest = events
        .clone()
        .filter(scope.clone())
        .and_then(|d| d.aggregate(vec![], vec![max(col("event_time")).alias("t")]))
        .map_err(|e| e.to_string())?;
    let row = reader.rows(latest).await.map_err(|e| e.to_string())?.pop();
    let Some(end) = row
        .as_ref()
        .and_then(|r| r.get("t")?.as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return match user {
            Some(u) => Err(format!(
                "no stored events for user {u}; pass an Okta user id or a login"
            )),
            None => Ok(DetectionRun {
                detection: detection.as_str().into(),
                scope: label,
                from: None,
                to: None,
                events_examined: 0,
                events_without_raw: 0,
                alerts: Vec::new(),
            }),
        };
    };
    let end_ms = end.timestamp_millis();
    let start_ms = end_ms - i64::from(args.time_range_hours) * 3_600_000;
    let read_from = start_ms - LOOKBACK_DAYS * 86_400_000;
    let in_range = scope.and(col("event_time").gt_eq(ts_ms(read_from)));

    let counted = events
        .clone()
        .filter(in_range.clone())
        .and_then(|d| d.aggregate(vec![], vec![count(lit(1)).alias("n")]))
        .map_err(|e| e.to_string())?;
    let total = reader
        .rows(counted)
        .await
        .map_err(|e| e.to_string())?
        .pop()
        .and_then(|r| r.get("n")?.as_i64())
        .unwrap_or(0);
    if total > MAX_EVENTS {
        return Err(format!(
            "{total} events in scope (window plus {LOOKBACK_DAYS} days of history); at most {MAX_EVENTS} are examined per call: name a user or shorten time_range_hours"
        ));
    }

    let raw = events
        .filter(in_range)
        .and_then(|d| {
            d.sort(vec![
                col("event_time").sort(true, true),
                col("event_id").sort(true, true),
            ])
        })
        .and_then(|d| d.select_columns(&["raw"]))
        .map_err(|e| e.to_string())?;
    let engine = Engine::new(config);
    let total = total as u64;
    let (mut engine, examined, without_raw) = reader
        .fold(raw, (engine, 0u64, 0u64), move |(engine, seen, without_raw), batch| {
            let column = batch.column(0);
            let Some(texts) = column.as_string_opt::<i32>() else {
                return Err(DataError::Query("events.raw is not text".into()));
            };
            for i in 0..texts.len() {
                if texts.is_null(i) {
                    *without_raw += 1;
                    continue;
                }
                let text = texts.value(i);
                // Stored events were accepted once; one that no longer decodes is skipped
                // (it would have been dead-lettered, not stored).
                if let Ok(Decoded::Event { event, .. }) = decode(text.as_bytes(), usize::MAX)
                    && let Ok(ev) = normalize_fields(&event)
                {
                    engine.process(&ev);
                }
            }
            *seen += texts.len() as u64;
            progress.report(*seen, Some(total), "events examined");
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
    if examined > 0 && without_raw == examined {
        return Err(format!(
            "none of the {examined} events in scope has its verbatim JSON (the pipeline writes with `[store] raw = false`): this detection re-reads events from it and cannot run; its streaming alerts are in list_alerts"
        ));
    }
    engine.flush();
    let mut alerts: Vec<Alert> = engine
        .take_alerts()
        .into_iter()
        .filter(|a| a.detection == detection && a.last_seen.timestamp_millis() >= start_ms)
        .collect();
    alerts.sort_by(|a, b| a.last_seen.cmp(&b.last_seen).then(a.alert_id.cmp(&b.alert_id)));
    let utc = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339());
    Ok(DetectionRun {
        detection: detection.as_str().into(),
        scope: label,
        from: utc(start_ms),
        to: utc(end_ms),
        events_examined: examined,
        events_without_raw: without_raw,
        alerts: alerts.iter().filter_map(|a| serde_json::to_value(a).ok()).collect(),
    })
}
