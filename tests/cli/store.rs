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
