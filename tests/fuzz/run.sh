#!/bin/bash
# tests/fuzz/run.sh - run every libFuzzer target briefly and boundedly.
# FUZZ_SECONDS (default 20) per target, memory capped, corpus kept under
# $OUT/fuzz-corpus/<target> so repeated runs go deeper. Seeds, if any, come
# from tests/fuzz/seeds/<target>/. Exit non-zero if any target finds a crash.
set -u
OUT=${OUT:-build}
SECS=${FUZZ_SECONDS:-20}
cd "$(dirname "$0")/../.."
status=0
for f in "$OUT"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	corpus="$OUT/fuzz-corpus/$name"
	mkdir -p "$corpus" "$OUT/fuzz-artifacts"
	seeds=()
	[ -d "tests/fuzz/seeds/$name" ] && seeds=("tests/fuzz/seeds/$name")
	echo "== $name (${SECS}s)"
	if ! "$f" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
		-artifact_prefix="$OUT/fuzz-artifacts/$name-" -print_final_stats=1 \
		"$corpus" "${seeds[@]}" >"$OUT/fuzz-artifacts/$name.log" 2>&1; then
		echo "   FAILED: see $OUT/fuzz-artifacts/$name.log"; tail -30 "$OUT/fuzz-artifacts/$name.log"
		status=1
	else
		grep -E 'stat::number_of_executed_units|cov:' "$OUT/fuzz-artifacts/$name.log" | tail -2 | sed 's/^/   /'
	fi
done
exit $status
