//! One user's recent events, read straight from the Parquet pages that can hold them.
//!
//! The gateway's per-user calls (`analyze_identity_state` above all) want a few hundred rows
//! of one user out of millions. Through DataFusion each such call pays for planning, for
//! listing and for the execution plan's set-up, which together are most of a 5 ms budget
//! (docs/benchmarks.md). This reader does the same pruning DataFusion does, without the
//! planner: date directories before the window are not opened; row groups whose `user_id`
//! or `event_time` statistics exclude the request are skipped; within the rest, the page
//! index selects only the pages whose `user_id` range holds the user (compacted files are
//! sorted by user, so that is one or two pages); a row filter on `user_id` and `event_time`
//! decodes the other columns only for the rows that pass. Footers and page indexes are kept
//! between calls, keyed by each file's path, size and modification time, so a file the
//! pipeline publishes or compaction replaces is read afresh.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::TimestampMillisecondType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowFilter,
    RowSelection, RowSelector,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::PageIndexPolicy;

use crate::store::parquet_files;

/// Failures of a per-user read, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum UserEventsError {
    /// A file or directory could not be listed, stated or opened.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A partition directory could not be listed.
    #[error(transparent)]
    Listing(#[from] crate::store::StoreError),
    /// A compaction swap began or ended while a partition was listed (retried).
    #[error("a compaction swap changed the files while they were listed")]
    Changed,
    /// A Parquet file could not be decoded.
    #[error("reading {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ParquetError,
    },
}

/// A file's footer as loaded, and what the file was then.
struct Footer {
    len: u64,
    modified: Option<SystemTime>,
    meta: ArrowReaderMetadata,
}

/// Reads one user's events from the `events` table's files (see the module docs).
pub struct UserEvents {
    dir: PathBuf,
    footers: Mutex<HashMap<PathBuf, Arc<Footer>>>,
}

impl std::fmt::Debug for UserEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.footers.lock().map_or(0, |f| f.len());
        f.debug_struct("UserEvents")
            .field("dir", &self.dir)
            .field("footers", &cached)
            .finish()
    }
}

impl UserEvents {
    /// A reader of the `events` table in `dir` (absent yet is fine: nothing is found).
    pub fn new(dir: PathBuf) -> Self {
        UserEvents {
            dir,
            footers: Mutex::new(HashMap::new()),
        }
    }

    /// The `columns` of the events of `user_id` at or after `since_ms` (epoch milliseconds),
    /// as the files hold them (file order, not time order). A column a file lacks is left
    /// out of that file's batches.
    ///
    /// Compaction may swap a day's files meanwhile (`idgw store compact --recent` does
    /// so every few minutes on the current day): a swap in progress is read through its
    /// manifest (old files until every new one is published), and a read that finds a
    /// listed file gone starts over, so no row is read twice or missed.
    pub fn read(&self, user_id: &str, since_ms: i64, columns: &[&str]) -> Result<Vec<RecordBatch>, UserEventsError> {
        let mut attempt = 0;
        loop {
            match self.read_once(user_id, since_ms, columns) {
                Err(UserEventsError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < 5 =>
                {
                    attempt += 1;
                }
                Err(UserEventsError::Changed) if attempt < 5 => attempt += 1,
                Err(UserEventsError::Changed) => {
                    return Err(UserEventsError::Io {
                        path: self.dir.clone(),
                        source: std::io::Error::other("the files kept changing under the read (compaction swaps)"),
                    });
                }
                other => return other,
            }
        }
    }

    fn read_once(&self, user_id: &str, since_ms: i64, columns: &[&str]) -> Result<Vec<RecordBatch>, UserEventsError> {
        let mut out = Vec::new();
        for file in self.files_since(since_ms)? {
            let footer = self.footer(&file)?;
            read_file(&file, &footer.meta, user_id, since_ms, columns, &mut out).map_err(|source| {
                // A file removed under the read shows as an I/O error of the decoder.
                if !file.exists() {
                    UserEventsError::Io {
                        path: file.clone(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    }
                } else {
                    UserEventsError::Parquet { path: file, source }
                }
            })?;
        }
        Ok(out)
    }

    /// Loads the footers of every file of the table (a server does this once at start, in
    /// the background, so that the first call to reach each day does not pay for it: a
    /// day's footer and page index take milliseconds to read and decode). Returns how many
    /// files there are.
    pub fn warm(&self) -> Result<usize, UserEventsError> {
        let mut files = self.files_since(i64::MIN);
        for _ in 0..5 {
            if !matches!(files, Err(UserEventsError::Changed)) {
                break;
            }
            files = self.files_since(i64::MIN);
        }
        let files = files?;
        for file in &files {
            self.footer(file)?;
        }
        Ok(files.len())
    }

    /// The table's files in date partitions from `since_ms`'s day on (and any file outside
    /// a `date=` directory, which cannot be pruned by name). Footers of files that are gone
    /// from a listed directory are forgotten.
    fn files_since(&self, since_ms: i64) -> Result<Vec<PathBuf>, UserEventsError> {
        let first_day = chrono::DateTime::from_timestamp_millis(since_ms)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| UserEventsError::Io { path, source }
        };
        let mut listed_dirs = Vec::new();
        let mut files = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // ISO dates compare as text in time order.
            if let Some(day) = name.strip_prefix("date=")
                && *day < *first_day
            {
                continue;
            }
            let path = entry.path();
            if name.starts_with('.') {
                continue;
            }
            if entry.file_type().map_err(io(&path))?.is_dir() {
                // The swap state before and after listing: a swap that began, went on or
                // ended in between could have shown both a file and its replacement. Each
                // swap appends to the partition's list of replaced files first.
                let state = |dir: &Path| {
                    let replaced =
                        std::fs::metadata(dir.join(crate::store::compact::COMPACTED_LIST)).map_or(0, |m| m.len());
                    (crate::store::compact::hidden_by_swap(dir), replaced)
                };
                let before = state(&path);
                let listed = parquet_files(&path)?;
                if state(&path) != before {
                    return Err(UserEventsError::Changed);
                }
                let hidden = before.0;
                files.extend(listed.into_iter().filter(|f| {
                    f.file_name()
                        .is_none_or(|n| !hidden.contains(n.to_string_lossy().as_ref()))
                }));
                listed_dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
        files.sort();
        let mut footers = self.footers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        footers.retain(|path, _| files.binary_search(path).is_ok() || !listed_dirs.iter().any(|d| path.starts_with(d)));
        Ok(files)
    }

    /// `path`'s footer and page index, from the cache while the file is unchanged.
    fn footer(&self, path: &Path) -> Result<Arc<Footer>, UserEventsError> {
        let io = |source| UserEventsError::Io {
            path: path.to_owned(),
            source,
        };
        let stat = std::fs::metadata(path).map_err(io)?;
        let (len, modified) = (stat.len(), stat.modified().ok());
        if let Some(footer) = self
            .footers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            && footer.len == len
            && footer.modified == modified
        {
            return Ok(Arc::clone(footer));
        }
        // Loaded outside the lock: two callers may both load a new file; both results agree.
        let file = File::open(path).map_err(io)?;
        let meta = ArrowReaderMetadata::load(
            &file,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
        )
        .map_err(|source| UserEventsError::Parquet {
            path: path.to_owned(),
            source,
        })?;
        let footer = Arc::new(Footer { len, modified, meta });
        self.footers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.to_owned(), Arc::clone(&footer));
        Ok(footer)
    }
}

/// Appends to `out` the rows of `user_id` from `since_ms` in one file.
fn read_file(
    path: &Path,
    meta: &ArrowReaderMetadata,
    user_id: &str,
    since_ms: i64,
    columns: &[&str],
    out: &mut Vec<RecordBatch>,
) -> Result<(), ParquetError> {
    let schema = meta.schema();
    let parquet_schema = meta.parquet_schema();
    let metadata = meta.metadata();
    let row_groups = metadata.row_groups();
    let users = StatisticsConverter::try_new("user_id", schema, parquet_schema)?;
    let times = StatisticsConverter::try_new("event_time", schema, parquet_schema)?;

    let all: Vec<usize> = (0..row_groups.len()).collect();
    let (min_user, max_user) = (users.row_group_mins(row_groups)?, users.row_group_maxes(row_groups)?);
    let max_time = times.row_group_maxes(row_groups)?;
    let kept: Vec<usize> = all
        .into_iter()
        .filter(|&rg| may_hold(&min_user, &max_user, rg, user_id) && !ends_before(&max_time, rg, since_ms))
        .collect();
    if kept.is_empty() {
        return Ok(());
    }

    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(File::open(path)?, meta.clone());
    if let (Some(column_index), Some(offset_index)) = (metadata.column_index(), metadata.offset_index()) {
        // Pages of the kept row groups, in order; a page whose range may hold the user is read.
        let mins = users.data_page_mins(column_index, offset_index, &kept)?;
        let maxes = users.data_page_maxes(column_index, offset_index, &kept)?;
        let counts = users.data_page_row_counts(offset_index, row_groups, &kept)?;
        if let Some(counts) = counts {
            let selectors = (0..counts.len()).map(|page| {
                let rows = counts.value(page) as usize;
                if may_hold(&mins, &maxes, page, user_id) {
                    RowSelector::select(rows)
                } else {
                    RowSelector::skip(rows)
                }
            });
            let selection: RowSelection = selectors.collect();
            tracing::debug!(
                file = %path.display(),
                row_groups = kept.len(),
                of = row_groups.len(),
                rows = selection.row_count(),
                "pages that may hold the user"
            );
            if !selection.selects_any() {
                return Ok(());
            }
            builder = builder.with_row_selection(selection);
        }
    }
    let user = user_id.to_owned();
    let predicate = ArrowPredicateFn::new(
        ProjectionMask::columns(parquet_schema, ["user_id", "event_time"]),
        move |batch: RecordBatch| matches(&batch, &user, since_ms),
    );
    let reader = builder
        .with_row_groups(kept)
        .with_projection(ProjectionMask::columns(parquet_schema, columns.iter().copied()))
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
        .with_batch_size(8192)
        .build()?;
    for batch in reader {
        let batch = batch?;
        if batch.num_rows() > 0 {
            out.push(batch);
        }
    }
    Ok(())
}

/// Whether entry `i` of min/max statistics may hold `value` (unknown statistics may).
fn may_hold(mins: &ArrayRef, maxes: &ArrayRef, i: usize, value: &str) -> bool {
    let (Some(mins), Some(maxes)) = (mins.as_string_opt::<i32>(), maxes.as_string_opt::<i32>()) else {
        return true;
    };
    let below = mins.is_valid(i) && value < mins.value(i);
    let above = maxes.is_valid(i) && value > maxes.value(i);
    !below && !above
}

/// Whether row group `rg` ends before `since_ms` by its `event_time` statistics.
fn ends_before(max_time: &ArrayRef, rg: usize, since_ms: i64) -> bool {
    max_time
        .as_primitive_opt::<TimestampMillisecondType>()
        .is_some_and(|m| m.is_valid(rg) && m.value(rg) < since_ms)
}

/// The row filter: `user_id = user AND event_time >= since_ms`, over the predicate's
/// projection (its columns in file order).
fn matches(batch: &RecordBatch, user: &str, since_ms: i64) -> Result<BooleanArray, ArrowError> {
    let missing = |c: &str| ArrowError::SchemaError(format!("events file without a usable {c} column"));
    let users = batch
        .column_by_name("user_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| missing("user_id"))?;
    let times = batch
        .column_by_name("event_time")
        .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
        .ok_or_else(|| missing("event_time"))?;
    Ok((0..batch.num_rows())
        .map(|i| Some(users.is_valid(i) && users.value(i) == user && times.value(i) >= since_ms))
        .collect())
}
