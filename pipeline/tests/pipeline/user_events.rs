//! `query::UserEvents`: one user's events read from the pages that can hold them find exactly
//! what SQL finds, in files as ingest writes them and after compaction.

use datafusion::arrow::array::AsArray;
use idgw_pipeline::query::{UserEvents, UserEventsError};
use idgw_pipeline::store::compact::CompactOptions;

use crate::compact::compact_all;
use crate::golden::golden_dir;
use crate::support::{Fixture, ndjson};

/// The event ids `reader` finds for `user` from `since_ms`, sorted.
fn read_ids(reader: &UserEvents, user: &str, since_ms: i64) -> Vec<String> {
    let batches = reader
        .read(user, since_ms, &["event_id", "event_time", "geo_country"])
        .unwrap();
    let mut ids: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
            ids.iter().map(|v| v.unwrap().to_owned()).collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    ids
}

/// The same through SQL.
fn sql_ids(fx: &Fixture, user: &str, since_ms: i64) -> Vec<String> {
    let rows = fx.sql(&format!(
        "SELECT event_id FROM events WHERE user_id = '{user}' AND event_time >= to_timestamp_millis({since_ms}) ORDER BY event_id"
    ));
    rows.iter()
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every user and three window starts (all, from the middle of their events, after the last).
fn cases(fx: &Fixture) -> Vec<(String, i64)> {
    let users = fx.sql(
        "SELECT user_id, CAST(min(event_time) AS BIGINT) AS lo, CAST(max(event_time) AS BIGINT) AS hi \
         FROM events WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY user_id",
    );
    assert!(users.len() >= 10, "too few users to test with: {}", users.len());
    users
        .iter()
        .flat_map(|r| {
            let user = r["user_id"].as_str().unwrap().to_owned();
            let (lo, hi) = (r["lo"].as_i64().unwrap(), r["hi"].as_i64().unwrap());
            [(user.clone(), 0), (user.clone(), lo + (hi - lo) / 2), (user, hi + 1)]
        })
        .collect()
}

#[test]
fn one_users_events_are_exactly_those_sql_finds_before_and_after_compaction() {
    let fx = Fixture::new();
    let dir = golden_dir();
    for name in ["impossible_travel", "password_spray", "mfa_fatigue"] {
        fx.replay(&[&dir.join(name).join("events.ndjson.gz")]);
    }
    let other_day = fx.file("d.ndjson", ndjson(40, "2024-09-02"));
    fx.replay(&[&other_day]);
    let cases = cases(&fx);
    // One reader for the whole test: its cached footers must follow the files compaction
    // replaces.
    let reader = UserEvents::new(fx.store().events_dir());

    let mut found = 0;
    for (user, since) in &cases {
        let ids = read_ids(&reader, user, *since);
        assert_eq!(
            ids,
            sql_ids(&fx, user, *since),
            "user {user} since {since}, files as ingested"
        );
        found += ids.len();
    }
    assert!(found > 0, "the cases found no events at all");

    // Small pages, so a user's rows are a few pages among many and the page index decides.
    let options = CompactOptions {
        page_rows: 8,
        ..CompactOptions::default()
    };
    compact_all(&fx, &options, chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap());
    for (user, since) in &cases {
        assert_eq!(
            read_ids(&reader, user, *since),
            sql_ids(&fx, user, *since),
            "user {user} since {since}, compacted"
        );
    }

    // Warming loads every file's footer (the ones compaction replaced are forgotten).
    let files = idgw_pipeline::store::parquet_files(&fx.store().events_dir()).unwrap();
    assert_eq!(reader.warm().unwrap(), files.len());

    // An unknown user and a store without events find nothing.
    assert!(read_ids(&reader, "00uNOBODY", 0).is_empty());
    let empty = UserEvents::new(fx.store_path().join("no-such-table"));
    assert!(read_ids(&empty, "00uNOBODY", 0).is_empty());
}

/// Files as ingest writes them hold users in arrival order, so the reader finds a user's
/// rows through each file's row index (not the statistics, which span every user). With
/// row groups of 16 rows a user's rows are spread over many groups, some of them before
/// a window's start: the rows selected must be exactly the user's, group by group.
#[test]
fn the_row_index_of_unsorted_files_finds_exactly_what_sql_finds_across_row_groups() {
    let fx = Fixture::new();
    let dir = golden_dir();
    let mut config = idgw_pipeline::config::PipelineConfig::default();
    config.store.row_group_rows = 16;
    for name in ["impossible_travel", "password_spray", "mfa_fatigue", "brute_force"] {
        fx.replay_with(&[&dir.join(name).join("events.ndjson.gz")], &config);
    }
    let files = idgw_pipeline::store::parquet_files(&fx.store().events_dir()).unwrap();
    assert!(
        files
            .iter()
            .all(|f| f.file_name().unwrap().to_string_lossy().starts_with("part-")),
        "the files must be unsorted ones: {files:?}"
    );
    let groups: usize = files
        .iter()
        .map(|f| {
            parquet::file::reader::SerializedFileReader::new(std::fs::File::open(f).unwrap())
                .map(|r| parquet::file::reader::FileReader::metadata(&r).num_row_groups())
                .unwrap()
        })
        .sum();
    assert!(
        groups > 2 * files.len(),
        "too few row groups to test with: {groups} in {} files",
        files.len()
    );

    // With row indexes, and with a budget too small for any (read by statistics instead).
    let indexed = UserEvents::new(fx.store().events_dir());
    let unindexed = UserEvents::with_index_budget(fx.store().events_dir(), 0);
    let mut found = 0;
    for (user, since) in cases(&fx) {
        let ids = read_ids(&indexed, &user, since);
        assert_eq!(ids, sql_ids(&fx, &user, since), "user {user} since {since}");
        assert_eq!(
            read_ids(&unindexed, &user, since),
            ids,
            "user {user} since {since}, no index"
        );
        found += ids.len();
    }
    assert!(found > 100, "the cases found too few events: {found}");

    // A read holds at most the rows it is allowed, whichever file the excess is in.
    let top = fx.sql("SELECT user_id, count(*) AS n FROM events GROUP BY user_id ORDER BY n DESC LIMIT 1");
    let (user, n) = (
        top[0]["user_id"].as_str().unwrap(),
        top[0]["n"].as_u64().unwrap() as usize,
    );
    assert!(n > 1, "{top:?}");
    let read = |max: usize| indexed.read_within(user, i64::MIN..i64::MAX, &["event_id"], max);
    assert!(matches!(read(n - 1), Err(UserEventsError::TooMany(m)) if m == n - 1));
    let rows: usize = read(n).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, n);
    // And only the events of its window: `until` is excluded, like `since` is included.
    let mid = fx.sql(&format!(
        "SELECT CAST(event_time AS BIGINT) AS t FROM events WHERE user_id = '{user}' ORDER BY event_time LIMIT 1 OFFSET {}",
        n / 2
    ))[0]["t"]
        .as_i64()
        .unwrap();
    let before = fx.sql(&format!(
        "SELECT count(*) AS n FROM events WHERE user_id = '{user}' AND event_time < to_timestamp_millis({mid})"
    ))[0]["n"]
        .as_u64()
        .unwrap() as usize;
    let rows: usize = indexed
        .read_within(user, i64::MIN..mid, &["event_id"], usize::MAX)
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, before, "{user} before {mid}");
}
