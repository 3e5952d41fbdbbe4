#!/bin/bash
# bench/overhead.sh - what kernel observation costs the services it watches.
#
# nginx (one worker, a 1 KiB static file) under wrk, and PostgreSQL 15 under
# pgbench -S, each measured without hotpathd and with hotpathd running
# (every probe attached: request latency, query timing, accept counter; both
# services declared as [service.NAME]), runs alternated, median of RUNS.
# Servers on core 1, load generators on core 0 (BENCHMARKS.md). Needs root;
# installs nginx-light and wrk if they are missing (they are bench-only).
#
#   bench/overhead.sh              # RUNS=3 SECS=10
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
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
taskset -c 1 nginx -c "$tmp/nginx.conf"
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

web() { taskset -c 0 wrk -t1 -c50 -d"${SECS}s" "http://127.0.0.1:$NPORT/index.html" |
	awk '/Requests\/sec/ {print $2}'; }
pg() { taskset -c 0 pgbench -h 127.0.0.1 -p "$PPORT" -U postgres -S -c 8 -j 2 -T "$SECS" postgres 2>/dev/null |
	awk '/^tps/ {print $3; exit}'; }
agent_on() { "$OUT/hotpathd" -c "$tmp/hp.ini" 2>"$tmp/hp.log" & hp=$!
	for _ in $(seq 50); do grep -q "ready:" "$tmp/hp.log" && break; sleep 0.1; done
	grep -q "observe: watching" "$tmp/hp.log" || { echo "observation did not start:"; cat "$tmp/hp.log"; exit 1; }; }
agent_off() { kill "$hp"; wait "$hp" 2>/dev/null || true; hp=""; }

: > "$tmp/web0"; : > "$tmp/web1"; : > "$tmp/pg0"; : > "$tmp/pg1"
for _ in $(seq "$RUNS"); do
	web >> "$tmp/web0"; pg >> "$tmp/pg0"
	agent_on; web >> "$tmp/web1"; pg >> "$tmp/pg1"; agent_off
done
w0=$(median < "$tmp/web0"); w1=$(median < "$tmp/web1")
p0=$(median < "$tmp/pg0"); p1=$(median < "$tmp/pg1")
printf '%-28s %12s %12s %8s\n' workload without with lost
printf '%-28s %12s %12s %7.1f%%\n' "nginx 1KiB, wrk -c50 (req/s)" "$w0" "$w1" "$(awk -v a="$w0" -v b="$w1" 'BEGIN {print (a-b)/a*100}')"
printf '%-28s %12s %12s %7.1f%%\n' "pgbench -S -c8 -j2 (tps)" "$p0" "$p1" "$(awk -v a="$p0" -v b="$p1" 'BEGIN {print (a-b)/a*100}')"
echo "(servers on cpu 1, clients on cpu 0, ${SECS}s runs, median of $RUNS, alternated)"
echo "runs without/with: web $(tr '\n' ' ' < "$tmp/web0")/ $(tr '\n' ' ' < "$tmp/web1"); pg $(tr '\n' ' ' < "$tmp/pg0")/ $(tr '\n' ' ' < "$tmp/pg1")"
