#!/bin/bash
# bench/overhead.sh - what kernel observation costs the services it watches.
#
# nginx (one worker, a 1 KiB static file) under wrk, and PostgreSQL 15 under
# pgbench -S, each measured without hotpathd and with hotpathd running
# (every probe attached: request latency, query timing, accept counter; both
# services declared as [service.NAME]), runs alternated, median of RUNS.
# Servers on core 1, load generators on core 0 (BENCHMARKS.md). Reported:
# the rate lost, and the CPU time per request of server + load generator +
# hotpathd (steadier than the rate on a shared machine). RT=1 runs nginx,
# wrk and pgbench SCHED_FIFO, so other work on a shared machine does not
# take their cores (the BPF programs run in their context; the agent's own
# thread stays SCHED_OTHER). Not PostgreSQL: its spinlocks and a FIFO
# scheduler on one core stalled a run here. Needs root;
# installs nginx-light and wrk if they are missing (they are bench-only).
#
#   bench/overhead.sh              # RUNS=3 SECS=10
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RT=${RT:-0}
rt() { if [ "$RT" = 1 ]; then chrt -f 50 "$@"; else "$@"; fi; }
SECS=${SECS:-10}
OUT=${OUT:-build}
PGBIN=/usr/lib/postgresql/15/bin
for t in nginx wrk; do
	command -v "$t" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
done
tmp=$(mktemp -d)
chmod 755 "$tmp"
hp=""
cleanup() {
	[ -n "$hp" ] && kill "$hp" 2>/dev/null
	[ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$tmp/pg" -m immediate stop >/dev/null 2>&1 || true
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

NPORT=$(port); PPORT=$(port)
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$tmp/index.html"
cat > "$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
	access_log off;
	server { listen 127.0.0.1:$NPORT; root $tmp; }
}
CONF
rt taskset -c 1 nginx -c "$tmp/nginx.conf"
mkdir "$tmp/pg" "$tmp/sock" && chown postgres: "$tmp/pg" "$tmp/sock"
runuser -u postgres -- "$PGBIN/initdb" -D "$tmp/pg" --auth=trust -U postgres >/dev/null
taskset -c 1 runuser -u postgres -- "$PGBIN/pg_ctl" -D "$tmp/pg" -l "$tmp/pg/log" \
	-o "-p $PPORT -k $tmp/sock -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
sleep 1
pgbench -h 127.0.0.1 -p "$PPORT" -U postgres -i -s 5 postgres >/dev/null 2>&1

cat > "$tmp/hp.ini" <<INI
[core]
log_level = info
[resp]
listen = 127.0.0.1:$(port)
[api]
listen = 127.0.0.1:$(port)
[l0]
enabled = no
[bpf]
pin_path = /sys/fs/bpf/hotpath-overhead
[service.web]
port = $NPORT
protocol = http
[service.pg]
port = $PPORT
protocol = postgres
INI

# CPU time (clock ticks) of a process and of its reaped children: nginx's
# worker, PostgreSQL's postmaster (backends exit with their clients, and
# their time lands in its cutime/cstime), hotpathd.
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
NGW=$(pgrep -f "nginx: worker" -P "$(cat "$tmp/nginx.pid")")
PGM=$(head -1 "$tmp/pg/postmaster.pid")

# One run: prints "rate cpu_us_per_request". The CPU counted is what the
# work costs on the whole path: the server, the load generator (bash's
# `times` of the client) and the agent, so the figure does not move with
# what else the machine runs, unlike the rate.
measure() {	# server-pid  rate-command...
	local srv=$1 s0 s1 a0=0 a1=0 c0 c1 out rate n; shift
	s0=$(ticks "$srv"); [ -n "$hp" ] && a0=$(ticks "$hp")
	c0=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
	out=$("$@")
	c1=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
	s1=$(ticks "$srv"); [ -n "$hp" ] && a1=$(ticks "$hp")
	rate=${out% *}; n=${out#* }
	awk -v r="$rate" -v n="$n" -v t=$((s1 - s0 + a1 - a0 + c1 - c0)) -v hz="$TCK" \
		'BEGIN {printf "%s %.2f\n", r, t / hz * 1e6 / n}'
}
web() { rt taskset -c 0 wrk -t1 -c50 -d"${SECS}s" "http://127.0.0.1:$NPORT/index.html" |
	awk '/Requests\/sec/ {r = $2} /requests in/ {n = $1} END {print r, n}'; }
pg() { rt taskset -c 0 pgbench -h 127.0.0.1 -p "$PPORT" -U postgres -S -c 8 -j 2 -T "$SECS" postgres 2>/dev/null |
	awk '/^tps/ && !r {r = $3} /transactions actually processed/ {n = $NF; sub("/.*", "", n)} END {print r, n}'; }
agent_on() { "$OUT/hotpathd" -c "$tmp/hp.ini" 2>"$tmp/hp.log" & hp=$!
	for _ in $(seq 50); do grep -q "ready:" "$tmp/hp.log" && break; sleep 0.1; done
	grep -q "observe: watching" "$tmp/hp.log" || { echo "observation did not start:"; cat "$tmp/hp.log"; exit 1; }; }
agent_off() { kill "$hp"; wait "$hp" 2>/dev/null || true; hp=""; }

for f in web0 web1 pg0 pg1; do : > "$tmp/$f"; done
for _ in $(seq "$RUNS"); do
	measure "$NGW" web >> "$tmp/web0"; measure "$PGM" pg >> "$tmp/pg0"
	agent_on; measure "$NGW" web >> "$tmp/web1"; measure "$PGM" pg >> "$tmp/pg1"; agent_off
done
col() { awk -v c="$1" '{print $c}' "$2" | median; }
lost() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f%%", (a - b) / a * 100}'; }
more() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f%%", (b - a) / a * 100}'; }
printf '%-30s %10s %10s %7s   %10s %10s %7s\n' workload "rate w/o" "rate with" lost \
	"µs/req w/o" "with" "CPU"
for w in web pg; do
	r0=$(col 1 "$tmp/${w}0"); r1=$(col 1 "$tmp/${w}1")
	u0=$(col 2 "$tmp/${w}0"); u1=$(col 2 "$tmp/${w}1")
	name="nginx 1KiB, wrk -c50"; [ $w = pg ] && name="pgbench -S -c8 -j2"
	printf '%-30s %10.0f %10.0f %7s   %10.2f %10.2f %7s\n' "$name" "$r0" "$r1" "$(lost "$r0" "$r1")" \
		"$u0" "$u1" "$(more "$u0" "$u1")"
done
echo "(servers on cpu 1, clients on cpu 0$([ "$RT" = 1 ] && echo ", nginx/wrk/pgbench SCHED_FIFO"), ${SECS}s runs, median of $RUNS, alternated;"
echo " CPU = server + load generator + hotpathd per request)"
for f in web0 web1 pg0 pg1; do echo "$f: $(tr '\n' ';' < "$tmp/$f")"; done
