//! A lane: one Kafka partition's share of the pipeline — its own detection engine, its own
//! files in the store and its own checkpoint, so a partition (and its users) can move to
//! another worker with everything it needs.
//!
//! Work is done in cycles. During a cycle, events go to Parquet files and dead letters that
//! stay under hidden temporary names. A cycle is sealed on the consumer's thread (its rows
//! handed to the Parquet writer, the engine state copied, the next cycle started) and made
//! durable on the worker's committer thread, cycles of a lane in order:
//! 1. close and fsync the cycle's files (events, dead letters, the cycle's new alerts);
//! 2. write the lane checkpoint atomically: the engine state, the next offset to read, the
//!    counters and the list of files the cycle staged;
//! 3. publish the staged files (rename);
//! 4. the caller commits the offset to Kafka.
//!
//! A crash before 2 leaves orphans that the next owner deletes: the cycle never happened,
//! and its messages are read again. A crash after 2 leaves a checkpoint whose files the
//! next owner publishes (rename is idempotent) before reading on from the checkpoint's
//! offset. Either way each input message lands in the store exactly once, and the engine
//! continues from exactly the state those files reflect. The Kafka offset commit is only a
//! hint for lag and for a lane without a checkpoint; messages before the checkpoint's
//! offset are skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use idgw_schemas::rows::alerts_schema;
use idgw_schemas::{Alert, IdentityState};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::repartition::SourceRecord;
use crate::config::PipelineConfig;
use crate::detect::checkpoint::{CheckpointError, EngineSnapshot, write_atomically};
use crate::detect::observation::Obs;
use crate::detect::{Engine, Role};
use crate::ingest::{Counters, Ingest, IngestMode, PendingFiles, RejectedRecord};
use crate::reject::{RejectKind, Rejection};
use crate::source::file::{Position, RawRecord, RecordSink};
use crate::store::alerts::{write_alerts, write_identity_state_file};
use crate::store::dedup::SeenIds;
use crate::store::parquet_writer::{PartitionedWriter, WriterOptions};
use crate::store::{Staged, Store, StoreError};
use crate::vectors::UserVector;

/// The lane checkpoint version this build writes and reads.
const VERSION: u32 = 1;

/// Rows per Arrow batch handed to the Parquet writer thread while streaming.
const STREAM_BATCH_ROWS: usize = 1024;

/// Lane failures.
#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    /// Writing or reading the store.
    #[error("{lane}: store: {source}")]
    Store { lane: String, source: StoreError },
    /// Writing or reading the checkpoint.
    #[error("{lane}: checkpoint: {source}")]
    Checkpoint { lane: String, source: CheckpointError },
    /// The checkpoint file belongs to another partition (copied or renamed by hand).
    #[error("{lane}: the checkpoint {path} is that of {found}")]
    Mismatch { lane: String, path: String, found: String },
    /// The store's suppressions file cannot be applied.
    #[error("{lane}: {source}")]
    Tuning {
        lane: String,
        source: crate::detect::tuning::TuningError,
    },
}

/// Where a lane's messages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A partition of a Kafka topic.
    Kafka,
    /// The Okta System Log API, polled by this process (one lane).
    OktaPoller,
}

/// A lane's identity: a partition of a topic, or the System Log poller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaneId {
    pub source: Source,
    pub topic: String,
    pub partition: i32,
}

impl LaneId {
    /// A Kafka partition.
    pub fn kafka(topic: impl Into<String>, partition: i32) -> Self {
        LaneId {
            source: Source::Kafka,
            topic: topic.into(),
            partition,
        }
    }

    /// The System Log poller's lane.
    pub fn poller() -> Self {
        LaneId {
            source: Source::OktaPoller,
            topic: "okta-system-log".into(),
            partition: 0,
        }
    }

    /// The lane's file-name tag, e.g. `kafka-okta.logs.3` or `okta-system-log`. Every file
    /// it writes starts with `part-<tag>-` or `deadletter-<tag>-`; the trailing dash keeps
    /// partition 1 from matching partition 10.
    pub fn tag(&self) -> String {
        match self.source {
            Source::Kafka => {
                let topic: String = self
                    .topic
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("kafka-{topic}.{}", self.partition)
            }
            Source::OktaPoller => self.topic.clone(),
        }
    }

    /// The checkpoint file of this lane in `store`.
    pub fn checkpoint_path(&self, store: &Store) -> PathBuf {
        let dir = match self.source {
            Source::Kafka => "kafka",
            Source::OktaPoller => "okta",
        };
        store
            .root()
            .join("checkpoints")
            .join(dir)
            .join(format!("{}.json.zst", self.tag()))
    }
}

impl std::fmt::Display for LaneId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.source {
            Source::Kafka => write!(f, "{}/{}", self.topic, self.partition),
            Source::OktaPoller => f.write_str(&self.topic),
        }
    }
}

/// A lane checkpoint as read back (written by [`write_doc`] from [`LaneMeta`] and the
/// engine's document).
#[derive(Deserialize)]
struct LaneDoc {
    topic: String,
    partition: i32,
    /// The first offset the checkpoint does not cover.
    next_offset: i64,
    /// The cycle this checkpoint closed.
    cycle: u64,
    /// Everything the lane has counted, up to `next_offset`.
    counters: Counters,
    /// Files of the cycle, published after the checkpoint was written.
    staged: Vec<Staged>,
    /// Where the source goes on after `next_offset` (the poller's next System Log page).
    #[serde(default)]
    cursor: Option<String>,
    engine: Box<RawValue>,
}

/// A checkpoint file's length and modification time: changed when anyone commits the lane.
pub type Fingerprint = (u64, std::time::SystemTime);

/// What processing a batch produced for the sinks.
#[derive(Debug, Default)]
pub struct Processed {
    /// Alerts raised (the alert log drops those it holds already).
    pub alerts: Vec<Alert>,
    /// Rejected records, for the dead-letter topic.
    pub rejects: Vec<RejectedRecord>,
    /// Counters of this batch.
    pub counters: Counters,
    /// A user lane's observations for the repartition topic.
    pub observations: Vec<Obs>,
}

/// What a commit made durable.
#[derive(Debug)]
pub struct Committed {
    /// The partition.
    pub lane: LaneId,
    /// The offset to commit to Kafka (the next to read).
    pub next_offset: i64,
    /// Behaviour vectors that changed, to upsert.
    pub vectors: Vec<UserVector>,
}

struct Message {
    offset: i64,
    start: usize,
    end: usize,
    payload: bool,
}

/// One partition's pipeline.
pub struct Lane {
    id: LaneId,
    role: Role,
    /// A source lane's repartition records of the open cycle (those that are not dead
    /// letters: the ingest stage counts these).
    source_counts: Counters,
    /// A user lane's state changed in the open cycle without a message of its own (a source
    /// lane's alert added to its users' risk): the cycle must still be made durable.
    touched: bool,
    /// The engine's progress in event time and when (processing time) it last moved, for
    /// the idle advance of its watermark ([`Lane::tick`]).
    progress: (i64, std::time::Instant),
    tag: String,
    source: String,
    store: Store,
    config: Arc<PipelineConfig>,
    ingest: Option<Ingest<Engine>>,
    /// The first offset not yet given to the engine; `None` before the first message of a
    /// lane without a checkpoint.
    next_offset: Option<i64>,
    cycle: u64,
    /// Counters of committed cycles.
    totals: Counters,
    /// Counters of the open cycle.
    open: Counters,
    /// Alert ids in this lane's published `alerts` files.
    published_alerts: SeenIds,
    cycle_alerts: Vec<Alert>,
    arena: Vec<u8>,
    messages: Vec<Message>,
    skipped: u64,
    resumed: bool,
    state_written: Option<std::time::Instant>,
    cursor: Option<String>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("id", &self.id)
            .field("next_offset", &self.next_offset)
            .field("cycle", &self.cycle)
            .finish()
    }
}

impl Lane {
    /// Takes ownership of a partition: finishes what its last checkpoint promised, removes
    /// what a crashed cycle left, and restores the engine.
    pub fn open(store: &Store, config: Arc<PipelineConfig>, id: LaneId) -> Result<Self, LaneError> {
        // Small Arrow batches: the writer thread encodes Parquet on the other core while the
        // cycle runs, instead of all of a cycle's rows at once inside the commit.
        let config = if config.store.batch_rows > STREAM_BATCH_ROWS {
            let mut c = (*config).clone();
            c.store.batch_rows = STREAM_BATCH_ROWS;
            Arc::new(c)
        } else {
            config
        };
        let lane = id.to_string();
        let store_err = |source| LaneError::Store {
            lane: lane.clone(),
            source,
        };
        let ckpt_err = |source| LaneError::Checkpoint {
            lane: lane.clone(),
            source,
        };
        let tag = id.tag();
        let role = match id.source {
            Source::Kafka => config.kafka.role_of(&id.topic),
            Source::OktaPoller => Role::Whole,
        };
        let mut engine = Engine::with_role(&config.detect, role);
        crate::detect::tuning::read_store_file(store.root())
            .and_then(|list| engine.add_suppressions(list))
            .map_err(|source| LaneError::Tuning {
                lane: lane.clone(),
                source,
            })?;
        let path = id.checkpoint_path(store);
        let (next_offset, cycle, totals, cursor) = if path.exists() {
            let doc = read_doc(&path).map_err(ckpt_err)?;
            if doc.topic != id.topic || doc.partition != id.partition {
                return Err(LaneError::Mismatch {
                    lane,
                    path: path.display().to_string(),
                    found: format!("{}/{}", doc.topic, doc.partition),
                });
            }
            engine.restore_json(doc.engine.get().as_bytes()).map_err(ckpt_err)?;
            for staged in &doc.staged {
                staged.republish().map_err(store_err)?;
            }
            (Some(doc.next_offset), doc.cycle + 1, doc.counters, Some(doc.cursor))
        } else {
            (None, 1, Counters::default(), None)
        };
        let resumed = cursor.is_some();
        let cursor = cursor.flatten();
        remove_orphans(store, &tag).map_err(store_err)?;
        // Today and yesterday: the days a running pipeline writes, which
        // `idgw store compact --recent` merges into sorted files.
        let recent_since = chrono::Utc::now().date_naive() - chrono::Days::new(1);
        let seen =
            SeenIds::load_for_stream(&store.events_dir(), &format!("part-{tag}-"), recent_since).map_err(store_err)?;
        let published_alerts =
            SeenIds::load_column(&store.alerts_dir(), "alert_id", &format!("part-{tag}-")).map_err(store_err)?;
        let mut lane = Lane {
            source: format!("kafka:{}", id),
            id,
            role,
            source_counts: Counters::default(),
            touched: false,
            progress: (i64::MIN, std::time::Instant::now()),
            tag,
            store: store.clone(),
            config,
            ingest: None,
            next_offset,
            cycle,
            totals,
            open: Counters::default(),
            published_alerts,
            cycle_alerts: Vec::new(),
            arena: Vec::new(),
            messages: Vec::new(),
            skipped: 0,
            resumed,
            state_written: None,
            cursor,
        };
        lane.ingest = Some(lane.start_cycle(seen, engine).map_err(store_err)?);
        tracing::info!(lane = %lane.id, resumed, next_offset = ?lane.next_offset, "partition opened");
        Ok(lane)
    }

    fn start_cycle(&self, seen: SeenIds, engine: Engine) -> Result<Ingest<Engine>, StoreError> {
        let mode = IngestMode {
            stage: true,
            keep_rejects: true,
        };
        Ingest::open(&self.store, &self.config, &self.run_id(), seen, mode, engine)
    }

    fn run_id(&self) -> String {
        format!("{}-{:010}", self.tag, self.cycle)
    }

    fn err(&self, source: StoreError) -> LaneError {
        LaneError::Store {
            lane: self.id.to_string(),
            source,
        }
    }

    /// The partition.
    pub fn id(&self) -> &LaneId {
        &self.id
    }

    /// The share of the detections the lane runs.
    pub fn role(&self) -> Role {
        self.role
    }

    /// A user lane takes an alert a source lane raised into its users' risk
    /// ([`Engine::take_source_alert`]); made durable with the lane's next cycle.
    pub fn take_source_alert(&mut self, alert: &Alert) -> bool {
        let taken = self
            .ingest
            .as_mut()
            .is_some_and(|i| i.observer_mut().take_source_alert(alert));
        self.touched |= taken;
        taken
    }

    /// Slides an idle lane's watermark (its partition read to the end) on with the
    /// processing time since its input last moved on in event time ([`Engine::advance_idle`]):
    /// a quiet partition's windowed detections fire without waiting for its next event.
    /// Returns what that raised, for the sinks.
    pub fn tick(&mut self, now: std::time::Instant) -> Processed {
        let since = now.saturating_duration_since(self.progress.1);
        let Some(ingest) = self.ingest.as_mut() else {
            return Processed::default();
        };
        let engine = ingest.observer_mut();
        let Some(released) = engine.advance_idle(i64::try_from(since.as_millis()).unwrap_or(i64::MAX), now) else {
            return Processed::default();
        };
        let alerts = engine.take_alerts();
        // Checkpointed with the lane's next cycle once the slide changed what the detectors
        // hold (a restart then judges the events after it against the same watermark), or
        // reached the latest event; a slide that only moved the watermark is not worth a
        // checkpoint of the whole engine each cycle while the partition is quiet.
        self.touched |= released > 0 || !alerts.is_empty() || engine.clock().watermark >= engine.progress();
        self.cycle_alerts.extend(alerts.iter().cloned());
        Processed {
            alerts,
            ..Processed::default()
        }
    }

    /// The latest event time the lane's engine has taken (ms; `i64::MIN` before any).
    pub fn event_time(&self) -> i64 {
        self.ingest.as_ref().map_or(i64::MIN, |i| i.observer().clock().max_time)
    }

    /// The checkpoint file as it is now, if there is one.
    pub fn checkpoint_fingerprint(&self) -> Option<Fingerprint> {
        let meta = std::fs::metadata(self.id.checkpoint_path(&self.store)).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    }

    /// Takes a lane back that this worker gave up and nobody committed since: only what an
    /// owner that crashed meanwhile may have left is removed.
    pub fn resume(&self) -> Result<(), LaneError> {
        remove_orphans(&self.store, &self.tag).map_err(|e| self.err(e))
    }

    /// The first offset not yet taken (`None` before any message of a fresh lane).
    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    /// The source's position after the last message taken (the poller's next page).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Moves the source's position; it is made durable with the next commit.
    pub fn set_cursor(&mut self, cursor: String) {
        self.cursor = Some(cursor);
    }

    /// Whether the lane resumed from a checkpoint.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Everything counted so far (committed and open cycles).
    pub fn counters(&self) -> Counters {
        let mut c = self.totals;
        c += self.open;
        c
    }

    /// Messages skipped because the checkpoint already covered them (redelivered after a
    /// crash between a checkpoint and its offset commit).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Buffers one message (`None`: a message without a payload). Returns the bytes copied.
    pub fn buffer(&mut self, offset: i64, payload: Option<&[u8]>) -> usize {
        if self.next_offset.is_some_and(|next| offset < next) {
            self.skipped += 1;
            return 0;
        }
        let start = self.arena.len();
        if let Some(bytes) = payload {
            self.arena.extend_from_slice(bytes);
        }
        self.messages.push(Message {
            offset,
            start,
            end: self.arena.len(),
            payload: payload.is_some(),
        });
        self.arena.len() - start
    }

    /// True when messages wait in the buffer.
    pub fn has_buffered(&self) -> bool {
        !self.messages.is_empty()
    }

    /// Runs the buffered messages through ingest and the engine, in one batch.
    pub fn process(&mut self) -> Result<Processed, LaneError> {
        if self.messages.is_empty() {
            return Ok(Processed::default());
        }
        let Some(ingest) = self.ingest.as_mut() else {
            return Ok(Processed::default());
        };
        let tombstone = Rejection::new(RejectKind::NotJson, "a Kafka message without a payload");
        let before = ingest.counters();
        let mut source_batch = Counters::default();
        if self.role == Role::Sources {
            // Repartition records go to the engine; those that are not go to the dead letter
            // through the ingest stage, which counts them.
            let mut rejected = Vec::new();
            let engine = ingest.observer_mut();
            for m in &self.messages {
                let bytes = &self.arena[m.start..m.end];
                let decoded = if m.payload {
                    SourceRecord::decode(bytes)
                } else {
                    Err(tombstone.clone())
                };
                match decoded {
                    Ok(record) => {
                        source_batch.events_in += 1;
                        let new = match record {
                            SourceRecord::Obs(obs) => engine.observe_source(obs),
                            SourceRecord::Mark(mark) => {
                                engine.mark(mark, std::time::Instant::now());
                                true
                            }
                        };
                        if new {
                            source_batch.events_ok += 1;
                        } else {
                            source_batch.duplicates += 1;
                        }
                    }
                    Err(reason) => rejected.push(RawRecord {
                        bytes,
                        position: Position::Offset(m.offset),
                        rejected: Some(reason),
                    }),
                }
            }
            if !rejected.is_empty() {
                let _ = ingest.records(&self.source, &rejected);
            }
        } else {
            let records: Vec<RawRecord<'_>> = self
                .messages
                .iter()
                .map(|m| RawRecord {
                    bytes: &self.arena[m.start..m.end],
                    position: Position::Offset(m.offset),
                    rejected: (!m.payload).then(|| tombstone.clone()),
                })
                .collect();
            let _ = ingest.records(&self.source, &records);
        }
        let last = self.messages.last().map(|m| m.offset);
        self.messages.clear();
        self.arena.clear();
        if ingest.failed() {
            // The ingest stage keeps its first error; finishing it hands the error over.
            let error = match self.ingest.take().map(Ingest::finish_staged) {
                Some(Err(e)) => e,
                _ => StoreError::WriterGone("ingest stopped".into()),
            };
            return Err(self.err(error));
        }
        self.next_offset = last.map(|o| o + 1).or(self.next_offset);
        let after = ingest.counters();
        let mut batch = Counters {
            events_in: after.events_in - before.events_in,
            events_ok: after.events_ok - before.events_ok,
            deadlettered: after.deadlettered - before.deadlettered,
            duplicates: after.duplicates - before.duplicates,
        };
        batch += source_batch;
        self.source_counts += source_batch;
        self.open = after;
        self.open += self.source_counts;
        let engine = ingest.observer_mut();
        let progress = engine.progress();
        if progress > self.progress.0 {
            self.progress = (progress, std::time::Instant::now());
        }
        let alerts = engine.take_alerts();
        let observations = engine.take_source_observations();
        self.cycle_alerts.extend(alerts.iter().cloned());
        Ok(Processed {
            alerts,
            rejects: ingest.take_rejects(),
            counters: batch,
            observations,
        })
    }

    /// Closes the cycle without waiting for the disk: the rows go to the writer, the engine
    /// state is copied, and the next cycle starts at once. The returned [`SealedCycle`] makes
    /// the closed one durable ([`SealedCycle::write`], on any thread). Returns `None` when
    /// the cycle saw no message (nothing to make durable).
    pub fn seal(&mut self) -> Result<Option<SealedCycle>, LaneError> {
        if self.open.events_in == 0 && self.cycle_alerts.is_empty() && !self.touched {
            return Ok(None);
        }
        let Some(next_offset) = self.next_offset else {
            return Ok(None);
        };
        let Some(ingest) = self.ingest.take() else {
            return Ok(None);
        };
        let sealed = ingest.seal().map_err(|e| self.err(e))?;
        let mut engine = sealed.observer;
        // Counted as published now: the cycle's writer publishes them, or the worker stops.
        let new_alerts: Vec<Alert> = std::mem::take(&mut self.cycle_alerts)
            .into_iter()
            .filter(|a| self.published_alerts.insert(&a.alert_id))
            .collect();
        self.totals += sealed.counters;
        self.totals += std::mem::take(&mut self.source_counts);
        self.touched = false;
        self.open = Counters::default();
        let interval = std::time::Duration::from_millis(self.config.kafka.state_interval_ms);
        // A source lane holds no user's state.
        let identity_states =
            if self.role != Role::Sources && self.state_written.is_none_or(|t| t.elapsed() >= interval) {
                self.state_written = Some(std::time::Instant::now());
                Some(engine.identity_states())
            } else {
                None
            };
        // Their vectors are built from the snapshot by whoever writes the cycle.
        let changed = engine.take_changed_users();
        let cycle = SealedCycle {
            id: self.id.clone(),
            store: self.store.clone(),
            run_id: self.run_id(),
            state_file: format!("{}.parquet", self.tag),
            files: sealed.files,
            new_alerts,
            engine: engine.snapshot(),
            next_offset,
            cycle: self.cycle,
            counters: self.totals,
            cursor: self.cursor.clone(),
            identity_states,
            changed: if self.config.vectors.enabled {
                changed
            } else {
                Vec::new()
            },
        };
        self.cycle += 1;
        self.ingest = Some(self.start_cycle(sealed.seen, engine).map_err(|e| self.err(e))?);
        Ok(Some(cycle))
    }
}

/// A closed cycle on its way to disk ([`Lane::seal`]).
pub struct SealedCycle {
    id: LaneId,
    store: Store,
    run_id: String,
    state_file: String,
    files: PendingFiles,
    new_alerts: Vec<Alert>,
    engine: EngineSnapshot,
    next_offset: i64,
    cycle: u64,
    counters: Counters,
    cursor: Option<String>,
    identity_states: Option<Vec<IdentityState>>,
    /// Users whose behaviour vector changed in the cycle.
    changed: Vec<Box<str>>,
}

impl std::fmt::Debug for SealedCycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedCycle")
            .field("lane", &self.id)
            .field("cycle", &self.cycle)
            .field("next_offset", &self.next_offset)
            .finish_non_exhaustive()
    }
}

impl SealedCycle {
    /// The partition.
    pub fn lane(&self) -> &LaneId {
        &self.id
    }

    /// Drops the cycle: waits for its files and deletes them (its partition's new owner
    /// reads its messages again).
    pub fn discard(self) {
        match self.files.finish() {
            Ok(staged) => {
                for file in staged {
                    if let Err(e) = std::fs::remove_file(&file.tmp) {
                        tracing::warn!(error = %e, file = %file.tmp.display(), "removing a dropped cycle's file");
                    }
                }
            }
            Err(e) => tracing::warn!(lane = %self.id, error = %e, "a dropped cycle's files"),
        }
    }

    /// Makes the cycle durable, in the order of the module's comment: its files closed and
    /// synced, then the checkpoint, then the files published.
    pub fn write(self) -> Result<Committed, LaneError> {
        let lane = self.id.to_string();
        let store_err = |source| LaneError::Store {
            lane: lane.clone(),
            source,
        };
        let mut staged = self.files.finish().map_err(store_err)?;
        if !self.new_alerts.is_empty() {
            let options = WriterOptions {
                stage: true,
                ..WriterOptions::default()
            };
            let mut writer = PartitionedWriter::new(
                self.store.alerts_dir(),
                Arc::new(alerts_schema()),
                options,
                &self.run_id,
            )
            .map_err(store_err)?;
            write_alerts(&mut writer, &self.new_alerts).map_err(store_err)?;
            staged.extend(writer.finish_staged().map_err(store_err)?);
        }
        let ckpt_err = |source| LaneError::Checkpoint {
            lane: lane.clone(),
            source,
        };
        let vectors = self.engine.vectors_of(&self.changed);
        let engine_json = self.engine.to_json().map_err(ckpt_err)?;
        let meta = LaneMeta {
            version: VERSION,
            topic: &self.id.topic,
            partition: self.id.partition,
            next_offset: self.next_offset,
            cycle: self.cycle,
            counters: self.counters,
            staged: &staged,
            cursor: self.cursor.as_deref(),
        };
        write_doc(&self.id.checkpoint_path(&self.store), &meta, &engine_json).map_err(ckpt_err)?;
        for file in &staged {
            file.publish().map_err(store_err)?;
        }
        if let Some(states) = &self.identity_states {
            write_identity_state_file(&self.store, states, &self.run_id, &self.state_file).map_err(store_err)?;
        }
        Ok(Committed {
            lane: self.id,
            next_offset: self.next_offset,
            vectors,
        })
    }
}

fn read_doc(path: &Path) -> Result<LaneDoc, CheckpointError> {
    let json = zstd::decode_all(fs_err::read(path)?.as_slice())?;
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let v: Version = serde_json::from_slice(&json)?;
    if v.version != VERSION {
        return Err(CheckpointError::Version {
            found: v.version,
            expected: VERSION,
        });
    }
    Ok(serde_json::from_slice(&json)?)
}

/// [`LaneDoc`] without the engine, for writing.
#[derive(Serialize)]
struct LaneMeta<'a> {
    version: u32,
    topic: &'a str,
    partition: i32,
    next_offset: i64,
    cycle: u64,
    counters: Counters,
    staged: &'a [Staged],
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<&'a str>,
}

/// Writes the lane document: the meta object with the engine's JSON spliced in as its
/// `engine` field (the engine document is megabytes; parsing it back into a value just to
/// nest it would cost as much as writing it).
fn write_doc(path: &Path, meta: &LaneMeta<'_>, engine_json: &[u8]) -> Result<(), CheckpointError> {
    let mut json = serde_json::to_vec(meta)?;
    // `meta` serializes to an object: replace its closing brace with the engine field.
    json.pop();
    json.extend_from_slice(b",\"engine\":");
    json.extend_from_slice(engine_json);
    json.push(b'}');
    write_atomically(path, &zstd::encode_all(json.as_slice(), 1)?)
}

/// Deletes the temporary files a crashed cycle of lane `tag` left in the store's tables.
fn remove_orphans(store: &Store, tag: &str) -> Result<(), StoreError> {
    let prefixes = [format!(".part-{tag}-"), format!(".deadletter-{tag}-")];
    let mut stack: Vec<PathBuf> = [
        store.events_dir(),
        store.alerts_dir(),
        store.deadletter_dir(),
        store.identity_state_dir(),
    ]
    .into_iter()
    .filter(|d| d.is_dir())
    .collect();
    let mut removed = 0;
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                fs_err::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(lane = tag, removed, "removed the files of an unfinished cycle");
    }
    Ok(())
}
