//! The live reads and the audit-log read of the action service.

use super::{Actions, AuditLogArgs, AuditLogPage, LiveEvents, SearchLogsArgs, UserInfo};
use crate::okta::LogQuery;

impl Actions {
    /// `get_audit_log`: newest first.
    pub fn audit_records(&self, args: &AuditLogArgs) -> Result<AuditLogPage, String> {
        let limit = args.limit.unwrap_or(50).clamp(1, 500) as usize;
        let login = args.user_login.as_deref().map(str::to_ascii_lowercase);
        let mut records = self
            .audit
            .read(|r| {
                login
                    .as_deref()
                    .is_none_or(|l| r.user.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(l)))
            })
            .map_err(|e| e.to_string())?;
        records.reverse();
        records.truncate(limit);
        Ok(AuditLogPage { records })
    }

    /// `read_user`.
    pub async fn read_user(&self, login: &str) -> Result<UserInfo, String> {
        let (user, _) = self.okta.read_user(login.trim()).await.map_err(|e| e.to_string())?;
        let admin_roles = self.okta.admin_roles(&user.id).await.map_err(|e| e.to_string())?;
        let protected = self.policy.is_protected(&user.login)
            || (self.policy.protect_admins && admin_roles.as_ref().is_some_and(|r| !r.is_empty()));
        Ok(UserInfo {
            user,
            admin_roles,
            protected,
        })
    }

    /// `search_logs`.
    pub async fn search_logs(&self, args: SearchLogsArgs) -> Result<LiveEvents, String> {
        let query = LogQuery {
            filter: args.filter,
            q: args.q,
            since: args.since,
            until: args.until,
            user_login: args.user_login,
            limit: args.limit.unwrap_or(100).clamp(1, 1000) as usize,
        };
        let (events, okta_request_ids) = self.okta.search_logs(&query).await.map_err(|e| e.to_string())?;
        Ok(LiveEvents {
            count: events.len(),
            events,
            okta_request_ids,
        })
    }
}
