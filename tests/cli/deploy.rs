//! deploy/: the Kubernetes manifests are validated against the Kubernetes API schemas
//! (kubernetes-validate, strict) and checked against each other and the binary; the systemd
//! units pass `systemd-analyze verify`. No cluster and no systemd instance are needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{idgw, interop, stdout};

fn repo() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
}

/// Whether `program` runs (see [`interop`]).
fn have(program: &str, args: &[&str], what: &str) -> bool {
    interop(
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success()),
        what,
    )
}

/// The CLI accepts these arguments: clap rejects an unknown flag before it honours `--help`.
fn cli_accepts(args: &[String]) {
    let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
    with_help.push("--help");
    let o = idgw(&with_help);
    assert!(
        o.status.success(),
        "idgw rejects {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn k8s_validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", "1.34.0"])
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn kubernetes_manifests_are_valid_and_consistent() {
    let dir = repo().join("deploy/k8s");
    let files: Vec<PathBuf> = [
        "namespace.yaml",
        "configmap.yaml",
        "store-pvc.yaml",
        "pipeline.yaml",
        "gateway.yaml",
        "compact.yaml",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    if have(
        "kubernetes-validate",
        &["--version"],
        "kubernetes-validate (pip install kubernetes-validate)",
    ) {
        let o = k8s_validate(&files);
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // The validator can fail: an unknown field and a wrong type are caught.
        let tmp = tempfile::tempdir().unwrap();
        let broken = tmp.path().join("broken.yaml");
        let text = std::fs::read_to_string(dir.join("gateway.yaml")).unwrap().replacen(
            "replicas: 1",
            "replicas: one\n  replicaz: 1",
            1,
        );
        std::fs::write(&broken, text).unwrap();
        assert!(!k8s_validate(&[broken]).status.success(), "a broken manifest passed");
    }

    if !have("python3", &["-c", "import yaml"], "python3 with PyYAML") {
        return;
    }
    let o = Command::new("python3")
        .arg(repo().join("tests/interop/deploy/k8s_facts.py"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let facts: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let docs = facts["documents"].as_array().unwrap();
    let find = |kind: &str, name: &str| -> &Value {
        &docs
            .iter()
            .find(|d| d["kind"] == kind && d["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))["object"]
    };

    // The kustomization lists every manifest, and only those.
    let listed: Vec<&str> = facts["kustomization"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut listed_sorted: Vec<String> = listed.iter().map(|s| (*s).to_owned()).collect();
    listed_sorted.sort();
    assert_eq!(listed_sorted, on_disk);

    // The configuration is one both programs accept.
    let toml_text = find("ConfigMap", "idgw-config")["data"]["idgw.toml"].as_str().unwrap();
    let pipeline = idgw_pipeline::PipelineConfig::from_toml(toml_text).unwrap_or_else(|e| panic!("{e}"));
    idgw_gateway::config::GatewayConfig::from_toml(toml_text).unwrap_or_else(|e| panic!("{e}"));
    let admin_port: u64 = pipeline.admin.listen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        !pipeline.admin.listen.starts_with("127."),
        "probes cannot reach a loopback admin port"
    );
    assert!(
        pipeline.vectors.url.is_some(),
        "several workers need a shared Qdrant, not the embedded shard"
    );

    for (deployment, port_name) in [("idgw-pipeline", "admin"), ("idgw-gateway", "mcp")] {
        let d = find("Deployment", deployment);
        let pod = &d["spec"]["template"];
        assert_eq!(
            d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            deployment
        );
        assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/name"], deployment);
        let container = &pod["spec"]["containers"][0];
        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        cli_accepts(&args);
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--config" && w[1] == "/etc/idgw/idgw.toml")
        );
        // Probes name a declared port; the volumes exist.
        let ports = container["ports"].as_array().unwrap();
        assert!(ports.iter().any(|p| p["name"] == port_name), "{deployment}");
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(container[probe]["httpGet"]["port"], port_name, "{deployment} {probe}");
            assert_eq!(container[probe]["httpGet"]["path"], "/healthz");
        }
        for v in pod["spec"]["volumes"].as_array().unwrap() {
            if let Some(cm) = v["configMap"]["name"].as_str() {
                find("ConfigMap", cm);
            }
            if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                let pvc = find("PersistentVolumeClaim", claim);
                assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany", "shared by every pod");
            }
        }
        if deployment == "idgw-pipeline" {
            assert_eq!(ports[0]["containerPort"], admin_port, "containerPort = [admin] listen");
            let grace = pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
            assert!(
                grace > pipeline.admin.shutdown_deadline_s,
                "SIGKILL before the drain deadline"
            );
        } else {
            // One audit chain per store.
            assert_eq!(d["spec"]["replicas"], 1);
            assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
            let http = args.iter().position(|a| a == "--http").unwrap();
            assert!(args[http + 1].ends_with(&format!(":{}", ports[0]["containerPort"])));
        }
    }
    // The daily compaction: a command the binary takes, on the same store and config, never
    // two at once.
    let cron = find("CronJob", "idgw-compact");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let args: Vec<String> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args[..2], ["store", "compact"]);
    cli_accepts(&args);
    let claims: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .collect();
    assert_eq!(claims, ["idgw-store"]);

    // Services select the pods they front, on ports the pods declare.
    for (service, deployment) in [
        ("idgw-pipeline-admin", "idgw-pipeline"),
        ("idgw-gateway", "idgw-gateway"),
    ] {
        let s = find("Service", service);
        assert_eq!(s["spec"]["selector"]["app.kubernetes.io/name"], deployment);
        let target = s["spec"]["ports"][0]["targetPort"].as_str().unwrap();
        let pod_ports = find("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]["ports"].clone();
        assert!(
            pod_ports.as_array().unwrap().iter().any(|p| p["name"] == target),
            "{service}"
        );
    }
}

/// `systemd-analyze verify` on the units in a scratch root that holds them, the system's
/// own targets and an executable at the ExecStart path; what it printed.
fn verify_units(units: &[(&str, String)]) -> (bool, String) {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
    std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(r.join("usr/lib/systemd/system")).unwrap();
    for entry in std::fs::read_dir("/usr/lib/systemd/system").unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), r.join("usr/lib/systemd/system").join(entry.file_name())).unwrap();
        }
    }
    let exe = r.join("usr/local/bin/idgw");
    std::fs::write(&exe, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, text) in units {
        std::fs::write(r.join("etc/systemd/system").join(name), text).unwrap();
    }
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .args([
            "idgw-gateway.service",
            "idgw-pipeline@9464.service",
            "idgw-compact.service",
            "idgw-compact.timer",
        ])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success() && said.trim().is_empty(), said)
}

#[test]
fn systemd_units_verify_and_run_real_commands() {
    let dir = repo().join("deploy/systemd");
    let units: Vec<(&str, String)> = [
        "idgw-gateway.service",
        "idgw-pipeline@.service",
        "idgw-compact.service",
        "idgw-compact.timer",
    ]
    .into_iter()
    .map(|n| (n, std::fs::read_to_string(dir.join(n)).unwrap()))
    .collect();
    for (name, text) in units.iter().filter(|(n, _)| n.ends_with(".service")) {
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{name} has no ExecStart"));
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/idgw"));
        cli_accepts(&words.map(str::to_owned).collect::<Vec<_>>());
        let stop: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStopSec="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(stop >= 30, "{name}: systemd would SIGKILL before the drain deadline");
    }
    if !Path::new("/usr/lib/systemd/system").is_dir()
        || !have("systemd-analyze", &["--version"], "systemd-analyze (Debian's systemd)")
    {
        return;
    }
    let (ok, said) = verify_units(&units);
    assert!(ok, "systemd-analyze verify: {said}");
    // The check can fail: a misspelt key and a bad time are reported.
    let broken: Vec<(&str, String)> = units
        .iter()
        .map(|(n, t)| {
            (
                *n,
                t.replace("TimeoutStopSec=45", "TimeoutStopSec=forty")
                    .replace("ProtectHome=", "ProtectHomes="),
            )
        })
        .collect();
    let (ok, said) = verify_units(&broken);
    assert!(!ok && said.contains("ProtectHomes"), "{said}");
}

#[test]
fn local_stack_starts_everything_and_stops_it() {
    let tansu = std::env::var_os("IDGW_TANSU");
    if !interop(tansu.is_some(), "the tansu broker (IDGW_TANSU)") {
        return;
    }
    let tansu = tansu.unwrap_or_default();
    let work = tempfile::tempdir().unwrap();
    let o = Command::new(repo().join("deploy/local-stack.sh"))
        .arg("--smoke")
        .arg(work.path())
        .env("IDGW", env!("CARGO_BIN_EXE_idgw"))
        .env("IDGW_TANSU", tansu)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        o.status.success() && out.contains("smoke    ok"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The configuration printed for HTTP clients is JSON naming the gateway it started.
    let start = out.find("{\n  \"mcpServers\"").unwrap();
    let end = start + out[start..].find("\n}\n").unwrap() + 2;
    let config: Value = serde_json::from_str(&out[start..end]).unwrap();
    let url = config["mcpServers"]["idgw-local"]["url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"), "{url}");
    // Events went through Kafka into the store the gateway served.
    let q = idgw(&[
        "query",
        "--store",
        work.path().join("store").to_str().unwrap(),
        "--json",
        "SELECT count(*) AS n FROM events",
    ]);
    let n: Value = serde_json::from_str(stdout(&q).trim()).unwrap();
    assert!(n["n"].as_u64().unwrap() > 0, "{n}");
    // Everything it started has stopped.
    let line = out.lines().find(|l| l.starts_with("stopped: ")).unwrap();
    let pids: Vec<&str> = line["stopped: ".len()..]
        .split(" (")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(pids.len(), 5, "broker, simulator, two workers, gateway: {line}");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} outlived the script"
        );
    }
}
