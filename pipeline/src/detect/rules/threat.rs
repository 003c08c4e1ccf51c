//! Okta's own threat verdicts: ThreatInsight hits on a source.

use idgw_schemas::{Detection, SemanticEvent, Severity};

use super::{RuleConfig, lower, on_user};
use crate::detect::alerting::Finding;

pub(super) fn threat_insight(ev: &SemanticEvent<'_>, _: &RuleConfig) -> Option<Finding> {
    if ev.event_type != "security.threat.detected" {
        return None;
    }
    let level = ev.okta_signals.threat_max_level();
    let severity = match level {
        Some("HIGH") => Severity::High,
        Some("MEDIUM") => Severity::Medium,
        _ => Severity::Low,
    };
    let blocked = ev.outcome.result.as_deref() == Some("DENY");
    // Okta already blocked the request: the source is hostile, but nothing got through.
    let severity = if blocked { lower(severity) } else { severity };
    let mut f = on_user(ev, Detection::ThreatInsight, severity, 0.85);
    let names: Vec<&str> = ev
        .okta_signals
        .threat_detections
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    f.summary = format!(
        "Okta ThreatInsight flagged {} ({}){}.",
        ev.client.ip.as_deref().unwrap_or("a source"),
        if names.is_empty() {
            "no detail".to_owned()
        } else {
            names.join(", ")
        },
        if blocked {
            "; the request was denied"
        } else {
            "; the request was allowed"
        }
    );
    f.evidence.insert("detections".into(), serde_json::json!(names));
    f.evidence.insert("max_level".into(), level.into());
    f.evidence.insert("blocked".into(), blocked.into());
    f.mitre = &["T1110"];
    Some(f)
}
