//! `idgw report`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use idgw_pipeline::Store;
use idgw_pipeline::report::{self, ReportOptions};

/// Write the SOC report: one HTML page that opens without network access.
///
/// The page shows alerts by detection and severity over time, the riskiest users with the
/// reasons behind their scores, impossible-travel alerts as great-circle arcs on a world map,
/// and a timeline of recent activity for each of the riskiest users. Charts are inline SVG;
/// the page has no script and loads nothing, so it can be mailed or attached to a ticket.
/// Example:
///
///   idgw report --store ./store --out report.html
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The store directory.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Where to write the page.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    out: PathBuf,
    /// Users in the riskiest-users table.
    #[arg(long, default_value_t = 25)]
    top_users: usize,
    /// How many of them get a timeline.
    #[arg(long, default_value_t = 10)]
    timelines: usize,
    /// Days of activity a timeline covers, back from the user's last event.
    #[arg(long, default_value_t = 7)]
    timeline_days: u32,
    /// Impossible-travel alerts drawn on the map (the riskiest).
    #[arg(long, default_value_t = 300)]
    max_arcs: usize,
    /// Print a JSON summary (path, bytes, counts) instead of a sentence.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting runtime")?;
    let options = ReportOptions {
        top_users: args.top_users,
        timeline_users: args.timelines.min(args.top_users),
        timeline_days: i64::from(args.timeline_days),
        max_arcs: args.max_arcs,
        ..ReportOptions::default()
    };
    let store = Store::at(&args.store);
    let made = runtime.block_on(report::build(&store, &options))?;
    std::fs::write(&args.out, &made.html).with_context(|| format!("writing {}", args.out.display()))?;
    let t = &made.data.totals;
    if args.json {
        let summary = serde_json::json!({
            "out": args.out,
            "bytes": made.html.len(),
            "events": t.events,
            "users": t.users,
            "alerts": t.alerts,
            "users_at_risk": t.users_at_risk,
            "top_users": made.data.top_users.len(),
            "travel_arcs": made.data.travels.len(),
            "timelines": made.data.timelines.len(),
        });
        println!("{summary}");
    } else {
        println!(
            "wrote {} ({} KiB): {} events, {} alerts, {} users at risk, {} travel arcs, {} timelines",
            args.out.display(),
            made.html.len() / 1024,
            t.events,
            t.alerts,
            t.users_at_risk,
            made.data.travels.len(),
            made.data.timelines.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
