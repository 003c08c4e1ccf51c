//! Retention: removes what is older than a horizon, safely while a pipeline writes and a
//! gateway reads the same store (`idgw store prune`, `[store] retention_days` applied by
//! `idgw store compact`).
//!
//! - **events**: whole days (`events/date=YYYY-MM-DD/`) that end before the horizon. A day
//!   is first renamed out of the table (one atomic rename: a query lists it whole or not at
//!   all), then deleted; a query that already opened its files reads them to the end.
//! - **alerts** (Parquet): a file goes once every alert in it was last seen before the
//!   horizon; a file that straddles it stays until it does not.
//! - **alerts.jsonl**: rewritten in place without the old lines, under the lock the
//!   pipeline's appends take, so no concurrent append is lost.
//! - **dead letters**: files directly in `deadletter/` last written before the horizon
//!   (not subdirectories, not symbolic links).
//! - **never**: the audit log, checkpoints (the detection state: removing a quiet
//!   partition's would reset its baselines, an attacker's gain after an outage), the
//!   identity state and the vector index, which hold current state, not history.
//!
//! An event day is also left while it was written to within the last hour: a late event
//! can still land in an old day, and a streaming lane's checkpoint may name its staged file
//! there until the next commit publishes it.

use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{Array, TimestampMillisecondArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use super::{Store, StoreError, parquet_files};

/// What a prune removed (or would remove).
#[derive(Debug, Default, Clone, Serialize)]
pub struct PruneReport {
    /// The horizon: everything before it goes.
    pub cutoff: DateTime<Utc>,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Event days removed (`YYYY-MM-DD`).
    pub event_days: Vec<String>,
    /// Alert Parquet files removed.
    pub alert_files: usize,
    /// Lines removed from alerts.jsonl.
    pub alert_lines: usize,
    /// Dead-letter files removed.
    pub deadletter_files: usize,
    /// Old days left because they were written to within the last hour.
    pub event_days_busy: usize,
    /// Bytes freed.
    pub bytes: u64,
}

/// Removes what `store` holds from before `cutoff`.
pub fn prune(store: &Store, cutoff: DateTime<Utc>, dry_run: bool) -> Result<PruneReport, StoreError> {
    let mut r = PruneReport {
        cutoff,
        dry_run,
        ..PruneReport::default()
    };
    prune_event_days(store, cutoff, dry_run, &mut r)?;
    prune_alert_files(store, cutoff, dry_run, &mut r)?;
    prune_alert_log(store, cutoff, dry_run, &mut r)?;
    for (path, bytes) in files_written_before(&store.deadletter_dir(), SystemTime::from(cutoff))? {
        r.deadletter_files += 1;
        r.bytes += bytes;
        if !dry_run {
            fs_err::remove_file(&path)?;
        }
    }
    Ok(r)
}

fn prune_event_days(
    store: &Store,
    cutoff: DateTime<Utc>,
    dry_run: bool,
    r: &mut PruneReport,
) -> Result<(), StoreError> {
    let dir = store.events_dir();
    if !dir.is_dir() {
        return Ok(());
    }
    let mut days: Vec<(NaiveDate, PathBuf)> = Vec::new();
    for entry in fs_err::read_dir(&dir)? {
        let path = entry?.path();
        let Some(day) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("date="))
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        // The whole day must lie before the horizon.
        let end = day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
        if end.is_none_or(|end| end > cutoff) {
            continue;
        }
        if written_within(&path, std::time::Duration::from_secs(3600))? {
            r.event_days_busy += 1;
            continue;
        }
        days.push((day, path));
    }
    days.sort();
    for (day, path) in days {
        r.bytes += dir_bytes(&path)?;
        r.event_days.push(day.to_string());
        if dry_run {
            continue;
        }
        // Out of the table in one step, then gone. The hidden name keeps it out of listings.
        let doomed = dir.join(format!(".pruned-{}", day));
        fs_err::rename(&path, &doomed)?;
        fs_err::remove_dir_all(&doomed)?;
    }
    Ok(())
}

fn prune_alert_files(
    store: &Store,
    cutoff: DateTime<Utc>,
    dry_run: bool,
    r: &mut PruneReport,
) -> Result<(), StoreError> {
    let dir = store.alerts_dir();
    if !dir.is_dir() {
        return Ok(());
    }
    for path in parquet_files(&dir)? {
        let Some(latest) = latest_last_seen(&path)? else {
            continue;
        };
        if latest >= cutoff.timestamp_millis() {
            continue;
        }
        r.alert_files += 1;
        r.bytes += fs_err::metadata(&path)?.len();
        if !dry_run {
            fs_err::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The latest `last_seen` of an alerts file (ms), `None` when it has no rows.
fn latest_last_seen(path: &Path) -> Result<Option<i64>, StoreError> {
    let file = fs_err::File::open(path)?;
    let other =
        |e: parquet::errors::ParquetError| StoreError::Io(std::io::Error::other(format!("{}: {e}", path.display())));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0).map_err(other)?;
    let Some(index) = builder.schema().index_of("last_seen").ok() else {
        return Ok(None);
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let reader = builder.with_projection(mask).build().map_err(other)?;
    let mut latest: Option<i64> = None;
    for batch in reader {
        let batch = batch.map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
        let Some(col) = batch.column(0).as_any().downcast_ref::<TimestampMillisecondArray>() else {
            continue;
        };
        for i in 0..col.len() {
            if col.is_valid(i) {
                latest = Some(latest.map_or(col.value(i), |l| l.max(col.value(i))));
            }
        }
    }
    Ok(latest)
}

fn prune_alert_log(store: &Store, cutoff: DateTime<Utc>, dry_run: bool, r: &mut PruneReport) -> Result<(), StoreError> {
    let path = store.alerts_jsonl();
    if !path.is_file() {
        return Ok(());
    }
    let mut file = fs_err::OpenOptions::new().read(true).write(true).open(&path)?;
    // The pipeline's appends take the same lock (store::alerts), so none lands between the
    // read and the rewrite.
    file.file().lock()?;
    let result = (|| {
        #[derive(serde::Deserialize)]
        struct Seen {
            last_seen: DateTime<Utc>,
        }
        let mut kept = Vec::new();
        let mut removed = 0usize;
        let mut reader = std::io::BufReader::new(file.file());
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            // A line that does not parse (a torn tail) is kept: prune only removes what it
            // knows to be old.
            match serde_json::from_slice::<Seen>(&line) {
                Ok(s) if s.last_seen < cutoff => removed += 1,
                _ => kept.extend_from_slice(&line),
            }
        }
        drop(reader);
        if removed > 0 && !dry_run {
            let before = file.metadata()?.len();
            file.rewind()?;
            file.write_all(&kept)?;
            file.set_len(kept.len() as u64)?;
            file.sync_data()?;
            r.bytes += before - kept.len() as u64;
        }
        r.alert_lines = removed;
        Ok::<(), std::io::Error>(())
    })();
    file.file().unlock()?;
    result.map_err(StoreError::Io)
}

/// Regular files directly in `dir` last modified before `horizon`, with sizes. A `dir`
/// that is a symbolic link is refused: it could point anywhere, the audit log included.
fn files_written_before(dir: &Path, horizon: SystemTime) -> Result<Vec<(PathBuf, u64)>, StoreError> {
    let mut out = Vec::new();
    match fs_err::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "{} is a symbolic link; prune follows none",
                dir.display()
            ))));
        }
        Ok(_) => {}
    }
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        // Not followed: a link in the directory is neither a dead letter nor ours to follow.
        let meta = entry.metadata()?;
        if meta.is_file() && meta.modified()? < horizon {
            out.push((entry.path(), meta.len()));
        }
    }
    Ok(out)
}

/// Whether `dir` or a file in it changed within `recent`.
fn written_within(dir: &Path, recent: std::time::Duration) -> Result<bool, StoreError> {
    let since = SystemTime::now() - recent;
    if fs_err::metadata(dir)?.modified()? > since {
        return Ok(true);
    }
    for entry in fs_err::read_dir(dir)? {
        if entry?.metadata()?.modified()? > since {
            return Ok(true);
        }
    }
    Ok(false)
}

fn dir_bytes(dir: &Path) -> Result<u64, StoreError> {
    let mut total = 0;
    for entry in fs_err::read_dir(dir)? {
        let meta = entry?.metadata()?;
        total += if meta.is_dir() { 0 } else { meta.len() };
    }
    Ok(total)
}
