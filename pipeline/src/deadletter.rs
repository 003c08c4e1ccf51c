//! The dead letter: every record that could not be stored, with the reason, where it came
//! from and its raw bytes (cut beyond [`DeadLetterWriter::raw_limit`]).
//!
//! One JSON object per line in `<store>/deadletter/deadletter-<run>.jsonl`. Raw bytes are
//! kept as text when they are UTF-8 (`raw`) and as base64 otherwise (`raw_base64`). The
//! file is written under a hidden temporary name and renamed when the run finishes, so a
//! reader never sees half a file.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;

use crate::reject::{RejectKind, Rejection};
use crate::source::file::Position;
use crate::store::{Staged, StoreError};

/// One dead-letter line.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    /// The rejection class, e.g. `missing_field`.
    pub reason: &'static str,
    /// What exactly was wrong.
    pub detail: &'a str,
    /// The input (file path, `-` for stdin, or a topic/partition/offset).
    pub source: &'a str,
    /// 1-based line, for line-oriented inputs.
    pub line: Option<u64>,
    /// 1-based value or array element, for document inputs.
    pub element: Option<u64>,
    /// The message offset, for Kafka inputs (`source` names the topic and partition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// Bytes of the record that reached the pipeline (an over-long line is cut at the
    /// event size limit while reading; `detail` gives its full length).
    pub byte_len: usize,
    /// True when `raw` / `raw_base64` holds only the first `raw_limit` bytes.
    pub raw_truncated: bool,
    /// The raw bytes as text, when they are UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<&'a str>,
    /// The raw bytes in base64, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
    /// When the record was dead-lettered (RFC 3339).
    pub at: String,
}

/// Appends dead letters for one run.
#[derive(Debug)]
pub struct DeadLetterWriter {
    tmp: PathBuf,
    path: PathBuf,
    out: Option<BufWriter<fs_err::File>>,
    raw_limit: usize,
    counts: BTreeMap<&'static str, u64>,
}

impl DeadLetterWriter {
    /// A writer for `dir/deadletter-<run_id>.jsonl`; the file is created on the first letter.
    pub fn new(dir: &Path, run_id: &str, raw_limit: usize) -> Self {
        DeadLetterWriter {
            tmp: dir.join(format!(".deadletter-{run_id}.jsonl.tmp")),
            path: dir.join(format!("deadletter-{run_id}.jsonl")),
            out: None,
            raw_limit,
            counts: BTreeMap::new(),
        }
    }

    /// How many raw bytes a letter keeps.
    pub fn raw_limit(&self) -> usize {
        self.raw_limit
    }

    /// Records one rejected record.
    pub fn write(
        &mut self,
        rejection: &Rejection,
        source: &str,
        position: Option<Position>,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        *self.counts.entry(rejection.kind.as_str()).or_default() += 1;
        let cut = &bytes[..bytes.len().min(self.raw_limit)];
        // A cut may split a UTF-8 sequence: keep the longest valid prefix as text.
        let (raw, raw_base64) = match std::str::from_utf8(cut) {
            Ok(t) => (Some(t), None),
            Err(e) if rejection.kind != RejectKind::InvalidUtf8 && e.error_len().is_none() => {
                (std::str::from_utf8(&cut[..e.valid_up_to()]).ok(), None)
            }
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(cut))),
        };
        let letter = DeadLetter {
            reason: rejection.kind.as_str(),
            detail: &rejection.detail,
            source,
            line: match position {
                Some(Position::Line(l)) => Some(l),
                _ => None,
            },
            element: match position {
                Some(Position::Element(e)) => Some(e),
                _ => None,
            },
            offset: match position {
                Some(Position::Offset(o)) => Some(o),
                _ => None,
            },
            byte_len: bytes.len(),
            raw_truncated: bytes.len() > self.raw_limit,
            raw,
            raw_base64,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        if self.out.is_none() {
            if let Some(dir) = self.tmp.parent() {
                fs_err::create_dir_all(dir)?;
            }
            self.out = Some(BufWriter::new(fs_err::File::create(&self.tmp)?));
        }
        if let Some(out) = self.out.as_mut() {
            serde_json::to_writer(&mut *out, &letter).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Letters written so far, by reason.
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    /// Flushes, syncs and publishes the file; returns its path if any letter was written.
    pub fn finish(self) -> Result<Option<PathBuf>, StoreError> {
        let Some(staged) = self.finish_staged()? else {
            return Ok(None);
        };
        staged.publish()?;
        Ok(Some(staged.path))
    }

    /// Flushes and syncs the file and leaves it for the caller to publish.
    pub fn finish_staged(mut self) -> Result<Option<Staged>, StoreError> {
        let Some(out) = self.out.take() else { return Ok(None) };
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        Ok(Some(Staged {
            tmp: self.tmp,
            path: self.path,
        }))
    }
}
