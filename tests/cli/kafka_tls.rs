//! `idgw pipeline run` against a broker that requires TLS, as MSK, Confluent Cloud and Aiven
//! do: it reads a zstd-compressed topic and writes its alerts back over the encrypted
//! connection; a broker whose certificate its CA did not sign stops it within seconds with
//! the TLS reason, not a retry loop without end.
//!
//! The broker is tansu behind stunnel (OpenSSL's TLS), started by `.ci/run`
//! (`IDGW_TEST_KAFKA_TLS_BROKERS`, `IDGW_TEST_KAFKA_TLS_CA`). SASL/SCRAM needs a broker
//! that keeps SCRAM users, which cannot run on this machine: tansu 0.6.0 accepts
//! `tansu user create` and stores nothing, and Apache Kafka's jars are out of reach. With
//! `IDGW_TEST_KAFKA_SCRAM_{BROKERS,CA,USER,PASSWORD}` naming such a broker, the same tests
//! run with SCRAM-SHA-512 over TLS and a wrong password too; without, they say so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// Where the secure broker is and, with SASL, who may use it.
struct Secure {
    brokers: String,
    ca_file: PathBuf,
    /// `(mechanism, user, password)`.
    sasl: Option<(String, String, String)>,
}

fn var(n: &str) -> Option<String> {
    std::env::var(n).ok().filter(|v| !v.is_empty())
}

/// The TLS broker `.ci/run` starts.
fn tls_broker() -> Option<Secure> {
    match (var("IDGW_TEST_KAFKA_TLS_BROKERS"), var("IDGW_TEST_KAFKA_TLS_CA")) {
        (Some(brokers), Some(ca)) => Some(Secure {
            brokers,
            ca_file: PathBuf::from(ca),
            sasl: None,
        }),
        _ => {
            super::interop(
                false,
                "a TLS Kafka broker (IDGW_TEST_KAFKA_TLS_*; .ci/run starts tansu behind stunnel)",
            );
            None
        }
    }
}

/// A SCRAM broker, if one is named (none can run on this machine; see the module's note).
fn scram_broker() -> Option<Secure> {
    match (
        var("IDGW_TEST_KAFKA_SCRAM_BROKERS"),
        var("IDGW_TEST_KAFKA_SCRAM_CA"),
        var("IDGW_TEST_KAFKA_SCRAM_USER"),
        var("IDGW_TEST_KAFKA_SCRAM_PASSWORD"),
    ) {
        (Some(brokers), Some(ca), Some(user), Some(password)) => Some(Secure {
            brokers,
            ca_file: PathBuf::from(ca),
            sasl: Some(("SCRAM-SHA-512".into(), user, password)),
        }),
        _ => {
            eprintln!(
                "SKIPPED: no SASL/SCRAM Kafka broker (IDGW_TEST_KAFKA_SCRAM_*): none that keeps SCRAM users runs on this machine kind; SCRAM was not exercised end to end"
            );
            None
        }
    }
}

impl Secure {
    /// A test client with the same security the pipeline is given.
    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("ssl.ca.location", self.ca_file.to_str().unwrap());
        match &self.sasl {
            Some((mechanism, user, password)) => c
                .set("security.protocol", "sasl_ssl")
                .set("sasl.mechanism", mechanism)
                .set("sasl.username", user)
                .set("sasl.password", password),
            None => c.set("security.protocol", "ssl"),
        };
        c
    }

    fn password(&self) -> &str {
        self.sasl.as_ref().map_or("", |(_, _, p)| p.as_str())
    }

    fn create_topics(&self, names: &[&str]) {
        let admin: AdminClient<DefaultClientContext> = self.client().create().unwrap();
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| NewTopic::new(n, 2, TopicReplication::Fixed(1)))
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let results = runtime
            .block_on(admin.create_topics(&topics, &AdminOptions::new()))
            .unwrap();
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
        }
    }

    /// The pipeline's configuration for this broker (the password comes from the
    /// environment, as a deployment's secret would).
    fn config(&self, dir: &Path, tag: &str, ca_file: &Path) -> PathBuf {
        let path = dir.join(format!("idgw-{tag}.toml"));
        let sasl = match &self.sasl {
            Some((mechanism, user, _)) => {
                format!("protocol = \"sasl_ssl\"\nsasl_mechanism = \"{mechanism}\"\nusername = \"{user}\"\n")
            }
            None => "protocol = \"ssl\"\n".to_owned(),
        };
        let text = format!(
            "[kafka]\nbrokers = \"{}\"\ncommit_interval_ms = 200\n\
             topic = \"okta.logs.{tag}\"\nalerts_topic = \"idgw.alerts.{tag}\"\ndeadletter_topic = \"\"\n\n\
             [kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n\n\
             [kafka.security]\n{sasl}ca_file = \"{}\"\nconnect_timeout_s = 20\n\n\
             [vectors]\nenabled = false\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            self.brokers,
            ca_file.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn run_pipeline(
    config: &Path,
    store: &Path,
    password: &str,
    within: Duration,
) -> (std::process::ExitStatus, String, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args([
            "pipeline",
            "run",
            "--json",
            "--until-end",
            "--config",
            config.to_str().unwrap(),
        ])
        .args(["--store", store.to_str().unwrap()])
        .env("IDGW_KAFKA_SECURITY_PASSWORD", password)
        .env("IDGW_LOG", "info,qdrant_edge=error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status,
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
                started.elapsed(),
            );
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the pipeline did not exit within {within:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_pipeline_reads_and_writes_a_tls_topic() {
    if let Some(broker) = tls_broker() {
        reads_and_writes(&broker);
    }
}

#[test]
fn the_pipeline_reads_and_writes_a_tls_scram_topic() {
    if let Some(broker) = scram_broker() {
        reads_and_writes(&broker);
    }
}

fn reads_and_writes(broker: &Secure) {
    let tag = format!("tls{}", super::stream::rand_u64() % 1_000_000);
    let (topic, alerts) = (format!("okta.logs.{tag}"), format!("idgw.alerts.{tag}"));
    broker.create_topics(&[&topic, &alerts]);
    let dir = tempfile::tempdir().unwrap();
    let events = super::generate(dir.path(), 200, 2, 5);
    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // zstd batches, as a producer tuned for throughput (or MSK's default) writes them.
    let producer: ThreadedProducer<DefaultProducerContext> =
        broker.client().set("compression.type", "zstd").create().unwrap();
    for l in &lines {
        let key = idgw_pipeline::stream::partition_key(l.as_bytes());
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic).payload(l.as_bytes());
        if let Some(k) = &key {
            record = record.key(k.as_bytes());
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let config = broker.config(dir.path(), &tag, &broker.ca_file);
    let store = dir.path().join("store");
    let (status, out, err, _) = run_pipeline(&config, &store, broker.password(), Duration::from_secs(240));
    assert!(status.success(), "exit {status}:\n{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(summary["counters"]["events_in"], lines.len() as u64, "{summary}");
    assert_eq!(summary["balanced"], true, "{summary}");
    let raised = summary["alerts_produced"].as_u64().unwrap_or(0);
    assert!(raised > 0, "the tenant has attacks: {summary}");

    // The alerts came back through the same authenticated, encrypted connection.
    let consumer: BaseConsumer = broker
        .client()
        .set("group.id", format!("check-{tag}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[alerts.as_str()]).unwrap();
    let mut read = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < raised && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let alert: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert!(alert["alert_id"].is_string(), "{alert}");
            read += 1;
        }
    }
    assert_eq!(read, raised, "every produced alert is on the topic");
}

#[test]
fn a_wrong_password_stops_it_at_once_with_the_reason() {
    let Some(broker) = scram_broker() else { return };
    let tag = format!("pw{}", super::stream::rand_u64() % 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let config = broker.config(dir.path(), &tag, &broker.ca_file);
    let (status, _, err, took) = run_pipeline(
        &config,
        &dir.path().join("s1"),
        "not-the-password",
        Duration::from_secs(60),
    );
    assert!(!status.success(), "a wrong password must not run:\n{err}");
    assert!(
        err.contains("SASL authentication"),
        "the broker's reason is given:\n{err}"
    );
    assert!(
        took < Duration::from_secs(15),
        "it failed fast ({took:?}), not after retries:\n{err}"
    );
}

#[test]
fn an_untrusted_certificate_or_plaintext_to_tls_stops_it_with_the_reason() {
    let Some(broker) = tls_broker() else { return };
    let tag = format!("ca{}", super::stream::rand_u64() % 1_000_000);
    let dir = tempfile::tempdir().unwrap();

    // A CA that did not sign the broker's certificate.
    let other = dir.path().join("other-ca.pem");
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=not-the-brokers-ca", "-keyout"])
        .arg(dir.path().join("other-ca.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let config = broker.config(dir.path(), &tag, &other);
    let (status, _, err, took) = run_pipeline(
        &config,
        &dir.path().join("s2"),
        broker.password(),
        Duration::from_secs(60),
    );
    assert!(!status.success(), "an untrusted broker must not be used:\n{err}");
    assert!(
        err.contains("certificate verify failed"),
        "the TLS reason is given:\n{err}"
    );
    assert!(took < Duration::from_secs(15), "it failed fast ({took:?}):\n{err}");

    // A plaintext client at the TLS port never gets an answer: it gives up after
    // connect_timeout_s, naming the brokers, instead of retrying for ever.
    let plain = dir.path().join("plain.toml");
    std::fs::write(
        &plain,
        format!(
            "[kafka]\nbrokers = \"{}\"\ntopic = \"okta.logs.{tag}\"\n\n[kafka.security]\nconnect_timeout_s = 3\n\n\
             [vectors]\nenabled = false\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            broker.brokers
        ),
    )
    .unwrap();
    let (status, _, err, took) = run_pipeline(&plain, &dir.path().join("s3"), "", Duration::from_secs(60));
    assert!(!status.success(), "{err}");
    assert!(err.contains("no broker answered within 3 s"), "{err}");
    assert!(took < Duration::from_secs(20), "{took:?}:\n{err}");
}
