//! The detection stage end to end: event-time order within the lateness bound, late events
//! counted, replays that resume from the checkpoint, no duplicate alert, identity state.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use idgw_pipeline::PipelineConfig;
use idgw_pipeline::detect::{DetectConfig, Engine, QUIET_AFTER_MS};
use idgw_schemas::{Alert, SemanticEvent};

use super::golden::{events, golden_dir};
use super::support::Fixture;

fn alerts_of(engine_events: &[&SemanticEvent]) -> (Vec<(String, String)>, Engine) {
    let mut engine = Engine::new(&DetectConfig::default());
    for ev in engine_events {
        engine.process(ev);
    }
    engine.flush();
    let mut out: Vec<(String, String)> = engine
        .take_alerts()
        .into_iter()
        .map(|a| (a.alert_id, a.severity.as_str().to_owned()))
        .collect();
    out.sort();
    (out, engine)
}

#[test]
fn arrival_order_within_the_lateness_bound_does_not_change_alerts() {
    for name in [
        "impossible_travel",
        "brute_force",
        "mfa_fatigue",
        "session_hijack",
        "anomalous_signin",
    ] {
        let mut evs = events(&golden_dir().join(name));
        evs.sort_by_key(|e| e.event_time);
        let in_order: Vec<&SemanticEvent> = evs.iter().collect();
        // Deliver each event up to 25 s late (a fixed pseudo-random delay per event), inside
        // the default 30 s bound.
        let mut delayed: Vec<(i64, &SemanticEvent)> = evs
            .iter()
            .enumerate()
            .map(|(i, e)| (e.event_time.timestamp_millis() + (i as i64 * 7_919) % 25_000, e))
            .collect();
        delayed.sort_by_key(|(t, _)| *t);
        let shuffled: Vec<&SemanticEvent> = delayed.into_iter().map(|(_, e)| e).collect();
        assert_ne!(
            in_order.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
            shuffled.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
            "{name}: the delays must reorder something"
        );
        let (a, _) = alerts_of(&in_order);
        let (b, late) = alerts_of(&shuffled);
        assert!(!a.is_empty(), "{name}: no alert at all");
        assert_eq!(a, b, "{name}: reordering within the bound changed the alerts");
        assert_eq!(late.stats().late_events, 0, "{name}");
    }
}

#[test]
fn events_later_than_the_bound_are_counted_and_still_ruled_on() {
    let evs = events(&golden_dir().join("account_lockout"));
    let mut sorted: Vec<&SemanticEvent> = evs.iter().collect();
    sorted.sort_by_key(|e| e.event_time);
    // The day's first sign-in and the lock arrive after everything else: hours late.
    let first_sign_in = sorted
        .iter()
        .position(|e| e.event_type == "user.session.start")
        .expect("the fixture has sign-ins");
    let sign_in = sorted.remove(first_sign_in);
    let lock = sorted
        .iter()
        .position(|e| e.event_type == "user.account.lock")
        .expect("the fixture locks an account");
    let lock = sorted.remove(lock);
    let mut engine = Engine::new(&DetectConfig::default());
    for ev in &sorted {
        engine.process(ev);
    }
    assert!(engine.clock().max_time - sign_in.event_time.timestamp_millis() > 10 * 60_000);
    engine.process(sign_in);
    engine.process(lock);
    engine.flush();
    assert_eq!(
        engine.stats().late_events,
        1,
        "the sign-in is late for the windowed detectors"
    );
    let alerts = engine.take_alerts();
    assert!(
        alerts.iter().any(|a| a.detection.as_str() == "account_lockout"),
        "single-event rules do not wait for the watermark"
    );
}

/// A quiet input's watermark slides on with processing time: the brute force decided at T,
/// followed by two more failures (the last 13 s later) and then silence, is released once
/// the input has been still for the allowed lateness less those 13 s (plus the half second
/// that tells a quiet input from a busy one) — about `allowed_lateness_s` after its deciding
/// event, as in a busy stream — not 30 s after the last event. The watermark never passes
/// the latest event, and what it passed is late.
#[test]
fn a_quiet_inputs_watermark_slides_with_processing_time() {
    let dir = golden_dir().join("brute_force");
    let expected: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let deciding = expected
        .iter()
        .find(|a| a["detection"] == "brute_force")
        .and_then(|a| a["last_seen"].as_str())
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp_millis())
        .unwrap();
    let mut evs = events(&dir);
    evs.sort_by_key(|e| e.event_time);
    // Up to the second sign-in after the deciding failure (13,058 ms after it).
    let last = evs
        .iter()
        .filter(|e| e.event_time.timestamp_millis() > deciding)
        .nth(1)
        .map(|e| e.event_time.timestamp_millis())
        .unwrap();
    assert_eq!(last - deciding, 13_058, "the fixture changed");
    let config = DetectConfig::default();
    let lateness = config.allowed_lateness_s * 1000;
    let mut engine = Engine::new(&config);
    for ev in evs.iter().filter(|e| e.event_time.timestamp_millis() <= last) {
        engine.process(ev);
    }
    let brute_force = |engine: &mut Engine| {
        engine
            .take_alerts()
            .iter()
            .filter(|a| a.detection.as_str() == "brute_force")
            .count()
    };
    assert_eq!(brute_force(&mut engine), 0, "decided before its window was released");
    let now = std::time::Instant::now();
    // Not yet quiet: nothing moves.
    assert_eq!(engine.advance_idle(QUIET_AFTER_MS, now), None);
    // Still for 17.4 s: the watermark is 0.04 s short of the deciding failure.
    let short = lateness - (last - deciding) - 40 + QUIET_AFTER_MS;
    assert!(engine.advance_idle(short, now).is_some(), "the watermark did not move");
    assert_eq!(engine.clock().watermark, deciding - 40);
    assert_eq!(brute_force(&mut engine), 0, "released past the watermark");
    // 80 ms later it has passed it.
    assert!(
        engine
            .advance_idle(short + 80, now)
            .is_some_and(|released| released > 0)
    );
    assert_eq!(
        brute_force(&mut engine),
        1,
        "not released at the deciding failure + {} ms",
        lateness + 40
    );

    // An event older than the slid watermark is late; a slide never goes back.
    let watermark = engine.clock().watermark;
    let before = engine.stats().late_events;
    let passed = evs
        .iter()
        .rfind(|e| e.event_time.timestamp_millis() < watermark && e.event_time.timestamp_millis() > last - lateness)
        .expect("an event between the old and the slid watermark");
    engine.process(passed);
    assert_eq!(
        engine.stats().late_events,
        before + 1,
        "an event behind the slid watermark is late"
    );
    assert_eq!(
        engine.advance_idle(short, now),
        None,
        "a shorter stillness moved the watermark back"
    );
    // However long the silence, the watermark stops at the latest event.
    assert!(engine.advance_idle(3_600_000, now).is_some());
    assert_eq!(engine.clock().watermark, last);
    assert_eq!(engine.advance_idle(7_200_000, now), None);
}

fn jsonl_alerts(store: &Path) -> Vec<Alert> {
    std::fs::read_to_string(store.join("alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The fixture's NDJSON lines split at midnight before `day` (the generator never lets days
/// interleave, so the split is clean in event time).
fn split_by_day(dir: &Path, day: &str) -> (String, String) {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(dir.join("events.ndjson.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let (mut before, mut after) = (String::new(), String::new());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let published = v["published"].as_str().unwrap();
        let out = if published < day { &mut before } else { &mut after };
        out.push_str(line);
        out.push('\n');
    }
    (before, after)
}

#[test]
fn a_replay_in_two_runs_resumes_from_the_checkpoint_and_matches_one_run() {
    let dir = golden_dir().join("anomalous_signin");
    let (first, second) = split_by_day(&dir, "2024-08-05");
    assert!(!first.is_empty() && !second.is_empty());
    let config = PipelineConfig::default();

    let whole = Fixture::new();
    let all = whole.file("all.ndjson", format!("{first}{second}"));
    let one = whole.replay_with(&[&all], &config);
    assert!(one.alerts > 0);

    let split = Fixture::new();
    let a = split.file("a.ndjson", &first);
    let b = split.file("b.ndjson", &second);
    let run1 = split.replay_with(&[&a], &config);
    assert!(!run1.resumed);
    let run2 = split.replay_with(&[&b], &config);
    assert!(
        run2.resumed,
        "the second run restores the engine from the store's checkpoint"
    );
    assert_eq!(run1.alerts + run2.alerts, one.alerts);

    let ids = |p: &Path| -> BTreeSet<String> { jsonl_alerts(p).into_iter().map(|a| a.alert_id).collect() };
    assert_eq!(ids(&whole.store_path()), ids(&split.store_path()));
    assert!(split.store_path().join("checkpoints/engine.json.zst").is_file());
}

#[test]
fn replaying_the_same_events_again_raises_no_duplicate_alert() {
    let fx = Fixture::new();
    let input = golden_dir().join("mfa_fatigue/events.ndjson.gz");
    let config = PipelineConfig::default();
    let first = fx.replay_with(&[&input], &config);
    assert!(first.alerts >= 1);
    let lines = jsonl_alerts(&fx.store_path()).len();
    let second = fx.replay_with(&[&input], &config);
    assert_eq!(second.duplicates, first.events_ok, "every event is a repeat");
    assert_eq!(second.alerts, 0);
    assert_eq!(jsonl_alerts(&fx.store_path()).len(), lines);
}

#[test]
fn identity_state_ranks_the_attacked_user_with_reasons() {
    let fx = Fixture::new();
    let input = golden_dir().join("mfa_fatigue/events.ndjson.gz");
    let s = fx.replay_with(&[&input], &PipelineConfig::default());
    assert!(s.users >= 6, "{s:?}");
    let label: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(golden_dir().join("mfa_fatigue/labels.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let user = label["user_login"].as_str().unwrap();
    let rows = fx.sql(
        "SELECT user_login, risk_level, risk_score, top_reasons, okta_status FROM identity_state \
         ORDER BY risk_score DESC LIMIT 1",
    );
    let top = &rows[0];
    assert_eq!(top["user_login"], user, "the attacked user ranks first: {top:?}");
    assert!(
        matches!(top["risk_level"].as_str(), Some("high" | "critical")),
        "{top:?}"
    );
    let reasons: Vec<serde_json::Value> = serde_json::from_str(top["top_reasons"].as_str().unwrap()).unwrap();
    assert_eq!(reasons[0]["detection"], "mfa_fatigue", "{reasons:?}");
    assert!(reasons[0]["contribution"].as_f64().unwrap() > 0.0);
    // The alerts table holds what alerts.jsonl holds.
    let n = fx.sql("SELECT count(*) AS n FROM alerts")[0]["n"].as_i64().unwrap();
    assert_eq!(n as usize, jsonl_alerts(&fx.store_path()).len());
}

#[test]
fn a_damaged_checkpoint_is_a_clear_error_not_a_silent_cold_start() {
    let fx = Fixture::new();
    let input = golden_dir().join("account_lockout/events.ndjson.gz");
    fx.replay_with(&[&input], &PipelineConfig::default());
    let checkpoint = fx.store_path().join("checkpoints/engine.json.zst");
    std::fs::write(&checkpoint, b"not a checkpoint").unwrap();
    let inputs = [idgw_pipeline::source::file::Input::Path(input)];
    let err = idgw_pipeline::replay(&inputs, &fx.store(), &PipelineConfig::default(), &mut |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("engine checkpoint"), "{text}");
    assert!(
        text.contains(&fx.store_path().display().to_string()),
        "names the store: {text}"
    );
}

#[test]
fn a_lockout_leaves_the_user_locked_out_in_identity_state() {
    let fx = Fixture::new();
    let input = golden_dir().join("account_lockout/events.ndjson.gz");
    fx.replay_with(&[&input], &PipelineConfig::default());
    let rows = fx.sql(
        "SELECT i.okta_status FROM identity_state i JOIN alerts a ON a.user_id = i.user_id \
         WHERE a.detection = 'account_lockout'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["okta_status"], "LOCKED_OUT");
}

#[test]
fn a_torn_last_alert_line_is_skipped_and_the_alert_raised_again() {
    let fx = Fixture::new();
    let input = golden_dir().join("mfa_fatigue/events.ndjson.gz");
    let first = fx.replay_with(&[&input], &PipelineConfig::default());
    let jsonl = fx.store_path().join("alerts.jsonl");
    let text = std::fs::read_to_string(&jsonl).unwrap();
    // A crash cut the last alert in half, and the engine state was never saved.
    std::fs::write(&jsonl, &text[..text.len() - 20]).unwrap();
    std::fs::remove_file(fx.store_path().join("checkpoints/engine.json.zst")).unwrap();
    std::fs::remove_dir_all(fx.store_path().join("events")).unwrap();
    let again = fx.replay_with(&[&input], &PipelineConfig::default());
    assert_eq!(again.alerts, 1, "only the torn alert is new");
    assert_eq!(again.duplicate_alerts, first.alerts - 1);
    let alerts = jsonl_alerts_lenient(&jsonl);
    assert_eq!(alerts, first.alerts as usize, "every alert readable once more");
}

/// Parses the alert lines that parse (a torn one stays behind as its own line).
fn jsonl_alerts_lenient(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| serde_json::from_str::<Alert>(l).is_ok())
        .count()
}

#[test]
fn a_snapshot_serializes_the_state_of_its_instant_while_the_engine_goes_on() {
    // Streaming checkpoints copy the state on the consumer's thread and serialize it on
    // the committer's, after the engine has moved on.
    for name in ["impossible_travel", "anomalous_signin", "password_spray", "mfa_fatigue"] {
        let mut evs = events(&golden_dir().join(name));
        evs.sort_by_key(|e| e.event_time);
        let half = evs.len() / 2;
        let mut engine = Engine::new(&DetectConfig::default());
        for ev in &evs[..half] {
            engine.process(ev);
        }
        let at_half = engine.checkpoint_json().unwrap();
        let snapshot = engine.snapshot();
        for ev in &evs[half..] {
            engine.process(ev);
        }
        engine.flush();
        let later = engine.checkpoint_json().unwrap();
        assert_ne!(at_half, later, "{name}: the second half must change the state");
        assert_eq!(
            snapshot.to_json().unwrap(),
            at_half,
            "{name}: the snapshot must hold the state of its instant"
        );
    }
}

/// Credential stuffing over logins that do not exist: Okta writes `actor.id = "unknown"`
/// for each, with the typed login in `alternateId`. Keyed by that `"unknown"`, twenty
/// invented logins were one user and no spray; keyed by the typed login they are twenty.
#[test]
fn failed_sign_ins_for_logins_that_do_not_exist_are_a_spray() {
    let fx = Fixture::new();
    let mut lines = String::new();
    for i in 0..20 {
        let mut e = super::support::event(
            &format!("66666666-0000-4000-8000-{i:012}"),
            "user.session.start",
            &format!("2024-08-13T15:{:02}:20.353Z", 10 + i),
        );
        e["actor"] = serde_json::json!({"id": "unknown", "type": "User", "alternateId": format!("guess{i}@example.com"), "displayName": "unknown", "detailEntry": null});
        e["outcome"] = serde_json::json!({"result": "FAILURE", "reason": "VERIFICATION_ERROR"});
        e["client"]["ipAddress"] = "203.0.113.77".into();
        lines.push_str(&e.to_string());
        lines.push('\n');
    }
    let path = fx.file("stuffing.ndjson", &lines);
    let s = fx.replay(&[&path]);
    assert_eq!(s.events_ok, 20, "{s:?}");
    let sprays = fx.sql("SELECT src_ip, severity FROM alerts WHERE detection = 'password_spray'");
    assert_eq!(sprays.len(), 1, "{sprays:?}");
    assert_eq!(sprays[0]["src_ip"], "203.0.113.77");
    // The store keeps the typed logins, not one user named "unknown".
    assert_eq!(fx.count("WHERE user_id = 'unknown'"), 0);
    assert_eq!(
        fx.sql("SELECT count(DISTINCT user_login) AS n FROM events")[0]["n"].as_i64(),
        Some(20)
    );
}
