//! `idgw generate`: a synthetic Okta tenant's System Log with ground-truth labels.
//!
//! Deterministic for a seed. The log streams to disk one UTC day at a time: a day's events
//! are built as compact [`spec::Spec`]s (a few dozen bytes each), ordered by delivery time
//! and rendered straight to the output, so memory holds one day, never the whole log.
//! Delivery is like Okta's: mostly in time order, a small fraction late by up to a minute,
//! a few events without geo.

pub mod activity;
pub mod scenarios;
pub mod spec;
pub mod tenant;
pub mod world;

use std::io::Write;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use activity::{DAY, DayLog, MINUTE};
use idgw_schemas::Label;
use scenarios::{Injector, SCENARIOS};
use spec::Renderer;
use tenant::{Tenant, subseed};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub users: u32,
    pub days: u32,
    pub seed: u64,
    /// Midnight UTC of the first day.
    pub start: DateTime<Utc>,
    /// Attacks of each kind per 1,000 users per day (at least one of each kind overall).
    pub attacks_per_1000_users_day: f64,
    /// Benign look-alikes of each kind per 1,000 users per day (at least one overall).
    pub lookalikes_per_1000_users_day: f64,
    /// Fraction of events delivered late (by up to a minute).
    pub late_fraction: f64,
    /// Inject only these scenarios (names of [`SCENARIOS`]); all when empty.
    pub only: Vec<String>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            users: 1000,
            days: 7,
            seed: 1,
            start: DateTime::from_timestamp(1_722_470_400, 0).unwrap_or_default(), // 2024-08-01
            attacks_per_1000_users_day: 0.4,
            lookalikes_per_1000_users_day: 1.0,
            late_fraction: 0.005,
            only: Vec::new(),
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenerateSummary {
    pub users: u32,
    pub days: u32,
    pub events: u64,
    pub labels: u64,
    pub attacks: u64,
    pub lookalikes: u64,
    pub late_events: u64,
    pub events_without_geo: u64,
}

/// Generation errors.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Writing failed.
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding failed.
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    /// Bad parameters.
    #[error("{0}")]
    Invalid(String),
}

/// Generates the tenant's log into `events` (NDJSON) and its labels into `labels` (JSONL).
/// `progress` is called after each day with the summary so far.
pub fn generate(
    config: &GenerateConfig,
    events: &mut dyn Write,
    labels: &mut dyn Write,
    progress: &mut dyn FnMut(&GenerateSummary),
) -> Result<GenerateSummary, GenerateError> {
    if config.users < 2 {
        return Err(GenerateError::Invalid("--users must be at least 2".into()));
    }
    if let Some(unknown) = config
        .only
        .iter()
        .find(|o| !SCENARIOS.iter().any(|s| s.0 == o.as_str()))
    {
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.0).collect();
        return Err(GenerateError::Invalid(format!(
            "unknown scenario {unknown:?}; scenarios: {}",
            names.join(", ")
        )));
    }
    let tenant = Tenant::new(config.seed, config.users);
    let renderer = Renderer { tenant: &tenant };
    let start = config.start.timestamp_millis().div_euclid(DAY) * DAY;
    let mut summary = GenerateSummary {
        users: config.users,
        days: config.days,
        ..Default::default()
    };
    let mut next_label = 0u64;
    let mut line = Vec::with_capacity(4096);
    for day in 0..config.days {
        let mut rng = ChaCha8Rng::seed_from_u64(subseed(config.seed, &[2, u64::from(day)]));
        let mut log = DayLog {
            tenant: &tenant,
            day_start: start + i64::from(day) * DAY,
            specs: Vec::new(),
            ids: ChaCha8Rng::seed_from_u64(subseed(config.seed, &[5, u64::from(day)])),
        };
        for user in &tenant.users {
            let mut urng = ChaCha8Rng::seed_from_u64(subseed(config.seed, &[4, u64::from(day), u64::from(user.index)]));
            activity::user_day(&mut log, &mut urng, user);
        }
        let mut day_labels = Vec::new();
        let mut busy = std::collections::HashSet::new();
        let selected = SCENARIOS
            .iter()
            .filter(|(name, _, _)| config.only.is_empty() || config.only.iter().any(|o| o == name));
        for (k, (name, _, benign)) in selected.enumerate() {
            let rate = if *benign {
                config.lookalikes_per_1000_users_day
            } else {
                config.attacks_per_1000_users_day
            };
            let expected = rate * f64::from(config.users) / 1000.0;
            let mut n = expected.floor() as u32 + u32::from(rng.random_bool(expected.fract()));
            // Every kind appears at least once over the run, counting back from the last day
            // (so users have some history before it).
            let guaranteed_day = config.days.max(1) - 1 - (k as u32 % config.days.max(1));
            if n == 0 && expected * f64::from(config.days) < 1.0 && day == guaranteed_day {
                n = 1;
            }
            for _ in 0..n {
                let before = day_labels.len();
                Injector {
                    log: &mut log,
                    labels: &mut day_labels,
                    next_label: &mut next_label,
                    busy: &mut busy,
                }
                .inject(name, &mut rng);
                let added = (day_labels.len() - before) as u64;
                if *benign {
                    summary.lookalikes += added;
                } else {
                    summary.attacks += added;
                }
            }
        }
        // Okta pages by persistence time: a few events arrive up to a minute late.
        for spec in &mut log.specs {
            if rng.random_bool(config.late_fraction) {
                spec.deliver = spec.t + rng.random_range(1_000..MINUTE);
                summary.late_events += 1;
            }
            summary.events_without_geo += u64::from(spec.net.no_geo);
        }
        log.specs.sort_by_key(|s| (s.deliver, s.rand));
        for spec in &log.specs {
            line.clear();
            renderer.render(spec, &mut line)?;
            line.push(b'\n');
            events.write_all(&line)?;
        }
        summary.events += log.specs.len() as u64;
        day_labels.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.label_id.cmp(&b.label_id)));
        for label in &day_labels {
            serde_json::to_writer(&mut *labels, label)?;
            labels.write_all(b"\n")?;
        }
        summary.labels += day_labels.len() as u64;
        progress(&summary);
    }
    events.flush()?;
    labels.flush()?;
    Ok(summary)
}

/// Reads a labels file.
pub fn read_labels(text: &str) -> Result<Vec<Label>, serde_json::Error> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}
