//! deploy/: the Kubernetes manifests are validated against the Kubernetes API schemas
//! (kubernetes-validate, strict) and checked against each other and the binary; the systemd
//! units pass `systemd-analyze verify`; the Containerfile builds the image the manifests
//! run. No cluster, systemd instance or container engine is needed.

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
        "poller.yaml",
        "qdrant.yaml",
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

    // The kustomization lists every manifest, and only those: all but the optional in-cluster
    // Qdrant, which is applied on its own.
    let listed: Vec<&str> = facts["kustomization"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml" && n != "qdrant.yaml")
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

    for (deployment, port_name) in [
        ("idgw-pipeline", "admin"),
        ("idgw-gateway", "mcp"),
        ("idgw-poller", "admin"),
    ] {
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
        if port_name == "admin" {
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
    // One poller producing to the topic: two would produce every event twice (poller.yaml:
    // one replica, Recreate, and the poller's lock in the store).
    let poller = find("Deployment", "idgw-poller");
    assert_eq!(poller["spec"]["replicas"], 1);
    assert_eq!(poller["spec"]["strategy"]["type"], "Recreate");
    let env = poller["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let var = |name: &str| env.iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str());
    assert_eq!(var("IDGW_POLLER_ENABLED"), Some("true"));
    assert_eq!(var("IDGW_POLLER_PRODUCE"), Some("true"));
    assert!(pipeline.kafka.enabled(), "the poller produces to [kafka] brokers");

    // [vectors] url names the optional in-cluster Qdrant's service and gRPC port.
    let qdrant = find("Service", "qdrant");
    let grpc = qdrant["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "grpc")
        .unwrap();
    assert_eq!(
        pipeline.vectors.url.as_deref().unwrap(),
        format!(
            "http://qdrant.{}.svc:{}",
            qdrant["metadata"]["namespace"].as_str().unwrap(),
            grpc["port"]
        )
    );
    assert_eq!(find("StatefulSet", "qdrant")["spec"]["serviceName"], "qdrant");

    // Every pod: the runtime's default seccomp profile, not root, a read-only root file
    // system; the idgw containers run the image's ENTRYPOINT (`idgw`) with a writable /tmp.
    for doc in docs {
        let o = &doc["object"];
        let pod = match doc["kind"].as_str().unwrap() {
            "Deployment" | "StatefulSet" => &o["spec"]["template"]["spec"],
            "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => continue,
        };
        let what = format!("{} {}", doc["kind"], doc["name"]);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{what}"
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true), "{what}");
        for c in pod["containers"].as_array().unwrap() {
            assert_eq!(
                c["securityContext"]["readOnlyRootFilesystem"],
                Value::Bool(true),
                "{what}"
            );
            assert_eq!(
                c["securityContext"]["allowPrivilegeEscalation"],
                Value::Bool(false),
                "{what}"
            );
            if c["image"] == "idgw" {
                assert_eq!(pod["securityContext"]["runAsUser"], 10001, "{what}: the image's USER");
                assert!(c["command"].is_null(), "{what}: the image's ENTRYPOINT runs");
                let mounts = c["volumeMounts"].as_array().unwrap();
                assert!(mounts.iter().any(|m| m["mountPath"] == "/tmp"), "{what}: TMPDIR");
            }
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
        ("idgw-poller-admin", "idgw-poller"),
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
            "idgw-poller.service",
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
        "idgw-poller.service",
    ]
    .into_iter()
    .map(|n| (n, std::fs::read_to_string(dir.join(n)).unwrap()))
    .collect();
    // Every unit of deploy/systemd is checked.
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".service") || n.ends_with(".timer"))
        .collect();
    on_disk.sort();
    let mut checked: Vec<String> = units.iter().map(|(n, _)| (*n).to_owned()).collect();
    checked.sort();
    assert_eq!(checked, on_disk);
    // The units run as the user idgw.sysusers creates, and write only its state directory.
    let sysusers = std::fs::read_to_string(dir.join("idgw.sysusers")).unwrap();
    let user = sysusers
        .lines()
        .find_map(|l| l.strip_prefix("u "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    let user_line = format!("User={user}");
    for (name, text) in units.iter().filter(|(n, _)| n.ends_with(".service")) {
        assert!(text.lines().any(|l| l == user_line), "{name}: {user_line}");
        assert!(text.lines().any(|l| l == "StateDirectory=idgw"), "{name}");
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
    // The poller produces to the topic (one unit, one instance: not a template).
    let poller = &units.iter().find(|(n, _)| *n == "idgw-poller.service").unwrap().1;
    for setting in [
        "Environment=IDGW_POLLER_ENABLED=true",
        "Environment=IDGW_POLLER_PRODUCE=true",
    ] {
        assert!(poller.lines().any(|l| l == setting), "idgw-poller.service: {setting}");
    }
    if have(
        "systemd-sysusers",
        &["--version"],
        "systemd-sysusers (Debian's systemd)",
    ) {
        // systemd-sysusers creates the user from the file, as at boot (in a scratch root).
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/sysusers.d")).unwrap();
        std::fs::write(root.path().join("etc/sysusers.d/idgw.conf"), &sysusers).unwrap();
        let o = Command::new("systemd-sysusers")
            .arg(format!("--root={}", root.path().display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
        let prefix = format!("{user}:");
        assert!(passwd.lines().any(|l| l.starts_with(prefix.as_str())), "{passwd}");
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

/// The instructions of a Containerfile, comments and blank lines dropped and continued lines
/// joined: (INSTRUCTION, the rest of it).
fn containerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let (op, rest) = current.split_once(' ').unwrap_or((current.as_str(), ""));
        out.push((op.to_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

/// No container engine is needed (nor, on this machine, reachable): the Containerfile is
/// read and checked for what deploy/k8s and the operations guide rely on.
#[test]
fn containerfile_builds_the_image_the_manifests_run() {
    let text = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    let all = containerfile_instructions(&text);
    let froms: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| op == "FROM")
        .map(|(i, _)| i)
        .collect();
    // Multi-stage: the binary is built in a Rust image and copied into one without a
    // toolchain.
    assert_eq!(froms.len(), 2, "{all:?}");
    let builder = &all[froms[0]..froms[1]];
    let runtime = &all[froms[1]..];
    assert!(
        builder[0].1.contains("/rust:") && builder[0].1.ends_with(" AS builder"),
        "{:?}",
        builder[0]
    );
    assert!(
        builder
            .iter()
            .any(|(op, rest)| op == "RUN" && rest.contains("cargo build --release --locked -p idgw --bin idgw")),
        "{builder:?}"
    );
    assert!(!runtime[0].1.contains("rust"), "{:?}", runtime[0]);
    let has = |op: &str, part: &str| runtime.iter().any(|(o, rest)| o == op && rest.contains(part));
    assert!(has("COPY", "--from=builder"), "{runtime:?}");
    assert!(
        has("COPY", "/usr/local/bin/idgw"),
        "where deploy/systemd and the guide put it"
    );
    assert!(
        has("RUN", "ca-certificates"),
        "TLS to Kafka, Okta, Qdrant and the issuer"
    );
    assert!(
        has("RUN", "ldd /usr/local/bin/idgw"),
        "a missing shared library fails the build"
    );
    // deploy/k8s runs the image's ENTRYPOINT with `args:` as uid 10001 (runAsNonRoot needs
    // a numeric USER), the last USER of the image.
    let entrypoint: Vec<&str> = runtime
        .iter()
        .filter(|(op, _)| op == "ENTRYPOINT")
        .map(|(_, rest)| rest.as_str())
        .collect();
    assert_eq!(entrypoint, [r#"["idgw"]"#]);
    let user = runtime
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, rest)| rest.as_str())
        .unwrap();
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric"));
    assert_eq!(uid, 10001);
    // Nothing is fetched from a URL into the image.
    for (op, rest) in &all {
        if op == "ADD" {
            assert!(!rest.contains("://"), "ADD {rest}");
        }
    }

    // The build context leaves out what is built or local, and keeps what the build reads
    // (docs/detections.md is compiled into the gateway; cargo needs tests/ and benches/).
    let ignore = std::fs::read_to_string(repo().join(".containerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in [".git", "target"] {
        assert!(patterns.contains(&needed), "{needed} is sent to the builder");
    }
    for kept in ["docs", "tests", "benches", "src", "deploy"] {
        assert!(!patterns.contains(&kept), "{kept} is needed by the build");
    }
}
