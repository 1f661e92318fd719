#!/usr/bin/env bash
# bench-22k.sh: the seed's 22k-viewer room on this one machine, end to end.
#
# Starts `liveroom serve` (embedded NATS + gateway A) and `liveroom gateway`
# (gateway B) on loopback, replays the seed profile against both with
# `liveroom loadgen` (which shards itself into child processes above
# --per-process viewers), writes the JSON and HTML reports, and stops the servers.
#
#   loadgen/bench-22k.sh                       # seed, 22000 viewers, --speed 10 (~18 min)
#   VIEWERS=18000 GATEWAYS=1 loadgen/bench-22k.sh --profile flat --flat-chat-rate 10 --hold 60s
#   VIEWERS=300 SPEED=600 loadgen/bench-22k.sh # a quick check of the script itself
#
# Extra arguments go to `liveroom loadgen`. Environment: VIEWERS, SPEED, GATEWAYS
# (1 or 2), OUT (report folder), BASE_PORT (gateways on BASE_PORT, BASE_PORT+1;
# NATS on BASE_PORT+2), LIVEROOM_SECRET.
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
bin=$work/liveroom
go build -o "$bin" ./cmd/liveroom

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
"$bin" serve --listen "127.0.0.1:$BASE_PORT" --nats-listen "127.0.0.1:$nats_port" \
	--data "$work/data" >"$OUT/serve.log" 2>&1 &
pids+=($!)
ready "$BASE_PORT"
targets="ws://127.0.0.1:$BASE_PORT/ws"
if [ "$GATEWAYS" -ge 2 ]; then
	"$bin" gateway --listen "127.0.0.1:$((BASE_PORT + 1))" --nats "nats://127.0.0.1:$nats_port" \
		>"$OUT/gateway.log" 2>&1 &
	pids+=($!)
	ready $((BASE_PORT + 1))
	targets="$targets,ws://127.0.0.1:$((BASE_PORT + 1))/ws"
fi
if [ "$GATEWAYS" -eq 1 ]; then
	# One gateway process: the flat raw fan-out target talks to serve's gateway only.
	targets="ws://127.0.0.1:$BASE_PORT/ws"
fi

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, open files $(ulimit -n), $(uname -sr)" | tee "$OUT/machine.txt"
"$bin" loadgen --targets "$targets" --viewers "$VIEWERS" --speed "$SPEED" \
	--json "$OUT/report.json" --html "$OUT/report.html" "$@" | tee "$OUT/summary.txt"
echo "reports: $OUT/report.json $OUT/report.html"
