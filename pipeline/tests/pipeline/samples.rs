//! Real Okta output (../shared/okta/events): every file decodes and normalizes, and the
//! normalized form is pinned by a snapshot per file.

use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::normalize::normalize;

use crate::support::{Fixture, shared_events_dir};

fn sample_files() -> Vec<std::path::PathBuf> {
    let Some(dir) = shared_events_dir() else {
        return Vec::new();
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "expected the nine sample events, found {files:?}");
    files
}

#[test]
fn every_sample_normalizes_and_matches_its_snapshot() {
    for path in sample_files() {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let Decoded::Event { raw, event } = decode(&bytes, 1 << 20).unwrap() else {
            panic!("{name}: expected one event");
        };
        let ev = normalize(raw, &event).unwrap_or_else(|r| panic!("{name}: rejected: {r}"));
        assert!(ev.warnings.is_empty(), "{name}: {:?}", ev.warnings);
        let mut value = serde_json::to_value(&ev).unwrap();
        assert_eq!(value["raw"]["uuid"], &*ev.event_id, "{name}: raw is embedded as JSON");
        let back: idgw_schemas::SemanticEvent = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
        assert_eq!(
            back.raw, ev.raw,
            "{name}: the JSON text round-trips, raw event verbatim"
        );
        value.as_object_mut().unwrap().remove("raw");
        // Sorted keys: the snapshot must not depend on whether a dependency turns on
        // serde_json's `preserve_order` (qdrant-edge does).
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(name, value);
        });
    }
}

#[test]
fn samples_carry_what_detections_need() {
    let files = sample_files();
    if files.is_empty() {
        return;
    }
    let load = |prefix: &str| {
        let path = files
            .iter()
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap();
        let bytes = std::fs::read(path).unwrap();
        let Decoded::Event { raw, event } = decode(&bytes, 1 << 20).unwrap() else {
            panic!()
        };
        normalize(raw, &event).unwrap()
    };
    let oie = load("02-");
    assert_eq!(
        oie.subject_user.as_ref().unwrap().login.as_deref(),
        Some("john.doe@example.com")
    );
    assert_eq!(oie.okta_signals.risk.as_ref().unwrap().level.as_deref(), Some("HIGH"));
    assert_eq!(
        oie.okta_signals.positive_behaviors().collect::<Vec<_>>(),
        vec!["New Geo-Location"]
    );
    assert_eq!(oie.client.geo.as_ref().unwrap().postal_code.as_deref(), Some("10013"));
    assert_eq!(oie.network.asn, Some(394089));
    assert_eq!(oie.ocsf.class_uid, 3002);
    assert_eq!(oie.ocsf.status_id, 1);

    let hook = load("03-");
    assert!(hook.device.dt_hash.is_some(), "dtHash is read from debugData");

    let suspend = load("13-");
    assert_eq!(suspend.ocsf.class_uid, 3001);
    assert_eq!(suspend.action, "suspend");
    assert!(
        suspend.request.api_token_id.is_some(),
        "API-token actions keep the token id"
    );
    let subject = suspend.subject_user.as_ref().unwrap();
    assert_eq!(subject.kind.as_deref(), Some("User"));
    // The sanitised sample gives actor and target one id; the names tell them apart.
    assert_eq!(
        subject.display_name.as_deref(),
        Some("Test User"),
        "an admin action belongs to its target"
    );

    let logout = load("12-");
    assert!(logout.targets.is_empty(), "target null is no target");
    assert_eq!(logout.ocsf.activity_id, 2);
}

#[test]
fn replaying_all_samples_fills_the_store() {
    let files = sample_files();
    if files.is_empty() {
        return;
    }
    let fx = Fixture::new();
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let s = fx.replay(&refs);
    assert_eq!(s.deadlettered, 0, "{s:?}");
    assert_eq!(s.events_in, files.len() as u64);
    assert_eq!(s.events_ok + s.duplicates, s.events_in);
    let rows = fx.sql("SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1");
    assert!(rows.iter().any(|r| r["event_type"] == "user.session.start"));
    assert_eq!(
        rows.iter().map(|r| r["n"].as_i64().unwrap()).sum::<i64>(),
        s.events_ok as i64
    );
}
