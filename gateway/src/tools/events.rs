//! `search_events`: stored events, filtered and paged.

use super::*;

/// `search_events`.
pub async fn search_events(reader: &StoreReader, args: SearchEventsArgs) -> Result<Page, ToolError> {
    let size = page_size(args.limit)?;
    let offset = offset_of(args.cursor.as_deref())?;
    let mut filter = lit(true);
    if let Some(u) = &args.user {
        filter = filter.and(resolved_user_filter(reader, u).await?);
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
    let day = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.to_utc().format("%Y-%m-%d").to_string())
    };
    if let Some(s) = &args.since {
        filter = filter.and(col("event_time").gt_eq(ts_literal("since", s)?));
        if let Some(d) = day(s) {
            filter = filter.and(col("date").gt_eq(lit(d)));
        }
    }
    if let Some(u) = &args.until {
        filter = filter.and(col("event_time").lt(ts_literal("until", u)?));
        if let Some(d) = day(u) {
            filter = filter.and(col("date").lt_eq(lit(d)));
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
    let df = events_matching(reader, filter, order).await?;
    page(reader, df, offset, size).await
}
