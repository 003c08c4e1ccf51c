//! `SemanticEvent`: one Okta event, normalized and aligned with OCSF.
//!
//! Its JSON form keeps the reference design's field names (`event_id`, `event_time`,
//! `event_type`, `category`, `action`, `severity`, `display_message`, `actor`,
//! `primary_target`, `subject_user`, `client`, `request`, `outcome`) and adds the OCSF class
//! and activity ids and the signals detections need. Its Arrow columns are
//! [`crate::rows::events_schema`]; [`crate::rows::EventRow`] is the reference conversion.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::okta::debug_strings::{Behavior, RiskChange, RiskInfo, ThreatDetection, Tunnel};

/// A normalized event.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SemanticEvent {
    /// Okta `uuid`.
    pub event_id: String,
    /// Okta `published`.
    pub event_time: DateTime<Utc>,
    /// Okta `eventType`.
    pub event_type: String,
    /// Coarse grouping of event types.
    pub category: Category,
    /// What happened, one lower-case word or two (`login`, `mfa_verify`, `suspend`).
    pub action: String,
    /// Okta severity, lower-case (`debug`, `info`, `warn`, `error`).
    pub severity: String,
    /// Okta `displayMessage`.
    pub display_message: Option<String>,
    /// OCSF classification.
    pub ocsf: Ocsf,
    /// Who acted.
    pub actor: Option<Principal>,
    /// The first target (a user target is preferred).
    pub primary_target: Option<Principal>,
    /// Whose event this is: the actor for sign-ins and MFA, the target user for admin
    /// actions on a user, none for IP-centric events such as ThreatInsight.
    pub subject_user: Option<Principal>,
    /// All targets, in Okta's order.
    pub targets: Vec<Principal>,
    /// Client IP, user agent and geo.
    pub client: ClientInfo,
    /// Network reputation of the client IP.
    pub network: NetworkInfo,
    /// Browser and device identity.
    pub device: DeviceInfo,
    /// Session correlation.
    pub session: SessionInfo,
    /// Authentication method and MFA details.
    pub auth: AuthInfo,
    /// The request or job.
    pub request: RequestInfo,
    /// Result and reason.
    pub outcome: OutcomeInfo,
    /// Okta's own security signals.
    pub okta_signals: OktaSignals,
    /// The admin role a privilege grant gave (`debugData.privilegeGranted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privilege_granted: Option<String>,
    /// Parts of the event that could not be read (e.g. a malformed `debugData.risk`); the
    /// event is still stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The verbatim Okta event, for drill-down: JSON text the decoder has already parsed, so
    /// it is kept as a string (no second validation on the hot path) and written as an
    /// embedded JSON object.
    #[schemars(with = "Option<serde_json::Value>")]
    #[serde(
        default,
        serialize_with = "raw_json::serialize",
        deserialize_with = "raw_json::deserialize"
    )]
    pub raw: Option<String>,
}

/// (De)serializes verbatim JSON text as an embedded JSON value.
mod raw_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub fn serialize<S: Serializer>(raw: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match raw {
            Some(text) => RawValue::from_string(text.clone())
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Box<RawValue>>::deserialize(d)?.map(|r| r.get().to_owned()))
    }
}

impl SemanticEvent {
    /// The key per-entity state is kept under: the subject user's id, or `ip:<addr>` for
    /// events that belong to no user (ThreatInsight, rate limits).
    pub fn entity_key(&self) -> Option<String> {
        if let Some(id) = self.subject_user.as_ref().and_then(|u| u.id.as_deref()) {
            return Some(id.to_owned());
        }
        self.client.ip.as_ref().map(|ip| format!("ip:{ip}"))
    }
}

/// Coarse event category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Sign-in, sign-out, sessions.
    Authentication,
    /// MFA challenges and factor changes.
    Mfa,
    /// Single sign-on into apps.
    Sso,
    /// Policy evaluation.
    Policy,
    /// User lifecycle and account changes.
    Account,
    /// Admin privilege changes.
    Privilege,
    /// API tokens and OAuth clients.
    Credential,
    /// ThreatInsight and attack detection.
    Threat,
    /// ITP risk, end-user reports.
    Risk,
    /// OAuth authorization server activity.
    Oauth,
    /// Identity provider configuration.
    Idp,
    /// Org-level system events (rate limits, …).
    System,
    /// Anything else.
    Other,
}

impl Category {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Authentication => "authentication",
            Category::Mfa => "mfa",
            Category::Sso => "sso",
            Category::Policy => "policy",
            Category::Account => "account",
            Category::Privilege => "privilege",
            Category::Credential => "credential",
            Category::Threat => "threat",
            Category::Risk => "risk",
            Category::Oauth => "oauth",
            Category::Idp => "idp",
            Category::System => "system",
            Category::Other => "other",
        }
    }
}

/// OCSF classification of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Ocsf {
    /// e.g. 3002 Authentication, 3001 Account Change, 3005 User Access Management,
    /// 6003 API Activity, 2004 Detection Finding, 0 Base Event.
    pub class_uid: i32,
    /// The class name.
    pub class_name: String,
    /// 3 Identity & Access Management, 6 Application Activity, 2 Findings, 0 Uncategorized.
    pub category_uid: i32,
    /// The activity within the class (99 = Other).
    pub activity_id: i32,
    /// The activity name.
    pub activity_name: String,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: i64,
    /// 0 Unknown, 1 Success, 2 Failure, 99 Other.
    pub status_id: i32,
}

/// An actor or target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Principal {
    /// Okta id (`00u…` for users).
    pub id: Option<String>,
    /// Okta type (`User`, `AppInstance`, `IP address`, …).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Login for users (`alternateId`).
    pub login: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

/// Client details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientInfo {
    /// Client IP.
    pub ip: Option<String>,
    /// Raw user agent.
    pub user_agent: Option<String>,
    /// OS as Okta parsed it.
    pub os: Option<String>,
    /// Browser family as Okta parsed it (`CHROME`, …).
    pub browser: Option<String>,
    /// `Computer`, `Mobile`, …
    pub device_type: Option<String>,
    /// Network zone; Okta's `"null"` string becomes absent.
    pub zone: Option<String>,
    /// OAuth client or agent id.
    pub client_id: Option<String>,
    /// Where the IP is; absent when Okta could not locate it.
    pub geo: Option<Geo>,
}

/// Location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Geo {
    /// City.
    pub city: Option<String>,
    /// State or region.
    pub state: Option<String>,
    /// Country name.
    pub country: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
}

/// Network reputation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkInfo {
    /// `request.ipChain` IPs, client first.
    pub ip_chain: Vec<String>,
    /// Autonomous system number.
    pub asn: Option<i64>,
    /// AS organisation.
    pub as_org: Option<String>,
    /// ISP.
    pub isp: Option<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Okta's proxy flag.
    pub is_proxy: Option<bool>,
    /// VPN / proxy tunnels Okta recognised.
    pub tunnels: Vec<Tunnel>,
    /// `tor`, `service`, …
    pub proxy_type: Option<String>,
    /// True when a tunnel is anonymous, the proxy is Tor, or an anonymizer was seen.
    pub anonymizer: bool,
}

/// Browser and device identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceInfo {
    /// SHA-256 of the device token cookie (`debugData.dtHash`).
    pub dt_hash: Option<String>,
    /// Browser fingerprint.
    pub fingerprint: Option<String>,
    /// OIE device id (`guo…`).
    pub id: Option<String>,
    /// OIE device name.
    pub name: Option<String>,
    /// OIE device platform.
    pub os_platform: Option<String>,
    /// MDM-managed.
    pub managed: Option<bool>,
    /// Registered with Okta Verify.
    pub registered: Option<bool>,
}

/// Session correlation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionInfo {
    /// `authenticationContext.externalSessionId`.
    pub external_session_id: Option<String>,
    /// `authenticationContext.rootSessionId`.
    pub root_session_id: Option<String>,
}

/// Authentication details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthInfo {
    /// Authentication provider.
    pub provider: Option<String>,
    /// Credential provider.
    pub credential_provider: Option<String>,
    /// Credential type.
    pub credential_type: Option<String>,
    /// Interface.
    pub interface: Option<String>,
    /// MFA factor (`OKTA_VERIFY_PUSH`, `SIGNED_NONCE`, …).
    pub factor: Option<String>,
    /// Why the factor was used.
    pub factor_intent: Option<String>,
    /// Push answer (`OV_RESPONSE_DENY`, …).
    pub push_response: Option<String>,
    /// Number-challenge answer.
    pub number_challenge_response: Option<String>,
}

/// Request details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestInfo {
    /// `transaction.id` (or `debugData.requestId`).
    pub request_id: Option<String>,
    /// `WEB` or `JOB`.
    pub transaction_type: Option<String>,
    /// `debugData.requestUri`.
    pub request_uri: Option<String>,
    /// The API token behind the call.
    pub api_token_id: Option<String>,
}

/// Result and reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OutcomeInfo {
    /// `SUCCESS`, `FAILURE`, `ALLOW`, `DENY`, …
    pub result: Option<String>,
    /// Reason text.
    pub reason: Option<String>,
}

/// Okta's own security signals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OktaSignals {
    /// `debugData.threatSuspected`.
    pub threat_suspected: Option<bool>,
    /// `debugData.threatDetections`.
    pub threat_detections: Vec<ThreatDetection>,
    /// `securityContext.risk`, else `debugData.risk`, else `logOnlySecurityData.risk`.
    pub risk: Option<RiskInfo>,
    /// Behaviour results from `securityContext.userBehaviors`, `debugData.behaviors` or
    /// `logOnlySecurityData.behaviors` (the first present).
    pub behaviors: Vec<Behavior>,
    /// `debugData.riskChange`.
    pub risk_change: Option<RiskChange>,
    /// Bot protection level.
    pub bot_protection: Option<String>,
}

impl OktaSignals {
    /// Names of the behaviours Okta flagged as new for the user.
    pub fn positive_behaviors(&self) -> impl Iterator<Item = &str> {
        self.behaviors
            .iter()
            .filter(|b| b.is_positive())
            .map(|b| b.name.as_str())
    }

    /// The highest ThreatInsight level (`HIGH` > `MEDIUM` > `LOW`).
    pub fn threat_max_level(&self) -> Option<&str> {
        fn rank(l: &str) -> u8 {
            match l {
                "HIGH" => 3,
                "MEDIUM" => 2,
                "LOW" => 1,
                _ => 0,
            }
        }
        self.threat_detections
            .iter()
            .map(|t| t.level.as_str())
            .max_by_key(|l| rank(l))
    }
}
