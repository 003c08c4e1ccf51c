//! Micro benchmarks: decode, normalize and the Arrow columns per event (the stages of the
//! ingest hot path, each added to the one before), and whole replays with Parquet writes.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::normalize::normalize_fields;
use idgw_pipeline::source::file::Input;
use idgw_pipeline::store::event_columns::EventColumns;
use idgw_pipeline::{PipelineConfig, Store};

fn events(n: u64) -> Vec<String> {
    (0..n).map(idgw_benches::synthetic_event).collect()
}

fn decode_normalize(c: &mut Criterion) {
    let evs = events(10_000);
    let bytes: u64 = evs.iter().map(|e| e.len() as u64).sum();
    let mut g = c.benchmark_group("decode_normalize");
    g.throughput(Throughput::Elements(evs.len() as u64));
    // The parser's floor: the same text with every value skipped and nothing built. The gap
    // to "decode" is what building the typed `LogEvent` costs (docs/benchmarks.md).
    g.bench_function("json_skip", |b| {
        b.iter(|| {
            for e in &evs {
                let skipped: serde::de::IgnoredAny = serde_json::from_slice(e.as_bytes()).expect("valid");
                std::hint::black_box(skipped);
            }
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            for e in &evs {
                let d = decode(e.as_bytes(), 1 << 20).expect("valid");
                std::hint::black_box(d);
            }
        })
    });
    g.bench_function("decode+normalize", |b| {
        b.iter(|| {
            for e in &evs {
                let Ok(Decoded::Event { raw, event }) = decode(e.as_bytes(), 1 << 20) else {
                    panic!("valid")
                };
                std::hint::black_box(normalize_fields(&event).expect("valid"));
                std::hint::black_box(raw);
            }
        })
    });
    let schema = Arc::new(idgw_schemas::rows::events_schema());
    g.bench_function("decode+normalize+columns", |b| {
        b.iter(|| {
            let mut cols = EventColumns::new(Arc::clone(&schema), evs.len()).expect("schema");
            for e in &evs {
                let Ok(Decoded::Event { raw, event }) = decode(e.as_bytes(), 1 << 20) else {
                    panic!("valid")
                };
                cols.append(&normalize_fields(&event).expect("valid"), Some(raw));
            }
            std::hint::black_box(cols.finish().expect("batch"));
        })
    });
    g.finish();
    eprintln!("mean event size: {} bytes", bytes / evs.len() as u64);
}

fn ingest(c: &mut Criterion) {
    let n = 50_000u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("events.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
    idgw_benches::write_ndjson(&mut f, n).expect("write");
    drop(f);
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    for (name, detect) in [
        ("decode+normalize+parquet", false),
        ("decode+normalize+detect+parquet", true),
    ] {
        let mut config = PipelineConfig::default();
        config.detect.enabled = detect;
        g.bench_function(name, |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("tempdir"),
                |store_dir| {
                    let store = Store::open(store_dir.path()).expect("store");
                    let s = idgw_pipeline::replay(&[Input::Path(input.clone())], &store, &config, &mut |_| {})
                        .expect("replay");
                    assert_eq!(s.events_ok, n);
                    store_dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, decode_normalize, ingest);
criterion_main!(benches);
