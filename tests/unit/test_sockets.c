/* test_sockets.c - /proc/net/tcp line parsing and the live listener scan. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include "hotpath/sockets.h"

static int parse(const char *line, struct sock_listener *l)
{
	return sockets_parse_line(line, strlen(line), l);
}

static void test_parse_v4(void **state)
{
	struct sock_listener l;

	(void)state;
	assert_int_equal(parse("  sl  local_address rem_address   st tx_queue rx_queue tr "
			       "tm->when retrnsmt   uid  timeout inode", &l), 0);
	assert_int_equal(parse("   0: 0100007F:1951 00000000:0000 0A 00000000:00000000 "
			       "00:00000000 00000000     0        0 123456 1 0000000000000000 "
			       "100 0 0 10 0", &l), 1);
	assert_int_equal(l.port, 6481);
	assert_int_equal(l.inode, 123456);
	assert_int_equal(l.v6, 0);
	assert_int_equal(l.addr[0], 127);
	assert_int_equal(l.addr[3], 1);
	/* ESTABLISHED (01) is not a listener */
	assert_int_equal(parse("   1: 0100007F:1951 0100007F:C350 01 00000000:00000000 "
			       "00:00000000 00000000     0        0 777 1", &l), 0);
}

static void test_parse_v6(void **state)
{
	struct sock_listener l;

	(void)state;
	assert_int_equal(parse("   0: 00000000000000000000000001000000:0050 "
			       "00000000000000000000000000000000:0000 0A 00000000:00000000 "
			       "00:00000000 00000000     0        0 42 1", &l), 1);
	assert_int_equal(l.v6, 1);
	assert_int_equal(l.port, 80);
	assert_int_equal(l.addr[15], 1);     /* ::1 */
	assert_int_equal(l.inode, 42);
}

static void test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"", "garbage", "0:", "   0: 0100007F", "   0: 0100007F:ZZZZ 00000000:0000 0A",
		"   0: 0100007F:1951 00000000:0000 0A 00000000:00000000 00:00000000",
		"   0: 0100007F:1951 00000000:0000 0A 1 2 3 4 5 x",
		"   0: 0100007F:1951 0000:0000 0A 1 2 3 4 5 6",
		"   0: 0100007F:1951 00000000:0000 0A 1 2 3 4 5 99999999999999999999999",
	};
	struct sock_listener l;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &l), -EINVAL);
}

static void test_live_port_pid(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t sl = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
	assert_int_equal(sockets_port_pid(ntohs(a.sin_port)), getpid());
	close(fd);
	assert_int_equal(sockets_port_pid(ntohs(a.sin_port)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v4),
		cmocka_unit_test(test_parse_v6),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_live_port_pid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
