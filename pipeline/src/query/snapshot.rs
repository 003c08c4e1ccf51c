//! A small table served from memory and reloaded when its files change.
//!
//! `alerts` and `identity_state` are small (one row per alert, one per user) and read on
//! nearly every gateway call. Listing and opening their Parquet files per call costs more
//! than the lookup itself, so a long-lived session keeps their rows in memory. Each scan
//! asks [`super::listing`] for the table's files (one stat of the directory while it is
//! settled; a new listing, and a stat of each file kept, once it changed); when the
//! pipeline has published or replaced a file, that file is read again before the scan
//! runs, so the next call sees it (the unchanged files are not: reading a 100,000-user
//! snapshot again whenever one lane rewrote its own file held calls up to 300 ms while a
//! pipeline streamed).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::interleave_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use super::listing::{FileSlot, Listings, parquet_under};

/// A table whose rows are held in memory, reloaded when its directory's files change.
#[derive(Debug)]
pub struct SnapshotTable {
    dir: PathBuf,
    schema: SchemaRef,
    keys: Vec<&'static str>,
    group_by: Option<&'static str>,
    /// The files as listed, each with its rows once read.
    listings: Listings<FileRows>,
    loaded: Mutex<Option<Arc<Loaded>>>,
}

/// One file's rows, and where each key value is in them.
#[derive(Debug)]
struct FileRows {
    batches: Vec<RecordBatch>,
    /// Per key column (in [`SnapshotTable::new`]'s order): value → (batch, row), the
    /// file's last occurrence.
    keys: Vec<HashMap<String, (usize, usize)>>,
    /// Value of the grouping column → its rows, in file order.
    groups: HashMap<String, Vec<(usize, usize)>>,
}

/// One load: the files in listing order, each read once for as long as it is unchanged
/// (a pipeline rewrites one lane's identity-state file at a time: the others, and a
/// replay's snapshot of every user, are not read again), and the rows as one table.
#[derive(Debug)]
struct Loaded {
    table: Arc<MemTable>,
    /// The listing these rows were loaded from.
    listed: Arc<[Arc<FileSlot<FileRows>>]>,
    files: Vec<(PathBuf, Arc<FileRows>)>,
}

impl SnapshotTable {
    /// The table whose Parquet files are in `dir` (none yet is fine), with `schema`;
    /// [`SnapshotTable::lookup`] finds rows by the values of the `keys` columns (text
    /// columns; a value in an earlier column wins over the same value in a later one).
    pub fn new(dir: PathBuf, schema: SchemaRef, keys: &[&'static str]) -> Self {
        SnapshotTable {
            dir,
            schema,
            keys: keys.to_vec(),
            group_by: None,
            listings: Listings::default(),
            loaded: Mutex::new(None),
        }
    }

    /// The same table, whose rows [`SnapshotTable::rows_where`] also finds by the value of
    /// the text column `column` (many rows per value: an alert's user).
    pub fn grouped_by(self, column: &'static str) -> Self {
        SnapshotTable {
            group_by: Some(column),
            ..self
        }
    }

    /// The rows whose [`SnapshotTable::grouped_by`] column holds `value`, in load order, as
    /// one batch (`None` when there are none, or the table is not grouped).
    pub fn rows_where(&self, value: &str) -> Result<Option<RecordBatch>> {
        let loaded = self.current()?;
        let mut batches: Vec<&RecordBatch> = Vec::new();
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (_, file) in &loaded.files {
            if let Some(found) = file.groups.get(value) {
                rows.extend(found.iter().map(|&(b, r)| (batches.len() + b, r)));
            }
            batches.extend(file.batches.iter());
        }
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(interleave_record_batch(&batches, &rows)?))
    }

    /// The row whose key columns hold `key` (the latest loaded from the files as they are
    /// now), as a one-row batch.
    pub fn lookup(&self, key: &str) -> Result<Option<RecordBatch>> {
        let loaded = self.current()?;
        for column in 0..self.keys.len() {
            for (_, file) in loaded.files.iter().rev() {
                if let Some(&(batch, row)) = file.keys[column].get(key) {
                    return Ok(Some(file.batches[batch].slice(row, 1)));
                }
            }
        }
        Ok(None)
    }

    /// The rows as of now: the loaded ones, with the files that changed read again.
    fn current(&self) -> Result<Arc<Loaded>> {
        let listed = self.listings.files(
            &self.dir,
            || parquet_under(&self.dir).map_err(|e| DataFusionError::External(Box::new(e))),
            DataFusionError::IoError,
        )?;
        // One loader at a time; the others wait and then use what it loaded.
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The same listing, or (a directory that keeps changing, listed again each call) the
        // same files with the very rows this table was built from: nothing to rebuild.
        if let Some(table) = loaded.as_ref()
            && (Arc::ptr_eq(&table.listed, &listed)
                || (table.files.len() == listed.len()
                    && listed
                        .iter()
                        .zip(&table.files)
                        .all(|(slot, (_, rows))| slot.kept().is_some_and(|kept| Arc::ptr_eq(&kept, rows)))))
        {
            return Ok(Arc::clone(table));
        }
        let mut files = Vec::with_capacity(listed.len());
        for slot in listed.iter() {
            let file = match slot.kept() {
                Some(file) => file,
                None => match self.read(slot)? {
                    Some(file) => file,
                    // Removed since the listing: as if not listed (the next call lists the
                    // directory again).
                    None => {
                        self.listings.distrust();
                        continue;
                    }
                },
            };
            files.push((slot.path().to_owned(), file));
        }
        let batches: Vec<RecordBatch> = files.iter().flat_map(|(_, f)| f.batches.iter().cloned()).collect();
        let table = Arc::new(MemTable::try_new(Arc::clone(&self.schema), vec![batches])?);
        let fresh = Arc::new(Loaded { table, listed, files });
        *loaded = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// One file's rows and their indexes, kept in its slot; `None` when the file is gone.
    fn read(&self, slot: &FileSlot<FileRows>) -> Result<Option<Arc<FileRows>>> {
        let mut batches = Vec::new();
        let Some(opened) = read_into(slot, &self.schema, &mut batches)? else {
            return Ok(None);
        };
        let text = |batch: &RecordBatch, column: &str| {
            batch
                .column_by_name(column)
                .and_then(|c| c.as_string_opt::<i32>())
                .cloned()
        };
        let keys = self
            .keys
            .iter()
            .map(|key| {
                let mut index = HashMap::new();
                for (b, batch) in batches.iter().enumerate() {
                    let Some(values) = text(batch, key) else { continue };
                    for row in 0..values.len() {
                        if values.is_valid(row) {
                            index.insert(values.value(row).to_owned(), (b, row));
                        }
                    }
                }
                index
            })
            .collect();
        let mut groups: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        if let Some(column) = self.group_by {
            for (b, batch) in batches.iter().enumerate() {
                let Some(values) = text(batch, column) else { continue };
                for row in 0..values.len() {
                    if values.is_valid(row) {
                        groups.entry(values.value(row).to_owned()).or_default().push((b, row));
                    }
                }
            }
        }
        let rows = Arc::new(FileRows { batches, keys, groups });
        slot.keep(Arc::clone(&rows), &opened);
        Ok(Some(rows))
    }
}

/// Appends a file's rows to `out` and returns the metadata of the file read; None when the
/// file is gone.
fn read_into(
    slot: &FileSlot<FileRows>,
    schema: &SchemaRef,
    out: &mut Vec<RecordBatch>,
) -> Result<Option<std::fs::Metadata>> {
    let path = slot.path();
    let context = |e: &dyn std::fmt::Display| DataFusionError::Execution(format!("reading {}: {e}", path.display()));
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(context(&e)),
    };
    // Whatever file is there now (one that replaced the listed one is newer), kept with
    // what its handle says it is.
    let opened = file.metadata().map_err(|e| context(&e))?;
    // Read as the contract's schema, so the batches are exactly the table's type.
    let options = ArrowReaderOptions::new().with_schema(Arc::clone(schema));
    let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| context(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| context(&e))?;
        out.push(RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?);
    }
    Ok(Some(opened))
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let loaded = self.current()?;
        loaded.table.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("user_login", DataType::Utf8, true),
            Field::new("score", DataType::Int64, false),
        ]))
    }

    /// Writes `rows` (id, login, score) as one Parquet file, replacing it as a pipeline does.
    fn write(path: &std::path::Path, rows: &[(&str, &str, i64)]) {
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        let staged = path.with_extension("tmp");
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&staged).unwrap(), schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        std::fs::rename(staged, path).unwrap();
    }

    fn score(table: &SnapshotTable, key: &str) -> Option<i64> {
        let row = table.lookup(key).unwrap()?;
        Some(
            row.column(2)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(0),
        )
    }

    fn users(table: &SnapshotTable, login: &str) -> Vec<i64> {
        table.rows_where(login).unwrap().map_or_else(Vec::new, |b| {
            b.column(2)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        })
    }

    /// A later file's row wins for the same key, an earlier key column wins over a later
    /// one, and grouped rows come from every file in listing order.
    #[test]
    fn lookups_follow_the_files_as_listed() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.parquet"), &[("u1", "ann", 1), ("u2", "bob", 2)]);
        write(&dir.path().join("b.parquet"), &[("u1", "ann", 10), ("bob", "carl", 3)]);
        let table =
            SnapshotTable::new(dir.path().to_owned(), schema(), &["user_id", "user_login"]).grouped_by("user_login");
        assert_eq!(score(&table, "u1"), Some(10));
        assert_eq!(score(&table, "u2"), Some(2));
        // "bob" is u2's login and another row's id: the id column wins.
        assert_eq!(score(&table, "bob"), Some(3));
        assert_eq!(score(&table, "ann"), Some(10));
        assert_eq!(score(&table, "nobody"), None);
        assert_eq!(users(&table, "ann"), vec![1, 10]);
        assert_eq!(users(&table, "carl"), vec![3]);
        assert!(users(&table, "nobody").is_empty());
    }

    /// A replaced file is read again and the next lookup sees it; the files that did not
    /// change are kept as they were loaded, not read again; a removed file's rows go.
    #[test]
    fn only_the_files_that_changed_are_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write(&a, &[("u1", "ann", 1)]);
        write(&b, &[("u2", "bob", 2)]);
        let table = SnapshotTable::new(dir.path().to_owned(), schema(), &["user_id"]);
        assert_eq!(score(&table, "u2"), Some(2));
        let first = table.current().unwrap();
        write(&b, &[("u2", "bob", 20), ("u3", "cy", 3)]);
        assert_eq!(score(&table, "u2"), Some(20));
        assert_eq!(score(&table, "u3"), Some(3));
        let second = table.current().unwrap();
        assert!(
            Arc::ptr_eq(&first.files[0].1, &second.files[0].1),
            "a.parquet was read again"
        );
        assert!(!Arc::ptr_eq(&first.files[1].1, &second.files[1].1));
        // Replaced by a file of the same size with the same modification time (a coarse
        // timestamp): still read again.
        let before = std::fs::metadata(&b).unwrap();
        write(&b, &[("u2", "bob", 21), ("u3", "cy", 4)]);
        let file = std::fs::File::options().write(true).open(&b).unwrap();
        file.set_modified(before.modified().unwrap()).unwrap();
        assert_eq!(
            std::fs::metadata(&b).unwrap().len(),
            before.len(),
            "the test needs the same size"
        );
        assert_eq!(score(&table, "u2"), Some(21));
        std::fs::remove_file(&a).unwrap();
        assert_eq!(score(&table, "u1"), None);
        assert_eq!(score(&table, "u3"), Some(4));
        let third = table.current().unwrap();
        assert_eq!(third.files.len(), 1);
        assert_eq!(third.files[0].0, b);
        // Another file written beside it (the directory changes and is listed again): the
        // table built from the same files is the one served, not rebuilt.
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let fourth = table.current().unwrap();
        assert!(Arc::ptr_eq(&third, &fourth), "same files, same rows: the same table");
    }
}
