//! Layered configuration shared by the pipeline and the gateway: compiled-in defaults, then
//! the deployment's TOML file, then environment variables, merged and extracted by
//! `figment`.
//!
//! **One naming rule**: a key's variable is `IDGW_` followed by its table path and name,
//! upper-cased and joined by `_` (`[detect] travel_min_km` → `IDGW_DETECT_TRAVEL_MIN_KM`,
//! `[gateway.approvals] public_url` → `IDGW_GATEWAY_APPROVALS_PUBLIC_URL`); a [`Spec`] may
//! keep tables to the file (`file_only`). Since names contain `_`
//! themselves, the longest table path that matches wins. A variable that names a table but
//! no key of it is an error, not silently ignored; variables outside every table (such as
//! `IDGW_LOG`) are not configuration. A few names other tools already use (`KAFKA_BROKERS`,
//! `OKTA_API_TOKEN`, `QDRANT_URL`, …) are aliases of their keys.
//!
//! Values from the environment are strings, read as the key's type (`extract_lossy`): a
//! topic named `123` stays a string, `IDGW_STORE_BATCH_ROWS=77` becomes a number. List
//! keys take a JSON array (`["North Korea","Iran"]`, for names with commas) or a
//! comma-separated list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, providers::Serialized};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

/// Every configuration variable starts with this.
pub const PREFIX: &str = "IDGW_";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Source {
    /// The compiled-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(n) => write!(f, "env {n}"),
        }
    }
}

/// What one configuration type reads.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// The file's table this type is (`Some("gateway")`), or `None` for the whole file.
    pub root: Option<&'a str>,
    /// Top-level tables of the file that belong to someone else (the pipeline skips
    /// `gateway`).
    pub exclude: &'a [&'a str],
    /// Tables that are absent by default (`Option` of a struct), which the defaults
    /// therefore cannot show.
    pub optional_tables: &'a [&'a str],
    /// Other variable names for keys: `(variable, dotted path)`.
    pub aliases: &'a [(&'a str, &'a str)],
    /// Tables only the file may set: a variable by the rule that names one is an error.
    pub file_only: &'a [&'a str],
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The file is not TOML.
    #[error("invalid configuration {path}: {message}")]
    Toml { path: String, message: String },
    /// A value cannot be read as its key's type, or names no key.
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    /// A variable of the `IDGW_<TABLE>_` form names no key of its table.
    #[error("environment variable {name} names no configuration key ({hint})")]
    UnknownVariable { name: String, hint: String },
    /// A variable names a key of a table only the file sets.
    #[error("environment variable {name}: [{table}] is set only in the configuration file ({why})")]
    FileOnly {
        name: String,
        table: String,
        why: &'static str,
    },
}

/// A loaded configuration and where each of its values came from.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The effective configuration.
    pub config: T,
    /// Dotted key path (below the root) → source, for keys the file or the environment set.
    pub sources: BTreeMap<String, Source>,
}

impl<T> Loaded<T> {
    /// Where the value at `path` came from: the deepest recorded ancestor, else the default.
    pub fn source_of(&self, path: &str) -> Source {
        let mut p = path;
        loop {
            if let Some(s) = self.sources.get(p) {
                return s.clone();
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return Source::Default,
            }
        }
    }
}

/// Reads `T` from defaults, `path` and `vars` (the process environment in production).
pub fn load<T>(
    spec: &Spec<'_>,
    path: Option<&Path>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded<T>, LayerError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let defaults = serde_json::to_value(T::default()).map_err(|e| LayerError::Invalid {
        origin: "defaults".into(),
        message: e.to_string(),
    })?;
    let mut sources = BTreeMap::new();
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = path {
        let table = file_table(spec, path)?;
        let json = serde_json::to_value(&table).unwrap_or(Json::Null);
        for (k, _) in leaves(&json) {
            sources.insert(k, Source::File(path.to_owned()));
        }
        figment = figment.merge(Serialized::defaults(table));
    }
    let env = EnvLayer::read(spec, &defaults, vars)?;
    for (key, name) in &env.names {
        sources.insert(key.clone(), Source::Env(name.clone()));
    }
    figment = figment.merge(env);
    let config = figment.extract_lossy::<T>().map_err(|e| {
        let key = e.path.join(".");
        let origin = match (key.is_empty(), sources.get(&key)) {
            (false, Some(s)) => format!("{s} (key {key})"),
            (false, None) => format!("key {key}"),
            (true, _) => "configuration".to_owned(),
        };
        LayerError::Invalid {
            origin,
            message: e.kind.to_string(),
        }
    })?;
    Ok(Loaded { config, sources })
}

/// The file's part for `spec`, as a TOML table.
fn file_table(spec: &Spec<'_>, path: &Path) -> Result<toml::Table, LayerError> {
    let text = std::fs::read_to_string(path).map_err(|source| LayerError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| LayerError::Toml {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    for t in spec.exclude {
        table.remove(*t);
    }
    Ok(match spec.root {
        Some(root) => match table.remove(root) {
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                return Err(LayerError::Toml {
                    path: path.display().to_string(),
                    message: format!("`{root}` is not a table"),
                });
            }
            None => toml::Table::new(),
        },
        None => table,
    })
}

/// Every leaf (a scalar, an array or an empty table) with its dotted path. Keys of maps may
/// hold dots themselves (librdkafka's `"fetch.wait.max.ms"`), so each value stays with its
/// own path rather than being looked up again.
fn leaves(v: &Json) -> Vec<(String, Json)> {
    fn walk(v: &Json, path: &str, out: &mut Vec<(String, Json)>) {
        match v {
            Json::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(child, &p, out);
                }
            }
            _ if !path.is_empty() => out.push((path.to_owned(), v.clone())),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

/// The tables of a configuration: every object in its defaults, and the optional ones.
fn tables(defaults: &Json, optional: &[&str]) -> Vec<String> {
    fn walk(v: &Json, prefix: &str, out: &mut Vec<String>) {
        if let Json::Object(m) = v {
            out.push(prefix.to_owned());
            for (k, child) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(child, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(defaults, "", &mut out);
    out.extend(optional.iter().map(|t| (*t).to_owned()));
    out.retain(|t| !t.is_empty());
    // Longest first: `gateway.audit.kafka` before `gateway.audit`.
    out.sort_by_key(|t| std::cmp::Reverse(t.len()));
    out
}

/// The value at a dotted path of the defaults, if the defaults have it.
fn default_at<'a>(defaults: &'a Json, path: &str) -> Option<&'a Json> {
    path.split('.').try_fold(defaults, |v, k| v.get(k))
}

/// The environment, resolved to key paths.
#[derive(Debug, Default)]
struct EnvLayer {
    dict: Dict,
    /// Dotted path → the variable that set it.
    names: BTreeMap<String, String>,
}

impl EnvLayer {
    fn read(
        spec: &Spec<'_>,
        defaults: &Json,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, LayerError> {
        let tables = tables(defaults, spec.optional_tables);
        let root_prefix = spec.root.map(|r| format!("{}_", r.to_ascii_uppercase()));
        let mut layer = EnvLayer::default();
        let mut vars: Vec<(String, String)> = vars.into_iter().collect();
        // Aliases first, then the rule's names, so for one key the rule's name wins (a
        // rotated IDGW_POLLER_API_TOKEN over a stale OKTA_API_TOKEN), the same on every run.
        vars.sort_by(|(a, _), (b, _)| {
            let alias = |n: &str| spec.aliases.iter().any(|(x, _)| *x == n);
            (!alias(a), a).cmp(&(!alias(b), b))
        });
        for (name, value) in vars {
            let key = if let Some((_, path)) = spec.aliases.iter().find(|(alias, _)| *alias == name) {
                (*path).to_owned()
            } else if let Some(rest) = name.strip_prefix(PREFIX) {
                // The gateway's variables carry its root table (`IDGW_GATEWAY_…`).
                let rest = match &root_prefix {
                    Some(rp) => match rest.strip_prefix(rp.as_str()) {
                        Some(r) => r,
                        None => continue,
                    },
                    None => rest,
                };
                if spec
                    .exclude
                    .iter()
                    .any(|t| rest.starts_with(&format!("{}_", t.to_ascii_uppercase())))
                {
                    continue;
                }
                let lower = rest.to_ascii_lowercase();
                let Some(table) = tables
                    .iter()
                    .find(|t| lower.starts_with(&format!("{}_", t.replace('.', "_"))))
                else {
                    continue;
                };
                if let Some(t) = spec
                    .file_only
                    .iter()
                    .find(|t| table.as_str() == **t || table.starts_with(&format!("{t}.")))
                {
                    return Err(LayerError::FileOnly {
                        name,
                        table: match spec.root {
                            Some(r) => format!("{r}.{t}"),
                            None => (*t).to_owned(),
                        },
                        why: "who may call and which actions need a second person's approval are reviewed there, not changed by a process's environment",
                    });
                }
                let field = &lower[table.len() + 1..];
                let key = format!("{table}.{field}");
                let parent = default_at(defaults, table);
                // Maps (`[kafka.consumer]`, templates) take any key; structs only theirs.
                let known = match parent {
                    Some(Json::Object(m)) => m.contains_key(field) || m.is_empty(),
                    // An optional table: its keys are checked when the value is extracted.
                    _ => true,
                };
                if !known {
                    return Err(LayerError::UnknownVariable {
                        name,
                        hint: format!("[{table}] has no key `{field}`"),
                    });
                }
                key
            } else {
                continue;
            };
            let Some(v) = env_value(default_at(defaults, &key), &value).map_err(|message| LayerError::Invalid {
                origin: format!("env {name} (key {key})"),
                message,
            })?
            else {
                continue;
            };
            layer.dict = merge(std::mem::take(&mut layer.dict), nest(&key, v));
            layer.names.insert(key, name);
        }
        Ok(layer)
    }
}

/// An environment string as a value for a key whose default is `default`; `None` leaves
/// the key alone (an empty value for a key that is unset by default).
fn env_value(default: Option<&Json>, raw: &str) -> Result<Option<Value>, String> {
    let v = raw.trim();
    Ok(Some(match default {
        Some(Json::Array(_)) => {
            let items: Vec<String> = if v.starts_with('[') {
                serde_json::from_str(v).map_err(|e| format!("not a JSON array of strings: {e}"))?
            } else {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            Value::from(items)
        }
        None | Some(Json::Null) if v.is_empty() => return Ok(None),
        // Strings keep their spaces (a password may end in one); others are trimmed and
        // read as the key's type at extraction.
        Some(Json::String(_)) | None | Some(Json::Null) => Value::from(raw.to_owned()),
        _ => Value::from(v.to_owned()),
    }))
}

fn nest(key: &str, value: Value) -> Dict {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut dict = Dict::new();
    dict.insert(last.to_owned(), value);
    while let Some(p) = parts.pop() {
        let mut outer = Dict::new();
        outer.insert(p.to_owned(), Value::from(dict));
        dict = outer;
    }
    dict
}

fn merge(mut a: Dict, b: Dict) -> Dict {
    for (k, v) in b {
        match (a.remove(&k), v) {
            (Some(Value::Dict(_, x)), Value::Dict(_, y)) => {
                a.insert(k, Value::from(merge(x, y)));
            }
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
    a
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variables")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Keys whose values are secrets: shown masked.
pub fn is_secret(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    ["password", "token", "secret", "api_key", "private_key", "routing_key"]
        .iter()
        .any(|s| last.contains(s))
}

/// Keys whose values are URLs that carry a credential in their path (a Slack or PagerDuty
/// webhook): shown as scheme and host only.
fn is_secret_url(path: &str) -> bool {
    path == "webhook.url"
}

/// `https://hooks.slack.com/services/T0/B0/xyz` → `https://hooks.slack.com/…`.
pub fn mask_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            // user:password@host keeps only the host.
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None if url.is_empty() => String::new(),
        None => "…".into(),
    }
}

/// The effective configuration as rows of (dotted key, value, source), secrets masked.
pub fn rows<T: Serialize>(loaded: &Loaded<T>, prefix: &str) -> Vec<(String, Json, Source)> {
    let json = serde_json::to_value(&loaded.config).unwrap_or(Json::Null);
    leaves(&json)
        .into_iter()
        .map(|(k, mut value)| {
            if let Some(text) = value.as_str().filter(|s| !s.is_empty()) {
                if is_secret(&k) {
                    value = Json::String("********".into());
                } else if is_secret_url(&k) {
                    value = Json::String(mask_url(text));
                }
            }
            let source = loaded.source_of(&k);
            let full = if prefix.is_empty() { k } else { format!("{prefix}.{k}") };
            (full, value, source)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Conf {
        detect: Detect,
        kafka: Kafka,
        maps: BTreeMap<String, String>,
    }
    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Detect {
        travel_min_km: f64,
        spray_users: u32,
        countries: Vec<String>,
        url: Option<String>,
    }
    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Kafka {
        topic: String,
        brokers: String,
        security: Security,
    }
    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Security {
        password: String,
    }

    const SPEC: Spec<'static> = Spec {
        root: None,
        exclude: &["gateway"],
        optional_tables: &[],
        aliases: &[("KAFKA_BROKERS", "kafka.brokers")],
        file_only: &[],
    };

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn every_key_has_a_variable_by_one_rule() {
        let l: Loaded<Conf> = load(
            &SPEC,
            None,
            vars(&[
                ("IDGW_DETECT_TRAVEL_MIN_KM", "450.5"),
                ("IDGW_DETECT_SPRAY_USERS", " 12 "),
                ("IDGW_DETECT_COUNTRIES", "North Korea, Iran"),
                ("IDGW_KAFKA_TOPIC", "123"),
                ("IDGW_KAFKA_SECURITY_PASSWORD", "s3cret "),
                ("IDGW_MAPS_FETCH_MAX", "9"),
                ("KAFKA_BROKERS", "b:9092"),
                ("IDGW_KAFKA_BROKERS", "rule:9092"),
                ("IDGW_LOG", "debug"),
                ("IDGW_GATEWAY_POLICY_DRY_RUN", "true"),
            ]),
        )
        .unwrap();
        let c = &l.config;
        assert_eq!(c.detect.travel_min_km, 450.5);
        assert_eq!(c.detect.spray_users, 12);
        assert_eq!(c.detect.countries, ["North Korea", "Iran"]);
        assert_eq!(c.kafka.topic, "123", "a numeric-looking string stays a string");
        assert_eq!(c.kafka.security.password, "s3cret ");
        assert_eq!(c.kafka.brokers, "rule:9092", "the rule's name wins over an alias");
        assert_eq!(c.maps["fetch_max"], "9");
        assert_eq!(
            l.source_of("kafka.security.password"),
            Source::Env("IDGW_KAFKA_SECURITY_PASSWORD".into())
        );
        assert_eq!(l.source_of("detect.url"), Source::Default);
        let r = rows(&l, "");
        let pw = r.iter().find(|(k, ..)| k == "kafka.security.password").unwrap();
        assert_eq!(pw.1, Json::String("********".into()));
        assert_eq!(
            mask_url("https://hooks.slack.com/services/T0/B0/xyz"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(mask_url("https://u:p@h.example:8443/x?k=1"), "https://h.example:8443/…");
    }

    #[test]
    fn json_lists_empty_options_and_wrong_types() {
        let l: Loaded<Conf> = load(
            &SPEC,
            None,
            vars(&[
                ("IDGW_DETECT_COUNTRIES", r#"["Korea, North", "Iran"]"#),
                ("IDGW_DETECT_URL", ""),
            ]),
        )
        .unwrap();
        assert_eq!(l.config.detect.countries, ["Korea, North", "Iran"]);
        assert_eq!(l.config.detect.url, None);
        let e = load::<Conf>(&SPEC, None, vars(&[("IDGW_DETECT_SPRAY_USERS", "many")])).unwrap_err();
        assert!(e.to_string().contains("IDGW_DETECT_SPRAY_USERS"), "{e}");
        let e = load::<Conf>(&SPEC, None, vars(&[("IDGW_DETECT_TRAVEL_MIN_KMM", "1")])).unwrap_err();
        assert!(matches!(e, LayerError::UnknownVariable { .. }), "{e}");
        assert!(e.to_string().contains("travel_min_kmm"), "{e}");
    }

    #[test]
    fn the_file_sits_between_defaults_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[detect]\nspray_users = 20\ntravel_min_km = 100.0\n[gateway.policy]\ndry_run = true\n",
        )
        .unwrap();
        let l: Loaded<Conf> = load(&SPEC, Some(&path), vars(&[("IDGW_DETECT_SPRAY_USERS", "30")])).unwrap();
        assert_eq!(l.config.detect.spray_users, 30);
        assert_eq!(l.config.detect.travel_min_km, 100.0);
        assert_eq!(l.source_of("detect.travel_min_km"), Source::File(path.clone()));
        std::fs::write(&path, "[detect]\nspray_users = \"x\"\n").unwrap();
        let e = load::<Conf>(&SPEC, Some(&path), vars(&[])).unwrap_err();
        assert!(
            e.to_string().contains("c.toml") && e.to_string().contains("detect.spray_users"),
            "{e}"
        );
    }
}
