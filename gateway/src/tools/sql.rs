//! `query_sql`: one read-only query under row, byte and time limits.

use super::*;

/// `query_sql`.
pub async fn query_sql(reader: &StoreReader, args: SqlArgs) -> Result<SqlResult, ToolError> {
    if args.sql.len() > SQL_MAX_LEN {
        return Err(format!(
            "the query is {} bytes; at most {SQL_MAX_LEN} are accepted. Ask one narrower question",
            args.sql.len()
        ));
    }
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
