//! Test events in the full Okta `LogEvent` shape (as `/api/v1/logs` returns them, like
//! `/work/shared/okta/events/*.json`), decoded and normalized through the real path.

use idgw_schemas::SemanticEvent;
use serde_json::{Value, json};

use crate::decode::{Decoded, decode};
use crate::normalize::normalize_fields;

/// A principal: `(id, type, alternateId, displayName)`.
pub(crate) type P = (&'static str, &'static str, &'static str, &'static str);

pub(crate) const ALICE: P = ("00ualice000000000001", "User", "alice@example.com", "Alice Example");
pub(crate) const BOB: P = ("00ubob00000000000002", "User", "bob@example.com", "Bob Example");
pub(crate) const ADMIN: P = ("00uadmin000000000003", "User", "it.admin@example.com", "IT Admin");
pub(crate) const OKTA_SYSTEM: P = (
    "0oa1oktasystem00000",
    "SystemPrincipal",
    "system@okta.com",
    "Okta System",
);

/// One event under construction.
#[derive(Debug, Clone)]
pub(crate) struct E {
    pub event_type: String,
    pub result: String,
    pub reason: Option<String>,
    pub actor: P,
    pub targets: Vec<P>,
    pub ip: String,
    pub country: Option<String>,
    pub user_agent: bool,
    pub transaction_id: String,
    pub debug: Vec<(String, Value)>,
    pub behaviors: Vec<(String, String)>,
    pub minute: i64,
}

/// An event of `event_type` by Alice, SUCCESS, from a US home address, at minute 0.
pub(crate) fn ev(event_type: &str) -> E {
    E {
        event_type: event_type.to_owned(),
        result: "SUCCESS".into(),
        reason: None,
        actor: ALICE,
        targets: Vec::new(),
        ip: "198.51.100.20".into(),
        country: Some("United States".into()),
        user_agent: true,
        transaction_id: "WkcAsWb8WjwDP76xh1v8wAAB".into(),
        debug: Vec::new(),
        behaviors: Vec::new(),
        minute: 0,
    }
}

impl E {
    pub fn result(mut self, r: &str) -> Self {
        self.result = r.into();
        self
    }
    pub fn reason(mut self, r: &str) -> Self {
        self.reason = Some(r.into());
        self
    }
    pub fn actor(mut self, p: P) -> Self {
        self.actor = p;
        self
    }
    pub fn target(mut self, p: P) -> Self {
        self.targets.push(p);
        self
    }
    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = ip.into();
        self
    }
    pub fn country(mut self, c: Option<&str>) -> Self {
        self.country = c.map(str::to_owned);
        self
    }
    /// A server-side event: no user agent, no geo.
    pub fn no_client(mut self) -> Self {
        self.user_agent = false;
        self.country = None;
        self
    }
    pub fn transaction(mut self, id: &str) -> Self {
        self.transaction_id = id.into();
        self
    }
    pub fn debug(mut self, key: &str, value: &str) -> Self {
        self.debug.push((key.into(), Value::String(value.into())));
        self
    }
    /// `securityContext.userBehaviors` results, e.g. `("New Device", "POSITIVE")`.
    pub fn behavior(mut self, name: &str, result: &str) -> Self {
        self.behaviors.push((name.into(), result.into()));
        self
    }
    pub fn at(mut self, minute: i64) -> Self {
        self.minute = minute;
        self
    }

    fn principal(p: P) -> Value {
        json!({"id": p.0, "type": p.1, "alternateId": p.2, "displayName": p.3, "detailEntry": null})
    }

    /// The event as Okta's JSON text.
    pub fn json(&self) -> String {
        let published = chrono::DateTime::from_timestamp_millis(1_793_600_000_000 + self.minute * 60_000)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // Distinct per event type and minute, like Okta's v1 uuids.
        let kind = self
            .event_type
            .bytes()
            .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b)));
        let uuid = format!(
            "{:08x}-{kind:04x}-11eb-8d69-abfc0c06b0f7",
            self.minute as u32 ^ 0x5a5a_0000
        );
        let geo = match &self.country {
            Some(c) => json!({"city": "Portland", "state": "Oregon", "country": c, "postalCode": "97201",
                "geolocation": {"lat": 45.52, "lon": -122.68}}),
            None => json!({"city": null, "state": null, "country": null, "postalCode": null, "geolocation": null}),
        };
        let ua = if self.user_agent {
            json!({"rawUserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                "os": "Mac OS X", "browser": "CHROME"})
        } else {
            Value::Null
        };
        let mut debug = serde_json::Map::new();
        debug.insert("requestId".into(), json!(self.transaction_id));
        debug.insert("requestUri".into(), json!("/api/v1/users"));
        debug.insert("threatSuspected".into(), json!("false"));
        for (k, v) in &self.debug {
            debug.insert(k.clone(), v.clone());
        }
        let behaviors: Vec<Value> = self
            .behaviors
            .iter()
            .enumerate()
            .map(|(i, (n, r))| json!({"id": format!("bhv{i:017}"), "name": n, "result": r}))
            .collect();
        let event = json!({
            "actor": Self::principal(self.actor),
            "client": {"userAgent": ua, "zone": "null", "device": if self.user_agent { json!("Computer") } else { Value::Null },
                "id": null, "ipAddress": self.ip, "geographicalContext": geo},
            "device": null,
            "authenticationContext": {"authenticationProvider": null, "credentialProvider": null, "credentialType": null,
                "issuer": null, "interface": null, "authenticationStep": 0, "externalSessionId": "102AbCdEfGhIjKlMnOp"},
            "displayMessage": "Okta event",
            "eventType": self.event_type,
            "outcome": {"result": self.result, "reason": self.reason},
            "published": published,
            "securityContext": {"asNumber": 7922, "asOrg": "comcast", "isp": "comcast", "domain": "comcast.net",
                "isProxy": false, "userBehaviors": if behaviors.is_empty() { Value::Null } else { Value::Array(behaviors) }},
            "severity": if matches!(self.result.as_str(), "SUCCESS" | "ALLOW") { "INFO" } else { "WARN" },
            "debugContext": {"debugData": debug},
            "legacyEventType": null,
            "transaction": {"type": "WEB", "id": self.transaction_id, "detail": {}},
            "uuid": uuid,
            "version": "0",
            "request": {"ipChain": [{"ip": self.ip, "geographicalContext": null, "version": "V4", "source": null}]},
            "target": self.targets.iter().map(|t| Self::principal(*t)).collect::<Vec<_>>(),
        });
        event.to_string()
    }

    /// The event as the pipeline decodes and normalizes it.
    pub fn event(&self) -> SemanticEvent<'static> {
        let json = self.json();
        let Ok(Decoded::Event { event, .. }) = decode(json.as_bytes(), 1 << 20) else {
            panic!("not an event: {json}");
        };
        normalize_fields(&event).unwrap().into_owned()
    }
}
