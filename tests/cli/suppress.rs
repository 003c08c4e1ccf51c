//! `idgw suppress`: a SOC silences what it has judged, without losing the trail.

use super::{idgw, stdout};

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(o)
}

#[test]
fn a_suppressed_spray_is_stored_marked_counted_and_out_of_risk() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    ok(&idgw(&[
        "generate",
        "--users",
        "30",
        "--days",
        "1",
        "--seed",
        "11",
        "--scenario",
        "password_spray",
        "--out",
        events.to_str().unwrap(),
        "--labels",
        dir.path().join("labels.jsonl").to_str().unwrap(),
    ]));
    let label: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.path().join("labels.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let source = label["src_ip"].as_str().unwrap().to_owned();
    let block = format!("{}.0/24", source.rsplit_once('.').unwrap().0);
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let s = store.to_str().unwrap();

    // Bad suppressions are refused: no matcher, no owner, a past expiry, a bad block.
    for bad in [
        vec!["--reason", "r", "--owner", "o", "--expires", "30d"],
        vec!["--ip", &block, "--reason", "r", "--owner", " ", "--expires", "30d"],
        vec![
            "--ip",
            &block,
            "--reason",
            "r",
            "--owner",
            "o",
            "--expires",
            "2020-01-01",
        ],
        vec![
            "--ip",
            "10.0.0.0/33",
            "--reason",
            "r",
            "--owner",
            "o",
            "--expires",
            "30d",
        ],
        vec![
            "--detection",
            "no_such",
            "--reason",
            "r",
            "--owner",
            "o",
            "--expires",
            "30d",
        ],
    ] {
        let mut args = vec!["suppress", "add", "--store", s];
        args.extend(bad.iter().copied());
        assert!(!idgw(&args).status.success(), "accepted {bad:?}");
    }
    let added: serde_json::Value = serde_json::from_str(&ok(&idgw(&[
        "suppress",
        "add",
        "--store",
        s,
        "--detection",
        "password_spray",
        "--ip",
        &block,
        "--reason",
        "authorised pentest, ticket SEC-42",
        "--owner",
        "soc-lead@example.com",
        "--expires",
        "2999-01-01",
        "--json",
    ])))
    .unwrap();
    let id = added["id"].as_str().unwrap().to_owned();
    assert!(ok(&idgw(&["suppress", "list", "--store", s])).contains(&id));

    let replay: serde_json::Value = serde_json::from_str(
        ok(&idgw(&[
            "replay",
            events.to_str().unwrap(),
            "--store",
            s,
            "--quiet",
            "--json",
        ]))
        .trim(),
    )
    .unwrap();
    assert!(replay["suppressed_alerts"].as_u64().unwrap() >= 1, "{replay}");
    // Stored and marked, with who and why.
    let sprays = ok(&idgw(&[
        "query",
        "--store",
        s,
        "--json",
        "SELECT evidence FROM alerts WHERE detection = 'password_spray'",
    ]));
    assert!(sprays.contains("soc-lead@example.com"), "{sprays}");
    assert!(sprays.contains(&id), "{sprays}");
    // Out of risk: no user carries any of it.
    let reasons = ok(&idgw(&[
        "query",
        "--store",
        s,
        "--json",
        "SELECT user_id, top_reasons FROM identity_state WHERE risk_score > 0",
    ]));
    assert!(!reasons.contains("password_spray"), "{reasons}");

    // The SOC report counts them.
    let page = dir.path().join("report.html");
    ok(&idgw(&["report", "--store", s, "--out", page.to_str().unwrap()]));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("suppressed"), "no suppressed count in the report");

    ok(&idgw(&["suppress", "remove", "--store", s, &id]));
    assert!(!idgw(&["suppress", "remove", "--store", s, &id]).status.success());
}
