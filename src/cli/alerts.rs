//! `idgw alerts export`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use idgw_schemas::{Alert, Severity};

/// The store's alerts, for a SIEM or a data lake.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: AlertsCommand,
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Write the store's alerts as NDJSON to stdout: `json` (the Alert contract,
    /// schemas/json/alert.schema.json) or `ocsf` (OCSF 1.5.0 Detection Finding, class
    /// 2004: finding_info with the ATT&CK techniques and the evidence events, severity_id,
    /// risk and confidence scores, the source IP and user as evidences and observables).
    ///
    ///   idgw alerts export --store ./store --format ocsf --since 2026-12-01T00:00:00Z > findings.ndjson
    Export {
        /// The store.
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// The shape of each line.
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Only alerts last seen at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only alerts at or above this severity (info, low, medium, high, critical).
        #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
        min_severity: Option<Severity>,
    },
}

/// Output shapes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// The Alert contract.
    Json,
    /// OCSF Detection Finding (class 2004).
    Ocsf,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("{s:?} is not info, low, medium, high or critical"))
}

pub fn run(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    let AlertsCommand::Export {
        store,
        format,
        since,
        min_severity,
    } = args.command;
    let path = store.join("alerts.jsonl");
    anyhow::ensure!(store.is_dir(), "no store at {}", store.display());
    let file = match std::fs::File::open(&path) {
        Ok(f) => Some(f),
        // A store that never raised an alert has none to export.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (n, line) in file
        .into_iter()
        .flat_map(|f| std::io::BufReader::new(f).lines())
        .enumerate()
    {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let alert: Alert = match serde_json::from_str(&line) {
            Ok(a) => a,
            Err(e) => {
                // A torn last line after a crash: said, not exported, not fatal.
                eprintln!("{}:{}: skipped, not an alert: {e}", path.display(), n + 1);
                continue;
            }
        };
        if since.is_some_and(|t| alert.last_seen < t) || min_severity.is_some_and(|s| alert.severity < s) {
            continue;
        }
        match format {
            ExportFormat::Json => serde_json::to_writer(&mut out, &alert)?,
            ExportFormat::Ocsf => {
                serde_json::to_writer(&mut out, &idgw_pipeline::ocsf_finding::detection_finding(&alert))?
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
