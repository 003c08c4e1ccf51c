//! `search_events`: stored events, filtered and paged.

use super::*;

/// `search_events`.
pub async fn search_events(reader: &StoreReader, args: SearchEventsArgs) -> Result<Page, ToolError> {
    let size = page_size(args.limit)?;
    let offset = offset_of(args.cursor.as_deref())?;
    let mut filter = lit(true);
    // Whole days outside the window, for a scan of the table (the per-user reader skips
    // them itself).
    let mut days = lit(true);
    let known = match &args.user {
        Some(u) => known_user_id(reader, u).await?,
        None => None,
    };
    if let Some(u) = &args.user {
        filter = filter.and(match &known {
            Some(id) => col("user_id").eq(lit(id.as_str())),
            None => user_filter(u),
        });
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
    // Each bound also bounds the `date` partition (the UTC day of the event time), so files
    // of days outside the range are not opened.
    let day = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d").to_string());
    let since = args.since.as_deref().map(|s| ms_of("since", s)).transpose()?;
    let until = args.until.as_deref().map(|u| ms_of("until", u)).transpose()?;
    if let Some(ms) = since {
        filter = filter.and(col("event_time").gt_eq(ts_ms(ms)));
        if let Some(d) = day(ms) {
            days = days.and(col("date").gt_eq(lit(d)));
        }
    }
    if let Some(ms) = until {
        filter = filter.and(col("event_time").lt(ts_ms(ms)));
        if let Some(d) = day(ms) {
            days = days.and(col("date").lt_eq(lit(d)));
        }
    }
    if let Some(text) = args.text.as_deref().filter(|t| !t.is_empty()) {
        let p = like_pattern(text);
        filter = filter.and(
            col("display_message")
                .ilike(lit(p.clone()))
                .or(col("outcome_reason").ilike(lit(p))),
        );
    }
    let order = vec![col("event_time").sort(false, true), col("event_id").sort(true, true)];
    // A user the identity state knows: their events alone, through the per-user reader.
    let mine = match &known {
        Some(id) => {
            let window = since.unwrap_or(i64::MIN)..until.unwrap_or(i64::MAX);
            reader
                .user_events_table(id, window, &EVENT_COLUMNS)
                .await
                .map_err(err)?
        }
        None => None,
    };
    let df = match mine {
        Some(df) => select_events(df, filter, order)?,
        None => events_matching(reader, filter.and(days), order).await?,
    };
    page(reader, df, offset, size).await
}
