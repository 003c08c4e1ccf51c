//! Alert volume for rules that fire per request: Okta ThreatInsight flags every request of
//! a hostile source, and an anonymiser user signs in many times an hour. One alert per
//! source (ThreatInsight) or per source and user (anonymiser sign-ins) per window; a hit of
//! higher severity within the window raises a new one, and the first alert after a window
//! carries how many hits the previous one stood for (`earlier_hits_aggregated`). Held hits
//! are counted ([`RuleAggregation::held`]), never silently lost: their events are stored.
//!
//! Windows run in event time from the alert that opened them, so a replay or a restore from
//! a checkpoint holds exactly the same hits.

use compact_str::{CompactString, format_compact};
use idgw_schemas::{Detection, Severity};
use serde::{Deserialize, Serialize};

use super::alerting::Finding;
use super::windowed::{FastMap, hourly};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Open {
    /// Event time of the alert that opened the window.
    start: i64,
    /// Latest event time of a hit in it.
    last: i64,
    severity: Severity,
    /// Hits held since the alert.
    held: u64,
}

/// The aggregation state (in the engine checkpoint).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleAggregation {
    #[serde(skip)]
    window_ms: i64,
    open: FastMap<CompactString, Open>,
    /// Hits held in total.
    held: u64,
    #[serde(skip, default = "never")]
    swept: i64,
}

fn never() -> i64 {
    i64::MIN
}

/// The key a finding aggregates under, if its detection aggregates.
fn key_of(f: &Finding) -> Option<CompactString> {
    match f.detection {
        // Blocked and allowed hits apart: an allowed request is never held under an alert
        // that says the source was blocked.
        Detection::ThreatInsight => Some(format_compact!(
            "threat_insight|{}|{}",
            f.src_ip.as_deref()?,
            f.evidence.get("blocked").and_then(|b| b.as_bool()).unwrap_or(false)
        )),
        Detection::AnonymizingProxy => Some(format_compact!(
            "anonymizing_proxy|{}|{}",
            f.src_ip.as_deref()?,
            f.user_id.as_deref().or(f.user_login.as_deref())?
        )),
        _ => None,
    }
}

impl RuleAggregation {
    /// Aggregation over windows of `window_s` seconds (0 turns it off).
    pub fn new(window_s: i64) -> Self {
        RuleAggregation {
            window_ms: window_s.max(0) * 1000,
            swept: i64::MIN,
            ..Default::default()
        }
    }

    /// The state of a checkpoint, under this engine's window.
    pub fn restored(self, window_s: i64) -> Self {
        RuleAggregation {
            window_ms: window_s.max(0) * 1000,
            ..self
        }
    }

    /// Whether `f` becomes an alert; a held one is counted.
    pub fn admit(&mut self, f: &mut Finding) -> bool {
        if self.window_ms == 0 {
            return true;
        }
        let Some(key) = key_of(f) else { return true };
        let t = f.last_seen;
        match self.open.get_mut(&key) {
            // Hits a little before the alert (arrival order is not event order) belong to
            // its window too.
            Some(o)
                if (o.start - self.window_ms..=o.start + self.window_ms).contains(&t) && f.severity <= o.severity =>
            {
                o.held += 1;
                o.last = o.last.max(t);
                self.held += 1;
                false
            }
            Some(o) => {
                if o.held > 0 {
                    f.evidence.insert("earlier_hits_aggregated".into(), o.held.into());
                }
                *o = Open {
                    start: t,
                    last: t,
                    severity: f.severity,
                    held: 0,
                };
                true
            }
            None => {
                self.open.insert(
                    key,
                    Open {
                        start: t,
                        last: t,
                        severity: f.severity,
                        held: 0,
                    },
                );
                true
            }
        }
    }

    /// Forgets windows that closed (hourly in event time).
    pub fn sweep(&mut self, watermark: i64) {
        if let Some(now) = hourly(&mut self.swept, watermark) {
            let window = self.window_ms;
            self.open.retain(|_, o| now - o.last <= window);
        }
    }

    /// Hits held so far.
    pub fn held(&self) -> u64 {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(detection: Detection, minute: i64, ip: &str, severity: Severity) -> Finding {
        Finding {
            detection,
            severity,
            confidence: 0.8,
            user_id: Some("00u1".into()),
            user_login: None,
            src_ip: Some(ip.into()),
            first_seen: minute * 60_000,
            last_seen: minute * 60_000,
            event_uuids: vec![format!("{minute}")],
            summary: String::new(),
            evidence: serde_json::Map::new(),
            mitre: &[],
        }
    }

    #[test]
    fn one_alert_per_source_and_hour_unless_it_gets_worse() {
        let mut agg = RuleAggregation::new(3600);
        let ti = |minute, ip, severity| hit(Detection::ThreatInsight, minute, ip, severity);
        let admitted: Vec<bool> = [
            ti(0, "203.0.113.9", Severity::Medium),
            ti(1, "203.0.113.9", Severity::Medium),
            ti(2, "203.0.113.9", Severity::Low),
            ti(3, "198.51.100.1", Severity::Medium),
            ti(4, "203.0.113.9", Severity::High),
            ti(5, "203.0.113.9", Severity::High),
        ]
        .iter_mut()
        .map(|f| agg.admit(f))
        .collect();
        assert_eq!(admitted, [true, false, false, true, true, false]);
        assert_eq!(agg.held(), 3);
        // After the window, one new alert that says what the last one stood for.
        let mut later = ti(70, "203.0.113.9", Severity::Medium);
        assert!(agg.admit(&mut later));
        assert_eq!(later.evidence["earlier_hits_aggregated"], 1);
        // An allowed hit is not held under a blocked one's alert.
        let mut blocked = ti(80, "192.0.2.1", Severity::High);
        blocked.evidence.insert("blocked".into(), true.into());
        let mut allowed = ti(81, "192.0.2.1", Severity::Medium);
        allowed.evidence.insert("blocked".into(), false.into());
        assert!(agg.admit(&mut blocked) && agg.admit(&mut allowed));
        // Other detections are never held.
        let mut bf = hit(Detection::BruteForce, 71, "203.0.113.9", Severity::Medium);
        assert!(agg.admit(&mut bf.clone()) && agg.admit(&mut bf));
        // Off: every hit is an alert.
        let mut off = RuleAggregation::new(0);
        assert!((0..3).all(|m| off.admit(&mut ti(m, "203.0.113.9", Severity::Low))));
    }
}
