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

    /// Loads the `event_id`s of the published files whose name starts with `prefix` (a
    /// stream partition's files: its events never land anywhere else).
    pub fn load_prefixed(events_dir: &Path, prefix: &str) -> Result<Self, StoreError> {
        Self::load_files(events_dir, "event_id", |name| name.starts_with(prefix))
    }

    /// Loads the string column `column` of the published files under `dir` whose name
    /// starts with `prefix` (e.g. the `alert_id`s a stream partition has published).
    pub fn load_column(dir: &Path, column: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::load_files(dir, column, |name| name.starts_with(prefix))
    }

    fn load_files(events_dir: &Path, column: &str, wanted: impl Fn(&str) -> bool) -> Result<Self, StoreError> {
        let mut seen = SeenIds::default();
        let files = parquet_files(events_dir)?
            .into_iter()
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&wanted));
        for path in files {
            let file = fs_err::File::open(&path)?;
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
        Ok(seen)
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
