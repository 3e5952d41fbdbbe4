#!/bin/bash
# bench/resp.sh - redis-server and hotpathd side by side under the same
# redis-benchmark run (see ../shared/design/BENCHMARKS.md for the method).
#
# Server on core 1 (hotpathd with one worker so both servers get one core),
# client on core 0, runs alternated, median of RUNS (default 3) per case.
# Cases: -t get,set -c 50, without and with -P 16. Prints requests/s, p99
# and the ratio hotpath/redis; append the table to docs/benchmarks.md by
# hand with the date and this command.
#
#   bench/resp.sh            # RUNS=3 N=200000
#   RUNS=5 N=500000 bench/resp.sh
set -eu
cd "$(dirname "$0")/.."
. bench/lock.sh
RUNS=${RUNS:-3}
N=${N:-200000}
OUT=${OUT:-build}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
WORKERS=${WORKERS:-1}
tmp=$(mktemp -d)
trap 'kill $rpid $hpid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(port); HPORT=$(port); APORT=$(port)

taskset -c "$SERVER_CPU" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' \
	--appendonly no --daemonize no --dir "$tmp" >/dev/null 2>&1 &
rpid=$!
cat > "$tmp/hp.ini" <<INI
[core]
workers = $WORKERS
log_level = warn
[resp]
listen = 127.0.0.1:$HPORT
[api]
listen = 127.0.0.1:$APORT
[cache]
l1_max_memory = 1gb
[bpf]
enabled = no
INI
taskset -c "$SERVER_CPU" "$OUT/hotpathd" -c "$tmp/hp.ini" 2>"$tmp/hp.log" &
hpid=$!
for p in "$RPORT" "$HPORT"; do
	for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

bench() {  # port test pipeline -> "rps p99"
	taskset -c "$CLIENT_CPU" redis-benchmark -p "$1" -t "$2" -n "$N" -c 50 -P "$3" \
		-r 100000 -d 64 --csv 2>/dev/null | tr -d '"' | awk -F, 'NR==2 {print $2, $7}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-6s %-3s | %12s %8s | %12s %8s | %6s\n' test P redis_rps p99_ms hotpath_rps p99_ms ratio
for t in get set; do
	for P in 1 16; do
		: > "$tmp/r"; : > "$tmp/h"
		for _ in $(seq "$RUNS"); do
			bench "$RPORT" "$t" "$P" >> "$tmp/r"
			bench "$HPORT" "$t" "$P" >> "$tmp/h"
		done
		rr=$(cut -d' ' -f1 "$tmp/r" | median); rp=$(cut -d' ' -f2 "$tmp/r" | median)
		hr=$(cut -d' ' -f1 "$tmp/h" | median); hp=$(cut -d' ' -f2 "$tmp/h" | median)
		ratio=$(awk -v a="$hr" -v b="$rr" 'BEGIN {printf "%.2f", a / b}')
		printf '%-6s %-3s | %12s %8s | %12s %8s | %6s\n' "$t" "$P" "$rr" "$rp" "$hr" "$hp" "$ratio"
	done
done
echo "(server on cpu $SERVER_CPU, client on cpu $CLIENT_CPU, hotpath workers=$WORKERS, n=$N, runs=$RUNS, median)"
