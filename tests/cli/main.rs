//! The `idgw` binary, driven as a user drives it.

mod attacks;
mod deploy;
mod gateway;
mod kafka_tls;
mod oauth;
mod poller;
mod replay;
mod report;
mod store;
mod stream;
mod suppress;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn idgw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idgw")).args(args).output().unwrap()
}

/// `idgw generate` into `dir`: the events file (labels beside it).
fn generate(dir: &Path, users: u32, days: u32, seed: u64) -> std::path::PathBuf {
    let events = dir.join("events.ndjson");
    let o = idgw(&[
        "generate",
        "--users",
        &users.to_string(),
        "--days",
        &days.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        events.to_str().unwrap(),
        "--labels",
        dir.join("labels.jsonl").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    events
}

/// `idgw sim serve` on a free port with `args`: the process, its base URL and how many
/// events of history it holds.
fn sim(args: &[&str]) -> (std::process::Child, String, u64) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args(["sim", "serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("the simulator exited before serving").unwrap();
    let rest = line.split("listening on ").nth(1).unwrap_or_else(|| panic!("{line:?}"));
    let url = rest.split_whitespace().next().unwrap().to_owned();
    let events: u64 = rest
        .split('(')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no event count in {line:?}"));
    std::thread::spawn(move || for _ in lines {});
    (child, url, events)
}

/// Whether a test may go on when something it drives from outside (`what`) is `present`:
/// with `IDGW_REQUIRE_INTEROP=1` (.ci/run, which installs it all) absence fails the test,
/// otherwise it prints a visible SKIPPED line and the test returns.
fn interop(present: bool, what: &str) -> bool {
    if !present {
        assert!(
            std::env::var_os("IDGW_REQUIRE_INTEROP").is_none(),
            "IDGW_REQUIRE_INTEROP is set but {what} is absent"
        );
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: {what} is absent; this check did not run"
        );
    }
    present
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn event(i: usize, event_type: &str) -> String {
    serde_json::json!({
        "uuid": format!("88888888-0000-4000-8000-{i:012}"),
        "published": "2024-08-13T15:58:20.353Z",
        "eventType": event_type,
        "severity": "INFO",
        "actor": {"id": "00u1", "type": "User", "alternateId": "ana@example.com", "displayName": "Ana"},
        "client": {"ipAddress": "198.51.100.7", "zone": "null"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": null
    })
    .to_string()
}

#[test]
fn help_explains_every_command() {
    let top = idgw(&["--help"]);
    assert!(top.status.success());
    let text = stdout(&top);
    for word in [
        "replay",
        "query",
        "eval",
        "baseline",
        "similar",
        "pipeline run",
        "idgw report",
        "idgw store compact",
        "dead letter",
        "Exit codes",
    ] {
        assert!(text.contains(word), "--help lacks {word:?}:\n{text}");
    }
    let replay = stdout(&idgw(&["replay", "--help"]))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for word in [
        "--store",
        "--summary-json",
        "gzip",
        "events_in = events_ok + deadlettered + duplicates",
    ] {
        assert!(replay.contains(word), "replay --help lacks {word:?}");
    }
    assert!(stdout(&idgw(&["query", "--help"])).contains("--json"));
    let report = stdout(&idgw(&["report", "--help"]));
    assert!(
        report.contains("--out") && report.contains("without network access"),
        "{report}"
    );
    let compact = stdout(&idgw(&["store", "compact", "--help"]));
    assert!(
        compact.contains("--min-age-days") && compact.contains("--dry-run") && compact.contains("sorted"),
        "{compact}"
    );
    let pipeline = stdout(&idgw(&["pipeline", "run", "--help"]))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for word in [
        "KAFKA_BROKERS",
        "/metrics",
        "/healthz",
        "SIGTERM",
        "--until-end",
        "OKTA_ORG_URL",
        "checkpoint",
    ] {
        assert!(pipeline.contains(word), "pipeline run --help lacks {word:?}");
    }
    assert_eq!(
        idgw(&["replay"]).status.code(),
        Some(2),
        "missing arguments are a usage error"
    );
}

#[test]
fn replay_from_stdin_then_query() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let summary = dir.path().join("summary.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args([
            "replay",
            "-",
            "--store",
            store.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..3 {
            writeln!(stdin, "{}", event(i, "user.session.start")).unwrap();
        }
        writeln!(stdin, "{}", event(3, "user.session.end")).unwrap();
        writeln!(stdin, "{}", event(3, "user.session.end")).unwrap();
        writeln!(stdin, "not json").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("6 = 4 + 1 + 1 (ok)"), "{}", stdout(&out));

    let text = std::fs::read_to_string(&summary).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let contract = [
        "events_in",
        "events_ok",
        "deadlettered",
        "duplicates",
        "alerts",
        "elapsed_s",
        "events_per_s",
    ];
    let positions: Vec<usize> = contract
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "the summary's contract keys come in order: {text}"
    );
    let first_other = text.find("\"balanced\":").unwrap();
    assert!(positions[6] < first_other, "the contract keys come first: {text}");
    assert_eq!(
        (json["events_in"].as_u64(), json["events_ok"].as_u64()),
        (Some(6), Some(4))
    );
    // The replay's own CPU time, where the kernel reports it (null elsewhere).
    if cfg!(target_os = "linux") {
        assert!(json["cpu_s"].as_f64().is_some_and(|s| s >= 0.0), "{text}");
    }

    let q = idgw(&[
        "query",
        "--store",
        store.to_str().unwrap(),
        "SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
    ]);
    assert!(q.status.success());
    let table = stdout(&q);
    assert!(table.contains("| user.session.end   | 1 |"), "{table}");
    assert!(table.contains("2 row(s)"));

    let q = idgw(&[
        "query",
        "--json",
        "--store",
        store.to_str().unwrap(),
        "SELECT count(*) AS n FROM events",
    ]);
    assert_eq!(stdout(&q).trim(), r#"{"n":4}"#);
}

#[test]
fn errors_are_clear_and_exit_codes_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let bad_sql = idgw(&["query", "--store", s, "SELECT"]);
    assert_eq!(bad_sql.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_sql.stderr).starts_with("error: "));

    // A cut gzip stream: the good events land, the summary says what happened, exit 3.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..3000 {
        writeln!(enc, "{}", event(i, "user.session.start")).unwrap();
    }
    let gz = enc.finish().unwrap();
    let cut = dir.path().join("cut.ndjson.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let out = idgw(&["replay", cut.to_str().unwrap(), "--store", s, "--json", "--quiet"]);
    assert_eq!(out.status.code(), Some(3));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(summary["events_ok"].as_u64().unwrap() > 0);
    assert!(
        summary["inputs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cut.ndjson.gz")
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: reading"));

    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[store]\nbatch_rowz = 3\n").unwrap();
    let out = idgw(&[
        "replay",
        cut.to_str().unwrap(),
        "--store",
        s,
        "--config",
        bad_config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch_rowz"));
}

/// `../shared` (or `IDGW_SHARED_DIR`), or `None` with a visible SKIPPED line naming `what`
/// did not run.
fn shared_dir(what: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("IDGW_SHARED_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        std::path::PathBuf::from,
    );
    if dir.join("okta/events").is_dir() {
        return Some(dir);
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: {} is absent; {what} did not run",
        dir.display()
    );
    None
}

#[test]
fn replay_of_the_shared_samples() {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../shared/okta/events");
    if !dir.is_dir() {
        // Straight to stderr: libtest would capture `eprintln!` of a passing test.
        let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {} is absent", dir.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["replay".to_owned(), "--json".to_owned(), "--store".to_owned()];
    args.push(tmp.path().join("store").display().to_string());
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            args.push(p.display().to_string());
        }
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = idgw(&refs);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["deadlettered"], 0);
    assert_eq!(summary["balanced"], true);
}

#[test]
fn generate_then_replay_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson.gz");
    let labels = dir.path().join("labels.jsonl");
    let out = idgw(&[
        "generate",
        "--users",
        "150",
        "--days",
        "2",
        "--seed",
        "9",
        "--out",
        events.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let n = generated["events"].as_u64().unwrap();
    assert!(n > 1000, "{generated}");
    assert!(
        std::fs::read(&events).unwrap().starts_with(&[0x1f, 0x8b]),
        "a .gz name gives gzip"
    );
    assert_eq!(
        std::fs::read_to_string(&labels).unwrap().lines().count() as u64,
        generated["labels"].as_u64().unwrap()
    );

    let store = dir.path().join("store");
    let out = idgw(&[
        "replay",
        events.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["events_in"].as_u64(), Some(n));
    assert_eq!(
        summary["events_ok"].as_u64(),
        Some(n),
        "every generated event is stored"
    );

    let bad = idgw(&[
        "generate",
        "--users",
        "1",
        "--out",
        "x",
        "--labels",
        "y",
        "--start",
        "yesterday",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--start"));
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = idgw(&[
        "demo",
        "--dir",
        dir.path().to_str().unwrap(),
        "--users",
        "120",
        "--days",
        "2",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert!(text.contains("events by category"), "{text}");
    assert!(text.contains("0 dead-lettered"), "{text}");
    assert!(dir.path().join("labels.jsonl").is_file());
    let q = idgw(&[
        "query",
        "--json",
        "--store",
        dir.path().join("store").to_str().unwrap(),
        "SELECT count(*) AS n FROM events",
    ]);
    let n: serde_json::Value = serde_json::from_str(stdout(&q).trim()).unwrap();
    assert!(n["n"].as_i64().unwrap() > 500);
}

#[test]
fn generate_replay_eval_and_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let o = idgw(&[
        "generate",
        "--users",
        "6",
        "--days",
        "1",
        "--seed",
        "3",
        "--scenario",
        "mfa_fatigue",
        "--out",
        &p("e.ndjson"),
        "--labels",
        &p("l.jsonl"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = idgw(&["replay", &p("e.ndjson"), "--store", &p("store"), "--json", "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(summary["alerts"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(
        summary["alerts_by_detection"]["mfa_fatigue"].as_u64(),
        summary["alerts"].as_u64()
    );
    assert_eq!(summary["vector_backend"], "qdrant-edge", "{summary}");
    assert_eq!(
        summary["vectors_upserted"].as_u64(),
        summary["users"].as_u64(),
        "{summary}"
    );

    // Every user has a behaviour vector: the neighbours of one are the five others, best first.
    let state = idgw(&[
        "query",
        "--store",
        &p("store"),
        "--json",
        "SELECT user_id, user_login FROM identity_state ORDER BY user_id LIMIT 1",
    ]);
    let me: serde_json::Value = serde_json::from_str(stdout(&state).lines().next().unwrap()).unwrap();
    let login = me["user_login"].as_str().unwrap();
    let o = idgw(&["similar", "--store", &p("store"), login, "-k", "10", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let similar: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let neighbours = similar["neighbours"].as_array().unwrap();
    assert_eq!(neighbours.len(), 5, "{similar}");
    assert!(neighbours.iter().all(|n| n["user_id"] != me["user_id"]), "{similar}");
    let scores: Vec<f64> = neighbours.iter().map(|n| n["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let o = idgw(&["similar", "--store", &p("store"), "nobody@example.com"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not in the vector index"));

    let o = idgw(&[
        "eval",
        "--labels",
        &p("l.jsonl"),
        "--store",
        &p("store"),
        "--json",
        "--check",
    ]);
    assert!(o.status.success(), "targets met: {}", stdout(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["by_detection"]["mfa_fatigue"]["recall"], 1.0);
    assert_eq!(report["lookalikes_tripped"], 0);

    // A label the store never saw makes --check fail with its own exit code.
    let mut labels = std::fs::read_to_string(p("l.jsonl")).unwrap();
    let mut extra: serde_json::Value = serde_json::from_str(labels.lines().next().unwrap()).unwrap();
    extra["label_id"] = "lbl-999999".into();
    extra["category"] = "session_hijack".into();
    labels.push_str(&format!("{extra}\n"));
    std::fs::write(p("l2.jsonl"), labels).unwrap();
    let o = idgw(&["eval", "--labels", &p("l2.jsonl"), "--store", &p("store"), "--check"]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));

    // The store already holds detection state: a baseline refuses, --replace rebuilds.
    let o = idgw(&["baseline", "build", "--store", &p("store")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--replace"));
    let o = idgw(&["baseline", "build", "--store", &p("store"), "--replace", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(b["users"], 6, "{b}");
    assert_eq!(b["vectors_upserted"], 6, "{b}");
}

#[test]
fn query_takes_datafusion_settings_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("e.ndjson");
    let lines: Vec<String> = (0..20).map(|i| event(i, "user.session.start")).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let store = dir.path().join("store");
    assert!(
        idgw(&["replay", "--store", store.to_str().unwrap(), input.to_str().unwrap()])
            .status
            .success()
    );
    let sql = "SELECT count(*) AS n FROM events WHERE outcome_result = 'SUCCESS'";
    let run = |name: &str, value: &str| {
        Command::new(env!("CARGO_BIN_EXE_idgw"))
            .args(["query", "--json", "--store", store.to_str().unwrap(), sql])
            .env(name, value)
            .output()
            .unwrap()
    };
    // The pushdown default can be turned off; the answer is the same either way.
    for value in ["false", "true"] {
        let o = run("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS", value);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(stdout(&o).trim(), r#"{"n":20}"#);
    }
    // A setting that does not parse is an error that names it, not a silent default.
    let o = run("DATAFUSION_EXECUTION_TARGET_PARTITIONS", "many");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("many"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `idgw config show`: every key by one rule, each value with its source, secrets masked; a
/// misspelt variable is an error, not silently ignored.
#[test]
fn config_show_names_every_source_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("idgw.toml");
    std::fs::write(
        &config,
        "[detect]\nspray_users = 20\n\n[kafka.security]\nprotocol = \"sasl_ssl\"\n\
         sasl_mechanism = \"SCRAM-SHA-512\"\nusername = \"idgw\"\n",
    )
    .unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_idgw"))
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let env = [
        ("IDGW_DETECT_TRAVEL_MIN_KM", "450"),
        ("IDGW_KAFKA_SECURITY_PASSWORD", "hunter2-secret"),
        ("IDGW_GATEWAY_APPROVALS_PUBLIC_URL", "https://idgw.example.com"),
        ("IDGW_POLLER_RETRY_MAX_RETRIES", "9"),
    ];
    let o = run(
        &env,
        &["config", "show", "--config", config.to_str().unwrap(), "--json"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    assert!(!text.contains("hunter2"), "a secret reached the output:\n{text}");
    let rows: std::collections::BTreeMap<String, serde_json::Value> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["key"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert!(rows.len() > 100, "{} keys", rows.len());
    let row = |k: &str| rows.get(k).unwrap_or_else(|| panic!("no {k} in:\n{text}"));
    assert_eq!(row("detect.travel_min_km")["value"], 450.0);
    assert_eq!(
        row("detect.travel_min_km")["source"]["name"],
        "IDGW_DETECT_TRAVEL_MIN_KM"
    );
    assert_eq!(row("detect.spray_users")["value"], 20);
    assert_eq!(row("detect.spray_users")["source"]["kind"], "file");
    assert_eq!(row("detect.brute_force_failures")["source"]["kind"], "default");
    assert_eq!(row("kafka.security.password")["value"], "********");
    assert_eq!(row("poller.retry.max_retries")["value"], 9);
    assert_eq!(row("gateway.approvals.public_url")["value"], "https://idgw.example.com");
    assert_eq!(
        row("gateway.approvals.public_url")["source"]["name"],
        "IDGW_GATEWAY_APPROVALS_PUBLIC_URL"
    );
    // Approvals and token checks come from the reviewed file only.
    let o = run(&[("IDGW_GATEWAY_POLICY_APPROVAL_REQUIRED", "")], &["config", "show"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only in the configuration file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = run(&[("IDGW_DETECT_TRAVEL_MIN_KMS", "1")], &["config", "show"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("IDGW_DETECT_TRAVEL_MIN_KMS") && err.contains("travel_min_kms"),
        "{err}"
    );
    let o = run(&[("IDGW_STORE_ZSTD_LEVEL", "high")], &["config", "show"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("IDGW_STORE_ZSTD_LEVEL"));
}

/// Logs: an unparsable filter is an error (exit 2), `RUST_LOG` is honoured, and
/// `--log-format json` writes one JSON object per line. The run itself shows that brokers
/// that never answer stop the pipeline after `connect_timeout_s`, with the reason.
#[test]
fn log_filters_and_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args(["--log", "info,[[[", "config", "show"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid log filter"));
    let o = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args(["config", "show"])
        .env("RUST_LOG", "=nonsense=")
        .env_remove("IDGW_LOG")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "RUST_LOG is read: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("RUST_LOG"));

    let started = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_idgw"))
        .args(["--log-format", "json", "--log", "info"])
        .args(["pipeline", "run", "--store", store.to_str().unwrap()])
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .env("IDGW_KAFKA_SECURITY_CONNECT_TIMEOUT_S", "2")
        .env("IDGW_ADMIN_LISTEN", "127.0.0.1:0")
        .env("IDGW_VECTORS_ENABLED", "false")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no broker answered within 2 s"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{err}");
    let json: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!json.is_empty(), "no JSON log lines:\n{err}");
    for line in &json {
        assert!(line["level"].is_string() && line["timestamp"].is_string(), "{line}");
    }
}

/// `idgw alerts export --format ocsf`: every alert of a replayed tenant is a Detection
/// Finding that an independent implementation of the OCSF schema (py-ocsf-models, strict)
/// accepts, checked by tests/interop/ocsf_validate.py.
#[test]
fn alerts_export_as_ocsf_detection_findings_that_validate() {
    let python = std::env::var("IDGW_OCSF_PYTHON").ok().filter(|p| !p.is_empty());
    if !interop(
        python.is_some(),
        "py-ocsf-models (IDGW_OCSF_PYTHON; .ci/run installs it)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), 300, 2, 9);
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let o = idgw(&["replay", events.to_str().unwrap(), "--store", s, "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let alerts = std::fs::read_to_string(store.join("alerts.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(alerts > 0);
    let o = idgw(&["alerts", "export", "--store", s, "--format", "ocsf"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o).lines().count(), alerts, "one finding per alert");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ocsf_validate.py");
    let mut child = Command::new(python.unwrap())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&o.stdout).unwrap();
    let v = child.wait_with_output().unwrap();
    let report = format!("{}{}", stdout(&v), String::from_utf8_lossy(&v.stderr));
    assert!(v.status.success(), "{report}");
    assert!(
        report.contains(&format!("validated {alerts} detection findings")),
        "{report}"
    );

    let o = idgw(&["alerts", "export", "--store", s, "--min-severity", "critical"]);
    assert!(o.status.success());
    for line in stdout(&o).lines() {
        let a: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(a["severity"], "critical", "{a}");
    }
}
