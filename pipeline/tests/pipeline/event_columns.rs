//! The events writer's columns (`EventColumns`, the ingest hot path) hold exactly what the
//! reference conversion (`EventRow` through serde_arrow) holds, for the project's golden
//! inputs and for the real Okta samples.

use std::io::Read;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::normalize::normalize;
use idgw_pipeline::store::event_columns::EventColumns;
use idgw_schemas::SemanticEvent;
use idgw_schemas::rows::{EventRow, events_schema};

use crate::support::shared_events_dir;

/// The reference conversion: serde_arrow over `EventRow`.
pub fn reference_batch(events: &[SemanticEvent]) -> RecordBatch {
    let schema = Arc::new(events_schema());
    let rows: Vec<EventRow<'_>> = events.iter().map(EventRow::from).collect();
    let batch = serde_arrow::to_record_batch(schema.fields(), &rows).unwrap();
    RecordBatch::try_new(schema, batch.columns().to_vec()).unwrap()
}

/// The hot path's conversion.
pub fn direct_batch(events: &[SemanticEvent]) -> RecordBatch {
    // Capacity below the row count: builders must grow, not rely on the reservation.
    let mut cols = EventColumns::new(Arc::new(events_schema()), 2).unwrap();
    for e in events {
        cols.append(e, e.raw.as_deref());
    }
    assert_eq!(cols.rows(), events.len());
    let batch = cols.finish().unwrap();
    assert_eq!(cols.rows(), 0, "finish starts the next batch empty");
    batch
}

/// Asserts the two conversions agree, column by column (a difference names its column).
pub fn assert_same_columns(events: &[SemanticEvent]) {
    let (want, got) = (reference_batch(events), direct_batch(events));
    assert_eq!(got.schema(), want.schema());
    assert_eq!(got.num_rows(), events.len());
    for (i, field) in want.schema().fields().iter().enumerate() {
        assert_eq!(
            got.column(i).to_data(),
            want.column(i).to_data(),
            "column `{}` differs",
            field.name()
        );
    }
}

fn normalized(text: &str) -> Vec<SemanticEvent<'static>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| match decode(line.as_bytes(), 1 << 20).unwrap() {
            Decoded::Event { raw, event } => normalize(raw, &event).unwrap(),
            Decoded::Envelope(_) => panic!("unexpected envelope"),
        })
        .collect()
}

#[test]
fn golden_inputs_give_the_reference_columns() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path().join("events.ndjson.gz");
        if !path.exists() {
            continue;
        }
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        all.extend(normalized(&text));
    }
    assert!(all.len() > 1000, "golden inputs hold {} events", all.len());
    // Both kinds of entity key, lists with entries, and Okta's signals are exercised.
    assert!(all.iter().any(|e| e.subject_user.is_none() && e.client.ip.is_some()));
    assert!(all.iter().any(|e| !e.network.ip_chain.is_empty()));
    assert!(all.iter().any(|e| !e.okta_signals.threat_detections.is_empty()));
    assert!(all.iter().any(|e| e.okta_signals.risk.is_some()));
    assert_same_columns(&all);
}

#[test]
fn okta_samples_give_the_reference_columns() {
    // Absent samples are reported by `shared_events_dir` itself.
    let Some(dir) = shared_events_dir() else {
        return;
    };
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&path).unwrap();
            let Decoded::Event { raw, event } = decode(&bytes, 1 << 20).unwrap() else {
                panic!("{}: expected one event", path.display());
            };
            events.push(normalize(raw, &event).unwrap());
        }
    }
    assert!(events.len() >= 9, "found {} samples", events.len());
    assert_same_columns(&events);
}
