//! What a pipeline writes while the gateway runs is seen by the gateway's next call, without
//! a restart: new event and alert files, the replaced identity-state snapshot, the vector
//! index.

use std::path::{Path, PathBuf};
use std::time::Duration;

use idgw_gateway::StoreReader;
use idgw_gateway::tools::{self, ListAlertsArgs, SimilarArgs, SqlArgs};
use idgw_pipeline::source::file::Input;
use idgw_pipeline::{PipelineConfig, Store};

fn golden(name: &str) -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join(format!("../pipeline/tests/golden/{name}/events.ndjson.gz"))
}

fn replay(store: &Path, name: &str) {
    let summary = idgw_pipeline::replay(
        &[Input::Path(golden(name))],
        &Store::open(store).unwrap(),
        &PipelineConfig::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(summary.events_ok > 0 && summary.balanced, "{summary:?}");
}

async fn count(reader: &StoreReader, sql: &str) -> i64 {
    let r = tools::query_sql(reader, SqlArgs { sql: sql.into() }).await.unwrap();
    r.rows[0]["n"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_gateway_sees_what_the_pipeline_writes_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    replay(&store, "impossible_travel");
    let config = PipelineConfig::default();
    let reader = StoreReader::open(store.clone(), &config, Duration::from_secs(30))
        .await
        .unwrap();

    let events_before = count(&reader, "SELECT count(*) AS n FROM events").await;
    let users_before = count(&reader, "SELECT count(*) AS n FROM identity_state").await;
    let alerts_before = tools::list_alerts(&reader, ListAlertsArgs::default())
        .await
        .unwrap()
        .items
        .len();
    assert!(events_before > 0 && users_before > 0 && alerts_before > 0);
    // The gateway now holds the embedded vector index open between calls.
    let first_user = tools::list_alerts(&reader, ListAlertsArgs::default())
        .await
        .unwrap()
        .items[0]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let similar_before = tools::similar_users(&reader, similar_args(&first_user)).await.unwrap();
    assert!(!similar_before.neighbours.is_empty());

    // The pipeline writes more while the reader lives: its replay asks the gateway for the
    // vector index and gets it (or this would fail with "held by another process").
    replay(&store, "brute_force");
    let events_after = count(&reader, "SELECT count(*) AS n FROM events").await;
    let users_after = count(&reader, "SELECT count(*) AS n FROM identity_state").await;
    let alerts = tools::list_alerts(
        &reader,
        ListAlertsArgs {
            detection: Some("brute_force".into()),
            ..ListAlertsArgs::default()
        },
    )
    .await
    .unwrap();
    assert!(events_after > events_before, "{events_after} after {events_before}");
    assert!(users_after >= users_before);
    assert!(!alerts.items.is_empty(), "the new run's alerts are listed");

    // The vector index too (opened afresh after the pipeline let go of it): a user of the
    // second run has neighbours.
    let user = alerts.items[0]["user_id"].as_str().unwrap().to_owned();
    let similar = tools::similar_users(&reader, similar_args(&user)).await.unwrap();
    assert!(!similar.neighbours.is_empty());

    // While a writer holds the shard, calls say so (and do not wait); afterwards they work.
    let writer = tokio::task::spawn_blocking({
        let store = store.clone();
        move || idgw_pipeline::vectors::open(&PipelineConfig::default().vectors, &store).unwrap()
    })
    .await
    .unwrap();
    let busy = tools::similar_users(&reader, similar_args(&user)).await.unwrap_err();
    assert!(busy.contains("held by another process"), "{busy}");
    drop(writer);
    let again = tools::similar_users(&reader, similar_args(&user)).await.unwrap();
    assert_eq!(again.neighbours.len(), similar.neighbours.len());
}

fn similar_args(user: &str) -> SimilarArgs {
    SimilarArgs {
        user: user.to_owned(),
        k: Some(3),
        risk_levels: Vec::new(),
        countries: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_that_is_not_one_read_only_query_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    replay(&store, "brute_force");
    let reader = StoreReader::open(store, &PipelineConfig::default(), Duration::from_secs(30))
        .await
        .unwrap();
    for sql in [
        "DROP TABLE events",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "COPY events TO '/tmp/out.csv'",
        "INSERT INTO alerts SELECT * FROM alerts",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; SELECT 2",
    ] {
        let err = tools::query_sql(&reader, SqlArgs { sql: sql.into() })
            .await
            .unwrap_err();
        assert!(err.contains("read-only"), "{sql}: {err}");
    }
    // Row limit: more rows than the limit are cut and flagged.
    let r = tools::query_sql(
        &reader,
        SqlArgs {
            sql: "SELECT * FROM generate_series(1, 5000)".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(r.row_count, tools::SQL_MAX_ROWS);
    assert!(r.truncated);
}

/// `explain_alert` looks for the evidence within the alert's user's events of its time span
/// first (so it reads only those days' files, and in a compacted store only that user's
/// pages); every alert of every golden scenario must still come back with all its events,
/// before and after compaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_is_explained_by_all_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let golden_dir = golden("x").parent().unwrap().parent().unwrap().to_path_buf();
    let mut names: Vec<String> = std::fs::read_dir(&golden_dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.path()
                .join("events.ndjson.gz")
                .exists()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 15, "{names:?}");
    let mut explained_alerts = 0;
    // One store per scenario: the scenarios share their background events.
    for name in &names {
        let store = dir.path().join(name);
        replay(&store, name);
        let reader = StoreReader::open(store.clone(), &PipelineConfig::default(), Duration::from_secs(30))
            .await
            .unwrap();
        let before = explain_every_alert(&reader, name).await;
        compact_every_day(&store).await;
        let after = explain_every_alert(&reader, name).await;
        assert_eq!(after, before, "{name}: the same alerts after compaction");
        explained_alerts += before;
    }
    assert!(explained_alerts >= 15, "{explained_alerts}");
}

async fn compact_every_day(store: &Path) {
    use idgw_pipeline::store::compact::{self, CompactOptions};
    let store = Store::at(store);
    let options = CompactOptions {
        min_age_days: 0,
        ..CompactOptions::default()
    };
    let plan = compact::plan(&store, &options).unwrap();
    assert!(!plan.todo.is_empty());
    for p in &plan.todo {
        compact::compact_partition(&store, p, &options, "test").await.unwrap();
    }
}

/// Explains every alert of the store and checks each has all its events, oldest first;
/// returns how many there were.
async fn explain_every_alert(reader: &StoreReader, name: &str) -> usize {
    let mut explained_alerts = 0;
    let alerts = tools::query_sql(
        reader,
        SqlArgs {
            sql: "SELECT alert_id, event_uuids FROM alerts".into(),
        },
    )
    .await
    .unwrap()
    .rows;
    for a in &alerts {
        let id = a["alert_id"].as_str().unwrap().to_owned();
        let expected = a["event_uuids"].as_array().unwrap().len();
        let explained = tools::explain_alert(reader, tools::ExplainArgs { alert_id: id.clone() })
            .await
            .unwrap();
        assert!(
            explained.missing_events.is_empty(),
            "{name} {id}: missing {:?}",
            explained.missing_events
        );
        assert_eq!(explained.events.len(), expected, "{name} {id}");
        let times: Vec<&str> = explained
            .events
            .iter()
            .map(|e| e["event_time"].as_str().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{name} {id}: not oldest first: {times:?}"
        );
        explained_alerts += 1;
    }
    explained_alerts
}

/// A user named by login is resolved to the Okta id first (so a compacted store is read by
/// `user_id` alone); by login or by id, the answers are the same, before and after
/// compaction, and a user nobody knows finds nothing rather than failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_and_an_id_find_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    replay(&store, "mfa_fatigue");
    let reader = StoreReader::open(store.clone(), &PipelineConfig::default(), Duration::from_secs(30))
        .await
        .unwrap();
    let who = tools::query_sql(
        &reader,
        SqlArgs {
            sql: "SELECT user_id, user_login, count(*) AS n FROM events WHERE user_login IS NOT NULL \
                  GROUP BY 1, 2 ORDER BY n DESC LIMIT 1"
                .into(),
        },
    )
    .await
    .unwrap()
    .rows;
    let (id, login) = (
        who[0]["user_id"].as_str().unwrap().to_owned(),
        who[0]["user_login"].as_str().unwrap().to_owned(),
    );
    let search = |user: String| {
        let reader = reader.clone();
        async move {
            let page = tools::search_events(
                &reader,
                tools::SearchEventsArgs {
                    user: Some(user),
                    limit: Some(500),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            page.items
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let by_id = search(id.clone()).await;
    assert!(!by_id.is_empty());
    assert_eq!(search(login.clone()).await, by_id);
    compact_every_day(&store).await;
    assert_eq!(search(login.clone()).await, by_id, "after compaction");
    assert!(search("nobody@example.com".into()).await.is_empty());

    let analysis = |user: String| {
        let reader = reader.clone();
        async move {
            tools::analyze_identity_state(
                &reader,
                tools::AnalyzeArgs {
                    user,
                    time_range_hours: 720,
                },
            )
            .await
            .unwrap()
        }
    };
    let (a, b) = (analysis(id.clone()).await, analysis(login).await);
    assert_eq!(a.user_id, id);
    assert_eq!(b.user_id, id);
    assert_eq!(a.recent_locations, b.recent_locations);
    assert!(!a.recent_locations.is_empty());
}

/// `analyze_identity_state` reads the user's events and alerts without SQL; what it reports
/// is what SQL over the same window finds: the number of events, and the alerts seen in the
/// window, newest detection first (ties by id), at most 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_counts_what_sql_finds_in_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for name in ["mfa_fatigue", "impossible_travel", "brute_force"] {
        replay(&store, name);
    }
    let reader = StoreReader::open(store.clone(), &PipelineConfig::default(), Duration::from_secs(30))
        .await
        .unwrap();
    let users = tools::query_sql(
        &reader,
        SqlArgs {
            sql: "SELECT DISTINCT user_id FROM alerts WHERE user_id IS NOT NULL ORDER BY user_id".into(),
        },
    )
    .await
    .unwrap()
    .rows;
    assert!(!users.is_empty(), "the scenarios raised no user alerts");
    let mut checked_alerts = 0;
    for user in users.iter().map(|r| r["user_id"].as_str().unwrap().to_owned()) {
        for hours in [1, 720] {
            let a = tools::analyze_identity_state(
                &reader,
                tools::AnalyzeArgs {
                    user: user.clone(),
                    time_range_hours: hours,
                },
            )
            .await
            .unwrap();
            let end = chrono::DateTime::parse_from_rfc3339(a.as_of.as_deref().unwrap()).unwrap();
            let start = end.timestamp_millis() - i64::from(hours) * 3_600_000;
            let events = count(
                &reader,
                &format!(
                    "SELECT count(*) AS n FROM events WHERE user_id = '{user}' AND event_time >= to_timestamp_millis({start})"
                ),
            )
            .await;
            let said: i64 = a.behavior_summary.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(said, events, "{user}, {hours} h: {}", a.behavior_summary);
            let expected: Vec<String> = tools::query_sql(
                &reader,
                SqlArgs {
                    sql: format!(
                        "SELECT alert_id FROM alerts WHERE user_id = '{user}' AND last_seen >= to_timestamp_millis({start}) \
                         ORDER BY detected_at DESC, alert_id LIMIT 20"
                    ),
                },
            )
            .await
            .unwrap()
            .rows
            .iter()
            .map(|r| r["alert_id"].as_str().unwrap().to_owned())
            .collect();
            let got: Vec<String> = a
                .open_alerts
                .iter()
                .map(|r| r["alert_id"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(got, expected, "{user}, {hours} h");
            checked_alerts += got.len();
        }
    }
    assert!(checked_alerts > 0, "no analysis had an alert to compare");
}

/// `[store] raw = false`: the normalized columns and the streaming alerts are there, the
/// verbatim column is empty, and the on-demand detection that re-reads it says why it cannot
/// run instead of finding nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_verbatim_events_refuses_on_demand_detection_with_the_reason() {
    use idgw_gateway::data::Progress;
    use idgw_gateway::ondemand::{self, DetectArgs};
    use idgw_schemas::Detection;

    let dir = tempfile::tempdir().unwrap();
    let mut outcomes = Vec::new();
    for raw in [true, false] {
        let store = dir.path().join(format!("raw-{raw}"));
        let mut config = PipelineConfig::default();
        config.store.raw = raw;
        let summary = idgw_pipeline::replay(
            &[Input::Path(golden("impossible_travel"))],
            &Store::open(&store).unwrap(),
            &config,
            &mut |_| {},
        )
        .unwrap();
        let reader = StoreReader::open(store.clone(), &config, Duration::from_secs(30))
            .await
            .unwrap();
        let with_raw = count(&reader, "SELECT count(raw) AS n FROM events").await;
        let users = count(&reader, "SELECT count(DISTINCT user_id) AS n FROM events").await;
        let args = DetectArgs {
            user: None,
            time_range_hours: 720,
        };
        let run = ondemand::run(
            &reader,
            &config.detect,
            Detection::ImpossibleTravel,
            args,
            Progress::default(),
        )
        .await;
        outcomes.push((summary, with_raw, users, run));
    }
    let (with, without) = (&outcomes[0], &outcomes[1]);
    assert_eq!(with.1 as u64, with.0.events_ok, "every stored event keeps its text");
    assert_eq!(without.1, 0, "no stored event keeps its text");
    assert_eq!(
        (without.0.events_ok, without.0.alerts),
        (with.0.events_ok, with.0.alerts)
    );
    assert_eq!(without.2, with.2, "the normalized columns are all there");
    let found = with
        .3
        .as_ref()
        .expect("on-demand detection over a store with raw events");
    assert!(!found.alerts.is_empty() && found.events_without_raw == 0, "{found:?}");
    let refused = without.3.as_ref().expect_err("no verbatim events: refused");
    assert!(refused.contains("[store] raw = false"), "{refused}");
}

/// `search_events` for a user the identity state knows reads that user's events through the
/// per-user reader (row indexes of unsorted files, page indexes of sorted ones) and filters,
/// sorts and pages them in memory. Every user, with each filter and through every page,
/// finds what a scan of the table finds, in the same order — on the files as replay writes
/// them and after compaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_users_events_are_what_a_scan_finds_with_every_filter_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for name in ["mfa_fatigue", "impossible_travel", "brute_force", "password_spray"] {
        replay(&store, name);
    }
    let reader = StoreReader::open(store.clone(), &PipelineConfig::default(), Duration::from_secs(30))
        .await
        .unwrap();
    let sql = |q: String| {
        let reader = reader.clone();
        async move { tools::query_sql(&reader, SqlArgs { sql: q }).await.unwrap().rows }
    };
    // Each user with the middle of their events' times and the first of their event types (by name).
    let users = sql("SELECT user_id, CAST(min(event_time) AS BIGINT) AS lo, CAST(max(event_time) AS BIGINT) AS hi, \
         first_value(event_type ORDER BY event_type) AS t FROM events WHERE user_id IN (SELECT user_id FROM identity_state) \
         GROUP BY user_id ORDER BY user_id"
        .into())
    .await;
    assert!(users.len() >= 5, "too few users to test with: {}", users.len());
    let iso = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339();
    // The fields compared, as one string per event.
    let compared = |e: &serde_json::Map<String, serde_json::Value>| {
        [
            "event_id",
            "event_time",
            "event_type",
            "outcome_result",
            "src_ip",
            "user_login",
        ]
        .map(|k| e.get(k).cloned().unwrap_or_default().to_string())
        .join("|")
    };

    let search_all = |args: tools::SearchEventsArgs| {
        let reader = reader.clone();
        async move {
            // Pages of 3, followed to the end.
            let mut items = Vec::new();
            let mut cursor = None;
            loop {
                let page = tools::search_events(
                    &reader,
                    tools::SearchEventsArgs {
                        limit: Some(3),
                        cursor: cursor.clone(),
                        ..args.clone()
                    },
                )
                .await
                .unwrap();
                items.extend(page.items.iter().map(compared));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break items,
                }
            }
        }
    };
    for round in ["as replayed", "compacted"] {
        let mut found = 0;
        for u in &users {
            let id = u["user_id"].as_str().unwrap();
            let (lo, hi) = (u["lo"].as_i64().unwrap(), u["hi"].as_i64().unwrap());
            let mid = lo + (hi - lo) / 2;
            let t = u["t"].as_str().unwrap();
            let cases: Vec<(tools::SearchEventsArgs, String)> = vec![
                (tools::SearchEventsArgs::default(), String::new()),
                (
                    tools::SearchEventsArgs {
                        since: Some(iso(mid)),
                        ..Default::default()
                    },
                    format!("AND event_time >= to_timestamp_millis({mid})"),
                ),
                (
                    tools::SearchEventsArgs {
                        until: Some(iso(mid)),
                        ..Default::default()
                    },
                    format!("AND event_time < to_timestamp_millis({mid})"),
                ),
                (
                    tools::SearchEventsArgs {
                        since: Some(iso(lo + 1)),
                        until: Some(iso(hi)),
                        event_type: Some(t.into()),
                        ..Default::default()
                    },
                    format!(
                        "AND event_time >= to_timestamp_millis({}) AND event_time < to_timestamp_millis({hi}) \
                         AND event_type = '{t}'",
                        lo + 1
                    ),
                ),
                (
                    tools::SearchEventsArgs {
                        outcome: Some("failure".into()),
                        ..Default::default()
                    },
                    "AND outcome_result = 'FAILURE'".into(),
                ),
            ];
            for (args, condition) in cases {
                let got = search_all(tools::SearchEventsArgs {
                    user: Some(id.into()),
                    ..args.clone()
                })
                .await;
                let expected: Vec<String> = sql(format!(
                    "SELECT event_id, event_time, event_type, outcome_result, src_ip, user_login FROM events \
                     WHERE user_id = '{id}' {condition} ORDER BY event_time DESC, event_id"
                ))
                .await
                .iter()
                .map(compared)
                .collect();
                assert_eq!(got, expected, "{round}: {id} with {args:?}");
                found += got.len();
            }
        }
        assert!(found > 50, "{round}: the cases found too few events: {found}");
        if round == "as replayed" {
            compact_every_day(&store).await;
        }
    }
}
