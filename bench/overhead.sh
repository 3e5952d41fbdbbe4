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
# ARMS names what runs beside the workloads in each round (first = the
# baseline): none, agent (hotpathd), callers (hotpathd with [bpf]
# observe_local_callers = yes: the local load generators' side timed too),
# unwatched (hotpathd with its services on other ports: the dispatch and
# the port test, what every socket of the host pays),
# base (another build of hotpathd, its
# path in BASE: a change side by side with what it changes), alt1..alt9
# (more builds, their paths in ALT1..ALT9, as altN or altN+S.K=V:
# several variants priced in one run), and the
# hook-cost arms of build/hookcost (bench/hookcost.bpf.c) that tell what the
# hook itself costs apart from what our programs do in it: empty (the two socket
# tracepoints, empty programs), empty2 (the same on the hooks the agent
# takes since 6.15/6.16, skb_copy_datagram_iovec and tcp_sendmsg_locked),
# bits (+ the port bitmap test), sockmap /
# skmsg (sock_ops enrolment of the two services' sockets into a sockhash,
# pass-through sk_msg + sk_skb verdict / sk_msg only), and the price arms
# for the loop workload: pbase, pclock, pstr, pstr16, pstr64, pread,
# pread16, patomic (on the loop server's every read, 8 calls of
# bpf_ktime_get_ns / bpf_probe_read_user_str / bpf_probe_read_user of 128,
# 16 or 64 bytes / a locked add; pbase the same without the calls: a
# round's time over pbase's, divided by 8, is one call's price), rxuser
# and rxskb (a read's first 64 bytes from the user's buffer at
# sock_recv_length, or from the socket buffer at skb_copy_datagram_iovec),
# lines0, lines4 and lines16 (on each read and send of the watched
# servers, the first twin's and not the second's, 0, 4 or 16 loads of
# cache lines picked at random in 64 MiB: what a line missed costs),
# kpage8 and vpage8 (8 loads a transfer of the same 448 lines, in a
# kmalloc'd map, the direct map's 1 GiB pages, or one line a 4 KiB page
# of a vmalloc'd one: what a map page's TLB entry costs);
# and burn, a control
# with no probe at all: one core spun for 1.5 s before the round, as the
# verifier does when hotpathd starts, so an A/A run (ARMS="none burn")
# shows whether an arm's start-up alone moves its rate. WORKLOADS picks from
# web (nginx), pg (pgbench) and loop (build/sockloop: a one-thread HTTP
# ping-pong on loopback, both ends watched, that prices a hook per socket
# transfer more finely than a server under load can), pgloop (the same
# with pgbench -S's query and reply, on a port declared postgres),
# tpcbloop (the same port, the seven statements of pgbench's default
# transaction in turn: a connection going through several statements),
# webtwin and pgtwin. WRK_C sets wrk's connections (50 for web, 400 for
# webtwin), PGBENCH pgbench's mode and clients ("-S -c 8 -j 2"; "-c 8
# -j 2" is its default TPC-B-like transaction).
#
# The twins: a second nginx (a second PostgreSQL cluster) on the same core
# as the first, loaded at the same moment by its own wrk (pgbench), the
# scheduler splitting the core between the two. Only the first is a
# [service]: with discovery off (the arm agent+bpf.observe_discover=no)
# the second pays the tracepoints' dispatch and the port test, and none
# of the observation's work. The round's figure is 100000 x the first's
# requests / the second's, so its "lost" against the none arm is what
# observing the first costs it beyond the dispatch, measured with both
# servers under the same load at the same time: the machine's drift
# between rounds, ±15% on the rates here, cancels. Needs RT=0 (two
# SCHED_FIFO servers on one core do not share it fairly):
#   ARMS="none agent+bpf.observe_discover=no" WORKLOADS="webtwin pgtwin" RUNS=15 SECS=3 bench/overhead.sh
#
# PERF=1 adds a cpu-clock profile of each run and, per arm, the share of
# the server's core in observation code less the baseline arm's: on a VM
# whose rates spread ±15% between runs, the steadiest measure of the cost.
#
#   bench/overhead.sh              # RUNS=3 SECS=10 ARMS="none agent" WORKLOADS="web pg"
#   ARMS="none empty agent" RT=1 RUNS=5 SECS=8 bench/overhead.sh
#   ARMS="none agent" RT=1 RUNS=3 SECS=5 PERF=1 bench/overhead.sh
set -eu
cd "$(dirname "$0")/.."
. bench/lock.sh
. bench/agent.sh
RUNS=${RUNS:-3}
RT=${RT:-0}
rt() { if [ "$RT" = 1 ]; then chrt -f 50 "$@"; else "$@"; fi; }
SECS=${SECS:-10}
# The loads: wrk's connections (WRK_C: 50 for web, 400 for webtwin, whose
# rounds at 50 fall on steps ~4% apart: each nginx answers its wrk in
# batches of up to 50, and a round's ratio moves by two requests of a
# batch), pgbench's mode and clients (PGBENCH: -S, select-only, the
# hardest case for a per-request cost; "-c 8 -j 2" runs its default
# TPC-B-like transaction).
WRK_C=${WRK_C:-}
PGBENCH=${PGBENCH:--S -c 8 -j 2}
OUT=${OUT:-build}
PGBIN=/usr/lib/postgresql/15/bin
for t in nginx wrk; do
	command -v "$t" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
done
tmp=$(mktemp -d)
chmod 755 "$tmp"
hp=""
cleanup() {
	[ -n "${stats_was:-}" ] && sysctl -qw kernel.bpf_stats_enabled="$stats_was"
	[ -n "$hp" ] && kill "$hp" 2>/dev/null
	for f in "$tmp"/nginx.pid "$tmp"/nginx2.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	for d in "$tmp"/pg "$tmp"/pg2; do
		[ -d "$d" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1
	done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Other hotpathd instances on the host (tests, a colleague's daemon) watch
# every listener they discover, this script's nginx and PostgreSQL too, in
# every arm: "none" is then not a no-probe baseline. Say so.
# Each run records how many such sets were attached at its start and end
# (last column of the runs; ours, in the agent arms, not counted): a run
# with others attached measured more than its arm.
observers() { bpftool prog show 2>/dev/null | grep -cE "name hp_obs_(recv|rx) " || true; }
others=$(observers)
[ "${others:-0}" -gt 0 ] && echo "warning: $others observe program(s) of other hotpathd instances attached: every arm pays them"
NPORT=$(port); PPORT=$(port); LPORT=$(port); QPORT=$(port); NPORT2=$(port); PPORT2=$(port)
twins=0
case " ${WORKLOADS:-} " in *twin*) twins=1 ;; esac
[ "$twins" = 1 ] && [ "$RT" = 1 ] && { echo "webtwin/pgtwin need RT=0: two SCHED_FIFO servers on one core do not share it"; exit 2; }
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
if [ "$twins" = 1 ]; then
	sed "s#$tmp/nginx.pid#$tmp/nginx2.pid#; s#$tmp/nginx.err#$tmp/nginx2.err#; s#:$NPORT;#:$NPORT2;#" \
		"$tmp/nginx.conf" > "$tmp/nginx2.conf"
	taskset -c 1 nginx -c "$tmp/nginx2.conf"
fi
pg_cluster "$tmp/pg" "$PPORT" "$tmp/sock"
[ "$twins" = 1 ] && pg_cluster "$tmp/pg2" "$PPORT2" "$tmp/sock"

{ agent_ini info /sys/fs/bpf/hotpath-overhead; cat <<INI
[service.web]
port = $NPORT
protocol = http
[service.pg]
port = $PPORT
protocol = postgres
[service.loop]
port = $LPORT
protocol = http
[service.pgloop]
port = $QPORT
protocol = postgres
INI
} > "$tmp/hp.ini"
sed 's/^\[bpf\]$/[bpf]\nobserve_local_callers = yes/' "$tmp/hp.ini" > "$tmp/callers.ini"
# The unwatched arm: hotpathd with its services on other ports (free ones),
# so every transfer of the workloads takes the programs' unwatched path:
# the tracepoints' dispatch and the port test, what every socket of a
# host pays.
while read -r l; do case $l in "port = "*) echo "port = $(port)" ;; *) echo "$l" ;; esac; done < "$tmp/hp.ini" > "$tmp/unwatched.ini"

# CPU time (clock ticks) of a process and of its reaped children: nginx's
# worker, PostgreSQL's postmaster (backends exit with their clients, and
# their time lands in its cutime/cstime), hotpathd.
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
NGW=$(pgrep -f "nginx: worker" -P "$(cat "$tmp/nginx.pid")")
PGM=$(head -1 "$tmp/pg/postmaster.pid")

# STATS=1: kernel.bpf_stats_enabled during the run, so the kernel counts
# each program's runs and run time: "name runs run_time_ns" of the BPF
# programs a process holds, sorted by name (the dispatch to them is not
# in run_time_ns: that is what the hook-cost arms price).
STATS=${STATS:-0}
progstats() { [ "$STATS" = 1 ] || return 0
	bpftool -j prog show | python3 -c 'import glob, json, re, sys
ids = set()
for f in glob.glob("/proc/%s/fdinfo/*" % sys.argv[1]):
    try:
        m = re.search(r"^prog_id:\s*(\d+)", open(f).read(), re.M)
    except OSError:
        continue
    if m:
        ids.add(int(m.group(1)))
for p in json.load(sys.stdin):
    if p["id"] in ids:
        print(p["name"], p.get("run_cnt", 0), p.get("run_time_ns", 0))' "$1" | sort; }
[ "$STATS" = 1 ] && { stats_was=$(sysctl -n kernel.bpf_stats_enabled); sysctl -qw kernel.bpf_stats_enabled=1; }

# Context switches (voluntary + involuntary) of every thread of a process;
# for PostgreSQL only the postmaster's own (its backends' are gone with
# them), so the pg figure is the load generator's and the agent's.
cswitches() { cat /proc/"$1"/task/*/status 2>/dev/null |
	awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n + 0}'; }

# One run: prints "rate cpu_us_per_request agent_cpu_us_per_request
# switches_per_request agent_wakeups_per_second". The CPU counted is what
# the work costs on the whole path: the server, the load generator (bash's
# `times` of the client) and the agent, so the figure does not move with
# what else the machine runs, unlike the rate. Switches: the server's and
# the load generator's context switches (GNU time's %c + %w) and the
# agent's, per request; the agent's alone per second says how often it
# wakes (each wake-up may take a core from nginx or wrk on 2 vCPUs).
measure() {	# server-pid  rate-command...
	local srv=$1 s0 s1 a0=0 a1=0 c0 c1 out rate n w0 w1 h0=0 h1=0 t0 t1 o0 o1 own=0; shift
	case ${arm:-} in agent*|callers|base*|alt*) own=1 ;; esac
	o0=$(observers)
	s0=$(ticks "$srv"); [ -n "$hp" ] && a0=$(ticks "$hp")
	w0=$(cswitches "$srv"); [ -n "$hp" ] && h0=$(cswitches "$hp")
	[ -n "$hp" ] && progstats "$hp" > "$tmp/stats0"
	c0=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
	t0=$(date +%s%N)
	out=$("$@")
	t1=$(date +%s%N)
	c1=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
	s1=$(ticks "$srv"); [ -n "$hp" ] && a1=$(ticks "$hp")
	w1=$(cswitches "$srv"); [ -n "$hp" ] && h1=$(cswitches "$hp")
	o1=$(observers); [ "$o1" -lt "$o0" ] && o1=$o0
	[ -n "$hp" ] && progstats "$hp" | join - "$tmp/stats0" |
		awk -v w="$* ${arm:-}" '$2 > $4 {printf "%s %s: %d runs, %.0f ns a run\n", w, $1, $2 - $4, ($3 - $5) / ($2 - $4)}' \
		>> "$tmp/progstats"
	rate=${out%% *}; n=${out#* }; n=${n%% *}
	awk -v r="$rate" -v n="$n" -v t=$((s1 - s0 + a1 - a0 + c1 - c0)) -v a=$((a1 - a0)) -v hz="$TCK" \
		-v cs=$((w1 - w0 + h1 - h0 + ${out##* })) -v h=$((h1 - h0)) -v ns=$((t1 - t0)) \
		-v o=$((o1 - own)) \
		'BEGIN {printf "%s %.2f %.2f %.3f %.0f %d\n", r, t / hz * 1e6 / n, a / hz * 1e6 / n, cs / n, h / (ns / 1e9), o}'
}
# The load generators run under GNU time, which appends their context
# switches (voluntary + involuntary) to the "rate requests" line.
cs_of() { awk '{print $1 + $2}' "$tmp/time"; }
web() { rt taskset -c 0 /usr/bin/time -f "%c %w" -o "$tmp/time" wrk -t1 -c"${WRK_C:-50}" -d"${SECS}s" "http://127.0.0.1:$NPORT/index.html" |
	awk '/Requests\/sec/ {r = $2} /requests in/ {n = $1} END {printf "%s %s", r, n}'; echo " $(cs_of)"; }
pg() { rt taskset -c 0 /usr/bin/time -f "%c %w" -o "$tmp/time" pgbench -h 127.0.0.1 -p "$PPORT" -U postgres $PGBENCH -T "$SECS" postgres 2>/dev/null |
	awk '/^tps/ && !r {r = $3} /transactions actually processed/ {n = $NF; sub("/.*", "", n)} END {printf "%s %s", r, n}'; echo " $(cs_of)"; }
# The twins, loaded together; prints "100000*first/second requests" and
# the first's requests (see the header).
twin() {	# load-function port-of-the-first port-of-the-twin (each run prints "requests")
	local a b ap
	"$1" "$2" > "$tmp/twin.a" & ap=$!
	b=$("$1" "$3")
	wait "$ap"
	a=$(cat "$tmp/twin.a")
	echo "$a $b" | awk '{printf "%.1f %d 0\n", ($2 > 0 ? 100000 * $1 / $2 : 0), $1}'; }
webtwin() { twin wrk1 "$NPORT" "$NPORT2"; }
pgtwin() { twin pg1 "$PPORT" "$PPORT2"; }
wrk1() { taskset -c 0 wrk -t1 -c"${WRK_C:-400}" -d"${SECS}s" "http://127.0.0.1:$1/index.html" | awk '/requests in/ {print $1}'; }
pg1() { taskset -c 0 pgbench -h 127.0.0.1 -p "$1" -U postgres $PGBENCH -T "$SECS" postgres 2>/dev/null |
	awk '/transactions actually processed/ {n = $NF; sub("/.*", "", n); print n}'; }
# build/sockloop: one thread's HTTP-like ping-pong on loopback (four socket
# transfers a round, both ends watched): the price of a hook per transfer,
# as rounds/s of the best batch.
# THRASH=N: the loop's server reads through N KiB of memory after each of
# its transfers, as a server's own work does between them (the hooks then
# run with cold caches); THRASH_ORDER=rand reads its lines in a scrambled
# order (N a power of two: a working set the hooks' lines push out of the
# caches); THRASH_ORDER=code runs N KiB of straight-line instructions
# instead (x86-64: the instruction caches emptied of the hooks' code);
# LOOP_ROUNDS rounds a batch (20000).
LOOP_ROUNDS=${LOOP_ROUNDS:-20000}
loop() { rt taskset -c 0 /usr/bin/time -f "%c %w" -o "$tmp/time" "$OUT/sockloop" "${1:-$LPORT}" "$LOOP_ROUNDS" $((SECS * 3)) "${2:-http}" "${THRASH:-0}" "${THRASH_ORDER:-seq}" |
	awk -v n=$((LOOP_ROUNDS * SECS * 3)) '/ns_per_round/ {printf "%.1f %d", 1e9 / $2, n}'; echo " $(cs_of)"; }
pgloop() { loop "$QPORT" pg; }
tpcbloop() { loop "$QPORT" tpcb; }
# hp.log is emptied first: the background start truncates it only once it
# runs, and the wait below must not find the previous arm's "ready:".
agent_on() { : > "$tmp/hp.log"; "$1" -c "$tmp/${2:-hp}.ini" 2>"$tmp/hp.log" & hp=$!
	for _ in $(seq 300); do grep -q "ready:" "$tmp/hp.log" 2>/dev/null && break
		kill -0 "$hp" 2>/dev/null || break; sleep 0.1; done
	# a variant (agent+...) may switch observation off: it must be ready
	grep -q "$(case ${2:-hp} in v*) echo "ready:" ;; *) echo "observe: watching" ;; esac)" "$tmp/hp.log" ||
		{ echo "observation did not start ($1 ${2:-}):"; ls -l "$tmp"
		ps -o pid,stat,wchan:24,etime,cmd -p "$hp"; cat "$tmp/hp.log"; exit 1; }; }
# The hook-cost arms: build/hookcost with (next to) empty programs on the
# same hooks, in place of the agent (bench/hookcost.bpf.c).
hooks_on() { : > "$tmp/hp.log"; "$OUT/hookcost" -p "$NPORT" -p "$PPORT" -p "$LPORT" -p "$QPORT" "$@" >"$tmp/hp.log" 2>&1 & hp=$!
	for _ in $(seq 300); do grep -q "attached" "$tmp/hp.log" 2>/dev/null && break
		kill -0 "$hp" 2>/dev/null || break; sleep 0.1; done
	grep -q "attached" "$tmp/hp.log" || { echo "hookcost did not attach ($*):"; ls -l "$tmp"; cat "$tmp/hp.log"
		cat /proc/"$hp"/stack; kill "$hp" 2>/dev/null; wait "$hp" || echo "exit status $?"; hp=""; exit 1; }; }
# agent+SECTION.KEY=VALUE[,SECTION.KEY=VALUE...]: hotpathd with those keys
# added to the bench's configuration (a component switched off to find
# what costs: agent+bpf.observe=no, agent+l0.load=no ...).
alt_path() {	# altN[+...] -> $ALTN
	local v="ALT${1:3:1}"
	[ -n "${!v:-}" ] || { echo "arm ${1%%+*} needs $v=path of its hotpathd" >&2; exit 2; }
	echo "${!v}"
}
variant_ini() {	# arm -> writes $tmp/<n>.ini, prints its name
	local name="v$(echo "$1" | md5sum | head -c 8)"
	echo "${1#*+}" | tr ',' '\n' | python3 -c 'import sys
ini = open(sys.argv[1]).read().splitlines()
for kv in sys.stdin.read().split():
    sk, v = kv.split("=", 1)
    sec, key = sk.split(".", 1)
    hdr = "[%s]" % sec
    if hdr not in ini:
        ini.append(hdr)
    ini.insert(ini.index(hdr) + 1, "%s = %s" % (key, v))
print("\n".join(ini))' "$tmp/hp.ini" > "$tmp/$name.ini"
	echo "$name"; }
arm_on() {
	case $1 in
	none) ;;
	burn) timeout 1.5 sh -c 'while :; do :; done' || true ;;
	agent) agent_on "$OUT/hotpathd" ;;
	agent+*) agent_on "$OUT/hotpathd" "$(variant_ini "$1")" ;;
	sysexit) hooks_on sysexit ;;
	callers) agent_on "$OUT/hotpathd" callers ;;
	base) agent_on "${BASE:?BASE=path of another hotpathd for the base arm}" ;;
	base+*) agent_on "${BASE:?BASE=path of another hotpathd for the base arm}" "$(variant_ini "$1")" ;;
	alt[1-9]) agent_on "$(alt_path "$1")" ;;
	alt[1-9]+*) agent_on "$(alt_path "$1")" "$(variant_ini "$1")" ;;
	empty) hooks_on empty_recv empty_send ;;
	empty2) hooks_on empty_rx empty_tx ;;
	unwatched) agent_on "$OUT/hotpathd" unwatched ;;
	bits) hooks_on bits_recv bits_send ;;
	pbase|pclock|pstr|pstr16|pstr64|pread|pread16|patomic) hooks_on "price_${1#p}" empty_send ;;
	rxuser) hooks_on rx_user empty_send ;;
	rxskb) hooks_on rx_skb empty_send ;;
	lines0|lines4|lines16|kpage8|vpage8) hooks_on "${1}_recv" "${1}_send" ;;
	sockmap) hooks_on enrol msg_pass skb_pass ;;
	skmsg) hooks_on enrol msg_pass ;;
	*) echo "unknown arm $1 (none burn agent agent+S.K=V callers base base+S.K=V altN altN+S.K=V empty empty2 unwatched bits pbase pclock pstr pstr16 pstr64 pread pread16 patomic rxuser rxskb lines0 lines4 lines16 kpage8 vpage8 sockmap skmsg sysexit)"; exit 2 ;;
	esac
}
# PERF=1: a cpu-clock profile (perf record -g) of the servers' core during
# each run, and at the end, per workload and arm, the kernel and BPF
# symbols that take more of it than in the baseline arm: where an arm's
# extra CPU per request goes, when the rates alone cannot say.
PERF=${PERF:-0}
perfpid=""
perf_on() { [ "$PERF" = 1 ] || return 0
	perf record -q -C 0,1 -e cpu-clock -F 1999 -g -o "${PERFDIR:-$tmp}/perf.$1" >/dev/null 2>&1 & perfpid=$!; }
perf_off() { [ -n "$perfpid" ] || return 0; kill -INT "$perfpid"; wait "$perfpid" 2>/dev/null || true; perfpid=""; }
# "share symbol" lines of one arm's profiles of one cpu (all rounds), self time.
perf_shares() { local n; n=$(ls "${PERFDIR:-$tmp}"/perf."$1".* | wc -l)
	for f in "${PERFDIR:-$tmp}"/perf."$1".*; do perf report -q -i "$f" --cpu "$2" --no-children --sort sym -g none --stdio 2>/dev/null; done |
		awk -v n="$n" '$1 ~ /%$/ {p = $1; sub("%", "", p); $1 = ""; sub(/^ +/, ""); gsub(/ /, "_"); s[$0] += p / n}
		END {for (k in s) printf "%.2f %s\n", s[k], k}'; }
arm_off() { if [ -n "$hp" ]; then kill "$hp"; wait "$hp" 2>/dev/null || true; hp=""; fi; }

# ARMS: what runs beside the workloads, each measured in every round,
# alternated: none (nothing), agent (hotpathd, every probe), empty / bits
# (the two socket tracepoints with empty programs / only the port bitmap
# test), sockmap / skmsg (sock_ops enrolment of the two ports' sockets
# into a sockhash with pass-through sk_msg + sk_skb / sk_msg only).
ARMS=${ARMS:-none agent}
WORKLOADS=${WORKLOADS:-web pg}
for a in $ARMS; do for w in $WORKLOADS; do : > "$tmp/$w.$a"; done; done
for a in $ARMS; do case $a in alt*) alt_path "$a" > /dev/null ;; esac; done
# Rounds alternate the order of the arms (ABBA): a load that drifts during
# a run then weighs on every arm alike instead of on the last ones.
rev=$(echo $ARMS | tr ' ' '\n' | tac | tr '\n' ' ')
for r in $(seq "$RUNS"); do
	order=$ARMS; [ $((r % 2)) = 0 ] && order=$rev
	for a in $order; do
		arm=$a
		arm_on "$a"
		for w in $WORKLOADS; do
			case $w in pg|pgtwin) srv=$PGM ;; *loop) srv=$$ ;; *) srv=$NGW ;; esac
			perf_on "$w.$a.$r"
			measure "$srv" "$w" >> "$tmp/$w.$a"
			perf_off
		done
		arm_off
	done
done
col() { awk -v c="$1" '{print $c}' "$2" | median; }
lost() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f%%", (a - b) / a * 100}'; }
more() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f%%", (b - a) / a * 100}'; }
base=${ARMS%% *}
# paired: the median over rounds of each round's own loss (arm against the
# baseline of the same round, measured a minute apart at most), which a
# machine whose load drifts between rounds moves less than the medians.
paired() { paste -d' ' "$1" "$2" | awk '{printf "%.4f\n", ($1 - $(NF / 2 + 1)) / $1 * 100}' | median; }
printf '%-22s %-16s %9s %9s %6s %7s  %8s %8s %7s %6s  %6s %6s %6s\n' workload arm "rate $base" "rate arm" lost paired \
	"µs/req $base" "arm" "CPU" "agent" "cs/req" "arm" "wake/s"
for w in $WORKLOADS; do
	name="nginx 1KiB, wrk -c${WRK_C:-50}"; [ "$w" = pg ] && name="pgbench $PGBENCH"
	[ "$w" = loop ] && name="sockloop (rounds/s)"
	[ "$w" = pgloop ] && name="sockloop pg (rounds/s)"
	[ "$w" = tpcbloop ] && name="sockloop tpcb (rounds/s)"
	[ "$w" = webtwin ] && name="nginx twins (1e5 A/B)"
	[ "$w" = pgtwin ] && name="pgbench twins (1e5 A/B)"
	r0=$(col 1 "$tmp/$w.$base"); u0=$(col 2 "$tmp/$w.$base"); x0=$(col 4 "$tmp/$w.$base")
	for a in $ARMS; do
		[ "$a" = "$base" ] && continue
		r1=$(col 1 "$tmp/$w.$a"); u1=$(col 2 "$tmp/$w.$a")
		printf '%-22s %-16s %9.0f %9.0f %6s %6.1f%%  %8.2f %8.2f %7s %6.2f  %6.2f %6.2f %6.0f\n' "$name" "$a" "$r0" "$r1" \
			"$(lost "$r0" "$r1")" "$(paired "$tmp/$w.$base" "$tmp/$w.$a")" "$u0" "$u1" "$(more "$u0" "$u1")" \
			"$(col 3 "$tmp/$w.$a")" "$x0" "$(col 4 "$tmp/$w.$a")" "$(col 5 "$tmp/$w.$a")"
	done
done
echo "(servers on cpu 1, clients on cpu 0$([ "$RT" = 1 ] && echo ", nginx/wrk/pgbench SCHED_FIFO"), ${SECS}s runs, median of $RUNS, arms alternated ABBA;"
echo " CPU = server + load generator + hotpathd per request; lost and CPU against the first arm, $base;"
echo " paired = median of each round's own loss; agent = its own process's CPU per request, in µs;"
echo " cs/req = context switches of server + load generator + agent per request (pg: without the backends');"
echo " wake/s = the agent's context switches per second;"
echo " runs below in round order: rate, CPU µs/request, agent's CPU µs/request, cs/request, agent cs/s,"
echo " other hotpathd instances' observe programs attached during the run)"
for w in $WORKLOADS; do for a in $ARMS; do echo "$w $a: $(tr '\n' ';' < "$tmp/$w.$a")"; done; done
if [ "$PERF" = 1 ]; then
	# The share of the server core's samples in BPF programs, helpers and
	# what they call (user reads with their usercopy checks, the
	# tracepoint dispatch, map lookups, ring buffer, the clock reads of
	# bpf_ktime_get_ns: read_tsc and its callers, which the kernel's own
	# timekeeping uses too, so the baseline's share is subtracted): the
	# observation's cost on the server, which a CPU-bound server pays in
	# throughput.
	obsre='bpf|copy_from_user_nofault|check_object_size|virt_addr_valid|check_stack_object|call_trace_sock|htab|lookup_nulls|ringbuf|sk_storage|task_storage|read_tsc|ktime_get_mono_fast_ns|pvclock_clocksource_read'
	# The baseline arm's share (the kernel's own usercopy checks, other
	# BPF programs of the host) is subtracted from the others' medians.
	for w in $WORKLOADS; do
		printf '%s: share of cpu 1 (server) in BPF programs and helpers, per round:' "$w"
		for a in $ARMS; do
			printf ' %s' "$a"
			for f in "${PERFDIR:-$tmp}"/perf."$w.$a".*; do
				perf report -q -i "$f" --cpu 1 --no-children --sort sym -g none --stdio 2>/dev/null |
					awk -v re="$obsre" '$1 ~ /%$/ && $0 ~ re {p = $1; sub("%", "", p); s += p} END {printf "%.2f\n", s}'
			done > "$tmp/share.$w.$a"
			tr '\n' ' ' < "$tmp/share.$w.$a" | sed 's/\([0-9.]*\) /\1% /g; s/^/ /; s/ $//'
		done
		echo
		for a in $ARMS; do
			[ "$a" = "$base" ] && continue
			echo "$w $a: median share $(median < "$tmp/share.$w.$a")%, less $base's $(median < "$tmp/share.$w.$base")%:" \
				"$(awk -v a="$(median < "$tmp/share.$w.$a")" -v b="$(median < "$tmp/share.$w.$base")" 'BEGIN {printf "%.2f%%", a - b}')" \
				"of the server's CPU in observation"
		done
	done
	for w in $WORKLOADS; do for c in 1 0; do
		perf_shares "$w.$base" $c | LC_ALL=C sort -k2 > "$tmp/shares.base"
		for a in $ARMS; do
			[ "$a" = "$base" ] && continue
			echo "$w $a: cpu $c's samples by symbol ($([ $c = 1 ] && echo server || echo "load generator")), % of the arm's / of $base's, largest changes:"
			perf_shares "$w.$a" $c | LC_ALL=C sort -k2 | LC_ALL=C join -1 2 -2 2 -a 1 -a 2 -e 0 -o 0,1.1,2.1 - "$tmp/shares.base" |
				awk '{d = $2 - $3; printf "  %+6.2f  %6.2f %6.2f  %s\n", d, $2, $3, $1}' |
				awk '{a = $1 < 0 ? -$1 : $1; print a, $0}' | sort -gr | head -"${PERFTOP:-25}" | cut -d' ' -f2-
		done
	done; done
fi
[ -s "$tmp/progstats" ] && { echo "BPF programs (kernel.bpf_stats_enabled):"; sort "$tmp/progstats"; }
