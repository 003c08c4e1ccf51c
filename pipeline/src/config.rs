//! Pipeline configuration: compiled-in defaults, then the `--config` TOML file, then
//! environment variables (`IDGW_<SECTION>_<KEY>`, e.g. `IDGW_STORE_BATCH_ROWS`).
//! `deploy/config.example.toml` documents every knob.

use std::path::Path;

use serde::{Deserialize, Serialize};

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
    /// An environment override has a value of the wrong type.
    #[error("environment variable {name}={value:?}: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
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
    /// Bytes of input handed from the reader to the normalizer at once. Small enough to
    /// stay in a core's L2 cache (1 MiB here) between being copied in and being decoded:
    /// 256 KiB batches used 2–3 % less CPU per event than 4 MiB (docs/benchmarks.md).
    pub read_batch_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_event_bytes: 1 << 20,
            deadletter_raw_bytes: 64 << 10,
            read_batch_bytes: 256 << 10,
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
    /// Compression of the files `idgw store compact` writes: `lz4` (the default: a
    /// per-user lookup decompresses several pages per day, and LZ4 does that several times
    /// faster than zstd, for somewhat larger files) or `zstd` (at `zstd_level`).
    pub compact_codec: StoreCodec,
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
            ingest_codec: StoreCodec::Zstd,
            compact_codec: StoreCodec::Lz4,
        }
    }
}

impl PipelineConfig {
    /// Defaults, then `path` if given, then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = fs_err::read_to_string(p)?;
                Self::from_toml(&text).map_err(|e| ConfigError::Parse {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => PipelineConfig::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        // Bad tuning is an error at start, not a suppression silently ignored.
        config.detect.tuning()?;
        Ok(config)
    }

    /// The pipeline's sections of a deployment file. One file configures a deployment;
    /// its `[gateway]` table is read by `idgw gateway`, not here.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        let mut table: toml::Table = toml::from_str(text)?;
        table.remove("gateway");
        table.try_into()
    }

    /// Applies `IDGW_*` overrides read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn set<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            name: &str,
            slot: &mut T,
        ) -> Result<(), ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            if let Some(value) = get(name) {
                *slot = value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                    name: name.to_owned(),
                    value: value.clone(),
                    message: e.to_string(),
                })?;
            }
            Ok(())
        }
        /// A list: a JSON array (`["North Korea","Iran"]`, for names with commas), else
        /// comma-separated; empty clears it.
        fn list(get: &impl Fn(&str) -> Option<String>, name: &str, slot: &mut Vec<String>) -> Result<(), ConfigError> {
            let Some(value) = get(name) else {
                return Ok(());
            };
            let v = value.trim();
            *slot = if v.starts_with('[') {
                serde_json::from_str(v).map_err(|e| ConfigError::Env {
                    name: name.to_owned(),
                    value: value.clone(),
                    message: e.to_string(),
                })?
            } else {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            Ok(())
        }
        set(&get, "IDGW_INGEST_MAX_EVENT_BYTES", &mut self.ingest.max_event_bytes)?;
        set(
            &get,
            "IDGW_INGEST_DEADLETTER_RAW_BYTES",
            &mut self.ingest.deadletter_raw_bytes,
        )?;
        set(&get, "IDGW_INGEST_READ_BATCH_BYTES", &mut self.ingest.read_batch_bytes)?;
        set(&get, "IDGW_STORE_BATCH_ROWS", &mut self.store.batch_rows)?;
        set(&get, "IDGW_STORE_ROW_GROUP_ROWS", &mut self.store.row_group_rows)?;
        set(&get, "IDGW_STORE_MAX_ROWS_PER_FILE", &mut self.store.max_rows_per_file)?;
        set(&get, "IDGW_STORE_ZSTD_LEVEL", &mut self.store.zstd_level)?;
        set(&get, "IDGW_STORE_INGEST_CODEC", &mut self.store.ingest_codec)?;
        set(&get, "IDGW_STORE_COMPACT_CODEC", &mut self.store.compact_codec)?;
        let d = &mut self.detect;
        set(&get, "IDGW_DETECT_ENABLED", &mut d.enabled)?;
        set(&get, "IDGW_DETECT_ALLOWED_LATENESS_S", &mut d.allowed_lateness_s)?;
        set(&get, "IDGW_DETECT_RISK_HALF_LIFE_H", &mut d.risk_half_life_h)?;
        set(&get, "IDGW_DETECT_TRAVEL_MAX_KMH", &mut d.travel_max_kmh)?;
        set(
            &get,
            "IDGW_DETECT_TRAVEL_COUNTRY_ACCURACY_KM",
            &mut d.travel_country_accuracy_km,
        )?;
        set(&get, "IDGW_DETECT_BRUTE_FORCE_FAILURES", &mut d.brute_force_failures)?;
        set(&get, "IDGW_DETECT_SPRAY_USERS", &mut d.spray_users)?;
        set(&get, "IDGW_DETECT_SPRAY_SLOW_WINDOW_S", &mut d.spray_slow_window_s)?;
        set(&get, "IDGW_DETECT_SPRAY_SLOW_USERS", &mut d.spray_slow_users)?;
        set(
            &get,
            "IDGW_DETECT_RULE_AGGREGATION_WINDOW_S",
            &mut d.rule_aggregation_window_s,
        )?;
        set(&get, "IDGW_DETECT_MFA_FATIGUE_DENIALS", &mut d.mfa_fatigue_denials)?;
        set(
            &get,
            "IDGW_DETECT_ANOMALY_MODEL_THRESHOLD",
            &mut d.anomaly_model_threshold,
        )?;
        set(&get, "IDGW_DETECT_BEHAVIOUR_HALF_LIFE_H", &mut d.behaviour_half_life_h)?;
        list(&get, "IDGW_DETECT_SANCTIONED_COUNTRIES", &mut d.sanctioned_countries)?;
        list(&get, "IDGW_DETECT_ADMIN_GROUPS", &mut d.admin_groups)?;
        set(&get, "IDGW_DETECT_UNAUTH_APP_ATTEMPTS", &mut d.unauth_app_attempts)?;
        set(&get, "IDGW_DETECT_UNAUTH_APP_WINDOW_S", &mut d.unauth_app_window_s)?;
        set(&get, "IDGW_DETECT_RATE_LIMIT_WINDOW_S", &mut d.rate_limit_window_s)?;
        set(
            &get,
            "IDGW_DETECT_ENROLL_AFTER_RESET_WINDOW_S",
            &mut d.enroll_after_reset_window_s,
        )?;
        let k = &mut self.kafka;
        // The reference design's name for the brokers.
        set(&get, "KAFKA_BROKERS", &mut k.brokers)?;
        set(&get, "IDGW_KAFKA_TOPIC", &mut k.topic)?;
        set(&get, "IDGW_KAFKA_GROUP_ID", &mut k.group_id)?;
        set(&get, "IDGW_KAFKA_ALERTS_TOPIC", &mut k.alerts_topic)?;
        set(&get, "IDGW_KAFKA_DEADLETTER_TOPIC", &mut k.deadletter_topic)?;
        set(&get, "IDGW_KAFKA_COMMIT_INTERVAL_MS", &mut k.commit_interval_ms)?;
        set(&get, "IDGW_KAFKA_PROCESS_THREADS", &mut k.process_threads)?;
        set(&get, "IDGW_KAFKA_BATCH_MAX_BYTES", &mut k.batch_max_bytes)?;
        set(&get, "IDGW_KAFKA_BATCH_MAX_WAIT_MS", &mut k.batch_max_wait_ms)?;
        let p = &mut self.poller;
        set(&get, "IDGW_POLLER_ENABLED", &mut p.enabled)?;
        set(&get, "IDGW_POLLER_PRODUCE", &mut p.produce)?;
        set(&get, "IDGW_POLLER_SINCE_MINUTES", &mut p.since_minutes)?;
        // The reference design's Okta names.
        set(&get, "OKTA_ORG_URL", &mut p.org_url)?;
        set(&get, "OKTA_API_TOKEN", &mut p.api_token)?;
        let nonempty = |n: &str| get(n).filter(|v| !v.trim().is_empty());
        if let (Some(client_id), Some(key)) = (
            nonempty("OKTA_SERVICE_CLIENT_ID"),
            nonempty("OKTA_SERVICE_PRIVATE_KEY_FILE"),
        ) {
            p.service_app = Some(crate::okta::credentials::ServiceAppConfig {
                client_id,
                private_key_file: key.into(),
                key_id: nonempty("OKTA_SERVICE_KEY_ID"),
                scopes: vec!["okta.logs.read".into()],
            });
        }
        set(&get, "IDGW_WEBHOOK_URL", &mut self.webhook.url)?;
        set(&get, "IDGW_WEBHOOK_TOKEN", &mut self.webhook.bearer_token)?;
        set(&get, "IDGW_ADMIN_LISTEN", &mut self.admin.listen)?;
        let v = &mut self.vectors;
        set(&get, "IDGW_VECTORS_ENABLED", &mut v.enabled)?;
        set(&get, "IDGW_VECTORS_FLUSH_INTERVAL_S", &mut v.flush_interval_s)?;
        set(&get, "IDGW_VECTORS_COLLECTION", &mut v.collection)?;
        // The names a Qdrant deployment and the reference design already use.
        if let Some(url) = get("QDRANT_URL") {
            v.url = Some(url).filter(|u| !u.trim().is_empty());
        }
        if let Some(key) = get("QDRANT_API_KEY") {
            v.api_key = Some(key).filter(|k| !k.is_empty());
        }
        if let Some(path) = get("VECTOR_DB_PATH") {
            v.path = Some(path).filter(|p| !p.trim().is_empty());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_env_overrides() {
        let text = include_str!("../../deploy/config.example.toml");
        let mut c = PipelineConfig::from_toml(text).unwrap();
        assert_eq!(c, PipelineConfig::default(), "the example documents the defaults");
        c.apply_env(|n| (n == "IDGW_STORE_BATCH_ROWS").then(|| "77".to_owned()))
            .unwrap();
        assert_eq!(c.store.batch_rows, 77);
        let err = c
            .apply_env(|n| (n == "IDGW_STORE_ZSTD_LEVEL").then(|| "high".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("IDGW_STORE_ZSTD_LEVEL"));
        assert!(PipelineConfig::from_toml("[store]\nbatch_rowz = 1").is_err());
        c.apply_env(|n| (n == "IDGW_STORE_COMPACT_CODEC").then(|| "zstd".to_owned()))
            .unwrap();
        assert_eq!(c.store.compact_codec, StoreCodec::Zstd);
        let err = c
            .apply_env(|n| (n == "IDGW_STORE_COMPACT_CODEC").then(|| "brotli".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("not lz4 or zstd"), "{err}");
        let toml = PipelineConfig::from_toml("[store]\ncompact_codec = \"zstd\"").unwrap();
        assert_eq!(toml.store.compact_codec, StoreCodec::Zstd);
        assert_eq!(c.store.ingest_codec, StoreCodec::Zstd);
        c.apply_env(|n| (n == "IDGW_STORE_INGEST_CODEC").then(|| "lz4".to_owned()))
            .unwrap();
        assert_eq!(c.store.ingest_codec, StoreCodec::Lz4);
        let toml = PipelineConfig::from_toml("[store]\ningest_codec = \"lz4\"").unwrap();
        assert_eq!(toml.store.ingest_codec, StoreCodec::Lz4);
        assert!(c.kafka.process_threads() >= 1, "0 means the cores");
        c.apply_env(|n| (n == "IDGW_KAFKA_PROCESS_THREADS").then(|| "3".to_owned()))
            .unwrap();
        assert_eq!(c.kafka.process_threads(), 3);
        let env = |n: &str| match n {
            "IDGW_KAFKA_BATCH_MAX_BYTES" => Some("4194304".to_owned()),
            "IDGW_KAFKA_BATCH_MAX_WAIT_MS" => Some("2".to_owned()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!((c.kafka.batch_max_bytes, c.kafka.batch_max_wait_ms), (4 << 20, 2));
    }

    #[test]
    fn detect_lists_and_windows_take_env_overrides() {
        let mut c = PipelineConfig::default();
        assert!(
            c.detect.sanctioned_countries.is_empty(),
            "off unless the tenant names them"
        );
        let env = |n: &str| match n {
            "IDGW_DETECT_SANCTIONED_COUNTRIES" => Some(r#"["North Korea", "Iran"]"#.to_owned()),
            "IDGW_DETECT_ADMIN_GROUPS" => Some("Okta Admins, 00g1helpdesk".to_owned()),
            "IDGW_DETECT_UNAUTH_APP_ATTEMPTS" => Some("9".to_owned()),
            "IDGW_DETECT_ENROLL_AFTER_RESET_WINDOW_S" => Some("7200".to_owned()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.detect.sanctioned_countries, ["North Korea", "Iran"]);
        assert_eq!(c.detect.admin_groups, ["Okta Admins", "00g1helpdesk"]);
        assert_eq!(
            (c.detect.unauth_app_attempts, c.detect.enroll_after_reset_window_s),
            (9, 7200)
        );
        let err = c
            .apply_env(|n| (n == "IDGW_DETECT_SANCTIONED_COUNTRIES").then(|| "[Iran".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("IDGW_DETECT_SANCTIONED_COUNTRIES"), "{err}");
        c.apply_env(|n| (n == "IDGW_DETECT_ADMIN_GROUPS").then(String::new))
            .unwrap();
        assert!(c.detect.admin_groups.is_empty());
        let toml = PipelineConfig::from_toml("[detect]\nsanctioned_countries = [\"Iran\"]").unwrap();
        assert_eq!(toml.detect.sanctioned_countries, ["Iran"]);
    }

    #[test]
    fn qdrant_and_reference_names_override_the_vector_index() {
        let mut c = PipelineConfig::default();
        let env = |n: &str| match n {
            "QDRANT_URL" => Some("http://qdrant:6334".to_owned()),
            "VECTOR_DB_PATH" => Some("/data/vectors".to_owned()),
            "IDGW_VECTORS_ENABLED" => Some("false".to_owned()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.vectors.url.as_deref(), Some("http://qdrant:6334"));
        assert_eq!(c.vectors.path.as_deref(), Some("/data/vectors"));
        assert!(!c.vectors.enabled);
        // An empty QDRANT_URL means the embedded index.
        c.apply_env(|n| (n == "QDRANT_URL").then(String::new)).unwrap();
        assert_eq!(c.vectors.url, None);
    }
}
