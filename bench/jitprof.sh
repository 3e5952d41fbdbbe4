#!/bin/bash
# bench/jitprof.sh - where a server's time goes inside hotpathd's programs,
# instruction by instruction: the programs' own cost in a real server
# (their run time there is two to four times the socket loop's), which
# bpf_stats gives per program and this gives per instruction.
#
# A PostgreSQL cluster (pg: pgbench -S -c8 -j2, or PGBENCH's mode and
# clients) or nginx (web: a 1 KiB file, wrk -t1 -c50) on core 1, declared
# as a [service], its load on core 0; perf samples core 1 at 15 kHz for
# SECS seconds; the JIT images of hotpathd's observe programs are read
# back (build/jitdump) and disassembled, each instruction with its
# samples. A sample lands on the instruction after one that stalled:
# after a load, a cache line missed; at a function's first bytes, its
# code fetched.
#
#   bench/jitprof.sh [pg|web] [SECS]     # OUT=build, DIR=jitprof.out
#
# Prints the share of the core in the programs, the samples a request,
# and the instructions most samples follow; DIR keeps perf.data and
# PROGRAM.fN.dis (samples, address, bytes, instruction) of each function.
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
hp=""
cleanup() {
	[ -n "$hp" ] && kill "$hp" 2>/dev/null
	[ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null
	[ -d "$tmp/pg" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$tmp/pg" -m immediate stop >/dev/null 2>&1
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
P=$(port)
if [ "$WL" = pg ]; then
	pg_cluster "$tmp/pg" "$P" "$tmp/sock"
	proto=postgres
	load() { taskset -c 0 pgbench -h 127.0.0.1 -p "$P" -U postgres ${PGBENCH:--S -c 8 -j 2} -T "$1" postgres 2>/dev/null |
		awk '/^tps/ {print $3}'; }
else
	head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$tmp/index.html"
	printf 'worker_processes 1;\npid %s/nginx.pid;\nerror_log %s/nginx.err;\nevents { worker_connections 1024; }\nhttp { access_log off; server { listen 127.0.0.1:%s; root %s; } }\n' \
		"$tmp" "$tmp" "$P" "$tmp" > "$tmp/nginx.conf"
	taskset -c 1 nginx -c "$tmp/nginx.conf"
	proto=http
	load() { taskset -c 0 wrk -t1 -c50 -d"$1s" "http://127.0.0.1:$P/index.html" | awk '/Requests\/sec/ {print $2}'; }
fi
{ agent_ini warn /sys/fs/bpf/hotpath-jitprof; cat <<INI
observe_discover = no
[service.s]
port = $P
protocol = $proto
INI
} > "$tmp/hp.ini"
"$OUT/hotpathd" -c "$tmp/hp.ini" > "$tmp/hp.log" 2>&1 & hp=$!
sleep 4
load $((SECS + 3)) > "$tmp/rate" &
lp=$!
sleep 2
perf record -q -C 1 -F 15000 -o "$DIR/perf.data" -- sleep "$SECS" >/dev/null 2>&1
wait $lp
rm -f "$DIR"/*.bin "$DIR"/*.funcs "$DIR"/*.dis
for f in /proc/$hp/fdinfo/*; do
	id=$(awk '/^prog_id:/ {print $2}' "$f" 2>/dev/null) || continue
	[ -n "$id" ] || continue
	name=$(bpftool prog show id "$id" | awk 'NR == 1 {print $4}')
	case $name in hp_obs_*) "$OUT/jitdump" "$id" "$DIR/$name" > "$DIR/$name.funcs" ;; esac
done
echo "$WL: $(cat "$tmp/rate") requests/s during the load; perf over $SECS s of it"
python3 - "$DIR" "$(cat "$tmp/rate")" "$SECS" <<'PY'
import collections, glob, os, re, subprocess, sys
d, rate, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
out = subprocess.run(["perf", "script", "-i", d + "/perf.data", "-F", "ip,sym"],
                     capture_output=True, text=True).stdout.splitlines()
ips = collections.Counter()
for l in out:
    f = l.split()
    if len(f) >= 2 and f[1].startswith("bpf_prog_"):
        ips[int(f[0], 16)] += 1
total, ours = len(out), sum(ips.values())
per_req = lambda n: n / (rate * secs)
print("samples on core 1: %d; in the programs: %d (%.2f%% of the core, %.4f a request)"
      % (total, ours, 100.0 * ours / max(total, 1), per_req(ours)))
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
print("instructions most samples follow (the one before stalled):")
for s, name, n, ctx in sorted(stalls, key=lambda x: -x[0])[:12]:
    print("  %5d  %s f%s" % (s, name, n))
    for l in ctx:
        print("           " + re.sub(r"\s+", " ", l)[:100])
PY
