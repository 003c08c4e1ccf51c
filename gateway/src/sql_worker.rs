//! `query_sql` in a process of its own.
//!
//! An agent's SQL can ask for more memory than any pool accounts for: string functions
//! (`repeat`, `lpad`, `replace` with a long literal) and plain `concat` nested through CTEs
//! grow each row by a factor the query chooses, and DataFusion evaluates a whole batch of rows
//! at once, outside its memory pool. An allocation that fails aborts the process that made
//! it. So the gateway runs each query in a child (`idgw sql-worker`, the same binary) that
//! caps its own data segment (`RLIMIT_DATA`) before it reads the query, and answers one JSON
//! document on stdout; the gateway kills it at the query's time limit. A query past a limit
//! ends the child, and the agent gets an error that says which limit; the gateway goes on.
//!
//! Inside the child, the session is [`idgw_pipeline::query::sandboxed_session`]: a memory
//! pool for sorts, joins and aggregations (they fail cleanly past it; nothing spills to
//! disk), no recursive CTEs, read-only statements only. What comes back is bounded too: rows
//! and their JSON bytes, error messages, and the bytes the gateway reads from the child.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use crate::data::{DataError, Row, to_rows};

/// Longest error message a worker returns, characters (an error can quote a value the query
/// built, of any size).
const MAX_ERROR_CHARS: usize = 2_000;
/// Most bytes the gateway reads from a worker's stdout or stderr; a worker writing more is
/// killed.
const MAX_OUTPUT_BYTES: u64 = 8 << 20;

/// What one query may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlLimits {
    /// The pool DataFusion's operators share, bytes; the child's data segment is capped at
    /// this plus [`HEADROOM`].
    pub memory_bytes: u64,
    /// Rows returned at most (one more is read to tell that there were more).
    pub max_rows: usize,
    /// Arrow bytes read from the result before reading stops (whole batches).
    pub max_result_bytes: usize,
    /// JSON bytes of the rows returned (whole rows; a row alone larger is an error).
    pub max_json_bytes: usize,
}

/// What the worker process needs beyond the pool: the runtime, Parquet buffers, thread
/// stacks, and the allocator's first arena (mimalloc reserves 1 GiB of address space up
/// front, which the data limit counts although little of it is ever touched).
pub const HEADROOM: u64 = 1536 << 20;

/// The request on the worker's stdin.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    store: PathBuf,
    sql: String,
    limits: SqlLimits,
}

/// The worker's answer on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Rows { rows: Vec<Row>, truncated: bool },
    Error { message: String },
}

/// Runs `sql` over the store at `store` with `limits` (in this process).
pub async fn run_here(store: &Path, sql: &str, limits: SqlLimits) -> Result<(Vec<Row>, bool), DataError> {
    let store = idgw_pipeline::store::Store::at(store.to_owned());
    let pool = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
    let ctx = idgw_pipeline::query::sandboxed_session(&store, pool)
        .await
        .map_err(|e| DataError::Query(e.to_string()))?;
    let df = ctx.sql_with_options(sql, idgw_pipeline::query::read_only()).await?;
    // One row more than the limit tells whether there were more.
    let mut stream = df.limit(0, Some(limits.max_rows + 1))?.execute_stream().await?;
    let mut batches = Vec::new();
    let (mut rows, mut bytes, mut truncated) = (0usize, 0usize, false);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        batches.push(batch);
        if rows > limits.max_rows || bytes > limits.max_result_bytes {
            truncated = true;
            break;
        }
    }
    let mut out = to_rows(&batches)?;
    drop(batches);
    if out.len() > limits.max_rows {
        out.truncate(limits.max_rows);
        truncated = true;
    }
    // Whole rows up to the JSON limit.
    let mut bytes = 0usize;
    let keep = out
        .iter()
        .position(|r| {
            bytes += serde_json::to_string(r).map_or(usize::MAX / 2, |s| s.len() + 1);
            bytes > limits.max_json_bytes
        })
        .unwrap_or(out.len());
    if keep == 0 && !out.is_empty() {
        return Err(DataError::Query(format!(
            "one row of the result is larger than {} KiB; select fewer or shorter values",
            limits.max_json_bytes >> 10
        )));
    }
    if keep < out.len() {
        out.truncate(keep);
        truncated = true;
    }
    Ok((out, truncated))
}

/// `text` cut to [`MAX_ERROR_CHARS`].
fn clipped(text: &str) -> String {
    crate::text::clip(text, MAX_ERROR_CHARS)
}

/// The worker's side (`idgw sql-worker`): caps this process, reads one request from stdin,
/// writes one answer to stdout.
pub fn serve() -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut input = Vec::new();
    std::io::stdin().take(1 << 20).read_to_end(&mut input)?;
    let answer = match serde_json::from_slice::<Request>(&input) {
        Err(e) => Answer::Error {
            message: format!("not a worker request: {e}"),
        },
        Ok(req) => {
            cap_self(req.limits.memory_bytes + HEADROOM)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            match runtime.block_on(run_here(&req.store, &req.sql, req.limits)) {
                Ok((rows, truncated)) => Answer::Rows { rows, truncated },
                Err(e) => Answer::Error {
                    message: clipped(&e.to_string()),
                },
            }
        }
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &answer)?;
    out.flush()
}

/// Limits this process's data segment (heap and anonymous mappings) to `bytes`.
#[cfg(unix)]
fn cap_self(bytes: u64) -> std::io::Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_DATA, bytes, bytes).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn cap_self(_bytes: u64) -> std::io::Result<()> {
    Ok(())
}

/// Runs `sql` in a worker process started from `exe`, stopped after `timeout`.
pub async fn run_in_worker(
    exe: &Path,
    store: &Path,
    sql: &str,
    limits: SqlLimits,
    timeout: Duration,
) -> Result<(Vec<Row>, bool), DataError> {
    let request = serde_json::to_vec(&Request {
        store: store.to_owned(),
        sql: sql.to_owned(),
        limits,
    })
    .map_err(|e| DataError::Query(e.to_string()))?;
    // Only what the worker needs from the environment: not the gateway's Okta credentials,
    // nor DATAFUSION_* settings that would loosen its limits.
    let mut child = tokio::process::Command::new(exe)
        .arg("sql-worker")
        .env_clear()
        .env("RUST_BACKTRACE", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DataError::Query(format!("starting the query worker {}: {e}", exe.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&request)
            .await
            .map_err(|e| DataError::Query(format!("sending the query to its worker: {e}")))?;
    }
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(DataError::Query("the query worker has no output".into()));
    };
    let read = async {
        use tokio::io::AsyncReadExt as _;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (mut stdout, mut stderr) = (stdout.take(MAX_OUTPUT_BYTES + 1), stderr.take(MAX_OUTPUT_BYTES + 1));
        let (o, e) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        o.and(e).map(|_| (out, err))
    };
    let (stdout, stderr) = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(DataError::Query(format!("reading the query worker: {e}"))),
        // Dropping the child kills it.
        Err(_) => return Err(DataError::Timeout(timeout.as_secs())),
    };
    if stdout.len() as u64 > MAX_OUTPUT_BYTES || stderr.len() as u64 > MAX_OUTPUT_BYTES {
        return Err(DataError::Query(
            "the query's answer was larger than any result may be and was stopped".into(),
        ));
    }
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(s)) => s,
        _ => return Err(DataError::Query("the query worker did not exit".into())),
    };
    let output = std::process::Output { status, stdout, stderr };
    match serde_json::from_slice::<Answer>(&output.stdout) {
        Ok(Answer::Rows { rows, truncated }) => Ok((rows, truncated)),
        Ok(Answer::Error { message }) => Err(DataError::Query(clipped(&message))),
        Err(_) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("memory allocation") || killed_by(&output.status) {
                Err(DataError::Query(format!(
                    "the query needed more memory than its limit ({} MiB) and was stopped; the gateway is unaffected. Ask for fewer or shorter values (LIMIT, narrower columns, no string-growing functions)",
                    (limits.memory_bytes + HEADROOM) >> 20
                )))
            } else {
                Err(DataError::Query(format!(
                    "the query worker ended without an answer ({}): {}",
                    output.status,
                    clipped(stderr.lines().last().unwrap_or(""))
                )))
            }
        }
    }
}

/// Whether the child died of a signal (an abort after a failed allocation, or a limit).
fn killed_by(status: &std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        status.signal().is_some()
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        false
    }
}
