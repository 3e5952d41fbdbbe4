#!/bin/bash
# bench/pool.sh - the hotpath PostgreSQL pooler and PgBouncer side by side.
#
# One PostgreSQL 15 (temp dir, free loopback port, pgbench -i -s $SCALE),
# PgBouncer and hotpathd both in transaction mode with the same pool size,
# the same auth (md5 against the same users file) and the same server
# login. pgbench -S -c 16 -j 2 -T $SECS, then the same with -C (a new
# connection per transaction), alternating peers, $RUNS rounds; the
# median tps of each is printed with the ratio. Poolers and PostgreSQL
# run on core 1, pgbench on core 0 (BENCHMARKS.md).
#
#   bench/pool.sh            (needs root: PostgreSQL runs as user postgres)
#   RUNS=3 SECS=10 SCALE=10 bench/pool.sh
#   QA_STATS=no bench/pool.sh   (hotpath without per-fingerprint query statistics)
#   MODES=cached bench/pool.sh  (pgbench -M extended reading 1000 hot rows; hotpath
#                                answers them from its result cache, [query_cache]
#                                switched on by a SIGHUP once the fingerprint is known;
#                                extended, not prepared: PgBouncer 1.18 has no prepared
#                                statements in transaction mode)
#   MODES=connect bench/pool.sh (only the -C round; MODES=plain only -S)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lock.sh
OUT=${OUT:-build}
RUNS=${RUNS:-3}
SECS=${SECS:-10}
SCALE=${SCALE:-10}
POOL=${POOL:-20}
QA_STATS=${QA_STATS:-yes}
MODES=${MODES:-plain connect}
PGBIN=/usr/lib/postgresql/15/bin
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}

for b in "$PGBIN/pgbench" /usr/sbin/pgbouncer "$OUT/hotpathd"; do
	[ -x "$b" ] || { echo "bench/pool.sh: $b missing (make deps all)" >&2; exit 1; }
done

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

T=$(mktemp -d /tmp/hotpath-poolbench-XXXXXX)
chmod 755 "$T"
PGPORT=$(free_port); BPORT=$(free_port); HPORT=$(free_port); APORT=$(free_port)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT

# ---- PostgreSQL ----------------------------------------------------------------
mkdir -p "$T/sock" && chown postgres: "$T" "$T/sock"
runuser -u postgres -- "$PGBIN/initdb" -D "$T/data" -U postgres --auth-local=trust \
	--auth-host=md5 -E UTF8 --locale=C >/dev/null
cat >> "$T/data/postgresql.conf" <<EOF
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
password_encryption = md5
EOF
runuser -u postgres -- taskset -c "$SERVER_CPU" "$PGBIN/pg_ctl" -D "$T/data" -l "$T/pg.log" -w \
	-o "-p $PGPORT -k $T/sock -c listen_addresses=127.0.0.1" start >/dev/null
psql_su() { runuser -u postgres -- "$PGBIN/psql" -X -q -h "$T/sock" -p "$PGPORT" -U postgres "$@"; }
psql_su -c "CREATE ROLE app LOGIN PASSWORD 'secret'" -c "CREATE DATABASE app OWNER app"
PGPASSWORD=secret "$PGBIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PGPORT" -U app app >/dev/null 2>&1

MD5="md5$(printf '%s' secretapp | md5sum | cut -d' ' -f1)"
printf '"app" "%s"\n' "$MD5" > "$T/users.txt"
chmod 644 "$T/users.txt"

# ---- PgBouncer -------------------------------------------------------------------
cat > "$T/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PGPORT dbname=app user=app password=secret
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir =
auth_type = md5
auth_file = $T/users.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 1000
logfile = $T/pgbouncer.log
pidfile = $T/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
chown postgres: "$T/pgbouncer.ini"
runuser -u postgres -- taskset -c "$SERVER_CPU" /usr/sbin/pgbouncer "$T/pgbouncer.ini" \
	>/dev/null 2>&1 &
pids+=($!)

# ---- hotpathd ---------------------------------------------------------------------
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'bench %s perf:read\n' "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)" > "$T/tokens"
chmod 600 "$T/tokens"
cat > "$T/hotpath.ini" <<EOF
[core]
workers = 1
log_level = warn
[resp]
listen = 127.0.0.1:0
[api]
listen = 127.0.0.1:$APORT
tokens_file = $T/tokens
[bpf]
enabled = no
[l0]
enabled = no
[pooler]
listen = 127.0.0.1:$HPORT
auth_type = md5
auth_file = $T/users.txt
pool_mode = transaction
default_pool_size = $POOL
[query_analysis]
stats = $QA_STATS
interval = 0
[database.app]
host = 127.0.0.1
port = $PGPORT
dbname = app
user = app
password = secret
EOF
taskset -c "$SERVER_CPU" "$OUT/hotpathd" -c "$T/hotpath.ini" >"$T/hotpathd.log" 2>&1 &
pids+=($!)

for port in $BPORT $HPORT; do
	for _ in $(seq 100); do
		PGPASSWORD=secret "$PGBIN/psql" -X -At "host=127.0.0.1 port=$port user=app dbname=app sslmode=disable" \
			-c "SELECT 1" >/dev/null 2>&1 && break
		sleep 0.1
	done
done

BPID=$(cat "$T/pgbouncer.pid"); HPID=${pids[1]}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {   # $1 port, $2 pooler pid, rest: pgbench options -> "tps cpu-us-per-transaction"
	local port=$1 pid=$2 a b out n tps; shift 2
	a=$(ticks "$pid")
	out=$(PGPASSWORD=secret taskset -c "$CLIENT_CPU" "$PGBIN/pgbench" -n -c 16 -j 2 -T "$SECS" "$@" \
		"host=127.0.0.1 port=$port user=app dbname=app sslmode=disable" 2>&1)
	b=$(ticks "$pid")
	n=$(awk '/actually processed/{print $NF}' <<<"$out")
	tps=$(awk '/^tps = /{print int($3)}' <<<"$out")
	awk -v t="$tps" -v d=$((b - a)) -v n="${n:-0}" -v hz="$(getconf CLK_TCK)" \
		'BEGIN{ printf "%d %.1f\n", t, (n > 0 ? d * 1e6 / hz / n : 0) }'
}
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# MODES=cached: learn the hot statement's fingerprint from hotpath's own
# statistics, list it in [query_cache] and reload (SIGHUP).
printf '\\set aid random(1, 1000)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n' \
	> "$T/hot.sql"
queries() {
	curl -sf -H "Authorization: Bearer $TOKEN" \
		"http://127.0.0.1:$APORT/api/v2/performance/queries?source=pooler&limit=1000"
}
cache_on() {
	local fp
	PGPASSWORD=secret "$PGBIN/pgbench" -n -M extended -f "$T/hot.sql" -c 1 -t 20 \
		"host=127.0.0.1 port=$HPORT user=app dbname=app sslmode=disable" >/dev/null 2>&1
	for _ in $(seq 50); do
		fp=$(queries | /usr/bin/python3 -c 'import json, sys
q = [x["fingerprint"] for x in json.load(sys.stdin)["queries"] if "pgbench_accounts" in x["query"]]
print(q[0] if q else "")') && [ -n "$fp" ] && break
		sleep 0.1
	done
	[ -n "$fp" ] || { echo "bench/pool.sh: no fingerprint for the hot statement" >&2; exit 1; }
	printf '[query_cache]\nfingerprints = %s\nttl = 600s\n' "$fp" >> "$T/hotpath.ini"
	kill -HUP "$HPID"
	for _ in $(seq 50); do
		[ "$(queries | /usr/bin/python3 -c 'import json, sys
print(json.load(sys.stdin).get("query_cache", {}).get("fingerprints", 0))')" = 1 ] && return 0
		sleep 0.1
	done
	echo "bench/pool.sh: the reload did not switch the result cache on" >&2; exit 1
}

mode_opts() {
	case $1 in
	plain) echo -S ;;
	connect) echo -S -C ;;
	cached) echo -M extended -f "$T/hot.sql" ;;
	esac
}
mode_label() {
	case $1 in
	plain) echo "-S -c 16 -j 2 -T $SECS" ;;
	connect) echo "-S -c 16 -j 2 -T $SECS -C" ;;
	cached) echo "-M extended, 1000 hot rows" ;;
	esac
}
for mode in $MODES; do
	read -r -a opt <<<"$(mode_opts "$mode")"
	[ "$mode" = cached ] && cache_on
	: > "$T/b.$mode"; : > "$T/h.$mode"
	for r in $(seq "$RUNS"); do
		run "$BPORT" "$BPID" "${opt[@]}" >> "$T/b.$mode"
		run "$HPORT" "$HPID" "${opt[@]}" >> "$T/h.$mode"
	done
done

printf '\n%-30s %10s %10s %7s   %s\n' "pgbench (transaction pooling)" "pgbouncer" "hotpath" \
	"ratio" "pooler CPU us/txn (pgbouncer / hotpath)"
for mode in $MODES; do
	b=$(cut -d' ' -f1 "$T/b.$mode" | median); h=$(cut -d' ' -f1 "$T/h.$mode" | median)
	bc=$(cut -d' ' -f2 "$T/b.$mode" | median); hc=$(cut -d' ' -f2 "$T/h.$mode" | median)
	label=$(mode_label "$mode")
	printf '%-30s %10s %10s %7s   %s / %s\n' "$label" "$b" "$h" \
		"$(awk -v a="$h" -v b="$b" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }')" \
		"$bc" "$hc"
	echo "   runs (tps cpu) pgbouncer: $(tr '\n' ' ' < "$T/b.$mode")  hotpath: $(tr '\n' ' ' < "$T/h.$mode")"
done
