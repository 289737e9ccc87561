#!/usr/bin/env bash
# Per-thread cost of tokensignd's signing path, per token and per call: CPU,
# context switches, futex calls, sendmsg and fdatasync (perf stat), or a
# DWARF-stack profile (perf record). Starts `tokensignd --dev` in a temp state
# dir, loads it with `tokensign-bench daemon --server ... --only KIND`, and
# measures a window inside that closed-loop cell; calls and tokens come from
# the daemon's /metrics, so the numbers are of the window only.
#   tools/bench/profile_daemon.sh [--record] [--daemon-flag FLAG]... \
#       TOKENSIGND TOKENSIGN_BENCH unary|batch [SECONDS]
# e.g. tools/bench/profile_daemon.sh build/signer/service/tokensignd \
#        build/tools/bench/tokensign-bench unary 4
# --record writes perf-KIND.data in the current dir (perf report -i ...).
# Needs perf (Debian: linux-perf) and permission to trace the daemon (root or
# kernel.perf_event_paranoid <= 1). Numbers on a shared machine are noisy:
# compare builds in alternating runs.
set -euo pipefail

record=0
dflags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --record) record=1; shift ;;
    --daemon-flag) dflags+=("$2"); shift 2 ;;
    *) break ;;
  esac
done
if [ $# -lt 3 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
daemon=$1 bench=$2 kind=$3 seconds=${4:-4}
module=${TOKENSIGN_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
state=$(mktemp -d "${TMPDIR:-/tmp}/tokensign-prof-XXXXXX")
pid="" bench_pid=""
cleanup() {
  [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null || true
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$state"
}
trap cleanup EXIT

"$daemon" --dev --state-dir "$state" --grpc-listen 127.0.0.1:0 \
  --http-listen 127.0.0.1:0 --ready-file "$state/ready.json" \
  --module "$module" --log-level warn "${dflags[@]}" > "$state/log" 2>&1 &
pid=$!
port() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$state/ready.json" "$1"; }
for _ in $(seq 300); do
  [ -s "$state/ready.json" ] && python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$state/ready.json" 2>/dev/null && break
  sleep 0.1
done
grpc_port=$(port grpc_port) http_port=$(port http_port)
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$http_port/readyz" > /dev/null && break
  sleep 0.1
done
metric() {  # sum of the samples of one metric family
  curl -s "http://127.0.0.1:$http_port/metrics" |
    awk -v n="$1" 'index($0, n) == 1 { s += $NF } END { printf "%d\n", s }'
}

# Warm-up 1 s, then the cell runs past the measured window on both sides.
"$bench" daemon --server "127.0.0.1:$grpc_port" --no-ceiling --only "$kind" \
  --seconds $((seconds + 3)) --rounds 1 --warmup 1 > "$state/bench.out" 2>&1 &
bench_pid=$!
sleep 2
t0=$(metric tokensign_tokens_signed_total)
c0=$(metric 'tokensign_requests_total{')
if [ "$record" = 1 ]; then
  perf record -F 2000 --call-graph dwarf,16384 -p "$pid" -o "perf-$kind.data" \
    -- sleep "$seconds" > /dev/null 2>&1
else
  perf stat --per-thread -x, -o "$state/perf.txt" -p "$pid" \
    -e task-clock,context-switches,syscalls:sys_enter_futex \
    -e syscalls:sys_enter_sendmsg,syscalls:sys_enter_fdatasync \
    -- sleep "$seconds"
fi
tokens=$(( $(metric tokensign_tokens_signed_total) - t0 ))
calls=$(( $(metric 'tokensign_requests_total{') - c0 ))
wait "$bench_pid" || true
bench_pid=""
echo "$kind: ${seconds} s window, $calls calls, $tokens tokens ($((tokens / seconds))/s), load $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E "first error" "$state/bench.out" || true
if [ "$record" = 1 ]; then
  echo "profile: perf-$kind.data"
  exit 0
fi
python3 - "$state/perf.txt" "$calls" "$tokens" <<'EOF'
import collections, sys
path, calls, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if calls <= 0 or tokens <= 0:
    sys.exit("no calls in the window (see the bench output)")
events = ["task-clock", "context-switches", "syscalls:sys_enter_futex",
          "syscalls:sys_enter_sendmsg", "syscalls:sys_enter_fdatasync"]
threads = collections.defaultdict(collections.Counter)
for line in open(path):
    f = line.strip().split(",")
    if len(f) < 4 or line.startswith("#"):
        continue
    try:
        threads[f[0]][f[3]] += float(f[1])
    except ValueError:
        pass
print(f"{'thread':28s} {'cpu_us/tok':>10s} {'ctx/tok':>8s} {'futex/tok':>9s} "
      f"{'sendmsg/tok':>11s} {'fdatasync/tok':>13s}")
total = collections.Counter()
for name, v in sorted(threads.items(), key=lambda kv: -kv[1]["task-clock"]):
    total.update(v)
    if v["task-clock"] < 1:
        continue
    print(f"{name:28s} {v['task-clock'] * 1000 / tokens:10.1f} "
          f"{v['context-switches'] / tokens:8.2f} "
          f"{v['syscalls:sys_enter_futex'] / tokens:9.2f} "
          f"{v['syscalls:sys_enter_sendmsg'] / tokens:11.3f} "
          f"{v['syscalls:sys_enter_fdatasync'] / tokens:13.3f}")
for label, n in (("per token", tokens), ("per call", calls)):
    print(f"{'daemon ' + label:28s} {total['task-clock'] * 1000 / n:10.1f} "
          f"{total['context-switches'] / n:8.2f} "
          f"{total['syscalls:sys_enter_futex'] / n:9.2f} "
          f"{total['syscalls:sys_enter_sendmsg'] / n:11.3f} "
          f"{total['syscalls:sys_enter_fdatasync'] / n:13.3f}")
EOF
