//! One user's recent events, read straight from the Parquet pages that can hold them.
//!
//! The gateway's per-user calls (`analyze_identity_state` above all) want a few hundred rows
//! of one user out of millions. Through DataFusion each such call pays for planning, for
//! listing and for the execution plan's set-up, which together are most of a 5 ms budget
//! (docs/benchmarks.md). This reader prunes without the planner: date directories outside
//! the window are not opened; row groups whose `event_time` statistics exclude it are
//! skipped. In a file compaction sorted by user, row groups and pages whose `user_id`
//! statistics exclude the user are skipped too (the page index leaves one or two pages).
//! A file not sorted by user (as ingest publishes them: every file of a live day until
//! compaction merges it) has statistics that span every user; for it the reader keeps a
//! row index ([`super::user_rows`]) built once from its `user_id` column, which skips the
//! file when the user is not in it and selects exactly the user's rows when they are. A
//! row filter on `user_id` and `event_time` then decodes the other columns only for the
//! rows that pass. Footers, page indexes and row indexes are kept between calls for each
//! file as listed ([`super::listing`]: a directory is listed again when it changes, and a
//! file listed again is stated to know whether it is the one read), so a file the pipeline publishes or
//! compaction replaces is read afresh; row indexes are bounded by [`ROW_INDEX_BUDGET`].

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::SchemaRef;
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

use super::listing::{FileSlot, Listed, Listings, parquet_under, path_bytes};
use super::user_rows::{UserRows, runs};
use crate::store::compact::is_sorted;

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
    /// The read found more rows than it may hold (its caller reads them another way).
    #[error("more than {0} rows")]
    TooMany(usize),
    /// A file's column could not be given the table's type.
    #[error("an events file's columns do not fit the table's schema: {0}")]
    Schema(#[source] ArrowError),
    /// A Parquet file could not be decoded.
    #[error("reading {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ParquetError,
    },
}

/// A file's footer as loaded.
struct Footer {
    meta: ArrowReaderMetadata,
    /// The rows of each user, for a file not sorted by user (whose statistics prune nothing).
    users: Option<RowIndex>,
    /// An unsorted file left without a row index for want of budget (retried when there is
    /// room).
    wants_index: bool,
}

/// A file's row index and its share of the reader's budget (returned when it is dropped).
struct RowIndex {
    rows: UserRows,
    _charge: Charge,
}

/// The outcome of building a row index.
enum Indexed {
    Built(RowIndex),
    /// The budget is spent.
    NoRoom,
    /// The file is too large for one.
    Unindexable,
}

/// Bytes of row indexes held by one reader at most. Beyond it a file not sorted by user is
/// read by its statistics (slower, same rows): a store that is never compacted would
/// otherwise hold ~4–5 bytes per row of every day (4 per row, 12 per user of each file).
const ROW_INDEX_BUDGET: usize = 512 << 20;

/// Bytes counted in a total while this lives.
struct Charge {
    bytes: usize,
    total: Arc<AtomicUsize>,
}

impl Charge {
    /// The charge made `bytes`.
    fn resized(mut self, bytes: usize) -> Self {
        if bytes < self.bytes {
            self.total.fetch_sub(self.bytes - bytes, Ordering::Relaxed);
        } else {
            self.total.fetch_add(bytes - self.bytes, Ordering::Relaxed);
        }
        self.bytes = bytes;
        self
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Reads one user's events from the `events` table's files (see the module docs).
pub struct UserEvents {
    dir: PathBuf,
    /// The table's files by directory, each with its footer once loaded.
    files: Listings<Footer>,
    /// Bytes of the row indexes of the cached footers.
    indexed: Arc<AtomicUsize>,
    /// Bytes they may take.
    budget: usize,
    /// Whether the budget was reported full (once per reader).
    budget_reported: AtomicBool,
}

impl std::fmt::Debug for UserEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEvents")
            .field("dir", &self.dir)
            .field("files", &self.files.len())
            .finish()
    }
}

impl UserEvents {
    /// A reader of the `events` table in `dir` (absent yet is fine: nothing is found).
    pub fn new(dir: PathBuf) -> Self {
        Self::with_index_budget(dir, ROW_INDEX_BUDGET)
    }

    /// [`UserEvents::new`] whose row indexes take at most `bytes`.
    pub fn with_index_budget(dir: PathBuf, bytes: usize) -> Self {
        UserEvents {
            dir,
            files: Listings::default(),
            indexed: Arc::new(AtomicUsize::new(0)),
            budget: bytes,
            budget_reported: AtomicBool::new(false),
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
        self.read_within(user_id, since_ms..i64::MAX, columns, usize::MAX)
    }

    /// [`UserEvents::read`] of the events with `event_time` in `window` (epoch
    /// milliseconds), failing with [`UserEventsError::TooMany`] past `max_rows` rows.
    pub fn read_within(
        &self,
        user_id: &str,
        window: Range<i64>,
        columns: &[&str],
        max_rows: usize,
    ) -> Result<Vec<RecordBatch>, UserEventsError> {
        let mut attempt = 0;
        loop {
            match self.read_once(user_id, &window, columns, max_rows) {
                // A listed file gone or replaced, or one that did not decode: the listings
                // kept may be what is wrong (see `listing`), so every directory is listed
                // again (and its files checked) before the retry.
                Err(UserEventsError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < 5 =>
                {
                    self.files.distrust();
                    attempt += 1;
                }
                Err(UserEventsError::Parquet { .. }) if attempt < 1 => {
                    self.files.distrust();
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

    /// [`UserEvents::read_within`] of `schema`'s columns (a projection of the table's
    /// schema), each batch in `schema`: a column a file lacks is null, one of another type
    /// is cast (a value that does not fit is an error, as in a query).
    pub fn read_as(
        &self,
        user_id: &str,
        window: Range<i64>,
        schema: &SchemaRef,
        max_rows: usize,
    ) -> Result<Vec<RecordBatch>, UserEventsError> {
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let strict = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        self.read_within(user_id, window, &columns, max_rows)?
            .into_iter()
            .map(|batch| {
                let rows = batch.num_rows();
                let columns = schema
                    .fields()
                    .iter()
                    .map(|field| match batch.column_by_name(field.name()) {
                        Some(c) if c.data_type() == field.data_type() => Ok(Arc::clone(c)),
                        Some(c) => cast_with_options(c, field.data_type(), &strict),
                        None => Ok(new_null_array(field.data_type(), rows)),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(UserEventsError::Schema)?;
                RecordBatch::try_new(Arc::clone(schema), columns).map_err(UserEventsError::Schema)
            })
            .collect()
    }

    fn read_once(
        &self,
        user_id: &str,
        window: &Range<i64>,
        columns: &[&str],
        max_rows: usize,
    ) -> Result<Vec<RecordBatch>, UserEventsError> {
        let mut out = Vec::new();
        let mut room = max_rows;
        for file in self.files_within(window)? {
            let footer = self.footer(&file)?;
            let within = read_file(file.path(), &footer, user_id, window, columns, &mut room, &mut out)
                .map_err(|e| decoding(file.path(), e))?;
            if !within {
                return Err(UserEventsError::TooMany(max_rows));
            }
        }
        Ok(out)
    }

    /// Loads the footers of every file of the table, and the row index of each unsorted one
    /// (a server does this once at start, in the background, so that the first call to
    /// reach each day does not pay for it: a day's footer and page index take milliseconds
    /// to read and decode, a row index ~80 ms per million rows). The newest days come first:
    /// they are the ones calls read, and the ones the row-index budget should go to.
    /// Returns how many files there are.
    pub fn warm(&self) -> Result<usize, UserEventsError> {
        let mut files = self.files_within(&(i64::MIN..i64::MAX));
        for _ in 0..5 {
            if !matches!(files, Err(UserEventsError::Changed)) {
                break;
            }
            files = self.files_within(&(i64::MIN..i64::MAX));
        }
        let files = files?;
        // Paths sort by their `date=` directory: newest first.
        for file in files.iter().rev() {
            self.footer(file)?;
        }
        Ok(files.len())
    }

    /// The table's files in the date partitions of `window`'s days (and any file outside a
    /// `date=` directory, which cannot be pruned by name), sorted by their paths' bytes.
    fn files_within(&self, window: &Range<i64>) -> Result<Vec<Arc<FileSlot<Footer>>>, UserEventsError> {
        let day = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d").to_string());
        let first_day = day(window.start).unwrap_or_default();
        // The window ends before `end`: its last day is that of the millisecond before.
        let last_day = day(window.end.saturating_sub(1)).filter(|_| window.end < i64::MAX);
        let mut dirs = Vec::new();
        let mut all_dirs = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !entry.file_type().map_err(io(&entry.path()))?.is_dir() {
                continue;
            }
            all_dirs.push(entry.path());
            // ISO dates compare as text in time order.
            if let Some(day) = name.strip_prefix("date=")
                && (*day < *first_day || last_day.as_deref().is_some_and(|last| day > last))
            {
                continue;
            }
            dirs.push(entry.path());
        }
        // Listings (and footers) of directories gone from the table are dropped.
        self.files.retain(|d| {
            let d = path_bytes(d);
            d == path_bytes(&self.dir) || all_dirs.iter().any(|a| path_bytes(a) == d)
        });
        let mut files: Vec<Arc<FileSlot<Footer>>> = self
            .files
            .files(&self.dir, || top_level_files(&self.dir), io(&self.dir))?
            .to_vec();
        for dir in &dirs {
            files.extend(self.files.files(dir, || partition_files(dir), io(dir))?.iter().cloned());
        }
        // The files of one `date=` directory share its prefix, so days sort in time order.
        files.sort_unstable_by(|a, b| path_bytes(a.path()).cmp(path_bytes(b.path())));
        Ok(files)
    }

    /// `file`'s footer and page index, loaded once per file as listed.
    fn footer(&self, file: &FileSlot<Footer>) -> Result<Arc<Footer>, UserEventsError> {
        let path = file.path();
        // Loaded outside any lock: two callers may both load a new file; both results agree.
        let (meta, opened) = match file.kept() {
            // A file the budget left without an index gets one once there is room for it.
            Some(footer) if footer.wants_index && self.has_room_for(&footer.meta) => (footer.meta.clone(), None),
            Some(footer) => return Ok(footer),
            None => {
                let handle = File::open(path).map_err(io(path))?;
                // Whatever file is there now (one that replaced the listed one is newer), kept
                // with what its handle says it is.
                let opened = handle.metadata().map_err(io(path))?;
                let meta = ArrowReaderMetadata::load(
                    &handle,
                    ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
                )
                .map_err(|e| decoding(path, e))?;
                (meta, Some(opened))
            }
        };
        let (users, wants_index) = if is_sorted(path) {
            (None, false)
        } else {
            match self.row_index(path, &meta)? {
                Indexed::Built(index) => (Some(index), false),
                Indexed::NoRoom => (None, true),
                Indexed::Unindexable => (None, false),
            }
        };
        let footer = Arc::new(Footer {
            meta,
            users,
            wants_index,
        });
        match opened {
            Some(opened) => file.keep(Arc::clone(&footer), &opened),
            None => file.replace(Arc::clone(&footer)),
        }
        Ok(footer)
    }
}

/// An I/O failure at `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UserEventsError {
    let path = path.to_owned();
    move |source| UserEventsError::Io { path, source }
}

/// The Parquet files directly in the table's directory (outside any partition).
fn top_level_files(dir: &Path) -> Result<Listed, UserEventsError> {
    let mut listed = Listed::default();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let hidden = entry.file_name().as_encoded_bytes().starts_with(b".");
        if !hidden
            && path.extension().is_some_and(|e| e == "parquet")
            && !entry.file_type().map_err(io(&path))?.is_dir()
        {
            listed.files.push(path);
        }
    }
    Ok(listed)
}

/// The Parquet files of a partition directory (and of any directory below it), less those
/// a compaction swap in progress hides.
fn partition_files(dir: &Path) -> Result<Listed, UserEventsError> {
    // The swap state before and after listing: a swap that began, went on or ended in
    // between could have shown both a file and its replacement. Each swap appends to the
    // partition's list of replaced files first.
    let state = |dir: &Path| {
        let replaced = std::fs::metadata(dir.join(crate::store::compact::COMPACTED_LIST)).map_or(0, |m| m.len());
        (crate::store::compact::hidden_by_swap(dir), replaced)
    };
    let before = state(dir);
    let mut listed = parquet_under(dir)?;
    listed.files.retain(|path| {
        path.file_name()
            .is_none_or(|n| !before.0.contains(n.to_string_lossy().as_ref()))
    });
    if state(dir) != before {
        return Err(UserEventsError::Changed);
    }
    // While a swap's manifest is there (in progress, or left by a compaction that was
    // killed), which files are hidden depends on which of its new files exist and on
    // reading the manifest, not only on the directory's entries: listed every call.
    listed.volatile |= !matches!(
        std::fs::symlink_metadata(dir.join(crate::store::compact::SWAP_MANIFEST)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    );
    Ok(listed)
}

impl UserEvents {
    /// The row index of an unsorted file, unless the budget is spent (or the file is too
    /// large for one).
    /// Whether the budget has room for the row index of the file of footer `meta`.
    fn has_room_for(&self, meta: &ArrowReaderMetadata) -> bool {
        let wanted = UserRows::bytes_for(meta.metadata().file_metadata().num_rows());
        self.indexed
            .load(Ordering::Relaxed)
            .checked_add(wanted)
            .is_some_and(|total| total <= self.budget)
    }

    fn row_index(&self, path: &Path, meta: &ArrowReaderMetadata) -> Result<Indexed, UserEventsError> {
        // The most the index can take is reserved before it is built (concurrent loads
        // cannot pass the budget together), then corrected to what it holds.
        let wanted = UserRows::bytes_for(meta.metadata().file_metadata().num_rows());
        let reserved = self.indexed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
            held.checked_add(wanted).filter(|total| *total <= self.budget)
        });
        if let Err(held) = reserved {
            if !self.budget_reported.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    held,
                    budget = self.budget,
                    "row indexes of unsorted events files at their budget: further files are read without \
                     one (slower per-user calls); compaction (`idgw store compact`) sorts the files"
                );
            }
            return Ok(Indexed::NoRoom);
        }
        let charge = Charge {
            bytes: wanted,
            total: Arc::clone(&self.indexed),
        };
        let Some(users) = UserRows::load(path, meta).map_err(|e| decoding(path, e))? else {
            return Ok(Indexed::Unindexable);
        };
        tracing::debug!(file = %path.display(), bytes = users.bytes(), "row index of an unsorted file");
        let bytes = users.bytes();
        Ok(Indexed::Built(RowIndex {
            rows: users,
            _charge: charge.resized(bytes),
        }))
    }
}

/// A decoding failure of `path`, or NotFound when the file was removed under the read
/// (which shows as an I/O error of the decoder).
fn decoding(path: &Path, source: ParquetError) -> UserEventsError {
    if path.exists() {
        UserEventsError::Parquet {
            path: path.to_owned(),
            source,
        }
    } else {
        UserEventsError::Io {
            path: path.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
    }
}

/// Appends to `out` the rows of `user_id` with `event_time` in `window` in one file.
fn read_file(
    path: &Path,
    footer: &Footer,
    user_id: &str,
    window: &Range<i64>,
    columns: &[&str],
    room: &mut usize,
    out: &mut Vec<RecordBatch>,
) -> Result<bool, ParquetError> {
    // An unsorted file's rows of the user, from its row index. Most files of a live day do
    // not hold the user: that is known before any statistics are decoded.
    let indexed: Option<&[u32]> = footer.users.as_ref().map(|index| index.rows.of(user_id));
    if indexed.is_some_and(<[u32]>::is_empty) {
        return Ok(true);
    }
    let meta = &footer.meta;
    let schema = meta.schema();
    let parquet_schema = meta.parquet_schema();
    let metadata = meta.metadata();
    let row_groups = metadata.row_groups();
    let times = StatisticsConverter::try_new("event_time", schema, parquet_schema)?;
    let (min_time, max_time) = (times.row_group_mins(row_groups)?, times.row_group_maxes(row_groups)?);
    let outside = |rg: usize| outside(&min_time, &max_time, rg, window);

    let mut builder;
    let kept: Vec<usize>;
    if let Some(mine) = indexed {
        // An unsorted file: the index gives the user's rows; the row groups holding them
        // and not ending before the window are read, and only those rows.
        let mut ranges = Vec::new();
        let (mut first, mut selected) = (0u64, 0u64);
        let mut groups = Vec::new();
        for (rg, group) in row_groups.iter().enumerate() {
            let end = first + group.num_rows().max(0) as u64;
            let (lo, hi) = (
                mine.partition_point(|&r| u64::from(r) < first),
                mine.partition_point(|&r| u64::from(r) < end),
            );
            if lo < hi && !outside(rg) {
                groups.push(rg);
                // Row numbers within the kept groups, which the reader sees back to back.
                ranges.extend(runs(&mine[lo..hi], first - selected));
                selected += end - first;
            }
            first = end;
        }
        if groups.is_empty() {
            return Ok(true);
        }
        kept = groups;
        builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(File::open(path)?, meta.clone()).with_row_selection(
                RowSelection::from_consecutive_ranges(ranges.into_iter(), selected as usize),
            );
    } else {
        let users = StatisticsConverter::try_new("user_id", schema, parquet_schema)?;
        let (min_user, max_user) = (users.row_group_mins(row_groups)?, users.row_group_maxes(row_groups)?);
        kept = (0..row_groups.len())
            .filter(|&rg| may_hold(&min_user, &max_user, rg, user_id) && !outside(rg))
            .collect();
        if kept.is_empty() {
            return Ok(true);
        }
        builder = ParquetRecordBatchReaderBuilder::new_with_metadata(File::open(path)?, meta.clone());
        if let Some(selection) = pages_of(path, meta, &users, &kept, user_id)? {
            if !selection.selects_any() {
                return Ok(true);
            }
            builder = builder.with_row_selection(selection);
        }
    }
    let (user, window) = (user_id.to_owned(), window.clone());
    let predicate = ArrowPredicateFn::new(
        ProjectionMask::columns(parquet_schema, ["user_id", "event_time"]),
        move |batch: RecordBatch| matches(&batch, &user, &window),
    );
    let reader = builder
        .with_row_groups(kept)
        .with_projection(ProjectionMask::columns(parquet_schema, columns.iter().copied()))
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
        .with_batch_size(8192)
        .build()?;
    for batch in reader {
        let batch = batch?;
        let Some(left) = room.checked_sub(batch.num_rows()) else {
            return Ok(false);
        };
        *room = left;
        if batch.num_rows() > 0 {
            out.push(batch);
        }
    }
    Ok(true)
}

/// In a sorted file, the rows of the pages of the `kept` row groups whose `user_id` range
/// may hold the user (None: the file has no page index).
fn pages_of(
    path: &Path,
    meta: &ArrowReaderMetadata,
    users: &StatisticsConverter<'_>,
    kept: &[usize],
    user_id: &str,
) -> Result<Option<RowSelection>, ParquetError> {
    let metadata = meta.metadata();
    let row_groups = metadata.row_groups();
    if let (Some(column_index), Some(offset_index)) = (metadata.column_index(), metadata.offset_index()) {
        // Pages of the kept row groups, in order; a page whose range may hold the user is read.
        let mins = users.data_page_mins(column_index, offset_index, kept)?;
        let maxes = users.data_page_maxes(column_index, offset_index, kept)?;
        if let Some(counts) = users.data_page_row_counts(offset_index, row_groups, kept)? {
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
            return Ok(Some(selection));
        }
    }
    Ok(None)
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

/// Whether row group `rg` lies outside `window` by its `event_time` statistics.
fn outside(min_time: &ArrayRef, max_time: &ArrayRef, rg: usize, window: &Range<i64>) -> bool {
    let stat = |a: &ArrayRef| {
        a.as_primitive_opt::<TimestampMillisecondType>()
            .filter(|m| m.is_valid(rg))
            .map(|m| m.value(rg))
    };
    stat(max_time).is_some_and(|max| max < window.start) || stat(min_time).is_some_and(|min| min >= window.end)
}

/// The row filter: `user_id = user AND event_time IN window`, over the predicate's
/// projection (its columns in file order).
fn matches(batch: &RecordBatch, user: &str, window: &Range<i64>) -> Result<BooleanArray, ArrowError> {
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
        .map(|i| Some(users.is_valid(i) && users.value(i) == user && window.contains(&times.value(i))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    /// An unsorted file of `users`, one row each.
    fn unsorted_file(dir: &Path, users: &[&str]) -> PathBuf {
        let schema = Arc::new(Schema::new(vec![Field::new("user_id", DataType::Utf8, true)]));
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(users.to_vec()))]).unwrap();
        let path = dir.join("part-test-00001.parquet");
        let mut writer = parquet::arrow::ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    #[test]
    fn a_partition_with_a_swap_manifest_is_listed_on_every_call() {
        let dir = tempfile::tempdir().unwrap();
        unsorted_file(dir.path(), &["00ua"]);
        assert!(!partition_files(dir.path()).unwrap().volatile);
        std::fs::write(dir.path().join(crate::store::compact::SWAP_MANIFEST), "not json").unwrap();
        let listed = partition_files(dir.path()).unwrap();
        assert!(
            listed.volatile,
            "a manifest (even unreadable) makes the listing volatile"
        );
        assert_eq!(listed.files.len(), 1);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::remove_file(dir.path().join(crate::store::compact::SWAP_MANIFEST)).unwrap();
        assert!(partition_files(dir.path()).unwrap().volatile, "a subdirectory too");
    }

    #[test]
    fn a_file_the_budget_left_without_an_index_gets_one_when_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = unsorted_file(dir.path(), &["00ua", "00ub", "00ua"]);
        let mut reader = UserEvents::with_index_budget(dir.path().to_owned(), 0);
        let files = reader.files_within(&(i64::MIN..i64::MAX)).unwrap();
        assert_eq!(files.len(), 1);
        let file = &files[0];
        assert_eq!(file.path(), path);
        let first = reader.footer(file).unwrap();
        assert!(
            first.users.is_none() && first.wants_index,
            "no room: no index, and one is wanted"
        );
        assert!(
            Arc::ptr_eq(&first, &reader.footer(file).unwrap()),
            "still no room: the cached footer"
        );
        reader.budget = 1 << 20;
        let second = reader.footer(file).unwrap();
        let users = &second.users.as_ref().expect("an index once there is room").rows;
        assert_eq!(users.of("00ua"), &[0, 2]);
        assert_eq!(users.of("00ub"), &[1]);
        assert!(users.of("00uc").is_empty());
        assert_eq!(
            reader.indexed.load(Ordering::Relaxed),
            users.bytes(),
            "charged what it holds"
        );
        drop((first, second));
        file.forget();
        assert_eq!(reader.indexed.load(Ordering::Relaxed), 0, "released with the footer");
    }
}
