//! The store: a directory holding the Parquet tables (`events/`, `alerts/`,
//! `identity_state/`), the `alerts.jsonl` stream, the dead letters and checkpoints.
//!
//! Every file appears atomically: it is written under a hidden `.…tmp` name in its final
//! directory and renamed when complete, so readers (DataFusion, any Parquet reader) never
//! see half a file and never list a temporary one.

pub mod alerts;
pub mod compact;
pub mod dedup;
pub mod event_columns;
pub mod parquet_writer;
pub mod retention;

use std::path::{Path, PathBuf};

/// Store errors. I/O errors name their path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Parquet encoding or decoding.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building Arrow data.
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Converting rows to Arrow.
    #[error("encoding rows: {0}")]
    Encode(#[from] serde_arrow::Error),
    /// The writer thread stopped.
    #[error("the table writer stopped: {0}")]
    WriterGone(String),
}

/// A store directory and its layout.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let store = Store { root: root.into() };
        for dir in [store.events_dir(), store.deadletter_dir()] {
            fs_err::create_dir_all(dir)?;
        }
        Ok(store)
    }

    /// A store at `root` without touching the file system (for readers).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `events/`, partitioned `date=YYYY-MM-DD/`.
    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }

    /// `alerts/`.
    pub fn alerts_dir(&self) -> PathBuf {
        self.root.join("alerts")
    }

    /// `identity_state/`.
    pub fn identity_state_dir(&self) -> PathBuf {
        self.root.join("identity_state")
    }

    /// `deadletter/`.
    pub fn deadletter_dir(&self) -> PathBuf {
        self.root.join("deadletter")
    }

    /// `checkpoints/engine.json.zst`: the detection engine's state.
    pub fn engine_checkpoint(&self) -> PathBuf {
        self.root.join("checkpoints").join("engine.json.zst")
    }

    /// `alerts.jsonl`.
    pub fn alerts_jsonl(&self) -> PathBuf {
        self.root.join("alerts.jsonl")
    }
}

/// A complete, synced file still under its hidden temporary name, and the name it gets
/// when published. Streaming checkpoints list these, so a restart can finish publishing
/// what a checkpoint promised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Staged {
    /// The temporary (hidden) path.
    pub tmp: PathBuf,
    /// The published path.
    pub path: PathBuf,
}

impl Staged {
    /// Renames the file into place. Idempotent: a file already published (or published and
    /// since merged by compaction) is fine; one that is in neither place is an error (the
    /// store lost data a checkpoint relies on).
    pub fn publish(&self) -> Result<(), StoreError> {
        self.rename()
    }

    /// [`Staged::publish`] again, after a restart, of a file a checkpoint names: when
    /// compaction already merged the published copy away (the name is on its partition's
    /// replaced list), a temporary copy still on disk (a restored backup, a worker that
    /// wrote the cycle again before it learned it lost the partition) is deleted instead,
    /// or its rows would be stored twice.
    pub fn republish(&self) -> Result<(), StoreError> {
        if !self.path.exists() && compact::was_compacted(&self.path) {
            return match std::fs::remove_file(&self.tmp) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::Io(e)),
            };
        }
        self.rename()
    }

    fn rename(&self) -> Result<(), StoreError> {
        match std::fs::rename(&self.tmp, &self.path) {
            Ok(()) => Ok(()),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && (self.path.exists() || compact::was_compacted(&self.path)) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::Io(std::io::Error::new(
                e.kind(),
                format!("publishing {} as {}: {e}", self.tmp.display(), self.path.display()),
            ))),
        }
    }
}

/// Lists the published Parquet files under `dir` (recursively; temporary files skipped),
/// sorted.
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    list_parquet_files(dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Appends the published Parquet files under `dir` to `out`, in no particular order;
/// returns whether `dir` has subdirectories (listed too).
pub fn list_parquet_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<bool, StoreError> {
    let mut nested = false;
    if !dir.exists() {
        return Ok(nested);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            if entry.file_type()?.is_dir() {
                nested = true;
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    Ok(nested)
}
