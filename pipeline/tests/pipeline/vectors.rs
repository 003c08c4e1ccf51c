//! Behaviour vectors: the index semantics (the same on both backends), the pipeline keeping
//! it up to date, and the similarity queries.

use idgw_pipeline::PipelineConfig;
use idgw_pipeline::detect::observation::{Kind, Obs};
use idgw_pipeline::vectors::edge::EdgeIndex;
use idgw_pipeline::vectors::server::ServerIndex;
use idgw_pipeline::vectors::{self, Behaviour, DIM, SimilarFilter, UserPayload, UserVector, VectorError, VectorIndex};
use idgw_schemas::RiskLevel;

use super::golden::golden_dir;
use super::support::{Fixture, skip_notice};

const HOUR: i64 = 3_600_000;

/// A successful sign-in with the given habits.
fn signin(user: &str, time: i64, country: &str, asn: i64, ua_family: u64, device: u64) -> Obs {
    Obs {
        uuid: format!("{user}-{time}").into(),
        time,
        seq: 0,
        kind: Kind::SignIn,
        user_id: Some(user.into()),
        login: Some(format!("{user}@example.com").into()),
        ip: None,
        lat_lon: None,
        country: Some(country.into()),
        city: None,
        asn: Some(asn),
        proxy: false,
        anonymizer: false,
        corporate_tunnel: false,
        user_agent: ua_family,
        ua_family,
        device: Some(device),
        session: None,
        attempt: None,
        event_type: 0,
        ua_major: None,
        okta_client: false,
        okta: 0,
    }
}

/// 30 office users (US, one ISP, office hours) and 6 users behaving like an intrusion set
/// (another country, a hosting ASN, another client, night hours), as points.
fn population() -> Vec<UserVector> {
    let mut behaviour = Behaviour::default();
    for u in 0..30 {
        for day in 0..10 {
            let t = day * 24 * HOUR + (14 + u % 4) * HOUR;
            behaviour.seed(&signin(
                &format!("office{u:02}"),
                t,
                "United States",
                7922,
                1,
                100 + u as u64 % 3,
            ));
        }
    }
    for u in 0..6 {
        for day in 0..10 {
            let t = day * 24 * HOUR + (2 + u % 2) * HOUR;
            behaviour.seed(&signin(
                &format!("intruded{u}"),
                t,
                "Romania",
                9009,
                2,
                900 + u as u64 % 2,
            ));
        }
    }
    behaviour
        .all_users()
        .iter()
        .map(|id| {
            let intruded = id.starts_with("intruded");
            UserVector {
                payload: UserPayload {
                    user_id: id.to_string(),
                    login: Some(format!("{id}@example.com")),
                    risk_score: if intruded { 80.0 } else { 5.0 },
                    risk_level: if intruded { RiskLevel::Critical } else { RiskLevel::Low },
                    last_country: Some(if intruded { "Romania" } else { "United States" }.into()),
                },
                vector: behaviour.profile(id).unwrap().vector(),
            }
        })
        .collect()
}

/// The semantics every backend must have.
fn check_backend(index: &dyn VectorIndex) {
    let points = population();
    index.upsert(&points).unwrap();
    // Upserts are idempotent: stable point ids.
    index.upsert(&points[..10]).unwrap();
    index.flush().unwrap();
    assert_eq!(index.count().unwrap(), 36);

    let got = index.fetch(&["office03", "nobody"]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0],
        points.iter().find(|p| p.payload.user_id == "office03").unwrap().clone()
    );
    let by_login = index.find_login("intruded2@example.com").unwrap().unwrap();
    assert_eq!(by_login.payload.user_id, "intruded2");
    assert!(index.find_login("nobody@example.com").unwrap().is_none());

    // Nearest to an intruded account: the other five first, the account itself left out.
    let any = SimilarFilter::default();
    let near = vectors::similar_to(index, "intruded0", 5, &any).unwrap().unwrap();
    let ids: Vec<&str> = near.iter().map(|n| n.payload.user_id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    assert!(
        ids.iter().all(|id| id.starts_with("intruded") && *id != "intruded0"),
        "{ids:?}"
    );
    assert!(near.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(near[0].score > 0.9, "{near:?}");

    // "Who else behaves like these compromised accounts": the centroid of three.
    let others = vectors::near_centroid(index, &["intruded0", "intruded1", "intruded2@example.com"], 4, &any).unwrap();
    let ids: Vec<&str> = others.iter().map(|n| n.payload.user_id.as_str()).collect();
    assert_eq!(
        &ids[..3].iter().filter(|id| id.starts_with("intruded")).count(),
        &3,
        "{ids:?}"
    );
    assert!(!ids.contains(&"intruded0") && !ids.contains(&"intruded1") && !ids.contains(&"intruded2"));
    assert!(ids[3].starts_with("office"), "{ids:?}");

    // Filters on risk level and country.
    let low_us = SimilarFilter {
        risk_levels: vec![RiskLevel::Low],
        countries: vec!["United States".into()],
    };
    let near = vectors::similar_to(index, "intruded0", 3, &low_us).unwrap().unwrap();
    assert_eq!(near.len(), 3);
    assert!(near.iter().all(|n| n.payload.risk_level == RiskLevel::Low));
    let none = SimilarFilter {
        countries: vec!["Atlantis".into()],
        ..SimilarFilter::default()
    };
    assert!(
        vectors::similar_to(index, "office01", 3, &none)
            .unwrap()
            .unwrap()
            .is_empty()
    );

    // Unknown users are a clear answer, never an empty success.
    assert!(vectors::similar_to(index, "nobody", 3, &any).unwrap().is_none());
    let err = vectors::near_centroid(index, &["intruded0", "nobody"], 3, &any).unwrap_err();
    assert!(err.to_string().contains("unknown users: nobody"), "{err}");
    let err = index.nearest(&[1.0; 3], 3, &any, &[]).unwrap_err();
    assert!(matches!(err, VectorError::Query(_)), "{err}");
}

#[test]
fn the_embedded_index_has_the_semantics_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = EdgeIndex::open(dir.path()).unwrap();
        check_backend(&index);
        index.optimize().unwrap();
        assert_eq!(index.count().unwrap(), 36);
    }
    // Reopened from disk: the same points.
    let index = EdgeIndex::open(dir.path()).unwrap();
    assert_eq!(index.count().unwrap(), 36);
    let near = vectors::similar_to(&index, "office00", 3, &SimilarFilter::default())
        .unwrap()
        .unwrap();
    assert!(near.iter().all(|n| n.payload.user_id.starts_with("office")), "{near:?}");
}

#[test]
fn an_index_whose_directory_is_deleted_closes_without_a_panic() {
    // qdrant-edge flushes on drop and panics when it cannot; the gateway holds the index
    // open for its lifetime, so a store removed under it must not take it down on exit.
    let dir = tempfile::tempdir().unwrap();
    let shard_dir = dir.path().join("vectors");
    let index = EdgeIndex::open(&shard_dir).unwrap();
    index.upsert(&population()).unwrap();
    std::fs::remove_dir_all(&shard_dir).unwrap();
    let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(index)));
    assert!(closed.is_ok(), "dropping the index panicked");
}

#[test]
fn a_qdrant_server_has_the_same_semantics() {
    let Some(url) = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty()) else {
        skip_notice("a_qdrant_server_has_the_same_semantics: QDRANT_URL is not set (no Qdrant server here)");
        return;
    };
    let collection = format!("idgw_test_{}", uuid::Uuid::new_v4().simple());
    let index = ServerIndex::connect(&url, std::env::var("QDRANT_API_KEY").ok().as_deref(), &collection).unwrap();
    check_backend(&index);
}

#[test]
fn an_index_of_another_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = EdgeIndex::open(dir.path()).unwrap();
    let mut bad = population().remove(0);
    bad.vector.truncate(DIM - 1);
    let err = index.upsert(&[bad]).unwrap_err();
    assert!(err.to_string().contains("dimensions"), "{err}");
    assert_eq!(index.count().unwrap(), 0);
}

#[test]
fn replay_keeps_every_users_vector_and_drift_in_identity_state() {
    let fx = Fixture::new();
    let input = golden_dir().join("impossible_travel/events.ndjson.gz");
    let summary = fx.replay(&[&input]);
    assert_eq!(summary.vector_backend, Some("qdrant-edge"));
    assert!(summary.vectors_upserted > 0);

    let index = vectors::open(&PipelineConfig::default().vectors, &fx.store_path()).unwrap();
    let users = fx.sql("SELECT user_id, drift_score, risk_level FROM identity_state");
    assert_eq!(index.count().unwrap(), users.len() as u64);
    for u in &users {
        let drift = u["drift_score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&drift), "{u:?}");
        let id = u["user_id"].as_str().unwrap();
        let point = index.fetch(&[id]).unwrap().pop().unwrap();
        // The payload carries the risk as identity state reports it.
        assert_eq!(point.payload.risk_level.as_str(), u["risk_level"].as_str().unwrap());
    }

    // A second replay of the same input changes nothing in the index.
    drop(index);
    let again = fx.replay(&[&input]);
    assert_eq!(again.events_ok, 0);
    let index = vectors::open(&PipelineConfig::default().vectors, &fx.store_path()).unwrap();
    assert_eq!(index.count().unwrap(), users.len() as u64);
}

#[test]
fn vectors_can_be_switched_off() {
    let fx = Fixture::new();
    let input = golden_dir().join("brute_force/events.ndjson.gz");
    let mut config = PipelineConfig::default();
    config.vectors.enabled = false;
    let summary = fx.replay_with(&[&input], &config);
    assert_eq!(summary.vectors_upserted, 0);
    assert_eq!(summary.vector_backend, None);
    assert!(!fx.store_path().join("vectors").exists());
}

/// The embedded shard is one process's at a time: a reader that holds it between calls
/// (`try_open`) is asked to let go by a writer (`open`), and a request left by a writer
/// that died does not keep readers off for good.
#[test]
fn readers_yield_the_embedded_shard_to_writers_and_ignore_stale_requests() {
    let fx = Fixture::new();
    let config = PipelineConfig::default().vectors;
    let root = fx.store_path();
    std::fs::create_dir_all(&root).unwrap();
    drop(vectors::open(&config, &root).unwrap());

    // A reader holds it; a writer asks, and gets it once the reader lets go.
    let reader = vectors::try_open(&config, &root).unwrap();
    assert!(!vectors::release_requested(&config, &root));
    let writer = std::thread::spawn({
        let (config, root) = (config.clone(), root.clone());
        move || vectors::open(&config, &root).map(|_| ())
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !vectors::release_requested(&config, &root) {
        assert!(std::time::Instant::now() < deadline, "the writer never asked");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // While asked, a reader does not take it again.
    assert!(matches!(vectors::try_open(&config, &root), Err(VectorError::Busy(_))));
    drop(reader);
    writer.join().unwrap().expect("the writer gets the shard");
    assert!(
        !vectors::release_requested(&config, &root),
        "the writer withdraws its request"
    );

    // A request nobody withdrew: honoured while fresh, ignored once old.
    let request = root.join("vectors.release");
    std::fs::write(&request, b"").unwrap();
    assert!(matches!(vectors::try_open(&config, &root), Err(VectorError::Busy(_))));
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(&request)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(vectors::try_open(&config, &root).is_ok());
}
