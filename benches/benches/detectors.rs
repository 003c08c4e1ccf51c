//! Micro benchmarks of the detection stage: each windowed detector alone, the single-event
//! rules, the whole engine (detectors, risk and behaviour profiles), the risk book, and the
//! vector index upsert (qdrant-edge).
//!
//!   cargo bench -p idgw-benches --bench detectors
//!
//! Inputs are the benches' synthetic sign-ins (5,000 users across six cities, so travel and
//! novelty have work to do), decoded and normalized before timing.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::detect::observation::Obs;
use idgw_pipeline::detect::risk::RiskBook;
use idgw_pipeline::detect::rules::{RuleConfig, rules};
use idgw_pipeline::detect::windowed::Emit;
use idgw_pipeline::detect::{DetectConfig, Engine, windowed_detectors};
use idgw_pipeline::normalize::normalize;
use idgw_pipeline::vectors::{self, VectorsConfig};
use idgw_schemas::{Alert, SemanticEvent};

const EVENTS: u64 = 20_000;

fn semantic_events() -> Vec<SemanticEvent<'static>> {
    (0..EVENTS)
        .map(|i| {
            let line = idgw_benches::synthetic_event(i);
            let Ok(Decoded::Event { raw, event }) = decode(line.as_bytes(), 1 << 20) else {
                panic!("the synthetic event does not decode")
            };
            normalize(raw, &event).expect("the synthetic event normalizes")
        })
        .collect()
}

fn windowed(c: &mut Criterion) {
    let events = semantic_events();
    let obs: Vec<Obs> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Obs::of(e, i as u64))
        .collect();
    let config = DetectConfig::default();
    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Elements(obs.len() as u64));
    let names: Vec<&'static str> = windowed_detectors(&config).iter().map(|d| d.name()).collect();
    for (i, name) in names.iter().enumerate() {
        g.bench_function(*name, |b| {
            b.iter_batched(
                || windowed_detectors(&config).swap_remove(i),
                |mut d| {
                    let mut out = Emit::default();
                    for o in &obs {
                        d.on_event(o, &mut out);
                    }
                    std::hint::black_box(out.findings.len())
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("single_event_rules", |b| {
        let rules = rules();
        let rule_config = RuleConfig::new(&config);
        b.iter(|| {
            let mut n = 0;
            for e in &events {
                for r in &rules {
                    n += usize::from((r.eval)(e, &rule_config).is_some());
                }
            }
            std::hint::black_box(n)
        })
    });
    g.bench_function("engine", |b| {
        b.iter_batched(
            || Engine::new(&config),
            |mut engine| {
                for e in &events {
                    engine.process(e);
                }
                engine.flush();
                std::hint::black_box(engine.take_alerts().len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn risk(c: &mut Criterion) {
    // 10,000 alerts over 1,000 users, an hour apart per user.
    let template: Alert = serde_json::from_value(serde_json::json!({
        "alert_id": "a", "detection": "brute_force", "severity": "high", "risk_score": 60.0,
        "confidence": 0.9, "user_id": "u", "user_login": "u@example.com", "src_ip": "198.51.100.7",
        "first_seen": "2024-08-01T00:00:00Z", "last_seen": "2024-08-01T00:00:00Z",
        "detected_at": "2024-08-01T00:00:00Z", "event_uuids": [], "summary": "s",
        "evidence": {}, "mitre": ["T1110"]
    }))
    .expect("alert template");
    let alerts: Vec<Alert> = (0..10_000u32)
        .map(|i| {
            let mut a = template.clone();
            a.alert_id = format!("a{i}");
            a.user_id = Some(format!("00u{:05}", i % 1_000));
            let t = a.first_seen + chrono::Duration::hours(i64::from(i / 1_000));
            a.first_seen = t;
            a.last_seen = t;
            a
        })
        .collect();
    let mut g = c.benchmark_group("risk");
    g.throughput(Throughput::Elements(alerts.len() as u64));
    g.bench_function("add_and_score", |b| {
        b.iter(|| {
            let mut book = RiskBook::new(24.0);
            let mut total = 0.0;
            for a in &alerts {
                book.add(a);
                total += book
                    .score(a.user_id.as_deref().unwrap_or(""), a.last_seen.timestamp_millis())
                    .0;
            }
            std::hint::black_box(total)
        })
    });
    g.finish();
}

fn vector_upsert(c: &mut Criterion) {
    let mut engine = Engine::new(&DetectConfig::default());
    for e in semantic_events() {
        engine.process(&e);
    }
    engine.flush();
    let points = engine.take_vectors(true);
    assert!(!points.is_empty(), "the engine made no behaviour vectors");
    let mut g = c.benchmark_group("vectors");
    g.sample_size(10);
    g.throughput(Throughput::Elements(points.len() as u64));
    g.bench_function("qdrant_edge_upsert", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let index = vectors::open(&VectorsConfig::default(), dir.path()).expect("index");
                (dir, index)
            },
            |(dir, index)| {
                for chunk in points.chunks(1_024) {
                    index.upsert(chunk).expect("upsert");
                }
                drop(index);
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, windowed, risk, vector_upsert);
criterion_main!(benches);
