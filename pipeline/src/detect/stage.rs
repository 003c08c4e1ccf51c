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
            resumed,
            error: None,
        })
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
