//! `idgw config show`: the effective configuration and where each value came from.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use idgw_gateway::GatewayConfig;
use idgw_pipeline::PipelineConfig;
use idgw_pipeline::layered::{self, Source};

/// Show the configuration a command would run with.
///
/// Every scalar and list key of the deployment file can be set from the environment by one
/// rule: `IDGW_`, then the key's table path and name in upper case, joined by `_`
/// (`[detect] travel_min_km` → `IDGW_DETECT_TRAVEL_MIN_KM`, `[kafka.security] password` →
/// `IDGW_KAFKA_SECURITY_PASSWORD`, `[gateway.approvals] public_url` →
/// `IDGW_GATEWAY_APPROVALS_PUBLIC_URL`). Not by the rule: `[gateway.policy]` and
/// `[gateway.auth]` (the reviewed file alone sets them), the librdkafka property maps,
/// `[detect.detections.*]` and `[[detect.suppress]]`. The environment wins over the file,
/// the file over the defaults. A variable that names a table but none of its keys is an
/// error.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print every key with its effective value and source (default, file, or the
    /// environment variable); passwords, tokens, secrets and keys are masked, and the
    /// webhook URL (a Slack or PagerDuty URL is a credential) shows its scheme and host only.
    Show {
        /// The deployment file (TOML), as given to `idgw pipeline run --config`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// One JSON object per key: `{"key", "value", "source": {"kind", "name"}}`.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Show { config, json } = args.command;
    let pipeline = PipelineConfig::resolve(config.as_deref(), std::env::vars()).context("loading configuration")?;
    let gateway =
        GatewayConfig::resolve(config.as_deref(), std::env::vars()).context("loading [gateway] configuration")?;
    let mut rows = layered::rows(&pipeline, "");
    rows.extend(layered::rows(&gateway, "gateway"));
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        for (key, value, source) in rows {
            let line = serde_json::json!({ "key": key, "value": value, "source": source });
            writeln!(out, "{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = String::new();
    for (key, value, source) in rows {
        let (t, name) = key.rsplit_once('.').unwrap_or(("", key.as_str()));
        if t != table {
            writeln!(out, "\n[{t}]")?;
            table = t.to_owned();
        }
        let value = match value {
            serde_json::Value::Null => "(unset)".to_owned(),
            v => v.to_string(),
        };
        let source = match source {
            Source::Default => String::new(),
            s => format!("  # {s}"),
        };
        writeln!(out, "{name} = {value}{source}")?;
    }
    Ok(ExitCode::SUCCESS)
}
