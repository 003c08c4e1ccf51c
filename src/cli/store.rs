//! `idgw store compact`.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use idgw_pipeline::store::compact::{self, CompactOptions, PartitionReport};
use idgw_pipeline::{PipelineConfig, Store};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Maintenance of a store's tables.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    Compact(CompactArgs),
}

/// Rewrite past days of the events table sorted by user and time.
///
/// Events are stored in arrival order, so a per-user lookup (the gateway's search_events and
/// analyze_identity_state, `idgw query ... WHERE user_id = ...`) reads the user column of
/// every row of the days it covers. Compaction rewrites each day (`events/date=…/`) as
/// `sorted-…` files ordered by user_id, event_time and event_id, with small pages: the
/// Parquet statistics then bound such a lookup to a page or two per day. Small files left
/// by streaming commits are merged on the way. Rows are counted before the old files are
/// removed; the result holds exactly the same rows. A swap an earlier run left half done
/// (killed) is completed or undone first.
///
/// Days younger than --min-age-days are left alone, because a running pipeline still
/// writes them. Days already compacted are skipped, so the command is cheap to schedule
/// (deploy/systemd/idgw-compact.timer, deploy/k8s/compact.yaml). Do not run it while `idgw replay` writes old days of the
/// same store.
#[derive(Debug, Args)]
struct CompactArgs {
    /// The store.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Pipeline configuration (TOML); `[store]` sets row groups, file size and zstd level.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Leave days younger than this many days (UTC dates) alone.
    #[arg(long, default_value_t = 2, value_name = "DAYS")]
    min_age_days: u32,
    /// Memory the sort may hold before it spills to the temporary directory, MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    memory_mib: usize,
    /// Rewrite days already compacted too (e.g. after changing `[store]` settings).
    #[arg(long)]
    force: bool,
    /// Show what would be rewritten, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct CompactSummary {
    partitions_compacted: usize,
    already_sorted: usize,
    too_recent: usize,
    rows: u64,
    bytes_in: u64,
    bytes_out: u64,
    elapsed_s: f64,
    dry_run: bool,
    partitions: Vec<PartitionReport>,
}

pub fn run(args: StoreArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        StoreCommand::Compact(c) => run_compact(c),
    }
}

fn run_compact(args: CompactArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let config = PipelineConfig::load(args.config.as_deref()).context("loading configuration")?;
    anyhow::ensure!(args.store.is_dir(), "no store at {}", args.store.display());
    let store = Store::at(&args.store);
    let options = CompactOptions {
        min_age_days: args.min_age_days,
        force: args.force,
        memory_limit: args.memory_mib.saturating_mul(1 << 20),
        store: config.store.clone(),
        ..CompactOptions::default()
    };
    if !args.dry_run {
        // A swap a kill cut short is finished (or undone) before anything is planned.
        for done in compact::finish_interrupted(&store)? {
            tracing::warn!(?done, "recovered an interrupted compaction");
        }
    }
    let plan = compact::plan(&store, &options)?;
    let mut summary = CompactSummary {
        partitions_compacted: 0,
        already_sorted: plan.already_sorted,
        too_recent: plan.too_recent,
        rows: 0,
        bytes_in: plan.todo.iter().map(|p| p.bytes).sum(),
        bytes_out: 0,
        elapsed_s: 0.0,
        dry_run: args.dry_run,
        partitions: Vec::new(),
    };
    if !args.dry_run {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting runtime")?;
        let bar = if args.json || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(summary.bytes_in)
        };
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let run_id = format!("{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%3f"));
        for part in &plan.todo {
            bar.set_message(part.partition.clone());
            let report = runtime
                .block_on(compact::compact_partition(&store, part, &options, &run_id))
                .with_context(|| format!("compacting {}", part.partition))?;
            bar.inc(part.bytes);
            if !args.json && bar.is_hidden() {
                eprintln!(
                    "compacted {}: {} file(s) → {}, {} rows, {:.1} s",
                    report.partition, report.files_in, report.files_out, report.rows, report.seconds
                );
            }
            summary.rows += report.rows;
            summary.bytes_out += report.bytes_out;
            summary.partitions.push(report);
        }
        bar.finish_and_clear();
        summary.partitions_compacted = summary.partitions.len();
    }
    summary.elapsed_s = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else if args.dry_run {
        for p in &plan.todo {
            println!(
                "would compact {} ({} files, {} bytes)",
                p.partition,
                p.files.len(),
                p.bytes
            );
        }
        println!(
            "{} day(s) to compact, {} already sorted, {} too recent",
            plan.todo.len(),
            summary.already_sorted,
            summary.too_recent
        );
    } else {
        println!(
            "compacted {} day(s): {} rows, {} → {} bytes in {:.1} s; {} already sorted, {} too recent",
            summary.partitions_compacted,
            summary.rows,
            summary.bytes_in,
            summary.bytes_out,
            summary.elapsed_s,
            summary.already_sorted,
            summary.too_recent
        );
    }
    Ok(ExitCode::SUCCESS)
}
