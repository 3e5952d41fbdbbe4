/*
 * hookcost - attach some of bench/hookcost.bpf.c's programs and wait for
 * SIGTERM/SIGINT; bench/overhead.sh runs it in place of hotpathd to measure
 * what a hook costs by itself (see the design paragraph there).
 *
 *   build/hookcost [-p PORT]... [-c CGROUP2-DIR] PROG...
 *
 * PROG is a program name of hookcost.bpf.c: tracepoints attach where their
 * section says, "enrol" (sock_ops) to CGROUP2-DIR (default: the cgroup v2
 * root at /sys/fs/cgroup/unified, else /sys/fs/cgroup), "msg_pass" and
 * "skb_pass" to the sockhash "enrol" fills with the sockets whose local or
 * remote port is one of the PORTs (up to four). Prints "attached" once
 * everything is in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hookcost.skel.h"

#define MAX_LINKS 8

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct bpf_link *links[MAX_LINKS] = {};
	struct hookcost_bpf *skel = NULL;
	int nlinks = 0, cg = -1, rc = 1, opt, i;
	sigset_t mask, old;
	const char *cgdir = access("/sys/fs/cgroup/unified", F_OK) == 0 ?
			    "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
	unsigned ports[4] = {}, nports = 0;

	while ((opt = getopt(argc, argv, "p:c:")) != -1) {
		if (opt == 'p' && nports < 4)
			ports[nports++] = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 'c')
			cgdir = optarg;
		else
			goto usage;
	}
	if (optind >= argc || argc - optind > MAX_LINKS)
		goto usage;
	skel = hookcost_bpf__open();
	if (!skel) {
		fprintf(stderr, "hookcost: open: %s\n", strerror(errno));
		return 1;
	}
	for (i = 0; i < 4; i++)
		skel->rodata->watch_ports[i] = ports[i];
	/* Only the programs named are loaded: the others' hooks may be
	 * missing from this kernel (tcp_sendmsg_locked before 6.16). */
	{
		struct bpf_program *p;

		bpf_object__for_each_program(p, skel->obj) {
			bool named = false;

			for (i = optind; i < argc; i++)
				named |= strcmp(bpf_program__name(p), argv[i]) == 0;
			bpf_program__set_autoload(p, named);
		}
	}
	if (hookcost_bpf__load(skel)) {
		fprintf(stderr, "hookcost: load: %s\n", strerror(errno));
		goto cleanup;
	}
	for (i = optind; i < argc; i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(skel->obj, argv[i]);
		int err = 0;

		if (!p) {
			fprintf(stderr, "hookcost: no program %s\n", argv[i]);
			goto cleanup;
		}
		switch (bpf_program__type(p)) {
		case BPF_PROG_TYPE_SOCK_OPS:
			if (cg < 0)
				cg = open(cgdir, O_RDONLY | O_DIRECTORY);
			links[nlinks] = bpf_program__attach_cgroup(p, cg);
			break;
		case BPF_PROG_TYPE_SK_MSG:
			err = bpf_prog_attach(bpf_program__fd(p), bpf_map__fd(skel->maps.socks),
					      BPF_SK_MSG_VERDICT, 0);
			break;
		case BPF_PROG_TYPE_SK_SKB:
			err = bpf_prog_attach(bpf_program__fd(p), bpf_map__fd(skel->maps.socks),
					      BPF_SK_SKB_STREAM_VERDICT, 0);
			break;
		default:
			links[nlinks] = bpf_program__attach(p);
			break;
		}
		if (err || (!links[nlinks] && bpf_program__type(p) != BPF_PROG_TYPE_SK_MSG &&
			    bpf_program__type(p) != BPF_PROG_TYPE_SK_SKB)) {
			fprintf(stderr, "hookcost: attach %s: %s\n", argv[i], strerror(errno));
			goto cleanup;
		}
		if (links[nlinks])
			nlinks++;
	}
	/* Blocked until sigsuspend: a signal between the test and the wait
	 * would otherwise be taken before pause() and wait forever. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, &old);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("attached\n");
	fflush(stdout);
	while (!stop)
		sigsuspend(&old);
	printf("hits %llu\n", (unsigned long long)skel->bss->hits);
	rc = 0;
cleanup:
	for (i = 0; i < nlinks; i++)
		bpf_link__destroy(links[i]);
	if (cg >= 0)
		close(cg);
	hookcost_bpf__destroy(skel);
	return rc;
usage:
	fprintf(stderr, "usage: hookcost [-p PORT]... [-c CGROUP2-DIR] PROG...\n");
	return 2;
}
