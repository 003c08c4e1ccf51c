//! A Parquet table writer with hive-style partitions (`date=2024-08-13/`).
//!
//! One open file per partition; a file is published (renamed from its hidden temporary
//! name) when it reaches `max_rows_per_file` or when the writer finishes. A staging writer
//! (streaming) closes and syncs its files the same way but leaves the renames to the caller,
//! who publishes them only once a checkpoint names them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{Staged, StoreError};

/// Page compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd at this level (1 favours speed).
    Zstd(i32),
    /// LZ4 (`LZ4_RAW`): faster to decompress, larger.
    Lz4,
}

impl Codec {
    /// The configured codec (`zstd` at `zstd_level`).
    pub fn from_config(codec: crate::config::StoreCodec, zstd_level: i32) -> Codec {
        match codec {
            crate::config::StoreCodec::Lz4 => Codec::Lz4,
            crate::config::StoreCodec::Zstd => Codec::Zstd(zstd_level),
        }
    }
}

/// Which columns of a file keep min/max statistics (per row group and per page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statistics {
    /// Every column but these.
    AllBut(Vec<String>),
    /// Only these: the ones readers prune by, in files whose row order makes the other
    /// columns' ranges span nearly everything.
    Only(Vec<String>),
}

/// How files are laid out and encoded.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Rows after which a file is closed and published.
    pub max_rows_per_file: usize,
    /// Compression.
    pub codec: Codec,
    /// Columns whose values are nearly all distinct: dictionary encoding only costs there.
    pub plain_columns: Vec<String>,
    /// Which columns keep min/max statistics (each costs two comparisons per value when
    /// writing).
    pub statistics: Statistics,
    /// Dictionary encoding for the other columns. A reader of a few rows must decode each
    /// column's whole dictionary page (per row group), which costs more than the few pages
    /// it reads; the serving layout written by compaction goes without.
    pub dictionary: bool,
    /// Leave complete files under their temporary names for the caller to publish.
    pub stage: bool,
    /// Rows per data page at most (Parquet's default is 20,000). Small pages let a reader
    /// that knows which rows it wants (page index + a selective filter on a sorted column)
    /// decode little beyond them.
    pub page_rows: Option<usize>,
    /// File names are `{file_prefix}-{run_id}-{seq}.parquet`.
    pub file_prefix: &'static str,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            row_group_rows: 128 * 1024,
            max_rows_per_file: 1_000_000,
            codec: Codec::Zstd(1),
            plain_columns: Vec::new(),
            statistics: Statistics::AllBut(Vec::new()),
            dictionary: true,
            stage: false,
            page_rows: None,
            file_prefix: "part",
        }
    }
}

struct OpenFile {
    writer: ArrowWriter<fs_err::File>,
    tmp: PathBuf,
    path: PathBuf,
    rows: usize,
}

/// Writes one table.
pub struct PartitionedWriter {
    dir: PathBuf,
    schema: SchemaRef,
    props: WriterProperties,
    options: WriterOptions,
    run_id: String,
    seq: u64,
    open: HashMap<String, OpenFile>,
    published: Vec<PathBuf>,
    staged: Vec<Staged>,
    rows_written: u64,
}

impl std::fmt::Debug for PartitionedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedWriter")
            .field("dir", &self.dir)
            .field("open", &self.open.len())
            .finish()
    }
}

impl PartitionedWriter {
    /// A writer for the table in `dir`; `run_id` makes file names unique per run.
    pub fn new(dir: PathBuf, schema: SchemaRef, options: WriterOptions, run_id: &str) -> Result<Self, StoreError> {
        let compression = match options.codec {
            Codec::Zstd(level) => Compression::ZSTD(ZstdLevel::try_new(level)?),
            Codec::Lz4 => Compression::LZ4_RAW,
        };
        let mut props = WriterProperties::builder()
            .set_compression(compression)
            .set_dictionary_enabled(options.dictionary)
            .set_max_row_group_row_count(Some(options.row_group_rows));
        if let Some(rows) = options.page_rows {
            // The row limit is checked between mini-batches of `write_batch_size` rows.
            props = props.set_data_page_row_count_limit(rows).set_write_batch_size(rows);
        }
        for col in &options.plain_columns {
            props = props.set_column_dictionary_enabled(ColumnPath::from(col.as_str()), false);
        }
        let (default, listed, columns) = match &options.statistics {
            Statistics::AllBut(columns) => (EnabledStatistics::Page, EnabledStatistics::None, columns),
            Statistics::Only(columns) => (EnabledStatistics::None, EnabledStatistics::Page, columns),
        };
        props = props.set_statistics_enabled(default);
        for col in columns {
            props = props.set_column_statistics_enabled(ColumnPath::from(col.as_str()), listed);
        }
        Ok(PartitionedWriter {
            dir,
            schema,
            props: props.build(),
            options,
            run_id: run_id.to_owned(),
            seq: 0,
            open: HashMap::new(),
            published: Vec::new(),
            staged: Vec::new(),
            rows_written: 0,
        })
    }

    /// Appends `batch` to `partition` (e.g. `date=2024-08-13`; empty for none).
    pub fn write(&mut self, partition: &str, batch: &RecordBatch) -> Result<(), StoreError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if !self.open.contains_key(partition) {
            let file = self.open_file(partition)?;
            self.open.insert(partition.to_owned(), file);
        }
        let full = match self.open.get_mut(partition) {
            Some(file) => {
                file.writer.write(batch)?;
                file.rows += batch.num_rows();
                file.rows >= self.options.max_rows_per_file
            }
            None => false,
        };
        self.rows_written += batch.num_rows() as u64;
        if full && let Some(file) = self.open.remove(partition) {
            self.publish(file)?;
        }
        Ok(())
    }

    fn open_file(&mut self, partition: &str) -> Result<OpenFile, StoreError> {
        let dir = if partition.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(partition)
        };
        fs_err::create_dir_all(&dir)?;
        self.seq += 1;
        let name = format!("{}-{}-{:05}.parquet", self.options.file_prefix, self.run_id, self.seq);
        let tmp = dir.join(format!(".{name}.tmp"));
        let path = dir.join(name);
        let file = fs_err::File::create(&tmp)?;
        let writer = ArrowWriter::try_new(file, Arc::clone(&self.schema), Some(self.props.clone()))?;
        Ok(OpenFile {
            writer,
            tmp,
            path,
            rows: 0,
        })
    }

    fn publish(&mut self, file: OpenFile) -> Result<(), StoreError> {
        let out = file.writer.into_inner()?;
        out.sync_all()?;
        drop(out);
        let staged = Staged {
            tmp: file.tmp,
            path: file.path,
        };
        if self.options.stage {
            self.staged.push(staged);
        } else {
            staged.publish()?;
            self.published.push(staged.path);
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Closes and publishes every open file; returns the files this writer published.
    pub fn finish(self) -> Result<Vec<PathBuf>, StoreError> {
        Ok(self.close()?.published)
    }

    /// Closes every open file; returns what a staging writer left to publish.
    pub fn finish_staged(self) -> Result<Vec<Staged>, StoreError> {
        Ok(self.close()?.staged)
    }

    fn close(mut self) -> Result<Self, StoreError> {
        let mut open: Vec<(String, OpenFile)> = self.open.drain().collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, file) in open {
            self.publish(file)?;
        }
        Ok(self)
    }
}
