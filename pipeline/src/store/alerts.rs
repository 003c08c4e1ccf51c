//! The alert sinks of the store: `alerts.jsonl` (appended, never rewritten), the `alerts`
//! Parquet table (one file per run) and the `identity_state` snapshot.
//!
//! Alert ids are deterministic, so the sink drops an alert whose id the store already holds:
//! a replay or a redelivery never duplicates one.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use idgw_schemas::rows::{AlertRow, IdentityStateRow, alerts_schema, identity_state_schema};
use idgw_schemas::{Alert, IdentityState};
use serde::Deserialize;

use super::parquet_writer::{PartitionedWriter, WriterOptions};
use super::{Store, StoreError};

/// The file name of the identity-state snapshot in `identity_state/`.
pub const IDENTITY_STATE_FILE: &str = "identity_state.parquet";

/// `alerts.jsonl`: appended, never rewritten, each alert id once.
///
/// A batch of lines goes out in one `write` on a file opened for appending, so several
/// pipeline workers can share the file without interleaving lines.
pub struct AlertLog {
    path: PathBuf,
    file: fs_err::File,
    seen: HashSet<String>,
    duplicates: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for AlertLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertLog").field("path", &self.path).finish()
    }
}

impl AlertLog {
    /// Opens the log, loading the ids of the alerts it holds.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let path = store.alerts_jsonl();
        let (seen, torn_tail) = read_ids(&path)?;
        let mut file = fs_err::OpenOptions::new().create(true).append(true).open(&path)?;
        if torn_tail {
            file.write_all(b"\n")?;
        }
        Ok(AlertLog {
            path,
            file,
            seen,
            duplicates: 0,
            buf: Vec::new(),
        })
    }

    /// Reloads the ids (another worker may have written alerts this one will see again).
    pub fn reload(&mut self) -> Result<(), StoreError> {
        self.seen = read_ids(&self.path)?.0;
        Ok(())
    }

    /// Appends the alerts the log does not hold yet; returns them.
    pub fn append<'a>(&mut self, alerts: &'a [Alert]) -> Result<Vec<&'a Alert>, StoreError> {
        self.buf.clear();
        let mut new = Vec::new();
        for alert in alerts {
            if !self.seen.insert(alert.alert_id.clone()) {
                self.duplicates += 1;
                continue;
            }
            serde_json::to_writer(&mut self.buf, alert).map_err(std::io::Error::other)?;
            self.buf.push(b'\n');
            new.push(alert);
        }
        if !self.buf.is_empty() {
            // `idgw store prune` rewrites the file under this lock (store::retention).
            self.file.file().lock()?;
            let written = self.file.write_all(&self.buf);
            self.file.file().unlock()?;
            written?;
        }
        Ok(new)
    }

    /// Makes the appended lines durable.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.file.sync_data()?;
        Ok(())
    }

    /// A second handle on the file, for syncing it from another thread.
    pub fn sync_handle(&self) -> Result<std::fs::File, StoreError> {
        Ok(self.file.file().try_clone()?)
    }

    /// Alerts dropped because the log already held them.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

/// The alert ids in `path`, and whether its last line lacks its newline.
fn read_ids(path: &std::path::Path) -> Result<(HashSet<String>, bool), StoreError> {
    let mut seen = HashSet::new();
    let mut torn_tail = false;
    if !path.exists() {
        return Ok((seen, false));
    }
    #[derive(Deserialize)]
    struct Id {
        alert_id: String,
    }
    // One pass: collect the ids, and notice a last line without its newline.
    let mut reader = std::io::BufReader::new(fs_err::File::open(path)?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        torn_tail = !line.ends_with('\n');
        match serde_json::from_str::<Id>(line.trim_end()) {
            Ok(id) => {
                seen.insert(id.alert_id);
            }
            // A crash can leave half a line at the end; the alert is raised again.
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable alert line"),
        }
    }
    Ok((seen, torn_tail))
}

/// Appends alerts to the store: `alerts.jsonl` as they come, and the run's alerts as one
/// Parquet file at the end.
pub struct AlertSink {
    log: AlertLog,
    run: Vec<Alert>,
    alerts_dir: PathBuf,
    run_id: String,
}

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSink").field("run", &self.run.len()).finish()
    }
}

impl AlertSink {
    /// Opens the sink, loading the ids of the alerts already stored.
    pub fn open(store: &Store, run_id: &str) -> Result<Self, StoreError> {
        Ok(AlertSink {
            log: AlertLog::open(store)?,
            run: Vec::new(),
            alerts_dir: store.alerts_dir(),
            run_id: run_id.to_owned(),
        })
    }

    /// Appends the alerts the store does not hold yet; returns how many were new.
    pub fn write(&mut self, alerts: Vec<Alert>) -> Result<usize, StoreError> {
        let new: Vec<Alert> = self.log.append(&alerts)?.into_iter().cloned().collect();
        let n = new.len();
        self.run.extend(new);
        Ok(n)
    }

    /// Alerts dropped because the store already held them.
    pub fn duplicates(&self) -> u64 {
        self.log.duplicates()
    }

    /// Syncs the JSONL and writes this run's alerts as one Parquet file.
    pub fn finish(mut self) -> Result<Vec<Alert>, StoreError> {
        self.log.sync()?;
        if !self.run.is_empty() {
            let mut writer = PartitionedWriter::new(
                self.alerts_dir.clone(),
                Arc::new(alerts_schema()),
                WriterOptions::default(),
                &self.run_id,
            )?;
            write_alerts(&mut writer, &self.run)?;
            writer.finish()?;
        }
        Ok(self.run)
    }
}

/// Writes `alerts` as one batch of the `alerts` table.
pub fn write_alerts(writer: &mut PartitionedWriter, alerts: &[Alert]) -> Result<(), StoreError> {
    let schema = Arc::new(alerts_schema());
    let rows: Vec<AlertRow<'_>> = alerts.iter().map(AlertRow::from).collect();
    let batch = serde_arrow::to_record_batch(schema.fields(), &rows)?;
    let batch = datafusion::arrow::record_batch::RecordBatch::try_new(schema, batch.columns().to_vec())?;
    writer.write("", &batch)
}

/// Replaces the store's identity-state snapshot with `states` (atomically).
pub fn write_identity_state(store: &Store, states: &[IdentityState], run_id: &str) -> Result<PathBuf, StoreError> {
    write_identity_state_file(store, states, run_id, IDENTITY_STATE_FILE)
}

/// Replaces `identity_state/<file>` with `states` (atomically). Stream partitions each keep
/// their own file: their users are disjoint, and the table is every file in the directory.
pub fn write_identity_state_file(
    store: &Store,
    states: &[IdentityState],
    run_id: &str,
    file: &str,
) -> Result<PathBuf, StoreError> {
    let dir = store.identity_state_dir();
    let schema = Arc::new(identity_state_schema());
    let rows: Vec<IdentityStateRow<'_>> = states.iter().map(IdentityStateRow::from).collect();
    let batch = serde_arrow::to_record_batch(schema.fields(), &rows)?;
    let batch = datafusion::arrow::record_batch::RecordBatch::try_new(Arc::clone(&schema), batch.columns().to_vec())?;
    // Staged, so the file is renamed once, from its hidden temporary name straight to
    // `file`: published first as a `part-…` file, its users would be in the table twice
    // (beside the old `file`) until the second rename, and for good if that one failed.
    let options = WriterOptions {
        stage: true,
        ..WriterOptions::default()
    };
    let mut writer = PartitionedWriter::new(dir.clone(), schema, options, run_id)?;
    writer.write("", &batch)?;
    let staged = writer.finish_staged()?;
    let target = dir.join(file);
    if let Some(file) = staged.first() {
        if let Err(e) = fs_err::rename(&file.tmp, &target) {
            let _ = std::fs::remove_file(&file.tmp);
            return Err(e.into());
        }
    } else {
        // No user yet: an empty snapshot still replaces an old one.
        let _ = fs_err::remove_file(&target);
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use idgw_schemas::RiskLevel;

    use super::*;

    fn state(user: &str) -> IdentityState {
        IdentityState {
            user_id: user.to_owned(),
            user_login: None,
            risk_score: 0.0,
            risk_level: RiskLevel::Low,
            top_reasons: Vec::new(),
            event_count: 1,
            alert_count: 0,
            last_seen: None,
            last_ip: None,
            last_country: None,
            last_city: None,
            known_countries: Vec::new(),
            outlier_score: None,
            drift_score: None,
            okta_status: None,
            updated_at: Utc.with_ymd_and_hms(2024, 8, 13, 0, 0, 0).unwrap(),
        }
    }

    /// Names a scan of the table would read (hidden temporaries are not part of it).
    fn visible(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_lane_file_is_published_under_its_own_name_only() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        write_identity_state_file(&store, &[state("u1")], "r1", "lane-0.parquet").unwrap();
        assert_eq!(visible(&store.identity_state_dir()), ["lane-0.parquet"]);

        // When the final rename fails (here the name is taken by a directory), the new rows
        // must not be left in the table under another name beside the old file: a scan would
        // count those users twice.
        std::fs::create_dir_all(store.identity_state_dir().join("lane-1.parquet/x")).unwrap();
        let err = write_identity_state_file(&store, &[state("u2")], "r2", "lane-1.parquet");
        assert!(err.is_err(), "the rename over a directory must fail");
        assert_eq!(
            visible(&store.identity_state_dir()),
            ["lane-0.parquet", "lane-1.parquet"]
        );
        let hidden: Vec<_> = std::fs::read_dir(store.identity_state_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(
            hidden.is_empty(),
            "a failed write leaves no temporary behind: {hidden:?}"
        );
    }
}
