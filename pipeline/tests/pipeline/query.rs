//! SQL over the store.

use idgw_pipeline::Store;
use idgw_pipeline::query::{QueryError, query};

use crate::support::{Fixture, event, ndjson};

fn run(store: &Store, sql: &str) -> Result<usize, QueryError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(query(store, sql))
        .map(|b| b.iter().map(|b| b.num_rows()).sum())
}

#[test]
fn group_by_event_type_and_flattened_columns() {
    let fx = Fixture::new();
    let mut text = ndjson(5, "2024-08-13");
    let mut threat = event(
        "77777777-0000-4000-8000-000000000001",
        "security.threat.detected",
        "2024-08-13T11:00:00.000Z",
    );
    threat["actor"] = serde_json::json!({"id": "203.0.113.9", "type": "IP address", "alternateId": "unknown", "displayName": "203.0.113.9"});
    threat["client"]["ipAddress"] = "203.0.113.9".into();
    threat["outcome"] = serde_json::json!({"result": "DENY", "reason": "Password Spray"});
    threat["debugContext"]["debugData"]["threatDetections"] =
        "{\"Password Spray\":\"HIGH\",\"Login Failures\":\"MEDIUM\"}".into();
    text.push_str(&threat.to_string());
    let input = fx.file("a.ndjson", text);
    fx.replay(&[&input]);

    let rows = fx.sql("SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["event_type"], "security.threat.detected");
    assert_eq!(rows[1]["n"], 5);

    let t = &fx.sql("SELECT entity_key, user_id, threat_max_level, class_uid, status_id FROM events WHERE event_type = 'security.threat.detected'")[0];
    assert_eq!(
        t["entity_key"], "ip:203.0.113.9",
        "ThreatInsight belongs to the source IP"
    );
    assert!(t.get("user_id").is_none_or(|v| v.is_null()));
    assert_eq!(t["threat_max_level"], "HIGH");
    assert_eq!(t["class_uid"], 2004);
    assert_eq!(t["status_id"], 2);

    let s = &fx.sql("SELECT user_login, geo_country, asn, dt_hash, session_id, raw FROM events WHERE event_type = 'user.session.start' LIMIT 1")[0];
    assert_eq!(s["user_login"], "ana@example.com");
    assert_eq!(s["geo_country"], "Portugal");
    assert_eq!(s["asn"], 3243);
    assert_eq!(s["session_id"], "102abcDEF");
    let raw: serde_json::Value = serde_json::from_str(s["raw"].as_str().unwrap()).unwrap();
    assert_eq!(
        raw["legacyEventType"], "core.user_auth.login_success",
        "the raw event is kept for drill-down"
    );
}

#[test]
fn empty_store_answers_and_writes_are_refused() {
    let fx = Fixture::new();
    let store = fx.store();
    assert_eq!(run(&store, "SELECT * FROM events").unwrap(), 0);
    assert_eq!(run(&store, "SELECT * FROM alerts").unwrap(), 0);
    for sql in [
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO events SELECT * FROM events",
        "DROP TABLE events",
        "SET datafusion.execution.batch_size = 1",
    ] {
        assert!(run(&store, sql).is_err(), "{sql} must be refused");
    }
    let err = run(&store, "SELECT nope FROM events").unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    assert!(matches!(
        run(&Store::at(fx.dir.path().join("missing")), "SELECT 1"),
        Err(QueryError::NoStore(_))
    ));
}
