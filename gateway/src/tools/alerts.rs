//! `list_alerts` and `explain_alert`.

use super::*;

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
    let Some(alert) = reader.alert(&args.alert_id).await.map_err(err)? else {
        return Err(format!("alert {} not found; list_alerts gives the ids", args.alert_id));
    };
    let ids: Vec<String> = alert
        .get("event_uuids")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    // The evidence happened between the alert's first and last seen (event time), nearly
    // always in the alert's user's own events: look there first (an hour either side; a
    // compacted store then reads a page or two a day), then in everyone's events of that
    // span, then in the whole table, each time for the ids still missing.
    let seen = |field: &str| {
        str_field(&alert, field)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.timestamp_millis())
    };
    let window = match (seen("first_seen"), seen("last_seen")) {
        (Some(a), Some(b)) => Some(event_time_window(a - 3_600_000, b + 3_600_000)),
        _ => None,
    };
    let mut scopes: Vec<Option<Expr>> = Vec::new();
    if let Some(w) = &window {
        if let Some(user) = str_field(&alert, "user_id") {
            scopes.push(Some(col("user_id").eq(lit(user)).and(w.clone())));
        }
        scopes.push(Some(w.clone()));
    }
    scopes.push(None);
    let found = |events: &[Row]| -> std::collections::HashSet<String> {
        events
            .iter()
            .filter_map(|e| Some(e.get("event_id")?.as_str()?.to_owned()))
            .collect()
    };
    let mut events: Vec<Row> = Vec::new();
    let mut missing = ids;
    for scope in scopes {
        if missing.is_empty() {
            break;
        }
        events.extend(events_by_id(reader, &missing, scope).await?);
        let have = found(&events);
        missing.retain(|i| !have.contains(i.as_str()));
    }
    // RFC 3339 strings of one format sort as the times do.
    let time = |r: &Row| r.get("event_time").and_then(|v| v.as_str()).unwrap_or("").to_owned();
    events.sort_by_key(time);
    Ok(AlertExplanation {
        alert: expand_evidence(alert),
        events,
        missing_events: missing,
    })
}

/// Stored events with these ids (within `window` when given), oldest first.
async fn events_by_id(reader: &StoreReader, ids: &[String], window: Option<Expr>) -> Result<Vec<Row>, ToolError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut filter = col("event_id").in_list(ids.iter().map(|i| lit(i.as_str())).collect(), false);
    if let Some(w) = window {
        filter = filter.and(w);
    }
    let df = events_matching(reader, filter, vec![col("event_time").sort(true, true)]).await?;
    reader.rows(df).await.map_err(err)
}
