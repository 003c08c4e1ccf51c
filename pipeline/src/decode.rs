//! Bytes to a borrowed Okta [`LogEvent`], or a [`Rejection`] that says why not.
//!
//! The fast path is one `serde_json` pass into borrowed types; the slow paths (working out
//! which field was wrong, recognising an event-hook envelope) run only when that fails, so
//! well-formed input pays nothing for good error messages.

use idgw_schemas::okta::LogEvent;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::reject::{RejectKind, Rejection};

/// A decoded record.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// One event with its verbatim JSON text.
    Event { raw: &'a str, event: Box<LogEvent<'a>> },
    /// An event-hook delivery `{"data":{"events":[…]}}`: its events, each still to decode.
    Envelope(Vec<&'a RawValue>),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: EnvelopeData<'a>,
}

#[derive(Deserialize)]
struct EnvelopeData<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Decodes one record of at most `max_bytes`.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Decoded<'_>, Rejection> {
    if bytes.len() > max_bytes {
        return Err(Rejection::new(
            RejectKind::TooLarge,
            format!("{} bytes exceeds the limit of {max_bytes} bytes", bytes.len()),
        ));
    }
    // SIMD validation: a few times faster than the standard library's on ~2 KB of text.
    let text = simdutf8::compat::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            RejectKind::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let raw = text.trim();
    // serde's derived structs also read JSON arrays positionally; an event is an object.
    if !raw.starts_with('{') {
        return Err(not_an_object(raw));
    }
    match serde_json::from_str::<LogEvent<'_>>(raw) {
        Ok(event) => {
            // An event-hook delivery carries `eventType: "com.okta.event_hook"` but no uuid.
            if event.uuid.is_none()
                && let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(raw)
            {
                return Ok(Decoded::Envelope(envelope.data.events));
            }
            Ok(Decoded::Event {
                raw,
                event: Box::new(event),
            })
        }
        Err(e) => Err(explain(raw, e)),
    }
}

fn not_an_object(raw: &str) -> Rejection {
    let what = match raw.as_bytes().first() {
        None => return Rejection::new(RejectKind::NotJson, "empty record"),
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(_) => {
            return Rejection::new(
                RejectKind::NotJson,
                format!("not JSON: starts with {:?}", raw.chars().next().unwrap_or(' ')),
            );
        }
    };
    // Only well-formed JSON is "not an object"; anything else is not JSON at all.
    if serde_json::from_str::<serde::de::IgnoredAny>(raw).is_err() {
        return Rejection::new(RejectKind::NotJson, format!("not JSON (starts like {what})"));
    }
    Rejection::new(
        RejectKind::NotAnObject,
        format!("expected an event object, found {what}"),
    )
}

/// Turns a serde error into a rejection that names the offending field.
fn explain(raw: &str, err: serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    match err.classify() {
        Category::Eof => Rejection::new(RejectKind::NotJson, format!("JSON ends early: {err}")),
        // Valid JSON that fails with a "syntax" error has a value of the wrong shape (an
        // array where an object belongs, of the wrong length): a field problem.
        Category::Syntax | Category::Io if serde_json::from_str::<serde::de::IgnoredAny>(raw).is_err() => {
            Rejection::new(RejectKind::NotJson, err.to_string())
        }
        Category::Syntax | Category::Io | Category::Data => {
            let mut de = serde_json::Deserializer::from_str(raw);
            match serde_path_to_error::deserialize::<_, LogEvent<'_>>(&mut de) {
                Err(e) if e.path().iter().next().is_some() => {
                    Rejection::new(RejectKind::InvalidField, format!("field `{}`: {}", e.path(), e.inner()))
                }
                _ => Rejection::new(RejectKind::InvalidField, err.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(input: &[u8]) -> Rejection {
        match decode(input, 1 << 20) {
            Err(r) => r,
            Ok(d) => panic!("expected a rejection, got {d:?}"),
        }
    }

    #[test]
    fn classifies_bad_input() {
        assert_eq!(reject(b"{\"uuid\": \"a\", ").kind, RejectKind::NotJson);
        assert_eq!(reject(b"hello").kind, RejectKind::NotJson);
        assert_eq!(reject(b"42").kind, RejectKind::NotAnObject);
        assert_eq!(reject(b"[1,2]").kind, RejectKind::NotAnObject);
        assert_eq!(reject(b"{\"uuid\":\"\xff\"}").kind, RejectKind::InvalidUtf8);
        let r = reject(br#"{"uuid":"u","actor":"bob"}"#);
        assert_eq!(r.kind, RejectKind::InvalidField);
        assert!(r.detail.contains("`actor`"), "{}", r.detail);
        let r = reject(br#"{"uuid":"u","client":{"geographicalContext":{"geolocation":{"lat":"north"}}}}"#);
        assert!(
            r.detail.contains("client.geographicalContext.geolocation.lat"),
            "{}",
            r.detail
        );
        assert_eq!(
            decode(&[b' '; 100], 10).map(|_| ()).unwrap_err().kind,
            RejectKind::TooLarge
        );
    }

    #[test]
    fn deep_nesting_never_overflows() {
        // Unknown fields are skipped without recursion: deep junk there is harmless.
        let mut s = String::from("{\"uuid\":\"u\",\"junk\":");
        s.push_str(&"[".repeat(100_000));
        s.push_str(&"]".repeat(100_000));
        s.push('}');
        assert!(decode(s.as_bytes(), 1 << 20).is_ok());
        // In a known field it is a type error, found without recursing either.
        let mut s = String::from("{\"target\":");
        s.push_str(&"[".repeat(100_000));
        s.push_str(&"]".repeat(100_000));
        s.push('}');
        assert_eq!(reject(s.as_bytes()).kind, RejectKind::InvalidField);
    }

    #[test]
    fn recognises_event_hook_envelope() {
        let d = decode(
            br#"{"eventType":null,"data":{"events":[{"uuid":"a"},{"uuid":"b"}]}}"#,
            1 << 20,
        )
        .unwrap();
        assert!(matches!(d, Decoded::Envelope(ref v) if v.len() == 2));
    }
}
