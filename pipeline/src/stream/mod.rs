//! Streaming mode (`idgw pipeline run`): Kafka in and out, a webhook, metrics, and
//! checkpoints per partition so a worker can crash or hand a partition over without losing
//! or duplicating anything in the store.
//!
//! [`consumer`] reads the topic as a consumer-group member; [`worker`] owns the partitions'
//! [`lane`]s and the sinks they share ([`kafka_out`], [`webhook`], `alerts.jsonl`, the
//! vector index); [`metrics`] is what `/metrics` serves.

pub mod config;
pub mod consumer;
pub mod kafka_out;
pub mod lane;
pub mod metrics;
pub mod webhook;
pub mod worker;

pub use config::{AdminConfig, KafkaConfig};
pub use consumer::{StreamError, run};
pub use metrics::Metrics;
pub use webhook::WebhookConfig;
pub use worker::WorkerSummary;

/// The Kafka message key of a raw Okta event: the id of the user whose event it is (the
/// actor of a sign-in, the target of an admin action on a user), so each user's events
/// stay in one partition, in order, with one engine. Events of no user (ThreatInsight on
/// an IP) are keyed by the source IP; records that do not decode get no key (they go to the
/// dead letter wherever they land).
pub fn partition_key(raw: &[u8]) -> Option<String> {
    let crate::decode::Decoded::Event { raw, event } = crate::decode::decode(raw, usize::MAX).ok()? else {
        return None;
    };
    let ev = crate::normalize::normalize(raw, &event).ok()?;
    ev.subject_user.and_then(|u| u.id).or(ev.client.ip)
}
