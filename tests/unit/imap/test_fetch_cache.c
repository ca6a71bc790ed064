/* The FETCH cache (src/imap/fetch_cache.h): lookups and copies, the byte bound and CLOCK
 * eviction, the size limit of one entry, disabling and re-enabling, and concurrent use by
 * threads (values checked on every hit; CI runs it under ASan+UBSan, and it passes under
 * ThreadSanitizer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "imap/fetch_cache.h"

/* A value that says which key it belongs to (fixed width: every entry of one pad has the
 * same size); pad makes it longer. */
typedef struct {
	char env[96], body[64], bs[4096];
	arca_imap_fcache_val v;
} value;

static void make_value(value *x, uint32_t store_id, uint64_t msg_id, size_t pad)
{
	int n = snprintf(x->env, sizeof(x->env), "(\"env\" %08u %08llu)", store_id, (unsigned long long)msg_id);
	int m = snprintf(x->body, sizeof(x->body), "(\"body\" %08u)", store_id);
	if (pad > sizeof(x->bs) - 1)
		pad = sizeof(x->bs) - 1;
	memset(x->bs, 'a' + (int)(msg_id % 26), pad);
	memset(&x->v, 0, sizeof(x->v));
	x->v.envelope = x->env;
	x->v.envelope_len = (size_t)n;
	x->v.body = x->body;
	x->v.body_len = (size_t)m;
	x->v.bodystructure = x->bs;
	x->v.bodystructure_len = pad;
	x->v.has_date = msg_id % 2 == 0;
	x->v.date = (int64_t)msg_id * 1000;
	x->v.tz = -(int)(msg_id % 720);
	x->v.size = msg_id * 7 + store_id;
}

/* The cached value of (store_id, msg_id) equals what make_value makes (with pad). */
static bool check_value(const arca_imap_fcache_val *got, uint32_t store_id, uint64_t msg_id, size_t pad)
{
	value want;
	make_value(&want, store_id, msg_id, pad);
	return got->envelope_len == want.v.envelope_len &&
	       memcmp(got->envelope, want.v.envelope, got->envelope_len) == 0 &&
	       got->body_len == want.v.body_len && memcmp(got->body, want.v.body, got->body_len) == 0 &&
	       got->bodystructure_len == want.v.bodystructure_len &&
	       memcmp(got->bodystructure, want.v.bodystructure, got->bodystructure_len) == 0 &&
	       got->has_date == want.v.has_date && got->date == want.v.date && got->tz == want.v.tz &&
	       got->size == want.v.size;
}

static void put(arca_imap_fcache *c, uint32_t store_id, uint64_t msg_id, size_t pad)
{
	value x;
	make_value(&x, store_id, msg_id, pad);
	arca_imap_fcache_put(c, store_id, msg_id, &x.v);
}

static bool has(arca_imap_fcache *c, uint32_t store_id, uint64_t msg_id)
{
	return arca_imap_fcache_get(c, store_id, msg_id, NULL, NULL);
}

/* What one entry with pad bytes of BODYSTRUCTURE counts against the bound. */
static size_t entry_bytes(size_t pad)
{
	arca_imap_fcache *c = NULL;
	arca_imap_fcache_stats st;
	assert_int_equal(arca_imap_fcache_new(1u << 20, &c, NULL), ARCA_OK);
	put(c, 1, 1, pad);
	arca_imap_fcache_stats_get(c, &st);
	arca_imap_fcache_free(&c);
	assert_int_equal(st.entries, 1);
	return st.bytes;
}

static void test_put_get(void **state)
{
	arca_imap_fcache *c = NULL;
	arca_imap_fcache_val v;
	arca_imap_fcache_stats st;
	arca_buf out;
	value x;
	(void)state;
	arca_buf_init(&out, 1u << 20);
	assert_int_equal(arca_imap_fcache_new(1u << 20, &c, NULL), ARCA_OK);
	assert_true(arca_imap_fcache_enabled(c));
	assert_false(arca_imap_fcache_get(c, 1, 5, &out, &v));
	put(c, 1, 5, 100);
	put(c, 2, 5, 200); /* same message id in another store: another message */
	assert_true(arca_imap_fcache_get(c, 1, 5, &out, &v));
	assert_true(check_value(&v, 1, 5, 100));
	assert_true(arca_imap_fcache_get(c, 2, 5, &out, &v));
	assert_true(check_value(&v, 2, 5, 200));
	assert_false(arca_imap_fcache_get(c, 3, 5, &out, &v));
	assert_false(arca_imap_fcache_get(c, 1, 6, &out, &v));
	/* a second put of a present key keeps the first value */
	make_value(&x, 1, 5, 300);
	arca_imap_fcache_put(c, 1, 5, &x.v);
	assert_true(arca_imap_fcache_get(c, 1, 5, &out, &v));
	assert_true(check_value(&v, 1, 5, 100));
	/* empty strings are values too */
	memset(&x.v, 0, sizeof(x.v));
	x.v.size = 42;
	arca_imap_fcache_put(c, 9, 9, &x.v);
	assert_true(arca_imap_fcache_get(c, 9, 9, &out, &v));
	assert_int_equal(v.envelope_len + v.body_len + v.bodystructure_len, 0);
	assert_false(v.has_date);
	assert_int_equal(v.size, 42);
	/* an output buffer too small for the entry is a miss, not a partial copy */
	arca_buf_free(&out);
	arca_buf_init(&out, 50);
	assert_false(arca_imap_fcache_get(c, 2, 5, &out, &v));
	assert_true(has(c, 2, 5));
	arca_imap_fcache_stats_get(c, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.inserts, 3);
	assert_int_equal(st.evictions, 0);
	assert_true(st.hits >= 5);
	assert_true(st.misses >= 4);
	arca_buf_free(&out);
	arca_imap_fcache_free(&c);
	assert_null(c);
	arca_imap_fcache_free(&c);
	arca_imap_fcache_free(NULL);
}

/* Many entries, more than the table's first size: all there while they fit. */
static void test_many_entries(void **state)
{
	arca_imap_fcache *c = NULL;
	arca_imap_fcache_val v;
	arca_imap_fcache_stats st;
	arca_buf out;
	(void)state;
	arca_buf_init(&out, 1u << 20);
	assert_int_equal(arca_imap_fcache_new(64u << 20, &c, NULL), ARCA_OK);
	for (uint64_t i = 1; i <= 20000; i++)
		put(c, (uint32_t)(i % 3 + 1), i, 10);
	for (uint64_t i = 1; i <= 20000; i++) {
		assert_true(arca_imap_fcache_get(c, (uint32_t)(i % 3 + 1), i, &out, &v));
		assert_true(check_value(&v, (uint32_t)(i % 3 + 1), i, 10));
		assert_false(has(c, (uint32_t)((i + 1) % 3 + 1), i));
	}
	arca_imap_fcache_stats_get(c, &st);
	assert_int_equal(st.entries, 20000);
	assert_int_equal(st.evictions, 0);
	assert_true(st.bytes <= st.max_bytes);
	arca_buf_free(&out);
	arca_imap_fcache_free(&c);
}

static void test_eviction_bound(void **state)
{
	size_t b = entry_bytes(500), fit = 16;
	arca_imap_fcache *c = NULL;
	arca_imap_fcache_stats st;
	size_t present = 0;
	(void)state;
	assert_int_equal(arca_imap_fcache_new(fit * b, &c, NULL), ARCA_OK);
	for (uint64_t i = 1; i <= 1000; i++) {
		put(c, 1, i, 500);
		arca_imap_fcache_stats_get(c, &st);
		assert_true(st.bytes <= fit * b);
		assert_true(has(c, 1, i)); /* the newest is always kept */
	}
	arca_imap_fcache_stats_get(c, &st);
	assert_int_equal(st.entries, fit);
	assert_int_equal(st.bytes, fit * b);
	assert_int_equal(st.evictions, 1000 - fit);
	for (uint64_t i = 1; i <= 1000; i++)
		present += has(c, 1, i);
	assert_int_equal(present, fit);
	/* a smaller bound evicts at once */
	arca_imap_fcache_set_limit(c, 4 * b + b / 2);
	arca_imap_fcache_stats_get(c, &st);
	assert_true(st.bytes <= 4 * b + b / 2);
	assert_int_equal(st.entries, 4);
	arca_imap_fcache_free(&c);
}

/* CLOCK: an entry used since the hand last passed gets a second chance. */
static void test_clock_second_chance(void **state)
{
	size_t b = entry_bytes(100);
	arca_imap_fcache *c = NULL;
	(void)state;
	assert_int_equal(arca_imap_fcache_new(8 * b, &c, NULL), ARCA_OK);
	for (uint64_t i = 1; i <= 8; i++)
		put(c, 1, i, 100);
	assert_true(has(c, 1, 1)); /* a use of 1 */
	put(c, 1, 9, 100);         /* evicts 2, the oldest unused */
	assert_true(has(c, 1, 1));
	assert_false(has(c, 1, 2));
	assert_true(has(c, 1, 3));
	assert_true(has(c, 1, 9));
	/* every bit now set: the hand clears them all in one turn and takes the entry it started
	 * at (the oldest) */
	for (uint64_t i = 1; i <= 9; i++)
		(void)has(c, 1, i);
	put(c, 1, 10, 100);
	assert_false(has(c, 1, 3));
	assert_true(has(c, 1, 4));
	assert_true(has(c, 1, 10));
	arca_imap_fcache_free(&c);
}

/* An entry over an eighth of the bound is not kept and evicts nothing. */
static void test_too_large(void **state)
{
	size_t b = entry_bytes(3000);
	arca_imap_fcache *c = NULL;
	arca_imap_fcache_stats st;
	(void)state;
	assert_int_equal(arca_imap_fcache_new(8 * b - 1, &c, NULL), ARCA_OK);
	put(c, 1, 1, 10);
	put(c, 1, 2, 3000);
	assert_true(has(c, 1, 1));
	assert_false(has(c, 1, 2));
	arca_imap_fcache_set_limit(c, 8 * b);
	put(c, 1, 2, 3000);
	assert_true(has(c, 1, 2));
	arca_imap_fcache_stats_get(c, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evictions, 0);
	arca_imap_fcache_free(&c);
}

static void test_disabled(void **state)
{
	arca_imap_fcache *c = NULL;
	arca_imap_fcache_val v;
	arca_imap_fcache_stats st;
	arca_buf out;
	(void)state;
	arca_buf_init(&out, 1u << 20);
	/* NULL is a cache that is always empty */
	assert_false(arca_imap_fcache_enabled(NULL));
	put(NULL, 1, 1, 10);
	assert_false(arca_imap_fcache_get(NULL, 1, 1, &out, &v));
	arca_imap_fcache_set_limit(NULL, 100);
	arca_imap_fcache_stats_get(NULL, &st);
	assert_int_equal(st.entries, 0);

	assert_int_equal(arca_imap_fcache_new(0, &c, NULL), ARCA_OK);
	assert_false(arca_imap_fcache_enabled(c));
	put(c, 1, 1, 10);
	assert_false(arca_imap_fcache_get(c, 1, 1, &out, &v));
	arca_imap_fcache_stats_get(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	/* enabled at run time (SIGHUP), then disabled again: emptied */
	arca_imap_fcache_set_limit(c, 1u << 20);
	assert_true(arca_imap_fcache_enabled(c));
	put(c, 1, 1, 10);
	assert_true(arca_imap_fcache_get(c, 1, 1, &out, &v));
	assert_true(check_value(&v, 1, 1, 10));
	arca_imap_fcache_set_limit(c, 0);
	assert_false(arca_imap_fcache_enabled(c));
	assert_false(has(c, 1, 1));
	arca_imap_fcache_stats_get(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	arca_imap_fcache_set_limit(c, 1u << 20);
	assert_false(has(c, 1, 1));
	arca_buf_free(&out);
	arca_imap_fcache_free(&c);
}

#define THREADS 4
#define KEYS 3000u
#define ROUNDS 40000u

typedef struct {
	arca_imap_fcache *c;
	unsigned seed;
	size_t bad, hits;
} worker;

static void *work(void *p)
{
	worker *w = p;
	arca_buf out;
	arca_imap_fcache_val v;
	arca_buf_init(&out, 1u << 20);
	for (unsigned i = 0; i < ROUNDS; i++) {
		uint64_t msg_id;
		uint32_t store_id;
		w->seed = w->seed * 1103515245u + 12345u;
		msg_id = (w->seed >> 8) % KEYS + 1;
		store_id = (uint32_t)(msg_id % 2 + 1);
		if (arca_imap_fcache_get(w->c, store_id, msg_id, &out, &v)) {
			w->hits++;
			w->bad += !check_value(&v, store_id, msg_id, msg_id % 700);
		} else {
			put(w->c, store_id, msg_id, msg_id % 700);
		}
		if (i % 10000 == 9999) /* a reload shrinking and growing the bound */
			arca_imap_fcache_set_limit(w->c, i % 20000 == 9999 ? 256u * 1024u : 1024u * 1024u);
	}
	arca_buf_free(&out);
	return NULL;
}

static void test_threads(void **state)
{
	arca_imap_fcache *c = NULL;
	arca_imap_fcache_stats st;
	pthread_t t[THREADS];
	worker w[THREADS];
	size_t hits = 0;
	(void)state;
	/* about a third of the keys fit: hits, misses and evictions all the time */
	assert_int_equal(arca_imap_fcache_new(1024u * 1024u, &c, NULL), ARCA_OK);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (worker){.c = c, .seed = (unsigned)i * 7919u + 1u};
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].bad, 0);
		hits += w[i].hits;
	}
	arca_imap_fcache_stats_get(c, &st);
	assert_true(st.bytes <= st.max_bytes);
	assert_int_equal(st.hits, hits);
	assert_int_equal(st.hits + st.misses, (uint64_t)THREADS * ROUNDS);
	assert_true(st.hits > 0);
	assert_true(st.evictions > 0);
	assert_int_equal(st.inserts - st.evictions, st.entries);
	arca_imap_fcache_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get),
		cmocka_unit_test(test_many_entries),
		cmocka_unit_test(test_eviction_bound),
		cmocka_unit_test(test_clock_second_chance),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
