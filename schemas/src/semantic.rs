//! `SemanticEvent`: one Okta event, normalized and aligned with OCSF.
//!
//! Its JSON form keeps the reference design's field names (`event_id`, `event_time`,
//! `event_type`, `category`, `action`, `severity`, `display_message`, `actor`,
//! `primary_target`, `subject_user`, `client`, `request`, `outcome`) and adds the OCSF class
//! and activity ids and the signals detections need. Its Arrow columns are
//! [`crate::rows::events_schema`]; [`crate::rows::EventRow`] is the reference conversion.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::okta::debug_strings::{Behavior, RiskChange, RiskInfo, ThreatDetection, Tunnel};

/// A normalized event.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SemanticEvent<'a> {
    /// Okta `uuid`.
    pub event_id: Cow<'a, str>,
    /// Okta `published`.
    pub event_time: DateTime<Utc>,
    /// Okta `eventType`.
    pub event_type: Cow<'a, str>,
    /// Coarse grouping of event types.
    pub category: Category,
    // `action`, `severity` and the OCSF names are catalog constants (or Okta's four levels):
    // borrowed, so normalizing allocates nothing for them.
    /// What happened, one lower-case word or two (`login`, `mfa_verify`, `suspend`).
    pub action: Cow<'static, str>,
    /// Okta severity, lower-case (`debug`, `info`, `warn`, `error`).
    pub severity: Cow<'static, str>,
    /// Okta `displayMessage`.
    pub display_message: Option<Cow<'a, str>>,
    /// OCSF classification.
    pub ocsf: Ocsf,
    /// Who acted.
    pub actor: Option<Principal<'a>>,
    /// The first target (a user target is preferred).
    pub primary_target: Option<Principal<'a>>,
    /// Whose event this is: the actor for sign-ins and MFA, the target user for admin
    /// actions on a user, none for IP-centric events such as ThreatInsight.
    pub subject_user: Option<Principal<'a>>,
    /// All targets, in Okta's order.
    pub targets: Vec<Principal<'a>>,
    /// Client IP, user agent and geo.
    pub client: ClientInfo<'a>,
    /// Network reputation of the client IP.
    pub network: NetworkInfo<'a>,
    /// Browser and device identity.
    pub device: DeviceInfo<'a>,
    /// Session correlation.
    pub session: SessionInfo<'a>,
    /// Authentication method and MFA details.
    pub auth: AuthInfo<'a>,
    /// The request or job.
    pub request: RequestInfo<'a>,
    /// Result and reason.
    pub outcome: OutcomeInfo<'a>,
    /// Okta's own security signals.
    pub okta_signals: OktaSignals,
    /// The admin role a privilege grant gave (`debugData.privilegeGranted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privilege_granted: Option<Cow<'a, str>>,
    /// OAuth grant details of token and consent events.
    #[serde(default, skip_serializing_if = "OAuthInfo::is_empty")]
    pub oauth: OAuthInfo<'a>,
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

/// A string that no longer borrows.
fn own(text: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(text.into_owned())
}

fn own_opt(text: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    text.map(own)
}

impl SemanticEvent<'_> {
    /// A copy that owns its strings: normalization borrows them from the decoded event,
    /// which lives only as long as its input batch; whoever keeps an event longer owns it.
    pub fn into_owned(self) -> SemanticEvent<'static> {
        SemanticEvent {
            event_id: own(self.event_id),
            event_time: self.event_time,
            event_type: own(self.event_type),
            category: self.category,
            action: self.action,
            severity: self.severity,
            display_message: own_opt(self.display_message),
            ocsf: self.ocsf,
            actor: self.actor.map(Principal::into_owned),
            primary_target: self.primary_target.map(Principal::into_owned),
            subject_user: self.subject_user.map(Principal::into_owned),
            targets: self.targets.into_iter().map(Principal::into_owned).collect(),
            client: self.client.into_owned(),
            network: self.network.into_owned(),
            device: self.device.into_owned(),
            session: SessionInfo {
                external_session_id: own_opt(self.session.external_session_id),
                root_session_id: own_opt(self.session.root_session_id),
            },
            auth: self.auth.into_owned(),
            request: RequestInfo {
                request_id: own_opt(self.request.request_id),
                transaction_type: own_opt(self.request.transaction_type),
                request_uri: own_opt(self.request.request_uri),
                api_token_id: own_opt(self.request.api_token_id),
            },
            outcome: OutcomeInfo {
                result: own_opt(self.outcome.result),
                reason: own_opt(self.outcome.reason),
            },
            okta_signals: self.okta_signals,
            privilege_granted: own_opt(self.privilege_granted),
            oauth: OAuthInfo {
                grant_type: own_opt(self.oauth.grant_type),
                granted_scopes: own_opt(self.oauth.granted_scopes),
                requested_scopes: own_opt(self.oauth.requested_scopes),
            },
            warnings: self.warnings,
            raw: self.raw,
        }
    }

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
    pub class_name: Cow<'static, str>,
    /// 3 Identity & Access Management, 6 Application Activity, 2 Findings, 0 Uncategorized.
    pub category_uid: i32,
    /// The activity within the class (99 = Other).
    pub activity_id: i32,
    /// The activity name.
    pub activity_name: Cow<'static, str>,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: i64,
    /// 0 Unknown, 1 Success, 2 Failure, 99 Other.
    pub status_id: i32,
}

/// An actor or target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Principal<'a> {
    /// Okta id (`00u…` for users).
    pub id: Option<Cow<'a, str>>,
    /// Okta type (`User`, `AppInstance`, `IP address`, …).
    #[serde(rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    /// Login for users (`alternateId`).
    pub login: Option<Cow<'a, str>>,
    /// Display name.
    pub display_name: Option<Cow<'a, str>>,
}

impl Principal<'_> {
    /// A copy that owns its strings.
    pub fn into_owned(self) -> Principal<'static> {
        Principal {
            id: own_opt(self.id),
            kind: own_opt(self.kind),
            login: own_opt(self.login),
            display_name: own_opt(self.display_name),
        }
    }
}

/// Client details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientInfo<'a> {
    /// Client IP.
    pub ip: Option<Cow<'a, str>>,
    /// Raw user agent.
    pub user_agent: Option<Cow<'a, str>>,
    /// OS as Okta parsed it.
    pub os: Option<Cow<'a, str>>,
    /// Browser family as Okta parsed it (`CHROME`, …).
    pub browser: Option<Cow<'a, str>>,
    /// `Computer`, `Mobile`, …
    pub device_type: Option<Cow<'a, str>>,
    /// Network zone; Okta's `"null"` string becomes absent.
    pub zone: Option<Cow<'a, str>>,
    /// OAuth client or agent id.
    pub client_id: Option<Cow<'a, str>>,
    /// Where the IP is; absent when Okta could not locate it.
    pub geo: Option<Geo<'a>>,
}

impl ClientInfo<'_> {
    fn into_owned(self) -> ClientInfo<'static> {
        ClientInfo {
            ip: own_opt(self.ip),
            user_agent: own_opt(self.user_agent),
            os: own_opt(self.os),
            browser: own_opt(self.browser),
            device_type: own_opt(self.device_type),
            zone: own_opt(self.zone),
            client_id: own_opt(self.client_id),
            geo: self.geo.map(|g| Geo {
                city: own_opt(g.city),
                state: own_opt(g.state),
                country: own_opt(g.country),
                postal_code: own_opt(g.postal_code),
                lat: g.lat,
                lon: g.lon,
            }),
        }
    }
}

/// Location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Geo<'a> {
    /// City.
    pub city: Option<Cow<'a, str>>,
    /// State or region.
    pub state: Option<Cow<'a, str>>,
    /// Country name.
    pub country: Option<Cow<'a, str>>,
    /// Postal code.
    pub postal_code: Option<Cow<'a, str>>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
}

/// Network reputation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkInfo<'a> {
    /// `request.ipChain` IPs, client first.
    pub ip_chain: Vec<Cow<'a, str>>,
    /// Autonomous system number.
    pub asn: Option<i64>,
    /// AS organisation.
    pub as_org: Option<Cow<'a, str>>,
    /// ISP.
    pub isp: Option<Cow<'a, str>>,
    /// Domain.
    pub domain: Option<Cow<'a, str>>,
    /// Okta's proxy flag.
    pub is_proxy: Option<bool>,
    /// VPN / proxy tunnels Okta recognised.
    pub tunnels: Vec<Tunnel>,
    /// `tor`, `service`, …
    pub proxy_type: Option<Cow<'a, str>>,
    /// True when a tunnel is anonymous, the proxy is Tor, or an anonymizer was seen.
    pub anonymizer: bool,
}

impl NetworkInfo<'_> {
    fn into_owned(self) -> NetworkInfo<'static> {
        NetworkInfo {
            ip_chain: self.ip_chain.into_iter().map(own).collect(),
            asn: self.asn,
            as_org: own_opt(self.as_org),
            isp: own_opt(self.isp),
            domain: own_opt(self.domain),
            is_proxy: self.is_proxy,
            tunnels: self.tunnels,
            proxy_type: own_opt(self.proxy_type),
            anonymizer: self.anonymizer,
        }
    }
}

/// Browser and device identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceInfo<'a> {
    /// SHA-256 of the device token cookie (`debugData.dtHash`).
    pub dt_hash: Option<Cow<'a, str>>,
    /// Browser fingerprint.
    pub fingerprint: Option<Cow<'a, str>>,
    /// OIE device id (`guo…`).
    pub id: Option<Cow<'a, str>>,
    /// OIE device name.
    pub name: Option<Cow<'a, str>>,
    /// OIE device platform.
    pub os_platform: Option<Cow<'a, str>>,
    /// MDM-managed.
    pub managed: Option<bool>,
    /// Registered with Okta Verify.
    pub registered: Option<bool>,
}

impl DeviceInfo<'_> {
    fn into_owned(self) -> DeviceInfo<'static> {
        DeviceInfo {
            dt_hash: own_opt(self.dt_hash),
            fingerprint: own_opt(self.fingerprint),
            id: own_opt(self.id),
            name: own_opt(self.name),
            os_platform: own_opt(self.os_platform),
            managed: self.managed,
            registered: self.registered,
        }
    }
}

/// Session correlation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionInfo<'a> {
    /// `authenticationContext.externalSessionId`.
    pub external_session_id: Option<Cow<'a, str>>,
    /// `authenticationContext.rootSessionId`.
    pub root_session_id: Option<Cow<'a, str>>,
}

/// Authentication details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthInfo<'a> {
    /// Authentication provider.
    pub provider: Option<Cow<'a, str>>,
    /// Credential provider.
    pub credential_provider: Option<Cow<'a, str>>,
    /// Credential type.
    pub credential_type: Option<Cow<'a, str>>,
    /// Interface.
    pub interface: Option<Cow<'a, str>>,
    /// MFA factor (`OKTA_VERIFY_PUSH`, `SIGNED_NONCE`, …).
    pub factor: Option<Cow<'a, str>>,
    /// Why the factor was used.
    pub factor_intent: Option<Cow<'a, str>>,
    /// Push answer (`OV_RESPONSE_DENY`, …).
    pub push_response: Option<Cow<'a, str>>,
    /// Number-challenge answer.
    pub number_challenge_response: Option<Cow<'a, str>>,
}

impl AuthInfo<'_> {
    fn into_owned(self) -> AuthInfo<'static> {
        AuthInfo {
            provider: own_opt(self.provider),
            credential_provider: own_opt(self.credential_provider),
            credential_type: own_opt(self.credential_type),
            interface: own_opt(self.interface),
            factor: own_opt(self.factor),
            factor_intent: own_opt(self.factor_intent),
            push_response: own_opt(self.push_response),
            number_challenge_response: own_opt(self.number_challenge_response),
        }
    }
}

/// Request details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestInfo<'a> {
    /// `transaction.id` (or `debugData.requestId`).
    pub request_id: Option<Cow<'a, str>>,
    /// `WEB` or `JOB`.
    pub transaction_type: Option<Cow<'a, str>>,
    /// `debugData.requestUri`.
    pub request_uri: Option<Cow<'a, str>>,
    /// The API token behind the call.
    pub api_token_id: Option<Cow<'a, str>>,
}

/// Result and reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OutcomeInfo<'a> {
    /// `SUCCESS`, `FAILURE`, `ALLOW`, `DENY`, …
    pub result: Option<Cow<'a, str>>,
    /// Reason text.
    pub reason: Option<Cow<'a, str>>,
}

/// OAuth token and consent details (`debugData.grantType`, `grantedScopes`,
/// `requestedScopes`; scope lists as Okta writes them, comma- or space-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OAuthInfo<'a> {
    /// `client_credentials`, `authorization_code`, `refresh_token`, …
    pub grant_type: Option<Cow<'a, str>>,
    /// Scopes the token carries.
    pub granted_scopes: Option<Cow<'a, str>>,
    /// Scopes the client asked for.
    pub requested_scopes: Option<Cow<'a, str>>,
}

impl OAuthInfo<'_> {
    /// True when the event carries none of them.
    pub fn is_empty(&self) -> bool {
        self.grant_type.is_none() && self.granted_scopes.is_none() && self.requested_scopes.is_none()
    }

    /// The granted scopes, one by one.
    pub fn granted(&self) -> impl Iterator<Item = &str> {
        split_scopes(self.granted_scopes.as_deref())
    }
}

/// A scope list split on commas and white space.
pub fn split_scopes(list: Option<&str>) -> impl Iterator<Item = &str> {
    list.unwrap_or("")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
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
