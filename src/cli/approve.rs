//! `idgw approve`: a client of the gateway's decision API.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use idgw_gateway::GatewayConfig;
use idgw_gateway::approvals::{ApprovalRequest, Decision};
use idgw_gateway::auth::{self, device};

/// Approve (or reject) an action an agent asked for.
///
/// A destructive action answered `approval_required` names a transaction; a person other
/// than the one who asked decides it, on the approval page the answer links to or with
/// this command. The command fetches the request, shows the exact call (tool, the Okta
/// user as Okta resolved it, requester, reasoning, evidence) and asks before deciding
/// (--yes answers for scripts). The decision goes to the gateway, which validates the
/// approver's token itself (the token `idgw gateway login` stored, holding
/// mcp:actions:approve), refuses the requester and checks the decision is about the call
/// shown. The approval is used once: the agent calls the tool again with `approval_id`.
///
/// The gateway is the one the approver configured: IDGW_GATEWAY_URL or
/// [gateway.approvals] public_url. There is no flag for it on purpose: the approver's
/// token goes only where the approver said, never to a URL an agent's message names.
///
/// --dev-no-auth sends an unauthenticated decision as `local:$USER`; only a gateway running
/// --dev-no-auth accepts it.
///
///   IDGW_GATEWAY_URL=https://idgw.example.com idgw approve --list
///   IDGW_GATEWAY_URL=https://idgw.example.com idgw approve txn-3f0c…
///   IDGW_GATEWAY_URL=https://idgw.example.com idgw approve txn-3f0c… --reject
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The transaction (approval id) to decide.
    #[arg(value_name = "TX", required_unless_present = "list")]
    transaction: Option<String>,
    /// Reject instead of approve.
    #[arg(long)]
    reject: bool,
    /// List the open requests.
    #[arg(long)]
    list: bool,
    /// Decide without asking (scripts; the call is still printed).
    #[arg(long)]
    yes: bool,
    /// Deployment configuration (TOML) with [gateway.auth] and [gateway.approvals].
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Decide without a token as `local:$USER` (accepted by --dev-no-auth gateways only).
    #[arg(long)]
    dev_no_auth: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The approver's current access token (refreshed when it can be).
async fn token(config: &GatewayConfig) -> anyhow::Result<String> {
    let meta = auth::discover(&config.auth).await?;
    let token = device::current(&config.auth, &meta)
        .await?
        .context("no stored sign-in: run `idgw gateway login` first (or --dev-no-auth for a demo gateway)")?;
    Ok(token.access_token)
}

fn dev_label() -> String {
    format!("local:{}", std::env::var("USER").unwrap_or_else(|_| "operator".into()))
}

/// Sends one request and reads the gateway's JSON answer; an error answer becomes the
/// error, in the gateway's words.
async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
    let resp = req
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .context("reaching the gateway")?;
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("the gateway answered HTTP {status} without JSON"))?;
    if !status.is_success() {
        let why = body.get("error").and_then(|e| e.as_str()).unwrap_or("no reason given");
        anyhow::bail!("the gateway refused (HTTP {status}): {why}");
    }
    Ok(body)
}

/// The call as the approver reads it.
fn describe(r: &ApprovalRequest) -> String {
    let mut text = format!(
        "{tool} on {login} ({id}{name}, status {status})\nrequested by {who}{client}\nreasoning: {reasoning}\nexpires: {expires}\n",
        tool = r.tool,
        login = r.target.login,
        id = r.target.id,
        name = r.target.name.as_deref().map(|n| format!(", {n}")).unwrap_or_default(),
        status = r.target.status,
        who = r.principal,
        client = r.client.as_deref().map(|c| format!(" via {c}")).unwrap_or_default(),
        reasoning = r.reasoning,
        expires = r.expires_at.to_rfc3339(),
    );
    for e in &r.evidence {
        text.push_str(&format!(
            "evidence: {} {} [{}] {} {}\n",
            e.kind,
            e.id,
            e.severity.as_deref().unwrap_or("-"),
            e.time.as_deref().unwrap_or(""),
            e.summary
        ));
    }
    text
}

pub fn run(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let config = GatewayConfig::load(args.config.as_deref()).context("loading [gateway] configuration")?;
    let base = std::env::var("IDGW_GATEWAY_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| config.approvals.public_url.clone())
        .context(
            "name your gateway: IDGW_GATEWAY_URL or [gateway.approvals] public_url (the approver's own configuration)",
        )?;
    let base = base.trim_end_matches('/').to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = reqwest::Client::new();
        let bearer = if args.dev_no_auth {
            None
        } else {
            Some(token(&config).await?)
        };
        let with_auth = |req: reqwest::RequestBuilder| match &bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        if args.list {
            let url = format!("{base}/approvals?dev_no_auth={}", args.dev_no_auth);
            let body = send(with_auth(client.get(url))).await?;
            let pending: Vec<ApprovalRequest> =
                serde_json::from_value(body.clone()).context("the gateway's list of approvals")?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else if pending.is_empty() {
                println!("no open approvals at {base}");
            } else {
                for r in pending {
                    println!(
                        "{}  {} on {} ({}) by {}  expires {}  {base}/approvals/{}",
                        r.transaction_id,
                        r.tool,
                        r.target.login,
                        r.target.id,
                        r.principal,
                        r.expires_at.to_rfc3339(),
                        r.transaction_id
                    );
                }
            }
            return anyhow::Ok(());
        }
        let tx = args.transaction.clone().unwrap_or_default();
        // What will be decided, shown before deciding and repeated with the decision.
        let url = format!("{base}/approvals/{tx}/request?dev_no_auth={}", args.dev_no_auth);
        let request: ApprovalRequest =
            serde_json::from_value(send(with_auth(client.get(url))).await?).context("the gateway's request")?;
        eprintln!("{}", describe(&request));
        if !args.yes {
            if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                anyhow::bail!("not a terminal: pass --yes to decide without being asked");
            }
            let verb = if args.reject { "Reject" } else { "Approve" };
            eprint!("{verb} this call? [y/N] ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                anyhow::bail!("not decided");
            }
        }
        let mut body = serde_json::json!({
            "approve": !args.reject,
            "arguments_hash": request.arguments_hash,
            "target_id": request.target.id,
        });
        if args.dev_no_auth {
            body["dev_no_auth_approver"] = dev_label().into();
        }
        let url = format!("{base}/approvals/{tx}/decision");
        let answer = send(with_auth(client.post(url)).json(&body)).await?;
        let decided: ApprovalRequest = serde_json::from_value(answer.clone()).context("the gateway's decision")?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            let verb = if decided.decision == Decision::Approved {
                "approved"
            } else {
                "rejected"
            };
            println!(
                "{verb} {tx} as {}: {} on {} ({}) asked by {} (valid until {})",
                decided.approver.as_ref().map_or("?", |a| a.subject.as_str()),
                decided.tool,
                decided.target.login,
                decided.target.id,
                decided.principal,
                decided.expires_at.to_rfc3339()
            );
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
