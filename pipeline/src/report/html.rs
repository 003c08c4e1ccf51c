//! The page itself. Everything a store holds is interpolated through maud, which escapes it:
//! logins, reasons and event types come from Okta and must not become markup.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::charts::{self, SEVERITIES, severity_colour, stamp};
use super::data::{ReportData, Travel};
use super::map;

const STYLE: &str = include_str!("report.css");

/// The whole page.
pub fn render(d: &ReportData) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // An empty icon: without it a browser asks the (absent) server for one.
                link rel="icon" href="data:,";
                title { "Identity threat report" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "Identity threat report" }
                    p.meta {
                        "Store " code { (d.store) } " · generated " (d.generated_at.format("%Y-%m-%d %H:%M UTC"))
                        @if let (Some(a), Some(b)) = (d.totals.first_event_ms, d.totals.last_event_ms) {
                            " · events from " (stamp(a)) " to " (stamp(b))
                        }
                    }
                }
                (totals(d))
                section #alerts {
                    h2 { "Alerts over time" }
                    (charts::alerts_over_time(&d.alert_counts))
                    (detection_table(d))
                }
                section #users {
                    h2 { "Riskiest users" }
                    (users_table(d))
                }
                section #travel {
                    h2 { "Impossible travel" }
                    (travel_map(&d.travels))
                }
                section #timelines {
                    h2 { "Timelines of the riskiest users" }
                    @if d.timelines.is_empty() {
                        p.empty { "No user carries risk." }
                    }
                    @for t in &d.timelines {
                        @let u = &d.top_users[t.user];
                        details.timeline open[t.user < 3] {
                            summary {
                                strong { (u.name()) } " · risk " (format!("{:.0}", u.risk_score))
                                " · " (plural(t.events.len(), "event")) ", " (plural(t.alerts.len(), "alert")) " in the window"
                                @if t.events_not_drawn > 0 { " (" (t.events_not_drawn) " older events not drawn)" }
                            }
                            (charts::timeline(t))
                        }
                    }
                }
                footer {
                    "Made by idgw report. Land outline: Natural Earth 1:110m (public domain). "
                    "Times are UTC. Hover a mark for its details."
                }
            }
        }
    }
    .into_string()
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn totals(d: &ReportData) -> Markup {
    let by_severity = severity_totals(d);
    html! {
        section.cards {
            div.card { span.value { (d.totals.events) } span.label { "events" } }
            div.card { span.value { (d.totals.users) } span.label { "users" } }
            div.card { span.value { (d.totals.alerts) } span.label { "alerts" } }
            @if d.totals.suppressed_alerts > 0 {
                div.card { span.value { (d.totals.suppressed_alerts) } span.label { "suppressed" } }
            }
            div.card { span.value { (d.totals.users_at_risk) } span.label { "users at risk" } }
            @for (name, colour) in SEVERITIES {
                div.card { span.value style={ "color:" (colour) } { (by_severity.get(name).copied().unwrap_or(0)) } span.label { (name) } }
            }
        }
    }
}

fn severity_totals(d: &ReportData) -> BTreeMap<&str, u64> {
    let mut out = BTreeMap::new();
    for c in &d.alert_counts {
        *out.entry(c.severity.as_str()).or_insert(0) += c.n;
    }
    out
}

fn detection_table(d: &ReportData) -> Markup {
    let mut rows: BTreeMap<&str, [u64; SEVERITIES.len()]> = BTreeMap::new();
    for c in &d.alert_counts {
        let s = SEVERITIES.iter().position(|(n, _)| *n == c.severity).unwrap_or(4);
        rows.entry(c.detection.as_str()).or_default()[s] += c.n;
    }
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by_key(|(name, counts)| (std::cmp::Reverse(counts.iter().sum::<u64>()), *name));
    let max = rows
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1);
    html! {
        @if !rows.is_empty() {
            table.detections {
                thead { tr { th { "Detection" } @for (s, _) in SEVERITIES { th.num { (s) } } th.num { "total" } th {} } }
                tbody {
                    @for (name, counts) in &rows {
                        @let total: u64 = counts.iter().sum();
                        tr {
                            td { code { (name) } }
                            @for n in counts { td.num { @if *n > 0 { (n) } } }
                            td.num { strong { (total) } }
                            td.barcell {
                                @for (i, n) in counts.iter().enumerate() {
                                    @if *n > 0 {
                                        span.bar style={ "width:" (format!("{:.1}", *n as f64 / max as f64 * 100.0)) "%;background:" (SEVERITIES[i].1) } {}
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn users_table(d: &ReportData) -> Markup {
    html! {
        @if d.top_users.is_empty() {
            p.empty { "No user carries risk." }
        } @else {
            table.users {
                thead { tr { th { "User" } th.num { "Risk" } th { "Why" } th.num { "Alerts" } th { "Last seen" } th { "Okta" } } }
                tbody {
                    @for u in &d.top_users {
                        tr {
                            td { strong { (u.name()) } br; small { (u.user_id) } }
                            td.num {
                                span.level { (u.risk_level) }
                                div.score { span style={ "width:" (format!("{:.0}", u.risk_score.clamp(0.0, 100.0))) "%" } {} }
                                (format!("{:.0}", u.risk_score))
                            }
                            td {
                                ul.reasons {
                                    @for r in u.reasons().iter().take(3) {
                                        li {
                                            span.sev style={ "background:" (severity_colour(&r.severity)) } { (r.severity) }
                                            " " code { (r.detection) } " +" (format!("{:.0}", r.contribution)) ": " (r.summary)
                                        }
                                    }
                                }
                            }
                            td.num { (u.alert_count) }
                            td {
                                @if let Some(ms) = u.last_seen_ms { span.when { (stamp(ms)) } br; }
                                small { (u.last_city.as_deref().unwrap_or("")) @if u.last_city.is_some() && u.last_country.is_some() { ", " } (u.last_country.as_deref().unwrap_or("")) }
                            }
                            td { (u.okta_status.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
    }
}

fn place(p: &super::data::Place) -> String {
    match (&p.city, &p.country) {
        (Some(c), Some(k)) => format!("{c}, {k}"),
        (Some(c), None) => c.clone(),
        (None, Some(k)) => k.clone(),
        (None, None) => format!("{:.1}, {:.1}", p.lat, p.lon),
    }
}

fn travel_map(travels: &[Travel]) -> Markup {
    html! {
        svg.map viewBox="0 0 360 180" role="img" aria-label="Impossible-travel alerts on a world map" {
            rect.sea x="0" y="0" width="360" height="180" {}
            @for lon in (30..360).step_by(30) { line.graticule x1=(lon) x2=(lon) y1="0" y2="180" {} }
            @for lat in (30..180).step_by(30) { line.graticule x1="0" x2="360" y1=(lat) y2=(lat) {} }
            path.land d=(PreEscaped(map::LAND.replace('\n', ""))) {}
            @for t in travels {
                @let (x0, y0) = map::project(t.from.lat, t.from.lon);
                @let (x1, y1) = map::project(t.to.lat, t.to.lon);
                g.trip {
                    title {
                        (t.user) ": " (place(&t.from)) " → " (place(&t.to)) ", "
                        (format!("{:.0}", t.distance_km)) " km at " (format!("{:.0}", t.speed_kmh)) " km/h ("
                        (t.severity) ", " (stamp(t.at_ms)) ")"
                    }
                    path.arc d=(map::arc_path((t.from.lat, t.from.lon), (t.to.lat, t.to.lon))) stroke=(severity_colour(&t.severity)) {}
                    circle.from cx=(format!("{x0:.2}")) cy=(format!("{y0:.2}")) r="1.3" {}
                    circle.to cx=(format!("{x1:.2}")) cy=(format!("{y1:.2}")) r="1.6" fill=(severity_colour(&t.severity)) {}
                }
            }
        }
        @if travels.is_empty() {
            p.empty { "No impossible-travel alerts." }
        } @else {
            p.legend { (travels.len()) " trips, riskiest first in the table below; hollow dot = where the user was, filled dot = where they signed in next." }
            table.trips {
                thead { tr { th { "User" } th { "From" } th { "To" } th.num { "km" } th.num { "km/h" } th { "Severity" } th { "When" } } }
                tbody {
                    @for t in travels.iter().take(25) {
                        tr {
                            td { (t.user) }
                            td { (place(&t.from)) @if let Some(ip) = &t.from.ip { br; small { (ip) } } }
                            td { (place(&t.to)) @if let Some(ip) = &t.to.ip { br; small { (ip) } } }
                            td.num { (format!("{:.0}", t.distance_km)) }
                            td.num { (format!("{:.0}", t.speed_kmh)) }
                            td { span.sev style={ "background:" (severity_colour(&t.severity)) } { (t.severity) } }
                            td { (stamp(t.at_ms)) }
                        }
                    }
                }
            }
        }
    }
}
