# bench/lock.sh - sourced by every bench script, first thing.
#
# Benchmarks run under `flock /tmp/hotpath-bench.lock <script>`, and flock(1)
# passes the lock's descriptor on to its command. Servers a script starts
# (redis-server, nginx, PostgreSQL, hotpathd) would inherit it, and one left
# behind by a killed run holds the bench lock for every later benchmark.
# Close it in the script: flock itself keeps the lock for the run.
for _fd in /proc/$$/fd/*; do
	case $(readlink "$_fd") in
	/tmp/hotpath-bench.lock) eval "exec ${_fd##*/}>&-" ;;
	esac
done
unset _fd
