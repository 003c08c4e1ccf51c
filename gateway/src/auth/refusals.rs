//! Unauthenticated requests refused at the HTTP edge, recorded without letting a flood grow
//! the audit log by one record per request.
//!
//! Within each window, the first refusal of each (address, reason) pair is recorded in full,
//! up to [`DETAILED_PER_WINDOW`] of them; every other refusal is only counted. When the
//! window closes (and when the gateway stops), one `unauthenticated_requests` record holds
//! the counts by reason and by address. So a probe is on record at once with its reason,
//! and a million requests from a scanner cost a handful of lines.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use idgw_schemas::AuditPhase;
use serde_json::{Map, Value, json};

use crate::audit::{self, AuditLog};

/// How long one tally runs before its summary is written.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Refusals recorded one by one per window; the rest are counted.
pub const DETAILED_PER_WINDOW: usize = 50;
/// Addresses and reasons named in a summary; the rest are summed under `other`.
const NAMED: usize = 100;
/// Longest reason or client name recorded, characters: both can carry what the caller sent
/// (a token's `kid`, a `User-Agent` of hundreds of kilobytes).
pub const CLIP: usize = 160;

/// `text` cut to [`CLIP`] characters, marked when cut.
pub fn clip(text: &str) -> String {
    crate::text::clip(text, CLIP)
}

#[derive(Debug, Default)]
struct Tally {
    since: Option<DateTime<Utc>>,
    detailed: std::collections::HashSet<(String, String)>,
    counted: u64,
    by_reason: BTreeMap<String, u64>,
    by_address: BTreeMap<String, u64>,
}

/// The current window's tally.
#[derive(Debug, Default)]
pub struct Refusals {
    tally: Mutex<Tally>,
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    if map.len() < NAMED || map.contains_key(key) {
        *map.entry(key.to_owned()).or_default() += 1;
    } else {
        *map.entry("other".to_owned()).or_default() += 1;
    }
}

impl Refusals {
    /// Notes one refused request from `remote` for `reason`; true when it should be
    /// recorded in full (the first of its kind in this window), false when it was counted.
    pub fn note(&self, remote: Option<&str>, reason: &str) -> bool {
        let reason = &clip(reason);
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        // The address without the port: a scanner opens a new port per request.
        let address = remote
            .map(|r| {
                r.parse::<std::net::SocketAddr>()
                    .map_or_else(|_| r.to_owned(), |a| a.ip().to_string())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let key = (address.clone(), reason.to_owned());
        if t.detailed.len() < DETAILED_PER_WINDOW && !t.detailed.contains(&key) {
            t.detailed.insert(key);
            return true;
        }
        t.since.get_or_insert_with(Utc::now);
        t.counted += 1;
        bump(&mut t.by_reason, reason);
        bump(&mut t.by_address, &address);
        false
    }

    /// Ends the window: writes the summary of what was only counted (nothing when nothing
    /// was) and starts a new one.
    pub fn flush(&self, log: &AuditLog) {
        let t = std::mem::take(&mut *self.tally.lock().unwrap_or_else(|e| e.into_inner()));
        let Some(since) = t.since else { return };
        let mut r = audit::record(
            &audit::new_transaction_id(),
            AuditPhase::Outcome,
            "unauthenticated_requests",
            "denied",
        );
        let mut summary = Map::new();
        summary.insert("refused".into(), json!(t.counted));
        summary.insert("since".into(), json!(since));
        summary.insert("until".into(), json!(Utc::now()));
        summary.insert("by_reason".into(), json!(t.by_reason));
        summary.insert("by_address".into(), json!(t.by_address));
        r.arguments = summary;
        r.error = Some(format!(
            "{} more unauthenticated requests refused since {since} (counted, not recorded one by one)",
            t.counted
        ));
        if let Err(e) = log.append(r, true) {
            tracing::error!(error = %e, "cannot audit the unauthenticated requests' summary");
        }
    }

    /// Flushes every [`WINDOW`] until `stop` fires, then once more.
    pub async fn run(
        self: std::sync::Arc<Self>,
        log: std::sync::Arc<AuditLog>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(WINDOW) => self.flush(&log),
                () = stop.cancelled() => break,
            }
        }
        self.flush(&log);
    }
}

/// The numbers a summary record holds (for tests and `idgw audit` readers).
pub fn refused_in(record: &idgw_schemas::AuditRecord) -> u64 {
    record.arguments.get("refused").and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_costs_one_record_per_kind_and_a_summary() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::open(d.path()).unwrap();
        let r = Refusals::default();
        let mut detailed = 0;
        for i in 0..10_000u32 {
            let addr = format!("203.0.113.{}:{}", i % 3, 40_000 + i % 1000);
            let reason = if i % 2 == 0 {
                "no bearer token"
            } else {
                "invalid token: expired"
            };
            if r.note(Some(&addr), reason) {
                detailed += 1;
            }
        }
        // Three addresses × two reasons.
        assert_eq!(detailed, 6);
        r.flush(&log);
        let records = log.read(|_| true).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(refused_in(&records[0]), 10_000 - 6);
        assert_eq!(records[0].arguments["by_address"]["203.0.113.1"], json!(3333 - 2));
        // An empty window writes nothing.
        r.flush(&log);
        assert_eq!(log.read(|_| true).unwrap().len(), 1);
    }

    #[test]
    fn what_the_caller_sent_is_cut_short() {
        let r = Refusals::default();
        let long = format!("invalid token: unknown kid {}", "k".repeat(400_000));
        assert!(r.note(Some("192.0.2.1:1"), &long));
        assert!(!r.note(Some("192.0.2.1:2"), &long), "the same reason once cut");
        let t = r.tally.lock().unwrap();
        assert!(t.by_reason.keys().all(|k| k.chars().count() <= CLIP + 10));
        assert!(clip(&long).ends_with("(cut)"));
        assert_eq!(clip("short"), "short");
    }

    #[test]
    fn many_sources_are_capped() {
        let r = Refusals::default();
        let detailed = (0..1000)
            .filter(|i| {
                r.note(
                    Some(&format!("198.51.100.{}:1", i % 250)),
                    &format!("invalid token: {i}"),
                )
            })
            .count();
        assert_eq!(detailed, DETAILED_PER_WINDOW);
        let t = r.tally.lock().unwrap();
        assert!(t.by_reason.len() <= NAMED + 1);
        assert_eq!(t.counted, 1000 - DETAILED_PER_WINDOW as u64);
    }
}
