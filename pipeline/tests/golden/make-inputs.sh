#!/usr/bin/env bash
# Regenerates the golden tests' input events from the generator (the expected alerts are
# then refreshed with `UPDATE_GOLDEN=1 cargo test --workspace --test pipeline golden`).
# Usage: pipeline/tests/golden/make-inputs.sh [path/to/idgw]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
idgw="${1:-${CARGO_TARGET_DIR:-target}/debug/idgw}"

make() { # folder users days scenario...
  local dir="$here/$1" users="$2" days="$3"
  shift 3
  local args=()
  for s in "$@"; do args+=(--scenario "$s"); done
  mkdir -p "$dir"
  "$idgw" generate --users "$users" --days "$days" --seed 11 "${args[@]}" \
    --out "$dir/events.ndjson.gz" --labels "$dir/labels.jsonl" >/dev/null
}

for d in impossible_travel brute_force mfa_fatigue session_hijack account_lockout \
  admin_privilege_grant api_token_created threat_insight mfa_tamper suspicious_activity_report \
  fastpass_phishing okta_risk_elevated anonymizing_proxy support_impersonation idp_lifecycle; do
  make "$d" 6 1 "$d"
done
# The detections from the public rule sets (issue 28). sanctioned_country_signin has no
# folder: it is off unless countries are configured (unit tests cover it).
for d in oauth_admin_scope group_admin_membership enroll_after_mfa_reset policy_weakened \
  refresh_token_reuse support_credential_reset admin_console_new_behavior app_password_revealed \
  scim_password_push org_under_attack rate_limit_violation unauthorized_app_access idp_signin \
  api_token_revoked; do
  make "$d" 6 1 "$d"
done
for l in own_mfa_reset stray_app_clicks; do
  make "lookalike_$l" 6 1 "$l"
done
# A spray needs more users than it tries.
make password_spray 30 1 password_spray
# The anomaly model needs history: a week of ordinary life, then a takeover.
# The shared model needs some tenant-wide sign-ins before it scores (rcf3's output_after).
make anomalous_signin 30 8 impossible_travel
# night_shift needs a tenant large enough to have night workers: the eval covers it.
for l in travel vpn_egress mobile_hop typos new_device; do
  make "lookalike_$l" 6 2 "$l"
done
# Shapes real tenants log: Identity Engine attempts, pushes that time out silently, and the
# look-alikes windowed detections meet in production.
make oie_brute_force 6 1 oie_brute_force
make silent_push_bombing 6 1 silent_push_bombing
# A slow spray needs more users than the long window's threshold.
make slow_spray 60 1 slow_spray
for l in oie_typos slow_push stale_password browser_update; do
  make "lookalike_$l" 6 2 "$l"
done
# An office needs colleagues in one city.
make lookalike_office_nat 200 1 office_nat
