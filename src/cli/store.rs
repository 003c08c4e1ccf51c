//! `idgw store compact` and `idgw store prune`.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use idgw_pipeline::store::compact::{self, CompactOptions, PartitionReport};
use idgw_pipeline::store::retention;
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
    Prune(PruneArgs),
}

/// Remove events, alerts and dead letters older than a horizon.
///
/// Safe while `idgw pipeline run` writes and `idgw gateway serve` reads the store: event
/// days leave the table in one rename (a day written to within the last hour waits for the
/// next run); an alerts file goes once every alert in it is past the horizon; alerts.jsonl
/// is rewritten under the lock the pipeline's appends take; dead letters go when last
/// written before the horizon. The audit log, checkpoints (detection state), the identity
/// state and the vector index are never touched. `[store] retention_days` makes
/// `idgw store compact` (the scheduled maintenance) do this on every run.
#[derive(Debug, Args)]
struct PruneArgs {
    /// The store.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// The horizon: a number of days (`90d`) before now.
    #[arg(long, value_name = "AGE", value_parser = parse_days)]
    older_than: u32,
    /// Show what would be removed, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `90d` (or `90`) → 90.
fn parse_days(text: &str) -> Result<u32, String> {
    let n = text.strip_suffix('d').unwrap_or(text);
    match n.parse::<u32>() {
        Ok(d) if d > 0 => Ok(d),
        _ => Err(format!("{text:?}: give a number of days, e.g. 90d")),
    }
}

fn horizon(days: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::days(i64::from(days))
}

fn run_prune(args: PruneArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.store.is_dir(), "no store at {}", args.store.display());
    let store = Store::at(&args.store);
    // Not while a compaction swaps a day this would remove.
    let _lock = if args.dry_run {
        None
    } else {
        Some(compact::lock(&store).context("taking the store's compaction lock")?)
    };
    let report = retention::prune(&store, horizon(args.older_than), args.dry_run)
        .with_context(|| format!("pruning {}", args.store.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_prune(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_prune(r: &retention::PruneReport) {
    println!(
        "{} before {}: {} event day(s), {} alert file(s), {} alerts.jsonl line(s), {} dead-letter file(s), {} bytes; {} old day(s) written to within the hour left for the next run",
        if r.dry_run { "would remove" } else { "removed" },
        r.cutoff.format("%Y-%m-%dT%H:%M:%SZ"),
        r.event_days.len(),
        r.alert_files,
        r.alert_lines,
        r.deadletter_files,
        r.bytes,
        r.event_days_busy
    );
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
/// With `[store] retention_days`, what is older than that is pruned first (`idgw store
/// prune`).
///
/// Days younger than --min-age-days are left alone, because a running pipeline still
/// writes them, unless --recent merges the files it published a while ago. Days already
/// compacted are skipped, so the command is cheap to schedule
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
    /// Also merge the recent days' files (younger than --min-age-days) that the pipeline
    /// published at least SECONDS ago (60 when given bare) into sorted files, with the
    /// day's smaller sorted files: a streaming pipeline leaves one file per partition per
    /// commit, and a per-user lookup pays for each. Schedule it every few minutes.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "60")]
    recent: Option<u64>,
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
    /// Days that could not be compacted, with why (left as they were).
    failed: Vec<String>,
    /// What `[store] retention_days` removed first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pruned: Option<retention::PruneReport>,
}

pub fn run(args: StoreArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        StoreCommand::Compact(c) => run_compact(c),
        StoreCommand::Prune(p) => run_prune(p),
    }
}

fn run_compact(args: CompactArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let config = PipelineConfig::load(args.config.as_deref()).context("loading configuration")?;
    anyhow::ensure!(args.store.is_dir(), "no store at {}", args.store.display());
    let store = Store::at(&args.store);
    let options = CompactOptions {
        min_age_days: args.min_age_days,
        recent_file_age: args.recent.map(std::time::Duration::from_secs),
        force: args.force,
        memory_limit: args.memory_mib.saturating_mul(1 << 20),
        store: config.store.clone(),
        ..CompactOptions::default()
    };
    // One compaction of a store at a time, pruning included (held to the end of this
    // function); a dry run changes nothing and takes no lock.
    let _lock = if args.dry_run {
        None
    } else {
        Some(compact::lock(&store).context("taking the store's compaction lock")?)
    };
    // Days past the retention horizon go before any is compacted.
    let pruned = match config.store.retention_days {
        0 => None,
        days => {
            let r = retention::prune(&store, horizon(days), args.dry_run).context("applying [store] retention_days")?;
            if !args.json {
                print_prune(&r);
            }
            Some(r)
        }
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
        failed: Vec::new(),
        pruned,
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
        let mut failed = Vec::new();
        for part in &plan.todo {
            bar.set_message(part.partition.clone());
            // A day that fails is reported and left as it was; the others go on.
            let report = match runtime.block_on(compact::compact_partition(&store, part, &options, &run_id)) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(partition = %part.partition, error = %e, "compaction of a day failed; it is left as it was");
                    failed.push(format!("{}: {e}", part.partition));
                    continue;
                }
            };
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
        summary.failed = failed;
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
    for f in &summary.failed {
        eprintln!("error: compacting {f}");
    }
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
