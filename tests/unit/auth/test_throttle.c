/* Unit tests for src/auth/throttle.c: delay schedule, per-address and per-user penalties,
 * decay, bounded tables. The clock is driven by the tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/throttle.h"
#include "lib/limits.h"

#define MIN_MS (60ull * 1000u)
#define T0 1000000ull

static arca_throttle *new_throttle(void)
{
	arca_throttle *t = NULL;
	arca_error e;
	assert_int_equal(arca_throttle_new(&t, &e), ARCA_OK);
	assert_non_null(t);
	return t;
}

static void failed(arca_throttle *t, const char *user, const char *addr, uint64_t now)
{
	arca_throttle_record(t, user, addr, 0, now);
}

static void test_schedule(void **state)
{
	static const uint32_t want[] = {0, 0, 2000, 4000, 8000, 15000, 15000, 15000};
	arca_throttle *t = new_throttle();
	(void)state;
	for (size_t f = 0; f < sizeof(want) / sizeof(want[0]); f++) {
		assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", T0), want[f]);
		failed(t, "alice", "192.0.2.1", T0);
	}
	/* many more failures: stays capped */
	for (int i = 0; i < 1000; i++)
		failed(t, "alice", "192.0.2.1", T0);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", T0), 15000);
	arca_throttle_free(&t);
	assert_null(t);
	arca_throttle_free(&t); /* NULL is fine */
}

static void test_per_address(void **state)
{
	arca_throttle *t = new_throttle();
	(void)state;
	for (int i = 0; i < 3; i++)
		failed(t, "alice", "192.0.2.1", T0);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", T0), 4000);
	/* another address, also for the same user name: not delayed */
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.2", T0), 0);
	assert_int_equal(arca_throttle_delay_ms(t, "bob", "198.51.100.7", T0), 0);
	/* the address is penalised whatever name it tries */
	assert_int_equal(arca_throttle_delay_ms(t, "carol", "192.0.2.1", T0), 4000);
	assert_int_equal(arca_throttle_delay_ms(t, NULL, "192.0.2.1", T0), 4000);
	/* different user names from one address add up */
	failed(t, "dave", "192.0.2.1", T0);
	assert_int_equal(arca_throttle_delay_ms(t, "x", "192.0.2.1", T0), 8000);
	arca_throttle_free(&t);
}

static void test_parallel_failures(void **state)
{
	/* ten connections from one address failing at the same moment count as ten failures */
	arca_throttle *t = new_throttle();
	(void)state;
	for (int i = 0; i < 10; i++)
		assert_int_equal(arca_throttle_delay_ms(t, "alice", "203.0.113.9", T0), 0);
	for (int i = 0; i < 10; i++)
		failed(t, "alice", "203.0.113.9", T0);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "203.0.113.9", T0), 15000);
	arca_throttle_free(&t);
}

static void test_success_elsewhere_not_delayed(void **state)
{
	arca_throttle *t = new_throttle();
	(void)state;
	for (int i = 0; i < 20; i++)
		failed(t, "alice", "192.0.2.66", T0 + (uint64_t)i);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.66", T0 + 20), 15000);
	/* the real alice from home: no delay, and she logs in */
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "198.51.100.1", T0 + 20), 0);
	arca_throttle_record(t, "alice", "198.51.100.1", 1, T0 + 20);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "198.51.100.1", T0 + 21), 0);
	/* a success does not clear the address's own penalty */
	arca_throttle_record(t, "mallory", "192.0.2.66", 1, T0 + 22);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.66", T0 + 23), 15000);
	arca_throttle_free(&t);
}

static void spray(arca_throttle *t, const char *user, int first, int n, uint64_t now)
{
	char addr[32];
	for (int i = first; i < first + n; i++) {
		snprintf(addr, sizeof(addr), "10.0.%d.%d", i / 250, i % 250 + 1);
		failed(t, user, addr, now);
	}
}

static void test_user_distinct_addresses(void **state)
{
	static const uint32_t want[] = {0, 0, 0, 0, 0, 2000, 4000, 8000, 15000, 15000, 15000};
	arca_throttle *t = new_throttle();
	(void)state;
	/* one failure from each of n addresses: only the user-name penalty applies */
	for (int n = 0; n < (int)(sizeof(want) / sizeof(want[0])); n++) {
		assert_int_equal(arca_throttle_delay_ms(t, "alice", "198.51.100.200", T0), want[n]);
		spray(t, "alice", n, 1, T0);
	}
	/* repeated failures from the same addresses do not count as more distinct ones */
	arca_throttle_free(&t);
	t = new_throttle();
	for (int i = 0; i < 10; i++)
		spray(t, "bob", 0, 4, T0);
	assert_int_equal(arca_throttle_delay_ms(t, "bob", "198.51.100.200", T0), 0);
	/* other user names are not affected by the spray on alice */
	spray(t, "alice", 0, 50, T0);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "198.51.100.200", T0), 15000);
	assert_int_equal(arca_throttle_delay_ms(t, "carol", "198.51.100.200", T0), 0);
	/* the right password (after the wait) ends alice's penalty */
	arca_throttle_record(t, "alice", "198.51.100.200", 1, T0 + 15000);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "198.51.100.201", T0 + 15001), 0);
	arca_throttle_free(&t);
}

static void test_trusted_address_exempt(void **state)
{
	arca_throttle *t = new_throttle();
	(void)state;
	arca_throttle_record(t, "alice", "198.51.100.1", 1, T0);
	spray(t, "alice", 0, 20, T0 + 10 * MIN_MS);
	/* her usual address is exempt from the spray's user penalty */
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "198.51.100.1", T0 + 10 * MIN_MS), 0);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "198.51.100.2", T0 + 10 * MIN_MS), 15000);
	/* ... for a day */
	spray(t, "alice", 0, 20, T0 + 25 * 60 * MIN_MS);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "198.51.100.1", T0 + 25 * 60 * MIN_MS),
	                 15000);
	/* her own typos from that address do not feed the user penalty */
	arca_throttle_free(&t);
	t = new_throttle();
	arca_throttle_record(t, "bob", "198.51.100.1", 1, T0);
	failed(t, "bob", "198.51.100.1", T0 + 1);
	spray(t, "bob", 0, 4, T0 + 2);
	assert_int_equal(arca_throttle_delay_ms(t, "bob", "198.51.100.9", T0 + 3), 0);
	arca_throttle_free(&t);
}

/* Parallel attempts from a penalised address queue: each is answered its delay after the
 * previous one's answer; an address without failures and the pure query are not affected. */
static void test_reserve_queues_parallel_attempts(void **state)
{
	arca_throttle *t = NULL;
	(void)state;
	assert_int_equal(arca_throttle_new(&t, NULL), ARCA_OK);
	for (int i = 0; i < 3; i++) /* 3 failures: next delay 4 s */
		arca_throttle_record(t, "alice", "192.0.2.1", 0, T0);
	assert_int_equal(arca_throttle_reserve_ms(t, "alice", "192.0.2.1", T0), 4000);
	assert_int_equal(arca_throttle_reserve_ms(t, "alice", "192.0.2.1", T0), 8000);
	assert_int_equal(arca_throttle_reserve_ms(t, "bob", "192.0.2.1", T0 + 1000), 11000);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", T0), 4000);
	/* once the queue has drained, the plain delay again */
	assert_int_equal(arca_throttle_reserve_ms(t, "alice", "192.0.2.1", T0 + 60000), 4000);
	assert_int_equal(arca_throttle_reserve_ms(t, "alice", "192.0.2.9", T0), 0);
	assert_int_equal(arca_throttle_reserve_ms(t, "alice", "192.0.2.9", T0), 0);
	arca_throttle_free(&t);
}

static void test_decay(void **state)
{
	arca_throttle *t = new_throttle();
	uint64_t now = T0;
	(void)state;
	for (int i = 0; i < 4; i++)
		failed(t, "alice", "192.0.2.1", now);
	spray(t, "bob", 0, 8, now);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", now), 8000);
	assert_int_equal(arca_throttle_delay_ms(t, "bob", "192.0.2.200", now), 15000);
	/* still remembered just before 15 minutes of quiet */
	now += 15 * MIN_MS - 1;
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", now), 8000);
	assert_int_equal(arca_throttle_delay_ms(t, "bob", "192.0.2.200", now), 15000);
	/* a new failure restarts the quiet period of that address */
	failed(t, "alice", "192.0.2.1", now);
	now += 2;
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", now), 15000);
	assert_int_equal(arca_throttle_delay_ms(t, "bob", "192.0.2.200", now), 0);
	now += 15 * MIN_MS;
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", now), 0);
	/* after decay, counting starts again from zero */
	failed(t, "alice", "192.0.2.1", now);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", now), 0);
	failed(t, "alice", "192.0.2.1", now);
	assert_int_equal(arca_throttle_delay_ms(t, "alice", "192.0.2.1", now), 2000);
	/* expired entries are dropped, not just ignored */
	now += 15 * MIN_MS;
	failed(t, "zed", "192.0.2.99", now);
	{
		size_t na, nu;
		arca_throttle_counts(t, &na, &nu);
		assert_int_equal(na, 1);
		assert_int_equal(nu, 1);
	}
	arca_throttle_free(&t);
}

static void test_ipv6_prefix(void **state)
{
	arca_throttle *t = new_throttle();
	(void)state;
	/* addresses of one /64 are one source */
	failed(t, "alice", "2001:db8:1:2::1", T0);
	failed(t, "alice", "2001:db8:1:2:ffff::7", T0);
	failed(t, "alice", "2001:db8:1:2:abcd:1:2:3", T0);
	assert_int_equal(arca_throttle_delay_ms(t, "x", "2001:db8:1:2::99", T0), 4000);
	assert_int_equal(arca_throttle_delay_ms(t, "x", "2001:db8:1:3::1", T0), 0);
	/* an IPv4-mapped address is the IPv4 address */
	failed(t, "alice", "192.0.2.5", T0);
	failed(t, "alice", "::ffff:192.0.2.5", T0);
	assert_int_equal(arca_throttle_delay_ms(t, "x", "192.0.2.5", T0), 2000);
	/* text that is no address still works as a key; NULL and "" are ignored */
	failed(t, "alice", "unix-socket", T0);
	failed(t, "alice", "unix-socket", T0);
	assert_int_equal(arca_throttle_delay_ms(t, "x", "unix-socket", T0), 2000);
	failed(t, NULL, NULL, T0);
	failed(t, "", "", T0);
	arca_throttle_record(t, NULL, "192.0.2.77", 1, T0);
	assert_int_equal(arca_throttle_delay_ms(t, NULL, NULL, T0), 0);
	assert_int_equal(arca_throttle_delay_ms(NULL, "a", "b", T0), 0);
	arca_throttle_free(&t);
}

static void test_bounded_tables(void **state)
{
	arca_throttle *t = new_throttle();
	size_t na, nu;
	char addr[64], user[64];
	uint32_t over = ARCA_THROTTLE_MAX_ADDRS + 5000;
	(void)state;
	/* the first address fails twice, then many more addresses and names than the caps */
	failed(t, "victim", "172.16.0.1", T0);
	failed(t, "victim", "172.16.0.1", T0);
	for (uint32_t i = 0; i < over; i++) {
		snprintf(addr, sizeof(addr), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);
		snprintf(user, sizeof(user), "user%u", i);
		failed(t, user, addr, T0 + 1 + i / 1000);
		failed(t, user, addr, T0 + 1 + i / 1000);
		arca_throttle_counts(t, &na, &nu);
		assert_true(na <= ARCA_THROTTLE_MAX_ADDRS);
		assert_true(nu <= ARCA_THROTTLE_MAX_USERS);
	}
	arca_throttle_counts(t, &na, &nu);
	assert_int_equal(na, ARCA_THROTTLE_MAX_ADDRS);
	assert_int_equal(nu, ARCA_THROTTLE_MAX_USERS);
	/* the oldest entries were forgotten, the newest kept */
	assert_int_equal(arca_throttle_delay_ms(t, "victim", "172.16.0.1", T0 + 100), 0);
	snprintf(addr, sizeof(addr), "2001:db8:%x:%x::1", (over - 1) >> 16, (over - 1) & 0xffff);
	assert_int_equal(arca_throttle_delay_ms(t, "someone", addr, T0 + 100), 2000);
	/* a user name sprayed from far more addresses than its set holds stays at the cap */
	for (uint32_t i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "10.%u.%u.1", i >> 8, i & 0xff);
		failed(t, "sprayed", addr, T0 + 200);
	}
	assert_int_equal(arca_throttle_delay_ms(t, "sprayed", "192.0.2.1", T0 + 200), 15000);
	/* everything decays away: the tables empty as new events come in */
	failed(t, "late", "192.0.2.250", T0 + 200 + 15 * MIN_MS);
	arca_throttle_counts(t, &na, &nu);
	assert_int_equal(na, 1);
	assert_int_equal(nu, 1);
	arca_throttle_free(&t);
}

static uint32_t model_delay(uint32_t fails)
{
	static const uint32_t d[] = {0, 0, 2000, 4000, 8000};
	return fails < 5 ? d[fails] : 15000;
}

static void test_table_churn(void **state)
{
	/* failures from random addresses at random times, against a model: entries come and go
	 * (decay), and every lookup must still find exactly what was recorded */
	enum { N = 1500 };
	static struct {
		uint32_t fails;
		uint64_t last;
	} model[N];
	arca_throttle *t = new_throttle();
	char addr[32];
	uint64_t now = T0;
	unsigned seed = 12345;
	(void)state;
	memset(model, 0, sizeof(model));
	for (int round = 0; round < 60000; round++) {
		unsigned r = (seed = seed * 1103515245u + 12345u) >> 4;
		unsigned a = r % N;
		snprintf(addr, sizeof(addr), "10.2.%u.%u", a / 250, a % 250);
		now += (r >> 12) % 1500;
		if (model[a].fails > 0 && now - model[a].last >= 15 * MIN_MS)
			model[a].fails = 0;
		assert_int_equal(arca_throttle_delay_ms(t, NULL, addr, now), model_delay(model[a].fails));
		failed(t, NULL, addr, now);
		model[a].fails++;
		model[a].last = now;
	}
	arca_throttle_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_schedule),
	    cmocka_unit_test(test_per_address),
	    cmocka_unit_test(test_parallel_failures),
	    cmocka_unit_test(test_success_elsewhere_not_delayed),
	    cmocka_unit_test(test_user_distinct_addresses),
	    cmocka_unit_test(test_trusted_address_exempt),
	    cmocka_unit_test(test_reserve_queues_parallel_attempts),
	    cmocka_unit_test(test_decay),
	    cmocka_unit_test(test_ipv6_prefix),
	    cmocka_unit_test(test_bounded_tables),
	    cmocka_unit_test(test_table_churn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
