//! `idgw gateway`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use idgw_gateway::access::{Access, DeviceFlow};
use idgw_gateway::approvals::Approvals;
use idgw_gateway::approvals::web::{ApprovalWeb, SignIn};
use idgw_gateway::audit::AuditLog;
use idgw_gateway::auth::http::Guard;
use idgw_gateway::auth::{self, Validator, device, scopes};
use idgw_gateway::okta::Okta;
use idgw_gateway::{Actions, Gateway, GatewayConfig, StoreReader, server};
use idgw_pipeline::PipelineConfig;
use tokio_util::sync::CancellationToken;

/// The MCP gateway: tools for AI agents over a store, and audited actions on Okta.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(subcommand)]
    command: GatewayCommand,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    Serve(ServeArgs),
    Login(LoginArgs),
}

/// Serve the MCP tools over stdio (one client, e.g. Claude Desktop starting `idgw`) or
/// streamable HTTP (`/mcp` on ADDR).
///
/// Tools (docs/mcp-tools.md): the read tools over the store (analyze_identity_state,
/// list_alerts, explain_alert, search_events, similar_users, query_sql, the on-demand
/// detections), live Okta reads (read_user, search_logs), actions (suspend_user,
/// unsuspend_user, reset_password, revoke_sessions, notify_user, rollback) and the audit
/// log (get_audit_log). The store is read on every call, so what a running pipeline writes
/// is seen without a restart.
///
/// Authentication: over HTTP, bearer JWTs from the issuer OKTA_ISSUER names, validated
/// against its JWKS (audience api://mcp by default); the protected-resource metadata is
/// served at /.well-known/oauth-protected-resource. Over stdio, the operator signs in with
/// the device flow (the tools initiate_device_auth and complete_device_auth, or
/// `idgw gateway login` beforehand). Each tool needs its scope; tools/list shows what the
/// caller's scopes allow. --dev-no-auth turns all of this off for a demo on loopback.
///
/// Actions go to Okta through Workflows flows (OKTA_WF_<FLOW>_URL/_TOKEN) or the
/// Management API (OKTA_ORG_URL, OKTA_API_TOKEN); destructive ones need the approval of a
/// person other than the requester, given on the gateway's approval page
/// (/approvals/<transaction>, signed in at the issuer with mcp:actions:approve) or with
/// `idgw approve`; nothing the MCP client answers approves. Every call is recorded in the hash-chained audit log in
/// AUDIT_LOG_DIR (default <store>/audit); if it cannot be written, actions are refused.
///
///   idgw gateway serve --store ./store --stdio
///   idgw gateway serve --store ./store --http 127.0.0.1:8765 --config idgw.toml
///   idgw gateway serve --store ./store --http 127.0.0.1:8765 --dev-no-auth
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
    /// Memory for one `query_sql` (MiB): its sorts, joins and aggregations spill or fail
    /// past it, and its worker process is capped at this plus 1.5 GiB, so a query that
    /// asks for more fails alone and the gateway goes on.
    #[arg(long, default_value_t = 512, value_name = "MIB", env = "IDGW_QUERY_MEMORY_MB")]
    query_memory: u64,
    /// `query_sql` calls run at once; more wait up to 5 s, then are refused.
    #[arg(long, default_value_t = 2, value_name = "N", env = "IDGW_QUERY_CONCURRENCY")]
    query_concurrency: usize,
    /// Deployment configuration (TOML): the pipeline's sections (vector index, detection
    /// thresholds) and [gateway.auth], [gateway.okta], [gateway.policy], [gateway.audit].
    /// Environment variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// DEMO ONLY: no authentication; every caller gets every scope as principal
    /// `dev-no-auth`. Refused on non-loopback addresses. Actions still need approval and
    /// are still audited, but approvals are not authenticated either: a form answered in the
    /// MCP client, the page and `idgw approve --dev-no-auth` count, and the answer and the
    /// audit record say so.
    #[arg(long)]
    dev_no_auth: bool,
    /// Serve Prometheus metrics (tool calls, latencies, refusals, actions, audit writes,
    /// pending approvals) at http://ADDR/metrics, on a listener of its own: keep it where
    /// only the scraper reaches (a pod port the ingress does not publish). Unset: none.
    #[arg(long, value_name = "ADDR", env = "IDGW_GATEWAY_METRICS_LISTEN")]
    metrics: Option<SocketAddr>,
}

/// Sign in with the OAuth device flow and keep the token for `gateway serve --stdio` and
/// `idgw approve` (file mode 0600; refreshed before expiry when the issuer gave a refresh
/// token). Prints the verification URI and code to open in a browser.
///
///   OKTA_ISSUER=https://example.okta.com/oauth2/default OKTA_CLIENT_ID=0oa... idgw gateway login
///   idgw gateway login --tools list_alerts,suspend_user
#[derive(Debug, Args)]
struct LoginArgs {
    /// Request the scopes these tools need (comma-separated; default: every scope).
    #[arg(long, value_delimiter = ',', value_name = "TOOLS")]
    tools: Vec<String>,
    /// Deployment configuration (TOML) with [gateway.auth].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Longest to wait for the approval (seconds).
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    timeout: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        GatewayCommand::Serve(s) => serve(s),
        GatewayCommand::Login(l) => login(l),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting runtime")
}

async fn validator(config: &auth::AuthConfig) -> anyhow::Result<(Arc<Validator>, auth::ServerMetadata)> {
    let meta = auth::discover(config).await?;
    let v = Validator::new(config, &meta.issuer, &meta.jwks_uri).map_err(anyhow::Error::msg)?;
    Ok((Arc::new(v), meta))
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(args.config.as_deref()).context("loading configuration")?;
    let gw_config = GatewayConfig::load(args.config.as_deref()).context("loading [gateway] configuration")?;
    if !args.dev_no_auth && gw_config.auth.issuer.is_none() {
        return Err(auth::AuthError::NotConfigured.into());
    }
    if args.dev_no_auth
        && let Some(addr) = args.http
        && !addr.ip().is_loopback()
    {
        anyhow::bail!("--dev-no-auth serves loopback addresses only; {addr} is not one");
    }
    // A demo authenticates nobody, approvers included: it acts only on an Okta on this
    // host (the simulator), never on a real org.
    if args.dev_no_auth
        && let Some(url) = gw_config.okta.remote_target()
    {
        anyhow::bail!(
            "--dev-no-auth acts only on an Okta on this host (e.g. `idgw sim serve`); {url} is a real org: configure OKTA_ISSUER instead"
        );
    }
    runtime()?.block_on(async move {
        let reader = StoreReader::open(args.store.clone(), &config, Duration::from_secs(args.query_timeout))
            .await
            .with_context(|| format!("opening store {}", args.store.display()))?;
        // query_sql runs in a worker process started from this binary.
        let exe = std::env::current_exe().context("finding this binary to start query workers from")?;
        let reader = reader.with_sql_worker(
            Some(exe),
            args.query_memory << 20,
            args.query_concurrency,
        );
        let reader = Arc::new(reader);
        let audit_dir = gw_config.audit_dir(&args.store);
        let mut audit = AuditLog::open(&audit_dir).context("opening the audit log")?;
        if let Some(kafka) = &gw_config.audit.kafka {
            let mirror = idgw_gateway::audit::mirror::KafkaMirror::new(kafka).map_err(anyhow::Error::msg)?;
            audit = audit.with_mirror(mirror);
        }
        if let Some(signer) = head_signer(&gw_config.audit, &audit_dir)? {
            audit = audit.with_signer(signer).context("checking the audit log against its published head")?;
        }
        let audit = Arc::new(audit);
        let audit_at_exit = Arc::clone(&audit);
        // Reads are appended without fsync; once a second they are made durable and the
        // signed head naming them is published.
        tokio::spawn({
            let audit = Arc::downgrade(&audit);
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let Some(log) = audit.upgrade() else { break };
                    match tokio::task::spawn_blocking(move || log.sync()).await {
                        Ok(Err(e)) => tracing::error!(error = %e, "cannot sync the audit log"),
                        Err(e) => tracing::error!(error = %e, "the audit sync task failed"),
                        Ok(Ok(())) => {}
                    }
                }
            }
        });
        let okta = Okta::new(gw_config.okta.clone())?;
        let approvals = Arc::new(Approvals::new(Arc::clone(&audit), args.dev_no_auth));
        idgw_gateway::metrics::METRICS.watch_approvals(Arc::clone(&approvals));
        let actions = Arc::new(
            Actions::new(
                okta,
                Arc::clone(&audit),
                gw_config.policy.clone(),
                Arc::clone(&reader),
                Arc::clone(&approvals),
            )
            .context("reading the audit log")?,
        );
        // Where approvers' browsers reach the page: the configured public URL, or the
        // address bound.
        let page_base = |bound: SocketAddr| {
            gw_config
                .approvals
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{bound}"))
        };
        // Calls cut short by a stop: their outcome is read back from Okta before serving.
        match actions.reconcile().await {
            Ok(txs) if !txs.is_empty() => {
                tracing::warn!(transactions = ?txs, "reconciled actions that had no outcome");
            }
            Ok(_) => {}
            Err(e) => anyhow::bail!("reconciling unfinished actions: {e}"),
        }
        // The approval page signs approvers in at the issuer agents' tokens come from.
        let auth = if args.dev_no_auth {
            None
        } else {
            Some(validator(&gw_config.auth).await?)
        };
        let approval_web = match &auth {
            Some((validator, meta)) => {
                let signin = SignIn::from_config(&gw_config.auth, meta);
                match (&signin, gw_config.auth.approver_client_ids.is_empty()) {
                    (Err(why), false) => tracing::warn!(
                        "the approval page cannot sign approvers in: {why}; `idgw approve` still works for [gateway.auth] approver_client_ids"
                    ),
                    (Err(why), true) => tracing::error!(
                        "the approval page cannot sign approvers in: {why}; with no [gateway.auth] approver_client_ids nobody can approve an action"
                    ),
                    (Ok(_), _) => {}
                }
                ApprovalWeb::new(Arc::clone(&approvals), Some(Arc::clone(validator)), signin)
                    .map(|web| web.with_api_clients(gw_config.auth.approver_client_ids.clone()))
            }
            None => ApprovalWeb::new(Arc::clone(&approvals), None, Err("--dev-no-auth".into())),
        };
        let approval_web = Arc::new(approval_web.map_err(anyhow::Error::msg)?);
        if args.dev_no_auth {
            eprintln!(
                "idgw gateway: AUTHENTICATION DISABLED (--dev-no-auth): every caller acts as `dev-no-auth` with every scope. Demo use on loopback only."
            );
        }
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                wait_for_signal().await;
                tracing::info!("shutting down");
                shutdown.cancel();
            }
        });
        if let Some(addr) = args.metrics {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics listener on {addr}"))?;
            let bound = listener.local_addr()?;
            eprintln!("idgw gateway: metrics on http://{bound}/metrics");
            tokio::spawn(server::serve_metrics(listener, shutdown.clone()));
        }
        match args.http {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                let bound = listener.local_addr()?;
                approvals.set_page_base(&page_base(bound));
                let (access, guard) = match auth {
                    None => (Access::DevNoAuth, None),
                    Some((validator, meta)) => {
                    let resource = gw_config
                        .auth
                        .resource
                        .clone()
                        .unwrap_or_else(|| format!("http://{bound}/mcp"));
                    let guard = Guard {
                        validator,
                        metadata_url: idgw_gateway::auth::http::metadata_url(&resource).map_err(anyhow::Error::msg)?,
                        resource,
                        audit: Arc::clone(&audit),
                        refusals: Arc::default(),
                    };
                    (Access::Bearer, Some((guard, meta.issuer)))
                    }
                };
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
                let gateway = Gateway::new(reader, actions, access);
                // Scripts wait for this line to learn the port (ADDR may say :0).
                eprintln!("idgw gateway: serving MCP on http://{bound}/mcp");
                server::serve_http(gateway, listener, hosts, origins, guard, approval_web, shutdown).await?;
            }
            None => {
                // The MCP client speaks over stdin/stdout: approvers reach the page on a
                // port of its own.
                let listen = gw_config
                    .approvals
                    .listen
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
                if args.dev_no_auth && !listen.ip().is_loopback() {
                    anyhow::bail!("--dev-no-auth serves loopback addresses only; {listen} is not one");
                }
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding the approval page on {listen}"))?;
                let bound = listener.local_addr()?;
                approvals.set_page_base(&page_base(bound));
                eprintln!("idgw gateway: approval page on http://{bound}/approvals/");
                let page = tokio::spawn(server::serve_approvals(listener, approval_web, shutdown.clone()));
                let access = match auth {
                    None => Access::DevNoAuth,
                    Some((validator, meta)) => {
                        if gw_config.auth.client_id.is_none() {
                            anyhow::bail!("stdio sign-in uses the device flow: set OKTA_CLIENT_ID (a native app with the device grant)");
                        }
                        Access::DeviceFlow(Box::new(DeviceFlow::start(gw_config.auth.clone(), meta, validator).await))
                    }
                };
                server::serve_stdio(Gateway::new(reader, actions, access), shutdown.clone()).await?;
                shutdown.cancel();
                let _ = page.await;
            }
        }
        if let Err(e) = audit_at_exit.sync() {
            tracing::error!(error = %e, "cannot sync the audit log at stop");
        }
        // Tasks may still hold the log when the runtime ends, so its drop is no place to
        // wait for the last records to reach the mirror.
        if let Some(m) = audit_at_exit.mirror()
            && let Err(e) = m.flush(Duration::from_secs(10))
        {
            tracing::error!(error = %e, "the last audit records did not reach the Kafka mirror; audit.jsonl keeps them");
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let config = GatewayConfig::load(args.config.as_deref()).context("loading [gateway] configuration")?;
    let wanted: Vec<&str> = if args.tools.is_empty() {
        scopes::ALL.to_vec()
    } else {
        scopes::for_tools(&args.tools).map_err(anyhow::Error::msg)?
    };
    runtime()?.block_on(async move {
        let (validator, meta) = validator(&config.auth).await?;
        let start = device::start(&config.auth, &meta, &wanted).await?;
        eprintln!(
            "Open {} and enter the code {} (or open {}) to approve scopes: {}",
            start.verification_uri,
            start.user_code,
            start.verification_uri_complete.as_deref().unwrap_or(&start.verification_uri),
            wanted.join(" ")
        );
        let wait = Duration::from_secs(args.timeout.min(start.expires_in));
        let token = device::poll(&config.auth, &meta, &start.device_code, start.interval, wait)
            .await?
            .context("not approved in time; run idgw gateway login again")?;
        let principal = validator
            .validate(&token.access_token)
            .await
            .context("the issued token does not validate for this gateway (check the audience)")?;
        let path = config.auth.token_path();
        device::save(&path, &token)?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"principal": principal.subject, "scopes": principal.scopes, "expires_at": principal.expires_at, "token_file": path})
            );
        } else {
            println!(
                "signed in as {} with {}; token kept in {}",
                principal.subject,
                principal.scopes.join(" "),
                path.display()
            );
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

/// The audit head's signer, when `[gateway.audit] signing_key` is set. A copy inside the
/// audit directory would be cut along with the log, so it is refused.
fn head_signer(
    config: &idgw_gateway::config::AuditConfig,
    audit_dir: &std::path::Path,
) -> anyhow::Result<Option<idgw_gateway::audit::signed_head::HeadSigner>> {
    let Some(key) = &config.signing_key else {
        if config.head_copy.is_some() {
            anyhow::bail!("[gateway.audit] head_copy needs signing_key (IDGW_AUDIT_SIGNING_KEY): the copy is signed");
        }
        return Ok(None);
    };
    if let Some(copy) = &config.head_copy {
        let parent = copy
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let inside = match (parent.canonicalize(), audit_dir.canonicalize()) {
            (Ok(p), Ok(a)) => p.starts_with(a),
            _ => parent.starts_with(audit_dir),
        };
        if inside {
            anyhow::bail!(
                "[gateway.audit] head_copy {} is inside the audit directory {}: whoever can cut the log could cut it too; put it on another volume or path",
                copy.display(),
                audit_dir.display()
            );
        }
    }
    let signer = idgw_gateway::audit::signed_head::HeadSigner::load(key, config.head_copy.clone())
        .context("loading the audit signing key")?;
    Ok(Some(signer))
}
