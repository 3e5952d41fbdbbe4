# bench/agent.sh - sourced by the observation benchmarks (overhead.sh,
# jitprof.sh): a free loopback port, a PostgreSQL cluster to load, and the
# head of a configuration that runs hotpathd for its observer (RESP and
# API on free ports, L0 off), its [bpf] section last so that a script can
# add keys to it.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
agent_ini() {	# log-level bpf-pin-path
	cat <<INI
[core]
log_level = $1
[resp]
listen = 127.0.0.1:$(port)
[api]
listen = 127.0.0.1:$(port)
[l0]
enabled = no
[bpf]
pin_path = $2
INI
}

# A PostgreSQL 15 cluster (PGBIN) in DIR, created, on 127.0.0.1:PORT with
# its Unix socket in SOCKDIR, on core 1 (the servers' core), holding
# pgbench's tables at scale 5.
pg_cluster() {	# dir port sockdir
	mkdir -p "$1" "$3" && chown postgres: "$1" "$3"
	runuser -u postgres -- "$PGBIN/initdb" -D "$1" --auth=trust -U postgres >/dev/null
	taskset -c 1 runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1" -l "$1/log" \
		-o "-p $2 -k $3 -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
	sleep 1
	pgbench -h 127.0.0.1 -p "$2" -U postgres -i -s 5 postgres >/dev/null 2>&1
}
