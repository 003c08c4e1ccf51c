//! `idgw baseline build`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use idgw_pipeline::{PipelineConfig, Store};

/// Per-user behaviour baselines from the store's history.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    command: BaselineCommand,
}

#[derive(Debug, Subcommand)]
enum BaselineCommand {
    Build(BuildArgs),
}

/// Seed the detection engine with per-user profiles computed from the events table.
///
/// Reads every successful sign-in in <STORE>/events/ (polars, in time order) and builds
/// what streaming them would have left: each user's usual countries, cities, networks,
/// devices, browsers and hours, last location and known countries. Writes the engine
/// checkpoint and the identity_state table, so the next `idgw replay` or pipeline run
/// starts with warm profiles instead of treating every user as new. Use it after importing
/// history without detection (`IDGW_DETECT_ENABLED=false idgw replay ...`).
#[derive(Debug, Args)]
struct BuildArgs {
    /// The store whose events table holds the history.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Pipeline configuration (TOML); `[detect]` sizes the state.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Replace detection state the store already holds (its risk and alerts history is lost).
    #[arg(long)]
    replace: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BaselineArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BaselineCommand::Build(b) => build(b),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(args.config.as_deref()).context("loading configuration")?;
    let store = Store::open(&args.store).with_context(|| format!("opening store {}", args.store.display()))?;
    let summary = idgw_pipeline::baseline::build(&store, &config, args.replace)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "baseline: {} users from {} successful sign-ins ({} to {})",
            summary.users,
            summary.signins,
            summary.from.as_deref().unwrap_or("-"),
            summary.to.as_deref().unwrap_or("-")
        );
        println!("  checkpoint  {}", summary.checkpoint);
        println!("  vectors     {} upserted", summary.vectors_upserted);
    }
    Ok(ExitCode::SUCCESS)
}
