//! `idgw eval`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use idgw_pipeline::Store;
use idgw_testbed::eval::{EvalReport, evaluate, load};

/// Exit code of `--check` when a target is missed.
const EXIT_TARGET_MISSED: u8 = 4;

/// Score a store's alerts against the generator's ground-truth labels.
///
/// For every detection: recall over the labelled attacks, precision over the alerts
/// raised (an alert on another labelled attack of the same user or source counts as
/// correct: it is a real alarm), alerts on benign look-alikes, and the event-time delay
/// from the last evidence event to the alert. Run `idgw generate --labels L.jsonl` and
/// `idgw replay` first.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The labels file written by `idgw generate --labels`.
    #[arg(long, value_name = "LABELS.jsonl")]
    labels: PathBuf,
    /// The store the generated events were replayed into.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with code 4 unless every attack category has recall ≥ 0.98, medium-or-higher
    /// precision is ≥ 0.95 and no look-alike drew a medium-or-higher alert.
    #[arg(long)]
    check: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let store = Store::at(&args.store);
    let (labels, alerts) = load(&args.labels, &store.alerts_jsonl()).context("reading labels and alerts")?;
    let report = evaluate(&labels, &alerts);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    let met = report.min_recall.is_none_or(|r| r >= 0.98)
        && report.precision_medium_up.is_none_or(|p| p >= 0.95)
        && report.lookalikes_tripped == 0;
    Ok(if args.check && !met {
        eprintln!("eval: a target was missed (recall ≥ 0.98, precision ≥ 0.95, no look-alike tripped)");
        ExitCode::from(EXIT_TARGET_MISSED)
    } else {
        ExitCode::SUCCESS
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}s"))
}

fn print(r: &EvalReport) {
    println!(
        "{:<27} {:>7} {:>8} {:>7} {:>6} {:>5} {:>5} {:>5} {:>9} {:>10} {:>8} {:>8}",
        "detection",
        "attacks",
        "recall",
        "alerts",
        "true",
        "rel",
        "look",
        "false",
        "precision",
        "look-trip",
        "delay50",
        "delaymax"
    );
    for (name, s) in &r.by_detection {
        println!(
            "{:<27} {:>7} {:>8} {:>7} {:>6} {:>5} {:>5} {:>5} {:>9} {:>10} {:>8} {:>8}",
            name,
            s.attacks,
            pct(s.recall),
            s.alerts,
            s.true_alerts,
            s.related_alerts,
            s.lookalike_alerts,
            s.false_alerts,
            pct(s.precision),
            format!("{}/{}", s.lookalikes_tripped, s.lookalikes),
            secs(s.delay_p50_s),
            secs(s.delay_max_s),
        );
    }
    println!();
    println!("labels {} · alerts {}", r.labels, r.alerts);
    println!(
        "precision {} (medium and up: {}) · lowest recall {} · look-alikes tripped {}",
        pct(r.precision),
        pct(r.precision_medium_up),
        pct(r.min_recall),
        r.lookalikes_tripped
    );
    if !r.missed.is_empty() {
        println!("missed:");
        for m in &r.missed {
            println!("  {m}");
        }
    }
}
