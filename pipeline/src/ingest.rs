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

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{FieldRef, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use idgw_schemas::SemanticEvent;
use idgw_schemas::rows::{EventRow, events_schema};
use serde::Serialize;
use serde_arrow::ArrayBuilder;

use crate::config::PipelineConfig;
use crate::deadletter::DeadLetterWriter;
use crate::decode::{Decoded, decode};
use crate::normalize::normalize;
use crate::reject::Rejection;
use crate::source::file::{Position, RawRecord, RecordSink};
use crate::store::dedup::SeenIds;
use crate::store::parquet_writer::{PartitionedWriter, WriterOptions};
use crate::store::{Store, StoreError};

/// Conservation counters: `events_in == events_ok + deadlettered + duplicates` always.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
    pub deadletter_reasons: BTreeMap<&'static str, u64>,
    pub deadletter_file: Option<PathBuf>,
    pub files_written: Vec<PathBuf>,
}

/// Receives every stored event (detectors hook in here).
pub trait EventObserver {
    /// Called once per stored (normalized, not duplicate) event, in input order.
    fn on_event(&mut self, event: &SemanticEvent);

    /// Called after each batch of input records: the place to hand results on in bulk.
    fn batch_done(&mut self) {}
}

impl EventObserver for () {
    fn on_event(&mut self, _: &SemanticEvent) {}
}

struct Partition {
    key: String,
    builder: ArrayBuilder,
    rows: usize,
}

/// The ingest stage; a [`RecordSink`] for sources.
pub struct Ingest<'o> {
    fields: Vec<FieldRef>,
    schema: Arc<Schema>,
    batch_rows: usize,
    max_event_bytes: usize,
    seen: SeenIds,
    deadletter: DeadLetterWriter,
    partitions: HashMap<i32, Partition>,
    tx: Option<SyncSender<(String, RecordBatch)>>,
    writer: Option<JoinHandle<Result<Vec<PathBuf>, StoreError>>>,
    counters: Counters,
    fatal: Option<StoreError>,
    observer: &'o mut dyn EventObserver,
}

impl std::fmt::Debug for Ingest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("counters", &self.counters).finish()
    }
}

impl<'o> Ingest<'o> {
    /// Starts ingesting into `store` (loading the ids already stored, for dedup).
    pub fn start(
        store: &Store,
        config: &PipelineConfig,
        run_id: &str,
        observer: &'o mut dyn EventObserver,
    ) -> Result<Self, StoreError> {
        let schema = Arc::new(events_schema());
        let fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
        let seen = SeenIds::load(&store.events_dir())?;
        let options = WriterOptions {
            row_group_rows: config.store.row_group_rows,
            max_rows_per_file: config.store.max_rows_per_file,
            zstd_level: config.store.zstd_level,
            plain_columns: vec!["event_id".into(), "raw".into(), "request_id".into()],
        };
        let mut writer = PartitionedWriter::new(store.events_dir(), Arc::clone(&schema), options, run_id)?;
        let (tx, rx) = mpsc::sync_channel::<(String, RecordBatch)>(4);
        let handle = std::thread::Builder::new()
            .name("events-writer".into())
            .spawn(move || {
                for (partition, batch) in rx {
                    writer.write(&partition, &batch)?;
                }
                writer.finish()
            })
            .map_err(StoreError::Io)?;
        Ok(Ingest {
            fields,
            schema,
            batch_rows: config.store.batch_rows.max(1),
            max_event_bytes: config.ingest.max_event_bytes,
            seen,
            deadletter: DeadLetterWriter::new(&store.deadletter_dir(), run_id, config.ingest.deadletter_raw_bytes),
            partitions: HashMap::new(),
            tx: Some(tx),
            writer: Some(handle),
            counters: Counters::default(),
            fatal: None,
            observer,
        })
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
    }

    fn record(&mut self, source: &str, position: Position, bytes: &[u8], depth: u8) {
        match decode(bytes, self.max_event_bytes) {
            Err(r) => self.reject(&r, source, position, bytes),
            Ok(Decoded::Envelope(events)) if depth == 0 => {
                for raw in events {
                    self.record(source, position, raw.get().as_bytes(), depth + 1);
                }
            }
            Ok(Decoded::Envelope(_)) => {
                let r = Rejection::new(
                    crate::reject::RejectKind::InvalidField,
                    "an event-hook envelope inside an envelope",
                );
                self.reject(&r, source, position, bytes);
            }
            Ok(Decoded::Event { raw, event }) => match normalize(raw, &event) {
                Err(r) => self.reject(&r, source, position, bytes),
                Ok(ev) => {
                    self.counters.events_in += 1;
                    if !self.seen.insert(&ev.event_id) {
                        self.counters.duplicates += 1;
                        return;
                    }
                    self.counters.events_ok += 1;
                    self.observer.on_event(&ev);
                    if let Err(e) = self.append(&ev) {
                        self.fatal.get_or_insert(e);
                    }
                }
            },
        }
    }

    fn append(&mut self, ev: &SemanticEvent) -> Result<(), StoreError> {
        let day = days_since_epoch(ev.event_time);
        let partition = match self.partitions.entry(day) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Partition {
                key: format!("date={}", ev.event_time.format("%Y-%m-%d")),
                builder: ArrayBuilder::from_arrow(&self.fields)?,
                rows: 0,
            }),
        };
        partition.builder.push(EventRow::from(ev))?;
        partition.rows += 1;
        if partition.rows >= self.batch_rows {
            let batch = partition.builder.to_record_batch()?;
            partition.rows = 0;
            let key = partition.key.clone();
            self.send(key, batch)?;
        }
        Ok(())
    }

    fn send(&mut self, partition: String, batch: RecordBatch) -> Result<(), StoreError> {
        // serde_arrow names fields from its own metadata; use the table's schema as written.
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec())?;
        match &self.tx {
            Some(tx) => tx
                .send((partition, batch))
                .map_err(|_| StoreError::WriterGone("channel closed".into())),
            None => Err(StoreError::WriterGone("already finished".into())),
        }
    }

    /// Flushes every partition, waits for the writer and publishes the dead letter.
    pub fn finish(mut self) -> Result<IngestOutcome, StoreError> {
        let mut flush_error = None;
        if self.fatal.is_none() {
            let mut parts: Vec<(String, RecordBatch)> = Vec::new();
            for (_, mut p) in self.partitions.drain() {
                if p.rows > 0 {
                    match p.builder.to_record_batch() {
                        Ok(b) => parts.push((p.key, b)),
                        Err(e) => flush_error = Some(StoreError::from(e)),
                    }
                }
            }
            parts.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, batch) in parts {
                if let Err(e) = self.send(key, batch) {
                    flush_error.get_or_insert(e);
                    break;
                }
            }
        }
        drop(self.tx.take());
        let written = match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StoreError::WriterGone("the writer thread panicked".into())),
            None => Ok(Vec::new()),
        };
        // The writer's own error explains a closed channel better than the channel does.
        let files_written = written?;
        if let Some(e) = self.fatal.take().or(flush_error) {
            return Err(e);
        }
        let deadletter_reasons = self.deadletter.counts().clone();
        let deadletter_file = self.deadletter.finish()?;
        debug_assert!(self.counters.balanced(), "{:?}", self.counters);
        Ok(IngestOutcome {
            counters: self.counters,
            deadletter_reasons,
            deadletter_file,
            files_written,
        })
    }
}

fn days_since_epoch(t: DateTime<Utc>) -> i32 {
    t.timestamp().div_euclid(86_400) as i32
}

impl RecordSink for Ingest<'_> {
    fn records(&mut self, source: &str, batch: &[RawRecord<'_>]) -> ControlFlow<()> {
        for rec in batch {
            match &rec.rejected {
                Some(r) => self.reject(r, source, rec.position, rec.bytes),
                None => self.record(source, rec.position, rec.bytes, 0),
            }
            if self.fatal.is_some() {
                return ControlFlow::Break(());
            }
        }
        self.observer.batch_done();
        ControlFlow::Continue(())
    }
}
