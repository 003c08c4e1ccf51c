//! An event's time and id as exports write them, not only as Okta's API does.
//!
//! The System Log API writes `published` as RFC 3339 with milliseconds and always sends a
//! `uuid`. SIEM exports and pipelines in between do not: `2023-05-26 20:18:51.888` with no
//! zone, nanoseconds, epoch milliseconds, no `uuid` at all. Each is read here; only a time
//! that cannot be read, or one that cannot be true, rejects the event.

use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};
use idgw_schemas::okta::LogEvent;
use idgw_schemas::okta::lenient::Str;
use sha2::{Digest as _, Sha256};

use crate::reject::{RejectKind, Rejection};

/// Events dated later than this past the wall clock are refused: Okta stamps events on
/// arrival, so a time days ahead is a broken exporter or a forged record, and admitting it
/// would move every windowed detector's watermark past the real events that follow.
pub const MAX_AHEAD: chrono::Duration = chrono::Duration::days(1);

/// The earliest time accepted (Okta's System Log does not reach further back).
pub fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or_default()
}

/// `published` in any of the forms exports write: RFC 3339 (any fraction, any offset); a
/// space instead of `T`; no zone (UTC, as Okta writes it); epoch seconds or milliseconds.
/// Refuses times before [`earliest`] or more than [`MAX_AHEAD`] past `now`.
pub fn parse_published(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Rejection> {
    let time = read_time(text.trim()).ok_or_else(|| {
        Rejection::new(
            RejectKind::InvalidTimestamp,
            format!("`published` {text:?} is not a time (RFC 3339, `YYYY-MM-DD hh:mm:ss[.f]` or epoch)"),
        )
    })?;
    if time > now + MAX_AHEAD {
        return Err(Rejection::new(
            RejectKind::InvalidTimestamp,
            format!(
                "`published` {text:?} is more than a day ahead of the clock ({now}); refused so it cannot move detection windows"
            ),
        ));
    }
    if time < earliest() {
        return Err(Rejection::new(
            RejectKind::InvalidTimestamp,
            format!("`published` {text:?} is before 2000"),
        ));
    }
    Ok(time)
}

fn read_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // A space for the `T`, with a zone.
    if let Some(t) = text
        .get(10..11)
        .filter(|sep| *sep == " ")
        .and_then(|_| DateTime::parse_from_rfc3339(&format!("{}T{}", &text[..10], &text[11..])).ok())
    {
        return Some(t.with_timezone(&Utc));
    }
    // No zone: UTC, as Okta writes every time.
    let bare = text.trim_end_matches(" UTC").trim_end_matches('Z');
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(bare, format) {
            return Some(t.and_utc());
        }
    }
    // Epoch seconds or milliseconds (a SIEM's numeric time).
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().ok()?;
        return if n >= 100_000_000_000 {
            DateTime::from_timestamp_millis(n)
        } else {
            DateTime::from_timestamp(n, 0)
        };
    }
    None
}

/// The id of an event that came without a `uuid`: a SHA-256 of what identifies it (its
/// time, type, actor, client address, request and transaction ids, outcome, targets and
/// message), so the same event delivered twice gets the same id and is deduplicated.
pub fn derived_id(ev: &LogEvent<'_>) -> String {
    let text = |v: &Option<Str<'_>>| v.as_ref().map_or("", Str::as_str).to_owned();
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update(s.as_bytes());
        h.update([0x1f]);
    };
    part(&text(&ev.published));
    part(&text(&ev.event_type));
    part(&text(&ev.display_message));
    if let Some(a) = &ev.actor {
        part(&text(&a.id));
        part(&text(&a.alternate_id));
    }
    if let Some(c) = &ev.client {
        part(&text(&c.ip_address));
    }
    if let Some(t) = &ev.transaction {
        part(&text(&t.id));
    }
    if let Some(d) = ev.debug_context.as_ref().and_then(|d| d.debug_data.as_deref()) {
        part(&text(&d.request_id));
    }
    if let Some(o) = &ev.outcome {
        part(&text(&o.result));
        part(&text(&o.reason));
    }
    for t in ev.target.as_ref().map(|t| t.0.as_slice()).unwrap_or_default() {
        part(&text(&t.id));
        part(&text(&t.alternate_id));
    }
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("derived-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap()
    }

    fn at(text: &str) -> String {
        parse_published(text, now())
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    #[test]
    fn every_export_form_of_published() {
        for text in [
            "2023-05-26T20:18:51.888Z",
            "2023-05-26T20:18:51.888+00:00",
            "2023-05-26T22:18:51.888+02:00",
            "2023-05-26T20:18:51.888123456Z",
            "2023-05-26 20:18:51.888",
            "2023-05-26 20:18:51.888Z",
            "2023-05-26 20:18:51.888 UTC",
            "2023-05-26T20:18:51.888",
            "1685132331888",
        ] {
            assert_eq!(at(text), "2023-05-26T20:18:51.888Z", "{text}");
        }
        assert_eq!(at("1685132331"), "2023-05-26T20:18:51.000Z");
        assert_eq!(at("2023-05-26 20:18"), "2023-05-26T20:18:00.000Z");
    }

    #[test]
    fn times_that_cannot_be_true_are_refused() {
        for text in [
            "9999-12-31T23:59:59.000Z",
            "0000-01-01T00:00:00.000Z",
            "2026-12-09T00:00:00Z",
            "yesterday",
            "",
        ] {
            let e = parse_published(text, now()).unwrap_err();
            assert_eq!(e.kind, RejectKind::InvalidTimestamp, "{text}");
        }
        // Clock skew of hours is fine.
        assert!(parse_published("2026-12-07T20:00:00Z", now()).is_ok());
    }

    #[test]
    fn a_derived_id_is_stable_and_tells_events_apart() {
        let a: LogEvent<'_> = serde_json::from_str(
            r#"{"published":"2023-05-26 20:18:51.888","eventType":"user.session.start","actor":{"id":"00u1"},"client":{"ipAddress":"203.0.113.9"}}"#,
        )
        .unwrap();
        // The same event, keys in another order and spaced differently.
        let again: LogEvent<'_> = serde_json::from_str(
            r#"{"client": {"ipAddress": "203.0.113.9"}, "actor": {"id": "00u1"}, "eventType": "user.session.start", "published": "2023-05-26 20:18:51.888"}"#,
        )
        .unwrap();
        let other: LogEvent<'_> = serde_json::from_str(
            r#"{"published":"2023-05-26 20:18:51.889","eventType":"user.session.start","actor":{"id":"00u1"},"client":{"ipAddress":"203.0.113.9"}}"#,
        )
        .unwrap();
        assert_eq!(derived_id(&a), derived_id(&again));
        assert_ne!(derived_id(&a), derived_id(&other));
        assert!(derived_id(&a).starts_with("derived-"));
    }
}
