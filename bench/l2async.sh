#!/bin/bash
# bench/l2async.sh - GETs that miss L1 and hit L2 (Redis), GETs that hit
# L1 with an L2 configured, and writes through to Redis (SET, INCR),
# through two hotpathd builds side by side: BASE (e.g. a worktree of main
# before the L2 dispatcher, whose workers made a blocking round trip to
# Redis per miss and per write) and OUT (this tree), in front of one
# redis-server holding every key.
#
# Misses: l1_ttl = 1ms and tracking off, so a value copied into L1 is gone
# before the same key (of -r KEYS random keys) comes again: every GET is
# an L1 miss answered from Redis (the script prints each build's L1 hit
# share to show it). Hits: l1_ttl = 1h, the keys read once first.
# Writes (cases set, incr): redis-benchmark -t set / -t incr over -r KEYS
# keys; each is sent to Redis and its key dropped from L1 before the reply.
# redis-benchmark -c CONNS, unpipelined and -P 16; servers (both
# hotpathds and Redis) on SERVER_CPU, the client on CLIENT_CPU; the two
# builds alternate, median of RUNS. Prints GET/s, p99 and new/base.
#
#   BASE=/work/asyncl2-base/build bench/l2async.sh       # RUNS=3 N=200000 CONNS=200
#   RUNS=5 CONNS=500 BASE=... bench/l2async.sh
#   CASES=hit RUNS=7 BASE=... bench/l2async.sh             # one case only
#   CASES="set incr" RUNS=5 BASE=... bench/l2async.sh      # the writes
set -eu
cd "$(dirname "$0")/.."
. bench/lock.sh
BASE=${BASE:?BASE=folder of the other build (holds hotpathd)}
OUT=${OUT:-build}
RUNS=${RUNS:-3}
N=${N:-200000}
CONNS=${CONNS:-200}
KEYS=${KEYS:-100000}
WORKERS=${WORKERS:-2}
CASES=${CASES:-miss hit set incr}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(port)
taskset -c "$SERVER_CPU" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' \
	--appendonly no --daemonize no --dir "$tmp" --maxclients 10000 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# every key redis-benchmark -r KEYS will ask for
redis-benchmark -p "$RPORT" -t set -n $((KEYS * 10)) -r "$KEYS" -d 64 -P 64 -q >/dev/null

start() {  # name bin l1_ttl -> sets HP (RESP port) and AP (API port)
	local hp ap
	hp=$(port); ap=$(port)
	cat > "$tmp/$1.ini" <<INI
[core]
workers = $WORKERS
log_level = warn
[resp]
listen = 127.0.0.1:$hp
max_clients = 20000
[api]
listen = 127.0.0.1:$ap
[cache]
l1_max_memory = 1gb
[l0]
enabled = no
[bpf]
enabled = no
[redis]
address = 127.0.0.1:$RPORT
tracking = no
l1_ttl = $3
command_timeout = 2s
slow_call = 1s
INI
	taskset -c "$SERVER_CPU" "$2/hotpathd" -c "$tmp/$1.ini" 2>"$tmp/$1.log" &
	pids+=($!)
	for _ in $(seq 100); do redis-cli -p "$hp" ping >/dev/null 2>&1 && break; sleep 0.1; done
	HP=$hp; AP=$ap
}

bench() {  # port pipeline test -> "rps p99"
	taskset -c "$CLIENT_CPU" redis-benchmark -p "$1" -t "$3" -n "$N" -c "$CONNS" -P "$2" \
		-r "$KEYS" --csv 2>/dev/null | tr -d '"' | awk -F, 'NR==2 {print $2, $7}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
reads() {  # api port -> "l1_hits all_reads" from /metrics
	curl -s "http://127.0.0.1:$1/metrics" | awk '
		/^hotpath_tier_reads_total/ { t += $2; if ($1 ~ /l1_hit/) h += $2 }
		END { print h + 0, t + 0 }'
}
batch() {  # api port -> dispatcher requests / batches (new build only)
	curl -s "http://127.0.0.1:$1/metrics" | awk '
		/^hotpath_l2_dispatcher_batches_total/ { b = $2 }
		/^hotpath_l2_dispatcher_requests_total/ { r = $2 }
		END { if (b) printf "%.1f (%d requests, %d writes)", r / b, r, b; else print "n/a" }'
}
share() {  # "h0 t0" "h1 t1" -> L1 hits / reads in between
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
		t = y[2] - x[2]; if (t > 0) printf "%.3f", (y[1] - x[1]) / t; else print "n/a" }'
}

printf '%-5s %-3s | %12s %8s | %12s %8s | %6s | %s\n' case P base_rps p99_ms new_rps p99_ms ratio \
	'L1 share base/new'
for c in $CASES; do
	ttl=1ms; [ "$c" = hit ] && ttl=1h
	t=get; case $c in set|incr) t=$c ;; esac
	start "base-$c" "$BASE" "$ttl"; bport=$HP; bapi=$AP
	start "new-$c" "$OUT" "$ttl"; nport=$HP; napi=$AP
	if [ "$c" = hit ]; then  # every key into L1 first
		for p in "$bport" "$nport"; do
			redis-benchmark -p "$p" -t get -n $((KEYS * 8)) -r "$KEYS" -c 50 -P 16 -q >/dev/null
		done
	fi
	for P in 1 16; do
		: > "$tmp/b"; : > "$tmp/n"
		b0=$(reads "$bapi"); n0=$(reads "$napi")
		for _ in $(seq "$RUNS"); do
			bench "$bport" "$P" "$t" | tee -a "$tmp/b.all" >> "$tmp/b"
			bench "$nport" "$P" "$t" | tee -a "$tmp/n.all" >> "$tmp/n"
		done
		br=$(cut -d' ' -f1 "$tmp/b" | median); bp=$(cut -d' ' -f2 "$tmp/b" | median)
		nr=$(cut -d' ' -f1 "$tmp/n" | median); np=$(cut -d' ' -f2 "$tmp/n" | median)
		ratio=$(awk -v a="$nr" -v b="$br" 'BEGIN {printf "%.2f", a / b}')
		printf '%-5s %-3s | %12s %8s | %12s %8s | %6s | %s/%s\n' "$c" "$P" "$br" "$bp" "$nr" \
			"$np" "$ratio" "$(share "$b0" "$(reads "$bapi")")" "$(share "$n0" "$(reads "$napi")")"
		echo "      runs base: $(cut -d' ' -f1 "$tmp/b" | tr '\n' ' ')  new: $(cut -d' ' -f1 "$tmp/n" | tr '\n' ' ')"
		echo "      new: L2 requests per pipelined write so far: $(batch "$napi")"
	done
	# the two hotpathds of this case (the last two started); Redis stays
	# first in pids and is killed at exit
	kill "${pids[1]}" "${pids[2]}" 2>/dev/null
	wait "${pids[1]}" "${pids[2]}" 2>/dev/null || true
	pids=("${pids[0]}")
done
echo "(hotpathd x2 and redis-server on cpu $SERVER_CPU, client on cpu $CLIENT_CPU," \
	"workers=$WORKERS, -c $CONNS, n=$N, keys=$KEYS, runs=$RUNS, median)"
