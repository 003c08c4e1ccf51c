//! Batch baselines: history imported without detection, profiles seeded with polars, and the
//! next replay resumes warm.

use idgw_pipeline::PipelineConfig;
use idgw_pipeline::baseline::{BaselineError, build};

use super::golden::golden_dir;
use super::support::Fixture;

#[test]
fn a_baseline_seeds_profiles_from_history_and_the_next_replay_resumes_from_it() {
    let fx = Fixture::new();
    let input = golden_dir().join("anomalous_signin/events.ndjson.gz");
    let mut ingest_only = PipelineConfig::default();
    ingest_only.detect.enabled = false;
    let imported = fx.replay_with(&[&input], &ingest_only);
    assert_eq!(imported.alerts, 0);
    assert!(!fx.store_path().join("checkpoints/engine.json.zst").exists());

    let store = fx.store();
    let config = PipelineConfig::default();
    let summary = build(&store, &config, false).unwrap();
    let expected = fx.sql(
        "SELECT count(DISTINCT user_id) AS users, count(*) AS signins FROM events \
         WHERE event_type = 'user.session.start' AND outcome_result = 'SUCCESS'",
    );
    assert_eq!(summary.users as i64, expected[0]["users"].as_i64().unwrap());
    assert_eq!(summary.signins as i64, expected[0]["signins"].as_i64().unwrap());
    assert!(summary.from < summary.to);

    // identity_state now knows every user's countries and last location.
    let rows = fx.sql("SELECT user_id, known_countries, last_country, event_count FROM identity_state");
    assert_eq!(rows.len(), summary.users);
    assert!(
        rows.iter()
            .all(|r| !r["known_countries"].as_array().unwrap().is_empty()),
        "{rows:?}"
    );

    // A second build refuses to overwrite the state; --replace rebuilds it identically.
    assert!(matches!(build(&store, &config, false), Err(BaselineError::HasState(_))));
    let again = build(&store, &config, true).unwrap();
    assert_eq!((again.users, again.signins), (summary.users, summary.signins));

    // The next replay with detection resumes from the seeded checkpoint.
    let next = fx.replay_with(&[&input], &PipelineConfig::default());
    assert!(next.resumed);
}

#[test]
fn a_store_without_events_is_a_clear_error() {
    let fx = Fixture::new();
    let err = build(&fx.store(), &PipelineConfig::default(), false).unwrap_err();
    assert!(matches!(err, BaselineError::NoEvents(_)), "{err}");
    assert!(err.to_string().contains("replay history first"));
}
