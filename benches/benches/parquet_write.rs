//! The events table's Parquet writer alone: Arrow batches in (built beforehand, as the
//! ingest thread hands them over), files out, with ingest's own writer options. In a replay
//! the writer runs on its own thread beside decoding, so its cost hides in a replay's wall
//! time; here it is the whole measurement. The variants split it: the `raw` column (the
//! event's verbatim JSON, four fifths of the uncompressed bytes) and the codec.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use idgw_pipeline::PipelineConfig;
use idgw_pipeline::config::StoreCodec;
use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::ingest::events_writer_options;
use idgw_pipeline::normalize::normalize_fields;
use idgw_pipeline::store::event_columns::EventColumns;
use idgw_pipeline::store::parquet_writer::PartitionedWriter;

// The allocator and its settings `idgw` runs with: the writer's page buffers are the
// kind of large, short-lived allocations where allocators differ.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn parquet_write(c: &mut Criterion) {
    idgw_benches::allocator::configure();
    let n = 50_000u64;
    let base = PipelineConfig::default();
    let mut zstd = base.clone();
    zstd.store.ingest_codec = StoreCodec::Zstd;
    let schema = Arc::new(idgw_schemas::rows::events_schema());
    let texts: Vec<String> = (0..n).map(idgw_benches::synthetic_event).collect();
    // Batches of `batch_rows` events, as ingest builds them; without `raw`, that column is
    // null.
    let batches = |keep_raw: bool| {
        let mut out = Vec::new();
        for chunk in texts.chunks(base.store.batch_rows) {
            let mut cols = EventColumns::new(Arc::clone(&schema), chunk.len()).expect("schema");
            for text in chunk {
                let Ok(Decoded::Event { raw, event }) = decode(text.as_bytes(), 1 << 20) else {
                    panic!("a synthetic event did not decode")
                };
                let ev = normalize_fields(&event).expect("a synthetic event normalizes");
                cols.append(&ev, keep_raw.then_some(raw));
            }
            out.push(cols.finish().expect("batch"));
        }
        out
    };
    let with_raw = batches(true);
    let without_raw = batches(false);
    let mut g = c.benchmark_group("parquet_write");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    for (name, config, input) in [
        ("events", &base, &with_raw),
        ("events_zstd", &zstd, &with_raw),
        ("events_without_raw", &base, &without_raw),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("tempdir"),
                |dir| {
                    let options = events_writer_options(config, false);
                    let mut writer =
                        PartitionedWriter::new(dir.path().to_path_buf(), Arc::clone(&schema), options, "bench")
                            .expect("writer");
                    for batch in input {
                        writer.write("date=2024-08-13", batch).expect("write");
                    }
                    let files = writer.finish().expect("finish");
                    assert_eq!(files.len(), 1, "one partition, one file");
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, parquet_write);
criterion_main!(benches);
