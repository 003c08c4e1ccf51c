//! `idgw audit`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use idgw_gateway::audit::{self, Checkpoint, Problem, signed_head};

/// Exit code when the audit log does not verify.
pub const EXIT_TAMPERED: u8 = 5;

/// The gateway's audit log.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    Verify(VerifyArgs),
    Keygen(KeygenArgs),
}

/// Check the audit log's hash chain: every line is a record, positions run 0, 1, 2, …,
/// each record holds the SHA-256 of the line before, and the head file matches the end.
/// Detects edited, deleted, reordered and cut-off records. Also lists transactions whose
/// intent has no outcome (the gateway stopped mid-action).
///
/// The chain alone cannot show records cut from the end together with the head file. A
/// gateway with `[gateway.audit] signing_key` publishes its head, signed, outside the
/// directory: give that copy with --expect-head (and the public key), or read the Kafka
/// mirror with --against-kafka, and a log that no longer reaches them is reported.
///
/// Exit codes: 0 intact, 5 tampered or damaged, 1 unreadable.
///
///   idgw audit verify ./store/audit
///   idgw audit verify /var/log/idgw/audit.jsonl --json
///   idgw audit verify ./store/audit --expect-head /mnt/witness/audit.head.json --public-key audit-signing.pub.pem
///   idgw audit verify ./store/audit --against-kafka broker:9092 --public-key audit-signing.pub.pem
#[derive(Debug, Args)]
struct VerifyArgs {
    /// The audit directory (AUDIT_LOG_DIR) or its audit.jsonl.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// A signed head the gateway published ([gateway.audit] head_copy): the log must
    /// reach it with the same record there. Needs --public-key.
    #[arg(long, value_name = "FILE", requires = "public_key")]
    expect_head: Option<PathBuf>,
    /// The gateway's public key (SPKI PEM, as `idgw audit keygen` writes it), to check
    /// signed heads with.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Read the audit mirror at these Kafka brokers: every mirrored record must be in the
    /// log at its position, and the log must reach the last one.
    #[arg(long, value_name = "BROKERS")]
    against_kafka: Option<String>,
    /// The mirror's topic.
    #[arg(long, default_value = "idgw.audit", requires = "against_kafka")]
    topic: String,
    /// A configuration file whose `[kafka.security]` says how to reach the mirror (TLS,
    /// SASL), as for the pipeline; `IDGW_KAFKA_SECURITY_*` variables apply with or without
    /// it (an auditor's own credentials, e.g. IDGW_KAFKA_SECURITY_PASSWORD).
    #[arg(long, value_name = "FILE", requires = "against_kafka")]
    kafka_config: Option<PathBuf>,
    /// How long to wait for the brokers, in seconds.
    #[arg(long, default_value_t = 30)]
    kafka_timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Make an Ed25519 key pair for signing the audit head: the private key (PKCS#8 PEM,
/// mode 0600) at PATH for `[gateway.audit] signing_key`, and the public key (SPKI PEM) at
/// PATH.pub for auditors (`idgw audit verify --public-key`). Refuses to overwrite.
///
///   idgw audit keygen /etc/idgw/audit-signing.pem
#[derive(Debug, Args)]
struct KeygenArgs {
    /// Where the private key goes.
    #[arg(value_name = "PATH")]
    path: PathBuf,
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify(v) => verify(v),
        AuditCommand::Keygen(k) => keygen(k),
    }
}

fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let (private, public) = signed_head::generate().map_err(anyhow::Error::msg)?;
    let mut public_path = args.path.clone().into_os_string();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&args.path).with_context(|| {
        format!(
            "creating {} (an existing key is never overwritten)",
            args.path.display()
        )
    })?;
    f.write_all(private.as_bytes())?;
    f.sync_all()?;
    std::fs::write(&public_path, &public).with_context(|| format!("writing {}", public_path.display()))?;
    let key = signed_head::read_public_key(&public_path)?;
    println!(
        "private key: {} (keep it where only the gateway reads it)\npublic key:  {} (key id {})",
        args.path.display(),
        public_path.display(),
        signed_head::key_id(&key)
    );
    Ok(ExitCode::SUCCESS)
}

/// What the published heads and the mirror say the log must hold, and the signature
/// problems met reading them.
fn checkpoints(args: &VerifyArgs) -> anyhow::Result<(Vec<Checkpoint>, Vec<Problem>)> {
    let key = args
        .public_key
        .as_deref()
        .map(signed_head::read_public_key)
        .transpose()?;
    let mut points = Vec::new();
    let mut problems = Vec::new();
    if let Some(path) = &args.expect_head {
        let source = path.display().to_string();
        let head = signed_head::SignedHead::read(path)?;
        match key.as_ref().map(|k| head.verify(k)) {
            Some(Err(e)) => problems.push(Problem::Signature {
                source,
                detail: e.to_string(),
            }),
            _ => {
                eprintln!(
                    "the head published at {source} (signed {}, key {}) names {} records",
                    head.signed_at, head.key_id, head.records
                );
                points.push(Checkpoint::from_signed(&head, source));
            }
        }
    }
    if let Some(brokers) = &args.against_kafka {
        let security = idgw_pipeline::PipelineConfig::load(args.kafka_config.as_deref())
            .context("loading [kafka.security] for --against-kafka")?
            .kafka
            .security;
        let config = audit::mirror::MirrorConfig {
            brokers: brokers.clone(),
            topic: args.topic.clone(),
            security,
        };
        let source = format!("Kafka topic {} at {brokers}", args.topic);
        let mirrored =
            audit::mirror::read_all(&config, Duration::from_secs(args.kafka_timeout)).map_err(anyhow::Error::msg)?;
        for m in mirrored {
            let Ok(record) = serde_json::from_slice::<idgw_schemas::AuditRecord>(&m.line) else {
                problems.push(Problem::Signature {
                    source: source.clone(),
                    detail: "a mirrored message is not an audit record".into(),
                });
                continue;
            };
            match &key {
                // Without the key, every mirrored line is taken at its word.
                None => points.push(Checkpoint {
                    records: record.seq.saturating_add(1),
                    last_hash: audit::line_hash(&m.line),
                    source: source.clone(),
                }),
                // With it, only what the gateway signed counts: anyone who may produce to the
                // topic could add lines, and they must not make an intact log look cut. Lines
                // from before signing started carry no head and are passed over.
                Some(_) if m.head.is_none() => {}
                Some(key) => {
                    let signed = m
                        .head
                        .as_deref()
                        .ok_or_else(|| "no signed head".to_owned())
                        .and_then(|h| serde_json::from_slice::<signed_head::SignedHead>(h).map_err(|e| e.to_string()))
                        .and_then(|h| h.verify(key).map(|()| h).map_err(|e| e.to_string()))
                        .and_then(|h| {
                            (h.records == record.seq.saturating_add(1) && h.last_hash == audit::line_hash(&m.line))
                                .then_some(h)
                                .ok_or_else(|| "its signed head names another record".to_owned())
                        });
                    match signed {
                        Ok(h) => points.push(Checkpoint::from_signed(&h, source.clone())),
                        Err(detail) => problems.push(Problem::Signature {
                            source: format!("{source}, record {}", record.seq),
                            detail,
                        }),
                    }
                }
            }
        }
    }
    Ok((points, problems))
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if !args.path.exists() {
        anyhow::bail!("{} does not exist", args.path.display());
    }
    let (points, signature_problems) = checkpoints(&args)?;
    let mut report = audit::verify_against(&args.path, &points)?;
    report.problems.extend(signature_problems);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} records, {} transactions, last hash {}",
            report.records, report.transactions, report.last_hash
        );
        for tx in &report.open_intents {
            println!("open: {tx} has an intent and no outcome (the gateway stopped mid-action)");
        }
        if report.ok() {
            println!("OK: the chain is intact");
        } else {
            for p in &report.problems {
                println!("TAMPERED: {p}");
            }
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_TAMPERED)
    })
}
