//! The keyed, windowed kind of detector: sees the observations of the stream in event-time
//! order (the engine's reorder buffer guarantees it within the allowed lateness), keeps
//! bounded per-key state, and checkpoints it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::alerting::Finding;
use super::observation::Obs;

/// What a windowed detector hands back besides findings.
#[derive(Debug, Default)]
pub struct Emit {
    /// New alerts' findings.
    pub findings: Vec<Finding>,
    /// `(user id, outlier score 0–1)` updates for identity state.
    pub outliers: Vec<(Box<str>, f64)>,
}

/// A keyed, windowed detector.
pub trait WindowedDetector: Send {
    /// A stable name (its checkpoint key).
    fn name(&self) -> &'static str;
    /// One observation, in event-time order.
    fn on_event(&mut self, obs: &Obs, out: &mut Emit);
    /// Learns from a historical sign-in without evaluating it (batch baselines). Most
    /// detectors keep nothing long-lived and ignore it.
    fn seed(&mut self, _obs: &Obs) {}
    /// Event time has reached `watermark` (ms): expire state older than the windows.
    fn on_watermark(&mut self, watermark: i64, out: &mut Emit);
    /// A copy of the state, to serialize later (on another thread, while the detector
    /// goes on).
    fn snapshot(&self) -> Deferred;
    /// The state, serialized.
    fn checkpoint(&self) -> Result<Box<RawValue>, serde_json::Error> {
        self.snapshot()()
    }
    /// Replaces the state with a checkpoint's.
    fn restore(&mut self, state: &RawValue) -> Result<(), serde_json::Error>;
    /// Keys held (users or sources), for metrics and sizing.
    fn keys(&self) -> usize;
    /// Keyed by source address rather than user: run, when a stream is repartitioned, by
    /// the lanes of the repartition topic ([`super::upstream`]).
    fn keyed_by_source(&self) -> bool {
        false
    }
}

/// The hash map of detector state: foldhash (fast, seeded per process) instead of SipHash,
/// since every event looks up its user.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The `checkpoint`, `restore` and `keys` of a detector whose whole state is one map field.
#[macro_export]
macro_rules! keyed_state {
    ($field:ident) => {
        fn snapshot(&self) -> $crate::detect::windowed::Deferred {
            $crate::detect::windowed::deferred(self.$field.clone())
        }

        fn restore(&mut self, state: &serde_json::value::RawValue) -> Result<(), serde_json::Error> {
            self.$field = $crate::detect::windowed::from_raw(state)?;
            Ok(())
        }

        fn keys(&self) -> usize {
            self.$field.len()
        }
    };
}

/// A detector's state copied by [`WindowedDetector::snapshot`], serialized when called.
pub type Deferred = Box<dyn FnOnce() -> Result<Box<RawValue>, serde_json::Error> + Send>;

/// Defers serializing `state` (a copy) to whoever calls the result.
pub fn deferred<T: Serialize + Send + 'static>(state: T) -> Deferred {
    Box::new(move || to_raw(&state))
}

/// Serializes any state for [`WindowedDetector::checkpoint`].
pub fn to_raw<T: Serialize>(state: &T) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::value::to_raw_value(state)
}

/// Deserializes state for [`WindowedDetector::restore`].
pub fn from_raw<T: DeserializeOwned>(state: &RawValue) -> Result<T, serde_json::Error> {
    serde_json::from_str(state.get())
}

/// Start of the hour `watermark` falls in, when it differs from `*last` (which it then
/// becomes). Detectors sweep expired keys once an hour of event time, always judged from the
/// hour's start, so a sweep repeated after a restore evicts exactly the same keys.
pub fn hourly(last: &mut i64, watermark: i64) -> Option<i64> {
    const HOUR_MS: i64 = 3_600_000;
    let start = watermark - watermark.rem_euclid(HOUR_MS);
    (start != *last).then(|| {
        *last = start;
        start
    })
}

/// Haversine distance in km.
pub fn haversine_km((lat1, lon1): (f64, f64), (lat2, lon2): (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0088;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// A set of at most `cap` hashes that forgets the oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CappedSet(pub Vec<u64>);

impl CappedSet {
    /// True when `h` is in the set.
    pub fn contains(&self, h: u64) -> bool {
        self.0.contains(&h)
    }

    /// Adds `h` (moving it to the newest end when present); returns true when it was new.
    pub fn insert(&mut self, h: u64, cap: usize) -> bool {
        if let Some(i) = self.0.iter().position(|&x| x == h) {
            let v = self.0.remove(i);
            self.0.push(v);
            return false;
        }
        if self.0.len() >= cap {
            self.0.remove(0);
        }
        self.0.push(h);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_known_distances() {
        // London to New York is about 5,570 km.
        let d = haversine_km((51.5074, -0.1278), (40.7128, -74.0060));
        assert!((d - 5570.0).abs() < 20.0, "{d}");
        assert_eq!(haversine_km((10.0, 10.0), (10.0, 10.0)), 0.0);
    }

    #[test]
    fn capped_set_forgets_the_oldest() {
        let mut s = CappedSet::default();
        assert!(s.insert(1, 2));
        assert!(s.insert(2, 2));
        assert!(!s.insert(1, 2));
        assert!(s.insert(3, 2));
        assert!(s.contains(1) && s.contains(3) && !s.contains(2));
    }
}
