//! `bench-kafka EVENTS.ndjson [--brokers HOST:PORT] [--partitions P] [--consume-only] [--broker-pid PID] [--rate R] [--seconds S] [--commit-ms MS (latency run; default 2000)] [--restamp] [--drain-s S] [--skip-throughput] [--store DIR]`
//!
//! The streaming pipeline against a broker: librdkafka's mock cluster in this process by
//! default (it keeps only ~5 MB per partition: small inputs only), or a real broker
//! (`--brokers`, e.g. tansu; topics are created with the admin API).
//! The pipeline runs in this process with the same code `idgw pipeline run` runs, with the
//! librdkafka settings printed in the result.
//!
//! 1. **Throughput**: the topic is filled with every event of EVENTS first (not timed),
//!    then the pipeline reads it to the end; events/s from its first message to its last
//!    commit (the group join is reported apart). With `--consume-only`, the same topic is
//!    first read to its end by a bare consumer with the pipeline's librdkafka settings that
//!    does nothing with the messages: what the broker and librdkafka alone allow, and cost
//!    this process, on the machine.
//! 2. **Latency** (with `--rate`): events are produced at R events/s for S seconds while
//!    the pipeline runs; each alert on the alerts topic is matched to the produce time of
//!    the newest event of its evidence; p50/p99/p99.9 of that delay. `--restamp` sets each
//!    event's `published` to its produce time, as a live tenant's are (a windowed
//!    detection then waits for the watermark in real time: the quiet-stream case);
//!    `--drain-s` is how long alerts are awaited after the last event (5 s). `--store DIR`
//!    streams into that store (e.g. a copy of a replayed tenant's) instead of an empty one,
//!    so the gateway's per-user calls can be timed against it while files arrive.
//!
//! Prints one JSON document.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use idgw_pipeline::process::CpuSpan;
use idgw_pipeline::stream::{self, Metrics};
use idgw_pipeline::{PipelineConfig, Store};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// The allocator the `idgw` binary uses (src/main.rs): the pipeline measured here is the
/// one `idgw pipeline run` runs, allocator included (with glibc's, 7 % of the run's samples
/// were in `malloc` and `free`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    events: String,
    brokers: Option<String>,
    partitions: i32,
    rate: Option<f64>,
    seconds: f64,
    commit_ms: u64,
    /// librdkafka consumer properties for the pipeline, over its own (`--consumer K=V`).
    consumer: Vec<(String, String)>,
    /// librdkafka properties of the bench's own input producer (`--input-producer K=V`).
    input_producer: Vec<(String, String)>,
    /// Read the filled topic once without the pipeline first (`--consume-only`).
    consume_only: bool,
    /// The broker's process, whose CPU is reported over the same windows (`--broker-pid`).
    broker_pid: Option<u32>,
    /// Events stamped with their produce time in the latency run (`--restamp`).
    restamp: bool,
    /// Seconds alerts are awaited after the latency run's last event (`--drain-s`).
    drain_s: f64,
    /// Only the latency run (`--skip-throughput`).
    skip_throughput: bool,
    /// The latency run's store (`--store`); an empty temporary one without it.
    store: Option<std::path::PathBuf>,
}

const USAGE: &str = "usage: bench-kafka EVENTS.ndjson [--brokers HOST:PORT] [--partitions P] [--consume-only] [--broker-pid PID] [--rate R] [--seconds S] [--commit-ms MS (latency run; default 2000)] [--restamp] [--drain-s S] [--skip-throughput] [--store DIR] [--consumer KEY=VALUE]... [--input-producer KEY=VALUE]...\n\
    --restamp sets each event's `published` to its produce time in the latency run (a live\n\
    tenant's timing: windowed detections wait for the watermark in real time); --drain-s is\n\
    how long alerts are awaited after the last event (5); --skip-throughput runs only the\n\
    latency run; --store DIR streams the latency run into that store (an existing tenant's,\n\
    to time the gateway against it while the pipeline writes) instead of an empty one.\n\
    Without --brokers, librdkafka's mock cluster runs in this process. With --rate, the\n\
    latency run produces R events/s for S seconds after the throughput run. --consumer sets a\n\
    librdkafka property of the pipeline's consumer, as `[kafka.consumer]` does;\n\
    --input-producer one of the producer that fills the topic (linger.ms=2 unless set).\n\
    --consume-only first reads the filled topic with a consumer that only counts the messages,\n\
    with the pipeline's consumer settings: the broker's and librdkafka's share of the work.\n\
    --broker-pid reports that process's CPU (a broker on this machine) over the same windows.";

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        events: String::new(),
        brokers: None,
        partitions: 4,
        rate: None,
        seconds: 30.0,
        commit_ms: 2_000,
        consumer: Vec::new(),
        input_producer: Vec::new(),
        consume_only: false,
        broker_pid: None,
        restamp: false,
        drain_s: 5.0,
        skip_throughput: false,
        store: None,
    };
    while let Some(x) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match x.as_str() {
            "--brokers" => a.brokers = Some(val("--brokers")?),
            "--partitions" => a.partitions = val("--partitions")?.parse().map_err(|e| format!("{e}"))?,
            "--rate" => a.rate = Some(val("--rate")?.parse().map_err(|e| format!("{e}"))?),
            "--seconds" => a.seconds = val("--seconds")?.parse().map_err(|e| format!("{e}"))?,
            "--commit-ms" => a.commit_ms = val("--commit-ms")?.parse().map_err(|e| format!("{e}"))?,
            "--consumer" => a.consumer.push(property("--consumer", val("--consumer")?)?),
            "--consume-only" => a.consume_only = true,
            "--restamp" => a.restamp = true,
            "--skip-throughput" => a.skip_throughput = true,
            "--store" => a.store = Some(val("--store")?.into()),
            "--drain-s" => a.drain_s = val("--drain-s")?.parse().map_err(|e| format!("{e}"))?,
            "--broker-pid" => a.broker_pid = Some(val("--broker-pid")?.parse().map_err(|e| format!("{e}"))?),
            "--input-producer" => a
                .input_producer
                .push(property("--input-producer", val("--input-producer")?)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other} (--help lists them)")),
            other if a.events.is_empty() => a.events = other.to_owned(),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if a.events.is_empty() {
        return Err("no EVENTS.ndjson given (--help shows the usage)".into());
    }
    if let Some(pid) = a.broker_pid
        && idgw_pipeline::process::cpu_seconds_of(pid).is_none()
    {
        return Err(format!(
            "--broker-pid {pid}: no such process (its /proc/{pid}/stat cannot be read)"
        ));
    }
    Ok(a)
}

/// A `KEY=VALUE` librdkafka property given to `flag`.
fn property(flag: &str, kv: String) -> Result<(String, String), String> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{flag} {kv}: expected KEY=VALUE")),
    }
}

fn producer(brokers: &str, extra: &[(String, String)]) -> ThreadedProducer<DefaultProducerContext> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "1000000");
    for (k, v) in extra {
        c.set(k, v);
    }
    c.create().expect("producer")
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &str, payload: &[u8]) {
    let mut record = BaseRecord::to(topic).key(key.as_bytes()).payload(payload);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                record = r;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

fn config(a: &Args, brokers: &str, topic: &str, alerts: &str, commit_ms: u64) -> PipelineConfig {
    // `IDGW_*` settings apply as they do to `idgw pipeline run` (e.g.
    // IDGW_KAFKA_PROCESS_THREADS); what the benchmark sets below wins over them.
    let mut c = match PipelineConfig::load(None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-kafka: {e}");
            std::process::exit(2);
        }
    };
    c.kafka.consumer.extend(a.consumer.iter().cloned());
    c.kafka.brokers = brokers.to_owned();
    c.kafka.topic = topic.to_owned();
    c.kafka.alerts_topic = alerts.to_owned();
    c.kafka.deadletter_topic = String::new();
    c.kafka.group_id = format!("bench-{topic}");
    c.kafka.commit_interval_ms = commit_ms;
    c.vectors.enabled = false;
    c
}

/// `name`'s value in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// The pipeline's own timings: batches and commits (count, mean ms).
fn timings(m: &Metrics) -> serde_json::Value {
    let text = m.render();
    let mean = |n: &str| 1000.0 * sample(&text, &format!("{n}_sum")) / sample(&text, &format!("{n}_count"));
    serde_json::json!({
        "batches": sample(&text, "idgw_batch_seconds_count"),
        "batch_mean_ms": mean("idgw_batch_seconds"),
        "commits": sample(&text, "idgw_commit_seconds_count"),
        "commit_mean_ms": mean("idgw_commit_seconds"),
        "seal_mean_ms": mean("idgw_seal_seconds"),
        "message_age_mean_ms": mean("idgw_message_age_seconds"),
    })
}

/// Reads the pipeline's topic to its end (`expected` messages) in a group of its own, with
/// the pipeline's consumer properties, doing nothing with the messages but count them.
fn consume_only(
    cfg: &PipelineConfig,
    expected: usize,
    broker_pid: Option<u32>,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut c = ClientConfig::new();
    for (k, v) in stream::consumer::consumer_properties(cfg) {
        c.set(k, v);
    }
    c.set("group.id", format!("{}-consume-only", cfg.kafka.group_id))
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = c.create()?;
    consumer.subscribe(&[cfg.kafka.topic.as_str()])?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let mut first = None;
    let (mut n, mut bytes) = (0usize, 0usize);
    while n < expected {
        if Instant::now() > deadline {
            return Err(format!("consume-only: {n} of {expected} messages read in 10 minutes").into());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(|| Window::open(broker_pid));
                n += 1;
                bytes += m.payload_len();
            }
            Some(Err(e)) => eprintln!("consume-only: {e}"),
            None => {}
        }
    }
    let window = first.ok_or("consume-only: no message")?;
    let m = window.close();
    Ok(serde_json::json!({
        "events": n,
        "group_join_s": (window.opened - started).as_secs_f64(),
        "busy_s": m.busy_s,
        "events_per_s": n as f64 / m.busy_s,
        "mb_per_s": bytes as f64 / 1e6 / m.busy_s,
        // This process only (librdkafka's threads and the polling one), not the broker.
        "cpu_s": m.cpu_s,
        "broker_cpu_s": m.broker_cpu_s,
    }))
}

/// A measured window, opened at the first message: wall time, this process's CPU and the
/// broker's (with `--broker-pid`).
struct Window {
    opened: Instant,
    cpu: CpuSpan,
    broker_pid: Option<u32>,
    broker_start: Option<f64>,
}

/// What a [`Window`] measured when it was closed.
struct Measured {
    busy_s: f64,
    cpu_s: Option<f64>,
    broker_cpu_s: Option<f64>,
}

impl Window {
    fn open(broker_pid: Option<u32>) -> Self {
        Window {
            opened: Instant::now(),
            cpu: CpuSpan::start(),
            broker_pid,
            broker_start: broker_pid.and_then(idgw_pipeline::process::cpu_seconds_of),
        }
    }

    fn close(&self) -> Measured {
        let broker_end = self.broker_pid.and_then(idgw_pipeline::process::cpu_seconds_of);
        Measured {
            busy_s: self.opened.elapsed().as_secs_f64(),
            cpu_s: self.cpu.seconds().filter(|s| *s > 0.0),
            broker_cpu_s: self.broker_start.zip(broker_end).map(|(a, b)| b - a),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    idgw_benches::allocator::configure();
    // The pipeline's own logs, on stderr, when asked for (e.g. `IDGW_LOG=idgw_pipeline::stream=debug`).
    if let Ok(filter) = std::env::var("IDGW_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let a = args()?;
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(&a.events)?)
        .lines()
        .collect::<Result<_, _>>()?;
    let keyed: Vec<(String, &str)> = lines
        .iter()
        .map(|l| (stream::partition_key(l.as_bytes()).unwrap_or_default(), l.as_str()))
        .collect();
    let mock = match &a.brokers {
        Some(_) => None,
        None => Some(MockCluster::new(1)?),
    };
    let brokers = a
        .brokers
        .clone()
        .unwrap_or_else(|| mock.as_ref().map(|m| m.bootstrap_servers()).unwrap_or_default());
    let run = std::process::id();
    let admin: Option<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>> = match &mock {
        Some(_) => None,
        None => Some(ClientConfig::new().set("bootstrap.servers", &brokers).create()?),
    };
    let create = |name: &str, partitions: i32| {
        if let Some(m) = &mock {
            let _ = m.create_topic(name, partitions, 1);
            // The pipeline creates its repartition topic itself, but the mock cluster has
            // no CreateTopics request.
            if name.starts_with("bench.in.") || name.starts_with("bench.live.") {
                let _ = m.create_topic(&format!("{name}.by-ip"), partitions, 1);
            }
        }
        if let Some(admin) = &admin {
            let topic = rdkafka::admin::NewTopic::new(name, partitions, rdkafka::admin::TopicReplication::Fixed(1));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let opts = rdkafka::admin::AdminOptions::new();
            if let Err(e) = rt.block_on(admin.create_topics([&topic], &opts)) {
                eprintln!("creating {name}: {e}");
            }
        }
    };
    let mut out = serde_json::Map::new();
    out.insert(
        "broker".into(),
        if mock.is_some() {
            "librdkafka mock cluster".into()
        } else {
            brokers.clone().into()
        },
    );
    out.insert("partitions".into(), a.partitions.into());
    out.insert("events".into(), lines.len().into());

    if !a.skip_throughput {
        // 1. Throughput from a filled topic.
        let topic = format!("bench.in.{run}");
        create(&topic, a.partitions);
        let p = producer(&brokers, &a.input_producer);
        for (key, line) in &keyed {
            send(&p, &topic, key, line.as_bytes());
        }
        p.flush(Duration::from_secs(300))?;
        // Its polling thread would otherwise take CPU from the pipeline being measured.
        drop(p);
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path().join("store"))?;
        let mut cfg = config(&a, &brokers, &topic, "", 5_000);
        cfg.kafka.stop_at_end = true;
        out.insert(
            "consumer_properties".into(),
            stream::consumer::consumer_properties(&cfg)
                .into_iter()
                .filter(|(k, _)| k != "bootstrap.servers")
                .map(|(k, v)| (k, serde_json::Value::from(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        if a.consume_only {
            out.insert("consume_only".into(), consume_only(&cfg, lines.len(), a.broker_pid)?);
        }
        let metrics = Arc::new(Metrics::new());
        let started = Instant::now();
        let watch = Arc::clone(&metrics);
        let broker_pid = a.broker_pid;
        let first = std::thread::spawn(move || {
            while watch.events_in.get() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            Window::open(broker_pid)
        });
        let never = AtomicBool::new(false);
        let summary = stream::run(&store, Arc::new(cfg), Arc::clone(&metrics), &never)?;
        let window = first.join().map_err(|_| "watcher")?;
        let Measured {
            busy_s: busy,
            cpu_s: cpu,
            broker_cpu_s: broker,
        } = window.close();
        out.insert(
            "throughput".into(),
            serde_json::json!({
                "events_in": summary.counters.events_in,
                "balanced": summary.balanced,
                "alerts": summary.alerts,
                "group_join_s": (window.opened - started).as_secs_f64(),
                "busy_s": busy,
                "events_per_s": summary.counters.events_in as f64 / busy,
                // CPU of this process (the pipeline and librdkafka, not the broker) over the
                // same window: steadier than the wall-clock rate on a shared machine.
                "cpu_s": cpu,
                "events_per_cpu_s": cpu.map(|c| summary.counters.events_in as f64 / c),
                // The broker's CPU over the same window (with --broker-pid).
                "broker_cpu_s": broker,
                "pipeline": timings(&metrics),
            }),
        );
        drop(dir);
    }

    // 2. Event-to-alert latency at a fixed rate.
    if let Some(rate) = a.rate {
        let topic = format!("bench.live.{run}");
        let alerts = format!("bench.alerts.{run}");
        create(&topic, a.partitions);
        create(&alerts, 1);
        let dir = tempfile::tempdir()?;
        let store = Store::open(a.store.clone().unwrap_or_else(|| dir.path().join("store")))?;
        let cfg = config(&a, &brokers, &topic, &alerts, a.commit_ms);
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, m2, stop2) = (store.clone(), Arc::new(Metrics::new()), Arc::clone(&stop));
        let m_ready = Arc::clone(&m2);
        let m_live = Arc::clone(&m2);
        let pipeline = std::thread::spawn(move || stream::run(&s2, Arc::new(cfg), m2, &stop2));
        // Wait for the group join, so latency is not the join.
        let ready = Instant::now();
        while m_ready.partitions.get() < i64::from(a.partitions) && ready.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The alerts are read on a thread of their own, so an alert's arrival time is taken
        // when it arrives, however busy the producing loop below is.
        let reading = Arc::new(AtomicBool::new(true));
        let reader = {
            let (brokers, alerts, reading) = (brokers.clone(), alerts.clone(), Arc::clone(&reading));
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", format!("bench-reader-{run}"))
                .set("auto.offset.reset", "earliest")
                .set("fetch.wait.max.ms", "5")
                .create()?;
            // Assigned, not subscribed: no group join inside the measured delays.
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition_offset(&alerts, 0, rdkafka::Offset::Beginning)?;
            consumer.assign(&tpl)?;
            std::thread::spawn(move || {
                // (arrival, evidence, ms from the alert's produce timestamp to its arrival)
                let mut received: Vec<(Instant, Evidence, f64)> = Vec::new();
                while reading.load(Ordering::Relaxed) {
                    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
                        let at = Instant::now();
                        let in_kafka_ms = m
                            .timestamp()
                            .to_millis()
                            .map_or(f64::NAN, |t| (chrono::Utc::now().timestamp_millis() - t) as f64);
                        if let Some(evidence) = m.payload().and_then(evidence) {
                            received.push((at, evidence, in_kafka_ms));
                        }
                    }
                }
                received
            })
        };
        let total = ((rate * a.seconds) as usize).min(keyed.len());
        // Each event's uuid, found before the clock starts.
        let index: HashMap<String, usize> = keyed
            .iter()
            .take(total)
            .enumerate()
            .filter_map(|(i, (_, line))| Some((event_uuid(line)?, i)))
            .collect();
        let period = Duration::from_secs_f64(1.0 / rate);
        let p = producer(&brokers, &a.input_producer);
        let mut produced_at: Vec<Instant> = Vec::with_capacity(total);
        let begin = Instant::now();
        for (i, (key, line)) in keyed.iter().take(total).enumerate() {
            let due = begin + period * i as u32;
            let now = Instant::now();
            if now < due {
                std::thread::sleep(due - now);
            }
            produced_at.push(Instant::now());
            if a.restamp {
                send(&p, &topic, key, restamped(line).as_bytes());
            } else {
                send(&p, &topic, key, line.as_bytes());
            }
        }
        let late_s = (Instant::now() - begin).as_secs_f64() - a.seconds.min(total as f64 / rate);
        std::thread::sleep(Duration::from_secs_f64(a.drain_s));
        reading.store(false, Ordering::Relaxed);
        let received = reader.join().map_err(|_| "alert reader thread")?;
        stop.store(true, Ordering::Relaxed);
        let ran = pipeline.join().map_err(|_| "pipeline thread")??;
        // (detection, delay ms, when its deciding event was produced: s since the first, ms
        // from the alert's own produce time to its arrival)
        let timed: Vec<(&str, f64, f64, f64)> = received
            .iter()
            .filter_map(|(at, e, in_kafka_ms)| {
                let newest = e
                    .event_uuids
                    .iter()
                    .filter_map(|u| produced_at.get(*index.get(u)?))
                    .max()?;
                Some((
                    e.detection.as_str(),
                    at.saturating_duration_since(*newest).as_secs_f64() * 1000.0,
                    newest.saturating_duration_since(begin).as_secs_f64(),
                    *in_kafka_ms,
                ))
            })
            .collect();
        let mut slowest = timed.clone();
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
        let slowest: Vec<serde_json::Value> = slowest
            .iter()
            .take(10)
            .map(|(d, ms, at, in_kafka)| {
                serde_json::json!({"detection": d, "ms": ms, "produced_at_s": at, "alert_in_kafka_ms": in_kafka})
            })
            .collect();
        let matched: Vec<(&str, f64)> = timed.iter().map(|(d, ms, _, _)| (*d, *ms)).collect();
        let mut by_detection: std::collections::BTreeMap<&str, Vec<f64>> = std::collections::BTreeMap::new();
        for (d, ms) in &matched {
            by_detection.entry(d).or_default().push(*ms);
        }
        let by_detection: serde_json::Map<String, serde_json::Value> = by_detection
            .into_iter()
            .map(|(d, mut v)| {
                v.sort_by(f64::total_cmp);
                let summary =
                    serde_json::json!({"alerts": v.len(), "p50_ms": percentile(&v, 50.0), "max_ms": v.last()});
                (d.to_owned(), summary)
            })
            .collect();
        let mut delays: Vec<f64> = matched.iter().map(|(_, ms)| *ms).collect();
        delays.sort_by(f64::total_cmp);
        out.insert(
            "latency".into(),
            serde_json::json!({
                "rate_per_s": rate,
                "events_produced": total,
                "producer_behind_s": late_s,
                "pipeline_events_in": ran.counters.events_in,
                "pipeline_alerts": ran.alerts,
                "pipeline_alerts_produced": ran.alerts_produced,
                "alerts_received": received.len(),
                "alerts_matched": delays.len(),
                "p50_ms": percentile(&delays, 50.0),
                "p99_ms": percentile(&delays, 99.0),
                "p999_ms": percentile(&delays, 99.9),
                "max_ms": delays.last().copied().unwrap_or(f64::NAN),
                "by_detection": by_detection,
                "slowest": slowest,
                "pipeline": timings(&m_live),
            }),
        );
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// The `uuid` of an Okta event line.
/// The event with `published` set to now.
fn restamped(line: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    v["published"] = chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .into();
    v.to_string()
}

fn event_uuid(line: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Uuid {
        uuid: String,
    }
    serde_json::from_str::<Uuid>(line).ok().map(|u| u.uuid)
}

/// What the latency is measured by in an alert's payload.
#[derive(serde::Deserialize)]
struct Evidence {
    detection: String,
    event_uuids: Vec<String>,
}

fn evidence(payload: &[u8]) -> Option<Evidence> {
    serde_json::from_slice(payload).ok()
}
