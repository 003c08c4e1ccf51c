//! The repartition topic (`[kafka] repartition`): user lanes hand the observations of the
//! source-keyed detectors to `<topic>.by-ip`, keyed by source IP, and announce how far
//! their event time has got to each of its partitions; the same consumer group reads it in
//! lanes of their own ([`crate::detect::upstream`] explains why and how).
//!
//! Records are JSON: `{"obs": {...}}` or `{"mark": {...}}`. Delivery is at least once, like
//! the alerts topic (flushed before each user-lane checkpoint); a source lane drops an
//! observation it holds already.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use super::config::KafkaConfig;
use crate::detect::Mark;
use crate::detect::observation::Obs;
use crate::reject::{RejectKind, Rejection};

/// One record of the repartition topic.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceRecord {
    /// An observation for the source-keyed detectors.
    Obs(Obs),
    /// A user lane's progress.
    Mark(Mark),
}

/// [`SourceRecord`] by reference, for writing.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum SourceRecordRef<'a> {
    Obs(&'a Obs),
    Mark(&'a Mark),
}

/// The record of an observation.
pub fn encode_obs(obs: &Obs) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&SourceRecordRef::Obs(obs))
}

/// The record of a mark.
pub fn encode_mark(mark: &Mark) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&SourceRecordRef::Mark(mark))
}

impl SourceRecord {
    /// Reads a record; a clear reason for the dead letter when it is not one.
    pub fn decode(bytes: &[u8]) -> Result<SourceRecord, Rejection> {
        serde_json::from_slice(bytes).map_err(|e| {
            let kind = match e.classify() {
                serde_json::error::Category::Data => RejectKind::InvalidField,
                _ => RejectKind::NotJson,
            };
            Rejection::new(kind, format!("not a repartition record: {e}"))
        })
    }
}

/// Partition counts a worker needs for its marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// Partitions of the input topic.
    pub input_partitions: u32,
    /// Partitions of the repartition topic (each gets every user lane's marks).
    pub source_partitions: u32,
}

/// Repartition topic failures.
#[derive(Debug, thiserror::Error)]
pub enum RepartitionError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Connect(#[from] super::kafka_client::ConnectError),
    #[error(
        "creating the repartition topic {topic} ({partitions} partitions) failed: {reason}; create it, or set [kafka] repartition = false"
    )]
    Create {
        topic: String,
        partitions: u32,
        reason: String,
    },
    #[error("stopped while waiting for the topic {0} to exist")]
    Stopped(String),
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Option<u32>, RepartitionError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as u32)
        .filter(|n| *n > 0))
}

/// Waits for the input topic, creates the repartition topic when it is missing (with as
/// many partitions as the input), and returns both partition counts.
pub fn prepare(
    config: &KafkaConfig,
    source_topic: &str,
    stop: &dyn Fn() -> bool,
) -> Result<Topology, RepartitionError> {
    let consumer: BaseConsumer = config.client([], &config.consumer)?.create()?;
    let mut warned = Instant::now();
    let input = loop {
        if let Some(n) = partitions(&consumer, &config.topic)? {
            break n;
        }
        if stop() {
            return Err(RepartitionError::Stopped(config.topic.clone()));
        }
        if warned.elapsed() > Duration::from_secs(10) {
            tracing::warn!(topic = %config.topic, "waiting for the input topic to exist");
            warned = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    if let Some(n) = partitions(&consumer, source_topic)? {
        return Ok(Topology {
            input_partitions: input,
            source_partitions: n,
        });
    }
    let admin: AdminClient<DefaultClientContext> = config.client([], &config.producer)?.create()?;
    // A day: the source lanes read it within seconds; the rest is a margin for a stopped
    // group (older records are late by then anyway).
    let topic = NewTopic::new(source_topic, input as i32, TopicReplication::Fixed(-1))
        .set("retention.ms", "86400000")
        .set("cleanup.policy", "delete");
    let failed = |reason: String| RepartitionError::Create {
        topic: source_topic.to_owned(),
        partitions: input,
        reason,
    };
    let created = futures::executor::block_on(
        admin.create_topics(
            [&topic],
            &AdminOptions::new()
                .operation_timeout(Some(Duration::from_secs(30)))
                .request_timeout(Some(Duration::from_secs(30))),
        ),
    )
    .map_err(|e| failed(e.to_string()))?;
    for result in created {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(failed(code.to_string())),
        }
    }
    tracing::info!(
        topic = source_topic,
        partitions = input,
        "created the repartition topic"
    );
    // Metadata can lag a creation by a moment.
    for _ in 0..40 {
        if let Some(n) = partitions(&consumer, source_topic)? {
            return Ok(Topology {
                input_partitions: input,
                source_partitions: n,
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(RepartitionError::Create {
        topic: source_topic.to_owned(),
        partitions: input,
        reason: "created, but not in the brokers' metadata after 10 s".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_anything_else_has_a_reason() {
        let mark = SourceRecord::Mark(Mark {
            from: 3,
            partitions: 4,
            time: 1_700_000_000_000,
            idle: false,
        });
        let SourceRecord::Mark(m) = &mark else { unreachable!() };
        let bytes = encode_mark(m).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&mark).unwrap());
        assert!(matches!(SourceRecord::decode(&bytes), Ok(SourceRecord::Mark(m)) if m.from == 3));
        let r = SourceRecord::decode(b"{\"mark\": {\"from\": \"x\"}}").unwrap_err();
        assert_eq!(r.kind, RejectKind::InvalidField);
        assert!(r.detail.contains("repartition record"), "{}", r.detail);
        assert_eq!(
            SourceRecord::decode(b"{\"mark\"").unwrap_err().kind,
            RejectKind::NotJson
        );
        assert_eq!(
            SourceRecord::decode(b"{\"eventType\": \"user.session.start\"}")
                .unwrap_err()
                .kind,
            RejectKind::InvalidField
        );
    }
}
