//! Property tests: any JSON object either normalizes or is rejected with a reason; nothing
//! panics. Values are drawn at Okta's own field names, so the decoder's lenient paths and
//! its type errors are both exercised.

use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::normalize::normalize;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const KEYS: &[&str] = &[
    "uuid",
    "published",
    "eventType",
    "version",
    "severity",
    "displayMessage",
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
    "id",
    "type",
    "alternateId",
    "displayName",
    "userAgent",
    "ipAddress",
    "geographicalContext",
    "geolocation",
    "lat",
    "lon",
    "postalCode",
    "debugData",
    "risk",
    "behaviors",
    "threatDetections",
    "tunnels",
    "asNumber",
    "isProxy",
    "ipChain",
    "userBehaviors",
    "reasons",
    "level",
    "result",
    "detail",
    "zone",
    "junk",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
        Just(json!("2024-08-13T15:58:20.353Z")),
        Just(json!("{reasons=Anomalous Device, level=HIGH}")),
        Just(json!("{New Device=POSITIVE, New IP=NEGATIVE}")),
        Just(json!("{\"Password Spray\":\"HIGH\"}")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), value()), 0..10)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// Decodes and normalizes; returns whether the event was accepted.
fn run(bytes: &[u8]) -> bool {
    match decode(bytes, 1 << 20) {
        Err(r) => {
            assert!(!r.detail.is_empty());
            false
        }
        Ok(Decoded::Envelope(_)) => false,
        Ok(Decoded::Event { raw, event }) => match normalize(raw, &event) {
            Ok(ev) => {
                assert!(!ev.event_id.is_empty() && !ev.event_type.is_empty());
                // Every accepted event makes an Arrow row, the same on the hot path as
                // through the reference conversion.
                crate::event_columns::assert_same_columns(std::slice::from_ref(&ev));
                true
            }
            Err(r) => {
                assert!(!r.detail.is_empty());
                false
            }
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_object_normalizes_or_is_rejected_with_a_reason(obj in object()) {
        run(obj.to_string().as_bytes());
    }

    #[test]
    fn any_bytes_are_handled(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        run(&bytes);
    }

    #[test]
    fn a_valid_core_survives_arbitrary_optional_noise(noise in object()) {
        let mut obj = noise.as_object().cloned().unwrap_or_default();
        obj.insert("uuid".into(), json!("66666666-0000-4000-8000-000000000001"));
        obj.insert("published".into(), json!("2024-08-13T15:58:20.353Z"));
        obj.insert("eventType".into(), json!("user.session.start"));
        // Accepted unless a noisy field has a type no lenient reading can take.
        let bytes = Value::Object(obj).to_string();
        let accepted = run(bytes.as_bytes());
        if !accepted {
            let r = decode(bytes.as_bytes(), 1 << 20).unwrap_err();
            prop_assert_eq!(r.kind, idgw_pipeline::reject::RejectKind::InvalidField);
        }
    }
}
