//! `idgw audit`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use idgw_gateway::audit;

/// Exit code when the audit log does not verify.
pub const EXIT_TAMPERED: u8 = 5;

/// The gateway's audit log.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    Verify(VerifyArgs),
}

/// Check the audit log's hash chain: every line is a record, positions run 0, 1, 2, …,
/// each record holds the SHA-256 of the line before, and the head file matches the end.
/// Detects edited, deleted, reordered and cut-off records. Also lists transactions whose
/// intent has no outcome (the gateway stopped mid-action).
///
/// Exit codes: 0 intact, 5 tampered or damaged, 1 unreadable.
///
///   idgw audit verify ./store/audit
///   idgw audit verify /var/log/idgw/audit.jsonl --json
#[derive(Debug, Args)]
struct VerifyArgs {
    /// The audit directory (AUDIT_LOG_DIR) or its audit.jsonl.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify(v) => verify(v),
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if !args.path.exists() {
        anyhow::bail!("{} does not exist", args.path.display());
    }
    let report = audit::verify(&args.path)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} records, {} transactions, last hash {}",
            report.records, report.transactions, report.last_hash
        );
        for tx in &report.open_intents {
            println!("open: {tx} has an intent and no outcome (the gateway stopped mid-action)");
        }
        if report.ok() {
            println!("OK: the chain is intact");
        } else {
            for p in &report.problems {
                println!("TAMPERED: {p}");
            }
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_TAMPERED)
    })
}
