//! The webhook sink: each alert is POSTed as JSON (the Alert contract) to a SOAR or chat
//! endpoint, from a bounded queue on its own thread, so a slow endpoint never slows the
//! pipeline. Failures retry with jittered exponential backoff (`backon`); an alert the
//! endpoint keeps refusing, or one that finds the queue full, goes to the dead letter
//! `<store>/deadletter/webhook-<run>.jsonl` with the reason — never dropped silently.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use idgw_schemas::{Alert, Detection, Severity};
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use super::webhook_format::{self as format, Format};
use crate::store::{Store, StoreError};

/// `[webhook]`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where alerts are POSTed; empty: off (`IDGW_WEBHOOK_URL`).
    pub url: String,
    /// Sent as `Authorization: Bearer …` when set (`IDGW_WEBHOOK_TOKEN`).
    pub bearer_token: String,
    /// Alerts waiting to be sent; beyond it, alerts are dead-lettered at once.
    pub queue: usize,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay (doubles each retry, with jitter), and the longest.
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// The payload: `json` (the Alert contract), `slack` (Block Kit, for an incoming
    /// webhook URL), `pagerduty` (Events API v2) or `ocsf` (a Detection Finding).
    pub format: Format,
    /// Signs each body (`X-Idgw-Signature`, HMAC-SHA256; docs/operations.md shows how to
    /// verify it); empty: unsigned (`IDGW_WEBHOOK_SIGNING_SECRET`).
    pub signing_secret: String,
    /// Only alerts at or above this severity are sent (`info` … `critical`).
    pub min_severity: Severity,
    /// Only these detections are sent; empty: all.
    pub detections: Vec<String>,
    /// PagerDuty's integration (routing) key, for `format = "pagerduty"`.
    pub pagerduty_routing_key: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            bearer_token: String::new(),
            queue: 10_000,
            max_retries: 6,
            min_delay_ms: 200,
            max_delay_ms: 10_000,
            timeout_ms: 5_000,
            format: Format::Json,
            signing_secret: String::new(),
            min_severity: Severity::Info,
            detections: Vec::new(),
            pagerduty_routing_key: String::new(),
        }
    }
}

/// Tokens and secrets never reach logs.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &str| if s.is_empty() { "<none>" } else { "<redacted>" };
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("bearer_token", &redact(&self.bearer_token))
            .field("format", &self.format)
            .field("signing_secret", &redact(&self.signing_secret))
            .field("min_severity", &self.min_severity)
            .field("detections", &self.detections)
            .field("pagerduty_routing_key", &redact(&self.pagerduty_routing_key))
            .finish_non_exhaustive()
    }
}

/// Webhook failures at start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The filters or the format cannot work.
    #[error("[webhook]: {0}")]
    Config(String),
}

#[derive(Serialize)]
struct Letter<'a> {
    reason: &'a str,
    detail: &'a str,
    url: &'a str,
    alert: &'a serde_json::value::RawValue,
    at: String,
}

struct DeadLetters {
    path: PathBuf,
    file: Option<fs_err::File>,
    url: String,
}

impl DeadLetters {
    fn write(&mut self, reason: &str, detail: &str, alert: &[u8]) -> Result<(), StoreError> {
        let raw: &serde_json::value::RawValue =
            serde_json::from_slice(alert).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
        let letter = Letter {
            reason,
            detail,
            url: &self.url,
            alert: raw,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let mut line = serde_json::to_vec(&letter).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
        line.push(b'\n');
        if self.file.is_none() {
            let file = fs_err::OpenOptions::new().create(true).append(true).open(&self.path)?;
            self.file = Some(file);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(&line)?;
            f.sync_data()?;
        }
        Ok(())
    }
}

/// One queued delivery: the alert (what a dead letter keeps) and the body to POST.
struct Queued {
    alert: Vec<u8>,
    body: Vec<u8>,
}

/// The running sink.
pub struct Webhook {
    config: WebhookConfig,
    tx: SyncSender<Queued>,
    thread: JoinHandle<()>,
    letters: Arc<std::sync::Mutex<DeadLetters>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").finish_non_exhaustive()
    }
}

impl Webhook {
    /// Starts the sender thread; `None` when no URL is configured.
    pub fn start(config: &WebhookConfig, store: &Store, metrics: Arc<Metrics>) -> Result<Option<Self>, WebhookError> {
        if config.url.trim().is_empty() {
            return Ok(None);
        }
        if let Some(d) = config
            .detections
            .iter()
            .find(|d| !Detection::ALL.iter().any(|x| x.as_str() == d.as_str()))
        {
            return Err(WebhookError::Config(format!("detections: {d:?} is not a detection")));
        }
        if config.format == Format::Pagerduty && config.pagerduty_routing_key.trim().is_empty() {
            return Err(WebhookError::Config(
                "format \"pagerduty\" needs pagerduty_routing_key".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        let run = crate::replay::run_id();
        let letters = Arc::new(std::sync::Mutex::new(DeadLetters {
            path: store.deadletter_dir().join(format!("webhook-{run}.jsonl")),
            file: None,
            // Scheme and host only: a Slack or PagerDuty URL is itself a credential.
            url: crate::layered::mask_url(&config.url),
        }));
        let (tx, rx) = mpsc::sync_channel::<Queued>(config.queue.max(1));
        let config_for_send = config.clone();
        let config = config.clone();
        let thread_letters = Arc::clone(&letters);
        let thread_metrics = Arc::clone(&metrics);
        let thread = std::thread::Builder::new()
            .name("webhook".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "webhook: no runtime; alerts go to the dead letter");
                        for q in rx {
                            letter(
                                &thread_letters,
                                &thread_metrics,
                                "webhook_unavailable",
                                &e.to_string(),
                                &q.alert,
                            );
                        }
                        return;
                    }
                };
                for q in rx {
                    match runtime.block_on(post(&client, &config, &q.body)) {
                        Ok(()) => {
                            thread_metrics.webhook_delivered.inc();
                        }
                        Err(e) => letter(&thread_letters, &thread_metrics, "webhook_failed", &e, &q.alert),
                    }
                }
            })
            .map_err(|e| WebhookError::Store(StoreError::Io(e)))?;
        Ok(Some(Webhook {
            config: config_for_send,
            tx,
            thread,
            letters,
            metrics,
        }))
    }

    /// Queues the alerts the filters let through; a full queue dead-letters them at once.
    pub fn send(&self, alerts: &[&Alert]) {
        let c = &self.config;
        for alert in alerts {
            if !format::wanted(alert, c.min_severity, &c.detections) {
                self.metrics.webhook_filtered.inc();
                continue;
            }
            let body = match format::body(c.format, alert, &c.pagerduty_routing_key) {
                Ok(b) => b,
                Err(e) => {
                    // Not reachable with the Alert type; said loudly if it ever is. The alert
                    // stays in alerts.jsonl and the alerts table.
                    self.metrics.webhook_failed.inc();
                    tracing::error!(alert = %alert.alert_id, error = %e, "alert not serializable for the webhook");
                    continue;
                }
            };
            // The dead letter keeps the alert, not the payload: a PagerDuty body carries
            // the routing key, a credential.
            let alert_json = match c.format {
                Format::Json => body.clone(),
                _ => serde_json::to_vec(alert).unwrap_or_default(),
            };
            match self.tx.try_send(Queued {
                alert: alert_json,
                body,
            }) {
                Ok(()) => {}
                Err(TrySendError::Full(q)) => letter(
                    &self.letters,
                    &self.metrics,
                    "webhook_queue_full",
                    "the webhook queue is full",
                    &q.alert,
                ),
                Err(TrySendError::Disconnected(q)) => letter(
                    &self.letters,
                    &self.metrics,
                    "webhook_stopped",
                    "the webhook sender stopped",
                    &q.alert,
                ),
            }
        }
    }

    /// Sends what is queued (retries included), then stops.
    pub fn finish(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

fn letter(letters: &std::sync::Mutex<DeadLetters>, metrics: &Metrics, reason: &str, detail: &str, body: &[u8]) {
    metrics.webhook_failed.inc();
    tracing::warn!(reason, detail, "alert dead-lettered by the webhook sink");
    let result = match letters.lock() {
        Ok(mut l) => l.write(reason, detail, body),
        Err(_) => Err(StoreError::WriterGone("webhook dead letter".into())),
    };
    if let Err(e) = result {
        // The last resort: the alert is still in alerts.jsonl and the alerts table.
        tracing::error!(error = %e, "could not write the webhook dead letter");
    }
}

/// One alert, with retries on 5xx, 429, 408 and transport errors.
async fn post(client: &reqwest::Client, config: &WebhookConfig, body: &[u8]) -> Result<(), String> {
    #[derive(Debug)]
    enum Failure {
        Retry(String),
        Final(String),
    }
    let attempt = || async {
        let mut req = client
            .post(&config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if !config.bearer_token.is_empty() {
            req = req.bearer_auth(&config.bearer_token);
        }
        if !config.signing_secret.is_empty() {
            // Signed at each attempt: a retry carries a fresh timestamp.
            let now = chrono::Utc::now().timestamp();
            req = req.header(format::TIMESTAMP_HEADER, now.to_string()).header(
                format::SIGNATURE_HEADER,
                format::signature(config.signing_secret.as_bytes(), now, body),
            );
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let status = r.status();
                let text = format!("HTTP {status}");
                if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                    Err(Failure::Retry(text))
                } else {
                    Err(Failure::Final(text))
                }
            }
            // Without the URL: a Slack or PagerDuty URL is itself a credential.
            Err(e) => Err(Failure::Retry(e.without_url().to_string())),
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(config.min_delay_ms))
        .with_max_delay(Duration::from_millis(config.max_delay_ms))
        .with_max_times(config.max_retries)
        .with_jitter();
    attempt
        .retry(backoff)
        .when(|f| matches!(f, Failure::Retry(_)))
        .await
        .map_err(|f| match f {
            Failure::Retry(t) => format!("{t} after {} retries", config.max_retries),
            Failure::Final(t) => t,
        })
}
