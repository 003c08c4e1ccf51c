//! Streaming mode (`idgw pipeline run`): Kafka in and out, a webhook, metrics, and
//! checkpoints per partition so a worker can crash or hand a partition over without losing
//! or duplicating anything in the store.
//!
//! [`consumer`] reads the topic as a consumer-group member; [`worker`] owns the partitions'
//! [`lane`]s and the sinks they share ([`kafka_out`], [`webhook`], `alerts.jsonl`, the
//! vector index); [`metrics`] is what `/metrics` serves.

pub mod committer;
pub mod config;
pub mod consumer;
pub mod kafka_client;
pub mod kafka_out;
pub mod lane;
pub mod metrics;
pub mod poller;
pub mod repartition;
pub mod webhook;
pub mod webhook_format;
pub mod worker;

pub use config::{AdminConfig, KafkaConfig};
pub use consumer::StreamError;
pub use metrics::Metrics;
pub use poller::PollerConfig;
pub use webhook::WebhookConfig;
pub use worker::WorkerSummary;

/// Runs the configured sources until `shutdown`: the Kafka consumer, the System Log
/// poller feeding this process's engine, or the poller producing to Kafka beside the
/// consumer.
pub fn run(
    store: &crate::Store,
    config: std::sync::Arc<crate::PipelineConfig>,
    metrics: std::sync::Arc<Metrics>,
    shutdown: &std::sync::atomic::AtomicBool,
) -> Result<WorkerSummary, StreamError> {
    use std::sync::atomic::Ordering;
    if config.poller.enabled && !config.poller.produce {
        return Ok(poller::run_engine(store, config, metrics, shutdown)?);
    }
    if !config.poller.enabled {
        return consumer::run(store, config, metrics, shutdown);
    }
    if !config.kafka.enabled() {
        return Err(StreamError::NoBrokers);
    }
    // The poller produces to the topic; this process also consumes it.
    let stop_poller = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (store, config, metrics, stop) = (
            store.clone(),
            std::sync::Arc::clone(&config),
            std::sync::Arc::clone(&metrics),
            std::sync::Arc::clone(&stop_poller),
        );
        std::thread::Builder::new()
            .name("okta-poller".into())
            .spawn(move || {
                let result = poller::run_producer(&store, &config, &metrics, &stop);
                if result.is_err() {
                    metrics.failed.store(true, Ordering::Relaxed);
                }
                result
            })
            .map_err(|e| StreamError::Poller(poller::PollerError::Output(format!("starting the poller: {e}"))))?
    };
    let consumed = consumer::run(store, config, metrics, shutdown);
    stop_poller.store(true, Ordering::Relaxed);
    let polled = poller
        .join()
        .unwrap_or_else(|_| Err(poller::PollerError::Output("the poller thread panicked".into())));
    let summary = consumed?;
    polled?;
    Ok(summary)
}

/// The Kafka message key of a raw Okta event: the id of the user whose event it is (the
/// actor of a sign-in, the target of an admin action on a user), so each user's events
/// stay in one partition, in order, with one engine. Events of no user (ThreatInsight on
/// an IP) are keyed by the source IP; records that do not decode get no key (they go to the
/// dead letter wherever they land).
pub fn partition_key(raw: &[u8]) -> Option<String> {
    let crate::decode::Decoded::Event { event, .. } = crate::decode::decode(raw, usize::MAX).ok()? else {
        return None;
    };
    let ev = crate::normalize::normalize_fields(&event).ok()?;
    ev.subject_user
        .and_then(|u| u.id)
        .or(ev.client.ip)
        .map(std::borrow::Cow::into_owned)
}
