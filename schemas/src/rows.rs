//! The flat Arrow form of the contracts: one row struct and one Arrow schema per table.
//!
//! Analysts query these columns with SQL, so nested JSON shapes are flattened into
//! `actor_id`, `geo_country`, … and multi-valued fields become `List<Utf8>` columns.
//! Each row struct serializes field for field into its schema (a test in `pipeline` proves
//! the two agree), so a column is added in both places or the build of a batch fails.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::Serialize;

use crate::alert::Alert;
use crate::identity::IdentityState;
use crate::semantic::{Principal, SemanticEvent};

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn list_utf8() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

/// One row of the `events` table, borrowing from a [`SemanticEvent`]. Ingest writes the
/// columns with typed builders (`idgw_pipeline::store::event_columns`); this serde form is
/// the reference its tests compare against, column by column.
#[derive(Debug, Serialize)]
pub struct EventRow<'a> {
    pub event_id: &'a str,
    /// Milliseconds since the epoch, UTC.
    pub event_time: i64,
    pub event_type: &'a str,
    pub category: &'static str,
    pub action: &'a str,
    pub severity: &'a str,
    pub display_message: Option<&'a str>,
    pub class_uid: i32,
    pub category_uid: i32,
    pub activity_id: i32,
    pub type_uid: i64,
    pub status_id: i32,
    pub entity_key: Option<String>,
    pub actor_id: Option<&'a str>,
    pub actor_type: Option<&'a str>,
    pub actor_login: Option<&'a str>,
    pub actor_display_name: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub target_type: Option<&'a str>,
    pub target_login: Option<&'a str>,
    pub target_display_name: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub user_login: Option<&'a str>,
    pub user_display_name: Option<&'a str>,
    pub src_ip: Option<&'a str>,
    pub ip_chain: Vec<&'a str>,
    pub user_agent: Option<&'a str>,
    pub ua_os: Option<&'a str>,
    pub ua_browser: Option<&'a str>,
    pub client_device: Option<&'a str>,
    pub client_zone: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub geo_city: Option<&'a str>,
    pub geo_state: Option<&'a str>,
    pub geo_country: Option<&'a str>,
    pub geo_postal_code: Option<&'a str>,
    pub geo_lat: Option<f64>,
    pub geo_lon: Option<f64>,
    pub asn: Option<i64>,
    pub as_org: Option<&'a str>,
    pub isp: Option<&'a str>,
    pub domain: Option<&'a str>,
    pub is_proxy: Option<bool>,
    pub anonymizer: bool,
    pub tunnel_operators: Vec<&'a str>,
    pub dt_hash: Option<&'a str>,
    pub device_fingerprint: Option<&'a str>,
    pub device_id: Option<&'a str>,
    pub device_name: Option<&'a str>,
    pub device_os_platform: Option<&'a str>,
    pub device_managed: Option<bool>,
    pub device_registered: Option<bool>,
    pub session_id: Option<&'a str>,
    pub root_session_id: Option<&'a str>,
    pub auth_provider: Option<&'a str>,
    pub credential_provider: Option<&'a str>,
    pub credential_type: Option<&'a str>,
    pub auth_interface: Option<&'a str>,
    pub mfa_factor: Option<&'a str>,
    pub mfa_factor_intent: Option<&'a str>,
    pub push_response: Option<&'a str>,
    pub number_challenge_response: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub transaction_type: Option<&'a str>,
    pub request_uri: Option<&'a str>,
    pub api_token_id: Option<&'a str>,
    pub outcome_result: Option<&'a str>,
    pub outcome_reason: Option<&'a str>,
    pub threat_suspected: Option<bool>,
    pub threat_detections: Vec<String>,
    pub threat_max_level: Option<&'a str>,
    pub okta_risk_level: Option<&'a str>,
    pub okta_risk_previous_level: Option<&'a str>,
    pub okta_risk_reasons: Vec<&'a str>,
    pub okta_risk_detection: Option<&'a str>,
    pub behaviors_positive: Vec<&'a str>,
    pub warnings: Vec<&'a str>,
    pub raw: Option<&'a str>,
}

/// A principal's four columns: id, type, login, display name (all absent without one).
pub fn principal<'a>(p: Option<&'a Principal<'_>>) -> [Option<&'a str>; 4] {
    match p {
        Some(p) => [
            p.id.as_deref(),
            p.kind.as_deref(),
            p.login.as_deref(),
            p.display_name.as_deref(),
        ],
        None => [None; 4],
    }
}

impl<'a> From<&'a SemanticEvent<'_>> for EventRow<'a> {
    fn from(e: &'a SemanticEvent<'_>) -> Self {
        let [actor_id, actor_type, actor_login, actor_display_name] = principal(e.actor.as_ref());
        let [target_id, target_type, target_login, target_display_name] = principal(e.primary_target.as_ref());
        let [user_id, _, user_login, user_display_name] = principal(e.subject_user.as_ref());
        let geo = e.client.geo.as_ref();
        let risk = e.okta_signals.risk.as_ref();
        EventRow {
            event_id: &e.event_id,
            event_time: e.event_time.timestamp_millis(),
            event_type: &e.event_type,
            category: e.category.as_str(),
            action: &e.action,
            severity: &e.severity,
            display_message: e.display_message.as_deref(),
            class_uid: e.ocsf.class_uid,
            category_uid: e.ocsf.category_uid,
            activity_id: e.ocsf.activity_id,
            type_uid: e.ocsf.type_uid,
            status_id: e.ocsf.status_id,
            entity_key: e.entity_key(),
            actor_id,
            actor_type,
            actor_login,
            actor_display_name,
            target_id,
            target_type,
            target_login,
            target_display_name,
            user_id,
            user_login,
            user_display_name,
            src_ip: e.client.ip.as_deref(),
            ip_chain: e.network.ip_chain.iter().map(AsRef::as_ref).collect(),
            user_agent: e.client.user_agent.as_deref(),
            ua_os: e.client.os.as_deref(),
            ua_browser: e.client.browser.as_deref(),
            client_device: e.client.device_type.as_deref(),
            client_zone: e.client.zone.as_deref(),
            client_id: e.client.client_id.as_deref(),
            geo_city: geo.and_then(|g| g.city.as_deref()),
            geo_state: geo.and_then(|g| g.state.as_deref()),
            geo_country: geo.and_then(|g| g.country.as_deref()),
            geo_postal_code: geo.and_then(|g| g.postal_code.as_deref()),
            geo_lat: geo.and_then(|g| g.lat),
            geo_lon: geo.and_then(|g| g.lon),
            asn: e.network.asn,
            as_org: e.network.as_org.as_deref(),
            isp: e.network.isp.as_deref(),
            domain: e.network.domain.as_deref(),
            is_proxy: e.network.is_proxy,
            anonymizer: e.network.anonymizer,
            tunnel_operators: e.network.tunnels.iter().filter_map(|t| t.operator.as_deref()).collect(),
            dt_hash: e.device.dt_hash.as_deref(),
            device_fingerprint: e.device.fingerprint.as_deref(),
            device_id: e.device.id.as_deref(),
            device_name: e.device.name.as_deref(),
            device_os_platform: e.device.os_platform.as_deref(),
            device_managed: e.device.managed,
            device_registered: e.device.registered,
            session_id: e.session.external_session_id.as_deref(),
            root_session_id: e.session.root_session_id.as_deref(),
            auth_provider: e.auth.provider.as_deref(),
            credential_provider: e.auth.credential_provider.as_deref(),
            credential_type: e.auth.credential_type.as_deref(),
            auth_interface: e.auth.interface.as_deref(),
            mfa_factor: e.auth.factor.as_deref(),
            mfa_factor_intent: e.auth.factor_intent.as_deref(),
            push_response: e.auth.push_response.as_deref(),
            number_challenge_response: e.auth.number_challenge_response.as_deref(),
            request_id: e.request.request_id.as_deref(),
            transaction_type: e.request.transaction_type.as_deref(),
            request_uri: e.request.request_uri.as_deref(),
            api_token_id: e.request.api_token_id.as_deref(),
            outcome_result: e.outcome.result.as_deref(),
            outcome_reason: e.outcome.reason.as_deref(),
            threat_suspected: e.okta_signals.threat_suspected,
            threat_detections: e
                .okta_signals
                .threat_detections
                .iter()
                .map(|t| format!("{}={}", t.name, t.level))
                .collect(),
            threat_max_level: e.okta_signals.threat_max_level(),
            okta_risk_level: risk.and_then(|r| r.level.as_deref()),
            okta_risk_previous_level: risk.and_then(|r| r.previous_level.as_deref()),
            okta_risk_reasons: risk
                .map(|r| r.reasons.iter().map(String::as_str).collect())
                .unwrap_or_default(),
            okta_risk_detection: risk.and_then(|r| r.detection_name.as_deref()),
            behaviors_positive: e.okta_signals.positive_behaviors().collect(),
            warnings: e.warnings.iter().map(String::as_str).collect(),
            raw: e.raw.as_deref(),
        }
    }
}

/// The Arrow schema of the `events` table (the partition column `date` comes from the
/// directory names `date=YYYY-MM-DD`).
pub fn events_schema() -> Schema {
    let mut fields = vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_time", ts(), false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        utf8("display_message"),
        Field::new("class_uid", DataType::Int32, false),
        Field::new("category_uid", DataType::Int32, false),
        Field::new("activity_id", DataType::Int32, false),
        Field::new("type_uid", DataType::Int64, false),
        Field::new("status_id", DataType::Int32, false),
    ];
    let strings = |names: &[&str]| names.iter().map(|n| utf8(n)).collect::<Vec<_>>();
    fields.extend(strings(&[
        "entity_key",
        "actor_id",
        "actor_type",
        "actor_login",
        "actor_display_name",
        "target_id",
        "target_type",
        "target_login",
        "target_display_name",
        "user_id",
        "user_login",
        "user_display_name",
        "src_ip",
    ]));
    fields.push(Field::new("ip_chain", list_utf8(), false));
    fields.extend(strings(&[
        "user_agent",
        "ua_os",
        "ua_browser",
        "client_device",
        "client_zone",
        "client_id",
        "geo_city",
        "geo_state",
        "geo_country",
        "geo_postal_code",
    ]));
    fields.push(Field::new("geo_lat", DataType::Float64, true));
    fields.push(Field::new("geo_lon", DataType::Float64, true));
    fields.push(Field::new("asn", DataType::Int64, true));
    fields.extend(strings(&["as_org", "isp", "domain"]));
    fields.push(Field::new("is_proxy", DataType::Boolean, true));
    fields.push(Field::new("anonymizer", DataType::Boolean, false));
    fields.push(Field::new("tunnel_operators", list_utf8(), false));
    fields.extend(strings(&[
        "dt_hash",
        "device_fingerprint",
        "device_id",
        "device_name",
        "device_os_platform",
    ]));
    fields.push(Field::new("device_managed", DataType::Boolean, true));
    fields.push(Field::new("device_registered", DataType::Boolean, true));
    fields.extend(strings(&[
        "session_id",
        "root_session_id",
        "auth_provider",
        "credential_provider",
        "credential_type",
        "auth_interface",
        "mfa_factor",
        "mfa_factor_intent",
        "push_response",
        "number_challenge_response",
        "request_id",
        "transaction_type",
        "request_uri",
        "api_token_id",
        "outcome_result",
        "outcome_reason",
    ]));
    fields.push(Field::new("threat_suspected", DataType::Boolean, true));
    fields.push(Field::new("threat_detections", list_utf8(), false));
    fields.extend(strings(&[
        "threat_max_level",
        "okta_risk_level",
        "okta_risk_previous_level",
    ]));
    fields.push(Field::new("okta_risk_reasons", list_utf8(), false));
    fields.push(utf8("okta_risk_detection"));
    fields.push(Field::new("behaviors_positive", list_utf8(), false));
    fields.push(Field::new("warnings", list_utf8(), false));
    fields.push(utf8("raw"));
    Schema::new(fields)
}

/// One row of the `alerts` table.
#[derive(Debug, Serialize)]
pub struct AlertRow<'a> {
    pub alert_id: &'a str,
    pub detection: &'static str,
    pub severity: &'static str,
    pub risk_score: f64,
    pub confidence: f64,
    pub user_id: Option<&'a str>,
    pub user_login: Option<&'a str>,
    pub src_ip: Option<&'a str>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub detected_at: i64,
    pub event_uuids: Vec<&'a str>,
    pub summary: &'a str,
    /// The evidence object as JSON text.
    pub evidence: String,
    pub mitre: Vec<&'a str>,
}

impl<'a> From<&'a Alert> for AlertRow<'a> {
    fn from(a: &'a Alert) -> Self {
        AlertRow {
            alert_id: &a.alert_id,
            detection: a.detection.as_str(),
            severity: a.severity.as_str(),
            risk_score: a.risk_score,
            confidence: a.confidence,
            user_id: a.user_id.as_deref(),
            user_login: a.user_login.as_deref(),
            src_ip: a.src_ip.as_deref(),
            first_seen: a.first_seen.timestamp_millis(),
            last_seen: a.last_seen.timestamp_millis(),
            detected_at: a.detected_at.timestamp_millis(),
            event_uuids: a.event_uuids.iter().map(String::as_str).collect(),
            summary: &a.summary,
            evidence: serde_json::Value::Object(a.evidence.clone()).to_string(),
            mitre: a.mitre.iter().map(String::as_str).collect(),
        }
    }
}

/// The Arrow schema of the `alerts` table.
pub fn alerts_schema() -> Schema {
    Schema::new(vec![
        Field::new("alert_id", DataType::Utf8, false),
        Field::new("detection", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("risk_score", DataType::Float64, false),
        Field::new("confidence", DataType::Float64, false),
        utf8("user_id"),
        utf8("user_login"),
        utf8("src_ip"),
        Field::new("first_seen", ts(), false),
        Field::new("last_seen", ts(), false),
        Field::new("detected_at", ts(), false),
        Field::new("event_uuids", list_utf8(), false),
        Field::new("summary", DataType::Utf8, false),
        Field::new("evidence", DataType::Utf8, false),
        Field::new("mitre", list_utf8(), false),
    ])
}

/// One row of the `identity_state` table.
#[derive(Debug, Serialize)]
pub struct IdentityStateRow<'a> {
    pub user_id: &'a str,
    pub user_login: Option<&'a str>,
    pub risk_score: f64,
    pub risk_level: &'static str,
    /// The reasons as a JSON array.
    pub top_reasons: String,
    pub event_count: u64,
    pub alert_count: u64,
    pub last_seen: Option<i64>,
    pub last_ip: Option<&'a str>,
    pub last_country: Option<&'a str>,
    pub last_city: Option<&'a str>,
    pub known_countries: Vec<&'a str>,
    pub outlier_score: Option<f64>,
    pub drift_score: Option<f64>,
    pub okta_status: Option<&'a str>,
    pub updated_at: i64,
}

impl<'a> From<&'a IdentityState> for IdentityStateRow<'a> {
    fn from(s: &'a IdentityState) -> Self {
        IdentityStateRow {
            user_id: &s.user_id,
            user_login: s.user_login.as_deref(),
            risk_score: s.risk_score,
            risk_level: s.risk_level.as_str(),
            top_reasons: serde_json::to_string(&s.top_reasons).unwrap_or_else(|_| "[]".into()),
            event_count: s.event_count,
            alert_count: s.alert_count,
            last_seen: s.last_seen.map(|t| t.timestamp_millis()),
            last_ip: s.last_ip.as_deref(),
            last_country: s.last_country.as_deref(),
            last_city: s.last_city.as_deref(),
            known_countries: s.known_countries.iter().map(String::as_str).collect(),
            outlier_score: s.outlier_score,
            drift_score: s.drift_score,
            okta_status: s.okta_status.as_deref(),
            updated_at: s.updated_at.timestamp_millis(),
        }
    }
}

/// The Arrow schema of the `identity_state` table.
pub fn identity_state_schema() -> Schema {
    Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        utf8("user_login"),
        Field::new("risk_score", DataType::Float64, false),
        Field::new("risk_level", DataType::Utf8, false),
        Field::new("top_reasons", DataType::Utf8, false),
        Field::new("event_count", DataType::UInt64, false),
        Field::new("alert_count", DataType::UInt64, false),
        Field::new("last_seen", ts(), true),
        utf8("last_ip"),
        utf8("last_country"),
        utf8("last_city"),
        Field::new("known_countries", list_utf8(), false),
        Field::new("outlier_score", DataType::Float64, true),
        Field::new("drift_score", DataType::Float64, true),
        utf8("okta_status"),
        Field::new("updated_at", ts(), false),
    ])
}

/// One row of the audit table (the audit log is JSONL; this form serves SQL over it).
#[derive(Debug, Serialize)]
pub struct AuditRow<'a> {
    pub seq: u64,
    pub transaction_id: &'a str,
    pub timestamp: i64,
    pub phase: &'static str,
    pub action: &'a str,
    pub user: Option<&'a str>,
    pub reasoning: Option<&'a str>,
    pub status: &'a str,
    pub rollback_of: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub client: Option<&'a str>,
    pub scopes: Vec<&'a str>,
    /// JSON text.
    pub arguments: String,
    pub evidence: Vec<&'a str>,
    /// JSON text.
    pub approval: Option<String>,
    /// JSON text.
    pub pre_state: Option<String>,
    /// JSON text.
    pub post_state: Option<String>,
    pub okta_request_ids: Vec<&'a str>,
    pub error: Option<&'a str>,
    pub prev_hash: &'a str,
}

impl<'a> From<&'a crate::audit::AuditRecord> for AuditRow<'a> {
    fn from(r: &'a crate::audit::AuditRecord) -> Self {
        let json = |v: &serde_json::Value| v.to_string();
        AuditRow {
            seq: r.seq,
            transaction_id: &r.transaction_id,
            timestamp: r.timestamp.timestamp_millis(),
            phase: match r.phase {
                crate::audit::AuditPhase::Intent => "intent",
                crate::audit::AuditPhase::Outcome => "outcome",
            },
            action: &r.action,
            user: r.user.as_deref(),
            reasoning: r.reasoning.as_deref(),
            status: &r.status,
            rollback_of: r.rollback_of.as_deref(),
            principal: r.principal.as_deref(),
            client: r.client.as_deref(),
            scopes: r.scopes.iter().map(String::as_str).collect(),
            arguments: serde_json::Value::Object(r.arguments.clone()).to_string(),
            evidence: r.evidence.iter().map(String::as_str).collect(),
            approval: r.approval.as_ref().and_then(|a| serde_json::to_string(a).ok()),
            pre_state: r.pre_state.as_ref().map(json),
            post_state: r.post_state.as_ref().map(json),
            okta_request_ids: r.okta_request_ids.iter().map(String::as_str).collect(),
            error: r.error.as_deref(),
            prev_hash: &r.prev_hash,
        }
    }
}

/// The Arrow schema of the audit table.
pub fn audit_schema() -> Schema {
    Schema::new(vec![
        Field::new("seq", DataType::UInt64, false),
        Field::new("transaction_id", DataType::Utf8, false),
        Field::new("timestamp", ts(), false),
        Field::new("phase", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        utf8("user"),
        utf8("reasoning"),
        Field::new("status", DataType::Utf8, false),
        utf8("rollback_of"),
        utf8("principal"),
        utf8("client"),
        Field::new("scopes", list_utf8(), false),
        Field::new("arguments", DataType::Utf8, false),
        Field::new("evidence", list_utf8(), false),
        utf8("approval"),
        utf8("pre_state"),
        utf8("post_state"),
        Field::new("okta_request_ids", list_utf8(), false),
        utf8("error"),
        Field::new("prev_hash", DataType::Utf8, false),
    ])
}
