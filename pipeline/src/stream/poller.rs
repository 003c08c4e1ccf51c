//! The Okta System Log poller (reference.md §2): `GET /api/v1/logs` with `since` the first
//! time, then always the `Link: rel="next"` URL Okta returns (the poller never builds a
//! cursor); a page shorter than the limit means "caught up", so it waits before following
//! `next` again.
//! 429s wait for `X-Rate-Limit-Reset` and 5xx / dropped connections retry with jittered
//! backoff ([`crate::okta::http::send`]); when a page leaves few requests in the window,
//! the poller waits for the reset before asking again. Events repeated across pages or
//! restarts are dropped by uuid.
//!
//! Two ways to hand events on:
//! - **engine** (one process): the events go straight into a lane of this process; the
//!   `next` URL is stored in the lane's checkpoint with the engine state, so a restart
//!   resumes exactly where the store stopped.
//! - **produce**: the events go to the Kafka topic keyed by user, so many workers share one
//!   poller; the `next` URL is written (atomically) after the producer has flushed the page.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LINK};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::kafka_out::{DeliveryCount, send_waiting};
use super::lane::LaneId;
use super::metrics::Metrics;
use super::worker::{Worker, WorkerError, WorkerSummary};
use crate::config::PipelineConfig;
use crate::detect::checkpoint::write_atomically;
use crate::okta::credentials::{Credential, ServiceAppConfig};
use crate::okta::http::{self, RetryConfig};
use crate::okta::{OktaError, refusal};
use crate::store::Store;

/// `[poller]`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollerConfig {
    /// Poll the System Log (`IDGW_POLLER_ENABLED`).
    pub enabled: bool,
    /// `https://{org}.okta.com` (`OKTA_ORG_URL`).
    pub org_url: String,
    /// SSWS API token (`OKTA_API_TOKEN`); a service app is taken instead when configured.
    pub api_token: String,
    /// An OAuth service app with private_key_jwt (`OKTA_SERVICE_CLIENT_ID`,
    /// `OKTA_SERVICE_PRIVATE_KEY_FILE`, `OKTA_SERVICE_KEY_ID`); needs `okta.logs.read`.
    pub service_app: Option<ServiceAppConfig>,
    /// The first start reads events published this many minutes back.
    pub since_minutes: u64,
    /// Events per page (Okta allows up to 1000).
    pub limit: u32,
    /// Wait after a page shorter than `limit` (caught up) before asking again.
    pub empty_wait_ms: u64,
    /// When a page leaves this many requests or fewer in the rate-limit window, wait for
    /// its reset (Okta shares the window with every other client of the org).
    pub min_remaining: u32,
    /// Produce to `[kafka] topic` instead of feeding this process's engine
    /// (`IDGW_POLLER_PRODUCE`).
    pub produce: bool,
    /// How many recent uuids are remembered to drop repeats.
    pub dedup_window: usize,
    /// Retries, backoff and rate-limit waits of each request.
    pub retry: RetryConfig,
}

/// The API token never reaches logs.
impl std::fmt::Debug for PollerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.api_token.is_empty() {
            "<none>"
        } else {
            "<redacted>"
        };
        f.debug_struct("PollerConfig")
            .field("enabled", &self.enabled)
            .field("org_url", &self.org_url)
            .field("api_token", &token)
            .field("service_app", &self.service_app)
            .field("since_minutes", &self.since_minutes)
            .field("limit", &self.limit)
            .field("empty_wait_ms", &self.empty_wait_ms)
            .field("min_remaining", &self.min_remaining)
            .field("produce", &self.produce)
            .field("dedup_window", &self.dedup_window)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            enabled: false,
            org_url: String::new(),
            api_token: String::new(),
            service_app: None,
            since_minutes: 60,
            limit: 1000,
            empty_wait_ms: 5_000,
            min_remaining: 2,
            produce: false,
            dedup_window: 100_000,
            retry: RetryConfig::default(),
        }
    }
}

/// Poller failures that stop it (network trouble and Okta outages are waited out).
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// Okta refused (credentials, permissions, a cursor it no longer knows).
    #[error("System Log poller: {0}")]
    Okta(#[from] OktaError),
    /// The configuration cannot work.
    #[error("System Log poller: {0}")]
    Config(String),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// Producing to Kafka or writing the cursor.
    #[error("System Log poller: {0}")]
    Output(String),
}

/// One page of the System Log.
struct Page {
    body: Vec<u8>,
    next: Option<String>,
    /// Requests left in the window, and when it resets.
    remaining: Option<u32>,
    headers: HeaderMap,
}

/// The HTTP side.
struct LogClient {
    http: reqwest::Client,
    credential: Credential,
    retry: RetryConfig,
}

impl LogClient {
    fn new(config: &PollerConfig) -> Result<Self, PollerError> {
        let org = config.org_url.trim_end_matches('/');
        if org.is_empty() {
            return Err(PollerError::Config(
                "no org URL: set [poller] org_url or OKTA_ORG_URL".into(),
            ));
        }
        let credential = match &config.service_app {
            Some(app) => Credential::service_app(org, app)?,
            None if !config.api_token.is_empty() => Credential::Ssws(config.api_token.clone()),
            None => {
                return Err(PollerError::Config(
                    "no credential: set OKTA_API_TOKEN or a service app (OKTA_SERVICE_CLIENT_ID, OKTA_SERVICE_PRIVATE_KEY_FILE)"
                        .into(),
                ));
            }
        };
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| PollerError::Config(format!("HTTP client: {e}")))?;
        Ok(LogClient {
            http,
            credential,
            retry: config.retry.clone(),
        })
    }

    async fn page(&self, url: &str) -> Result<Page, OktaError> {
        let authorization = self.credential.header(&self.http, &self.retry).await?;
        let reply = http::send(&self.retry, || {
            self.http
                .get(url)
                .header(AUTHORIZATION, &authorization)
                .header(ACCEPT, "application/json")
        })
        .await?;
        if !reply.status.is_success() {
            if reply.status == reqwest::StatusCode::UNAUTHORIZED {
                self.credential.forget().await;
            }
            return Err(refusal(&reply, "System Log"));
        }
        let remaining = reply
            .headers
            .get("x-rate-limit-remaining")
            .and_then(|v| v.to_str().ok()?.trim().parse().ok());
        Ok(Page {
            next: next_link(&reply.headers),
            remaining,
            body: reply.body,
            headers: reply.headers,
        })
    }
}

/// The `rel="next"` URL of the `Link` headers (one header per link, or several in one).
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().split_once(';')?;
            let is_next = params
                .split(';')
                .any(|p| p.trim().replace(' ', "").eq_ignore_ascii_case("rel=\"next\""));
            let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            is_next.then(|| url.to_owned())
        })
}

/// The first URL: events since `since_minutes` ago, oldest first.
fn first_url(config: &PollerConfig) -> String {
    let since = chrono::Utc::now() - chrono::Duration::minutes(config.since_minutes as i64);
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!(
        "{}/api/v1/logs?since={}&sortOrder=ASCENDING&limit={}",
        config.org_url.trim_end_matches('/'),
        since.replace(':', "%3A"),
        config.limit.clamp(1, 1000)
    )
}

/// Remembers the last `cap` uuids.
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl RecentIds {
    fn new(cap: usize) -> Self {
        RecentIds {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// True when `id` is new.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

/// The uuid of a raw event, if it has one (those without go on, to be dead-lettered).
fn uuid_of(raw: &RawValue) -> Option<&str> {
    #[derive(Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        uuid: Option<&'a str>,
    }
    serde_json::from_str::<Id<'_>>(raw.get()).ok()?.uuid
}

/// Sleeps up to `d`, waking early when `shutdown` is set.
fn nap(d: Duration, shutdown: &AtomicBool) {
    let until = Instant::now() + d;
    while !shutdown.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
    }
}

/// Where pages go.
trait PageSink {
    /// Where to start: a stored `next` URL.
    fn cursor(&self) -> Option<String>;
    /// One page's new events, then the `next` URL that follows them.
    fn page(&mut self, events: &[&RawValue], next: &str) -> Result<(), PollerError>;
    /// Periodic durability; `caught_up`: the last page reached the head of the log.
    fn tick(&mut self, caught_up: bool) -> Result<(), PollerError>;
}

/// Polls until `shutdown` (or, with `until_caught_up`, the first page that reaches the head).
fn poll(
    config: &PollerConfig,
    sink: &mut dyn PageSink,
    metrics: &Metrics,
    shutdown: &AtomicBool,
    until_caught_up: bool,
) -> Result<(), PollerError> {
    let client = LogClient::new(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PollerError::Config(format!("runtime: {e}")))?;
    let mut url = sink.cursor().unwrap_or_else(|| first_url(config));
    let mut recent = RecentIds::new(config.dedup_window);
    let mut failures = 0u32;
    tracing::info!(url = %url, "polling the System Log");
    while !shutdown.load(Ordering::Relaxed) {
        metrics.turn();
        let page = match runtime.block_on(client.page(&url)) {
            Ok(p) => {
                failures = 0;
                p
            }
            Err(e) if e.retryable() => {
                // An outage longer than the request retries: wait it out, never skip ahead.
                failures += 1;
                let wait = Duration::from_secs(u64::from(failures.min(6)) * 5);
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "System Log unavailable");
                nap(wait, shutdown);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        metrics.poller_pages.inc();
        let events: Vec<&RawValue> = serde_json::from_slice(&page.body)
            .map_err(|e| OktaError::Unexpected(format!("System Log page is not a JSON array: {e}")))?;
        let fresh: Vec<&RawValue> = events
            .iter()
            .copied()
            .filter(|raw| uuid_of(raw).is_none_or(|id| recent.insert(id)))
            .collect();
        metrics.poller_duplicates.inc_by((events.len() - fresh.len()) as u64);
        let Some(next) = page.next.clone() else {
            // A bounded query ends without `next`; a polling one never does.
            tracing::warn!("the System Log answered without a next link; stopping the poller");
            sink.page(&fresh, &url)?;
            break;
        };
        sink.page(&fresh, &next)?;
        url = next;
        // A page shorter than the limit is the head of the log: caught up. Asking again at
        // once would spend the org's rate limit on pages of a few events.
        let caught_up = events.len() < config.limit.clamp(1, 1000) as usize;
        sink.tick(caught_up)?;
        if caught_up {
            if until_caught_up {
                break;
            }
            nap(Duration::from_millis(config.empty_wait_ms), shutdown);
        } else if page.remaining.is_some_and(|r| r <= config.min_remaining) {
            let wait = http::reset_wait(&page.headers);
            tracing::info!(
                wait_s = wait.as_secs(),
                "rate-limit window nearly used; waiting for its reset"
            );
            nap(wait, shutdown);
        }
    }
    Ok(())
}

/// Feeds a lane of this process.
struct EngineSink<'a> {
    worker: &'a mut Worker,
    id: LaneId,
    seq: i64,
    commit_every: Duration,
    last_commit: Instant,
}

impl PageSink for EngineSink<'_> {
    fn cursor(&self) -> Option<String> {
        self.worker.cursor(&self.id)
    }

    fn page(&mut self, events: &[&RawValue], next: &str) -> Result<(), PollerError> {
        for raw in events {
            self.worker.buffer(&self.id, self.seq, Some(raw.get().as_bytes()));
            self.seq += 1;
        }
        self.worker.process()?;
        self.worker.set_cursor(&self.id, next.to_owned());
        Ok(())
    }

    fn tick(&mut self, caught_up: bool) -> Result<(), PollerError> {
        // At the head of the log the lane has read what the System Log had: its watermark
        // then slides on with processing time (an event Okta persists more than the allowed
        // lateness behind the latest is late, as one over the bound always is). Pages of a
        // backlog are not idle: how long they take to fetch says nothing about lateness.
        self.worker.tick(|_, _| caught_up)?;
        if self.last_commit.elapsed() >= self.commit_every {
            self.last_commit = Instant::now();
            self.worker.commit()?;
        }
        // Surfaces a failure of the committer; the System Log has no offsets to commit.
        self.worker.committed()?;
        Ok(())
    }
}

/// Runs the poller into this process's engine until `shutdown`.
pub fn run_engine(
    store: &Store,
    config: Arc<PipelineConfig>,
    metrics: Arc<Metrics>,
    shutdown: &AtomicBool,
) -> Result<WorkerSummary, PollerError> {
    let mut worker = Worker::new(store, Arc::clone(&config), Arc::clone(&metrics))?;
    let id = LaneId::poller();
    worker.assign(vec![id.clone()])?;
    metrics.turn();
    let seq = worker.next_offset(&id).unwrap_or(0);
    let mut sink = EngineSink {
        worker: &mut worker,
        id,
        seq,
        commit_every: Duration::from_millis(config.kafka.commit_interval_ms.max(1)),
        last_commit: Instant::now(),
    };
    let outcome = poll(&config.poller, &mut sink, &metrics, shutdown, config.kafka.stop_at_end);
    if let Err(e) = &outcome {
        metrics.failed.store(true, Ordering::Relaxed);
        tracing::error!(error = %e, "the poller stopped on a failure");
    }
    outcome?;
    worker.commit_and_wait()?;
    worker.note_partitions();
    Ok(worker.finish())
}

#[derive(Serialize, Deserialize)]
struct CursorFile {
    next: String,
}

/// Produces to the Kafka topic.
struct ProduceSink {
    producer: ThreadedProducer<DeliveryCount>,
    topic: String,
    cursor_path: std::path::PathBuf,
}

impl PageSink for ProduceSink {
    fn cursor(&self) -> Option<String> {
        let bytes = std::fs::read(&self.cursor_path).ok()?;
        Some(serde_json::from_slice::<CursorFile>(&bytes).ok()?.next)
    }

    fn page(&mut self, events: &[&RawValue], next: &str) -> Result<(), PollerError> {
        for raw in events {
            let bytes = raw.get().as_bytes();
            let key = super::partition_key(bytes);
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic).payload(bytes);
            if let Some(k) = key.as_deref() {
                record = record.key(k.as_bytes());
            }
            send_waiting(&self.producer, record)
                .map_err(|e| PollerError::Output(format!("producing to {}: {e}", self.topic)))?;
        }
        // The cursor moves only once the page is acknowledged: a crash re-reads the page,
        // and the consumers drop the repeats by uuid.
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| PollerError::Output(format!("flushing to {}: {e}", self.topic)))?;
        let failed = self.producer.context().failures();
        if failed > 0 {
            return Err(PollerError::Output(format!(
                "{failed} deliveries to {} failed",
                self.topic
            )));
        }
        let doc = serde_json::to_vec(&CursorFile { next: next.to_owned() })
            .map_err(|e| PollerError::Output(e.to_string()))?;
        write_atomically(&self.cursor_path, &doc).map_err(|e| PollerError::Output(format!("cursor: {e}")))
    }

    fn tick(&mut self, _caught_up: bool) -> Result<(), PollerError> {
        Ok(())
    }
}

/// Holds `path`'s exclusive lock for as long as the returned file lives: one poller per
/// store produces, a second (a replica too many, a rolling update's new pod beside the old)
/// waits here as a standby until the first exits, and only then reads the cursor, so no
/// page is produced twice. `None` when `shutdown` came first.
fn leader_lock(path: &std::path::Path, shutdown: &AtomicBool) -> Result<Option<std::fs::File>, PollerError> {
    let err = |e: std::io::Error| PollerError::Output(format!("poller lock {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(err)?;
    let mut waiting = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                if waiting {
                    tracing::info!(lock = %path.display(), "the other poller has gone; this one produces now");
                }
                return Ok(Some(file));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                if !waiting {
                    tracing::warn!(lock = %path.display(), "another poller produces from this store; standing by");
                    waiting = true;
                }
                if shutdown.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                nap(Duration::from_millis(500), shutdown);
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
        }
    }
}

/// Runs the poller producing to `[kafka] topic` until `shutdown`.
pub fn run_producer(
    store: &Store,
    config: &PipelineConfig,
    metrics: &Metrics,
    shutdown: &AtomicBool,
) -> Result<(), PollerError> {
    let cursor_dir = store.root().join("checkpoints").join("okta");
    let Some(_leader) = leader_lock(&cursor_dir.join("poller.lock"), shutdown)? else {
        return Ok(());
    };
    let k = &config.kafka;
    k.check_connection().map_err(|e| PollerError::Output(e.to_string()))?;
    let client = k
        .client([("enable.idempotence", "true"), ("linger.ms", "5")], &k.producer)
        .map_err(|e| PollerError::Output(e.to_string()))?;
    let producer = client
        .create_with_context(DeliveryCount::default())
        .map_err(|e| PollerError::Output(format!("kafka producer: {e}")))?;
    let mut sink = ProduceSink {
        producer,
        topic: config.kafka.topic.clone(),
        cursor_path: cursor_dir.join("poller-cursor.json"),
    };
    poll(&config.poller, &mut sink, metrics, shutdown, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_read_from_one_or_several_headers() {
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            "<https://o.okta.com/api/v1/logs?limit=2>; rel=\"self\""
                .parse()
                .unwrap(),
        );
        h.append(
            LINK,
            "<https://o.okta.com/api/v1/logs?after=1_2&limit=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://o.okta.com/api/v1/logs?after=1_2&limit=2")
        );
        let mut one = HeaderMap::new();
        one.insert(
            LINK,
            "<https://a/self>; rel=\"self\", <https://a/next>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&one).as_deref(), Some("https://a/next"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn repeats_are_dropped_within_the_window() {
        let mut r = RecentIds::new(2);
        assert!(r.insert("a"));
        assert!(!r.insert("a"));
        assert!(r.insert("b"));
        assert!(r.insert("c"));
        // "a" left the window.
        assert!(r.insert("a"));
    }
}
