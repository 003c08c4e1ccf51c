//! The detection and risk engine: normalized events in, alerts and identity state out, the
//! same for file replays and for streams.
//!
//! Three kinds of detector (docs/detections.md lists them all):
//! - single-event [`rules`] run on every event as it arrives and never wait;
//! - [`stateful`] event detectors also see every event as it arrives, and remember a little
//!   across events (admin groups, MFA resets awaiting an enrollment, counts per key);
//! - keyed, [`windowed`] detectors see the stream in event-time order. Events that can
//!   matter to them are reduced to a compact [`observation::Obs`] and held in a reorder
//!   buffer until the watermark (the latest event time seen minus the allowed lateness)
//!   passes them, so an event up to that bound late is evaluated exactly as if it had come
//!   in order. One later than that is counted (`late_events`) and not given to them. In a
//!   stream, a quiet partition's watermark also slides on with processing time
//!   ([`Engine::advance_idle`]): there an event delivered more than the bound behind the
//!   partition's latest is late.
//!
//! Alerts feed the [`risk`] book (per-user score with decay and reasons) and identity
//! state. The whole engine state — clock, buffer, every detector, risk and identity — is
//! checkpointed as one versioned document ([`checkpoint`]), so a restart resumes where it
//! stopped and gives the same alerts as an uninterrupted run (for a quiet partition's
//! slide, which depends on timing, see [`Engine::advance_idle`]'s callers).

pub mod aggregation;
pub mod alerting;
pub mod anomalous_signin;
pub mod brute_force;
pub mod checkpoint;
pub mod config;
pub mod geo;
pub mod impossible_travel;
pub mod mfa_fatigue;
pub mod observation;
pub mod password_spray;
pub mod risk;
pub mod rules;
pub mod session_hijack;
pub mod stage;
pub mod stateful;
pub mod tuning;
pub mod upstream;
pub mod windowed;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use compact_str::CompactString;

use idgw_schemas::{Alert, Detection, IdentityState, SemanticEvent};

use aggregation::RuleAggregation;
pub use config::DetectConfig;
use observation::Obs;
use risk::{Identities, RiskBook};
use rules::{Rule, RuleConfig};
use stateful::EventDetector;
use tuning::{Suppression, Tuning, TuningError, Verdict};
use upstream::Upstreams;
pub use upstream::{Mark, Role};
use windowed::{Emit, WindowedDetector};

use crate::ingest::EventObserver;
use crate::vectors::{Behaviour, UserPayload, UserVector};

/// The windowed detectors an engine of `role` runs: all of them, or those keyed by user,
/// or those keyed by source address ([`upstream`]).
pub fn detectors_of(config: &DetectConfig, role: Role) -> Vec<Box<dyn WindowedDetector>> {
    windowed_detectors(config)
        .into_iter()
        .filter(|d| match role {
            Role::Whole => true,
            Role::Users => !d.keyed_by_source(),
            Role::Sources => d.keyed_by_source(),
        })
        .collect()
}

/// Every windowed detector, one line each.
pub fn windowed_detectors(config: &DetectConfig) -> Vec<Box<dyn WindowedDetector>> {
    vec![
        Box::new(impossible_travel::ImpossibleTravel::new(config)),
        Box::new(brute_force::BruteForce::new(config)),
        Box::new(password_spray::PasswordSpray::new(config)),
        Box::new(mfa_fatigue::MfaFatigue::new(config)),
        Box::new(session_hijack::SessionHijack::new(config)),
        Box::new(anomalous_signin::AnomalousSignin::new(config)),
    ]
}

/// An observation waiting in the reorder buffer, ordered by event time then arrival.
#[derive(Debug)]
struct Pending(Obs);

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.0.time, self.0.seq) == (other.0.time, other.0.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.time, self.0.seq).cmp(&(other.0.time, other.0.seq))
    }
}

/// The vectors of users `ids` as the engine state holds them at `clock`.
fn user_vectors(
    behaviour: &Behaviour,
    risk: &RiskBook,
    identities: &Identities,
    clock: Clock,
    ids: &[Box<str>],
) -> Vec<UserVector> {
    let now = clock.now();
    ids.iter()
        .filter_map(|id| {
            let profile = behaviour.profile(id)?;
            let (risk_score, _) = risk.score(id, now);
            let (login, last_country) = identities.label(id);
            Some(UserVector {
                payload: UserPayload {
                    user_id: id.to_string(),
                    login: login.map(str::to_owned),
                    risk_score,
                    risk_level: idgw_schemas::RiskLevel::from_score(risk_score),
                    last_country: last_country.map(str::to_owned),
                },
                vector: profile.vector(),
            })
        })
        .collect()
}

/// How long (processing time, ms) an idle input's event time must stand still before its
/// watermark slides on ([`Engine::advance_idle`]). A partition that gets an event at least
/// this often is busy: its watermark follows event time alone, its windowed alerts are
/// raised by events (not by a tick that must make them durable at once), and a restart
/// replays it to the same alerts. Short enough that a quiet stream's windowed alert comes
/// within a second of `allowed_lateness_s` after its deciding event (ticks come every 100 ms).
pub const QUIET_AFTER_MS: i64 = 500;

/// The stream's event-time clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Clock {
    /// Latest event time seen (ms); `i64::MIN` before the first event.
    pub max_time: i64,
    /// Everything at or before this (ms) has been given to the windowed detectors.
    pub watermark: i64,
    /// Observations numbered so far.
    pub seq: u64,
    /// Observations that came later than the allowed lateness.
    pub late: u64,
}

impl Clock {
    /// The engine's "now": the latest event time seen (0 before any).
    fn now(self) -> i64 {
        if self.max_time == i64::MIN { 0 } else { self.max_time }
    }
}

/// Engine counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Alerts raised, by detection.
    pub alerts: BTreeMap<Detection, u64>,
    /// Events later than the allowed lateness (stored and ruled on, not windowed).
    pub late_events: u64,
    /// Users with identity state.
    pub users: usize,
    /// Keys held by each windowed detector.
    pub detector_keys: BTreeMap<&'static str, usize>,
    /// Rule hits held by alert aggregation (ThreatInsight per source, anonymiser sign-ins
    /// per source and user, per window): their events are stored, the alert stands for them.
    pub aggregated_hits: u64,
    /// Alerts a suppression matched (kept, marked, out of risk) since the engine started.
    pub suppressed_alerts: u64,
    /// Findings of detections turned off since the engine started.
    pub disabled_findings: u64,
}

/// The engine.
pub struct Engine {
    role: Role,
    /// The windowed detectors this role leaves out: their checkpoint entries are written
    /// empty, so a build from before roles can still read a user lane's checkpoint.
    absent: Vec<&'static str>,
    lateness_ms: i64,
    rules: Vec<Rule>,
    rule_config: RuleConfig,
    stateful: Vec<Box<dyn EventDetector>>,
    detectors: Vec<Box<dyn WindowedDetector>>,
    buffer: BinaryHeap<Reverse<Pending>>,
    clock: Clock,
    risk: RiskBook,
    identities: Identities,
    behaviour: Behaviour,
    emit: Emit,
    alerts: Vec<Alert>,
    raised: BTreeMap<Detection, u64>,
    aggregation: RuleAggregation,
    aggregation_window_s: i64,
    tuning: Tuning,
    suppressed: u64,
    disabled: u64,
    /// [`Role::Users`]: observations for the source-keyed detectors, not yet taken.
    outbox: Vec<Obs>,
    /// [`Role::Sources`]: the feeding user lanes' progress, and the uuids of buffered
    /// observations (a user lane that crashed re-sends what it sent after its checkpoint).
    upstream: Upstreams,
    buffered_uuids: HashSet<CompactString, foldhash::fast::RandomState>,
    /// [`Role::Sources`]: the user lanes' low watermark as last computed (ms).
    upstream_low: i64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("clock", &self.clock)
            .field("pending", &self.buffer.len())
            .finish()
    }
}

impl Engine {
    /// An engine with every rule and detector, configured by `config`.
    pub fn new(config: &DetectConfig) -> Self {
        Self::with_role(config, Role::Whole)
    }

    /// An engine running the share of the detections `role` names.
    pub fn with_role(config: &DetectConfig, role: Role) -> Self {
        let sources = role == Role::Sources;
        let detectors = detectors_of(config, role);
        let absent = windowed_detectors(config)
            .iter()
            .map(|d| d.name())
            .filter(|name| !detectors.iter().any(|d| d.name() == *name))
            .collect();
        Engine {
            role,
            absent,
            lateness_ms: config.allowed_lateness_s.max(0) * 1000,
            rules: if sources { Vec::new() } else { rules::rules() },
            rule_config: RuleConfig::new(config),
            stateful: if sources {
                Vec::new()
            } else {
                stateful::event_detectors(config)
            },
            detectors,
            buffer: BinaryHeap::new(),
            clock: Clock {
                max_time: i64::MIN,
                watermark: i64::MIN,
                seq: 0,
                late: 0,
            },
            risk: RiskBook::new(config.risk_half_life_h),
            identities: Identities::default(),
            behaviour: Behaviour::new(config.behaviour_half_life_h),
            emit: Emit::default(),
            alerts: Vec::new(),
            raised: BTreeMap::new(),
            aggregation: RuleAggregation::new(config.rule_aggregation_window_s),
            aggregation_window_s: config.rule_aggregation_window_s,
            // Checked when the configuration is loaded (`PipelineConfig::load`); a
            // configuration built in code with bad tuning gets none rather than a panic.
            tuning: config.tuning().unwrap_or_else(|e| {
                tracing::error!("detection tuning ignored: {e}");
                Tuning::default()
            }),
            suppressed: 0,
            disabled: 0,
            outbox: Vec::new(),
            upstream: Upstreams::default(),
            buffered_uuids: HashSet::default(),
            upstream_low: i64::MIN,
        }
    }

    /// The share of the detections this engine runs.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Adds suppressions (the store's `suppressions.json`) to the configuration's.
    pub fn add_suppressions(&mut self, list: Vec<Suppression>) -> Result<(), TuningError> {
        self.tuning.add(list)
    }

    /// One event, in arrival order.
    pub fn process(&mut self, ev: &SemanticEvent<'_>) {
        let t = ev.event_time.timestamp_millis();
        self.clock.max_time = self.clock.max_time.max(t);
        self.identities.observe(ev);
        self.behaviour.observe(ev);
        for rule in &self.rules {
            if let Some(mut f) = (rule.eval)(ev, &self.rule_config)
                && self.aggregation.admit(&mut f)
            {
                self.emit.findings.push(f);
            }
        }
        for d in &mut self.stateful {
            d.on_event(ev, self.clock.max_time, &mut self.emit.findings);
        }
        if let Some(obs) = Obs::of(ev, self.clock.seq) {
            self.clock.seq += 1;
            if self.role == Role::Users && password_spray::PasswordSpray::wants(&obs) {
                self.outbox.push(obs.clone());
            }
            // Equal times are not late: ties keep arrival order, after those released.
            if t < self.clock.watermark {
                self.clock.late += 1;
            } else {
                self.buffer.push(Reverse(Pending(obs)));
            }
        }
        let watermark = self.clock.max_time.saturating_sub(self.lateness_ms);
        self.advance(watermark);
        self.collect();
    }

    /// Gives the windowed detectors everything up to `watermark`, in order.
    /// Returns how many observations it released.
    fn advance(&mut self, watermark: i64) -> usize {
        if watermark <= self.clock.watermark {
            return 0;
        }
        let mut released = 0;
        while self.buffer.peek().is_some_and(|Reverse(p)| p.0.time <= watermark) {
            let Some(Reverse(Pending(obs))) = self.buffer.pop() else {
                break;
            };
            released += 1;
            if self.role == Role::Sources {
                self.buffered_uuids.remove(&obs.uuid);
            }
            for d in &mut self.detectors {
                d.on_event(&obs, &mut self.emit);
            }
        }
        let minute = |t: i64| t.div_euclid(60_000);
        let tick = self.clock.watermark == i64::MIN || minute(watermark) != minute(self.clock.watermark);
        self.clock.watermark = watermark;
        if tick {
            for d in &mut self.detectors {
                d.on_watermark(watermark, &mut self.emit);
            }
            self.aggregation.sweep(watermark);
        }
        released
    }

    /// [`Role::Users`]: an alert a source lane raised (a spray names the users it tried, and
    /// the one whose password it found), counted in the risk of the users this engine
    /// holds. Returns whether it named any. Adding one twice changes nothing (risk counts an
    /// alert id once per user).
    pub fn take_source_alert(&mut self, alert: &Alert) -> bool {
        if self.role != Role::Users {
            return false;
        }
        let identities = &self.identities;
        let named = alert.user_id.as_deref().into_iter().chain(
            alert
                .evidence
                .get(password_spray::SPRAYED_USER_IDS)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str()),
        );
        let mine: Vec<&str> = named.filter(|u| identities.knows(u)).collect();
        if mine.is_empty() {
            return false;
        }
        self.risk.add_for(alert, |u| mine.contains(&u));
        if alert.user_id.as_deref().is_some_and(|u| mine.contains(&u)) {
            self.identities.alerted(alert);
        }
        for user in mine {
            self.behaviour.touch(user);
        }
        true
    }

    /// [`Role::Users`]: the observations for the source-keyed detectors since the last
    /// call, in arrival order, for the repartition topic.
    pub fn take_source_observations(&mut self) -> Vec<Obs> {
        std::mem::take(&mut self.outbox)
    }

    /// [`Role::Sources`]: one observation a user lane handed on. Returns false for one
    /// already buffered (re-sent by a user lane that crashed). It waits in the reorder
    /// buffer until every user lane's event time has passed it ([`Engine::mark`]).
    pub fn observe_source(&mut self, mut obs: Obs) -> bool {
        if !self.buffered_uuids.insert(obs.uuid.clone()) {
            return false;
        }
        obs.seq = self.clock.seq;
        self.clock.seq += 1;
        self.clock.max_time = self.clock.max_time.max(obs.time);
        // At the watermark is late here (unlike in a lane's own stream): one re-sent after
        // its copy was released must not count twice.
        if obs.time <= self.clock.watermark {
            self.buffered_uuids.remove(&obs.uuid);
            self.clock.late += 1;
        } else {
            self.buffer.push(Reverse(Pending(obs)));
        }
        true
    }

    /// [`Role::Sources`]: a user lane's progress; releases what every lane has passed,
    /// less the allowed lateness.
    pub fn mark(&mut self, mark: Mark, now: std::time::Instant) {
        self.upstream.mark(mark, now);
        if let Some(low) = self.upstream.low_watermark(now) {
            self.upstream_low = self.upstream_low.max(low);
            self.advance(low.saturating_sub(self.lateness_ms));
            self.collect();
        }
    }

    /// How far the input has got in event time (ms; `i64::MIN` before any): the latest
    /// event time taken, or for a source lane the user lanes' low watermark. The watermark
    /// trails it by the allowed lateness.
    pub fn progress(&self) -> i64 {
        if self.role == Role::Sources {
            self.upstream_low
        } else {
            self.clock.max_time
        }
    }

    /// The input is idle (read to its end) and its event time has not moved for `since_ms`
    /// of processing time. Past [`QUIET_AFTER_MS`] the watermark slides on with processing
    /// time: to the latest event time less the allowed lateness plus the stillness beyond
    /// that, and stops at the latest. A quiet partition's windowed detections thus fire
    /// about `allowed_lateness_s` after their deciding event, as in a busy stream, whether
    /// or not a few later events came (those are released as in a busy stream too). An
    /// event is late when it is older than the watermark: in a busy stream more than
    /// `allowed_lateness_s` older than the latest, in a quiet one delivered more than that
    /// behind the latest (an event Okta persists that much later than its neighbours).
    /// A source lane does so only when every user lane is idle. Returns how many buffered
    /// observations the move released, `None` when the watermark did not move (alerts it
    /// raised wait in [`Engine::take_alerts`]).
    pub fn advance_idle(&mut self, since_ms: i64, now: std::time::Instant) -> Option<usize> {
        let progress = self.progress();
        if progress == i64::MIN || since_ms <= QUIET_AFTER_MS || progress <= self.clock.watermark {
            return None;
        }
        if self.role == Role::Sources && !self.upstream.all_idle(now) {
            return None;
        }
        let slid = progress
            .saturating_sub(self.lateness_ms)
            .saturating_add(since_ms - QUIET_AFTER_MS)
            .min(progress);
        if slid <= self.clock.watermark {
            return None;
        }
        let released = self.advance(slid);
        self.collect();
        Some(released)
    }

    /// Turns findings into alerts, feeding risk and identity state.
    fn collect(&mut self) {
        for (user, score) in self.emit.outliers.drain(..) {
            self.identities.outlier(&user, score);
        }
        // A source lane's latest observation depends on how the user lanes' records
        // interleaved: its alerts are raised at their deciding attempt's time instead.
        let raised_at = if self.role == Role::Sources {
            i64::MIN
        } else {
            self.clock.max_time
        };
        for f in self.emit.findings.drain(..) {
            let mut alert = f.into_alert(raised_at);
            match self.tuning.apply(&mut alert) {
                Verdict::Disabled => {
                    self.disabled += 1;
                    continue;
                }
                Verdict::Suppressed => {
                    // Kept and marked, out of risk: the trail stays, nobody is paged.
                    self.suppressed += 1;
                    self.alerts.push(alert);
                    continue;
                }
                Verdict::Raise => {}
            }
            self.risk.add(&alert);
            self.identities.alerted(&alert);
            if let Some(user) = alert.user_id.as_deref() {
                // The point's payload carries the risk level.
                self.behaviour.touch(user);
            }
            *self.raised.entry(alert.detection).or_default() += 1;
            self.alerts.push(alert);
        }
    }

    /// End of input: everything buffered goes to the detectors now.
    pub fn flush(&mut self) {
        let last = self.clock.max_time;
        if last == i64::MIN {
            return;
        }
        while let Some(Reverse(Pending(obs))) = self.buffer.pop() {
            for d in &mut self.detectors {
                d.on_event(&obs, &mut self.emit);
            }
        }
        self.clock.watermark = self.clock.watermark.max(last);
        for d in &mut self.detectors {
            d.on_watermark(self.clock.watermark, &mut self.emit);
        }
        self.collect();
        self.risk.expire(last);
    }

    /// Learns from a historical successful sign-in without evaluating it (batch baselines):
    /// profiles, last locations and known countries, and the clock moves to its time.
    pub fn seed(&mut self, obs: &Obs) {
        self.clock.max_time = self.clock.max_time.max(obs.time);
        self.clock.watermark = self.clock.watermark.max(obs.time);
        self.identities.seed(obs);
        self.behaviour.seed(obs);
        for d in &mut self.detectors {
            d.seed(obs);
        }
    }

    /// Alerts raised since the last call.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.alerts)
    }

    /// The stream's clock (ms), 0 before any event.
    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Every user's state as of the stream's clock.
    pub fn identity_states(&self) -> Vec<IdentityState> {
        let mut states = self.identities.states(&self.risk, self.now());
        for s in &mut states {
            s.drift_score = self.behaviour.profile(&s.user_id).map(|p| p.drift());
        }
        states
    }

    /// The vectors of users whose behaviour or risk changed since the last call (`all`:
    /// every user's), ready to upsert.
    pub fn take_vectors(&mut self, all: bool) -> Vec<UserVector> {
        let ids = if all {
            self.behaviour.take_dirty();
            self.behaviour.all_users()
        } else {
            self.behaviour.take_dirty()
        };
        user_vectors(&self.behaviour, &self.risk, &self.identities, self.clock, &ids)
    }

    /// The users whose behaviour or risk changed since the last call, sorted (their vectors
    /// can then be built from a [`checkpoint::EngineSnapshot`]).
    pub fn take_changed_users(&mut self) -> Vec<Box<str>> {
        self.behaviour.take_dirty()
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            alerts: self.raised.clone(),
            late_events: self.clock.late,
            users: self.identities.len(),
            detector_keys: self
                .detectors
                .iter()
                .map(|d| (d.name(), d.keys()))
                .chain(self.stateful.iter().map(|d| (d.name(), d.keys())))
                .collect(),
            aggregated_hits: self.aggregation.held(),
            suppressed_alerts: self.suppressed,
            disabled_findings: self.disabled,
        }
    }
}

impl EventObserver for Engine {
    fn on_event(&mut self, event: &SemanticEvent<'_>) {
        self.process(event);
    }
}
