//! `idgw approve`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use idgw_gateway::GatewayConfig;
use idgw_gateway::actions::approval::{Approvals, Decision};
use idgw_gateway::auth::{self, Validator, device, scopes};

/// Approve (or reject) an action an agent asked for.
///
/// A destructive action answered `approval_required` names a transaction; a person other
/// than the one who asked runs this command to decide it. The approval is bound to that
/// exact call (tool, arguments, caller), expires, and is used once: the agent calls the
/// tool again with `approval_id`.
///
/// The approver is the principal of the token `idgw gateway login` stored, which needs the
/// scope mcp:actions:approve. With --dev-no-auth (demo gateways only) the approver is
/// `local:$USER`.
///
///   idgw approve --list --store ./store
///   idgw approve txn-3f0c… --store ./store
///   idgw approve txn-3f0c… --reject --audit-dir /var/log/idgw
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The transaction (approval id) to decide.
    #[arg(value_name = "TX", required_unless_present = "list")]
    transaction: Option<String>,
    /// Reject instead of approve.
    #[arg(long)]
    reject: bool,
    /// List pending requests.
    #[arg(long)]
    list: bool,
    /// The gateway's audit directory (AUDIT_LOG_DIR).
    #[arg(long, value_name = "DIR", conflicts_with = "store")]
    audit_dir: Option<PathBuf>,
    /// The gateway's store (its audit directory is <store>/audit unless configured).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Deployment configuration (TOML) with [gateway.auth] and [gateway.audit].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Approve as `local:$USER` without a token (for --dev-no-auth gateways).
    #[arg(long)]
    dev_no_auth: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The approver: the stored token's principal, which must hold mcp:actions:approve.
fn approver(config: &GatewayConfig, dev: bool) -> anyhow::Result<String> {
    if dev {
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        return Ok(format!("local:{user}"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let meta = auth::discover(&config.auth).await?;
        let validator = Validator::new(&config.auth, &meta.issuer, &meta.jwks_uri).map_err(anyhow::Error::msg)?;
        let token = device::current(&config.auth, &meta).await?.context(
            "no stored sign-in: run `idgw gateway login --tools rollback` first (or --dev-no-auth for a demo gateway)",
        )?;
        let p = validator
            .validate(&token.access_token)
            .await
            .context("the stored token")?;
        if !scopes::grants(&p.scopes, scopes::ACTIONS_APPROVE) {
            anyhow::bail!(
                "{} lacks the scope {}; sign in again with it",
                p.subject,
                scopes::ACTIONS_APPROVE
            );
        }
        Ok(p.subject)
    })
}

pub fn run(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let config = GatewayConfig::load(args.config.as_deref()).context("loading [gateway] configuration")?;
    let dir = match (&args.audit_dir, &args.store) {
        (Some(d), _) => d.clone(),
        (None, Some(store)) => config.audit_dir(store),
        (None, None) => config
            .audit
            .dir
            .clone()
            .context("name the gateway's audit directory: --audit-dir, --store or AUDIT_LOG_DIR")?,
    };
    let approvals = Approvals::new(&dir);
    if args.list {
        let pending = approvals.pending()?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&pending)?);
        } else if pending.is_empty() {
            println!("no pending approvals in {}", dir.display());
        } else {
            for r in pending {
                println!(
                    "{}  {} by {}  expires {}  arguments {}",
                    r.transaction_id,
                    r.tool,
                    r.principal,
                    r.expires_at.to_rfc3339(),
                    serde_json::Value::Object(r.arguments)
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tx = args.transaction.clone().unwrap_or_default();
    let request = approvals.get(&tx)?;
    let who = approver(&config, args.dev_no_auth)?;
    let decided = approvals.decide(&tx, &who, !args.reject)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&decided)?);
    } else {
        let verb = if decided.decision == Decision::Approved {
            "approved"
        } else {
            "rejected"
        };
        println!(
            "{verb} {tx}: {} on {} asked by {} (valid until {})",
            request.tool,
            request
                .arguments
                .get("user_login")
                .and_then(|v| v.as_str())
                .unwrap_or("-"),
            request.principal,
            request.expires_at.to_rfc3339()
        );
    }
    Ok(ExitCode::SUCCESS)
}
