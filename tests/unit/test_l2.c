/*
 * test_l2.c - the pure parts of the L2 client: CRC16-XMODEM and key slots
 * (values Redis itself computes) and cluster redirect parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/l2.h"

static void test_crc16_and_slots(void **state)
{
	(void)state;
	/* the check value of CRC-16/XMODEM, as in the Redis Cluster spec */
	assert_int_equal(l2_crc16("123456789", 9), 0x31C3);
	assert_int_equal(l2_crc16("", 0), 0);
	/* CLUSTER KEYSLOT answers of redis-server 7.0 */
	assert_int_equal(l2_key_slot("foo", 3), 12182);
	assert_int_equal(l2_key_slot("bar", 3), 5061);
	assert_int_equal(l2_key_slot("key:5", 5), 6789);
	/* hash tags: the first {...} with something inside decides */
	assert_int_equal(l2_key_slot("{user1000}.following", 20), l2_key_slot("user1000", 8));
	assert_int_equal(l2_key_slot("{u1}:a", 6), l2_key_slot("{u1}:b", 6));
	assert_int_equal(l2_key_slot("foo{}{bar}", 10), l2_key_slot("foo{}{bar}", 10));
	assert_int_equal(l2_key_slot("foo{}{bar}", 10), l2_crc16("foo{}{bar}", 10) & 16383);
	assert_int_equal(l2_key_slot("foo{{bar}}zap", 13), l2_key_slot("{bar", 4));
	assert_int_equal(l2_key_slot("foo{bar}{zap}", 13), l2_key_slot("bar", 3));
	assert_int_equal(l2_key_slot("no}close{", 9), l2_crc16("no}close{", 9) & 16383);
}

static void test_redirects(void **state)
{
	char host[64];
	unsigned slot;
	uint16_t port;

	(void)state;
	assert_true(l2_parse_redirect("MOVED 3999 127.0.0.1:6381", "MOVED", &slot, host,
				      sizeof(host), &port));
	assert_int_equal(slot, 3999);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6381);
	assert_true(l2_parse_redirect("ASK 0 [::1]:7000", "ASK", &slot, host, sizeof(host), &port));
	assert_int_equal(slot, 0);
	assert_string_equal(host, "::1");
	assert_false(l2_parse_redirect("MOVED 16384 127.0.0.1:6381", "MOVED", &slot, host,
				       sizeof(host), &port));
	assert_false(l2_parse_redirect("MOVED 12 127.0.0.1:0", "MOVED", &slot, host,
				       sizeof(host), &port));
	assert_false(l2_parse_redirect("MOVED 12 127.0.0.1:99999", "MOVED", &slot, host,
				       sizeof(host), &port));
	assert_false(l2_parse_redirect("MOVED x 127.0.0.1:6381", "MOVED", &slot, host,
				       sizeof(host), &port));
	assert_false(l2_parse_redirect("MOVED 12", "MOVED", &slot, host, sizeof(host), &port));
	assert_false(l2_parse_redirect("ASK 12 h:1", "MOVED", &slot, host, sizeof(host), &port));
	assert_false(l2_parse_redirect("MOVEDX 12 h:1", "MOVED", &slot, host, sizeof(host), &port));
	assert_false(l2_parse_redirect("ERR wrong", "MOVED", &slot, host, sizeof(host), &port));
	assert_false(l2_parse_redirect("", "ASK", &slot, host, sizeof(host), &port));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc16_and_slots),
		cmocka_unit_test(test_redirects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
