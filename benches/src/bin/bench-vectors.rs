//! `bench-vectors [USERS] [QUERIES] [DIR]`: the behaviour vector index (qdrant-edge).
//!
//! Builds USERS (default 100,000) behaviour profiles through the pipeline's own profile code
//! from synthetic sign-ins (users in 200 cohorts that share a country, network, client and
//! working hours, with personal devices and noise), then times: the bulk upsert in batches
//! of 4,096, the optimize step (HNSW build), and QUERIES (default 2,000) k=10 similar-user
//! queries of random users. Prints JSON: times, p50/p99/max query latency, disk bytes per
//! user and resident memory before and after. The index lives in DIR (default: a temporary
//! directory, removed afterwards).

use std::path::{Path, PathBuf};
use std::time::Instant;

use idgw_pipeline::detect::observation::{Kind, Obs};
use idgw_pipeline::vectors::edge::EdgeIndex;
use idgw_pipeline::vectors::{self, Behaviour, SimilarFilter, UserPayload, UserVector, VectorIndex};
use idgw_schemas::RiskLevel;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const HOUR: i64 = 3_600_000;
const COUNTRIES: [&str; 12] = [
    "United States",
    "Germany",
    "India",
    "Brazil",
    "Japan",
    "United Kingdom",
    "France",
    "Canada",
    "Australia",
    "Mexico",
    "Spain",
    "Poland",
];

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Bytes the directory's files occupy on disk (allocated blocks: the WAL and segments are
/// preallocated sparse files, so their length overstates them).
fn dir_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn population(users: usize, rng: &mut StdRng) -> Vec<UserVector> {
    let mut behaviour = Behaviour::default();
    for u in 0..users {
        let cohort = rng.random_range(0..200u64);
        let id = format!("00u{u:08}");
        let signins = rng.random_range(5..40);
        for i in 0..signins {
            // Mostly the cohort's habits, sometimes travel or another network.
            let away = rng.random_bool(0.05);
            let country = if away {
                COUNTRIES[rng.random_range(0..COUNTRIES.len())]
            } else {
                COUNTRIES[(cohort % COUNTRIES.len() as u64) as usize]
            };
            let hour = (cohort % 24) as i64 + rng.random_range(0..3);
            let obs = Obs {
                uuid: format!("{id}-{i}").into(),
                time: i as i64 * 24 * HOUR + hour * HOUR,
                seq: 0,
                kind: Kind::SignIn,
                user_id: Some(id.as_str().into()),
                login: None,
                ip: None,
                lat_lon: None,
                country: Some(country.into()),
                city: None,
                asn: Some(if away {
                    rng.random_range(1..60_000)
                } else {
                    1000 + cohort as i64
                }),
                proxy: false,
                anonymizer: false,
                corporate_tunnel: false,
                user_agent: cohort % 7,
                ua_family: cohort % 7,
                device: Some(u as u64 * 3 + rng.random_range(0..2)),
                session: None,
                attempt: None,
                event_type: 0,
                ua_major: None,
                okta_client: false,
                okta: 0,
            };
            behaviour.seed(&obs);
        }
    }
    behaviour
        .all_users()
        .iter()
        .filter_map(|id| {
            let p = behaviour.profile(id)?;
            let risk_score = if rng.random_bool(0.02) { 80.0 } else { 5.0 };
            Some(UserVector {
                payload: UserPayload {
                    user_id: id.to_string(),
                    login: Some(format!("{id}@example.com")),
                    risk_score,
                    risk_level: RiskLevel::from_score(risk_score),
                    last_country: Some("United States".into()),
                },
                vector: p.vector(),
            })
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let queries: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    let keep = args.next().map(PathBuf::from);
    let temp = tempfile::tempdir()?;
    let dir = keep.unwrap_or_else(|| temp.path().join("vectors"));

    let mut rng = StdRng::seed_from_u64(7);
    let points = population(users, &mut rng);
    let rss_before = rss_bytes();

    let index = EdgeIndex::open(&dir)?;
    let started = Instant::now();
    for chunk in points.chunks(4096) {
        index.upsert(chunk)?;
    }
    let upsert_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    index.optimize()?;
    index.flush()?;
    let optimize_s = started.elapsed().as_secs_f64();
    let count = index.count()?;

    let filter = SimilarFilter::default();
    let mut latencies = Vec::with_capacity(queries);
    for _ in 0..queries {
        let user = &points[rng.random_range(0..points.len())].payload.user_id;
        let started = Instant::now();
        let found = vectors::similar_to(&index, user, 10, &filter)?.ok_or("user missing")?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        if found.len() != 10 {
            return Err(format!("{user}: {} neighbours", found.len()).into());
        }
    }
    latencies.sort_by(f64::total_cmp);
    let disk = dir_bytes(&dir);
    let rss_after = rss_bytes();
    println!(
        "{}",
        serde_json::json!({
            "users": count,
            "dim": vectors::DIM,
            "upsert_s": upsert_s,
            "optimize_s": optimize_s,
            "index_total_s": upsert_s + optimize_s,
            "queries": queries,
            "query_ms_p50": percentile(&latencies, 0.50),
            "query_ms_p99": percentile(&latencies, 0.99),
            "query_ms_max": latencies.last().copied().unwrap_or(0.0),
            "disk_bytes": disk,
            "disk_bytes_per_user": disk as f64 / count.max(1) as f64,
            "rss_index_bytes": rss_after.saturating_sub(rss_before),
            "rss_index_bytes_per_user": rss_after.saturating_sub(rss_before) as f64 / count.max(1) as f64,
            "backend": index.backend(),
        })
    );
    Ok(())
}
