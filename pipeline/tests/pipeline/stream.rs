//! Streaming mode against librdkafka's mock cluster (a real Kafka protocol implementation
//! inside librdkafka, no server needed): consumer group, batches into the lanes, the store,
//! alerts and dead letters on their topics, checkpoints per partition, restart and resume.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use idgw_pipeline::source::file::Input;
use idgw_pipeline::stream::{self, Metrics, WorkerSummary};
use idgw_pipeline::{PipelineConfig, Store};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::golden::golden_dir;
use super::support::Fixture;

/// Okta events of several golden scenarios, in event-time order, then one event a day later
/// that moves the watermark past all of them (a live tenant always has later activity).
fn scenario_lines() -> Vec<String> {
    let mut lines: Vec<(String, String)> = Vec::new();
    for name in [
        "brute_force",
        "admin_privilege_grant",
        "mfa_fatigue",
        "impossible_travel",
        "threat_insight",
    ] {
        let file = std::fs::File::open(golden_dir().join(name).join("events.ndjson.gz")).unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(file).read_to_string(&mut text).unwrap();
        for line in text.lines() {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if name == "threat_insight" {
                // Only the ThreatInsight hit (an alert on a source, not a user), under a
                // uuid of its own: the folders share a seed, so their ordinary events share
                // uuids and would be duplicates.
                if v["eventType"] != "security.threat.detected" {
                    continue;
                }
                v["uuid"] = "7e57e57e-0000-4000-8000-00000000a1e7".into();
            }
            lines.push((v["published"].as_str().unwrap().to_owned(), v.to_string()));
        }
    }
    lines.sort();
    let last = lines.last().unwrap().0.clone();
    let later = chrono::DateTime::parse_from_rfc3339(&last).unwrap() + chrono::Duration::days(1);
    let later = later.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let tick = super::support::event("11111111-2222-4333-8444-555555555555", "user.session.start", &later);
    lines.push((later, tick.to_string()));
    lines.into_iter().map(|(_, l)| l).collect()
}

fn key_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    v["actor"]["id"].as_str().unwrap_or("none").to_owned()
}

/// Messages keyed by whose event each line is, as Okta events are produced to the topic.
fn keyed(lines: &[String]) -> Vec<(Option<String>, Option<Vec<u8>>)> {
    lines
        .iter()
        .map(|l| (Some(key_of(l)), Some(l.as_bytes().to_vec())))
        .collect()
}

fn produce(brokers: &str, topic: &str, messages: &[(Option<String>, Option<Vec<u8>>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for (key, payload) in messages {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = key {
            record = record.key(k.as_bytes());
        }
        if let Some(p) = payload {
            record = record.payload(p.as_slice());
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn config(brokers: &str) -> PipelineConfig {
    let mut c = PipelineConfig::default();
    c.kafka.brokers = brokers.to_owned();
    c.kafka.commit_interval_ms = 200;
    // The mock cluster answers at once; keep group joins short.
    c.kafka.consumer.insert("session.timeout.ms".into(), "6000".into());
    c.vectors.enabled = false;
    c
}

/// Runs a worker until `done` says so (or 90 s pass), then drains and returns its summary.
fn run_until(store: &Store, config: PipelineConfig, done: impl Fn(&Metrics) -> bool) -> WorkerSummary {
    let metrics = Arc::new(Metrics::new());
    let shutdown = Arc::new(AtomicBool::new(false));
    let (s, m, stop) = (store.clone(), Arc::clone(&metrics), Arc::clone(&shutdown));
    let worker = std::thread::spawn(move || stream::run(&s, Arc::new(config), m, &stop));
    let started = Instant::now();
    while !done(&metrics) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the stream did not get there in 90 s:\n{}",
            metrics.render()
        );
        assert!(!worker.is_finished(), "the worker stopped early");
        std::thread::sleep(Duration::from_millis(50));
    }
    shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
    worker.join().unwrap().unwrap()
}

/// The `alert_id` of an alert as JSON.
fn alert_id(json: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(json).unwrap()["alert_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn jsonl_ids(store: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(store.join("alerts.jsonl")).unwrap_or_default();
    text.lines().map(|l| alert_id(l.as_bytes())).collect()
}

fn count(store: &Store, sql: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let batches = rt.block_on(idgw_pipeline::query::query(store, sql)).unwrap();
    let col = batches[0].column(0);
    datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(col).value(0)
}

/// A message read back: payload and headers.
type Record = (Vec<u8>, Vec<(String, String)>);

fn read_topic(brokers: &str, topic: &str, expect: usize) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let started = Instant::now();
    while out.len() < expect && started.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut headers: Vec<(String, String)> = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            // The message key, beside the headers, under a name no header uses.
            headers.push((
                "(key)".to_owned(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            ));
            out.push((m.payload().unwrap_or_default().to_vec(), headers));
        }
    }
    out
}

#[test]
fn a_kafka_stream_lands_in_the_store_once_with_alerts_and_dead_letters_on_their_topics() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("okta.logs", 1, 1).unwrap();
    // The mock cluster has no CreateTopics: the repartition topic is made here.
    cluster.create_topic("okta.logs.by-ip", 1, 1).unwrap();
    let lines = scenario_lines();
    let mut messages = keyed(&lines);
    // A duplicate delivery, a record that is not JSON, and a message without a payload.
    messages.insert(5, messages[2].clone());
    messages.insert(9, (Some("x".into()), Some(b"{not json".to_vec())));
    messages.insert(12, (Some("x".into()), None));
    produce(&brokers, "okta.logs", &messages);

    // The same events replayed from a file: the reference alert set.
    let fx = Fixture::new();
    let file = fx.dir.path().join("events.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let reference = Store::open(fx.dir.path().join("reference")).unwrap();
    let mut quiet = |_: &_| {};
    let replayed =
        idgw_pipeline::replay(&[Input::Path(file)], &reference, &PipelineConfig::default(), &mut quiet).unwrap();
    // The scenarios share some events (same generator seed): stored once either way.
    let unique = replayed.events_ok;
    let expected: BTreeSet<String> = jsonl_ids(reference.root()).into_iter().collect();
    assert!(expected.len() >= 4, "the scenarios raise alerts: {expected:?}");

    let store = Store::open(fx.store_path()).unwrap();
    let total = messages.len() as u64;
    let summary = run_until(&store, config(&brokers), |m| m.events_in.get() >= total);
    let c = summary.counters;
    assert_eq!(c.events_in, total);
    assert_eq!(c.events_ok, unique);
    assert_eq!((c.deadlettered, c.duplicates), (2, replayed.duplicates + 1));
    assert!(summary.balanced);

    let got: Vec<String> = jsonl_ids(store.root());
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), got_set.len(), "alerts.jsonl holds each alert once");
    assert_eq!(got_set, expected, "the stream raises what the replay raises");
    assert_eq!(count(&store, "SELECT count(*) FROM events"), unique as i64);
    assert_eq!(
        count(&store, "SELECT count(DISTINCT event_id) FROM events"),
        unique as i64
    );
    assert_eq!(count(&store, "SELECT count(*) FROM alerts"), expected.len() as i64);
    assert!(count(&store, "SELECT count(*) FROM identity_state") > 0);
    assert!(
        store
            .root()
            .join("checkpoints/kafka/kafka-okta.logs.0.json.zst")
            .exists()
    );
    let letters = std::fs::read_dir(store.deadletter_dir()).unwrap().count();
    assert_eq!(letters, 1, "one dead-letter file for the one cycle with rejects");

    let alerts = read_topic(&brokers, "idgw.alerts", expected.len());
    let on_topic: BTreeSet<String> = alerts.iter().map(|(p, _)| alert_id(p)).collect();
    assert_eq!(on_topic, expected, "every alert is on the alerts topic");
    // Keyed by user, else by source: a source's alerts share a partition, not all of them
    // the empty key's.
    let mut by_source = 0;
    for (payload, headers) in &alerts {
        let a: serde_json::Value = serde_json::from_slice(payload).unwrap();
        let key = &headers.iter().find(|(k, _)| k == "(key)").unwrap().1;
        let want = a["user_id"].as_str().or(a["src_ip"].as_str()).unwrap_or("");
        assert_eq!(key, want, "{a}");
        by_source += usize::from(a["user_id"].is_null() && !key.is_empty());
    }
    assert!(by_source > 0, "an alert on a source (ThreatInsight) is keyed by it");
    let dead = read_topic(&brokers, "idgw.deadletter", 2);
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].0, b"{not json", "the raw bytes as they came");
    let reasons: Vec<&str> = dead
        .iter()
        .map(|(_, h)| {
            h.iter()
                .find(|(k, _)| k == "idgw.reason")
                .map(|(_, v)| v.as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(reasons, ["not_json", "not_json"]);
    assert!(dead[0].1.iter().any(|(k, v)| k == "idgw.source.offset" && v == "9"));
}

#[test]
fn a_second_run_resumes_from_the_partition_checkpoints_and_raises_nothing_twice() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("okta.logs", 3, 1).unwrap();
    // The mock cluster has no CreateTopics: the repartition topic is made here.
    cluster.create_topic("okta.logs.by-ip", 3, 1).unwrap();
    let mut seen = std::collections::HashSet::new();
    let lines: Vec<String> = scenario_lines()
        .into_iter()
        .filter(|l| seen.insert(serde_json::from_str::<serde_json::Value>(l).unwrap()["uuid"].to_string()))
        .collect();
    let half = lines.len() / 2;
    let fx = Fixture::new();
    let store = Store::open(fx.store_path()).unwrap();

    produce(&brokers, "okta.logs", &keyed(&lines[..half]));
    let first = run_until(&store, config(&brokers), |m| m.events_in.get() >= half as u64);
    assert_eq!(first.counters.events_ok, half as u64);
    let after_first: BTreeSet<String> = jsonl_ids(store.root()).into_iter().collect();

    produce(&brokers, "okta.logs", &keyed(&lines[half..]));
    let rest = (lines.len() - half) as u64;
    let second = run_until(&store, config(&brokers), |m| m.events_in.get() >= rest);
    assert_eq!(second.counters.events_in, rest, "the second run reads only what is new");
    assert_eq!(second.counters.duplicates, 0);

    assert_eq!(count(&store, "SELECT count(*) FROM events"), lines.len() as i64);
    let ids = jsonl_ids(store.root());
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), set.len(), "no alert twice");
    assert!(set.is_superset(&after_first));
    assert_eq!(count(&store, "SELECT count(*) FROM alerts"), set.len() as i64);
    let checkpoints = std::fs::read_dir(store.root().join("checkpoints/kafka"))
        .unwrap()
        .count();
    assert!(checkpoints >= 2, "one checkpoint per partition that saw events");
}

#[test]
fn partitions_run_in_parallel_raise_and_store_what_they_do_one_after_another() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("okta.logs", 4, 1).unwrap();
    // The mock cluster has no CreateTopics: the repartition topic is made here.
    cluster.create_topic("okta.logs.by-ip", 4, 1).unwrap();
    let messages = keyed(&scenario_lines());
    produce(&brokers, "okta.logs", &messages);
    let total = messages.len() as u64;
    let fx = Fixture::new();

    // The same topic read by two groups: the partitions one after another, then in parallel.
    let mut runs = Vec::new();
    for threads in [1, 4] {
        let store = Store::open(fx.dir.path().join(format!("threads-{threads}"))).unwrap();
        let mut c = config(&brokers);
        c.kafka.group_id = format!("idgw-threads-{threads}");
        c.kafka.process_threads = threads;
        // To the end of the input and of the repartition topic, so that both runs' source
        // lanes have judged every attempt.
        c.kafka.stop_at_end = true;
        let summary = stream::run(&store, Arc::new(c), Arc::new(Metrics::new()), &AtomicBool::new(false)).unwrap();
        assert!(summary.balanced);
        assert_eq!(
            summary.partitions.len(),
            8,
            "one worker owns every partition, of the input and of the repartition topic"
        );
        let alerts: BTreeSet<String> = jsonl_ids(store.root()).into_iter().collect();
        runs.push((
            summary.counters,
            alerts,
            count(&store, "SELECT count(DISTINCT event_id) FROM events"),
        ));
    }
    let (serial, parallel) = (&runs[0], &runs[1]);
    assert_eq!(serial.0.events_in, total);
    assert!(!serial.1.is_empty(), "the scenarios raise alerts");
    assert_eq!(parallel.0, serial.0, "the same counters");
    assert_eq!(parallel.1, serial.1, "the same alerts");
    assert_eq!(parallel.2, serial.2, "the same events stored");
}

/// A webhook endpoint that answers 503 to the first `fail` requests, then 200; it keeps
/// the bodies it accepted.
fn webhook_endpoint(fail: usize) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let (url, got, _) = webhook_endpoint_with_heads(fail);
    (url, got)
}

/// A webhook receiver keeping each accepted body and, beside it, its request headers
/// (lower-cased names).
#[allow(clippy::type_complexity)]
fn webhook_endpoint_with_heads(
    fail: usize,
) -> (
    String,
    Arc<std::sync::Mutex<Vec<String>>>,
    Arc<std::sync::Mutex<Vec<BTreeMap<String, String>>>>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = Arc::clone(&got);
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep_heads = Arc::clone(&heads);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            let mut head = BTreeMap::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    head.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let status = if n < fail { "503 Service Unavailable" } else { "200 OK" };
            if n >= fail {
                keep.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                keep_heads.lock().unwrap().push(head);
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, got, heads)
}

/// The webhook sends only what passes its filters, signs every body so the receiver can
/// check it, and speaks PagerDuty's Events v2 when told to.
/// The scenario's events on a one-partition `okta.logs` of a fresh mock cluster, keyed by
/// user: the cluster (keep it alive), its bootstrap address and the lines.
fn scenario_on_mock() -> (MockCluster<'static, DefaultProducerContext>, String, Vec<String>) {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("okta.logs", 1, 1).unwrap();
    // The mock cluster has no CreateTopics: the repartition topic is made here.
    cluster.create_topic("okta.logs.by-ip", 1, 1).unwrap();
    let lines = scenario_lines();
    produce(
        &brokers,
        "okta.logs",
        &lines
            .iter()
            .map(|l| (Some(key_of(l)), Some(l.as_bytes().to_vec())))
            .collect::<Vec<_>>(),
    );
    (cluster, brokers, lines)
}

#[test]
fn the_webhook_filters_signs_and_formats() {
    use idgw_pipeline::stream::webhook_format::{self, Format};
    use idgw_schemas::Severity;
    let (_cluster, brokers, lines) = scenario_on_mock();
    let fx = Fixture::new();
    let n = lines.len() as u64;

    let (url, got, heads) = webhook_endpoint_with_heads(0);
    let store = Store::open(fx.dir.path().join("signed")).unwrap();
    let mut c = config(&brokers);
    c.webhook.url = url;
    c.webhook.signing_secret = "whsec-test".into();
    c.webhook.min_severity = Severity::High;
    run_until(&store, c.clone(), |m| m.events_in.get() >= n);
    let stored: Vec<serde_json::Value> = std::fs::read_to_string(store.root().join("alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let high: BTreeSet<String> = stored
        .iter()
        .filter(|a| a["severity"] == "high" || a["severity"] == "critical")
        .map(|a| a["alert_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !high.is_empty() && high.len() < stored.len(),
        "the scenario has both kinds"
    );
    let bodies = got.lock().unwrap().clone();
    let delivered: BTreeSet<String> = bodies.iter().map(|b| alert_id(b.as_bytes())).collect();
    assert_eq!(delivered, high, "only high and critical alerts are sent");
    let now = chrono::Utc::now().timestamp();
    for (body, head) in bodies.iter().zip(heads.lock().unwrap().iter()) {
        let ts: i64 = head[webhook_format::TIMESTAMP_HEADER].parse().unwrap();
        let sig = &head[webhook_format::SIGNATURE_HEADER];
        assert!(
            webhook_format::verify(b"whsec-test", ts, body.as_bytes(), sig, now, 300),
            "{head:?}"
        );
        assert!(!webhook_format::verify(
            b"other-secret",
            ts,
            body.as_bytes(),
            sig,
            now,
            300
        ));
    }

    let (url, got, _) = webhook_endpoint_with_heads(0);
    let store = Store::open(fx.dir.path().join("pagerduty")).unwrap();
    let mut pd = c.clone();
    pd.kafka.group_id = "pagerduty".into();
    pd.webhook.url = url;
    pd.webhook.format = Format::Pagerduty;
    pd.webhook.pagerduty_routing_key = "R0UT1NGKEY".into();
    run_until(&store, pd, |m| m.events_in.get() >= n);
    let events: Vec<serde_json::Value> = got
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let keys: BTreeSet<String> = events
        .iter()
        .map(|e| e["dedup_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, high, "one PagerDuty event per alert, deduplicated by alert id");
    for e in &events {
        assert_eq!(e["routing_key"], "R0UT1NGKEY");
        assert_eq!(e["event_action"], "trigger");
        assert!(
            matches!(e["payload"]["severity"].as_str(), Some("critical" | "error")),
            "{e}"
        );
    }
}

#[test]
fn alerts_reach_the_webhook_through_retries_and_a_dead_endpoint_dead_letters_them() {
    let (_cluster, brokers, lines) = scenario_on_mock();
    let fx = Fixture::new();

    let (url, got) = webhook_endpoint(3);
    let store = Store::open(fx.dir.path().join("up")).unwrap();
    let mut c = config(&brokers);
    c.webhook.url = url;
    c.webhook.min_delay_ms = 10;
    c.webhook.max_delay_ms = 50;
    let n = lines.len() as u64;
    let summary = run_until(&store, c.clone(), |m| m.events_in.get() >= n);
    let ids: BTreeSet<String> = jsonl_ids(store.root()).into_iter().collect();
    assert_eq!(summary.alerts as usize, ids.len());
    let delivered: BTreeSet<String> = got.lock().unwrap().iter().map(|b| alert_id(b.as_bytes())).collect();
    assert_eq!(delivered, ids, "every alert delivered, the first three after retries");

    // A suppression on one of those detections: its alerts are stored and marked, nobody
    // is paged for them; the rest still arrive.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(store.root().join("alerts.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let quiet_detection = first["detection"].as_str().unwrap().to_owned();
    let store = Store::open(fx.dir.path().join("quiet")).unwrap();
    let suppression = idgw_pipeline::detect::tuning::Suppression {
        id: "sup-test".into(),
        detection: Some(quiet_detection.clone()),
        user: None,
        ip: None,
        asn: None,
        country: None,
        reason: "known and accepted".into(),
        owner: "soc-lead@example.com".into(),
        expires: "2999-01-01T00:00:00Z".parse().unwrap(),
    };
    idgw_pipeline::detect::tuning::write_store_file(store.root(), &[suppression]).unwrap();
    let (url, got) = webhook_endpoint(0);
    let mut quiet = c.clone();
    quiet.webhook.url = url;
    quiet.kafka.group_id = "quiet".into();
    run_until(&store, quiet, |m| m.events_in.get() >= n);
    let stored: Vec<serde_json::Value> = std::fs::read_to_string(store.root().join("alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (suppressed, paged): (Vec<_>, Vec<_>) = stored.iter().partition(|a| a["detection"] == quiet_detection.as_str());
    assert!(!suppressed.is_empty());
    assert!(
        suppressed
            .iter()
            .all(|a| a["evidence"]["suppressed"]["id"] == "sup-test")
    );
    let delivered: BTreeSet<String> = got.lock().unwrap().iter().map(|b| alert_id(b.as_bytes())).collect();
    let expected: BTreeSet<String> = paged
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, expected, "the webhook gets the unsuppressed alerts only");

    // Nothing listens: each alert ends in the webhook dead letter with the reason.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let store = Store::open(fx.dir.path().join("down")).unwrap();
    c.webhook.url = dead_url;
    c.webhook.max_retries = 2;
    c.kafka.group_id = "second".into();
    run_until(&store, c, |m| m.events_in.get() >= n);
    let ids: BTreeSet<String> = jsonl_ids(store.root()).into_iter().collect();
    let letters: Vec<serde_json::Value> = std::fs::read_dir(store.deadletter_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("webhook-"))
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(letters.len(), ids.len(), "one letter per alert");
    assert!(letters.iter().all(|l| l["reason"] == "webhook_failed"));
    let lettered: BTreeSet<String> = letters
        .iter()
        .map(|l| l["alert"]["alert_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(lettered, ids);
}

/// Every file under `dir` whose name starts with `.` (the staged, unpublished ones).
fn hidden_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry.file_name().to_string_lossy().starts_with('.') {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

#[test]
fn a_sealed_cycle_is_durable_only_once_written_and_a_dropped_one_leaves_nothing() {
    use idgw_pipeline::stream::lane::{Lane, LaneId};
    let fx = Fixture::new();
    let store = Store::open(fx.store_path()).unwrap();
    let config = Arc::new(PipelineConfig::default());
    let id = LaneId::kafka("okta.logs", 0);
    let lines = scenario_lines();
    let fill = |lane: &mut Lane| {
        for (i, line) in lines.iter().enumerate() {
            lane.buffer(i as i64, Some(line.as_bytes()));
        }
        lane.process().unwrap();
    };

    // Sealed, then dropped (its partition was lost): nothing published, nothing left over,
    // and the partition starts again from nothing.
    let mut lane = Lane::open(&store, Arc::clone(&config), id.clone()).unwrap();
    fill(&mut lane);
    let sealed = lane.seal().unwrap().expect("a cycle with messages");
    sealed.discard();
    drop(lane);
    assert!(
        !id.checkpoint_path(&store).exists(),
        "a dropped cycle wrote a checkpoint"
    );
    // (Before reopening: opening a lane deletes what crashed cycles left.)
    assert!(
        hidden_files(&fx.store_path()).is_empty(),
        "{:?}",
        hidden_files(&fx.store_path())
    );
    let reopened = Lane::open(&store, Arc::clone(&config), id.clone()).unwrap();
    assert_eq!(reopened.next_offset(), None);
    assert_eq!(count(&store, "SELECT count(*) FROM events"), 0);
    drop(reopened);

    // Sealed: still invisible; written: published with its checkpoint.
    let mut lane = Lane::open(&store, Arc::clone(&config), id.clone()).unwrap();
    fill(&mut lane);
    let sealed = lane.seal().unwrap().expect("a cycle with messages");
    assert_eq!(
        count(&store, "SELECT count(*) FROM events"),
        0,
        "sealed is not yet published"
    );
    let committed = sealed.write().unwrap();
    assert_eq!(committed.next_offset, lines.len() as i64);
    let stored = lane.counters().events_ok as i64;
    assert!(stored > 0);
    assert_eq!(count(&store, "SELECT count(*) FROM events"), stored);
    drop(lane);
    let resumed = Lane::open(&store, config, id).unwrap();
    assert_eq!(resumed.next_offset(), Some(lines.len() as i64));
}

/// A brute force whose deciding failure is the last event its partition will see for a
/// while: the lane's watermark moves on with processing time once the input is quiet, so the
/// alert comes about `allowed_lateness_s` later instead of waiting for the partition's next
/// event (which, in a small tenant, can be minutes or hours away).
#[test]
fn a_quiet_partition_raises_its_windowed_alert_without_a_later_event() {
    let file = std::fs::File::open(golden_dir().join("brute_force").join("events.ndjson.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).unwrap();
    let mut lines: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["published"].as_str().unwrap().to_owned(), l.to_owned())
        })
        .collect();
    lines.sort();
    // Up to the failure that decides the scenario's brute force, and nothing after it.
    let expected: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("brute_force").join("expected.json")).unwrap())
            .unwrap();
    let deciding = expected
        .iter()
        .find(|a| a["detection"] == "brute_force")
        .and_then(|a| a["last_seen"].as_str())
        .unwrap()
        .to_owned();
    lines.retain(|(published, _)| *published <= deciding);
    assert_eq!(lines.last().map(|(p, _)| p.as_str()), Some(deciding.as_str()));
    let lines: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();

    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("okta.logs", 1, 1).unwrap();
    // The mock cluster has no CreateTopics: the repartition topic is made here.
    cluster.create_topic("okta.logs.by-ip", 1, 1).unwrap();
    produce(&brokers, "okta.logs", &keyed(&lines));
    let fx = Fixture::new();
    let store = Store::open(fx.dir.path().join("store")).unwrap();
    let mut c = config(&brokers);
    c.detect.allowed_lateness_s = 2;
    let summary = run_until(&store, c, |m| m.render().contains("detection=\"brute_force\""));
    assert_eq!(summary.counters.events_in, lines.len() as u64);
    let text = std::fs::read_to_string(store.root().join("alerts.jsonl")).unwrap();
    assert!(text.contains("\"brute_force\""), "{text}");
}

/// A run that stops at the end of its input announces every user lane idle before it takes
/// the repartition topic's end offsets, however recently the lane sent its last mark. Held
/// back by the marks' rate limit, the idle mark came after those offsets (or never), and the
/// source lanes stopped at the slowest lane's last busy time with a spray's window still
/// open: a 2-partition `--until-end` run missed a spray alert about one run in six.
#[test]
fn the_end_of_a_bounded_run_is_announced_at_once() {
    use idgw_pipeline::stream::lane::LaneId;
    use idgw_pipeline::stream::repartition::{SourceRecord, Topology};
    use idgw_pipeline::stream::worker::Worker;

    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("okta.logs", 1, 1).unwrap();
    cluster.create_topic("okta.logs.by-ip", 1, 1).unwrap();
    let fx = Fixture::new();
    let store = Store::open(fx.dir.path().join("store")).unwrap();
    let mut c = config(&brokers);
    c.kafka.repartition = true;
    let mut worker = Worker::new(&store, Arc::new(c), Arc::new(Metrics::new())).unwrap();
    worker.set_topology(Topology {
        input_partitions: 1,
        source_partitions: 1,
    });
    let lane = LaneId::kafka("okta.logs", 0);
    worker.assign(vec![lane.clone()]).unwrap();
    let line = scenario_lines().into_iter().next().unwrap();
    worker.buffer(&lane, 0, Some(line.as_bytes()));
    worker.process().unwrap();
    // A busy mark, then the end within the marks' gap (milliseconds).
    worker.announce(|_, _| false).unwrap();
    worker.announce_end().unwrap();
    worker.flush_out().unwrap();

    let reader: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let (_, high) = reader
        .fetch_watermarks("okta.logs.by-ip", 0, Duration::from_secs(10))
        .unwrap();
    let marks: Vec<(i64, bool)> = read_topic(&brokers, "okta.logs.by-ip", high as usize)
        .iter()
        .filter_map(|(payload, _)| match SourceRecord::decode(payload) {
            Ok(SourceRecord::Mark(m)) => Some((m.time, m.idle)),
            _ => None,
        })
        .collect();
    assert_eq!(marks.len(), 2, "a busy mark and the end: {marks:?}");
    assert!(
        !marks[0].1 && marks[1].1,
        "the last mark says the lane is idle: {marks:?}"
    );
    assert_eq!(marks[0].0, marks[1].0, "{marks:?}");
}
