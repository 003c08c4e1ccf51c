//! Bearer access-token validation (MCP authorization; reference.md §4.3): the signature
//! against the issuer's JWKS by `kid`, an algorithm allow-list, then `iss`, `aud`, `exp`,
//! `nbf` and `iat` with a small skew. `jsonwebtoken` does the cryptography and claim checks;
//! this module keeps the key set fresh and says why a token was refused.
//!
//! The JWKS is cached and fetched again when a token names a `kid` the cache lacks (key
//! rotation), at most once per `jwks_min_refresh_s` so unknown kids cannot make the
//! gateway hammer the issuer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::{Mutex, RwLock};

use super::AuthConfig;

/// Why a token was refused. Every variant is a 401 `invalid_token` over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or its header cannot be read (this includes `alg: none`, which the
    /// allow-list has no name for).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header's algorithm is not RS256 or ES256 (or whatever is configured).
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    /// No `kid`, or one the issuer does not publish even after refetching its keys.
    #[error("unknown signing key {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` is past.
    #[error("token expired")]
    Expired,
    /// `nbf` (or `iat`) is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not name this gateway.
    #[error("wrong audience (the token is not for this resource)")]
    Audience,
    /// A required claim is missing or of the wrong type.
    #[error("claim {0}")]
    Claim(String),
    /// The issuer's keys could not be fetched.
    #[error("cannot fetch the issuer's keys: {0}")]
    Jwks(String),
}

/// Who is calling, as established by a validated token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// `sub`: the user's login for user tokens, the client id for service tokens.
    pub subject: String,
    /// `cid` (Okta) or `client_id` (RFC 9068).
    pub client_id: Option<String>,
    /// `scp` (Okta's array) or `scope` (RFC 9068's space-separated string).
    pub scopes: Vec<String>,
    /// `exp`, seconds since the epoch (0 for the dev principal).
    pub expires_at: i64,
    /// `jti`.
    pub token_id: Option<String>,
}

impl Principal {
    /// The principal of `--dev-no-auth`: every scope, loudly named.
    pub fn dev_no_auth() -> Self {
        Principal {
            subject: "dev-no-auth".into(),
            client_id: None,
            scopes: super::scopes::ALL.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: 0,
            token_id: None,
        }
    }
}

fn string_or_seq<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => Vec::new(),
        Some(S::One(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(S::Many(v)) => v,
    })
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    cid: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "string_or_seq")]
    scp: Vec<String>,
    #[serde(default, deserialize_with = "string_or_seq")]
    scope: Vec<String>,
}

struct Key {
    decoding: DecodingKey,
    algorithm: Algorithm,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Key>,
    /// When the set was last fetched.
    fetched: Option<Instant>,
    /// The last failed fetch and how many failed in a row (for the backoff).
    failed: Option<(Instant, u32)>,
}

impl KeySet {
    /// Whether a fetch may be tried now: not within `min` of the last one, nor, after
    /// failures, within a backoff that doubles from `min` up to [`MAX_BACKOFF`].
    fn may_fetch(&self, min: Duration) -> bool {
        if self.fetched.is_some_and(|t| t.elapsed() < min) {
            return false;
        }
        match self.failed {
            Some((at, n)) => at.elapsed() >= (min * 2u32.saturating_pow(n.saturating_sub(1).min(16))).min(MAX_BACKOFF),
            None => true,
        }
    }
}

/// The longest wait between fetches of an issuer's keys that keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long keys held keep verifying while the issuer cannot be reached: whoever can cut
/// the gateway off from its issuer must not keep a retired key alive for good.
const MAX_STALE: Duration = Duration::from_secs(24 * 3600);

impl TokenError {
    /// Whether the gateway, not the token, is at fault (the issuer's keys are out of
    /// reach): the answer is 503, and the client should keep its token and retry.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TokenError::Jwks(_))
    }
}

/// Validates bearer tokens for one issuer and audience.
pub struct Validator {
    issuer: String,
    audience: String,
    jwks_uri: String,
    algorithms: Vec<Algorithm>,
    leeway_s: u64,
    min_refresh: Duration,
    max_age: Duration,
    client: reqwest::Client,
    keys: RwLock<KeySet>,
    refreshing: Mutex<()>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_uri", &self.jwks_uri)
            .finish()
    }
}

/// The algorithm a published key may verify: its `alg` when given, else by key type.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(alg) = jwk.common.key_algorithm {
        return alg.to_string().parse().ok();
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Some(Algorithm::ES256),
        _ => None,
    }
}

impl Validator {
    /// A validator for `config`'s issuer; `jwks_uri` is where its keys are published.
    pub fn new(config: &AuthConfig, issuer: &str, jwks_uri: &str) -> Result<Self, String> {
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            let alg: Algorithm = name.parse().map_err(|_| format!("unknown JWT algorithm {name:?}"))?;
            // HMAC would let anyone holding the published key sign tokens.
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(format!("{name} is symmetric and cannot be accepted for access tokens"));
            }
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err("no JWT algorithm accepted; set auth.algorithms (RS256, ES256)".into());
        }
        Ok(Validator {
            issuer: issuer.to_owned(),
            audience: config.audience.clone(),
            jwks_uri: jwks_uri.to_owned(),
            algorithms,
            leeway_s: config.leeway_s,
            min_refresh: Duration::from_secs(config.jwks_min_refresh_s),
            max_age: Duration::from_secs(config.jwks_refresh_s.max(config.jwks_min_refresh_s)),
            client: reqwest::Client::new(),
            keys: RwLock::default(),
            refreshing: Mutex::new(()),
        })
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience tokens must name.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Fetches the issuer's key set, unless one was fetched (or failed) too recently.
    async fn fetch_keys(&self) -> Result<(), TokenError> {
        let _one = self.refreshing.lock().await;
        if !self.keys.read().await.may_fetch(self.min_refresh) {
            return match self.keys.read().await.failed {
                Some(_) => Err(TokenError::Jwks(
                    "the last attempts failed; retrying with backoff".into(),
                )),
                None => Ok(()),
            };
        }
        match self.download().await {
            Ok(keys) => {
                *self.keys.write().await = KeySet {
                    keys,
                    fetched: Some(Instant::now()),
                    failed: None,
                };
                Ok(())
            }
            Err(e) => {
                let mut set = self.keys.write().await;
                let n = set.failed.map_or(1, |(_, n)| n.saturating_add(1));
                set.failed = Some((Instant::now(), n));
                tracing::warn!(error = %e, failures = n, jwks = %self.jwks_uri, "cannot fetch the issuer's keys");
                Err(e)
            }
        }
    }

    async fn download(&self) -> Result<HashMap<String, Key>, TokenError> {
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = self
            .client
            .get(&self.jwks_uri)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| TokenError::Jwks(e.to_string()))?
            .json()
            .await
            .map_err(|e| TokenError::Jwks(e.to_string()))?;
        let mut keys = HashMap::new();
        for v in set.keys {
            // A key of a type this validator does not use is skipped, not fatal.
            let Ok(jwk) = serde_json::from_value::<Jwk>(v) else {
                continue;
            };
            let (Some(kid), Some(algorithm)) = (jwk.common.key_id.clone(), key_algorithm(&jwk)) else {
                continue;
            };
            if let Ok(decoding) = DecodingKey::from_jwk(&jwk) {
                keys.insert(kid, Key { decoding, algorithm });
            }
        }
        Ok(keys)
    }

    /// Validates `token` and returns its principal.
    pub async fn validate(&self, token: &str) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header
            .kid
            .clone()
            .ok_or_else(|| TokenError::UnknownKey(String::new()))?;
        let (known, stale) = {
            let set = self.keys.read().await;
            (
                set.keys.contains_key(&kid),
                set.fetched.is_none_or(|t| t.elapsed() >= self.max_age),
            )
        };
        if !known {
            self.fetch_keys().await?;
        } else if stale && let Err(e) = self.fetch_keys().await {
            // A scheduled refresh drops keys the issuer no longer publishes (rotated out or
            // revoked). When the issuer cannot be reached, the keys already held still
            // verify for a day; the next attempt waits out the backoff.
            let age = self.keys.read().await.fetched.map(|t| t.elapsed());
            if age.is_none_or(|a| a >= MAX_STALE) {
                return Err(e);
            }
            tracing::debug!(error = %e, "validating with the keys held");
        }
        let keys = self.keys.read().await;
        let key = keys.keys.get(&kid).ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        // The key decides the algorithm, not the token: an RSA key verifies RS256 only.
        if key.algorithm != header.alg {
            return Err(TokenError::Algorithm(format!(
                "{:?} with a {:?} key",
                header.alg, key.algorithm
            )));
        }
        let mut v = Validation::new(key.algorithm);
        v.leeway = self.leeway_s;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => TokenError::Signature,
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidIssuer => TokenError::Issuer,
                K::InvalidAudience => TokenError::Audience,
                K::InvalidAlgorithm => TokenError::Algorithm(format!("{:?}", header.alg)),
                K::MissingRequiredClaim(c) => TokenError::Claim(format!("{c} is missing")),
                K::InvalidClaimFormat(c) => TokenError::Claim(format!("{c} has the wrong type")),
                K::Json(e) => TokenError::Claim(e.to_string()),
                _ => TokenError::Malformed(e.to_string()),
            }
        })?;
        let c = data.claims;
        let subject = c
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TokenError::Claim("sub is missing".into()))?;
        let now = chrono::Utc::now().timestamp();
        // jsonwebtoken does not check `iat`; a token issued in the future is refused.
        if c.iat.is_some_and(|iat| iat > now + self.leeway_s as i64) {
            return Err(TokenError::NotYetValid);
        }
        let mut scopes = c.scp;
        for s in c.scope {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        Ok(Principal {
            subject,
            client_id: c.cid.or(c.client_id),
            scopes,
            expires_at: c.exp,
            token_id: c.jti,
        })
    }
}
