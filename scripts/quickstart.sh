#!/usr/bin/env bash
# tokensign quickstart: installs deps, builds tokensignd + tokensignctl, starts
# `tokensignd --dev` (own SoftHSM token in ./.tokensign-dev), signs the DOMAIN.md scenario
# token (alice via app; agent-7 acting for planner; https://api.example; read; 600 s),
# prints it decoded and verifies it with PyJWT against the HTTP JWKS.
#   scripts/quickstart.sh [--foreground] [--state-dir DIR]
# Env: BUILD_DIR (default build), GRPC_LISTEN (127.0.0.1:50051), HTTP_LISTEN (127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

FOREGROUND=0
STATE_DIR="$ROOT/.tokensign-dev"
while [ $# -gt 0 ]; do
  case "$1" in
    --foreground) FOREGROUND=1 ;;
    --state-dir) STATE_DIR=$2; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "quickstart: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
BUILD_DIR="${BUILD_DIR:-build}"
GRPC_LISTEN="${GRPC_LISTEN:-127.0.0.1:50051}"
HTTP_LISTEN="${HTTP_LISTEN:-127.0.0.1:8080}"
PY=/usr/bin/python3  # Debian's python3 (python3-jwt, python3-grpcio), not a pyenv shim

echo "== 1/5 dependencies"
bash scripts/install-deps.sh

echo "== 2/5 build (tokensignd, tokensignctl)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" --target tokensignd tokensignctl -j2
DAEMON="$BUILD_DIR/signer/service/tokensignd"
CTL="$BUILD_DIR/tools/tokensignctl/tokensignctl"

PIDFILE="$STATE_DIR/tokensignd.pid"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "quickstart: tokensignd already running (pid $(cat "$PIDFILE")); stop it first:" >&2
  echo "  kill \$(cat $PIDFILE)" >&2
  exit 1
fi

DAEMON_ARGS=(--dev --state-dir "$STATE_DIR" --grpc-listen "$GRPC_LISTEN" --http-listen "$HTTP_LISTEN")
if [ "$FOREGROUND" = 1 ]; then
  echo "== 3/5 tokensignd --dev in the foreground (Ctrl-C stops it); sign from another shell:"
  echo "  $CTL --server $GRPC_LISTEN --insecure sign --issuer dev --sub alice --client-id app \\"
  echo "      --aud https://api.example --scope read --actor agent-7 --actor planner --ttl 600 --decode"
  exec "$DAEMON" "${DAEMON_ARGS[@]}"
fi

echo "== 3/5 start tokensignd --dev (state in $STATE_DIR)"
mkdir -p "$STATE_DIR"
nohup "$DAEMON" "${DAEMON_ARGS[@]}" >"$STATE_DIR/tokensignd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://$HTTP_LISTEN/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    echo "quickstart: tokensignd exited; its log:" >&2
    cat "$STATE_DIR/tokensignd.log" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "http://$HTTP_LISTEN/readyz" >/dev/null || { echo "quickstart: not ready" >&2; exit 1; }
echo "ready: http://$HTTP_LISTEN/readyz"

echo "== 4/5 sign: alice via app, agent-7 acting for planner, https://api.example, read, 600 s"
OUT=$("$CTL" --server "$GRPC_LISTEN" --insecure sign --issuer dev --sub alice --client-id app \
  --aud https://api.example --scope read --actor agent-7 --actor planner --ttl 600 --decode)
echo "$OUT"
TOKEN=$(echo "$OUT" | head -n1)

echo "== 5/5 verify with PyJWT against http://$HTTP_LISTEN/issuers/dev/jwks.json"
TOKEN="$TOKEN" JWKS_URL="http://$HTTP_LISTEN/issuers/dev/jwks.json" "$PY" - <<'PYEOF'
import json, os, urllib.request
import jwt
token = os.environ["TOKEN"]
jwks = json.load(urllib.request.urlopen(os.environ["JWKS_URL"]))
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks["keys"] if k["kid"] == kid)
claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[key["alg"]],
                    audience="https://api.example", issuer="https://issuer.example")
assert claims["sub"] == "alice" and claims["client_id"] == "app"
assert claims["act"] == {"sub": "agent-7", "act": {"sub": "planner"}}, claims["act"]
print("verified by PyJWT: kid=%s sub=%s act=%s" % (kid, claims["sub"], json.dumps(claims["act"])))
PYEOF

echo
echo "tokensignd --dev is running in the background (pid $(cat "$PIDFILE"), log $STATE_DIR/tokensignd.log)."
echo "Stop it with:  kill \$(cat $PIDFILE)"
