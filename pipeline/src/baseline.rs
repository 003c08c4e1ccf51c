//! `idgw baseline build`: per-user behaviour profiles computed in batch from the historical
//! `events` table with polars, seeded into the detection engine's state, so a deployment
//! that imports history does not start every user cold.
//!
//! polars scans the Parquet files (projection and the sign-in filter pushed into the scan)
//! and sorts the successful sign-ins by time; each row then becomes the same observation the
//! streaming engine builds and goes through the detectors' own `seed` (the profile update
//! without evaluation), so a seeded profile is exactly what streaming those sign-ins would
//! have left. The anomaly model itself is not trained from history: it learns from the live
//! stream, where its scores are used. The `identity_state` table is written too.

use compact_str::CompactString;
use polars::prelude::*;

use crate::config::PipelineConfig;
use crate::detect::Engine;
use crate::detect::observation::{Kind, Obs, hash};
use crate::store::Store;

/// Baseline failures.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Scanning or computing over the events table.
    #[error("reading the events table: {0}")]
    Polars(#[from] PolarsError),
    /// The store already holds detection state.
    #[error(
        "{0} already holds detection state; a baseline seeds a fresh engine (pass --replace to rebuild it from the events table)"
    )]
    HasState(String),
    /// Reading or writing the checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] crate::detect::checkpoint::CheckpointError),
    /// Writing identity state.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Writing behaviour vectors.
    #[error("vector index: {0}")]
    Vectors(#[from] crate::vectors::VectorError),
    /// No events table.
    #[error("no events in {0}: replay history first (IDGW_DETECT_ENABLED=false replays without detecting)")]
    NoEvents(String),
}

/// What a baseline run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaselineSummary {
    /// Successful sign-ins read from the events table.
    pub signins: u64,
    /// Users with a profile afterwards.
    pub users: usize,
    /// First and last sign-in time (RFC 3339), when there was one.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The checkpoint written.
    pub checkpoint: String,
    /// Behaviour vectors written to the vector index (0 when it is off).
    pub vectors_upserted: u64,
}

/// Points per upsert call (bounded request size, for the server backend's gRPC limit).
const UPSERT_CHUNK: usize = 4096;

/// The columns a baseline reads.
const COLUMNS: [&str; 17] = [
    "event_id",
    "event_time",
    "user_id",
    "user_login",
    "src_ip",
    "geo_country",
    "geo_city",
    "geo_lat",
    "geo_lon",
    "asn",
    "is_proxy",
    "anonymizer",
    "user_agent",
    "ua_browser",
    "ua_os",
    "dt_hash",
    "session_id",
];

/// Successful sign-ins from the events table, oldest first, as a polars frame.
pub fn signins(store: &Store) -> Result<DataFrame, BaselineError> {
    let dir = store.events_dir();
    if crate::store::parquet_files(&dir).map(|f| f.is_empty()).unwrap_or(true) {
        return Err(BaselineError::NoEvents(store.root().display().to_string()));
    }
    let glob = PlRefPath::new(format!("{}/**/*.parquet", dir.display()));
    let frame = LazyFrame::scan_parquet(glob, ScanArgsParquet::default())?
        .filter(
            col("event_type")
                .eq(lit("user.session.start"))
                .and(col("outcome_result").eq(lit("SUCCESS")))
                .and(col("user_id").is_not_null()),
        )
        .select(COLUMNS.iter().map(|c| col(*c)).collect::<Vec<_>>())
        .sort(["event_time", "event_id"], SortMultipleOptions::default())
        .collect()?;
    Ok(frame)
}

fn text(frame: &DataFrame, name: &str, row: usize) -> Result<Option<CompactString>, PolarsError> {
    Ok(frame.column(name)?.str()?.get(row).map(CompactString::from))
}

/// The rows as the observations the streaming engine would have built.
fn observations(frame: &DataFrame) -> Result<Vec<Obs>, PolarsError> {
    let time = frame.column("event_time")?.datetime()?.physical().clone();
    let unit_ms = match frame.column("event_time")?.dtype() {
        DataType::Datetime(TimeUnit::Nanoseconds, _) => 1_000_000,
        DataType::Datetime(TimeUnit::Microseconds, _) => 1_000,
        _ => 1,
    };
    let lat = frame.column("geo_lat")?.f64()?.clone();
    let lon = frame.column("geo_lon")?.f64()?.clone();
    let asn = frame.column("asn")?.i64()?.clone();
    let proxy = frame.column("is_proxy")?.bool()?.clone();
    let anonymizer = frame.column("anonymizer")?.bool()?.clone();
    let mut out = Vec::with_capacity(frame.height());
    for row in 0..frame.height() {
        let Some(t) = time.get(row) else { continue };
        let browser = text(frame, "ua_browser", row)?;
        let os = text(frame, "ua_os", row)?;
        let device = text(frame, "dt_hash", row)?;
        out.push(Obs {
            uuid: text(frame, "event_id", row)?.unwrap_or_default(),
            time: t / unit_ms,
            seq: row as u64,
            kind: Kind::SignIn,
            user_id: text(frame, "user_id", row)?,
            login: text(frame, "user_login", row)?,
            ip: text(frame, "src_ip", row)?,
            lat_lon: lat.get(row).zip(lon.get(row)),
            country: text(frame, "geo_country", row)?,
            city: text(frame, "geo_city", row)?,
            asn: asn.get(row),
            proxy: proxy.get(row).unwrap_or(false),
            anonymizer: anonymizer.get(row).unwrap_or(false),
            // The store keeps tunnel operators, not their anonymity: a baseline built from it
            // learns networks from the ASN alone.
            corporate_tunnel: false,
            user_agent: hash(text(frame, "user_agent", row)?.as_deref().unwrap_or("")),
            ua_family: crate::detect::observation::ua_family(browser.as_deref(), os.as_deref()),
            device: device.as_deref().map(hash),
            session: text(frame, "session_id", row)?.as_deref().map(hash),
            attempt: None,
            event_type: 0,
            ua_major: None,
            okta_client: false,
            okta: 0,
        });
    }
    Ok(out)
}

/// Builds the baseline into the store's engine checkpoint.
/// Every user's behaviour vector goes to the vector index first (when it is on), so the
/// checkpoint never runs ahead of the index.
pub fn build(store: &Store, config: &PipelineConfig, replace: bool) -> Result<BaselineSummary, BaselineError> {
    let path = store.engine_checkpoint();
    if path.exists() && !replace {
        return Err(BaselineError::HasState(store.root().display().to_string()));
    }
    let frame = signins(store)?;
    let observations = observations(&frame)?;
    let mut engine = Engine::new(&config.detect);
    for obs in &observations {
        engine.seed(obs);
    }
    let mut vectors_upserted = 0;
    if config.vectors.enabled {
        let index = crate::vectors::open(&config.vectors, store.root())?;
        let points = engine.take_vectors(true);
        for chunk in points.chunks(UPSERT_CHUNK) {
            index.upsert(chunk)?;
        }
        vectors_upserted = points.len() as u64;
        index.optimize()?;
        index.flush()?;
    }
    engine.save(&path)?;
    crate::store::alerts::write_identity_state(store, &engine.identity_states(), &crate::replay::run_id())?;
    let fmt = |o: Option<&Obs>| o.map(|o| crate::detect::alerting::utc(o.time).to_rfc3339());
    Ok(BaselineSummary {
        signins: observations.len() as u64,
        users: engine.stats().users,
        from: fmt(observations.first()),
        to: fmt(observations.last()),
        checkpoint: path.display().to_string(),
        vectors_upserted,
    })
}
