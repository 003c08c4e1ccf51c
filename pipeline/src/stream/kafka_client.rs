//! Connecting to Kafka as users run it: TLS (a private CA or the system's, client
//! certificates), SASL PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER with librdkafka's OIDC
//! client-credentials support (MSK, Confluent Cloud, Aiven, Strimzi), and a start-up check
//! that fails within seconds with librdkafka's own reason when a password is wrong or a
//! certificate untrusted, where librdkafka alone would retry without end.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use serde::{Deserialize, Serialize};

/// How the client reaches the brokers (`security.protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// No TLS, no authentication (a private network; the default).
    #[default]
    Plaintext,
    /// TLS; with `cert_file` and `key_file`, mutual TLS (Aiven's default).
    Ssl,
    /// SASL without TLS (only inside a trusted network).
    SaslPlaintext,
    /// SASL over TLS (MSK SCRAM, Confluent Cloud, Aiven SASL).
    SaslSsl,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }
    fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
    fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }
}

/// `[kafka.security]`: one block for every client of a deployment (consumer, alert and
/// dead-letter producers, the System Log poller's producer).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: Protocol,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER` (SASL protocols only).
    pub sasl_mechanism: String,
    /// SASL user (PLAIN, SCRAM; Confluent Cloud: the API key).
    pub username: String,
    /// SASL password (Confluent Cloud: the API secret).
    pub password: String,
    /// PEM file of the CA(s) that signed the brokers' certificates; empty: the system's
    /// store (public CAs, as MSK and Confluent Cloud use).
    pub ca_file: String,
    /// Client certificate (PEM) for mutual TLS.
    pub cert_file: String,
    /// Its private key (PEM).
    pub key_file: String,
    /// The key's password, if it is encrypted.
    pub key_password: String,
    /// Check that the broker's certificate names the host connected to (librdkafka's
    /// `ssl.endpoint.identification.algorithm=https`). Off only for brokers reached by an
    /// address their certificates do not name.
    pub verify_hostname: bool,
    /// OAUTHBEARER: the identity provider's token endpoint (client-credentials grant).
    pub oidc_token_url: String,
    /// OAUTHBEARER: the client id.
    pub oidc_client_id: String,
    /// OAUTHBEARER: the client secret.
    pub oidc_client_secret: String,
    /// OAUTHBEARER: the scope to ask for, if the provider needs one.
    pub oidc_scope: String,
    /// How long the start-up check waits for the brokers before giving up (seconds).
    pub connect_timeout_s: u64,
}

impl Default for KafkaSecurity {
    fn default() -> Self {
        KafkaSecurity {
            protocol: Protocol::Plaintext,
            sasl_mechanism: String::new(),
            username: String::new(),
            password: String::new(),
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            key_password: String::new(),
            verify_hostname: true,
            oidc_token_url: String::new(),
            oidc_client_id: String::new(),
            oidc_client_secret: String::new(),
            oidc_scope: String::new(),
            connect_timeout_s: 30,
        }
    }
}

/// Passwords and secrets never reach logs.
impl std::fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &str| if s.is_empty() { "<none>" } else { "<redacted>" };
        f.debug_struct("KafkaSecurity")
            .field("protocol", &self.protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("key_password", &redact(&self.key_password))
            .field("verify_hostname", &self.verify_hostname)
            .field("oidc_token_url", &self.oidc_token_url)
            .field("oidc_client_id", &self.oidc_client_id)
            .field("oidc_client_secret", &redact(&self.oidc_client_secret))
            .field("oidc_scope", &self.oidc_scope)
            .field("connect_timeout_s", &self.connect_timeout_s)
            .finish()
    }
}

/// Connection failures.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `[kafka.security]` does not describe a working connection.
    #[error("[kafka.security]: {0}")]
    Config(String),
    /// librdkafka refused the configuration.
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
    /// The brokers refused our credentials or certificate: retrying will not help.
    #[error("kafka at {brokers}: {reason}")]
    Refused { brokers: String, reason: String },
    /// No broker answered in time.
    #[error("kafka at {brokers}: no broker answered within {waited_s} s ({reason})")]
    Unreachable {
        brokers: String,
        waited_s: u64,
        reason: String,
    },
}

impl KafkaSecurity {
    /// The librdkafka properties for this block, or why it cannot work.
    pub fn properties(&self) -> Result<Vec<(&'static str, String)>, ConnectError> {
        let bad = |m: &str| Err(ConnectError::Config(m.to_owned()));
        let mut p = vec![("security.protocol", self.protocol.name().to_owned())];
        let mechanism = self.sasl_mechanism.trim().to_ascii_uppercase();
        if self.protocol.sasl() {
            match mechanism.as_str() {
                "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
                    if self.username.is_empty() || self.password.is_empty() {
                        return bad(&format!("SASL {mechanism} needs username and password"));
                    }
                    p.push(("sasl.username", self.username.clone()));
                    p.push(("sasl.password", self.password.clone()));
                }
                "OAUTHBEARER" => {
                    if self.oidc_token_url.is_empty()
                        || self.oidc_client_id.is_empty()
                        || self.oidc_client_secret.is_empty()
                    {
                        return bad("SASL OAUTHBEARER needs oidc_token_url, oidc_client_id and oidc_client_secret");
                    }
                    p.push(("sasl.oauthbearer.method", "oidc".into()));
                    p.push(("sasl.oauthbearer.token.endpoint.url", self.oidc_token_url.clone()));
                    p.push(("sasl.oauthbearer.client.id", self.oidc_client_id.clone()));
                    p.push(("sasl.oauthbearer.client.secret", self.oidc_client_secret.clone()));
                    if !self.oidc_scope.is_empty() {
                        p.push(("sasl.oauthbearer.scope", self.oidc_scope.clone()));
                    }
                }
                "" => {
                    return bad(
                        "a SASL protocol needs sasl_mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)",
                    );
                }
                other => {
                    return bad(&format!(
                        "sasl_mechanism {other:?} is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
                    ));
                }
            }
            p.push(("sasl.mechanism", mechanism));
        } else if !mechanism.is_empty() || !self.username.is_empty() {
            return bad(&format!(
                "sasl_mechanism and username need protocol sasl_ssl or sasl_plaintext, not {}",
                self.protocol.name()
            ));
        }
        if self.protocol.tls() {
            for (key, file) in [
                ("ssl.ca.location", &self.ca_file),
                ("ssl.certificate.location", &self.cert_file),
                ("ssl.key.location", &self.key_file),
            ] {
                if file.is_empty() {
                    continue;
                }
                // A missing file is our error, named, not an OpenSSL one.
                if !std::path::Path::new(file).is_file() {
                    return bad(&format!("{key}: no file {file}"));
                }
                p.push((key, file.clone()));
            }
            if self.cert_file.is_empty() != self.key_file.is_empty() {
                return bad("mutual TLS needs both cert_file and key_file");
            }
            if !self.key_password.is_empty() {
                p.push(("ssl.key.password", self.key_password.clone()));
            }
            // Without a private CA, any certificate a public CA signed for any name would pass:
            // a man in the middle with a certificate for his own domain.
            if !self.verify_hostname && self.ca_file.is_empty() {
                return bad("verify_hostname = false needs ca_file (the private CA that signed the brokers)");
            }
            let algorithm = if self.verify_hostname { "https" } else { "none" };
            p.push(("ssl.endpoint.identification.algorithm", algorithm.into()));
        } else if !self.ca_file.is_empty() || !self.cert_file.is_empty() {
            return bad(&format!(
                "ca_file and cert_file need protocol ssl or sasl_ssl, not {}",
                self.protocol.name()
            ));
        }
        Ok(p)
    }
}

/// A client configuration for `brokers` with `security` and then `overrides` (the user's
/// `[kafka.consumer]` / `[kafka.producer]` properties, which win).
pub fn client_config<'a>(
    brokers: &str,
    security: &KafkaSecurity,
    base: impl IntoIterator<Item = (&'a str, &'a str)>,
    overrides: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<ClientConfig, ConnectError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in security.properties()? {
        c.set(k, v);
    }
    for (k, v) in base {
        c.set(k, v);
    }
    for (k, v) in overrides {
        c.set(k, v);
    }
    Ok(c)
}

/// Remembers the last error librdkafka reported while connecting.
#[derive(Default)]
struct LastError(Mutex<Option<(RDKafkaErrorCode, String)>>);

impl ClientContext for LastError {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(code) = error.rdkafka_error_code() {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((code, reason.to_owned()));
        }
    }
}

impl ProducerContext for LastError {
    type DeliveryOpaque = ();
    // The check produces nothing.
    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Errors no retry can mend: credentials, certificates, a protocol mismatch.
fn refused(code: RDKafkaErrorCode, reason: &str) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::SSL
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::IllegalSASLState
            | RDKafkaErrorCode::UnsupportedSASLMechanism
    ) || reason.contains("SSL handshake failed")
        || reason.contains("certificate verify failed")
        || reason.contains("SASL authentication error")
}

/// Connects with `config` and asks for the cluster's metadata: `Ok` once a broker answers,
/// an error as soon as one refuses our credentials or certificate, or after `timeout`.
pub fn check(config: &ClientConfig, brokers: &str, timeout: Duration) -> Result<(), ConnectError> {
    let producer: BaseProducer<LastError> = config.create_with_context(LastError::default())?;
    let deadline = Instant::now() + timeout;
    let last = || -> Option<(RDKafkaErrorCode, String)> {
        producer.context().0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    };
    loop {
        let attempt = producer.client().fetch_metadata(None, Duration::from_millis(500));
        if attempt.is_ok() {
            return Ok(());
        }
        // librdkafka hands errors to the context only from a poll.
        producer.poll(Duration::ZERO);
        if let Some((code, reason)) = last()
            && refused(code, &reason)
        {
            return Err(ConnectError::Refused {
                brokers: brokers.to_owned(),
                reason: format!("{reason} ({code:?})"),
            });
        }
        if Instant::now() >= deadline {
            let reason = match (last(), attempt) {
                (Some((code, reason)), _) => format!("{reason} ({code:?})"),
                (None, Err(e)) => e.to_string(),
                (None, Ok(_)) => unreachable!("returned above"),
            };
            return Err(ConnectError::Unreachable {
                brokers: brokers.to_owned(),
                waited_s: timeout.as_secs(),
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(s: &KafkaSecurity) -> Result<std::collections::BTreeMap<&'static str, String>, String> {
        s.properties()
            .map(|p| p.into_iter().collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn scram_over_tls_sets_what_librdkafka_needs() {
        // A CA certificate librdkafka can load (it reads the file when the client is made).
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=test-ca",
            ])
            .arg("-keyout")
            .arg(dir.path().join("ca.key"))
            .arg("-out")
            .arg(&ca)
            .output()
            .expect("openssl runs");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let s = KafkaSecurity {
            protocol: Protocol::SaslSsl,
            sasl_mechanism: "scram-sha-512".into(),
            username: "idgw".into(),
            password: "pw".into(),
            ca_file: ca.display().to_string(),
            ..KafkaSecurity::default()
        };
        let p = props(&s).unwrap();
        assert_eq!(p["security.protocol"], "sasl_ssl");
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(p["ssl.ca.location"], ca.display().to_string());
        assert_eq!(p["ssl.endpoint.identification.algorithm"], "https");
        assert!(!format!("{s:?}").contains("pw\""), "{s:?}");
        // The properties are ones this librdkafka build knows (ssl and sasl compiled in).
        let mut c = ClientConfig::new();
        for (k, v) in s.properties().unwrap() {
            c.set(k, v);
        }
        c.create::<BaseProducer>()
            .expect("librdkafka accepts TLS and SCRAM properties");
    }

    #[test]
    fn incomplete_blocks_are_refused_with_the_reason() {
        let s = |f: fn(&mut KafkaSecurity)| {
            let mut s = KafkaSecurity::default();
            f(&mut s);
            props(&s).unwrap_err()
        };
        assert!(s(|s| s.protocol = Protocol::SaslSsl).contains("sasl_mechanism"));
        assert!(
            s(|s| {
                s.protocol = Protocol::SaslSsl;
                s.sasl_mechanism = "SCRAM-SHA-256".into();
            })
            .contains("username and password")
        );
        assert!(
            s(|s| {
                s.protocol = Protocol::SaslSsl;
                s.sasl_mechanism = "GSSAPI".into();
            })
            .contains("GSSAPI")
        );
        assert!(s(|s| s.username = "u".into()).contains("sasl_ssl"));
        assert!(
            s(|s| {
                s.protocol = Protocol::Ssl;
                s.ca_file = "/nonexistent/ca.pem".into();
            })
            .contains("/nonexistent/ca.pem")
        );
        assert!(
            s(|s| {
                s.protocol = Protocol::SaslSsl;
                s.sasl_mechanism = "OAUTHBEARER".into();
            })
            .contains("oidc_token_url")
        );
        assert!(
            s(|s| {
                s.protocol = Protocol::Ssl;
                s.verify_hostname = false;
            })
            .contains("needs ca_file")
        );
    }

    #[test]
    fn oauthbearer_uses_librdkafkas_oidc_client() {
        let s = KafkaSecurity {
            protocol: Protocol::SaslSsl,
            sasl_mechanism: "OAUTHBEARER".into(),
            oidc_token_url: "https://idp.example.com/oauth2/token".into(),
            oidc_client_id: "idgw".into(),
            oidc_client_secret: "secret".into(),
            oidc_scope: "kafka".into(),
            ..KafkaSecurity::default()
        };
        let p = props(&s).unwrap();
        assert_eq!(p["sasl.oauthbearer.method"], "oidc");
        let mut c = ClientConfig::new();
        for (k, v) in s.properties().unwrap() {
            c.set(k, v);
        }
        // Needs librdkafka built with libcurl (the `curl-static` feature).
        c.create::<BaseProducer>().expect("librdkafka accepts OIDC properties");
    }

    #[test]
    fn zstd_is_compiled_in() {
        let mut c = ClientConfig::new();
        c.set("compression.type", "zstd");
        c.create::<BaseProducer>().expect("librdkafka built with zstd");
    }
}
