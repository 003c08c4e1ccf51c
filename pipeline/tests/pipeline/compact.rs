//! `store::compact`: past days rewritten sorted by user, with exactly the same rows.

use idgw_pipeline::store::compact::{self, CompactOptions};
use idgw_pipeline::store::{Staged, parquet_files};

use crate::golden::golden_dir;
use crate::support::{Fixture, ndjson};

pub(crate) fn compact_all(fx: &Fixture, options: &CompactOptions, today: chrono::NaiveDate) -> compact::Plan {
    let plan = compact::plan_as_of(&fx.store(), options, today).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for p in &plan.todo {
        let report = rt
            .block_on(compact::compact_partition(&fx.store(), p, options, "t1"))
            .unwrap();
        assert_eq!(report.files_in, p.files.len());
        assert!(report.files_out >= 1 && report.rows > 0, "{report:?}");
    }
    plan
}

/// Every stored row as one comparable line (the raw event included).
fn all_rows(fx: &Fixture) -> Vec<String> {
    let mut rows: Vec<String> = fx
        .sql("SELECT * FROM events")
        .into_iter()
        .map(|r| serde_json::to_string(&r).unwrap())
        .collect();
    rows.sort();
    rows
}

/// The rows are exactly those of before (compared whole; the message gives the counts, not
/// millions of characters).
fn assert_same_rows(before: &[String], after: &[String], what: &str) {
    assert!(
        after == before,
        "{what} changed the rows: {} before, {} after",
        before.len(),
        after.len()
    );
}

#[test]
fn compaction_keeps_every_row_and_orders_each_day_by_user_and_time() {
    let fx = Fixture::new();
    // Two generated scenarios of one day, replayed in two runs (two files to merge), and
    // a second day.
    let dir = golden_dir();
    for name in ["impossible_travel", "password_spray"] {
        fx.replay(&[&dir.join(name).join("events.ndjson.gz")]);
    }
    let other_day = fx.file("d.ndjson", ndjson(20, "2024-09-02"));
    fx.replay(&[&other_day]);
    let before = all_rows(&fx);
    let counts_before = fx.sql("SELECT date, count(*) AS n FROM events GROUP BY date ORDER BY date");
    assert!(counts_before.len() >= 2, "{counts_before:?}");

    // "Today" well after the data: every day is old enough.
    let today = chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
    let options = CompactOptions {
        min_age_days: 2,
        ..CompactOptions::default()
    };
    let plan = compact_all(&fx, &options, today);
    assert_eq!(plan.todo.len(), counts_before.len());
    assert!(plan.todo.iter().any(|p| p.files.len() >= 2), "{plan:?}");
    let replaced: Vec<_> = plan.todo.iter().flat_map(|p| p.files.clone()).collect();

    // The same rows, day by day.
    assert_same_rows(&before, &all_rows(&fx), "compaction");
    assert_eq!(
        fx.sql("SELECT date, count(*) AS n FROM events GROUP BY date ORDER BY date"),
        counts_before
    );
    // Only sorted files remain, and within each, rows run by user then time.
    let files = parquet_files(&fx.store().events_dir()).unwrap();
    assert!(!files.is_empty());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("sorted-"), "{name}");
    }
    let ordered = fx.sql(
        "SELECT count(*) AS bad FROM (SELECT user_id, event_time, date, \
         lag(user_id) OVER (PARTITION BY date ORDER BY user_id NULLS LAST, event_time, event_id) AS pu FROM events) \
         WHERE pu IS NOT NULL AND user_id IS NOT NULL AND pu > user_id",
    );
    assert_eq!(ordered[0]["bad"], 0);
    for f in &files {
        let options = parquet::file::serialized_reader::ReadOptionsBuilder::new()
            .with_page_index()
            .build();
        let reader =
            parquet::file::reader::SerializedFileReader::new_with_options(std::fs::File::open(f).unwrap(), options)
                .unwrap();
        use parquet::file::reader::FileReader as _;
        let md = reader.metadata();
        // LZ4 unless configured otherwise.
        assert_eq!(
            md.row_group(0).column(0).compression(),
            parquet::basic::Compression::LZ4_RAW
        );
        // Pages are small, so the page index can skip to a user's rows.
        assert!(md.offset_index().is_some(), "{}: no page index", f.display());
        let col = md
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.name() == "user_id")
            .unwrap();
        for (rg, pages) in md.offset_index().unwrap().iter().enumerate() {
            let locations = pages[col].page_locations();
            let rows = md.row_group(rg).num_rows();
            let max_page = locations
                .windows(2)
                .map(|w| w[1].first_row_index - w[0].first_row_index)
                .chain(locations.last().map(|l| rows - l.first_row_index))
                .max()
                .unwrap();
            assert!(max_page <= 1024, "{}: a page of {max_page} rows", f.display());
        }
    }

    // A streaming checkpoint that still names a replaced file finds it published.
    let gone = &replaced[0];
    assert!(!gone.exists());
    let staged = Staged {
        tmp: gone.with_file_name(format!(".{}.tmp", gone.file_name().unwrap().to_string_lossy())),
        path: gone.clone(),
    };
    staged.publish().expect("a compacted file counts as published");
    let never = Staged {
        tmp: gone.with_file_name(".never.tmp"),
        path: gone.with_file_name("never-written.parquet"),
    };
    assert!(never.publish().is_err(), "a file that never existed is still an error");

    // Done days are skipped; --force rewrites them, again without changing a row.
    let again = compact::plan_as_of(&fx.store(), &options, today).unwrap();
    assert!(again.todo.is_empty());
    assert_eq!(again.already_sorted, counts_before.len());
    let forced = CompactOptions {
        force: true,
        ..options.clone()
    };
    compact_all(&fx, &forced, today);
    assert_same_rows(&before, &all_rows(&fx), "forced compaction");
}

#[test]
fn recent_days_are_left_alone() {
    let fx = Fixture::new();
    let a = fx.file("a.ndjson", ndjson(5, "2024-08-13"));
    let b = fx.file(
        "b.ndjson",
        ndjson(5, "2024-08-14").replace("00000000-0000-4000-8000-", "11111111-0000-4000-8000-"),
    );
    fx.replay(&[&a]);
    fx.replay(&[&b]);
    let today = chrono::NaiveDate::from_ymd_opt(2024, 8, 15).unwrap();
    // 2024-08-13 is two days old, 2024-08-14 one.
    let plan = compact::plan_as_of(&fx.store(), &CompactOptions::default(), today).unwrap();
    assert_eq!(plan.too_recent, 1);
    assert_eq!(plan.todo.len(), 1);
    assert_eq!(plan.todo[0].partition, "date=2024-08-13");
    compact_all(&fx, &CompactOptions::default(), today);
    let files = parquet_files(&fx.store().events_dir().join("date=2024-08-14")).unwrap();
    assert!(
        files
            .iter()
            .all(|f| f.file_name().unwrap().to_string_lossy().starts_with("part-"))
    );
    assert_eq!(fx.count(""), 10);
}

#[test]
fn an_interrupted_swap_is_completed_or_undone_before_the_next_run() {
    use compact::{Recovered, SWAP_MANIFEST};
    let fx = Fixture::new();
    let day = fx.file("d.ndjson", ndjson(30, "2024-09-02"));
    fx.replay(&[&day]);
    let rows = fx.count("");
    let partition = "date=2024-09-02";
    let dir = fx.store().events_dir().join(partition);
    let old = parquet_files(&dir).unwrap();
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> =
        old.iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect();
    compact_all(
        &fx,
        &CompactOptions::default(),
        chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
    );
    let new = parquet_files(&dir).unwrap();
    assert!(new != old && !dir.join(SWAP_MANIFEST).exists());
    let name = |p: &std::path::PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let put_back_old_files_and_manifest = |new_names: Vec<String>| {
        for (p, bytes) in &saved {
            std::fs::write(p, bytes).unwrap();
        }
        let manifest = serde_json::json!({"old": old.iter().map(name).collect::<Vec<_>>(), "new": new_names});
        std::fs::write(dir.join(SWAP_MANIFEST), manifest.to_string()).unwrap();
    };

    let user_rows = || -> usize {
        let reader = idgw_pipeline::query::UserEvents::new(fx.store().events_dir());
        reader
            .read("00u1abcdEFGHijkl0h7", i64::MIN, &["event_id"])
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum()
    };
    assert_eq!(user_rows() as i64, rows);

    // Killed after the new files were published, before the old ones were removed: the rows
    // count twice in SQL until the swap is completed; the per-user reader goes by the
    // manifest and reads them once.
    put_back_old_files_and_manifest(new.iter().map(name).collect());
    assert_eq!(fx.count(""), 2 * rows);
    assert_eq!(user_rows() as i64, rows, "the per-user reader honours the manifest");
    assert_eq!(
        compact::finish_interrupted(&fx.store()).unwrap(),
        vec![Recovered::Completed(partition.into())]
    );
    assert_eq!(fx.count(""), rows);
    assert_eq!(parquet_files(&dir).unwrap(), new);
    assert!(!dir.join(SWAP_MANIFEST).exists());

    // Killed while publishing (a new file not yet in place): undone, the old files kept.
    let mut names: Vec<String> = new.iter().map(name).collect();
    names.push("sorted-not-yet-published.parquet".into());
    put_back_old_files_and_manifest(names);
    assert_eq!(
        user_rows() as i64,
        rows,
        "the old files only, while the new are not all in place"
    );
    assert_eq!(
        compact::finish_interrupted(&fx.store()).unwrap(),
        vec![Recovered::Undone(partition.into())]
    );
    assert_eq!(fx.count(""), rows);
    assert_eq!(parquet_files(&dir).unwrap(), old);

    // Nothing left to recover.
    assert!(compact::finish_interrupted(&fx.store()).unwrap().is_empty());

    // A rewrite killed before its swap leaves a hidden temporary file: the next run
    // (holding the lock, so no live compaction owns it) removes it; the pipeline's own
    // temporary files stay.
    let dead = dir.join(".sorted-20240902T000000-deadbeef-00001.parquet.tmp");
    let pipelines = dir.join(".part-kafka-t.0-0000000007-00001.parquet.tmp");
    std::fs::write(&dead, b"half a file").unwrap();
    std::fs::write(&pipelines, b"a cycle being written").unwrap();
    compact::finish_interrupted(&fx.store()).unwrap();
    assert!(!dead.exists() && pipelines.exists());
}

/// `recent_file_age`: the current day's published files at least that old are merged into
/// a sorted file with the day's sorted files holding no more rows (size-tiered), newer ones
/// are left, and no row is lost or doubled.
#[test]
fn recent_days_merge_the_files_published_a_while_ago_size_tiered() {
    let fx = Fixture::new();
    let today = chrono::Utc::now().date_naive();
    let day = today.format("%Y-%m-%d").to_string();
    let partition = format!("date={day}");
    let dir = fx.store().events_dir().join(&partition);
    let mut next = 0usize;
    // One replay = one small file of `n` events, as one streaming commit leaves.
    let mut publish = |n: usize| {
        let text = ndjson(n, &day).replace("00000000-0000-4000-8000-", &format!("{next:08x}-0000-4000-8000-"));
        next += 1;
        let f = fx.file(&format!("in-{next}.ndjson"), text);
        fx.replay(&[&f]);
    };
    let files = |prefix: &str| -> Vec<std::path::PathBuf> {
        parquet_files(&dir)
            .unwrap()
            .into_iter()
            .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect()
    };
    let sorted_rows = || -> Vec<i64> {
        let mut n: Vec<i64> = files("sorted-")
            .iter()
            .map(|f| {
                use parquet::file::reader::FileReader;
                parquet::file::reader::SerializedFileReader::new(std::fs::File::open(f).unwrap())
                    .unwrap()
                    .metadata()
                    .file_metadata()
                    .num_rows()
            })
            .collect();
        n.sort();
        n
    };
    for _ in 0..6 {
        publish(10);
    }
    let before = all_rows(&fx);
    assert_eq!(files("part-").len(), 6);

    // Without the option, or with files younger than asked: nothing.
    let plan = compact::plan(&fx.store(), &CompactOptions::default()).unwrap();
    assert_eq!((plan.todo.len(), plan.too_recent), (0, 1));
    let young = CompactOptions {
        recent_file_age: Some(std::time::Duration::from_secs(3600)),
        ..CompactOptions::default()
    };
    assert!(compact::plan(&fx.store(), &young).unwrap().todo.is_empty());

    let now = CompactOptions {
        recent_file_age: Some(std::time::Duration::ZERO),
        ..CompactOptions::default()
    };
    let plan = compact_all(&fx, &now, today);
    assert!(plan.todo.len() == 1 && plan.todo[0].recent, "{plan:?}");
    assert!(files("part-").is_empty());
    assert_eq!(sorted_rows(), vec![60]);
    assert_same_rows(&before, &all_rows(&fx), "merging the recent files");

    // Two more commits: 20 rows, less than the 60 already sorted, which stay as they are.
    publish(10);
    publish(10);
    compact_all(&fx, &now, today);
    assert_eq!(sorted_rows(), vec![20, 60]);
    // Six more (60 rows): the 20 are no more than 60, then 80 take in the 60.
    for _ in 0..6 {
        publish(10);
    }
    let before = all_rows(&fx);
    compact_all(&fx, &now, today);
    assert_eq!(sorted_rows(), vec![140]);
    assert_same_rows(&before, &all_rows(&fx), "merging with the sorted files");
    assert!(files("part-").is_empty());
    // Every replaced name is on the day's list (a streaming restart looks there).
    let list = std::fs::read_to_string(dir.join(compact::COMPACTED_LIST)).unwrap();
    assert_eq!(list.lines().filter(|l| l.starts_with("part-")).count(), 14);

    // A stream partition that restarts now still knows every id of the day, though its
    // own files were merged away (else a redelivered event would be stored again).
    let seen = idgw_pipeline::store::dedup::SeenIds::load_for_stream(
        &fx.store().events_dir(),
        "part-kafka-events.0-",
        today - chrono::Days::new(1),
    )
    .unwrap();
    assert_eq!(seen.len(), 140);

    // A checkpoint that names a file compaction merged away, with its temporary copy still
    // on disk (a restored backup): the copy goes, the rows are not stored twice.
    let replaced = list.lines().find(|l| l.starts_with("part-")).unwrap();
    let staged = idgw_pipeline::store::Staged {
        tmp: dir.join(format!(".{replaced}.tmp")),
        path: dir.join(replaced),
    };
    std::fs::write(&staged.tmp, b"a copy of the merged file").unwrap();
    staged.republish().unwrap();
    assert!(!staged.tmp.exists() && !staged.path.exists());
    assert_eq!(fx.count(""), 140);
}

/// Past days: one whole-day rewrite makes a day one sorted run; merges of recent files do
/// not count as one, and late events in a day rewritten less than a day ago are merged, not
/// a reason to rewrite the whole day again (anyone who can send events can send late ones).
#[test]
fn past_days_are_rewritten_whole_at_most_daily_when_merging_recent_files() {
    let fx = Fixture::new();
    let past = fx.file("p.ndjson", ndjson(20, "2024-09-02"));
    fx.replay(&[&past]);
    let today = chrono::NaiveDate::from_ymd_opt(2024, 9, 10).unwrap();
    let recent = CompactOptions {
        recent_file_age: Some(std::time::Duration::ZERO),
        ..CompactOptions::default()
    };
    // Never compacted: rewritten whole, also by a run that merges recent files.
    let plan = compact_all(&fx, &recent, today);
    assert!(plan.todo.len() == 1 && !plan.todo[0].recent, "{plan:?}");
    assert_eq!(
        compact::plan_as_of(&fx.store(), &recent, today).unwrap().already_sorted,
        1
    );

    // A late event lands in it: merged as a recent file (the whole rewrite is an hour old).
    let late = fx.file(
        "late.ndjson",
        ndjson(1, "2024-09-02").replace("00000000-0000-4000-8000-", "99999999-0000-4000-8000-"),
    );
    fx.replay(&[&late]);
    let plan = compact_all(&fx, &recent, today);
    assert!(plan.todo.len() == 1 && plan.todo[0].recent, "{plan:?}");
    assert_eq!(plan.todo[0].files.len(), 1, "only the late file: {plan:?}");
    // The day now holds a merge's output: not one sorted run; a run without recent merges
    // (the daily one) rewrites it whole.
    let daily = compact::plan_as_of(&fx.store(), &CompactOptions::default(), today).unwrap();
    assert!(daily.todo.len() == 1 && !daily.todo[0].recent, "{daily:?}");
    compact_all(&fx, &CompactOptions::default(), today);
    assert_eq!(fx.count(""), 21);
    let dir = fx.store().events_dir().join("date=2024-09-02");
    let names: Vec<String> = parquet_files(&dir)
        .unwrap()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.len() == 1 && names[0].starts_with("sorted-") && !names[0].starts_with(compact::RECENT_PREFIX),
        "{names:?}"
    );
}
