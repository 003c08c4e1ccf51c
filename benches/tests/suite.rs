//! The benchmark suite's smoke run, end to end on the debug build: every benchmark runs and
//! the four result files come out with the figures they should hold.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn smoke_run_writes_json_markdown_and_plots() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_bench-suite"));
    // `cargo test --workspace` builds the idgw binary into the same directory.
    let idgw = exe.with_file_name("idgw");
    assert!(
        idgw.exists(),
        "{} is missing: run the workspace's tests (cargo test --workspace)",
        idgw.display()
    );
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(&exe)
        .args(["--smoke", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(r["mode"], "smoke");
    assert!(r["machine"]["cores"].as_u64().unwrap() >= 1, "{}", r["machine"]);
    let replay = r["replay"].as_array().unwrap();
    assert_eq!(replay.len(), 2);
    for row in replay {
        assert_eq!(row["balanced"], true, "{row}");
        assert!(row["events_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["peak_rss_mib"].as_f64().unwrap() > 1.0, "{row}");
        let stages = &row["stages"];
        let sum: f64 = ["read_s", "parse_s", "detect_s", "finish_s"]
            .iter()
            .map(|k| stages[k].as_f64().unwrap())
            .sum();
        let wall = row["elapsed_s"].as_f64().unwrap();
        assert!(
            (sum - wall).abs() < wall * 0.05 + 0.01,
            "stages {sum} against wall {wall}: {row}"
        );
    }
    assert!(replay[1]["events"].as_u64() > replay[0]["events"].as_u64());
    assert!(r["quality"]["precision"].as_f64().is_some(), "{}", r["quality"]);
    for (tool, t) in r["mcp"]["tools"].as_object().unwrap() {
        assert_eq!(t["errors"], 0, "{tool}: {t}");
        assert!(
            t["p99_ms"].as_f64().unwrap() >= t["p50_ms"].as_f64().unwrap(),
            "{tool}: {t}"
        );
    }
    let http = &r["mcp_http"];
    if let Some(why) = http["skipped"].as_str() {
        assert!(
            std::env::var_os("IDGW_REQUIRE_INTEROP").is_none(),
            "IDGW_REQUIRE_INTEROP is set but the HTTP latency run was skipped: {why}"
        );
        eprintln!("SKIPPED: MCP latency over HTTP ({why})");
    } else {
        assert_eq!(http["transport"], "http", "{http}");
        for (tool, t) in http["tools"].as_object().unwrap() {
            assert_eq!(t["errors"], 0, "{tool}: {t}");
            assert!(t["calls"].as_u64().unwrap() > 0, "{tool}: {t}");
        }
    }
    let peers = &r["peers"];
    if let Some(why) = peers["skipped"].as_str() {
        assert!(
            std::env::var_os("IDGW_REQUIRE_INTEROP").is_none(),
            "IDGW_REQUIRE_INTEROP is set but the peers were skipped: {why}"
        );
        eprintln!("SKIPPED: peers ({why})");
    } else {
        for key in ["idgw_events_per_s", "seed_events_per_s", "duckdb_events_per_s"] {
            let runs = peers[key].as_array().unwrap();
            assert_eq!(runs.len(), 1, "{peers}");
            assert!(runs[0].as_f64().unwrap() > 0.0, "{peers}");
        }
        assert!(peers["ratio_vs_seed"].as_f64().unwrap() > 0.0, "{peers}");
        // The peers did their work on the same tenant: both find its brute forces.
        assert!(peers["seed"]["alerts"]["brute_force"].as_u64().unwrap() > 0, "{peers}");
        assert!(
            peers["duckdb"]["alerts"]["brute_force"].as_u64().unwrap() > 0,
            "{peers}"
        );
    }
    let kafka = &r["kafka"][0]["latency"];
    assert!(kafka["events_produced"].as_u64().unwrap() > 0, "{kafka}");
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    assert!(
        md.contains("## Replay throughput by tenant size")
            && md.contains("## MCP tool latency")
            && md.contains("## Peers"),
        "{md}"
    );
    for svg in ["throughput.svg", "latency.svg"] {
        let text = std::fs::read_to_string(out.path().join(svg)).unwrap();
        assert!(text.starts_with("<svg") && !text.contains("NaN"), "{svg}: {text}");
    }
}
