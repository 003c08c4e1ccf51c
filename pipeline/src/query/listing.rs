//! A table's files per directory, listed again only when the directory changes.
//!
//! A per-user call reads a few rows, but on a live day it must first know which of about a
//! thousand small files there are and whether each is still the file whose footer it keeps.
//! Listing every directory of the window and stating every file on each call was a sixth
//! of an idle call's CPU (docs/benchmarks.md, "Per-user calls while a pipeline streams").
//! Two facts of the store make most of that unnecessary:
//! - every writer publishes a file by renaming it into place and never rewrites one in
//!   place, and a create, rename or unlink in a directory moves the directory's
//!   modification and change times. A directory whose times are those it had when it was
//!   listed still holds the files listed, provided the times were already older than
//!   [`SETTLED`] then: a change within the file system's timestamp granularity of the
//!   listing could leave them unchanged, so a directory changed that recently is listed
//!   again on every call until it settles (as git treats "racily clean" entries);
//! - a file listed again under a name listed before may be the same file: when a directory
//!   is listed again, what a caller keeps for such a file carries over once a stat shows
//!   the inode, size and times of the handle the caller read it from (a file name can be
//!   published again after compaction removed it, and inode numbers are reused).
//!
//! A settled day is therefore neither listed nor stated; a day that keeps changing (a
//! streaming pipeline's) is listed and its kept files stated on every call, as before.
//! A caller that finds a listed file gone or not as listed calls [`Listings::distrust`].
//!
//! A directory with subdirectories is listed on every call (their changes do not move the
//! directory's own times), and so is one whose lister says its listing is volatile.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::store::{StoreError, list_parquet_files};

/// How long a directory must have been unchanged when it was listed for that listing to be
/// trusted while its times stay the same. Linux file systems stamp times from a clock that
/// ticks every few milliseconds; some (ext3, FAT, NFS servers) keep seconds.
pub(crate) const SETTLED: Duration = Duration::from_secs(2);

/// One file as listed, and what a caller keeps for it.
pub(crate) struct FileSlot<T> {
    path: PathBuf,
    kept: Mutex<Option<(Arc<T>, Stamp)>>,
}

impl<T> FileSlot<T> {
    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What the caller keeps for this file, if anything yet.
    pub(crate) fn kept(&self) -> Option<Arc<T>> {
        self.lock().as_ref().map(|(value, _)| Arc::clone(value))
    }

    /// Keeps `value`, made from the file whose handle's metadata is `opened`, for as long
    /// as the file is listed and unchanged.
    pub(crate) fn keep(&self, value: Arc<T>, opened: &std::fs::Metadata) {
        *self.lock() = Some((value, Stamp::of(opened)));
    }

    /// Replaces what is kept for the file (made from the same file as before).
    pub(crate) fn replace(&self, value: Arc<T>) {
        if let Some((kept, _)) = self.lock().as_mut() {
            *kept = value;
        }
    }

    /// Whether what is kept (if anything) was made from the file as it is now.
    fn still_the_same(&self) -> bool {
        let Some(id) = self.lock().as_ref().map(|(_, id)| *id) else {
            return true;
        };
        std::fs::metadata(&self.path).is_ok_and(|now| Stamp::of(&now) == id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Arc<T>, Stamp)>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(crate) fn forget(&self) {
        *self.lock() = None;
    }
}

/// What a directory listing found: its files, and whether the listing
/// may go stale without the directory's times moving.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    /// Files, any order.
    pub files: Vec<PathBuf>,
    /// Whether to list the directory again on the next call whatever its times: it has
    /// subdirectories (whose changes do not move its times), or what was listed depends
    /// on more than the directory's entries (a compaction swap's manifest).
    pub volatile: bool,
}

/// A file's or directory's identity, size and times: what a stat tells of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether both times are at least [`SETTLED`] before `now`.
    fn settled_at(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let limit = now.saturating_sub(SETTLED);
        let at = |(s, ns): (i64, i64)| {
            u64::try_from(s)
                .ok()
                .zip(u32::try_from(ns).ok())
                .map(|(s, ns)| Duration::new(s, ns))
        };
        at(self.mtime).is_some_and(|t| t <= limit) && at(self.ctime).is_some_and(|t| t <= limit)
    }
}

/// One directory as last listed.
struct DirListing<T> {
    /// The directory's stamp before it was listed; None: not to be trusted.
    trusted: Option<Stamp>,
    /// Sorted by the paths' bytes.
    files: Arc<[Arc<FileSlot<T>>]>,
}

impl<T> std::fmt::Debug for FileSlot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSlot")
            .field("path", &self.path)
            .field("kept", &self.lock().is_some())
            .finish()
    }
}

impl<T> std::fmt::Debug for Listings<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dirs = self.lock().len();
        f.debug_struct("Listings")
            .field("dirs", &dirs)
            .field("files", &self.len())
            .finish()
    }
}

/// Listings of a table's directories (see the module docs).
pub(crate) struct Listings<T> {
    dirs: Mutex<HashMap<PathBuf, DirListing<T>>>,
}

impl<T> Default for Listings<T> {
    fn default() -> Self {
        Listings {
            dirs: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Listings<T> {
    /// The files of `dir`, sorted by their paths' bytes: the kept listing while the
    /// directory is unchanged, else what `list` finds now (a file listed before keeps what
    /// the caller kept for it while a stat shows it unchanged). A directory that is gone has
    /// no files. `unreadable` makes the caller's error of a failure to stat the directory.
    pub(crate) fn files<E>(
        &self,
        dir: &Path,
        list: impl FnOnce() -> Result<Listed, E>,
        unreadable: impl FnOnce(std::io::Error) -> E,
    ) -> Result<Arc<[Arc<FileSlot<T>>]>, E> {
        let now = SystemTime::now();
        let stamp = match std::fs::metadata(dir) {
            Ok(meta) => Stamp::of(&meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.lock().remove(dir);
                return Ok(Arc::from(Vec::new()));
            }
            Err(e) => return Err(unreadable(e)),
        };
        if let Some(listing) = self.lock().get(dir)
            && listing.trusted == Some(stamp)
        {
            return Ok(Arc::clone(&listing.files));
        }
        // Listed (and the files carried over stated) outside the lock; the stamp taken
        // before, so a change during the listing shows as a different stamp next time.
        let old = self.lock().get(dir).map(|l| Arc::clone(&l.files));
        let listed = list()?;
        let before: HashMap<&[u8], &Arc<FileSlot<T>>> = old
            .iter()
            .flat_map(|files| files.iter())
            .map(|s| (path_bytes(&s.path), s))
            .collect();
        let mut files: Vec<Arc<FileSlot<T>>> = listed
            .files
            .into_iter()
            .map(|path| match before.get(path_bytes(&path)) {
                Some(slot) if slot.still_the_same() => Arc::clone(slot),
                _ => Arc::new(FileSlot {
                    path,
                    kept: Mutex::new(None),
                }),
            })
            .collect();
        drop(before);
        files.sort_unstable_by(|a, b| path_bytes(&a.path).cmp(path_bytes(&b.path)));
        let files: Arc<[Arc<FileSlot<T>>]> = Arc::from(files);
        let trusted = (!listed.volatile && stamp.settled_at(now)).then_some(stamp);
        self.lock().insert(
            dir.to_owned(),
            DirListing {
                trusted,
                files: Arc::clone(&files),
            },
        );
        Ok(files)
    }

    /// Lists every directory again on its next call (what is kept for files carries over
    /// where they are unchanged): for a caller that found a listed file gone or replaced.
    pub(crate) fn distrust(&self) {
        for listing in self.lock().values_mut() {
            listing.trusted = None;
        }
    }

    /// Forgets the listings of directories `keep` says no to (gone from the table).
    pub(crate) fn retain(&self, mut keep: impl FnMut(&Path) -> bool) {
        self.lock().retain(|dir, _| keep(dir));
    }

    /// How many files the kept listings hold.
    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(|l| l.files.len()).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, DirListing<T>>> {
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The published Parquet files under `dir` ([`list_parquet_files`]; subdirectories make the
/// listing volatile).
pub(crate) fn parquet_under(dir: &Path) -> Result<Listed, StoreError> {
    let mut listed = Listed::default();
    listed.volatile = list_parquet_files(dir, &mut listed.files)?;
    Ok(listed)
}

/// A path's bytes: sorting and comparing by them is several times cheaper than `Path`'s
/// component-wise order, and puts the files of one directory together all the same.
pub(crate) fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(dir: &Path) -> std::io::Result<Listed> {
        let mut listed = Listed::default();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            listed.files.push(entry.path());
        }
        Ok(listed)
    }

    fn names(files: &[Arc<FileSlot<u32>>]) -> Vec<String> {
        files
            .iter()
            .map(|s| s.path().file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_settled_directory_is_not_listed_again_until_it_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("b"), "1").unwrap();
        std::fs::write(dir.join("a"), "1").unwrap();
        let listings = Listings::<u32>::default();
        let calls = std::cell::Cell::new(0);
        let counted = || {
            calls.set(calls.get() + 1);
            list(dir)
        };
        let first = listings.files(dir, counted, |e| e).unwrap();
        assert_eq!(names(&first), ["a", "b"], "sorted");
        first[0].keep(Arc::new(7), &std::fs::metadata(dir.join("a")).unwrap());

        // Just changed: listed again on every call.
        let counted = || {
            calls.set(calls.get() + 1);
            list(dir)
        };
        listings.files(dir, counted, |e| e).unwrap();
        assert_eq!(calls.get(), 2, "a directory changed within SETTLED is listed again");

        // Trusted once its stamp is old enough: made so by marking the kept listing's
        // stamp trusted as if it had been listed SETTLED later.
        let stamp = Stamp::of(&std::fs::metadata(dir).unwrap());
        listings.lock().get_mut(dir).unwrap().trusted = Some(stamp);
        let counted = || {
            calls.set(calls.get() + 1);
            list(dir)
        };
        let again = listings.files(dir, counted, |e| e).unwrap();
        assert_eq!(calls.get(), 2, "an unchanged settled directory is not listed");
        assert_eq!(*again[0].kept().unwrap(), 7);

        // A rename into the directory moves its times: listed again, and the file that is
        // still the same keeps what was kept for it.
        std::fs::write(dir.join(".tmp"), "2").unwrap();
        std::fs::rename(dir.join(".tmp"), dir.join("c")).unwrap();
        let counted = || {
            calls.set(calls.get() + 1);
            list(dir)
        };
        let changed = listings.files(dir, counted, |e| e).unwrap();
        assert_eq!(calls.get(), 3);
        assert_eq!(names(&changed), ["a", "b", "c"]);
        assert_eq!(changed[0].kept().map(|v| *v), Some(7), "the same file: kept");
        assert!(changed[2].kept().is_none());
    }

    /// Listings of `dir` with one file, `a`, and a value kept for it.
    fn one_file_kept(dir: &Path) -> Listings<u32> {
        std::fs::write(dir.join("a"), "1").unwrap();
        let listings = Listings::<u32>::default();
        let first = listings.files(dir, || list(dir), |e| e).unwrap();
        first[0].keep(Arc::new(1), &std::fs::metadata(dir.join("a")).unwrap());
        listings
    }

    #[test]
    fn a_file_replaced_under_its_name_loses_what_was_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let listings = one_file_kept(dir);
        // Held open so that the replacement cannot reuse the old inode number.
        let _old = std::fs::File::open(dir.join("a")).unwrap();
        std::fs::write(dir.join(".a.tmp"), "22").unwrap();
        std::fs::rename(dir.join(".a.tmp"), dir.join("a")).unwrap();
        let again = listings.files(dir, || list(dir), |e| e).unwrap();
        assert!(again[0].kept().is_none(), "another file under the name is a new file");
    }

    #[test]
    fn a_file_rewritten_in_place_loses_what_was_kept_when_its_directory_is_listed_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let listings = one_file_kept(dir);
        std::fs::write(dir.join("a"), "longer").unwrap();
        listings.distrust();
        let again = listings.files(dir, || list(dir), |e| e).unwrap();
        assert!(
            again[0].kept().is_none(),
            "same inode, another size: not the file kept for"
        );
    }

    #[test]
    fn a_directory_gone_has_no_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("date=2024-08-13");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a"), "1").unwrap();
        let listings = Listings::<u32>::default();
        assert_eq!(listings.files(&dir, || list(&dir), |e| e).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        let gone = listings.files(&dir, || -> std::io::Result<Listed> { unreachable!() }, |e| e);
        assert!(gone.unwrap().is_empty());
        assert_eq!(listings.len(), 0);
    }

    #[test]
    fn stamps_settle_after_the_margin() {
        let meta = std::fs::metadata(std::env::temp_dir()).unwrap();
        let stamp = Stamp::of(&meta);
        let mtime = SystemTime::UNIX_EPOCH + Duration::new(stamp.mtime.0 as u64, stamp.mtime.1 as u32);
        let ctime = SystemTime::UNIX_EPOCH + Duration::new(stamp.ctime.0 as u64, stamp.ctime.1 as u32);
        let latest = mtime.max(ctime);
        assert!(!stamp.settled_at(latest), "not settled at its own time");
        assert!(!stamp.settled_at(latest + SETTLED - Duration::from_millis(1)));
        assert!(stamp.settled_at(latest + SETTLED));
    }
}
