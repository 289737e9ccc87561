#!/usr/bin/env bash
# Installs dependencies, configures (warnings as errors), builds (-j2) and runs every test with
# CTest, then the fuzz smoke tests (scripts/fuzz.sh: each libFuzzer target for 10 s, in
# build-fuzz). Exit code = the tests' result.
#
#   scripts/test.sh                      the suite in build (BUILD_DIR), then the fuzz smoke
#   scripts/test.sh --sanitize=address   the whole suite under ASan+LSan+UBSan in build-asan
#   scripts/test.sh --sanitize=thread    the whole suite under TSan in build-tsan
#
# A sanitizer run configures its own build directory (SANITIZE_BUILD_DIR overrides it) with
# -DTOKENSIGN_SANITIZE=KIND; the runtime options and the checked-in suppressions
# (tests/sanitizers/*.supp, each with its reason) apply to every CTest run there. Extra CTest
# arguments go after "--", e.g. scripts/test.sh --sanitize=thread -- -R hsm_ (CTest runs -j2).
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=""
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize=address | --sanitize=thread) sanitize="${1#--sanitize=}" ;;
    --) shift; ctest_args=("$@"); break ;;
    *)
      echo "usage: scripts/test.sh [--sanitize=address|thread] [-- CTEST_ARGS...]" >&2
      exit 2
      ;;
  esac
  shift
done

bash scripts/install-deps.sh

if [ -n "$sanitize" ]; then
  case "$sanitize" in
    address) default_dir=build-asan ;;
    thread) default_dir=build-tsan ;;
  esac
  dir="${SANITIZE_BUILD_DIR:-$default_dir}"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKENSIGN_WERROR=ON \
    -DTOKENSIGN_SANITIZE="$sanitize"
  # An instrumented build is slow: it goes in target groups (libraries, programs, then the rest),
  # each -j2, so on a shared machine TOKENSIGN_BUILD_LOCK=/path/to/lockfile lets other builds
  # take that lock (flock) between groups.
  lock=()
  if [ -n "${TOKENSIGN_BUILD_LOCK:-}" ]; then lock=(flock "$TOKENSIGN_BUILD_LOCK"); fi
  start=$SECONDS
  for group in "tokensign_proto tokensign_crypto tokensign_hsm tokensign_provider" \
               "tokensign_audit tokensign_token tokensign_keyset" \
               "tokensign_service_config tokensign_http tokensign_service" \
               "tokensignd tokensignctl" all; do
    # shellcheck disable=SC2086  # a group is a list of targets
    "${lock[@]}" cmake --build "$dir" -j2 --target $group
  done
  echo "test.sh: $sanitize build took $((SECONDS - start)) s"
  start=$SECONDS
  status=0
  # -j2 first: a -j in CTEST_ARGS comes later and wins.
  (cd "$dir" && ctest -j2 --output-on-failure --timeout 1800 "${ctest_args[@]}") || status=$?
  echo "test.sh: $sanitize tests took $((SECONDS - start)) s"
  exit $status
fi

BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKENSIGN_WERROR=ON
cmake --build "$BUILD_DIR" -j2
status=0
(cd "$BUILD_DIR" && ctest --output-on-failure --timeout 600 "${ctest_args[@]}") || status=$?
bash scripts/fuzz.sh || status=$?
exit $status
