//! `analyze_identity_state` and `similar_users`: one identity's picture, and who behaves alike.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;

use super::*;
use crate::data::to_rows;

/// `analyze_identity_state`.
pub async fn analyze_identity_state(reader: &StoreReader, args: AnalyzeArgs) -> Result<IdentityAnalysis, ToolError> {
    if !(1..=720).contains(&args.time_range_hours) {
        return Err("time_range_hours must be between 1 and 720".into());
    }
    // Every read of the analysis in one blocking call: the identity first (it gives the
    // Okta id and the window's end), then the window's events, the user's alerts and the
    // nearest behaviours.
    let user = args.user.clone();
    let hours = args.time_range_hours;
    let with_vectors = reader.has_vectors();
    let read = reader
        .blocking(move |l| {
            let Some(state) = l.identity(&user)?.map(|r| expand_json(r, "top_reasons")) else {
                return Ok(None);
            };
            let user_id = str_field(&state, "user_id").unwrap_or_default();
            let end_ms = str_field(&state, "updated_at")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map_or(i64::MAX, |t| t.timestamp_millis());
            let start_ms = end_ms.saturating_sub(i64::from(hours) * 3_600_000);
            // One read of the user's events of the window: every (place, client) pair with
            // its count and last time, split into locations and devices below.
            let activity_columns = [ACTIVITY_KEYS.as_slice(), &["event_time"]].concat();
            let activity = activity_groups(&l.user_events(&user_id, start_ms, &activity_columns)?)?;
            let alerts = l.alerts_of(&user_id)?;
            let similar = if with_vectors {
                match l.with_vectors(|index| Ok(vectors::similar_to(index, &user_id, 5, &SimilarFilter::default())?)) {
                    Ok(found) => found.unwrap_or_default().into_iter().map(similar_user).collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "similar users unavailable");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            Ok(Some((state, user_id, start_ms, activity, alerts, similar)))
        })
        .await
        .map_err(err)?;
    let Some((state, user_id, start_ms, activity, open_alerts, similar_past_behaviors)) = read else {
        return Err(format!(
            "user {} not found in identity state; pass an Okta user id (00u…) or a login seen in the events",
            args.user
        ));
    };
    let as_of = str_field(&state, "updated_at");
    let events_in_window: i64 = activity.iter().filter_map(|r| r.get("events")?.as_i64()).sum();
    let (recent_locations, recent_devices) = split_activity(&activity);
    let open_alerts: Vec<Row> = recent_alerts(open_alerts, start_ms, 20)
        .map_err(err)?
        .into_iter()
        .map(expand_evidence)
        .collect();

    let risk_score = f64_field(&state, "risk_score").unwrap_or(0.0);
    let risk_level =
        str_field(&state, "risk_level").unwrap_or_else(|| RiskLevel::from_score(risk_score).as_str().into());
    let top_reasons: Vec<Row> = state
        .get("top_reasons")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
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

/// What `analyze_identity_state` groups the user's events by: where from, then with what.
const ACTIVITY_KEYS: [&str; 6] = ["geo_country", "geo_city", "src_ip", "ua_browser", "ua_os", "dt_hash"];

/// The user's events grouped by [`ACTIVITY_KEYS`], each group with `events` (its count)
/// and `last_seen` (its latest time), as rows.
fn activity_groups(batches: &[RecordBatch]) -> Result<Vec<Row>, DataError> {
    type Key<'a> = [Option<&'a str>; 6];
    let mut groups: HashMap<Key<'_>, (i64, i64)> = HashMap::new();
    for batch in batches {
        let keys: Vec<Option<&StringArray>> = ACTIVITY_KEYS
            .iter()
            .map(|k| batch.column_by_name(k).and_then(|c| c.as_string_opt::<i32>()))
            .collect();
        let times = batch
            .column_by_name("event_time")
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or_else(|| DataError::Query("events without an event_time column".into()))?;
        for row in 0..batch.num_rows() {
            let key: Key<'_> = std::array::from_fn(|k| keys[k].filter(|a| a.is_valid(row)).map(|a| a.value(row)));
            let group = groups.entry(key).or_insert((0, i64::MIN));
            group.0 += 1;
            group.1 = group.1.max(times.value(row));
        }
    }
    // As a batch, so the rows come out in the JSON form every other tool's rows have.
    let mut columns: Vec<ArrayRef> = (0..ACTIVITY_KEYS.len())
        .map(|k| Arc::new(groups.keys().map(|key| key[k]).collect::<StringArray>()) as ArrayRef)
        .collect();
    columns.push(Arc::new(groups.values().map(|g| g.0).collect::<Int64Array>()));
    columns.push(Arc::new(
        TimestampMillisecondArray::from(groups.values().map(|g| g.1).collect::<Vec<i64>>()).with_timezone("UTC"),
    ));
    let mut fields: Vec<Field> = ACTIVITY_KEYS
        .iter()
        .map(|k| Field::new(*k, DataType::Utf8, true))
        .collect();
    fields.push(Field::new("events", DataType::Int64, false));
    fields.push(Field::new("last_seen", columns[7].data_type().clone(), false));
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| DataError::Query(e.to_string()))?;
    to_rows(&[batch])
}

/// Of a user's alerts, those seen at or after `start_ms`: newest detection first (ties by
/// id, so the answer is the same every time), at most `limit`.
fn recent_alerts(batch: Option<RecordBatch>, start_ms: i64, limit: usize) -> Result<Vec<Row>, DataError> {
    let Some(batch) = batch else {
        return Ok(Vec::new());
    };
    let time = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or_else(|| DataError::Query(format!("alerts without a {name} column")))
    };
    let (last_seen, detected_at) = (time("last_seen")?, time("detected_at")?);
    let ids = batch
        .column_by_name("alert_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| DataError::Query("alerts without an alert_id column".into()))?;
    let mut rows: Vec<usize> = (0..batch.num_rows())
        .filter(|&i| last_seen.value(i) >= start_ms)
        .collect();
    rows.sort_by(|&a, &b| {
        detected_at
            .value(b)
            .cmp(&detected_at.value(a))
            .then_with(|| ids.value(a).cmp(ids.value(b)))
    });
    rows.truncate(limit);
    let indices: UInt32Array = rows.iter().map(|&i| i as u32).collect();
    let taken = take_record_batch(&batch, &indices).map_err(|e| DataError::Query(e.to_string()))?;
    to_rows(&[taken])
}

/// Places and clients seen (at most ten of each, latest first) from the activity groups:
/// counts summed and the latest time kept per place and per client.
fn split_activity(groups: &[Row]) -> (Vec<Row>, Vec<Row>) {
    let fold = |keys: &[&str]| {
        let mut by: std::collections::HashMap<Vec<serde_json::Value>, (i64, String)> = std::collections::HashMap::new();
        for g in groups {
            let key: Vec<serde_json::Value> = keys.iter().map(|k| g.get(*k).cloned().unwrap_or_default()).collect();
            let events = g.get("events").and_then(serde_json::Value::as_i64).unwrap_or(0);
            let last = str_field(g, "last_seen").unwrap_or_default();
            let e = by.entry(key).or_insert((0, String::new()));
            e.0 += events;
            // RFC 3339 strings of one format sort as the times do.
            if last > e.1 {
                e.1 = last;
            }
        }
        let mut rows: Vec<Row> = by
            .into_iter()
            .map(|(key, (events, last))| {
                let mut row = Row::new();
                for (k, v) in keys.iter().zip(key) {
                    if !v.is_null() {
                        row.insert((*k).to_owned(), v);
                    }
                }
                row.insert("events".into(), events.into());
                row.insert("last_seen".into(), last.into());
                row
            })
            .collect();
        // Latest first; ties by count, then by value, so the answer is the same every time.
        let order = |r: &Row| {
            (
                std::cmp::Reverse(str_field(r, "last_seen").unwrap_or_default()),
                std::cmp::Reverse(r.get("events").and_then(serde_json::Value::as_i64).unwrap_or(0)),
                serde_json::to_string(r).unwrap_or_default(),
            )
        };
        rows.sort_by_cached_key(order);
        rows.truncate(10);
        rows
    };
    (fold(&ACTIVITY_KEYS[..3]), fold(&ACTIVITY_KEYS[3..]))
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
