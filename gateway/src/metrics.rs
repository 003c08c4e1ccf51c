//! The gateway's Prometheus metrics, served at `/metrics` on a listener of its own
//! (`idgw gateway serve --metrics ADDR`): tool calls by tool and outcome with their latency, authentication refusals by
//! reason, action records by status (counted where the audit log writes them, so the two
//! always agree), audit write latency, and the approvals waiting for a person.
//!
//! One gateway runs per process, and its parts (the HTTP guard, the tool router, the audit
//! writer) share no state object, so the metrics are one process-wide set.

use std::sync::{Arc, LazyLock, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::approvals::Approvals;

type Labels = Vec<(&'static str, String)>;

/// The set.
pub struct GatewayMetrics {
    registry: Registry,
    tool_calls: Family<Labels, Counter>,
    tool_seconds: Family<Labels, Histogram>,
    auth_failures: Family<Labels, Counter>,
    actions: Family<Labels, Counter>,
    audit_write_seconds: Histogram,
    approvals: Arc<OnceLock<Arc<Approvals>>>,
}

impl std::fmt::Debug for GatewayMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayMetrics").finish_non_exhaustive()
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<GatewayMetrics> = LazyLock::new(GatewayMetrics::new);

fn latency_histogram() -> Histogram {
    // 100 µs to about 6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

impl GatewayMetrics {
    fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(idgw_pipeline::stream::metrics::ProcessCollector::new()));
        let approvals: Arc<OnceLock<Arc<Approvals>>> = Arc::default();
        let m = GatewayMetrics {
            registry: Registry::default(),
            tool_calls: Family::default(),
            tool_seconds: Family::new_with_constructor(latency_histogram),
            auth_failures: Family::default(),
            actions: Family::default(),
            audit_write_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            approvals: Arc::clone(&approvals),
        };
        let r = root.sub_registry_with_prefix("idgw_gateway");
        r.register(
            "tool_calls",
            "MCP tool calls, by tool and outcome (ok, error, denied)",
            m.tool_calls.clone(),
        );
        r.register(
            "tool_call_seconds",
            "Time to answer an MCP tool call, by tool",
            m.tool_seconds.clone(),
        );
        r.register(
            "auth_failures",
            "Requests refused before any tool ran, by reason (no_token, invalid_token, issuer_unavailable, insufficient_scope)",
            m.auth_failures.clone(),
        );
        r.register(
            "actions",
            "Action outcomes written to the audit log, by action and status",
            m.actions.clone(),
        );
        r.register(
            "audit_write_seconds",
            "Time to append one audit record (durable records include the fsync)",
            m.audit_write_seconds.clone(),
        );
        r.register_collector(Box::new(Pending(approvals)));
        GatewayMetrics { registry: root, ..m }
    }

    /// Counts a tool call and its latency.
    pub fn tool_call(&self, tool: &str, outcome: &'static str, seconds: f64) {
        self.tool_calls
            .get_or_create(&vec![("tool", tool.to_owned()), ("outcome", outcome.to_owned())])
            .inc();
        self.tool_seconds
            .get_or_create(&vec![("tool", tool.to_owned())])
            .observe(seconds);
    }

    /// Counts a refused request; `reason` is one of a few fixed names.
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    /// Counts an action outcome record.
    pub fn action(&self, action: &str, status: &str) {
        self.actions
            .get_or_create(&vec![("action", action.to_owned()), ("status", status.to_owned())])
            .inc();
    }

    /// Records one audit append.
    pub fn audit_write(&self, seconds: f64) {
        self.audit_write_seconds.observe(seconds);
    }

    /// The approvals whose pending requests `/metrics` counts.
    pub fn watch_approvals(&self, approvals: Arc<Approvals>) {
        let _ = self.approvals.set(approvals);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `idgw_gateway_approvals_pending`, counted at each scrape.
#[derive(Debug)]
struct Pending(Arc<OnceLock<Arc<Approvals>>>);

impl Collector for Pending {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(approvals) = self.0.get() else { return Ok(()) };
        let gauge = ConstGauge::new(i64::try_from(approvals.pending().len()).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "approvals_pending",
            "Action requests waiting for a person's approval (unexpired)",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

/// `/metrics`.
pub async fn serve() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        METRICS.render(),
    )
}
