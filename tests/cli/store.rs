//! `idgw store compact`: past days rewritten sorted by user; queries answer the same.

use super::{generate, idgw, stdout};

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(stdout(o).trim()).unwrap()
}

#[test]
fn compact_rewrites_past_days_and_queries_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), 200, 3, 11);
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let replay = json(&idgw(&[
        "replay",
        events.to_str().unwrap(),
        "--store",
        s,
        "--quiet",
        "--json",
    ]));
    let stored = replay["events_ok"].as_u64().unwrap();
    let per_day = "SELECT date, event_type, count(*) AS n, count(DISTINCT event_id) AS ids FROM events GROUP BY 1, 2 ORDER BY 1, 2";
    let before = stdout(&idgw(&["query", "--store", s, "--json", per_day]));

    let dry = idgw(&["store", "compact", "--store", s, "--min-age-days", "0", "--dry-run"]);
    assert!(dry.status.success());
    assert!(stdout(&dry).contains("would compact date="), "{}", stdout(&dry));

    let compact = || {
        json(&idgw(&[
            "store",
            "compact",
            "--store",
            s,
            "--min-age-days",
            "0",
            "--json",
        ]))
    };
    let done = compact();
    assert!(done["partitions_compacted"].as_u64().unwrap() >= 3, "{done}");
    assert_eq!(done["rows"].as_u64(), Some(stored), "{done}");
    let after = stdout(&idgw(&["query", "--store", s, "--json", per_day]));
    assert_eq!(after, before, "the same rows per day and type");

    // Nothing left to do the second time.
    let again = compact();
    assert_eq!(again["partitions_compacted"], 0);
    assert_eq!(again["already_sorted"], done["partitions_compacted"]);

    // A missing store is a clear error.
    let missing = idgw(&["store", "compact", "--store", dir.path().join("nope").to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no store at"));
}

/// `idgw store prune`: days, alerts and dead letters before the horizon go; what is after
/// it, a day still being written to, checkpoints (detection state) and the audit log,
/// whatever their age, stay.
#[test]
fn prune_removes_what_is_past_the_horizon_and_never_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), 150, 6, 17);
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let o = idgw(&["replay", events.to_str().unwrap(), "--store", s, "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let days = |sql: &str| -> Vec<String> {
        let o = idgw(&["query", "--store", s, "--json", sql]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["d"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let all = days("SELECT DISTINCT CAST(date AS VARCHAR) AS d FROM events ORDER BY d");
    assert!(all.len() >= 6, "{all:?}");
    // The horizon falls in the middle of the generated days (they lie in the past).
    let middle: chrono::NaiveDate = all[all.len() / 2].parse().unwrap();
    let age_days = (chrono::Utc::now().date_naive() - middle).num_days();
    let horizon_day = chrono::Utc::now().date_naive() - chrono::Duration::days(age_days);
    let expected_gone: Vec<&String> = all
        .iter()
        .filter(|d| d.parse::<chrono::NaiveDate>().unwrap() < horizon_day)
        .collect();
    assert!(!expected_gone.is_empty() && expected_gone.len() < all.len());
    // An old audit record, an old dead letter and a stale checkpoint.
    std::fs::create_dir_all(store.join("audit")).unwrap();
    std::fs::write(store.join("audit/audit.jsonl"), "{}\n").unwrap();
    std::fs::create_dir_all(store.join("deadletter")).unwrap();
    std::fs::write(store.join("deadletter/old-run.jsonl"), "{}\n").unwrap();
    std::fs::create_dir_all(store.join("checkpoints/kafka")).unwrap();
    std::fs::write(store.join("checkpoints/kafka/gone-topic-3.json.zst"), "x").unwrap();
    for f in [
        "audit/audit.jsonl",
        "deadletter/old-run.jsonl",
        "checkpoints/kafka/gone-topic-3.json.zst",
    ] {
        let ok = std::process::Command::new("touch")
            .args(["-d", "2001-01-01T00:00:00Z"])
            .arg(store.join(f))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let alerts_before = std::fs::read_to_string(store.join("alerts.jsonl"))
        .unwrap()
        .lines()
        .count();
    let older = format!("{age_days}d");

    // Just replayed, every day counts as being written to: nothing goes yet.
    let o = idgw(&["store", "prune", "--store", s, "--older-than", &older, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = json(&o);
    assert_eq!(report["event_days"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(
        report["event_days_busy"].as_u64().unwrap() as usize,
        expected_gone.len(),
        "{report}"
    );
    assert_eq!(report["deadletter_files"], 1, "{report}");
    assert!(!store.join("deadletter/old-run.jsonl").exists());
    let lines_first = report["alert_lines"].as_u64().unwrap() as usize;
    // An hour later (the days' files dated back), they go.
    let ok = std::process::Command::new("find")
        .arg(store.join("events"))
        .args(["-exec", "touch", "-d", "2001-01-01T00:00:00Z", "{}", "+"])
        .status()
        .unwrap();
    assert!(ok.success());

    let o = idgw(&[
        "store",
        "prune",
        "--store",
        s,
        "--older-than",
        &older,
        "--dry-run",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = json(&o);
    assert_eq!(
        report["event_days"].as_array().unwrap().len(),
        expected_gone.len(),
        "{report}"
    );
    assert_eq!(
        days("SELECT DISTINCT CAST(date AS VARCHAR) AS d FROM events ORDER BY d"),
        all,
        "a dry run changes nothing"
    );

    let o = idgw(&["store", "prune", "--store", s, "--older-than", &older, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = json(&o);
    let left = days("SELECT DISTINCT CAST(date AS VARCHAR) AS d FROM events ORDER BY d");
    assert_eq!(left.len(), all.len() - expected_gone.len(), "{report}");
    assert!(
        left.iter()
            .all(|d| d.parse::<chrono::NaiveDate>().unwrap() >= horizon_day)
    );
    assert!(
        store.join("audit/audit.jsonl").exists(),
        "the audit log is never pruned"
    );
    assert!(!store.join("deadletter/old-run.jsonl").exists());
    assert!(
        store.join("checkpoints/kafka/gone-topic-3.json.zst").exists(),
        "checkpoints are detection state, never pruned"
    );
    assert!(store.join("checkpoints/engine.json.zst").exists());

    // alerts.jsonl keeps exactly the alerts last seen on or after the horizon.
    let cutoff: chrono::DateTime<chrono::Utc> = report["cutoff"].as_str().unwrap().parse().unwrap();
    let kept: Vec<serde_json::Value> = std::fs::read_to_string(store.join("alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        kept.len() + lines_first + report["alert_lines"].as_u64().unwrap() as usize,
        alerts_before
    );
    assert!(kept.iter().all(|a| {
        a["last_seen"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            >= cutoff
    }));
    // The store still answers: the remaining events are all there to query.
    let o = idgw(&["query", "--store", s, "SELECT count(*) FROM alerts"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
