//! `[kafka]` and `[admin]`: where a streaming pipeline reads, writes and reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]` (`KAFKA_BROKERS`). Empty: no Kafka.
    pub brokers: String,
    /// The topic of Okta LogEvents (JSON), partitioned by user id.
    pub topic: String,
    /// The consumer group every worker of one deployment joins.
    pub group_id: String,
    /// Where alerts are produced (keyed by user id, payload the Alert contract); empty: off.
    pub alerts_topic: String,
    /// Where rejected records are produced (raw bytes, reason in headers); empty: off.
    pub deadletter_topic: String,
    /// Run the detections keyed by source address (password spray) over every partition's
    /// share: user lanes hand their observations to a topic keyed by source IP that the
    /// same group reads (docs/detections.md, "Streaming"). Off: each partition sees only
    /// its own share of a spray.
    pub repartition: bool,
    /// That topic; empty: `<topic>.by-ip`. Created with the input's partition count when
    /// missing.
    pub repartition_topic: String,
    /// How often each partition's work is made durable and its offset committed.
    pub commit_interval_ms: u64,
    /// How often each partition's identity-state file is rewritten (at a commit).
    pub state_interval_ms: u64,
    /// Bytes buffered from the consumer before they go to the engine as one batch. Small
    /// enough that the copied messages are still in the core's L2 cache when they are
    /// decoded: 256 KiB read about 4 % more events per second than 1 MiB on tansu (six of
    /// seven alternated pairs, docs/benchmarks.md).
    pub batch_max_bytes: usize,
    /// Longest a message waits in that buffer.
    pub batch_max_wait_ms: u64,
    /// Threads that run the partitions' batches through the engine at once (each partition
    /// has its own engine, so they never share state); 0: one per core, at most one per
    /// partition owned. 1 runs them one after another on the consumer's thread.
    pub process_threads: usize,
    /// Stop (draining as on SIGTERM) once every owned partition has been read to its end:
    /// for backfills, benchmarks and tests (`idgw pipeline run --until-end`).
    pub stop_at_end: bool,
    /// librdkafka consumer properties, applied over ours (e.g. `"fetch.wait.max.ms" = "10"`).
    pub consumer: BTreeMap<String, String>,
    /// librdkafka producer properties, applied over ours.
    pub producer: BTreeMap<String, String>,
    /// TLS and SASL for every client (`[kafka.security]`).
    pub security: super::kafka_client::KafkaSecurity,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topic: "okta.logs".into(),
            group_id: "idgw-pipeline".into(),
            alerts_topic: "idgw.alerts".into(),
            deadletter_topic: "idgw.deadletter".into(),
            repartition: true,
            repartition_topic: String::new(),
            commit_interval_ms: 2_000,
            state_interval_ms: 10_000,
            batch_max_bytes: 256 << 10,
            batch_max_wait_ms: 5,
            process_threads: 0,
            stop_at_end: false,
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
            security: Default::default(),
        }
    }
}

impl KafkaConfig {
    /// True when a broker is configured.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    /// A client for the brokers with `[kafka.security]`, then `base`, then `overrides`.
    pub fn client<'a>(
        &self,
        base: impl IntoIterator<Item = (&'a str, &'a str)>,
        overrides: &'a BTreeMap<String, String>,
    ) -> Result<rdkafka::ClientConfig, super::kafka_client::ConnectError> {
        super::kafka_client::client_config(&self.brokers, &self.security, base, overrides)
    }

    /// Refuses librdkafka properties in `[kafka.consumer]` / `[kafka.producer]` that would
    /// override `[kafka.security]` (a `"security.protocol" = "plaintext"` there would quietly
    /// undo the TLS the block asks for), and a block that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        for (table, map) in [("kafka.consumer", &self.consumer), ("kafka.producer", &self.producer)] {
            if let Some(key) = map.keys().find(|k| {
                k.starts_with("security.")
                    || k.starts_with("ssl.")
                    || k.starts_with("sasl.")
                    || k.starts_with("enable.ssl.")
            }) {
                return Err(format!(
                    "[{table}] {key:?}: TLS and SASL are set in [kafka.security], for every client at once"
                ));
            }
        }
        if let Some(topic) = self.source_topic() {
            if topic == self.topic {
                return Err("[kafka] repartition_topic must not be the input topic".into());
            }
            // The source lanes' watermark relies on marks never overtaking observations
            // (idempotent, ordered delivery) and on the statistics that tell a lane idle.
            if self.producer.get("enable.idempotence").is_some_and(|v| v == "false") {
                return Err(
                    "[kafka.producer] \"enable.idempotence\" = \"false\": the repartition topic needs ordered delivery; set [kafka] repartition = false to turn it off".into(),
                );
            }
            if self
                .consumer
                .get("statistics.interval.ms")
                .is_some_and(|v| v.trim() == "0")
            {
                return Err(
                    "[kafka.consumer] \"statistics.interval.ms\" = \"0\": the repartition topic's lanes need the statistics to tell a partition read to its end".into(),
                );
            }
        }
        if self.enabled() {
            self.security.properties().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Fails within seconds when the brokers refuse our credentials or certificate, and
    /// after `[kafka.security] connect_timeout_s` when none answers.
    pub fn check_connection(&self) -> Result<(), super::kafka_client::ConnectError> {
        let config = self.client([], &self.producer)?;
        let timeout = std::time::Duration::from_secs(self.security.connect_timeout_s.max(1));
        super::kafka_client::check(&config, &self.brokers, timeout)
    }

    /// The repartition topic, when repartitioning is on.
    pub fn source_topic(&self) -> Option<String> {
        if !self.repartition {
            return None;
        }
        let name = self.repartition_topic.trim();
        Some(if name.is_empty() {
            format!("{}.by-ip", self.topic)
        } else {
            name.to_owned()
        })
    }

    /// The share of the detections a lane of topic `topic` runs.
    pub fn role_of(&self, topic: &str) -> crate::detect::Role {
        match self.source_topic() {
            Some(t) if t == topic => crate::detect::Role::Sources,
            Some(_) => crate::detect::Role::Users,
            None => crate::detect::Role::Whole,
        }
    }

    /// The threads `process_threads` asks for: the cores when 0.
    pub fn process_threads(&self) -> usize {
        match self.process_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
    }
}

/// `[admin]`: the operations port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// `/metrics` and `/healthz` listen here; empty: no admin port.
    pub listen: String,
    /// Longest a SIGTERM drain (write, checkpoint, commit) may take before the process
    /// exits with an error.
    pub shutdown_deadline_s: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9464".into(),
            shutdown_deadline_s: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source lanes' watermark needs ordered delivery of the marks and the statistics
    /// that tell an idle partition; a configuration that takes either away is refused.
    #[test]
    fn repartitioning_refuses_what_would_break_its_watermark() {
        let mut k = KafkaConfig::default();
        assert_eq!(k.source_topic().as_deref(), Some("okta.logs.by-ip"));
        assert!(k.validate().is_ok());
        k.producer.insert("enable.idempotence".into(), "false".into());
        assert!(k.validate().unwrap_err().contains("enable.idempotence"));
        k.producer.clear();
        k.consumer.insert("statistics.interval.ms".into(), "0".into());
        assert!(k.validate().unwrap_err().contains("statistics.interval.ms"));
        k.repartition = false;
        assert!(k.validate().is_ok(), "nothing to protect without the repartition topic");
        assert_eq!(k.role_of("okta.logs"), crate::detect::Role::Whole);
        k.repartition = true;
        k.consumer.clear();
        k.repartition_topic = "okta.logs".into();
        assert!(k.validate().unwrap_err().contains("must not be the input topic"));
    }
}
