//! Roles of an engine when a stream is repartitioned, and the event-time progress a
//! source-keyed engine takes from the user-keyed lanes that feed it.
//!
//! Kafka partitions are keyed by user, but a password spray is one *source* against many
//! users: with P partitions each user lane would see a P-th of a spray. So, as Kafka Streams
//! does for a re-keyed aggregation, the user lanes ([`Role::Users`]) hand the observations
//! the source-keyed detectors need to a repartition topic keyed by source IP, and lanes of
//! that topic ([`Role::Sources`]) run those detectors over every partition's share.
//!
//! A source lane reads observations of several user lanes interleaved as they were
//! produced, which in a backfill can be hours of event time apart. Its watermark therefore
//! follows the slowest user lane, as a Flink operator's follows the minimum of its inputs:
//! each user lane announces how far its event time has got ([`Mark`]), and a lane at the
//! end of its partition is idle and does not hold the others back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What share of the detections an engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every detection: replays, the System Log poller, a stream without repartitioning.
    #[default]
    Whole,
    /// A lane of user-keyed partitions: every detection but those keyed by source address,
    /// whose observations it hands on ([`super::Engine::take_source_observations`]).
    Users,
    /// A lane of the repartition topic: only the detections keyed by source address, fed
    /// observations ([`super::Engine::observe_source`]) and marks ([`super::Engine::mark`]).
    Sources,
}

/// A user lane's announcement: its event time has reached `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The user lane's partition of the input topic.
    pub from: i32,
    /// Partitions of the input topic: a source lane waits until it has heard of each.
    pub partitions: u32,
    /// The latest event time the lane has taken (ms); `i64::MIN` before any.
    pub time: i64,
    /// The lane has read its partition to the end as the consumer's latest statistics
    /// tell it (every `statistics.interval.ms`, 5 s): it holds no source lane back.
    pub idle: bool,
}

/// A user lane not heard of for this long (processing time) stops holding the source lanes
/// back: its partition has no owner, or its worker is stuck or runs without
/// repartitioning. Its observations that come later than the others' progress are late.
pub const SILENT_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    time: i64,
    idle: bool,
    /// When its latest mark was read (not checkpointed: a restored lane counts as heard
    /// when the source lane reopened).
    #[serde(skip)]
    heard: Option<Instant>,
}

/// The user lanes' progress as a source lane has heard it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstreams {
    /// Partitions of the input topic, from the latest mark.
    partitions: u32,
    lanes: BTreeMap<i32, Progress>,
    /// When this source lane first heard of any user lane since it opened.
    #[serde(skip)]
    opened: Option<Instant>,
}

impl Upstreams {
    /// Takes a mark read at `now`. A lane's time never goes back: a lane reopened from an
    /// older checkpoint after a crash announces less than it had reached, and what it
    /// re-sends up to there was seen already.
    pub fn mark(&mut self, m: Mark, now: Instant) {
        self.opened.get_or_insert(now);
        self.partitions = m.partitions;
        let p = self.lanes.entry(m.from).or_insert(Progress {
            time: m.time,
            idle: m.idle,
            heard: None,
        });
        p.time = p.time.max(m.time);
        p.idle = m.idle;
        p.heard = Some(now);
    }

    /// True when every user lane heard of is at the end of its partition or silent: nothing
    /// is on its way, and the source lane may move on with processing time.
    pub fn all_idle(&self, now: Instant) -> bool {
        let Some(opened) = self.opened else { return false };
        let heard = self.lanes.keys().filter(|p| (**p as u32) < self.partitions).count();
        heard >= self.partitions as usize
            && !self.lanes.is_empty()
            && self
                .lanes
                .values()
                .all(|p| p.idle || now.saturating_duration_since(p.heard.unwrap_or(opened)) >= SILENT_AFTER)
    }

    /// The event time every user lane has reached at `now`: the slowest busy lane's, or,
    /// when all are idle, the latest. `None` until every partition has been heard of, or
    /// [`SILENT_AFTER`] has passed since the first mark; a lane silent that long does
    /// not count as busy.
    pub fn low_watermark(&self, now: Instant) -> Option<i64> {
        let opened = self.opened?;
        let waited = now.saturating_duration_since(opened) >= SILENT_AFTER;
        let heard = self.lanes.keys().filter(|p| (**p as u32) < self.partitions).count();
        if self.partitions == 0 || (heard < self.partitions as usize && !waited) {
            return None;
        }
        let silent = |p: &Progress| {
            let since = p.heard.unwrap_or(opened);
            now.saturating_duration_since(since) >= SILENT_AFTER
        };
        let busy = self
            .lanes
            .values()
            .filter(|p| !p.idle && !silent(p))
            .map(|p| p.time)
            .min();
        busy.or_else(|| self.lanes.values().map(|p| p.time).max())
            .filter(|t| *t != i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::observation::{Kind, Obs};
    use crate::detect::{DetectConfig, Engine};

    /// Twelve users failing from one address a minute apart; partition 1 sends its share
    /// (the odd minutes) before partition 0 sends any. The source lane waits for partition 0,
    /// then judges the attempts in event time: one spray, nothing late, a re-sent
    /// observation dropped.
    #[test]
    fn a_source_lane_judges_in_event_time_whatever_order_the_lanes_send_in() {
        let mut engine = Engine::with_role(&DetectConfig::default(), Role::Sources);
        let attempts: Vec<Obs> = (0..12)
            .map(|i| Obs::for_test(Kind::SignInFailure, &format!("u{i}@example.com"), i, "203.0.113.9"))
            .collect();
        let (even, odd): (Vec<Obs>, Vec<Obs>) = attempts.into_iter().partition(|o| (o.time / 60_000) % 2 == 0);
        let last = |v: &[Obs]| v.last().map_or(i64::MIN, |o| o.time);
        let mark = |from, time, idle| Mark {
            from,
            partitions: 2,
            time,
            idle,
        };
        for obs in &odd {
            assert!(engine.observe_source(obs.clone()));
        }
        engine.mark(mark(1, last(&odd), false), Instant::now());
        assert!(engine.take_alerts().is_empty(), "partition 0 has not been heard of");
        for obs in &even {
            assert!(engine.observe_source(obs.clone()));
        }
        assert!(
            !engine.observe_source(even[0].clone()),
            "a re-sent observation is dropped"
        );
        engine.mark(mark(0, last(&even), true), Instant::now());
        engine.mark(mark(1, last(&odd), true), Instant::now());
        let alerts = engine.take_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].src_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(alerts[0].evidence["distinct_users"], 10);
        assert_eq!(engine.stats().late_events, 0);
        // A source lane's checkpoint holds what it waits on and who it heard of.
        let mut reopened = Engine::with_role(&DetectConfig::default(), Role::Sources);
        reopened.restore_json(&engine.checkpoint_json().unwrap()).unwrap();
        assert_eq!(reopened.clock(), engine.clock());
        // A user lane keeps every other detection and hands the attempts on.
        let users = Engine::with_role(&DetectConfig::default(), Role::Users);
        assert!(!users.stats().detector_keys.contains_key("password_spray"));
        assert!(users.stats().detector_keys.contains_key("brute_force"));
        // Its checkpoint still names the detectors it leaves out (empty), so an engine
        // running everything — repartitioning switched off, or an older build — reads it.
        let mut whole = Engine::new(&DetectConfig::default());
        whole.restore_json(&users.checkpoint_json().unwrap()).unwrap();
    }

    fn mark(from: i32, time: i64, idle: bool) -> Mark {
        Mark {
            from,
            partitions: 3,
            time,
            idle,
        }
    }

    #[test]
    fn the_slowest_busy_lane_holds_the_watermark_and_idle_lanes_do_not() {
        let now = Instant::now();
        let mut u = Upstreams::default();
        u.mark(mark(0, 5_000, false), now);
        u.mark(mark(1, 9_000, false), now);
        assert_eq!(u.low_watermark(now), None, "partition 2 not heard of yet");
        u.mark(mark(2, 1_000, false), now);
        assert_eq!(u.low_watermark(now), Some(1_000));
        // Partition 2 reached its end: the others decide.
        u.mark(mark(2, 1_000, true), now);
        assert_eq!(u.low_watermark(now), Some(5_000));
        // A lane reopened from an older checkpoint does not take time back.
        u.mark(mark(0, 4_000, false), now);
        assert_eq!(u.low_watermark(now), Some(5_000));
        // All at their end: everything seen is complete.
        u.mark(mark(0, 5_000, true), now);
        u.mark(mark(1, 9_000, true), now);
        assert_eq!(u.low_watermark(now), Some(9_000));
    }

    #[test]
    fn a_lane_without_events_holds_back_until_it_is_at_its_end() {
        let now = Instant::now();
        let mut u = Upstreams::default();
        u.mark(mark(0, 5_000, false), now);
        u.mark(mark(1, 6_000, false), now);
        u.mark(mark(2, i64::MIN, false), now);
        assert_eq!(u.low_watermark(now), None, "partition 2 has a backlog not read yet");
        u.mark(mark(2, i64::MIN, true), now);
        assert_eq!(u.low_watermark(now), Some(5_000));
    }

    /// A partition nobody owns (or whose worker is stuck) holds the source lanes back for
    /// [`SILENT_AFTER`], not for ever.
    #[test]
    fn a_silent_or_missing_lane_stops_holding_back_after_a_while() {
        let start = Instant::now();
        let later = start + SILENT_AFTER;
        let mut u = Upstreams::default();
        u.mark(mark(0, 5_000, false), start);
        u.mark(mark(1, 2_000, false), start);
        assert_eq!(u.low_watermark(start), None, "partition 2 never heard of");
        // Partition 1 stopped announcing; partition 0 goes on.
        u.mark(mark(0, 8_000, false), later);
        assert_eq!(u.low_watermark(later), Some(8_000));
        // It comes back: it counts again.
        u.mark(mark(1, 3_000, false), later);
        assert_eq!(u.low_watermark(later), Some(3_000));
    }
}
