//! The set of event ids already stored, so a repeated `uuid` is stored once.
//!
//! Okta uuids are UUIDs, kept as 128-bit integers (16 bytes an id instead of a 36-byte
//! string plus its allocation); anything else is kept as a string. On open, the ids of
//! the events already in the store are loaded (only the `event_id` column is read), so a
//! replay of the same input into the same store stores nothing twice.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{StoreError, parquet_files};

/// Ids seen.
#[derive(Debug, Default)]
pub struct SeenIds {
    // foldhash: one insert per event, and SipHash showed in profiles.
    uuids: std::collections::HashSet<u128, foldhash::fast::RandomState>,
    others: std::collections::HashSet<Box<str>, foldhash::fast::RandomState>,
}

impl SeenIds {
    /// Records `id`; true when it was not seen before.
    pub fn insert(&mut self, id: &str) -> bool {
        match uuid::Uuid::try_parse(id) {
            Ok(u) => self.uuids.insert(u.as_u128()),
            Err(_) => self.others.insert(id.into()),
        }
    }

    /// True when `id` is known.
    pub fn contains(&self, id: &str) -> bool {
        match uuid::Uuid::try_parse(id) {
            Ok(u) => self.uuids.contains(&u.as_u128()),
            Err(_) => self.others.contains(id),
        }
    }

    /// How many ids are known.
    pub fn len(&self) -> usize {
        self.uuids.len() + self.others.len()
    }

    /// True when no id is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads the `event_id`s of every published Parquet file under `events_dir`.
    pub fn load(events_dir: &Path) -> Result<Self, StoreError> {
        Self::load_files(events_dir, "event_id", |_| true)
    }

    /// Loads the `event_id`s of a stream partition's published files (named `prefix…`:
    /// its events never land anywhere else), of every merge of recent files
    /// (`sorted-recent-…`, where `idgw store compact --recent` put those files together
    /// with every other partition's, until the day's whole rewrite), and of the sorted files
    /// of the date partitions from `recent_since` on. A superset: an id of another
    /// partition is never offered here, and if it were, it would be a repeat. As before
    /// merges existed, a day rewritten whole leaves the horizon.
    pub fn load_for_stream(
        events_dir: &Path,
        prefix: &str,
        recent_since: chrono::NaiveDate,
    ) -> Result<Self, StoreError> {
        let since = format!("date={}", recent_since.format("%Y-%m-%d"));
        let merged = format!("{}-", super::compact::RECENT_PREFIX);
        let sorted = format!("{}-", super::compact::SORTED_PREFIX);
        let wanted = |path: &Path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let partition = path
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            name.starts_with(prefix)
                || name.starts_with(&merged)
                || (name.starts_with(&sorted) && partition.starts_with("date=") && *partition >= *since)
        };
        // A file merged away between the listing and its reading has its ids in a sorted
        // file the listing may have missed: then the whole load is done again.
        let mut attempts = 0;
        loop {
            let (seen, vanished) = Self::load_listed(events_dir, "event_id", wanted)?;
            if !vanished || attempts == 5 {
                return Ok(seen);
            }
            attempts += 1;
        }
    }

    /// Loads the string column `column` of the published files under `dir` whose name
    /// starts with `prefix` (e.g. the `alert_id`s a stream partition has published).
    pub fn load_column(dir: &Path, column: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::load_files(dir, column, |path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
    }

    fn load_files(events_dir: &Path, column: &str, wanted: impl Fn(&Path) -> bool) -> Result<Self, StoreError> {
        Ok(Self::load_listed(events_dir, column, wanted)?.0)
    }

    /// The ids, and whether a listed file was gone by the time it was read (merged away by
    /// a compaction: its ids live on in a sorted file).
    fn load_listed(
        events_dir: &Path,
        column: &str,
        wanted: impl Fn(&Path) -> bool,
    ) -> Result<(Self, bool), StoreError> {
        let mut seen = SeenIds::default();
        let mut vanished = false;
        let files = parquet_files(events_dir)?.into_iter().filter(|p| wanted(p));
        for path in files {
            let file = match fs_err::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    vanished = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let builder = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)?;
            let Some(idx) = builder.schema().fields().iter().position(|f| f.name() == column) else {
                continue;
            };
            let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
            for batch in builder.with_projection(mask).build()? {
                let batch = batch?;
                if let Some(col) = batch.column(0).as_string_opt::<i32>() {
                    for i in 0..col.len() {
                        if col.is_valid(i) {
                            seen.insert(col.value(i));
                        }
                    }
                }
            }
        }
        Ok((seen, vanished))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_and_other_ids() {
        let mut s = super::SeenIds::default();
        assert!(s.insert("dc9fd3c0-598c-11ef-8478-2b7584bf8d5a"));
        assert!(!s.insert("DC9FD3C0-598C-11EF-8478-2B7584BF8D5A"));
        assert!(s.insert("not-a-uuid"));
        assert!(!s.insert("not-a-uuid"));
        assert_eq!(s.len(), 2);
    }
}
