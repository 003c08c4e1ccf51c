//! `idgw gateway`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use idgw_gateway::{Gateway, StoreReader, server};
use idgw_pipeline::PipelineConfig;
use tokio_util::sync::CancellationToken;

/// The MCP gateway: tools for AI agents over a store.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(subcommand)]
    command: GatewayCommand,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    Serve(ServeArgs),
}

/// Serve the MCP tools over stdio (one client, e.g. Claude Desktop starting `idgw`) or
/// streamable HTTP (`/mcp` on ADDR).
///
/// Tools (docs/mcp-tools.md): analyze_identity_state, list_alerts, explain_alert,
/// search_events, similar_users, query_sql — all read-only. The store is read on every
/// call, so what a running pipeline writes is seen without a restart.
///
/// AUTHENTICATION IS NOT ENFORCED YET: any client that can reach the transport can call
/// the tools. Serve HTTP on loopback only (the default Host and Origin allowlists accept
/// loopback only) until OAuth lands.
///
///   idgw gateway serve --store ./store --stdio
///   idgw gateway serve --store ./store --http 127.0.0.1:8765
#[derive(Debug, Args)]
struct ServeArgs {
    /// The store directory (written by `idgw replay` or the streaming pipeline).
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Serve one client on stdin/stdout (logs go to stderr).
    #[arg(long, conflicts_with = "http", required_unless_present = "http")]
    stdio: bool,
    /// Serve streamable HTTP at http://ADDR/mcp.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Accepted `Host` header values (repeatable; default: loopback names).
    #[arg(long = "allow-host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Accepted browser `Origin` values, e.g. `https://app.example.com:443` (repeatable;
    /// default: loopback origins on any port). Requests without an Origin always pass.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    origins: Vec<String>,
    /// Longest a scan may run before it is stopped (seconds).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    query_timeout: u64,
    /// Pipeline configuration (TOML) naming the vector index; QDRANT_URL and VECTOR_DB_PATH
    /// override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        GatewayCommand::Serve(s) => serve(s),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(args.config.as_deref()).context("loading configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting runtime")?;
    runtime.block_on(async move {
        let reader = StoreReader::open(args.store.clone(), &config, Duration::from_secs(args.query_timeout))
            .await
            .with_context(|| format!("opening store {}", args.store.display()))?;
        let gateway = Gateway::new(reader);
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                wait_for_signal().await;
                tracing::info!("shutting down");
                shutdown.cancel();
            }
        });
        match args.http {
            Some(addr) => {
                let hosts = if args.hosts.is_empty() {
                    server::DEFAULT_HOSTS.map(String::from).to_vec()
                } else {
                    args.hosts
                };
                let origins = if args.origins.is_empty() {
                    server::DEFAULT_ORIGINS.map(String::from).to_vec()
                } else {
                    args.origins
                };
                server::serve_http(gateway, addr, hosts, origins, shutdown, |bound| {
                    // Scripts wait for this line to learn the port (ADDR may say :0).
                    eprintln!("idgw gateway: serving MCP on http://{bound}/mcp");
                })
                .await?;
            }
            None => server::serve_stdio(gateway, shutdown).await?,
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
