//! The detection stage as the ingest stage's observer: events go through the engine, and
//! after every input batch the new alerts go to the store's alert sink (not one write per
//! event); changed behaviour vectors go to the vector index every few seconds, in one batch.
//! At the end: flush the reorder buffer, write alerts, identity state and vectors, then the
//! checkpoint (last, so it never runs ahead of what the sinks hold).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use idgw_schemas::{Detection, SemanticEvent};
use serde::Serialize;

use super::checkpoint::CheckpointError;
use super::{Engine, EngineStats};
use crate::config::PipelineConfig;
use crate::ingest::EventObserver;
use crate::store::alerts::{AlertSink, write_identity_state};
use crate::store::{Store, StoreError};
use crate::vectors::{self, VectorError, VectorIndex};

/// Upserts in one run above which the embedded index is optimized at the end (a bulk load:
/// below it, searches scan the few points plainly and fast).
const BULK_POINTS: u64 = 1_000;

/// Detection stage failures.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Writing alerts or identity state.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing the engine checkpoint.
    #[error("engine checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// Opening or writing the vector index.
    #[error("vector index: {0}")]
    Vectors(#[from] VectorError),
    /// The store's suppressions file cannot be applied.
    #[error(transparent)]
    Tuning(#[from] super::tuning::TuningError),
}

/// A failure while events flow, reported at the end.
#[derive(Debug)]
enum Failure {
    Store(StoreError),
    Vectors(VectorError),
}

/// What the stage did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DetectOutcome {
    /// Alerts written (new to the store).
    pub alerts: u64,
    /// Alerts by detection.
    pub alerts_by_detection: BTreeMap<Detection, u64>,
    /// Alerts the store already held (a replay of known evidence).
    pub duplicate_alerts: u64,
    /// Events later than the allowed lateness.
    pub late_events: u64,
    /// Rule hits held by alert aggregation.
    pub aggregated_hits: u64,
    /// Alerts a suppression matched (stored, marked).
    pub suppressed_alerts: u64,
    /// Findings of detections turned off.
    pub disabled_findings: u64,
    /// Users in identity state.
    pub users: usize,
    /// Whether the engine resumed from a checkpoint.
    pub resumed: bool,
    /// Behaviour vectors written to the index (`qdrant-edge` or `qdrant-server`), if on.
    pub vectors_upserted: u64,
    /// The vector backend, when the index is on.
    pub vector_backend: Option<&'static str>,
}

/// Engine plus sink.
#[derive(Debug)]
pub struct DetectStage {
    engine: Engine,
    sink: AlertSink,
    store: Store,
    run_id: String,
    resumed: bool,
    vectors: Option<Box<dyn VectorIndex>>,
    vector_interval: Duration,
    vectors_sent: Instant,
    vectors_upserted: u64,
    error: Option<Failure>,
}

impl DetectStage {
    /// Starts the stage on `store`, resuming the engine from the store's checkpoint and
    /// opening the vector index unless `config.vectors.enabled` is off.
    pub fn start(store: &Store, config: &PipelineConfig, run_id: &str) -> Result<Self, StageError> {
        let mut engine = Engine::new(&config.detect);
        let suppressions = super::tuning::read_store_file(store.root())?;
        if !suppressions.is_empty() {
            let ids: Vec<&str> = suppressions.iter().map(|s| s.id.as_str()).collect();
            tracing::info!(count = ids.len(), ids = ?ids, "store suppressions in force");
        }
        engine.add_suppressions(suppressions)?;
        let resumed = engine.load(&store.engine_checkpoint())?;
        let vectors = if config.vectors.enabled {
            Some(vectors::open(&config.vectors, store.root())?)
        } else {
            None
        };
        Ok(DetectStage {
            engine,
            sink: AlertSink::open(store, run_id)?,
            store: store.clone(),
            run_id: run_id.to_owned(),
            resumed,
            vectors,
            vector_interval: Duration::from_secs(config.vectors.flush_interval_s),
            vectors_sent: Instant::now(),
            vectors_upserted: 0,
            error: None,
        })
    }

    /// Upserts the vectors that changed, in one batch.
    fn send_vectors(&mut self) -> Result<(), VectorError> {
        self.vectors_sent = Instant::now();
        let Some(index) = self.vectors.as_deref() else {
            return Ok(());
        };
        let points = self.engine.take_vectors(false);
        index.upsert(&points)?;
        self.vectors_upserted += points.len() as u64;
        Ok(())
    }

    fn drain(&mut self) -> Result<(), StoreError> {
        let alerts = self.engine.take_alerts();
        if alerts.is_empty() {
            return Ok(());
        }
        self.sink.write(alerts)?;
        Ok(())
    }

    /// Flushes the engine and writes alerts, identity state and the checkpoint.
    pub fn finish(mut self) -> Result<(DetectOutcome, EngineStats), StageError> {
        match self.error.take() {
            Some(Failure::Store(e)) => return Err(e.into()),
            Some(Failure::Vectors(e)) => return Err(e.into()),
            None => {}
        }
        self.engine.flush();
        self.drain()?;
        self.send_vectors()?;
        if let Some(index) = self.vectors.as_deref() {
            if self.vectors_upserted >= BULK_POINTS {
                index.optimize()?;
            }
            index.flush()?;
        }
        let duplicate_alerts = self.sink.duplicates();
        let run = self.sink.finish()?;
        let mut by_detection = BTreeMap::new();
        for a in &run {
            *by_detection.entry(a.detection).or_default() += 1u64;
        }
        write_identity_state(&self.store, &self.engine.identity_states(), &self.run_id)?;
        self.engine.save(&self.store.engine_checkpoint())?;
        let stats = self.engine.stats();
        Ok((
            DetectOutcome {
                alerts: run.len() as u64,
                alerts_by_detection: by_detection,
                duplicate_alerts,
                late_events: stats.late_events,
                aggregated_hits: stats.aggregated_hits,
                suppressed_alerts: stats.suppressed_alerts,
                disabled_findings: stats.disabled_findings,
                users: stats.users,
                resumed: self.resumed,
                vectors_upserted: self.vectors_upserted,
                vector_backend: self.vectors.as_deref().map(|v| v.backend()),
            },
            stats,
        ))
    }
}

impl EventObserver for DetectStage {
    fn on_event(&mut self, event: &SemanticEvent<'_>) {
        self.engine.process(event);
    }

    fn batch_done(&mut self) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.drain() {
            self.error = Some(Failure::Store(e));
        } else if self.vectors.is_some()
            && self.vectors_sent.elapsed() >= self.vector_interval
            && let Err(e) = self.send_vectors()
        {
            self.error = Some(Failure::Vectors(e));
        }
    }
}
