/*
 * fuzz_resp.c - libFuzzer target for the RESP parser and executor.
 *
 * The input is treated as a client's byte stream: parse commands from the
 * front as the server does, run each through resp_exec() against a small
 * real L1 store, stop at the first protocol error or incomplete command.
 * Besides memory safety (ASan/UBSan), it checks the parser's contract:
 * consumed never exceeds the input, every argument lies inside the input
 * or the scratch space, and any strict prefix of a parsed command is
 * RESP_NEED_MORE (the parser is stateless; the server re-parses).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/resp_cmd.h"

#define FUZZ_ARGS 64

static struct l1 *fuzz_l1;
static struct resp_cmdstat *fuzz_stats;
static const char *fuzz_argv[FUZZ_ARGS];
static size_t fuzz_argvlen[FUZZ_ARGS];
static char fuzz_scratch[RESP_INLINE_MAX];

static void fuzz_check_args(const struct resp_cmd *cmd, const char *in, size_t len)
{
	size_t i;

	for (i = 0; i < cmd->argc; i++) {
		const char *a = cmd->argv[i];
		size_t n = cmd->argvlen[i];
		int in_buf = a >= in && a + n <= in + len;
		int in_scratch = a >= cmd->scratch && a + n <= cmd->scratch + cmd->scratch_cap;

		if (!in_buf && !in_scratch)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct resp_limits lim = { .max_args = FUZZ_ARGS, .max_bulk = 4096, .max_query = 16384 };
	struct resp_cmd cmd = { .cap = FUZZ_ARGS, .argv = fuzz_argv, .argvlen = fuzz_argvlen,
				.scratch = fuzz_scratch, .scratch_cap = sizeof(fuzz_scratch) };
	struct resp_client cl = { .id = 1 };
	struct resp_ctx ctx;
	const char *in = (const char *)data;
	size_t off = 0;
	struct buf out;
	unsigned ncmds = 0;

	if (!fuzz_l1) {
		struct l1_options o = { .max_memory = 256 * 1024, .shards = 2 };

		fuzz_l1 = l1_new(&o);
		fuzz_stats = calloc(resp_command_count(), sizeof(*fuzz_stats));
		if (!fuzz_l1 || !fuzz_stats)
			abort();
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.l1 = fuzz_l1;
	ctx.lim = lim;
	ctx.max_key_len = 512;
	ctx.max_value_size = 2048;
	ctx.max_ttl_ms = 3600 * 1000;
	ctx.stats = fuzz_stats;
	buf_init(&out, 64 * 1024);
	while (off < size && ncmds++ < 256) {
		size_t consumed = 0;
		const char *err = NULL;
		enum resp_status st = resp_parse(in + off, size - off, &lim, &cmd, &consumed, &err);

		if (st == RESP_NEED_MORE)
			break;
		if (st == RESP_PROTO_ERROR) {
			if (!err || strpbrk(err, "\r\n"))
				abort();
			break;
		}
		if (consumed == 0 || consumed > size - off)
			abort();
		if (st == RESP_DONE) {
			size_t cut;

			fuzz_check_args(&cmd, in + off, size - off);
			/* Strict prefixes wait for more (two cut points). */
			for (cut = consumed / 2; cut < consumed; cut = cut + 1 < consumed ?
								     consumed - 1 : consumed) {
				struct resp_cmd c2 = cmd;
				size_t c2n = 0;
				const char *e2 = NULL;

				if (resp_parse(in + off, cut, &lim, &c2, &c2n, &e2) != RESP_NEED_MORE)
					abort();
			}
			/* The prefix parses clobbered argv/scratch: parse again. */
			if (resp_parse(in + off, size - off, &lim, &cmd, &consumed, &err) != RESP_DONE)
				abort();
			buf_reset(&out);
			(void)!resp_exec(&ctx, &cl, &cmd, &out);
			if (cl.quit)
				break;
		}
		off += consumed;
	}
	buf_free(&out);
	/* Keep the store small and the runs independent enough. */
	if (l1_dbsize(fuzz_l1) > 2000)
		l1_flush(fuzz_l1);
	return 0;
}
