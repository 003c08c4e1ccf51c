//! The page's charts, drawn as inline SVG (no script, no network): alerts over time and a
//! per-user activity strip. Every mark carries a `<title>`, which browsers show on hover.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::data::{AlertCount, Timeline, TimelineEvent};

/// Severities from the most to the least severe, with their colours.
pub const SEVERITIES: [(&str, &str); 5] = [
    ("critical", "#a1001f"),
    ("high", "#e4572e"),
    ("medium", "#f0a202"),
    ("low", "#4f9d69"),
    ("info", "#8895a7"),
];

/// The colour of a severity name.
pub fn severity_colour(severity: &str) -> &'static str {
    SEVERITIES
        .iter()
        .find(|(s, _)| *s == severity)
        .map_or("#8895a7", |(_, c)| c)
}

const WIDTH: f64 = 960.0;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How wide one bar of the alerts chart is: hours for a short store, days for a long one.
fn bucket_ms(first: i64, last: i64) -> i64 {
    let span = last - first;
    if span <= 3 * DAY_MS {
        HOUR_MS
    } else if span <= 120 * DAY_MS {
        DAY_MS
    } else {
        7 * DAY_MS
    }
}

fn date_label(ms: i64, bucket: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    if bucket < DAY_MS {
        t.format("%b %d %H:00").to_string()
    } else {
        t.format("%b %d").to_string()
    }
}

/// The smallest round number at or above `n` (1, 2, 5 × 10ᵏ), for the y axis.
fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= n {
                return m * step;
            }
        }
        step *= 10;
    }
}

/// Alerts per bucket, stacked by severity.
pub fn alerts_over_time(counts: &[AlertCount]) -> Markup {
    let (Some(first), Some(last)) = (
        counts.iter().map(|c| c.hour_ms).min(),
        counts.iter().map(|c| c.hour_ms).max(),
    ) else {
        return html! { p.empty { "No alerts in this store." } };
    };
    let bucket = bucket_ms(first, last);
    let start = first - first.rem_euclid(bucket);
    let buckets = ((last - start) / bucket + 1) as usize;
    // stacks[b][s] = alerts of severity s in bucket b.
    let mut stacks = vec![[0u64; SEVERITIES.len()]; buckets];
    for c in counts {
        let b = ((c.hour_ms - start) / bucket) as usize;
        let s = SEVERITIES.iter().position(|(name, _)| *name == c.severity).unwrap_or(4);
        stacks[b][s] += c.n;
    }
    let max = nice_ceiling(stacks.iter().map(|s| s.iter().sum::<u64>()).max().unwrap_or(1).max(1));
    let (left, top, height, bottom) = (44.0, 8.0, 180.0, 26.0);
    let plot_w = WIDTH - left - 8.0;
    let bar_w = plot_w / buckets as f64;
    let y = |v: f64| top + height - v / max as f64 * height;
    let label_every = (buckets / 8).max(1);
    // Drawn from the least severe up, so critical sits on top of each bar.
    let mut rects = Vec::new();
    for (b, stack) in stacks.iter().enumerate() {
        let mut base = 0.0;
        for s in (0..SEVERITIES.len()).rev().filter(|&s| stack[s] > 0) {
            let h = stack[s] as f64 / max as f64 * height;
            let title = format!(
                "{}: {} {}",
                date_label(start + b as i64 * bucket, bucket),
                stack[s],
                SEVERITIES[s].0
            );
            rects.push((left + b as f64 * bar_w, y(base) - h, h, SEVERITIES[s].1, title));
            base += stack[s] as f64;
        }
    }
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (top + height + bottom) } role="img"
            aria-label="Alerts over time, stacked by severity" {
            @for tick in [0, max / 2, max] {
                line x1=(left) x2=(WIDTH - 8.0) y1=(y(tick as f64)) y2=(y(tick as f64)) class="grid" {}
                text x=(left - 6.0) y=(y(tick as f64) + 4.0) text-anchor="end" class="axis" { (tick) }
            }
            @for (x, ry, h, colour, title) in &rects {
                rect x=(format!("{x:.2}")) y=(format!("{ry:.2}")) width=(format!("{:.2}", (bar_w - 1.0).max(0.5)))
                    height=(format!("{h:.2}")) fill=(colour) { title { (title) } }
            }
            @for b in (0..buckets).step_by(label_every) {
                text x=(format!("{:.2}", left + b as f64 * bar_w + bar_w / 2.0)) y=(top + height + 16.0)
                    text-anchor="middle" class="axis" { (date_label(start + b as i64 * bucket, bucket)) }
            }
        }
        p.legend {
            @for (name, colour) in SEVERITIES {
                span.swatch style={ "background:" (colour) } {} (name)
            }
            " · " span.note { "One bar per " (if bucket == HOUR_MS { "hour" } else if bucket == DAY_MS { "day" } else { "week" }) ", by when the alert's last evidence happened." }
        }
    }
}

/// Where an event goes on a timeline: its lane and colour.
fn lane(event: &TimelineEvent) -> (usize, &'static str) {
    let t = event.event_type.as_str();
    let failed = matches!(event.outcome_result.as_deref(), Some("FAILURE" | "DENY"));
    if t.starts_with("user.session.start")
        || t.starts_with("user.authentication.")
        || t.starts_with("policy.evaluate_sign_on")
    {
        if failed { (1, "#e4572e") } else { (0, "#2b7bb9") }
    } else if t.contains("mfa") || t.contains("factor") || t.starts_with("system.push") {
        if failed { (2, "#e4572e") } else { (2, "#7b5ea7") }
    } else {
        (3, "#6b7785")
    }
}

const LANES: [&str; 4] = ["Sign-in", "Sign-in failed", "MFA", "Other"];

/// One user's events and alerts on a time axis.
pub fn timeline(t: &Timeline) -> Markup {
    let times = t.events.iter().map(|e| e.at_ms).chain(t.alerts.iter().map(|a| a.at_ms));
    let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
        return html! { p.empty { "No events in the window." } };
    };
    let span = (last - first).max(60_000) as f64;
    let (left, top, lane_h) = (104.0, 22.0, 18.0);
    let plot_w = WIDTH - left - 12.0;
    let px = |ms: i64| left + (ms - first) as f64 / span * plot_w;
    let x = |ms: i64| format!("{:.2}", px(ms));
    let height = top + lane_h * LANES.len() as f64 + 20.0;
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (height) } role="img" aria-label="Activity timeline" {
            @for (i, name) in LANES.iter().enumerate() {
                @let cy = top + lane_h * i as f64 + lane_h / 2.0;
                line x1=(left) x2=(WIDTH - 12.0) y1=(cy) y2=(cy) class="grid" {}
                text x=(left - 8.0) y=(cy + 4.0) text-anchor="end" class="axis" { (name) }
            }
            text x="4" y="14" class="axis" { "Alerts" }
            @for a in &t.alerts {
                @let ax = px(a.at_ms);
                path d=(format!("M{ax:.2} 16L{:.2} 6L{:.2} 6Z", ax - 5.0, ax + 5.0))
                    fill=(severity_colour(&a.severity)) class="alert-mark" {
                    title { (stamp(a.at_ms)) " · " (a.severity) " · " (a.detection) ": " (a.summary) }
                }
                line x1=(format!("{ax:.2}")) x2=(format!("{ax:.2}")) y1="16" y2=(top + lane_h * LANES.len() as f64)
                    stroke=(severity_colour(&a.severity)) class="alert-line" {}
            }
            @for e in &t.events {
                @let (i, colour) = lane(e);
                circle cx=(x(e.at_ms)) cy=(top + lane_h * i as f64 + lane_h / 2.0) r="3.2" fill=(colour) {
                    title {
                        (stamp(e.at_ms)) " · " (e.event_type)
                        @if let Some(o) = &e.outcome_result { " · " (o) }
                        @if let Some(ip) = &e.src_ip { " · " (ip) }
                        @if let Some(c) = &e.geo_city { " · " (c) }
                        @if let Some(c) = &e.geo_country { ", " (c) }
                    }
                }
            }
            text x=(left) y=(height - 4.0) class="axis" { (stamp(first)) }
            text x=(WIDTH - 12.0) y=(height - 4.0) text-anchor="end" class="axis" { (stamp(last)) }
        }
    }
}

/// A UTC time as the page prints it.
pub fn stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(|| "?".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(480), 500);
    }

    #[test]
    fn bars_follow_the_span() {
        assert_eq!(bucket_ms(0, 2 * DAY_MS), HOUR_MS);
        assert_eq!(bucket_ms(0, 30 * DAY_MS), DAY_MS);
        assert_eq!(bucket_ms(0, 365 * DAY_MS), 7 * DAY_MS);
    }

    #[test]
    fn stacked_bars_add_up() {
        let counts = vec![
            AlertCount {
                hour_ms: 0,
                detection: "brute_force".into(),
                severity: "high".into(),
                n: 3,
            },
            AlertCount {
                hour_ms: 0,
                detection: "mfa_fatigue".into(),
                severity: "critical".into(),
                n: 2,
            },
            AlertCount {
                hour_ms: 2 * HOUR_MS,
                detection: "brute_force".into(),
                severity: "low".into(),
                n: 1,
            },
        ];
        let svg = alerts_over_time(&counts).into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains(": 3 high") && svg.contains(": 2 critical") && svg.contains(": 1 low"));
        assert!(alerts_over_time(&[]).into_string().contains("No alerts"));
    }
}
