//! The audit log: one JSON line per record, each holding the SHA-256 of the line before it
//! (design.md, "Contracts"). An action's intent is written and fsynced before the action
//! runs; if that write fails the action does not run (fail closed).
//!
//! Files under the audit directory:
//! - `audit.jsonl`: the chain;
//! - `audit.head.json`: the number of records and the hash of the last line, replaced
//!   atomically after every append. The chain alone shows edits, deletions and reordering;
//!   the head shows records cut from the end, which leave a valid but shorter chain.
//! - `audit.lock`: held (an exclusive file lock) by the one process that appends.
//!
//! [`mirror`] copies every line to a Kafka topic as it is written; [`signed_head`] signs the
//! head with the gateway's key and publishes it outside the directory (a file, and a header
//! of every mirrored record), so that records cut from the end together with the local head
//! are still noticed.

pub mod mirror;
pub mod signed_head;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::Utc;
use idgw_schemas::{AuditPhase, AuditRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The action of the record written when a gateway starts publishing its signed head to a
/// copy (`arguments.head_copy`, `arguments.key_id`).
pub const SIGNING_STARTED: &str = "audit_signing_started";

fn signing_started_at(r: &AuditRecord, copy: &str) -> bool {
    r.action == SIGNING_STARTED && r.arguments.get("head_copy").and_then(|v| v.as_str()) == Some(copy)
}

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain's file name inside the audit directory.
pub const LOG_FILE: &str = "audit.jsonl";
/// The head's file name inside the audit directory.
pub const HEAD_FILE: &str = "audit.head.json";
const LOCK_FILE: &str = "audit.lock";

/// Audit log failures. Any of them refuses the action that asked for the write.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The directory or a file could not be read or written.
    #[error("audit log {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Another process appends to this log.
    #[error("audit log {0} is held by another process (one gateway instance per audit directory)")]
    Locked(String),
    /// The log on disk does not verify, so appending would extend a broken chain.
    #[error(
        "audit log {path} does not verify ({problem}); run `idgw audit verify {path}` and investigate before serving"
    )]
    Broken { path: String, problem: String },
    /// A record could not be serialized.
    #[error("audit record: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The head file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Records in the chain.
    pub records: u64,
    /// SHA-256 (hex) of the last line; [`GENESIS`] when empty.
    pub last_hash: String,
}

/// SHA-256 (hex) of one line, without its newline.
pub fn line_hash(line: &[u8]) -> String {
    let digest = Sha256::digest(line);
    let mut hex = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// A new transaction id in the reference design's form.
pub fn new_transaction_id() -> String {
    format!("txn-{}", uuid::Uuid::new_v4())
}

/// A record with everything but the chain fields, for [`AuditLog::append`] to complete.
pub fn record(transaction_id: &str, phase: AuditPhase, action: &str, status: &str) -> AuditRecord {
    AuditRecord {
        seq: 0,
        transaction_id: transaction_id.to_owned(),
        timestamp: Utc::now(),
        phase,
        action: action.to_owned(),
        user: None,
        reasoning: None,
        status: status.to_owned(),
        rollback_of: None,
        principal: None,
        client: None,
        token_id: None,
        remote_addr: None,
        scopes: Vec::new(),
        arguments: serde_json::Map::new(),
        evidence: Vec::new(),
        approval: None,
        pre_state: None,
        post_state: None,
        okta_request_ids: Vec::new(),
        error: None,
        prev_hash: String::new(),
    }
}

struct Writer {
    file: File,
    head: Head,
    /// The file's length after the last complete record: a failed write is cut back to it,
    /// so a half-written line never forks the chain.
    len: u64,
    /// Records appended without fsync since the last sync.
    unsynced: bool,
    // Held for the life of the writer; dropping it releases the lock.
    _lock: File,
}

/// The appending side of the audit log.
pub struct AuditLog {
    dir: PathBuf,
    writer: Mutex<Writer>,
    mirror: Option<mirror::KafkaMirror>,
    signer: Option<signed_head::HeadSigner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dir", &self.dir).finish()
    }
}

impl AuditLog {
    /// Opens (creating) the log in `dir`, takes its lock and checks that the chain on disk
    /// verifies, so that a tampered or cut log is noticed before anything is added to it.
    pub fn open(dir: &Path) -> Result<Self, AuditError> {
        private_dir(dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = private(OpenOptions::new().create(true).truncate(false).write(true))
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(AuditError::Locked(dir.display().to_string())),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let path = dir.join(LOG_FILE);
        let recovered = recover_torn_tail(dir)?;
        let report = verify(dir)?;
        if let Some(p) = report.problems.first() {
            return Err(AuditError::Broken {
                path: dir.display().to_string(),
                problem: p.to_string(),
            });
        }
        let file = private(OpenOptions::new().create(true).append(true))
            .open(&path)
            .map_err(io_err(&path))?;
        // A log made before files were created private becomes private now.
        for f in [&path, &lock_path, &dir.join(HEAD_FILE)] {
            restrict(f, 0o600)?;
        }
        let head = Head {
            records: report.records,
            last_hash: report.last_hash,
        };
        let len = file.metadata().map_err(io_err(&path))?.len();
        let log = AuditLog {
            dir: dir.to_owned(),
            writer: Mutex::new(Writer {
                file,
                head,
                len,
                unsynced: false,
                _lock: lock,
            }),
            mirror: None,
            signer: None,
        };
        if let Some(torn) = recovered {
            let mut r = record(&new_transaction_id(), AuditPhase::Outcome, "audit_log", "recovered");
            r.error = Some(torn);
            log.append(r, true)?;
        }
        Ok(log)
    }

    /// Also copies every record to Kafka.
    pub fn with_mirror(mut self, mirror: mirror::KafkaMirror) -> Self {
        self.mirror = Some(mirror);
        self
    }

    /// Signs the head with `signer`'s key and publishes it after every record. First checks
    /// the log against the head last published: a log that no longer reaches it, or holds
    /// other records up to it, had its tail cut or rewritten while the gateway was down,
    /// and is refused ([`AuditError::Broken`]).
    pub fn with_signer(mut self, signer: signed_head::HeadSigner) -> Result<Self, AuditError> {
        let broken = |problem: String| AuditError::Broken {
            path: self.dir.display().to_string(),
            problem,
        };
        let copy = signer.copy_path().map(|c| c.display().to_string());
        let published = signer
            .published()
            .map_err(|e| broken(format!("the published head: {e}")))?;
        match (&published, &copy) {
            (Some(p), Some(source)) => {
                let report = verify_against(&self.dir, &[Checkpoint::from_signed(p, source.clone())])?;
                if let Some(problem) = report.problems.first() {
                    return Err(broken(problem.to_string()));
                }
            }
            // A copy that was published before and is gone now: deleting it is how someone
            // who cut the log would make the cut pass. The log says whether it existed.
            (None, Some(source)) => {
                if let Some(since) = self.read(|r| signing_started_at(r, source))?.first() {
                    return Err(broken(format!(
                        "the signed head published at {source} since record {} is missing: restore it from a backup or the Kafka mirror, or investigate (records may have been cut from the end)",
                        since.seq
                    )));
                }
                let mut r = record(&new_transaction_id(), AuditPhase::Outcome, SIGNING_STARTED, "success");
                r.arguments.insert("head_copy".into(), serde_json::json!(source));
                r.arguments.insert(
                    "key_id".into(),
                    serde_json::json!(signed_head::key_id(&signer.public_key())),
                );
                // Appended signed, which publishes the first copy.
                self.signer = Some(signer);
                self.append(r, true)?;
                return Ok(self);
            }
            _ => {}
        }
        {
            let w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let signed = signer.sign(&w.head);
            signer
                .publish(&signed, true)
                .map_err(|e| broken(format!("cannot publish the signed head: {e}")))?;
        }
        self.signer = Some(signer);
        Ok(self)
    }

    /// The Kafka mirror, if any.
    pub fn mirror(&self) -> Option<&mirror::KafkaMirror> {
        self.mirror.as_ref()
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `record`, filling `seq`, `timestamp` and `prev_hash`, and returns it as
    /// written. With `durable`, returns only after the line and the head are on disk
    /// (intents, and outcomes of actions); read-only calls pass `false` and reach the disk
    /// with the next durable write or when the OS flushes.
    pub fn append(&self, record: AuditRecord, durable: bool) -> Result<AuditRecord, AuditError> {
        let started = std::time::Instant::now();
        let written = self.append_timed(record, durable);
        crate::metrics::METRICS.audit_write(started.elapsed().as_secs_f64());
        if let Ok(r) = &written
            && durable
            && r.phase == AuditPhase::Outcome
        {
            // Labelled by the tools the gateway serves only: a caller names the tool it calls,
            // and each name it invents would otherwise be a series of its own.
            let action = match crate::auth::scopes::need(&r.action) {
                crate::auth::scopes::Need::Unlisted => "(other)",
                _ => r.action.as_str(),
            };
            crate::metrics::METRICS.action(action, &r.status);
        }
        written
    }

    fn append_timed(&self, mut record: AuditRecord, durable: bool) -> Result<AuditRecord, AuditError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        record.seq = w.head.records;
        record.prev_hash = w.head.last_hash.clone();
        record.timestamp = Utc::now();
        let mut line = serde_json::to_vec(&record)?;
        let hash = line_hash(&line);
        line.push(b'\n');
        let path = self.dir.join(LOG_FILE);
        let written = w
            .file
            .write_all(&line)
            .and_then(|()| if durable { w.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Cut back whatever part of the line reached the file: the next record then
            // follows the last complete one, and the chain does not fork.
            cut_back(&w.file, w.len);
            return Err(io_err(&path)(e));
        }
        let head = Head {
            records: w.head.records + 1,
            last_hash: hash,
        };
        if let Err(e) = write_head(&self.dir, &head, durable) {
            // Not acknowledged, so not kept: a line left behind a head that still names the
            // record before it would share its `seq` and `prev_hash` with the next record
            // (a forked chain the running gateway never notices). Seen with the head's
            // temporary name taken, and with the disk's inodes used up (the append needs none).
            cut_back(&w.file, w.len);
            // The rename may have gone through before a failed directory sync.
            if let Err(restore) = write_head(&self.dir, &w.head, durable) {
                tracing::error!(error = %restore, "cannot restore the audit head; the next start refuses the log until it is checked");
            }
            return Err(e);
        }
        w.len += line.len() as u64;
        w.unsynced = !durable;
        let signed = self.signer.as_ref().map(|s| s.sign(&head));
        w.head = head;
        // The copy names only records on disk (durable appends, and the others once
        // [`AuditLog::sync`] ran): after a power cut, reads written without fsync may be
        // gone, and a copy naming them would refuse the log.
        if durable
            && let (Some(s), Some(signed)) = (&self.signer, &signed)
            && let Err(e) = s.publish(signed, true)
        {
            // The local log stays the gate for actions; a copy that could not be replaced
            // still names every record up to the last one it holds.
            tracing::error!(error = %e, "cannot publish the signed audit head");
        }
        // In chain order (still under the writer's lock), the exact line that was written,
        // with the signed head after it.
        if let Some(m) = &self.mirror {
            m.send(&record.transaction_id, &line[..line.len() - 1], signed.as_ref());
        }
        Ok(record)
    }

    /// Makes records appended without fsync durable, and publishes the signed head that
    /// names them. The gateway calls it every second and when it stops, so the published
    /// copy trails the log by about a second without an fsync per read call.
    pub fn sync(&self) -> Result<(), AuditError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if !w.unsynced {
            return Ok(());
        }
        let path = self.dir.join(LOG_FILE);
        w.file.sync_data().map_err(io_err(&path))?;
        write_head(&self.dir, &w.head, true)?;
        if let Some(s) = &self.signer
            && let Err(e) = s.publish(&s.sign(&w.head), true)
        {
            tracing::error!(error = %e, "cannot publish the signed audit head");
        }
        w.unsynced = false;
        Ok(())
    }

    /// The records of the log, oldest first, that `keep` accepts (for `get_audit_log`).
    pub fn read(&self, mut keep: impl FnMut(&AuditRecord) -> bool) -> Result<Vec<AuditRecord>, AuditError> {
        // Hold the writer so no half-written line is read.
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.dir.join(LOG_FILE);
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut out = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io_err(&path))?;
            if let Ok(r) = serde_json::from_str::<AuditRecord>(&line)
                && keep(&r)
            {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// A last line cut short by a crash (no newline), when everything before it verifies and
/// the head names exactly that prefix (so the torn line was never acknowledged): the torn
/// bytes are moved to `audit.torn-<time>.bin` for inspection and the log is cut back to
/// the prefix. What to record about it; `None` when there was nothing to recover. Any
/// other damage is left for [`verify`] to report.
fn recover_torn_tail(dir: &Path) -> Result<Option<String>, AuditError> {
    let path = dir.join(LOG_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    if bytes.is_empty() || bytes.last() == Some(&b'\n') {
        return Ok(None);
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let prefix = dir.join(format!("{LOG_FILE}.prefix-check"));
    std::fs::write(&prefix, &bytes[..keep]).map_err(io_err(&prefix))?;
    let checked = verify(&prefix);
    let _ = std::fs::remove_file(&prefix);
    let checked = checked?;
    let head: Option<Head> = std::fs::read(dir.join(HEAD_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let intact = checked
        .problems
        .iter()
        .all(|p| matches!(p, Problem::MissingHead | Problem::Head { .. }));
    let acknowledged = head.is_none_or(|h| h.records != checked.records || h.last_hash != checked.last_hash);
    if !intact || (acknowledged && checked.records > 0) {
        return Ok(None);
    }
    let torn = &bytes[keep..];
    let saved = dir.join(format!("audit.torn-{}.bin", Utc::now().format("%Y%m%dT%H%M%S%.3fZ")));
    private(OpenOptions::new().create_new(true).write(true))
        .open(&saved)
        .and_then(|mut f| f.write_all(torn).and_then(|()| f.sync_all()))
        .map_err(io_err(&saved))?;
    let file = OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
    file.set_len(keep as u64).map_err(io_err(&path))?;
    file.sync_all().map_err(io_err(&path))?;
    tracing::warn!(bytes = torn.len(), saved = %saved.display(), "cut a torn last audit line after a crash");
    Ok(Some(format!(
        "after a crash the last line was cut short ({} bytes, never acknowledged: the head named the {} records before it); moved to {} and the chain continues from record {}",
        torn.len(),
        checked.records,
        saved.display(),
        checked.records
    )))
}

/// Files of the audit directory are created readable and writable by the gateway's user
/// only (0600): the log names users, reasoning and approvers.
fn private(opts: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts
}

/// Sets `path`'s mode (Unix) when it exists.
fn restrict(path: &Path, mode: u32) -> Result<(), AuditError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// The audit directory, created if needed, open to the gateway's user only (0700).
fn private_dir(dir: &Path) -> Result<(), AuditError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    restrict(dir, 0o700)
}

/// Cuts the log back to `len` bytes (a record that was not acknowledged), synced.
fn cut_back(file: &File, len: u64) {
    if let Err(cut) = file.set_len(len).and_then(|()| file.sync_data()) {
        tracing::error!(error = %cut, "cannot cut a failed audit write back; the next start recovers it");
    }
}

fn write_head(dir: &Path, head: &Head, durable: bool) -> Result<(), AuditError> {
    let path = dir.join(HEAD_FILE);
    replace_file(&path, &serde_json::to_vec(head)?, durable, true).map_err(io_err(&path))
}

/// Replaces `path` with `bytes`: written beside it and renamed, so a reader never sees half
/// of it; with `durable`, synced (file and directory) before returning. `owner_only` makes
/// the file 0600.
pub(crate) fn replace_file(path: &Path, bytes: &[u8], durable: bool, owner_only: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut opts = OpenOptions::new();
    opts.create(true).write(true).truncate(true);
    if owner_only {
        private(&mut opts);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    if durable {
        f.sync_data()?;
    }
    drop(f);
    std::fs::rename(&tmp, path)?;
    if durable {
        // The rename itself is durable only once the directory is synced.
        File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}

/// What is wrong at one place of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Problem {
    /// The line is not an audit record (edited into invalid JSON, or a torn write).
    Unreadable { line: u64, detail: String },
    /// The record's position does not match its place (deleted or reordered records).
    Sequence { line: u64, expected: u64, found: u64 },
    /// The record's `prev_hash` is not the hash of the line before it (edited, deleted or
    /// reordered records).
    Chain { line: u64 },
    /// The head names more records or another last hash than the log holds (records cut
    /// from the end, or the last record edited).
    Head { records: u64, head_records: u64 },
    /// The log has records but no head.
    MissingHead,
    /// A head published outside the directory (`source`) names more records than the log
    /// holds: records were cut from the end (and the local head rewritten to match).
    MissingTail {
        records: u64,
        expected: u64,
        source: String,
    },
    /// The log's record at a position a published head or the Kafka mirror names is not the
    /// one they hold: the log was rewritten from there on.
    Diverged { records: u64, source: String },
    /// A published head whose signature does not verify with the key given.
    Signature { source: String, detail: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Unreadable { line, detail } => write!(f, "line {line}: not an audit record ({detail})"),
            Problem::Sequence { line, expected, found } => {
                write!(
                    f,
                    "line {line}: seq {found} where {expected} belongs (records deleted or reordered)"
                )
            }
            Problem::Chain { line } => write!(
                f,
                "line {line}: prev_hash does not match the line before (a record was edited, deleted or moved)"
            ),
            Problem::Head { records, head_records } => write!(
                f,
                "the log holds {records} records but its head says {head_records} or names another last record (records cut from the end, or the last one edited)"
            ),
            Problem::MissingHead => write!(f, "{HEAD_FILE} is missing"),
            Problem::MissingTail {
                records,
                expected,
                source,
            } => write!(
                f,
                "the log holds {records} records but {source} names {expected}: {} records were cut from the end",
                expected - records
            ),
            Problem::Diverged { records, source } => write!(
                f,
                "record {} is not the one {source} holds: the log was rewritten from there on",
                records.saturating_sub(1)
            ),
            Problem::Signature { source, detail } => write!(f, "{source}: {detail}"),
        }
    }
}

/// The result of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Records read.
    pub records: u64,
    /// Distinct transactions.
    pub transactions: u64,
    /// Transactions with an intent and no outcome (the process stopped mid-action).
    pub open_intents: Vec<String>,
    /// Hash of the last line.
    pub last_hash: String,
    /// Everything that does not verify; empty when the log is intact.
    pub problems: Vec<Problem>,
}

impl Verification {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A position of the chain known from outside the directory: a published signed head, or a
/// record on the Kafka mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Records up to and including the one named.
    pub records: u64,
    /// The hash of that last record's line.
    pub last_hash: String,
    /// Where it comes from, for the report.
    pub source: String,
}

impl Checkpoint {
    /// The position a signed head names.
    pub fn from_signed(head: &signed_head::SignedHead, source: String) -> Self {
        Checkpoint {
            records: head.records,
            last_hash: head.last_hash.clone(),
            source,
        }
    }
}

/// Verifies the log in `dir` (or the `audit.jsonl` file `dir` names): every line parses,
/// positions run 0, 1, 2, …, each `prev_hash` is the hash of the line before, and the head
/// matches the end.
pub fn verify(dir: &Path) -> Result<Verification, AuditError> {
    verify_against(dir, &[])
}

/// [`verify`], and the log reaches every checkpoint with the same record there.
pub fn verify_against(dir: &Path, checkpoints: &[Checkpoint]) -> Result<Verification, AuditError> {
    let mut by_position: std::collections::HashMap<u64, Vec<&Checkpoint>> = std::collections::HashMap::new();
    for c in checkpoints.iter().filter(|c| c.records > 0) {
        by_position.entry(c.records).or_default().push(c);
    }
    let (dir, path) = if dir.is_file() {
        (dir.parent().unwrap_or(Path::new(".")).to_owned(), dir.to_owned())
    } else {
        (dir.to_owned(), dir.join(LOG_FILE))
    };
    let mut v = Verification {
        records: 0,
        transactions: 0,
        open_intents: Vec::new(),
        last_hash: GENESIS.to_owned(),
        problems: Vec::new(),
    };
    let mut open = open_intents::OpenIntents::default();
    let mut seen = std::collections::HashSet::new();
    match File::open(&path) {
        Ok(file) => {
            let mut reader = BufReader::new(file);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).map_err(io_err(&path))?;
                if n == 0 {
                    break;
                }
                let line_no = v.records + 1;
                let complete = buf.last() == Some(&b'\n');
                if complete {
                    buf.pop();
                }
                let record = if complete {
                    serde_json::from_slice::<AuditRecord>(&buf).map_err(|e| e.to_string())
                } else {
                    Err("the last line is incomplete (a torn write)".to_owned())
                };
                match record {
                    Ok(r) => {
                        if r.seq != v.records {
                            v.problems.push(Problem::Sequence {
                                line: line_no,
                                expected: v.records,
                                found: r.seq,
                            });
                        }
                        if r.prev_hash != v.last_hash {
                            v.problems.push(Problem::Chain { line: line_no });
                        }
                        if seen.insert(r.transaction_id.clone()) {
                            v.transactions += 1;
                        }
                        match r.phase {
                            AuditPhase::Intent => open.insert(r),
                            AuditPhase::Outcome => open.close(&r),
                        }
                    }
                    Err(detail) => v.problems.push(Problem::Unreadable { line: line_no, detail }),
                }
                v.last_hash = line_hash(&buf);
                v.records += 1;
                for c in by_position.get(&v.records).into_iter().flatten() {
                    if c.last_hash != v.last_hash {
                        v.problems.push(Problem::Diverged {
                            records: v.records,
                            source: c.source.clone(),
                        });
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&path)(e)),
    }
    v.open_intents = open.into_vec();
    if let Some(furthest) = checkpoints
        .iter()
        .filter(|c| c.records > v.records)
        .max_by_key(|c| c.records)
    {
        v.problems.push(Problem::MissingTail {
            records: v.records,
            expected: furthest.records,
            source: furthest.source.clone(),
        });
    }
    let head_path = dir.join(HEAD_FILE);
    match std::fs::read(&head_path) {
        Ok(bytes) => match serde_json::from_slice::<Head>(&bytes) {
            Ok(head) => {
                if head.records != v.records || head.last_hash != v.last_hash {
                    v.problems.push(Problem::Head {
                        records: v.records,
                        head_records: head.records,
                    });
                }
            }
            Err(e) => v.problems.push(Problem::Unreadable {
                line: 0,
                detail: format!("{HEAD_FILE}: {e}"),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if v.records > 0 {
                v.problems.push(Problem::MissingHead);
            }
        }
        Err(e) => return Err(io_err(&head_path)(e)),
    }
    Ok(v)
}

/// Whether `outcome` closes `intent`: the same call's outcome (its transaction, tool and
/// principal). A transaction id is something a caller can type (an `approval_id`), so an
/// outcome written under it by another call must not make an action in flight look closed.
pub fn closes(outcome: &AuditRecord, intent: &AuditRecord) -> bool {
    outcome.transaction_id == intent.transaction_id
        && outcome.action == intent.action
        && outcome.principal == intent.principal
}

/// Intents without an outcome of their own call ([`closes`]), reported in log order.
mod open_intents {
    use idgw_schemas::AuditRecord;

    #[derive(Default)]
    pub struct OpenIntents {
        order: Vec<String>,
        live: std::collections::HashMap<String, AuditRecord>,
    }

    impl OpenIntents {
        pub fn insert(&mut self, intent: AuditRecord) {
            let tx = intent.transaction_id.clone();
            if self.live.insert(tx.clone(), intent).is_none() {
                self.order.push(tx);
            }
        }

        pub fn close(&mut self, outcome: &AuditRecord) {
            if self
                .live
                .get(&outcome.transaction_id)
                .is_some_and(|intent| super::closes(outcome, intent))
            {
                self.live.remove(&outcome.transaction_id);
            }
        }

        pub fn into_vec(self) -> Vec<String> {
            let live = self.live;
            self.order.into_iter().filter(|id| live.contains_key(id)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_some(dir: &Path, n: usize) {
        let log = AuditLog::open(dir).unwrap();
        for i in 0..n {
            let tx = new_transaction_id();
            let mut r = record(&tx, AuditPhase::Intent, "suspend_user", "pending");
            r.user = Some(format!("user{i}@example.com"));
            log.append(r, true).unwrap();
            log.append(record(&tx, AuditPhase::Outcome, "suspend_user", "success"), true)
                .unwrap();
        }
    }

    fn lines(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join(LOG_FILE))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn rewrite(dir: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(dir.join(LOG_FILE), text).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_audit_directory_is_private_to_the_gateway_user() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("audit");
        // A directory made open by someone else is closed when the gateway opens it.
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_some(&dir, 1);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for f in [LOG_FILE, HEAD_FILE, LOCK_FILE] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
    }

    #[test]
    fn an_intact_log_verifies_and_reopens_where_it_ended() {
        let d = tempfile::tempdir().unwrap();
        write_some(d.path(), 3);
        let v = verify(d.path()).unwrap();
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!((v.records, v.transactions), (6, 3));
        assert!(v.open_intents.is_empty());
        // A second writer continues the same chain.
        write_some(d.path(), 1);
        let v = verify(d.path()).unwrap();
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!(v.records, 8);
        // The file path works as well as the directory.
        assert!(verify(&d.path().join(LOG_FILE)).unwrap().ok());
    }

    #[test]
    fn one_writer_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let _first = AuditLog::open(d.path()).unwrap();
        assert!(matches!(AuditLog::open(d.path()), Err(AuditError::Locked(_))));
    }

    #[test]
    fn only_the_same_calls_outcome_closes_an_intent() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::open(d.path()).unwrap();
        let by = |mut r: AuditRecord, principal: &str| {
            r.principal = Some(principal.into());
            r
        };
        let intent = by(record("txn-1", AuditPhase::Intent, "suspend_user", "pending"), "owner");
        log.append(intent, true).unwrap();
        // Another caller's refusal, and another tool's, under the same (typed) id.
        for (action, principal) in [("suspend_user", "intruder"), ("notify_user", "owner")] {
            log.append(
                by(record("txn-1", AuditPhase::Outcome, action, "denied"), principal),
                true,
            )
            .unwrap();
        }
        assert_eq!(verify(d.path()).unwrap().open_intents, vec!["txn-1".to_owned()]);
        log.append(
            by(record("txn-1", AuditPhase::Outcome, "suspend_user", "success"), "owner"),
            true,
        )
        .unwrap();
        assert!(verify(d.path()).unwrap().open_intents.is_empty());
    }

    #[test]
    fn an_intent_without_outcome_is_reported_open() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::open(d.path()).unwrap();
        log.append(record("txn-1", AuditPhase::Intent, "suspend_user", "pending"), true)
            .unwrap();
        let v = verify(d.path()).unwrap();
        assert!(v.ok());
        assert_eq!(v.open_intents, vec!["txn-1".to_owned()]);
    }

    #[test]
    fn edits_are_detected() {
        let d = tempfile::tempdir().unwrap();
        write_some(d.path(), 3);
        let mut l = lines(d.path());
        l[2] = l[2].replace("user1@example.com", "someone@example.com");
        rewrite(d.path(), &l);
        let v = verify(d.path()).unwrap();
        assert!(v.problems.contains(&Problem::Chain { line: 4 }), "{:?}", v.problems);
        // Editing the last record leaves the chain valid; the head catches it.
        let d = tempfile::tempdir().unwrap();
        write_some(d.path(), 2);
        let mut l = lines(d.path());
        let last = l.len() - 1;
        l[last] = l[last].replace("success", "failed");
        rewrite(d.path(), &l);
        let v = verify(d.path()).unwrap();
        assert!(
            matches!(v.problems.as_slice(), [Problem::Head { .. }]),
            "{:?}",
            v.problems
        );
        // And a broken log is refused for appending.
        assert!(matches!(AuditLog::open(d.path()), Err(AuditError::Broken { .. })));
    }

    #[test]
    fn deletion_reordering_and_truncation_are_detected() {
        let d = tempfile::tempdir().unwrap();
        write_some(d.path(), 3);
        let all = lines(d.path());

        let mut deleted = all.clone();
        deleted.remove(2);
        rewrite(d.path(), &deleted);
        let v = verify(d.path()).unwrap();
        assert!(
            v.problems
                .iter()
                .any(|p| matches!(p, Problem::Sequence { line: 3, .. }))
        );
        assert!(v.problems.contains(&Problem::Chain { line: 3 }));

        let mut reordered = all.clone();
        reordered.swap(1, 2);
        rewrite(d.path(), &reordered);
        let v = verify(d.path()).unwrap();
        assert!(v.problems.contains(&Problem::Chain { line: 2 }));
        assert!(
            v.problems
                .iter()
                .any(|p| matches!(p, Problem::Sequence { line: 2, .. }))
        );

        rewrite(d.path(), &all[..4]);
        let v = verify(d.path()).unwrap();
        assert_eq!(
            v.problems,
            vec![Problem::Head {
                records: 4,
                head_records: 6
            }]
        );

        // A torn last line.
        let mut torn = all.join("\n");
        torn.push_str("\n{\"seq\":6,");
        std::fs::write(d.path().join(LOG_FILE), torn).unwrap();
        let v = verify(d.path()).unwrap();
        assert!(
            v.problems
                .iter()
                .any(|p| matches!(p, Problem::Unreadable { line: 7, .. }))
        );

        // Removing the head as well as records is noticed while records remain.
        rewrite(d.path(), &all[..2]);
        std::fs::remove_file(d.path().join(HEAD_FILE)).unwrap();
        assert_eq!(verify(d.path()).unwrap().problems, vec![Problem::MissingHead]);
    }

    #[test]
    fn a_torn_last_line_after_a_crash_is_recovered_on_open() {
        let d = tempfile::tempdir().unwrap();
        write_some(d.path(), 2);
        let intact = lines(d.path());
        // A crash mid-write: part of a fifth line, never acknowledged (the head names 4).
        let mut text = intact.join("\n");
        text.push_str("\n{\"seq\":4,\"transaction_id\":\"txn-");
        std::fs::write(d.path().join(LOG_FILE), &text).unwrap();
        let log = AuditLog::open(d.path()).expect("a torn tail is recovered, not refused");
        let records = log.read(|_| true).unwrap();
        assert_eq!(records.len(), 5);
        let recovered = &records[4];
        assert_eq!((recovered.seq, recovered.status.as_str()), (4, "recovered"));
        assert!(
            recovered.error.as_deref().unwrap().contains("never acknowledged"),
            "{recovered:?}"
        );
        drop(log);
        assert!(verify(d.path()).unwrap().ok());
        let saved: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("audit.torn-"))
            .collect();
        assert_eq!(saved.len(), 1, "the torn bytes are kept for inspection");

        // A torn line after records whose head was cut too (tampering, not a crash): still
        // refused.
        let d = tempfile::tempdir().unwrap();
        write_some(d.path(), 2);
        let all = lines(d.path());
        let mut text = all[..2].join("\n");
        text.push_str("\n{\"seq\":2,");
        std::fs::write(d.path().join(LOG_FILE), &text).unwrap();
        assert!(matches!(AuditLog::open(d.path()), Err(AuditError::Broken { .. })));
    }

    #[test]
    fn unwritable_directory_fails_closed() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(AuditLog::open(&file), Err(AuditError::Io { .. })));
    }
}
