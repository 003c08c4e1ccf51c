//! `bench-detect EVENTS.ndjson [MAX]`: the detection engine alone. Decodes and normalizes up
//! to MAX events into memory first (not timed), then times `Engine::process` over them and
//! `flush`, and prints events/s, alerts, and the engine's live heap bytes per user (counted
//! by a wrapping allocator) and its checkpoint size, as JSON.

use std::alloc::System;
use std::io::BufRead;
use std::time::Instant;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// The system allocator, counting allocations (to measure the engine's live heap).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::detect::{DetectConfig, Engine};
use idgw_pipeline::normalize::normalize;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: bench-detect EVENTS.ndjson [MAX]")?;
    let max: usize = args.next().map(|m| m.parse()).transpose()?.unwrap_or(usize::MAX);
    let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
    let mut events = Vec::new();
    for line in reader.lines().take(max) {
        let line = line?;
        if let Ok(Decoded::Event { raw, event }) = decode(line.as_bytes(), 1 << 20)
            && let Ok(mut ev) = normalize(raw, &event)
        {
            // The engine never reads the raw text except for privilege grants: keep it only
            // there, so the measurement is not about memory bandwidth.
            if !ev.event_type.contains("privilege") {
                ev.raw = None;
            }
            events.push(ev);
        }
    }
    let region = Region::new(GLOBAL);
    let mut engine = Engine::new(&DetectConfig::default());
    let started = Instant::now();
    for ev in &events {
        engine.process(ev);
    }
    engine.flush();
    let elapsed = started.elapsed().as_secs_f64();
    let alerts = engine.take_alerts().len();
    let change = region.change();
    let engine_bytes = change.bytes_allocated as isize - change.bytes_deallocated as isize + change.bytes_reallocated;
    let stats = engine.stats();
    let checkpoint = engine.checkpoint()?;
    let json_bytes = zstd::decode_all(checkpoint.as_slice())?.len();
    println!(
        "{}",
        serde_json::json!({
            "events": events.len(),
            "elapsed_s": elapsed,
            "events_per_s": events.len() as f64 / elapsed,
            "ns_per_event": elapsed * 1e9 / events.len() as f64,
            "alerts": alerts,
            "users": stats.users,
            "detector_keys": stats.detector_keys,
            "engine_heap_bytes": engine_bytes,
            "engine_heap_bytes_per_user": engine_bytes as f64 / stats.users.max(1) as f64,
            "checkpoint_bytes_compressed": checkpoint.len(),
            "checkpoint_bytes_json": json_bytes,
            "checkpoint_json_bytes_per_user": json_bytes as f64 / stats.users.max(1) as f64,
        })
    );
    Ok(())
}
