//! The Kafka sinks: alerts (keyed by user id, payload the Alert contract) and dead letters
//! (the raw bytes as they came, the reason and the source offset in headers, as Kafka
//! Connect's dead-letter queues carry them), through one idempotent producer.
//!
//! Sends are fire-and-forget into librdkafka's queue; [`KafkaOut::flush`] waits until
//! every send is acknowledged and fails if any delivery failed, and the worker calls it
//! before a checkpoint, so offsets never run ahead of the sinks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use idgw_schemas::Alert;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::config::KafkaConfig;
use super::lane::LaneId;
use crate::detect::Mark;
use crate::detect::observation::Obs;
use crate::ingest::RejectedRecord;
use crate::source::file::Position;

/// Producer failures.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The producer could not be created (bad configuration).
    #[error("kafka producer: {0}")]
    Create(KafkaError),
    /// `[kafka.security]` cannot work.
    #[error("kafka producer: {0}")]
    Config(String),
    /// A record could not be queued.
    #[error("producing to {topic}: {source}")]
    Send { topic: String, source: KafkaError },
    /// Waiting for acknowledgements timed out or failed.
    #[error("kafka producer flush: {0}")]
    Flush(KafkaError),
    /// An alert or a repartition record could not be serialized.
    #[error("encoding a record: {0}")]
    Encode(serde_json::Error),
    /// Some deliveries failed since the last flush.
    #[error("{0} Kafka deliveries failed (see the log); the cycle is not committed")]
    Deliveries(u64),
}

/// Counts failed deliveries (librdkafka retries before it gives up).
#[derive(Debug, Default)]
pub struct DeliveryCount {
    failed: AtomicU64,
}

impl DeliveryCount {
    /// Deliveries that failed so far.
    pub fn failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

impl ClientContext for DeliveryCount {}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "a Kafka delivery failed");
        }
    }
}

/// Queues `record`, waiting while librdkafka's local queue is full (acknowledgements
/// drain it) rather than dropping or failing.
pub fn send_waiting(
    producer: &ThreadedProducer<DeliveryCount>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// The producer and its topics.
pub struct KafkaOut {
    producer: ThreadedProducer<DeliveryCount>,
    alerts_topic: Option<String>,
    deadletter_topic: Option<String>,
    /// The repartition topic ([`super::repartition`]).
    source_topic: Option<String>,
    reported: AtomicU64,
}

impl std::fmt::Debug for KafkaOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOut")
            .field("alerts_topic", &self.alerts_topic)
            .field("deadletter_topic", &self.deadletter_topic)
            .field("source_topic", &self.source_topic)
            .finish()
    }
}

impl KafkaOut {
    /// A producer for the configured topics; `None` when none is set.
    pub fn new(config: &KafkaConfig) -> Result<Option<Self>, ProduceError> {
        let topic = |t: &str| Some(t.trim().to_owned()).filter(|t| !t.is_empty());
        let (alerts_topic, deadletter_topic) = (topic(&config.alerts_topic), topic(&config.deadletter_topic));
        let source_topic = config.source_topic();
        if alerts_topic.is_none() && deadletter_topic.is_none() && source_topic.is_none() {
            return Ok(None);
        }
        let client = config
            .client(
                [
                    ("enable.idempotence", "true"),
                    // Alerts should leave at once: their latency is the product's latency.
                    ("linger.ms", "1"),
                ],
                &config.producer,
            )
            .map_err(|e| ProduceError::Config(e.to_string()))?;
        let producer = client
            .create_with_context(DeliveryCount::default())
            .map_err(ProduceError::Create)?;
        Ok(Some(KafkaOut {
            producer,
            alerts_topic,
            deadletter_topic,
            source_topic,
            reported: AtomicU64::new(0),
        }))
    }

    fn send(&self, topic: &str, record: BaseRecord<'_, [u8], [u8]>) -> Result<(), ProduceError> {
        send_waiting(&self.producer, record).map_err(|source| ProduceError::Send {
            topic: topic.to_owned(),
            source,
        })
    }

    /// Queues alerts; returns how many.
    pub fn alerts(&self, alerts: &[&Alert]) -> Result<u64, ProduceError> {
        let Some(topic) = &self.alerts_topic else { return Ok(0) };
        for alert in alerts {
            let payload = serde_json::to_vec(alert).map_err(ProduceError::Encode)?;
            // By user, else by source (spray, ThreatInsight): one entity's alerts stay in
            // order on one partition, and source alerts spread instead of sharing the
            // empty key's.
            let key = alert.user_id.as_deref().or(alert.src_ip.as_deref()).unwrap_or("");
            self.send(
                topic,
                BaseRecord::to(topic).key(key.as_bytes()).payload(payload.as_slice()),
            )?;
        }
        Ok(alerts.len() as u64)
    }

    /// Queues observations for the source-keyed detectors, keyed by source IP.
    pub fn observations(&self, observations: &[Obs]) -> Result<u64, ProduceError> {
        let Some(topic) = &self.source_topic else { return Ok(0) };
        for obs in observations {
            let payload = super::repartition::encode_obs(obs).map_err(ProduceError::Encode)?;
            let key = obs.ip.as_deref().unwrap_or("");
            self.send(
                topic,
                BaseRecord::to(topic).key(key.as_bytes()).payload(payload.as_slice()),
            )?;
        }
        Ok(observations.len() as u64)
    }

    /// Queues a user lane's mark to every partition of the repartition topic.
    pub fn mark(&self, mark: &Mark, partitions: u32) -> Result<(), ProduceError> {
        let Some(topic) = &self.source_topic else { return Ok(()) };
        let payload = super::repartition::encode_mark(mark).map_err(ProduceError::Encode)?;
        for p in 0..partitions as i32 {
            self.send(topic, BaseRecord::to(topic).partition(p).payload(payload.as_slice()))?;
        }
        Ok(())
    }

    /// Queues rejected records of `lane`; returns how many.
    pub fn deadletters(&self, lane: &LaneId, rejects: &[RejectedRecord]) -> Result<u64, ProduceError> {
        let Some(topic) = &self.deadletter_topic else {
            return Ok(0);
        };
        let partition = lane.partition.to_string();
        for r in rejects {
            let offset = match r.position {
                Position::Offset(o) => o.to_string(),
                Position::Line(l) | Position::Element(l) => l.to_string(),
            };
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "idgw.reason",
                    value: Some(r.reason),
                })
                .insert(Header {
                    key: "idgw.detail",
                    value: Some(r.detail.as_str()),
                })
                .insert(Header {
                    key: "idgw.source.topic",
                    value: Some(lane.topic.as_str()),
                })
                .insert(Header {
                    key: "idgw.source.partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "idgw.source.offset",
                    value: Some(offset.as_str()),
                });
            let record = BaseRecord::to(topic)
                .key(partition.as_bytes())
                .payload(r.bytes.as_slice())
                .headers(headers);
            self.send(topic, record)?;
        }
        Ok(rejects.len() as u64)
    }

    /// Waits for every queued record to be acknowledged; fails if any delivery failed.
    pub fn flush(&self, timeout: Duration) -> Result<(), ProduceError> {
        self.producer.flush(timeout).map_err(ProduceError::Flush)?;
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        let reported = self.reported.swap(failed, Ordering::Relaxed);
        if failed > reported {
            return Err(ProduceError::Deliveries(failed - reported));
        }
        Ok(())
    }

    /// Failed deliveries so far.
    pub fn failures(&self) -> u64 {
        self.producer.context().failed.load(Ordering::Relaxed)
    }
}
