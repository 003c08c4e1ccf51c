//! Command-line surface (design.md, "The CLI surface").

mod alerts;
mod approve;
mod audit;
mod baseline;
mod config;
mod demo;
mod eval;
mod gateway;
mod generate;
mod pipeline;
mod query;
mod replay;
mod report;
mod sim;
mod similar;
mod store;
mod suppress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code when the work completed but some input could not be read to its end.
pub const EXIT_INPUT_ERRORS: u8 = 3;

const ABOUT: &str = "Identity-threat analytics for Okta, and an audited MCP action gateway for AI agents.";

const LONG_ABOUT: &str = "\
Identity-threat analytics for Okta, and an audited MCP action gateway for AI agents.

idgw reads Okta System Log events (files with `idgw replay`, Kafka with `idgw pipeline run`),
normalizes them into OCSF-aligned events, runs streaming detections (impossible travel,
brute force, password spray, MFA fatigue, session hijack, anomalous sign-ins and the
single-event rules) with a per-user risk score, and keeps everything in a store: a
directory of Parquet tables (events, alerts, identity_state) and alerts.jsonl that
`idgw query` (and any Parquet reader) can query with SQL, and `idgw report` turns into one
HTML page for the SOC (alerts over time, riskiest users, an impossible-travel map);
`idgw store compact` rewrites past days sorted by user, so per-user lookups stay fast. Records that cannot be read go to
the store's dead letter with the reason; nothing is dropped silently. Every user's behaviour
is also kept as a vector in Qdrant (embedded in the store by default): `idgw similar` finds
the users who behave alike. `idgw gateway serve` gives AI agents the same picture as MCP
tools (stdio or streamable HTTP) and lets them act on Okta (suspend, unsuspend, reset
password, revoke sessions, notify) under OAuth scopes, human approval (`idgw approve`) and a
hash-chained audit log (`idgw audit verify`), with rollback.

Start with `idgw demo`: it generates a synthetic tenant with labelled attacks, replays it
and shows what the store holds. `idgw generate` writes such tenants for your own runs.

Exit codes: 0 success, 1 error, 2 bad usage, 3 finished but an input could not be read to its end,
4 `idgw eval --check` found a target missed, 5 `idgw audit verify` found the audit log
tampered or damaged.";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "idgw", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `idgw_pipeline=debug`); logs go
    /// to stderr. Unset: `RUST_LOG`, else `warn,qdrant_edge=error` (which keeps
    /// qdrant-edge's start-up notices out of the way). A filter that does not parse is an
    /// error.
    #[arg(long, global = true, env = "IDGW_LOG")]
    pub log: Option<String>,
    /// Log lines as `text` or `json` (one object per line, for Loki, Elasticsearch, Cloud
    /// Logging).
    #[arg(long, global = true, env = "IDGW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Alerts(alerts::AlertsArgs),
    Approve(approve::ApproveArgs),
    Audit(audit::AuditArgs),
    Demo(demo::DemoArgs),
    Baseline(baseline::BaselineArgs),
    Config(config::ConfigArgs),
    Eval(eval::EvalArgs),
    Gateway(gateway::GatewayArgs),
    Generate(generate::GenerateArgs),
    Pipeline(pipeline::PipelineArgs),
    Replay(replay::ReplayArgs),
    Report(report::ReportArgs),
    Query(query::QueryArgs),
    /// Runs one `query_sql` for the gateway, sandboxed (internal: the gateway starts it).
    #[command(hide = true)]
    SqlWorker,
    Sim(sim::SimArgs),
    Similar(similar::SimilarArgs),
    Store(store::StoreArgs),
    Suppress(suppress::SuppressArgs),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, fields, span).
    Json,
}

/// The filter when neither `--log`/`IDGW_LOG` nor `RUST_LOG` is set.
const DEFAULT_LOG: &str = "warn,qdrant_edge=error";

/// Sets up `tracing` to stderr: `--log`/`IDGW_LOG`, else `RUST_LOG`, else the default.
pub fn init_logging(cli: &Cli) -> anyhow::Result<()> {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let (origin, text) = match (&cli.log, rust_log) {
        (Some(l), _) => ("--log/IDGW_LOG", l.clone()),
        (None, Some(r)) => ("RUST_LOG", r),
        (None, None) => ("default", DEFAULT_LOG.to_owned()),
    };
    // `parse`, not `parse_lossy`: a misspelt filter is an error, not silently dropped.
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(&text)
        .map_err(|e| anyhow::anyhow!("invalid log filter {text:?} from {origin}: {e}"))?;
    // Colours only for a person at a terminal: a log file, journald or a container's log
    // collector would keep the escape codes as text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
    Ok(())
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Alerts(args) => alerts::run(args),
        Command::Approve(args) => approve::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Baseline(args) => baseline::run(args),
        Command::Config(args) => config::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Pipeline(args) => pipeline::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Report(args) => report::run(args),
        Command::Query(args) => query::run(args),
        Command::SqlWorker => {
            idgw_gateway::sql_worker::serve()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(args) => sim::run(args),
        Command::Similar(args) => similar::run(args),
        Command::Store(args) => store::run(args),
        Command::Suppress(args) => suppress::run(args),
    }
}
