//! Golden tests, one folder per detection under `pipeline/tests/golden/`: input events
//! (`events.ndjson.gz`, from `make-inputs.sh`), the generator's labels, and the expected
//! alerts (`expected.json`). Each folder runs straight through, and again with a checkpoint
//! and restore into a fresh engine in the middle; both must give exactly the expected
//! alerts. `UPDATE_GOLDEN=1` rewrites `expected.json` from the straight run.

use std::io::Read;
use std::path::{Path, PathBuf};

use idgw_pipeline::decode::{Decoded, decode};
use idgw_pipeline::detect::{DetectConfig, Engine};
use idgw_pipeline::normalize::normalize;
use idgw_schemas::{Alert, SemanticEvent, Severity};
use serde::Deserialize;

pub fn golden_dir() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/golden")
}

pub fn events(dir: &Path) -> Vec<SemanticEvent<'static>> {
    let file = std::fs::File::open(dir.join("events.ndjson.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).unwrap();
    text.lines()
        .map(|line| match decode(line.as_bytes(), 1 << 20).unwrap() {
            Decoded::Event { raw, event } => normalize(raw, &event).unwrap(),
            Decoded::Envelope(_) => panic!("{}: an envelope in a golden input", dir.display()),
        })
        .collect()
}

fn run(events: &[SemanticEvent], checkpoint_at: Option<usize>) -> Vec<Alert> {
    let config = DetectConfig::default();
    let mut engine = Engine::new(&config);
    let mut alerts = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        if checkpoint_at == Some(i) {
            let bytes = engine.checkpoint().unwrap();
            alerts.extend(engine.take_alerts());
            engine = Engine::new(&config);
            engine.restore(&bytes).unwrap();
        }
        engine.process(ev);
    }
    engine.flush();
    alerts.extend(engine.take_alerts());
    alerts.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    alerts
}

#[derive(Deserialize)]
struct LabelLine {
    category: String,
    benign: bool,
}

#[test]
fn every_detection_matches_its_golden_alerts_with_and_without_a_restore() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    assert!(folders.len() >= 20, "golden folders missing: {}", folders.len());
    let mut failures = Vec::new();
    for dir in &folders {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let events = events(dir);
        let straight = run(&events, None);
        for cut in [events.len() / 3, events.len() / 2, events.len() * 4 / 5] {
            let resumed = run(&events, Some(cut));
            if resumed != straight {
                failures.push(format!("{name}: a restore after event {cut} changed the alerts"));
            }
        }
        let expected_path = dir.join("expected.json");
        if update {
            std::fs::write(&expected_path, serde_json::to_string_pretty(&straight).unwrap() + "\n").unwrap();
        }
        let expected: Vec<Alert> = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e} (create it with UPDATE_GOLDEN=1)", expected_path.display())),
        )
        .unwrap();
        if expected != straight {
            failures.push(format!(
                "{name}: {} alerts, expected {} (UPDATE_GOLDEN=1 rewrites expected.json after review)",
                straight.len(),
                expected.len()
            ));
        }
        // The folder's story must be told by its expected alerts: an attack folder holds an
        // alert of its detection, a look-alike folder none at medium or above.
        let labels: Vec<LabelLine> = std::fs::read_to_string(dir.join("labels.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!labels.is_empty(), "{name}: no label");
        for l in &labels {
            let of_kind = |a: &&Alert| a.detection.as_str() == l.category;
            if l.benign {
                if let Some(a) = expected.iter().filter(of_kind).find(|a| a.severity >= Severity::Medium) {
                    failures.push(format!("{name}: look-alike drew {} {}", a.severity.as_str(), a.summary));
                }
            } else if !expected.iter().any(|a| of_kind(&a)) {
                failures.push(format!("{name}: no {} alert for the labelled attack", l.category));
            }
        }
        if name == "anomalous_signin" && !expected.iter().any(|a| a.detection.as_str() == "anomalous_signin") {
            failures.push("anomalous_signin: the takeover after a week of history raised no anomaly".into());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
