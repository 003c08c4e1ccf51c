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
