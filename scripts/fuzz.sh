#!/usr/bin/env bash
# Builds tokensign's libFuzzer targets (tests/fuzz) with clang in a build directory of their
# own and runs them.
#
#   scripts/fuzz.sh                      smoke: every target for TOKENSIGN_FUZZ_SECONDS (10) s,
#                                        as the CTest tests labelled "fuzz", and the token and
#                                        audit unit tests under the same ASan+UBSan (CI runs this)
#   scripts/fuzz.sh --run SECONDS [T..]  long run of each target T (default: all) for SECONDS,
#                                        keeping the grown corpus in $FUZZ_BUILD_DIR/tests/fuzz/
#                                        corpus/T; prints the execs each reached
#   FUZZ_RUNS=N scripts/fuzz.sh --run SECONDS [T..]
#                                        the same, each target stopping at N execs
#                                        (or SECONDS, whichever comes first)
#
# Needs clang and libFuzzer (Debian: clang, libclang-rt-14-dev; scripts/install-deps.sh installs
# them). Without them it skips with a message, except with CI=true, where it fails.
# Environment: FUZZ_BUILD_DIR (default build-fuzz), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${FUZZ_BUILD_DIR:-build-fuzz}"
JOBS="${JOBS:-2}"

missing() {
  if [ "${CI:-}" = "true" ]; then
    echo "fuzz.sh: FAIL: $1 (CI=true: a missing fuzzing toolchain is an error)" >&2
    exit 1
  fi
  echo "fuzz.sh: SKIP: $1; install clang and libclang-rt-14-dev to fuzz" >&2
  exit 0
}

command -v clang++ >/dev/null 2>&1 || missing "clang++ not found"
probe_dir="$(mktemp -d)"
trap 'rm -rf "$probe_dir"' EXIT
printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
  > "$probe_dir/probe.cc"
clang++ -fsanitize=fuzzer "$probe_dir/probe.cc" -o "$probe_dir/probe" 2>/dev/null ||
  missing "clang++ -fsanitize=fuzzer does not link (libFuzzer runtime missing)"

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DTOKENSIGN_FUZZ=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS" --target tokensign_fuzzers tokensign_sanitized_tests

if [ "${1:-}" != "--run" ]; then
  cd "$BUILD_DIR"
  exec ctest --output-on-failure  # the fuzz smoke runs and the sanitized unit tests
fi

seconds="${2:?usage: scripts/fuzz.sh --run SECONDS [target...]}"
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/*_fuzzer.cc; do targets+=("$(basename "$f" .cc)"); done
fi
runs=()
if [ -n "${FUZZ_RUNS:-}" ]; then runs=("-runs=${FUZZ_RUNS}"); fi
status=0
for t in "${targets[@]}"; do
  work="$BUILD_DIR/tests/fuzz/corpus/$t"
  mkdir -p "$work" "$BUILD_DIR/tests/fuzz/artifacts"
  log="$BUILD_DIR/tests/fuzz/$t.log"
  start=$(date +%s)
  if "$BUILD_DIR/tests/fuzz/$t" -max_total_time="$seconds" ${runs[@]+"${runs[@]}"} -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$BUILD_DIR/tests/fuzz/artifacts/$t-" \
      "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log)"
    status=1
  fi
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  corpus="$(find "$work" -type f | wc -l)"
  printf '%-24s %10s execs in %s s, corpus %s: %s\n' "$t" "${execs:-?}" "$(( $(date +%s) - start ))" "$corpus" "$result"
done
exit $status
