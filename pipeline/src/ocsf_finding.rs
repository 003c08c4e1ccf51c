//! Alerts as OCSF **Detection Finding** events (class 2004, category Findings, OCSF 1.5.0),
//! for SIEMs and data lakes that take OCSF (Security Lake, Sentinel, Splunk's OCSF add-on):
//! `idgw alerts export --format ocsf` and `[webhook] format = "ocsf"`.
//! tests/interop/ocsf_validate.py checks the output against an independent implementation
//! of the schema (the `py-ocsf-models` package).

use idgw_schemas::{Alert, Severity};
use serde_json::{Value, json};

/// The OCSF version the events follow.
pub const OCSF_VERSION: &str = "1.5.0";

/// MITRE ATT&CK names of the techniques our detections cite (OCSF requires a technique's
/// name beside its id).
fn technique_name(id: &str) -> &str {
    match id {
        "T1078" => "Valid Accounts",
        "T1078.004" => "Cloud Accounts",
        "T1087" => "Account Discovery",
        "T1087.004" => "Cloud Account",
        "T1090" => "Proxy",
        "T1090.003" => "Multi-hop Proxy",
        "T1098" => "Account Manipulation",
        "T1098.001" => "Additional Cloud Credentials",
        "T1098.003" => "Additional Cloud Roles",
        "T1098.005" => "Device Registration",
        "T1110" => "Brute Force",
        "T1110.001" => "Password Guessing",
        "T1110.003" => "Password Spraying",
        "T1110.004" => "Credential Stuffing",
        "T1199" => "Trusted Relationship",
        "T1484" => "Domain or Tenant Policy Modification",
        "T1484.002" => "Trust Modification",
        "T1499" => "Endpoint Denial of Service",
        "T1528" => "Steal Application Access Token",
        "T1531" => "Account Access Removal",
        "T1539" => "Steal Web Session Cookie",
        "T1550" => "Use Alternate Authentication Material",
        "T1550.001" => "Application Access Token",
        "T1550.004" => "Web Session Cookie",
        "T1555" => "Credentials from Password Stores",
        "T1556" => "Modify Authentication Process",
        "T1556.006" => "Multi-Factor Authentication",
        "T1557" => "Adversary-in-the-Middle",
        "T1562" => "Impair Defenses",
        "T1562.001" => "Disable or Modify Tools",
        "T1566" => "Phishing",
        "T1621" => "Multi-Factor Authentication Request Generation",
        // An id added later without a name here: the id stands for its name.
        other => other,
    }
}

fn attack(id: &str) -> Value {
    match id.split_once('.') {
        Some((parent, _)) => json!({
            "technique": {"uid": parent, "name": technique_name(parent)},
            "sub_technique": {"uid": id, "name": technique_name(id)},
        }),
        None => json!({"technique": {"uid": id, "name": technique_name(id)}}),
    }
}

fn severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// "password_spray" → "Password spray".
fn title(detection: &str) -> String {
    let words = detection.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// One alert as a Detection Finding (activity Create, status New).
pub fn detection_finding(alert: &Alert) -> Value {
    let (severity_id, severity_name) = severity(alert.severity);
    let detection = alert.detection.as_str();
    let ms = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis();
    let mut observables = Vec::new();
    let mut evidence = serde_json::Map::new();
    if let Some(ip) = &alert.src_ip {
        evidence.insert("src_endpoint".into(), json!({"ip": ip}));
        observables
            .push(json!({"name": "evidences[0].src_endpoint.ip", "type": "IP Address", "type_id": 2, "value": ip}));
    }
    if alert.user_id.is_some() || alert.user_login.is_some() {
        let mut user = serde_json::Map::new();
        if let Some(login) = &alert.user_login {
            user.insert("name".into(), json!(login));
            observables.push(
                json!({"name": "evidences[0].actor.user.name", "type": "User Name", "type_id": 4, "value": login}),
            );
        }
        if let Some(id) = &alert.user_id {
            user.insert("uid".into(), json!(id));
        }
        evidence.insert("actor".into(), json!({"user": user}));
    }
    // Users an alert names in its evidence (a spray's targets) are its resources.
    let resources: Vec<Value> = alert
        .evidence
        .get("sprayed_user_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .chain(alert.user_id.as_deref())
        .map(|uid| json!({"type": "User", "uid": uid}))
        .collect();
    let mut finding = json!({
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity_name,
        "status_id": 1,
        "status": "New",
        "time": ms(alert.detected_at),
        "start_time": ms(alert.first_seen),
        "end_time": ms(alert.last_seen),
        // Integers: OCSF's risk and confidence scores are.
        "risk_score": alert.risk_score.round() as i64,
        "confidence_score": (alert.confidence * 100.0).round() as i64,
        "message": alert.summary,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "mcp-identity-gateway",
                "vendor_name": "mcp-identity-gateway",
                "version": env!("CARGO_PKG_VERSION"),
            },
        },
        "finding_info": {
            "uid": alert.alert_id,
            "title": title(detection),
            "desc": alert.summary,
            "types": [detection],
            "analytic": {"name": detection, "uid": detection, "type": "Rule", "type_id": 1},
            "attacks": alert.mitre.iter().map(|m| attack(m)).collect::<Vec<_>>(),
            "first_seen_time": ms(alert.first_seen),
            "last_seen_time": ms(alert.last_seen),
            "data_sources": ["Okta System Log"],
            "related_events": alert.event_uuids.iter().map(|u| json!({"uid": u})).collect::<Vec<_>>(),
        },
        "unmapped": {"evidence": alert.evidence},
    });
    if !evidence.is_empty() {
        finding["evidences"] = json!([evidence]);
    }
    if !observables.is_empty() {
        finding["observables"] = json!(observables);
    }
    if !resources.is_empty() {
        finding["resources"] = json!(resources);
    }
    finding
}

#[cfg(test)]
mod tests {
    use super::*;
    use idgw_schemas::Detection;

    #[test]
    fn a_spray_alert_maps_to_a_detection_finding() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let mut evidence = serde_json::Map::new();
        evidence.insert("sprayed_user_ids".into(), json!(["00u1", "00u2"]));
        let alert = Alert {
            alert_id: "alt-1".into(),
            detection: Detection::PasswordSpray,
            severity: Severity::High,
            risk_score: 80.4,
            confidence: 0.85,
            user_id: None,
            user_login: None,
            src_ip: Some("203.0.113.9".into()),
            first_seen: t,
            last_seen: t,
            detected_at: t,
            event_uuids: vec!["e1".into()],
            summary: "spray".into(),
            evidence,
            mitre: vec!["T1110.003".into(), "T1621".into()],
        };
        let f = detection_finding(&alert);
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["type_uid"], 200401);
        assert_eq!(f["severity_id"], 4);
        assert_eq!(f["risk_score"], 80);
        assert_eq!(f["confidence_score"], 85);
        assert_eq!(f["finding_info"]["uid"], "alt-1");
        assert_eq!(f["finding_info"]["title"], "Password spray");
        assert_eq!(f["finding_info"]["attacks"][0]["technique"]["uid"], "T1110");
        assert_eq!(
            f["finding_info"]["attacks"][0]["sub_technique"]["name"],
            "Password Spraying"
        );
        assert_eq!(
            f["finding_info"]["attacks"][1]["technique"]["name"],
            "Multi-Factor Authentication Request Generation"
        );
        assert_eq!(f["resources"].as_array().unwrap().len(), 2);
        assert_eq!(f["observables"][0]["value"], "203.0.113.9");
        assert_eq!(f["time"], t.timestamp_millis());
    }
}
