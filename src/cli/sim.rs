//! `idgw sim serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use idgw_testbed::sim::{self, SimConfig};

/// The local Okta simulator.
#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    Serve(ServeArgs),
}

/// Serve an Okta org on loopback for everything this product calls.
///
/// System Log (`GET /api/v1/logs`: since, until, after, filter, q, limit, sortOrder; polling
/// and bounded semantics; Link headers; X-Rate-Limit-* headers and 429 E0000047), the Users
/// API (read by id or login; suspend, unsuspend, unlock, deactivate, reset_password,
/// expire_password with Okta's state machine and error objects; DELETE sessions), and Okta
/// Workflows API-endpoint flows (`/api/flo/{suspend_user,unsuspend_user,reset_password,
/// search_logs,read_user,notify_user}/invoke` with `clientToken` or `x-api-client-token`).
/// Every action appends the System Log event Okta would write.
///
/// Simulator-only: `GET /sim/outbox` (mail and notifications sent), `GET`/`POST /sim/faults`
/// (JSON: latency_ms, burst_429, error_rate, burst_503, drop_rate, burst_drop).
#[derive(Debug, Args)]
struct ServeArgs {
    /// Listen address (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8089")]
    addr: String,
    /// Users of the generated tenant.
    #[arg(long, default_value_t = 200)]
    users: u32,
    /// Seed of the generated tenant.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Days of generated history before now.
    #[arg(long, default_value_t = 2)]
    history_days: u32,
    /// Serve this NDJSON log (optionally gzip) instead of a generated history.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["users", "seed"])]
    events: Option<PathBuf>,
    /// New sign-in activity per second (0: none).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// API token accepted as `Authorization: SSWS <token>`.
    #[arg(long, env = "OKTA_API_TOKEN", default_value = "sim-api-token")]
    api_token: String,
    /// Client token every Workflows flow accepts.
    #[arg(long, default_value = "sim-workflows-token")]
    workflows_token: String,
    /// System Log requests per minute before 429.
    #[arg(long, default_value_t = 120)]
    logs_per_minute: u32,
    /// An OAuth service app of the org authorization server: CLIENT_ID=PUBLIC_KEY_PEM_FILE
    /// (repeatable). It gets tokens at /oauth2/v1/token with private_key_jwt, holding every
    /// okta.* scope the simulator checks.
    #[arg(long = "service-app", value_name = "CLIENT_ID=PEM")]
    service_apps: Vec<String>,
    /// Another OIDC app of the default authorization server (device flow and authorization
    /// code, as the built-in one; repeatable): e.g. approvers' own client beside the agents'.
    #[arg(long = "oauth-client", value_name = "CLIENT_ID")]
    oauth_clients: Vec<String>,
}

pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let SimCommand::Serve(args) = args.command;
    let events = match &args.events {
        Some(path) => {
            let mut text = String::new();
            let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let mut reader = std::io::BufReader::new(file);
            let head = std::io::BufRead::fill_buf(&mut reader)?.starts_with(&[0x1f, 0x8b]);
            if head {
                std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(reader), &mut text)?;
            } else {
                std::io::Read::read_to_string(&mut reader, &mut text)?;
            }
            Some(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned)
                    .collect(),
            )
        }
        None => None,
    };
    let mut service_apps = Vec::new();
    for spec in &args.service_apps {
        let (client_id, file) = spec
            .split_once('=')
            .with_context(|| format!("--service-app {spec:?}: expected CLIENT_ID=PUBLIC_KEY_PEM_FILE"))?;
        let public_key_pem = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        service_apps.push(idgw_testbed::sim::ServiceApp {
            client_id: client_id.to_owned(),
            public_key_pem,
            scopes: idgw_testbed::sim::OKTA_SCOPES.map(String::from).to_vec(),
        });
    }
    let mut oauth_clients = SimConfig::default().oauth_clients;
    oauth_clients.extend(args.oauth_clients.iter().cloned());
    let config = SimConfig {
        service_apps,
        oauth_clients,
        users: args.users,
        seed: args.seed,
        history_days: args.history_days,
        events,
        live_rate: args.rate,
        api_token: args.api_token,
        workflows_token: args.workflows_token,
        logs_per_minute: args.logs_per_minute,
        ..SimConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let org = sim::build(config)?;
        let running = sim::serve(&args.addr, org).await?;
        let events = running.sim.state.lock().map(|s| s.events.len()).unwrap_or(0);
        println!(
            "okta simulator listening on {} ({events} events of history)",
            running.base_url()
        );
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        running.stop().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
