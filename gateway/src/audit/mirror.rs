//! A copy of the audit log on a Kafka topic, so the record leaves the gateway's host as it
//! is written (design.md, "Scale-out": gateways are stateless apart from the audit log).
//!
//! Each record is produced as the exact line that went into `audit.jsonl` (so the copy
//! verifies with the same hash chain), keyed by its transaction id, through librdkafka's
//! idempotent producer on its own thread: `append` only enqueues. The local file stays the
//! record of truth and the gate for actions; a record the mirror could not deliver is counted
//! and logged, never silently dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use serde::{Deserialize, Serialize};

/// `[gateway.audit.kafka]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Bootstrap servers (`KAFKA_BROKERS`).
    pub brokers: String,
    /// The topic (`IDGW_AUDIT_KAFKA_TOPIC`).
    #[serde(default = "MirrorConfig::default_topic")]
    pub topic: String,
}

impl MirrorConfig {
    /// `idgw.audit`.
    pub fn default_topic() -> String {
        "idgw.audit".into()
    }
}

/// Delivery counts of the mirror.
#[derive(Debug, Default)]
pub struct MirrorStats {
    /// Records the brokers acknowledged.
    pub delivered: AtomicU64,
    /// Records that could not be delivered (or not even queued).
    pub failed: AtomicU64,
}

struct Counting(Arc<MirrorStats>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "an audit record was not delivered to Kafka; audit.jsonl keeps it");
            }
        }
    }
}

/// The producer side of the mirror.
pub struct KafkaMirror {
    producer: ThreadedProducer<Counting>,
    topic: String,
    stats: Arc<MirrorStats>,
}

impl std::fmt::Debug for KafkaMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMirror").field("topic", &self.topic).finish()
    }
}

impl KafkaMirror {
    /// An idempotent producer to `config.brokers`.
    pub fn new(config: &MirrorConfig) -> Result<Self, String> {
        let stats = Arc::new(MirrorStats::default());
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Records leave promptly: the audit log is low-volume and latency matters more.
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .create_with_context(Counting(Arc::clone(&stats)))
            .map_err(|e| format!("Kafka producer for {}: {e}", config.brokers))?;
        Ok(KafkaMirror {
            producer,
            topic: config.topic.clone(),
            stats,
        })
    }

    /// Queues one record line.
    pub fn send(&self, transaction_id: &str, line: &[u8]) {
        let record = BaseRecord::to(&self.topic).key(transaction_id).payload(line);
        if let Err((e, _)) = self.producer.send(record) {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "an audit record could not be queued for Kafka; audit.jsonl keeps it");
        }
    }

    /// Delivery counts.
    pub fn stats(&self) -> &MirrorStats {
        &self.stats
    }

    /// Waits up to `timeout` for queued records to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.producer.flush(timeout).map_err(|e| e.to_string())
    }
}

impl Drop for KafkaMirror {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;

    use super::*;
    use crate::audit::{self, AuditLog};
    use idgw_schemas::AuditPhase;

    #[test]
    fn every_line_reaches_the_topic_as_written() {
        // librdkafka's mock cluster: a real protocol peer, in process.
        let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1).unwrap();
        cluster.create_topic("idgw.audit", 1, 1).unwrap();
        let config = MirrorConfig {
            brokers: cluster.bootstrap_servers(),
            topic: MirrorConfig::default_topic(),
        };
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path())
            .unwrap()
            .with_mirror(KafkaMirror::new(&config).unwrap());
        for (tx, phase, status) in [
            ("txn-1", AuditPhase::Intent, "pending"),
            ("txn-1", AuditPhase::Outcome, "success"),
            ("txn-2", AuditPhase::Outcome, "denied"),
        ] {
            log.append(audit::record(tx, phase, "suspend_user", status), true)
                .unwrap();
        }
        let mirror = log.mirror().unwrap();
        mirror.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(mirror.stats().delivered.load(Ordering::Relaxed), 3);
        assert_eq!(mirror.stats().failed.load(Ordering::Relaxed), 0);

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", "audit-readers")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[&config.topic]).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < 3 && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                got.push((
                    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                ));
            }
        }
        let lines: Vec<String> = std::fs::read_to_string(dir.path().join(audit::LOG_FILE))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["txn-1", "txn-1", "txn-2"]);
        let payloads: Vec<String> = got.into_iter().map(|(_, p)| p).collect();
        assert_eq!(payloads, lines, "the topic holds the chain byte for byte");
    }

    #[test]
    fn an_unreachable_broker_never_holds_up_the_local_log() {
        let config = MirrorConfig {
            brokers: "127.0.0.1:1".into(),
            topic: MirrorConfig::default_topic(),
        };
        let mirror = KafkaMirror::new(&config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap().with_mirror(mirror);
        // The local log is written whatever Kafka does.
        log.append(
            audit::record("txn-1", AuditPhase::Outcome, "read_user", "success"),
            true,
        )
        .unwrap();
        assert!(audit::verify(dir.path()).unwrap().ok());
        let mirror = log.mirror().unwrap();
        assert!(
            mirror.flush(Duration::from_millis(300)).is_err(),
            "nothing can be delivered"
        );
        assert_eq!(mirror.stats().delivered.load(Ordering::Relaxed), 0);
    }
}
