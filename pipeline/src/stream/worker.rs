//! A worker: the lanes (partitions) this process owns and the sinks they share — the
//! store's `alerts.jsonl`, the Kafka alerts and dead-letter topics, the webhook and the
//! vector index.
//!
//! Alerts leave as soon as a batch raises them (their latency is the product's latency);
//! files and engine state become durable at a commit: the lanes' cycles are sealed on the
//! consumer's thread and written by the [`Committer`]'s, so reading goes on meanwhile.
//! Sinks outside the store are therefore at-least-once: a crash between an alert leaving
//! and the next checkpoint sends it again after the restart, with the same deterministic
//! `alert_id`. The store itself is exactly-once (see [`super::lane`]).
//!
//! Each partition has its own engine, dedup set and Parquet writer, so a batch's partitions
//! run through ingest and detection in parallel on a small pool (`[kafka] process_threads`);
//! what they raised then goes to the shared sinks in partition order, on the consumer's
//! thread, as before.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use idgw_schemas::Alert;
use rayon::prelude::*;
use serde::Serialize;

use super::committer::{Committer, Lost, Sinks};
use super::kafka_out::{KafkaOut, ProduceError};
use super::lane::{Committed, Fingerprint, Lane, LaneError, LaneId, Processed};
use super::metrics::Metrics;
use super::repartition::Topology;
use super::webhook::Webhook;
use crate::config::PipelineConfig;
use crate::detect::{Mark, Role};
use crate::ingest::Counters;
use crate::store::alerts::AlertLog;
use crate::store::{Store, StoreError};
use crate::vectors::{self, VectorError};

/// How often a user lane's unchanged mark is repeated.
const MARK_HEARTBEAT: Duration = Duration::from_secs(1);

/// How many mark records a user lane may send a second while its event time moves (one per
/// repartition partition per mark): the gap between its marks grows with the partition
/// count, from [`MARK_MIN_GAP`] at 4 partitions or fewer to [`MARK_MAX_GAP`]. The gap is
/// what a spray's alert can wait beyond the allowed lateness once the slowest busy
/// partition has passed its deciding attempt.
const MARK_RECORDS_PER_S: u32 = 800;
const MARK_MIN_GAP: Duration = Duration::from_millis(5);
const MARK_MAX_GAP: Duration = Duration::from_millis(100);

/// The gap between two changed marks of one user lane.
fn mark_gap(source_partitions: u32) -> Duration {
    (Duration::from_secs(1) * source_partitions.max(1) / MARK_RECORDS_PER_S).clamp(MARK_MIN_GAP, MARK_MAX_GAP)
}

/// Worker failures: each stops the pipeline (a restart resumes from the checkpoints).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Lane(#[from] LaneError),
    #[error("alerts.jsonl: {0}")]
    AlertLog(#[from] StoreError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error("vector index: {0}")]
    Vectors(#[from] VectorError),
    #[error(transparent)]
    Webhook(#[from] super::webhook::WebhookError),
    #[error("committer: {0}")]
    Committer(String),
    #[error("starting the processing threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
}

/// What a worker did, for the exit summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerSummary {
    /// Counters of this process's batches (the input topic's records).
    pub counters: Counters,
    pub balanced: bool,
    /// Observations the user lanes handed to the repartition topic.
    pub repartition_sent: u64,
    /// Records the source lanes read from it (`events_ok`: taken; `duplicates`: re-sent
    /// after a crash; `deadlettered`: not repartition records).
    pub repartition_read: Counters,
    /// Alerts new to `alerts.jsonl`, by detection.
    pub alerts_by_detection: BTreeMap<String, u64>,
    pub alerts: u64,
    pub alerts_produced: u64,
    pub deadletters_produced: u64,
    /// Messages a checkpoint already covered (redelivered after a crash).
    pub skipped: u64,
    pub commits: u64,
    /// Partitions owned when the drain began.
    pub partitions: Vec<String>,
}

/// The lanes and the sinks.
pub struct Worker {
    store: Store,
    config: Arc<PipelineConfig>,
    lanes: BTreeMap<LaneId, Lane>,
    /// Lanes given up in the last rebalance, with their checkpoint file as left then.
    parked: BTreeMap<LaneId, (Lane, Option<Fingerprint>)>,
    alert_log: AlertLog,
    kafka: Option<Arc<KafkaOut>>,
    webhook: Option<Webhook>,
    committer: Committer,
    /// Runs the partitions of a batch in parallel; `None` with one thread.
    pool: Option<rayon::ThreadPool>,
    lost: Lost,
    /// Offsets of cycles made durable while waiting for the committer outside a commit.
    ready: Vec<(LaneId, i64)>,
    /// When the next lane is sealed ([`Worker::commit_due`]), and which (its index).
    next_seal: Option<Instant>,
    turn: usize,
    metrics: Arc<Metrics>,
    buffered: usize,
    first_buffered: Option<Instant>,
    summary: WorkerSummary,
    /// Partition counts for the user lanes' marks, when the stream is repartitioned.
    topology: Option<Topology>,
    /// Each user lane's last mark and when it was sent.
    marks: BTreeMap<LaneId, (Mark, Instant)>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("lanes", &self.lanes.keys()).finish()
    }
}

impl Worker {
    /// A worker on `store` with the configured sinks.
    pub fn new(store: &Store, config: Arc<PipelineConfig>, metrics: Arc<Metrics>) -> Result<Self, WorkerError> {
        let vectors = if config.vectors.enabled {
            Some(vectors::open(&config.vectors, store.root())?)
        } else {
            None
        };
        let kafka = if config.kafka.enabled() {
            KafkaOut::new(&config.kafka)?.map(Arc::new)
        } else {
            None
        };
        let webhook = Webhook::start(&config.webhook, store, Arc::clone(&metrics))?;
        let threads = config.kafka.process_threads();
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("lanes-{i}"))
                    .build()?,
            )
        } else {
            None
        };
        let alert_log = AlertLog::open(store)?;
        let lost = Lost::default();
        let committer = Committer::start(Sinks {
            kafka: kafka.clone(),
            alert_log: alert_log.sync_handle()?,
            vectors,
            metrics: Arc::clone(&metrics),
            lost: Arc::clone(&lost),
        })?;
        Ok(Worker {
            store: store.clone(),
            alert_log,
            config,
            lanes: BTreeMap::new(),
            parked: BTreeMap::new(),
            kafka,
            webhook,
            committer,
            pool,
            lost,
            ready: Vec::new(),
            next_seal: None,
            turn: 0,
            metrics,
            buffered: 0,
            first_buffered: None,
            summary: WorkerSummary::default(),
            topology: None,
            marks: BTreeMap::new(),
        })
    }

    /// Repartitioning is on, with these partition counts.
    pub fn set_topology(&mut self, topology: Topology) {
        self.topology = Some(topology);
    }

    /// Announces each user lane's event time to every partition of the repartition topic
    /// when it changed (at most every [`mark_gap`]), and at least every [`MARK_HEARTBEAT`] (a source lane stops waiting
    /// for a lane it has not heard of for a while); `at_end(lane, next offset)` says whether
    /// the lane has read its partition to the end (then it is idle and holds no source lane
    /// back).
    pub fn announce(&mut self, at_end: impl Fn(&LaneId, Option<i64>) -> bool) -> Result<(), WorkerError> {
        self.send_marks(at_end, false)
    }

    /// Announces every user lane idle at once, whenever its last mark went: a run that stops
    /// at the end of its input takes the repartition topic's end offsets right after this,
    /// so a mark held back by [`mark_gap`] would arrive after them (or never), and the source
    /// lanes would stop at the slowest lane's last busy time with windows still open.
    pub fn announce_end(&mut self) -> Result<(), WorkerError> {
        self.send_marks(|_, _| true, true)
    }

    fn send_marks(&mut self, at_end: impl Fn(&LaneId, Option<i64>) -> bool, force: bool) -> Result<(), WorkerError> {
        let (Some(topology), Some(out)) = (self.topology, &self.kafka) else {
            return Ok(());
        };
        let now = Instant::now();
        let gap = mark_gap(topology.source_partitions);
        self.marks.retain(|id, _| self.lanes.contains_key(id));
        for (id, lane) in &self.lanes {
            if lane.role() != Role::Users {
                continue;
            }
            let mark = Mark {
                from: id.partition,
                partitions: topology.input_partitions,
                time: lane.event_time(),
                idle: !lane.has_buffered() && at_end(id, lane.next_offset()),
            };
            if !force
                && self.marks.get(id).is_some_and(|(last, at)| {
                    let since = now.duration_since(*at);
                    since < gap || (*last == mark && since < MARK_HEARTBEAT)
                })
            {
                continue;
            }
            out.mark(&mark, topology.source_partitions)?;
            self.marks.insert(id.clone(), (mark, now));
        }
        Ok(())
    }

    /// Waits until everything produced (alerts, dead letters, repartition records) is
    /// acknowledged.
    pub fn flush_out(&self) -> Result<(), WorkerError> {
        if let Some(out) = &self.kafka {
            out.flush(Duration::from_secs(60))?;
        }
        Ok(())
    }

    /// Takes partitions. A lane this worker gave up in the last rebalance is taken back as
    /// it was when nobody committed it since (its checkpoint file is the one this worker
    /// wrote), which saves reloading its history; any other is opened from its checkpoint.
    pub fn assign(&mut self, ids: Vec<LaneId>) -> Result<(), WorkerError> {
        let new: Vec<LaneId> = ids.into_iter().filter(|id| !self.lanes.contains_key(id)).collect();
        if new.is_empty() {
            return Ok(());
        }
        // Cycles of these partitions sealed before they were lost must not be written after
        // they are opened again: the committer finishes (or drops) everything it holds first.
        let done = self.committer.wait()?;
        self.ready = self.offsets(done);
        {
            let mut lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
            for id in &new {
                lost.remove(id);
            }
        }
        // Another worker may have written alerts these partitions will raise again.
        self.alert_log.reload()?;
        for id in new {
            let lane = match self.parked.remove(&id) {
                Some((lane, seen)) if seen.is_some() && lane.checkpoint_fingerprint() == seen => {
                    lane.resume()?;
                    tracing::info!(lane = %id, "partition taken back as this worker left it");
                    lane
                }
                _ => Lane::open(&self.store, Arc::clone(&self.config), id.clone())?,
            };
            self.lanes.insert(id, lane);
        }
        self.parked.clear();
        self.metrics.partitions.set(self.lanes.len() as i64);
        Ok(())
    }

    /// Gives partitions up: everything they read is made durable first. Returns the offsets
    /// to commit (of every cycle made durable meanwhile, not only the revoked lanes').
    pub fn revoke(&mut self, ids: &[LaneId]) -> Result<Vec<(LaneId, i64)>, WorkerError> {
        self.process()?;
        let mut cycles = Vec::new();
        for id in ids {
            if let Some(lane) = self.lanes.get_mut(id)
                && let Some(cycle) = lane.seal()?
            {
                cycles.push(cycle);
            }
        }
        self.committer.submit(cycles)?;
        let done = self.committer.wait()?;
        let offsets = self.offsets(done);
        for id in ids {
            if let Some(lane) = self.lanes.remove(id) {
                self.summary.skipped += lane.skipped();
                let seen = lane.checkpoint_fingerprint();
                self.parked.insert(id.clone(), (lane, seen));
            }
        }
        self.metrics.partitions.set(self.lanes.len() as i64);
        Ok(offsets)
    }

    /// Drops lanes without making their open cycles durable (the partitions were lost: their
    /// new owners read those cycles again from the last checkpoints).
    pub fn discard(&mut self, ids: &[LaneId]) {
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(ids.iter().cloned());
        for id in ids {
            if let Some(lane) = self.lanes.remove(id) {
                self.summary.skipped += lane.skipped();
            }
        }
        self.metrics.partitions.set(self.lanes.len() as i64);
    }

    /// The Kafka offsets of cycles made durable, with those held in `ready`: the latest per
    /// partition. The cycles are counted in the summary.
    fn offsets(&mut self, committed: Vec<Committed>) -> Vec<(LaneId, i64)> {
        self.summary.commits += committed.len() as u64;
        // Offsets only grow, and the committer reports a lane's cycles in order.
        let latest: BTreeMap<LaneId, i64> = std::mem::take(&mut self.ready)
            .into_iter()
            .chain(committed.into_iter().map(|c| (c.lane, c.next_offset)))
            .collect();
        latest.into_iter().collect()
    }

    /// Buffers one message of a partition this worker owns.
    pub fn buffer(&mut self, id: &LaneId, offset: i64, payload: Option<&[u8]>) {
        match self.lanes.get_mut(id) {
            Some(lane) => {
                self.buffered += lane.buffer(offset, payload);
                self.first_buffered.get_or_insert_with(Instant::now);
            }
            // A message of a partition just revoked: its new owner reads it again.
            None => tracing::debug!(lane = %id, offset, "message for a partition not owned"),
        }
    }

    /// True when the buffer should go to the engine now.
    pub fn batch_due(&self) -> bool {
        self.buffered >= self.config.kafka.batch_max_bytes
            || self
                .first_buffered
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(self.config.kafka.batch_max_wait_ms))
    }

    /// Runs every lane's buffer through ingest and detection and sends what they raised.
    pub fn process(&mut self) -> Result<(), WorkerError> {
        if self.first_buffered.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let results = self.process_lanes();
        self.deliver(results)?;
        self.buffered = 0;
        self.first_buffered = None;
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Slides idle lanes' watermarks on with processing time ([`Lane::tick`]) and sends
    /// what that released raised. Buffered messages are processed first. Not with
    /// `stop_at_end`. `at_end(lane, next offset)` says whether a lane has read its input to
    /// the end (a Kafka partition, the System Log's head): a lane that is merely waiting for
    /// its turn to be fetched is not idle (its events would turn late). A source lane decides
    /// from its user lanes' marks.
    pub fn tick(&mut self, at_end: impl Fn(&LaneId, Option<i64>) -> bool) -> Result<(), WorkerError> {
        // A backfill or benchmark read to its end stops at a point that does not depend on
        // how long its lanes waited for each other.
        if self.config.kafka.stop_at_end {
            return Ok(());
        }
        self.process()?;
        let now = Instant::now();
        let raised: Vec<(LaneId, Result<Processed, LaneError>)> = self
            .lanes
            .iter_mut()
            .filter(|(id, lane)| lane.role() == Role::Sources || at_end(id, lane.next_offset()))
            .map(|(id, lane)| (id.clone(), lane.tick(now)))
            .filter(|(_, p)| !p.alerts.is_empty())
            .map(|(id, p)| (id, Ok(p)))
            .collect();
        // What a release by processing time raised is made durable at once rather than at
        // the lane's next turn: a restart before it would release at another point, and an
        // event that came between could change the evidence (and so the alert's id).
        let mut cycles = Vec::new();
        for (id, _) in &raised {
            if let Some(cycle) = self.lanes.get_mut(id).map(Lane::seal).transpose()?.flatten() {
                cycles.push(cycle);
            }
        }
        self.deliver(raised)?;
        if !cycles.is_empty() {
            self.committer.submit(cycles)?;
        }
        Ok(())
    }

    /// Counts what the lanes did and sends what they raised, in lane order.
    fn deliver(&mut self, results: Vec<(LaneId, Result<Processed, LaneError>)>) -> Result<(), WorkerError> {
        // Alerts of source lanes, for the risk of the users this worker's user lanes hold.
        let mut from_sources: Vec<Alert> = Vec::new();
        for (id, processed) in results {
            let processed = processed?;
            if self.lanes.get(&id).is_some_and(|l| l.role() == Role::Sources) {
                self.metrics.count_repartition(&processed.counters);
                self.summary.repartition_read += processed.counters;
                from_sources.extend(
                    processed
                        .alerts
                        .iter()
                        .filter(|a| !crate::detect::tuning::is_suppressed(a))
                        .cloned(),
                );
            } else {
                self.metrics.count(&processed.counters);
                self.summary.counters += processed.counters;
            }
            if !processed.observations.is_empty()
                && let Some(out) = &self.kafka
            {
                let n = out.observations(&processed.observations)?;
                self.metrics.repartition_sent.inc_by(n);
                self.summary.repartition_sent += n;
            }
            if !processed.alerts.is_empty() {
                let new = self.alert_log.append(&processed.alerts)?;
                for a in &new {
                    self.metrics.alert(a.detection.as_str());
                    if crate::detect::tuning::is_suppressed(a) {
                        self.metrics.alerts_suppressed.inc();
                    }
                    *self
                        .summary
                        .alerts_by_detection
                        .entry(a.detection.as_str().to_owned())
                        .or_default() += 1;
                }
                self.summary.alerts += new.len() as u64;
                // Downstream gets every alert this run raised, repeats included: after a
                // crash, what was sent before the checkpoint cannot be known.
                let all: Vec<&Alert> = processed.alerts.iter().collect();
                if let Some(out) = &self.kafka {
                    let n = out.alerts(&all)?;
                    self.metrics.alerts_produced.inc_by(n);
                    self.summary.alerts_produced += n;
                }
                if let Some(hook) = &self.webhook {
                    // Suppressed alerts are kept and produced, not sent to people.
                    let paging: Vec<&Alert> = all
                        .iter()
                        .copied()
                        .filter(|a| !crate::detect::tuning::is_suppressed(a))
                        .collect();
                    hook.send(&paging);
                }
            }
            for r in &processed.rejects {
                self.metrics.deadletter(r.reason);
            }
            if !processed.rejects.is_empty()
                && let Some(out) = &self.kafka
            {
                let n = out.deadletters(&id, &processed.rejects)?;
                self.metrics.deadletters_produced.inc_by(n);
                self.summary.deadletters_produced += n;
            }
        }
        for alert in &from_sources {
            let mut placed = false;
            for lane in self.lanes.values_mut().filter(|l| l.role() == Role::Users) {
                placed |= lane.take_source_alert(alert);
            }
            if !placed {
                // Its users' lanes belong to another worker (or they have no state yet).
                self.metrics.source_alerts_unplaced.inc();
            }
        }
        Ok(())
    }

    /// Runs the lanes that have buffered messages through their engines, in parallel when
    /// there is a pool and more than one such lane. Results come back in lane order, so
    /// what follows (the alert log, the topics) does not depend on the threads. A lane's
    /// error stops the worker; lanes processed beside it are not sealed after a failure, so
    /// the restart reads their messages again from the last checkpoints.
    fn process_lanes(&mut self) -> Vec<(LaneId, Result<Processed, LaneError>)> {
        let busy: Vec<(&LaneId, &mut Lane)> = self.lanes.iter_mut().filter(|(_, l)| l.has_buffered()).collect();
        let run = |(id, lane): (&LaneId, &mut Lane)| (id.clone(), lane.process());
        match &self.pool {
            Some(pool) if busy.len() > 1 => pool.install(|| busy.into_par_iter().map(run).collect()),
            _ => busy.into_iter().map(run).collect(),
        }
    }

    /// Seals every lane's cycle and queues it to be made durable; returns at once (the
    /// consumer's thread only copies the engine state). [`Worker::committed`] reports the
    /// cycles once durable.
    pub fn commit(&mut self) -> Result<(), WorkerError> {
        self.process()?;
        let started = Instant::now();
        let mut cycles = Vec::new();
        for lane in self.lanes.values_mut() {
            if let Some(cycle) = lane.seal()? {
                cycles.push(cycle);
            }
        }
        if !cycles.is_empty() {
            self.metrics.seal_seconds.observe(started.elapsed().as_secs_f64());
        }
        self.committer.submit(cycles)
    }

    /// Seals one lane when its turn has come and queues it to be made durable: each lane
    /// once per `interval`, the turns spread evenly across it, so the consumer pauses for one
    /// lane's state copy at a time instead of all of them at once.
    pub fn commit_due(&mut self, interval: Duration) -> Result<(), WorkerError> {
        let n = self.lanes.len();
        if n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let step = interval / n as u32;
        let due = *self.next_seal.get_or_insert(now + step);
        if now < due {
            return Ok(());
        }
        self.next_seal = Some(now + step);
        let Some(id) = self.lanes.keys().nth(self.turn % n).cloned() else {
            return Ok(());
        };
        self.turn = self.turn.wrapping_add(1);
        self.process()?;
        let sealing = Instant::now();
        let sealed = match self.lanes.get_mut(&id) {
            Some(lane) => lane.seal()?,
            None => None,
        };
        if let Some(cycle) = sealed {
            self.metrics.seal_seconds.observe(sealing.elapsed().as_secs_f64());
            self.committer.submit(vec![cycle])?;
        }
        Ok(())
    }

    /// The offsets to commit to Kafka of the cycles made durable since the last call,
    /// without waiting; the committer's failure if it stopped.
    pub fn committed(&mut self) -> Result<Vec<(LaneId, i64)>, WorkerError> {
        let done = self.committer.completed()?;
        Ok(self.offsets(done))
    }

    /// Commits and waits until everything read is durable; returns the offsets to commit.
    pub fn commit_and_wait(&mut self) -> Result<Vec<(LaneId, i64)>, WorkerError> {
        self.commit()?;
        let done = self.committer.wait()?;
        Ok(self.offsets(done))
    }

    /// True when this worker owns partitions of `topic` and each has taken every message
    /// below its end offset in `ends` (nothing left buffered).
    pub fn read_to(&self, topic: &str, ends: &BTreeMap<LaneId, i64>) -> bool {
        let mut owned = self.lanes.iter().filter(|(id, _)| id.topic == topic).peekable();
        self.first_buffered.is_none()
            && owned.peek().is_some()
            && owned.all(|(id, lane)| ends.get(id).is_some_and(|end| lane.next_offset().unwrap_or(0) >= *end))
    }

    /// The partitions of `topic` this worker owns.
    pub fn owned(&self, topic: &str) -> Vec<LaneId> {
        self.lanes.keys().filter(|id| id.topic == topic).cloned().collect()
    }

    /// A lane's source position (the poller's next page).
    pub fn cursor(&self, id: &LaneId) -> Option<String> {
        self.lanes.get(id)?.cursor().map(str::to_owned)
    }

    /// Moves a lane's source position (durable with the next commit).
    pub fn set_cursor(&mut self, id: &LaneId, cursor: String) {
        if let Some(lane) = self.lanes.get_mut(id) {
            lane.set_cursor(cursor);
        }
    }

    /// A lane's next offset.
    pub fn next_offset(&self, id: &LaneId) -> Option<i64> {
        self.lanes.get(id)?.next_offset()
    }

    /// The partitions owned.
    pub fn lanes(&self) -> impl Iterator<Item = &LaneId> {
        self.lanes.keys()
    }

    /// Records the partitions owned now (at the drain, before leaving the group).
    pub fn note_partitions(&mut self) {
        self.summary.partitions = self.lanes.keys().map(ToString::to_string).collect();
    }

    /// Stops the sinks (the webhook drains its queue) and returns the summary.
    pub fn finish(&mut self) -> WorkerSummary {
        if let Some(hook) = self.webhook.take() {
            hook.finish();
        }
        for lane in self.lanes.values() {
            self.summary.skipped += lane.skipped();
        }
        self.summary.balanced = self.summary.counters.balanced();
        self.summary.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_spaced_by_the_partitions_they_go_to() {
        assert_eq!(mark_gap(1), MARK_MIN_GAP);
        assert_eq!(mark_gap(4), Duration::from_millis(5));
        assert_eq!(mark_gap(16), Duration::from_millis(20));
        assert_eq!(mark_gap(64), Duration::from_millis(80));
        assert_eq!(mark_gap(1_000), MARK_MAX_GAP);
        assert_eq!(mark_gap(0), MARK_MIN_GAP);
    }
}
