//! `idgw replay`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use idgw_pipeline::ingest::Counters;
use idgw_pipeline::source::file::Input;
use idgw_pipeline::{PipelineConfig, Store, Summary};
use indicatif::{ProgressBar, ProgressStyle};

/// Replay Okta System Log files into a store.
///
/// Reads NDJSON, a JSON array (as /api/v1/logs returns), event-hook deliveries
/// ({"data":{"events":[...]}}) or pretty-printed JSON, each optionally gzip-compressed;
/// `-` reads stdin. Events are normalized and written to <STORE>/events/ as Parquet,
/// partitioned by event date. A repeated uuid is stored once (also across runs into the same
/// store) and counted as a duplicate; unreadable records go to <STORE>/deadletter/ with the
/// reason. The summary always satisfies events_in = events_ok + deadlettered + duplicates.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Input files (`-` for stdin), read in order.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// The store directory (created if missing).
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Pipeline configuration (TOML; see deploy/config.example.toml). IDGW_* environment
    /// variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Print the summary as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// No progress display.
    #[arg(long)]
    quiet: bool,
    /// Threads to decode and normalize on, this one included (overrides `[ingest] threads`;
    /// 0 = one per core). A run that completes stores and alerts the same at any count; 1 runs
    /// everything on one thread.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let mut config = PipelineConfig::load(args.config.as_deref()).context("loading configuration")?;
    if let Some(threads) = args.threads {
        config.ingest.threads = threads;
    }
    let store = Store::open(&args.store).with_context(|| format!("opening store {}", args.store.display()))?;
    let inputs: Vec<Input> = args.inputs.iter().map(|a| Input::parse(a)).collect();

    let mut progress = Progress::new(args.quiet);
    let summary = idgw_pipeline::replay(&inputs, &store, &config, &mut |c| progress.update(c))?;
    progress.finish();

    if let Some(path) = &args.summary_json {
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    for input in summary.inputs.iter().filter(|i| i.error.is_some()) {
        eprintln!("error: {}", input.error.as_deref().unwrap_or_default());
    }
    Ok(if summary.has_input_errors() {
        ExitCode::from(super::EXIT_INPUT_ERRORS)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(s: &Summary) {
    println!(
        "replayed {} input(s) into {} in {:.2}s",
        s.inputs.len(),
        s.store,
        s.elapsed_s
    );
    println!("  events in      {:>12}", s.events_in);
    println!("  stored         {:>12}", s.events_ok);
    println!("  dead-lettered  {:>12}", s.deadlettered);
    for (reason, n) in &s.deadletter_reasons {
        println!("    {reason:<22}{n:>8}");
    }
    println!("  duplicates     {:>12}", s.duplicates);
    println!("  alerts         {:>12}", s.alerts);
    if s.suppressed_alerts > 0 {
        println!(
            "    suppressed     {:>9} (stored and marked: `idgw suppress list`)",
            s.suppressed_alerts
        );
    }
    if s.disabled_findings > 0 {
        println!(
            "    disabled       {:>9} (findings of detections turned off)",
            s.disabled_findings
        );
    }
    if s.aggregated_hits > 0 {
        println!(
            "    aggregated hits {:>9} (ThreatInsight / anonymiser hits an earlier alert stands for)",
            s.aggregated_hits
        );
    }
    match s.events_per_cpu_s {
        Some(per_cpu) => println!(
            "  rate           {:>12.0} events/s ({per_cpu:.0} per CPU-second)",
            s.events_per_s
        ),
        None => println!("  rate           {:>12.0} events/s", s.events_per_s),
    }
    let t = &s.stages;
    println!(
        "  stages         read {:.2} s, parse {:.2} s, detect {:.2} s, finish {:.2} s; Parquet {:.2} s (own thread)",
        t.read_s, t.parse_s, t.detect_s, t.finish_s, t.parquet_write_s
    );
    println!("  files written  {:>12}", s.files_written);
    if let Some(f) = &s.deadletter_file {
        println!("  dead letter    {f}");
    }
    let check = if s.balanced { "ok" } else { "MISMATCH" };
    println!(
        "  check          {} = {} + {} + {} ({check})",
        s.events_in, s.events_ok, s.deadlettered, s.duplicates
    );
}

/// A spinner on a terminal; a plain line every few seconds otherwise.
enum Progress {
    Bar(ProgressBar),
    Lines { started: Instant, last: Instant },
    Off,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        if quiet {
            return Progress::Off;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {pos} events ({per_sec}) {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Lines {
                started: now,
                last: now,
            }
        }
    }

    fn update(&mut self, c: &Counters) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(c.events_in);
                bar.set_message(format!(
                    "stored {} · dead {} · dup {}",
                    c.events_ok, c.deadlettered, c.duplicates
                ));
            }
            Progress::Lines { started, last } => {
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    eprintln!(
                        "progress: {} events in {:.0}s (stored {}, dead-lettered {}, duplicates {})",
                        c.events_in,
                        started.elapsed().as_secs_f64(),
                        c.events_ok,
                        c.deadlettered,
                        c.duplicates
                    );
                }
            }
            Progress::Off => {}
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
