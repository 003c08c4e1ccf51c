//! The benchmark suite's results: the JSON document `bench-suite` writes, and the Markdown
//! and SVG made from it. Pure functions of the JSON, so a recorded run can be re-rendered.

use std::fmt::Write as _;

use serde_json::Value;

/// Markdown for `results.md`: machine and run facts, then one table per benchmark.
pub fn markdown(r: &Value) -> String {
    let mut md = String::new();
    let m = &r["machine"];
    let _ = writeln!(
        md,
        "# idgw benchmark suite ({} run)\n",
        r["mode"].as_str().unwrap_or("?")
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    for (k, v) in [
        ("date", &r["date"]),
        ("commit", &r["commit"]),
        ("command", &r["command"]),
        ("build", &r["build"]),
        ("cpu", &m["cpu"]),
        ("cores", &m["cores"]),
        ("memory", &m["memory_gib"]),
        ("kernel", &m["kernel"]),
    ] {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Null => "?".into(),
            other => other.to_string(),
        };
        let _ = writeln!(md, "| {k} | {} |", if k == "memory" { format!("{v} GiB") } else { v });
    }

    let _ = writeln!(md, "\n## Replay throughput by tenant size\n");
    let _ = writeln!(
        md,
        "| users | days | events | events/s | wall s | read s | parse s | detect s | finish s | Parquet s | peak RSS MiB | alerts | balanced |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|");
    for row in r["replay"].as_array().into_iter().flatten() {
        let s = &row["stages"];
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} |",
            row["users"],
            row["days"],
            row["events"],
            f(&row["events_per_s"]),
            f(&row["elapsed_s"]),
            f(&s["read_s"]),
            f(&s["parse_s"]),
            f(&s["detect_s"]),
            f(&s["finish_s"]),
            f(&s["parquet_write_s"]),
            f(&row["peak_rss_mib"]),
            row["alerts"],
            if row["balanced"] == true { "yes" } else { "NO" },
        );
    }

    if let Some(q) = r.get("quality").filter(|q| !q.is_null()) {
        let _ = writeln!(
            md,
            "\n## Detection quality (`idgw eval`, {} users)\n\nPrecision {:.3} (medium and up {:.3}), lowest recall {:.3}, look-alikes tripped {}.\n",
            q["users"],
            f(&q["precision"]),
            f(&q["precision_medium_up"]),
            f(&q["min_recall"]),
            q["lookalikes_tripped"]
        );
        let _ = writeln!(
            md,
            "| detection | attacks | detected | alerts | false | precision | recall |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for (name, d) in q["by_detection"].as_object().into_iter().flatten() {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                d["attacks"],
                d["detected"],
                d["alerts"],
                d["false_alerts"],
                opt3(&d["precision"]),
                opt3(&d["recall"])
            );
        }
    }

    for key in ["mcp", "mcp_http"] {
        let Some(mcp) = r.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        if let Some(why) = mcp["skipped"].as_str() {
            let _ = writeln!(md, "\n## MCP tool latency ({key})\n\nSKIPPED: {why}.");
            continue;
        }
        let _ = writeln!(
            md,
            "\n## MCP tool latency ({} users, over {}, {} calls per tool, client in another process: {})\n\nStart to first answered call: {:.0} ms.\n",
            mcp["store_users"],
            mcp["transport"].as_str().unwrap_or("?"),
            mcp["calls_per_tool"],
            mcp["client"].as_str().unwrap_or("rmcp"),
            f(&mcp["start_to_first_call_ms"])
        );
        let _ = writeln!(
            md,
            "| tool | p50 ms | p99 ms | max ms | errors |\n|---|---:|---:|---:|---:|"
        );
        for (name, t) in mcp["tools"].as_object().into_iter().flatten() {
            let _ = writeln!(
                md,
                "| {name} | {:.2} | {:.2} | {:.2} | {} |",
                f(&t["p50_ms"]),
                f(&t["p99_ms"]),
                f(&t["max_ms"]),
                t["errors"]
            );
        }
    }

    if let Some(p) = r.get("peers").filter(|v| !v.is_null()) {
        if let Some(why) = p["skipped"].as_str() {
            let _ = writeln!(md, "\n## Peers\n\nSKIPPED: {why}.");
        } else {
            let rounds = |key: &str| {
                p[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| format!("{:.0}", f(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                md,
                "\n## Peers ({}, {} round(s) in rotating order, events/s over each whole process's wall time)\n\n| program | events/s by round | idgw's median over its median |\n|---|---|---:|",
                p["events_file"].as_str().unwrap_or("?"),
                p["rounds"]
            );
            let _ = writeln!(
                md,
                "| idgw replay (every detection, store, vectors) | {} | |",
                rounds("idgw_events_per_s")
            );
            for (peer, name) in [("seed", "seed-style Python"), ("duckdb", "DuckDB")] {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.2}× |",
                    p[peer]["peer"].as_str().unwrap_or(name),
                    rounds(&format!("{peer}_events_per_s")),
                    f(&p[format!("ratio_vs_{peer}").as_str()])
                );
            }
        }
    }

    if let Some(k) = r.get("kafka").and_then(Value::as_array).filter(|k| !k.is_empty()) {
        let _ = writeln!(md, "\n## Kafka event-to-alert latency\n");
        let _ = writeln!(
            md,
            "| broker | rate ev/s | seconds | events | alerts matched | p50 ms | p99 ms | p99.9 ms | max ms |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for run in k {
            let l = &run["latency"];
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                run["broker"].as_str().unwrap_or("?"),
                l["rate_per_s"],
                run["seconds"],
                l["events_produced"],
                l["alerts_matched"],
                f(&l["p50_ms"]),
                f(&l["p99_ms"]),
                f(&l["p999_ms"]),
                f(&l["max_ms"])
            );
        }
    }
    let _ = writeln!(
        md,
        "\nPlots: `throughput.svg` (events/s against tenant size), `latency.svg` (latency percentiles, log scale)."
    );
    md
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn opt3(v: &Value) -> String {
    v.as_f64().map_or_else(|| "–".to_owned(), |x| format!("{x:.3}"))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

const W: f64 = 720.0;
const H: f64 = 360.0;
// Margins: left, right, top, bottom.
const L: f64 = 72.0;
const R: f64 = 24.0;
const T: f64 = 36.0;
const B: f64 = 56.0;

/// The smallest 1, 2, 5 × 10ᵏ at or above `v`.
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

fn frame(title: &str, x_label: &str, y_label: &str, y_max: f64, body: &str, x_ticks: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        L,
        esc(title)
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = H - B - (H - T - B) * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e7ec"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
            W - R,
            L - 6.0,
            y + 4.0,
            short(v)
        );
    }
    s.push_str(x_ticks);
    s.push_str(body);
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#333">{}</text>"##,
        (L + W - R) / 2.0,
        H - 14.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        r##"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle" fill="#333">{}</text>"##,
        (T + H - B) / 2.0,
        esc(y_label)
    );
    s.push_str("</svg>\n");
    s
}

fn short(v: f64) -> String {
    let trim = |s: String| s.trim_end_matches(".0").to_owned();
    if v >= 1e6 {
        trim(format!("{:.1}", v / 1e6)) + "M"
    } else if v >= 1e3 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Replay events/s against tenant size (users, log scale when it spans a decade).
pub fn throughput_svg(r: &Value) -> String {
    let points: Vec<(f64, f64)> = r["replay"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| Some((row["users"].as_f64()?, row["events_per_s"].as_f64()?)))
        .collect();
    let y_max = nice(points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1);
    let (x_min, x_max) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let log = x_max / x_min.max(1.0) >= 10.0;
    let tx = |x: f64| -> f64 {
        let (a, b, v) = if log {
            (x_min.ln(), x_max.ln(), x.ln())
        } else {
            (x_min, x_max, x)
        };
        if (b - a).abs() < f64::EPSILON {
            (L + W - R) / 2.0
        } else {
            L + 12.0 + (v - a) / (b - a) * (W - L - R - 24.0)
        }
    };
    let ty = |y: f64| H - B - y / y_max * (H - T - B);
    let mut body = String::new();
    let path: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", tx(x), ty(y)))
        .collect();
    let _ = write!(
        body,
        r##"<polyline points="{}" fill="none" stroke="#2b7bb9" stroke-width="2"/>"##,
        path.join(" ")
    );
    let mut ticks = String::new();
    for &(x, y) in &points {
        let _ = write!(
            body,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#2b7bb9"><title>{} users: {:.0} events/s</title></circle><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#2b7bb9">{}</text>"##,
            tx(x),
            ty(y),
            x,
            y,
            tx(x),
            ty(y) - 9.0,
            short(y)
        );
        let _ = write!(
            ticks,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            tx(x),
            H - B + 18.0,
            short(x)
        );
    }
    frame(
        "Replay throughput against tenant size",
        if log { "users (log scale)" } else { "users" },
        "events/s",
        y_max,
        &body,
        &ticks,
    )
}

/// Latency percentiles, as horizontal bars: one row per MCP tool and transport, and per
/// Kafka input rate, so long tool names read without rotation.
pub fn latency_svg(r: &Value) -> String {
    let mut groups: Vec<(String, Vec<(&str, f64)>)> = Vec::new();
    for (key, transport) in [("mcp", "stdio"), ("mcp_http", "http")] {
        for (name, t) in r[key]["tools"].as_object().into_iter().flatten() {
            groups.push((
                format!("{name} ({transport})"),
                vec![("p50", f(&t["p50_ms"])), ("p99", f(&t["p99_ms"]))],
            ));
        }
    }
    for run in r["kafka"].as_array().into_iter().flatten() {
        let l = &run["latency"];
        groups.push((
            format!("Kafka at {} events/s", short(f(&l["rate_per_s"]))),
            vec![
                ("p50", f(&l["p50_ms"])),
                ("p99", f(&l["p99_ms"])),
                ("p99.9", f(&l["p999_ms"])),
            ],
        ));
    }
    // Log scale: Kafka's hundreds of milliseconds and MCP's single ones on one axis, each
    // readable. From the decade below the smallest value to the one above the largest.
    let values: Vec<f64> = groups
        .iter()
        .flat_map(|g| g.1.iter().map(|b| b.1))
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let (d_lo, d_hi) = if values.is_empty() {
        (0, 1)
    } else {
        // The decade below the smallest value, so that its bar has a length.
        let d_lo = lo.log10().ceil() as i32 - 1;
        (d_lo, (hi.log10().ceil() as i32).max(d_lo + 1))
    };
    let colours = [("p50", "#2b7bb9"), ("p99", "#e4572e"), ("p99.9", "#a1001f")];
    let (left, right, top, bar_h) = (260.0, 40.0, 48.0, 9.0);
    let row_h = bar_h * 3.0 + 8.0;
    let height = top + row_h * groups.len() as f64 + 40.0;
    let plot_w = W - left - right;
    let floor = 10f64.powi(d_lo);
    let tx = |v: f64| {
        let v = if v.is_finite() { v.max(floor) } else { floor };
        left + (v.log10() - f64::from(d_lo)) / f64::from(d_hi - d_lo) * plot_w
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<rect width="{W}" height="{height}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="12" y="22" font-size="15" font-weight="bold">Latency percentiles (ms, log scale)</text>"#
    );
    for d in d_lo..=d_hi {
        let v = 10f64.powi(d);
        let x = tx(v);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}" stroke="#e3e7ec"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            height - 34.0,
            height - 18.0,
            short(v)
        );
    }
    for (i, (name, bars)) in groups.iter().enumerate() {
        let y0 = top + row_h * i as f64;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{}</text>"##,
            left - 8.0,
            y0 + row_h / 2.0,
            esc(name)
        );
        for (j, (label, v)) in bars.iter().enumerate() {
            let v = if v.is_finite() { *v } else { 0.0 };
            let colour = colours.iter().find(|c| c.0 == *label).map_or("#888", |c| c.1);
            let _ = write!(
                s,
                r#"<rect x="{left}" y="{:.1}" width="{:.1}" height="{bar_h}" fill="{colour}"><title>{}: {label} {v:.2} ms</title></rect>"#,
                y0 + bar_h * j as f64,
                (tx(v) - left).max(0.5),
                esc(name)
            );
        }
    }
    for (k, (label, colour)) in colours.iter().enumerate() {
        let x = W - right - 200.0 + 66.0 * k as f64;
        let _ = write!(
            s,
            r##"<rect x="{x}" y="12" width="10" height="10" fill="{colour}"/><text x="{}" y="21" fill="#333">{label}</text>"##,
            x + 14.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "mode": "smoke", "date": "2026-11-27", "commit": "abc1234", "command": "bench-suite --smoke",
            "build": "release",
            "machine": {"cpu": "Test CPU", "cores": 2, "memory_gib": 24, "kernel": "6.1"},
            "replay": [
                {"users": 100, "days": 2, "events": 3000, "events_per_s": 20000.0, "elapsed_s": 0.15,
                 "stages": {"read_s": 0.01, "parse_s": 0.1, "detect_s": 0.03, "finish_s": 0.01, "parquet_write_s": 0.02},
                 "peak_rss_mib": 80.0, "alerts": 3, "balanced": true},
                {"users": 1000, "days": 2, "events": 30000, "events_per_s": 40012.6, "elapsed_s": 0.75,
                 "stages": {"read_s": 0.01, "parse_s": 0.5, "detect_s": 0.2, "finish_s": 0.04, "parquet_write_s": 0.1},
                 "peak_rss_mib": 120.0, "alerts": 30, "balanced": false}
            ],
            "quality": {"users": 1000, "precision": 0.9, "precision_medium_up": 1.0, "min_recall": 0.8,
                        "lookalikes_tripped": 0, "by_detection": {"brute_force": {"attacks": 2, "detected": 2, "alerts": 2, "false_alerts": 0, "precision": 1.0, "recall": 1.0}}},
            "mcp": {"store_users": 1000, "transport": "stdio", "calls_per_tool": 20, "start_to_first_call_ms": 300.0,
                    "tools": {"list_alerts": {"p50_ms": 2.0, "p99_ms": 9.5, "max_ms": 11.0, "errors": 0}}},
            "mcp_http": {"skipped": "python3 cannot import mcp"},
            "kafka": [{"broker": "mock", "seconds": 5, "latency": {"rate_per_s": 200, "events_produced": 1000, "alerts_matched": 4,
                       "p50_ms": 250.0, "p99_ms": 600.0, "p999_ms": 640.0, "max_ms": 650.0}}],
            "peers": {"events_file": "events-1000.ndjson", "rounds": 2,
                      "idgw_events_per_s": [40000.0, 42000.0], "seed_events_per_s": [5000.0, 5200.0],
                      "duckdb_events_per_s": [30000.0, 31000.0],
                      "seed": {"peer": "seed-style Python"}, "duckdb": {"peer": "DuckDB 1.4.2"},
                      "ratio_vs_seed": 8.08, "ratio_vs_duckdb": 1.355}
        })
    }

    #[test]
    fn markdown_has_every_section_and_flags_an_unbalanced_run() {
        let md = markdown(&sample());
        for needle in [
            "| commit | abc1234 |",
            "| memory | 24 GiB |",
            "| 1000 | 2 | 30000 | 40013 |",
            "| NO |",
            "| brute_force | 2 | 2 | 2 | 0 | 1.000 | 1.000 |",
            "| list_alerts | 2.00 | 9.50 | 11.00 | 0 |",
            "| mock | 200 | 5 | 1000 | 4 | 250 | 600 | 640 | 650 |",
            "SKIPPED: python3 cannot import mcp.",
            "| seed-style Python | 5000, 5200 | 8.08× |",
            "| DuckDB 1.4.2 | 30000, 31000 | 1.35× |",
        ] {
            assert!(md.contains(needle), "{needle:?} missing from\n{md}");
        }
    }

    #[test]
    fn plots_are_svg_with_one_mark_per_value() {
        let r = sample();
        let t = throughput_svg(&r);
        assert!(t.starts_with("<svg") && t.trim_end().ends_with("</svg>"));
        assert_eq!(t.matches("<circle").count(), 2);
        assert!(t.contains("users (log scale)") && t.contains(">40k<"), "{t}");
        let l = latency_svg(&r);
        // 2 MCP bars + 3 Kafka bars, plus 3 legend swatches and the background.
        assert_eq!(l.matches("<rect").count(), 2 + 3 + 3 + 1);
        assert!(!l.contains("NaN") && !t.contains("NaN"));
        // Log scale: one grid line per decade, from 1 ms (below 2) to 1,000 ms (above 650).
        assert!(l.contains("log scale"), "{l}");
        assert_eq!(l.matches("<line").count(), 4, "{l}");
    }

    #[test]
    fn nice_rounds_up() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(41_000.0), 50_000.0);
        assert_eq!(nice(120.0), 200.0);
    }
}
