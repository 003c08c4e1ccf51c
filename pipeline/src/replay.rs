//! `idgw replay`: files in, store out, and a summary whose counters add up.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use idgw_schemas::Detection;

use crate::config::PipelineConfig;
use crate::detect::stage::{DetectOutcome, DetectStage, StageError};
use crate::ingest::{Counters, EventObserver, Ingest};
use crate::par::Helpers;
use crate::source::file::{Input, ReadLimits, RecordSink, SourceError, read_input};
use crate::store::{Store, StoreError};

/// Replay failures (input errors are not failures: they are reported in the summary).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store could not be written.
    #[error("store {path}: {source}")]
    Store { path: String, source: StoreError },
    /// The detection stage failed (alerts, identity state or checkpoint).
    #[error("detection stage in {path}: {source}")]
    Detect { path: String, source: StageError },
    /// The decoding threads could not be started.
    #[error("starting {threads} ingest threads: {source}")]
    Threads {
        threads: usize,
        source: rayon::ThreadPoolBuildError,
    },
}

/// One input's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct InputSummary {
    /// The input's name (`-` for stdin).
    pub name: String,
    /// Records read from it.
    pub records: u64,
    /// Why reading stopped early, if it did; the records before are kept.
    pub error: Option<String>,
}

/// The replay summary (`--summary-json`). The first seven keys are a contract.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub events_in: u64,
    pub events_ok: u64,
    pub deadlettered: u64,
    pub duplicates: u64,
    /// Alerts raised and written (new to the store).
    pub alerts: u64,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    /// User + system CPU seconds the process used during the replay, all threads (Linux;
    /// absent elsewhere).
    pub cpu_s: Option<f64>,
    /// `events_in / cpu_s`: the per-core rate the benchmarks report.
    pub events_per_cpu_s: Option<f64>,
    /// Where the time went (docs/benchmarks.md, "Where the time goes").
    pub stages: Stages,
    /// Threads the replay shared decoding and normalizing across, the ingest thread
    /// included, as configured (`[ingest] threads`, `--threads`); the Parquet writer's
    /// thread is not counted.
    pub threads: usize,
    /// True when `events_in == events_ok + deadlettered + duplicates`.
    pub balanced: bool,
    /// Alerts by detection.
    pub alerts_by_detection: BTreeMap<Detection, u64>,
    /// Alerts the store already held (a replay of known evidence raises nothing new).
    pub duplicate_alerts: u64,
    /// Events later than the allowed lateness (stored and ruled on, not windowed).
    pub late_events: u64,
    /// Rule hits held by alert aggregation (stored, counted, not alerted one by one).
    pub aggregated_hits: u64,
    /// Alerts a suppression matched: stored and marked, out of risk.
    pub suppressed_alerts: u64,
    /// Findings of detections turned off in the configuration.
    pub disabled_findings: u64,
    /// Users in identity state.
    pub users: usize,
    /// Whether detection resumed from the store's checkpoint.
    pub resumed: bool,
    /// Behaviour vectors written to the vector index.
    pub vectors_upserted: u64,
    /// The vector backend (`qdrant-edge`, `qdrant-server`), when the index is on.
    pub vector_backend: Option<&'static str>,
    /// Dead letters by reason.
    pub deadletter_reasons: BTreeMap<String, u64>,
    /// The dead-letter file of this run, if any record was rejected.
    pub deadletter_file: Option<String>,
    /// Parquet files published.
    pub files_written: usize,
    /// Per input.
    pub inputs: Vec<InputSummary>,
    /// The store directory.
    pub store: String,
}

/// Where a replay's time went, in seconds. `read_s` is what remains of the wall time after
/// the other ingest-thread stages (reading and splitting the input, opening the store);
/// Parquet writing overlaps them on its own thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stages {
    /// Reading the input and everything else outside the stages below.
    pub read_s: f64,
    /// Decoding, normalizing, dedup, Arrow rows (wall time: with more than one thread,
    /// decoding and normalizing are shared).
    pub parse_s: f64,
    /// Detection, risk and behaviour profiles (with more than one thread, the Arrow rows are
    /// appended on another thread meanwhile: this is the longer of the two).
    pub detect_s: f64,
    /// Flushing detection at the end: alerts, identity state, vectors, checkpoint.
    pub finish_s: f64,
    /// Parquet encoding and writing (its own thread, overlapping the others).
    pub parquet_write_s: f64,
}

impl Summary {
    /// True when some input could not be read to its end.
    pub fn has_input_errors(&self) -> bool {
        self.inputs.iter().any(|i| i.error.is_some())
    }
}

/// Replays `inputs` into `store`, running detections unless `config.detect.enabled` is off.
/// `progress` is called after each batch with the counters.
pub fn replay(
    inputs: &[Input],
    store: &Store,
    config: &PipelineConfig,
    progress: &mut dyn FnMut(&Counters),
) -> Result<Summary, ReplayError> {
    let started = Instant::now();
    let cpu = crate::process::CpuSpan::start();
    let store_err = |source| ReplayError::Store {
        path: store.root().display().to_string(),
        source,
    };
    let detect_err = |source| ReplayError::Detect {
        path: store.root().display().to_string(),
        source,
    };
    let run_id = run_id();
    let mut stage = if config.detect.enabled {
        // In-line on the ingest thread: a separate detect thread measured slower on two
        // cores (docs/benchmarks.md).
        Some(DetectStage::start(store, config, &run_id).map_err(detect_err)?)
    } else {
        None
    };
    let mut nothing = ();
    let observer: &mut dyn EventObserver = match stage.as_mut() {
        Some(s) => s,
        None => &mut nothing,
    };
    let threads = config.ingest.threads();
    let helpers = Helpers::new(threads, "ingest").map_err(|source| ReplayError::Threads { threads, source })?;
    let mut ingest = Ingest::start(store, config, &run_id, observer)
        .map_err(store_err)?
        .share_with(helpers.map(std::sync::Arc::new));
    let limits = ReadLimits {
        max_event_bytes: config.ingest.max_event_bytes,
        batch_bytes: if threads > 1 {
            config.ingest.shared_batch_bytes
        } else {
            config.ingest.read_batch_bytes
        },
    };
    let mut input_summaries = Vec::with_capacity(inputs.len());
    for input in inputs {
        let mut sink = Progressing {
            inner: &mut ingest,
            progress: &mut *progress,
        };
        let (records, error) = match read_input(input, limits, &mut sink) {
            Ok(n) => (n, None),
            Err(e @ SourceError::Open { .. }) => (0, Some(e.to_string())),
            Err(e @ SourceError::Read { records, .. }) => (records, Some(e.to_string())),
        };
        if let Some(e) = &error {
            tracing::error!(input = %input.name(), error = %e, "input not read to its end");
        }
        input_summaries.push(InputSummary {
            name: input.name(),
            records,
            error,
        });
        if ingest.failed() {
            break;
        }
    }
    let outcome = ingest.finish().map_err(store_err)?;
    let finishing = Instant::now();
    let detected = match stage {
        Some(s) => s.finish().map_err(detect_err)?.0,
        None => DetectOutcome::default(),
    };
    let finish_s = finishing.elapsed().as_secs_f64();
    let elapsed_s = started.elapsed().as_secs_f64();
    let cpu_s = cpu.seconds();
    let t = outcome.times;
    let stages = Stages {
        read_s: (elapsed_s - t.parse_s - t.detect_s - finish_s).max(0.0),
        parse_s: t.parse_s,
        detect_s: t.detect_s,
        finish_s,
        parquet_write_s: t.parquet_write_s,
    };
    let c = outcome.counters;
    Ok(Summary {
        events_in: c.events_in,
        events_ok: c.events_ok,
        deadlettered: c.deadlettered,
        duplicates: c.duplicates,
        alerts: detected.alerts,
        elapsed_s,
        stages,
        threads,
        events_per_s: if elapsed_s > 0.0 {
            c.events_in as f64 / elapsed_s
        } else {
            0.0
        },
        cpu_s,
        events_per_cpu_s: cpu_s.filter(|s| *s > 0.0).map(|s| c.events_in as f64 / s),
        balanced: c.balanced(),
        alerts_by_detection: detected.alerts_by_detection,
        duplicate_alerts: detected.duplicate_alerts,
        late_events: detected.late_events,
        aggregated_hits: detected.aggregated_hits,
        suppressed_alerts: detected.suppressed_alerts,
        disabled_findings: detected.disabled_findings,
        users: detected.users,
        resumed: detected.resumed,
        vectors_upserted: detected.vectors_upserted,
        vector_backend: detected.vector_backend,
        deadletter_reasons: outcome
            .deadletter_reasons
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        deadletter_file: outcome.deadletter_file.map(|p| p.display().to_string()),
        files_written: outcome.files_written.len(),
        inputs: input_summaries,
        store: store.root().display().to_string(),
    })
}

/// A run id that sorts by time and is unique across workers.
pub fn run_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{now}-{}", &rand[..8])
}

struct Progressing<'a, 'o> {
    inner: &'a mut Ingest<&'o mut dyn EventObserver>,
    progress: &'a mut dyn FnMut(&Counters),
}

impl RecordSink for Progressing<'_, '_> {
    fn records(&mut self, source: &str, batch: &[crate::source::file::RawRecord<'_>]) -> std::ops::ControlFlow<()> {
        let flow = self.inner.records(source, batch);
        (self.progress)(&self.inner.counters());
        flow
    }
}
