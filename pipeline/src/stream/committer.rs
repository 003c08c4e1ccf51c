//! The committer: a worker's thread that makes sealed cycles durable while the lanes go on
//! reading. Closing a cycle on the consumer's thread (waiting for its Parquet files,
//! serializing every user's engine state, fsyncs) stopped every partition for hundreds of
//! milliseconds every commit interval, and the alerts of the events that arrived meanwhile
//! waited with them.
//!
//! Jobs run in the order they were sent, one at a time, so a lane's checkpoints are written
//! in cycle order. For each job, the sinks outside the store are flushed first (the alerts
//! the sealed cycles raised are delivered before any checkpoint says they were), then each
//! cycle is written ([`SealedCycle::write`]) and the behaviour vectors it changed are
//! upserted. Cycles of a partition lost meanwhile are dropped. The first failure stops the
//! committer: nothing later is made durable, and the worker stops on it (a restart resumes
//! from the last checkpoints).

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::kafka_out::{KafkaOut, ProduceError};
use super::lane::{Committed, LaneId, SealedCycle};
use super::metrics::Metrics;
use super::worker::WorkerError;
use crate::vectors::VectorIndex;

/// What the committer needs besides the cycles: the sinks to flush and the vector index.
pub struct Sinks {
    pub kafka: Option<Arc<KafkaOut>>,
    /// A handle on `alerts.jsonl`, synced before each job's checkpoints.
    pub alert_log: std::fs::File,
    pub vectors: Option<Box<dyn VectorIndex>>,
    pub metrics: Arc<Metrics>,
    /// Partitions lost since their cycles were sealed: those cycles are dropped, not
    /// written (the partitions' new owners read them again from the last checkpoints).
    pub lost: Lost,
}

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinks")
            .field("kafka", &self.kafka.is_some())
            .field("vectors", &self.vectors.is_some())
            .finish_non_exhaustive()
    }
}

/// The partitions a worker lost (shared with its committer).
pub type Lost = Arc<Mutex<BTreeSet<LaneId>>>;

struct Job {
    cycles: Vec<SealedCycle>,
    sealed_at: Instant,
}

/// The committer thread and its queues.
pub struct Committer {
    jobs: Option<Sender<Job>>,
    done: Receiver<Result<Vec<Committed>, WorkerError>>,
    thread: Option<JoinHandle<()>>,
    in_flight: usize,
    /// Cycles made durable and received while waiting for room in the queue.
    early: Vec<Committed>,
}

/// Jobs queued at most: each holds a copy of its lanes' engine state, so a committer that
/// falls behind (a slow disk) slows the consumer down instead of filling the memory.
const MAX_IN_FLIGHT: usize = 8;

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").field("in_flight", &self.in_flight).finish()
    }
}

impl Committer {
    /// Starts the thread.
    pub fn start(sinks: Sinks) -> Result<Self, WorkerError> {
        let (jobs, queue) = channel::<Job>();
        let (report, done) = channel();
        let thread = std::thread::Builder::new()
            .name("idgw-commit".into())
            .spawn(move || run(sinks, &queue, &report))
            .map_err(|e| WorkerError::Committer(format!("starting the committer thread: {e}")))?;
        Ok(Committer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: 0,
            early: Vec::new(),
        })
    }

    /// Queues cycles sealed together (nothing when empty).
    pub fn submit(&mut self, cycles: Vec<SealedCycle>) -> Result<(), WorkerError> {
        if cycles.is_empty() {
            return Ok(());
        }
        while self.in_flight >= MAX_IN_FLIGHT {
            let done = self.next()?;
            self.early.extend(done);
        }
        let job = Job {
            cycles,
            sealed_at: Instant::now(),
        };
        match &self.jobs {
            Some(tx) if tx.send(job).is_ok() => {
                self.in_flight += 1;
                Ok(())
            }
            _ => Err(self.gone()),
        }
    }

    /// The cycles made durable since the last call, without waiting; the committer's
    /// failure if it stopped.
    pub fn completed(&mut self) -> Result<Vec<Committed>, WorkerError> {
        let mut out = std::mem::take(&mut self.early);
        while self.in_flight > 0 {
            match self.done.try_recv() {
                Ok(result) => {
                    self.in_flight -= 1;
                    out.extend(result?);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(self.gone()),
            }
        }
        Ok(out)
    }

    /// Waits until every queued cycle is durable; returns those not reported yet.
    pub fn wait(&mut self) -> Result<Vec<Committed>, WorkerError> {
        let mut out = std::mem::take(&mut self.early);
        while self.in_flight > 0 {
            out.extend(self.next()?);
        }
        Ok(out)
    }

    /// Waits for the oldest job in flight.
    fn next(&mut self) -> Result<Vec<Committed>, WorkerError> {
        match self.done.recv() {
            Ok(result) => {
                self.in_flight -= 1;
                result
            }
            Err(_) => Err(self.gone()),
        }
    }

    fn gone(&mut self) -> WorkerError {
        self.jobs = None;
        let panicked = self.thread.take().is_some_and(|t| t.join().is_err());
        WorkerError::Committer(if panicked {
            "the committer thread panicked".into()
        } else {
            "the committer stopped after a failure".into()
        })
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has finished what it holds.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(mut sinks: Sinks, queue: &Receiver<Job>, report: &Sender<Result<Vec<Committed>, WorkerError>>) {
    lower_priority();
    while let Ok(job) = queue.recv() {
        let result = commit(&mut sinks, job);
        let failed = result.is_err();
        if report.send(result).is_err() || failed {
            return;
        }
    }
}

/// Puts this thread below the consumer's (nice 10): nobody waits for what it writes, while
/// the alerts of the events the consumer takes are waited for, and on two cores its bursts
/// of serializing and compressing delayed them.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
        // The crate maps 0..=99 onto niceness 19..=-20; 22 is niceness 10.
        let result = ThreadPriorityValue::try_from(22u8)
            .map_err(|e| format!("{e:?}"))
            .and_then(|p| set_current_thread_priority(ThreadPriority::Crossplatform(p)).map_err(|e| format!("{e:?}")));
        if let Err(e) = result {
            tracing::debug!(error = %e, "the committer thread keeps the default priority");
        }
    }
}

fn commit(sinks: &mut Sinks, job: Job) -> Result<Vec<Committed>, WorkerError> {
    if let Some(out) = &sinks.kafka
        && let Err(e) = out.flush(Duration::from_secs(60))
    {
        if let ProduceError::Deliveries(n) = &e {
            sinks.metrics.produce_errors.inc_by(*n);
        }
        return Err(e.into());
    }
    sinks
        .alert_log
        .sync_data()
        .map_err(|e| WorkerError::AlertLog(e.into()))?;
    let mut committed = Vec::with_capacity(job.cycles.len());
    let mut upserted = false;
    for cycle in job.cycles {
        let lane: LaneId = cycle.lane().clone();
        if sinks.lost.lock().unwrap_or_else(|e| e.into_inner()).contains(&lane) {
            tracing::warn!(%lane, "partition lost before its cycle was written; dropped");
            cycle.discard();
            continue;
        }
        let mut c = cycle.write()?;
        if let Some(index) = sinks.vectors.as_deref()
            && !c.vectors.is_empty()
        {
            index.upsert(&std::mem::take(&mut c.vectors))?;
            upserted = true;
        }
        tracing::debug!(%lane, offset = c.next_offset, "cycle committed");
        committed.push(c);
    }
    // A job whose cycles changed no vector leaves the index as it was: nothing to flush.
    if upserted && let Some(index) = sinks.vectors.as_deref() {
        index.flush()?;
    }
    sinks
        .metrics
        .commit_seconds
        .observe(job.sealed_at.elapsed().as_secs_f64());
    Ok(committed)
}
