//! Input formats, dedup and the store layout.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use idgw_pipeline::PipelineConfig;

use crate::support::{Fixture, event, ndjson};

#[test]
fn ndjson_plain_gzip_and_crlf() {
    let fx = Fixture::new();
    let plain = fx.file("a.ndjson", ndjson(10, "2024-08-13"));
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(ndjson(25, "2024-08-14").as_bytes()).unwrap();
    // The name says nothing: gzip is recognised by its magic bytes.
    let gz = fx.file("b.log", enc.finish().unwrap());
    let crlf = fx.file("c.ndjson", ndjson(5, "2024-08-15").replace('\n', "\r\n"));
    let s = fx.replay(&[&plain, &gz, &crlf]);
    // The three files repeat uuids 0..4 and 0..9: they are duplicates.
    assert_eq!(
        (s.events_in, s.events_ok, s.duplicates, s.deadlettered),
        (40, 25, 15, 0),
        "{s:?}"
    );
    assert_eq!(s.inputs.len(), 3);
    assert_eq!(s.inputs[1].records, 25);
}

#[test]
fn json_array_envelope_and_pretty_documents() {
    let fx = Fixture::new();
    let e = |i: u32| {
        event(
            &format!("44444444-0000-4000-8000-{i:012}"),
            "user.session.start",
            "2024-08-13T15:58:20.353Z",
        )
    };
    let array = fx.file(
        "page.json",
        serde_json::to_string_pretty(&vec![e(1), e(2), e(3)]).unwrap(),
    );
    let envelope = serde_json::json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "data": {"events": [e(4), e(5)]}
    });
    let hook = fx.file("hook.json", serde_json::to_string_pretty(&envelope).unwrap());
    let pretty = fx.file(
        "one.json",
        serde_json::to_string_pretty(&e(6)).unwrap() + "\n" + &serde_json::to_string_pretty(&e(7)).unwrap(),
    );
    let hook_lines = fx.file(
        "hooks.ndjson",
        format!("{}\n{}\n", serde_json::json!({"data": {"events": [e(8)]}}), e(9)),
    );
    let s = fx.replay(&[&array, &hook, &pretty, &hook_lines]);
    assert_eq!((s.events_in, s.events_ok, s.deadlettered), (9, 9, 0), "{s:?}");
}

#[test]
fn replaying_the_same_input_twice_stores_nothing_twice() {
    let fx = Fixture::new();
    let input = fx.file("a.ndjson", ndjson(50, "2024-08-13"));
    let first = fx.replay(&[&input]);
    assert_eq!(first.events_ok, 50);
    let second = fx.replay(&[&input]);
    assert_eq!((second.events_in, second.events_ok, second.duplicates), (50, 0, 50));
    assert_eq!(fx.count(""), 50);
}

#[test]
fn events_are_partitioned_by_date_and_published_atomically() {
    let fx = Fixture::new();
    let mut text = ndjson(7, "2024-08-13");
    text.push_str(
        &event(
            "55555555-0000-4000-8000-000000000001",
            "user.session.end",
            "2024-08-14T00:00:01.000Z",
        )
        .to_string(),
    );
    let input = fx.file("a.ndjson", text);
    let mut config = PipelineConfig::default();
    config.store.batch_rows = 3;
    config.store.max_rows_per_file = 4;
    let s = fx.replay_with(&[&input], &config);
    assert_eq!(s.events_ok, 8);
    let events = fx.store_path().join("events");
    let mut dirs: Vec<String> = std::fs::read_dir(&events)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, vec!["date=2024-08-13", "date=2024-08-14"]);
    let files: Vec<String> = std::fs::read_dir(events.join("date=2024-08-13"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 2, "7 rows at 4 per file: {files:?}");
    assert!(
        files.iter().all(|f| f.ends_with(".parquet") && !f.starts_with('.')),
        "no temporary file left: {files:?}"
    );
    assert_eq!(s.files_written, 3);
    let by_date = fx.sql("SELECT date, count(*) AS n FROM events GROUP BY date ORDER BY date");
    assert_eq!(by_date[0]["n"], 7);
    assert_eq!(by_date[1]["date"], "2024-08-14");
}

/// The codec and statistics of every column chunk of the day's events files.
fn column_chunks(fx: &Fixture, day: &str) -> Vec<(String, parquet::basic::Compression, bool)> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = fx.store_path().join("events").join(format!("date={day}"));
    let mut chunks = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let reader = SerializedFileReader::new(std::fs::File::open(entry.unwrap().path()).unwrap()).unwrap();
        for rg in reader.metadata().row_groups() {
            for c in rg.columns() {
                chunks.push((c.column_path().string(), c.compression(), c.statistics().is_some()));
            }
        }
    }
    assert!(!chunks.is_empty());
    chunks
}

#[test]
fn ingest_files_use_the_configured_codec_and_keep_statistics_only_of_the_columns_readers_prune_by() {
    use parquet::basic::Compression;
    let fx = Fixture::new();
    let input = fx.file("a.ndjson", ndjson(20, "2024-08-13"));
    fx.replay(&[&input]);
    let chunks = column_chunks(&fx, "2024-08-13");
    assert!(
        chunks.iter().all(|(_, codec, _)| *codec == Compression::LZ4_RAW),
        "{chunks:?}"
    );
    for (name, _, stats) in &chunks {
        // Arrival order: only time and user ranges prune anything (compaction adds the rest).
        let pruned_by = idgw_pipeline::ingest::EVENTS_PRUNED_BY.contains(&name.as_str());
        assert_eq!(*stats, pruned_by, "statistics of `{name}`");
    }
    assert_eq!(chunks.iter().filter(|(_, _, stats)| *stats).count(), 2, "{chunks:?}");

    let fx = Fixture::new();
    let input = fx.file("a.ndjson", ndjson(20, "2024-08-13"));
    let mut config = PipelineConfig::default();
    config.store.ingest_codec = idgw_pipeline::config::StoreCodec::Zstd;
    fx.replay_with(&[&input], &config);
    let chunks = column_chunks(&fx, "2024-08-13");
    assert!(
        chunks.iter().all(|(_, codec, _)| matches!(codec, Compression::ZSTD(_))),
        "{chunks:?}"
    );
    assert_eq!(fx.count(""), 20, "zstd files are read back");
}

/// The files ingest writes are what per-user reads decode until compaction sorts them: pages
/// of at most `[store] ingest_page_rows` rows and no dictionaries by default, so a read of one
/// user's row decodes 256 rows of each column it wants, not 20,000 and a dictionary.
#[test]
fn ingest_files_have_small_pages_and_no_dictionaries() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    let fx = Fixture::new();
    let input = fx.file("a.ndjson", ndjson(1000, "2024-08-13"));
    fx.replay(&[&input]);
    let dir = fx.store_path().join("events").join("date=2024-08-13");
    let path = std::fs::read_dir(dir).unwrap().next().unwrap().unwrap().path();
    let options = ReadOptionsBuilder::new().with_page_index().build();
    let reader = SerializedFileReader::new_with_options(std::fs::File::open(&path).unwrap(), options).unwrap();
    let meta = reader.metadata();
    let offsets = meta.offset_index().expect("an offset index");
    for (rg, group) in meta.row_groups().iter().enumerate() {
        for (c, chunk) in group.columns().iter().enumerate() {
            let name = chunk.column_path().string();
            assert!(chunk.dictionary_page_offset().is_none(), "{name}: a dictionary page");
            let pages = offsets[rg][c].page_locations();
            let rows = |i: usize| {
                let end = pages.get(i + 1).map_or(group.num_rows(), |p| p.first_row_index);
                end - pages[i].first_row_index
            };
            assert!(
                pages.len() >= 4,
                "{name}: {} pages for {} rows",
                pages.len(),
                group.num_rows()
            );
            assert!((0..pages.len()).all(|i| rows(i) <= 256), "{name}: a page over 256 rows");
        }
    }
}
