//! `idgw replay --threads N` stores, dead-letters and alerts exactly what one thread does:
//! on a generated tenant with every attack scenario, the shared real Okta events, and the
//! awkward records (envelopes, repairs, repeats, garbage) that leave the shared decoding
//! for the one-thread path in the middle of a batch.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{generate, idgw, stdout};

/// A sign-in `minutes` after 2024-08-10 00:00 UTC (after the generated tenant's days).
fn event(i: usize, minutes: i64) -> Value {
    let published = chrono::DateTime::from_timestamp(1_723_248_000 + minutes * 60, 0).unwrap();
    json!({
        "uuid": format!("22222222-0000-4000-8000-{i:012}"),
        "published": published.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "eventType": "user.session.start",
        "severity": "INFO",
        "displayMessage": "User login to Okta",
        "actor": {"id": "00u1abcdEFGHijkl0h7", "type": "User", "alternateId": "ana@example.com", "displayName": "Ana Lima"},
        "client": {"ipAddress": "198.51.100.7", "zone": "null"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": null
    })
}

/// Good events ten minutes apart with, between them, every kind of record the shared pass
/// hands back to the one-thread path or refuses itself. The envelopes and repaired events
/// are an hour older than the event before them: late, unless an implementation let them
/// overtake the events before them in their batch.
fn awkward_input() -> String {
    let mut lines = Vec::new();
    for i in 0..300 {
        let at = 10 * i as i64;
        lines.push(event(i, at).to_string());
        match i % 25 {
            // An event-hook delivery of two events, one of them a repeat.
            3 => lines.push(json!({"data": {"events": [event(1000 + i, at - 60), event(i, at)]}}).to_string()),
            // `eventType` spelt as some SIEM exports spell it: repaired, stored with a warning.
            7 => {
                let mut e = event(2000 + i, at - 60);
                let t = e.as_object_mut().unwrap().remove("eventType").unwrap();
                e["eventtype"] = t;
                lines.push(e.to_string());
            }
            // A field of a shape no repair helps.
            11 => {
                let mut e = event(3000 + i, at);
                e["actor"] = Value::from(17);
                lines.push(e.to_string());
            }
            13 => lines.push(event(i, at).to_string()),
            17 => lines.push("{\"uuid\": \"cut off".to_owned()),
            19 => {
                let mut e = event(4000 + i, at);
                e.as_object_mut().unwrap().remove("published");
                lines.push(e.to_string());
            }
            _ => {}
        }
    }
    lines.join("\n") + "\n"
}

struct Run {
    summary: Value,
    /// Per date partition, the event ids in the order the files hold them.
    stored_order: Vec<(String, Vec<String>)>,
    alerts: Vec<Value>,
    letters: Vec<Value>,
    events: Vec<Value>,
    state: Vec<Value>,
}

fn query(store: &Path, sql: &str) -> Vec<Value> {
    let o = idgw(&["query", "--json", "--store", store.to_str().unwrap(), sql]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Each date partition's event ids in file order (files by name: one run's sequence).
fn stored_order(events: &Path) -> Vec<(String, Vec<String>)> {
    use datafusion::arrow::array::{Array, StringArray};
    use datafusion::parquet::arrow::ProjectionMask;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut out = Vec::new();
    for day in entries(events, None).into_iter().filter(|d| d.is_dir()) {
        let mut ids = Vec::new();
        for file in entries(&day, Some("parquet")) {
            let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
            let column = builder.schema().index_of("event_id").unwrap();
            let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
            for batch in builder.with_projection(mask).build().unwrap() {
                let batch = batch.unwrap();
                let col = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                ids.extend((0..col.len()).map(|i| col.value(i).to_owned()));
            }
        }
        out.push((day.file_name().unwrap().to_string_lossy().into_owned(), ids));
    }
    out
}

/// The entries of `dir` (with extension `ext`, when given), sorted by name.
fn entries(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| ext.is_none_or(|ext| p.extension().is_some_and(|e| e == ext)))
        .collect();
    out.sort();
    out
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn replay(dir: &Path, inputs: &[PathBuf], threads: usize) -> Run {
    let store = dir.join(format!("store-{threads}"));
    let config = dir.join("small-batches.toml");
    // Many batches, the awkward records inside them; shared batches of ~150 events, several
    // chunks each.
    std::fs::write(
        &config,
        "[ingest]\nread_batch_bytes = 49152\nshared_batch_bytes = 262144\n",
    )
    .unwrap();
    let mut args = vec![
        "replay".to_owned(),
        "--quiet".to_owned(),
        "--json".to_owned(),
        "--threads".to_owned(),
        threads.to_string(),
        "--config".to_owned(),
        config.display().to_string(),
        "--store".to_owned(),
        store.display().to_string(),
    ];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = idgw(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let mut alerts = jsonl(&store.join("alerts.jsonl"));
    alerts.sort_by(|a, b| a["alert_id"].as_str().cmp(&b["alert_id"].as_str()));
    let mut letters = Vec::new();
    for f in entries(&store.join("deadletter"), Some("jsonl")) {
        letters.extend(
            jsonl(&f)
                .into_iter()
                .map(|l| json!([l["reason"], l["detail"], l["source"], l["line"]])),
        );
    }
    let events = query(&store, "SELECT * FROM events ORDER BY event_id");
    let state = query(
        &store,
        "SELECT user_id, risk_score, risk_level, top_reasons, event_count, alert_count, last_seen, \
         known_countries FROM identity_state ORDER BY user_id",
    );
    Run {
        summary,
        stored_order: stored_order(&store.join("events")),
        alerts,
        letters,
        events,
        state,
    }
}

#[test]
fn a_replay_on_several_threads_matches_one_thread_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = generate(dir.path(), 150, 4, 11);
    let awkward = dir.path().join("awkward.ndjson");
    std::fs::write(&awkward, awkward_input()).unwrap();
    let mut inputs = vec![tenant, awkward];
    if let Some(shared) = crate::shared_dir("the replay of the real Okta events on several threads") {
        let real = entries(&shared.join("okta/events"), Some("json"));
        assert!(real.len() >= 5, "{real:?}");
        inputs.splice(1..1, real);
    }

    let one = replay(dir.path(), &inputs, 1);
    let s = &one.summary;
    assert_eq!(s["threads"], 1);
    assert!(
        s["alerts"].as_u64() > Some(20) && s["events_ok"].as_u64() > Some(3_000),
        "{s}"
    );
    assert!(s["deadletter_reasons"].as_object().unwrap().len() >= 2, "{s}");
    assert!(s["duplicates"].as_u64() >= Some(24), "{s}");
    // The 24 envelopes' and repaired events, each an hour behind the event before it.
    assert!(s["late_events"].as_u64() >= Some(24), "{s}");
    assert!(
        one.events
            .iter()
            .any(|e| e["warnings"].to_string().contains("repaired")),
        "a repaired event is stored"
    );

    // Three threads: two helpers, whatever the machine's core count.
    let three = replay(dir.path(), &inputs, 3);
    let t = &three.summary;
    assert_eq!(t["threads"], 3);
    for key in [
        "events_in",
        "events_ok",
        "deadlettered",
        "duplicates",
        "alerts",
        "alerts_by_detection",
        "deadletter_reasons",
        "late_events",
        "aggregated_hits",
        "users",
        "vectors_upserted",
    ] {
        assert_eq!(t[key], s[key], "{key}");
    }
    assert_eq!(
        three.letters, one.letters,
        "the same records dead-lettered, at the same lines"
    );
    assert_eq!(three.alerts.len(), one.alerts.len());
    for (a, b) in three.alerts.iter().zip(&one.alerts) {
        assert_eq!(a, b, "the same alert, field for field");
    }
    assert_eq!(three.events.len(), one.events.len());
    for (a, b) in three.events.iter().zip(&one.events) {
        assert_eq!(a, b, "the same stored event, column for column");
    }
    assert_eq!(three.state, one.state, "the same identity state");
    assert_eq!(three.stored_order.len(), one.stored_order.len());
    for ((day, a), (_, b)) in three.stored_order.iter().zip(&one.stored_order) {
        assert!(a == b, "{day}: the events are stored in input order");
    }
}
