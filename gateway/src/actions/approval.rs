//! Human approval bound to one exact call: the tool, the SHA-256 of its canonical
//! arguments, the principal who asked, and an expiry. An approval is used once.
//!
//! Out-of-band approvals live as files under `<audit dir>/approvals/`, so `idgw approve TX`
//! (run by a different principal, in another process) can decide them: `TX.json` while it
//! exists; using it renames it to `TX.used.json`, and a rename succeeds once, which makes
//! the approval single-use even for parallel calls.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The argument names that do not change what a call does, and so are not part of what
/// an approval is bound to.
const UNBOUND_ARGUMENTS: [&str; 2] = ["approval_id", "dry_run"];

/// SHA-256 (hex) of the tool name and its arguments with keys sorted at every level.
pub fn arguments_hash(tool: &str, arguments: &Map<String, Value>) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    canonical(&m[k.as_str()], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let bound: Map<String, Value> = arguments
        .iter()
        .filter(|(k, _)| !UNBOUND_ARGUMENTS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut text = String::new();
    canonical(&Value::Object(bound), &mut text);
    let digest = Sha256::new()
        .chain_update(tool.as_bytes())
        .chain_update([0])
        .chain_update(text.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Pending,
    Approved,
    Rejected,
}

/// One approval request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The transaction the request belongs to (its id is the approval id).
    pub transaction_id: String,
    pub tool: String,
    pub arguments_hash: String,
    /// The arguments, for the human to read.
    pub arguments: Map<String, Value>,
    /// Who asked.
    pub principal: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decision: Decision,
    #[serde(default)]
    pub approver: Option<String>,
    #[serde(default)]
    pub decided_at: Option<DateTime<Utc>>,
}

/// Why an approval cannot be given or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("no pending approval {0} (unknown, already used, or for another gateway's audit directory)")]
    Unknown(String),
    #[error("approval {0} has expired; call the tool again to ask anew")]
    Expired(String),
    #[error("approval {0} is still pending: a human must run `idgw approve {0}`")]
    Pending(String),
    #[error("approval {0} was rejected by {1}")]
    Rejected(String, String),
    #[error("approval {0} was given for another call (tool, arguments or caller differ); ask anew for this one")]
    Mismatch(String),
    #[error("approval {0} cannot be decided by the principal who asked for it ({1}); another person must approve")]
    SelfApproval(String, String),
    #[error("approval {0} was already decided")]
    Decided(String),
    #[error("approvals directory {0}: {1}")]
    Io(String, String),
}

/// The approvals directory.
#[derive(Debug, Clone)]
pub struct Approvals {
    dir: PathBuf,
}

impl Approvals {
    /// Approvals under `audit_dir/approvals`.
    pub fn new(audit_dir: &Path) -> Self {
        Approvals {
            dir: audit_dir.join("approvals"),
        }
    }

    fn io(&self, e: impl std::fmt::Display) -> ApprovalError {
        ApprovalError::Io(self.dir.display().to_string(), e.to_string())
    }

    fn path(&self, tx: &str) -> Result<PathBuf, ApprovalError> {
        // Ids become file names: only the characters our ids use.
        if tx.is_empty() || !tx.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ApprovalError::Unknown(tx.to_owned()));
        }
        Ok(self.dir.join(format!("{tx}.json")))
    }

    fn write(&self, r: &ApprovalRequest) -> Result<(), ApprovalError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
        let path = self.path(&r.transaction_id)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(r).map_err(|e| self.io(e))?).map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &path).map_err(|e| self.io(e))
    }

    /// Reads a request.
    pub fn get(&self, tx: &str) -> Result<ApprovalRequest, ApprovalError> {
        let path = self.path(tx)?;
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApprovalError::Unknown(tx.to_owned()),
            _ => self.io(e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| self.io(e))
    }

    /// Records a new pending request.
    pub fn request(&self, r: &ApprovalRequest) -> Result<(), ApprovalError> {
        self.write(r)
    }

    /// Pending requests, oldest first (for `idgw approve --list`).
    pub fn pending(&self) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(tx) = name.strip_suffix(".json")
                && !tx.ends_with(".used")
                && let Ok(r) = self.get(tx)
                && r.decision == Decision::Pending
            {
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }

    /// A human's decision (`idgw approve`): only on a pending, unexpired request, and never
    /// by the principal who asked.
    pub fn decide(&self, tx: &str, approver: &str, approve: bool) -> Result<ApprovalRequest, ApprovalError> {
        let mut r = self.get(tx)?;
        if r.decision != Decision::Pending {
            return Err(ApprovalError::Decided(tx.to_owned()));
        }
        if Utc::now() > r.expires_at {
            return Err(ApprovalError::Expired(tx.to_owned()));
        }
        if approver == r.principal {
            return Err(ApprovalError::SelfApproval(tx.to_owned(), approver.to_owned()));
        }
        r.decision = if approve {
            Decision::Approved
        } else {
            Decision::Rejected
        };
        r.approver = Some(approver.to_owned());
        r.decided_at = Some(Utc::now());
        self.write(&r)?;
        Ok(r)
    }

    /// Whether the approval can be used for this exact call (without using it).
    pub fn check(
        &self,
        tx: &str,
        tool: &str,
        arguments_hash: &str,
        principal: &str,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let r = self.get(tx)?;
        if r.tool != tool || r.arguments_hash != arguments_hash || r.principal != principal {
            return Err(ApprovalError::Mismatch(tx.to_owned()));
        }
        match r.decision {
            Decision::Pending => return Err(ApprovalError::Pending(tx.to_owned())),
            Decision::Rejected => {
                return Err(ApprovalError::Rejected(
                    tx.to_owned(),
                    r.approver.clone().unwrap_or_default(),
                ));
            }
            Decision::Approved => {}
        }
        if Utc::now() > r.expires_at {
            return Err(ApprovalError::Expired(tx.to_owned()));
        }
        Ok(r)
    }

    /// Uses an approval for this exact call, once.
    pub fn consume(
        &self,
        tx: &str,
        tool: &str,
        arguments_hash: &str,
        principal: &str,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let r = self.check(tx, tool, arguments_hash, principal)?;
        let path = self.path(tx)?;
        let used = self.dir.join(format!("{tx}.used.json"));
        // The claim: of parallel users, one rename succeeds.
        std::fs::rename(&path, &used).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApprovalError::Unknown(tx.to_owned()),
            _ => self.io(e),
        })?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn request(a: &Approvals, tx: &str, ttl_s: i64) -> ApprovalRequest {
        let arguments = args(json!({"user_login": "a@example.com", "reasoning": "r", "evidence": ["x"]}));
        let r = ApprovalRequest {
            transaction_id: tx.into(),
            tool: "suspend_user".into(),
            arguments_hash: arguments_hash("suspend_user", &arguments),
            arguments,
            principal: "agent@example.com".into(),
            created_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::seconds(ttl_s),
            decision: Decision::Pending,
            approver: None,
            decided_at: None,
        };
        a.request(&r).unwrap();
        r
    }

    #[test]
    fn the_hash_ignores_key_order_and_unbound_arguments_only() {
        let a = args(json!({"user_login": "a", "evidence": ["x", "y"], "reasoning": "r"}));
        let b = args(json!({"reasoning": "r", "approval_id": "txn-1", "user_login": "a", "evidence": ["x", "y"]}));
        assert_eq!(arguments_hash("suspend_user", &a), arguments_hash("suspend_user", &b));
        let c = args(json!({"user_login": "b", "evidence": ["x", "y"], "reasoning": "r"}));
        assert_ne!(arguments_hash("suspend_user", &a), arguments_hash("suspend_user", &c));
        let d = args(json!({"user_login": "a", "evidence": ["y", "x"], "reasoning": "r"}));
        assert_ne!(arguments_hash("suspend_user", &a), arguments_hash("suspend_user", &d));
        assert_ne!(arguments_hash("suspend_user", &a), arguments_hash("reset_password", &a));
    }

    #[test]
    fn approved_once_for_the_exact_call_by_someone_else() {
        let d = tempfile::tempdir().unwrap();
        let a = Approvals::new(d.path());
        let r = request(&a, "txn-1", 600);
        assert_eq!(a.pending().unwrap().len(), 1);
        assert!(matches!(
            a.consume("txn-1", &r.tool, &r.arguments_hash, &r.principal),
            Err(ApprovalError::Pending(_))
        ));
        assert!(matches!(
            a.decide("txn-1", "agent@example.com", true),
            Err(ApprovalError::SelfApproval(..))
        ));
        a.decide("txn-1", "analyst@example.com", true).unwrap();
        assert!(matches!(
            a.decide("txn-1", "other", false),
            Err(ApprovalError::Decided(_))
        ));
        // Replayed for other arguments, another tool or another principal: refused.
        assert!(matches!(
            a.consume("txn-1", &r.tool, "0000", &r.principal),
            Err(ApprovalError::Mismatch(_))
        ));
        assert!(matches!(
            a.consume("txn-1", "reset_password", &r.arguments_hash, &r.principal),
            Err(ApprovalError::Mismatch(_))
        ));
        assert!(matches!(
            a.consume("txn-1", &r.tool, &r.arguments_hash, "intruder"),
            Err(ApprovalError::Mismatch(_))
        ));
        let used = a.consume("txn-1", &r.tool, &r.arguments_hash, &r.principal).unwrap();
        assert_eq!(used.approver.as_deref(), Some("analyst@example.com"));
        // Single use.
        assert!(matches!(
            a.consume("txn-1", &r.tool, &r.arguments_hash, &r.principal),
            Err(ApprovalError::Unknown(_))
        ));
        assert!(a.pending().unwrap().is_empty());
    }

    #[test]
    fn rejected_and_expired_requests_are_not_usable() {
        let d = tempfile::tempdir().unwrap();
        let a = Approvals::new(d.path());
        let r = request(&a, "txn-2", 600);
        a.decide("txn-2", "analyst", false).unwrap();
        assert!(matches!(
            a.consume("txn-2", &r.tool, &r.arguments_hash, &r.principal),
            Err(ApprovalError::Rejected(..))
        ));
        request(&a, "txn-3", -1);
        assert!(matches!(
            a.decide("txn-3", "analyst", true),
            Err(ApprovalError::Expired(_))
        ));
        assert!(matches!(a.get("../etc/passwd"), Err(ApprovalError::Unknown(_))));
    }
}
