//! What the webhook sends: which alerts (severity and detection filters), in which payload
//! (the Alert contract as JSON, a Slack Block Kit message, a PagerDuty Events v2 trigger, an
//! OCSF Detection Finding),
//! and the signature that lets the receiver check the body came from us.
//!
//! **Signature**: with `[webhook] signing_secret`, every request carries
//! `X-Idgw-Timestamp: <unix seconds>` and
//! `X-Idgw-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. The receiver
//! recomputes it over the raw body, compares in constant time, and refuses timestamps more
//! than five minutes old (replays). The timestamp is signed with the body, so an old
//! signed body cannot be sent again with a fresh one.

use hmac::{Hmac, Mac};
use idgw_schemas::{Alert, Severity};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The payload shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The Alert contract (schemas/json/alert.schema.json), as stored.
    #[default]
    Json,
    /// A Slack incoming-webhook message with Block Kit blocks.
    Slack,
    /// A PagerDuty Events API v2 `trigger` (URL `https://events.pagerduty.com/v2/enqueue`),
    /// deduplicated by alert id; needs `pagerduty_routing_key`.
    Pagerduty,
    /// An OCSF Detection Finding (class 2004), for OCSF-native collectors.
    Ocsf,
}

/// The header with the signing time.
pub const TIMESTAMP_HEADER: &str = "x-idgw-timestamp";
/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "x-idgw-signature";

/// `v1=<hex>`: HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(3 + tag.len() * 2);
    hex.push_str("v1=");
    for b in tag {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Checks a signature as a receiver would (constant-time compare, at most `max_age_s` old).
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], given: &str, now: i64, max_age_s: i64) -> bool {
    if now.abs_diff(timestamp) > max_age_s.unsigned_abs() {
        return false;
    }
    let Some(hex) = given.strip_prefix("v1=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// Whether an alert passes the severity and detection filters.
pub fn wanted(alert: &Alert, min_severity: Severity, detections: &[String]) -> bool {
    alert.severity >= min_severity
        && (detections.is_empty() || detections.iter().any(|d| d == alert.detection.as_str()))
}

/// The body for `alert` in `format`.
pub fn body(format: Format, alert: &Alert, routing_key: &str) -> Result<Vec<u8>, serde_json::Error> {
    match format {
        Format::Json => serde_json::to_vec(alert),
        Format::Slack => serde_json::to_vec(&slack(alert)),
        Format::Pagerduty => serde_json::to_vec(&pagerduty(alert, routing_key)),
        Format::Ocsf => serde_json::to_vec(&crate::ocsf_finding::detection_finding(alert)),
    }
}

fn who(alert: &Alert) -> String {
    match (&alert.user_login, &alert.user_id, &alert.src_ip) {
        (Some(login), _, _) => login.clone(),
        (None, Some(id), _) => id.clone(),
        (None, None, Some(ip)) => format!("source {ip}"),
        (None, None, None) => "the tenant".into(),
    }
}

/// Slack escapes `&`, `<` and `>` in mrkdwn text; nothing else is markup there.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn slack(alert: &Alert) -> serde_json::Value {
    let title = format!(
        "{} {} alert: {} ({})",
        emoji(alert.severity),
        alert.severity.as_str(),
        alert.detection.as_str(),
        who(alert)
    );
    let mut fields = vec![
        serde_json::json!({"type": "mrkdwn", "text": format!("*Severity*\n{}", alert.severity.as_str())}),
        serde_json::json!({"type": "mrkdwn", "text": format!("*Risk*\n{:.0}", alert.risk_score)}),
        serde_json::json!({"type": "mrkdwn", "text": format!("*Detection*\n{}", alert.detection.as_str())}),
        serde_json::json!({"type": "mrkdwn", "text": format!("*Last seen*\n{}", alert.last_seen.to_rfc3339())}),
    ];
    if let Some(ip) = &alert.src_ip {
        fields.push(serde_json::json!({"type": "mrkdwn", "text": format!("*Source*\n{}", slack_escape(ip))}));
    }
    if !alert.mitre.is_empty() {
        fields.push(serde_json::json!({"type": "mrkdwn", "text": format!("*MITRE*\n{}", alert.mitre.join(", "))}));
    }
    serde_json::json!({
        // The notification text (and what screen readers and mobile previews show).
        "text": slack_escape(&title),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title.chars().take(150).collect::<String>()}},
            {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(&alert.summary)}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("alert `{}` · {} event(s)", alert.alert_id, alert.event_uuids.len())}
            ]}
        ]
    })
}

fn emoji(s: Severity) -> &'static str {
    match s {
        Severity::Critical => ":rotating_light:",
        Severity::High => ":red_circle:",
        Severity::Medium => ":large_orange_circle:",
        Severity::Low | Severity::Info => ":large_blue_circle:",
    }
}

fn pagerduty(alert: &Alert, routing_key: &str) -> serde_json::Value {
    // PagerDuty's four severities.
    let severity = match alert.severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    };
    // PagerDuty cuts summaries at 1,024 characters.
    let summary: String = format!("{}: {}", alert.detection.as_str(), alert.summary)
        .chars()
        .take(1024)
        .collect();
    serde_json::json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        // Re-sending one alert (a retry, a replay) updates one incident.
        "dedup_key": alert.alert_id,
        "payload": {
            "summary": summary,
            "source": alert.src_ip.clone().unwrap_or_else(|| "okta".into()),
            "severity": severity,
            "timestamp": alert.last_seen.to_rfc3339(),
            "component": who(alert),
            "group": "identity",
            "class": alert.detection.as_str(),
            "custom_details": {
                "risk_score": alert.risk_score,
                "confidence": alert.confidence,
                "mitre": alert.mitre,
                "event_uuids": alert.event_uuids,
                "evidence": alert.evidence,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use idgw_schemas::Detection;

    fn alert(severity: Severity) -> Alert {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .to_utc();
        Alert {
            alert_id: "a1".into(),
            detection: Detection::PasswordSpray,
            severity,
            risk_score: 80.0,
            confidence: 0.9,
            user_id: None,
            user_login: None,
            src_ip: Some("203.0.113.9".into()),
            first_seen: t,
            last_seen: t,
            detected_at: t,
            event_uuids: vec!["e1".into()],
            summary: "12 users failed from 203.0.113.9 <script>".into(),
            evidence: serde_json::Map::new(),
            mitre: vec!["T1110.003".into()],
        }
    }

    #[test]
    fn a_signature_verifies_and_a_changed_body_or_old_timestamp_does_not() {
        let sig = signature(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64, "{sig}");
        assert!(verify(b"s3cret", 1_700_000_000, b"{\"a\":1}", &sig, 1_700_000_100, 300));
        assert!(!verify(
            b"s3cret",
            1_700_000_000,
            b"{\"a\":2}",
            &sig,
            1_700_000_100,
            300
        ));
        assert!(!verify(b"other", 1_700_000_000, b"{\"a\":1}", &sig, 1_700_000_100, 300));
        assert!(!verify(
            b"s3cret",
            1_700_000_000,
            b"{\"a\":1}",
            &sig,
            1_700_001_000,
            300
        ));
        assert!(!verify(
            b"s3cret",
            1_700_000_001,
            b"{\"a\":1}",
            &sig,
            1_700_000_100,
            300
        ));
    }

    /// The same figure as `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret`.
    #[test]
    fn the_signature_is_plain_hmac_sha256_over_timestamp_dot_body() {
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", "s3cret", "-r"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"1700000000.{\"a\":1}")?;
                c.wait_with_output()
            })
            .expect("openssl runs");
        let hex = String::from_utf8(out.stdout).unwrap();
        let hex = hex.split_whitespace().next().unwrap();
        assert_eq!(signature(b"s3cret", 1_700_000_000, b"{\"a\":1}"), format!("v1={hex}"));
    }

    #[test]
    fn filters_and_payloads() {
        let a = alert(Severity::High);
        assert!(wanted(&a, Severity::Medium, &[]));
        assert!(!wanted(&a, Severity::Critical, &[]));
        assert!(wanted(&a, Severity::Low, &["password_spray".into()]));
        assert!(!wanted(&a, Severity::Low, &["mfa_fatigue".into()]));
        let slack: serde_json::Value = serde_json::from_slice(&body(Format::Slack, &a, "").unwrap()).unwrap();
        assert_eq!(slack["blocks"][0]["type"], "header");
        assert!(
            slack["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("&lt;script&gt;")
        );
        let pd: serde_json::Value = serde_json::from_slice(&body(Format::Pagerduty, &a, "R0UT1NG").unwrap()).unwrap();
        assert_eq!(pd["routing_key"], "R0UT1NG");
        assert_eq!(pd["event_action"], "trigger");
        assert_eq!(pd["dedup_key"], "a1");
        assert_eq!(pd["payload"]["severity"], "error");
        let json: Alert = serde_json::from_slice(&body(Format::Json, &a, "").unwrap()).unwrap();
        assert_eq!(json.alert_id, "a1");
    }
}
