//! Pipeline configuration: compiled-in defaults, then the `--config` TOML file, then
//! environment variables (`IDGW_<TABLE>_<KEY>`, e.g. `IDGW_STORE_BATCH_ROWS`; the rule is
//! in [`crate::layered`]).
//! `deploy/config.example.toml` documents every knob.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::layered::{self, Loaded, Source, Spec};

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not valid TOML for this configuration.
    #[error("invalid configuration {path}: {message}")]
    Parse { path: String, message: String },
    /// A suppression or a per-detection setting cannot be applied.
    #[error(transparent)]
    Tuning(#[from] crate::detect::tuning::TuningError),
    /// `[kafka]` cannot work as given.
    #[error("{0}")]
    Kafka(String),
    /// A value of the file or the environment cannot be read, or a variable names no key.
    #[error(transparent)]
    Layer(#[from] layered::LayerError),
}

/// Everything the pipeline can be told.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Reading and validating input.
    pub ingest: IngestConfig,
    /// How tables are written.
    pub store: StoreConfig,
    /// The detection engine's clock and thresholds.
    pub detect: crate::detect::DetectConfig,
    /// The behaviour vector index.
    pub vectors: crate::vectors::VectorsConfig,
    /// Streaming: the Kafka topics and consumer group.
    pub kafka: crate::stream::KafkaConfig,
    /// Streaming: the Okta System Log poller.
    pub poller: crate::stream::PollerConfig,
    /// Streaming: alerts POSTed to a webhook.
    pub webhook: crate::stream::WebhookConfig,
    /// Streaming: the operations port.
    pub admin: crate::stream::AdminConfig,
}

/// `[ingest]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest event accepted, in bytes; larger records are dead-lettered as `too_large`.
    /// Real Okta events are 1–10 KB.
    pub max_event_bytes: usize,
    /// How many raw bytes a dead letter keeps of the record (the rest is cut, and the
    /// letter says so with `raw_truncated` and `byte_len`).
    pub deadletter_raw_bytes: usize,
    /// Bytes of input handed from the reader to the normalizer at once, on one thread.
    /// Small enough to stay in a core's L2 cache (1 MiB here) between being copied in and being decoded:
    /// 256 KiB batches used 2–3 % less CPU per event than 4 MiB (docs/benchmarks.md).
    pub read_batch_bytes: usize,
    /// The same when a replay shares decoding across threads: large enough that the three
    /// hand-offs between threads per batch cost little (shared 256 KiB batches ran slower
    /// than one thread on two cores, 4 MiB ones 10 % faster; docs/benchmarks.md).
    pub shared_batch_bytes: usize,
    /// Threads a replay decodes and normalizes on, the ingest thread included (it also
    /// appends the Arrow rows on one while detection runs on the ingest thread); 0 = one
    /// per core. Streaming lanes already run on a pool of their own.
    pub threads: usize,
}

impl IngestConfig {
    /// [`IngestConfig::threads`] with 0 resolved to the cores this process may use.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_event_bytes: 1 << 20,
            deadletter_raw_bytes: 64 << 10,
            read_batch_bytes: 256 << 10,
            shared_batch_bytes: 4 << 20,
            threads: 0,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Rows per Arrow batch handed to the Parquet writer. Small enough (about 4 MB of
    /// event text) that the allocator reuses a finished batch's memory for the next one:
    /// batches of 16,384 rows were fresh memory each time, and the kernel's zeroing of
    /// those pages took a fifth of a replay's CPU samples.
    pub batch_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Rows after which a Parquet file is closed and published.
    pub max_rows_per_file: usize,
    /// zstd compression level for Parquet (1–22; 1 is fastest).
    pub zstd_level: i32,
    /// Compression of the files ingest writes (`zstd` or `lz4`). These are the store's
    /// hot tier: `idgw store compact` rewrites past days sorted, in `compact_codec`.
    pub ingest_codec: StoreCodec,
    /// Rows per data page at most in the files ingest writes (0: Parquet's default of
    /// 20,000, or 1 MB). A per-user read decodes the whole page of every column for each
    /// row it wants; in unsorted files a user's rows are each on a page of their own, so
    /// small pages keep such reads fast until compaction sorts the day (docs/benchmarks.md).
    pub ingest_page_rows: usize,
    /// Dictionary encoding in the files ingest writes (smaller files, by ~10 %; a per-user
    /// read decodes each wanted column's whole dictionary page in every row group it
    /// touches, so it is off by default, as in compaction's files).
    pub ingest_dictionary: bool,
    /// Compression of the files `idgw store compact` writes: `lz4` (the default: a
    /// per-user lookup decompresses several pages per day, and LZ4 does that several times
    /// faster than zstd, for somewhat larger files) or `zstd` (at `zstd_level`).
    pub compact_codec: StoreCodec,
    /// Days of events, alerts and dead letters kept; `idgw store compact` (the scheduled
    /// maintenance) removes what is older. 0 keeps everything. The audit log and the
    /// checkpoints are never pruned.
    pub retention_days: u32,
    /// Keep each event's verbatim JSON in `events.raw` (the evidence an investigator and an
    /// auditor ask for, and what the gateway's on-demand detections re-read). `false`
    /// leaves the column null for throughput deployments: the normalized columns stay, and
    /// `detect_impossible_travel` / `detect_anomalies_ml` refuse such a store with the reason.
    pub raw: bool,
}

/// A Parquet compression the store can be configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreCodec {
    /// LZ4 (Parquet's `LZ4_RAW`).
    Lz4,
    /// zstd at `[store] zstd_level`.
    Zstd,
}

impl std::str::FromStr for StoreCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lz4" => Ok(StoreCodec::Lz4),
            "zstd" => Ok(StoreCodec::Zstd),
            other => Err(format!("{other:?} is not lz4 or zstd")),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            batch_rows: 2 * 1024,
            row_group_rows: 128 * 1024,
            max_rows_per_file: 1_000_000,
            zstd_level: 1,
            ingest_codec: StoreCodec::Lz4,
            ingest_page_rows: 256,
            ingest_dictionary: false,
            compact_codec: StoreCodec::Lz4,
            retention_days: 0,
            raw: true,
        }
    }
}

/// Variables other tools already use for these keys (the reference design's names).
const ALIASES: &[(&str, &str)] = &[
    ("KAFKA_BROKERS", "kafka.brokers"),
    ("OKTA_ORG_URL", "poller.org_url"),
    ("OKTA_API_TOKEN", "poller.api_token"),
    ("QDRANT_URL", "vectors.url"),
    ("QDRANT_API_KEY", "vectors.api_key"),
    ("VECTOR_DB_PATH", "vectors.path"),
    // Its name before the one rule (`IDGW_WEBHOOK_BEARER_TOKEN`).
    ("IDGW_WEBHOOK_TOKEN", "webhook.bearer_token"),
];

/// What the pipeline reads of a deployment file and the environment.
pub const SPEC: Spec<'static> = Spec {
    root: None,
    exclude: &["gateway"],
    optional_tables: &["poller.service_app"],
    aliases: ALIASES,
    file_only: &[],
};

impl PipelineConfig {
    /// Defaults, then `path` if given, then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Ok(Self::resolve(path, std::env::vars())?.config)
    }

    /// Defaults, then `path`, then `vars` (`IDGW_<TABLE>_<KEY>` and the aliases), with
    /// where each value came from.
    pub fn resolve(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded<Self>, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let mut loaded: Loaded<Self> = layered::load(&SPEC, path, vars.iter().cloned())?;
        let get = |n: &str| {
            vars.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        // The reference design's service-app names make a table of three variables.
        if let (Some(client_id), Some(key)) = (get("OKTA_SERVICE_CLIENT_ID"), get("OKTA_SERVICE_PRIVATE_KEY_FILE")) {
            loaded.config.poller.service_app = Some(crate::okta::credentials::ServiceAppConfig {
                client_id,
                private_key_file: key.into(),
                key_id: get("OKTA_SERVICE_KEY_ID"),
                scopes: vec!["okta.logs.read".into()],
            });
            loaded.sources.insert(
                "poller.service_app".into(),
                Source::Env("OKTA_SERVICE_CLIENT_ID".into()),
            );
        }
        // Bad tuning is an error at start, not a suppression silently ignored.
        loaded.config.detect.tuning()?;
        loaded.config.kafka.validate().map_err(ConfigError::Kafka)?;
        Ok(loaded)
    }

    /// The pipeline's sections of a deployment file. One file configures a deployment;
    /// its `[gateway]` table is read by `idgw gateway`, not here.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        let mut table: toml::Table = toml::from_str(text)?;
        table.remove("gateway");
        table.try_into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<PipelineConfig, ConfigError> {
        let vars = vars.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned()));
        PipelineConfig::resolve(None, vars).map(|l| l.config)
    }

    #[test]
    fn example_file_parses_and_env_overrides() {
        let text = include_str!("../../deploy/config.example.toml");
        let c = PipelineConfig::from_toml(text).unwrap();
        assert_eq!(c, PipelineConfig::default(), "the example documents the defaults");
        assert_eq!(env(&[("IDGW_STORE_BATCH_ROWS", "77")]).unwrap().store.batch_rows, 77);
        let err = env(&[("IDGW_STORE_ZSTD_LEVEL", "high")]).unwrap_err();
        assert!(err.to_string().contains("IDGW_STORE_ZSTD_LEVEL"), "{err}");
        assert!(PipelineConfig::from_toml("[store]\nbatch_rowz = 1").is_err());
        let c = env(&[("IDGW_STORE_COMPACT_CODEC", "zstd"), ("IDGW_STORE_INGEST_CODEC", "lz4")]).unwrap();
        assert_eq!(
            (c.store.compact_codec, c.store.ingest_codec),
            (StoreCodec::Zstd, StoreCodec::Lz4)
        );
        let err = env(&[("IDGW_STORE_COMPACT_CODEC", "brotli")]).unwrap_err();
        assert!(
            err.to_string().contains("lz4") && err.to_string().contains("brotli"),
            "{err}"
        );
        let toml = PipelineConfig::from_toml("[store]\ncompact_codec = \"zstd\"").unwrap();
        assert_eq!(toml.store.compact_codec, StoreCodec::Zstd);
        assert!(
            PipelineConfig::default().kafka.process_threads() >= 1,
            "0 means the cores"
        );
        let c = env(&[
            ("IDGW_KAFKA_PROCESS_THREADS", "3"),
            ("IDGW_KAFKA_BATCH_MAX_BYTES", "4194304"),
            ("IDGW_KAFKA_BATCH_MAX_WAIT_MS", "2"),
        ])
        .unwrap();
        assert_eq!(c.kafka.process_threads(), 3);
        assert_eq!((c.kafka.batch_max_bytes, c.kafka.batch_max_wait_ms), (4 << 20, 2));
    }

    /// Every key the example file sets has a variable by the one rule, and the variable
    /// changes that key (the issue: `IDGW_DETECT_TRAVEL_MIN_KM` and others were ignored).
    #[test]
    fn every_key_of_the_example_file_has_its_variable() {
        let text = include_str!("../../deploy/config.example.toml");
        let mut table: toml::Table = toml::from_str(text).unwrap();
        table.remove("gateway");
        let mut checked = 0;
        for (section, keys) in &table {
            let toml::Value::Table(keys) = keys else { continue };
            for (key, value) in keys {
                let changed = match value {
                    toml::Value::Boolean(b) => (!b).to_string(),
                    toml::Value::Integer(i) => (i + 1).to_string(),
                    toml::Value::Float(f) => (f + 1.5).to_string(),
                    toml::Value::String(s) if key.ends_with("codec") => {
                        if s == "lz4" {
                            "zstd".into()
                        } else {
                            "lz4".into()
                        }
                    }
                    toml::Value::String(s) if key == "listen" => format!("{s}1"),
                    toml::Value::String(s) => format!("{s}x"),
                    toml::Value::Array(_) => "a, b".into(),
                    // Tables ([kafka.consumer], [poller.retry]) are checked through their keys.
                    _ => continue,
                };
                let name = format!("IDGW_{}_{}", section.to_uppercase(), key.to_uppercase());
                let c = env(&[(&name, &changed)]).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_ne!(c, PipelineConfig::default(), "{name}={changed} changed nothing");
                checked += 1;
            }
        }
        assert!(checked > 60, "only {checked} keys checked");
        let c = env(&[("IDGW_POLLER_RETRY_MAX_RETRIES", "9")]).unwrap();
        assert_eq!(c.poller.retry.max_retries, 9);
        let err = env(&[("IDGW_DETECT_TRAVEL_MIN_KMS", "1")]).unwrap_err();
        assert!(err.to_string().contains("IDGW_DETECT_TRAVEL_MIN_KMS"), "{err}");
    }

    #[test]
    fn detect_lists_and_windows_take_env_overrides() {
        assert!(
            PipelineConfig::default().detect.sanctioned_countries.is_empty(),
            "off unless the tenant names them"
        );
        let c = env(&[
            ("IDGW_DETECT_SANCTIONED_COUNTRIES", r#"["North Korea", "Iran"]"#),
            ("IDGW_DETECT_ADMIN_GROUPS", "Okta Admins, 00g1helpdesk"),
            ("IDGW_DETECT_UNAUTH_APP_ATTEMPTS", "9"),
            ("IDGW_DETECT_ENROLL_AFTER_RESET_WINDOW_S", "7200"),
        ])
        .unwrap();
        assert_eq!(c.detect.sanctioned_countries, ["North Korea", "Iran"]);
        assert_eq!(c.detect.admin_groups, ["Okta Admins", "00g1helpdesk"]);
        assert_eq!(
            (c.detect.unauth_app_attempts, c.detect.enroll_after_reset_window_s),
            (9, 7200)
        );
        let err = env(&[("IDGW_DETECT_SANCTIONED_COUNTRIES", "[Iran")]).unwrap_err();
        assert!(err.to_string().contains("IDGW_DETECT_SANCTIONED_COUNTRIES"), "{err}");
        assert!(
            env(&[("IDGW_DETECT_ADMIN_GROUPS", "")])
                .unwrap()
                .detect
                .admin_groups
                .is_empty()
        );
        let toml = PipelineConfig::from_toml("[detect]\nsanctioned_countries = [\"Iran\"]").unwrap();
        assert_eq!(toml.detect.sanctioned_countries, ["Iran"]);
    }

    #[test]
    fn kafka_overrides_cannot_undo_kafka_security() {
        let c = PipelineConfig::from_toml("[kafka.consumer]\n\"security.protocol\" = \"plaintext\"\n").unwrap();
        let e = c.kafka.validate().unwrap_err();
        assert!(e.contains("security.protocol") && e.contains("[kafka.security]"), "{e}");
        let c = PipelineConfig::from_toml("[kafka.producer]\n\"enable.ssl.certificate.verification\" = \"false\"\n")
            .unwrap();
        assert!(c.kafka.validate().is_err());
    }

    #[test]
    fn qdrant_and_reference_names_override_the_vector_index() {
        let c = env(&[
            ("QDRANT_URL", "http://qdrant:6334"),
            ("VECTOR_DB_PATH", "/data/vectors"),
            ("IDGW_VECTORS_ENABLED", "false"),
            ("KAFKA_BROKERS", "k1:9092,k2:9092"),
            ("IDGW_WEBHOOK_TOKEN", "t0k"),
        ])
        .unwrap();
        assert_eq!(c.vectors.url.as_deref(), Some("http://qdrant:6334"));
        assert_eq!(c.vectors.path.as_deref(), Some("/data/vectors"));
        assert!(!c.vectors.enabled);
        assert_eq!(c.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(c.webhook.bearer_token, "t0k");
        // An empty QDRANT_URL means the embedded index.
        assert_eq!(env(&[("QDRANT_URL", "")]).unwrap().vectors.url, None);
    }
}
