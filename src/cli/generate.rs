//! `idgw generate`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use flate2::Compression;
use flate2::write::GzEncoder;
use idgw_testbed::{GenerateConfig, GenerateSummary};
use indicatif::{ProgressBar, ProgressStyle};

/// Generate a synthetic Okta tenant's System Log, with ground-truth labels.
///
/// Users have homes, providers, devices, working hours and apps; their days hold sign-ins,
/// MFA pushes, SSO, sign-outs, password typos, admin work and API-token automation. Benign
/// look-alikes (travel at airliner speed, corporate proxy egress, mobile carrier hops, typos
/// then success, a new device, night shifts) and attacks (impossible travel, brute force,
/// password spray, MFA fatigue, session hijack, lockout, admin grants, API tokens,
/// ThreatInsight, MFA tamper, "this wasn't me" reports, FastPass phishing, ITP risk,
/// anonymizing proxies, support impersonation, IdP changes) are written to the labels file
/// (one JSON object per line) with the uuids of their events.
///
/// Output matches real /api/v1/logs events field by field. It is deterministic for a seed
/// and streams one day at a time. A `.gz` suffix on --out compresses it.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of users.
    #[arg(long, default_value_t = 1000)]
    users: u32,
    /// Number of days.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Seed; the same seed gives the same log.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First day (a date, `2024-08-01`, or an RFC 3339 time; midnight UTC of its day).
    #[arg(long, default_value = "2024-08-01")]
    start: String,
    /// Events file (NDJSON; gzip when the name ends in `.gz`).
    #[arg(long, value_name = "EVENTS")]
    out: PathBuf,
    /// Labels file (JSON lines).
    #[arg(long, value_name = "LABELS")]
    labels: PathBuf,
    /// Inject only this scenario (repeatable; default: every attack and look-alike). Names:
    /// the detections (`impossible_travel`, `mfa_fatigue`, …) and the look-alikes `travel`,
    /// `vpn_egress`, `mobile_hop`, `typos`, `new_device`, `night_shift`.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn parse_start(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("--start {text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))?;
    Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// An output file, gzip-compressed when its name ends in `.gz`.
pub enum Output {
    Plain(BufWriter<File>),
    Gzip(GzEncoder<BufWriter<File>>),
}

impl Output {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let buf = BufWriter::with_capacity(1 << 20, file);
        Ok(if path.extension().is_some_and(|e| e == "gz") {
            Output::Gzip(GzEncoder::new(buf, Compression::fast()))
        } else {
            Output::Plain(buf)
        })
    }

    /// Completes the file (the gzip trailer included) and reports any error.
    pub fn finish(self) -> std::io::Result<()> {
        let mut buf = match self {
            Output::Plain(b) => b,
            Output::Gzip(g) => g.finish()?,
        };
        buf.flush()?;
        buf.get_ref().sync_all()
    }
}

impl Write for Output {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Plain(w) => w.write(data),
            Output::Gzip(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Plain(w) => w.flush(),
            Output::Gzip(w) => w.flush(),
        }
    }
}

/// Runs the generator with a progress bar over days.
pub fn run_generator(
    config: &GenerateConfig,
    out: &Path,
    labels: &Path,
    quiet: bool,
) -> anyhow::Result<GenerateSummary> {
    let mut events = Output::create(out)?;
    let mut label_out = Output::create(labels)?;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(u64::from(config.days))
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} day {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = idgw_testbed::generate(config, &mut events, &mut label_out, &mut |s| {
        bar.inc(1);
        bar.set_message(format!("{} events, {} labels", s.events, s.labels));
    })?;
    bar.finish_and_clear();
    events.finish().with_context(|| format!("writing {}", out.display()))?;
    label_out
        .finish()
        .with_context(|| format!("writing {}", labels.display()))?;
    Ok(summary)
}

pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let config = GenerateConfig {
        users: args.users,
        days: args.days,
        seed: args.seed,
        start: parse_start(&args.start)?,
        only: args.scenarios.clone(),
        ..GenerateConfig::default()
    };
    let summary = run_generator(&config, &args.out, &args.labels, args.json)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "generated {} events for {} users over {} days: {} attacks and {} benign look-alikes labelled ({} late, {} without geo)",
            summary.events,
            summary.users,
            summary.days,
            summary.attacks,
            summary.lookalikes,
            summary.late_events,
            summary.events_without_geo
        );
        println!("  events  {}", args.out.display());
        println!("  labels  {}", args.labels.display());
    }
    Ok(ExitCode::SUCCESS)
}
