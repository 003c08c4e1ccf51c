//! `[detect]`: the engine's clock and every detector's thresholds. The defaults are the
//! ones docs/detections.md explains and compares with other products.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tuning::{DetectionTuning, Suppression, Tuning, TuningError};

/// Detection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Run detections (off: ingest only, for ingest benchmarks).
    pub enabled: bool,
    /// How late (event time, seconds) an event may arrive and still be evaluated in order by
    /// the windowed detectors. Okta delivers most events in order and some up to minutes
    /// late; single-event rules never wait.
    pub allowed_lateness_s: i64,
    /// Half-life of a user's risk, in hours.
    pub risk_half_life_h: f64,
    /// `impossible_travel`: speed above which travel is impossible (km/h).
    pub travel_max_kmh: f64,
    /// `impossible_travel`: distance subtracted for geo-IP inaccuracy (km).
    pub travel_geo_allowance_km: f64,
    /// `impossible_travel`: allowance added for each end geo-IP located only to its country
    /// (no city, or the country's centre as coordinates), in km. Geo-IP databases give such
    /// answers an accuracy radius of about 1,000 km.
    pub travel_country_accuracy_km: f64,
    /// `impossible_travel`: sign-ins closer than this (after the allowance) are ignored (km).
    pub travel_min_km: f64,
    /// `brute_force`: failed sign-ins of one user within the window.
    pub brute_force_failures: usize,
    /// `brute_force`: window (seconds).
    pub brute_force_window_s: i64,
    /// `password_spray`: distinct users failing from one source within the window.
    pub spray_users: usize,
    /// `password_spray`: at most this many attempts per user on average (more is brute force).
    pub spray_max_attempts_per_user: f64,
    /// `password_spray`: window (seconds).
    pub spray_window_s: i64,
    /// `password_spray`: the long window a slow spray (paced under `spray_window_s`) is
    /// counted over (seconds).
    pub spray_slow_window_s: i64,
    /// `password_spray`: distinct users failing from one source within the long window.
    pub spray_slow_users: usize,
    /// `mfa_fatigue`: denied or unanswered pushes within the window.
    pub mfa_fatigue_denials: usize,
    /// `mfa_fatigue`: window (seconds).
    pub mfa_fatigue_window_s: i64,
    /// `session_hijack`: how long a session or device token is remembered (seconds).
    pub session_ttl_s: i64,
    /// One alert per source (ThreatInsight) or per source and user (anonymiser sign-ins)
    /// within this many seconds; later hits are counted, not alerted (0: every hit alerts).
    pub rule_aggregation_window_s: i64,
    /// `anomalous_signin`: successful sign-ins a user needs before novelty counts.
    pub anomaly_min_history: u32,
    /// Half-life of the recent behaviour profile behind the user vectors and the drift
    /// score (hours).
    pub behaviour_half_life_h: f64,
    /// `anomalous_signin`: the anomaly model's score above which a sign-in is unusual
    /// (random cut forest; scores near 1 are typical, larger are rarer).
    pub anomaly_model_threshold: f64,
    /// `sanctioned_country_signin`: countries, as Okta names them (`United States`,
    /// `Iran`), whose sign-ins alert. Empty (the default): the rule is off.
    pub sanctioned_countries: Vec<String>,
    /// `group_admin_membership`: groups (names or ids) that hold an admin role, besides the
    /// ones the stream shows getting one (`group.privilege.grant`).
    pub admin_groups: Vec<String>,
    /// Suppressions (`[[detect.suppress]]`), beside the store's `suppressions.json` that
    /// `idgw suppress` edits (docs/detections.md, "Tuning").
    pub suppress: Vec<Suppression>,
    /// Per-detection switch and severity (`[detect.detections.<name>]`).
    pub detections: BTreeMap<String, DetectionTuning>,
    /// `unauthorized_app_access`: attempts to open unassigned apps, per user, within the window.
    pub unauth_app_attempts: usize,
    /// `unauthorized_app_access`: window (seconds).
    pub unauth_app_window_s: i64,
    /// `rate_limit_violation`: one alert per event type and key (user, client or source IP)
    /// within this window (seconds).
    pub rate_limit_window_s: i64,
    /// `enroll_after_mfa_reset`: how long after someone else reset a user's MFA an enrollment
    /// is suspicious (seconds).
    pub enroll_after_reset_window_s: i64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: true,
            allowed_lateness_s: 30,
            risk_half_life_h: 24.0,
            travel_max_kmh: 900.0,
            travel_geo_allowance_km: 100.0,
            travel_country_accuracy_km: 1000.0,
            travel_min_km: 300.0,
            brute_force_failures: 8,
            brute_force_window_s: 600,
            spray_users: 10,
            spray_max_attempts_per_user: 3.0,
            spray_window_s: 1800,
            spray_slow_window_s: 6 * 3600,
            spray_slow_users: 20,
            mfa_fatigue_denials: 3,
            mfa_fatigue_window_s: 900,
            session_ttl_s: 12 * 3600,
            rule_aggregation_window_s: 3600,
            anomaly_min_history: 5,
            anomaly_model_threshold: 2.5,
            behaviour_half_life_h: crate::vectors::features::DEFAULT_HALF_LIFE_H,
            sanctioned_countries: Vec::new(),
            admin_groups: Vec::new(),
            suppress: Vec::new(),
            detections: BTreeMap::new(),
            unauth_app_attempts: 5,
            unauth_app_window_s: 3600,
            rate_limit_window_s: 3600,
            enroll_after_reset_window_s: 3600,
        }
    }
}

impl DetectConfig {
    /// The tuning this configuration asks for, checked.
    pub fn tuning(&self) -> Result<Tuning, TuningError> {
        Tuning::new(&self.suppress, &self.detections)
    }
}
