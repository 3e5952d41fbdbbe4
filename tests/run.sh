#!/bin/bash
# tests/run.sh - run every test suite and print one closing line
# "N passed, N failed" (exit status non-zero on any failure).
#
# Suites, in order: cmocka unit tests, the same unit tests built with
# AddressSanitizer + UndefinedBehaviorSanitizer, then the integration
# tests (pytest, Debian's python3) that start hotpathd and real servers on
# free loopback ports. Counting is per test case; a test binary that
# crashes without reporting counts as one failure.
set -u
OUT=${OUT:-build}
cd "$(dirname "$0")/.."
passed=0
failed=0
failures=()

run_cmocka() {   # $1 = suite label, $2 = binary
	local out rc p f
	out=$("$2" 2>&1)
	rc=$?
	p=$(grep -aoE '^\[  PASSED  \] [0-9]+' <<<"$out" | grep -oE '[0-9]+$' | tail -1)
	f=$(grep -aoE '^\[  FAILED  \] [0-9]+' <<<"$out" | grep -oE '[0-9]+$' | tail -1)
	p=${p:-0}; f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	passed=$((passed + p)); failed=$((failed + f))
	if [ "$f" -ne 0 ]; then
		failures+=("$1 $(basename "$2")")
		echo "---- $1 $2 (exit $rc)"; echo "$out" | tail -40
	fi
	printf '  %-10s %-28s %3d passed, %d failed\n' "$1" "$(basename "$2")" "$p" "$f"
}

echo "== unit tests"
for t in "$OUT"/tests/test_*; do
	[ -x "$t" ] && run_cmocka unit "$t"
done
echo "== unit tests under ASan+UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "$OUT"/tests-asan/test_*; do
	[ -x "$t" ] && run_cmocka asan "$t"
done
unset ASAN_OPTIONS UBSAN_OPTIONS

echo "== integration tests"
if [ -d tests/integration ]; then
	log=$(mktemp)
	OUT="$OUT" /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE \
		${PYTEST_ARGS:-} tests/integration 2>&1 | tee "$log"
	summary=$(grep -aE '([0-9]+ (passed|failed|error|errors))' "$log" | tail -1)
	p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+'); p=${p:-0}
	f=$(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+'); f=${f:-0}
	e=$(grep -oE '[0-9]+ errors?' <<<"$summary" | grep -oE '[0-9]+'); e=${e:-0}
	if [ -z "$summary" ]; then f=1; fi
	passed=$((passed + p)); failed=$((failed + f + e))
	[ $((f + e)) -ne 0 ] && failures+=("integration")
	rm -f "$log"
fi

if [ ${#failures[@]} -ne 0 ]; then
	echo "failing suites: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
