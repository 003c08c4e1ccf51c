//! Reading the store for the tools: DataFusion over the Parquet tables, the vector index.
//!
//! Every scan runs on the reader's own runtime, never on the threads that serve MCP
//! requests, and under a time limit; per-key reads (an identity, a user's alerts, one
//! user's pages of events, the vector index) run on a blocking thread, all of a call's
//! reads in one hop ([`StoreReader::blocking`]). One DataFusion session lives as long as the gateway:
//! the events listing table lists its directories on every scan, and `alerts` and
//! `identity_state` are held in memory and reloaded when their files change, so files a
//! running pipeline publishes (and the identity-state snapshot it replaces) are seen by the
//! next call without a restart. The vector index is held open between calls until a writer
//! asks for it ([`VectorCache`]).

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::json::ArrayWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use idgw_pipeline::detect::DetectConfig;
use idgw_pipeline::query::{SnapshotTable, UserEvents, UserEventsError};
use idgw_pipeline::vectors::{self, VectorError, VectorIndex, VectorsConfig};
use idgw_pipeline::{PipelineConfig, Store};
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// A row as JSON.
pub type Row = Map<String, Value>;

/// Data access failures, worded for the agent that will read them.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The store is not there.
    #[error("no store at {0}")]
    NoStore(String),
    /// Planning or running a query failed.
    #[error("{0}")]
    Query(String),
    /// The scan ran past its time limit.
    #[error("the query ran longer than {0} s and was stopped; narrow it (time range, user, LIMIT)")]
    Timeout(u64),
    /// The vector index failed.
    #[error("vector index: {0}")]
    Vectors(#[from] VectorError),
    /// The client cancelled the request.
    #[error("cancelled by the client")]
    Cancelled,
}

/// Where a long scan reports how far it got: `(done, total, message)`, forwarded to the
/// client as progress notifications when it asked for them.
#[derive(Debug, Clone, Default)]
pub struct Progress(Option<UnboundedSender<(u64, Option<u64>, String)>>);

impl Progress {
    /// A progress channel into `tx`.
    pub fn to(tx: UnboundedSender<(u64, Option<u64>, String)>) -> Self {
        Progress(Some(tx))
    }

    /// Reports (nothing happens when the client did not ask for progress).
    pub fn report(&self, done: u64, total: Option<u64>, message: &str) {
        if let Some(tx) = &self.0 {
            // The receiver is gone only when the request is over.
            let _ = tx.send((done, total, message.to_owned()));
        }
    }
}

impl From<UserEventsError> for DataError {
    fn from(e: UserEventsError) -> Self {
        DataError::Query(e.to_string())
    }
}

impl From<datafusion::error::DataFusionError> for DataError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        DataError::Query(e.to_string())
    }
}

/// Events of one user a tool holds in memory to filter and sort at most; beyond it (an
/// account under a long brute force, a service account) the tool scans the table.
pub const USER_TABLE_ROWS: usize = 100_000;

/// The store, as the tools see it.
#[derive(Clone)]
pub struct StoreReader {
    store: Store,
    session: SessionContext,
    lookups: Lookups,
    detect: DetectConfig,
    runtime: Arc<QueryRuntime>,
    timeout: Duration,
    cancel: CancellationToken,
    sql: Arc<SqlRunner>,
}

/// How `query_sql` runs: where, under which limits, how many at once.
#[derive(Debug)]
struct SqlRunner {
    /// The binary to start `sql-worker` from; in this process when absent (library tests).
    worker: Option<PathBuf>,
    limits: crate::sql_worker::SqlLimits,
    concurrent: usize,
    gate: tokio::sync::Semaphore,
}

/// How long a query waits for one of the running ones to finish before it is refused.
const SQL_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// The runtime scans run on. Dropped without waiting (the gateway is dropped on its own
/// async runtime, where a blocking shutdown would panic); its tasks are done by then.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn handle(&self) -> Option<&tokio::runtime::Runtime> {
        self.0.as_ref()
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader").field("store", &self.store).finish()
    }
}

impl StoreReader {
    /// Opens the store's tables (the store must exist; empty tables are fine).
    pub async fn open(root: PathBuf, config: &PipelineConfig, timeout: Duration) -> Result<Self, DataError> {
        let store = Store::at(root);
        if !store.root().is_dir() {
            return Err(DataError::NoStore(store.root().display().to_string()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("idgw-query")
            .enable_all()
            .build()
            .map_err(|e| DataError::Query(format!("starting the query runtime: {e}")))?;
        let runtime = QueryRuntime(Some(runtime));
        // Registering tables reads nothing (schemas come from the contracts).
        let serving = idgw_pipeline::query::serving_session(&store)
            .await
            .map_err(|e| DataError::Query(e.to_string()))?;
        let vector_cache = Arc::new(VectorCache {
            config: config.vectors.clone(),
            root: store.root().to_owned(),
            held: Mutex::new(None),
        });
        // Lets go of the shard within a fraction of a second of a pipeline asking for it,
        // also when no call comes; ends with the gateway (the cache is then gone).
        let watched = Arc::downgrade(&vector_cache);
        if let Some(rt) = runtime.handle() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(cache) = watched.upgrade() else { break };
                    // A stat per tick; dropping the shard (which flushes) runs off this thread.
                    if cache.is_held() && vectors::release_requested(&cache.config, &cache.root) {
                        tokio::task::spawn_blocking(move || cache.release_if_asked());
                    }
                }
            });
        }
        // The per-user reader's footers and the vector index, loaded before calls need
        // them: opening the shard takes ~350 ms, and its first moments slowed the calls
        // that came meanwhile.
        if let Some(rt) = runtime.handle() {
            let user_events = Arc::clone(&serving.user_events);
            let cache = Arc::clone(&vector_cache);
            rt.spawn_blocking(move || {
                match user_events.warm() {
                    Ok(files) => tracing::debug!(files, "events footers loaded"),
                    Err(e) => tracing::warn!(error = %e, "loading the events footers ahead of calls failed"),
                }
                if cache.config.exists(&cache.root) {
                    match cache.get() {
                        Ok(_) => tracing::debug!("vector index opened"),
                        // A pipeline may hold it; the first call that needs it tries again.
                        Err(e) => tracing::debug!(error = %e, "vector index not opened ahead of calls"),
                    }
                }
            });
        }
        Ok(StoreReader {
            store,
            session: serving.ctx,
            lookups: Lookups {
                identity_state: serving.identity_state,
                alerts: serving.alerts,
                user_events: serving.user_events,
                vector_cache,
            },
            detect: config.detect.clone(),
            runtime: Arc::new(runtime),
            timeout,
            cancel: CancellationToken::new(),
            sql: Arc::new(SqlRunner {
                worker: None,
                limits: crate::sql_worker::SqlLimits {
                    memory_bytes: 512 << 20,
                    max_rows: 1_000,
                    max_result_bytes: 16 << 20,
                    max_json_bytes: crate::tools::SQL_MAX_BYTES,
                },
                concurrent: 2,
                gate: tokio::sync::Semaphore::new(2),
            }),
        })
    }

    /// Runs `query_sql` in worker processes started from `exe` (`exe sql-worker`), each
    /// with a pool of `memory_bytes`, at most `concurrent` at once.
    pub fn with_sql_worker(mut self, exe: Option<PathBuf>, memory_bytes: u64, concurrent: usize) -> Self {
        self.sql = Arc::new(SqlRunner {
            worker: exe,
            limits: crate::sql_worker::SqlLimits {
                memory_bytes,
                ..self.sql.limits
            },
            concurrent: concurrent.max(1),
            gate: tokio::sync::Semaphore::new(concurrent.max(1)),
        });
        self
    }

    /// The same reader, whose scans stop when `cancel` fires (one per request).
    pub fn cancelled_by(&self, cancel: CancellationToken) -> Self {
        StoreReader { cancel, ..self.clone() }
    }

    /// The detection settings on-demand detections run with.
    pub fn detect_config(&self) -> &DetectConfig {
        &self.detect
    }

    /// The store directory.
    pub fn root(&self) -> &std::path::Path {
        self.store.root()
    }

    /// Runs `fut` on the query runtime, under the time limit.
    async fn on_query_runtime<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, DataError>> + Send + 'static,
    ) -> Result<T, DataError> {
        let limit = self.timeout;
        let runtime = self
            .runtime
            .handle()
            .ok_or_else(|| DataError::Query("the query runtime has shut down".into()))?;
        let mut task = runtime.spawn(async move {
            tokio::time::timeout(limit, fut)
                .await
                .unwrap_or(Err(DataError::Timeout(limit.as_secs())))
        });
        tokio::select! {
            joined = &mut task => joined.map_err(|e| DataError::Query(format!("the query task failed: {e}")))?,
            () = self.cancel.cancelled() => {
                // The scan stops too, not only the wait for it.
                task.abort();
                Err(DataError::Cancelled)
            }
        }
    }

    /// Streams `df`'s batches into `f`, which folds them into `state` (for scans too large to
    /// collect), on the query runtime; returns the final state.
    pub async fn fold<S: Send + 'static>(
        &self,
        df: DataFrame,
        state: S,
        mut f: impl FnMut(&mut S, &RecordBatch) -> Result<(), DataError> + Send + 'static,
    ) -> Result<S, DataError> {
        self.on_query_runtime(async move {
            let mut state = state;
            let mut stream = df.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                f(&mut state, &batch?)?;
            }
            Ok(state)
        })
        .await
    }

    /// Runs `f` with the store's per-key reads on a blocking thread, under the time limit
    /// and the request's cancellation: one hop off the request's thread, however many reads
    /// `f` makes (an analysis makes four; a hop each, through another runtime, cost more
    /// than the reads on two cores).
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Lookups) -> Result<T, DataError> + Send + 'static,
    ) -> Result<T, DataError> {
        let lookups = self.lookups.clone();
        let task = tokio::task::spawn_blocking(move || f(&lookups));
        let limit = self.timeout;
        tokio::select! {
            joined = tokio::time::timeout(limit, task) => match joined {
                Ok(done) => done.map_err(|e| DataError::Query(format!("the read task failed: {e}")))?,
                Err(_) => Err(DataError::Timeout(limit.as_secs())),
            },
            // A blocking read cannot be stopped; its answer is dropped.
            () = self.cancel.cancelled() => Err(DataError::Cancelled),
        }
    }

    /// The identity state of a user given by Okta id or login (from memory; reloaded when
    /// the pipeline has replaced the table's file).
    pub async fn identity(&self, user: &str) -> Result<Option<Row>, DataError> {
        let user = user.to_owned();
        self.blocking(move |l| l.identity(&user)).await
    }

    /// The alert with this id.
    pub async fn alert(&self, alert_id: &str) -> Result<Option<Row>, DataError> {
        let alert_id = alert_id.to_owned();
        self.blocking(move |l| l.alert(&alert_id)).await
    }

    /// A table as a DataFrame, for the tools to filter and sort.
    pub async fn table(&self, name: &str) -> Result<DataFrame, DataError> {
        Ok(self.session.table(name).await?)
    }

    /// The events of `user_id` (an Okta id) with `event_time` in `window` (epoch
    /// milliseconds) as a table of the `events` contract's `columns`, for the tools to
    /// filter and sort: read through the per-user reader ([`UserEvents`]), which skips the
    /// files and pages without the user (a query over the whole table would decode the
    /// `user_id` column of every file not yet sorted by compaction — every file of a live
    /// day). None when the user has more than [`USER_TABLE_ROWS`] such events: the caller
    /// scans instead, which keeps only the rows it returns.
    pub async fn user_events_table(
        &self,
        user_id: &str,
        window: std::ops::Range<i64>,
        columns: &[&str],
    ) -> Result<Option<DataFrame>, DataError> {
        let contract = idgw_schemas::rows::events_schema();
        let indices = columns
            .iter()
            .map(|c| contract.index_of(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DataError::Query(e.to_string()))?;
        let schema = Arc::new(
            contract
                .project(&indices)
                .map_err(|e| DataError::Query(e.to_string()))?,
        );
        let (user_id, of) = (user_id.to_owned(), Arc::clone(&schema));
        let batches = self
            .blocking(
                move |l| match l.user_events.read_as(&user_id, window, &of, USER_TABLE_ROWS) {
                    Err(UserEventsError::TooMany(rows)) => {
                        tracing::debug!(
                            user_id,
                            rows,
                            "more events than a per-user read holds; scanning instead"
                        );
                        Ok(None)
                    }
                    read => Ok(Some(read?)),
                },
            )
            .await?;
        let Some(batches) = batches else {
            return Ok(None);
        };
        let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
        Ok(Some(self.session.read_table(Arc::new(table))?))
    }

    /// Collects `df` into JSON rows.
    pub async fn rows(&self, df: DataFrame) -> Result<Vec<Row>, DataError> {
        self.on_query_runtime(async move { to_rows(&df.collect().await?) })
            .await
    }

    /// Runs one read-only SQL query and returns at most `max_rows` rows (`truncated` when
    /// there were more, or when the result passed its byte limit). DDL, DML, `COPY` and
    /// statements are refused by DataFusion's options; several statements by the parser.
    /// It runs sandboxed ([`crate::sql_worker`]), at most a few at once.
    pub async fn sql(&self, sql: &str, max_rows: usize) -> Result<(Vec<Row>, bool), DataError> {
        let runner = Arc::clone(&self.sql);
        let _permit = match tokio::time::timeout(SQL_QUEUE_WAIT, runner.gate.acquire()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(DataError::Query(format!(
                    "{} queries are already running (the limit); try again in a moment",
                    runner.concurrent
                )));
            }
        };
        let limits = crate::sql_worker::SqlLimits {
            max_rows: max_rows.min(runner.limits.max_rows),
            ..runner.limits
        };
        let (root, sql) = (self.store.root().to_owned(), sql.to_owned());
        match &runner.worker {
            Some(exe) => {
                let run = crate::sql_worker::run_in_worker(exe, &root, &sql, limits, self.timeout);
                tokio::select! {
                    r = run => r,
                    () = self.cancel.cancelled() => Err(DataError::Cancelled),
                }
            }
            None => {
                self.on_query_runtime(async move { crate::sql_worker::run_here(&root, &sql, limits).await })
                    .await
            }
        }
    }

    /// Runs `f` with the vector index ([`Lookups::with_vectors`]).
    pub async fn with_vectors<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn VectorIndex) -> Result<T, DataError> + Send + 'static,
    ) -> Result<T, DataError> {
        self.blocking(move |l| l.with_vectors(f)).await
    }

    /// Whether there is a vector index to read (a server, or the store's embedded shard).
    pub fn has_vectors(&self) -> bool {
        self.lookups.has_vectors()
    }
}

/// The store's per-key reads, synchronous (they touch memory and a few pages of files):
/// run them through [`StoreReader::blocking`].
#[derive(Clone)]
pub struct Lookups {
    identity_state: Arc<SnapshotTable>,
    alerts: Arc<SnapshotTable>,
    user_events: Arc<UserEvents>,
    vector_cache: Arc<VectorCache>,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups").finish_non_exhaustive()
    }
}

impl Lookups {
    /// The identity state of a user given by Okta id or login.
    pub fn identity(&self, user: &str) -> Result<Option<Row>, DataError> {
        lookup(&self.identity_state, user)
    }

    /// The alert with this id.
    pub fn alert(&self, alert_id: &str) -> Result<Option<Row>, DataError> {
        lookup(&self.alerts, alert_id)
    }

    /// The alerts of the user with Okta id `user_id`, one batch.
    pub fn alerts_of(&self, user_id: &str) -> Result<Option<RecordBatch>, DataError> {
        Ok(self.alerts.rows_where(user_id)?)
    }

    /// The `columns` of the events of `user_id` (an Okta id) at or after `since_ms`, read
    /// from the pages that can hold them without planning a query ([`UserEvents`]).
    pub fn user_events(
        &self,
        user_id: &str,
        since_ms: i64,
        columns: &[&'static str],
    ) -> Result<Vec<RecordBatch>, DataError> {
        Ok(self.user_events.read(user_id, since_ms, columns)?)
    }

    /// Runs `f` with the vector index, opened on first use and kept open between calls
    /// (opening an embedded shard of 100,000 points takes ~350 ms, a search ~0.3 ms). A
    /// pipeline that wants the embedded shard asks for it and the gateway lets go
    /// ([`VectorCache`]); while a pipeline holds it, this fails with a clear message.
    pub fn with_vectors<T>(&self, f: impl FnOnce(&dyn VectorIndex) -> Result<T, DataError>) -> Result<T, DataError> {
        let index = self.vector_cache.get()?;
        f(index.as_ref())
    }

    /// Whether there is a vector index to read (a server, or the store's embedded shard).
    pub fn has_vectors(&self) -> bool {
        self.vector_cache.config.exists(&self.vector_cache.root)
    }
}

fn lookup(table: &SnapshotTable, key: &str) -> Result<Option<Row>, DataError> {
    match table.lookup(key)? {
        Some(batch) => Ok(to_rows(&[batch])?.pop()),
        None => Ok(None),
    }
}

/// The vector index, held open between calls while nobody else wants it.
///
/// qdrant-edge admits one process per shard. The gateway keeps the shard it opened until a
/// writer (replay, pipeline, `idgw baseline`) asks for it through the file
/// [`vectors::release_requested`] checks; from then until that writer is done, calls fail
/// with [`VectorError::Busy`] and the next call after it opens the shard afresh (and so sees
/// what the writer added). A Qdrant server connection is simply kept.
struct VectorCache {
    config: VectorsConfig,
    root: PathBuf,
    held: Mutex<Option<Arc<dyn VectorIndex>>>,
}

impl VectorCache {
    fn get(&self) -> Result<Arc<dyn VectorIndex>, VectorError> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if vectors::release_requested(&self.config, &self.root) {
            *held = None;
        }
        if let Some(index) = held.as_ref() {
            return Ok(Arc::clone(index));
        }
        let index: Arc<dyn VectorIndex> = Arc::from(vectors::try_open(&self.config, &self.root)?);
        *held = Some(Arc::clone(&index));
        Ok(index)
    }

    /// Whether the shard is held (false while a call is opening it: the next tick looks
    /// again, and the watcher never waits on an open in progress).
    fn is_held(&self) -> bool {
        self.held.try_lock().is_ok_and(|held| held.is_some())
    }

    /// Drops the shard when a writer asked for it (a call still using it keeps it until it
    /// returns).
    fn release_if_asked(&self) {
        if vectors::release_requested(&self.config, &self.root) {
            let released = self
                .held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if released.is_some() {
                tracing::info!("vector index released: a pipeline asked for it");
            }
        }
    }
}

/// Record batches → JSON objects (Arrow's own JSON writer: timestamps as RFC 3339 text).
pub fn to_rows(batches: &[RecordBatch]) -> Result<Vec<Row>, DataError> {
    let mut writer = ArrayWriter::new(Vec::new());
    for b in batches {
        writer.write(b).map_err(|e| DataError::Query(e.to_string()))?;
    }
    writer.finish().map_err(|e| DataError::Query(e.to_string()))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| DataError::Query(e.to_string()))
}
