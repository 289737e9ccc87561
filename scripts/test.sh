#!/usr/bin/env bash
# Installs dependencies, configures, builds (-j2) and runs every test with CTest.
# Exit code = the tests' result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKENSIGN_WERROR=ON
cmake --build "$BUILD_DIR" -j2
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 600
