#!/usr/bin/env bash
# bench-22k.sh: the seed's 22k-viewer room on this one machine, end to end, and every
# other run of docs/benchmarks.md.
#
# Starts `liveroom serve` (embedded NATS + gateway A) and `liveroom gateway`
# (gateway B) on loopback, replays the seed profile against both with
# `liveroom loadgen` (which shards itself into child processes above
# --per-process viewers), writes the JSON and HTML reports and the gateways' final
# /metrics, and stops the servers.
#
#   loadgen/bench-22k.sh                       # seed, 22000 viewers, --speed 10 (~18 min)
#   VIEWERS=18000 GATEWAYS=1 loadgen/bench-22k.sh --profile flat --flat-chat-rate 10 --hold 60s --speed 1
#   VIEWERS=300 SPEED=600 loadgen/bench-22k.sh # a quick check of the script itself
#
# docs/benchmarks.md's seed.sh, burst.sh, flat.sh and herd.sh are this script with:
#   seed:  SPEED=20 ... --chat-burst-rate 220 --cheer-burst-rate 3000
#   burst: ... --profile flat --flat-chat-rate RATE --hold 30s --speed 1
#   flat:  VIEWERS=18000 GATEWAYS=1 ... --profile flat --flat-chat-rate RATE --hold 60s --speed 1
#   herd:  VIEWERS=20000 ... --profile flat --flat-chat-rate 0.5 --hold 30s --speed 1
#          --flat-flash-sales 1 --flash-presses 3 --flash-stock 500 [--flash-mash]
#
# Extra arguments go to `liveroom loadgen` (after the script's own: the last value of
# a flag wins). Environment:
#   VIEWERS, SPEED, GATEWAYS (1 or 2), OUT (report folder), LIVEROOM_SECRET
#   BASE_PORT   gateways on BASE_PORT and BASE_PORT+1, NATS on BASE_PORT+2
#   BIN         a liveroom binary to run (default: built from this checkout)
#   SERVEFLAGS  extra flags for serve and gateway (e.g. "--large-room-tick 200ms")
#   SRVENV      extra environment for serve and gateway only (e.g. GOGC=50)
#   PROF=S      S seconds after the room is full: a 30 s CPU profile of the last
#               gateway (gateway.prof) and, with perf installed, perf record -a for
#               20 s (perf.data)
#   MEMWATCH=1  from the room full on, the last gateway's goroutines, heap, stacks
#               and RSS each second (mem.txt)
#
# A run waits for a quiet box first: no liveroom servers of an earlier run (they
# drain for 10 s after SIGTERM), and fewer than 1,000 TIME_WAIT sockets (they slow
# the next join storm). Every address is on 127.0.0.1.
set -euo pipefail

VIEWERS=${VIEWERS:-22000}
SPEED=${SPEED:-10}
GATEWAYS=${GATEWAYS:-2}
OUT=${OUT:-bench-out}
BASE_PORT=${BASE_PORT:-8080}
export LIVEROOM_SECRET=${LIVEROOM_SECRET:-bench-$RANDOM$RANDOM}

cd "$(dirname "$0")/.."
mkdir -p "$OUT"
work=$(mktemp -d)
bin=${BIN:-$work/liveroom}
[ -n "${BIN:-}" ] || go build -o "$bin" ./cmd/liveroom

while pgrep -f "liveroom (serve|gateway|loadgen)" >/dev/null; do sleep 1; done
while [ "$(ss -tan state time-wait | wc -l)" -gt 1000 ]; do sleep 2; done

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

ready() { # wait up to 30 s for a gateway's /readyz
	for _ in $(seq 1 60); do
		curl -fs "http://127.0.0.1:$1/readyz" >/dev/null && return 0
		sleep 0.5
	done
	echo "gateway on port $1 not ready" >&2
	return 1
}

nats_port=$((BASE_PORT + 2))
# shellcheck disable=SC2086 # SRVENV and SERVEFLAGS are word lists
env ${SRVENV:-} "$bin" serve --pprof --listen "127.0.0.1:$BASE_PORT" --nats-listen "127.0.0.1:$nats_port" \
	--data "$work/data" ${SERVEFLAGS:-} >"$OUT/serve.log" 2>&1 &
pids+=($!)
ready "$BASE_PORT"
targets="ws://127.0.0.1:$BASE_PORT/ws"
ports=("$BASE_PORT")
if [ "$GATEWAYS" -ge 2 ]; then
	# shellcheck disable=SC2086
	env ${SRVENV:-} "$bin" gateway --pprof --listen "127.0.0.1:$((BASE_PORT + 1))" --nats "nats://127.0.0.1:$nats_port" \
		${SERVEFLAGS:-} >"$OUT/gateway.log" 2>&1 &
	pids+=($!)
	ready $((BASE_PORT + 1))
	targets="$targets,ws://127.0.0.1:$((BASE_PORT + 1))/ws"
	ports+=($((BASE_PORT + 1)))
fi
last=${ports[-1]}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, open files $(ulimit -n), $(uname -sr)" | tee "$OUT/machine.txt"
"$bin" loadgen --targets "$targets" --nats "nats://127.0.0.1:$nats_port" --viewers "$VIEWERS" --speed "$SPEED" \
	--json "$OUT/report.json" --html "$OUT/report.html" "$@" > >(tee "$OUT/loadgen.log") 2>&1 &
lp=$!
pids+=($lp) # stopped with the servers if this script ends early
watch=()
if [ -n "${PROF:-}${MEMWATCH:-}" ]; then
	want=$VIEWERS
	prev=
	for a in "$@"; do # a --viewers among the extra arguments wins
		[ "$prev" != --viewers ] || want=$a
		prev=$a
	done
	while kill -0 $lp 2>/dev/null; do # until the progress line shows the room full
		now=$({ grep -oE 'viewers=[0-9]+/' "$OUT/loadgen.log" 2>/dev/null || true; } | tail -1 | tr -dc 0-9)
		[ "${now:-0}" -lt "$want" ] || break
		sleep 0.5
	done
fi
if [ -n "${MEMWATCH:-}" ]; then
	while kill -0 $lp 2>/dev/null; do
		echo "t=$(date +%s) $(curl -s "127.0.0.1:$last/metrics" | grep -E '^(go_goroutines|go_memstats_heap_inuse_bytes|go_memstats_stack_inuse_bytes|process_resident_memory_bytes) ' | tr '\n' ' ')"
		sleep 1
	done >"$OUT/mem.txt" &
	watch+=($!)
fi
if [ -n "${PROF:-}" ]; then
	sleep "$PROF"
	curl -s -o "$OUT/gateway.prof" "127.0.0.1:$last/debug/pprof/profile?seconds=30" &
	watch+=($!)
	if command -v perf >/dev/null; then
		perf record -a -g -F 199 -o "$OUT/perf.data" -- sleep 20 >/dev/null 2>&1 || true
	fi
fi
status=0
wait $lp || status=$?
for w in "${watch[@]}"; do wait "$w" || true; done
for p in "${ports[@]}"; do curl -s "127.0.0.1:$p/metrics" >"$OUT/metrics.$p.prom" || true; done
grep -v '^loadgen t=' "$OUT/loadgen.log" >"$OUT/summary.txt" || true
echo "reports: $OUT/report.json $OUT/report.html"
exit $status
