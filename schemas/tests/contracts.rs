//! Contract tests: the checked-in JSON Schemas are current, and the contracts round-trip.

use std::path::PathBuf;

use idgw_schemas::json_schema;

fn json_dir() -> PathBuf {
    // Cargo sets CARGO_MANIFEST_DIR when it runs a test: a test binary reused from a build
    // cache filled by another checkout would otherwise look in that checkout.
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("json")
}

#[test]
fn checked_in_json_schemas_are_current() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let generated = json_schema::all();
    let mut stale = Vec::new();
    for (name, text) in &generated {
        let path = json_dir().join(name);
        if update {
            std::fs::write(&path, text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(current) if &current == text => {}
            _ => stale.push(name.to_string()),
        }
    }
    assert!(
        stale.is_empty(),
        "stale JSON Schemas in schemas/json: {stale:?}; regenerate with `UPDATE_SCHEMAS=1 cargo test -p idgw-schemas --test contracts`"
    );
    let mut on_disk: Vec<String> = std::fs::read_dir(json_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = generated.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(on_disk, expected, "schemas/json holds files no contract generates");
}

#[test]
fn json_schemas_name_the_reference_fields() {
    let all = json_schema::all();
    let doc = |name: &str| -> serde_json::Value {
        serde_json::from_str(&all.iter().find(|(n, _)| *n == name).unwrap().1).unwrap()
    };
    let semantic = doc("semantic_event.schema.json");
    for field in [
        "event_id",
        "event_time",
        "event_type",
        "category",
        "action",
        "severity",
        "display_message",
        "actor",
        "primary_target",
        "subject_user",
        "client",
        "request",
        "outcome",
        "ocsf",
    ] {
        assert!(
            semantic["properties"].get(field).is_some(),
            "SemanticEvent lacks {field}"
        );
    }
    let audit = doc("audit_record.schema.json");
    for field in [
        "transaction_id",
        "timestamp",
        "action",
        "user",
        "reasoning",
        "status",
        "rollback_of",
        "prev_hash",
    ] {
        assert!(audit["properties"].get(field).is_some(), "AuditRecord lacks {field}");
    }
    let alert = doc("alert.schema.json");
    for field in [
        "alert_id",
        "detection",
        "severity",
        "risk_score",
        "user_id",
        "user_login",
        "src_ip",
        "first_seen",
        "last_seen",
        "event_uuids",
        "summary",
        "evidence",
        "mitre",
    ] {
        assert!(alert["properties"].get(field).is_some(), "Alert lacks {field}");
    }
}

#[test]
fn alert_ids_are_deterministic_and_order_free() {
    use idgw_schemas::{Alert, Detection};
    let a = Alert::deterministic_id(Detection::BruteForce, "00u1", &["b".into(), "a".into()]);
    let b = Alert::deterministic_id(Detection::BruteForce, "00u1", &["a".into(), "b".into()]);
    let c = Alert::deterministic_id(Detection::PasswordSpray, "00u1", &["a".into(), "b".into()]);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.starts_with("alt-"));
    let names: Vec<&str> = Detection::ALL.iter().map(|d| d.as_str()).collect();
    for d in Detection::ALL {
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{}\"", d.as_str()));
    }
    assert_eq!(names.len(), 32);
    let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "detection names must be unique");
}
