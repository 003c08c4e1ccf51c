//! Parsers for the strings Okta packs into `debugData` (reference.md §1.6).
//!
//! Two families: Java-map strings (`{New Device=POSITIVE, New IP=NEGATIVE}`,
//! `{reasons=Anomalous Location, Anomalous Device, level=HIGH}`) and JSON documents carried
//! inside a string (`threatDetections`, `logOnlySecurityData`, `tunnels`, `riskChange`).
//! Map strings cannot be split on `", "`: risk reasons and custom behaviour names contain
//! commas. They are split on what is known instead: the risk keys, and the behaviour results.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A failure to read one of the packed strings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DebugStringError {
    /// The text is not a `{k=v, …}` map.
    #[error("not a map string: {0}")]
    NotAMap(String),
    /// The text is not the JSON document expected.
    #[error("invalid JSON: {0}")]
    Json(String),
}

/// The result of one behaviour evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Behavior {
    /// Behaviour name as configured, e.g. `New Device`, or a rule id.
    pub name: String,
    /// `POSITIVE` (the behaviour is new for the user), `NEGATIVE`, `BAD_REQUEST`, `UNKNOWN`.
    pub result: String,
}

impl Behavior {
    /// True when Okta flagged the behaviour (it is new for this user).
    pub fn is_positive(&self) -> bool {
        self.result == "POSITIVE"
    }
}

const BEHAVIOR_RESULTS: [&str; 4] = ["POSITIVE", "NEGATIVE", "BAD_REQUEST", "UNKNOWN"];

/// Strips `{…}` and an optional class-name prefix such as `Risk{…}`.
fn map_body(s: &str) -> Result<&str, DebugStringError> {
    let s = s.trim();
    let open = s.find('{').ok_or_else(|| DebugStringError::NotAMap(s.to_owned()))?;
    let prefix = &s[..open];
    if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || !s.ends_with('}') {
        return Err(DebugStringError::NotAMap(s.to_owned()));
    }
    Ok(&s[open + 1..s.len() - 1])
}

/// Parses `debugData.behaviors`, e.g.
/// `{New Geo-Location=NEGATIVE, New Device=POSITIVE, Anomalous Location: Country=NEGATIVE}`.
pub fn parse_behaviors(s: &str) -> Result<Vec<Behavior>, DebugStringError> {
    let body = map_body(s)?;
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = body.as_bytes();
    let mut i = 0;
    // An entry ends at "=RESULT" followed by ", " or the end; names may hold '=' and ','.
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let rest = &body[i + 1..];
            if let Some(result) = BEHAVIOR_RESULTS.iter().find(|r| {
                rest.starts_with(**r) && {
                    let after = &rest[r.len()..];
                    after.is_empty() || after.starts_with(", ")
                }
            }) {
                let name = body[start..i].trim();
                out.push(Behavior {
                    name: name.to_owned(),
                    result: (*result).to_owned(),
                });
                i += 1 + result.len();
                if body[i..].starts_with(", ") {
                    i += 2;
                }
                start = i;
                continue;
            }
        }
        i += 1;
    }
    if !body[start..].trim().is_empty() {
        return Err(DebugStringError::NotAMap(s.to_owned()));
    }
    Ok(out)
}

/// Okta's risk assessment as carried by `debugData.risk` or `securityContext.risk`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RiskInfo {
    /// `LOW`, `MEDIUM`, `HIGH`.
    pub level: Option<String>,
    /// The level before (on `user.risk.detect`).
    pub previous_level: Option<String>,
    /// Reasons, e.g. `Anomalous Device`.
    pub reasons: Vec<String>,
    /// ITP detection name, e.g. `Session Influenced User Risk`.
    pub detection_name: Option<String>,
    /// Who assessed, e.g. `OKTA`.
    pub issuer: Option<String>,
}

const RISK_KEYS: [&str; 5] = ["level", "previousLevel", "reasons", "detectionName", "issuer"];

/// Parses `debugData.risk`, e.g. `{reasons=Anomalous Location, Anomalous Device, level=HIGH}`,
/// `Risk{level=LOW}` or the `user.risk.detect` form with `previousLevel` and `detectionName`.
pub fn parse_risk(s: &str) -> Result<RiskInfo, DebugStringError> {
    let body = map_body(s)?;
    // Positions where a known key starts: the beginning, or right after ", ".
    let mut marks: Vec<(usize, &str)> = Vec::new();
    for key in RISK_KEYS {
        let pat_len = key.len() + 1;
        let mut from = 0;
        while let Some(pos) = body[from..].find(key).map(|p| p + from) {
            let at_boundary = pos == 0 || body[..pos].ends_with(", ");
            if at_boundary && body[pos + key.len()..].starts_with('=') {
                marks.push((pos, key));
            }
            from = pos + pat_len.min(body.len() - pos);
            if from >= body.len() {
                break;
            }
        }
    }
    if marks.is_empty() {
        return if body.trim().is_empty() {
            Ok(RiskInfo::default())
        } else {
            Err(DebugStringError::NotAMap(s.to_owned()))
        };
    }
    marks.sort_unstable();
    if marks[0].0 != 0 {
        return Err(DebugStringError::NotAMap(s.to_owned()));
    }
    let mut risk = RiskInfo::default();
    for (idx, (pos, key)) in marks.iter().enumerate() {
        let value_start = pos + key.len() + 1;
        let value_end = marks.get(idx + 1).map_or(body.len(), |(next, _)| next - 2);
        let value = body[value_start..value_end.max(value_start)].trim();
        match *key {
            "level" => risk.level = Some(value.to_owned()),
            "previousLevel" => risk.previous_level = Some(value.to_owned()),
            "detectionName" => risk.detection_name = Some(value.to_owned()),
            "issuer" => risk.issuer = Some(value.to_owned()),
            _ => risk.reasons = split_reasons(value),
        }
    }
    Ok(risk)
}

/// Splits a reasons text (`"Anomalous Location, Anomalous Device"`) into its reasons.
pub fn split_reasons(value: &str) -> Vec<String> {
    value
        .split(", ")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One ThreatInsight detection from `debugData.threatDetections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThreatDetection {
    /// e.g. `Password Spray`, `Login Failures`.
    pub name: String,
    /// `LOW`, `MEDIUM`, `HIGH`.
    pub level: String,
}

/// Parses `debugData.threatDetections`: `{"Password Spray":"HIGH","Login Failures":"MEDIUM"}`.
pub fn parse_threat_detections(s: &str) -> Result<Vec<ThreatDetection>, DebugStringError> {
    let map: BTreeMap<String, String> = serde_json::from_str(s).map_err(|e| DebugStringError::Json(e.to_string()))?;
    Ok(map
        .into_iter()
        .map(|(name, level)| ThreatDetection { name, level })
        .collect())
}

/// `debugData.logOnlySecurityData`: risk and behaviours evaluated but not enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOnlySecurityData {
    /// The risk part.
    pub risk: RiskInfo,
    /// The behaviours part.
    pub behaviors: Vec<Behavior>,
}

/// Parses `debugData.logOnlySecurityData`.
pub fn parse_log_only_security_data(s: &str) -> Result<LogOnlySecurityData, DebugStringError> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Raw {
        risk: RawRisk,
        behaviors: BTreeMap<String, String>,
    }
    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct RawRisk {
        level: Option<String>,
        reasons: Option<String>,
        previous_level: Option<String>,
        detection_name: Option<String>,
        issuer: Option<String>,
    }
    let raw: Raw = serde_json::from_str(s).map_err(|e| DebugStringError::Json(e.to_string()))?;
    Ok(LogOnlySecurityData {
        risk: RiskInfo {
            level: raw.risk.level,
            previous_level: raw.risk.previous_level,
            reasons: raw.risk.reasons.as_deref().map(split_reasons).unwrap_or_default(),
            detection_name: raw.risk.detection_name,
            issuer: raw.risk.issuer,
        },
        behaviors: raw
            .behaviors
            .into_iter()
            .map(|(name, result)| Behavior { name, result })
            .collect(),
    })
}

/// One entry of `debugData.tunnels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Tunnel {
    /// e.g. `NORD_VPN`.
    pub operator: Option<String>,
    /// e.g. `VPN`, `TOR`, `PROXY`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Whether the tunnel anonymises.
    pub anonymous: Option<bool>,
}

/// Parses `debugData.tunnels`: `[{"operator":"NORD_VPN","type":"VPN","anonymous":true}]`.
pub fn parse_tunnels(s: &str) -> Result<Vec<Tunnel>, DebugStringError> {
    serde_json::from_str(s).map_err(|e| DebugStringError::Json(e.to_string()))
}

/// `debugData.riskChange`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct RiskChange {
    /// New level.
    pub risk_level: Option<String>,
    /// Old level.
    pub prior_risk_level: Option<String>,
    /// `increase` or `decrease`.
    pub direction: Option<String>,
    /// Why.
    pub reason_code: Option<String>,
}

/// Parses `debugData.riskChange`.
pub fn parse_risk_change(s: &str) -> Result<RiskChange, DebugStringError> {
    serde_json::from_str(s).map_err(|e| DebugStringError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviors_with_commas_and_colons_in_names() {
        let b = parse_behaviors(
            "{New Geo-Location=NEGATIVE, New Device=POSITIVE, New IP=NEGATIVE, New State=BAD_REQUEST, New Country=NEGATIVE, Velocity=NEGATIVE, New City=BAD_REQUEST}",
        )
        .unwrap();
        assert_eq!(b.len(), 7);
        assert_eq!(
            b[1],
            Behavior {
                name: "New Device".into(),
                result: "POSITIVE".into()
            }
        );
        let b = parse_behaviors(
            "{Anomalous Location: Country=NEGATIVE, 857d6e8a-1c2b_1529707130=NEGATIVE, Odd, name=x=POSITIVE}",
        )
        .unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].name, "Anomalous Location: Country");
        assert_eq!(b[2].name, "Odd, name=x");
        assert!(b[2].is_positive());
        assert_eq!(parse_behaviors("{}").unwrap(), vec![]);
        assert!(parse_behaviors("New Device=POSITIVE").is_err());
        assert!(parse_behaviors("{New Device=MAYBE}").is_err());
    }

    #[test]
    fn risk_reasons_keep_their_commas() {
        let r = parse_risk("{reasons=Anomalous Location, Anomalous Device, level=HIGH}").unwrap();
        assert_eq!(r.level.as_deref(), Some("HIGH"));
        assert_eq!(r.reasons, vec!["Anomalous Location", "Anomalous Device"]);
        let r = parse_risk("Risk{level=LOW}").unwrap();
        assert_eq!(r.level.as_deref(), Some("LOW"));
        assert!(r.reasons.is_empty());
        let r = parse_risk(
            "{previousLevel=LOW, level=MEDIUM, detectionName=Session Influenced User Risk, reasons=Associated sessionId is suspected to be hijacked, issuer=OKTA}",
        )
        .unwrap();
        assert_eq!(r.previous_level.as_deref(), Some("LOW"));
        assert_eq!(r.level.as_deref(), Some("MEDIUM"));
        assert_eq!(r.detection_name.as_deref(), Some("Session Influenced User Risk"));
        assert_eq!(r.reasons, vec!["Associated sessionId is suspected to be hijacked"]);
        assert_eq!(r.issuer.as_deref(), Some("OKTA"));
        assert!(parse_risk("level=HIGH").is_err());
        assert!(parse_risk("{junk, level=HIGH}").is_err());
    }

    #[test]
    fn json_in_strings() {
        let t = parse_threat_detections(r#"{"Password Spray":"HIGH","Login Failures":"MEDIUM"}"#).unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.contains(&ThreatDetection {
            name: "Password Spray".into(),
            level: "HIGH".into()
        }));
        let l = parse_log_only_security_data(
            r#"{"risk":{"reasons":"Anomalous Device, New ASN","level":"MEDIUM"},"behaviors":{"New Device":"POSITIVE"}}"#,
        )
        .unwrap();
        assert_eq!(l.risk.reasons, vec!["Anomalous Device", "New ASN"]);
        assert!(l.behaviors[0].is_positive());
        assert_eq!(
            parse_log_only_security_data(r#"{"risk":{},"behaviors":{}}"#).unwrap(),
            LogOnlySecurityData::default()
        );
        let tun = parse_tunnels(r#"[{"operator":"NORD_VPN","type":"VPN","anonymous":true}]"#).unwrap();
        assert_eq!(tun[0].kind.as_deref(), Some("VPN"));
        let rc = parse_risk_change(r#"{"riskLevel":"HIGH","priorRiskLevel":"LOW","direction":"increase"}"#).unwrap();
        assert_eq!(rc.direction.as_deref(), Some("increase"));
        assert!(parse_tunnels("not json").is_err());
    }
}
