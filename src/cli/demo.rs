//! `idgw demo`: the main job on embedded defaults.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use datafusion::arrow::util::pretty::pretty_format_batches;
use idgw_pipeline::source::file::Input;
use idgw_pipeline::{PipelineConfig, Store};
use idgw_testbed::GenerateConfig;

/// Run the whole product on embedded defaults.
///
/// Generates a synthetic tenant (2,000 users, 3 days, with labelled attacks), replays it
/// through the pipeline into DIR/store, prints the ingest summary and what the store holds,
/// and leaves everything in DIR for `idgw query --store DIR/store` (and, as they land, the
/// gateway and the evaluation against DIR/labels.jsonl).
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working directory (created if missing; an earlier demo's store there is replaced).
    #[arg(long, default_value = "idgw-demo")]
    dir: PathBuf,
    /// Users in the generated tenant.
    #[arg(long, default_value_t = 2000)]
    users: u32,
    /// Days of activity.
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let events = args.dir.join("events.ndjson.gz");
    let labels = args.dir.join("labels.jsonl");
    let store_dir = args.dir.join("store");
    if store_dir.exists() {
        std::fs::remove_dir_all(&store_dir).with_context(|| format!("clearing {}", store_dir.display()))?;
    }
    let config = GenerateConfig {
        users: args.users,
        days: args.days,
        seed: args.seed,
        ..GenerateConfig::default()
    };
    println!(
        "1/3 generating a tenant: {} users, {} days (seed {})",
        args.users, args.days, args.seed
    );
    let generated = super::generate::run_generator(&config, &events, &labels, false)?;
    println!(
        "    {} events, {} attacks and {} benign look-alikes labelled in {}",
        generated.events,
        generated.attacks,
        generated.lookalikes,
        labels.display()
    );

    println!("2/3 replaying into {}", store_dir.display());
    let store = Store::open(&store_dir)?;
    let summary = idgw_pipeline::replay(
        &[Input::Path(events.clone())],
        &store,
        &PipelineConfig::default(),
        &mut |_| {},
    )?;
    println!(
        "    {} events in, {} stored, {} dead-lettered, {} duplicates, {} alerts ({:.0} events/s)",
        summary.events_in,
        summary.events_ok,
        summary.deadlettered,
        summary.duplicates,
        summary.alerts,
        summary.events_per_s
    );

    let (truth, raised) = idgw_testbed::eval::load(&labels, &store.alerts_jsonl())?;
    let report = idgw_testbed::eval::evaluate(&truth, &raised);
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0));
    println!(
        "    against the ground truth: lowest recall {}, precision of medium+ alerts {}, look-alikes tripped {} \
         (idgw eval --labels {} --store {})",
        pct(report.min_recall),
        pct(report.precision_medium_up),
        report.lookalikes_tripped,
        labels.display(),
        store_dir.display()
    );

    println!("3/3 what the store holds");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    for (title, sql) in [
        (
            "events by category",
            "SELECT category, count(*) AS events, count(DISTINCT user_id) AS users FROM events GROUP BY 1 ORDER BY 2 DESC",
        ),
        (
            "alerts by detection",
            "SELECT detection, count(*) AS alerts, sum(CASE WHEN severity IN ('high', 'critical') THEN 1 ELSE 0 END) AS high_or_critical, count(DISTINCT user_id) AS users \
             FROM alerts GROUP BY 1 ORDER BY 2 DESC",
        ),
        (
            "latest alerts",
            "SELECT last_seen, detection, severity, coalesce(user_login, src_ip) AS who, summary \
             FROM alerts ORDER BY last_seen DESC LIMIT 8",
        ),
        (
            "riskiest users",
            "SELECT user_login, risk_score, risk_level, alert_count, last_country \
             FROM identity_state ORDER BY risk_score DESC LIMIT 10",
        ),
    ] {
        let batches = runtime.block_on(idgw_pipeline::query::query(&store, sql))?;
        println!("\n{title}:\n{}", pretty_format_batches(&batches)?);
    }
    println!("\nThe store is left in {} — try:", store_dir.display());
    println!(
        "  idgw query --store {} \"SELECT user_login, top_reasons FROM identity_state WHERE risk_level = 'critical'\"",
        store_dir.display()
    );
    Ok(if summary.has_input_errors() {
        ExitCode::from(super::EXIT_INPUT_ERRORS)
    } else {
        ExitCode::SUCCESS
    })
}
