//! `idgw suppress add | list | remove`: a store's suppressions, for SOC tuning without a
//! rebuild or a configuration change.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use idgw_pipeline::detect::tuning::{Suppression, read_store_file, store_file, write_store_file};

/// Suppress alerts an analyst has judged: by detection, user, address or CIDR, ASN or
/// country, with a reason, an owner and an expiry.
///
/// Suppressions live in the store (`suppressions.json`) beside those of the configuration
/// (`[[detect.suppress]]`); `idgw replay` and `idgw pipeline run` read them when they start.
/// A suppressed alert is still raised and stored, marked in its evidence (`suppressed`:
/// id, reason, owner, expiry), counted (replay summary, `idgw_alerts_suppressed`), and
/// kept out of risk scores and the webhook. All given matchers must match; expiry is
/// compared with the alert's event time.
#[derive(Debug, Args)]
pub struct SuppressArgs {
    #[command(subcommand)]
    command: SuppressCommand,
}

#[derive(Debug, Subcommand)]
enum SuppressCommand {
    Add(AddArgs),
    List(ListArgs),
    Remove(RemoveArgs),
}

/// Add a suppression.
#[derive(Debug, Args)]
struct AddArgs {
    /// The store.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Only alerts of this detection (`password_spray`, …).
    #[arg(long)]
    detection: Option<String>,
    /// Only alerts on this user (Okta id or login).
    #[arg(long)]
    user: Option<String>,
    /// Only alerts whose source address is this one or in this CIDR block.
    #[arg(long, value_name = "IP|CIDR")]
    ip: Option<String>,
    /// Only alerts whose source is in this autonomous system.
    #[arg(long)]
    asn: Option<i64>,
    /// Only alerts whose source is in this country (as Okta names it).
    #[arg(long)]
    country: Option<String>,
    /// Why (a ticket, a pentest, a known egress).
    #[arg(long)]
    reason: String,
    /// Who answers for it.
    #[arg(long)]
    owner: String,
    /// Until when: an RFC 3339 time, a date (end of that day, UTC), or a number of days
    /// from now (`30d`).
    #[arg(long, value_name = "WHEN")]
    expires: String,
    /// Print the added suppression as JSON.
    #[arg(long)]
    json: bool,
}

/// List the store's suppressions (expired ones marked).
#[derive(Debug, Args)]
struct ListArgs {
    /// The store.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// As JSON.
    #[arg(long)]
    json: bool,
}

/// Remove a suppression by id.
#[derive(Debug, Args)]
struct RemoveArgs {
    /// The store.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// The suppression's id (`idgw suppress list`).
    id: String,
}

/// `WHEN` of `--expires`.
fn expiry(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Some(days) = text.strip_suffix('d')
        && let Ok(n) = days.parse::<u32>()
    {
        return Ok(now + chrono::Duration::days(i64::from(n)));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(end) = d.and_hms_opt(23, 59, 59)
    {
        return Ok(end.and_utc());
    }
    bail!("--expires {text:?}: give an RFC 3339 time, a date (YYYY-MM-DD) or a number of days (30d)")
}

pub fn run(args: SuppressArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SuppressCommand::Add(a) => add(a),
        SuppressCommand::List(a) => list(a),
        SuppressCommand::Remove(a) => remove(a),
    }
}

fn add(a: AddArgs) -> anyhow::Result<ExitCode> {
    if !a.store.is_dir() {
        bail!("{}: no such store", a.store.display());
    }
    let now = Utc::now();
    let expires = expiry(&a.expires, now)?;
    if expires <= now {
        bail!("--expires {}: already past", a.expires);
    }
    let mut all = read_store_file(&a.store)?;
    let id = format!("sup-{}", now.format("%Y%m%dT%H%M%S%3f"));
    let s = Suppression {
        id: id.clone(),
        detection: a.detection,
        user: a.user,
        ip: a.ip,
        asn: a.asn,
        country: a.country,
        reason: a.reason,
        owner: a.owner,
        expires,
    };
    all.push(s.clone());
    write_store_file(&a.store, &all).with_context(|| "suppression not added")?;
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "added {id} (until {}) to {}; it applies from the next `idgw replay` or `idgw pipeline run` start",
            expires.to_rfc3339(),
            store_file(&a.store).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let all = read_store_file(&a.store)?;
    if a.json {
        println!("{}", serde_json::to_string(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("no suppressions in {}", store_file(&a.store).display());
    }
    let now = Utc::now();
    for s in &all {
        let matches: Vec<String> = [
            s.detection.as_ref().map(|d| format!("detection={d}")),
            s.user.as_ref().map(|u| format!("user={u}")),
            s.ip.as_ref().map(|i| format!("ip={i}")),
            s.asn.map(|a| format!("asn={a}")),
            s.country.as_ref().map(|c| format!("country={c}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        println!(
            "{}  {}  until {}{}  owner {}  — {}",
            s.id,
            matches.join(" "),
            s.expires.to_rfc3339(),
            if s.expires < now { " (expired)" } else { "" },
            s.owner,
            s.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(a: RemoveArgs) -> anyhow::Result<ExitCode> {
    let mut all = read_store_file(&a.store)?;
    let before = all.len();
    all.retain(|s| s.id != a.id);
    if all.len() == before {
        bail!("no suppression {} in {}", a.id, store_file(&a.store).display());
    }
    write_store_file(&a.store, &all)?;
    println!("removed {}", a.id);
    Ok(ExitCode::SUCCESS)
}
