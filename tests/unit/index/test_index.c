/* Per-archive full-text index: add, search orders and filters, folders, snippets, batches.
 * arca_mime_info structs are built by hand so these tests do not depend on the MIME parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/index.h"
#include "fixture.h"

#define DAY 86400
#define T2020 1577836800 /* 2020-01-01T00:00Z */

/* A message with the given fields; the strings are not owned (never freed). */
static arca_mime_info msg(const char *from, const char *to, const char *subject,
                          const char *body)
{
	arca_mime_info m;
	memset(&m, 0, sizeof(m));
	m.subject = (char *)subject;
	m.from = (char *)from;
	m.sender = (char *)"";
	m.reply_to = (char *)"";
	m.to = (char *)to;
	m.cc = (char *)"";
	m.bcc = (char *)"";
	m.message_id = (char *)"";
	m.in_reply_to = (char *)"";
	m.references = (char *)"";
	m.body_text = (char *)body;
	m.body_text_len = strlen(body);
	m.attachment_text = (char *)"";
	m.warning = (char *)"";
	return m;
}

static void add(arca_index *ix, uint64_t id, uint32_t folder, int64_t date, uint64_t size,
                const arca_mime_info *m)
{
	arca_index_doc d = { .msg_id = id, .folder_id = folder, .date = date, .size = size,
		             .info = m };
	arca_error err;
	if (arca_index_add(ix, &d, &err) != ARCA_OK)
		fail_msg("add %llu: %s", (unsigned long long)id, err.msg);
}

/* Searches and returns the message ids in order, as "3,2,1". */
static char *ids(arca_index *ix, const char *query, arca_order order, const uint32_t *folders,
                 size_t nf, arca_hits *keep)
{
	arca_query *q = NULL;
	arca_error err;
	arca_hits h = { 0 };
	arca_search_opts o = { .order = order, .limit = 50, .folder_ids = folders,
		               .n_folder_ids = nf, .want_snippets = true };
	static char buf[512];
	size_t n = 0;
	if (arca_query_parse(query, &q, &err) != ARCA_OK)
		fail_msg("parse '%s': %s", query, err.msg);
	if (arca_index_search(ix, q, &o, &h, &err) != ARCA_OK)
		fail_msg("search '%s': %s", query, err.msg);
	buf[0] = '\0';
	for (size_t i = 0; i < h.n; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%llu", i ? "," : "",
		                      (unsigned long long)h.hits[i].msg_id);
	arca_query_free(&q);
	if (keep != NULL)
		*keep = h;
	else
		arca_hits_free(&h);
	return buf;
}

static void test_newest_first(void **state)
{
	fixture *f = *state;
	arca_mime_info a = msg("Alice <alice@example.com>", "bob@example.com", "Quarterly report",
	                       "Please find the quarterly numbers below.");
	arca_mime_info b = msg("Bob <bob@example.com>", "alice@example.com", "Re: Quarterly report",
	                       "Thanks, the numbers look good.");
	arca_mime_info c = msg("Carol <carol@example.org>", "team@example.com", "Lunch",
	                       "Lunch on Friday? The report can wait.");
	arca_hits h;
	assert_int_equal(arca_index_begin(f->ix, NULL), ARCA_OK);
	add(f->ix, 7, 1, T2020 + 2 * DAY, 1000, &b);
	add(f->ix, 9, 1, T2020 + 1 * DAY, 2000, &a);
	add(f->ix, 3, 1, T2020 + 3 * DAY, 3000, &c);
	assert_int_equal(arca_index_commit(f->ix, 1, NULL), ARCA_OK);

	assert_string_equal(ids(f->ix, "report", ARCA_ORDER_NEWEST, NULL, 0, NULL), "3,7,9");
	assert_string_equal(ids(f->ix, "numbers", ARCA_ORDER_NEWEST, NULL, 0, NULL), "7,9");
	assert_string_equal(ids(f->ix, "from:alice", ARCA_ORDER_NEWEST, NULL, 0, NULL), "9");
	assert_string_equal(ids(f->ix, "to:alice", ARCA_ORDER_NEWEST, NULL, 0, NULL), "7");
	assert_string_equal(ids(f->ix, "subject:report", ARCA_ORDER_NEWEST, NULL, 0, NULL),
	                    "7,9");
	assert_string_equal(ids(f->ix, "\"quarterly numbers\"", ARCA_ORDER_NEWEST, NULL, 0, NULL),
	                    "9");
	assert_string_equal(ids(f->ix, "quar*", ARCA_ORDER_NEWEST, NULL, 0, NULL), "7,9");
	assert_string_equal(ids(f->ix, "report -lunch", ARCA_ORDER_NEWEST, NULL, 0, NULL), "7,9");
	assert_string_equal(ids(f->ix, "-lunch", ARCA_ORDER_NEWEST, NULL, 0, NULL), "7,9");
	assert_string_equal(ids(f->ix, "lunch OR thanks", ARCA_ORDER_NEWEST, NULL, 0, NULL),
	                    "3,7");
	/* AND binds tighter than OR */
	assert_string_equal(ids(f->ix, "lunch OR numbers good", ARCA_ORDER_NEWEST, NULL, 0, NULL),
	                    "3,7");
	assert_string_equal(ids(f->ix, "numbers good OR lunch", ARCA_ORDER_NEWEST, NULL, 0, NULL),
	                    "3,7");
	assert_string_equal(ids(f->ix, "(lunch OR numbers) good", ARCA_ORDER_NEWEST, NULL, 0,
	                        NULL), "7");
	assert_string_equal(ids(f->ix, "nothing-like-this", ARCA_ORDER_NEWEST, NULL, 0, NULL), "");
	assert_string_equal(ids(f->ix, "after:2000", ARCA_ORDER_NEWEST, NULL, 0, NULL), "3,7,9");

	/* hit fields */
	ids(f->ix, "lunch", ARCA_ORDER_NEWEST, NULL, 0, &h);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.total, 1);
	assert_int_equal(h.hits[0].msg_id, 3);
	assert_int_equal(h.hits[0].date, T2020 + 3 * DAY);
	assert_int_equal(h.hits[0].size, 3000);
	/* day-resolution sort key: midnight is the day's first slot */
	assert_true(h.hits[0].sortkey == ((int64_t)(T2020 + 3 * DAY) / DAY) << 12);
	assert_string_equal(h.hits[0].from, "Carol <carol@example.org>");
	assert_string_equal(h.hits[0].subject, "Lunch");
	assert_int_equal(h.hits[0].n_folders, 1);
	assert_int_equal(h.hits[0].folders[0], 1);
	assert_true(h.hits[0].rank == 0.0);
	arca_hits_free(&h);
	assert_null(h.hits);
}

static void test_limit_and_total(void **state)
{
	fixture *f = *state;
	arca_mime_info m = msg("x@example.com", "y@example.com", "hello", "common words here");
	arca_query *q;
	arca_hits h = { 0 };
	arca_search_opts o = { .order = ARCA_ORDER_NEWEST, .limit = 3 };
	for (uint64_t i = 1; i <= 10; i++)
		add(f->ix, i, 1, T2020 + (int64_t)i * 60, 100, &m);
	assert_int_equal(arca_query_parse("common", &q, NULL), ARCA_OK);
	assert_int_equal(arca_index_search(f->ix, q, &o, &h, NULL), ARCA_OK);
	assert_int_equal(h.n, 3);
	assert_true(h.total == UINT64_MAX);
	assert_int_equal(h.hits[0].msg_id, 10);
	assert_int_equal(h.hits[2].msg_id, 8);
	/* appending a second search to the same result list (merging archives) */
	assert_int_equal(arca_index_search(f->ix, q, &o, &h, NULL), ARCA_OK);
	assert_int_equal(h.n, 6);
	arca_hits_free(&h);
	o.limit = 0;
	assert_int_equal(arca_index_search(f->ix, q, &o, &h, NULL), ARCA_OK);
	assert_int_equal(h.n, 0);
	arca_query_free(&q);
}

static void test_relevance(void **state)
{
	fixture *f = *state;
	/* The older message has the word in its subject; the newer only once in a long body. */
	arca_mime_info a = msg("a@example.com", "z@example.com", "Zebra sightings",
	                       "We saw a zebra at the zoo.");
	arca_mime_info b = msg("b@example.com", "z@example.com", "Weekly newsletter",
	                       "Lots of news this week about many things, the weather, sports, "
	                       "gardening and also one zebra mentioned in passing, plus more "
	                       "news about other things that are not related at all.");
	arca_hits h;
	add(f->ix, 1, 1, T2020, 100, &a);
	add(f->ix, 2, 1, T2020 + DAY, 100, &b);
	assert_string_equal(ids(f->ix, "zebra", ARCA_ORDER_NEWEST, NULL, 0, NULL), "2,1");
	assert_string_equal(ids(f->ix, "zebra", ARCA_ORDER_RELEVANCE, NULL, 0, &h), "1,2");
	assert_true(h.hits[0].rank < h.hits[1].rank);
	assert_int_equal(h.total, 2);
	arca_hits_free(&h);
	/* relevance without text terms falls back to newest first */
	assert_string_equal(ids(f->ix, "after:2019", ARCA_ORDER_RELEVANCE, NULL, 0, NULL), "2,1");
}

static void test_filters(void **state)
{
	fixture *f = *state;
	arca_mime_info m = msg("x@example.com", "y@example.com", "invoice", "invoice attached");
	arca_mime_info att = m;
	arca_mime_attachment at = { (char *)"invoice-2020.pdf", (char *)"application/pdf", 5000 };
	att.has_attachment = true;
	att.attachments = &at;
	att.n_attachments = 1;
	att.attachment_text = (char *)"total amount due";
	att.attachment_text_len = strlen(att.attachment_text);

	add(f->ix, 1, 1, T2020 - DAY, 1000, &m);          /* 2019-12-31 */
	add(f->ix, 2, 1, T2020, 20000, &att);             /* 2020-01-01 */
	add(f->ix, 3, 1, T2020 + 40 * DAY, 300000, &m);   /* 2020-02-10 */
	add(f->ix, 4, 1, T2020 + 400 * DAY, 5000000, &m); /* 2021-02-04 */

	assert_string_equal(ids(f->ix, "invoice after:2020-01-01", 0, NULL, 0, NULL), "4,3,2");
	assert_string_equal(ids(f->ix, "invoice before:2020-01-01", 0, NULL, 0, NULL), "1");
	assert_string_equal(ids(f->ix, "invoice after:2020-01 before:2020-03", 0, NULL, 0, NULL),
	                    "3,2");
	assert_string_equal(ids(f->ix, "after:2020 before:2021", 0, NULL, 0, NULL), "3,2");
	assert_string_equal(ids(f->ix, "before:1960", 0, NULL, 0, NULL), "");
	assert_string_equal(ids(f->ix, "invoice larger:20000", 0, NULL, 0, NULL), "4,3");
	assert_string_equal(ids(f->ix, "invoice larger:19999", 0, NULL, 0, NULL), "4,3,2");
	assert_string_equal(ids(f->ix, "invoice smaller:20000", 0, NULL, 0, NULL), "1");
	assert_string_equal(ids(f->ix, "larger:10k smaller:1m", 0, NULL, 0, NULL), "3,2");
	assert_string_equal(ids(f->ix, "invoice larger:10k smaller:1m", 1, NULL, 0, NULL), "3,2");
	assert_string_equal(ids(f->ix, "has:attachment", 0, NULL, 0, NULL), "2");
	assert_string_equal(ids(f->ix, "invoice -has:attachment", 0, NULL, 0, NULL), "4,3,1");
	assert_string_equal(ids(f->ix, "filename:pdf", 0, NULL, 0, NULL), "2");
	assert_string_equal(ids(f->ix, "attachment:amount", 0, NULL, 0, NULL), "2");
	assert_string_equal(ids(f->ix, "amount", 0, NULL, 0, NULL), "2");
	/* "doc" / "hasattachment" in the flags column are not reachable as words */
	assert_string_equal(ids(f->ix, "hasattachment", 0, NULL, 0, NULL), "");
	assert_string_equal(ids(f->ix, "doc", 0, NULL, 0, NULL), "");
}

static void test_folders(void **state)
{
	fixture *f = *state;
	arca_mime_info m = msg("x@example.com", "y@example.com", "status", "weekly status");
	const uint32_t f1[] = { 1 }, f2[] = { 2 }, f12[] = { 1, 2 }, f9[] = { 9 };
	arca_error err;
	arca_hits h;
	uint64_t n;

	add(f->ix, 1, 1, T2020 + 1, 100, &m);
	add(f->ix, 2, 2, T2020 + 2, 100, &m);
	add(f->ix, 3, 1, T2020 + 3, 100, &m);
	add(f->ix, 3, 2, T2020 + 3, 100, &m); /* second add: folder membership only */
	add(f->ix, 3, 2, T2020 + 3, 100, &m); /* and again: no change */
	assert_int_equal(arca_index_stats(f->ix, &n, NULL), ARCA_OK);
	assert_int_equal(n, 3);
	assert_true(arca_index_has(f->ix, 3));
	assert_false(arca_index_has(f->ix, 4));

	assert_string_equal(ids(f->ix, "status", 0, f1, 1, NULL), "3,1");
	assert_string_equal(ids(f->ix, "status", 0, f2, 1, NULL), "3,2");
	assert_string_equal(ids(f->ix, "status", 0, f12, 2, NULL), "3,2,1");
	assert_string_equal(ids(f->ix, "status", 0, f9, 1, NULL), "");
	assert_string_equal(ids(f->ix, "after:2019", 0, f1, 1, NULL), "3,1");
	assert_string_equal(ids(f->ix, "after:2019", 0, f12, 2, NULL), "3,2,1");
	assert_string_equal(ids(f->ix, "after:2019 larger:50", 0, f2, 1, NULL), "3,2");
	assert_string_equal(ids(f->ix, "status", 1, f2, 1, NULL), "3,2");

	assert_int_equal(arca_index_add_folder(f->ix, 4, 1, &err), ARCA_ERR_NOTFOUND);
	assert_int_equal(arca_index_add_folder(f->ix, 1, 9, &err), ARCA_OK);
	assert_int_equal(arca_index_add_folder(f->ix, 1, 9, &err), ARCA_OK);
	assert_string_equal(ids(f->ix, "status", 0, f9, 1, NULL), "1");
	ids(f->ix, "status", 0, NULL, 0, &h);
	assert_int_equal(h.n, 3);
	assert_int_equal(h.hits[0].n_folders, 2); /* msg 3 */
	assert_int_equal(h.hits[0].folders[0], 1);
	assert_int_equal(h.hits[0].folders[1], 2);
	assert_int_equal(h.hits[2].n_folders, 2); /* msg 1 */
	assert_int_equal(h.hits[2].folders[1], 9);
	arca_hits_free(&h);
}

static void test_sortkey_collision(void **state)
{
	fixture *f = *state;
	arca_mime_info m = msg("x@example.com", "y@example.com", "same", "same second");
	arca_hits h;
	/* same date and same low 20 bits of the message id */
	add(f->ix, 5, 1, T2020, 1, &m);
	add(f->ix, 5 + (1u << 20), 1, T2020, 1, &m);
	add(f->ix, 5 + (2u << 20), 1, T2020, 1, &m);
	ids(f->ix, "same", 0, NULL, 0, &h);
	assert_int_equal(h.n, 3);
	assert_true(h.hits[0].sortkey == h.hits[1].sortkey + 1);
	arca_hits_free(&h);
	/* dates outside the key range are clamped, not rejected */
	add(f->ix, 6, 1, -5000, 1, &m);
	add(f->ix, 7, 1, INT64_MAX, 1, &m);
	assert_string_equal(ids(f->ix, "same", 0, NULL, 0, NULL), "7,2097157,1048581,5,6");
}

/* Snippet of text for query, via a parsed query (hits carry none: the instance cuts them
 * from the message itself). Returns a static copy. */
static const char *snip(const char *query, const char *text)
{
	static char out[1024];
	arca_query *q = NULL;
	char *s;
	assert_int_equal(arca_query_parse(query, &q, NULL), ARCA_OK);
	s = arca_index_snippet(q, text, strlen(text));
	assert_non_null(s);
	snprintf(out, sizeof(out), "%s", s);
	free(s);
	arca_query_free(&q);
	return out;
}

static void test_snippets(void **state)
{
	fixture *f = *state;
	const char *body = "Hello team,\n\n  here are the notes from Tuesday. The Café "
	                   "opens at nine and the quick brown fox jumps over the lazy dog. "
	                   "Invoices are due on Friday. [[not a mark]] More filler text "
	                   "follows to make this longer than one snippet window so that it "
	                   "gets cut somewhere around here and an ellipsis is added at the end.";
	arca_mime_info m = msg("x@example.com", "y@example.com", "Meeting notes", body);
	arca_hits h;
	const char *s;
	add(f->ix, 1, 1, T2020, 1, &m);

	/* search hits leave the snippet to the caller */
	ids(f->ix, "brown", 0, NULL, 0, &h);
	assert_int_equal(h.n, 1);
	assert_null(h.hits[0].snippet);
	arca_hits_free(&h);

	s = snip("brown", body);
	assert_non_null(strstr(s, "quick [[brown]] fox"));
	assert_true(strlen(s) < 260);

	s = snip("\"quick brown\" OR cafe", body);
	assert_non_null(strstr(s, "[[Café]]"));
	assert_non_null(strstr(s, "[[quick brown]]"));
	assert_null(strstr(s, "\n"));

	s = snip("invoice*", body);
	assert_non_null(strstr(s, "[[Invoices]] are due"));
	assert_true(strncmp(s, "\xE2\x80\xA6", 3) == 0); /* cut at the start */
	assert_null(strstr(s, "[[not")); /* text brackets cannot fake a mark */

	/* no match in the text (subject only): the start of the text */
	s = snip("meeting", body);
	assert_true(strncmp(s, "Hello team, here are the notes", 30) == 0);
	assert_null(strstr(s, "[["));
	assert_true(strlen(s) <= 170);

	assert_string_equal(snip("empty", ""), "");
}

static void test_batches_and_reopen(void **state)
{
	fixture *f = *state;
	arca_mime_info m = msg("x@example.com", "y@example.com", "persist", "kept across reopen");
	arca_error err;
	uint64_t n;

	assert_int_equal(arca_index_last_batch(f->ix), 0);
	assert_int_equal(arca_index_begin(f->ix, &err), ARCA_OK);
	assert_int_equal(arca_index_begin(f->ix, &err), ARCA_ERR_STATE);
	add(f->ix, 1, 1, T2020, 1, &m);
	assert_int_equal(arca_index_commit(f->ix, 5, &err), ARCA_OK);
	assert_int_equal(arca_index_last_batch(f->ix), 5);
	assert_int_equal(arca_index_commit(f->ix, 6, &err), ARCA_ERR_STATE);

	/* a rolled back batch leaves nothing behind */
	assert_int_equal(arca_index_begin(f->ix, &err), ARCA_OK);
	add(f->ix, 2, 1, T2020, 1, &m);
	arca_index_rollback(f->ix);
	assert_false(arca_index_has(f->ix, 2));
	assert_int_equal(arca_index_last_batch(f->ix), 5);

	arca_index_close(&f->ix);
	assert_null(f->ix);
	assert_int_equal(arca_index_open(f->path, 0, &f->ix, &err), ARCA_OK);
	assert_int_equal(arca_index_last_batch(f->ix), 5);
	assert_string_equal(ids(f->ix, "persist", 0, NULL, 0, NULL), "1");
	arca_index_close(&f->ix);

	/* read-only handles search but do not write */
	assert_int_equal(arca_index_open(f->path, ARCA_INDEX_READONLY, &f->ix, &err), ARCA_OK);
	assert_string_equal(ids(f->ix, "reopen", 0, NULL, 0, NULL), "1");
	assert_int_equal(arca_index_begin(f->ix, &err), ARCA_ERR_STATE);
	{
		arca_index_doc d = { .msg_id = 3, .date = T2020, .info = &m };
		assert_int_equal(arca_index_add(f->ix, &d, &err), ARCA_ERR_STATE);
	}
	assert_int_equal(arca_index_stats(f->ix, &n, &err), ARCA_OK);
	assert_int_equal(n, 1);
	arca_index_close(&f->ix);
	assert_int_equal(arca_index_open(f->path, 0, &f->ix, &err), ARCA_OK);
}

static void test_open_errors(void **state)
{
	fixture *f = *state;
	arca_index *ix = NULL;
	arca_error err;
	char p[160];
	FILE *fp;
	snprintf(p, sizeof(p), "%s/missing.db", f->dir);
	assert_int_equal(arca_index_open(p, 0, &ix, &err), ARCA_ERR_NOTFOUND);
	assert_null(ix);
	assert_int_equal(arca_index_open(p, ARCA_INDEX_READONLY, &ix, &err), ARCA_ERR_NOTFOUND);
	/* a file that is not an index */
	snprintf(p, sizeof(p), "%s/junk.db", f->dir);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs("this is not a database, just some text that is long enough to look like one. "
	      "SQLite checks the header magic of the first page.................................",
	      fp);
	fclose(fp);
	assert_int_equal(arca_index_open(p, 0, &ix, &err), ARCA_ERR_CORRUPT);
	assert_null(ix);
	unlink(p);
}

static void test_clear_and_stats(void **state)
{
	fixture *f = *state;
	arca_mime_info m = msg("x@example.com", "y@example.com", "gone", "soon cleared");
	uint64_t n, bytes;
	add(f->ix, 1, 1, T2020, 1, &m);
	add(f->ix, 2, 2, T2020, 1, &m);
	assert_int_equal(arca_index_begin(f->ix, NULL), ARCA_OK);
	assert_int_equal(arca_index_commit(f->ix, 9, NULL), ARCA_OK);
	assert_int_equal(arca_index_stats(f->ix, &n, NULL), ARCA_OK);
	assert_int_equal(n, 2);
	assert_int_equal(arca_index_db_bytes(f->ix, &bytes, NULL), ARCA_OK);
	assert_true(bytes > 0);
	assert_int_equal(arca_index_clear(f->ix, NULL), ARCA_OK);
	assert_int_equal(arca_index_stats(f->ix, &n, NULL), ARCA_OK);
	assert_int_equal(n, 0);
	assert_int_equal(arca_index_last_batch(f->ix), 0);
	assert_string_equal(ids(f->ix, "gone", 0, NULL, 0, NULL), "");
	assert_false(arca_index_has(f->ix, 1));
	/* the index is usable again after clearing */
	add(f->ix, 1, 1, T2020, 1, &m);
	assert_string_equal(ids(f->ix, "cleared", 0, NULL, 0, NULL), "1");
}

/* Hostile queries must never reach FTS5 as syntax: each one parses and runs without error. */
static void test_injection(void **state)
{
	fixture *f = *state;
	static const char *const qs[] = {
		"NEAR(a b)", "\"NEAR(a b, 1)\"", "a^b", "^a", "{subject}:x", "\"{body} : x\"",
		"\"x\" AND \"OR\"", "\"a\"\"b\"", "\"say \\\"hi\\\"\"", "col:x\"", "\"*\"", "\"a*\"*",
		"- {msgid flags} : x", "\"- {flags} : doc\"", "\"\\\"\" ok", "x\"y\"z", "(a OR b) -c",
		"AND", "OR", "\"AND\"", "\"NOT\" x", "\"\x01\x02\"", "quote\"", "\"'\"",
		"subject:\"\"\" x", "from:\"a\"\"b\"", "\"é\"", "\"\xe2\x80\xa6\" x", "x*y*",
		"\"(\" x \")\"", "'\"' x",
	};
	arca_mime_info m = msg("x@example.com", "y@example.com", "NEAR x", "a b c");
	add(f->ix, 1, 1, T2020, 1, &m);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		arca_query *q = NULL;
		arca_error err;
		arca_hits h = { 0 };
		arca_search_opts o = { .limit = 10, .want_snippets = true };
		arca_status st = arca_query_parse(qs[i], &q, &err);
		if (st != ARCA_OK) {
			/* a clear syntax error is fine; a database error is not */
			assert_int_equal(st, ARCA_ERR_SYNTAX);
			continue;
		}
		st = arca_index_search(f->ix, q, &o, &h, &err);
		if (st != ARCA_OK)
			fail_msg("'%s' -> %s: %s", qs[i], arca_query_fts(q), err.msg);
		arca_hits_free(&h);
		arca_query_free(&q);
	}
	/* "doc" is the flags token of every message but is not searchable as a word */
	assert_string_equal(ids(f->ix, "\"doc\" OR hasattachment", 0, NULL, 0, NULL), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_newest_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_and_total, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relevance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sortkey_collision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snippets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batches_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear_and_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_injection, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
