//! The Okta System Log `LogEvent`, typed leniently (reference.md §1).
//!
//! Every field may be absent or null. String data borrows from the input buffer where the
//! JSON text has no escapes, so decoding a line allocates little. Fields this type does not
//! name are not lost: the decoder keeps the event's verbatim JSON next to it, and the store
//! keeps that text for drill-down.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::lenient::{Bool, Num, OneOrMany, Str};

/// One System Log event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct LogEvent<'a> {
    /// Unique event id (a UUID v1 in practice); the dedup key.
    #[serde(borrow)]
    pub uuid: Option<Str<'a>>,
    /// ISO-8601 UTC time with milliseconds, e.g. `2024-08-13T15:58:20.353Z`.
    #[serde(borrow)]
    pub published: Option<Str<'a>>,
    /// Dotted event type, e.g. `user.session.start`.
    #[serde(borrow)]
    pub event_type: Option<Str<'a>>,
    /// `"0"` in real events; the OpenAPI example writes the number `0`.
    #[serde(borrow)]
    pub version: Option<Str<'a>>,
    /// `DEBUG`, `INFO`, `WARN` or `ERROR`.
    #[serde(borrow)]
    pub severity: Option<Str<'a>>,
    /// Human text, e.g. `User login to Okta`.
    #[serde(borrow)]
    pub display_message: Option<Str<'a>>,
    /// Classic event type, e.g. `core.user_auth.login_success`; often null.
    #[serde(borrow)]
    pub legacy_event_type: Option<Str<'a>>,
    /// Who acted.
    #[serde(borrow)]
    pub actor: Option<Box<Actor<'a>>>,
    /// The client that made the request.
    #[serde(borrow)]
    pub client: Option<Box<Client<'a>>>,
    /// OIE device-assurance details (snake_case keys).
    #[serde(borrow)]
    pub device: Option<Box<OieDevice<'a>>>,
    /// How the actor authenticated.
    #[serde(borrow)]
    pub authentication_context: Option<Box<AuthenticationContext<'a>>>,
    /// Network reputation, Okta risk and behaviours.
    #[serde(borrow)]
    pub security_context: Option<Box<SecurityContext<'a>>>,
    /// Free-form debug data (values are strings).
    #[serde(borrow)]
    pub debug_context: Option<Box<DebugContext<'a>>>,
    /// Result and reason.
    #[serde(borrow)]
    pub outcome: Option<Box<Outcome<'a>>>,
    /// What was acted on; an array, or null. A single object is accepted as one target.
    #[serde(borrow)]
    pub target: Option<OneOrMany<Target<'a>>>,
    /// The HTTP request or job this event belongs to.
    #[serde(borrow)]
    pub transaction: Option<Box<Transaction<'a>>>,
    /// The client IP and its proxies.
    #[serde(borrow)]
    pub request: Option<Box<Request<'a>>>,
}

/// `actor`: `{id, type, alternateId, displayName, detailEntry}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Actor<'a> {
    /// `00u…` for users; the IP for ThreatInsight's `IP address` actor.
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    /// `User`, `IP address`, `PublicClientApp`, `SystemPrincipal`, …
    #[serde(borrow, rename = "type")]
    pub kind: Option<Str<'a>>,
    /// The login (email) for users.
    #[serde(borrow)]
    pub alternate_id: Option<Str<'a>>,
    /// Full name.
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
}

/// A `target[]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Target<'a> {
    /// Object id.
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    /// `User`, `AppInstance`, `PolicyEntity`, …; search by type, not position.
    #[serde(borrow, rename = "type")]
    pub kind: Option<Str<'a>>,
    /// Login for users, name for apps.
    #[serde(borrow)]
    pub alternate_id: Option<Str<'a>>,
    /// Display name.
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
}

/// `client`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Client<'a> {
    /// User agent, parsed by Okta.
    #[serde(borrow)]
    pub user_agent: Option<Box<UserAgent<'a>>>,
    /// Network zone name; usually the string `"null"`.
    #[serde(borrow)]
    pub zone: Option<Str<'a>>,
    /// `Computer`, `Mobile`, `Unknown`, …
    #[serde(borrow)]
    pub device: Option<Str<'a>>,
    /// OAuth client id or agent id.
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    /// The client IP.
    #[serde(borrow)]
    pub ip_address: Option<Str<'a>>,
    /// Where the IP is.
    #[serde(borrow)]
    pub geographical_context: Option<Box<GeoContext<'a>>>,
    /// Only in the event-hook sample: the IP chain inside `client`.
    #[serde(borrow)]
    pub ip_chain: Option<OneOrMany<IpChainEntry<'a>>>,
}

/// `client.userAgent`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct UserAgent<'a> {
    /// The raw header.
    #[serde(borrow)]
    pub raw_user_agent: Option<Str<'a>>,
    /// Free text, e.g. `Mac OS X`.
    #[serde(borrow)]
    pub os: Option<Str<'a>>,
    /// Upper-case family, e.g. `CHROME`.
    #[serde(borrow)]
    pub browser: Option<Str<'a>>,
}

/// `geographicalContext`; any field may be null, the whole object `{}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct GeoContext<'a> {
    /// City.
    #[serde(borrow)]
    pub city: Option<Str<'a>>,
    /// State or region.
    #[serde(borrow)]
    pub state: Option<Str<'a>>,
    /// Full country name.
    #[serde(borrow)]
    pub country: Option<Str<'a>>,
    /// A string in real events, a number in the OpenAPI example.
    #[serde(borrow)]
    pub postal_code: Option<Str<'a>>,
    /// Latitude and longitude.
    pub geolocation: Option<GeoLocation>,
}

/// `{lat, lon}`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct GeoLocation {
    /// Latitude in degrees.
    pub lat: Option<Num>,
    /// Longitude in degrees.
    pub lon: Option<Num>,
}

/// Top-level `device` (OIE device assurance); snake_case keys on the wire.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct OieDevice<'a> {
    /// `guo…` device id.
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    /// Model name.
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    /// `OSX`, `WINDOWS`, `IOS`, …
    #[serde(borrow)]
    pub os_platform: Option<Str<'a>>,
    /// OS version.
    #[serde(borrow)]
    pub os_version: Option<Str<'a>>,
    /// Managed by MDM.
    pub managed: Option<Bool>,
    /// Registered with Okta Verify.
    pub registered: Option<Bool>,
}

/// `authenticationContext`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthenticationContext<'a> {
    /// `OKTA_AUTHENTICATION_PROVIDER`, `FACTOR_PROVIDER`, …
    #[serde(borrow)]
    pub authentication_provider: Option<Str<'a>>,
    /// `OKTA_CREDENTIAL_PROVIDER`, `DUO`, …
    #[serde(borrow)]
    pub credential_provider: Option<Str<'a>>,
    /// `PASSWORD`, `OTP`, `ASSERTION`, …
    #[serde(borrow)]
    pub credential_type: Option<Str<'a>>,
    /// `interface`.
    #[serde(borrow)]
    pub interface: Option<Str<'a>>,
    /// Always 0.
    pub authentication_step: Option<Num>,
    /// The session id (`102…` Classic, `idx…` OIE); null on failed sign-ins.
    #[serde(borrow)]
    pub external_session_id: Option<Str<'a>>,
    /// Groups sessions that share a root session.
    #[serde(borrow)]
    pub root_session_id: Option<Str<'a>>,
}

/// `securityContext`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct SecurityContext<'a> {
    /// Autonomous system number.
    pub as_number: Option<Num>,
    /// AS organisation, lower-case.
    #[serde(borrow)]
    pub as_org: Option<Str<'a>>,
    /// ISP.
    #[serde(borrow)]
    pub isp: Option<Str<'a>>,
    /// Domain.
    #[serde(borrow)]
    pub domain: Option<Str<'a>>,
    /// Okta judged the IP a proxy.
    pub is_proxy: Option<Bool>,
    /// Okta's structured risk (newer orgs).
    #[serde(borrow)]
    pub risk: Option<Box<StructuredRisk<'a>>>,
    /// Behaviour Detection results; objects, or plain names in some SDK output.
    #[serde(borrow)]
    pub user_behaviors: Option<OneOrMany<UserBehavior<'a>>>,
    /// Newer IP details.
    #[serde(borrow)]
    pub ip_details: Option<Box<IpDetails<'a>>>,
    /// Bot protection level.
    #[serde(borrow)]
    pub bot_protection: Option<Box<BotProtection<'a>>>,
}

/// `securityContext.risk`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct StructuredRisk<'a> {
    /// `LOW`, `MEDIUM`, `HIGH`.
    #[serde(borrow)]
    pub level: Option<Str<'a>>,
    /// Level before this event.
    #[serde(borrow)]
    pub previous_level: Option<Str<'a>>,
    /// Reasons; an array or one string.
    #[serde(borrow)]
    pub reasons: Option<OneOrMany<Str<'a>>>,
    /// ITP detection name.
    #[serde(borrow)]
    pub detection_name: Option<Str<'a>>,
    /// `OKTA`, …
    #[serde(borrow)]
    pub issuer: Option<Str<'a>>,
}

/// A `securityContext.userBehaviors[]` entry. Some SDKs emit only the name as a string.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserBehavior<'a> {
    /// `bhv…` id.
    pub id: Option<Str<'a>>,
    /// Behaviour name, e.g. `New Device`.
    pub name: Option<Str<'a>>,
    /// `POSITIVE`, `NEGATIVE`, `UNKNOWN`, `BAD_REQUEST`.
    pub result: Option<Str<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for UserBehavior<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(default)]
        #[derive(Default)]
        struct Obj<'a> {
            #[serde(borrow)]
            id: Option<Str<'a>>,
            #[serde(borrow)]
            name: Option<Str<'a>>,
            #[serde(borrow)]
            result: Option<Str<'a>>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            Name(#[serde(borrow)] Str<'a>),
            Obj(#[serde(borrow)] Obj<'a>),
        }
        Ok(match Either::deserialize(deserializer)? {
            Either::Name(name) => UserBehavior {
                id: None,
                name: Some(name),
                result: None,
            },
            Either::Obj(o) => UserBehavior {
                id: o.id,
                name: o.name,
                result: o.result,
            },
        })
    }
}

/// `securityContext.ipDetails`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct IpDetails<'a> {
    /// Autonomous system number.
    pub as_number: Option<Num>,
    /// AS organisation.
    #[serde(borrow)]
    pub as_org: Option<Str<'a>>,
    /// ISP.
    #[serde(borrow)]
    pub isp: Option<Str<'a>>,
    /// Domain.
    #[serde(borrow)]
    pub domain: Option<Str<'a>>,
}

/// `securityContext.botProtection`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct BotProtection<'a> {
    /// `NONE`, `LOW`, `MEDIUM`, `HIGH`.
    #[serde(borrow)]
    pub level: Option<Str<'a>>,
}

/// `debugContext`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct DebugContext<'a> {
    /// The debug map.
    #[serde(borrow)]
    pub debug_data: Option<Box<DebugData<'a>>>,
}

/// `debugContext.debugData`: not a stable contract; values are strings. The keys the
/// product reads are named; the rest stays in the event's raw text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct DebugData<'a> {
    /// Request id.
    #[serde(borrow)]
    pub request_id: Option<Str<'a>>,
    /// Request path.
    #[serde(borrow)]
    pub request_uri: Option<Str<'a>>,
    /// Path with query.
    #[serde(borrow)]
    pub url: Option<Str<'a>>,
    /// `"true"` when ThreatInsight judged the request suspicious.
    #[serde(borrow)]
    pub threat_suspected: Option<Str<'a>>,
    /// JSON in a string: `{"Password Spray":"HIGH"}`.
    #[serde(borrow)]
    pub threat_detections: Option<Str<'a>>,
    /// Java-map string: `{New Device=POSITIVE, …}`.
    #[serde(borrow)]
    pub behaviors: Option<Str<'a>>,
    /// Java-map string: `{reasons=…, level=HIGH}`.
    #[serde(borrow)]
    pub risk: Option<Str<'a>>,
    /// JSON in a string: `{"risk":{…},"behaviors":{…}}`.
    #[serde(borrow)]
    pub log_only_security_data: Option<Str<'a>>,
    /// SHA-256 of the device token cookie.
    #[serde(borrow)]
    pub dt_hash: Option<Str<'a>>,
    /// Client-generated browser fingerprint.
    #[serde(borrow)]
    pub device_fingerprint: Option<Str<'a>>,
    /// `OKTA_VERIFY_PUSH`, `SIGNED_NONCE`, …
    #[serde(borrow)]
    pub factor: Option<Str<'a>>,
    /// `LOGIN`, `CREDENTIAL_ENROLLMENT`, …
    #[serde(borrow)]
    pub factor_intent: Option<Str<'a>>,
    /// `OV_RESPONSE_APPROVE`, `OV_RESPONSE_DENY`, `OV_RESPONSE_ERROR`.
    #[serde(borrow)]
    pub push_only_response_type: Option<Str<'a>>,
    /// `OV_WITH_CHALLENGE_RESPONSE_VALID`, …
    #[serde(borrow)]
    pub push_with_number_challenge_response_type: Option<Str<'a>>,
    /// JSON in a string: `[{"operator":"NORD_VPN","type":"VPN","anonymous":true}]`.
    #[serde(borrow)]
    pub tunnels: Option<Str<'a>>,
    /// `tor`, `service`, …
    #[serde(borrow)]
    pub proxy_type: Option<Str<'a>>,
    /// `private`, …
    #[serde(borrow)]
    pub anonymizer_status: Option<Str<'a>>,
    /// JSON in a string: `{"riskLevel":"HIGH","priorRiskLevel":"LOW",…}`.
    #[serde(borrow)]
    pub risk_change: Option<Str<'a>>,
    /// Trace id.
    #[serde(borrow)]
    pub trace_id: Option<Str<'a>>,
    /// OAuth grant type.
    #[serde(borrow)]
    pub grant_type: Option<Str<'a>>,
    /// OAuth scopes granted (comma- or space-separated).
    #[serde(borrow)]
    pub granted_scopes: Option<Str<'a>>,
    /// OAuth scopes requested.
    #[serde(borrow)]
    pub requested_scopes: Option<Str<'a>>,
    /// Privilege granted (admin role events).
    #[serde(borrow)]
    pub privilege_granted: Option<Str<'a>>,
}

/// `outcome`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Outcome<'a> {
    /// `SUCCESS`, `FAILURE`, `ALLOW`, `DENY`, `CHALLENGE`, …
    #[serde(borrow)]
    pub result: Option<Str<'a>>,
    /// Reason, e.g. `INVALID_CREDENTIALS`.
    #[serde(borrow)]
    pub reason: Option<Str<'a>>,
}

/// `transaction`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Transaction<'a> {
    /// `WEB` or `JOB`.
    #[serde(borrow, rename = "type")]
    pub kind: Option<Str<'a>>,
    /// Request id shared by all events of one request.
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    /// `{requestApiTokenId}` for API-token calls.
    #[serde(borrow)]
    pub detail: Option<Box<TransactionDetail<'a>>>,
}

/// `transaction.detail`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct TransactionDetail<'a> {
    /// The API token that made the call.
    #[serde(borrow)]
    pub request_api_token_id: Option<Str<'a>>,
}

/// `request`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Request<'a> {
    /// Client IP first, then proxies.
    #[serde(borrow)]
    pub ip_chain: Option<OneOrMany<IpChainEntry<'a>>>,
}

/// A `request.ipChain[]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct IpChainEntry<'a> {
    /// The IP.
    #[serde(borrow)]
    pub ip: Option<Str<'a>>,
    /// Where it is.
    #[serde(borrow)]
    pub geographical_context: Option<Box<GeoContext<'a>>>,
    /// `V4` or `V6`.
    #[serde(borrow)]
    pub version: Option<Str<'a>>,
    /// Source.
    #[serde(borrow)]
    pub source: Option<Str<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde builds a struct on the stack and moves it through every level above it (the
    /// field's local, the `Option`, the parent, the return). With its nested objects
    /// inline a `LogEvent` was 1,896 bytes, as large as the event's text, and those copies
    /// were 8 % of decoding; boxed, it is 264. A field added inline should be a decision.
    #[test]
    fn a_log_event_stays_small_enough_to_move() {
        let size = std::mem::size_of::<LogEvent<'static>>();
        assert!(size <= 512, "LogEvent is {size} bytes; box the new nested object");
    }

    #[test]
    fn nested_objects_still_borrow_from_the_input() {
        let text = r#"{"uuid":"u1","client":{"ipAddress":"10.0.0.1","geographicalContext":{"city":"Oslo"}},"debugContext":{"debugData":{"dtHash":"abc"}}}"#;
        let ev: LogEvent<'_> = serde_json::from_str(text).unwrap();
        let client = ev.client.as_deref().unwrap();
        assert!(matches!(
            client.ip_address.as_ref().unwrap().0,
            std::borrow::Cow::Borrowed("10.0.0.1")
        ));
        let city = client.geographical_context.as_deref().and_then(|g| g.city.as_ref());
        assert_eq!(city.map(Str::as_str), Some("Oslo"));
        let dd = ev
            .debug_context
            .as_deref()
            .and_then(|d| d.debug_data.as_deref())
            .unwrap();
        assert_eq!(dd.dt_hash.as_ref().map(Str::as_str), Some("abc"));
    }
}
