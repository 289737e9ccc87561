#!/usr/bin/env bash
# Installs dependencies, configures (warnings as errors), builds (-j2) and runs every test with
# CTest, then the fuzz smoke tests (scripts/fuzz.sh: each libFuzzer target for 10 s, in
# build-fuzz). Exit code = the tests' result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKENSIGN_WERROR=ON
cmake --build "$BUILD_DIR" -j2
status=0
(cd "$BUILD_DIR" && ctest --output-on-failure --timeout 600) || status=$?
bash scripts/fuzz.sh || status=$?
exit $status
