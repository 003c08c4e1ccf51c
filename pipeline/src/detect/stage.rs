//! The detection stage as the ingest stage's observer: events go through the engine, and
//! after every input batch the new alerts go to the store's alert sink (not one write per
//! event). At the end: flush the reorder buffer, write alerts, identity state and the
//! checkpoint.

use std::collections::BTreeMap;

use idgw_schemas::{Detection, SemanticEvent};
use serde::Serialize;

use super::checkpoint::CheckpointError;
use super::{DetectConfig, Engine, EngineStats};
use crate::ingest::EventObserver;
use crate::store::alerts::{AlertSink, write_identity_state};
use crate::store::{Store, StoreError};

/// Detection stage failures.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Writing alerts or identity state.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing the engine checkpoint.
    #[error("engine checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
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
    /// Users in identity state.
    pub users: usize,
    /// Whether the engine resumed from a checkpoint.
    pub resumed: bool,
}

/// Engine plus sink.
#[derive(Debug)]
pub struct DetectStage {
    engine: Engine,
    sink: AlertSink,
    store: Store,
    run_id: String,
    written: u64,
    resumed: bool,
    error: Option<StoreError>,
}

impl DetectStage {
    /// Starts the stage on `store`, resuming the engine from the store's checkpoint.
    pub fn start(store: &Store, config: &DetectConfig, run_id: &str) -> Result<Self, StageError> {
        let mut engine = Engine::new(config);
        let resumed = engine.load(&store.engine_checkpoint())?;
        Ok(DetectStage {
            engine,
            sink: AlertSink::open(store, run_id)?,
            store: store.clone(),
            run_id: run_id.to_owned(),
            written: 0,
            resumed,
            error: None,
        })
    }

    fn drain(&mut self) -> Result<(), StoreError> {
        let alerts = self.engine.take_alerts();
        if alerts.is_empty() {
            return Ok(());
        }
        self.written += self.sink.write(alerts)? as u64;
        Ok(())
    }

    /// Flushes the engine and writes alerts, identity state and the checkpoint.
    pub fn finish(mut self) -> Result<(DetectOutcome, EngineStats), StageError> {
        if let Some(e) = self.error.take() {
            return Err(e.into());
        }
        self.engine.flush();
        self.drain()?;
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
                users: stats.users,
                resumed: self.resumed,
            },
            stats,
        ))
    }

    /// Alerts written so far.
    pub fn alerts_written(&self) -> u64 {
        self.written
    }
}

impl EventObserver for DetectStage {
    fn on_event(&mut self, event: &SemanticEvent) {
        self.engine.process(event);
    }

    fn batch_done(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.drain()
        {
            self.error = Some(e);
        }
    }
}

/// The detection stage on its own thread: the ingest thread hands over each input batch's
/// events (moved, not cloned) through a small bounded channel, so decoding and detection
/// overlap on two cores and a slow detector applies back-pressure instead of buffering.
#[derive(Debug)]
pub struct ThreadedStage {
    batch: Vec<SemanticEvent>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<SemanticEvent>>>,
    worker: Option<std::thread::JoinHandle<DetectStage>>,
}

impl ThreadedStage {
    /// Starts `stage` on a thread named `detect`.
    pub fn spawn(stage: DetectStage) -> Result<Self, StageError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<SemanticEvent>>(2);
        let worker = std::thread::Builder::new()
            .name("detect".into())
            .spawn(move || {
                let mut stage = stage;
                for batch in rx {
                    for ev in &batch {
                        stage.on_event(ev);
                    }
                    stage.batch_done();
                }
                stage
            })
            .map_err(|e| StageError::Store(StoreError::Io(e)))?;
        Ok(ThreadedStage {
            batch: Vec::new(),
            tx: Some(tx),
            worker: Some(worker),
        })
    }

    fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if let Some(tx) = &self.tx
            && tx.send(batch).is_err()
        {
            // The thread is gone (it panicked); `finish` reports it.
            self.tx = None;
        }
    }

    /// Hands over the last events, waits for the thread and finishes the stage.
    pub fn finish(mut self) -> Result<(DetectOutcome, EngineStats), StageError> {
        self.send();
        drop(self.tx.take());
        match self.worker.take().map(std::thread::JoinHandle::join) {
            Some(Ok(stage)) => stage.finish(),
            _ => Err(StageError::Store(StoreError::WriterGone(
                "the detection thread stopped".into(),
            ))),
        }
    }
}

impl EventObserver for ThreadedStage {
    fn on_event(&mut self, event: &SemanticEvent) {
        self.batch.push(event.clone());
    }

    fn take_event(&mut self, event: SemanticEvent) {
        self.batch.push(event);
    }

    fn batch_done(&mut self) {
        self.send();
    }
}
