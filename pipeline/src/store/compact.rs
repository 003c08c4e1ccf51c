//! Compaction: rewrites a day of the `events` table as files sorted by user and time.
//!
//! Events land in arrival order, so one user's events of a day are spread over every row
//! group of the day's files, and a per-user lookup (the gateway's `search_events`,
//! `analyze_identity_state`) decodes the user column of every row. A compacted partition
//! holds the same rows ordered by `(user_id, event_time, event_id)`, in row groups that
//! cover disjoint user ranges and pages of at most [`CompactOptions::page_rows`] rows: the
//! row-group statistics and the page index then bound a lookup to a page or two per file.
//!
//! A partition is rewritten whole: its files are read (DataFusion's external sort, which
//! spills to disk beyond [`CompactOptions::memory_limit`]), written as `sorted-…` files,
//! the row count checked against the inputs' footers, the new files published and the old
//! ones removed. Their names go to the partition's hidden `.compacted` list, so a streaming
//! checkpoint that still names one of them knows it was published (see `Staged::publish`).
//! While a day is being swapped, its hidden `.compacting` manifest names the old and the new
//! files; [`finish_interrupted`] (run before each compaction) completes a swap a kill cut
//! short once every new file is in place, and undoes it otherwise, so no day is left with
//! its rows twice. Days at least `min_age_days` old are rewritten whole; a running pipeline
//! writes the current day (and, within its lateness bound, the day before), so of those only
//! files it published a while ago are merged, and only when asked
//! ([`CompactOptions::recent_file_age`]). Two compactions of one store never run at once
//! ([`lock`]): one's recovery of interrupted swaps would undo the other's swap in progress.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, col};
use futures::StreamExt;
use idgw_schemas::rows::events_schema;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};

use super::parquet_writer::{Codec, PartitionedWriter, Statistics, WriterOptions};
use super::{Store, StoreError, parquet_files};
use crate::config::StoreConfig;

/// Compacted files are named `sorted-…`; a partition holding only those is done.
pub const SORTED_PREFIX: &str = "sorted";
/// Files a merge of recent files wrote (`sorted-recent-…`): sorted, but the day is not one
/// sorted run until a whole-day rewrite.
pub const RECENT_PREFIX: &str = "sorted-recent";
/// With `recent_file_age`, a past day rewritten whole less than this long ago only gets
/// merges: late events (which anyone who can send events can forge) cannot make a whole day
/// be rewritten every few minutes.
const WHOLE_REWRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The hidden list, in each compacted partition, of the file names compaction replaced.
pub const COMPACTED_LIST: &str = ".compacted";

/// The hidden manifest of a swap in progress in a partition.
pub const SWAP_MANIFEST: &str = ".compacting";

/// A swap in progress: the file names it replaces and those it publishes.
#[derive(Debug, Serialize, Deserialize)]
struct Swap {
    old: Vec<String>,
    new: Vec<String>,
}

/// Compaction failures.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// Reading or writing the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sort.
    #[error("sorting {partition}: {source}")]
    Sort {
        /// The partition.
        partition: String,
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
    },
    /// The rewrite would not hold the rows it read; nothing was replaced.
    #[error("{partition}: the inputs hold {expected} rows but {written} were written; the old files were kept")]
    RowCount {
        /// The partition.
        partition: String,
        /// Rows in the inputs' footers.
        expected: u64,
        /// Rows written.
        written: u64,
    },
}

/// What compaction does.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Days at least this old (by the partition's date against today, UTC) are rewritten
    /// whole; younger ones only with [`CompactOptions::recent_file_age`].
    pub min_age_days: u32,
    /// The recent days too (younger than `min_age_days`, which a running pipeline still
    /// writes): their published unsorted files at least this old — a streaming pipeline
    /// leaves one per partition per commit cycle, ~170,000 a day at 4 partitions — are
    /// merged into a sorted file, with the day's sorted files holding no more rows than
    /// those together (size-tiered: a day keeps a few sorted files, each row rewritten a
    /// few times). Files newer than this, and any the pipeline publishes meanwhile, are
    /// left for the next run. `None`: recent days are left alone.
    pub recent_file_age: Option<std::time::Duration>,
    /// Rewrite days already compacted too (after a change of `[store]` settings).
    pub force: bool,
    /// Rows per data page in the rewritten files.
    pub page_rows: usize,
    /// Memory the sort may hold before it spills to disk, bytes.
    pub memory_limit: usize,
    /// Row groups, file size and zstd level, as for ingest.
    pub store: StoreConfig,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            min_age_days: 2,
            recent_file_age: None,
            force: false,
            page_rows: 1024,
            memory_limit: 1 << 30,
            store: StoreConfig::default(),
        }
    }
}

/// One partition to rewrite.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionPlan {
    /// `date=YYYY-MM-DD`.
    pub partition: String,
    /// Its published files.
    pub files: Vec<PathBuf>,
    /// Their bytes.
    pub bytes: u64,
    /// A recent day: only some of its files are merged ([`CompactOptions::recent_file_age`]).
    pub recent: bool,
}

/// What [`plan`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Partitions to rewrite, oldest first.
    pub todo: Vec<PartitionPlan>,
    /// Partitions already sorted.
    pub already_sorted: usize,
    /// Partitions too recent to touch (or, with `recent_file_age`, with no file old enough).
    pub too_recent: usize,
}

/// One rewritten partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    /// `date=YYYY-MM-DD`.
    pub partition: String,
    /// A recent day, partly merged.
    pub recent: bool,
    /// Files replaced.
    pub files_in: usize,
    /// Files written.
    pub files_out: usize,
    /// Rows (the same before and after).
    pub rows: u64,
    /// Bytes before.
    pub bytes_in: u64,
    /// Bytes after.
    pub bytes_out: u64,
    /// Wall time.
    pub seconds: f64,
}

/// The partitions of `store`'s events that compaction would rewrite today.
pub fn plan(store: &Store, options: &CompactOptions) -> Result<Plan, CompactError> {
    plan_as_of(store, options, chrono::Utc::now().date_naive())
}

/// [`plan`] with "today" given.
pub fn plan_as_of(store: &Store, options: &CompactOptions, today: NaiveDate) -> Result<Plan, CompactError> {
    let mut by_partition: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let dir = store.events_dir();
    for file in parquet_files(&dir)? {
        let partition = file
            .parent()
            .and_then(|p| p.strip_prefix(&dir).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        by_partition.entry(partition).or_default().push(file);
    }
    let mut out = Plan::default();
    for (partition, files) in by_partition {
        let day = partition
            .strip_prefix("date=")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        // Files outside a date partition are not the pipeline's; leave them be.
        let Some(day) = day else { continue };
        let past = (today - day).num_days() >= i64::from(options.min_age_days);
        // One sorted run: every file sorted, none of them a merge of recent files.
        let whole = files.iter().all(|f| is_sorted(f) && !is_recent_output(f));
        if past && whole && !options.force {
            out.already_sorted += 1;
            continue;
        }
        let throttled = options.recent_file_age.is_some() && rewritten_within(&files, WHOLE_REWRITE_EVERY);
        if past && (options.force || !throttled) {
            out.todo.push(planned(partition, files, false)?);
            continue;
        }
        match options
            .recent_file_age
            .and_then(|age| plan_recent(&files, age, options.store.max_rows_per_file))
        {
            Some(files) => out.todo.push(planned(partition, files?, true)?),
            None if past => out.already_sorted += 1,
            None => out.too_recent += 1,
        }
    }
    // Recent merges first: a failing or long past day must not hold up the merges that
    // keep the current day's lookups fast.
    out.todo.sort_by_key(|p| !p.recent);
    Ok(out)
}

fn is_recent_output(file: &Path) -> bool {
    file.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{RECENT_PREFIX}-")))
}

/// Whether a whole-day rewrite of this day published a file less than `within` ago.
fn rewritten_within(files: &[PathBuf], within: std::time::Duration) -> bool {
    let now = std::time::SystemTime::now();
    files.iter().filter(|f| is_sorted(f) && !is_recent_output(f)).any(|f| {
        std::fs::metadata(f)
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < within)
    })
}

fn planned(partition: String, files: Vec<PathBuf>, recent: bool) -> Result<PartitionPlan, StoreError> {
    let bytes = files
        .iter()
        .map(|f| fs_err::metadata(f).map(|m| m.len()))
        .sum::<Result<u64, _>>()?;
    Ok(PartitionPlan {
        partition,
        files,
        bytes,
        recent,
    })
}

/// Whether `file` was written sorted by user and time (by its name: compaction's output).
pub(crate) fn is_sorted(file: &Path) -> bool {
    file.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{SORTED_PREFIX}-")))
}

/// The files of a day to merge now: its unsorted files last modified at least `age` ago,
/// and then the outputs of earlier merges (each merge's files one tier) from the smallest
/// up while each holds no more rows than everything taken so far; a tier holding a full
/// file (`max_rows_per_file`) and a whole-day rewrite's files are never taken. `None` when
/// no unsorted file is old enough.
fn plan_recent(
    files: &[PathBuf],
    age: std::time::Duration,
    max_rows_per_file: usize,
) -> Option<Result<Vec<PathBuf>, StoreError>> {
    let now = std::time::SystemTime::now();
    let old_enough = |f: &PathBuf| -> Result<bool, StoreError> {
        let modified = fs_err::metadata(f)?.modified()?;
        // A time in the future (a clock set back) counts as old enough, not as never.
        Ok(now.duration_since(modified).map_or(true, |d| d >= age))
    };
    let plan = || -> Result<Vec<PathBuf>, StoreError> {
        let mut take = Vec::new();
        let mut tiers: BTreeMap<String, (u64, bool, Vec<PathBuf>)> = BTreeMap::new();
        for f in files {
            if is_recent_output(f) {
                let rows = footer_rows(f)?;
                let tier = tiers.entry(merge_of(f)).or_default();
                tier.0 += rows;
                tier.1 |= rows >= max_rows_per_file as u64;
                tier.2.push(f.clone());
            } else if !is_sorted(f) && old_enough(f)? {
                take.push(f.clone());
            }
        }
        if take.is_empty() {
            return Ok(take);
        }
        let mut rows = take.iter().map(|f| footer_rows(f)).sum::<Result<u64, _>>()?;
        let mut tiers: Vec<(u64, bool, Vec<PathBuf>)> = tiers.into_values().collect();
        tiers.sort();
        for (n, full, tier) in tiers {
            if full || n > rows {
                break;
            }
            rows += n;
            take.extend(tier);
        }
        Ok(take)
    };
    match plan() {
        Ok(take) if take.is_empty() => None,
        other => Some(other),
    }
}

/// The merge a `sorted-recent-{run}-{seq}.parquet` file came from (its name without the
/// sequence number).
fn merge_of(file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('-') {
        Some((merge, _)) => merge.to_owned(),
        None => name,
    }
}

/// Rewrites one planned partition sorted by user and time; `run_id` names the new files.
pub async fn compact_partition(
    store: &Store,
    plan: &PartitionPlan,
    options: &CompactOptions,
    run_id: &str,
) -> Result<PartitionReport, CompactError> {
    let started = Instant::now();
    let expected = plan.files.iter().map(|f| footer_rows(f)).sum::<Result<u64, _>>()?;
    let sort_err = |source| CompactError::Sort {
        partition: plan.partition.clone(),
        source,
    };
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(options.memory_limit, 1.0)
        .build_arc()
        .map_err(sort_err)?;
    // One sort stream, and room to merge what it spilled: with DataFusion's defaults (a
    // sort per core, 10 MB kept for merging) a day of events larger than the memory limit
    // fails instead of spilling. DATAFUSION_* variables still override both.
    let mut config = SessionConfig::from_env().map_err(sort_err)?;
    if std::env::var_os("DATAFUSION_EXECUTION_TARGET_PARTITIONS").is_none() {
        config = config.with_target_partitions(1);
    }
    if std::env::var_os("DATAFUSION_EXECUTION_SORT_SPILL_RESERVATION_BYTES").is_none() {
        config.options_mut().execution.sort_spill_reservation_bytes = options.memory_limit / 4;
    }
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let schema = events_schema();
    let paths: Vec<String> = plan.files.iter().map(|f| f.display().to_string()).collect();
    let df = ctx
        .read_parquet(paths, ParquetReadOptions::default().schema(&schema))
        .await
        .and_then(|df| {
            df.sort(vec![
                col("user_id").sort(true, true),
                col("event_time").sort(true, true),
                col("event_id").sort(true, true),
            ])
        })
        .map_err(sort_err)?;
    let writer_options = WriterOptions {
        row_group_rows: options.store.row_group_rows,
        max_rows_per_file: options.store.max_rows_per_file,
        codec: Codec::from_config(options.store.compact_codec, options.store.zstd_level),
        // No dictionaries at all: per-user reads decode a page or two per column, and a
        // dictionary page would cost more than those (docs/benchmarks.md).
        plain_columns: Vec::new(),
        statistics: Statistics::AllBut(vec!["raw".to_owned()]),
        dictionary: false,
        // Published below, once the row count is checked.
        stage: true,
        page_rows: Some(options.page_rows),
        file_prefix: if plan.recent { RECENT_PREFIX } else { SORTED_PREFIX },
    };
    // Never the name of a file being replaced (a second compaction of the same run id
    // would otherwise publish over its input and then delete it).
    let unique = format!("{run_id}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut writer = PartitionedWriter::new(store.events_dir(), Arc::new(schema), writer_options, &unique)?;
    let mut stream = df.execute_stream().await.map_err(sort_err)?;
    let mut written = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(sort_err)?;
        written += batch.num_rows() as u64;
        writer.write(&plan.partition, &batch)?;
    }
    let staged = writer.finish_staged()?;
    // On refusal the new files go; the old ones were not touched.
    let discard = || {
        for s in &staged {
            let _ = std::fs::remove_file(&s.tmp);
        }
    };
    if written != expected {
        discard();
        return Err(CompactError::RowCount {
            partition: plan.partition.clone(),
            expected,
            written,
        });
    }
    for s in &staged {
        if s.path.exists() || plan.files.contains(&s.path) {
            discard();
            return Err(CompactError::Store(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists; nothing was replaced", s.path.display()),
            ))));
        }
    }
    let dir = store.events_dir().join(&plan.partition);
    let swap = Swap {
        old: file_names(&plan.files),
        new: file_names(staged.iter().map(|s| &s.path)),
    };
    write_swap(&dir, &swap)?;
    // The list first: a checkpoint naming a replaced file must find it there once the file
    // is gone.
    record_replaced(&dir, &plan.files)?;
    let mut bytes_out = 0;
    for s in &staged {
        s.publish()?;
        bytes_out += fs_err::metadata(&s.path).map_err(StoreError::Io)?.len();
    }
    for f in &plan.files {
        fs_err::remove_file(f).map_err(StoreError::Io)?;
    }
    fs_err::remove_file(dir.join(SWAP_MANIFEST)).map_err(StoreError::Io)?;
    Ok(PartitionReport {
        partition: plan.partition.clone(),
        recent: plan.recent,
        files_in: plan.files.len(),
        files_out: staged.len(),
        rows: written,
        bytes_in: plan.bytes,
        bytes_out,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn file_names<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Vec<String> {
    paths
        .into_iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// Writes the swap manifest (durably: it must outlive a crash of the swap it describes).
fn write_swap(dir: &Path, swap: &Swap) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{SWAP_MANIFEST}.tmp"));
    let mut f = fs_err::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(swap).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    fs_err::rename(&tmp, dir.join(SWAP_MANIFEST))?;
    Ok(())
}

/// What a reader listing `dir` (a date partition) must leave out while a swap is under
/// way there: the new files until every one of them is published, then the old ones
/// (the rule [`finish_interrupted`] applies). Empty when no swap is in progress; a
/// manifest that cannot be read leaves nothing out (the swap's own run reports it).
pub fn hidden_by_swap(dir: &Path) -> std::collections::HashSet<String> {
    let Ok(text) = std::fs::read_to_string(dir.join(SWAP_MANIFEST)) else {
        return Default::default();
    };
    let Ok(swap) = serde_json::from_str::<Swap>(&text) else {
        return Default::default();
    };
    let published = swap.new.iter().all(|n| dir.join(n).is_file());
    if published { swap.old } else { swap.new }.into_iter().collect()
}

/// The hidden lock file every compaction of a store holds.
pub const LOCK_FILE: &str = ".compact.lock";

/// Takes the store's compaction lock, waiting while another compaction holds it (a daily
/// run of old days and a frequent one of recent days may be scheduled to overlap); held
/// until the returned file is dropped. The kernel lets go of it when the process dies.
pub fn lock(store: &Store) -> Result<std::fs::File, StoreError> {
    let dir = store.events_dir();
    fs_err::create_dir_all(&dir)?;
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?
        .into_file();
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::info!("another compaction of this store is running; waiting for it");
            file.lock()?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::Io(e)),
    }
    Ok(file)
}

/// What [`finish_interrupted`] did to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// Every new file was in place: the old files left behind were removed.
    Completed(String),
    /// Some new file was missing: the new files were removed, the old ones kept.
    Undone(String),
}

/// Completes or undoes the swaps a kill interrupted (see the module docs); a partition
/// without a manifest is left alone. Returns what was done, partition by partition.
pub fn finish_interrupted(store: &Store) -> Result<Vec<Recovered>, StoreError> {
    let mut out = Vec::new();
    let events = store.events_dir();
    if !events.is_dir() {
        return Ok(out);
    }
    let mut dirs = fs_err::read_dir(&events)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    dirs.sort();
    for dir in dirs {
        if dir.is_dir() {
            remove_dead_rewrites(&dir)?;
        }
        let manifest = dir.join(SWAP_MANIFEST);
        if !manifest.is_file() {
            continue;
        }
        let text = fs_err::read_to_string(&manifest)?;
        let swap: Swap = serde_json::from_str(&text).map_err(|e| {
            StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", manifest.display()),
            ))
        })?;
        let partition = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let published = swap.new.iter().all(|n| dir.join(n).is_file());
        // The old files hold every row until all the new ones are published (their rows
        // were counted before the first was), so only then may the old ones go.
        let remove = if published { &swap.old } else { &swap.new };
        for name in remove {
            match std::fs::remove_file(dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Io(e)),
            }
        }
        fs_err::remove_file(&manifest)?;
        tracing::warn!(
            partition,
            completed = published,
            "an interrupted compaction swap was finished"
        );
        out.push(if published {
            Recovered::Completed(partition)
        } else {
            Recovered::Undone(partition)
        });
    }
    Ok(out)
}

/// Removes the temporary files of rewrites a killed or failed compaction left in `dir`
/// (`.sorted-….tmp`, never published). Called under the store's compaction lock, so no
/// live compaction owns one; the pipeline's own temporary files (`.part-…`) are not these.
fn remove_dead_rewrites(dir: &Path) -> Result<(), StoreError> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(&format!(".{SORTED_PREFIX}-")) && name.ends_with(".tmp") {
            tracing::warn!(file = %path.display(), "removing a dead compaction's temporary file");
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Io(e)),
            }
        }
    }
    Ok(())
}

fn footer_rows(path: &Path) -> Result<u64, StoreError> {
    let reader = SerializedFileReader::new(fs_err::File::open(path)?.into_file())?;
    Ok(u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0))
}

fn record_replaced(dir: &Path, files: &[PathBuf]) -> Result<(), StoreError> {
    let mut list = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(COMPACTED_LIST))?;
    for f in files {
        if let Some(name) = f.file_name() {
            writeln!(list, "{}", name.to_string_lossy())?;
        }
    }
    list.sync_all()?;
    Ok(())
}

/// Whether compaction replaced the published file `path` (so its rows live on in a sorted
/// file of the same partition).
pub fn was_compacted(path: &Path) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    std::fs::read_to_string(dir.join(COMPACTED_LIST))
        .is_ok_and(|list| list.lines().any(|l| std::ffi::OsStr::new(l) == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_compaction_waits_for_the_first_to_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let first = lock(&store).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let second = {
            let store = Store::at(dir.path());
            std::thread::spawn(move || {
                let held = lock(&store).unwrap();
                tx.send(()).unwrap();
                drop(held);
            })
        };
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(),
            "the second took the lock while the first held it"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second takes the lock once the first lets go");
        second.join().unwrap();
    }
}
