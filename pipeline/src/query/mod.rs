//! SQL over the store with DataFusion: the engine behind `idgw query` (and the gateway).
//!
//! Tables are registered with their contract schemas, so a query runs (and returns no rows)
//! on a store that has no file yet, and a file published while a session lives is seen by
//! its next query: listing tables list the directory on every scan (DataFusion's cache of
//! file listings, on by default with no expiry, is turned off). Only queries run: DDL, DML
//! and `SET`-style statements are refused.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use idgw_schemas::rows::{alerts_schema, events_schema, identity_state_schema};

use crate::store::Store;

mod listing;
mod snapshot;
mod user_events;
mod user_rows;

pub use snapshot::SnapshotTable;
pub use user_events::{UserEvents, UserEventsError};

/// Parquet footers and page indexes kept between queries of a long-lived session, bytes.
/// They grow with the page count, which compaction's small pages raise; DataFusion's
/// default (50 MB) is small for a store of many days of such files.
const METADATA_CACHE_BYTES: usize = 512 << 20;

/// Query errors.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The store directory does not exist.
    #[error("no store at {0}")]
    NoStore(String),
    /// Planning or execution failed (bad SQL, unknown column, refused statement, …).
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
}

/// A table: its directory name, its schema and its partition columns.
type TableSpec = (&'static str, Schema, Vec<(String, DataType)>);

/// The tables of a store.
fn tables() -> Vec<TableSpec> {
    vec![
        ("events", events_schema(), vec![("date".to_owned(), DataType::Utf8)]),
        ("alerts", alerts_schema(), Vec::new()),
        ("identity_state", identity_state_schema(), Vec::new()),
    ]
}

/// A DataFusion session with the store's tables registered, each read from its files.
pub async fn session(store: &Store) -> Result<SessionContext, QueryError> {
    session_with(store, CacheManagerConfig::default().metadata_cache_limit, None).await
}

/// A session for SQL someone else wrote (the gateway's `query_sql`): sorts, joins and
/// aggregations share a pool of `memory_bytes` and fail the query past it (nothing spills
/// to disk), and recursive CTEs (unbounded iteration) are off.
pub async fn sandboxed_session(store: &Store, memory_bytes: usize) -> Result<SessionContext, QueryError> {
    session_with(
        store,
        CacheManagerConfig::default().metadata_cache_limit,
        Some(memory_bytes),
    )
    .await
}

/// A session for a long-lived server, and its tables held in memory.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // SessionContext has no Debug.
pub struct ServingSession {
    /// The session (all tables registered).
    pub ctx: SessionContext,
    /// `identity_state`, looked up by `user_id` or `user_login`.
    pub identity_state: Arc<SnapshotTable>,
    /// `alerts`, looked up by `alert_id`, and grouped by `user_id`.
    pub alerts: Arc<SnapshotTable>,
    /// One user's events, read without the planner.
    pub user_events: Arc<UserEvents>,
}

/// A session for a long-lived server (the gateway): as [`session`], but the small tables
/// (`alerts`, `identity_state`) are served from memory and reloaded when their files
/// change ([`SnapshotTable`]), and Parquet metadata is cached generously.
pub async fn serving_session(store: &Store) -> Result<ServingSession, QueryError> {
    let ctx = session_with(store, METADATA_CACHE_BYTES, None).await?;
    let identity_state = Arc::new(SnapshotTable::new(
        store.identity_state_dir(),
        Arc::new(identity_state_schema()),
        &["user_id", "user_login"],
    ));
    let alerts = Arc::new(
        SnapshotTable::new(store.alerts_dir(), Arc::new(alerts_schema()), &["alert_id"]).grouped_by("user_id"),
    );
    // Replaces the listing tables of the same names.
    ctx.deregister_table("identity_state")?;
    ctx.deregister_table("alerts")?;
    ctx.register_table("identity_state", Arc::clone(&identity_state) as _)?;
    ctx.register_table("alerts", Arc::clone(&alerts) as _)?;
    Ok(ServingSession {
        ctx,
        identity_state,
        alerts,
        user_events: Arc::new(UserEvents::new(store.events_dir())),
    })
}

async fn session_with(
    store: &Store,
    metadata_cache: usize,
    sandbox_memory: Option<usize>,
) -> Result<SessionContext, QueryError> {
    if !store.root().is_dir() {
        return Err(QueryError::NoStore(store.root().display().to_string()));
    }
    // Long-lived sessions (the gateway's) must see files published after they started.
    let mut runtime = RuntimeEnvBuilder::new().with_cache_manager(
        CacheManagerConfig::default()
            .with_list_files_cache_limit(0)
            .with_metadata_cache_limit(metadata_cache),
    );
    if let Some(bytes) = sandbox_memory {
        // No spilling: a worker killed at its time limit would leave its spill files behind,
        // and repeated queries could fill the disk the audit log lives on. Past the pool the
        // query fails.
        runtime = runtime.with_memory_limit(bytes, 1.0).with_disk_manager_builder(
            datafusion::execution::disk_manager::DiskManagerBuilder::default()
                .with_mode(datafusion::execution::disk_manager::DiskManagerMode::Disabled),
        );
    }
    let runtime = runtime.build_arc()?;
    // DataFusion's own settings may come from the environment (DATAFUSION_*), e.g.
    // DATAFUSION_EXECUTION_TARGET_PARTITIONS=1 or turning the pushdown below off.
    let mut config = SessionConfig::from_env()?;
    if sandbox_memory.is_some() {
        config.options_mut().execution.enable_recursive_ctes = false;
    }
    // Late materialization: filters are evaluated inside the Parquet scan, so a selective
    // lookup (one user's events, a few ids) decodes the other columns only for the rows
    // that pass instead of for every row of every row group it reads (docs/benchmarks.md).
    let parquet = &mut config.options_mut().execution.parquet;
    if std::env::var_os("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS").is_none() {
        parquet.pushdown_filters = true;
    }
    if std::env::var_os("DATAFUSION_EXECUTION_PARQUET_REORDER_FILTERS").is_none() {
        parquet.reorder_filters = true;
    }
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    for (name, schema, partitions) in tables() {
        let dir = store.root().join(name);
        let url = ListingTableUrl::parse(format!("{}/", dir.display()))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partitions);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(Arc::new(schema));
        ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    }
    Ok(ctx)
}

/// What a query over the store may be: a query. DDL, DML, `COPY` and statements (`SET`,
/// transactions) are refused by DataFusion with a message that says so.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Runs one read-only query.
pub async fn query(store: &Store, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    let ctx = session(store).await?;
    let df = ctx.sql_with_options(sql, read_only()).await?;
    Ok(df.collect().await?)
}
