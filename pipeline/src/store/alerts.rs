//! The alert sinks of the store: `alerts.jsonl` (appended, never rewritten), the `alerts`
//! Parquet table (one file per run) and the `identity_state` snapshot.
//!
//! Alert ids are deterministic, so the sink drops an alert whose id the store already holds:
//! a replay or a redelivery never duplicates one.

use std::collections::HashSet;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use idgw_schemas::rows::{AlertRow, IdentityStateRow, alerts_schema, identity_state_schema};
use idgw_schemas::{Alert, IdentityState};
use serde::Deserialize;

use super::parquet_writer::{PartitionedWriter, WriterOptions};
use super::{Store, StoreError};

/// The file name of the identity-state snapshot in `identity_state/`.
pub const IDENTITY_STATE_FILE: &str = "identity_state.parquet";

/// Appends alerts to the store.
pub struct AlertSink {
    jsonl: BufWriter<fs_err::File>,
    seen: HashSet<String>,
    run: Vec<Alert>,
    alerts_dir: PathBuf,
    run_id: String,
    duplicates: u64,
}

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSink").field("run", &self.run.len()).finish()
    }
}

impl AlertSink {
    /// Opens the sink, loading the ids of the alerts already stored.
    pub fn open(store: &Store, run_id: &str) -> Result<Self, StoreError> {
        let path = store.alerts_jsonl();
        let mut seen = HashSet::new();
        let mut torn_tail = false;
        if path.exists() {
            #[derive(Deserialize)]
            struct Id {
                alert_id: String,
            }
            // One pass: collect the ids, and notice a last line without its newline.
            let mut reader = std::io::BufReader::new(fs_err::File::open(&path)?);
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
        }
        let file = fs_err::OpenOptions::new().create(true).append(true).open(&path)?;
        let mut jsonl = BufWriter::new(file);
        if torn_tail {
            jsonl.write_all(b"\n")?;
        }
        Ok(AlertSink {
            jsonl,
            seen,
            run: Vec::new(),
            alerts_dir: store.alerts_dir(),
            run_id: run_id.to_owned(),
            duplicates: 0,
        })
    }

    /// Appends the alerts the store does not hold yet; returns how many were new.
    pub fn write(&mut self, alerts: Vec<Alert>) -> Result<usize, StoreError> {
        let mut new = 0;
        for alert in alerts {
            if !self.seen.insert(alert.alert_id.clone()) {
                self.duplicates += 1;
                continue;
            }
            serde_json::to_writer(&mut self.jsonl, &alert).map_err(std::io::Error::other)?;
            self.jsonl.write_all(b"\n")?;
            self.run.push(alert);
            new += 1;
        }
        Ok(new)
    }

    /// Makes the JSONL durable (at a checkpoint).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.jsonl.flush()?;
        self.jsonl.get_ref().sync_data()?;
        Ok(())
    }

    /// Alerts dropped because the store already held them.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Syncs the JSONL and writes this run's alerts as one Parquet file.
    pub fn finish(mut self) -> Result<Vec<Alert>, StoreError> {
        self.sync()?;
        if !self.run.is_empty() {
            let schema = Arc::new(alerts_schema());
            let rows: Vec<AlertRow<'_>> = self.run.iter().map(AlertRow::from).collect();
            let batch = serde_arrow::to_record_batch(schema.fields(), &rows)?;
            let batch =
                datafusion::arrow::record_batch::RecordBatch::try_new(Arc::clone(&schema), batch.columns().to_vec())?;
            let mut writer =
                PartitionedWriter::new(self.alerts_dir.clone(), schema, WriterOptions::default(), &self.run_id)?;
            writer.write("", &batch)?;
            writer.finish()?;
        }
        Ok(self.run)
    }
}

/// Replaces the store's identity-state snapshot with `states` (atomically).
pub fn write_identity_state(store: &Store, states: &[IdentityState], run_id: &str) -> Result<PathBuf, StoreError> {
    let dir = store.identity_state_dir();
    let schema = Arc::new(identity_state_schema());
    let rows: Vec<IdentityStateRow<'_>> = states.iter().map(IdentityStateRow::from).collect();
    let batch = serde_arrow::to_record_batch(schema.fields(), &rows)?;
    let batch = datafusion::arrow::record_batch::RecordBatch::try_new(Arc::clone(&schema), batch.columns().to_vec())?;
    let mut writer = PartitionedWriter::new(dir.clone(), schema, WriterOptions::default(), run_id)?;
    writer.write("", &batch)?;
    let published = writer.finish()?;
    let target = dir.join(IDENTITY_STATE_FILE);
    if let Some(file) = published.first() {
        fs_err::rename(file, &target)?;
    } else {
        // No user yet: an empty snapshot still replaces an old one.
        let _ = fs_err::remove_file(&target);
    }
    Ok(target)
}
