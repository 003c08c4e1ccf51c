//! `idgw similar`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use idgw_pipeline::PipelineConfig;
use idgw_pipeline::vectors::{self, SimilarFilter};
use idgw_schemas::RiskLevel;

/// Users who behave like a user, or like a set of users.
///
/// Every user's behaviour (countries, networks, devices, clients, apps, event types, hours
/// of day, failure and MFA-denial ratios) is kept as a vector in the store's index
/// (embedded qdrant-edge, or the Qdrant server of QDRANT_URL). With one USER this prints the
/// users nearest to that user's vector; with several it prints the users nearest to their
/// centroid ("who else behaves like these compromised accounts"). USER is an Okta user id or
/// a login. Scores are cosine similarities (1 = same behaviour).
///
///   idgw similar --store ./store alice@example.com -k 5
///   idgw similar --store ./store 00u1 00u2 00u3 --risk-level low --country "United States"
#[derive(Debug, Args)]
pub struct SimilarArgs {
    /// The store directory.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// One user, or several for their centroid.
    #[arg(value_name = "USER", required = true)]
    users: Vec<String>,
    /// Neighbours to print.
    #[arg(short, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    k: u16,
    /// Only neighbours at this risk level (repeatable: low, medium, high, critical).
    #[arg(long = "risk-level", value_name = "LEVEL", value_parser = parse_level)]
    risk_levels: Vec<RiskLevel>,
    /// Only neighbours whose last country is this one (repeatable).
    #[arg(long = "country", value_name = "COUNTRY")]
    countries: Vec<String>,
    /// Pipeline configuration (TOML) naming the vector index; QDRANT_URL and VECTOR_DB_PATH
    /// override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON (one object: query and neighbours).
    #[arg(long)]
    json: bool,
}

fn parse_level(s: &str) -> Result<RiskLevel, String> {
    serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase()))
        .map_err(|_| format!("{s:?} is not a risk level (low, medium, high, critical)"))
}

pub fn run(args: SimilarArgs) -> anyhow::Result<ExitCode> {
    let config = PipelineConfig::load(args.config.as_deref()).context("loading configuration")?;
    if !config.vectors.exists(&args.store) {
        anyhow::bail!(
            "no vector index in {}: replay events into the store first (or build a baseline)",
            config.vectors.edge_dir(&args.store).display()
        );
    }
    let index = vectors::open(&config.vectors, &args.store).context("opening the vector index")?;
    let filter = SimilarFilter {
        risk_levels: args.risk_levels,
        countries: args.countries,
    };
    let k = usize::from(args.k);
    let neighbours = if let [user] = args.users.as_slice() {
        match vectors::similar_to(index.as_ref(), user, k, &filter)? {
            Some(n) => n,
            None => anyhow::bail!("user {user} is not in the vector index ({} users)", index.count()?),
        }
    } else {
        let users: Vec<&str> = args.users.iter().map(String::as_str).collect();
        vectors::near_centroid(index.as_ref(), &users, k, &filter)?
    };
    if args.json {
        let out = serde_json::json!({
            "query": args.users,
            "backend": index.backend(),
            "neighbours": neighbours,
        });
        println!("{}", serde_json::to_string(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if neighbours.is_empty() {
        println!("no users match");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>4}  {:>10}  {:<22} {:<32} {:<10} {:>10}  last country",
        "rank", "similarity", "user id", "login", "risk level", "risk score"
    );
    for (i, n) in neighbours.iter().enumerate() {
        let p = &n.payload;
        println!(
            "{:>4}  {:>10.3}  {:<22} {:<32} {:<10} {:>10.1}  {}",
            i + 1,
            n.score,
            p.user_id,
            p.login.as_deref().unwrap_or("-"),
            p.risk_level.as_str(),
            p.risk_score,
            p.last_country.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}
