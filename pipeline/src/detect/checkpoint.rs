//! Engine checkpoints: one versioned JSON document (zstd-compressed) holding the clock, the
//! reorder buffer, every windowed detector's state, risk, identity state and behaviour
//! profiles.
//!
//! A checkpoint taken between two events and restored into a fresh engine continues the
//! stream exactly: the golden tests check that alerts are identical with and without one.

use std::collections::BTreeMap;
use std::path::Path;

use idgw_schemas::Detection;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::aggregation::RuleAggregation;
use super::observation::Obs;
use super::risk::{Identities, RiskBook};
use super::upstream::{Role, Upstreams};
use super::windowed::Deferred;
use super::{Clock, Engine, Pending};
use crate::vectors::{Behaviour, UserVector};

/// The document version this build writes and reads.
pub const VERSION: u32 = 1;

/// Checkpoint failures.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The document does not match this build's state types.
    #[error("checkpoint content: {0}")]
    Format(#[from] serde_json::Error),
    /// Written by another version of the engine.
    #[error("checkpoint version {found}, this build reads version {expected}")]
    Version { found: u32, expected: u32 },
    /// A detector of this build has no state in the checkpoint, or the reverse.
    #[error("checkpoint has no state for detector {0}")]
    MissingDetector(String),
}

#[derive(Serialize, Deserialize)]
struct Document {
    version: u32,
    /// The share of the detections the engine ran (absent before roles existed: all).
    #[serde(default)]
    role: Role,
    /// A source lane's feeding user lanes (absent, or for other roles: none).
    #[serde(default)]
    upstream: Upstreams,
    clock: Clock,
    pending: Vec<Obs>,
    detectors: BTreeMap<String, Box<RawValue>>,
    /// The stateful event detectors' states (absent from checkpoints written before they
    /// existed: those resume with empty state).
    #[serde(default)]
    stateful: BTreeMap<String, Box<RawValue>>,
    risk: RiskBook,
    identities: Identities,
    /// Behaviour profiles (absent from checkpoints written before they existed: those
    /// resume with empty profiles).
    #[serde(default)]
    behaviour: Behaviour,
    raised: BTreeMap<Detection, u64>,
    /// Open alert-aggregation windows (absent before they existed: none open).
    #[serde(default)]
    aggregation: RuleAggregation,
}

/// [`Document`] by reference, for writing an [`EngineSnapshot`] once its detectors' states
/// are serialized.
#[derive(Serialize)]
struct DocumentRef<'a> {
    version: u32,
    role: Role,
    upstream: &'a Upstreams,
    clock: Clock,
    pending: Vec<&'a Obs>,
    detectors: BTreeMap<&'static str, Box<RawValue>>,
    stateful: BTreeMap<&'static str, Box<RawValue>>,
    risk: &'a RiskBook,
    identities: &'a Identities,
    behaviour: &'a Behaviour,
    raised: &'a BTreeMap<Detection, u64>,
    aggregation: &'a RuleAggregation,
}

/// The engine's state copied at one instant ([`Engine::snapshot`]). Taking it costs a copy;
/// serializing it ([`EngineSnapshot::to_json`]) can run on another thread while the engine
/// goes on (streaming checkpoints every few seconds without stopping the partition).
pub struct EngineSnapshot {
    role: Role,
    upstream: Upstreams,
    clock: Clock,
    pending: Vec<Obs>,
    detectors: Vec<(&'static str, Deferred)>,
    stateful: Vec<(&'static str, Deferred)>,
    risk: RiskBook,
    identities: Identities,
    behaviour: Behaviour,
    raised: BTreeMap<Detection, u64>,
    aggregation: RuleAggregation,
}

impl std::fmt::Debug for EngineSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSnapshot")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl EngineSnapshot {
    /// The vectors of users `ids` as of the snapshot ([`Engine::take_changed_users`]).
    pub fn vectors_of(&self, ids: &[Box<str>]) -> Vec<UserVector> {
        super::user_vectors(&self.behaviour, &self.risk, &self.identities, self.clock, ids)
    }

    /// The same document as [`Engine::checkpoint_json`] at the instant of the snapshot.
    pub fn to_json(self) -> Result<Vec<u8>, CheckpointError> {
        let mut detectors = BTreeMap::new();
        for (name, state) in self.detectors {
            detectors.insert(name, state()?);
        }
        let mut stateful = BTreeMap::new();
        for (name, state) in self.stateful {
            stateful.insert(name, state()?);
        }
        let doc = DocumentRef {
            version: VERSION,
            role: self.role,
            upstream: &self.upstream,
            clock: self.clock,
            pending: self.pending.iter().collect(),
            detectors,
            stateful,
            risk: &self.risk,
            identities: &self.identities,
            behaviour: &self.behaviour,
            raised: &self.raised,
            aggregation: &self.aggregation,
        };
        Ok(serde_json::to_vec(&doc)?)
    }
}

impl Engine {
    /// A copy of the whole state, in checkpoint order, to serialize elsewhere.
    pub fn snapshot(&self) -> EngineSnapshot {
        let mut pending: Vec<Obs> = self.buffer.iter().map(|p| p.0.0.clone()).collect();
        pending.sort_by_key(|o| (o.time, o.seq));
        EngineSnapshot {
            role: self.role,
            upstream: self.upstream.clone(),
            clock: self.clock,
            pending,
            detectors: self
                .detectors
                .iter()
                .map(|d| (d.name(), d.snapshot()))
                .chain(
                    self.absent
                        .iter()
                        .filter(|_| self.role == Role::Users)
                        .map(|name| (*name, super::windowed::deferred(serde_json::json!({})))),
                )
                .collect(),
            stateful: self.stateful.iter().map(|d| (d.name(), d.snapshot())).collect(),
            risk: self.risk.clone(),
            identities: self.identities.clone(),
            behaviour: self.behaviour.clone(),
            raised: self.raised.clone(),
            aggregation: self.aggregation.clone(),
        }
    }

    /// The engine's whole state, serialized and compressed.
    pub fn checkpoint(&self) -> Result<Vec<u8>, CheckpointError> {
        let json = self.checkpoint_json()?;
        Ok(zstd::encode_all(json.as_slice(), 3)?)
    }

    /// The engine's whole state as a JSON document (for callers that wrap it).
    pub fn checkpoint_json(&self) -> Result<Vec<u8>, CheckpointError> {
        self.snapshot().to_json()
    }

    /// Replaces the engine's state with a checkpoint's.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        let json = zstd::decode_all(bytes)?;
        self.restore_json(&json)
    }

    /// Replaces the engine's state with a [`Engine::checkpoint_json`] document.
    pub fn restore_json(&mut self, json: &[u8]) -> Result<(), CheckpointError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_slice(json)?;
        if v.version != VERSION {
            return Err(CheckpointError::Version {
                found: v.version,
                expected: VERSION,
            });
        }
        let doc: Document = serde_json::from_slice(json)?;
        if doc.role != self.role {
            // `[kafka] repartition` was switched: the detectors keyed by source move
            // between the user lanes and the lanes of the repartition topic, and start
            // afresh where they arrive.
            tracing::warn!(from = ?doc.role, to = ?self.role, "the checkpoint was written by a lane of another role; the detectors it did not run start empty");
        }
        for d in &mut self.detectors {
            match doc.detectors.get(d.name()) {
                Some(state) => d.restore(state)?,
                None if doc.role != self.role => {}
                None => return Err(CheckpointError::MissingDetector(d.name().to_owned())),
            }
        }
        for d in &mut self.stateful {
            if let Some(state) = doc.stateful.get(d.name()) {
                d.restore(state)?;
            }
        }
        self.clock = doc.clock;
        self.upstream = if self.role == Role::Sources {
            doc.upstream
        } else {
            Upstreams::default()
        };
        self.buffered_uuids = if self.role == Role::Sources {
            doc.pending.iter().map(|o| o.uuid.clone()).collect()
        } else {
            Default::default()
        };
        self.buffer = doc.pending.into_iter().map(|o| std::cmp::Reverse(Pending(o))).collect();
        self.risk = doc.risk;
        self.identities = doc.identities;
        self.behaviour = doc.behaviour;
        self.raised = doc.raised;
        self.aggregation = doc.aggregation.restored(self.aggregation_window_s);
        Ok(())
    }

    /// Writes a checkpoint to `path` atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        write_atomically(path, &self.checkpoint()?)
    }

    /// Restores from `path` when it exists; returns whether it did.
    pub fn load(&mut self, path: &Path) -> Result<bool, CheckpointError> {
        if !path.exists() {
            return Ok(false);
        }
        let bytes = fs_err::read(path)?;
        self.restore(&bytes)?;
        Ok(true)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, and an
/// fsync of the directory so the rename itself survives a power cut.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint")
    ));
    {
        let mut f = fs_err::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
    }
    fs_err::rename(&tmp, path)?;
    fs_err::File::open(dir)?.sync_all()?;
    Ok(())
}
