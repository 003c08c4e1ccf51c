//! Which rows of a file hold each user, for files not sorted by user.
//!
//! A file the pipeline publishes holds its rows in arrival order, so every user's rows are
//! spread over it and the `user_id` statistics of its row groups and pages span nearly
//! every user: they prune nothing. A live day is hundreds of such files (one per partition
//! and commit cycle until compaction merges them), and a per-user read that must decode
//! the `user_id` column of each pays for all of them (docs/benchmarks.md, "The hot tier").
//! This index is read once per file, next to its footer: each row's user as a 64-bit hash,
//! grouped, so that a read looks its user up and skips a file without the user at the cost
//! of a binary search, and selects exactly the user's rows in one with it. Two users
//! sharing a hash only cost rows read and then dropped by the reader's row filter, which
//! compares the user id itself.
//!
//! Its size is 4 bytes per row plus 12 per distinct user of the file.

use std::fs::File;
use std::hash::BuildHasher;
use std::ops::Range;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::errors::ParquetError;

/// The rows of each user of one file (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct UserRows {
    /// Distinct user hashes, ascending.
    keys: Vec<u64>,
    /// Where each key's rows begin in `rows` (one more entry than `keys`).
    starts: Vec<u32>,
    /// Row numbers within the file, grouped by key, ascending within a group.
    rows: Vec<u32>,
}

/// The hash of a user id: fixed, so that a file's index means the same in every call.
fn key(user_id: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x1d9a_0e5c).hash_one(user_id)
}

impl UserRows {
    /// What the index of a file of `rows` rows will hold at most, bytes.
    pub(crate) fn bytes_for(rows: i64) -> usize {
        usize::try_from(rows).unwrap_or(usize::MAX).saturating_mul(16)
    }

    /// Reads the `user_id` column of the file at `path` (whose footer is `meta`). Rows
    /// without a user are in no group. A file of more than `u32::MAX` rows gets no index
    /// (None): it is read by its statistics.
    pub(crate) fn load(path: &Path, meta: &ArrowReaderMetadata) -> Result<Option<Self>, ParquetError> {
        let total = meta.metadata().file_metadata().num_rows();
        if u32::try_from(total).is_err() {
            return Ok(None);
        }
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(File::open(path)?, meta.clone())
            .with_projection(ProjectionMask::columns(meta.parquet_schema(), ["user_id"]))
            .with_batch_size(64 * 1024)
            .build()?;
        let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        let mut row = 0u32;
        for batch in reader {
            let batch = batch?;
            let users = batch
                .column_by_name("user_id")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| ParquetError::General("events file without a usable user_id column".into()))?;
            for i in 0..users.len() {
                if users.is_valid(i) {
                    pairs.push((key(users.value(i)), row));
                }
                // More rows than the footer said: no index rather than a wrong one.
                let Some(next) = row.checked_add(1) else {
                    return Ok(None);
                };
                row = next;
            }
        }
        pairs.sort_unstable();
        let mut index = UserRows {
            keys: Vec::new(),
            starts: Vec::new(),
            rows: Vec::with_capacity(pairs.len()),
        };
        for (k, r) in pairs {
            if index.keys.last() != Some(&k) {
                index.keys.push(k);
                index.starts.push(index.rows.len() as u32);
            }
            index.rows.push(r);
        }
        index.starts.push(index.rows.len() as u32);
        index.keys.shrink_to_fit();
        index.starts.shrink_to_fit();
        Ok(Some(index))
    }

    /// The rows that may hold `user_id`, ascending (empty: none does).
    pub(crate) fn of(&self, user_id: &str) -> &[u32] {
        match self.keys.binary_search(&key(user_id)) {
            Ok(i) => &self.rows[self.starts[i] as usize..self.starts[i + 1] as usize],
            Err(_) => &[],
        }
    }

    /// Memory held, bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.keys.capacity() * 8 + self.starts.capacity() * 4 + self.rows.capacity() * 4
    }
}

/// `rows` (ascending file row numbers) as runs of consecutive rows, each moved by `-base`.
pub(crate) fn runs(rows: &[u32], base: u64) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let first = *rows.get(i)?;
        let mut end = first + 1;
        i += 1;
        while rows.get(i) == Some(&end) {
            end += 1;
            i += 1;
        }
        Some((u64::from(first) - base) as usize..(u64::from(end) - base) as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_join_consecutive_rows_and_shift_them() {
        let got: Vec<_> = runs(&[3, 4, 5, 9, 11, 12], 2).collect();
        assert_eq!(got, vec![1..4, 7..8, 9..11]);
        assert_eq!(runs(&[], 0).count(), 0);
    }
}
