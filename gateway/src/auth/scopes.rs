//! Which scope each tool needs: the reference design's scopes (design.md, "Compatibility")
//! and ours for capabilities it did not have, in one table (docs/mcp-tools.md repeats it).

/// Read the System Log, alerts and stored events.
pub const LOGS_READ: &str = "mcp:logs:read";
/// Read a user's Okta profile and status.
pub const USER_READ_BASIC: &str = "mcp:user:read:basic";
/// Read a user's full identity state (risk, reasons, locations, devices); implies basic.
pub const USER_READ_FULL: &str = "mcp:user:read:full";
/// Run the analytics: detections on demand, similar users.
pub const ANALYZE_ML: &str = "mcp:analyze:ml";
/// Change a user's lifecycle: suspend, unsuspend, reset password.
pub const USER_WRITE: &str = "mcp:user:write";
/// One read-only SQL query over the store.
pub const SQL_READ: &str = "mcp:sql:read";
/// Read the gateway's audit log.
pub const AUDIT_READ: &str = "mcp:audit:read";
/// Send a user a notification.
pub const USER_NOTIFY: &str = "mcp:user:notify";
/// Revoke a user's sessions.
pub const SESSIONS_REVOKE: &str = "mcp:sessions:revoke";
/// Roll back an earlier action (the inverse action's own scope is needed as well).
pub const ACTIONS_ROLLBACK: &str = "mcp:actions:rollback";
/// Approve or reject another principal's pending action (`idgw approve`).
pub const ACTIONS_APPROVE: &str = "mcp:actions:approve";

/// Every scope, for discovery documents and `initiate_device_auth`.
pub const ALL: [&str; 11] = [
    LOGS_READ,
    USER_READ_BASIC,
    USER_READ_FULL,
    ANALYZE_ML,
    USER_WRITE,
    SQL_READ,
    AUDIT_READ,
    USER_NOTIFY,
    SESSIONS_REVOKE,
    ACTIONS_ROLLBACK,
    ACTIONS_APPROVE,
];

/// The scope `tool` needs; `None` for tools anyone connected may call (the device-flow
/// sign-in tools), and for unknown names (which the router rejects anyway).
pub fn required(tool: &str) -> Option<&'static str> {
    Some(match tool {
        "list_alerts" | "explain_alert" | "search_events" | "search_logs" => LOGS_READ,
        "read_user" => USER_READ_BASIC,
        "analyze_identity_state" => USER_READ_FULL,
        "detect_impossible_travel" | "detect_anomalies_ml" | "similar_users" => ANALYZE_ML,
        "query_sql" => SQL_READ,
        "suspend_user" | "unsuspend_user" | "reactivate_user" | "reset_password" => USER_WRITE,
        "revoke_sessions" => SESSIONS_REVOKE,
        "notify_user" => USER_NOTIFY,
        "get_audit_log" => AUDIT_READ,
        "rollback" => ACTIONS_ROLLBACK,
        _ => return None,
    })
}

/// What calling a tool takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// This scope.
    Scope(&'static str),
    /// Nothing: the stdio sign-in tools, listed only where the device flow applies.
    SignIn,
    /// The tool has no entry in the table: refused and hidden (the table fails closed).
    Unlisted,
}

/// What `tool` needs.
pub fn need(tool: &str) -> Need {
    match required(tool) {
        Some(s) => Need::Scope(s),
        None if matches!(tool, "initiate_device_auth" | "complete_device_auth") => Need::SignIn,
        None => Need::Unlisted,
    }
}

/// Whether `held` grants `needed` (`mcp:user:read:full` includes `mcp:user:read:basic`).
pub fn grants<S: AsRef<str>>(held: &[S], needed: &str) -> bool {
    held.iter().any(|s| {
        let s = s.as_ref();
        s == needed || (needed == USER_READ_BASIC && s == USER_READ_FULL)
    })
}

/// The union of the scopes `tools` need, in table order (for `initiate_device_auth`).
pub fn for_tools<S: AsRef<str>>(tools: &[S]) -> Result<Vec<&'static str>, String> {
    let mut out = Vec::new();
    for t in tools {
        let t = t.as_ref();
        let Some(s) = required(t) else {
            if matches!(t, "initiate_device_auth" | "complete_device_auth") {
                continue;
            }
            return Err(format!("unknown tool {t:?}; tools/list names them"));
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.sort_by_key(|s| ALL.iter().position(|a| a == s));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_scopes_keep_their_tools() {
        assert_eq!(required("suspend_user"), Some("mcp:user:write"));
        assert_eq!(required("reactivate_user"), Some("mcp:user:write"));
        assert_eq!(required("search_logs"), Some("mcp:logs:read"));
        assert_eq!(required("detect_anomalies_ml"), Some("mcp:analyze:ml"));
        assert_eq!(required("read_user"), Some("mcp:user:read:basic"));
        assert_eq!(required("initiate_device_auth"), None);
    }

    #[test]
    fn full_read_implies_basic_and_nothing_else() {
        assert!(grants(&["mcp:user:read:full"], USER_READ_BASIC));
        assert!(!grants(&["mcp:user:read:basic"], USER_READ_FULL));
        assert!(!grants(&["mcp:user:read:full"], USER_WRITE));
        assert!(!grants::<&str>(&[], LOGS_READ));
    }

    #[test]
    fn device_auth_asks_for_the_union() {
        let s = for_tools(&["suspend_user", "list_alerts", "unsuspend_user", "initiate_device_auth"]).unwrap();
        assert_eq!(s, vec![LOGS_READ, USER_WRITE]);
        assert!(for_tools(&["drop_database"]).unwrap_err().contains("unknown tool"));
    }
}
