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

#[test]
fn events_files_carry_a_bloom_filter_on_event_id() {
    use parquet::file::properties::ReaderProperties;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;

    let fx = Fixture::new();
    let input = fx.file("a.ndjson", ndjson(50, "2024-08-13"));
    fx.replay(&[&input]);
    let ids: Vec<String> = fx
        .sql("SELECT event_id FROM events")
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 50);
    let day = fx.store_path().join("events/date=2024-08-13");
    let file = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .expect("an events file");
    let options = ReadOptionsBuilder::new()
        .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
        .build();
    let reader = SerializedFileReader::new_with_options(std::fs::File::open(&file).unwrap(), options).unwrap();
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let column = |name: &str| {
        (0..schema.num_columns())
            .find(|&i| schema.column(i).name() == name)
            .unwrap()
    };
    let group = reader.get_row_group(0).unwrap();
    let bloom = group
        .get_column_bloom_filter(column("event_id"))
        .expect("a bloom filter on event_id");
    for id in &ids {
        assert!(
            bloom.check(&id.as_str()),
            "{id} is in the row group but not in its filter"
        );
    }
    assert!(
        !bloom.check(&"00000000-0000-4000-8000-00000000dead"),
        "an absent id passed the filter"
    );
    assert!(
        group.get_column_bloom_filter(column("raw")).is_none(),
        "only the looked-up columns carry one"
    );
}
