#!/bin/bash
# bench/tier.sh - hit ratio per tier (L1, L2 Redis, loader) on Zipf(0.99)
# reads with L1 sized to 20% of the key space. Runs bench/tier_zipf.py
# RUNS times (different seeds) and prints each result; record the median
# in docs/benchmarks.md under "Tiered cache".
#
#   bench/tier.sh                       # KEYS=20000 READS=200000 RUNS=3
#   KEYS=100000 READS=500000 bench/tier.sh
set -eu
cd "$(dirname "$0")/.."
. bench/lock.sh
RUNS=${RUNS:-3}
for i in $(seq 1 "$RUNS"); do
	echo "== run $i"
	SEED=$i taskset -c "${CLIENT_CPU:-0}" /usr/bin/python3 bench/tier_zipf.py
done
