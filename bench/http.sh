#!/bin/bash
# bench/http.sh - the HTTP caching proxy against its peers, side by side in
# one run (method: ../shared/design/BENCHMARKS.md).
#
# 1. Cache hit, 1 KiB: nginx proxy_cache (1 worker), Varnish (malloc
#    storage) and hotpathd (1 worker) in front of one nginx origin, the same
#    `wrk -t1 -c50 -d${DUR}s --latency` against each, alternated, median of
#    RUNS. Servers on core 1, wrk on core 0. Ratios hotpath/nginx and
#    hotpath/varnish.
# 2. Compression, per codec, through hotpathd: size and ratio of a 35 KiB
#    text (the GPL-3 text from /usr/share/common-licenses) and a 64 KiB JSON
#    document, time to build the variant (from /metrics'
#    hotpath_http_compression_seconds_total), wrk throughput of compressed
#    cache hits; then a no-store path, where every response is compressed on
#    the way by a streaming encoder.
# 3. Slow backend: three nginx backends, one answering after 100 ms
#    (echo_sleep), hotpathd with caching off and balance = round_robin,
#    least_request, ewma; wrk -c16, p50/p99 and requests/s per policy.
#
#   make bench-deps                  # nginx, libnginx-mod-http-echo, varnish, wrk
#   flock /tmp/hotpath-bench.lock bench/http.sh            # RUNS=3 DUR=10
#   PARTS="hit" RUNS=5 bench/http.sh
set -eu
cd "$(dirname "$0")/.."
. bench/lock.sh
RUNS=${RUNS:-3}
DUR=${DUR:-10}
CONNS=${CONNS:-50}
OUT=${OUT:-build}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
PARTS=${PARTS:-"hit compress slow"}
ECHO_MOD=/usr/lib/nginx/modules/ngx_http_echo_module.so
for t in nginx varnishd wrk; do
	command -v "$t" >/dev/null || { echo "bench/http.sh: $t missing: run make bench-deps" >&2; exit 1; }
done
[ -f "$ECHO_MOD" ] || { echo "bench/http.sh: $ECHO_MOD missing: run make bench-deps" >&2; exit 1; }
[ -x "$OUT/hotpathd" ] || { echo "bench/http.sh: build first (make)" >&2; exit 1; }

tmp=$(mktemp -d); chmod 755 "$tmp"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP_LOGS:-}" ] && cp "$tmp"/*.log "$tmp"/*.err "$KEEP_LOGS"/ 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # url
	for _ in $(seq 100); do curl -fso /dev/null "$1" && return 0; sleep 0.1; done
	echo "bench/http.sh: $1 does not answer" >&2; return 1
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# wrk_run URL [header] -> "rps p50_ms p99_ms errors"
wrk_run() {
	local args=(-t1 -c"$CONNS" -d"${DUR}s" --latency)
	[ $# -ge 2 ] && args+=(-H "$2")
	taskset -c "$CLIENT_CPU" wrk "${args[@]}" "$1" | awk '
		function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
				 if (v ~ /s$/) return v * 1000; return v }
		/^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
		/Requests\/sec:/ { rps = $2 }
		/Non-2xx|Socket errors/ { err = 1 }
		END { printf "%d %.3f %.3f %d\n", rps, p50, p99, err }'
}

hotpath_alive() {  # name: fail loudly if the daemon died during a part
	kill -0 "$HP_PID" 2>/dev/null && return 0
	echo "bench/http.sh: hotpathd ($1) died; its log:" >&2
	tail -20 "$tmp/$1.log" >&2
	exit 1
}
hotpath_start() {  # name ini-body -> sets HP_PORT, HP_API
	HP_PORT=$(port); HP_API=$(port)
	cat > "$tmp/$1.ini" <<INI
[core]
workers = 1
log_level = warn
[api]
listen = 127.0.0.1:$HP_API
[resp]
listen = 127.0.0.1:$(port)
[cache]
l1_max_memory = 512mb
[bpf]
enabled = no
[http]
listen = 127.0.0.1:$HP_PORT
upstream = web
$2
INI
	taskset -c "$SERVER_CPU" "$OUT/hotpathd" -c "$tmp/$1.ini" 2>"$tmp/$1.log" &
	pids+=($!)
	HP_PID=$!
}

# ---- the origin: nginx serving fixed files (and one slow location per port) ----
ORIGIN=$(port)
mkdir -p "$tmp/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$tmp/www/1k.txt"
cp /usr/share/common-licenses/GPL-3 "$tmp/www/gpl.txt"
python3 -c '
import json, random
random.seed(7)
rows = [{"id": i, "name": "user%05d" % i, "email": "user%05d@example.com" % i,
         "active": i % 3 != 0, "score": round(random.random() * 1000, 3),
         "tags": random.sample(["red", "green", "blue", "admin", "beta", "eu", "us"], 3)}
        for i in range(520)]
import sys; sys.stdout.write(json.dumps(rows)[:65536])' > "$tmp/www/data.json"
S1=$(port); S2=$(port); S3=$(port)
cat > "$tmp/origin.conf" <<NGX
load_module $ECHO_MOD;
worker_processes 1;
daemon off;
pid $tmp/origin.pid;
error_log $tmp/origin.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	types { text/plain txt; application/json json; }
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$ORIGIN;
		root $tmp/www;
		location /p/ { alias $tmp/www/; add_header Cache-Control "no-store"; }
		location / { add_header Cache-Control "max-age=3600"; etag on; }
	}
	server { listen 127.0.0.1:$S1; location / { echo "fast backend 1"; } }
	server { listen 127.0.0.1:$S2; location / { echo "fast backend 2"; } }
	server { listen 127.0.0.1:$S3; location / { echo_sleep 0.1; echo "slow backend 3"; } }
}
NGX
taskset -c "$SERVER_CPU" nginx -c "$tmp/origin.conf" -p "$tmp" &
pids+=($!)
wait_http "http://127.0.0.1:$ORIGIN/1k.txt"

# ---- 1. cache hit: nginx proxy_cache, Varnish, hotpath ----------------------------
if [[ " $PARTS " == *" hit "* ]]; then
	NGX=$(port); VAR=$(port)
	mkdir -p "$tmp/ngxcache"
	cat > "$tmp/cache.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/cache.pid;
error_log $tmp/cache.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	proxy_cache_path $tmp/ngxcache keys_zone=c:10m;
	upstream origin { server 127.0.0.1:$ORIGIN; keepalive 16; }
	server {
		listen 127.0.0.1:$NGX;
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache c;
			proxy_cache_valid 200 1h;
		}
	}
}
NGX
	taskset -c "$SERVER_CPU" nginx -c "$tmp/cache.conf" -p "$tmp" &
	pids+=($!)
	taskset -c "$SERVER_CPU" varnishd -F -j none -n "$tmp/varnish" -a "127.0.0.1:$VAR" \
		-b "127.0.0.1:$ORIGIN" -s malloc,256m >"$tmp/varnish.log" 2>&1 &
	pids+=($!)
	hotpath_start hit "[upstream.web]
servers = 127.0.0.1:$ORIGIN"
	for u in "http://127.0.0.1:$NGX" "http://127.0.0.1:$VAR" "http://127.0.0.1:$HP_PORT"; do
		wait_http "$u/1k.txt"
		curl -fso /dev/null "$u/1k.txt"       # warm: the next ones are hits
	done
	curl -sI "http://127.0.0.1:$HP_PORT/1k.txt" | grep -qi '^cache-status: hotpath; hit' ||
		{ echo "bench/http.sh: hotpath does not hit" >&2; exit 1; }
	for name in nginx varnish hotpath; do : > "$tmp/hit.$name"; done
	for _ in $(seq "$RUNS"); do
		wrk_run "http://127.0.0.1:$NGX/1k.txt" >> "$tmp/hit.nginx"
		wrk_run "http://127.0.0.1:$VAR/1k.txt" >> "$tmp/hit.varnish"
		wrk_run "http://127.0.0.1:$HP_PORT/1k.txt" >> "$tmp/hit.hotpath"
	done
	echo "== 1 KiB cache hit: wrk -t1 -c$CONNS -d${DUR}s --latency, median of $RUNS"
	printf '%-8s | %10s %8s %8s %4s\n' peer rps p50_ms p99_ms err
	for name in nginx varnish hotpath; do
		f="$tmp/hit.$name"
		eval "rps_$name=$(cut -d' ' -f1 "$f" | median)"
		printf '%-8s | %10s %8s %8s %4s\n' "$name" "$(cut -d' ' -f1 "$f" | median)" \
			"$(cut -d' ' -f2 "$f" | median)" "$(cut -d' ' -f3 "$f" | median)" \
			"$(cut -d' ' -f4 "$f" | sort -g | tail -1)"
	done
	hotpath_alive hit
	awk -v h="$rps_hotpath" -v n="$rps_nginx" -v v="$rps_varnish" \
		'BEGIN { printf "hotpath/nginx %.2f   hotpath/varnish %.2f\n", h / n, h / v }'
	kill "$HP_PID"
fi

# ---- 2. compression per codec ---------------------------------------------------------
if [[ " $PARTS " == *" compress "* ]]; then
	hotpath_start comp "compress_max_size = 1mb
[upstream.web]
servers = 127.0.0.1:$ORIGIN"
	wait_http "http://127.0.0.1:$HP_PORT/gpl.txt"
	comp_ms() { curl -fs "http://127.0.0.1:$HP_API/metrics" |
		awk '/^hotpath_http_compression_seconds_total / {print $2 * 1000}'; }
	echo "== compression through hotpath (first request builds the variant; wrk then measures hits)"
	printf '%-10s %-5s | %8s %8s %6s | %9s | %10s %8s\n' file coding bytes out ratio build_ms \
		hit_rps p99_ms
	for f in gpl.txt data.json; do
		curl -fso /dev/null "http://127.0.0.1:$HP_PORT/$f"
		for c in gzip br zstd; do
			t0=$(comp_ms)
			in=$(stat -c %s "$tmp/www/$f")
			out=$(curl -fs -H "Accept-Encoding: $c" "http://127.0.0.1:$HP_PORT/$f" | wc -c)
			t1=$(comp_ms)
			r=$(wrk_run "http://127.0.0.1:$HP_PORT/$f" "Accept-Encoding: $c")
			printf '%-10s %-5s | %8s %8s %6.2f | %9.2f | %10s %8s\n' "$f" "$c" "$in" "$out" \
				"$(awk -v a="$in" -v b="$out" 'BEGIN {print a / b}')" \
				"$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
				"$(echo "$r" | cut -d' ' -f1)" "$(echo "$r" | cut -d' ' -f3)"
		done
		r=$(wrk_run "http://127.0.0.1:$HP_PORT/$f")
		printf '%-10s %-5s | %8s %8s %6s | %9s | %10s %8s\n' "$f" identity "$(stat -c %s "$tmp/www/$f")" \
			- - - "$(echo "$r" | cut -d' ' -f1)" "$(echo "$r" | cut -d' ' -f3)"
		hotpath_alive comp
	done
	echo "== compression on the way: /p/data.json is no-store, so every response is forwarded and streamed"
	printf '%-10s %-5s | %8s %8s %6s | %10s %8s\n' file coding bytes out ratio rps p99_ms
	for c in gzip br zstd identity; do
		out=$(curl -fs -H "Accept-Encoding: $c" "http://127.0.0.1:$HP_PORT/p/data.json" | wc -c)
		r=$(wrk_run "http://127.0.0.1:$HP_PORT/p/data.json" "Accept-Encoding: $c")
		printf '%-10s %-5s | %8s %8s %6.2f | %10s %8s\n' data.json "$c" 65536 "$out" \
			"$(awk -v a=65536 -v b="$out" 'BEGIN {print a / b}')" \
			"$(echo "$r" | cut -d' ' -f1)" "$(echo "$r" | cut -d' ' -f3)"
	done
	hotpath_alive comp
	kill "$HP_PID"
fi

# ---- 3. slow backend: round_robin vs least_request vs ewma ---------------------------
if [[ " $PARTS " == *" slow "* ]]; then
	echo "== three backends, one answering after 100 ms; caching off; wrk -t1 -c16 -d${DUR}s, median of $RUNS"
	printf '%-14s | %8s %8s %8s\n' balance rps p50_ms p99_ms
	for bal in round_robin least_request ewma; do
		hotpath_start "slow-$bal" "cache = no
[upstream.web]
servers = 127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3
balance = $bal"
		wait_http "http://127.0.0.1:$HP_PORT/x"
		: > "$tmp/slow.$bal"
		for _ in $(seq "$RUNS"); do
			CONNS=16 wrk_run "http://127.0.0.1:$HP_PORT/x" >> "$tmp/slow.$bal"
		done
		printf '%-14s | %8s %8s %8s\n' "$bal" "$(cut -d' ' -f1 "$tmp/slow.$bal" | median)" \
			"$(cut -d' ' -f2 "$tmp/slow.$bal" | median)" "$(cut -d' ' -f3 "$tmp/slow.$bal" | median)"
		hotpath_alive "slow-$bal"
		kill "$HP_PID"
		wait "$HP_PID" 2>/dev/null || true
	done
fi
echo "(servers on cpu $SERVER_CPU, wrk on cpu $CLIENT_CPU, one worker each, runs=$RUNS, ${DUR}s each, median)"
