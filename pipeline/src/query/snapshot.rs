//! A small table served from memory and reloaded when its files change.
//!
//! `alerts` and `identity_state` are small (one row per alert, one per user) and read on
//! nearly every gateway call. Listing and opening their Parquet files per call costs more
//! than the lookup itself, so a long-lived session keeps their rows in memory. Each scan
//! lists the table's directory (a few stat calls) and compares names, sizes and
//! modification times with what was loaded; when the pipeline has published or replaced a
//! file, the table is read again before the scan runs, so the next call sees it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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

use crate::store::parquet_files;

/// What was loaded: each file's path, size and modification time.
type Signature = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// A table whose rows are held in memory, reloaded when its directory's files change.
#[derive(Debug)]
pub struct SnapshotTable {
    dir: PathBuf,
    schema: SchemaRef,
    keys: Vec<&'static str>,
    group_by: Option<&'static str>,
    loaded: Mutex<Option<(Signature, Arc<Loaded>)>>,
}

/// One load: the rows, and where each key value is.
#[derive(Debug)]
struct Loaded {
    table: Arc<MemTable>,
    batches: Vec<RecordBatch>,
    index: HashMap<String, (usize, usize)>,
    groups: HashMap<String, Vec<(usize, usize)>>,
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
        let Some(rows) = loaded.groups.get(value) else {
            return Ok(None);
        };
        let batches: Vec<&RecordBatch> = loaded.batches.iter().collect();
        Ok(Some(interleave_record_batch(&batches, rows)?))
    }

    /// The row whose key columns hold `key` (the latest loaded from the files as they are
    /// now), as a one-row batch.
    pub fn lookup(&self, key: &str) -> Result<Option<RecordBatch>> {
        let loaded = self.current()?;
        Ok(loaded
            .index
            .get(key)
            .map(|&(batch, row)| loaded.batches[batch].slice(row, 1)))
    }

    /// The rows as of now: the loaded ones, or the files read again if they changed.
    fn current(&self) -> Result<Arc<Loaded>> {
        let signature = signature(&self.dir)?;
        // One loader at a time; the others wait and then use what it loaded.
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, table)) = loaded.as_ref()
            && *seen == signature
        {
            return Ok(Arc::clone(table));
        }
        let mut batches = Vec::new();
        for (path, _, _) in &signature {
            read_into(path, &self.schema, &mut batches)?;
        }
        let mut index = HashMap::new();
        // Later columns first, so earlier ones overwrite them.
        for key in self.keys.iter().rev() {
            for (b, batch) in batches.iter().enumerate() {
                let Some(column) = batch.column_by_name(key) else {
                    continue;
                };
                let Some(values) = column.as_string_opt::<i32>() else {
                    continue;
                };
                for row in 0..values.len() {
                    if values.is_valid(row) {
                        index.insert(values.value(row).to_owned(), (b, row));
                    }
                }
            }
        }
        let mut groups: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        if let Some(column) = self.group_by {
            for (b, batch) in batches.iter().enumerate() {
                let Some(values) = batch.column_by_name(column).and_then(|c| c.as_string_opt::<i32>()) else {
                    continue;
                };
                for row in 0..values.len() {
                    if values.is_valid(row) {
                        groups.entry(values.value(row).to_owned()).or_default().push((b, row));
                    }
                }
            }
        }
        let table = Arc::new(MemTable::try_new(Arc::clone(&self.schema), vec![batches.clone()])?);
        let fresh = Arc::new(Loaded {
            table,
            batches,
            index,
            groups,
        });
        *loaded = Some((signature, Arc::clone(&fresh)));
        Ok(fresh)
    }
}

fn signature(dir: &Path) -> Result<Signature> {
    let files = parquet_files(dir).map_err(|e| DataFusionError::External(Box::new(e)))?;
    files
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path)?;
            Ok((path, meta.len(), meta.modified().ok()))
        })
        .collect::<std::io::Result<_>>()
        .map_err(DataFusionError::IoError)
}

fn read_into(path: &Path, schema: &SchemaRef, out: &mut Vec<RecordBatch>) -> Result<()> {
    let context = |e: &dyn std::fmt::Display| DataFusionError::Execution(format!("reading {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| context(&e))?;
    // Read as the contract's schema, so the batches are exactly the table's type.
    let options = ArrowReaderOptions::new().with_schema(Arc::clone(schema));
    let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| context(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| context(&e))?;
        out.push(RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?);
    }
    Ok(())
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
