#!/usr/bin/env bash
# Creates a fresh SoftHSM2 token in its own directory.
#   scripts/softhsm-init.sh DIR LABEL
# The user PIN and SO PIN are read from the environment (TOKENSIGN_PIN, TOKENSIGN_SO_PIN)
# so they never appear in argv of this script's caller. Writes DIR/softhsm2.conf and
# DIR/tokens/; prints `export SOFTHSM2_CONF=...` for the caller to eval.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: TOKENSIGN_PIN=... TOKENSIGN_SO_PIN=... $0 DIR LABEL" >&2
  exit 2
fi
dir=$1 label=$2
: "${TOKENSIGN_PIN:?TOKENSIGN_PIN must hold the user PIN (4..255 chars)}"
: "${TOKENSIGN_SO_PIN:?TOKENSIGN_SO_PIN must hold the SO PIN (4..255 chars)}"
mkdir -p "$dir/tokens"
chmod 700 "$dir" "$dir/tokens"
dir=$(cd "$dir" && pwd)
cat > "$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF="$dir/softhsm2.conf"
# softhsm2-util only takes PINs on its command line; it is the only place they appear,
# in a short-lived child of this script, never in tokensign's own processes.
softhsm2-util --init-token --free --label "$label" \
  --pin "$TOKENSIGN_PIN" --so-pin "$TOKENSIGN_SO_PIN" >/dev/null
echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
