//! `query_sql`: one read-only query under row, byte and time limits.

use super::*;

/// `query_sql`.
pub async fn query_sql(reader: &StoreReader, args: SqlArgs) -> Result<SqlResult, ToolError> {
    let (mut rows, mut truncated) = reader.sql(&args.sql, SQL_MAX_ROWS).await.map_err(|e| {
        format!("{e}. Only one read-only query (SELECT/WITH) over events, alerts and identity_state runs here.")
    })?;
    // Keep the answer under the byte limit, whole rows only.
    let mut bytes = 0usize;
    let mut keep = rows.len();
    for (i, r) in rows.iter().enumerate() {
        bytes += serde_json::to_string(r).map_or(0, |s| s.len() + 1);
        if bytes > SQL_MAX_BYTES {
            keep = i;
            break;
        }
    }
    if keep < rows.len() {
        rows.truncate(keep);
        truncated = true;
    }
    Ok(SqlResult {
        row_count: rows.len(),
        rows,
        truncated,
    })
}
