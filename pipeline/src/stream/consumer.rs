//! The Kafka source: a consumer-group member that moves messages into the lanes in batches
//! (one memcpy per message into the lane's buffer, no async hop) and commits offsets only
//! after the lanes have made what those offsets produced durable.
//!
//! Rebalances run inside `poll`, on this thread: on revoke, the worker processes what is
//! buffered, commits the revoked lanes (checkpoint, files, offsets) and lets them go; on
//! assign, it opens the new lanes from their checkpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::lane::LaneId;
use super::metrics::Metrics;
use super::worker::{Worker, WorkerError, WorkerSummary};
use crate::config::PipelineConfig;
use crate::store::Store;

/// Streaming failures.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The consumer could not be created or subscribed.
    #[error("kafka consumer: {0}")]
    Kafka(#[from] KafkaError),
    /// A lane or a sink failed; a restart resumes from the last checkpoints.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The System Log poller stopped.
    #[error(transparent)]
    Poller(#[from] super::poller::PollerError),
    /// The brokers refused the connection, or none answered.
    #[error(transparent)]
    Connect(#[from] super::kafka_client::ConnectError),
    /// The repartition topic could not be prepared.
    #[error(transparent)]
    Repartition(#[from] super::repartition::RepartitionError),
    /// No broker configured.
    #[error("no Kafka brokers configured: set [kafka] brokers or KAFKA_BROKERS")]
    NoBrokers,
}

struct Ctx {
    worker: Arc<Mutex<Worker>>,
    error: Mutex<Option<WorkerError>>,
    metrics: Arc<Metrics>,
    /// Each partition's low and high watermarks in the latest statistics
    /// (`statistics.interval.ms`, 5 s): a lane that has taken everything below the high one
    /// is at the end of its partition. Forgotten when the partition is assigned or revoked,
    /// so a lane taken back is not judged by figures from before it left.
    high: Mutex<std::collections::HashMap<LaneId, (i64, i64)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere poisons nothing we cannot read: the lanes' durable state is on disk.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ctx {
    /// Drops what the statistics said of partitions that change hands.
    fn forget_ends(&self, ids: &[LaneId]) {
        let mut high = lock(&self.high);
        for id in ids {
            high.remove(id);
        }
    }

    fn fail(&self, e: WorkerError) {
        tracing::error!(error = %e, "rebalance handling failed");
        lock(&self.error).get_or_insert(e);
    }
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        // A fetch that reached the end of a partition (`enable.partition.eof`, with
        // `--until-end`) is reported here too; it is the poll loop's business, not an error.
        // (librdkafka reports it as a global error here, not as the poll's PartitionEOF.)
        if matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(%reason, "end of a partition");
        } else {
            tracing::error!(error = %error, %reason, "librdkafka");
        }
    }

    fn stats(&self, statistics: Statistics) {
        let mut high = lock(&self.high);
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal UA partition; a negative lag means unknown.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics.lag(topic, *partition, p.consumer_lag);
                }
                if *partition >= 0 && p.hi_offset >= 0 {
                    high.insert(
                        LaneId::kafka(topic.as_str(), *partition),
                        (p.lo_offset.max(0), p.hi_offset),
                    );
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        // Lost (the session expired): another worker may own these partitions already, so
        // nothing more is written for them; their last checkpoints stand.
        let lost = consumer.assignment_lost();
        let ids: Vec<LaneId> = tpl
            .elements()
            .iter()
            .map(|e| LaneId::kafka(e.topic(), e.partition()))
            .collect();
        self.forget_ends(&ids);
        let mut commit = TopicPartitionList::new();
        {
            let mut worker = lock(&self.worker);
            if lost {
                worker.discard(&ids);
            } else {
                match worker.revoke(&ids) {
                    Ok(offsets) => {
                        for (id, offset) in offsets {
                            let _ = commit.add_partition_offset(&id.topic, id.partition, Offset::Offset(offset));
                        }
                    }
                    Err(e) => self.fail(e),
                }
            }
        }
        if commit.count() > 0
            && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
        {
            // The lane checkpoints hold the offsets; the next owner skips what they cover.
            tracing::warn!(error = %e, "offset commit on revoke failed");
        }
        if lost {
            tracing::warn!(
                partitions = tpl.count(),
                "partitions lost (session expired); their open cycles are dropped"
            );
        } else {
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else { return };
        let ids: Vec<LaneId> = tpl
            .elements()
            .iter()
            .map(|e| LaneId::kafka(e.topic(), e.partition()))
            .collect();
        self.forget_ends(&ids);
        if let Err(e) = lock(&self.worker).assign(ids) {
            self.fail(e);
        }
        tracing::info!(partitions = tpl.count(), "partitions assigned");
    }
}

/// The consumer properties we set; `[kafka.consumer]` overrides any of them.
pub fn consumer_properties(config: &PipelineConfig) -> Vec<(String, String)> {
    let k = &config.kafka;
    let mut props: Vec<(String, String)> = [
        ("bootstrap.servers", k.brokers.as_str()),
        ("group.id", k.group_id.as_str()),
        // Offsets are committed by hand, after the lanes' checkpoints.
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        // The default 500 ms is the latency floor of a quiet partition.
        ("fetch.wait.max.ms", "10"),
        // When a partition's prefetch queue is full, librdkafka stops fetching it for
        // `fetch.queue.backoff.ms` (1,000 by default): a consumer working through a
        // backlog of 2 KB events stalled for a second each time its 64 MB queue filled,
        // and read at 41,000 events/s with the broker and itself both half idle. A 16 MB
        // queue per partition and a 5 ms backoff: 66,000 events/s (docs/benchmarks.md).
        ("fetch.queue.backoff.ms", "5"),
        ("queued.max.messages.kbytes", "16384"),
        // Fetches of up to 8 MB per partition instead of 1 MB: through a backlog, fewer
        // fetch round trips cost the broker and librdkafka less CPU on shared cores; on
        // tansu 84,600 events/s against 77,200 (six alternated pairs, docs/benchmarks.md).
        // A quiet partition's fetch is as small as before.
        ("max.partition.fetch.bytes", "8388608"),
        ("statistics.interval.ms", "5000"),
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "2000"),
        ("enable.partition.eof", if k.stop_at_end { "true" } else { "false" }),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    for (key, value) in &k.consumer {
        props.retain(|(k, _)| k != key);
        props.push((key.clone(), value.clone()));
    }
    props
}

/// How often quiet lanes are ticked (their watermarks move on with processing time).
const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Runs until `shutdown` is set or a failure; then makes everything durable, commits and
/// leaves the group.
pub fn run(
    store: &Store,
    config: Arc<PipelineConfig>,
    metrics: Arc<Metrics>,
    shutdown: &AtomicBool,
) -> Result<WorkerSummary, StreamError> {
    if !config.kafka.enabled() {
        return Err(StreamError::NoBrokers);
    }
    let worker = Arc::new(Mutex::new(Worker::new(
        store,
        Arc::clone(&config),
        Arc::clone(&metrics),
    )?));
    let ctx = Ctx {
        worker: Arc::clone(&worker),
        error: Mutex::new(None),
        metrics: Arc::clone(&metrics),
        high: Mutex::new(std::collections::HashMap::new()),
    };
    config.kafka.check_connection()?;
    let source_topic = config.kafka.source_topic();
    if let Some(topic) = &source_topic {
        let topology = super::repartition::prepare(&config.kafka, topic, &|| shutdown.load(Ordering::Relaxed))?;
        tracing::info!(topic, ?topology, "repartitioning by source IP");
        lock(&worker).set_topology(topology);
    }
    let mut client = config.kafka.client([], &std::collections::BTreeMap::new())?;
    for (k, v) in consumer_properties(&config) {
        client.set(k, v);
    }
    let consumer: BaseConsumer<Ctx> = client.create_with_context(ctx)?;
    let mut topics = vec![config.kafka.topic.as_str()];
    topics.extend(source_topic.as_deref());
    consumer.subscribe(&topics)?;
    tracing::info!(topics = ?topics, group = %config.kafka.group_id, "consuming");
    // Unknown until the first statistics: not at the end.
    let at_end = |id: &LaneId, next: Option<i64>| {
        lock(&consumer.context().high)
            .get(id)
            .is_some_and(|(low, high)| next.unwrap_or(*low) >= *high)
    };
    let mut ticked = std::time::Instant::now();
    // With `stop_at_end` and repartitioning: the end offsets of the repartition topic's
    // owned partitions, taken once the input has been read to its end and everything the
    // user lanes handed on has been acknowledged.
    let mut source_ends: Option<std::collections::BTreeMap<LaneId, i64>> = None;
    let commit_every = Duration::from_millis(config.kafka.commit_interval_ms.max(1));
    let wait = Duration::from_millis(config.kafka.batch_max_wait_ms.max(1));
    let mut lane = LaneId::kafka(String::new(), -1);
    // With `stop_at_end`: the end offset of each partition that reported reaching it. The
    // EOF event only hints (it can overtake messages still queued), so the stop waits until
    // each owned lane has taken everything below that offset.
    let mut ends: std::collections::BTreeMap<LaneId, i64> = std::collections::BTreeMap::new();
    let outcome = loop {
        if shutdown.load(Ordering::Relaxed) {
            break Ok(());
        }
        metrics.turn();
        let polled = consumer.poll(wait);
        if let Some(e) = lock(&consumer.context().error).take() {
            break Err(StreamError::Worker(e));
        }
        let mut w = lock(&worker);
        let idle = match polled {
            Some(Ok(m)) => {
                if lane.partition != m.partition() || lane.topic != m.topic() {
                    lane = LaneId::kafka(m.topic().to_owned(), m.partition());
                }
                if let Some(produced_ms) = m.timestamp().to_millis() {
                    let age_ms = chrono::Utc::now().timestamp_millis() - produced_ms;
                    metrics.message_age_seconds.observe(age_ms.max(0) as f64 / 1000.0);
                }
                w.buffer(&lane, m.offset(), m.payload());
                false
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                // The event names no topic: it may be the repartition topic's partition of
                // that number, which reaches its end after nearly every batch of marks. The
                // input partition's end is read once.
                let topic = config.kafka.topic.as_str();
                let id = LaneId::kafka(topic, partition);
                if let std::collections::btree_map::Entry::Vacant(end) = ends.entry(id) {
                    match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
                        Ok((_, high)) => {
                            end.insert(high);
                        }
                        Err(e) => tracing::warn!(error = %e, partition, "reading the end offset failed"),
                    }
                }
                true
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "kafka consumer error");
                true
            }
            None => true,
        };
        if (idle || w.batch_due())
            && let Err(e) = w.process()
        {
            break Err(e.into());
        }
        if ticked.elapsed() >= TICK_INTERVAL {
            ticked = std::time::Instant::now();
            if let Err(e) = w.tick(at_end) {
                break Err(e.into());
            }
        }
        // With `stop_at_end`, every owned input partition has been taken to its end.
        let input_done = config.kafka.stop_at_end && !ends.is_empty() && w.read_to(&config.kafka.topic, &ends);
        // Every turn, not on the tick: a spray's alert waits for the slowest user lane's
        // next mark, and the worker rate-limits them per lane. Once the input is done its
        // lanes stay idle: the statistics (every 5 s) would call them busy again, and a
        // busy mark after the idle one would hold another worker's source lanes back.
        if let Err(e) = w.announce(|id, next| input_done || at_end(id, next)) {
            break Err(e.into());
        }
        if input_done {
            let Some(topic) = source_topic.as_deref() else {
                tracing::info!("every owned partition read to its end; stopping");
                break Ok(());
            };
            // Recomputed when this worker's share of the repartition topic changes (a
            // worker that stopped first hands its partitions on).
            let owned = w.owned(topic);
            if source_ends.as_ref().is_some_and(|e| !e.keys().eq(owned.iter())) {
                source_ends = None;
            }
            if source_ends.is_none() {
                // Every owned input partition is read to its end: its lanes are idle.
                if let Err(e) = w.announce_end().and_then(|()| w.flush_out()) {
                    break Err(e.into());
                }
                let owned: Result<std::collections::BTreeMap<LaneId, i64>, KafkaError> = owned
                    .into_iter()
                    .map(|id| {
                        let (_, high) = consumer.fetch_watermarks(topic, id.partition, Duration::from_secs(10))?;
                        Ok((id, high))
                    })
                    .collect();
                match owned {
                    Ok(owned) => source_ends = Some(owned),
                    Err(e) => tracing::warn!(error = %e, "reading the repartition topic's end offsets failed"),
                }
            }
            if source_ends
                .as_ref()
                .is_some_and(|e| e.is_empty() || w.read_to(topic, e))
            {
                tracing::info!("every owned partition, and the repartition topic's, read to its end; stopping");
                break Ok(());
            }
        }
        if let Err(e) = w.commit_due(commit_every) {
            break Err(e.into());
        }
        // Cycles the committer made durable since the last turn.
        match w.committed() {
            Ok(offsets) => {
                drop(w);
                commit_offsets(&consumer, &offsets, CommitMode::Async);
            }
            Err(e) => break Err(e.into()),
        }
    };
    if let Err(e) = &outcome {
        metrics.failed.store(true, Ordering::Relaxed);
        // Nothing more is made durable after a failure: the restart resumes from the last
        // checkpoints, which never run ahead of the sinks.
        tracing::error!(error = %e, "stopping on a failure");
        return Err(outcome.unwrap_err());
    }
    // Drain: what was read is processed, written, checkpointed and committed.
    tracing::info!("draining");
    let offsets = lock(&worker).commit_and_wait()?;
    tracing::info!(partitions = offsets.len(), "drained; committing offsets");
    commit_offsets(&consumer, &offsets, CommitMode::Sync);
    lock(&worker).note_partitions();
    tracing::info!("leaving the group");
    leave(consumer, Duration::from_secs(10));
    Ok(lock(&worker).finish())
}

/// Leaves the group, waiting at most `deadline`. Everything is durable and committed by
/// now, so a leave that does not finish in time only makes the group wait for the session
/// timeout before it hands this worker's partitions on; the process must not hang on it.
/// librdkafka's close (run by the consumer's drop) was seen to block without end against
/// the mock cluster after members had been killed, so it runs on a thread of its own.
fn leave(consumer: BaseConsumer<Ctx>, deadline: Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("kafka-leave".into()).spawn(move || {
        drop(consumer);
        let _ = tx.send(());
    });
    let left = rx.recv_timeout(deadline).is_ok();
    if let (true, Ok(thread)) = (left, spawned) {
        // It is ending: a thread still tearing down beside the process's exit handlers can
        // corrupt the C heap (see `idgw pipeline run`, which joins its pipeline thread).
        let _ = thread.join();
    } else {
        tracing::warn!(
            "the consumer did not leave the group within {deadline:?}; its partitions move after the session timeout"
        );
    }
}

fn commit_offsets(consumer: &BaseConsumer<Ctx>, offsets: &[(LaneId, i64)], mode: CommitMode) {
    if offsets.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (id, offset) in offsets {
        let _ = tpl.add_partition_offset(&id.topic, id.partition, Offset::Offset(*offset));
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        tracing::warn!(error = %e, "offset commit failed (the lane checkpoints hold the offsets)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
        props.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// librdkafka's defaults stall a backlogged partition for a second whenever its
    /// prefetch queue fills (docs/benchmarks.md, "Streaming from Kafka"); ours must stay
    /// set, and `[kafka.consumer]` must still win, once.
    #[test]
    fn backlog_settings_are_ours_and_the_config_overrides_them() {
        let mut config = PipelineConfig::default();
        let props = consumer_properties(&config);
        assert_eq!(value(&props, "fetch.queue.backoff.ms"), Some("5"));
        assert_eq!(value(&props, "queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(value(&props, "fetch.wait.max.ms"), Some("10"));
        assert_eq!(value(&props, "max.partition.fetch.bytes"), Some("8388608"));

        config
            .kafka
            .consumer
            .insert("fetch.queue.backoff.ms".into(), "1000".into());
        let props = consumer_properties(&config);
        assert_eq!(value(&props, "fetch.queue.backoff.ms"), Some("1000"));
        assert_eq!(props.iter().filter(|(k, _)| k == "fetch.queue.backoff.ms").count(), 1);
    }
}
