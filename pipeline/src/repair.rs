//! Events the typed decoder refuses, made readable without losing the event.
//!
//! SIEM exports and the pipelines in between change Okta's shapes: they lower-case the
//! top-level keys, parse `debugData`'s JSON-encoded strings into objects, write `""` for an
//! empty `debugData`, or put an odd value in one nested field. One odd field must not lose
//! the whole event. When [`crate::decode::decode`] refuses a record, or the event it reads
//! lacks a required field, [`repair`] rewrites a copy: keys back to Okta's names,
//! `debugData` values back to the strings Okta sends, and any other field the typed event
//! cannot hold dropped from the copy (the verbatim record is still what the store keeps).
//! Each change is noted, and the notes become the stored event's warnings.

use serde_json::{Map, Value};

/// A rewritten record and what was changed.
#[derive(Debug)]
pub struct Repaired {
    /// The record as the typed decoder reads it.
    pub text: String,
    /// One line per change, e.g. `debugContext.debugData.behaviors: object kept as JSON text`.
    pub notes: Vec<String>,
}

/// Okta's top-level keys; exports may change their case or write them in snake_case.
const TOP_LEVEL: [&str; 17] = [
    "uuid",
    "published",
    "eventType",
    "version",
    "severity",
    "displayMessage",
    "legacyEventType",
    "actor",
    "client",
    "device",
    "authenticationContext",
    "securityContext",
    "debugContext",
    "outcome",
    "target",
    "transaction",
    "request",
];

/// Fields dropped at most, before the record is given up.
const MAX_DROPS: usize = 16;

fn folded(key: &str) -> String {
    key.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

/// A copy of `raw` the typed decoder can read, or `None` when there is nothing to repair
/// (not a JSON object, or nothing changed).
pub fn repair(raw: &str) -> Option<Repaired> {
    let mut event = serde_json::from_str::<Value>(raw).ok()?;
    let top = event.as_object_mut()?;
    let mut notes = Vec::new();
    canonical_keys(top, &mut notes);
    debug_data_as_strings(top, &mut notes);
    for _ in 0..MAX_DROPS {
        let text = serde_json::to_string(&event).ok()?;
        let mut de = serde_json::Deserializer::from_str(&text);
        match serde_path_to_error::deserialize::<_, idgw_schemas::okta::LogEvent<'_>>(&mut de) {
            Ok(_) => {
                return (!notes.is_empty()).then_some(Repaired { text, notes });
            }
            Err(e) => {
                let path: Vec<String> = e
                    .path()
                    .iter()
                    .map(|s| match s {
                        serde_path_to_error::Segment::Seq { index } => index.to_string(),
                        serde_path_to_error::Segment::Map { key } => key.clone(),
                        serde_path_to_error::Segment::Enum { variant } => variant.clone(),
                        serde_path_to_error::Segment::Unknown => String::new(),
                    })
                    .collect();
                if path.is_empty() || !drop_at(&mut event, &path) {
                    return None;
                }
                notes.push(format!("{}: dropped ({})", path.join("."), e.inner()));
            }
        }
    }
    None
}

/// Renames top-level keys to Okta's (`eventtype`, `EventType`, `event_type` → `eventType`),
/// unless the right name is there already.
fn canonical_keys(event: &mut Map<String, Value>, notes: &mut Vec<String>) {
    let renames: Vec<(String, &str)> = event
        .keys()
        .filter(|k| !TOP_LEVEL.contains(&k.as_str()))
        .filter_map(|k| {
            let f = folded(k);
            TOP_LEVEL
                .iter()
                .find(|name| folded(name) == f)
                .map(|name| (k.clone(), *name))
        })
        .collect();
    for (from, to) in renames {
        if event.contains_key(to) {
            continue;
        }
        if let Some(v) = event.remove(&from) {
            event.insert(to.to_owned(), v);
            notes.push(format!("{from}: read as {to}"));
        }
    }
}

/// `debugData` as Okta sends it: an object of strings. `""` or another non-object is
/// dropped; object and array values (an export that parsed Okta's JSON-encoded strings)
/// go back to JSON text.
fn debug_data_as_strings(event: &mut Map<String, Value>, notes: &mut Vec<String>) {
    let Some(Value::Object(ctx)) = event.get_mut("debugContext") else {
        return;
    };
    match ctx.get_mut("debugData") {
        None | Some(Value::Null) => {}
        Some(Value::Object(data)) => {
            for (key, value) in data.iter_mut() {
                if matches!(value, Value::Object(_) | Value::Array(_)) {
                    let kind = if value.is_object() { "object" } else { "array" };
                    *value = Value::String(value.to_string());
                    notes.push(format!("debugContext.debugData.{key}: {kind} kept as JSON text"));
                }
            }
        }
        Some(other) => {
            let was = other.to_string();
            ctx.remove("debugData");
            notes.push(format!(
                "debugContext.debugData: {} is not an object; dropped",
                was.chars().take(40).collect::<String>()
            ));
        }
    }
}

/// Removes the value at `path` (object keys and array indexes); false when there is none.
fn drop_at(node: &mut Value, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => match node {
            Value::Object(m) => m.remove(last).is_some(),
            Value::Array(items) => match last.parse::<usize>() {
                Ok(n) if n < items.len() => {
                    items.remove(n);
                    true
                }
                _ => false,
            },
            _ => false,
        },
        [head, rest @ ..] => match node {
            Value::Object(m) => m.get_mut(head).is_some_and(|child| drop_at(child, rest)),
            Value::Array(items) => head
                .parse::<usize>()
                .ok()
                .and_then(|n| items.get_mut(n))
                .is_some_and(|child| drop_at(child, rest)),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(raw: &str) -> (Value, Vec<String>) {
        let r = repair(raw).unwrap_or_else(|| panic!("nothing repaired in {raw}"));
        (serde_json::from_str(&r.text).unwrap(), r.notes)
    }

    #[test]
    fn keys_are_read_in_any_case() {
        let (v, notes) = repaired(
            r#"{"uuid":"u","eventtype":"user.session.start","PUBLISHED":"2024-08-13T15:58:20.353Z","display_message":"x"}"#,
        );
        assert_eq!(v["eventType"], "user.session.start");
        assert_eq!(v["published"], "2024-08-13T15:58:20.353Z");
        assert_eq!(v["displayMessage"], "x");
        assert_eq!(notes.len(), 3, "{notes:?}");
    }

    #[test]
    fn debug_data_goes_back_to_strings() {
        let (v, _) = repaired(
            r#"{"uuid":"u","debugContext":{"debugData":{"behaviors":{"New Device":"POSITIVE"},"risk":["a"],"requestId":"r"}}}"#,
        );
        let dd = &v["debugContext"]["debugData"];
        assert_eq!(dd["behaviors"], r#"{"New Device":"POSITIVE"}"#);
        assert_eq!(dd["risk"], r#"["a"]"#);
        assert_eq!(dd["requestId"], "r");
        let (v, notes) = repaired(r#"{"uuid":"u","debugContext":{"debugData":""}}"#);
        assert!(v["debugContext"].get("debugData").is_none());
        assert!(notes[0].contains("not an object"), "{notes:?}");
    }

    #[test]
    fn one_odd_field_is_dropped_not_the_event() {
        let (v, notes) = repaired(
            r#"{"uuid":"u","eventType":"t","client":{"ipAddress":"198.51.100.7","geographicalContext":{"city":"Oslo","geolocation":{"lat":"north","lon":10.7}}},"target":[{"id":"a"},"bob"]}"#,
        );
        assert_eq!(v["client"]["ipAddress"], "198.51.100.7");
        assert!(v["client"]["geographicalContext"]["geolocation"].get("lat").is_none());
        assert_eq!(v["client"]["geographicalContext"]["geolocation"]["lon"], 10.7);
        assert_eq!(v["target"].as_array().unwrap().len(), 1);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("client.geographicalContext.geolocation.lat: dropped"),
            "{notes:?}"
        );
    }

    #[test]
    fn nothing_to_repair_is_none() {
        assert!(repair(r#"{"uuid":"u","eventType":"t"}"#).is_none());
        assert!(repair("[1,2]").is_none());
        assert!(repair("not json").is_none());
    }
}
