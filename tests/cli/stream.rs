//! `idgw pipeline run` as an operator runs it, against librdkafka's mock cluster held by
//! this test process (so the broker outlives every pipeline process the tests kill):
//! SIGKILL at random points loses and duplicates nothing, SIGTERM drains and exits 0, and
//! two workers in one group split the partitions and one takes over when the other dies.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

// librdkafka's mock cluster keeps about 5 MB per partition and drops older segments:
// the tenant below stays well inside that.
const PARTITIONS: i32 = 8;

/// A generated tenant as Kafka messages keyed by user.
fn tenant(dir: &Path, users: u32, days: u32) -> Vec<(Option<String>, Vec<u8>)> {
    let events = super::generate(dir, users, days, 21);
    let text = std::fs::read_to_string(&events).unwrap();
    text.lines()
        .map(|l| {
            (
                idgw_pipeline::stream::partition_key(l.as_bytes()),
                l.as_bytes().to_vec(),
            )
        })
        .collect()
}

/// A generated tenant as Kafka messages keyed by user, with three bad records mixed in.
fn messages(dir: &Path) -> Vec<(Option<String>, Vec<u8>)> {
    let mut msgs = tenant(dir, 400, 3);
    let n = msgs.len();
    msgs.insert(n / 4, (Some("bad".into()), b"{\"uuid\": 42".to_vec()));
    msgs.insert(n / 2, (Some("bad".into()), b"[1, 2, 3]".to_vec()));
    msgs.insert(
        3 * n / 4,
        (Some("bad".into()), b"{\"eventType\": \"user.session.start\"}".to_vec()),
    );
    msgs
}

/// Where the topics live.
pub(super) enum Broker {
    /// librdkafka's mock cluster, in this process.
    Mock(MockCluster<'static, DefaultProducerContext>),
    /// A real Kafka-compatible broker started by `.ci/run` (tansu), with its CLI for topics.
    External { brokers: String, tansu: PathBuf },
}

impl Broker {
    pub(super) fn brokers(&self) -> String {
        match self {
            Broker::Mock(c) => c.bootstrap_servers(),
            Broker::External { brokers, .. } => brokers.clone(),
        }
    }

    pub(super) fn create_topic(&self, name: &str, partitions: i32) {
        match self {
            Broker::Mock(c) => c.create_topic(name, partitions, 1).unwrap(),
            Broker::External { brokers, tansu } => {
                let out = Command::new(tansu)
                    .args(["topic", "create", "--broker", &format!("tcp://{brokers}")])
                    .args(["--partitions", &partitions.to_string(), name])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

impl Broker {
    /// The repartition topic of `topic`, as the pipeline creates it on a real broker;
    /// librdkafka's mock cluster has no CreateTopics request, so it is created here.
    pub(super) fn create_repartition_topic(&self, topic: &str, partitions: i32) {
        if let Broker::Mock(_) = self {
            self.create_topic(&format!("{topic}.by-ip"), partitions);
        }
    }
}

/// The broker `.ci/run` started (`IDGW_TEST_KAFKA_BROKERS`, `IDGW_TANSU`); absent, the test
/// says it is skipped (and fails where `IDGW_REQUIRE_INTEROP` asks for it).
pub(super) fn external_broker() -> Option<Broker> {
    match (std::env::var("IDGW_TEST_KAFKA_BROKERS"), std::env::var("IDGW_TANSU")) {
        (Ok(brokers), Ok(tansu)) if !brokers.is_empty() => Some(Broker::External {
            brokers,
            tansu: PathBuf::from(tansu),
        }),
        _ => {
            super::interop(
                false,
                "a Kafka broker (IDGW_TEST_KAFKA_BROKERS and IDGW_TANSU; .ci/run starts tansu)",
            );
            None
        }
    }
}

fn produce(brokers: &str, topic: &str, msgs: &[(Option<String>, Vec<u8>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for (key, payload) in msgs {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(payload.as_slice());
        if let Some(k) = key {
            record = record.key(k.as_bytes());
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// The workers' configuration. The allowed lateness is longer than any of these runs, so a
/// worker that sits at the end of its partitions slides its watermark by processing time
/// (docs/detections.md, "Streaming") only within the last ten minutes of event time, through
/// events already read in order: the runs compared with the reference (read to the end,
/// which never slides) release the same events in the same order and hold the same alerts
/// however long they waited.
fn write_config(dir: &Path, brokers: &str, tag: &str) -> PathBuf {
    let path = dir.join("idgw.toml");
    let text = format!(
        "[kafka]\nbrokers = \"{brokers}\"\ncommit_interval_ms = 200\n\
         topic = \"okta.logs.{tag}\"\nalerts_topic = \"idgw.alerts.{tag}\"\n\
         deadletter_topic = \"idgw.deadletter.{tag}\"\n\n\
         [kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n\n\
         [vectors]\nenabled = false\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [detect]\nallowed_lateness_s = 600\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// One `idgw pipeline run` process.
struct Worker {
    child: Child,
    stderr: PathBuf,
}

impl Worker {
    fn start(config: &Path, store: &Path, group: &str, extra: &[&str]) -> Worker {
        let stderr = store.with_extension(format!("{group}.{}.log", rand_u64() % 1_000_000));
        let child = Command::new(env!("CARGO_BIN_EXE_idgw"))
            .args(["pipeline", "run", "--json", "--config", config.to_str().unwrap()])
            .args(["--store", store.to_str().unwrap()])
            .args(extra)
            .env("IDGW_KAFKA_GROUP_ID", group)
            .env("IDGW_LOG", "info,qdrant_edge=error")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Worker { child, stderr }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn admin(&self) -> Option<String> {
        self.log().lines().find_map(|l| {
            l.strip_prefix("admin: http://")
                .map(|r| r.split('/').next().unwrap_or("").to_owned())
        })
    }

    /// A metric's value (summed over labels), if the admin port answers.
    fn metric(&self, name: &str) -> Option<f64> {
        let addr = self.admin()?;
        let mut s = TcpStream::connect(&addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let values: Vec<f64> = body
            .lines()
            .filter(|l| l.starts_with(name) && (l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{')))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    fn wait_metric(&mut self, name: &str, at_least: f64, within: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < within {
            if self.metric(name).is_some_and(|v| v >= at_least) {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the exit; returns the JSON summary, asserting exit 0.
    fn finish(mut self, within: Duration) -> serde_json::Value {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
                assert!(status.success(), "exit {status}:\n{}", self.log());
                return serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}\n{}", self.log()));
            }
            if started.elapsed() > within {
                let log = self.log();
                self.kill();
                panic!("the pipeline did not exit within {within:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub(super) fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// The first column of the first row of `sql` (`idgw query --json` writes NDJSON rows).
fn scalar(store: &Path, sql: &str) -> i64 {
    let out = super::idgw(&["query", "--store", store.to_str().unwrap(), "--json", sql]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let row: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or("{}")).unwrap();
    row.as_object().and_then(|o| o.values().next()?.as_i64()).unwrap_or(-1)
}

fn alert_ids(store: &Path) -> (Vec<String>, std::collections::BTreeSet<String>) {
    let text = std::fs::read_to_string(store.join("alerts.jsonl")).unwrap_or_default();
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["alert_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let set = ids.iter().cloned().collect();
    (ids, set)
}

fn dead_letters(store: &Path) -> usize {
    let dir = store.join("deadletter");
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| {
                    std::io::BufReader::new(std::fs::File::open(e.path()).unwrap())
                        .lines()
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Everything the uninterrupted reference run stored must be in `store` exactly once.
fn assert_same_as_reference(store: &Path, reference: &Path, stored: i64) {
    assert_eq!(
        scalar(store, "SELECT count(*) AS n FROM events"),
        stored,
        "every event stored"
    );
    assert_eq!(
        scalar(store, "SELECT count(DISTINCT event_id) AS n FROM events"),
        stored,
        "no event stored twice"
    );
    assert_eq!(dead_letters(store), 3, "each bad record dead-lettered exactly once");
    let (ids, set) = alert_ids(store);
    assert_eq!(ids.len(), set.len(), "alerts.jsonl holds each alert once");
    let (_, expected) = alert_ids(reference);
    assert!(!expected.is_empty());
    assert_eq!(set, expected, "the same alerts as the uninterrupted run");
    assert_eq!(scalar(store, "SELECT count(*) AS n FROM alerts"), expected.len() as i64);
    assert_eq!(
        scalar(store, "SELECT count(DISTINCT alert_id) AS n FROM alerts"),
        expected.len() as i64
    );
}

struct Setup {
    _broker: Broker,
    dir: tempfile::TempDir,
    config: PathBuf,
    total: usize,
    reference: PathBuf,
    stored: i64,
}

fn setup(broker: Broker, tag: &str) -> Setup {
    let brokers = broker.brokers();
    let topic = format!("okta.logs.{tag}");
    broker.create_topic(&topic, PARTITIONS);
    broker.create_repartition_topic(&topic, PARTITIONS);
    broker.create_topic(&format!("idgw.alerts.{tag}"), 2);
    broker.create_topic(&format!("idgw.deadletter.{tag}"), 1);
    let dir = tempfile::tempdir().unwrap();
    let msgs = messages(dir.path());
    produce(&brokers, &topic, &msgs);
    let config = write_config(dir.path(), &brokers, tag);
    let reference = dir.path().join("reference");
    let w = Worker::start(&config, &reference, "reference", &["--until-end"]);
    let log = w.stderr.clone();
    let summary = w.finish(Duration::from_secs(300));
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(summary["counters"]["events_in"], msgs.len() as u64, "{summary}\n{log}");
    assert_eq!(summary["counters"]["deadlettered"], 3);
    assert_eq!(summary["balanced"], true);
    let stored = summary["counters"]["events_ok"].as_i64().unwrap();
    Setup {
        _broker: broker,
        config,
        total: msgs.len(),
        reference,
        stored,
        dir,
    }
}

pub(super) fn mock() -> Broker {
    Broker::Mock(MockCluster::new(1).unwrap())
}

#[test]
fn sigkill_at_random_points_loses_and_duplicates_nothing_and_sigterm_drains() {
    crash_and_compare(setup(mock(), "mock-crash"), 6);
}

/// The same against a real broker (tansu, started by `.ci/run`).
#[test]
fn on_a_real_broker_sigkill_loses_and_duplicates_nothing() {
    let Some(broker) = external_broker() else { return };
    let tag = format!("real-{}", rand_u64() % 1_000_000);
    crash_and_compare(setup(broker, &tag), 5);
}

fn crash_and_compare(s: Setup, wanted_kills: usize) {
    let store = s.dir.path().join("crashed");
    let mut kills = 0;
    let mut rounds = 0;
    while kills < wanted_kills && rounds < 2 * wanted_kills {
        rounds += 1;
        let mut w = Worker::start(&s.config, &store, "crash", &[]);
        // Kill after real work started, at a random point of it counted in events, so that
        // every round leaves work for the next: with a random delay instead, a faster build
        // committed the whole topic in the first rounds and the later ones waited for
        // events that never came.
        let budget = (s.total / (3 * wanted_kills)).max(2) as u64;
        let at = 1 + rand_u64() % budget;
        if !w.wait_metric("idgw_events_in_total", at as f64, Duration::from_secs(60)) {
            w.kill();
            continue;
        }
        w.kill();
        kills += 1;
    }
    assert!(kills >= wanted_kills.min(5), "killed only {kills} times");
    // A graceful stop in the middle: drains, commits, exits 0.
    let mut w = Worker::start(&s.config, &store, "crash", &[]);
    // The input's partitions and the repartition topic's (as many).
    assert!(w.wait_metric(
        "idgw_partitions_assigned",
        2.0 * PARTITIONS as f64,
        Duration::from_secs(60)
    ));
    // Past half of the input, so that the drain leaves files for the compaction below.
    w.wait_metric("idgw_events_in_total", (s.total / 2) as f64, Duration::from_secs(60));
    w.terminate();
    let stopped = w.finish(Duration::from_secs(40));
    assert_eq!(stopped["balanced"], true, "{stopped}");
    // What the 5-minute compaction does to a live store, between a stop and the restart:
    // the files published so far merged (every day counts as recent here; the tenant's
    // days are in the past), the last checkpoint's among them.
    let o = crate::idgw(&[
        "store",
        "compact",
        "--store",
        store.to_str().unwrap(),
        "--recent",
        "0",
        "--min-age-days",
        "100000",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merged = std::fs::read_dir(store.join("events"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|d| d.is_dir())
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("sorted-recent-")
        })
        .count();
    let tree = std::process::Command::new("find")
        .arg(store.join("events"))
        .output()
        .unwrap();
    assert!(
        merged > 0,
        "compaction merged the crashed runs' files: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&tree.stdout)
    );
    // Then to the end.
    let last = Worker::start(&s.config, &store, "crash", &["--until-end"]).finish(Duration::from_secs(300));
    assert_eq!(last["balanced"], true);
    eprintln!("{kills} kills in {rounds} rounds; {} messages", s.total);
    assert_same_as_reference(&store, &s.reference, s.stored);
}

#[test]
fn two_workers_split_the_partitions_and_one_takes_over_when_the_other_dies() {
    let s = setup(mock(), "mock-pair");
    let store = s.dir.path().join("pair");
    let a = Worker::start(&s.config, &store, "pair", &[]);
    let mut b = Worker::start(&s.config, &store, "pair", &[]);
    let both = |a: &Worker, b: &Worker| {
        let (x, y) = (
            a.metric("idgw_partitions_assigned").unwrap_or(0.0),
            b.metric("idgw_partitions_assigned").unwrap_or(0.0),
        );
        x > 0.0 && y > 0.0 && x + y == 2.0 * PARTITIONS as f64
    };
    let started = Instant::now();
    while !both(&a, &b) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the group never split:\n{}\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    a.kill();
    assert!(
        b.wait_metric(
            "idgw_partitions_assigned",
            2.0 * PARTITIONS as f64,
            Duration::from_secs(90)
        ),
        "the survivor did not take over:\n{}",
        b.log()
    );
    b.terminate();
    let survivor = b.finish(Duration::from_secs(60));
    assert_eq!(
        survivor["partitions"].as_array().map(Vec::len),
        Some(2 * PARTITIONS as usize),
        "{survivor}"
    );
    let last = Worker::start(&s.config, &store, "pair", &["--until-end"]).finish(Duration::from_secs(300));
    assert_eq!(last["balanced"], true);
    assert_same_as_reference(&store, &s.reference, s.stored);
}

/// The password_spray alerts in a store's alerts.jsonl: their ids, and how many users each
/// counted.
fn spray_alerts(store: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(store.join("alerts.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["detection"] == "password_spray")
        .map(|a| {
            let id = a["alert_id"].as_str().unwrap().to_owned();
            (
                id,
                serde_json::json!([a["src_ip"], a["evidence"]["distinct_users"], a["user_id"]]),
            )
        })
        .collect()
}

/// The users whose identity state names a password spray among the reasons for their risk.
fn users_at_risk_from_sprays(store: &Path) -> Vec<String> {
    let out = super::idgw(&[
        "query",
        "--store",
        store.to_str().unwrap(),
        "--json",
        "SELECT DISTINCT user_id FROM identity_state WHERE top_reasons LIKE '%password_spray%' ORDER BY user_id",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["user_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The topic is keyed by user, a spray by source: with the repartition topic keyed by
/// source IP, 1, 2 and 4 partitions raise the same spray alerts (ids from the evidence, so
/// the same attempts); without it, each of 4 partitions judges its quarter of a spray alone
/// (seen here: three alerts with different evidence for one spray).
#[test]
fn partition_counts_change_no_spray_alert() {
    let broker = mock();
    let brokers = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    // Small enough for one partition of the mock cluster (it keeps about 5 MB of each).
    let msgs = tenant(dir.path(), 100, 2);
    let mut runs = Vec::new();
    for (partitions, repartition) in [(1, true), (2, true), (4, true), (4, false)] {
        let tag = format!("spray-{partitions}-{repartition}");
        let topic = format!("okta.logs.{tag}");
        broker.create_topic(&topic, partitions);
        broker.create_repartition_topic(&topic, partitions);
        broker.create_topic(&format!("idgw.alerts.{tag}"), 1);
        broker.create_topic(&format!("idgw.deadletter.{tag}"), 1);
        produce(&brokers, &topic, &msgs);
        let run_dir = dir.path().join(&tag);
        std::fs::create_dir_all(&run_dir).unwrap();
        let config = write_config(&run_dir, &brokers, &tag);
        let text = std::fs::read_to_string(&config).unwrap();
        // Identity state written at every commit, the last one included.
        let kafka = format!("[kafka]\nrepartition = {repartition}\nstate_interval_ms = 0\n");
        std::fs::write(&config, text.replace("[kafka]\n", &kafka)).unwrap();
        let store = run_dir.join("store");
        let w = Worker::start(&config, &store, &tag, &["--until-end"]);
        let log = w.stderr.clone();
        let summary = w.finish(Duration::from_secs(300));
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert_eq!(summary["counters"]["events_in"], msgs.len() as u64, "{summary}\n{log}");
        // A run read to its end is not an error, and a log written to a file has no colours.
        assert!(!log.contains('\x1b'), "escape codes in a log file:\n{log}");
        assert!(!log.contains("ERROR"), "{log}");
        assert_eq!(summary["balanced"], true, "{summary}");
        let read = &summary["repartition_read"];
        if repartition {
            assert!(summary["repartition_sent"].as_u64() > Some(0), "{summary}");
            assert_eq!(read["deadlettered"], 0, "{summary}");
            assert_eq!(
                read["events_in"].as_u64(),
                Some(read["events_ok"].as_u64().unwrap() + read["duplicates"].as_u64().unwrap()),
                "{summary}"
            );
        } else {
            assert_eq!(summary["repartition_sent"], 0, "{summary}");
        }
        // The users a spray tried carry a share of its risk, whichever lane holds them.
        let sprayed = users_at_risk_from_sprays(&store);
        runs.push((tag, spray_alerts(&store), sprayed));
    }
    let (one, reference, sprayed) = &runs[0];
    assert!(!sprayed.is_empty(), "no user carries a spray's risk");
    assert!(
        reference.values().any(|v| v[2].is_null()),
        "the tenant's sprays are raised on one partition: {reference:?}"
    );
    for (tag, alerts, users) in &runs[1..3] {
        assert_eq!(alerts, reference, "{tag} against {one}");
        assert_eq!(users, sprayed, "{tag} against {one}: the users at risk from the spray");
    }
    let (tag, split, _) = &runs[3];
    assert!(
        split != reference,
        "{tag}: without the repartition topic each partition judges its share of a spray alone, so the spray is raised once per partition that holds enough of it, or not at all ({split:?} against {reference:?})"
    );
}

/// An HTTP GET on the admin port: status line and body.
fn admin_get(w: &Worker, path: &str) -> (String, String) {
    let addr = w.admin().expect("the admin port is announced");
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
}

/// The poller produces the System Log to the topic, keyed by user, and the same process
/// consumes it: every event once in the store; /metrics and /healthz tell an operator so.
#[test]
fn the_poller_feeds_kafka_and_the_admin_port_reports_the_flow() {
    let (mut sim, url, events) = super::poller::start_sim(&[]);
    let broker = mock();
    let tag = "mock-poll";
    broker.create_topic(&format!("okta.logs.{tag}"), PARTITIONS);
    broker.create_repartition_topic(&format!("okta.logs.{tag}"), PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker.brokers(), tag);
    let store = dir.path().join("polled");
    let mut child = Command::new(env!("CARGO_BIN_EXE_idgw"));
    child
        .args(["pipeline", "run", "--json", "--config", config.to_str().unwrap()])
        .args(["--store", store.to_str().unwrap()])
        .env("IDGW_KAFKA_GROUP_ID", "poll")
        .env("IDGW_POLLER_ENABLED", "true")
        .env("IDGW_POLLER_PRODUCE", "true")
        .env("IDGW_POLLER_SINCE_MINUTES", "4320")
        .env("OKTA_ORG_URL", &url)
        .env("OKTA_API_TOKEN", "sim-api-token");
    let stderr = dir.path().join("poll.log");
    let mut w = Worker {
        child: child
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
        stderr,
    };
    assert!(
        w.wait_metric("idgw_events_in_total", events as f64, Duration::from_secs(120)),
        "not every event arrived:\n{}",
        w.log()
    );
    let (status, body) = admin_get(&w, "/healthz");
    assert!(status.contains("200"), "{status} {body}");
    let (status, metrics) = admin_get(&w, "/metrics");
    assert!(status.contains("200"));
    for name in [
        "idgw_events_stored_total",
        "idgw_alerts_total{detection=",
        "idgw_batch_seconds_bucket",
        "idgw_poller_pages_total",
        "idgw_partitions_assigned",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }

    // A second poller on the same store (a replica too many, a rollout's new pod beside the
    // old) stands by while the first holds the store's poller lock, takes over when it
    // exits, and neither produces a page twice: the topic holds each event once.
    let mut second = Command::new(env!("CARGO_BIN_EXE_idgw"));
    second
        .args(["pipeline", "run", "--json", "--config", config.to_str().unwrap()])
        .args(["--store", store.to_str().unwrap()])
        .env("IDGW_KAFKA_GROUP_ID", "poll")
        .env("IDGW_LOG", "info,qdrant_edge=error")
        .env("IDGW_POLLER_ENABLED", "true")
        .env("IDGW_POLLER_PRODUCE", "true")
        .env("IDGW_POLLER_SINCE_MINUTES", "4320")
        .env("OKTA_ORG_URL", &url)
        .env("OKTA_API_TOKEN", "sim-api-token");
    let stderr2 = dir.path().join("poll2.log");
    let w2 = Worker {
        child: second
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr2).unwrap())
            .spawn()
            .unwrap(),
        stderr: stderr2,
    };
    let waited = |w: &Worker, text: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if w.log().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(
        waited(&w2, "standing by"),
        "the second poller did not stand by:\n{}",
        w2.log()
    );
    w.terminate();
    let summary = w.finish(Duration::from_secs(60));
    assert_eq!(summary["counters"]["events_ok"], events, "{summary}");
    assert_eq!(summary["counters"]["duplicates"], 0);
    assert!(
        waited(&w2, "produces now"),
        "the standby did not take over:\n{}",
        w2.log()
    );
    // The taken-over poller reads on from the stored cursor: a page of nothing new.
    std::thread::sleep(Duration::from_secs(2));
    let probe: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .create()
        .unwrap();
    let on_topic: i64 = (0..PARTITIONS)
        .map(|p| {
            let (low, high) = rdkafka::consumer::Consumer::fetch_watermarks(
                &probe,
                &format!("okta.logs.{tag}"),
                p,
                Duration::from_secs(10),
            )
            .unwrap();
            high - low
        })
        .sum();
    assert_eq!(on_topic, events as i64, "each System Log event produced once");
    w2.terminate();
    let _ = w2.finish(Duration::from_secs(60));
    let _ = sim.kill();
}
