//! `idgw pipeline run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use clap::{Args, Subcommand};
use idgw_pipeline::stream::{self, Metrics, WorkerSummary};
use idgw_pipeline::{PipelineConfig, Store};

/// The streaming pipeline.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(subcommand)]
    command: PipelineCommand,
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    Run(RunArgs),
}

/// Run the pipeline continuously: Kafka or the Okta System Log in, the store, alerts out.
///
/// Kafka: joins the consumer group [kafka] group_id on the topic [kafka] topic (Okta LogEvents as
/// JSON, keyed by user id) at the brokers [kafka] brokers (or KAFKA_BROKERS). Each partition
/// gets its own detection engine and checkpoint in <STORE>/checkpoints/kafka/; offsets are
/// committed only after what they produced is durable, so a crash (even SIGKILL) loses and
/// duplicates nothing in the store, and a partition that moves to another worker takes its
/// state along. Alerts go to <STORE>/alerts.jsonl, the alerts table, the [kafka]
/// alerts_topic and the [webhook] url; rejected records to <STORE>/deadletter/ and the
/// [kafka] deadletter_topic.
///
/// Okta System Log ([poller] enabled, or IDGW_POLLER_ENABLED=true; OKTA_ORG_URL with
/// OKTA_API_TOKEN or a service app): follows the API's `next` links, waiting out rate
/// limits and outages. Alone, it feeds this process's engine and keeps its cursor in the
/// checkpoint; with [poller] produce = true it produces to the [kafka] topic (keyed by user)
/// for every worker of the group, this one included.
///
/// The admin port ([admin] listen, default 127.0.0.1:9464) serves /metrics (Prometheus) and
/// /healthz. SIGTERM or Ctrl-C drains: what was read is processed, written, checkpointed and
/// committed, and the process exits 0 within [admin] shutdown_deadline_s.
///
/// Examples:
///   KAFKA_BROKERS=127.0.0.1:9092 idgw pipeline run --config idgw.toml --store ./store
///   IDGW_POLLER_ENABLED=true OKTA_ORG_URL=https://acme.okta.com OKTA_API_TOKEN=… \
///     idgw pipeline run --store ./store
#[derive(Debug, Args)]
struct RunArgs {
    /// Configuration (TOML; see deploy/config.example.toml). IDGW_* and KAFKA_BROKERS
    /// override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The store directory (created if missing). Several workers may share one.
    #[arg(long, value_name = "DIR", env = "IDGW_STORE")]
    store: PathBuf,
    /// Stop once every owned partition has been read to its end, or the poller is caught
    /// up (draining as on SIGTERM): for backfills and benchmark runs.
    #[arg(long)]
    until_end: bool,
    /// Print the exit summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PipelineArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PipelineCommand::Run(args) => run_stream(args),
    }
}

fn run_stream(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = PipelineConfig::load(args.config.as_deref()).context("loading configuration")?;
    config.kafka.stop_at_end |= args.until_end;
    let poller_alone = config.poller.enabled && !config.poller.produce;
    if !config.kafka.enabled() && !poller_alone {
        anyhow::bail!(
            "nothing to read: set [kafka] brokers (or KAFKA_BROKERS), or enable the System Log poller \
             ([poller] enabled, or IDGW_POLLER_ENABLED=true with OKTA_ORG_URL and OKTA_API_TOKEN)"
        );
    }
    let store = Store::open(&args.store).with_context(|| format!("opening store {}", args.store.display()))?;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let shutdown = Arc::new(AtomicBool::new(false));
    let deadline = Duration::from_secs(config.admin.shutdown_deadline_s.max(1));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the admin runtime")?;
    if !config.admin.listen.trim().is_empty() {
        let addr: SocketAddr = config
            .admin
            .listen
            .parse()
            .with_context(|| format!("[admin] listen = {:?} is not an address", config.admin.listen))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("binding the admin port {addr}"))?;
        let bound = listener.local_addr()?;
        eprintln!("admin: http://{bound}/metrics and /healthz");
        let app = admin_router(Arc::clone(&metrics), config.kafka.commit_interval_ms);
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the admin server stopped");
            }
        });
    }
    let signalled = Arc::clone(&shutdown);
    runtime.spawn(async move {
        wait_for_signal().await;
        eprintln!("stopping: draining, checkpointing and committing");
        signalled.store(true, Ordering::Relaxed);
    });

    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<WorkerSummary, stream::StreamError>>();
    let thread_store = store.clone();
    let thread_config = Arc::clone(&config);
    let thread_metrics = Arc::clone(&metrics);
    let thread_shutdown = Arc::clone(&shutdown);
    let pipeline = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            let result = stream::run(&thread_store, thread_config, thread_metrics, &thread_shutdown);
            let _ = done_tx.send(result);
        })
        .context("starting the pipeline thread")?;

    // Wait for the pipeline; once a stop is asked for, for at most the deadline.
    use std::sync::mpsc::RecvTimeoutError;
    let result = loop {
        let stopping = shutdown.load(Ordering::Relaxed);
        let wait = if stopping { deadline } else { Duration::from_millis(200) };
        match done_rx.recv_timeout(wait) {
            Ok(result) => break result,
            Err(RecvTimeoutError::Timeout) if stopping => anyhow::bail!(
                "the drain did not finish within {}s; the next start resumes from the last checkpoints",
                deadline.as_secs()
            ),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // It panicked; it ends before the exit handlers run (see below).
                let _ = pipeline.join();
                anyhow::bail!("the pipeline thread stopped")
            }
        }
    };
    // The thread has sent its result and is ending: wait for it. Returning from `main` runs
    // the C libraries' exit handlers (OpenSSL's cleanup, linked for librdkafka), and a thread
    // still tearing down its own OpenSSL state beside them corrupted the C heap: glibc aborted
    // about one stop in eighty, after everything was durable, with "malloc_consolidate():
    // invalid chunk size" (core dump: the main thread in OPENSSL_cleanup, this one in its
    // thread-exit frees).
    let _ = pipeline.join();
    runtime.shutdown_timeout(Duration::from_secs(1));
    let summary = result.context("pipeline")?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let c = summary.counters;
        println!(
            "stopped: {} in = {} stored + {} dead-lettered + {} duplicates ({}); {} alerts new to {}, {} commits",
            c.events_in,
            c.events_ok,
            c.deadlettered,
            c.duplicates,
            if summary.balanced { "balanced" } else { "NOT balanced" },
            summary.alerts,
            store.alerts_jsonl().display(),
            summary.commits
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn admin_router(metrics: Arc<Metrics>, commit_interval_ms: u64) -> Router {
    let for_metrics = Arc::clone(&metrics);
    // Healthy while the loop turns: a poll returns at least every batch wait, and a commit
    // may hold it for a while.
    let stale_ms = (commit_interval_ms as i64).max(1_000) * 10;
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = Arc::clone(&for_metrics);
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        m.render(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let m = Arc::clone(&metrics);
                async move {
                    if m.healthy(stale_ms) {
                        (StatusCode::OK, "ok\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
                    }
                }
            }),
        )
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
