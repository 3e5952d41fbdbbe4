# bench/agent.sh - sourced by the observation benchmarks (overhead.sh,
# jitprof.sh): a free loopback port, and the head of a configuration that
# runs hotpathd for its observer (RESP and API on free ports, L0 off), its
# [bpf] section last so that a script can add keys to it.
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
