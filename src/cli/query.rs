//! `idgw query`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::pretty::pretty_format_batches;
use idgw_pipeline::Store;

/// Run SQL over a store's tables.
///
/// Tables: `events` (one row per stored event, partition column `date`), `alerts`,
/// `identity_state`. The engine is DataFusion, the same one the gateway uses; only queries
/// run (no DDL, DML or SET). Example:
///
///   idgw query --store ./store "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC"
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The store directory.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// One SQL query.
    sql: String,
    /// Print JSON lines (one object per row) instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting runtime")?;
    let store = Store::at(&args.store);
    let batches = runtime.block_on(idgw_pipeline::query::query(&store, &args.sql))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let mut writer = LineDelimitedWriter::new(&mut out);
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    } else {
        use std::io::Write;
        writeln!(out, "{}", pretty_format_batches(&batches)?)?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        writeln!(out, "{rows} row(s)")?;
    }
    Ok(ExitCode::SUCCESS)
}
