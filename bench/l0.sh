#!/bin/bash
# bench/l0.sh - GETs of a hot key set: redis-server vs hotpath L1 vs hotpath
# L0 (answered in the kernel), side by side in one run (BENCHMARKS.md).
#
# Servers on core 1 (hotpathd with one worker), redis-benchmark on core 0,
# runs alternated, median of RUNS. For each case it prints requests/s, p99
# and the host CPU spent per million GETs outside the client process:
# (delta of all CPU time in /proc/stat) - (the client's own utime+stime),
# because on loopback the kernel's share of an L0 hit runs in softirq on the
# client's core, so throughput alone hides what L0 saves. A local client's
# GETs are answered by L0 inside the client's own send() (docs/l0.md), so
# that work is the client's system time: the last column, all host CPU per
# million GETs including the client, shows what the whole exchange costs.
# Needs root (L0).
#
#   bench/l0.sh                  # RUNS=3 N=300000 KEYS=1000 D=29 (value bytes)
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
N=${N:-300000}
KEYS=${KEYS:-1000}
D=${D:-29}
OUT=${OUT:-build}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}" $(cat "$tmp/pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HZ=$(getconf CLK_TCK)

start_hotpath() {  # name l0(yes/no) -> port
	local p a; p=$(port); a=$(port)
	cat > "$tmp/$1.ini" <<INI
[core]
workers = 1
log_level = warn
[resp]
listen = 127.0.0.1:$p
[api]
listen = 127.0.0.1:$a
[cache]
l1_max_memory = 512mb
[l0]
enabled = $2
max_keys = $((KEYS * 2))
[bpf]
pin_path = /sys/fs/bpf/hotpath-bench-$1
INI
	# stdout away from the caller's $(...), or it would wait for the daemon
	taskset -c "$SERVER_CPU" "$OUT/hotpathd" -c "$tmp/$1.ini" >/dev/null 2>"$tmp/$1.log" &
	echo $! >> "$tmp/pids"
	echo "$p"
}

RPORT=$(port)
taskset -c "$SERVER_CPU" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' \
	--appendonly no --daemonize no --dir "$tmp" >/dev/null 2>&1 &
pids+=($!)
RPID=${pids[0]}
L1PORT=$(start_hotpath l1 no)
L0PORT=$(start_hotpath l0 yes)
L1PID=$(sed -n 1p "$tmp/pids")
L0PID=$(sed -n 2p "$tmp/pids")
for p in "$RPORT" "$L1PORT" "$L0PORT"; do
	for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
	# the key set: key:000000000000 .. key:<KEYS-1>, D-byte values (29 by
	# default: a GET of them is 36 bytes and so is its reply, so remote
	# clients could be answered by L0 too, docs/l0.md)
	redis-benchmark -p "$p" -t set -n $((KEYS * 20)) -r "$KEYS" -d "$D" -q >/dev/null 2>&1
done
# make the keys hot (L1 counts GETs; L0 picks the hottest each second)
for _ in 1 2 3; do
	redis-benchmark -p "$L0PORT" -t get -n $((KEYS * 20)) -r "$KEYS" -q >/dev/null 2>&1
	sleep 1.1
done

cpu_total() { awk '/^cpu / {s=0; for (i=2;i<=NF;i++) s+=$i; print s}' /proc/stat; }
# utime+stime of a process with all its threads, in ticks
cpu_proc() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# -> "rps p99 cpu_outside_client cpu_all cpu_client_and_server cpu_server", CPU in s
# per 1M GETs.
# The last one counts only the two processes (softirq work is charged to
# the process it interrupted), so other load on a shared machine stays out.
run() {  # port pipeline server_pid
	local c0 c1 s0 s1 out
	c0=$(cpu_total)
	s0=$(cpu_proc "$3")
	/usr/bin/time -f "%U %S" -o "$tmp/time" taskset -c "$CLIENT_CPU" \
		redis-benchmark -p "$1" -t get -n "$N" -c 50 -P "$2" -r "$KEYS" --csv \
		> "$tmp/csv" 2>/dev/null
	c1=$(cpu_total)
	s1=$(cpu_proc "$3")
	out=$(tr -d '"' < "$tmp/csv" | awk -F, 'NR==2 {print $2, $7}')
	read -r cu cs < "$tmp/time"
	awk -v o="$out" -v d=$((c1 - c0)) -v sd=$((s1 - s0)) -v hz="$HZ" -v cu="$cu" -v cs="$cs" \
		-v n="$N" \
		'BEGIN {split(o, a, " "); all = d / hz; host = all - cu - cs; if (host < 0) host = 0;
			pair = sd / hz + cu + cs;
			printf "%s %s %.3f %.3f %.3f %.3f\n", a[1], a[2], host / n * 1e6, all / n * 1e6,
				pair / n * 1e6, sd / hz / n * 1e6}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-3s | %-13s %12s %8s %14s %14s %16s %10s\n' P server rps p99_ms cpu_s/1M_GET \
	all_cpu_s/1M client+server/1M server/1M
for P in 1 16; do
	for name in redis l1 l0; do : > "$tmp/$name.$P"; done
	for _ in $(seq "$RUNS"); do
		run "$RPORT" "$P" "$RPID" >> "$tmp/redis.$P"
		run "$L1PORT" "$P" "$L1PID" >> "$tmp/l1.$P"
		run "$L0PORT" "$P" "$L0PID" >> "$tmp/l0.$P"
	done
	for name in redis l1 l0; do
		f="$tmp/$name.$P"
		printf '%-3s | %-13s %12s %8s %14s %14s %16s %10s\n' "$P" "$name" \
			"$(cut -d' ' -f1 "$f" | median)" "$(cut -d' ' -f2 "$f" | median)" \
			"$(cut -d' ' -f3 "$f" | median)" "$(cut -d' ' -f4 "$f" | median)" \
			"$(cut -d' ' -f5 "$f" | median)" "$(cut -d' ' -f6 "$f" | median)"
	done
done
hits=$(redis-cli -p "$L0PORT" info stats >/dev/null; curl -s "localhost:$(grep -A1 '^\[api\]' "$tmp/l0.ini" | sed -n 's/listen = 127.0.0.1://p')/metrics" | awk '$1 ~ /hotpath_cache_hits_total\{tier="l0"/ {print $2}')
echo "(server cpu $SERVER_CPU, client cpu $CLIENT_CPU, hotpath workers=1, keys=$KEYS, value=$D bytes, n=$N, runs=$RUNS, median; L0 hits in total: ${hits:-?})"
