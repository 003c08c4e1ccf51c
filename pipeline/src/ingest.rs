//! The ingest stage shared by every source: raw records in, normalized events out to the
//! `events` table, rejects to the dead letter, repeats counted.
//!
//! Work is batched end to end: the source hands over thousands of records at once, rows
//! accumulate per date partition in Arrow builders, and full batches go to a writer thread
//! (Parquet encoding and compression run there, on the other core). There is no per-event
//! channel hop.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use idgw_schemas::SemanticEvent;
use idgw_schemas::okta::LogEvent;
use idgw_schemas::rows::events_schema;
use serde::Serialize;

use crate::config::PipelineConfig;
use crate::deadletter::DeadLetterWriter;
use crate::decode::{Decoded, decode};
use crate::normalize::normalize_fields;
use crate::par::Helpers;
use crate::reject::{RejectKind, Rejection};
use crate::source::file::{Position, RawRecord, RecordSink};
use crate::store::dedup::SeenIds;
use crate::store::event_columns::EventColumns;
use crate::store::parquet_writer::{Codec, PartitionedWriter, Statistics, WriterOptions};
use crate::store::{Staged, Store, StoreError};

/// Events columns of identifiers and other values with many distinct values per row group:
/// written without dictionary encoding. A dictionary there costs a hash lookup per value
/// when writing and, worse, a reader that wants a few rows of a row group must first decode
/// the whole dictionary page (hundreds of KB for IPs, device hashes or session ids).
pub const EVENTS_PLAIN_COLUMNS: [&str; 20] = [
    "event_id",
    "raw",
    "request_id",
    "entity_key",
    "actor_id",
    "actor_login",
    "actor_display_name",
    "target_id",
    "target_login",
    "target_display_name",
    "user_id",
    "user_login",
    "user_display_name",
    "src_ip",
    "ip_chain",
    "dt_hash",
    "device_fingerprint",
    "device_id",
    "session_id",
    "root_session_id",
];

/// The columns ingest's files keep min/max statistics for: the ones the per-user reader
/// (`query::user_events`) and time-range queries prune by. Ingest writes events in arrival
/// order, so every other column's range spans nearly all its values in each row group and
/// page, and computing it cost two string comparisons per value (a few per cent of an
/// ingest's CPU). `idgw store compact` rewrites past days sorted, with statistics for all.
pub const EVENTS_PRUNED_BY: [&str; 2] = ["event_time", "user_id"];

/// How ingest writes the `events` table (`stage`: leave files for the caller to publish).
/// The writer benchmark (`cargo bench --bench parquet_write`) measures these same options.
pub fn events_writer_options(config: &PipelineConfig, stage: bool) -> WriterOptions {
    WriterOptions {
        row_group_rows: config.store.row_group_rows,
        max_rows_per_file: config.store.max_rows_per_file,
        codec: Codec::from_config(config.store.ingest_codec, config.store.zstd_level),
        plain_columns: EVENTS_PLAIN_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        statistics: Statistics::Only(EVENTS_PRUNED_BY.iter().map(|c| (*c).to_owned()).collect()),
        stage,
        page_rows: (config.store.ingest_page_rows > 0).then_some(config.store.ingest_page_rows),
        dictionary: config.store.ingest_dictionary,
        ..WriterOptions::default()
    }
}

/// Conservation counters: `events_in == events_ok + deadlettered + duplicates` always.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counters {
    /// Records presented (an event-hook envelope counts as its events).
    pub events_in: u64,
    /// Events normalized and stored.
    pub events_ok: u64,
    /// Records dead-lettered with a reason.
    pub deadlettered: u64,
    /// Events whose `uuid` was already stored.
    pub duplicates: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.events_in += o.events_in;
        self.events_ok += o.events_ok;
        self.deadlettered += o.deadlettered;
        self.duplicates += o.duplicates;
    }
}

impl Counters {
    /// True when every record is accounted for.
    pub fn balanced(&self) -> bool {
        self.events_in == self.events_ok + self.deadlettered + self.duplicates
    }
}

/// What the ingest stage left behind.
#[derive(Debug)]
pub struct IngestOutcome {
    pub counters: Counters,
    /// Where the time went.
    pub times: StageTimes,
    pub deadletter_reasons: BTreeMap<&'static str, u64>,
    pub deadletter_file: Option<PathBuf>,
    pub files_written: Vec<PathBuf>,
}

/// What a staging ingest leaves for its caller: complete files to publish once a
/// checkpoint names them, and the dedup set to carry into the next cycle.
#[derive(Debug)]
pub struct StagedOutcome<O> {
    pub observer: O,
    pub counters: Counters,
    pub deadletter_reasons: BTreeMap<&'static str, u64>,
    /// Events files and the dead-letter file, synced, under temporary names.
    pub staged: Vec<Staged>,
    pub seen: SeenIds,
}

/// A copy of a rejected record, kept for a dead-letter topic.
#[derive(Debug, Clone)]
pub struct RejectedRecord {
    pub reason: &'static str,
    pub detail: String,
    pub position: Position,
    pub bytes: Vec<u8>,
}

/// How an ingest publishes.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestMode {
    /// Leave files under temporary names ([`Ingest::finish_staged`]).
    pub stage: bool,
    /// Keep a copy of every rejected record ([`Ingest::take_rejects`]).
    pub keep_rejects: bool,
}

/// Receives every stored event (detectors hook in here).
pub trait EventObserver {
    /// Called once per stored (normalized, not duplicate) event, in input order. The
    /// event's `raw` is `None`: its text goes to the store without a copy.
    fn on_event(&mut self, event: &SemanticEvent<'_>);

    /// Called after each batch of input records: the place to hand results on in bulk.
    fn batch_done(&mut self) {}
}

impl EventObserver for () {
    fn on_event(&mut self, _: &SemanticEvent<'_>) {}
}

impl<T: EventObserver + ?Sized> EventObserver for &mut T {
    fn on_event(&mut self, event: &SemanticEvent<'_>) {
        (**self).on_event(event);
    }

    fn batch_done(&mut self) {
        (**self).batch_done();
    }
}

/// Where an ingest's time went. Parse and detect run on the ingest thread one after the
/// other; the Parquet writer runs on its own thread, overlapping them. With helpers
/// ([`Ingest::share_with`]) the Arrow rows are appended on a helper while the observer
/// runs, and that time counts as the observer's.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    /// Decoding, normalizing, dedup and (on one thread) building Arrow rows (seconds).
    pub parse_s: f64,
    /// The observer: detection, risk and behaviour profiles (seconds).
    pub detect_s: f64,
    /// Encoding and writing Parquet, on the writer thread (seconds).
    pub parquet_write_s: f64,
}

type WriterResult = Result<(Vec<PathBuf>, Vec<Staged>, Duration), StoreError>;

struct Partition {
    key: String,
    columns: EventColumns,
}

/// The ingest stage; a [`RecordSink`] for sources.
pub struct Ingest<O> {
    rows: Rows,
    max_event_bytes: usize,
    seen: SeenIds,
    deadletter: DeadLetterWriter,
    writer: Option<JoinHandle<WriterResult>>,
    counters: Counters,
    fatal: Option<StoreError>,
    rejects: Option<Vec<RejectedRecord>>,
    observer: O,
    /// Threads that decode and normalize beside this one, and write Arrow rows while it
    /// detects ([`Ingest::share_with`]).
    helpers: Option<Arc<Helpers>>,
    /// Time inside `records` (parse and detect).
    busy: Duration,
    /// Of which in the observer.
    observing: Duration,
}

struct Closed {
    files: Vec<PathBuf>,
    deadletter: DeadLetterWriter,
    counters: Counters,
    times: StageTimes,
}

impl<O> std::fmt::Debug for Ingest<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("counters", &self.counters).finish()
    }
}

impl<O: EventObserver> Ingest<O> {
    /// Starts ingesting into `store` (loading the ids already stored, for dedup).
    pub fn start(store: &Store, config: &PipelineConfig, run_id: &str, observer: O) -> Result<Self, StoreError> {
        let seen = SeenIds::load(&store.events_dir())?;
        Self::open(store, config, run_id, seen, IngestMode::default(), observer)
    }

    /// Starts ingesting with a known dedup set (a stream carries it from cycle to cycle).
    pub fn open(
        store: &Store,
        config: &PipelineConfig,
        run_id: &str,
        seen: SeenIds,
        mode: IngestMode,
        observer: O,
    ) -> Result<Self, StoreError> {
        let schema = Arc::new(events_schema());
        let options = events_writer_options(config, mode.stage);
        let mut writer = PartitionedWriter::new(store.events_dir(), Arc::clone(&schema), options, run_id)?;
        let (tx, rx) = mpsc::sync_channel::<(String, RecordBatch)>(4);
        let stage = mode.stage;
        let handle = std::thread::Builder::new()
            .name("events-writer".into())
            .spawn(move || {
                let mut busy = Duration::ZERO;
                for (partition, batch) in rx {
                    let t = Instant::now();
                    writer.write(&partition, &batch)?;
                    busy += t.elapsed();
                }
                let t = Instant::now();
                let (files, staged) = if stage {
                    (Vec::new(), writer.finish_staged()?)
                } else {
                    (writer.finish()?, Vec::new())
                };
                Ok((files, staged, busy + t.elapsed()))
            })
            .map_err(StoreError::Io)?;
        Ok(Ingest {
            rows: Rows {
                schema,
                batch_rows: config.store.batch_rows.max(1),
                keep_raw: config.store.raw,
                partitions: HashMap::new(),
                tx: Some(tx),
            },
            max_event_bytes: config.ingest.max_event_bytes,
            seen,
            deadletter: DeadLetterWriter::new(&store.deadletter_dir(), run_id, config.ingest.deadletter_raw_bytes),
            writer: Some(handle),
            counters: Counters::default(),
            fatal: None,
            rejects: mode.keep_rejects.then(Vec::new),
            observer,
            helpers: None,
            busy: Duration::ZERO,
            observing: Duration::ZERO,
        })
    }

    /// Shares each batch's work with `helpers`: decoding and normalizing in chunks, and
    /// the Arrow rows written while this thread runs the observer. Events reach the
    /// observer and the store in input order, as with one thread. For a caller that is not
    /// itself a worker of a rayon pool (replay): one waiting inside another pool would run
    /// that pool's jobs on top of a half-done batch.
    pub fn share_with(mut self, helpers: Option<Arc<Helpers>>) -> Self {
        self.helpers = helpers;
        self
    }

    /// The observer (the detection stage, for a stream).
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// The observer, to change.
    pub fn observer_mut(&mut self) -> &mut O {
        &mut self.observer
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The first fatal error, if the stage stopped.
    pub fn failed(&self) -> bool {
        self.fatal.is_some()
    }

    fn reject(&mut self, rejection: &Rejection, source: &str, position: Position, bytes: &[u8]) {
        self.counters.events_in += 1;
        self.counters.deadlettered += 1;
        if let Err(e) = self.deadletter.write(rejection, source, Some(position), bytes) {
            self.fatal.get_or_insert(e);
        }
        if let Some(kept) = self.rejects.as_mut() {
            kept.push(RejectedRecord {
                reason: rejection.kind.as_str(),
                detail: rejection.detail.clone(),
                position,
                bytes: bytes.to_vec(),
            });
        }
    }

    /// The rejected records kept since the last call (with [`IngestMode::keep_rejects`]).
    pub fn take_rejects(&mut self) -> Vec<RejectedRecord> {
        self.rejects.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn record(&mut self, source: &str, position: Position, bytes: &[u8], depth: u8) {
        match decode(bytes, self.max_event_bytes) {
            // A field of a shape the typed event cannot hold: repaired if it can be.
            Err(r) if r.kind == RejectKind::InvalidField => self.repaired(source, position, bytes, &r),
            Err(r) => self.reject(&r, source, position, bytes),
            Ok(Decoded::Envelope(events)) if depth == 0 => {
                for raw in events {
                    self.record(source, position, raw.get().as_bytes(), depth + 1);
                }
            }
            Ok(Decoded::Envelope(_)) => {
                let r = Rejection::new(RejectKind::InvalidField, "an event-hook envelope inside an envelope");
                self.reject(&r, source, position, bytes);
            }
            Ok(Decoded::Event { raw, event }) => match normalize_fields(&event) {
                // A required field under another spelling (`eventtype`): repaired if it can be.
                Err(r) if r.kind == RejectKind::MissingField => self.repaired(source, position, bytes, &r),
                Err(r) => self.reject(&r, source, position, bytes),
                Ok(ev) => self.accept(ev, raw),
            },
        }
    }

    /// The slow path of a record the typed decoder refused ([`crate::repair`]): its
    /// repaired copy is decoded and normalized, the changes become the event's warnings,
    /// and the verbatim record is what is stored. Refused with `first` when nothing helps.
    fn repaired(&mut self, source: &str, position: Position, bytes: &[u8], first: &Rejection) {
        let original = std::str::from_utf8(bytes).map(str::trim).ok();
        let Some((original, fixed)) = original.and_then(|o| crate::repair::repair(o).map(|f| (o, f))) else {
            return self.reject(first, source, position, bytes);
        };
        match decode(fixed.text.as_bytes(), usize::MAX) {
            Ok(Decoded::Event { event, .. }) => match normalize_fields(&event) {
                Ok(mut ev) => {
                    ev.warnings.extend(fixed.notes.iter().map(|n| format!("repaired: {n}")));
                    self.accept(ev, original);
                }
                Err(r) => self.reject(&r, source, position, bytes),
            },
            _ => self.reject(first, source, position, bytes),
        }
    }

    fn accept(&mut self, ev: SemanticEvent<'_>, raw: &str) {
        self.counters.events_in += 1;
        if !self.seen.insert(&ev.event_id) {
            self.counters.duplicates += 1;
            return;
        }
        self.counters.events_ok += 1;
        // Two clock reads per event (about 80 ns here, 0.5 % of an event at 65,000 events/s;
        // docs/benchmarks.md) buy a per-stage breakdown of every run.
        let t = Instant::now();
        self.observer.on_event(&ev);
        self.observing += t.elapsed();
        if let Err(e) = self.rows.append(&ev, raw) {
            self.fatal.get_or_insert(e);
        }
    }

    /// Flushes every partition, waits for the writer and publishes the dead letter.
    pub fn finish(self) -> Result<IngestOutcome, StoreError> {
        let closed = self.close()?;
        let deadletter_reasons = closed.deadletter.counts().clone();
        let deadletter_file = closed.deadletter.finish()?;
        Ok(IngestOutcome {
            counters: closed.counters,
            times: closed.times,
            deadletter_reasons,
            deadletter_file,
            files_written: closed.files,
        })
    }

    /// Flushes every partition and waits for the writer, leaving the files (events and
    /// dead letter) synced under temporary names for the caller to publish.
    pub fn finish_staged(self) -> Result<StagedOutcome<O>, StoreError> {
        let sealed = self.seal()?;
        let staged = sealed.files.finish()?;
        Ok(StagedOutcome {
            observer: sealed.observer,
            counters: sealed.counters,
            deadletter_reasons: sealed.deadletter_reasons,
            staged,
            seen: sealed.seen,
        })
    }

    /// Hands every partition's rows to the writer and returns at once: the observer and
    /// the dedup set can go on into the next cycle while the writer finishes this one's
    /// files ([`PendingFiles::finish`], on any thread).
    pub fn seal(mut self) -> Result<SealedIngest<O>, StoreError> {
        let flushed = if self.fatal.is_some() {
            Ok(())
        } else {
            self.rows.flush()
        };
        drop(self.rows.tx.take());
        let mut files = PendingFiles {
            writer: self.writer.take(),
            deadletter: self.deadletter,
        };
        if let Some(e) = self.fatal.take().or(flushed.err()) {
            // The writer's own error explains a closed channel better than the channel does.
            return Err(files.wait().err().unwrap_or(e));
        }
        debug_assert!(self.counters.balanced(), "{:?}", self.counters);
        Ok(SealedIngest {
            deadletter_reasons: files.deadletter.counts().clone(),
            observer: self.observer,
            counters: self.counters,
            seen: self.seen,
            files,
            times: StageTimes {
                parse_s: self.busy.saturating_sub(self.observing).as_secs_f64(),
                detect_s: self.observing.as_secs_f64(),
                parquet_write_s: 0.0,
            },
        })
    }

    fn close(self) -> Result<Closed, StoreError> {
        let mut sealed = self.seal()?;
        let (files, _, writing) = sealed.files.wait()?;
        sealed.times.parquet_write_s = writing.as_secs_f64();
        Ok(Closed {
            files,
            deadletter: sealed.files.deadletter,
            counters: sealed.counters,
            times: sealed.times,
        })
    }
}

/// An ingest cycle whose rows are all with the writer ([`Ingest::seal`]).
#[derive(Debug)]
pub struct SealedIngest<O> {
    pub observer: O,
    pub counters: Counters,
    pub deadletter_reasons: BTreeMap<&'static str, u64>,
    pub seen: SeenIds,
    /// The cycle's files, still being written.
    pub files: PendingFiles,
    times: StageTimes,
}

/// The files of a sealed cycle: the Parquet writer finishing them, and the dead letter.
pub struct PendingFiles {
    writer: Option<JoinHandle<WriterResult>>,
    deadletter: DeadLetterWriter,
}

impl std::fmt::Debug for PendingFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingFiles").finish_non_exhaustive()
    }
}

impl PendingFiles {
    /// Waits for the writer; the events files, synced, under temporary names when staged.
    fn wait(&mut self) -> WriterResult {
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StoreError::WriterGone("the writer thread panicked".into())),
            None => Ok((Vec::new(), Vec::new(), Duration::ZERO)),
        }
    }

    /// Waits for the writer and closes the dead letter: every file of the cycle, synced,
    /// under its temporary name.
    pub fn finish(mut self) -> Result<Vec<Staged>, StoreError> {
        let (_, mut staged, _) = self.wait()?;
        staged.extend(self.deadletter.finish_staged()?);
        Ok(staged)
    }
}

/// The Arrow side of an ingest: rows per date partition, full batches to the writer. Apart
/// from the rest so that a helper can fill it while the observer runs.
struct Rows {
    schema: Arc<Schema>,
    batch_rows: usize,
    /// `[store] raw`: the verbatim text goes to `events.raw`.
    keep_raw: bool,
    partitions: HashMap<i32, Partition>,
    tx: Option<SyncSender<(String, RecordBatch)>>,
}

impl Rows {
    fn append(&mut self, ev: &SemanticEvent<'_>, raw: &str) -> Result<(), StoreError> {
        let day = days_since_epoch(ev.event_time);
        let partition = match self.partitions.entry(day) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Partition {
                key: format!("date={}", ev.event_time.format("%Y-%m-%d")),
                columns: EventColumns::new(Arc::clone(&self.schema), self.batch_rows)?,
            }),
        };
        partition.columns.append(ev, self.keep_raw.then_some(raw));
        if partition.columns.rows() >= self.batch_rows {
            let batch = partition.columns.finish()?;
            let key = partition.key.clone();
            self.send(key, batch)?;
        }
        Ok(())
    }

    fn send(&self, partition: String, batch: RecordBatch) -> Result<(), StoreError> {
        match &self.tx {
            Some(tx) => tx
                .send((partition, batch))
                .map_err(|_| StoreError::WriterGone("channel closed".into())),
            None => Err(StoreError::WriterGone("already finished".into())),
        }
    }

    /// Sends what every partition holds to the writer, in key order; the first failure.
    fn flush(&mut self) -> Result<(), StoreError> {
        let mut parts: Vec<(String, RecordBatch)> = Vec::new();
        let mut error = None;
        for (_, mut p) in self.partitions.drain() {
            if p.columns.rows() > 0 {
                match p.columns.finish() {
                    Ok(b) => parts.push((p.key, b)),
                    Err(e) => error = Some(StoreError::from(e)),
                }
            }
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, batch) in parts {
            if let Err(e) = self.send(key, batch) {
                error.get_or_insert(e);
                break;
            }
        }
        error.map_or(Ok(()), Err)
    }
}

fn days_since_epoch(t: DateTime<Utc>) -> i32 {
    t.timestamp().div_euclid(86_400) as i32
}

impl<O: EventObserver> RecordSink for Ingest<O> {
    fn records(&mut self, source: &str, batch: &[RawRecord<'_>]) -> ControlFlow<()> {
        let started = Instant::now();
        let flow = self.ingest_batch(source, batch);
        self.busy += started.elapsed();
        flow
    }
}

/// A record after the shared pass: decoded, refused, or left to the one-thread path
/// (event-hook envelopes and repairs: rare, and they recurse).
enum Prepared<'a> {
    Event { raw: &'a str, event: Box<LogEvent<'a>> },
    Refused(Rejection),
    OneThread,
}

/// Records per chunk of shared decoding: ~0.1 ms of work, so that a helper slowed by the
/// writer thread beside it leaves the rest to the caller without holding it up long.
const SHARED_CHUNK: usize = 32;

impl<O: EventObserver> Ingest<O> {
    fn ingest_batch(&mut self, source: &str, batch: &[RawRecord<'_>]) -> ControlFlow<()> {
        if let Some(helpers) = self.helpers.clone() {
            return self.ingest_shared(&helpers, source, batch);
        }
        for rec in batch {
            match &rec.rejected {
                Some(r) => self.reject(r, source, rec.position, rec.bytes),
                None => self.record(source, rec.position, rec.bytes, 0),
            }
            if self.fatal.is_some() {
                return ControlFlow::Break(());
            }
        }
        self.batch_done()
    }

    /// The end of a batch that went through: the observer hands its results on.
    fn batch_done(&mut self) -> ControlFlow<()> {
        let t = Instant::now();
        self.observer.batch_done();
        self.observing += t.elapsed();
        ControlFlow::Continue(())
    }
}

impl<O: EventObserver> Ingest<O> {
    /// [`Ingest::ingest_batch`] with helpers: the batch is decoded and then normalized in
    /// chunks on every thread; dedup and counting run here in input order; then the
    /// accepted events go to the observer here while a helper appends their rows.
    fn ingest_shared(&mut self, helpers: &Helpers, source: &str, batch: &[RawRecord<'_>]) -> ControlFlow<()> {
        let max = self.max_event_bytes;
        let prepared = helpers.map(batch, SHARED_CHUNK, |rec| {
            if rec.rejected.is_some() {
                return Prepared::OneThread;
            }
            match decode(rec.bytes, max) {
                Ok(Decoded::Event { raw, event }) => Prepared::Event { raw, event },
                Err(r) if r.kind != RejectKind::InvalidField => Prepared::Refused(r),
                Ok(Decoded::Envelope(_)) | Err(_) => Prepared::OneThread,
            }
        });
        let normalized = helpers.map(&prepared, SHARED_CHUNK, |p| match p {
            Prepared::Event { event, .. } => Some(normalize_fields(event)),
            _ => None,
        });
        let mut accepted: Vec<(&SemanticEvent<'_>, &str)> = Vec::with_capacity(batch.len());
        for ((rec, prepared), normalized) in batch.iter().zip(&prepared).zip(&normalized) {
            match (prepared, normalized) {
                (Prepared::Event { raw, .. }, Some(Ok(ev))) => {
                    self.counters.events_in += 1;
                    if self.seen.insert(&ev.event_id) {
                        self.counters.events_ok += 1;
                        accepted.push((ev, *raw));
                    } else {
                        self.counters.duplicates += 1;
                    }
                }
                (Prepared::Event { .. }, Some(Err(r))) if r.kind == RejectKind::MissingField => {
                    self.observe_and_append(helpers, &mut accepted);
                    if self.fatal.is_some() {
                        return ControlFlow::Break(());
                    }
                    self.repaired(source, rec.position, rec.bytes, r);
                }
                (Prepared::Event { .. }, Some(Err(r))) | (Prepared::Refused(r), _) => {
                    self.reject(r, source, rec.position, rec.bytes);
                }
                (Prepared::OneThread, _) | (Prepared::Event { .. }, None) => {
                    self.observe_and_append(helpers, &mut accepted);
                    if self.fatal.is_some() {
                        return ControlFlow::Break(());
                    }
                    match &rec.rejected {
                        Some(r) => self.reject(r, source, rec.position, rec.bytes),
                        None => self.record(source, rec.position, rec.bytes, 0),
                    }
                }
            }
            if self.fatal.is_some() {
                // A dead letter could not be written: what came before the record still
                // reaches the observer and the rows, as on one thread.
                self.observe_and_append(helpers, &mut accepted);
                return ControlFlow::Break(());
            }
        }
        self.observe_and_append(helpers, &mut accepted);
        if self.fatal.is_some() {
            return ControlFlow::Break(());
        }
        self.batch_done()
    }

    /// Hands `accepted` to the observer on this thread while a helper appends their rows
    /// (the two touch nothing in common); empties it. When an append fails (the writer is
    /// gone), the observer has still seen the whole list: the run stops with that error and
    /// hands nothing on (`batch_done` is not called), and the restart resumes from the
    /// last checkpoint, so only the in-memory counters ran past the failing event.
    fn observe_and_append(&mut self, helpers: &Helpers, accepted: &mut Vec<(&SemanticEvent<'_>, &str)>) {
        if accepted.is_empty() {
            return;
        }
        let rows = &mut self.rows;
        let observer = &mut self.observer;
        let events = &accepted[..];
        let t = Instant::now();
        // A few events (before an envelope or a repair) are not worth a hand-off.
        let (appended, ()) = if events.len() < SHARED_CHUNK {
            let appended = events.iter().try_for_each(|(ev, raw)| {
                observer.on_event(ev);
                rows.append(ev, raw)
            });
            (appended, ())
        } else {
            helpers.beside(
                || events.iter().try_for_each(|(ev, raw)| rows.append(ev, raw)),
                || events.iter().for_each(|(ev, _)| observer.on_event(ev)),
            )
        };
        // The observer's time and the rows' overlap: counted as the observer's.
        self.observing += t.elapsed();
        if let Err(e) = appended {
            self.fatal.get_or_insert(e);
        }
        accepted.clear();
    }
}
