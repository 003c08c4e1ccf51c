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
fn object_where_a_string_belongs_names_the_field() {
    let mut e = event(
        "22222222-0000-4000-8000-000000000002",
        "user.session.start",
        "2024-08-13T15:58:20.353Z",
    );
    e["client"]["ipAddress"] = serde_json::json!({"v4": "1.2.3.4"});
    let letter = one_bad_line(e.to_string().as_bytes(), "invalid_field");
    assert!(
        letter["detail"].as_str().unwrap().contains("client.ipAddress"),
        "{letter}"
    );
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
    assert_eq!((s.events_in, s.events_ok, s.deadlettered), (4, 2, 2), "{s:?}");
    let letters = fx.dead_letters();
    let elements: Vec<(i64, String)> = letters
        .iter()
        .map(|l| (l["element"].as_i64().unwrap(), l["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        elements,
        vec![(2, "not_an_object".to_owned()), (3, "missing_field".to_owned())]
    );
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
