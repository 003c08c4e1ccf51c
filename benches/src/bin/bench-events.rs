//! Writes N synthetic ~2 KB Okta events as NDJSON, for the end-to-end replay benchmark:
//!
//!   cargo run --release -p idgw-benches --bin bench-events -- 1000000 /tmp/events.ndjson

use std::io::BufWriter;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let path = args.next().unwrap_or_else(|| "events.ndjson".into());
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    idgw_benches::write_ndjson(&mut out, n)?;
    eprintln!("wrote {n} events to {path}");
    Ok(())
}
