#!/usr/bin/env bash
# bench/run.sh: the runs of docs/benchmarks.md, one command each.
#
#   bench/run.sh seed  NAME [loadgen flags]   the seed's 22k room on serve + gateway (--speed 20, ~9.5 min)
#   bench/run.sh burst NAME RATE [flags]      22,000 flat viewers on serve + gateway, chat at RATE lines/s for 30 s
#   bench/run.sh flat  NAME RATE [flags]      18,000 flat viewers on ONE gateway (serve), RATE lines/s for 60 s
#   bench/run.sh herd  NAME [flags]           the flash-sale herd: 20,000 viewers × 3 presses on serve + gateway
#
# The docs call these seed.sh, burst.sh, flat.sh and herd.sh. Loadgen flags given
# after the fixed ones override them (the last value of a flag wins). Reports go to
# $WORK/NAME.{log,json,html}, the gateways' final /metrics to $WORK/NAME.{9080,9081}.prom.
#
# Environment:
#   WORK        folder for the binary, data and reports (default /tmp/liveroom-bench)
#   BIN         the liveroom binary (default: $WORK/liveroom, built from this checkout)
#   SERVEFLAGS  extra flags for serve and gateway (e.g. "--large-room-tick 200ms")
#   SRVENV      extra environment for serve and gateway only (e.g. GOGC=50)
#   PROF=S      S seconds after the room is full: a 30 s CPU profile of gateway B
#               (NAME.gw.prof) and, if perf is installed, perf record -a for 20 s (NAME.perf)
#   MEMWATCH=1  sample gateway B's goroutines, heap, stacks and RSS each second (NAME.mem.txt)
#
# Every address is on 127.0.0.1 and every run is bounded (timeout).
set -euo pipefail

kind=${1:?kind: seed, burst, flat or herd}
name=${2:?name}
shift 2
WORK=${WORK:-/tmp/liveroom-bench}
mkdir -p "$WORK"
if [ -z "${BIN:-}" ]; then
	BIN=$WORK/liveroom
	(cd "$(dirname "$0")/.." && go build -o "$BIN" ./cmd/liveroom)
fi
cd "$WORK"

# A run starts on a quiet box: no servers of an earlier run (they drain for 10 s after
# SIGTERM), and the last run's TIME_WAIT sockets gone (they slow the next join storm).
while pgrep -f "liveroom (serve|gateway|loadgen)" >/dev/null; do sleep 1; done
while [ "$(ss -tan state time-wait | wc -l)" -gt 1000 ]; do sleep 2; done

export LIVEROOM_SECRET=bench-secret
rm -rf data
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# shellcheck disable=SC2086 # SERVEFLAGS and SRVENV are word lists
env ${SRVENV:-} "$BIN" serve --pprof --listen 127.0.0.1:9080 --nats-listen 127.0.0.1:9082 --udp-port 0 \
	--data "$WORK/data" ${SERVEFLAGS:-} >"$name.serve.log" 2>&1 &
pids+=($!)
targets=ws://127.0.0.1:9080/ws
ports=(9080)
if [ "$kind" != flat ]; then
	until curl -sf 127.0.0.1:9080/readyz >/dev/null; do sleep 0.5; done
	# shellcheck disable=SC2086
	env ${SRVENV:-} "$BIN" gateway --pprof --listen 127.0.0.1:9081 --nats nats://127.0.0.1:9082 \
		${SERVEFLAGS:-} >"$name.gateway.log" 2>&1 &
	pids+=($!)
	targets=$targets,ws://127.0.0.1:9081/ws
	ports+=(9081)
fi
for p in "${ports[@]}"; do
	until curl -sf "127.0.0.1:$p/readyz" >/dev/null; do sleep 0.5; done
done

case $kind in
seed)
	full=22000
	args=(--nats nats://127.0.0.1:9082 --viewers 22000 --speed 20 --chat-burst-rate 220 --cheer-burst-rate 3000 --html "$name.html")
	limit=1800
	;;
burst)
	rate=${1:?rate}; shift
	full=22000
	args=(--viewers 22000 --profile flat --flat-chat-rate "$rate" --hold 30s --speed 1)
	limit=600
	;;
flat)
	rate=${1:?rate}; shift
	full=18000
	args=(--viewers 18000 --profile flat --flat-chat-rate "$rate" --hold 60s --speed 1)
	limit=600
	;;
herd)
	full=20000
	args=(--nats nats://127.0.0.1:9082 --viewers 20000 --profile flat --flat-chat-rate 0.5 --hold 30s --speed 1
		--flat-flash-sales 1 --flash-presses 3 --flash-stock 500)
	limit=300
	;;
*)
	echo "unknown kind $kind" >&2
	exit 2
	;;
esac
for a in "$@"; do # --viewers N given: the room is full at N
	if [ "${prev:-}" = --viewers ]; then full=$a; fi
	prev=$a
done

timeout "$limit" "$BIN" loadgen --targets "$targets" "${args[@]}" "$@" --json "$name.json" >"$name.log" 2>&1 &
lp=$!
watch=()
if [ -n "${PROF:-}${MEMWATCH:-}" ]; then
	until grep -qE "viewers=$full/" "$name.log" 2>/dev/null || ! kill -0 $lp 2>/dev/null; do sleep 0.5; done
fi
if [ -n "${MEMWATCH:-}" ]; then
	while kill -0 $lp 2>/dev/null; do
		echo "t=$(date +%s) $(curl -s 127.0.0.1:9081/metrics | grep -E '^(go_goroutines|go_memstats_heap_inuse_bytes|go_memstats_stack_inuse_bytes|process_resident_memory_bytes) ' | tr '\n' ' ')"
		sleep 1
	done >"$name.mem.txt" &
	watch+=($!)
fi
if [ -n "${PROF:-}" ]; then
	sleep "$PROF"
	curl -s -o "$name.gw.prof" "127.0.0.1:9081/debug/pprof/profile?seconds=30" &
	watch+=($!)
	if command -v perf >/dev/null; then
		perf record -a -g -F 199 -o "$name.perf" -- sleep 20 >/dev/null 2>&1 || true
	fi
fi
wait $lp || true
for w in "${watch[@]}"; do wait "$w" || true; done
for p in "${ports[@]}"; do curl -s "127.0.0.1:$p/metrics" >"$name.$p.prom" || true; done
grep -vE '^loadgen t=' "$name.log" | tail -15
