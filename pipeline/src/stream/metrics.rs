//! The streaming pipeline's Prometheus metrics (served on the admin port at `/metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ingest::Counters;

type Labels = Vec<(&'static str, String)>;

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    pub events_in: Counter,
    pub events_stored: Counter,
    pub events_deadlettered: Counter,
    pub events_duplicate: Counter,
    pub alerts: Family<Labels, Counter>,
    /// Dead letters by reason (`too_large`, `not_json`, …).
    pub deadletters: Family<Labels, Counter>,
    pub alerts_produced: Counter,
    /// Alerts a suppression matched (stored and produced, not sent to the webhook).
    pub alerts_suppressed: Counter,
    pub deadletters_produced: Counter,
    /// Observations handed to the repartition topic.
    pub repartition_sent: Counter,
    /// Source lanes' alerts naming no user of this worker's user lanes (their risk is not
    /// counted here).
    pub source_alerts_unplaced: Counter,
    /// Repartition records read, by outcome (`taken`, `duplicate`, `deadlettered`).
    pub repartition_read: Family<Labels, Counter>,
    pub produce_errors: Counter,
    pub webhook_delivered: Counter,
    pub webhook_failed: Counter,
    /// Alerts the webhook's severity or detection filter kept back.
    pub webhook_filtered: Counter,
    pub consumer_lag: Family<Labels, Gauge>,
    pub partitions: Gauge,
    pub batch_seconds: Histogram,
    pub commit_seconds: Histogram,
    /// How long the consumer stops to seal a commit's cycles.
    pub seal_seconds: Histogram,
    /// How old a Kafka message is (its producer's timestamp) when the consumer takes it.
    pub message_age_seconds: Histogram,
    pub poller_pages: Counter,
    pub poller_duplicates: Counter,
    /// Unix ms of the consumer's or poller's last turn, for `/healthz`.
    pub last_turn_ms: AtomicI64,
    /// Set when the pipeline stopped on an error.
    pub failed: AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set, registered under `idgw_`, beside the process's own CPU and memory under
    /// their usual names.
    pub fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector::new()));
        let registry = root.sub_registry_with_prefix("idgw");
        let m = Metrics {
            registry: Registry::default(),
            events_in: Counter::default(),
            events_stored: Counter::default(),
            events_deadlettered: Counter::default(),
            events_duplicate: Counter::default(),
            alerts: Family::default(),
            deadletters: Family::default(),
            alerts_produced: Counter::default(),
            alerts_suppressed: Counter::default(),
            deadletters_produced: Counter::default(),
            repartition_sent: Counter::default(),
            source_alerts_unplaced: Counter::default(),
            repartition_read: Family::default(),
            produce_errors: Counter::default(),
            webhook_delivered: Counter::default(),
            webhook_failed: Counter::default(),
            webhook_filtered: Counter::default(),
            consumer_lag: Family::default(),
            partitions: Gauge::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            commit_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            seal_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            message_age_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            poller_pages: Counter::default(),
            poller_duplicates: Counter::default(),
            last_turn_ms: AtomicI64::new(0),
            failed: AtomicBool::new(false),
        };
        let counters: [(&str, &str, &Counter); 15] = [
            (
                "source_alerts_unplaced",
                "Spray alerts naming no user held by this worker's lanes (their risk not counted here)",
                &m.source_alerts_unplaced,
            ),
            (
                "repartition_sent",
                "Observations handed to the repartition topic (keyed by source IP)",
                &m.repartition_sent,
            ),
            ("events_in", "Records read from the sources", &m.events_in),
            ("events_stored", "Events normalized and stored", &m.events_stored),
            (
                "events_deadlettered",
                "Records dead-lettered with a reason",
                &m.events_deadlettered,
            ),
            (
                "events_duplicate",
                "Events whose uuid was already stored",
                &m.events_duplicate,
            ),
            (
                "alerts_produced",
                "Alerts handed to the alerts topic",
                &m.alerts_produced,
            ),
            (
                "alerts_suppressed",
                "Alerts a suppression matched (stored, marked, not sent to the webhook)",
                &m.alerts_suppressed,
            ),
            (
                "deadletters_produced",
                "Rejected records handed to the dead-letter topic",
                &m.deadletters_produced,
            ),
            ("produce_errors", "Kafka deliveries that failed", &m.produce_errors),
            ("webhook_delivered", "Alerts the webhook accepted", &m.webhook_delivered),
            (
                "webhook_failed",
                "Alerts dead-lettered after the webhook kept failing",
                &m.webhook_failed,
            ),
            (
                "webhook_filtered",
                "Alerts the webhook's severity or detection filter kept back",
                &m.webhook_filtered,
            ),
            (
                "poller_pages",
                "Pages read from the Okta System Log API",
                &m.poller_pages,
            ),
            (
                "poller_duplicates",
                "System Log events dropped by the poller as repeats (by uuid)",
                &m.poller_duplicates,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register("alerts", "Alerts raised, by detection", m.alerts.clone());
        registry.register("deadletters", "Records dead-lettered, by reason", m.deadletters.clone());
        registry.register(
            "repartition_read",
            "Repartition records read by the source lanes, by outcome",
            m.repartition_read.clone(),
        );
        registry.register(
            "consumer_lag",
            "Messages behind the partition's end (librdkafka statistics)",
            m.consumer_lag.clone(),
        );
        registry.register(
            "partitions_assigned",
            "Partitions this worker owns",
            m.partitions.clone(),
        );
        registry.register(
            "seal_seconds",
            "Time the consumer stops reading to seal a commit's cycles (the rest of the commit runs beside it)",
            m.seal_seconds.clone(),
        );
        registry.register(
            "message_age_seconds",
            "Age of a Kafka message (from its producer timestamp) when consumed: the broker's share of the latency",
            m.message_age_seconds.clone(),
        );
        registry.register(
            "batch_seconds",
            "Time to run one batch through ingest and detection",
            m.batch_seconds.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time to make a cycle durable (files, checkpoints, producer flush)",
            m.commit_seconds.clone(),
        );
        Metrics { registry: root, ..m }
    }

    /// Adds a batch's counters.
    pub fn count(&self, c: &Counters) {
        self.events_in.inc_by(c.events_in);
        self.events_stored.inc_by(c.events_ok);
        self.events_deadlettered.inc_by(c.deadlettered);
        self.events_duplicate.inc_by(c.duplicates);
    }

    /// Counts an alert.
    pub fn alert(&self, detection: &str) {
        self.alerts
            .get_or_create(&vec![("detection", detection.to_owned())])
            .inc();
    }

    /// Counts what a source lane read from the repartition topic.
    pub fn count_repartition(&self, c: &Counters) {
        for (outcome, n) in [
            ("taken", c.events_ok),
            ("duplicate", c.duplicates),
            ("deadlettered", c.deadlettered),
        ] {
            if n > 0 {
                self.repartition_read
                    .get_or_create(&vec![("outcome", outcome.to_owned())])
                    .inc_by(n);
            }
        }
    }

    /// Counts a dead letter.
    pub fn deadletter(&self, reason: &str) {
        self.deadletters
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    /// Records the lag of a partition.
    pub fn lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .get_or_create(&vec![("topic", topic.to_owned()), ("partition", partition.to_string())])
            .set(lag);
    }

    /// Marks a turn of the main loop (liveness).
    pub fn turn(&self) {
        self.last_turn_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// Healthy: no failure and a turn within `stale_ms`.
    pub fn healthy(&self, stale_ms: i64) -> bool {
        let last = self.last_turn_ms.load(Ordering::Relaxed);
        !self.failed.load(Ordering::Relaxed) && chrono::Utc::now().timestamp_millis() - last <= stale_ms
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `process_cpu_seconds_total`, `process_resident_memory_bytes` and
/// `process_start_time_seconds`, the names Prometheus's client libraries give them, read on
/// each scrape (CPU per event is how a worker is sized, docs/operations.md), and
/// `idgw_build_info{version}` = 1, so dashboards can tell which release runs where. The
/// gateway's `/metrics` registers it too.
#[derive(Debug)]
pub struct ProcessCollector {
    started: f64,
}

impl ProcessCollector {
    /// Now is the process's start, as far as scrapes can tell.
    pub fn new() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        ProcessCollector { started: now }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let start = ConstGauge::new(self.started);
        let metric = encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            None,
            start.metric_type(),
        )?;
        start.encode(metric)?;
        let info = ConstGauge::new(1i64);
        let mut metric = encoder.encode_descriptor(
            "idgw_build_info",
            "The running release: always 1, labelled with the version",
            None,
            info.metric_type(),
        )?;
        let labels = [("version", env!("CARGO_PKG_VERSION"))];
        info.encode(metric.encode_family(&labels)?)?;
        if let Some(cpu) = crate::process::cpu_seconds() {
            let counter = ConstCounter::new(cpu);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        if let Some(rss) = crate::process::resident_bytes() {
            let gauge = ConstGauge::new(i64::try_from(rss).unwrap_or(i64::MAX));
            let metric = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_our_counters_and_the_process_cpu_and_memory() {
        let m = Metrics::new();
        m.events_in.inc_by(3);
        m.deadletter("too_large");
        let text = m.render();
        assert!(text.contains("idgw_events_in_total 3"), "{text}");
        assert!(
            text.contains("idgw_deadletters_total{reason=\"too_large\"} 1"),
            "{text}"
        );
        assert!(text.contains("idgw_build_info{version=\""), "{text}");
        assert!(text.contains("process_start_time_seconds "), "{text}");
        if crate::process::cpu_seconds().is_none() {
            eprintln!("SKIP: no /proc here; the process metrics are left out");
            return;
        }
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
        };
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_resident_memory_bytes") > 0.0);
        assert!(text.contains("# TYPE process_cpu_seconds counter"), "{text}");
    }
}
