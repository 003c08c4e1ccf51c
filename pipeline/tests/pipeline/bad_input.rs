//! Bad input: each case gets a clear dead-letter reason or a clear error, never a panic,
//! and the good events around it are kept.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::support::{Fixture, event, ndjson};

fn good(i: usize) -> String {
    event(
        &format!("11111111-0000-4000-8000-{i:012}"),
        "user.session.start",
        "2024-08-13T15:58:20.353Z",
    )
    .to_string()
}

/// Good events around one bad line: exactly the bad line is dead-lettered with `reason`.
fn one_bad_line(bad: &[u8], reason: &str) -> serde_json::Value {
    let fx = Fixture::new();
    let mut input = Vec::new();
    input.extend_from_slice(good(1).as_bytes());
    input.push(b'\n');
    input.extend_from_slice(bad);
    input.push(b'\n');
    input.extend_from_slice(good(2).as_bytes());
    input.push(b'\n');
    let path = fx.file("in.ndjson", input);
    let s = fx.replay(&[&path]);
    assert_eq!(
        (s.events_in, s.events_ok, s.deadlettered, s.duplicates),
        (3, 2, 1, 0),
        "{s:?}"
    );
    assert_eq!(s.deadletter_reasons.get(reason), Some(&1), "{:?}", s.deadletter_reasons);
    let letters = fx.dead_letters();
    assert_eq!(letters.len(), 1);
    let letter = letters[0].clone();
    assert_eq!(letter["reason"], reason);
    assert_eq!(letter["line"], 2);
    assert_eq!(letter["source"], path.display().to_string());
    assert!(!letter["detail"].as_str().unwrap().is_empty());
    assert_eq!(fx.count(""), 2);
    letter
}

#[test]
fn truncated_json() {
    let g = good(9);
    let letter = one_bad_line(&g.as_bytes()[..g.len() / 2], "not_json");
    assert!(letter["detail"].as_str().unwrap().contains("ends early"), "{letter}");
    assert_eq!(letter["raw"].as_str().unwrap().len(), g.len() / 2);
}

#[test]
fn five_megabyte_line_is_cut_and_rejected() {
    let mut big = String::from("{\"uuid\":\"x\",\"junk\":\"");
    big.push_str(&"a".repeat(5 << 20));
    big.push_str("\"}");
    let letter = one_bad_line(big.as_bytes(), "too_large");
    assert_eq!(
        letter["byte_len"],
        1 << 20,
        "the record is cut at the limit while reading"
    );
    assert_eq!(letter["raw_truncated"], true);
    assert_eq!(letter["raw"].as_str().unwrap().len(), 64 << 10);
}

#[test]
fn invalid_utf8_is_kept_as_base64() {
    let mut bad = good(9).into_bytes();
    let at = bad.iter().position(|&b| b == b'A').unwrap();
    bad[at] = 0xff;
    let letter = one_bad_line(&bad, "invalid_utf8");
    assert!(letter.get("raw").is_none());
    let b64 = letter["raw_base64"].as_str().unwrap();
    use base64::Engine as _;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap(), bad);
}

#[test]
fn number_where_a_string_belongs_is_accepted() {
    // Okta's own examples write numbers for `version` and `postalCode`: lenient, stored.
    let fx = Fixture::new();
    let mut e = event(
        "22222222-0000-4000-8000-000000000001",
        "user.session.start",
        "2024-08-13T15:58:20.353Z",
    );
    e["version"] = 0.into();
    e["client"]["geographicalContext"]["postalCode"] = 10013.into();
    e["displayMessage"] = 42.into();
    let path = fx.file("in.ndjson", e.to_string());
    let s = fx.replay(&[&path]);
    assert_eq!(s.events_ok, 1);
    let rows = fx.sql("SELECT geo_postal_code, display_message FROM events");
    assert_eq!(rows[0]["geo_postal_code"], "10013");
    assert_eq!(rows[0]["display_message"], "42");
}

#[test]
fn an_odd_nested_field_is_dropped_not_the_event() {
    // An object where the client IP belongs: the event is kept, without that field, and
    // says so in its warnings; the stored raw text is the record as it came.
    let fx = Fixture::new();
    let mut e = event(
        "22222222-0000-4000-8000-000000000002",
        "user.session.start",
        "2024-08-13T15:58:20.353Z",
    );
    e["client"]["ipAddress"] = serde_json::json!({"v4": "1.2.3.4"});
    let path = fx.file("in.ndjson", format!("{}\n{e}\n{}\n", good(1), good(2)));
    let s = fx.replay(&[&path]);
    assert_eq!((s.events_in, s.events_ok, s.deadlettered), (3, 3, 0), "{s:?}");
    let rows = fx.sql(
        "SELECT src_ip, array_to_string(warnings, ' | ') AS w, raw FROM events WHERE event_id = '22222222-0000-4000-8000-000000000002'",
    );
    // The client address comes from request.ipChain instead.
    assert_eq!(rows[0]["src_ip"], "198.51.100.7", "{:?}", rows[0]);
    assert!(
        rows[0]["w"]
            .as_str()
            .unwrap()
            .contains("repaired: client.ipAddress: dropped"),
        "{:?}",
        rows[0]
    );
    assert!(rows[0]["raw"].as_str().unwrap().contains(r#""v4":"1.2.3.4""#));
}

#[test]
fn missing_published() {
    let mut e = event("22222222-0000-4000-8000-000000000003", "user.session.start", "x");
    e.as_object_mut().unwrap().remove("published");
    let letter = one_bad_line(e.to_string().as_bytes(), "missing_field");
    assert!(letter["detail"].as_str().unwrap().contains("published"));
}

#[test]
fn unparseable_published() {
    let e = event(
        "22222222-0000-4000-8000-000000000004",
        "user.session.start",
        "13/08/2024 15:58",
    );
    one_bad_line(e.to_string().as_bytes(), "invalid_timestamp");
}

#[test]
fn target_as_an_object_is_read_as_one_target() {
    let fx = Fixture::new();
    let mut e = event(
        "22222222-0000-4000-8000-000000000005",
        "user.lifecycle.suspend",
        "2024-08-13T15:58:20.353Z",
    );
    e["target"] =
        serde_json::json!({"id": "00uTARGET", "type": "User", "alternateId": "bob@example.com", "displayName": "Bob"});
    let path = fx.file("in.ndjson", e.to_string());
    assert_eq!(fx.replay(&[&path]).events_ok, 1);
    let rows = fx.sql("SELECT user_id, target_login FROM events");
    assert_eq!(
        rows[0]["user_id"], "00uTARGET",
        "an admin action belongs to its target user"
    );
    assert_eq!(rows[0]["target_login"], "bob@example.com");
}

#[test]
fn deeply_nested_junk() {
    // In a field the event names, deep nesting is a type error with the field's path.
    let mut bad = String::from("{\"uuid\":\"u\",\"target\":");
    bad.push_str(&"[".repeat(50_000));
    bad.push_str(&"]".repeat(50_000));
    bad.push('}');
    let letter = one_bad_line(bad.as_bytes(), "invalid_field");
    assert!(letter["detail"].as_str().unwrap().contains("target"), "{letter}");
    // In an unknown field it is skipped (iteratively, no stack risk) and the event stored.
    let fx = Fixture::new();
    let mut e = good(7);
    e.pop();
    e.push_str(",\"junk\":");
    e.push_str(&"{\"a\":[".repeat(20_000));
    e.push_str(&"]}".repeat(20_000));
    e.push('}');
    let path = fx.file("deep.ndjson", e);
    assert_eq!(fx.replay(&[&path]).events_ok, 1);
}

#[test]
fn not_an_object() {
    one_bad_line(b"[1, 2, 3]", "not_an_object");
    one_bad_line(b"\"just a string\"", "not_an_object");
}

#[test]
fn empty_file() {
    let fx = Fixture::new();
    let path = fx.file("empty.ndjson", "");
    let s = fx.replay(&[&path]);
    assert_eq!((s.events_in, s.events_ok, s.deadlettered), (0, 0, 0));
    assert!(!s.has_input_errors());
    assert_eq!(fx.count(""), 0);
}

#[test]
fn gzip_stream_cut_in_half() {
    let fx = Fixture::new();
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(ndjson(2000, "2024-08-13").as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let path = fx.file("cut.ndjson.gz", &gz[..gz.len() / 2]);
    let s = fx.replay(&[&path]);
    assert!(s.has_input_errors(), "a cut stream is reported: {s:?}");
    let err = s.inputs[0].error.as_deref().unwrap();
    assert!(err.contains("cut.ndjson.gz"), "{err}");
    assert!(
        s.events_ok > 100 && s.events_ok < 2000,
        "the events before the cut are kept: {s:?}"
    );
    assert_eq!(fx.count(""), s.events_ok as i64);
    // The partial last line (if any) is dead-lettered as truncated, not lost.
    assert!(s.deadlettered <= 1);
    if s.deadlettered == 1 {
        assert_eq!(s.deadletter_reasons.get("truncated_input").copied(), Some(1));
    }
}

#[test]
fn json_array_with_one_bad_element() {
    let fx = Fixture::new();
    let a = event(
        "33333333-0000-4000-8000-000000000001",
        "user.session.start",
        "2024-08-13T15:58:20.353Z",
    );
    let mut b = a.clone();
    b.as_object_mut().unwrap().remove("uuid");
    let c = event(
        "33333333-0000-4000-8000-000000000003",
        "user.session.end",
        "2024-08-13T16:58:20.353Z",
    );
    let text = format!("[{a},\n 42,\n {b},\n {c}]");
    let path = fx.file("page.json", text);
    let s = fx.replay(&[&path]);
    // The element without a uuid is kept under an id derived from its content.
    assert_eq!((s.events_in, s.events_ok, s.deadlettered), (4, 3, 1), "{s:?}");
    let letters = fx.dead_letters();
    let elements: Vec<(i64, String)> = letters
        .iter()
        .map(|l| (l["element"].as_i64().unwrap(), l["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(elements, vec![(2, "not_an_object".to_owned())]);
    assert_eq!(fx.count("WHERE event_id LIKE 'derived-%'"), 1);
}

#[test]
fn json_array_broken_mid_way_keeps_what_came_before() {
    let fx = Fixture::new();
    let a = event(
        "33333333-0000-4000-8000-000000000011",
        "user.session.start",
        "2024-08-13T15:58:20.353Z",
    );
    let path = fx.file("broken.json", format!("[{a}, {{\"uuid\": \"x\", oops}}, {a}]"));
    let s = fx.replay(&[&path]);
    assert_eq!((s.events_ok, s.deadlettered), (1, 1), "{s:?}");
    assert_eq!(fx.dead_letters()[0]["reason"], "not_json");
}

#[test]
fn missing_input_file_is_an_error_not_a_crash() {
    let fx = Fixture::new();
    let good = fx.file("good.ndjson", ndjson(3, "2024-08-13"));
    let missing = fx.dir.path().join("nope.ndjson");
    let s = fx.replay(&[&missing, &good]);
    assert_eq!(s.events_ok, 3);
    assert!(s.inputs[0].error.as_deref().unwrap().contains("nope.ndjson"));
}

/// The shapes SIEM exports and pipelines in between give Okta's events, each applied to a
/// real event (`../shared/okta/events`): every one is stored, none dead-lettered.
#[test]
fn export_shapes_of_a_real_event_are_read() {
    let Some(dir) = super::support::shared_events_dir() else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("02-user.session.start-success-risk-behaviors-openapi.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    let base = match parsed {
        serde_json::Value::Array(mut a) => a.remove(0),
        v => v,
    };
    type Shape = fn(&mut serde_json::Value);
    let shapes: [(&str, Shape); 11] = [
        ("space", |e| e["published"] = "2024-08-13 15:58:20.353".into()),
        ("nanoseconds", |e| {
            e["published"] = "2024-08-13T15:58:20.353123456Z".into()
        }),
        ("no zone", |e| e["published"] = "2024-08-13T15:58:20.353".into()),
        ("epoch ms", |e| e["published"] = 1_723_564_700_353_i64.into()),
        ("no uuid", |e| {
            e.as_object_mut().unwrap().remove("uuid");
        }),
        ("debugData objects", |e| {
            let dd = &mut e["debugContext"]["debugData"];
            dd["logOnlySecurityData"] =
                serde_json::json!({"risk": {"level": "HIGH"}, "behaviors": {"New Device": "POSITIVE"}});
            dd["behaviors"] = serde_json::json!({"New Geo-Location": "POSITIVE", "New Device": "NEGATIVE"});
        }),
        ("debugData array", |e| {
            e["debugContext"]["debugData"]["risk"] = serde_json::json!(["HIGH"])
        }),
        ("debugData empty", |e| e["debugContext"]["debugData"] = "".into()),
        ("lower-case keys", |e| {
            let m = e.as_object_mut().unwrap();
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let v = m.remove(&k).unwrap();
                m.insert(k.to_lowercase(), v);
            }
        }),
        ("null strings", |e| {
            e["client"]["ipAddress"] = "null".into();
            e["client"]["zone"] = "null".into();
        }),
        ("numbers for strings", |e| {
            e["actor"]["id"] = 12345.into();
            e["outcome"]["reason"] = 7.into();
            e["client"]["geographicalContext"]["geolocation"]["lat"] = "40.3157".into();
        }),
    ];
    let fx = Fixture::new();
    let mut lines = String::new();
    for (i, (_, shape)) in shapes.iter().enumerate() {
        let mut e = base.clone();
        shape(&mut e);
        if e.get("uuid").is_some() {
            e["uuid"] = format!("44444444-0000-4000-8000-{i:012}").into();
        }
        lines.push_str(&e.to_string());
        lines.push('\n');
    }
    let path = fx.file("exports.ndjson", &lines);
    let s = fx.replay(&[&path]);
    assert_eq!(
        (s.events_in, s.events_ok, s.deadlettered),
        (shapes.len() as u64, shapes.len() as u64, 0),
        "{s:?}\n{:#?}",
        fx.dead_letters()
    );
    // Every time read as the same instant; the lower-cased event keeps its type.
    assert_eq!(
        fx.count("WHERE event_time = TIMESTAMP '2024-08-13T15:58:20.353Z' AND event_type = 'user.session.start'"),
        shapes.len() as i64,
    );
    // The parsed behaviours are read as Okta's JSON text would be.
    let rows = fx.sql("SELECT array_to_string(behaviors_positive, ',') AS b FROM events WHERE event_id = '44444444-0000-4000-8000-000000000005'");
    assert!(
        rows[0]["b"].as_str().unwrap().contains("New Geo-Location"),
        "{:?}",
        rows[0]
    );
    // Redelivered without a uuid, the same event is a duplicate.
    let mut e = base.clone();
    e.as_object_mut().unwrap().remove("uuid");
    let again = fx.file("again.ndjson", format!("{e}\n{e}\n"));
    let s = fx.replay(&[&again]);
    assert_eq!(s.duplicates, 2, "{s:?}");
}

/// Times that cannot be true are dead-lettered: they would move every windowed detector's
/// watermark past the real events after them (measured: 14,361 of 59,996 then counted late).
#[test]
fn impossible_times_are_dead_lettered() {
    for when in ["9999-12-31T23:59:59.000Z", "0000-01-01T00:00:00.000Z"] {
        let e = event("55555555-0000-4000-8000-000000000001", "user.session.start", when);
        let letter = one_bad_line(e.to_string().as_bytes(), "invalid_timestamp");
        assert!(letter["detail"].as_str().unwrap().contains(when), "{letter}");
    }
}
