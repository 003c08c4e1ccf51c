//! `idgw report`: the page is made from a real store, and a real browser (headless Chromium
//! through playwright-core) opens it without errors and paints something.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{generate, idgw, interop, stdout};

/// Node, playwright-core and Chromium, from `IDGW_NODE` / `IDGW_PLAYWRIGHT` /
/// `IDGW_CHROMIUM` (.ci/run installs them; see [`interop`]).
fn browser() -> Option<(String, String, String)> {
    let chromium = std::env::var("IDGW_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let playwright = std::env::var("IDGW_PLAYWRIGHT").unwrap_or_default();
    let node = std::env::var("IDGW_NODE").unwrap_or_else(|_| "node".to_owned());
    let present = Path::new(&chromium).exists() && !playwright.is_empty() && Path::new(&playwright).exists();
    interop(
        present,
        "Chromium or playwright-core (IDGW_CHROMIUM, IDGW_PLAYWRIGHT; .ci/run installs them)",
    )
    .then_some((node, playwright, chromium))
}

/// `idgw report --store STORE --out PAGE EXTRA…`, which must succeed; its stdout.
fn report(store: &Path, page: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "report",
        "--store",
        store.to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = idgw(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

fn script() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
        .join("tests/interop/report/render.mjs")
}

/// Opens `page` in the browser: what it reported, as JSON, and the screenshot's path.
fn render(browser: &(String, String, String), page: &Path) -> (serde_json::Value, PathBuf) {
    let shot = page.with_extension("png");
    let out = Command::new(&browser.0)
        .arg(script())
        .args([&browser.1, &browser.2])
        .arg(page)
        .arg(&shot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    (report, shot)
}

#[test]
fn report_renders_in_a_browser_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), 300, 4, 7);
    // A login written to attack the page: it must reach the page as text. Were it markup,
    // the browser would try to load `x` (a failed request) and run the handler (a console
    // error); the check below would see either.
    let hostile = r#"<img src=x onerror="console.error('injected')">@evil.example"#;
    let extra = serde_json::json!({
        "uuid": "99999999-0000-4000-8000-000000000001",
        "published": "2024-08-03T12:00:00.000Z",
        "eventType": "user.account.report_suspicious_activity_by_enduser",
        "severity": "WARN",
        "actor": {"id": "00uHOSTILE1", "type": "User", "alternateId": hostile, "displayName": "H"},
        "client": {"ipAddress": "198.51.100.9", "zone": "null"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": null
    });
    let mut f = std::fs::OpenOptions::new().append(true).open(&events).unwrap();
    writeln!(f, "{extra}").unwrap();
    drop(f);
    let store = dir.path().join("store");
    let o = idgw(&["replay", "--store", store.to_str().unwrap(), events.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let page = dir.path().join("report.html");
    let summary: serde_json::Value = serde_json::from_str(report(&store, &page, &["--json"]).trim()).unwrap();
    assert!(summary["events"].as_u64().unwrap() > 5_000, "{summary}");
    assert!(summary["alerts"].as_u64().unwrap() > 5, "{summary}");
    assert!(summary["travel_arcs"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(summary["timelines"], 10, "{summary}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains(hostile), "the hostile login reached the page as markup");
    assert!(
        html.contains("&lt;img src=x"),
        "the hostile login is not on the page as text"
    );
    assert!(!html.contains("<script"), "the page must not need a script");

    let Some(browser) = browser() else { return };
    let (seen, shot) = render(&browser, &page);
    assert_eq!(seen["console_errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["failed_requests"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["title"], "Identity threat report");
    assert_eq!(
        seen["sections"],
        serde_json::json!([
            "Alerts over time",
            "Riskiest users",
            "Impossible travel",
            "Timelines of the riskiest users"
        ])
    );
    assert!(seen["svgs"].as_u64().unwrap() >= 3, "{seen}");
    assert!(shot.metadata().unwrap().len() > 10_000, "{}", shot.display());
    let ink = &seen["screenshot"];
    let (share, colours) = (ink["inked"].as_f64().unwrap(), ink["colours"].as_u64().unwrap());
    assert!(share > 0.05 && colours > 16, "the screenshot looks blank: {ink}");

    // The checks above can fail: a page with a broken asset and a script error is caught,
    // and an empty page counts as blank.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        r#"<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><img src="missing.png"><script>undefinedFunction()</script></body></html>"#,
    )
    .unwrap();
    let (seen, _) = render(&browser, &bad);
    assert_ne!(seen["console_errors"], serde_json::json!([]), "{seen}");
    assert_ne!(seen["page_errors"], serde_json::json!([]), "{seen}");
    assert_ne!(seen["failed_requests"], serde_json::json!([]), "{seen}");
    let share = seen["screenshot"]["inked"].as_f64().unwrap();
    assert!(share < 0.01, "an empty page should count as blank, got {share:.3}");
}

#[test]
fn report_of_an_empty_store_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("one.ndjson");
    std::fs::write(&input, format!("{}\n", super::event(1, "user.session.start"))).unwrap();
    let store = dir.path().join("store");
    assert!(
        idgw(&["replay", "--store", store.to_str().unwrap(), input.to_str().unwrap()])
            .status
            .success()
    );
    let page = dir.path().join("r.html");
    report(&store, &page, &[]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("No alerts in this store."), "{html}");
    assert!(html.contains("No impossible-travel alerts."));
    let missing = idgw(&[
        "report",
        "--store",
        dir.path().join("nope").to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no store at"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
