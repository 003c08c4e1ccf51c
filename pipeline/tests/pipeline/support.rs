//! Test helpers: Okta-shaped events, replays into temporary stores, reading dead letters.

use std::path::{Path, PathBuf};

use idgw_pipeline::source::file::Input;
use idgw_pipeline::{PipelineConfig, Store, Summary};
use serde_json::{Value, json};

/// A realistic `user.session.start` event (Classic org shape, as /api/v1/logs returns it).
pub fn event(uuid: &str, event_type: &str, published: &str) -> Value {
    json!({
        "actor": {"id": "00u1abcdEFGHijkl0h7", "type": "User", "alternateId": "ana@example.com", "displayName": "Ana Lima", "detailEntry": null},
        "client": {
            "userAgent": {"rawUserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36", "os": "Mac OS X", "browser": "CHROME"},
            "zone": "null", "device": "Computer", "id": null, "ipAddress": "198.51.100.7",
            "geographicalContext": {"city": "Lisbon", "state": "Lisbon", "country": "Portugal", "postalCode": "1000-001", "geolocation": {"lat": 38.72, "lon": -9.14}}
        },
        "authenticationContext": {"authenticationProvider": null, "credentialProvider": null, "credentialType": null, "issuer": null, "interface": null, "authenticationStep": 0, "externalSessionId": "102abcDEF"},
        "displayMessage": "User login to Okta",
        "eventType": event_type,
        "outcome": {"result": "SUCCESS", "reason": null},
        "published": published,
        "securityContext": {"asNumber": 3243, "asOrg": "meo", "isp": "meo", "domain": "meo.pt", "isProxy": false},
        "severity": "INFO",
        "debugContext": {"debugData": {"requestId": "XkcAsWb8WjwDP76xh@1v8wAABp0", "requestUri": "/api/v1/authn", "threatSuspected": "false", "dtHash": "2f1c1b5e9c0e4a1f8b7d6c5a4b3e2d1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"}},
        "legacyEventType": "core.user_auth.login_success",
        "transaction": {"type": "WEB", "id": "XkcAsWb8WjwDP76xh@1v8wAABp0", "detail": {}},
        "uuid": uuid,
        "version": "0",
        "request": {"ipChain": [{"ip": "198.51.100.7", "geographicalContext": null, "version": "V4", "source": null}]},
        "target": null
    })
}

/// `n` distinct valid events as NDJSON lines.
pub fn ndjson(n: usize, day: &str) -> String {
    (0..n)
        .map(|i| {
            let uuid = format!("00000000-0000-4000-8000-{i:012}");
            let published = format!("{day}T10:{:02}:{:02}.000Z", (i / 60) % 60, i % 60);
            event(&uuid, "user.session.start", &published).to_string() + "\n"
        })
        .collect()
}

/// A temporary directory holding inputs and a store.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn store(&self) -> Store {
        Store::open(self.store_path()).unwrap()
    }

    /// Writes `bytes` to a file named `name` in the fixture.
    pub fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub fn replay_with(&self, inputs: &[&Path], config: &PipelineConfig) -> Summary {
        let inputs: Vec<Input> = inputs.iter().map(|p| Input::Path(p.to_path_buf())).collect();
        let summary = idgw_pipeline::replay(&inputs, &self.store(), config, &mut |_| {}).unwrap();
        assert!(summary.balanced, "counters must add up: {summary:?}");
        assert_eq!(
            summary.events_in,
            summary.events_ok + summary.deadlettered + summary.duplicates
        );
        summary
    }

    pub fn replay(&self, inputs: &[&Path]) -> Summary {
        self.replay_with(inputs, &PipelineConfig::default())
    }

    /// Every dead letter written to the store so far.
    pub fn dead_letters(&self) -> Vec<Value> {
        let dir = self.store_path().join("deadletter");
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e == "jsonl") {
                for line in std::fs::read_to_string(&p).unwrap().lines() {
                    out.push(serde_json::from_str(line).unwrap());
                }
            }
        }
        out
    }

    /// Runs SQL over the store and returns the rows as JSON objects.
    pub fn sql(&self, sql: &str) -> Vec<serde_json::Map<String, Value>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let batches = rt
            .block_on(idgw_pipeline::query::query(&Store::at(self.store_path()), sql))
            .unwrap();
        let mut buf = Vec::new();
        {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut buf);
            for b in &batches {
                w.write(b).unwrap();
            }
            w.finish().unwrap();
        }
        if buf.is_empty() {
            return Vec::new();
        }
        serde_json::from_slice(&buf).unwrap()
    }

    pub fn count(&self, sql_where: &str) -> i64 {
        let rows = self.sql(&format!("SELECT count(*) AS n FROM events {sql_where}"));
        rows[0]["n"].as_i64().unwrap()
    }
}

/// Says that a test skipped its work, on the process's stderr itself: libtest captures
/// `eprintln!` of passing tests, and a skip must show in every run's output.
pub fn skip_notice(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {message}");
}

/// The shared Okta sample events (`../shared/okta/events`), or `None` with a visible note.
pub fn shared_events_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("IDGW_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared")
        })
        .join("okta/events");
    if dir.is_dir() {
        Some(dir)
    } else {
        skip_notice(&format!(
            "the shared Okta sample events are absent ({}); set IDGW_SHARED_DIR",
            dir.display()
        ));
        None
    }
}
