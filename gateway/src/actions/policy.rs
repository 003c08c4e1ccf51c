//! The guardrails in front of every action: stated reasoning and evidence, protected
//! accounts, blast-radius limits per principal and per gateway, dry-run, and which tools
//! need a human's approval.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// `[gateway.policy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Logins (case-insensitive) no action may touch: break-glass and service accounts.
    pub protected_users: Vec<String>,
    /// Groups (names, case-insensitive, or `00g…` ids) whose members no action may touch:
    /// executives, break-glass, service accounts (`IDGW_POLICY_PROTECTED_GROUPS`). Needs the
    /// Management API to read memberships; without it every action is refused while the
    /// list is set.
    pub protected_groups: Vec<String>,
    /// Refuse actions on holders of any Okta admin role (needs the Management API to see
    /// roles; with Workflows only, list admins in `protected_users`).
    pub protect_admins: bool,
    /// Actions one principal may take per rolling hour.
    pub max_actions_per_principal_per_hour: u32,
    /// Actions the gateway takes per rolling hour, all principals together.
    pub max_actions_per_hour: u32,
    /// Record and answer what would be done, and do nothing.
    pub dry_run: bool,
    /// Tools that run only with a human's approval of the exact call.
    pub approval_required: Vec<String>,
    /// How long an approval request stays open, in seconds.
    pub approval_ttl_s: u64,
    /// How long to wait for an approval asked by elicitation, in seconds.
    pub elicitation_timeout_s: u64,
    /// Shortest reasoning accepted, in characters.
    pub min_reasoning_chars: usize,
    /// What `notify_user` may send without an approval: name → text with `{blanks}`
    /// (`[gateway.policy.notify_templates]`; replaces the built-in two).
    pub notify_templates: std::collections::BTreeMap<String, String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            protected_users: Vec::new(),
            protected_groups: Vec::new(),
            protect_admins: true,
            max_actions_per_principal_per_hour: 10,
            max_actions_per_hour: 50,
            dry_run: false,
            approval_required: [
                "suspend_user",
                "unsuspend_user",
                "reset_password",
                "revoke_sessions",
                "rollback",
            ]
            .map(String::from)
            .to_vec(),
            approval_ttl_s: 900,
            elicitation_timeout_s: 300,
            min_reasoning_chars: 20,
            notify_templates: super::notify::default_templates(),
        }
    }
}

impl PolicyConfig {
    /// `IDGW_POLICY_*` overrides, which only tighten the file's policy: a process's
    /// environment can turn dry run and admin protection on, lower the limits and add
    /// protected users and groups, never the reverse (an agent that can start the gateway
    /// with its own variables gains nothing by it).
    pub fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
        fn set<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            name: &str,
            slot: &mut T,
        ) -> Result<(), String>
        where
            T::Err: std::fmt::Display,
        {
            if let Some(v) = get(name) {
                *slot = v.trim().parse().map_err(|e: T::Err| format!("{name}={v:?}: {e}"))?;
            }
            Ok(())
        }
        let (mut dry_run, mut protect_admins) = (false, false);
        set(get, "IDGW_POLICY_DRY_RUN", &mut dry_run)?;
        set(get, "IDGW_POLICY_PROTECT_ADMINS", &mut protect_admins)?;
        self.dry_run |= dry_run;
        self.protect_admins |= protect_admins;
        let (mut per_principal, mut per_hour) = (self.max_actions_per_principal_per_hour, self.max_actions_per_hour);
        set(
            get,
            "IDGW_POLICY_MAX_ACTIONS_PER_PRINCIPAL_PER_HOUR",
            &mut per_principal,
        )?;
        set(get, "IDGW_POLICY_MAX_ACTIONS_PER_HOUR", &mut per_hour)?;
        self.max_actions_per_principal_per_hour = self.max_actions_per_principal_per_hour.min(per_principal);
        self.max_actions_per_hour = self.max_actions_per_hour.min(per_hour);
        let list = |v: String| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let add = |to: &mut Vec<String>, v: String| {
            for item in list(v) {
                if !to.contains(&item) {
                    to.push(item);
                }
            }
        };
        if let Some(v) = get("IDGW_POLICY_PROTECTED_GROUPS") {
            add(&mut self.protected_groups, v);
        }
        if let Some(v) = get("IDGW_POLICY_PROTECTED_USERS") {
            add(&mut self.protected_users, v);
        }
        Ok(())
    }

    /// Whether `login` is on the protected list.
    pub fn is_protected(&self, login: &str) -> bool {
        self.protected_users.iter().any(|p| same_name(p, login))
    }

    /// The protected group among `groups` (id, name), if any.
    pub fn protected_group<'g>(&self, groups: &'g [(String, String)]) -> Option<&'g (String, String)> {
        groups
            .iter()
            .find(|(id, name)| self.protected_groups.iter().any(|p| p == id || same_name(p, name)))
    }

    /// Whether `tool` needs approval.
    pub fn needs_approval(&self, tool: &str) -> bool {
        self.approval_required.iter().any(|t| t == tool)
    }
}

/// Logins and group names compare without case, in every script (protected entries, the
/// user evidence is about, the user a rollback undoes): a protected entry written
/// `Élise.Martin@…` protects the account Okta holds as `élise.martin@…` (ASCII-only folding
/// left it unprotected).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// Actions taken in the last hour, per principal and in all.
#[derive(Debug, Default)]
pub struct BlastRadius {
    taken: Mutex<VecDeque<(DateTime<Utc>, String)>>,
}

impl BlastRadius {
    /// Starts from the actions already taken (read from the audit log at start, so a
    /// restart does not reset the limits).
    pub fn with_history(history: impl IntoIterator<Item = (DateTime<Utc>, String)>) -> Self {
        let mut v: Vec<_> = history.into_iter().collect();
        v.sort();
        BlastRadius {
            taken: Mutex::new(v.into()),
        }
    }

    /// Reserves one action for `principal`, or says which limit it would exceed.
    pub fn reserve(&self, principal: &str, policy: &PolicyConfig) -> Result<(), String> {
        let now = Utc::now();
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        while taken.front().is_some_and(|(t, _)| now - *t > Duration::hours(1)) {
            taken.pop_front();
        }
        if taken.len() >= policy.max_actions_per_hour as usize {
            return Err(format!(
                "the gateway has taken {} actions in the last hour, its limit (policy.max_actions_per_hour); a human must act directly or raise the limit",
                taken.len()
            ));
        }
        let mine = taken.iter().filter(|(_, p)| p == principal).count();
        if mine >= policy.max_actions_per_principal_per_hour as usize {
            return Err(format!(
                "{principal} has taken {mine} actions in the last hour, the limit per principal (policy.max_actions_per_principal_per_hour)"
            ));
        }
        taken.push_back((now, principal.to_owned()));
        Ok(())
    }

    /// Gives back a reservation whose action did not run.
    pub fn release(&self, principal: &str) {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = taken.iter().rposition(|(_, p)| p == principal) {
            taken.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_names_match_in_any_case_of_any_script() {
        let policy = PolicyConfig {
            protected_users: vec!["ÉLISE.MARTIN@example.com".into(), "Ørjan@example.com".into()],
            protected_groups: vec!["Direção".into()],
            ..PolicyConfig::default()
        };
        assert!(policy.is_protected("élise.martin@example.com"));
        assert!(policy.is_protected("ørjan@EXAMPLE.com"));
        assert!(!policy.is_protected("elise.martin@example.com"), "another account");
        let groups = [("00g1".to_owned(), "DIREÇÃO".to_owned())];
        assert!(policy.protected_group(&groups).is_some());
    }

    #[test]
    fn limits_per_principal_and_in_all() {
        let policy = PolicyConfig {
            max_actions_per_principal_per_hour: 2,
            max_actions_per_hour: 3,
            ..PolicyConfig::default()
        };
        let b = BlastRadius::default();
        b.reserve("a", &policy).unwrap();
        b.reserve("a", &policy).unwrap();
        assert!(b.reserve("a", &policy).unwrap_err().contains("per principal"));
        b.reserve("b", &policy).unwrap();
        assert!(b.reserve("c", &policy).unwrap_err().contains("max_actions_per_hour"));
        b.release("b");
        b.reserve("c", &policy).unwrap();
        // History older than an hour does not count.
        let old = Utc::now() - Duration::hours(2);
        let b = BlastRadius::with_history([(old, "a".to_owned()), (old, "a".to_owned())]);
        b.reserve("a", &policy).unwrap();
    }

    /// The environment tightens the policy and never loosens it.
    #[test]
    fn the_environment_only_tightens_the_policy() {
        let mut p = PolicyConfig {
            dry_run: true,
            protect_admins: true,
            max_actions_per_hour: 5,
            protected_users: vec!["breakglass@example.com".into()],
            ..PolicyConfig::default()
        };
        let env = |n: &str| match n {
            "IDGW_POLICY_DRY_RUN" | "IDGW_POLICY_PROTECT_ADMINS" => Some("false".to_owned()),
            "IDGW_POLICY_MAX_ACTIONS_PER_HOUR" => Some("500".to_owned()),
            "IDGW_POLICY_PROTECTED_USERS" => Some("ceo@example.com".to_owned()),
            _ => None,
        };
        p.apply_env(&env).unwrap();
        assert!(p.dry_run && p.protect_admins, "not switched off");
        assert_eq!(p.max_actions_per_hour, 5, "not raised");
        assert_eq!(
            p.protected_users,
            ["breakglass@example.com", "ceo@example.com"],
            "added to, not replaced"
        );
        let mut q = PolicyConfig::default();
        q.apply_env(&|n: &str| match n {
            "IDGW_POLICY_DRY_RUN" => Some("true".to_owned()),
            "IDGW_POLICY_MAX_ACTIONS_PER_HOUR" => Some("2".to_owned()),
            _ => None,
        })
        .unwrap();
        assert!(q.dry_run);
        assert_eq!(q.max_actions_per_hour, 2);
    }

    #[test]
    fn protected_logins_ignore_case() {
        let p = PolicyConfig {
            protected_users: vec!["BreakGlass@example.com".into()],
            ..PolicyConfig::default()
        };
        assert!(p.is_protected("breakglass@EXAMPLE.com"));
        assert!(!p.is_protected("someone@example.com"));
        assert!(p.needs_approval("suspend_user"));
        assert!(!p.needs_approval("notify_user"));
    }
}
