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

use idgw_pipeline::stream::kafka_client::{KafkaSecurity, client_config};
use rdkafka::ClientContext;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::signed_head::SignedHead;

/// The header of each mirrored record that holds the signed head after it.
pub const HEAD_HEADER: &str = "idgw-audit-head";

/// `[gateway.audit.kafka]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Bootstrap servers (`KAFKA_BROKERS`).
    pub brokers: String,
    /// The topic (`IDGW_AUDIT_KAFKA_TOPIC`).
    #[serde(default = "MirrorConfig::default_topic")]
    pub topic: String,
    /// TLS and SASL, as the pipeline's `[kafka.security]` (`[gateway.audit.kafka.security]`).
    #[serde(default)]
    pub security: KafkaSecurity,
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
        let producer = client_config(&config.brokers, &config.security, [], [])
            .map_err(|e| e.to_string())?
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

    /// Queues one record line, with the signed head after it when the log is signed.
    pub fn send(&self, transaction_id: &str, line: &[u8], head: Option<&SignedHead>) {
        let mut record = BaseRecord::to(&self.topic).key(transaction_id).payload(line);
        let head = head.and_then(|h| serde_json::to_vec(h).ok());
        if let Some(h) = &head {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: HEAD_HEADER,
                value: Some(h.as_slice()),
            }));
        }
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

/// The reader's context: reaching a partition's end is how reading stops, not an error to
/// log.
struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_)) {
            tracing::error!(%error, reason, "reading the audit mirror");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

/// One record read back from the mirror.
#[derive(Debug, Clone)]
pub struct Mirrored {
    /// The line as the gateway wrote it.
    pub line: Vec<u8>,
    /// The signed head sent with it, if the log was signed.
    pub head: Option<Vec<u8>>,
}

/// Reads every record of the mirror's topic, from the start of each partition to its end
/// (for `idgw audit verify --against-kafka`). Gives up after `timeout`.
pub fn read_all(config: &MirrorConfig, timeout: Duration) -> Result<Vec<Mirrored>, String> {
    let deadline = std::time::Instant::now() + timeout;
    let consumer: BaseConsumer<QuietEof> = client_config(&config.brokers, &config.security, [], [])
        .map_err(|e| e.to_string())?
        .set("group.id", "idgw-audit-verify")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create_with_context(QuietEof)
        .map_err(|e| format!("Kafka consumer for {}: {e}", config.brokers))?;
    let metadata = consumer
        .fetch_metadata(Some(&config.topic), timeout)
        .map_err(|e| format!("topic {} at {}: {e}", config.topic, config.brokers))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == config.topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("topic {} does not exist at {}", config.topic, config.brokers));
    }
    // Each partition is read from its start to the end the broker reports when a fetch
    // comes back empty (librdkafka's partition EOF). Not the watermarks asked for up front:
    // tansu 0.6 answers them with the last batch's first offset, which stops short of the
    // records batched after it.
    let mut remaining: std::collections::HashSet<i32> = partitions.iter().copied().collect();
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        assignment
            .add_partition_offset(&config.topic, *p, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while !remaining.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!(
                "timed out reading {} at {} ({} records read)",
                config.topic,
                config.brokers,
                out.len()
            ));
        }
        match consumer.poll(left.min(Duration::from_millis(500))) {
            Some(Ok(m)) => {
                let head = m.headers().and_then(|hs| {
                    hs.iter()
                        .find(|h| h.key == HEAD_HEADER)
                        .and_then(|h| h.value.map(<[u8]>::to_vec))
                });
                out.push(Mirrored {
                    line: m.payload().unwrap_or_default().to_vec(),
                    head,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                remaining.remove(&p);
            }
            Some(Err(e)) => return Err(format!("reading {}: {e}", config.topic)),
            None => {}
        }
    }
    Ok(out)
}

impl Drop for KafkaMirror {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rdkafka::ClientConfig;
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
            security: Default::default(),
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
        // Read back by the verifier's reader too.
        mirror.flush(Duration::from_secs(10)).unwrap();
        let read = read_all(&config, Duration::from_secs(30)).unwrap();
        assert_eq!(read.len(), 3);
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
            security: Default::default(),
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
