//! Behavioural vectors of users in Qdrant: the embedded `qdrant-edge` shard in the store by
//! default ([`edge`]), a Qdrant server or cluster through `qdrant-client` when a URL is
//! configured ([`server`]). Both sit behind [`VectorIndex`] with the same semantics, so the
//! choice is configuration only.
//!
//! The pipeline keeps every user's profile ([`features`]) and upserts the vectors of users
//! whose profile changed in batches; the queries the gateway and `idgw similar` use are
//! here ([`similar_to`], [`near_centroid`]).

pub mod edge;
pub mod features;
pub mod server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use idgw_schemas::RiskLevel;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use features::{Behaviour, DIM};

/// The UUIDv5 namespace of user point ids (fixed: point ids must not change across builds).
const POINT_NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_5a0e_93b4_4f57_8a57_2b1e_0c6f_11d5);

/// The stable point id of a user: UUIDv5 of the Okta user id (upserts are idempotent).
pub fn point_id(user_id: &str) -> Uuid {
    Uuid::new_v5(&POINT_NAMESPACE, user_id.as_bytes())
}

/// Vector index failures.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// The embedded shard refused an operation.
    #[error("qdrant-edge at {path}: {message}")]
    Edge { path: String, message: String },
    /// The Qdrant server refused or could not be reached.
    #[error("qdrant server {url}: {message}")]
    Server { url: String, message: String },
    /// A stored point does not have the shape this build writes.
    #[error("point {id}: {message}")]
    Point { id: String, message: String },
    /// A query argument is unusable.
    #[error("{0}")]
    Query(String),
    /// Another process holds the embedded shard (qdrant-edge admits one process at a time).
    #[error(
        "the vector index at {0} is held by another process (a running pipeline or replay); \
         it is readable again when that process stops, or configure a Qdrant server (QDRANT_URL) \
         for concurrent use"
    )]
    Busy(String),
}

/// What is stored with each vector (and filtered on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserPayload {
    /// Okta user id.
    pub user_id: String,
    /// Login, when known.
    pub login: Option<String>,
    /// Risk score when the vector was last written (0–100).
    pub risk_score: f64,
    /// Its band.
    pub risk_level: RiskLevel,
    /// Country of the user's last own event.
    pub last_country: Option<String>,
}

/// One user's point.
#[derive(Debug, Clone, PartialEq)]
pub struct UserVector {
    pub payload: UserPayload,
    /// [`DIM`] values, unit length.
    pub vector: Vec<f32>,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbour {
    /// Cosine similarity to the query (1 = same behaviour).
    pub score: f32,
    #[serde(flatten)]
    pub payload: UserPayload,
}

/// Optional restrictions on neighbours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimilarFilter {
    /// Only users at these risk levels (any, when empty).
    pub risk_levels: Vec<RiskLevel>,
    /// Only users whose last country is one of these (any, when empty).
    pub countries: Vec<String>,
}

impl SimilarFilter {
    /// The risk levels as stored in the `risk_level` payload field.
    fn risk_level_names(&self) -> Vec<String> {
        self.risk_levels.iter().map(|l| l.as_str().to_owned()).collect()
    }
}

/// Payload fields with an index (the same on both backends).
pub const INDEXED_FIELDS: [&str; 4] = ["user_id", "login", "risk_level", "last_country"];

/// A store of user vectors.
pub trait VectorIndex: Send + Sync + std::fmt::Debug {
    /// `qdrant-edge` or `qdrant-server`.
    fn backend(&self) -> &'static str;
    /// Inserts or replaces these users' points, in one batch.
    fn upsert(&self, points: &[UserVector]) -> Result<(), VectorError>;
    /// The points of these user ids (missing ones are left out).
    fn fetch(&self, user_ids: &[&str]) -> Result<Vec<UserVector>, VectorError>;
    /// The point whose payload has this login.
    fn find_login(&self, login: &str) -> Result<Option<UserVector>, VectorError>;
    /// The `k` points closest to `query` that pass `filter`, leaving out `exclude` (user ids),
    /// most similar first.
    fn nearest(
        &self,
        query: &[f32],
        k: usize,
        filter: &SimilarFilter,
        exclude: &[&str],
    ) -> Result<Vec<Neighbour>, VectorError> {
        if query.len() != DIM {
            return Err(VectorError::Query(format!(
                "query vector has {} dimensions, the index {DIM}",
                query.len()
            )));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        self.search(query, k, filter, exclude)
    }
    /// The backend's search behind [`VectorIndex::nearest`]: `query` has [`DIM`] values and
    /// `k` is at least 1.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: &SimilarFilter,
        exclude: &[&str],
    ) -> Result<Vec<Neighbour>, VectorError>;
    /// Points stored.
    fn count(&self) -> Result<u64, VectorError>;
    /// Makes every upsert durable.
    fn flush(&self) -> Result<(), VectorError>;
    /// Builds the search index after bulk loads (a server does it in the background).
    fn optimize(&self) -> Result<(), VectorError>;
}

/// `[vectors]` configuration.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorsConfig {
    /// Keep the index up to date while replaying or streaming.
    pub enabled: bool,
    /// A Qdrant server (gRPC, e.g. `http://qdrant:6334`); unset: the embedded shard.
    /// Environment: `QDRANT_URL`.
    pub url: Option<String>,
    /// API key for the server. Environment: `QDRANT_API_KEY`.
    pub api_key: Option<String>,
    /// Collection name on the server.
    pub collection: String,
    /// Directory of the embedded shard; unset: `<store>/vectors`. Environment:
    /// `VECTOR_DB_PATH` (the reference design's name).
    pub path: Option<String>,
    /// Changed vectors are upserted at least this often while input flows (seconds). Each
    /// round rewrites every changed user's point, so short intervals cost throughput.
    pub flush_interval_s: u64,
}

/// The API key never reaches logs.
impl std::fmt::Debug for VectorsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorsConfig")
            .field("enabled", &self.enabled)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("collection", &self.collection)
            .field("path", &self.path)
            .field("flush_interval_s", &self.flush_interval_s)
            .finish()
    }
}

impl Default for VectorsConfig {
    fn default() -> Self {
        VectorsConfig {
            enabled: true,
            url: None,
            api_key: None,
            collection: "user_behaviour".into(),
            path: None,
            flush_interval_s: 60,
        }
    }
}

impl VectorsConfig {
    /// The Qdrant server, when one is configured (an empty URL means none).
    pub fn server_url(&self) -> Option<&str> {
        self.url.as_deref().filter(|u| !u.trim().is_empty())
    }

    /// The embedded shard's directory for the store at `store_root`.
    pub fn edge_dir(&self, store_root: &Path) -> PathBuf {
        self.path
            .as_deref()
            .map(PathBuf::from)
            .unwrap_or_else(|| store_root.join("vectors"))
    }

    /// Whether there is an index to read: a server is configured, or the embedded shard
    /// has been created.
    pub fn exists(&self, store_root: &Path) -> bool {
        self.server_url().is_some() || edge::EdgeIndex::exists(&self.edge_dir(store_root))
    }
}

/// How long [`open`] waits for a reader holding the embedded shard to let go of it.
pub const RELEASE_WAIT: Duration = Duration::from_secs(15);

/// Opens the configured index for the store at `store_root` (created when absent).
///
/// The embedded shard admits one process at a time. A reader that keeps it open between
/// requests (the gateway, through [`try_open`]) is asked to let go — the request is a file
/// beside the shard, [`release_requested`] — and this waits up to [`RELEASE_WAIT`] for it;
/// a holder that does not let go (another pipeline) makes it fail with [`VectorError::Busy`].
pub fn open(config: &VectorsConfig, store_root: &Path) -> Result<Box<dyn VectorIndex>, VectorError> {
    let Some(url) = config.server_url() else {
        let dir = config.edge_dir(store_root);
        let request = release_request_path(&dir);
        let deadline = Instant::now() + RELEASE_WAIT;
        let mut asked = false;
        let opened = loop {
            if !edge::EdgeIndex::held_elsewhere(&dir) {
                break edge::EdgeIndex::open(&dir);
            }
            if Instant::now() >= deadline {
                break Err(VectorError::Busy(dir.display().to_string()));
            }
            if !asked {
                tracing::info!(dir = %dir.display(), "vector index held by a reader; asking it to let go");
                fs_err::write(&request, b"").map_err(|e| VectorError::Edge {
                    path: dir.display().to_string(),
                    message: e.to_string(),
                })?;
                asked = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if asked {
            // Readers may open the shard again once this process is done with it.
            let _ = std::fs::remove_file(&request);
        }
        return Ok(Box::new(opened?));
    };
    Ok(Box::new(server::ServerIndex::connect(
        url,
        config.api_key.as_deref(),
        &config.collection,
    )?))
}

/// Opens the configured index without waiting or asking anyone to let go: for readers
/// that hold it between requests and give it up when [`release_requested`] says so.
/// [`VectorError::Busy`] while another process holds the embedded shard, or has asked
/// for it.
pub fn try_open(config: &VectorsConfig, store_root: &Path) -> Result<Box<dyn VectorIndex>, VectorError> {
    if config.server_url().is_none() {
        let dir = config.edge_dir(store_root);
        if request_pending(&dir) || edge::EdgeIndex::held_elsewhere(&dir) {
            return Err(VectorError::Busy(dir.display().to_string()));
        }
    }
    open(config, store_root)
}

/// Whether a writer is waiting for the embedded shard (never, with a server: it is shared).
pub fn release_requested(config: &VectorsConfig, store_root: &Path) -> bool {
    config.server_url().is_none() && request_pending(&config.edge_dir(store_root))
}

/// A request younger than twice the writers' wait. An older one was left by a writer that
/// died while waiting; honouring it would keep readers off the shard for good.
fn request_pending(dir: &Path) -> bool {
    std::fs::metadata(release_request_path(dir))
        .and_then(|m| m.modified())
        .is_ok_and(|at| at.elapsed().unwrap_or_default() < 2 * RELEASE_WAIT)
}

/// The file that asks the shard's reader to let go: `<shard dir>.release`, beside the shard
/// (whose directory belongs to qdrant-edge).
fn release_request_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".release");
    dir.with_file_name(name)
}

/// A user given as an Okta id or a login.
pub fn find_user(index: &dyn VectorIndex, user: &str) -> Result<Option<UserVector>, VectorError> {
    if let Some(found) = index.fetch(&[user])?.pop() {
        return Ok(Some(found));
    }
    index.find_login(user)
}

/// The `k` users behaving most like `user` (an id or a login), the user left out.
pub fn similar_to(
    index: &dyn VectorIndex,
    user: &str,
    k: usize,
    filter: &SimilarFilter,
) -> Result<Option<Vec<Neighbour>>, VectorError> {
    let Some(me) = find_user(index, user)? else {
        return Ok(None);
    };
    if me.vector.iter().all(|x| *x == 0.0) {
        return Err(VectorError::Query(format!("{user} has no behaviour recorded yet")));
    }
    index
        .nearest(&me.vector, k, filter, &[me.payload.user_id.as_str()])
        .map(Some)
}

/// The `k` users nearest the centroid of `users` ("who else behaves like these accounts"),
/// the set itself left out. Unknown users are reported, not ignored.
pub fn near_centroid(
    index: &dyn VectorIndex,
    users: &[&str],
    k: usize,
    filter: &SimilarFilter,
) -> Result<Vec<Neighbour>, VectorError> {
    let mut members = Vec::with_capacity(users.len());
    let mut unknown = Vec::new();
    for u in users {
        match find_user(index, u)? {
            Some(v) => members.push(v),
            None => unknown.push(*u),
        }
    }
    if !unknown.is_empty() {
        return Err(VectorError::Query(format!("unknown users: {}", unknown.join(", "))));
    }
    if members.is_empty() {
        return Err(VectorError::Query("no users given".into()));
    }
    let mut centroid = vec![0.0f32; DIM];
    for m in &members {
        for (c, x) in centroid.iter_mut().zip(&m.vector) {
            *c += x;
        }
    }
    let norm = features::dot(&centroid, &centroid).sqrt();
    if norm == 0.0 {
        return Err(VectorError::Query("these users have no behaviour recorded yet".into()));
    }
    centroid.iter_mut().for_each(|c| *c /= norm);
    let ids: Vec<&str> = members.iter().map(|m| m.payload.user_id.as_str()).collect();
    index.nearest(&centroid, k, filter, &ids)
}

/// Checks a vector read back from a backend.
fn checked(id: &str, vector: Vec<f32>) -> Result<Vec<f32>, VectorError> {
    if vector.len() == DIM {
        Ok(vector)
    } else {
        Err(VectorError::Point {
            id: id.to_owned(),
            message: format!("vector has {} dimensions, this build writes {DIM}", vector.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_location_follows_the_configuration() {
        let store = Path::new("/data/store");
        let mut c = VectorsConfig::default();
        assert_eq!(c.edge_dir(store), store.join("vectors"));
        assert!(!c.exists(store), "no shard was created there");
        c.path = Some("/elsewhere/vectors".into());
        assert_eq!(c.edge_dir(store), PathBuf::from("/elsewhere/vectors"));
        c.url = Some("  ".into());
        assert_eq!(c.server_url(), None, "an empty URL means the embedded index");
        c.url = Some("http://qdrant:6334".into());
        assert!(c.exists(store), "a configured server is an index to read");
    }

    #[test]
    fn point_ids_are_stable_per_user() {
        assert_eq!(point_id("00u1"), point_id("00u1"));
        assert_ne!(point_id("00u1"), point_id("00u2"));
        assert_eq!(point_id("00u1").get_version_num(), 5);
    }
}
