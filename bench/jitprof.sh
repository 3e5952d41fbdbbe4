#!/bin/bash
# bench/jitprof.sh - where a server's time goes inside hotpathd's programs,
# instruction by instruction: the programs' own cost in a real server
# (their run time there is two to four times the socket loop's), which
# bpf_stats gives per program and this gives per instruction.
#
# A PostgreSQL cluster (pg: pgbench -S -c8 -j2, or PGBENCH's mode and
# clients) or nginx (web: a 1 KiB file, wrk -t1 -c50) on core 1, declared
# as a [service], its load on core 0; perf samples core 1 at 15 kHz
# (FREQ) for SECS seconds; the JIT images of hotpathd's observe programs
# are read back (build/jitdump) and disassembled, each instruction with its
# samples. A sample lands on the instruction after one that stalled:
# after a load, a cache line missed; at a function's first bytes, its
# code fetched.
#
#   bench/jitprof.sh [pg|web] [SECS]     # OUT=build, DIR=jitprof.out
#
# Prints the share of the core in the programs, the samples a request,
# the C lines most samples fall on (SRCLINES of them, 15 unless set; from
# the programs' line info, which jitdump writes to PROGRAM.lines), and
# the instructions most samples follow; DIR keeps perf.data and
# PROGRAM.fN.dis (samples, address, bytes, instruction) of each function.
#
# TWINS=1: the servers of bench/overhead.sh's twins (webtwin, pgtwin): a
# second nginx (PostgreSQL cluster) on core 1 beside the first, loaded at
# the same moment, not a [service]; nginx under wrk -c400 (WRK_C). The
# samples are split by server (nginx's worker; the backends, children of
# each postmaster), and the symbols are listed by how many more samples
# a request the first takes than its twin (in the twin's requests): where
# observing the first costs it, the misses our programs take for the
# kernel (its copy then cheaper) netted out. The per-instruction part
# counts the first's samples only. DIR/symbols.tsv keeps each server's
# samples per 1000 of its requests by symbol, for bench/jitdiff.py.
#
# NOAGENT=1 (with TWINS=1): the same load and profile without hotpathd,
# the baseline against which bench/jitdiff.py prices what the twin, which
# only pays the tracepoints' dispatch and the port test, pays in situ:
#   TWINS=1 NOAGENT=1 DIR=a bench/jitprof.sh web 15; TWINS=1 DIR=b bench/jitprof.sh web 15
#   bench/jitdiff.py a -- b
#
# FREQ: perf's sampling rate (15000). At 15 kHz the twins' split puts an
# excess of interrupts-off time (_raw_spin_unlock_irqrestore) on the
# observed server that 5 kHz does not show: compare the kernel's symbols
# at FREQ=5000 (docs/benchmarks.md, "The programs' samples by C line").
set -eu
cd "$(dirname "$0")/.."
. bench/lock.sh
. bench/agent.sh
WL=${1:-pg}
SECS=${2:-10}
OUT=${OUT:-build}
DIR=${DIR:-jitprof.out}
PGBIN=/usr/lib/postgresql/15/bin
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
[ "$WL" = web ] && for t in nginx wrk; do
	command -v "$t" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
done
mkdir -p "$DIR"
tmp=$(mktemp -d)
chmod 755 "$tmp"
TWINS=${TWINS:-0}
servers=1; [ "$TWINS" = 1 ] && servers="1 2"
hp=""
cleanup() {
	[ -n "$hp" ] && kill "$hp" 2>/dev/null
	for i in 1 2; do
		[ -f "$tmp/nginx$i.pid" ] && kill "$(cat "$tmp/nginx$i.pid")" 2>/dev/null
		[ -d "$tmp/pg$i" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$tmp/pg$i" -m immediate stop >/dev/null 2>&1
	done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
P=$(port); P2=$(port)
port_of() { [ "$1" = 1 ] && echo "$P" || echo "$P2"; }
if [ "$WL" = pg ]; then
	for i in $servers; do pg_cluster "$tmp/pg$i" "$(port_of $i)" "$tmp/sock"; done
	proto=postgres
	load() { taskset -c 0 pgbench -h 127.0.0.1 -p "$(port_of "$2")" -U postgres ${PGBENCH:--S -c 8 -j 2} -T "$1" postgres 2>/dev/null |
		awk '/^tps/ {print $3}'; }
	# the server's processes: the backends (children of the postmaster)
	pids() { pgrep -P "$(head -1 "$tmp/pg$1/postmaster.pid")" | tr '\n' ,; }
else
	head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$tmp/index.html"
	for i in $servers; do
		printf 'worker_processes 1;\npid %s/nginx%s.pid;\nerror_log %s/nginx%s.err;\nevents { worker_connections 1024; }\nhttp { access_log off; server { listen 127.0.0.1:%s; root %s; } }\n' \
			"$tmp" "$i" "$tmp" "$i" "$(port_of $i)" "$tmp" > "$tmp/nginx$i.conf"
		taskset -c 1 nginx -c "$tmp/nginx$i.conf"
	done
	proto=http
	WRK_C=${WRK_C:-$([ "$TWINS" = 1 ] && echo 400 || echo 50)}
	load() { taskset -c 0 wrk -t1 -c"$WRK_C" -d"$1s" "http://127.0.0.1:$(port_of "$2")/index.html" | awk '/Requests\/sec/ {print $2}'; }
	pids() { pgrep -f "nginx: worker" -P "$(cat "$tmp/nginx$1.pid")" | tr '\n' ,; }
fi
{ agent_ini warn /sys/fs/bpf/hotpath-jitprof; cat <<INI
observe_discover = no
[service.s]
port = $P
protocol = $proto
INI
} > "$tmp/hp.ini"
if [ "${NOAGENT:-0}" = 1 ]; then
	[ "$TWINS" = 1 ] || { echo "NOAGENT=1 needs TWINS=1" >&2; exit 2; }
else
	"$OUT/hotpathd" -c "$tmp/hp.ini" > "$tmp/hp.log" 2>&1 & hp=$!
fi
sleep 4
lps=""
for i in $servers; do load $((SECS + 3)) "$i" > "$tmp/rate$i" & lps="$lps $!"; done
sleep 2
perf record -q -C 1 -F "${FREQ:-15000}" -o "$DIR/perf.data" -- sleep "$SECS" >/dev/null 2>&1 & pp=$!
sleep 2     # PostgreSQL's backends are there once pgbench has connected
for i in $servers; do pids "$i" > "$tmp/pids$i"; done
wait $pp
wait $lps
rm -f "$DIR"/*.bin "$DIR"/*.funcs "$DIR"/*.dis "$DIR"/*.lines
for f in ${hp:+/proc/$hp/fdinfo/*}; do
	id=$(awk '/^prog_id:/ {print $2}' "$f" 2>/dev/null) || continue
	[ -n "$id" ] || continue
	name=$(bpftool prog show id "$id" | awk 'NR == 1 {print $4}')
	case $name in hp_obs_*) "$OUT/jitdump" "$id" "$DIR/$name" > "$DIR/$name.funcs" ;; esac
done
if [ "$TWINS" = 1 ]; then
	echo "$WL twins$([ "${NOAGENT:-0}" = 1 ] && echo " (no hotpathd)"): $(cat "$tmp/rate1") and $(cat "$tmp/rate2") requests/s during the load (first, twin); perf over $SECS s of it"
else
	echo "$WL: $(cat "$tmp/rate1") requests/s during the load; perf over $SECS s of it"
fi
python3 - "$DIR" "$SECS" "$tmp/rate1" "$tmp/pids1" "$tmp/rate2" "$tmp/pids2" <<'PY'
import bisect, collections, glob, os, re, subprocess, sys
d, secs = sys.argv[1], float(sys.argv[2])
rd = lambda f: open(f).read().strip() if os.path.exists(f) else ""
rate, twin_rate = float(rd(sys.argv[3])), float(rd(sys.argv[5]) or 0)
first, twin = set(rd(sys.argv[4]).split(",")) - {""}, set(rd(sys.argv[6]).split(",")) - {""}
out = subprocess.run(["perf", "script", "-i", d + "/perf.data", "-F", "pid,ip,sym"],
                     capture_output=True, text=True).stdout.splitlines()
ips = collections.Counter()
syms = {"first": collections.Counter(), "twin": collections.Counter()}
for l in out:
    f = l.split(None, 2)
    if len(f) < 3:
        continue
    sym = f[2].strip()
    side = "first" if f[0] in first else "twin" if f[0] in twin else None
    if side:
        # a program's symbol carries its tag, which changes with the build
        syms[side][re.sub(r"^bpf_prog_[0-9a-f]+_", "bpf_prog_", sym)] += 1
    if sym.startswith("bpf_prog_") and (not twin or side == "first"):
        ips[int(f[1], 16)] += 1
total, ours = len(out), sum(ips.values())
per_req = lambda n: n / (rate * secs)
print("samples on core 1: %d; in the programs%s: %d (%.2f%% of the core, %.4f a request)"
      % (total, " (the first's)" if twin else "", ours, 100.0 * ours / max(total, 1), per_req(ours)))
with open(d + "/symbols.tsv", "w") as o:
    for side, r in (("first", rate), ("twin", twin_rate)):
        for k, v in syms[side].items():
            if r:
                o.write("%s\t%s\t%.4f\n" % (side, k, v * 1000.0 / (r * secs)))
if twin:
    a, b = sum(syms["first"].values()), sum(syms["twin"].values())
    print("the first's samples a request %.2f%% more than its twin's (%d and %d samples)"
          % ((a / rate) / (b / twin_rate) * 100 - 100, a, b))
    print("symbols by the first's samples (in the twin's requests) less the twin's, and their share of its samples:")
    rows = [(syms["first"][k] * twin_rate / rate - syms["twin"][k], k) for k in set(syms["first"]) | set(syms["twin"])]
    for x, k in sorted(rows, key=lambda r: -abs(r[0]))[:int(os.environ.get("SYMS", "20"))]:
        print("  %+7.0f %+6.2f%%  %s" % (x, 100.0 * x / b, k))
stalls = []
for funcs in sorted(glob.glob(d + "/*.funcs")):
    name = os.path.basename(funcs)[:-6]
    img = open(d + "/" + name + ".bin", "rb").read()
    off = 0
    for line in open(funcs):
        _, n, _, addr, _, ln = line.split()
        addr, ln = int(addr, 16), int(ln)
        fn = "%s/%s.f%s" % (d, name, n)
        open(fn + ".bin", "wb").write(img[off:off + ln])
        off += ln
        dis = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64",
                              "--adjust-vma=%#x" % addr, fn + ".bin"],
                             capture_output=True, text=True).stdout.splitlines()
        os.unlink(fn + ".bin")
        rows = []
        for l in dis:
            m = re.match(r"\s*([0-9a-f]+):\t", l)
            if m:
                rows.append((ips.get(int(m.group(1), 16), 0), l.strip()))
        n_s = sum(r[0] for r in rows)
        if not n_s:
            continue
        with open(fn + ".dis", "w") as o:
            for s, l in rows:
                o.write("%6d  %s\n" % (s, l))
        print("  %-16s f%-3s %5d bytes %6d samples (%.4f a request)" % (name, n, ln, n_s, per_req(n_s)))
        for i, (s, l) in enumerate(rows):
            if s:
                stalls.append((s, name, n, [r[1] for r in rows[max(0, i - 2):i + 1]]))
# Samples by C line (jitdump's NAME.lines: each line's first instruction)
src = collections.Counter()
text = {}
for lines in sorted(glob.glob(d + "/*.lines")):
    ranges = []
    for l in open(lines[:-6] + ".funcs"):
        f = l.split()
        ranges.append((int(f[3], 16), int(f[3], 16) + int(f[5])))
    ent = []
    for l in open(lines):
        f = l.rstrip("\n").split(" ", 2)
        if len(f) == 3:
            ent.append((int(f[0], 16), f[1], f[2].strip()))
    ent.sort()
    addrs = [e[0] for e in ent]
    for ip, n in ips.items():
        i = bisect.bisect_right(addrs, ip) - 1
        if i >= 0 and any(a <= ip < b for a, b in ranges):
            src[ent[i][1]] += n
            text[ent[i][1]] = ent[i][2]
if src:
    print("C lines by the programs' samples (samples, share, file:line, line):")
    for ln, n in src.most_common(int(os.environ.get("SRCLINES", "15"))):
        print("  %5d %5.1f%%  %-20s %s" % (n, 100.0 * n / max(ours, 1), ln, text[ln][:80]))
print("instructions most samples follow (the one before stalled):")
for s, name, n, ctx in sorted(stalls, key=lambda x: -x[0])[:12]:
    print("  %5d  %s f%s" % (s, name, n))
    for l in ctx:
        print("           " + re.sub(r"\s+", " ", l)[:100])
PY
