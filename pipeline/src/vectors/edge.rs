//! The embedded backend: one `qdrant-edge` shard in a directory of the store.
//!
//! `EdgeShard` is used through a read-write lock of ours: searches share it, updates,
//! flushes and optimization take it alone (the shard's own flush expects no concurrent
//! update, and panics otherwise).

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use qdrant_edge::{
    Condition, CreateIndex, DEFAULT_VECTOR_NAME, Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder,
    FieldCondition, Filter, HasIdCondition, JsonPath, Match, Payload, PayloadFieldSchema, PayloadSchemaType, PointId,
    PointInsertOperations, PointOperations, PointStructPersisted, QueryEnum, Record, ScoredPoint, ScrollRequest,
    SearchRequest, UpdateOperation, VectorInternal, VectorStructInternal, VectorStructPersisted, WithPayloadInterface,
    WithVector,
};

use super::{
    DIM, INDEXED_FIELDS, Neighbour, SimilarFilter, UserPayload, UserVector, VectorError, VectorIndex, checked, point_id,
};

/// A `qdrant-edge` shard.
pub struct EdgeIndex {
    dir: PathBuf,
    /// Always `Some` until dropped (taken out to close it without a panic, below).
    shard: Option<RwLock<EdgeShard>>,
}

impl Drop for EdgeIndex {
    fn drop(&mut self) {
        // qdrant-edge flushes when the shard is dropped and panics when that fails (its
        // directory deleted under it, a full disk): report it instead of taking the
        // process down with it.
        if let Some(shard) = self.shard.take()
            && std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(shard))).is_err()
        {
            tracing::error!(dir = %self.dir.display(), "closing the vector index failed: its last changes may not be on disk");
        }
    }
}

impl std::fmt::Debug for EdgeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeIndex").field("dir", &self.dir).finish()
    }
}

fn field(name: &str) -> JsonPath {
    // The names are this module's constants, all plain identifiers.
    name.parse()
        .unwrap_or_else(|()| unreachable!("{name} is a valid JSON path"))
}

impl EdgeIndex {
    /// Whether `dir` holds a shard (its configuration is written when it is created).
    pub fn exists(dir: &Path) -> bool {
        dir.join("edge_config.json").exists()
    }

    /// Whether another open file (this process's or another's) holds the shard: qdrant-edge
    /// takes an exclusive `flock` on its WAL directory for as long as the shard is open.
    pub fn held_elsewhere(dir: &Path) -> bool {
        std::fs::File::open(dir.join("wal"))
            .is_ok_and(|wal| matches!(wal.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
    }

    /// Opens the shard in `dir`, creating it (cosine, [`DIM`] dimensions, payload indexes)
    /// when the directory holds none.
    pub fn open(dir: &Path) -> Result<Self, VectorError> {
        let err = |e: &dyn std::fmt::Display| VectorError::Edge {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        let shard = if Self::exists(dir) {
            EdgeShard::load(dir, None).map_err(|e| err(&e))?
        } else {
            fs_err::create_dir_all(dir).map_err(|e| err(&e))?;
            let config = EdgeConfigBuilder::new()
                .vector(
                    DEFAULT_VECTOR_NAME,
                    EdgeVectorParamsBuilder::new(DIM, Distance::Cosine).build(),
                )
                .build();
            let shard = EdgeShard::new(dir, config).map_err(|e| err(&e))?;
            for name in INDEXED_FIELDS {
                shard
                    .update(UpdateOperation::FieldIndexOperation(
                        qdrant_edge::FieldIndexOperations::CreateIndex(CreateIndex {
                            field_name: field(name),
                            field_schema: Some(PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword)),
                        }),
                    ))
                    .map_err(|e| err(&e))?;
            }
            shard
        };
        let index = EdgeIndex {
            dir: dir.to_owned(),
            shard: Some(RwLock::new(shard)),
        };
        let size = index.read()?.config().vectors.get(DEFAULT_VECTOR_NAME).map(|v| v.size);
        if size != Some(DIM) {
            return Err(err(&format!(
                "the shard holds vectors of {size:?} dimensions, this build writes {DIM}; \
                 delete the directory to rebuild it"
            )));
        }
        Ok(index)
    }

    fn error(&self, e: impl std::fmt::Display) -> VectorError {
        VectorError::Edge {
            path: self.dir.display().to_string(),
            message: e.to_string(),
        }
    }

    fn shard(&self) -> Result<&RwLock<EdgeShard>, VectorError> {
        self.shard.as_ref().ok_or_else(|| self.error("the index is closed"))
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, EdgeShard>, VectorError> {
        self.shard()?
            .read()
            .map_err(|_| self.error("a previous operation panicked"))
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, EdgeShard>, VectorError> {
        self.shard()?
            .write()
            .map_err(|_| self.error("a previous operation panicked"))
    }

    fn to_user(
        &self,
        id: &PointId,
        payload: Option<Payload>,
        vector: Option<VectorStructInternal>,
    ) -> Result<UserVector, VectorError> {
        let payload = payload_of(id, payload)?;
        let vector = match vector {
            Some(VectorStructInternal::Single(v)) => v,
            Some(VectorStructInternal::Named(mut named)) => match named.remove(DEFAULT_VECTOR_NAME) {
                Some(VectorInternal::Dense(v)) => v,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let vector = checked(&payload.user_id, vector)?;
        Ok(UserVector { payload, vector })
    }

    fn records(&self, records: Vec<Record>) -> Result<Vec<UserVector>, VectorError> {
        records
            .into_iter()
            .map(|r| self.to_user(&r.id, r.payload, r.vector))
            .collect()
    }
}

/// A stored payload, read back.
fn payload_of(id: &PointId, payload: Option<Payload>) -> Result<UserPayload, VectorError> {
    let point_error = |message: String| VectorError::Point {
        id: id.to_string(),
        message,
    };
    let payload = payload.ok_or_else(|| point_error("no payload".into()))?;
    serde_json::from_value(serde_json::Value::Object(payload.0)).map_err(|e| point_error(format!("payload: {e}")))
}

/// The Qdrant filter of a [`SimilarFilter`] and the excluded user ids.
fn filter_of(filter: &SimilarFilter, exclude: &[&str]) -> Option<Filter> {
    let mut must = Vec::new();
    if !filter.risk_levels.is_empty() {
        let levels: Vec<String> = filter.risk_levels.iter().map(|l| l.as_str().to_owned()).collect();
        must.push(Condition::Field(FieldCondition::new_match(
            field("risk_level"),
            Match::from(levels),
        )));
    }
    if !filter.countries.is_empty() {
        must.push(Condition::Field(FieldCondition::new_match(
            field("last_country"),
            Match::from(filter.countries.clone()),
        )));
    }
    let must_not = (!exclude.is_empty()).then(|| {
        vec![Condition::HasId(HasIdCondition::from_iter(
            exclude.iter().map(|u| PointId::Uuid(point_id(u))),
        ))]
    });
    if must.is_empty() && must_not.is_none() {
        return None;
    }
    Some(Filter {
        should: None,
        min_should: None,
        must: (!must.is_empty()).then_some(must),
        must_not,
    })
}

impl VectorIndex for EdgeIndex {
    fn backend(&self) -> &'static str {
        "qdrant-edge"
    }

    fn upsert(&self, points: &[UserVector]) -> Result<(), VectorError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut list = Vec::with_capacity(points.len());
        for p in points {
            let payload = match serde_json::to_value(&p.payload) {
                Ok(serde_json::Value::Object(map)) => Payload(map),
                Ok(other) => return Err(self.error(format!("payload is not an object: {other}"))),
                Err(e) => return Err(self.error(e)),
            };
            list.push(PointStructPersisted {
                id: PointId::Uuid(point_id(&p.payload.user_id)),
                vector: VectorStructPersisted::Single(checked(&p.payload.user_id, p.vector.clone())?),
                payload: Some(payload),
            });
        }
        let op =
            UpdateOperation::PointOperation(PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)));
        self.write()?.update(op).map_err(|e| self.error(e))
    }

    fn fetch(&self, user_ids: &[&str]) -> Result<Vec<UserVector>, VectorError> {
        let ids: Vec<PointId> = user_ids.iter().map(|u| PointId::Uuid(point_id(u))).collect();
        let records = self
            .read()?
            .retrieve(
                &ids,
                Some(WithPayloadInterface::Bool(true)),
                Some(WithVector::Bool(true)),
            )
            .map_err(|e| self.error(e))?;
        self.records(records)
    }

    fn find_login(&self, login: &str) -> Result<Option<UserVector>, VectorError> {
        let request = ScrollRequest {
            offset: None,
            limit: Some(1),
            filter: Some(Filter::new_must(Condition::Field(FieldCondition::new_match(
                field("login"),
                Match::from(vec![login.to_owned()]),
            )))),
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: WithVector::Bool(true),
            order_by: None,
        };
        let (records, _) = self.read()?.scroll(request).map_err(|e| self.error(e))?;
        Ok(self.records(records)?.pop())
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: &SimilarFilter,
        exclude: &[&str],
    ) -> Result<Vec<Neighbour>, VectorError> {
        let request = SearchRequest {
            query: QueryEnum::Nearest(qdrant_edge::NamedQuery {
                query: VectorInternal::Dense(query.to_vec()),
                using: None,
            }),
            filter: filter_of(filter, exclude),
            params: None,
            limit: k,
            offset: 0,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: None,
            score_threshold: None,
        };
        let hits: Vec<ScoredPoint> = self.read()?.search(request).map_err(|e| self.error(e))?;
        hits.into_iter()
            .map(|h| {
                Ok(Neighbour {
                    score: h.score,
                    payload: payload_of(&h.id, h.payload)?,
                })
            })
            .collect()
    }

    fn count(&self) -> Result<u64, VectorError> {
        let n = self
            .read()?
            .count(qdrant_edge::CountRequest {
                filter: None,
                exact: true,
            })
            .map_err(|e| self.error(e))?;
        Ok(n as u64)
    }

    fn flush(&self) -> Result<(), VectorError> {
        self.write()?.flush();
        Ok(())
    }

    fn optimize(&self) -> Result<(), VectorError> {
        self.write()?.optimize().map(|_| ()).map_err(|e| self.error(e))
    }
}
