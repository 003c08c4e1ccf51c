//! The scale backend: a Qdrant server or cluster through `qdrant-client` (gRPC).
//!
//! The client is async; the index is called from the pipeline's synchronous stages and from
//! the gateway's blocking pool. Each call is spawned on the index's own runtime and waited
//! for on a plain channel, so it works from any thread that may block (`block_on` would
//! refuse to run inside another runtime).

use std::collections::HashMap;
use std::future::Future;

use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, Distance, FieldType,
    Filter, GetPointsBuilder, PointStruct, QueryPointsBuilder, ScrollPointsBuilder, UpsertPointsBuilder, Value,
    VectorParamsBuilder, vector_output,
};
use qdrant_client::{Payload, Qdrant};

use super::{
    DIM, INDEXED_FIELDS, Neighbour, SimilarFilter, UserPayload, UserVector, VectorError, VectorIndex, checked, point_id,
};

/// A collection on a Qdrant server.
pub struct ServerIndex {
    url: String,
    collection: String,
    client: Qdrant,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ServerIndex {
    fn drop(&mut self) {
        // Not a blocking shutdown: the index may be dropped on an async runtime's thread.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ServerIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIndex")
            .field("url", &self.url)
            .field("collection", &self.collection)
            .finish()
    }
}

impl ServerIndex {
    /// Connects, and creates the collection (cosine, [`DIM`] dimensions, keyword indexes on
    /// the payload fields) when it does not exist.
    pub fn connect(url: &str, api_key: Option<&str>, collection: &str) -> Result<Self, VectorError> {
        let err = |message: String| VectorError::Server {
            url: url.to_owned(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("idgw-qdrant")
            .enable_all()
            .build()
            .map_err(|e| err(e.to_string()))?;
        let client = {
            let _entered = runtime.enter();
            Qdrant::from_url(url)
                .api_key(api_key.map(str::to_owned))
                .build()
                .map_err(|e| err(e.to_string()))?
        };
        let index = ServerIndex {
            url: url.to_owned(),
            collection: collection.to_owned(),
            client,
            runtime: Some(runtime),
        };
        index.ensure_collection()?;
        Ok(index)
    }

    fn error(&self, e: impl std::fmt::Display) -> VectorError {
        VectorError::Server {
            url: self.url.clone(),
            message: e.to_string(),
        }
    }

    /// Runs `f(client)` on the index's runtime and waits for it.
    fn run<T, F, Fut>(&self, f: F) -> Result<T, VectorError>
    where
        T: Send + 'static,
        F: FnOnce(Qdrant) -> Fut,
        Fut: Future<Output = Result<T, qdrant_client::QdrantError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.client.clone());
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| self.error("the index is shut down"))?;
        runtime.spawn(async move {
            // The receiver only goes away if the caller did; nothing to report then.
            let _ = tx.send(fut.await);
        });
        match rx.recv() {
            Ok(result) => result.map_err(|e| self.error(e)),
            Err(_) => Err(self.error("the request task ended without an answer")),
        }
    }

    fn ensure_collection(&self) -> Result<(), VectorError> {
        let name = self.collection.clone();
        let exists = self.run(move |c| async move { c.collection_exists(name).await })?;
        if exists {
            let name = self.collection.clone();
            let info = self.run(move |c| async move { c.collection_info(name).await })?;
            let size = info
                .result
                .and_then(|r| r.config)
                .and_then(|c| c.params)
                .and_then(|p| p.vectors_config)
                .and_then(|v| v.config)
                .and_then(|c| match c {
                    qdrant_client::qdrant::vectors_config::Config::Params(p) => Some(p.size),
                    qdrant_client::qdrant::vectors_config::Config::ParamsMap(_) => None,
                });
            if size != Some(DIM as u64) {
                return Err(self.error(format!(
                    "collection {} holds vectors of {size:?} dimensions, this build writes {DIM}",
                    self.collection
                )));
            }
            return Ok(());
        }
        let name = self.collection.clone();
        self.run(move |c| async move {
            c.create_collection(
                CreateCollectionBuilder::new(name)
                    .vectors_config(VectorParamsBuilder::new(DIM as u64, Distance::Cosine)),
            )
            .await
        })?;
        for field in INDEXED_FIELDS {
            let name = self.collection.clone();
            self.run(move |c| async move {
                c.create_field_index(CreateFieldIndexCollectionBuilder::new(name, field, FieldType::Keyword).wait(true))
                    .await
            })?;
        }
        Ok(())
    }

    fn user_of(&self, id: String, payload: HashMap<String, Value>) -> Result<UserPayload, VectorError> {
        let json = serde_json::Value::from(Payload::from(payload));
        serde_json::from_value(json).map_err(|e| VectorError::Point {
            id,
            message: format!("payload: {e}"),
        })
    }
}

fn filter_of(filter: &SimilarFilter, exclude: &[&str]) -> Option<Filter> {
    let mut must = Vec::new();
    if !filter.risk_levels.is_empty() {
        must.push(Condition::matches("risk_level", filter.risk_level_names()));
    }
    if !filter.countries.is_empty() {
        must.push(Condition::matches("last_country", filter.countries.clone()));
    }
    let mut out = Filter::must(must);
    if !exclude.is_empty() {
        out.must_not = vec![Condition::has_id(exclude.iter().map(|u| point_id(u).to_string()))];
    }
    (!out.must.is_empty() || !out.must_not.is_empty()).then_some(out)
}

fn point_label(id: Option<&qdrant_client::qdrant::PointId>) -> String {
    id.map(|p| format!("{p:?}")).unwrap_or_else(|| "(no id)".into())
}

impl VectorIndex for ServerIndex {
    fn backend(&self) -> &'static str {
        "qdrant-server"
    }

    fn upsert(&self, points: &[UserVector]) -> Result<(), VectorError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut list = Vec::with_capacity(points.len());
        for p in points {
            let payload = Payload::try_from(serde_json::to_value(&p.payload).map_err(|e| self.error(e))?)
                .map_err(|e| self.error(e))?;
            let vector = checked(&p.payload.user_id, p.vector.clone())?;
            list.push(PointStruct::new(
                point_id(&p.payload.user_id).to_string(),
                vector,
                payload,
            ));
        }
        let name = self.collection.clone();
        self.run(move |c| async move { c.upsert_points(UpsertPointsBuilder::new(name, list).wait(true)).await })?;
        Ok(())
    }

    fn fetch(&self, user_ids: &[&str]) -> Result<Vec<UserVector>, VectorError> {
        let ids: Vec<qdrant_client::qdrant::PointId> =
            user_ids.iter().map(|u| point_id(u).to_string().into()).collect();
        let name = self.collection.clone();
        let response = self.run(move |c| async move {
            c.get_points(GetPointsBuilder::new(name, ids).with_payload(true).with_vectors(true))
                .await
        })?;
        response
            .result
            .into_iter()
            .map(|p| self.to_user(point_label(p.id.as_ref()), p.payload, p.vectors))
            .collect()
    }

    fn find_login(&self, login: &str) -> Result<Option<UserVector>, VectorError> {
        let name = self.collection.clone();
        let login = login.to_owned();
        let response = self.run(move |c| async move {
            c.scroll(
                ScrollPointsBuilder::new(name)
                    .filter(Filter::must([Condition::matches("login", login)]))
                    .limit(1)
                    .with_payload(true)
                    .with_vectors(true),
            )
            .await
        })?;
        response
            .result
            .into_iter()
            .next()
            .map(|p| self.to_user(point_label(p.id.as_ref()), p.payload, p.vectors))
            .transpose()
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: &SimilarFilter,
        exclude: &[&str],
    ) -> Result<Vec<Neighbour>, VectorError> {
        let mut request = QueryPointsBuilder::new(self.collection.clone())
            .query(query.to_vec())
            .limit(k as u64)
            .with_payload(true);
        if let Some(f) = filter_of(filter, exclude) {
            request = request.filter(f);
        }
        let response = self.run(move |c| async move { c.query(request).await })?;
        response
            .result
            .into_iter()
            .map(|p| {
                Ok(Neighbour {
                    score: p.score,
                    payload: self.user_of(point_label(p.id.as_ref()), p.payload)?,
                })
            })
            .collect()
    }

    fn count(&self) -> Result<u64, VectorError> {
        let name = self.collection.clone();
        let response = self.run(move |c| async move { c.count(CountPointsBuilder::new(name).exact(true)).await })?;
        Ok(response.result.map(|r| r.count).unwrap_or(0))
    }

    fn flush(&self) -> Result<(), VectorError> {
        // Upserts are sent with `wait`: they are applied and in the server's WAL on return.
        Ok(())
    }

    fn optimize(&self) -> Result<(), VectorError> {
        // The server's optimizers build the HNSW index in the background.
        Ok(())
    }
}

impl ServerIndex {
    fn to_user(
        &self,
        id: String,
        payload: HashMap<String, Value>,
        vectors: Option<qdrant_client::qdrant::VectorsOutput>,
    ) -> Result<UserVector, VectorError> {
        let payload = self.user_of(id, payload)?;
        let vector = match vectors.and_then(|v| v.get_vector()) {
            Some(vector_output::Vector::Dense(d)) => d.data,
            _ => Vec::new(),
        };
        let vector = checked(&payload.user_id, vector)?;
        Ok(UserVector { payload, vector })
    }
}
